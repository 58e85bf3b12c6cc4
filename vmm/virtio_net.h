/* virtio-net (virtio 1.x 5.1) with up to VNET_MAX_PAIRS queue pairs, one
 * fd per pair: the queues of a tap opened with IFF_TAP|IFF_NO_PI|
 * IFF_VNET_HDR (|IFF_MULTI_QUEUE for more than one), or, in tests, any
 * datagram sockets where each datagram is a 12-byte virtio_net_hdr_v1
 * plus a frame.
 *
 * Queues: rx of pair p is 2p, tx 2p+1; the control queue is 2 * pairs
 * when the driver negotiates VIRTIO_NET_F_MQ, else 2 (spec 5.1.2). The
 * driver starts with one active pair and switches with VQ_PAIRS_SET;
 * the tap queue of an inactive pair is detached (TUNSETQUEUE), so the
 * kernel steers no frames to it.
 *
 * Threads: notify() never does data-path work on the caller's thread. A
 * kick of pair p's rx or tx queue bumps that pair's eventfd
 * (vnet_pair_kickfd); whoever runs the event loops (devices.c) calls
 * vnet_pair_run() when the eventfd or the pair's fd is readable. The
 * control queue is served inline: it is rare and cheap. */
#ifndef KVMLAB_VMM_VIRTIO_NET_H
#define KVMLAB_VMM_VIRTIO_NET_H
#include <stdbool.h>
#include <stdint.h>
#include "vhost_net.h"
#include "virtio_pci.h"

#define VNET_HDR_LEN 12      /* virtio_net_hdr_v1: VERSION_1 always has num_buffers */
#define VNET_RX_CHAINS 64    /* most rx chains one packet may span (MRG_RXBUF) */
#define VNET_RX_IOVS 1024    /* IOV_MAX */
#define VNET_MAX_PAIRS 8     /* 2 * 8 + ctrl = VPCI_MAX_QUEUES */
#define VNET_MAC_TABLE 64    /* MAC filter entries kept; more: accept that kind */
#define VNET_CTRL_MAX 65536  /* longest control command (MAC tables) we parse */

/* tx filter (DHCP from the VMM): frames up to this long are shown to it;
 * longer ones (GSO super-frames, jumbo) go to the fd unseen */
#define VNET_FILTER_MAX (9216 + 18)
#define VNET_REPLY_MAX 2048  /* largest frame a filter may inject */

/* 1: the frame is consumed (never written to the fd), and if *reply_len
 * (in: room) comes back non-zero, reply[0..*reply_len) goes to the guest
 * on rx queue 0; 0: pass it on. Called on the tx path, any thread. Only
 * IPv4/UDP frames to port 67 are shown to it (DHCP is all it is for):
 * the rest go to the tap without a copy. */
typedef int vnet_tx_filter_fn(void *opaque, const uint8_t *frame, size_t len,
			      uint8_t *reply, size_t *reply_len);

/* Receive filter (5.1.6.5.1/2), written by the control queue, read by rx. */
struct vnet_filter {
	bool promisc, allmulti;
	bool uni_overflow, multi_overflow; /* table too long: accept all */
	uint8_t mac[6];                    /* MAC_ADDR_SET, else the configured one */
	unsigned nuni, nmulti;
	uint8_t uni[VNET_MAC_TABLE][6], multi[VNET_MAC_TABLE][6];
};

struct vnet_pair {
	int fd;
	struct vhost_net vh; /* its vhost-net backend (vh.fd -1: none) */
	bool vhost;       /* atomic: the backend owns this pair's rings now */
	bool vhost_refused; /* taking the rings failed: not until reset */
	int kickfd;       /* eventfd: a kick on this pair's rx or tx queue */
	bool attached;    /* tap queue attached (TUNSETQUEUE); owned by v->lock or ctrl */
	uint64_t rx_frames, tx_frames; /* for tests and stats */
	/* tx filter scratch, owned by this pair's tx queue lock */
	uint8_t filt_frame[VNET_HDR_LEN + VNET_FILTER_MAX];
	uint8_t filt_reply[VNET_REPLY_MAX];
	/* rx scratch, owned by the rx queue lock. Chains popped for a frame
	 * and not used stay held for the next one of the same drain
	 * (rx_held of them from rxc[rx_first], circular): gathering room for
	 * a 64 KiB GSO frame before each small one would pop and give back
	 * 40-odd chains a frame. None are held once the lock is let go. */
	unsigned rx_first, rx_held;
	struct vq_chain rxc[VNET_RX_CHAINS];
	struct iovec riov[VNET_RX_IOVS];
};

struct vnet {
	struct vpci vpci; /* first: the PCI layer hands us back this pointer */
	bool tap;         /* apply TUNSETOFFLOAD / TUNSETVNETHDRSZ / TUNSETQUEUE */
	unsigned max_pairs;
	unsigned cur_pairs; /* atomic: pairs the driver uses, 1..max_pairs */
	uint8_t mac[6];
	uint64_t stats_rx_drop, stats_tx_drop, stats_rx_filtered; /* atomic */
	uint64_t stats_ctrl_ok, stats_ctrl_err;
	bool tx_err_logged, reset_err_logged;
	pthread_mutex_t ctrl_lock; /* serialises control commands (pair switches) */
	pthread_mutex_t filter_lock; /* leaf lock: filter */
	bool filter_on;   /* atomic: CTRL_RX negotiated and not promiscuous */
	struct vnet_filter filter;
	struct vnet_pair *pair[VNET_MAX_PAIRS];
	/* tx filter: set before the device runs, NULL for none */
	vnet_tx_filter_fn *tx_filter;
	void *tx_filter_opaque;
	/* one injected frame waiting for a buffer on pair 0's rx queue; a
	 * newer reply replaces an undelivered one. inj_lock is a leaf: taken
	 * under any queue lock */
	pthread_mutex_t inj_lock;
	size_t inj_len;
	uint8_t inj[VNET_REPLY_MAX];
	/* vhost-net (virtio_net_vhost.c) */
	bool vhost_open;  /* every pair has a backend */
	bool vhost_ok;    /* the driver's features suit the backends (v->lock) */
	bool vhost_live;  /* atomic: DRIVER_OK seen: pairs go to their backends */
	bool vhost_logged;
	struct vnet_io {
		/* stop/resume the event loop reading one of our fds */
		int (*pause)(void *opaque, int fd, bool pause);
		void *opaque;
	} io;
};

/* fds[0..pairs): one per queue pair, put into non-blocking mode; they
 * stay owned by the caller. pairs: 1..VNET_MAX_PAIRS; more than one
 * needs a multi-queue tap (or sockets when !tap). */
int vnet_init(struct vnet *n, const int *fds, unsigned pairs, bool tap, const uint8_t mac[6],
	      const struct gmem *gm, const struct dev_irq_ops *irq) WUR;
void vnet_destroy(struct vnet *n);
/* eventfd that becomes readable when pair p's queues were kicked. */
int vnet_pair_kickfd(const struct vnet *n, unsigned p);
/* The event loop's handler for pair p (kick or fd readable): consume the
 * kick, send what the guest queued, receive what the fd has. */
void vnet_pair_run(struct vnet *n, unsigned p);
/* Move frames from pair p's fd into its rx queue until the fd is empty
 * or the guest has no room (then a later rx kick resumes). Any thread. */
void vnet_rx(struct vnet *n, unsigned p);
/* Send everything the guest queued on pair p's tx queue. Any thread. */
void vnet_tx(struct vnet *n, unsigned p);
/* The features vnet offers with this many pairs (for tests). */
uint64_t vnet_features(unsigned pairs);
/* vhost-net for every pair (virtio_net_vhost.c). Call after vnet_init,
 * before the guest runs. required: a missing or refusing /dev/vhost-net
 * is an error; else the device silently keeps its own data path. The
 * rings go to the kernel only once the driver is running with features
 * the backend serves, MSI-X vectors with irqfds and ioeventfd kicks;
 * anything less keeps the userspace path. */
int vnet_vhost_enable(struct vnet *n, bool required, const struct vnet_io *io,
		      struct err *e) WUR;
/* Is pair p served by vhost now? (for tests and --stats) */
bool vnet_vhost_active(const struct vnet *n, unsigned p);
/* Hooks of virtio_net.c. */
void vnet_vhost_features(struct vnet *n, uint64_t acked);
void vnet_vhost_driver_ok(struct vnet *n);
void vnet_vhost_reset_locked(struct vnet *n);
bool vnet_vhost_pair_poll(struct vnet *n, unsigned p);
void vnet_vhost_set_call(struct vnet *n, unsigned q, int fd);
void vnet_vhost_close(struct vnet *n);
/* Pairs in use now (for tests). */
unsigned vnet_cur_pairs(const struct vnet *n);
#endif

/* virtio-net (virtio 1.x 5.1) on one fd: a tap opened with
 * IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, or, in tests, any datagram socket
 * where each datagram is a 12-byte virtio_net_hdr_v1 plus a frame.
 * Queue 0 is rx, queue 1 tx. No control queue, one queue pair. */
#ifndef KVMLAB_VMM_VIRTIO_NET_H
#define KVMLAB_VMM_VIRTIO_NET_H
#include <stdbool.h>
#include <stdint.h>
#include "virtio_pci.h"

#define VNET_HDR_LEN 12      /* virtio_net_hdr_v1: VERSION_1 always has num_buffers */
#define VNET_RX_CHAINS 64    /* most rx chains one packet may span (MRG_RXBUF) */
#define VNET_RX_IOVS 1024    /* IOV_MAX */
/* tx filter (DHCP from the VMM): frames up to this long are shown to it;
 * longer ones (GSO super-frames, jumbo) go to the fd unseen */
#define VNET_FILTER_MAX (9216 + 18)
#define VNET_REPLY_MAX 2048  /* largest frame a filter may inject */

/* 1: the frame is consumed (never written to the fd), and if *reply_len
 * (in: room) comes back non-zero, reply[0..*reply_len) goes to the guest
 * on rx queue 0; 0: pass it on. Called on the tx path, any thread. */
typedef int vnet_tx_filter_fn(void *opaque, const uint8_t *frame, size_t len,
			      uint8_t *reply, size_t *reply_len);

struct vnet {
	struct vpci vpci; /* first: the PCI layer hands us back this pointer */
	int fd;
	bool tap;         /* apply TUNSETOFFLOAD / TUNSETVNETHDRSZ */
	uint8_t mac[6];
	uint64_t stats_rx_drop, stats_tx_drop;
	bool tx_err_logged;
	/* rx scratch, owned by the rx queue lock */
	struct vq_chain rxc[VNET_RX_CHAINS];
	struct iovec riov[VNET_RX_IOVS];
	/* tx filter: set before the device runs, NULL for none */
	vnet_tx_filter_fn *tx_filter;
	void *tx_filter_opaque;
	uint8_t filt_frame[VNET_HDR_LEN + VNET_FILTER_MAX]; /* tx queue lock */
	uint8_t filt_reply[VNET_REPLY_MAX];                  /* tx queue lock */
	bool inj_kick;    /* tx queue lock: a reply was queued in this drain */
	/* one injected frame waiting for an rx buffer; a newer reply replaces
	 * an undelivered one. inj_lock is a leaf: taken under either queue lock */
	pthread_mutex_t inj_lock;
	size_t inj_len;
	uint8_t inj[VNET_REPLY_MAX];
};

/* fd is put into non-blocking mode; it stays owned by the caller. */
int vnet_init(struct vnet *n, int fd, bool tap, const uint8_t mac[6],
	      const struct gmem *gm, const struct dev_irq_ops *irq) WUR;
void vnet_destroy(struct vnet *n);
/* Move frames from the fd into the rx queue until the fd is empty or the
 * guest has no room (then a later rx kick resumes). Any thread. */
void vnet_rx(struct vnet *n);
/* Send everything the guest queued on tx. Any thread. */
void vnet_tx(struct vnet *n);
/* The features vnet offers (for tests). */
uint64_t vnet_features(void);
#endif

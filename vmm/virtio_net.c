#include "virtio_net.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))
#define RXQ 0
#define TXQ 1
#define CFG_SIZE 12 /* mac, status, max_virtqueue_pairs, mtu */
/* largest frame the tap hands us: a 64 KiB GSO super-frame, or one MTU
 * (plus Ethernet and VLAN header) without guest GSO */
#define RX_NEED_GSO (VNET_HDR_LEN + 65535 + 14 + 4)
#define RX_NEED_MTU (VNET_HDR_LEN + 1500 + 14 + 4)
#define TX_MAX RX_NEED_GSO

uint64_t vnet_features(void)
{
	return BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	       BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_NET_F_MAC) |
	       BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
	       BIT(VIRTIO_NET_F_MTU) |
	       BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) |
	       BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) |
	       BIT(VIRTIO_NET_F_HOST_ECN) |
	       BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6) |
	       BIT(VIRTIO_NET_F_GUEST_ECN);
}

static void cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	struct vnet *n = dev;
	uint8_t c[CFG_SIZE];
	uint16_t status = VIRTIO_NET_S_LINK_UP, pairs = 1, mtu = 1500;
	memcpy(c, n->mac, 6);
	memcpy(c + 6, &status, 2);
	memcpy(c + 8, &pairs, 2);
	memcpy(c + 10, &mtu, 2);
	memcpy(data, c + off, len);
}

static void cfg_write(void *dev, unsigned off, const void *data, unsigned len)
{
	/* the MAC is read-only in virtio 1.x; nothing else is writable */
	(void)dev, (void)off, (void)data, (void)len;
}

/* The spec's feature dependencies (5.1.3.1): refuse a driver that breaks them. */
static bool deps_ok(uint64_t f)
{
	static const struct { unsigned bit, needs; } dep[] = {
		{ VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_CSUM },
		{ VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_CSUM },
		{ VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_CSUM },
		{ VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_CSUM },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(dep); i++)
		if ((f & BIT(dep[i].bit)) && !(f & BIT(dep[i].needs)))
			return false;
	if ((f & BIT(VIRTIO_NET_F_GUEST_ECN)) &&
	    !(f & (BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6))))
		return false;
	if ((f & BIT(VIRTIO_NET_F_HOST_ECN)) &&
	    !(f & (BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6))))
		return false;
	return true;
}

static int tap_offload(struct vnet *n, uint64_t f)
{
	if (!n->tap)
		return 0;
	/* TUNSETOFFLOAD says what the tap may hand *us*: the guest's rx side */
	unsigned off = 0;
	if (f & BIT(VIRTIO_NET_F_GUEST_CSUM))
		off |= TUN_F_CSUM;
	if (f & BIT(VIRTIO_NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (f & BIT(VIRTIO_NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	if (f & BIT(VIRTIO_NET_F_GUEST_ECN))
		off |= TUN_F_TSO_ECN;
	if (ioctl(n->fd, TUNSETOFFLOAD, off) < 0)
		return -errno;
	return 0;
}

static int set_features(void *dev, uint64_t f)
{
	struct vnet *n = dev;
	if (!deps_ok(f))
		return -EINVAL;
	if (n->tap) {
		int sz = VNET_HDR_LEN;
		if (ioctl(n->fd, TUNSETVNETHDRSZ, &sz) < 0)
			return -errno;
	}
	return tap_offload(n, f);
}

static void reset(void *dev)
{
	struct vnet *n = dev;
	(void)tap_offload(n, 0);
	pthread_mutex_lock(&n->inj_lock);
	n->inj_len = 0; /* a reply to the old driver's request */
	pthread_mutex_unlock(&n->inj_lock);
}

static void notify(void *dev, unsigned q)
{
	struct vnet *n = dev;
	if (q == RXQ)
		vnet_rx(n); /* new rx buffers: frames may be waiting */
	else if (q == TXQ)
		vnet_tx(n);
}

static const struct vpci_ops vnet_ops = {
	.cfg_read = cfg_read, .cfg_write = cfg_write, .notify = notify,
	.set_features = set_features, .reset = reset,
};

/* One tx chain: a header plus a frame, device-readable only. Anything
 * else is dropped; the buffer goes back either way, with nothing written. */
static uint32_t tx_one(void *dev, const struct vq_chain *c)
{
	struct vnet *n = dev;
	/* the guest picks out_len (up to 256 segments of 4 GiB): nothing
	 * longer than a 64 KiB GSO frame is a frame, so spare the tap the copy */
	if (c->nr_in || c->out_len < VNET_HDR_LEN || c->out_len > TX_MAX) {
		n->stats_tx_drop++;
		return 0;
	}
	ssize_t w;
	if (n->tx_filter && c->out_len - VNET_HDR_LEN <= VNET_FILTER_MAX) {
		/* one copy, judged and then sent as judged: the guest may change
		 * its buffer meanwhile, but not what the filter saw */
		size_t fl = (size_t)c->out_len - VNET_HDR_LEN, rl = sizeof(n->filt_reply);
		(void)vq_iov_read(c->iov, c->nr_out, 0, n->filt_frame, (size_t)c->out_len);
		if (n->tx_filter(n->tx_filter_opaque, n->filt_frame + VNET_HDR_LEN, fl,
				 n->filt_reply, &rl)) {
			if (rl && rl <= sizeof(n->filt_reply)) {
				pthread_mutex_lock(&n->inj_lock);
				memcpy(n->inj, n->filt_reply, rl);
				n->inj_len = rl;
				pthread_mutex_unlock(&n->inj_lock);
				n->inj_kick = true;
			}
			return 0;
		}
		do
			w = write(n->fd, n->filt_frame, (size_t)c->out_len);
		while (w < 0 && errno == EINTR);
	} else {
		do
			w = writev(n->fd, c->iov, (int)c->nr_out);
		while (w < 0 && errno == EINTR);
	}
	/* a full or unhappy tap (it also refuses GSO/checksum fields that do
	 * not fit the frame) drops the frame, as a wire would */
	if (w < 0) {
		n->stats_tx_drop++;
		if (!n->tx_err_logged && errno != EAGAIN && errno != ENOBUFS) {
			fprintf(stderr, "kvmlab-vm: virtio-net: tap write: %s "
				"(frame dropped; logged once)\n", strerror(errno));
			n->tx_err_logged = true;
		}
	}
	return 0;
}

void vnet_tx(struct vnet *n)
{
	vpci_drain(&n->vpci, TXQ, tx_one);
	/* a filter reply waits in inj: deliver it now if rx has room */
	pthread_mutex_lock(&n->vpci.q[TXQ].lock);
	bool kick = n->inj_kick;
	n->inj_kick = false;
	pthread_mutex_unlock(&n->vpci.q[TXQ].lock);
	if (kick)
		vnet_rx(n);
}

/* The injected frame (if any) into the gathered rx chains, as if the fd
 * had delivered it: a zeroed header (no GSO, checksums complete), then
 * the frame. -1 if there is none. */
static ssize_t rx_injected(struct vnet *n, unsigned niov)
{
	static const uint8_t hdr[VNET_HDR_LEN];
	ssize_t r = -1;

	pthread_mutex_lock(&n->inj_lock);
	if (n->inj_len) {
		(void)vq_iov_write(n->riov, niov, 0, hdr, sizeof(hdr));
		(void)vq_iov_write(n->riov, niov, VNET_HDR_LEN, n->inj, n->inj_len);
		r = (ssize_t)(VNET_HDR_LEN + n->inj_len);
		n->inj_len = 0;
	}
	pthread_mutex_unlock(&n->inj_lock);
	return r;
}

/* Receive one frame. 1: delivered (or dropped) one; 0: stop (fd empty or
 * no room). Called with the rx lock held. */
static int rx_one(struct vnet *n, struct vq *q, bool *pushed)
{
	bool mrg = vpci_has(&n->vpci, VIRTIO_NET_F_MRG_RXBUF);
	bool gso = vpci_has(&n->vpci, VIRTIO_NET_F_GUEST_TSO4) ||
		   vpci_has(&n->vpci, VIRTIO_NET_F_GUEST_TSO6);
	uint64_t need = gso ? RX_NEED_GSO : RX_NEED_MTU;
	unsigned nc = 0, niov = 0;
	uint64_t room = 0;
	bool cut = false;

	for (;;) {
		/* gather chains until one frame surely fits: one chain without
		 * MRG_RXBUF, as many as it takes with it */
		while (nc < VNET_RX_CHAINS && (nc == 0 || (mrg && room < need))) {
			struct vq_chain *c = &n->rxc[nc];
			int rc = vq_pop(q, c);
			if (rc < 0) {
				vpci_set_needs_reset(&n->vpci);
				return 0;
			}
			if (rc == 0)
				break;
			if (c->nr_out || c->in_len < VNET_HDR_LEN ||
			    niov + c->nr_in > VNET_RX_IOVS) {
				if (nc > 0) {
					/* keep the chains in ring order: use what
					 * we have, meet this one next time */
					vq_unpop(q, 1);
					cut = true;
					break;
				}
				/* unusable buffer: hand it back empty */
				vq_push(q, c->head, 0);
				*pushed = true;
				continue;
			}
			memcpy(n->riov + niov, c->iov, c->nr_in * sizeof(struct iovec));
			niov += c->nr_in;
			room += c->in_len;
			nc++;
		}
		/* a small ring may never hold `need` bytes: its every buffer is
		 * as good as it gets */
		if (nc > 0 && (!mrg || cut || room >= need || nc == VNET_RX_CHAINS ||
			       nc >= q->size || niov == VNET_RX_IOVS))
			break;
		/* not enough room yet: give the chains back and ask for a kick
		 * when the driver adds more; retry if it already did */
		vq_unpop(q, (uint16_t)nc);
		nc = niov = 0;
		room = 0;
		if (!vq_arm(q))
			return 0;
	}

	ssize_t r = n->tx_filter ? rx_injected(n, niov) : -1;
	if (r < 0) {
		do
			r = readv(n->fd, n->riov, (int)niov);
		while (r < 0 && errno == EINTR);
	}
	if (r < VNET_HDR_LEN) {
		vq_unpop(q, (uint16_t)nc);
		if (r >= 0) {
			n->stats_rx_drop++; /* runt datagram: consumed, dropped */
			return 1;
		}
		return 0; /* EAGAIN: drained; other errors: nothing to do */
	}
	/* split the frame over the chains in order; each used length is
	 * capped by its own chain's room, whatever r says: the guest must
	 * never be told of bytes past its buffers */
	uint64_t left = (uint64_t)r;
	uint16_t used = 0;
	while (left && used < nc) {
		uint64_t k = n->rxc[used].in_len < left ? n->rxc[used].in_len : left;
		left -= k;
		used++;
	}
	/* num_buffers sits at byte 10 of the header, in the first chain,
	 * whose in_len >= VNET_HDR_LEN was checked when it was gathered */
	struct vq_chain *first = &n->rxc[0];
	(void)vq_iov_write(first->iov, first->nr_in, 10, &used, sizeof(used));
	left = (uint64_t)r;
	for (uint16_t i = 0; i < used; i++) {
		uint64_t k = n->rxc[i].in_len < left ? n->rxc[i].in_len : left;
		vq_push(q, n->rxc[i].head, (uint32_t)k);
		left -= k;
	}
	vq_unpop(q, (uint16_t)(nc - used));
	*pushed = true;
	return 1;
}

void vnet_rx(struct vnet *n)
{
	struct vpci_queue *pq = &n->vpci.q[RXQ];
	bool pushed = false;

	pthread_mutex_lock(&pq->lock);
	/* drain completely: the tap is edge-triggered, so frames left behind
	 * would wait for the next frame or kick; let the guest start on a
	 * long burst early by signalling every so often */
	for (unsigned i = 1; rx_one(n, &pq->vq, &pushed); i++) {
		if (i % 64 == 0 && pushed && vq_should_signal(&pq->vq)) {
			vpci_signal(&n->vpci, RXQ);
			pushed = false;
		}
	}
	if (pushed && vq_should_signal(&pq->vq))
		vpci_signal(&n->vpci, RXQ);
	pthread_mutex_unlock(&pq->lock);
}

int vnet_init(struct vnet *n, int fd, bool tap, const uint8_t mac[6],
	      const struct gmem *gm, const struct dev_irq_ops *irq)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	int rc = vpci_init(&n->vpci, VIRTIO_ID_NET, 0x020000, vnet_features(), 2, 256,
			   CFG_SIZE, &vnet_ops, n, gm, irq);
	if (rc)
		return rc;
	n->fd = fd;
	n->tap = tap;
	pthread_mutex_init(&n->inj_lock, NULL);
	memcpy(n->mac, mac, 6);
	n->vpci.q[RXQ].vq.name = "net rx";
	n->vpci.q[TXQ].vq.name = "net tx";
	return 0;
}

void vnet_destroy(struct vnet *n)
{
	vpci_destroy(&n->vpci);
	pthread_mutex_destroy(&n->inj_lock);
}

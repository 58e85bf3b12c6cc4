#include "virtio_net.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))
#define RXQ(p) (2u * (p))
#define TXQ(p) (2u * (p) + 1)
#define CFG_SIZE 12 /* mac, status, max_virtqueue_pairs, mtu */
/* largest frame the tap hands us: a 64 KiB GSO super-frame, or one MTU
 * (plus Ethernet and VLAN header) without guest GSO */
#define RX_NEED_GSO (VNET_HDR_LEN + 65535 + 14 + 4)
#define RX_NEED_MTU (VNET_HDR_LEN + 1500 + 14 + 4)
#define TX_MAX RX_NEED_GSO

uint64_t vnet_features(unsigned pairs)
{
	return BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	       BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_NET_F_MAC) |
	       BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
	       BIT(VIRTIO_NET_F_MTU) |
	       BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) |
	       BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) |
	       BIT(VIRTIO_NET_F_HOST_ECN) |
	       BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6) |
	       BIT(VIRTIO_NET_F_GUEST_ECN) |
	       BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_CTRL_RX) |
	       BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |
	       (pairs > 1 ? BIT(VIRTIO_NET_F_MQ) : 0);
}

unsigned vnet_cur_pairs(const struct vnet *n)
{
	return __atomic_load_n(&n->cur_pairs, __ATOMIC_ACQUIRE);
}

static void cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	struct vnet *n = dev;
	uint8_t c[CFG_SIZE];
	uint16_t status = VIRTIO_NET_S_LINK_UP, pairs = (uint16_t)n->max_pairs, mtu = 1500;
	pthread_mutex_lock(&n->filter_lock);
	memcpy(c, n->filter.mac, 6); /* MAC_ADDR_SET shows here, as in QEMU */
	pthread_mutex_unlock(&n->filter_lock);
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
		{ VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ },
		{ VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_CTRL_VQ },
		{ VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_VQ },
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

/* Device-wide tap settings go through pair 0's fd: it is never detached. */
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
	if (ioctl(n->pair[0]->fd, TUNSETOFFLOAD, off) < 0)
		return -errno;
	return 0;
}

/* Attach the tap queues of pairs [0, k) and detach the rest, so that the
 * kernel steers frames only to queues whose rx ring the driver uses.
 * All or nothing: on failure the old state is restored. Caller holds
 * ctrl_lock or every queue lock (reset). */
static int set_pairs(struct vnet *n, unsigned k)
{
	unsigned old = vnet_cur_pairs(n);
	int rc = 0;

	if (n->tap) {
		for (unsigned p = 1; p < n->max_pairs; p++) {
			struct vnet_pair *pr = n->pair[p];
			bool want = p < k;
			if (want == pr->attached)
				continue;
			struct ifreq ifr;
			memset(&ifr, 0, sizeof(ifr));
			ifr.ifr_flags = want ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
			if (ioctl(pr->fd, TUNSETQUEUE, &ifr) < 0) {
				rc = -errno;
				if (k != old)
					(void)set_pairs(n, old); /* best effort back */
				return rc;
			}
			pr->attached = want;
		}
	}
	/* release: a pair thread that sees the new count sees attached fds */
	__atomic_store_n(&n->cur_pairs, k, __ATOMIC_RELEASE);
	/* newly active pairs may have frames waiting and no edge to come */
	for (unsigned p = old; p < k; p++) {
		uint64_t one = 1;
		(void)!write(n->pair[p]->kickfd, &one, sizeof(one));
	}
	return 0;
}

static void filter_reset(struct vnet *n)
{
	pthread_mutex_lock(&n->filter_lock);
	memset(&n->filter, 0, sizeof(n->filter));
	/* promiscuous until the driver says otherwise, as QEMU does: a driver
	 * that negotiates CTRL_RX but never sends RX_MODE still gets frames */
	n->filter.promisc = true;
	memcpy(n->filter.mac, n->mac, 6);
	__atomic_store_n(&n->filter_on, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&n->filter_lock);
}

static int set_features(void *dev, uint64_t f)
{
	struct vnet *n = dev;
	if (!deps_ok(f))
		return -EINVAL;
	if (n->tap) {
		int sz = VNET_HDR_LEN;
		if (ioctl(n->pair[0]->fd, TUNSETVNETHDRSZ, &sz) < 0)
			return -errno;
	}
	int rc = tap_offload(n, f);
	if (!rc)
		vnet_vhost_features(n, f);
	return rc;
}

static void reset(void *dev)
{
	struct vnet *n = dev;
	/* every queue lock is held: the rings come back before anything else */
	vnet_vhost_reset_locked(n);
	pthread_mutex_lock(&n->inj_lock);
	n->inj_len = 0; /* a reply to the old driver's request */
	pthread_mutex_unlock(&n->inj_lock);
	(void)tap_offload(n, 0);
	pthread_mutex_lock(&n->ctrl_lock);
	int rc = set_pairs(n, 1);
	if (rc && !n->reset_err_logged) {
		/* a detach that fails leaves frames steered to an unused queue:
		 * they are lost, the device still works */
		fprintf(stderr, "kvmlab-vm: virtio-net: TUNSETQUEUE on reset: %s "
			"(logged once)\n", strerror(-rc));
		n->reset_err_logged = true;
	}
	pthread_mutex_unlock(&n->ctrl_lock);
	filter_reset(n);
}

/* The control queue's index: 2N with MQ (N = max pairs), else 2 (5.1.2). */
static unsigned ctrl_index(const struct vnet *n)
{
	return vpci_has(&n->vpci, VIRTIO_NET_F_MQ) ? 2 * n->max_pairs : 2;
}

static void ctrl_drain(struct vnet *n);

static void notify(void *dev, unsigned q)
{
	struct vnet *n = dev;
	if (vpci_has(&n->vpci, VIRTIO_NET_F_CTRL_VQ) && q == ctrl_index(n)) {
		ctrl_drain(n);
		return;
	}
	if (q >= 2 * n->max_pairs)
		return;
	/* data-path work belongs to the pair's I/O thread, not the caller's
	 * (a vCPU, or the transport's ioeventfd thread) */
	uint64_t one = 1;
	(void)!write(n->pair[q / 2]->kickfd, &one, sizeof(one));
}

static void driver_ok(void *dev)
{
	vnet_vhost_driver_ok(dev);
}

static void set_call(void *dev, unsigned q, int fd)
{
	vnet_vhost_set_call(dev, q, fd);
}

static const struct vpci_ops vnet_ops = {
	.cfg_read = cfg_read, .cfg_write = cfg_write, .notify = notify,
	.set_features = set_features, .reset = reset, .driver_ok = driver_ok,
	.set_call = set_call,
};

/* ---- control queue (5.1.6.5): every byte is the guest's ---- */

/* Read len bytes of command data at off (past the 2-byte header). */
static bool ctrl_get(const struct vq_chain *c, uint64_t off, void *dst, size_t len)
{
	return vq_iov_read(c->iov, c->nr_out, 2 + off, dst, len) == len;
}

static uint8_t ctrl_rx_mode(struct vnet *n, uint8_t cmd, const struct vq_chain *c, uint64_t dlen)
{
	uint8_t on;
	/* ALLUNI..NOBCAST need CTRL_RX_EXTRA, which we do not offer */
	if (!vpci_has(&n->vpci, VIRTIO_NET_F_CTRL_RX) || dlen != 1 ||
	    (cmd != VIRTIO_NET_CTRL_RX_PROMISC && cmd != VIRTIO_NET_CTRL_RX_ALLMULTI) ||
	    !ctrl_get(c, 0, &on, 1))
		return VIRTIO_NET_ERR;
	pthread_mutex_lock(&n->filter_lock);
	if (cmd == VIRTIO_NET_CTRL_RX_PROMISC)
		n->filter.promisc = on != 0;
	else
		n->filter.allmulti = on != 0;
	__atomic_store_n(&n->filter_on, !n->filter.promisc, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&n->filter_lock);
	return VIRTIO_NET_OK;
}

/* MAC_TABLE_SET: two tables (unicast, then multicast), each a le32 count
 * and count * 6 bytes, and nothing after them. The count is the guest's:
 * it must fit in the bytes actually sent. */
static uint8_t ctrl_mac_table(struct vnet *n, const struct vq_chain *c, uint64_t dlen)
{
	struct { unsigned n; bool over; uint8_t mac[VNET_MAC_TABLE][6]; } t[2];
	uint64_t off = 0;

	if (!vpci_has(&n->vpci, VIRTIO_NET_F_CTRL_RX))
		return VIRTIO_NET_ERR;
	for (unsigned i = 0; i < 2; i++) {
		uint32_t cnt;
		if (dlen - off < 4 || !ctrl_get(c, off, &cnt, 4))
			return VIRTIO_NET_ERR;
		off += 4;
		if (cnt > (dlen - off) / 6)
			return VIRTIO_NET_ERR;
		t[i].n = cnt < VNET_MAC_TABLE ? cnt : VNET_MAC_TABLE;
		t[i].over = cnt > VNET_MAC_TABLE;
		if (!ctrl_get(c, off, t[i].mac, (size_t)t[i].n * 6))
			return VIRTIO_NET_ERR;
		off += (uint64_t)cnt * 6;
	}
	if (off != dlen)
		return VIRTIO_NET_ERR;
	pthread_mutex_lock(&n->filter_lock);
	n->filter.nuni = t[0].n;
	n->filter.uni_overflow = t[0].over;
	memcpy(n->filter.uni, t[0].mac, sizeof(t[0].mac));
	n->filter.nmulti = t[1].n;
	n->filter.multi_overflow = t[1].over;
	memcpy(n->filter.multi, t[1].mac, sizeof(t[1].mac));
	pthread_mutex_unlock(&n->filter_lock);
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mac(struct vnet *n, uint8_t cmd, const struct vq_chain *c, uint64_t dlen)
{
	if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET)
		return ctrl_mac_table(n, c, dlen);
	uint8_t mac[6];
	if (cmd != VIRTIO_NET_CTRL_MAC_ADDR_SET || dlen != 6 ||
	    !vpci_has(&n->vpci, VIRTIO_NET_F_CTRL_MAC_ADDR) || !ctrl_get(c, 0, mac, 6) ||
	    (mac[0] & 1))  /* a NIC's own address is never a group address */
		return VIRTIO_NET_ERR;
	pthread_mutex_lock(&n->filter_lock);
	memcpy(n->filter.mac, mac, 6);
	pthread_mutex_unlock(&n->filter_lock);
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mq(struct vnet *n, uint8_t cmd, const struct vq_chain *c, uint64_t dlen)
{
	uint16_t k;
	/* RSS_CONFIG / HASH_CONFIG need features we do not offer */
	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || dlen != 2 ||
	    !vpci_has(&n->vpci, VIRTIO_NET_F_MQ) || !ctrl_get(c, 0, &k, 2))
		return VIRTIO_NET_ERR;
	/* the guest's pair count indexes our pair array: 1..max only */
	if (k < 1 || k > n->max_pairs)
		return VIRTIO_NET_ERR;
	pthread_mutex_lock(&n->ctrl_lock);
	int rc = set_pairs(n, k);
	pthread_mutex_unlock(&n->ctrl_lock);
	return rc ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
}

/* One command: header {class, cmd}, data (device-readable), then an ack
 * byte (device-writable). Returns the used length: 1 with an ack, 0 for
 * a chain without room for one. */
static uint32_t ctrl_one(void *dev, const struct vq_chain *c)
{
	struct vnet *n = dev;
	uint8_t hdr[2], ack = VIRTIO_NET_ERR;

	if (c->nr_in == 0 || c->in_len < 1) {
		__atomic_add_fetch(&n->stats_ctrl_err, 1, __ATOMIC_RELAXED);
		return 0;
	}
	/* out_len is the guest's sum of up to 256 descriptor lengths: a
	 * longer command than any we know is refused before we walk it */
	if (c->out_len >= 2 && c->out_len <= VNET_CTRL_MAX &&
	    vq_iov_read(c->iov, c->nr_out, 0, hdr, 2) == 2) {
		uint64_t dlen = c->out_len - 2;
		switch (hdr[0]) {
		case VIRTIO_NET_CTRL_RX: ack = ctrl_rx_mode(n, hdr[1], c, dlen); break;
		case VIRTIO_NET_CTRL_MAC: ack = ctrl_mac(n, hdr[1], c, dlen); break;
		case VIRTIO_NET_CTRL_MQ: ack = ctrl_mq(n, hdr[1], c, dlen); break;
		default: break; /* VLAN, ANNOUNCE, GUEST_OFFLOADS, ...: not offered */
		}
	}
	__atomic_add_fetch(ack == VIRTIO_NET_OK ? &n->stats_ctrl_ok : &n->stats_ctrl_err, 1,
			   __ATOMIC_RELAXED);
	(void)vq_iov_write(c->iov + c->nr_out, c->nr_in, 0, &ack, 1);
	return 1;
}

static void ctrl_drain(struct vnet *n)
{
	vpci_drain(&n->vpci, ctrl_index(n), ctrl_one);
}

/* ---- data path ---- */

/* Is a frame for this destination wanted (5.1.6.5.1-2)? Broadcast always
 * is; unicast is filtered only when the driver can tell us its address
 * (CTRL_MAC_ADDR): without it, a Linux guest changes its MAC silently. */
static bool rx_wanted(struct vnet *n, const uint8_t dst[6])
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	if (!__atomic_load_n(&n->filter_on, __ATOMIC_RELAXED) || !memcmp(dst, bcast, 6))
		return true;
	bool ok = false, multi = dst[0] & 1;
	pthread_mutex_lock(&n->filter_lock);
	const struct vnet_filter *f = &n->filter;
	if (multi) {
		ok = f->allmulti || f->multi_overflow;
		for (unsigned i = 0; !ok && i < f->nmulti; i++)
			ok = !memcmp(f->multi[i], dst, 6);
	} else {
		ok = !vpci_has(&n->vpci, VIRTIO_NET_F_CTRL_MAC_ADDR) || f->uni_overflow ||
		     !memcmp(f->mac, dst, 6);
		for (unsigned i = 0; !ok && i < f->nuni; i++)
			ok = !memcmp(f->uni[i], dst, 6);
	}
	pthread_mutex_unlock(&n->filter_lock);
	return ok;
}

/* One tx chain: a header plus a frame, device-readable only. Anything
 * else is dropped; the buffer goes back either way, with nothing written.
 * A per-frame filter (one that may consume the frame) goes right before
 * the writev. */
/* Could the frame in c be a DHCP request (untagged IPv4, UDP to port 67,
 * first fragment)? A peek at the headers only: every other frame goes to
 * the tap straight from guest memory, uncopied. */
static bool maybe_dhcp(const struct vq_chain *c)
{
	uint8_t h[VNET_HDR_LEN + 14 + 60 + 4];
	size_t got = vq_iov_read(c->iov, c->nr_out, 0, h, sizeof(h));
	const uint8_t *e = h + VNET_HDR_LEN, *ip = e + 14;
	if (got < VNET_HDR_LEN + 14 + 20 + 4 || e[12] != 0x08 || e[13] != 0x00 || ip[9] != 17 ||
	    ((ip[6] & 0x1f) | ip[7]))
		return false;
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;
	/* a bogus IHL is the filter's to refuse: show it the frame */
	if (ihl < 20 || VNET_HDR_LEN + 14 + ihl + 4 > got)
		return true;
	return ip[ihl + 2] == 0 && ip[ihl + 3] == 67;
}

/* The frame goes to the filter instead of the tap? Then it is consumed,
 * and a reply waits for pair 0's rx queue. */
static bool tx_filtered(struct vnet *n, struct vnet_pair *pr, const struct vq_chain *c)
{
	if (!n->tx_filter || c->out_len - VNET_HDR_LEN > VNET_FILTER_MAX || !maybe_dhcp(c))
		return false;
	/* one copy, judged and then sent as judged: the guest may change its
	 * buffer meanwhile, but not what the filter saw */
	size_t fl = (size_t)c->out_len - VNET_HDR_LEN, rl = sizeof(pr->filt_reply);
	(void)vq_iov_read(c->iov, c->nr_out, 0, pr->filt_frame, (size_t)c->out_len);
	if (!n->tx_filter(n->tx_filter_opaque, pr->filt_frame + VNET_HDR_LEN, fl,
			  pr->filt_reply, &rl)) {
		ssize_t w;
		do
			w = write(pr->fd, pr->filt_frame, (size_t)c->out_len);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			__atomic_add_fetch(&n->stats_tx_drop, 1, __ATOMIC_RELAXED);
		return true;
	}
	if (rl && rl <= sizeof(pr->filt_reply)) {
		pthread_mutex_lock(&n->inj_lock);
		memcpy(n->inj, pr->filt_reply, rl);
		n->inj_len = rl;
		pthread_mutex_unlock(&n->inj_lock);
		/* pair 0's thread delivers it (its rx queue, its lock) */
		uint64_t one = 1;
		(void)!write(n->pair[0]->kickfd, &one, sizeof(one));
	}
	return true;
}

static uint32_t tx_one(struct vnet *n, struct vnet_pair *pr, const struct vq_chain *c)
{
	/* the guest picks out_len (up to 256 segments of 4 GiB): nothing
	 * longer than a 64 KiB GSO frame is a frame, so spare the tap the copy */
	if (c->nr_in || c->out_len < VNET_HDR_LEN || c->out_len > TX_MAX) {
		__atomic_add_fetch(&n->stats_tx_drop, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (tx_filtered(n, pr, c))
		return 0;
	ssize_t w;
	do
		w = writev(pr->fd, c->iov, (int)c->nr_out);
	while (w < 0 && errno == EINTR);
	/* a full or unhappy tap (it also refuses GSO/checksum fields that do
	 * not fit the frame) drops the frame, as a wire would */
	if (w < 0) {
		__atomic_add_fetch(&n->stats_tx_drop, 1, __ATOMIC_RELAXED);
		if (!n->tx_err_logged && errno != EAGAIN && errno != ENOBUFS) {
			fprintf(stderr, "kvmlab-vm: virtio-net: tap write: %s "
				"(frame dropped; logged once)\n", strerror(errno));
			n->tx_err_logged = true;
		}
	} else {
		pr->tx_frames++;
	}
	return 0;
}

void vnet_tx(struct vnet *n, unsigned p)
{
	if (p >= n->max_pairs)
		return;
	struct vnet_pair *pr = n->pair[p];
	struct vpci_queue *pq = &n->vpci.q[TXQ(p)];
	struct vq_chain tc;
	bool pushed = false;

	pthread_mutex_lock(&pq->lock);
	/* rings handed to vhost are not ours to touch (checked under the lock
	 * that the hand-over holds) */
	for (; !__atomic_load_n(&pr->vhost, __ATOMIC_ACQUIRE);) {
		int rc = vq_pop(&pq->vq, &tc);
		if (rc < 0)
			vpci_set_needs_reset(&n->vpci);
		if (rc <= 0)
			break;
		vq_push(&pq->vq, tc.head, tx_one(n, pr, &tc));
		pushed = true;
	}
	if (pushed && vq_should_signal(&pq->vq))
		vpci_signal(&n->vpci, TXQ(p));
	pthread_mutex_unlock(&pq->lock);
}

/* The i-th chain held for the next frame (rx_first.., circular). */
static struct vq_chain *held(struct vnet_pair *pr, unsigned i)
{
	return &pr->rxc[(pr->rx_first + i) % VNET_RX_CHAINS];
}

/* Receive one frame. 1: delivered (or dropped) one; 0: stop (fd empty or
 * no room). Called with the rx lock held. Chains popped and not used stay
 * held (pr->rx_held) for the next frame; vnet_rx gives them back before
 * it lets go of the lock. */
static int rx_one(struct vnet *n, struct vnet_pair *pr, struct vq *q, bool *pushed)
{
	bool mrg = vpci_has(&n->vpci, VIRTIO_NET_F_MRG_RXBUF);
	bool gso = vpci_has(&n->vpci, VIRTIO_NET_F_GUEST_TSO4) ||
		   vpci_has(&n->vpci, VIRTIO_NET_F_GUEST_TSO6);
	uint64_t need = gso ? RX_NEED_GSO : RX_NEED_MTU;
	unsigned nc = 0, niov = 0;
	uint64_t room = 0;
	bool cut = false;

	/* what the last frame left: checked when popped, in ring order */
	for (; nc < pr->rx_held; nc++) {
		struct vq_chain *c = held(pr, nc);
		memcpy(pr->riov + niov, c->iov, c->nr_in * sizeof(struct iovec));
		niov += c->nr_in;
		room += c->in_len;
	}
	for (;;) {
		/* gather chains until one frame surely fits: one chain without
		 * MRG_RXBUF, as many as it takes with it */
		while (nc < VNET_RX_CHAINS && (nc == 0 || (mrg && room < need))) {
			struct vq_chain *c = held(pr, nc);
			int rc = vq_pop(q, c);
			if (rc < 0) {
				vpci_set_needs_reset(&n->vpci);
				pr->rx_held = nc;
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
				/* unusable buffer: hand it back empty (nothing
				 * is held, so the used ring stays in order) */
				vq_push(q, c->head, 0);
				*pushed = true;
				continue;
			}
			memcpy(pr->riov + niov, c->iov, c->nr_in * sizeof(struct iovec));
			niov += c->nr_in;
			room += c->in_len;
			nc++;
		}
		pr->rx_held = nc;
		/* a small ring may never hold `need` bytes: its every buffer is
		 * as good as it gets */
		if (nc > 0 && (!mrg || cut || room >= need || nc == VNET_RX_CHAINS ||
			       nc >= q->size || niov == VNET_RX_IOVS))
			break;
		/* not enough room yet: give the chains back and ask for a kick
		 * when the driver adds more (in this order: vq_unpop moves
		 * avail_event back to them, which would ask for no kick at
		 * all); gather again if the driver already added some */
		vq_unpop(q, (uint16_t)nc);
		pr->rx_held = 0;
		nc = niov = 0;
		room = 0;
		if (!vq_arm(q))
			return 0;
	}

	ssize_t r = -1;
	if (n->tx_filter && pr == n->pair[0]) {
		/* a filter reply first, as if the fd had delivered it: a zeroed
		 * header (no GSO, checksums complete), then the frame */
		static const uint8_t hdr[VNET_HDR_LEN];
		pthread_mutex_lock(&n->inj_lock);
		if (n->inj_len) {
			(void)vq_iov_write(pr->riov, niov, 0, hdr, sizeof(hdr));
			(void)vq_iov_write(pr->riov, niov, VNET_HDR_LEN, n->inj, n->inj_len);
			r = (ssize_t)(VNET_HDR_LEN + n->inj_len);
			n->inj_len = 0;
		}
		pthread_mutex_unlock(&n->inj_lock);
	}
	if (r < 0) {
		do
			r = readv(pr->fd, pr->riov, (int)niov);
		while (r < 0 && errno == EINTR);
	}
	if (r < VNET_HDR_LEN) {
		/* the chains stay held */
		if (r >= 0) {
			/* runt datagram: consumed, dropped */
			__atomic_add_fetch(&n->stats_rx_drop, 1, __ATOMIC_RELAXED);
			return 1;
		}
		return 0; /* EAGAIN: drained; other errors: nothing to do */
	}
	/* the buffers were written but not published: a filtered frame just
	 * leaves them held for the next one */
	uint8_t dst[6];
	if (vq_iov_read(pr->riov, niov, VNET_HDR_LEN, dst, 6) == 6 && !rx_wanted(n, dst)) {
		__atomic_add_fetch(&n->stats_rx_filtered, 1, __ATOMIC_RELAXED);
		return 1;
	}
	/* split the frame over the chains in order; each used length is
	 * capped by its own chain's room, whatever r says: the guest must
	 * never be told of bytes past its buffers */
	uint64_t left = (uint64_t)r;
	uint16_t used = 0;
	while (left && used < nc) {
		uint64_t k = held(pr, used)->in_len < left ? held(pr, used)->in_len : left;
		left -= k;
		used++;
	}
	/* num_buffers sits at byte 10 of the header, in the first chain,
	 * whose in_len >= VNET_HDR_LEN was checked when it was gathered */
	struct vq_chain *first = held(pr, 0);
	(void)vq_iov_write(first->iov, first->nr_in, 10, &used, sizeof(used));
	left = (uint64_t)r;
	for (uint16_t i = 0; i < used; i++) {
		uint64_t k = held(pr, i)->in_len < left ? held(pr, i)->in_len : left;
		vq_fill(q, i, held(pr, i)->head, (uint32_t)k);
		left -= k;
	}
	/* one used->idx store for the whole frame: Linux, on seeing its first
	 * buffer, takes the other num_buffers - 1 at once and drops the frame
	 * (rx_length_errors) if they are not all published yet */
	vq_flush(q, used);
	pr->rx_first = (pr->rx_first + used) % VNET_RX_CHAINS;
	pr->rx_held = nc - used;
	pr->rx_frames++;
	*pushed = true;
	return 1;
}

void vnet_rx(struct vnet *n, unsigned p)
{
	if (p >= n->max_pairs)
		return;
	struct vnet_pair *pr = n->pair[p];
	struct vpci_queue *pq = &n->vpci.q[RXQ(p)];
	bool pushed = false;

	pthread_mutex_lock(&pq->lock);
	/* drain completely: the tap is edge-triggered, so frames left behind
	 * would wait for the next frame or kick; let the guest start on a
	 * long burst early by signalling every so often */
	for (unsigned i = 1; !__atomic_load_n(&pr->vhost, __ATOMIC_ACQUIRE) &&
			     rx_one(n, pr, &pq->vq, &pushed); i++) {
		if (i % 64 == 0 && pushed && vq_should_signal(&pq->vq)) {
			vpci_signal(&n->vpci, RXQ(p));
			pushed = false;
		}
	}
	/* held chains go back before the lock does: a reset, a vhost
	 * hand-over or the next drain starts from the ring alone. (Only if
	 * any: vq_unpop also moves avail_event, over what vq_arm set.) */
	if (pr->rx_held)
		vq_unpop(&pq->vq, (uint16_t)pr->rx_held);
	pr->rx_first = pr->rx_held = 0;
	if (pushed && vq_should_signal(&pq->vq))
		vpci_signal(&n->vpci, RXQ(p));
	pthread_mutex_unlock(&pq->lock);
}

int vnet_pair_kickfd(const struct vnet *n, unsigned p)
{
	return p < n->max_pairs ? n->pair[p]->kickfd : -1;
}

void vnet_pair_run(struct vnet *n, unsigned p)
{
	if (p >= n->max_pairs)
		return;
	uint64_t cnt;
	(void)!read(n->pair[p]->kickfd, &cnt, sizeof(cnt));
	if (vnet_vhost_pair_poll(n, p))
		return; /* the kernel serves this pair */
	/* an inactive pair's queues belong to nobody (its tap queue is
	 * detached); set_pairs kicks it when it becomes active */
	if (p >= vnet_cur_pairs(n))
		return;
	vnet_tx(n, p);
	vnet_rx(n, p);
}

static const char *const qnames[VPCI_MAX_QUEUES] = {
	"net rx0", "net tx0", "net rx1", "net tx1", "net rx2", "net tx2",
	"net rx3", "net tx3", "net rx4", "net tx4", "net rx5", "net tx5",
	"net rx6", "net tx6", "net rx7", "net tx7", "net ctrl",
};

/* The pairs vnet_init made (all, or as far as it got) and the locks. */
static void pairs_free(struct vnet *n)
{
	for (unsigned p = 0; p < n->max_pairs; p++) {
		if (n->pair[p] && n->pair[p]->kickfd >= 0)
			close(n->pair[p]->kickfd);
		free(n->pair[p]);
		n->pair[p] = NULL;
	}
	pthread_mutex_destroy(&n->filter_lock);
	pthread_mutex_destroy(&n->inj_lock);
	pthread_mutex_destroy(&n->ctrl_lock);
}

int vnet_init(struct vnet *n, const int *fds, unsigned pairs, bool tap, const uint8_t mac[6],
	      const struct gmem *gm, const struct dev_irq_ops *irq)
{
	int rc;

	if (pairs < 1 || pairs > VNET_MAX_PAIRS || 2 * pairs + 1 > VPCI_MAX_QUEUES)
		return -EINVAL;
	memset(n, 0, sizeof(*n));
	n->tap = tap;
	n->max_pairs = pairs;
	n->cur_pairs = pairs; /* set_pairs below brings it to 1 */
	memcpy(n->mac, mac, 6);
	pthread_mutex_init(&n->ctrl_lock, NULL);
	pthread_mutex_init(&n->filter_lock, NULL);
	pthread_mutex_init(&n->inj_lock, NULL);
	filter_reset(n);
	for (unsigned p = 0; p < pairs; p++) {
		int fl = fcntl(fds[p], F_GETFL);
		if (fl < 0 || fcntl(fds[p], F_SETFL, fl | O_NONBLOCK) < 0) {
			rc = -errno;
			goto err_pairs;
		}
		struct vnet_pair *pr = calloc(1, sizeof(*pr));
		if (!pr) {
			rc = -ENOMEM;
			goto err_pairs;
		}
		n->pair[p] = pr;
		pr->fd = fds[p];
		pr->vh.fd = -1;
		/* a freshly opened tap queue is attached; one a previous boot
		 * of this VM detached (set_pairs) is attached again here.
		 * EINVAL: attached already, or a single-queue tap */
		pr->attached = true;
		if (tap && p) {
			struct ifreq ifr;
			memset(&ifr, 0, sizeof(ifr));
			ifr.ifr_flags = IFF_ATTACH_QUEUE;
			(void)ioctl(pr->fd, TUNSETQUEUE, &ifr);
		}
		pr->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (pr->kickfd < 0) {
			rc = -errno;
			goto err_pairs;
		}
	}
	rc = vpci_init(&n->vpci, VIRTIO_ID_NET, 0x020000, vnet_features(pairs), 2 * pairs + 1,
		       256, CFG_SIZE, &vnet_ops, n, gm, irq);
	if (rc)
		goto err_pairs;
	for (unsigned i = 0; i < 2 * pairs + 1; i++)
		n->vpci.q[i].vq.name = i == 2 * pairs ? "net ctrl" : qnames[i];
	/* the driver starts with one pair (5.1.6.5.5) */
	rc = set_pairs(n, 1);
	if (rc)
		goto err_vpci;
	return 0;
err_vpci:
	vpci_destroy(&n->vpci);
err_pairs:
	pairs_free(n);
	return rc;
}

void vnet_destroy(struct vnet *n)
{
	vnet_vhost_close(n);
	vpci_destroy(&n->vpci);
	pairs_free(n);
}

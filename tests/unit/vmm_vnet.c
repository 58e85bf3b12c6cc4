/* virtio-net tx/rx against a datagram socketpair standing in for the tap:
 * each datagram is a 12-byte virtio_net_hdr_v1 plus a frame. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "t.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))
#define BASEF (B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_STATUS))

static struct td d;
static struct vnet *n;
static int sv[2];

/* A kick only wakes the pair's I/O thread (its eventfd): run it here. */
static void kick(unsigned q)
{
	td_kick(&d, q);
	vnet_pair_run(n, q / 2);
}

static ssize_t peer_recv(void *buf, size_t len)
{
	return recv(sv[1], buf, len, MSG_DONTWAIT);
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

int main(void)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
	uint8_t pkt[4096], got[4096];
	uint32_t id, len;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	td_mem_init(&d);
	n = calloc(1, sizeof(*n));
	CHECK_EQ(vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq), 0, "vnet init");
	d.v = &n->vpci;

	/* config space */
	uint64_t cfg = td_rd(&d, VPCI_DEVCFG_OFF, 8);
	CHECK(memcmp(&cfg, mac, 6) == 0, "config mac");
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 6, 2), VIRTIO_NET_S_LINK_UP, "link up");
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 8, 2), 1, "one queue pair");

	/* feature dependencies */
	CHECK(!(td_negotiate(&d, BASEF | B(VIRTIO_NET_F_GUEST_TSO4)) & VIRTIO_CONFIG_S_FEATURES_OK),
	      "GUEST_TSO4 without GUEST_CSUM refused");
	CHECK(!(td_negotiate(&d, BASEF | B(VIRTIO_NET_F_HOST_TSO6)) & VIRTIO_CONFIG_S_FEATURES_OK),
	      "HOST_TSO6 without CSUM refused");
	CHECK(!(td_negotiate(&d, BASEF | B(VIRTIO_NET_F_MQ) | B(VIRTIO_NET_F_CTRL_VQ)) &
		VIRTIO_CONFIG_S_FEATURES_OK), "MQ not offered with one pair: refused");
	CHECK(!(td_negotiate(&d, BASEF | B(VIRTIO_NET_F_CTRL_RX)) & VIRTIO_CONFIG_S_FEATURES_OK),
	      "CTRL_RX without CTRL_VQ refused");
	CHECK(td_negotiate(&d, vnet_features(1)) & VIRTIO_CONFIG_S_FEATURES_OK, "all offered features accepted");

	/* ---- without MRG_RXBUF ---- */
	td_up(&d, BASEF | B(VIRTIO_RING_F_EVENT_IDX), 2, 1);

	/* TX: header and frame in separate descriptors */
	uint8_t *m = d.mem;
	memset(m + TD_BUF, 0, 12);
	m[TD_BUF] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	fill(m + TD_BUF + 0x100, 300, 1);
	struct td_seg tx[2] = { { TD_BUF, 12, 0 }, { TD_BUF + 0x100, 300, 0 } };
	td_add(&d, 1, tx, 2);
	int msi0 = d.msi_count;
	kick(1);
	ssize_t r = peer_recv(got, sizeof(got));
	CHECK_EQ(r, 312, "tx: one datagram of header + frame");
	CHECK(r == 312 && got[0] == VIRTIO_NET_HDR_F_NEEDS_CSUM && memcmp(got + 12, m + TD_BUF + 0x100, 300) == 0,
	      "tx: bytes on the wire are the guest's");
	CHECK(td_used(&d, 1, &id, &len) == 1 && id == 0 && len == 0, "tx: chain returned, len 0");
	CHECK(d.msi_count == msi0 + 1 && d.last_data == 0x41, "tx: interrupt on the tx vector");

	/* TX runt and wrong direction: dropped, buffer still returned */
	struct td_seg runt = { TD_BUF, 8, 0 };
	td_add(&d, 1, &runt, 1);
	struct td_seg wr[2] = { { TD_BUF, 12, 0 }, { TD_BUF + 0x100, 64, 1 } };
	td_add(&d, 1, wr, 2);
	kick(1);
	CHECK(peer_recv(got, sizeof(got)) < 0 && errno == EAGAIN, "tx: malformed chains send nothing");
	CHECK(td_used(&d, 1, &id, &len) == 1 && td_used(&d, 1, &id, &len) == 1, "tx: malformed chains returned");
	CHECK_EQ(n->stats_tx_drop, 2, "tx: drops counted");

	/* RX: a frame waits until the guest posts a buffer */
	fill(pkt, 112, 9);
	memset(pkt, 0, 12);
	pkt[0] = 0; /* flags */
	CHECK_EQ(send(sv[1], pkt, 112, 0), 112, "peer sends a frame");
	vnet_rx(n, 0);
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "rx: no buffers, nothing delivered");
	struct td_seg rb = { TD_BUF + 0x1000, 2048, 1 };
	memset(m + TD_BUF + 0x1000, 0xee, 2048);
	msi0 = d.msi_count;
	td_add(&d, 0, &rb, 1);
	kick(0); /* the rx kick drains the waiting frame */
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 112, "rx: frame delivered on the kick (len %u)", len);
	uint16_t nb;
	memcpy(&nb, m + TD_BUF + 0x1000 + 10, 2);
	CHECK_EQ(nb, 1, "rx: num_buffers 1");
	CHECK(memcmp(m + TD_BUF + 0x1000 + 12, pkt + 12, 100) == 0, "rx: frame bytes intact");
	CHECK_EQ(m[TD_BUF + 0x1000 + 112], 0xee, "rx: nothing written past the frame");
	CHECK(d.msi_count == msi0 + 1 && d.last_data == 0x40, "rx: interrupt on the rx vector");

	/* RX: runt datagram is dropped without using a buffer */
	td_add(&d, 0, &rb, 1);
	CHECK_EQ(send(sv[1], pkt, 5, 0), 5, "peer sends a runt");
	vnet_rx(n, 0);
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "rx: runt uses no buffer");
	CHECK_EQ(n->stats_rx_drop, 1, "rx: runt counted");

	/* RX: a buffer with a readable descriptor is returned empty */
	struct td_seg bad[2] = { { TD_BUF, 12, 0 }, { TD_BUF + 0x2000, 2048, 1 } };
	td_add(&d, 0, bad, 2);
	CHECK_EQ(send(sv[1], pkt, 112, 0), 112, "peer sends again");
	vnet_rx(n, 0);
	/* the good buffer posted above takes the frame; the bad one comes back empty */
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 112, "rx: frame into the good buffer");
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 0, "rx: readable rx buffer returned empty");

	/* ---- MRG_RXBUF ---- */
	td_up(&d, BASEF | B(VIRTIO_NET_F_MRG_RXBUF), 2, 1);
	struct td_seg mb = { TD_BUF + 0x3000, 1000, 1 };
	td_add(&d, 0, &mb, 1);
	fill(pkt, 1512, 3);
	memset(pkt, 0, 12);
	CHECK_EQ(send(sv[1], pkt, 1512, 0), 1512, "peer sends a full-MTU frame");
	vnet_rx(n, 0);
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "mrg: 1000 bytes of room is not enough, frame waits");
	struct td_seg mb2 = { TD_BUF + 0x4000, 1000, 1 };
	struct td_seg mb3 = { TD_BUF + 0x5000, 1000, 1 };
	td_add(&d, 0, &mb2, 1);
	td_add(&d, 0, &mb3, 1);
	kick(0);
	uint32_t id2 = 0, len2 = 0;
	CHECK(td_used(&d, 0, &id, &len) == 1 && td_used(&d, 0, &id2, &len2) == 1 &&
	      len == 1000 && len2 == 512, "mrg: frame spans two buffers (%u + %u)", len, len2);
	memcpy(&nb, m + TD_BUF + 0x3000 + 10, 2);
	CHECK_EQ(nb, 2, "mrg: num_buffers 2");
	CHECK(memcmp(m + TD_BUF + 0x3000 + 12, pkt + 12, 988) == 0 &&
	      memcmp(m + TD_BUF + 0x4000, pkt + 1000, 512) == 0, "mrg: bytes split in order");
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "mrg: third buffer left for the next frame");
	CHECK_EQ(send(sv[1], pkt, 60, 0), 60, "peer sends a small frame");
	struct td_seg mb4 = { TD_BUF + 0x6000, 1000, 1 };
	td_add(&d, 0, &mb4, 1);
	kick(0);
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 60 && id == 2, "mrg: next frame into the next buffer in order");

	/* a broken tx ring sets NEEDS_RESET, and reset recovers */
	struct td_seg oob = { 0xfffffffffffff000ull, 4096, 0 };
	td_add(&d, 1, &oob, 1);
	kick(1);
	CHECK(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET, "tx: buffer outside RAM -> NEEDS_RESET");
	CHECK(peer_recv(got, sizeof(got)) < 0, "tx: nothing sent from a broken ring");
	td_up(&d, BASEF, 2, 1);
	td_add(&d, 1, tx, 2);
	kick(1);
	CHECK_EQ(peer_recv(got, sizeof(got)), 312, "tx works again after reset");

	/* MRG_RXBUF on a 2-entry ring: the full ring is as much room as
	 * there will ever be, so a frame goes out over both buffers */
	td_negotiate(&d, BASEF | B(VIRTIO_NET_F_MRG_RXBUF));
	CHECK(td_queue(&d, 0, 2) == 1 && td_queue(&d, 1, 2) == 1, "tiny rings enabled");
	td_driver_ok(&d);
	td_add(&d, 0, &mb, 1);
	td_add(&d, 0, &mb2, 1);
	CHECK_EQ(send(sv[1], pkt, 1512, 0), 1512, "peer sends a full-MTU frame");
	kick(0);
	CHECK(td_used(&d, 0, &id, &len) == 1 && td_used(&d, 0, &id2, &len2) == 1 &&
	      len == 1000 && len2 == 512, "tiny ring: frame spans both buffers");

	vnet_destroy(n);
	free(n);
	free(d.mem);
	close(sv[0]);
	close(sv[1]);
	return t_done();
}

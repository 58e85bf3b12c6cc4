/* Multiqueue virtio-net and its control queue, against datagram
 * socketpairs standing in for the tap queues: VQ_PAIRS_SET (good, bad
 * pair counts, without MQ), RX_MODE and the MAC filter, MAC_ADDR_SET,
 * unknown classes, truncated and malformed commands; per-pair rx/tx. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "t.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))
#define PAIRS 3
#define CTRLQ (2 * PAIRS)
#define BASEF (B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_STATUS) | \
	       B(VIRTIO_NET_F_CTRL_VQ))
#define MQF (BASEF | B(VIRTIO_NET_F_MQ) | B(VIRTIO_NET_F_CTRL_RX) | B(VIRTIO_NET_F_CTRL_MAC_ADDR))
#define RXQ_OF(p) (2u * (p))
#define TXQ_OF(p) (2u * (p) + 1)
#define CMD 0x30000u  /* command bytes */
#define ACK 0x38000u  /* ack byte */

static struct td d;
static struct vnet *n;
static int sv[PAIRS][2];

/* Send one control command on queue cq: hdr + data in one readable
 * descriptor (or split after the header), ack in a writable one.
 * Returns the ack byte, or -1 if the chain came back without one. */
static int ctrl_q(unsigned cq, uint8_t cls, uint8_t cmd, const void *data, uint32_t len,
		  bool split)
{
	uint8_t *m = d.mem;
	m[CMD] = cls;
	m[CMD + 1] = cmd;
	memcpy(m + CMD + 2, data, len);
	m[ACK] = 0xee;
	struct td_seg s[3];
	unsigned ns = 0;
	if (split) {
		s[ns++] = (struct td_seg){ CMD, 2, 0 };
		if (len)
			s[ns++] = (struct td_seg){ CMD + 2, len, 0 };
	} else {
		s[ns++] = (struct td_seg){ CMD, 2 + len, 0 };
	}
	s[ns++] = (struct td_seg){ ACK, 1, 1 };
	td_add(&d, cq, s, ns);
	td_kick(&d, cq); /* control commands are served inline */
	uint32_t id, ulen;
	if (td_used(&d, cq, &id, &ulen) != 1)
		return -2;
	return ulen == 1 ? m[ACK] : -1;
}

static int ctrl(uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
	return ctrl_q(CTRLQ, cls, cmd, data, len, false);
}

static int pairs_set(uint16_t k)
{
	return ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2);
}

/* Post one rx buffer on pair p and send frame dst from that pair's peer;
 * returns the used length seen on p's rx queue (0: nothing). */
static uint32_t rx_frame(unsigned p, const uint8_t dst[6], uint64_t buf)
{
	uint8_t pkt[64];
	memset(pkt, 0, sizeof(pkt));
	memcpy(pkt + 12, dst, 6);
	pkt[12 + 12] = 0x08; /* ethertype IPv4, nothing else matters */
	struct td_seg rb = { buf, 2048, 1 };
	td_add(&d, RXQ_OF(p), &rb, 1);
	if (send(sv[p][1], pkt, sizeof(pkt), MSG_DONTWAIT) != (ssize_t)sizeof(pkt))
		return 0;
	vnet_pair_run(n, p);
	uint32_t id, len;
	return td_used(&d, RXQ_OF(p), &id, &len) == 1 ? len : 0;
}

/* The pair threads of devices.c: run every pair until told to stop. */
static int stop_runners;
static void *runner(void *arg)
{
	unsigned p = (unsigned)(uintptr_t)arg;
	while (!__atomic_load_n(&stop_runners, __ATOMIC_RELAXED))
		vnet_pair_run(n, p);
	return NULL;
}

int main(void)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 9, 8, 7 };
	static const uint8_t other[6] = { 0x52, 0x54, 0, 1, 1, 1 };
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0, 0, 1 };
	uint8_t got[256];
	uint32_t id, len;
	int fds[PAIRS];

	for (unsigned p = 0; p < PAIRS; p++) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv[p]))
			return 1;
		fds[p] = sv[p][0];
	}
	td_mem_init(&d);
	n = calloc(1, sizeof(*n));
	CHECK_EQ(vnet_init(n, fds, 0, false, mac, &d.gm, &d.irq), -EINVAL, "0 pairs refused");
	CHECK_EQ(vnet_init(n, fds, VNET_MAX_PAIRS + 1, false, mac, &d.gm, &d.irq), -EINVAL,
		 "%d pairs refused", VNET_MAX_PAIRS + 1);
	CHECK_EQ(vnet_init(n, fds, PAIRS, false, mac, &d.gm, &d.irq), 0, "vnet init, %d pairs", PAIRS);
	d.v = &n->vpci;

	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 8, 2), PAIRS, "config: max_virtqueue_pairs");
	CHECK_EQ(td_rd(&d, 0x12, 2), 2 * PAIRS + 1, "num_queues: 2N + control");
	CHECK(vnet_features(PAIRS) & B(VIRTIO_NET_F_MQ), "MQ offered with %d pairs", PAIRS);
	CHECK(!(vnet_features(1) & B(VIRTIO_NET_F_MQ)) && (vnet_features(1) & B(VIRTIO_NET_F_CTRL_VQ)),
	      "one pair: control queue, no MQ");
	CHECK(!(td_negotiate(&d, (BASEF & ~B(VIRTIO_NET_F_CTRL_VQ)) | B(VIRTIO_NET_F_MQ)) &
		VIRTIO_CONFIG_S_FEATURES_OK), "MQ without CTRL_VQ refused");
	CHECK(!(td_negotiate(&d, (BASEF & ~B(VIRTIO_NET_F_CTRL_VQ)) | B(VIRTIO_NET_F_CTRL_MAC_ADDR)) &
		VIRTIO_CONFIG_S_FEATURES_OK), "CTRL_MAC_ADDR without CTRL_VQ refused");

	/* ---- MQ negotiated: control queue is 2N ---- */
	td_up(&d, MQF, 2 * PAIRS + 1, 0);
	CHECK_EQ(vnet_cur_pairs(n), 1, "one pair active after DRIVER_OK");
	CHECK_EQ(pairs_set(2), VIRTIO_NET_OK, "VQ_PAIRS_SET 2: OK");
	CHECK_EQ(vnet_cur_pairs(n), 2, "two pairs active");
	CHECK_EQ(pairs_set(0), VIRTIO_NET_ERR, "VQ_PAIRS_SET 0: ERR");
	CHECK_EQ(pairs_set(PAIRS + 1), VIRTIO_NET_ERR, "VQ_PAIRS_SET max+1: ERR");
	CHECK_EQ(pairs_set(0xffff), VIRTIO_NET_ERR, "VQ_PAIRS_SET 0xffff: ERR");
	CHECK_EQ(vnet_cur_pairs(n), 2, "bad counts leave two pairs");
	uint8_t three[3] = { 1, 0, 0 };
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, three, 3), VIRTIO_NET_ERR,
		 "VQ_PAIRS_SET with 3 data bytes: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, three, 1), VIRTIO_NET_ERR,
		 "VQ_PAIRS_SET truncated to 1 byte: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, three, 2), VIRTIO_NET_ERR,
		 "RSS_CONFIG (not offered): ERR");
	uint16_t k3 = PAIRS;
	CHECK_EQ(ctrl_q(CTRLQ, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k3, 2, true),
		 VIRTIO_NET_OK, "VQ_PAIRS_SET %d, header and data in separate descriptors: OK", PAIRS);
	CHECK_EQ(vnet_cur_pairs(n), PAIRS, "all pairs active");

	/* per-pair tx: each pair's tx queue goes to its own fd */
	for (unsigned p = 0; p < PAIRS; p++) {
		uint8_t *m = d.mem;
		memset(m + TD_BUF + 0x100 * p, 0, 12);
		memset(m + TD_BUF + 0x100 * p + 12, (int)(0xa0 + p), 50);
		struct td_seg tx = { TD_BUF + 0x100 * p, 62, 0 };
		td_add(&d, TXQ_OF(p), &tx, 1);
		td_kick(&d, TXQ_OF(p));
	}
	for (unsigned p = 0; p < PAIRS; p++) {
		vnet_pair_run(n, p);
		ssize_t r = recv(sv[p][1], got, sizeof(got), MSG_DONTWAIT);
		CHECK(r == 62 && got[12] == 0xa0 + p, "pair %u: tx frame on its own fd (r %zd)", p, r);
		CHECK(td_used(&d, TXQ_OF(p), &id, &len) == 1, "pair %u: tx chain returned", p);
	}
	for (unsigned p = 0; p < PAIRS; p++)
		CHECK(recv(sv[p][1], got, sizeof(got), MSG_DONTWAIT) < 0, "pair %u: nothing else sent", p);

	/* per-pair rx: each fd feeds its own rx queue */
	for (unsigned p = 0; p < PAIRS; p++)
		CHECK_EQ(rx_frame(p, mac, TD_BUF + 0x1000 + 0x1000 * p), 64, "pair %u: rx frame on its queue", p);
	CHECK(n->pair[0]->rx_frames == 1 && n->pair[1]->rx_frames == 1 && n->pair[2]->rx_frames == 1,
	      "per-pair rx counters");

	/* an inactive pair moves nothing; activating it delivers what waited */
	CHECK_EQ(pairs_set(1), VIRTIO_NET_OK, "back to one pair");
	struct td_seg rb = { TD_BUF + 0x8000, 2048, 1 };
	td_add(&d, RXQ_OF(2), &rb, 1);
	uint8_t pkt[64] = { 0 };
	memcpy(pkt + 12, mac, 6);
	CHECK_EQ(send(sv[2][1], pkt, 64, 0), 64, "frame for inactive pair 2");
	vnet_pair_run(n, 2);
	CHECK_EQ(td_used(&d, RXQ_OF(2), &id, &len), 0, "inactive pair: frame not delivered");
	CHECK_EQ(pairs_set(3), VIRTIO_NET_OK, "three pairs again");
	vnet_pair_run(n, 2); /* the event loop sees the kick set_pairs made */
	CHECK(td_used(&d, RXQ_OF(2), &id, &len) == 1 && len == 64, "activated pair delivers the waiting frame");

	/* ---- RX_MODE and the MAC filter ---- */
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0x9000), 64, "promiscuous by default: other MAC delivered");
	uint8_t off = 0, on = 1;
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1), VIRTIO_NET_OK, "PROMISC off: OK");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &off, 1), VIRTIO_NET_OK, "ALLMULTI off: OK");
	uint64_t filt0 = n->stats_rx_filtered;
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0x9000), 0, "filter: other unicast MAC dropped");
	CHECK_EQ(n->stats_rx_filtered, filt0 + 1, "filter: drop counted");
	/* the buffer the filtered frame was read into is still the guest's */
	CHECK_EQ(rx_frame(0, mac, TD_BUF + 0xa000), 64, "filter: own MAC delivered");
	CHECK_EQ(rx_frame(0, bcast, TD_BUF + 0xa000), 64, "filter: broadcast delivered");
	CHECK_EQ(rx_frame(0, mcast, TD_BUF + 0xa000), 0, "filter: multicast not in the table dropped");
	/* MAC_TABLE_SET: 1 unicast entry, 1 multicast entry */
	uint8_t tbl[4 + 6 + 4 + 6];
	uint32_t one = 1;
	memcpy(tbl, &one, 4);
	memcpy(tbl + 4, other, 6);
	memcpy(tbl + 10, &one, 4);
	memcpy(tbl + 14, mcast, 6);
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, sizeof(tbl)), VIRTIO_NET_OK,
		 "MAC_TABLE_SET 1+1: OK");
	CHECK_EQ(rx_frame(0, mcast, TD_BUF + 0xb000), 64, "table: listed multicast delivered");
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0xc000), 64, "table: listed unicast delivered");
	/* hostile tables: a count past the bytes sent, trailing bytes, truncated */
	uint32_t huge = 0x80000000u;
	memcpy(tbl, &huge, 4);
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, sizeof(tbl)), VIRTIO_NET_ERR,
		 "MAC_TABLE_SET count 2^31: ERR");
	memcpy(tbl, &one, 4);
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, sizeof(tbl) - 1), VIRTIO_NET_ERR,
		 "MAC_TABLE_SET one byte short: ERR");
	uint8_t tbl2[sizeof(tbl) + 1];
	memcpy(tbl2, tbl, sizeof(tbl));
	tbl2[sizeof(tbl)] = 0;
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl2, sizeof(tbl2)), VIRTIO_NET_ERR,
		 "MAC_TABLE_SET trailing byte: ERR");
	CHECK_EQ(rx_frame(0, mcast, TD_BUF + 0xb000), 64, "bad tables left the good one in place");
	/* more entries than we keep: that kind is accepted whole */
	static uint8_t bigt[4 + 6 * (VNET_MAC_TABLE + 1) + 4];
	uint32_t cnt = VNET_MAC_TABLE + 1, zero = 0;
	memcpy(bigt, &zero, 4);
	memcpy(bigt + 4, &cnt, 4);
	for (unsigned i = 0; i < cnt; i++) {
		bigt[8 + 6 * i] = 0x01;
		bigt[8 + 6 * i + 5] = (uint8_t)i;
	}
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, bigt, 8 + 6 * cnt), VIRTIO_NET_OK,
		 "MAC_TABLE_SET with %u multicast entries: OK", cnt);
	static const uint8_t mc2[6] = { 0x33, 0x33, 0, 0, 0, 0x42 };
	CHECK_EQ(rx_frame(0, mc2, TD_BUF + 0xb000), 64, "overflowing multicast table: any multicast delivered");
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0xc000), 0, "empty unicast table: other unicast dropped again");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1), VIRTIO_NET_OK, "ALLMULTI on");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK, "PROMISC on");
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0xc000), 64, "promiscuous again: other MAC delivered");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &on, 1), VIRTIO_NET_ERR,
		 "NOBCAST (needs CTRL_RX_EXTRA): ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 0), VIRTIO_NET_ERR,
		 "PROMISC without its byte: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_RX, 0xff, &on, 1), VIRTIO_NET_ERR, "RX command 0xff: ERR");

	/* MAC_ADDR_SET */
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, other, 6), VIRTIO_NET_OK, "MAC_ADDR_SET: OK");
	uint64_t cm = td_rd(&d, VPCI_DEVCFG_OFF, 8);
	CHECK(memcmp(&cm, other, 6) == 0, "config space shows the new MAC");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mcast, 6), VIRTIO_NET_ERR,
		 "MAC_ADDR_SET multicast: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, other, 5), VIRTIO_NET_ERR,
		 "MAC_ADDR_SET 5 bytes: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_MAC, 7, other, 6), VIRTIO_NET_ERR, "MAC command 7: ERR");

	/* other classes and malformed chains */
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &k3, 2), VIRTIO_NET_ERR, "VLAN class: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_ANNOUNCE, 0, &on, 0), VIRTIO_NET_ERR, "ANNOUNCE class: ERR");
	CHECK_EQ(ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, tbl, 8), VIRTIO_NET_ERR, "GUEST_OFFLOADS class: ERR");
	CHECK_EQ(ctrl(0xff, 0xff, &on, 0), VIRTIO_NET_ERR, "class 0xff: ERR");
	/* header only one byte long */
	d.mem[ACK] = 0xee;
	struct td_seg h1[2] = { { CMD, 1, 0 }, { ACK, 1, 1 } };
	td_add(&d, CTRLQ, h1, 2);
	td_kick(&d, CTRLQ);
	CHECK(td_used(&d, CTRLQ, &id, &len) == 1 && len == 1 && d.mem[ACK] == VIRTIO_NET_ERR,
	      "1-byte header: ERR");
	/* no writable ack byte: returned with nothing written */
	struct td_seg noack = { CMD, 4, 0 };
	td_add(&d, CTRLQ, &noack, 1);
	td_kick(&d, CTRLQ);
	CHECK(td_used(&d, CTRLQ, &id, &len) == 1 && len == 0, "no ack descriptor: returned, len 0");
	/* a command longer than any we parse */
	struct td_seg longc[5] = { { CMD, 2, 0 }, { TD_BUF, 0x10000, 0 }, { TD_BUF, 0x10000, 0 },
				   { TD_BUF, 0x10000, 0 }, { ACK, 1, 1 } };
	d.mem[CMD] = VIRTIO_NET_CTRL_MAC;
	d.mem[CMD + 1] = VIRTIO_NET_CTRL_MAC_TABLE_SET;
	td_add(&d, CTRLQ, longc, 5);
	td_kick(&d, CTRLQ);
	CHECK(td_used(&d, CTRLQ, &id, &len) == 1 && len == 1 && d.mem[ACK] == VIRTIO_NET_ERR,
	      "192 KiB command: ERR without parsing");
	CHECK_EQ(vnet_cur_pairs(n), PAIRS, "none of that changed the pair count");
	CHECK(!(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET), "device still healthy");

	/* pair switches while every pair's thread runs and frames arrive */
	pthread_t th[PAIRS];
	for (unsigned p = 0; p < PAIRS; p++)
		pthread_create(&th[p], NULL, runner, (void *)(uintptr_t)p);
	int bad = 0;
	for (unsigned i = 0; i < 300; i++) {
		for (unsigned p = 0; p < PAIRS; p++)
			(void)!send(sv[p][1], pkt, 64, MSG_DONTWAIT);
		if (pairs_set((uint16_t)(1 + i % PAIRS)) != VIRTIO_NET_OK)
			bad++;
		unsigned c = vnet_cur_pairs(n);
		if (c != 1 + i % PAIRS)
			bad++;
	}
	__atomic_store_n(&stop_runners, 1, __ATOMIC_RELAXED);
	for (unsigned p = 0; p < PAIRS; p++)
		pthread_join(th[p], NULL);
	CHECK_EQ(bad, 0, "300 pair switches with the pair threads running");
	/* frames of the stress that no buffer took: not for the checks below */
	for (unsigned p = 0; p < PAIRS; p++)
		while (recv(sv[p][0], got, sizeof(got), MSG_DONTWAIT) > 0)
			;
	CHECK(!(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET), "device still healthy after the switches");

	/* reset: one pair, filter and MAC back to defaults */
	td_up(&d, MQF, 2 * PAIRS + 1, 0);
	CHECK_EQ(vnet_cur_pairs(n), 1, "reset: one pair");
	cm = td_rd(&d, VPCI_DEVCFG_OFF, 8);
	CHECK(memcmp(&cm, mac, 6) == 0, "reset: configured MAC back");
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0xd000), 64, "reset: promiscuous again");

	/* ---- MQ not negotiated: the control queue is queue 2 ---- */
	td_up(&d, BASEF | B(VIRTIO_NET_F_CTRL_RX), 3, 0);
	CHECK_EQ(ctrl_q(2, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1, false), VIRTIO_NET_OK,
		 "without MQ, queue 2 is the control queue");
	CHECK_EQ(ctrl_q(2, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k3, 2, false),
		 VIRTIO_NET_ERR, "VQ_PAIRS_SET without MQ: ERR");
	CHECK_EQ(ctrl_q(2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, other, 6, false),
		 VIRTIO_NET_ERR, "MAC_ADDR_SET without CTRL_MAC_ADDR: ERR");
	/* without CTRL_MAC_ADDR we cannot know the guest's MAC: no unicast filter */
	CHECK_EQ(rx_frame(0, other, TD_BUF + 0xd000), 64, "no CTRL_MAC_ADDR: unicast not filtered");
	CHECK_EQ(rx_frame(0, mcast, TD_BUF + 0xe000), 0, "no CTRL_MAC_ADDR: multicast still filtered");
	CHECK_EQ(vnet_cur_pairs(n), 1, "still one pair");

	vnet_destroy(n);
	free(n);
	free(d.mem);
	for (unsigned p = 0; p < PAIRS; p++) {
		close(sv[p][0]);
		close(sv[p][1]);
	}
	return t_done();
}

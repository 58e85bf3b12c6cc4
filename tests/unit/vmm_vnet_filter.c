/* virtio-net's tx filter hook (the VMM's DHCP server rides on it): a
 * consumed frame never reaches the fd, a reply lands on rx queue 0 at
 * once or on the next rx kick, a passed frame goes out as the filter saw
 * it. Also one hand-built DISCOVER through the real dhcp_tx_filter. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "t.h"
#include "dhcp.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))
#define BASEF (B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_STATUS))

static struct td d;
static struct vnet *n;
static int sv[2];
static unsigned calls;
static size_t last_len;
static uint8_t last_first;

/* 0xaa...: consumed silently; 0xab...: consumed, 100-byte reply; else pass */
static int fake_filter(void *opaque, const uint8_t *frame, size_t len,
		       uint8_t *reply, size_t *reply_len)
{
	(void)opaque;
	calls++;
	last_len = len;
	last_first = len ? frame[0] : 0;
	if (len && frame[0] == 0xaa) {
		*reply_len = 0;
		return 1;
	}
	if (len && frame[0] == 0xab) {
		for (int i = 0; i < 100; i++)
			reply[i] = (uint8_t)(0x40 + i);
		*reply_len = 100;
		return 1;
	}
	return 0;
}

/* A kick only wakes the pair's I/O thread (its eventfd): run it here. */
static void kick(unsigned q)
{
	td_kick(&d, q);
	vnet_pair_run(n, q / 2);
}

/* A frame of len bytes starting with first; dhcp: with the headers of
 * IPv4/UDP to port 67 (the only frames the filter is shown), else ARP. */
static void send_tx_as(uint8_t first, size_t len, int dhcp)
{
	uint8_t *m = d.mem, *f = m + TD_BUF + 0x100, *ip = f + 14;
	memset(m + TD_BUF, 0, 12);
	memset(f, 0x11, len);
	f[0] = first;
	f[12] = 0x08;
	f[13] = dhcp ? 0x00 : 0x06;
	ip[0] = 0x45;
	ip[6] = ip[7] = 0;
	ip[9] = 17;
	ip[22] = 0;
	ip[23] = 67;
	struct td_seg tx[2] = { { TD_BUF, 12, 0 }, { TD_BUF + 0x100, (uint32_t)len, 0 } };
	td_add(&d, 1, tx, 2);
	kick(1);
}

static void send_tx(uint8_t first, size_t len)
{
	send_tx_as(first, len, 1);
}

static ssize_t peer_recv(void *buf, size_t len)
{
	return recv(sv[1], buf, len, MSG_DONTWAIT);
}

static void rx_buf(uint64_t at)
{
	struct td_seg rb = { at, 2048, 1 };
	memset(d.mem + at, 0xee, 2048);
	td_add(&d, 0, &rb, 1);
}

int main(void)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
	static uint8_t got[80000];
	uint32_t id, len;
	uint8_t *m;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	int big = 1 << 20;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	td_mem_init(&d);
	m = d.mem;
	n = calloc(1, sizeof(*n));
	CHECK_EQ(vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq), 0, "vnet init");
	d.v = &n->vpci;
	n->tx_filter = fake_filter;
	td_up(&d, BASEF, 2, 1);

	/* passed: on the wire, the filter saw the frame without the header */
	send_tx(0x01, 200);
	CHECK_EQ(peer_recv(got, sizeof(got)), 212, "pass: header + frame on the fd");
	CHECK(calls == 1 && last_len == 200 && last_first == 0x01, "pass: filter saw the 200-byte frame");
	CHECK(td_used(&d, 1, &id, &len) == 1, "pass: tx chain returned");

	/* not IPv4/UDP to port 67: straight to the fd, the filter never sees it */
	unsigned c_arp = calls;
	send_tx_as(0xaa, 200, 0);
	CHECK_EQ(peer_recv(got, sizeof(got)), 212, "not DHCP: on the fd although the filter would eat it");
	CHECK_EQ(calls, c_arp, "not DHCP: the filter was not called (no copy)");
	CHECK(td_used(&d, 1, &id, &len) == 1, "not DHCP: tx chain returned");

	/* consumed without reply: nothing on the fd, nothing on rx */
	rx_buf(TD_BUF + 0x2000);
	kick(0);
	send_tx(0xaa, 300);
	CHECK(peer_recv(got, sizeof(got)) < 0 && errno == EAGAIN, "consumed: nothing on the fd");
	CHECK(td_used(&d, 1, &id, &len) == 1 && len == 0, "consumed: tx chain returned");
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "consumed silently: nothing on rx");

	/* consumed with a reply while an rx buffer is there: delivered now */
	int msi0 = d.msi_count;
	send_tx(0xab, 300);
	CHECK(peer_recv(got, sizeof(got)) < 0, "reply: request not on the fd");
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 112, "reply: on rx at once, 12 + 100 bytes (len %u)", len);
	uint8_t want[100];
	for (int i = 0; i < 100; i++)
		want[i] = (uint8_t)(0x40 + i);
	static const uint8_t zero_hdr[10];
	uint16_t nb;
	memcpy(&nb, m + TD_BUF + 0x2000 + 10, 2);
	CHECK(memcmp(m + TD_BUF + 0x2000, zero_hdr, 10) == 0 && nb == 1,
	      "reply: zeroed virtio-net header, num_buffers 1");
	CHECK(memcmp(m + TD_BUF + 0x2000 + 12, want, 100) == 0, "reply: frame bytes intact");
	CHECK_EQ(m[TD_BUF + 0x2000 + 112], 0xee, "reply: nothing written past it");
	CHECK(d.msi_count > msi0 && d.last_data == 0x40, "reply: rx interrupt raised (last vector 0x%x)", d.last_data);

	/* no rx buffer: the reply waits, a newer one replaces it, the rx kick
	 * delivers exactly one, and tap frames follow it */
	send_tx(0xab, 60);
	send_tx(0xab, 61);
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "pending: no rx buffer, nothing delivered");
	uint8_t tapf[80];
	memset(tapf, 0, 12);
	memset(tapf + 12, 0x77, 68);
	CHECK_EQ(send(sv[1], tapf, 80, 0), 80, "peer sends a frame meanwhile");
	rx_buf(TD_BUF + 0x3000);
	rx_buf(TD_BUF + 0x4000);
	rx_buf(TD_BUF + 0x5000);
	kick(0);
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 112 &&
	      memcmp(m + TD_BUF + 0x3000 + 12, want, 100) == 0, "pending: reply delivered first on the rx kick");
	CHECK(td_used(&d, 0, &id, &len) == 1 && len == 80 && m[TD_BUF + 0x4000 + 12] == 0x77,
	      "pending: then the fd's frame");
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "pending: only one reply kept");

	/* a frame longer than VNET_FILTER_MAX is not shown to the filter */
	unsigned c0 = calls;
	send_tx(0xaa, VNET_FILTER_MAX + 1);
	CHECK_EQ(peer_recv(got, sizeof(got)), 12 + VNET_FILTER_MAX + 1, "oversized: goes to the fd unseen");
	CHECK_EQ(calls, c0, "oversized: filter not called");
	send_tx(0xaa, VNET_FILTER_MAX);
	CHECK(peer_recv(got, sizeof(got)) < 0 && calls == c0 + 1, "VNET_FILTER_MAX bytes: still filtered");

	/* a pending reply does not survive a device reset */
	send_tx(0xab, 60);
	td_up(&d, BASEF, 2, 1);
	rx_buf(TD_BUF + 0x3000);
	kick(0);
	CHECK_EQ(td_used(&d, 0, &id, &len), 0, "reset: the old driver's reply is gone");

	/* the real filter: a hand-built DISCOVER (RFC 2131 layout, built here
	 * byte by byte, not by dhcp.c) gets an OFFER for the lease */
	struct dhcp_lease L = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .addr = 0x0a000005,
				.router = 0x0a000001, .prefix = 24, .mtu = 1500 };
	CHECK_EQ(dhcp_lease_check(&L), 0, "lease sane");
	n->tx_filter = dhcp_tx_filter;
	n->tx_filter_opaque = &L;
	uint8_t f[14 + 20 + 8 + 244];
	memset(f, 0, sizeof(f));
	memset(f, 0xff, 6);
	memcpy(f + 6, L.mac, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[2] = (20 + 8 + 244) >> 8;
	ip[3] = (20 + 8 + 244) & 0xff;
	ip[8] = 64;
	ip[9] = 17;
	memset(ip + 16, 0xff, 4);
	uint32_t s = 0;
	for (int i = 0; i < 20; i += 2)
		s += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	s = (s & 0xffff) + (s >> 16);
	s = ~s & 0xffff;
	ip[10] = (uint8_t)(s >> 8);
	ip[11] = (uint8_t)s;
	uint8_t *u = ip + 20;
	u[1] = 68;
	u[3] = 67;
	u[5] = 8 + 244;
	uint8_t *bp = u + 8;
	bp[0] = 1;
	bp[1] = 1;
	bp[2] = 6;
	bp[4] = 0xde;
	bp[5] = 0xad;
	memcpy(bp + 28, L.mac, 6);
	bp[236] = 99;
	bp[237] = 130;
	bp[238] = 83;
	bp[239] = 99;
	bp[240] = 53;
	bp[241] = 1;
	bp[242] = 1;
	bp[243] = 255;
	memcpy(m + TD_BUF + 0x100, f, sizeof(f));
	memset(m + TD_BUF, 0, 12);
	struct td_seg tx[2] = { { TD_BUF, 12, 0 }, { TD_BUF + 0x100, sizeof(f), 0 } };
	td_add(&d, 1, tx, 2);
	kick(1);
	CHECK(peer_recv(got, sizeof(got)) < 0, "dhcp: DISCOVER never reaches the fd");
	CHECK(td_used(&d, 0, &id, &len) == 1 && len >= 12 + 14 + 20 + 8 + 300, "dhcp: a reply on rx (len %u)", len);
	uint8_t *r = m + TD_BUF + 0x3000 + 12;
	CHECK(r[14 + 20 + 8] == 2 && r[14 + 20 + 8 + 4] == 0xde && r[14 + 20 + 8 + 5] == 0xad,
	      "dhcp: a BOOTREPLY with our xid");
	CHECK(memcmp(r + 14 + 20 + 8 + 16, "\x0a\x00\x00\x05", 4) == 0, "dhcp: yiaddr 10.0.0.5");
	CHECK(r[14 + 20 + 8 + 240] == 53 && r[14 + 20 + 8 + 242] == 2, "dhcp: first option is type OFFER");
	vnet_destroy(n);
	free(n);
	return t_done();
}

/* The path a guest's router solicitation takes in a VMM without vhost,
 * with the kernel in the middle: the VMM writes the guest's frame into
 * the tap fd (here: the test, as the guest's virtio-net tx would), the
 * kernel hands it to the packet socket on the tap (dhcp_tap_open with
 * ra_bpf), ra_handle answers, and dhcp_tap_ready sends the RA out of the
 * tap, where it comes back on the tap fd: what the VMM would give the
 * guest. Also: a frame the filter must not pass (a neighbour
 * advertisement) gets nothing, a neighbour solicitation passes it and
 * gets no answer, and an unsolicited RA (dhcp_tap_send)
 * arrives. Needs CAP_NET_ADMIN and CAP_NET_RAW; it makes its own network
 * namespace (unshare), so the tap goes with the process. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/filter.h>
#include <linux/if_tun.h>

#include "t.h"
#include "dhcp_tap.h"
#include "ra.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0, 0x60, 0, 2 };
static const uint8_t guest_ll[16] = { 0xfe, 0x80, [8] = 0x50, 0x54, 0, 0xff, 0xfe, 0x60, 0, 2 };

/* The one's-complement sum, written here again: the oracle for the
 * checksum of what we craft. */
static uint16_t sum16(const uint8_t *src, const uint8_t *dst, const uint8_t *m, size_t n)
{
	uint32_t s = 58 + (uint32_t)n;
	for (int i = 0; i < 16; i += 2)
		s += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(m[i] << 8 | (i + 1 < n ? m[i + 1] : 0));
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* An ICMPv6 message of type t from the guest's link-local address to dst,
 * with its source link-layer option: Ethernet + IPv6 + ICMPv6. */
static size_t craft(uint8_t *f, uint8_t t, const uint8_t dmac[6], const uint8_t dst[16])
{
	size_t ml = t == 135 ? 32 : 16; /* NS carries a target address */
	memset(f, 0, 14 + 40 + ml);
	memcpy(f, dmac, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x86, f[13] = 0xdd;
	uint8_t *ip = f + 14, *m = ip + 40;
	ip[0] = 0x60;
	ip[4] = 0, ip[5] = (uint8_t)ml;
	ip[6] = 58, ip[7] = 255;
	memcpy(ip + 8, guest_ll, 16);
	memcpy(ip + 24, dst, 16);
	m[0] = t;
	uint8_t *o = m + ml - 8;
	if (t == 135)
		memcpy(m + 8, (uint8_t[16]){ 0xfe, 0x80, [15] = 1 }, 16);
	o[0] = 1, o[1] = 1;
	memcpy(o + 2, guest_mac, 6);
	uint16_t c = sum16(ip + 8, ip + 24, m, ml);
	m[2] = (uint8_t)(c >> 8), m[3] = (uint8_t)c;
	return 14 + 40 + ml;
}

/* Frames the kernel gives the tap fd within ms; the first IPv6 one
 * (the kernel's own MLD or DAD may come too) of ICMPv6 type want. */
static ssize_t read_icmp6(int fd, uint8_t *buf, size_t cap, uint8_t want, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (poll(&p, 1, ms) == 1) {
		ssize_t n = read(fd, buf, cap);
		if (n >= 14 + 40 + 4 && buf[12] == 0x86 && buf[13] == 0xdd && buf[14 + 6] == 58 &&
		    buf[14 + 40] == want)
			return n;
	}
	return -1;
}

int main(void)
{
	struct ifreq ifr;
	uint8_t f[256], got[2048];
	static struct dhcp_tap t = { .fd = -1 };
	struct sock_filter prog[RA_BPF_LEN];
	struct sock_fprog fprog = { .len = RA_BPF_LEN, .filter = prog };
	struct err e = { "" };
	struct ra_cfg c = { .router_mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 },
			    .prefix = { 0xfd, 0x60, [15] = 1 }, .prefix_len = 64, .mtu = 1500 };
	static const uint8_t allrouters_mac[6] = { 0x33, 0x33, 0, 0, 0, 2 };
	static const uint8_t allrouters[16] = { 0xff, 0x02, [15] = 2 };

	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		printf("ok - ra tap # SKIP needs CAP_NET_ADMIN (unshare -n)\n");
		return 0;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "klra0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	CHECK(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0, "tap klra0 made");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ifr.ifr_flags = IFF_UP;
	CHECK(s >= 0 && ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "klra0 up");
	ra_bpf(prog, DHCP_TAP_FRAME_MAX, 0);
	CHECK(dhcp_tap_open(&t, fd, &fprog, ra_handle, &c, &e) == 0, "packet socket on the tap (%s)", e.msg);

	/* a guest's RS, as virtio-net tx writes it into the tap fd */
	size_t n = craft(f, 133, allrouters_mac, allrouters);
	CHECK(write(fd, f, n) == (ssize_t)n, "the guest's router solicitation written to the tap");
	struct pollfd p = { .fd = t.fd, .events = POLLIN };
	CHECK(poll(&p, 1, 2000) == 1, "the packet socket on the tap sees it");
	dhcp_tap_ready(&t, 0);
	ssize_t r = read_icmp6(fd, got, sizeof(got), 134, 2000);
	CHECK(r > 0, "a router advertisement comes back out of the tap, to the guest");
	if (r > 0) {
		const uint8_t *ip = got + 14, *m = ip + 40;
		size_t ml = (size_t)(ip[4] << 8 | ip[5]);
		CHECK(!memcmp(got, guest_mac, 6) && !memcmp(got + 6, c.router_mac, 6),
		      "unicast to the guest's MAC, from the router's");
		CHECK(!memcmp(ip + 24, guest_ll, 16) && ip[8] == 0xfe && ip[9] == 0x80 && ip[23] == 1 &&
		      ip[7] == 255, "to the guest's link-local address, from fe80::1, hop limit 255");
		CHECK((size_t)r >= 14 + 40 + ml && sum16(ip + 8, ip + 24, m, ml) == 0,
		      "its ICMPv6 checksum is right (summed here)");
		bool pio = false;
		for (size_t o = 16; o + 8 <= ml && m[o + 1]; o += (size_t)m[o + 1] * 8)
			if (m[o] == 3 && m[o + 2] == 64 && (m[o + 3] & 0xc0) == 0xc0 && m[o + 16] == 0xfd &&
			    m[o + 17] == 0x60 && m[o + 31] == 0)
				pio = true;
		CHECK(pio, "it carries fd60::/64 with on-link and autonomous flags");
	}
	/* a neighbour advertisement: not the filter's business */
	n = craft(f, 136, (uint8_t[6]){ 0x33, 0x33, 0, 0, 0, 1 }, (uint8_t[16]){ 0xff, 0x02, [15] = 1 });
	CHECK(write(fd, f, n) == (ssize_t)n, "a neighbour advertisement written to the tap");
	CHECK(poll(&p, 1, 300) == 0, "the packet socket does not see it (the filter)");
	/* a neighbour solicitation to fe80::1 passes the filter (a DAD one
	 * says which address the guest took: ra_dad_target), and gets no RA */
	n = craft(f, 135, (uint8_t[6]){ 0x33, 0x33, 0xff, 0, 0, 1 },
		  (uint8_t[16]){ 0xff, 0x02, [11] = 1, 0xff, 0, 0, 1 });
	CHECK(write(fd, f, n) == (ssize_t)n, "a neighbour solicitation written to the tap");
	CHECK(poll(&p, 1, 2000) == 1, "the packet socket sees it");
	dhcp_tap_ready(&t, 0);
	CHECK(read_icmp6(fd, got, sizeof(got), 134, 300) <= 0, "no router advertisement for it");
	/* the period's unsolicited one */
	n = ra_build_unsolicited(&c, f, sizeof(f));
	dhcp_tap_send(&t, f, n);
	r = read_icmp6(fd, got, sizeof(got), 134, 2000);
	CHECK(r == (ssize_t)n && got[0] == 0x33 && got[5] == 1,
	      "an unsolicited RA reaches the guest, to all-nodes");
	dhcp_tap_close(&t);
	close(s);
	close(fd);
	return t_done();
}

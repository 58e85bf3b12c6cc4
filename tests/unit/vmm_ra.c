/* Router Advertisements (vmm/ra.c) read back byte by byte by code of
 * its own here, checksums included (summed differently from ra.c: byte
 * by byte into a 64-bit total); Router Solicitations and the DAD
 * Neighbor Solicitations that say which address a guest took, crafted
 * here, valid and broken one way at a time; and the socket filter run by the kernel
 * on one end of an AF_UNIX datagram socketpair (no privilege needed),
 * where a datagram the program refuses never arrives. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/filter.h>

#include "t.h"
#include "ra.h"

static const uint8_t router_mac[6] = { 0x02, 0x6b, 0x6c, 0x00, 0x00, 0x01 };
static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t guest_ll[16] = { 0xfe, 0x80, [8] = 0x50, 0x54, 0x00, 0xff,
				      0xfe, 0x12, 0x34, 0x56 };
static const uint8_t fe80_1[16] = { 0xfe, 0x80, [15] = 1 };
static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };
static const uint8_t all_routers[16] = { 0xff, 0x02, [15] = 2 };
static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
static const uint8_t unspec[16];
/* fd00:1:2:3::1 */
static const uint8_t ula[16] = { 0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, [15] = 1 };

static struct ra_cfg cfg;

static void set_cfg(const uint8_t prefix[16], unsigned len, unsigned mtu)
{
	memcpy(cfg.router_mac, router_mac, 6);
	memcpy(cfg.prefix, prefix, 16);
	cfg.prefix_len = len;
	cfg.mtu = mtu;
	cfg.ndns6 = 0;
}

static unsigned be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static unsigned long be32(const uint8_t *p)
{
	return (unsigned long)be16(p) << 16 | be16(p + 2);
}

/* The pseudo-header written out as bytes, then everything summed a byte
 * at a time (even offsets high); 0xffff when the checksum is right. */
static unsigned t_sum(const uint8_t *ip6, const uint8_t *msg, size_t n)
{
	uint8_t ph[40] = { 0 };
	uint64_t s = 0;

	memcpy(ph, ip6 + 8, 32);
	ph[32] = (uint8_t)(n >> 24);
	ph[33] = (uint8_t)(n >> 16);
	ph[34] = (uint8_t)(n >> 8);
	ph[35] = (uint8_t)n;
	ph[39] = 58;
	for (size_t i = 0; i < sizeof(ph); i++)
		s += (uint64_t)ph[i] << (i % 2 ? 0 : 8);
	for (size_t i = 0; i < n; i++)
		s += (uint64_t)msg[i] << (i % 2 ? 0 : 8);
	while (s > 0xffff)
		s = (s >> 16) + (s & 0xffff);
	return (unsigned)s;
}

/* set the ICMPv6 checksum of an untagged frame with no extension header */
static void fix(uint8_t *f)
{
	uint8_t *m = f + 54;
	m[2] = m[3] = 0;
	unsigned c = ~t_sum(f + 14, m, be16(f + 18)) & 0xffff;
	m[2] = (uint8_t)(c >> 8);
	m[3] = (uint8_t)c;
}

/* the prefix bit by bit: bit b kept when b < len */
static void masked(uint8_t out[16], const uint8_t p[16], unsigned len)
{
	memset(out, 0, 16);
	for (unsigned b = 0; b < 128 && b < len; b++)
		out[b / 8] |= p[b / 8] & (0x80 >> (b % 8));
}

/* Every field of an RA frame, as ra.h promises it for cfg */
static void check_ra(const char *what, const uint8_t *f, size_t n, const uint8_t dmac[6],
		     const uint8_t dip[16])
{
	const uint8_t *ip = f + 14, *m = f + 54;
	unsigned plen_want = cfg.prefix_len < 128 ? cfg.prefix_len : 128;
	int want_mtu = cfg.mtu >= 1280 && cfg.mtu <= 65535;

	CHECK(n >= 54 + 16 && n <= RA_FRAME_MAX, "%s: length %zu", what, n);
	if (n < 54 + 16 || n > RA_FRAME_MAX)
		return;
	CHECK(!memcmp(f, dmac, 6) && !memcmp(f + 6, router_mac, 6) && be16(f + 12) == 0x86dd,
	      "%s: Ethernet to the destination, from the router, IPv6", what);
	CHECK(ip[0] == 0x60 && ip[1] == 0 && ip[2] == 0 && ip[3] == 0,
	      "%s: IPv6 version 6, traffic class and flow label 0", what);
	CHECK_EQ(be16(ip + 4), n - 54, "%s: payload length covers the frame exactly", what);
	CHECK(ip[6] == 58 && ip[7] == 255, "%s: next header 58, hop limit 255", what);
	CHECK(!memcmp(ip + 8, fe80_1, 16) && !memcmp(ip + 24, dip, 16),
	      "%s: from fe80::1 to the destination", what);
	CHECK(m[0] == 134 && m[1] == 0, "%s: ICMPv6 type 134 code 0", what);
	CHECK_EQ(t_sum(ip, m, n - 54), 0xffff, "%s: ICMPv6 checksum", what);
	CHECK(m[4] == 64 && m[5] == 0 && be16(m + 6) == RA_ROUTER_LIFETIME &&
		      be32(m + 8) == 0 && be32(m + 12) == 0,
	      "%s: hop limit 64, flags 0, lifetime %u, reachable and retrans 0", what,
	      RA_ROUTER_LIFETIME);

	unsigned slla = 0, mtu = 0, pi = 0, rdnss = 0, other = 0;
	unsigned ndns_want = cfg.ndns6 < RA_DNS_MAX ? cfg.ndns6 : RA_DNS_MAX;
	size_t i = 16, end = n - 54;
	while (i + 2 <= end && m[i + 1] && i + 8u * m[i + 1] <= end) {
		const uint8_t *o = m + i;
		if (o[0] == 1 && o[1] == 1) {
			slla++;
			CHECK(!memcmp(o + 2, router_mac, 6), "%s: SLLA is the router's MAC", what);
		} else if (o[0] == 5 && o[1] == 1) {
			mtu++;
			CHECK(be16(o + 2) == 0 && be32(o + 4) == cfg.mtu, "%s: MTU %lu", what,
			      be32(o + 4));
		} else if (o[0] == 3 && o[1] == 4) {
			uint8_t want[16];
			masked(want, cfg.prefix, plen_want);
			pi++;
			CHECK_EQ(o[2], plen_want, "%s: prefix length", what);
			CHECK_EQ(o[3], plen_want == 64 ? 0xc0 : 0x80, "%s: L always, A on a /64", what);
			CHECK(be32(o + 4) == 86400 && be32(o + 8) == 14400 && be32(o + 12) == 0,
			      "%s: valid 86400, preferred 14400, reserved 0", what);
			CHECK(!memcmp(o + 16, want, 16), "%s: prefix masked to /%u", what, plen_want);
		} else if (o[0] == 25) {
			/* RFC 8106 5.1: 1 + 2 units per address, reserved 0 */
			rdnss++;
			CHECK(o[1] == 1 + 2 * ndns_want && be16(o + 2) == 0 &&
				      be32(o + 4) == RA_RDNSS_LIFETIME,
			      "%s: RDNSS length %u for %u servers, lifetime %lu", what, o[1],
			      ndns_want, be32(o + 4));
			for (unsigned k = 0; k < ndns_want && 8 + 16 * k + 16 <= 8u * o[1]; k++)
				CHECK(!memcmp(o + 8 + 16 * k, cfg.dns6[k], 16),
				      "%s: RDNSS address %u", what, k);
		} else {
			other++;
		}
		i += 8u * m[i + 1];
	}
	CHECK(i == end && slla == 1 && mtu == (unsigned)want_mtu && pi == 1 &&
		      rdnss == (ndns_want ? 1u : 0u) && !other,
	      "%s: options fill the message: 1 SLLA, %d MTU, 1 prefix, %d RDNSS (got %u %u %u "
	      "%u, %u other)", what, want_mtu, ndns_want ? 1 : 0, slla, mtu, pi, rdnss, other);
}

static void cfg_check(void)
{
	static const struct { uint8_t p[16]; unsigned len; int ok; const char *what; } c[] = {
		{ { 0xfd, 0, 0, 1, 0, 2, 0, 3, [15] = 1 }, 64, 1, "fd00:1:2:3::1/64" },
		{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, 1, "2001:db8::/32" },
		{ { 0xfd, [15] = 1 }, 128, 1, "fd00::1/128" },
		{ { 0xfc }, 7, 1, "fc00::/7 (next to fe80::/10, not over it)" },
		{ { 0xfd }, 0, 0, "prefix length 0" },
		{ { 0xfd }, 129, 0, "prefix length 129" },
		{ { 0xfe, 0x80 }, 64, 0, "fe80::/64 (link-local)" },
		{ { 0xfe, 0xbf, 0xff, 0xff }, 32, 0, "febf:ffff::/32 (inside fe80::/10)" },
		{ { 0xfe }, 7, 0, "fe00::/7 (holds fe80::/10)" },
		{ { 0xff, 0x02 }, 16, 0, "ff02::/16 (multicast)" },
		{ { 0x80 }, 1, 0, "8000::/1 (holds ff00::/8)" },
		{ { [15] = 1 }, 128, 0, "::1/128 (loopback)" },
		{ { 0 }, 64, 0, "::/64 (unspecified)" },
		{ { [15] = 1 }, 64, 0, "::1/64 (masked: ::)" },
		{ { 0x20, 0x01, 0x0d, 0xb8 }, 1, 0, "2001:db8::/1 (masked: ::)" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		set_cfg(c[i].p, c[i].len, 1500);
		CHECK_EQ(ra_cfg_check(&cfg), c[i].ok ? 0 : -EINVAL, "ra_cfg_check %s", c[i].what);
	}
	static const uint8_t bad_mac[][6] = {
		{ 0 }, { 0x01, 0, 0x5e, 0, 0, 1 }, { 0x33, 0x33, 0, 0, 0, 1 },
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
	};
	for (size_t i = 0; i < sizeof(bad_mac) / sizeof(bad_mac[0]); i++) {
		set_cfg(ula, 64, 1500);
		memcpy(cfg.router_mac, bad_mac[i], 6);
		CHECK_EQ(ra_cfg_check(&cfg), -EINVAL, "ra_cfg_check: zero or multicast MAC %zu", i);
	}
	static const struct { uint8_t a[16]; int ok; const char *what; } d[] = {
		{ { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x53 }, 1, "2001:db8::53" },
		{ { 0xfd, [15] = 0x53 }, 1, "fd00::53" },
		{ { 0xff, 0x02, [15] = 1 }, 0, "ff02::1 (multicast)" },
		{ { 0 }, 0, ":: (unspecified)" },
		{ { [15] = 1 }, 0, "::1 (loopback)" },
	};
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		set_cfg(ula, 64, 1500);
		cfg.ndns6 = 1;
		memcpy(cfg.dns6[0], d[i].a, 16);
		CHECK_EQ(ra_cfg_check(&cfg), d[i].ok ? 0 : -EINVAL, "ra_cfg_check: DNS server %s",
			 d[i].what);
	}
	set_cfg(ula, 64, 1500);
	cfg.ndns6 = RA_DNS_MAX + 1;
	for (unsigned k = 0; k < RA_DNS_MAX; k++)
		memcpy(cfg.dns6[k], d[0].a, 16);
	CHECK_EQ(ra_cfg_check(&cfg), -EINVAL, "ra_cfg_check: more than %d DNS servers", RA_DNS_MAX);
	cfg.ndns6 = 0;
}

static void build(void)
{
	uint8_t f[RA_FRAME_MAX + 8];
	size_t n;

	set_cfg(ula, 64, 1500);
	n = ra_build(&cfg, guest_mac, guest_ll, f, sizeof(f));
	CHECK_EQ(n, 118, "RA with an MTU: 14 + 40 + 16 + 8 + 8 + 32 bytes");
	check_ra("fd00:1:2:3::1/64 unicast", f, n, guest_mac, guest_ll);
	static const uint8_t net64[16] = { 0xfd, 0, 0, 1, 0, 2, 0, 3 };
	CHECK(!memcmp(f + 54 + 32 + 16, net64, 16), "fd00:1:2:3::1/64 advertised as fd00:1:2:3::");
	CHECK(f[54 + 32 + 3] == 0xc0, "/64: on-link and autonomous");

	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	check_ra("unsolicited", f, n, all_nodes_mac, all_nodes);

	/* fd00:1:2:3f::ffff/60 -> fd00:1:2:30:: */
	static const uint8_t p60[16] = { 0xfd, 0, 0, 1, 0, 2, 0, 0x3f, [14] = 0xff, 0xff };
	static const uint8_t net60[16] = { 0xfd, 0, 0, 1, 0, 2, 0, 0x30 };
	set_cfg(p60, 60, 1500);
	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	check_ra("/60", f, n, all_nodes_mac, all_nodes);
	CHECK(n == 118 && !memcmp(f + 54 + 32 + 16, net60, 16) && f[54 + 32 + 3] == 0x80,
	      "fd00:1:2:3f::ffff/60 advertised as fd00:1:2:30::, not autonomous");
	set_cfg(p60, 128, 1500);
	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	check_ra("/128", f, n, all_nodes_mac, all_nodes);
	set_cfg(p60, 3, 1500);
	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	check_ra("/3", f, n, all_nodes_mac, all_nodes);
	set_cfg(p60, 65, 1500);
	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	check_ra("/65", f, n, all_nodes_mac, all_nodes);
	set_cfg(p60, 200, 1500);
	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	check_ra("prefix length 200 (built as /128)", f, n, all_nodes_mac, all_nodes);

	static const unsigned mtus[] = { 0, 1279, 1280, 1500, 9000, 65535, 65536, 1u << 31 };
	for (size_t i = 0; i < sizeof(mtus) / sizeof(mtus[0]); i++) {
		char what[32];
		set_cfg(ula, 64, mtus[i]);
		snprintf(what, sizeof(what), "MTU %u", mtus[i]);
		n = ra_build_unsolicited(&cfg, f, sizeof(f));
		CHECK_EQ(n, mtus[i] >= 1280 && mtus[i] <= 65535 ? 118 : 110, "%s: length", what);
		check_ra(what, f, n, all_nodes_mac, all_nodes);
	}

	set_cfg(ula, 64, 1500);
	memset(f, 0xa5, sizeof(f));
	CHECK_EQ(ra_build_unsolicited(&cfg, f, 117), 0, "one byte short: nothing built");
	CHECK(f[0] == 0xa5 && f[116] == 0xa5, "one byte short: out untouched");
	CHECK_EQ(ra_build_unsolicited(&cfg, f, 0), 0, "no room: nothing built");
	CHECK_EQ(ra_build_unsolicited(&cfg, f, 118), 118, "exactly the room: built");

	/* DNS servers: one RDNSS option after the prefix */
	static const uint8_t d1[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x53 },
			     d2[16] = { 0xfd, 0, 0, 1, 0, 2, 0, 3, [15] = 0x53 },
			     d3[16] = { 0x26, 0x06, 0x47, 0, 0x47, 0, [14] = 0x11, 0x11 };
	set_cfg(ula, 64, 1500);
	memcpy(cfg.dns6[0], d1, 16);
	memcpy(cfg.dns6[1], d2, 16);
	memcpy(cfg.dns6[2], d3, 16);
	for (unsigned k = 1; k <= RA_DNS_MAX; k++) {
		char what[32];
		cfg.ndns6 = k;
		snprintf(what, sizeof(what), "%u DNS servers", k);
		n = ra_build(&cfg, guest_mac, guest_ll, f, sizeof(f));
		CHECK_EQ(n, 118 + 8 + 16 * k, "%s: 8 + 16 each more bytes", what);
		check_ra(what, f, n, guest_mac, guest_ll);
		CHECK(f[118] == 25, "%s: RDNSS right after the prefix", what);
	}
	CHECK(n == 174 && n <= RA_FRAME_MAX, "the largest RA (174 bytes) fits RA_FRAME_MAX");
	CHECK_EQ(ra_build_unsolicited(&cfg, f, 173), 0, "3 servers, one byte short: nothing built");
	cfg.ndns6 = 99; /* beyond ra_cfg_check: still bounded */
	n = ra_build_unsolicited(&cfg, f, sizeof(f));
	CHECK_EQ(n, 174, "ndns6 99 is built as %d servers", RA_DNS_MAX);
	check_ra("ndns6 99", f, n, all_nodes_mac, all_nodes);
}

/* An RS from src to ff02::2 with opts after its 8-byte header, checksum
 * set; returns its length. */
static size_t rs(uint8_t *f, const uint8_t src[16], const uint8_t *opts, size_t olen)
{
	static const uint8_t all_routers_mac[6] = { 0x33, 0x33, 0, 0, 0, 2 };
	uint8_t *ip = f + 14, *m = f + 54;

	memset(f, 0, 62 + olen);
	memcpy(f, all_routers_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x86;
	f[13] = 0xdd;
	ip[0] = 0x60;
	ip[4] = (uint8_t)((8 + olen) >> 8);
	ip[5] = (uint8_t)(8 + olen);
	ip[6] = 58;
	ip[7] = 255;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, all_routers, 16);
	m[0] = 133;
	if (olen)
		memcpy(m + 8, opts, olen);
	fix(f);
	return 62 + olen;
}

/* ra_handle on a copy of the frame in a buffer of exactly its size (so
 * the sanitizer build catches an overread), the reply room cap */
static int handle(const uint8_t *f, size_t len, size_t cap, uint8_t *out, size_t *rl)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		abort();
	if (len)
		memcpy(copy, f, len);
	*rl = cap;
	int r = ra_handle(&cfg, copy, len, out, rl);
	free(copy);
	return r;
}

static void rejects(const char *what, const uint8_t *f, size_t len)
{
	uint8_t out[RA_FRAME_MAX];
	size_t rl;
	int r = handle(f, len, sizeof(out), out, &rl);
	CHECK(r == 0 && rl == 0, "not ours: %s (got %d, %zu bytes)", what, r, rl);
}

static const uint8_t slla[8] = { 1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void solicit(void)
{
	uint8_t f[256], g[256], out[RA_FRAME_MAX];
	size_t n, gn, rl;

	set_cfg(ula, 64, 1500);
	n = rs(f, guest_ll, slla, sizeof(slla));
	CHECK(handle(f, n, sizeof(out), out, &rl) == 1 && rl > 0,
	      "RS from a link-local source with SLLA: answered");
	check_ra("reply to fe80::... ", out, rl, guest_mac, guest_ll);

	uint8_t opts[16];
	memcpy(opts, slla, 8);
	static const uint8_t nonce[8] = { 14, 1, 1, 2, 3, 4, 5, 6 };
	memcpy(opts + 8, nonce, 8);
	gn = rs(g, guest_ll, opts, 16);
	CHECK(handle(g, gn, sizeof(out), out, &rl) == 1, "RS with SLLA and a nonce option: answered");
	check_ra("reply with a nonce", out, rl, guest_mac, guest_ll);

	memcpy(g, f, n);
	memset(g + n, 0, 10);
	CHECK(handle(g, n + 10, sizeof(out), out, &rl) == 1,
	      "RS with bytes after its payload (Ethernet padding): answered");

	memcpy(g, f, n);
	memcpy(g + 14 + 24, fe80_1, 16);
	fix(g);
	CHECK(handle(g, n, sizeof(out), out, &rl) == 1, "RS unicast to fe80::1: answered");

	size_t n0 = rs(g, unspec, NULL, 0);
	CHECK(handle(g, n0, sizeof(out), out, &rl) == 1, "RS from :: without options: answered");
	check_ra("reply to ::", out, rl, all_nodes_mac, all_nodes);
	size_t full = rl;

	/* the reply room */
	CHECK(handle(f, n, full - 1, out, &rl) == 0 && rl == 0, "reply room one byte short: 0");
	CHECK(handle(f, n, 0, out, &rl) == 0 && rl == 0, "no reply room: 0");
	CHECK(handle(f, n, full, out, &rl) == 1 && rl == full, "exactly the reply's room: 1");

	/* one thing wrong at a time */
	memcpy(g, f, n);
	g[14 + 7] = 64;
	rejects("hop limit 64", g, n);
	memcpy(g, f, n);
	g[14 + 7] = 254;
	rejects("hop limit 254", g, n);
	memcpy(g, f, n);
	g[54 + 3] ^= 1;
	rejects("bad checksum", g, n);
	memcpy(g, f, n);
	g[54 + 1] = 1;
	fix(g);
	rejects("code 1", g, n);
	memcpy(g, f, n);
	g[54] = 134;
	fix(g);
	rejects("an RA", g, n);
	static const uint8_t zero_opt[8] = { 1, 0, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	gn = rs(g, guest_ll, zero_opt, 8);
	rejects("zero-length option", g, gn);
	memcpy(opts, slla, 8);
	memcpy(opts + 8, zero_opt, 8);
	gn = rs(g, guest_ll, opts, 16);
	rejects("zero-length option after a good one", g, gn);
	static const uint8_t long_opt[8] = { 1, 2, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	gn = rs(g, guest_ll, long_opt, 8);
	rejects("option running past the end", g, gn);
	opts[8] = 14;
	gn = rs(g, guest_ll, opts, 9);
	rejects("one byte of option left at the end", g, gn);
	gn = rs(g, unspec, slla, 8);
	rejects("SLLA with the :: source", g, gn);
	memcpy(opts, nonce, 8);
	memcpy(opts + 8, slla, 8);
	gn = rs(g, unspec, opts, 16);
	rejects("SLLA after a nonce with the :: source", g, gn);
	gn = rs(g, all_nodes, slla, 8);
	rejects("multicast source ff02::1", g, gn);
	memcpy(g, f, n);
	g[6] = 0x53;
	rejects("multicast Ethernet source", g, n);
	memcpy(g, f, n);
	g[14] = 0x40;
	rejects("IP version 4 in an IPv6 header", g, n);
	memcpy(g, f, n);
	g[12] = 0x08;
	g[13] = 0x00;
	rejects("Ethernet type IPv4", g, n);
	memcpy(g, f, n);
	g[14 + 5] += 8;
	rejects("payload length 8 more than the frame", g, n);
	memcpy(g, f, n);
	g[14 + 5] += 1;
	rejects("payload length 1 more than the frame", g, n);
	memcpy(g, f, n);
	g[14 + 4] = 0xff;
	rejects("payload length 0xff10", g, n);
	memcpy(g, f, n);
	g[14 + 5] = 4;
	fix(g);
	rejects("ICMPv6 length 4", g, n);

	/* an 802.1Q tag: another segment */
	memcpy(g, f, 12);
	g[12] = 0x81;
	g[13] = 0x00;
	g[14] = 0x00;
	g[15] = 0x05;
	memcpy(g + 16, f + 12, n - 12);
	rejects("VLAN-tagged RS", g, n + 4);

	/* a Neighbor Solicitation: reserved, target fe80::1, SLLA */
	uint8_t ns[24];
	memcpy(ns, fe80_1, 16);
	memcpy(ns + 16, slla, 8);
	gn = rs(g, guest_ll, ns, sizeof(ns));
	g[54] = 135;
	fix(g);
	rejects("Neighbor Solicitation", g, gn);

	/* a hop-by-hop header (PadN) before a valid RS */
	static const uint8_t hbh[8] = { 58, 0, 1, 4, 0, 0, 0, 0 };
	memcpy(g, f, 54);
	memcpy(g + 54, hbh, 8);
	memcpy(g + 62, f + 54, n - 54);
	g[14 + 6] = 0;
	g[14 + 5] += 8;
	rejects("hop-by-hop header before the ICMPv6", g, n + 8);

	/* every truncation, payload length left as sent */
	unsigned bad = 0;
	for (size_t k = 0; k < n; k++)
		if (handle(f, k, sizeof(out), out, &rl) != 0 || rl)
			bad++;
	CHECK_EQ(bad, 0, "RS with SLLA cut at each of 0..%zu bytes: none answered", n - 1);
	n0 = rs(g, unspec, NULL, 0);
	bad = 0;
	for (size_t k = 0; k < n0; k++)
		if (handle(g, k, sizeof(out), out, &rl) != 0 || rl)
			bad++;
	CHECK_EQ(bad, 0, "RS from :: cut at each of 0..%zu bytes: none answered", n0 - 1);
}

/* A DAD Neighbor Solicitation from guest_mac for target t (RFC 4862
 * 5.4.2: source ::, to t's solicited-node group), options opts */
static size_t dad(uint8_t *f, const uint8_t t[16], const uint8_t *opts, size_t olen)
{
	uint8_t *ip = f + 14, *m = f + 54;
	size_t ml = 24 + olen;

	memset(f, 0, 54 + ml);
	f[0] = 0x33;
	f[1] = 0x33;
	f[2] = 0xff;
	memcpy(f + 3, t + 13, 3);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x86;
	f[13] = 0xdd;
	ip[0] = 0x60;
	ip[4] = (uint8_t)(ml >> 8);
	ip[5] = (uint8_t)ml;
	ip[6] = 58;
	ip[7] = 255;
	/* source :: (already zero); ff02::1:ffXX:XXXX */
	ip[24] = 0xff;
	ip[25] = 0x02;
	ip[24 + 11] = 1;
	ip[24 + 12] = 0xff;
	memcpy(ip + 24 + 13, t + 13, 3);
	m[0] = 135;
	memcpy(m + 8, t, 16);
	if (olen)
		memcpy(m + 24, opts, olen);
	fix(f);
	return 54 + ml;
}

/* ra_dad_target on an exact-size copy (the sanitizer sees overreads);
 * 1 only when it said 1 and gave back want, -1 when it said 1 with
 * another address, 0 when it said 0 and left out alone */
static int dad_of(const uint8_t *f, size_t len, const uint8_t mac[6], const uint8_t *want)
{
	uint8_t *copy = malloc(len ? len : 1), out[16];
	if (!copy)
		abort();
	if (len)
		memcpy(copy, f, len);
	memset(out, 0xa5, 16);
	int r = ra_dad_target(copy, len, mac, out);
	free(copy);
	if (r == 1)
		return want && !memcmp(out, want, 16) ? 1 : -1;
	for (int i = 0; i < 16; i++)
		if (out[i] != 0xa5)
			return -2;
	return r;
}

static void claims(void)
{
	/* fd00:1:2:3:5054:ff:fe12:3456, as SLAAC makes it from guest_mac */
	static const uint8_t slaac[16] = { 0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03,
					   0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56 };
	static const uint8_t other_mac[6] = { 0x52, 0x54, 0x00, 0x99, 0x99, 0x99 };
	static const uint8_t nonce[8] = { 14, 1, 1, 2, 3, 4, 5, 6 };
	uint8_t f[256], g[256], out[RA_FRAME_MAX];
	size_t n = dad(f, slaac, NULL, 0), gn, rl;

	CHECK_EQ(dad_of(f, n, guest_mac, slaac), 1, "DAD NS for the SLAAC address: claimed");
	gn = dad(g, slaac, nonce, sizeof(nonce));
	CHECK_EQ(dad_of(g, gn, guest_mac, slaac), 1, "DAD NS with a nonce option: claimed");
	gn = dad(g, guest_ll, NULL, 0);
	CHECK_EQ(dad_of(g, gn, guest_mac, guest_ll), 1, "DAD NS for the link-local address: claimed "
		 "(the prefix check is the caller's)");
	memcpy(g, f, n);
	memset(g + n, 0, 6);
	CHECK_EQ(dad_of(g, n + 6, guest_mac, slaac), 1, "DAD NS with Ethernet padding: claimed");
	CHECK(handle(f, n, sizeof(out), out, &rl) == 0 && rl == 0,
	      "ra_handle: a DAD NS gets no RA");

	/* one thing wrong at a time */
	CHECK_EQ(dad_of(f, n, other_mac, NULL), 0, "another NIC's MAC as the source: not ours");
	/* one byte changed: set to val, or flipped by val (xor), then the
	 * checksum made right again unless the checksum is the point */
	static const struct {
		size_t off;
		uint8_t val, xor, fix;
		const char *what;
	} one[] = {
		{ 14 + 7, 254, 0, 0, "hop limit 254" },
		{ 54 + 3, 1, 1, 0, "bad checksum" },
		{ 54 + 1, 1, 0, 1, "code 1" },
		{ 54, 136, 0, 1, "a Neighbor Advertisement" },
		{ 14 + 24 + 15, 1, 1, 1, "another solicited-node group" },
		{ 14 + 5, 16, 0, 1, "ICMPv6 length 16 (no whole target)" },
		{ 14 + 5, 25, 0, 0, "payload length 1 past the frame" },
		{ 12, 0x08, 0, 0, "Ethernet type IPv4" },
		{ 14 + 6, 0, 0, 0, "next header hop-by-hop" },
	};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		memcpy(g, f, n);
		g[one[i].off] = one[i].xor ? (uint8_t)(g[one[i].off] ^ one[i].val) : one[i].val;
		if (one[i].fix)
			fix(g);
		CHECK_EQ(dad_of(g, n, guest_mac, NULL), 0, "%s: refused", one[i].what);
	}
	memcpy(g, f, n);
	memcpy(g + 14 + 8, guest_ll, 16);
	fix(g);
	CHECK_EQ(dad_of(g, n, guest_mac, NULL), 0, "source not :: (address resolution, not DAD): refused");
	memcpy(g, f, n);
	memcpy(g + 14 + 24, all_nodes, 16);
	fix(g);
	CHECK_EQ(dad_of(g, n, guest_mac, NULL), 0, "to all-nodes: refused");
	static const uint8_t mc[16] = { 0xff, 0x0e, [13] = 0x12, 0x34, 0x56 };
	gn = dad(g, mc, NULL, 0);
	CHECK_EQ(dad_of(g, gn, guest_mac, NULL), 0, "a multicast target: refused");
	gn = dad(g, slaac, slla, sizeof(slla));
	CHECK_EQ(dad_of(g, gn, guest_mac, NULL), 0, "SLLA option with the :: source: refused");
	static const uint8_t zero_opt[8] = { 14, 0 };
	gn = dad(g, slaac, zero_opt, sizeof(zero_opt));
	CHECK_EQ(dad_of(g, gn, guest_mac, NULL), 0, "zero-length option: refused");
	static const uint8_t long_opt[8] = { 14, 2 };
	gn = dad(g, slaac, long_opt, sizeof(long_opt));
	CHECK_EQ(dad_of(g, gn, guest_mac, NULL), 0, "option past the end: refused");
	rs(g, unspec, NULL, 0);
	CHECK_EQ(dad_of(g, 62, guest_mac, NULL), 0, "a Router Solicitation: not a claim");
	unsigned bad = 0;
	for (size_t k = 0; k < n; k++)
		if (dad_of(f, k, guest_mac, NULL) != 0)
			bad++;
	CHECK_EQ(bad, 0, "DAD NS cut at each of 0..%zu bytes: none claimed", n - 1);

	/* the prefix the caller checks with */
	set_cfg(ula, 64, 0);
	CHECK(ra_prefix_has(&cfg, slaac), "fd00:1:2:3::/64 has the SLAAC address");
	CHECK(!ra_prefix_has(&cfg, guest_ll), "fd00:1:2:3::/64 has no fe80:: address");
	uint8_t x[16];
	memcpy(x, slaac, 16);
	x[7] ^= 1;
	CHECK(!ra_prefix_has(&cfg, x), "nor one differing in bit 63");
	set_cfg(ula, 63, 0);
	CHECK(ra_prefix_has(&cfg, x), "fd00:1:2:2::/63 has both");
	x[7] ^= 2;
	CHECK(!ra_prefix_has(&cfg, x), "but not bit 62 flipped");
	set_cfg(ula, 128, 0);
	CHECK(ra_prefix_has(&cfg, ula) && !ra_prefix_has(&cfg, slaac), "a /128 has only itself");
	memcpy(x, ula, 16);
	x[15] ^= 2;
	CHECK(!ra_prefix_has(&cfg, x), "a /128 has no address differing in its last bits");
	set_cfg(ula, 200, 0);
	CHECK(ra_prefix_has(&cfg, ula) && !ra_prefix_has(&cfg, slaac), "a length past 128 counts as 128");
}

/* The frame through a filter: the bytes that arrive, -1 if none */
static long through(int sv[2], const uint8_t *f, size_t len)
{
	uint8_t got[256];
	if (send(sv[0], f, len, 0) != (ssize_t)len)
		return -2;
	ssize_t r = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN ? -1 : -2;
	return r;
}

static int attach(int sv[2], uint32_t match, uint32_t miss)
{
	struct sock_filter p[RA_BPF_LEN];
	ra_bpf(p, match, miss);
	struct sock_fprog fp = { .len = RA_BPF_LEN, .filter = p };

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
		CHECK(0, "socketpair: %s", strerror(errno));
		return -1;
	}
	int r = setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp));
	CHECK(r == 0, "the kernel accepts the program (match %u, miss %u): %s", match, miss,
	      r ? strerror(errno) : "yes");
	return r;
}

static void program(void)
{
	uint8_t f[256], g[256];
	int sv[2];
	size_t n = rs(f, guest_ll, slla, sizeof(slla)), gn;

	if (attach(sv, 60, 0))
		return;
	CHECK_EQ(through(sv, f, n), 60, "RS matches, cut to 60 bytes");
	gn = rs(g, unspec, NULL, 0);
	CHECK_EQ(through(sv, g, gn), 60, "RS from :: matches");
	CHECK_EQ(through(sv, f, 55), 55, "55 bytes, up to the ICMPv6 type 133: matches");
	memcpy(g, f, n);
	g[14 + 7] = 1;
	CHECK_EQ(through(sv, g, n), 60, "a wrong hop limit still matches (ra_handle judges)");
	memcpy(g, f, n);
	g[54] = 135;
	CHECK_EQ(through(sv, g, n), 60, "Neighbor Solicitation matches (DAD: ra_dad_target judges)");
	g[54] = 136;
	CHECK_EQ(through(sv, g, n), -1, "Neighbor Advertisement does not");
	g[54] = 134;
	CHECK_EQ(through(sv, g, n), -1, "Router Advertisement does not");
	memcpy(g, f, n);
	g[14 + 6] = 17;
	CHECK_EQ(through(sv, g, n), -1, "IPv6 UDP does not");
	g[14 + 6] = 0;
	CHECK_EQ(through(sv, g, n), -1, "a hop-by-hop header first does not");
	memcpy(g, f, n);
	g[12] = 0x08;
	g[13] = 0x00;
	CHECK_EQ(through(sv, g, n), -1, "IPv4 does not");
	memcpy(g, f, 12);
	g[12] = 0x81;
	g[13] = 0x00;
	g[14] = 0;
	g[15] = 5;
	memcpy(g + 16, f + 12, n - 12);
	CHECK_EQ(through(sv, g, n + 4), -1, "VLAN-tagged RS does not");
	CHECK_EQ(through(sv, f, 54), -1, "54 bytes (no ICMPv6 type) does not");
	CHECK_EQ(through(sv, f, 10), -1, "a runt does not");
	close(sv[0]);
	close(sv[1]);

	/* a nonzero miss shows runts get miss, not the 0 of a load past the end */
	if (attach(sv, 60, 7))
		return;
	CHECK_EQ(through(sv, f, n), 60, "miss 7: RS still matches");
	memcpy(g, f, n);
	g[54] = 136;
	CHECK_EQ(through(sv, g, n), 7, "miss 7: NA gets miss");
	g[54] = 135;
	CHECK_EQ(through(sv, g, n), 60, "miss 7: NS still matches");
	CHECK_EQ(through(sv, f, 20), 7, "miss 7: a 20-byte runt gets miss");
	CHECK_EQ(through(sv, f, 54), 7, "miss 7: 54 bytes get miss");
	close(sv[0]);
	close(sv[1]);
}

/* Which claim the IPv6 forwards go to */
static void claim_pick(void)
{
	static const uint8_t stable[16] = { 0xfd, [8] = 0x50, [15] = 2 },
			     tmp1[16] = { 0xfd, [8] = 0x11, [15] = 7 },
			     tmp2[16] = { 0xfd, [8] = 0x22, [15] = 9 };
	uint8_t list[4][16], out[16], cur[16] = { 0 };

	memset(out, 0xa5, sizeof(out));
	CHECK(ra_claim_pick(cur, false, list, 0, out) == 0 && out[0] == 0xa5,
	      "nothing claimed: no target, out untouched");
	memcpy(list[0], stable, 16);
	CHECK(ra_claim_pick(cur, false, list, 1, out) == 1 && !memcmp(out, stable, 16),
	      "the first claim becomes the target");
	memcpy(cur, stable, 16);
	memcpy(list[0], tmp1, 16);
	memcpy(list[1], stable, 16);
	memset(out, 0xa5, sizeof(out));
	CHECK(ra_claim_pick(cur, true, list, 2, out) == 0 && out[0] == 0xa5,
	      "a temporary address claimed later: the target stays");
	memcpy(list[0], stable, 16);
	memcpy(list[1], tmp1, 16);
	CHECK(ra_claim_pick(cur, true, list, 2, out) == 0,
	      "the target claimed again (newest now): it stays");
	memcpy(list[0], tmp2, 16);
	memcpy(list[1], tmp1, 16);
	CHECK(ra_claim_pick(cur, true, list, 2, out) == 1 && !memcmp(out, tmp1, 16),
	      "the target pushed out of the list: the oldest claim left");
	CHECK(ra_claim_pick(cur, false, list, 2, out) == 1 && !memcmp(out, tmp1, 16),
	      "not in place (have false): the oldest claim, even if cur is listed");
	memcpy(cur, tmp1, 16);
	CHECK(ra_claim_pick(cur, false, list, 2, out) == 1 && !memcmp(out, tmp1, 16),
	      "not in place, cur listed: picked again (to be put in place)");
}

int main(void)
{
	claim_pick();
	cfg_check();
	build();
	solicit();
	claims();
	program();
	return t_done();
}

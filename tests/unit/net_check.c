/* Validation of names, CIDRs and DNS lists, bridge-name derivation,
 * subnet overlap, the link tags and the table comment that stores a
 * network's definition. No kernel involved. */
#include <stdlib.h>
#include <string.h>
#include "t.h"
#include "priv.h"

static void names(void)
{
	const char *why = NULL;

	CHECK(kl_name_check("lab", &why) == 0, "plain name accepted");
	CHECK(kl_name_check("abcdefghijklmno", &why) == 0, "15 bytes accepted");
	CHECK(kl_name_check("abcdefghijklmnop", &why) == -EINVAL &&
		      strstr(why, "15 bytes"), "16 bytes rejected: %s", why);
	CHECK(kl_name_check("a/b", &why) == -EINVAL && strstr(why, "'/'"),
	      "slash rejected: %s", why);
	CHECK(kl_name_check("a b", &why) == -EINVAL && strstr(why, "space"),
	      "space rejected: %s", why);
	CHECK(kl_name_check("a:b", &why) == -EINVAL && strstr(why, "':'"),
	      "colon rejected: %s", why);
	CHECK(kl_name_check("", &why) == -EINVAL, "empty rejected");
	CHECK(kl_name_check("..", &why) == -EINVAL, "'..' rejected");
	CHECK(kl_name_check("a\tb", &why) == -EINVAL, "tab rejected");
	CHECK(kl_name_check(".", &why) == -EINVAL, "'.' rejected");
	CHECK(kl_name_check("a%d", &why) == -EINVAL && strstr(why, "'%'"),
	      "percent rejected: %s", why);
	CHECK(kl_name_check("q\"x", &why) == -EINVAL && strstr(why, "'\"'"),
	      "quote rejected: %s", why);
	CHECK(kl_name_check("a\\b", &why) == -EINVAL && strstr(why, "backslash"),
	      "backslash rejected: %s", why);
	CHECK(kl_name_check("caf\xc3\xa9", &why) == -EINVAL && strstr(why, "0x80"),
	      "non-ASCII rejected: %s", why);
	CHECK(kl_name_check("a*b", &why) == -EINVAL, "'*' rejected: %s", why);
	CHECK(kl_name_check("a$b", &why) == -EINVAL, "'$' rejected");
	CHECK(kl_name_check("A-z_0.9", &why) == 0, "letters, digits, - _ . accepted");
	CHECK(kl_name_check("...", &why) == 0 && kl_name_check("-", &why) == 0,
	      "'...' and '-' accepted (the kernel takes them)");
}

static void cidrs(void)
{
	uint32_t a = 0;
	unsigned p = 0;
	const char *why = NULL;
	static const char *const bad[] = {
		"192.168.57.1", "192.168.57.1/", "192.168.57/24",
		"192.168.57.256/24", "192.168.057.1/24", "192.168.57.1/0",
		"192.168.57.1/32", "192.168.57.1/33", "192.168.57.1/2x",
		"192.168.57.0/24", "192.168.57.255/24", "10.0.0.1/024",
		" 10.0.0.1/24", "10.0.0.1/-1", "", "0.1.2.3/24", "0.0.0.1/8",
		"224.0.0.1/24", "239.1.2.3/16", "240.0.0.1/24", "255.255.255.254/31",
		"127.0.0.2/8",
	};

	CHECK(kl_cidr_parse("192.168.57.1/24", &a, &p, &why) == 0 &&
		      a == 0xc0a83901 && p == 24, "192.168.57.1/24 parsed");
	CHECK(kl_cidr_parse("10.1.2.3/8", &a, &p, &why) == 0 && p == 8,
	      "/8 parsed");
	CHECK(kl_cidr_parse("10.0.0.1/30", &a, &p, &why) == 0, "/30 host ok");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why = NULL;
		CHECK(kl_cidr_parse(bad[i], &a, &p, &why) == -EINVAL && why,
		      "'%s' rejected: %s", bad[i], why ? why : "(no reason)");
	}
	CHECK(kl_cidr_parse("192.168.57.0/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "network address"), "network address named");
	CHECK(kl_cidr_parse("192.168.57.255/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "broadcast"), "broadcast address named");
	CHECK(kl_cidr_parse("1.2.3.4/0", &a, &p, &why) == -EINVAL &&
		      strstr(why, "/0"), "/0 named");
	CHECK(kl_cidr_parse("1.2.3.4/32", &a, &p, &why) == -EINVAL &&
		      strstr(why, "/32"), "/32 named");
	CHECK(kl_cidr_parse("10.0.0.0/31", &a, &p, &why) == 0 && p == 31 &&
		      a == 0x0a000000, "/31: the lower end is a host (RFC 3021)");
	CHECK(kl_cidr_parse("10.0.0.1/31", &a, &p, &why) == 0,
	      "/31: the upper end is a host");
	/* short and long IPv6 forms: both named as IPv6, not "malformed" */
	CHECK(kl_cidr_parse("fd00:57::1/64", &a, &p, &why) == -EINVAL &&
		      strstr(why, "IPv6"), "IPv6 named: %s", why);
	CHECK(kl_cidr_parse("2001:db8:1234:5678:9abc:def0:1234:5678/64", &a, &p, &why) == -EINVAL &&
		      strstr(why, "IPv6"), "long IPv6 named: %s", why);
	CHECK(kl_cidr_parse("192.168.57/24", &a, &p, &why) == -EINVAL &&
		      strcmp(why, "malformed address") == 0, "a short IPv4 form stays malformed: %s", why);
	CHECK(kl_cidr_parse("224.0.0.1/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "multicast"), "multicast named: %s", why);
	CHECK(kl_cidr_parse("250.0.0.1/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "class E"), "class E named: %s", why);
	CHECK(kl_cidr_parse("0.0.0.5/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "0.0.0.0/8"), "0.0.0.0/8 named: %s", why);
}

static void dns(void)
{
	uint32_t d[KL_DNS_MAX];
	unsigned n = 0;
	const char *why;

	CHECK(kl_dns_parse("1.1.1.1", d, &n, &why) == 0 && n == 1 &&
		      d[0] == 0x01010101, "one server");
	CHECK(kl_dns_parse("1.1.1.1,8.8.8.8,9.9.9.9", d, &n, &why) == 0 && n == 3 &&
		      d[2] == 0x09090909, "three servers");
	CHECK(kl_dns_parse("1.1.1.1,2001:4860:4860::8888", d, &n, &why) == -EINVAL &&
		      strstr(why, "IPv6"), "an IPv6 DNS server named: %s", why);
	CHECK(kl_dns_parse("1.1.1.1,8.8.8.8,9.9.9.9,1.0.0.1", d, &n, &why) == -EINVAL,
	      "four rejected");
	CHECK(kl_dns_parse("1.1.1.1,", d, &n, &why) == -EINVAL, "empty item rejected");
	CHECK(kl_dns_parse("224.0.0.1", d, &n, &why) == -EINVAL, "multicast rejected");
	CHECK(kl_dns_parse("x", d, &n, &why) == -EINVAL, "garbage rejected");

	/* both families */
	uint8_t d6[KL_DNS_MAX][16];
	unsigned n6 = 9;
	CHECK(kl_dns_parse46("1.1.1.1,2606:4700:4700::1111,fd00::53", d, &n, d6, &n6,
			     &why) == 0 && n == 1 && n6 == 2 && d6[0][0] == 0x26 &&
		      d6[0][15] == 0x11 && d6[1][0] == 0xfd && d6[1][15] == 0x53,
	      "IPv4 and IPv6 servers, each in its list, in order");
	CHECK(kl_dns_parse46("2001:db8::1,2001:db8::2,2001:db8::3,1.1.1.1,8.8.8.8,9.9.9.9",
			     d, &n, d6, &n6, &why) == 0 && n == 3 && n6 == 3,
	      "three of each family");
	CHECK(kl_dns_parse46("2001:db8::1,2001:db8::2,2001:db8::3,2001:db8::4", d, &n,
			     d6, &n6, &why) == -EINVAL && strstr(why, "IPv6"),
	      "four IPv6 rejected: %s", why);
	static const char *const bad6[] = {"::1", "::", "fe80::1", "ff02::1",
					   "::ffff:1.2.3.4", "::1.2.3.4", "fe80::1%eth0",
					   "2001:db8::g", "[2001:db8::1]"};
	for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++)
		CHECK(kl_dns_parse46(bad6[i], d, &n, d6, &n6, &why) == -EINVAL,
		      "--dns %s refused: %s", bad6[i], why);
}

static void bridge_names(void)
{
	char a[16], b[16], c[16];

	kl_bridge_name("lab", a);
	CHECK(!strcmp(a, "kl-lab"), "short name gets kl- prefix: %s", a);
	kl_bridge_name("abcdefghijklmno", b);
	kl_bridge_name("abcdefghijklmnp", c);
	CHECK(strlen(b) <= 15 && strlen(c) <= 15, "long names fit: %s %s", b, c);
	CHECK(strcmp(b, c) != 0, "long names stay distinct");
	const char *why;
	CHECK(kl_name_check(b, &why) == 0, "derived name is valid");
}

static void overlap(void)
{
	CHECK(cidr_overlap(0x0a000001, 24, 0x0a0000fe, 24), "same /24");
	CHECK(cidr_overlap(0x0a000001, 24, 0x0a010203, 8), "inside a /8");
	CHECK(!cidr_overlap(0x0a000001, 24, 0x0a000101, 24), "neighbour /24");
	CHECK(!cidr_overlap(0xc0a83901, 24, 0x7f000001, 8), "loopback apart");
}

static void tags(void)
{
	char t[TAG_MAX], net[KL_NAME_MAX + 1];
	unsigned q = 0;

	tag_bridge("lab", t);
	CHECK(!strcmp(t, "kvmlab:lab"), "bridge tag %s", t);
	CHECK(tag_parse(t, net, &q) == TAG_BRIDGE && !strcmp(net, "lab"),
	      "bridge tag parsed");
	tag_tap("lab", 1, t);
	CHECK(!strcmp(t, "kvmlab:lab:tap"), "tap tag %s", t);
	CHECK(tag_parse(t, net, &q) == TAG_TAP && q == 1, "tap tag parsed");
	tag_tap("a.b-c_d", 4, t);
	CHECK(!strcmp(t, "kvmlab:a.b-c_d:tap:queues=4"), "queues in tap tag %s", t);
	CHECK(tag_parse(t, net, &q) == TAG_TAP && q == 4 && !strcmp(net, "a.b-c_d"),
	      "tap tag with queues parsed");
	static const char *const bad[] = {
		"", "kvmlab", "kvmlab:", "kvmlab:a%d", "kvmlab:lab:", "kvmlab:lab:tapx",
		"kvmlab:lab:tap:queues=1", "kvmlab:lab:tap:queues=257",
		"kvmlab:lab:tap:queues=04", "Kvmlab:lab", "kvmlab:abcdefghijklmnop",
		"kvmlab:lab:tap:queues=", "xkvmlab:lab",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(tag_parse(bad[i], net, &q) == TAG_NONE, "'%s' is no tag", bad[i]);
	struct kl_link l = {.kind = "bridge", .alias = "kvmlab:lab"};
	CHECK(link_is_bridge_of(&l, "lab") && !link_is_bridge_of(&l, "la"),
	      "bridge of lab, not of la");
	snprintf(l.kind, sizeof(l.kind), "veth");
	CHECK(!link_is_bridge_of(&l, "lab"), "a veth with the tag is no bridge of ours");
	struct kl_link tp = {.kind = "tun", .alias = "kvmlab:lab:tap", .tun_tap = true};
	CHECK(link_is_tap_of(&tp, "lab", &q) && !link_is_tap_of(&tp, "lab2", &q),
	      "tap of lab only");
	tp.tun_tap = false;
	CHECK(!link_is_tap_of(&tp, "lab", &q), "a tun (not tap) is not ours");
}

static void store_text(void)
{
	struct store_net n = {.fwd_prev = 0}, b;
	char c[256];

	snprintf(n.cfg.name, sizeof(n.cfg.name), "lab");
	snprintf(n.cfg.bridge, sizeof(n.cfg.bridge), "kl-lab");
	snprintf(n.cfg.uplink, sizeof(n.cfg.uplink), "eth0");
	n.cfg.addr = 0xc0a83901;
	n.cfg.prefix = 24;
	n.cfg.nat = true;
	n.cfg.mtu = 9000;
	n.cfg.dns[0] = 0x01010101;
	n.cfg.dns[1] = 0x08080808;
	n.cfg.ndns = 2;
	CHECK(store_format(&n, c, sizeof(c)) == 0, "definition formatted: %s", c);
	CHECK(!strcmp(c, "kvmlab network lab: cidr=192.168.57.1/24 bridge=kl-lab "
		      "nat=1 uplink=eth0 mtu=9000 stp=0 dns=1.1.1.1,8.8.8.8 "
		      "fwd_prev=0"), "the documented format");
	CHECK(store_parse("lab", c, &b) == 0, "parsed back");
	CHECK(!memcmp(&b.cfg, &n.cfg, sizeof(b.cfg)) && b.fwd_prev == 0 && !b.bad,
	      "definition kept whole");
	CHECK(store_parse("lab2", c, &b) == -EBADMSG, "another network's comment");

	/* the longest definition fits the 255-byte comment */
	snprintf(n.cfg.name, sizeof(n.cfg.name), "abcdefghijklmno");
	snprintf(n.cfg.bridge, sizeof(n.cfg.bridge), "bcdefghijklmnop");
	snprintf(n.cfg.uplink, sizeof(n.cfg.uplink), "cdefghijklmnopq");
	n.cfg.addr = 0xdffffffe;
	n.cfg.mtu = 65521;
	n.cfg.ndns = 3;
	n.cfg.dns[0] = n.cfg.dns[1] = n.cfg.dns[2] = 0xdfdfdfdf;
	n.fwd_prev = 1;
	CHECK(store_format(&n, c, sizeof(c)) == 0 && strlen(c) < 255,
	      "longest definition: %zu bytes", strlen(c));
	CHECK(store_parse("abcdefghijklmno", c, &b) == 0 && b.fwd_prev == 1 &&
		      b.cfg.ndns == 3 && b.cfg.mtu == 65521, "longest parsed back");

	static const char *const bad[] = {
		"kvmlab network lab",
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=1 uplink=- "
		"mtu=0 stp=0 dns=-",                                   /* truncated */
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=1 uplink=- "
		"mtu=0 stp=0 dns=- fwd_prev=7",                        /* hand edit */
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=1 uplink=- "
		"mtu=0 stp=0 dns=- fwd_prev=0 fwd_prev=1",             /* twice */
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=k%d nat=1 uplink=- "
		"mtu=0 stp=0 dns=- fwd_prev=0",                        /* bad name */
		"kvmlab network lab: cidr=10.0.0.0/24 bridge=kl-lab nat=1 uplink=- "
		"mtu=0 stp=0 dns=- fwd_prev=0",                        /* bad cidr */
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=2 uplink=- "
		"mtu=0 stp=0 dns=- fwd_prev=0",
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=1 uplink=- "
		"mtu=65535 stp=0 dns=- fwd_prev=0",
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=1 uplink=kl-lab "
		"mtu=0 stp=0 dns=- fwd_prev=0",
		"kvmlab network lab: cidr=10.0.0.1/24 bridge=kl-lab nat=1 uplink=- "
		"mtu=0 stp=0 dns=1.2.3.4,,5.6.7.8 fwd_prev=0",
		"kvmlab network lab: cidr=10.0.0.1/24  bridge=kl-lab",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(store_parse("lab", bad[i], &b) == -EBADMSG,
		      "comment rejected: %s", bad[i]);
	CHECK(store_parse("lab", "kvmlab network lab: cidr=10.0.0.1/24 "
			  "bridge=kl-lab nat=1 uplink=- mtu=0 stp=0 dns=- "
			  "fwd_prev=1 leases=3", &b) == 0 && b.fwd_prev == 1,
	      "an unknown key (a newer kvmlab's) is skipped");
}

/* The N log N helper tap add uses at 1000 taps. */
static void tap_lookups(void)
{
	const char *names[] = {"t3", "t1", "t2", "t1"};
	bool dup = false;
	CHECK(names_dup(names, 3, &dup) == 0 && !dup, "distinct names: no duplicate");
	CHECK(names_dup(names, 4, &dup) == 0 && dup, "t1 twice: duplicate found");
}

/* IPv6: --cidr6 and the ip6 table's comment. */
static void ipv6(void)
{
	static const char *const bad[] = {
		"fd00::/64", "fe80::1/64", "febf::1/64", "ff02::1/64", "::1/64", "::/64",
		"::ffff:10.0.0.1/96", "10.0.0.1/24", "fd00::1/128", "fd00::1/0", "fd00::1/129",
		"fd00::1", "fd00::1/", "fd00::1/6x", "fd00::1%eth0/64", "fd00::1/0064",
		"fd00:::1/64", "",
	};
	uint8_t a[16], p16[16];
	unsigned p;
	const char *why;
	char buf[256];

	CHECK(kl_cidr6_parse("fd57::1/64", a, &p, &why) == 0 && p == 64 && a[0] == 0xfd &&
	      a[15] == 1, "fd57::1/64 parses");
	CHECK(kl_cidr6_parse("2001:db8::ff/127", a, &p, &why) == 0 && p == 127,
	      "a /127 (RFC 6164) may use either end");
	CHECK(kl_cidr6_parse("2001:db8::/127", a, &p, &why) == 0,
	      "... the all-zero end of a /127 too");
	CHECK(kl_cidr6_parse("fc00::1:1/112", a, &p, &why) == 0, "a /112");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(kl_cidr6_parse(bad[i], a, &p, &why) == -EINVAL && why && *why,
		      "cidr6 '%s' refused: %s", bad[i], why ? why : "(no reason)");
	CHECK(kl_cidr6_parse("fd57:1:2:3:4:5:6:7/48", a, &p, &why) == 0, "a full address");
	kl_prefix6(a, 48, p16);
	CHECK(p16[5] == 2 && p16[6] == 0 && p16[15] == 0, "kl_prefix6 keeps 48 bits");
	kl_prefix6(a, 52, p16);
	CHECK(p16[6] == 0 && p16[7] == 0, "kl_prefix6 at /52 clears the low nibble (0x0003 -> 0)");
	CHECK(cidr6_overlap((const uint8_t[16]){0xfd, 0x57}, 64, (const uint8_t[16]){0xfd, 0x57, 0, 0, 0, 0, 0, 1}, 48),
	      "fd57::/64 overlaps fd57::/48");
	CHECK(!cidr6_overlap((const uint8_t[16]){0xfd, 0x57}, 64, (const uint8_t[16]){0xfd, 0x57, 0, 0, 0, 0, 0, 1}, 64),
	      "fd57::/64 and fd57:0:0:1::/64 do not");

	struct store_net n = {.fwd6_prev = 1}, back;
	snprintf(n.cfg.name, sizeof(n.cfg.name), "lab");
	CHECK(kl_cidr6_parse("fd57:ffff:ffff:ffff:ffff:ffff:ffff:fffe/64", n.cfg.addr6, &n.cfg.prefix6,
			     &why) == 0, "the longest address");
	CHECK(store6_format(&n, buf, sizeof(buf)) == 0 &&
	      !strcmp(buf, "kvmlab network lab: cidr6=fd57:ffff:ffff:ffff:ffff:ffff:ffff:fffe/64 fwd6_prev=1"),
	      "store6_format: %s", buf);
	memset(&back, 0, sizeof(back));
	CHECK(store6_parse("lab", buf, &back) == 0 && back.cfg.has6 && back.fwd6_prev == 1 &&
	      back.cfg.prefix6 == 64 && !memcmp(back.cfg.addr6, n.cfg.addr6, 16),
	      "store6_parse reads it back");
	static const char *const bad6[] = {
		"kvmlab network lab: cidr6=fd57::1/64",
		"kvmlab network lab: fwd6_prev=1",
		"kvmlab network lab: cidr6=fd57::1/64 fwd6_prev=2",
		"kvmlab network lab: cidr6=fe80::1/64 fwd6_prev=0",
		"kvmlab network lab: cidr6=fd57::1/64 cidr6=fd57::1/64 fwd6_prev=0",
		"kvmlab network lab2: cidr6=fd57::1/64 fwd6_prev=0",
		"kvmlab network lab: cidr6 fwd6_prev=0",
	};
	for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
		memset(&back, 0, sizeof(back));
		CHECK(store6_parse("lab", bad6[i], &back) == -EBADMSG, "not a definition: '%s'", bad6[i]);
	}
	CHECK(store6_parse("lab", "kvmlab network lab: cidr6=fd57::1/64 fwd6_prev=0 later=1", &back) == 0,
	      "unknown keys are skipped");

	/* IPv6 DNS servers: only then a dns6 key, and the longest comment
	 * still fits one nft comment (255 bytes) */
	snprintf(n.cfg.name, sizeof(n.cfg.name), "abcdefghijklmno");
	n.cfg.ndns6 = KL_DNS_MAX;
	for (unsigned i = 0; i < KL_DNS_MAX; i++)
		memcpy(n.cfg.dns6[i], n.cfg.addr6, 16);
	CHECK(store6_format(&n, buf, sizeof(buf)) == 0 && strlen(buf) <= 254 &&
		      strstr(buf, " dns6=fd57:ffff:ffff:ffff:ffff:ffff:ffff:fffe,fd57:"),
	      "store6_format with three IPv6 DNS servers (%zu bytes)", strlen(buf));
	memset(&back, 0, sizeof(back));
	CHECK(store6_parse("abcdefghijklmno", buf, &back) == 0 && back.cfg.ndns6 == 3 &&
		      !memcmp(back.cfg.dns6[2], n.cfg.addr6, 16),
	      "and reads them back");
	static const char *const bad_dns6[] = {
		"kvmlab network lab: cidr6=fd57::1/64 fwd6_prev=0 dns6=1.1.1.1",
		"kvmlab network lab: cidr6=fd57::1/64 fwd6_prev=0 dns6=::1",
		"kvmlab network lab: cidr6=fd57::1/64 fwd6_prev=0 dns6=fd57::5 dns6=fd57::6",
		"kvmlab network lab: cidr6=fd57::1/64 fwd6_prev=0 dns6=",
	};
	for (size_t i = 0; i < sizeof(bad_dns6) / sizeof(bad_dns6[0]); i++) {
		memset(&back, 0, sizeof(back));
		CHECK(store6_parse("lab", bad_dns6[i], &back) == -EBADMSG,
		      "not a definition: '%s'", bad_dns6[i]);
	}
}

int main(void)
{
	ipv6();
	names();
	cidrs();
	bridge_names();
	overlap();
	dns();
	tags();
	store_text();
	tap_lookups();
	return t_done();
}

#include "ra.h"

#include "bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <linux/filter.h>

#define ETH_HLEN 14
#define IP6_HLEN 40
#define MSG_OFF (ETH_HLEN + IP6_HLEN) /* 54: the ICMPv6 message, with no extension header */
#define ETHERTYPE_IPV6 0x86dd
#define NH_ICMPV6 58
#define RS_HLEN 8  /* type, code, checksum, reserved */
#define RA_HLEN 16 /* ... cur hop limit, flags, router lifetime, reachable, retrans */
#define TYPE_RS 133
#define TYPE_RA 134
#define TYPE_NS 135
#define NS_HLEN 24 /* type, code, checksum, reserved, target */
#define PI_LEN 32  /* prefix information option */

enum { OPT_SLLA = 1, OPT_PREFIX = 3, OPT_MTU = 5, OPT_RDNSS = 25 };

static const uint8_t router_ip[16] = { 0xfe, 0x80, [15] = 1 };
static const uint8_t all_nodes_ip[16] = { 0xff, 0x02, [15] = 1 };
/* RFC 2464 7: 33:33 and the group's last 32 bits */
static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
static const uint8_t zero16[16];

/* One's-complement sum (RFC 1071) of the ICMPv6 pseudo-header (RFC 8200
 * 8.1: both addresses of ip, the message length, next header 58) and the
 * n-byte message, folded: 0xffff when the message's checksum is right.
 * n < 64K keeps the 32-bit accumulator from overflowing. */
static uint16_t icmp6_sum(const uint8_t *ip, const uint8_t *msg, size_t n)
{
	uint32_t s = NH_ICMPV6 + (uint32_t)n;

	for (size_t i = 8; i < IP6_HLEN; i += 2)
		s += get_be16(ip + i);
	for (size_t i = 0; i + 1 < n; i += 2)
		s += get_be16(msg + i);
	if (n & 1)
		s += (uint32_t)msg[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* out = p with every bit past the first len cleared */
static void prefix_mask(uint8_t out[16], const uint8_t p[16], unsigned len)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = len > 8 * i ? len - 8 * i : 0;
		out[i] = keep >= 8 ? p[i] : (uint8_t)(p[i] & (0xff00 >> keep));
	}
}

/* Two prefixes share an address when the shorter one's bits agree */
static bool overlaps(const uint8_t a[16], unsigned alen, const uint8_t b[16], unsigned blen)
{
	uint8_t x[16], y[16];
	unsigned n = alen < blen ? alen : blen;

	prefix_mask(x, a, n);
	prefix_mask(y, b, n);
	return memcmp(x, y, 16) == 0;
}

int ra_cfg_check(const struct ra_cfg *c)
{
	static const uint8_t zero_mac[6];
	static const uint8_t link_local[16] = { 0xfe, 0x80 }, mcast[16] = { 0xff };
	static const uint8_t loopback[16] = { [15] = 1 };
	uint8_t p[16];

	if ((c->router_mac[0] & 1) || !memcmp(c->router_mac, zero_mac, 6) ||
	    c->prefix_len < 1 || c->prefix_len > 128)
		return -EINVAL;
	/* an on-link claim over link-local or multicast space would steer
	 * the guest's own fe80:: and ff00:: traffic through our prefix */
	prefix_mask(p, c->prefix, c->prefix_len);
	if (overlaps(p, c->prefix_len, link_local, 10) || overlaps(p, c->prefix_len, mcast, 8) ||
	    !memcmp(p, zero16, 16) || !memcmp(p, loopback, 16))
		return -EINVAL;
	if (c->ndns6 > RA_DNS_MAX)
		return -EINVAL;
	/* RFC 8106 5.1: the addresses are unicast (a guest would send its
	 * queries to them) */
	for (unsigned i = 0; i < c->ndns6; i++)
		if (c->dns6[i][0] == 0xff || !memcmp(c->dns6[i], zero16, 16) ||
		    !memcmp(c->dns6[i], loopback, 16))
			return -EINVAL;
	return 0;
}

size_t ra_build(const struct ra_cfg *c, const uint8_t dst_mac[6], const uint8_t dst_ip[16],
		uint8_t *out, size_t cap)
{
	bool has_mtu = c->mtu >= 1280 && c->mtu <= 65535;
	unsigned ndns = c->ndns6 < RA_DNS_MAX ? c->ndns6 : RA_DNS_MAX;
	size_t rdnss = ndns ? 8 + 16 * (size_t)ndns : 0;
	size_t mlen = RA_HLEN + 8 + (has_mtu ? 8 : 0) + PI_LEN + rdnss;
	size_t total = MSG_OFF + mlen;
	unsigned plen = c->prefix_len < 128 ? c->prefix_len : 128;

	if (total > cap)
		return 0;
	memset(out, 0, total);
	memcpy(out, dst_mac, 6);
	memcpy(out + 6, c->router_mac, 6);
	put_be16(out + 12, ETHERTYPE_IPV6);

	uint8_t *ip = out + ETH_HLEN, *m = out + MSG_OFF, *o = m + RA_HLEN;
	ip[0] = 0x60;
	put_be16(ip + 4, (uint16_t)mlen);
	ip[6] = NH_ICMPV6;
	ip[7] = 255; /* RFC 4861 6.1.2: receivers drop RAs that crossed a router */
	memcpy(ip + 8, router_ip, 16);
	memcpy(ip + 24, dst_ip, 16);

	m[0] = TYPE_RA;
	m[4] = 64;
	/* flags 0: no DHCPv6 on this network, addresses come from SLAAC alone */
	put_be16(m + 6, RA_ROUTER_LIFETIME);

	/* the guest learns our MAC without a Neighbor Solicitation first */
	o[0] = OPT_SLLA;
	o[1] = 1;
	memcpy(o + 2, c->router_mac, 6);
	o += 8;
	if (has_mtu) {
		o[0] = OPT_MTU;
		o[1] = 1;
		put_be32(o + 4, c->mtu);
		o += 8;
	}
	o[0] = OPT_PREFIX;
	o[1] = PI_LEN / 8;
	o[2] = (uint8_t)plen;
	/* SLAAC builds an address from a 64-bit interface identifier (RFC
	 * 4862 5.5.3), so autonomous only makes sense on a /64 */
	o[3] = (uint8_t)(0x80 | (plen == 64 ? 0x40 : 0));
	put_be32(o + 4, RA_VALID_LIFETIME);
	put_be32(o + 8, RA_PREFERRED_LIFETIME);
	prefix_mask(o + 16, c->prefix, plen);
	o += PI_LEN;
	if (ndns) {
		/* RFC 8106 5.1: length in 8-byte units, 1 + 2 per address */
		o[0] = OPT_RDNSS;
		o[1] = (uint8_t)(1 + 2 * ndns);
		put_be32(o + 4, RA_RDNSS_LIFETIME);
		for (unsigned i = 0; i < ndns; i++)
			memcpy(o + 8 + 16 * i, c->dns6[i], 16);
	}

	put_be16(m + 2, (uint16_t)~icmp6_sum(ip, m, mlen));
	return total;
}

size_t ra_build_unsolicited(const struct ra_cfg *c, uint8_t *out, size_t cap)
{
	return ra_build(c, all_nodes_mac, all_nodes_ip, out, cap);
}

/* The checks an RS and an NS share (RFC 4861 6.1.1, 7.1.1): the IPv6
 * header of an untagged frame from a unicast MAC, ICMPv6 of the given
 * type with code 0 and a correct checksum, at least hlen bytes, options
 * from offset hlen each nonzero and inside the packet, and none carrying
 * a link-layer address when the source is ::. The ICMPv6 length, or 0. */
static size_t icmp6_valid(const uint8_t *f, size_t len, uint8_t type, size_t hlen)
{
	/* a multicast Ethernet source is forged: a unicast RA to it would
	 * go to a whole group */
	if (len < MSG_OFF + hlen || get_be16(f + 12) != ETHERTYPE_IPV6 || (f[6] & 1))
		return 0;
	const uint8_t *ip = f + ETH_HLEN, *src = ip + 8, *m = f + MSG_OFF;
	/* trust decision: the payload length is the guest's; it must fit in
	 * what the guest actually sent, and everything below reads only that */
	size_t n = get_be16(ip + 4);
	if ((ip[0] >> 4) != 6 || ip[6] != NH_ICMPV6 || ip[7] != 255 || src[0] == 0xff ||
	    n < hlen || n > len - MSG_OFF)
		return 0;
	if (m[0] != type || m[1] != 0 || icmp6_sum(ip, m, n) != 0xffff)
		return 0;
	bool unspec = !memcmp(src, zero16, 16);
	for (size_t i = hlen; i < n; i += (size_t)m[i + 1] * 8) {
		/* a zero length would loop for ever; past n is not the guest's
		 * packet (both are discarded) */
		if (n - i < 2 || m[i + 1] == 0 || (size_t)m[i + 1] * 8 > n - i)
			return 0;
		/* nobody's link-layer address goes with :: */
		if (m[i] == OPT_SLLA && unspec)
			return 0;
	}
	return n;
}

int ra_dad_target(const uint8_t *f, size_t len, const uint8_t mac[6], uint8_t target[16])
{
	/* the tap's socket sees frames both ways: only those the guest sent
	 * carry its MAC as the source (another port's DAD, flooded to the
	 * guest, does not) */
	if (len < ETH_HLEN || memcmp(f + 6, mac, 6) || !icmp6_valid(f, len, TYPE_NS, NS_HLEN))
		return 0;
	const uint8_t *src = f + ETH_HLEN + 8, *dst = src + 16, *t = f + MSG_OFF + 8;
	static const uint8_t sn[13] = { 0xff, 0x02, [11] = 1, [12] = 0xff };
	/* DAD's source is ::, and it asks the target's own solicited-node
	 * group; a multicast target is no address to claim */
	if (memcmp(src, zero16, 16) || memcmp(dst, sn, 13) || memcmp(dst + 13, t + 13, 3) ||
	    t[0] == 0xff)
		return 0;
	memcpy(target, t, 16);
	return 1;
}

int ra_prefix_has(const struct ra_cfg *c, const uint8_t a[16])
{
	uint8_t x[16], y[16];
	unsigned plen = c->prefix_len < 128 ? c->prefix_len : 128;

	prefix_mask(x, a, plen);
	prefix_mask(y, c->prefix, plen);
	return !memcmp(x, y, 16);
}

int ra_handle(void *opaque, const uint8_t *f, size_t len, uint8_t *reply, size_t *reply_len)
{
	const struct ra_cfg *c = opaque;
	size_t cap = *reply_len;

	*reply_len = 0;
	if (!icmp6_valid(f, len, TYPE_RS, RS_HLEN))
		return 0;
	const uint8_t *src = f + ETH_HLEN + 8;
	bool unspec = !memcmp(src, zero16, 16);

	/* copies: ra_build clears out first, and a caller may reuse the frame as out */
	uint8_t mac[6], dst[16];
	memcpy(mac, unspec ? all_nodes_mac : f + 6, 6);
	memcpy(dst, unspec ? all_nodes_ip : src, 16);
	size_t r = ra_build(c, mac, dst, reply, cap);
	*reply_len = r;
	return r != 0;
}

void ra_bpf(struct sock_filter *out, uint32_t match, uint32_t miss)
{
	const struct sock_filter prog[RA_BPF_LEN] = {
		/* a load past the end would end the program with 0, not miss */
		BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, MSG_OFF + 1, 0, 8),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),       /* ethertype */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_IPV6, 0, 6),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, ETH_HLEN + 6), /* next header */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NH_ICMPV6, 0, 4),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, MSG_OFF),  /* ICMPv6 type */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TYPE_RS, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TYPE_NS, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, match),
		BPF_STMT(BPF_RET | BPF_K, miss),
	};
	memcpy(out, prog, sizeof(prog));
}

int ra_claim_pick(const uint8_t cur[16], bool have, const uint8_t (*claims)[16], unsigned n,
		  uint8_t out[16])
{
	for (unsigned i = 0; have && i < n; i++)
		if (!memcmp(claims[i], cur, 16))
			return 0;
	if (!n)
		return 0;
	memcpy(out, claims[n - 1], 16);
	return 1;
}

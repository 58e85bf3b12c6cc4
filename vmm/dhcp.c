#include "dhcp.h"

#include "bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define IP_HLEN 20
#define UDP_HLEN 8
#define PORT_SERVER 67
#define PORT_CLIENT 68
#define IPPROTO_UDP_ 17

/* BOOTP fixed part (RFC 2131 figure 1) */
#define B_OP 0
#define B_HTYPE 1
#define B_HLEN 2
#define B_XID 4
#define B_FLAGS 10
#define B_CIADDR 12
#define B_YIADDR 16
#define B_GIADDR 24
#define B_CHADDR 28
#define B_SNAME 44
#define B_FILE 108
#define B_COOKIE 236
#define B_OPTIONS 240
#define BOOTP_MIN 300 /* RFC 1542: pad replies to the BOOTP minimum */
#define FLAG_BROADCAST 0x8000

enum {
	OPT_PAD = 0, OPT_MASK = 1, OPT_ROUTER = 3, OPT_DNS = 6, OPT_HOSTNAME = 12,
	OPT_MTU = 26, OPT_BROADCAST = 28, OPT_REQ_IP = 50, OPT_LEASE = 51,
	OPT_OVERLOAD = 52, OPT_TYPE = 53, OPT_SERVER_ID = 54, OPT_T1 = 58,
	OPT_T2 = 59, OPT_END = 255,
};
enum {
	DISCOVER = 1, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM,
};

/* The Ethernet source of our replies when the guest did not name one (a
 * broadcast request): locally administered, never seen beyond this VM. */
static const uint8_t server_mac[6] = { 0x02, 0x6b, 0x6c, 0x00, 0x00, 0x01 };
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* RFC 1071 one's-complement sum, folded; not yet inverted */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += get_be16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix ? ~0u << (32 - prefix) : 0;
}

int dhcp_lease_check(const struct dhcp_lease *l)
{
	if (l->prefix < 1 || l->prefix > 30 || l->ndns > DHCP_DNS_MAX || (l->mac[0] & 1))
		return -EINVAL;
	uint32_t m = mask_of(l->prefix);
	if ((l->addr & m) != (l->router & m) || l->addr == l->router ||
	    (l->addr & ~m) == 0 || (l->addr & ~m) == ~m)
		return -EINVAL;
	if (memchr(l->hostname, 0, sizeof(l->hostname)) == NULL)
		return -EINVAL;
	return 0;
}

/* What we read out of the options. Each option we act on may appear once:
 * RFC 3396 would concatenate repeats, which for these fixed-size options
 * gives a wrong length, so a repeat makes the message malformed. */
struct opts {
	int type;
	int overload;
	bool has_sid, has_req;
	uint32_t sid, req;
	unsigned seen_type, seen_sid, seen_req, seen_overload;
};

/* One option area (the options field, or file/sname when overloaded).
 * 0, or -1 if an option's length runs past the area. No end option is
 * tolerated: the area's end ends it. */
static int parse_area(const uint8_t *p, size_t n, struct opts *o, bool main_area)
{
	size_t i = 0;

	while (i < n) {
		uint8_t code = p[i];
		if (code == OPT_PAD) {
			i++;
			continue;
		}
		if (code == OPT_END)
			return 0;
		/* trust decision: the length byte is the guest's; it must fit
		 * in what is left of this area, never beyond */
		if (n - i < 2 || p[i + 1] > n - i - 2)
			return -1;
		uint8_t len = p[i + 1];
		const uint8_t *v = p + i + 2;
		switch (code) {
		case OPT_TYPE:
			o->seen_type++;
			if (len == 1)
				o->type = v[0];
			break;
		case OPT_SERVER_ID:
			o->seen_sid++;
			if (len == 4) {
				o->has_sid = true;
				o->sid = get_be32(v);
			}
			break;
		case OPT_REQ_IP:
			o->seen_req++;
			if (len == 4) {
				o->has_req = true;
				o->req = get_be32(v);
			}
			break;
		case OPT_OVERLOAD:
			/* only meaningful in the options field itself (RFC 2131 4.1) */
			if (main_area) {
				o->seen_overload++;
				if (len == 1 && v[0] >= 1 && v[0] <= 3)
					o->overload = v[0];
			}
			break;
		default:
			break;
		}
		i += 2 + (size_t)len;
	}
	return 0;
}

static int parse_opts(const uint8_t *b, size_t n, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	if (parse_area(b + B_OPTIONS, n - B_OPTIONS, o, true))
		return -1;
	/* RFC 2131 4.1: the options field first, then file, then sname */
	if ((o->overload & 1) && parse_area(b + B_FILE, 128, o, false))
		return -1;
	if ((o->overload & 2) && parse_area(b + B_SNAME, 64, o, false))
		return -1;
	if (o->seen_type != 1 || o->seen_sid > 1 || o->seen_req > 1 || o->seen_overload > 1)
		return -1;
	if ((o->seen_sid && !o->has_sid) || (o->seen_req && !o->has_req))
		return -1;
	return 0;
}

static uint8_t *opt_put(uint8_t *p, uint8_t code, const void *v, uint8_t len)
{
	p[0] = code;
	p[1] = len;
	memcpy(p + 2, v, len);
	return p + 2 + len;
}

static uint8_t *opt_put32(uint8_t *p, uint8_t code, uint32_t v)
{
	uint8_t b[4];
	put_be32(b, v);
	return opt_put(p, code, b, 4);
}

/* Our options after the BOOTP header; returns the end. Fits in
 * DHCP_REPLY_MAX: 3 + 6*8 + 2+12 + 2+63 + 4 + 1 bytes at most. */
static uint8_t *put_options(const struct dhcp_lease *l, uint8_t *p, int type, bool inform)
{
	uint8_t t = (uint8_t)type;
	uint32_t lt = l->lease_time ? l->lease_time : DHCP_LEASE_TIME;
	uint32_t m = mask_of(l->prefix);

	p = opt_put(p, OPT_TYPE, &t, 1);
	p = opt_put32(p, OPT_SERVER_ID, l->router);
	if (type == NAK)
		return p;
	/* INFORM: the client has its address already; no lease (RFC 2131 4.3.5) */
	if (!inform) {
		p = opt_put32(p, OPT_LEASE, lt);
		p = opt_put32(p, OPT_T1, lt / 2);
		p = opt_put32(p, OPT_T2, (uint32_t)((uint64_t)lt * 7 / 8));
	}
	p = opt_put32(p, OPT_MASK, m);
	p = opt_put32(p, OPT_BROADCAST, (l->addr & m) | ~m);
	p = opt_put32(p, OPT_ROUTER, l->router);
	if (l->ndns) {
		uint8_t d[4 * DHCP_DNS_MAX];
		unsigned k = l->ndns < DHCP_DNS_MAX ? l->ndns : DHCP_DNS_MAX;
		for (unsigned i = 0; i < k; i++)
			put_be32(d + 4 * i, l->dns[i]);
		p = opt_put(p, OPT_DNS, d, (uint8_t)(4 * k));
	}
	size_t hl = strnlen(l->hostname, DHCP_HOSTNAME_MAX);
	if (hl)
		p = opt_put(p, OPT_HOSTNAME, l->hostname, (uint8_t)hl);
	if (l->mtu >= 68 && l->mtu <= 65535) {
		uint8_t b[2];
		put_be16(b, (uint16_t)l->mtu);
		p = opt_put(p, OPT_MTU, b, 2);
	}
	return p;
}

/* Build the whole reply frame. req_eth: the request's Ethernet header;
 * b: its BOOTP message. Returns the frame length, 0 if cap is too small. */
static size_t build_reply(const struct dhcp_lease *l, const uint8_t *req_eth,
			  const uint8_t *b, int type, bool inform, uint8_t *out, size_t cap)
{
	uint8_t msg[DHCP_REPLY_MAX];
	uint32_t ciaddr = get_be32(b + B_CIADDR);
	bool nak = type == NAK;

	memset(msg, 0, sizeof(msg));
	msg[B_OP] = 2; /* BOOTREPLY */
	msg[B_HTYPE] = 1;
	msg[B_HLEN] = 6;
	memcpy(msg + B_XID, b + B_XID, 4);
	memcpy(msg + B_FLAGS, b + B_FLAGS, 2);
	memcpy(msg + B_GIADDR, b + B_GIADDR, 4);
	memcpy(msg + B_CHADDR, b + B_CHADDR, 16);
	/* RFC 2131 table 3: ciaddr echoed in an ACK only; yiaddr in OFFER/ACK
	 * except the ACK to INFORM */
	if (type == ACK)
		put_be32(msg + B_CIADDR, ciaddr);
	if (!nak && !inform)
		put_be32(msg + B_YIADDR, l->addr);
	put_be32(msg + B_COOKIE, 0x63825363);
	uint8_t *end = put_options(l, msg + B_OPTIONS, type, inform);
	*end++ = OPT_END;
	size_t blen = (size_t)(end - msg);
	if (blen < BOOTP_MIN)
		blen = BOOTP_MIN;

	size_t total = ETH_HLEN + IP_HLEN + UDP_HLEN + blen;
	if (total > cap)
		return 0;

	/* where it goes (RFC 2131 4.1): a NAK and a broadcast-flagged request
	 * to everyone; a client with an address (renew, INFORM) to that
	 * address; else to the offered address at the client's MAC */
	uint32_t dst;
	const uint8_t *dmac = b + B_CHADDR;
	if (nak || (get_be16(b + B_FLAGS) & FLAG_BROADCAST) || (inform && !ciaddr)) {
		dst = 0xffffffffu;
		dmac = bcast_mac;
	} else if (ciaddr) {
		dst = ciaddr;
	} else {
		dst = l->addr;
	}

	uint8_t *e = out, *ip = out + ETH_HLEN, *udp = ip + IP_HLEN;
	memcpy(e, dmac, 6);
	/* the guest addressed the server's MAC as it resolved it (the bridge's,
	 * when renewing): answer from there; broadcast requests from ours */
	memcpy(e + 6, (req_eth[0] & 1) ? server_mac : req_eth, 6);
	put_be16(e + 12, ETHERTYPE_IPV4);

	memset(ip, 0, IP_HLEN);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)(IP_HLEN + UDP_HLEN + blen));
	ip[8] = 64; /* TTL */
	ip[9] = IPPROTO_UDP_;
	put_be32(ip + 12, l->router);
	put_be32(ip + 16, dst);
	put_be16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));

	put_be16(udp, PORT_SERVER);
	put_be16(udp + 2, PORT_CLIENT);
	put_be16(udp + 4, (uint16_t)(UDP_HLEN + blen));
	put_be16(udp + 6, 0);
	memcpy(udp + UDP_HLEN, msg, blen);
	/* pseudo-header: addresses, protocol, UDP length */
	uint32_t s = csum_add(0, ip + 12, 8);
	s += IPPROTO_UDP_ + UDP_HLEN + (uint32_t)blen;
	s = csum_add(s, udp, UDP_HLEN + blen);
	uint16_t c = csum_fold(s);
	put_be16(udp + 6, c ? c : 0xffff); /* 0 means "no checksum" in UDP */
	return total;
}

enum dhcp_verdict dhcp_handle(const struct dhcp_lease *l, const uint8_t *f,
			      size_t len, uint8_t *reply, size_t *reply_len)
{
	size_t cap = *reply_len;
	*reply_len = 0;

	/* --- is it ours? Anything we cannot read this far is not. */
	if (len < ETH_HLEN + IP_HLEN || get_be16(f + 12) != ETHERTYPE_IPV4)
		return DHCP_PASS; /* includes VLAN tags: another segment's business */
	const uint8_t *ip = f + ETH_HLEN;
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;
	size_t avail = len - ETH_HLEN;
	if ((ip[0] >> 4) != 4 || ihl < IP_HLEN || ihl + UDP_HLEN > avail || ip[9] != IPPROTO_UDP_)
		return DHCP_PASS;
	uint16_t frag = get_be16(ip + 6);
	if (frag & 0x1fff)
		return DHCP_PASS; /* a later fragment: no UDP header to judge by */
	const uint8_t *udp = ip + ihl;
	if (get_be16(udp + 2) != PORT_SERVER)
		return DHCP_PASS;
	uint32_t m = mask_of(l->prefix), dst = get_be32(ip + 16);
	if (dst != 0xffffffffu && dst != l->router && dst != ((l->router & m) | ~m))
		return DHCP_PASS; /* some other server's: not the network's DHCP */

	/* --- ours from here on: whatever is wrong with it, it is dropped.
	 * Trust decisions: the IP total length and UDP length are the
	 * guest's; both must fit inside what it actually sent (Ethernet
	 * padding after them is fine), and the UDP one inside the IP one. */
	size_t tot = get_be16(ip + 2);
	if (tot < ihl + UDP_HLEN || tot > avail || (frag & 0x2000))
		return DHCP_DROP; /* bad length, or a first fragment we will not reassemble */
	if (csum_fold(csum_add(0, ip, ihl)) != 0)
		return DHCP_DROP;
	size_t ulen = get_be16(udp + 4);
	if (ulen < UDP_HLEN || ulen > tot - ihl)
		return DHCP_DROP;
	/* the UDP checksum is not checked: with checksum offload the guest
	 * leaves a partial sum there, and the header that says so is not ours */
	const uint8_t *b = udp + UDP_HLEN;
	size_t blen = ulen - UDP_HLEN;
	if (blen < B_OPTIONS || b[B_OP] != 1 || b[B_HTYPE] != 1 || b[B_HLEN] != 6 ||
	    get_be32(b + B_COOKIE) != 0x63825363)
		return DHCP_DROP;
	/* one client: the lease's MAC, as sender and as the client named */
	if (memcmp(f + 6, l->mac, 6) || memcmp(b + B_CHADDR, l->mac, 6))
		return DHCP_DROP;
	if (get_be32(b + B_GIADDR))
		return DHCP_DROP; /* a relay inside our own guest: not a case we serve */

	struct opts o;
	if (parse_opts(b, blen, &o))
		return DHCP_DROP;

	int type;
	bool inform = false;
	uint32_t ciaddr = get_be32(b + B_CIADDR);
	switch (o.type) {
	case DISCOVER:
		type = OFFER;
		break;
	case REQUEST:
		if (o.has_sid) {
			/* SELECTING: the client chose; another server is not us */
			if (o.sid != l->router)
				return DHCP_DROP;
			type = o.has_req && o.req == l->addr && !ciaddr ? ACK : NAK;
		} else {
			/* INIT-REBOOT (requested address) or RENEWING/REBINDING
			 * (ciaddr): the address must be the lease's */
			uint32_t want = o.has_req ? o.req : ciaddr;
			if (!want)
				return DHCP_DROP;
			type = want == l->addr && (!ciaddr || ciaddr == l->addr) ? ACK : NAK;
		}
		break;
	case INFORM:
		type = ACK;
		inform = true;
		break;
	case DECLINE:  /* the address is in use on the wire: nothing else to offer */
	case RELEASE:  /* the lease is the VM's for its lifetime: nothing to free */
	default:       /* server-to-client types, unknown types */
		return DHCP_DROP;
	}
	size_t n = build_reply(l, f, b, type, inform, reply, cap);
	if (!n)
		return DHCP_DROP;
	*reply_len = n;
	return DHCP_REPLY;
}

int dhcp_tx_filter(void *opaque, const uint8_t *frame, size_t len,
		   uint8_t *reply, size_t *reply_len)
{
	return dhcp_handle(opaque, frame, len, reply, reply_len) != DHCP_PASS;
}

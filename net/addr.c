/* Addresses over rtnetlink: IPv4, and IPv6 for the networks that have it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include "priv.h"

static uint32_t mask_of(unsigned prefix)
{
	return prefix ? ~0u << (32 - prefix) : 0;
}

bool cidr_overlap(uint32_t a, unsigned pa, uint32_t b, unsigned pb)
{
	uint32_t m = mask_of(pa < pb ? pa : pb);

	return (a & m) == (b & m);
}

/* NEWADDR (exclusive) or DELADDR: the header, without the address. */
static struct nlmsghdr *addr_hdr(void *buf, uint32_t seq, uint16_t type,
				 uint8_t family, int ifindex, unsigned prefix,
				 uint8_t scope)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	if (type == RTM_NEWADDR)
		nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = family;
	ifa->ifa_prefixlen = (uint8_t)prefix;
	ifa->ifa_scope = scope;
	ifa->ifa_index = (uint32_t)ifindex;
	return nlh;
}

struct nlmsghdr *rt_build_addr(void *buf, uint32_t seq, uint16_t type,
			       int ifindex, uint32_t addr, unsigned prefix)
{
	struct nlmsghdr *nlh = addr_hdr(buf, seq, type, AF_INET, ifindex, prefix,
					RT_SCOPE_UNIVERSE);

	mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(addr));
	mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(addr));
	if (type == RTM_NEWADDR)
		mnl_attr_put_u32(nlh, IFA_BROADCAST,
				 htonl(addr | ~mask_of(prefix)));
	return nlh;
}

struct addr_want {
	const struct nlattr *tb[IFA_MAX + 1];
	uint16_t alen;
};

static int addr_attr_cb(const struct nlattr *a, void *data)
{
	struct addr_want *w = data;
	int t = mnl_attr_get_type(a);

	if ((t == IFA_LOCAL || t == IFA_ADDRESS) &&
	    mnl_attr_get_payload_len(a) == w->alen)
		w->tb[t] = a;
	return MNL_CB_OK;
}

/* The address attribute of an RTM_NEWADDR of family, alen bytes long:
 * IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
 * point-to-point links, and the only one some IPv6 replies carry. NULL
 * if the message is no such address. */
static const struct nlattr *addr_of(const struct nlmsghdr *nlh, uint8_t family,
				    uint16_t alen, const struct ifaddrmsg **ifa)
{
	struct addr_want w = {.alen = alen};

	if (nlh->nlmsg_type != RTM_NEWADDR ||
	    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(**ifa)))
		return NULL;
	*ifa = mnl_nlmsg_get_payload(nlh);
	if ((*ifa)->ifa_family != family ||
	    mnl_attr_parse(nlh, sizeof(**ifa), addr_attr_cb, &w) < 0)
		return NULL;
	return w.tb[IFA_LOCAL] ? w.tb[IFA_LOCAL] : w.tb[IFA_ADDRESS];
}

int addr_parse(const struct nlmsghdr *nlh, struct kl_addr4 *a)
{
	const struct ifaddrmsg *ifa;
	const struct nlattr *x = addr_of(nlh, AF_INET, 4, &ifa);

	if (!x)
		return -EINVAL;
	a->ifindex = (int)ifa->ifa_index;
	a->prefix = ifa->ifa_prefixlen;
	a->addr = ntohl(mnl_attr_get_u32(x));
	return 0;
}

static int parse_cb(const struct nlmsghdr *nlh, void *a)
{
	return addr_parse(nlh, a);
}

/* Every address of family, parsed by parse into elem-byte objects. */
static int dump_family(struct kl_nl *nl, uint8_t family, size_t elem,
		       nl_data_cb parse, void **out, size_t *n)
{
	char buf[64];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = RTM_GETADDR;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = family;
	return nl_dump_array(nl, nlh, elem, parse, out, n);
}

int addr_dump(struct kl_nl *nl, struct kl_addr4 **out, size_t *n)
{
	void *v;
	int err = dump_family(nl, AF_INET, sizeof(**out), parse_cb, &v, n);

	if (!err)
		*out = v;
	return err;
}

bool cidr6_overlap(const uint8_t a[16], unsigned pa, const uint8_t b[16],
		   unsigned pb)
{
	unsigned len = pa < pb ? pa : pb;

	for (unsigned i = 0; i < len; i++) {
		uint8_t bit = (uint8_t)(0x80u >> (i % 8));
		if ((a[i / 8] & bit) != (b[i / 8] & bit))
			return false;
	}
	return true;
}

struct nlmsghdr *rt_build_addr6(void *buf, uint32_t seq, uint16_t type,
				int ifindex, const uint8_t addr[16],
				unsigned prefix)
{
	struct nlmsghdr *nlh = addr_hdr(buf, seq, type, AF_INET6, ifindex, prefix,
					addr[0] == 0xfe ? RT_SCOPE_LINK
							: RT_SCOPE_UNIVERSE);

	mnl_attr_put(nlh, IFA_LOCAL, 16, addr);
	/* No duplicate address detection: a tentative address could not
	 * source the guests' router advertisements or answer them for the
	 * second it takes, and these addresses are the network's own. */
	if (type == RTM_NEWADDR)
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	return nlh;
}

int addr6_parse(const struct nlmsghdr *nlh, struct kl_addr6 *a)
{
	const struct ifaddrmsg *ifa;
	const struct nlattr *x = addr_of(nlh, AF_INET6, 16, &ifa);

	if (!x)
		return -EINVAL;
	a->ifindex = (int)ifa->ifa_index;
	a->prefix = ifa->ifa_prefixlen;
	a->scope = ifa->ifa_scope;
	memcpy(a->addr, mnl_attr_get_payload(x), 16);
	return 0;
}

static int parse6_cb(const struct nlmsghdr *nlh, void *a)
{
	return addr6_parse(nlh, a);
}

int addr6_dump(struct kl_nl *nl, struct kl_addr6 **out, size_t *n)
{
	void *v;
	int err = dump_family(nl, AF_INET6, sizeof(**out), parse6_cb, &v, n);

	/* IPv6 off in this kernel (ipv6.disable=1): no addresses at all */
	if (err == -EAFNOSUPPORT || err == -EOPNOTSUPP) {
		*n = 0;
		v = NULL;
		err = 0;
	}
	if (!err)
		*out = v;
	return err;
}

struct ra_ctx {
	int ifs[64];
	size_t n;
};

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ra_ctx *c = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	int oif = 0;

	if (nlh->nlmsg_type != RTM_NEWROUTE ||
	    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*rtm)) ||
	    rtm->rtm_family != AF_INET6 || rtm->rtm_protocol != RTPROT_RA)
		return 0;
	mnl_attr_for_each(a, nlh, sizeof(*rtm))
		if (mnl_attr_get_type(a) == RTA_OIF &&
		    mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			oif = (int)mnl_attr_get_u32(a);
	for (size_t i = 0; i < c->n; i++)
		if (c->ifs[i] == oif)
			return 0;
	if (oif > 0 && c->n < ARRAY_SIZE(c->ifs))
		c->ifs[c->n++] = oif;
	return 0;
}

static void ra_reset(void *data)
{
	((struct ra_ctx *)data)->n = 0;
}

int ra_routes_at_risk(struct kl_nl *nl, void (*fn)(void *, int), void *data)
{
	char buf[64], path[96], ifn[IF_NAMESIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct ra_ctx c = {.n = 0};
	int err, v;

	nlh->nlmsg_type = RTM_GETROUTE;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET6;
	if ((err = nl_dump(nl, nlh, route_cb, ra_reset, &c)))
		return err == -EAFNOSUPPORT ? 0 : err;
	for (size_t i = 0; i < c.n; i++) {
		if (!if_indextoname((unsigned)c.ifs[i], ifn))
			continue;
		snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/accept_ra",
			 ifn);
		/* accept_ra 2 keeps taking them with forwarding on */
		if (sysctl_read_int(path, &v) == 0 && v == 1)
			fn(data, c.ifs[i]);
	}
	return 0;
}

/* IPv4 addresses over rtnetlink. */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_addr.h>
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

struct nlmsghdr *rt_build_addr(void *buf, uint32_t seq, uint16_t type,
			       int ifindex, uint32_t addr, unsigned prefix)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	if (type == RTM_NEWADDR)
		nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (uint8_t)prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)ifindex;
	mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(addr));
	mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(addr));
	if (type == RTM_NEWADDR)
		mnl_attr_put_u32(nlh, IFA_BROADCAST,
				 htonl(addr | ~mask_of(prefix)));
	return nlh;
}

static int addr_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int t = mnl_attr_get_type(a);

	if ((t == IFA_LOCAL || t == IFA_ADDRESS) &&
	    mnl_attr_validate(a, MNL_TYPE_U32) == 0)
		tb[t] = a;
	return MNL_CB_OK;
}

int addr_parse(const struct nlmsghdr *nlh, struct kl_addr4 *a)
{
	const struct ifaddrmsg *ifa;
	const struct nlattr *tb[IFA_MAX + 1] = {0};

	if (nlh->nlmsg_type != RTM_NEWADDR ||
	    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifa)))
		return -EINVAL;
	ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET)
		return -EINVAL;
	if (mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb) < 0)
		return -EINVAL;
	/* IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer
	 * on point-to-point links. */
	const struct nlattr *x = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
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

int addr_dump(struct kl_nl *nl, struct kl_addr4 **out, size_t *n)
{
	char buf[64];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	void *v;
	int err;

	nlh->nlmsg_type = RTM_GETADDR;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	err = nl_dump_array(nl, nlh, sizeof(**out), parse_cb, &v, n);
	if (!err)
		*out = v;
	return err;
}

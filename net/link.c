/* Links over rtnetlink: bridge create, set (master, MTU, up), delete,
 * and look-ups by name or whole dumps. */
#include <errno.h>
#include <string.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include "priv.h"

static struct nlmsghdr *link_hdr(void *buf, uint16_t type, uint16_t flags,
				 uint32_t seq, int ifindex)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	return nlh;
}

struct nlmsghdr *rt_build_newbridge(void *buf, uint32_t seq, const char *name,
				    int ifindex, unsigned mtu, bool stp,
				    const char *alias)
{
	struct nlmsghdr *nlh = link_hdr(buf, RTM_NEWLINK,
					NLM_F_CREATE | NLM_F_EXCL, seq, ifindex);
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	struct nlattr *info, *data;

	/* Up from birth: one message instead of create + set. */
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	/* Kernels that set the alias at creation do; the others ignore it,
	 * so a SETLINK follows in the same sendmsg. */
	if (alias)
		mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, stp ? 1 : 0);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return nlh;
}

struct nlmsghdr *rt_build_setlink(void *buf, uint32_t seq, int ifindex,
				  const char *name, int master, unsigned mtu,
				  bool up, const char *alias)
{
	struct nlmsghdr *nlh = link_hdr(buf, RTM_SETLINK, 0, seq, ifindex);
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);

	if (!ifindex && name)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (alias)
		mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	if (master)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	if (up) {
		ifm->ifi_flags = IFF_UP;
		ifm->ifi_change = IFF_UP;
	}
	return nlh;
}

struct nlmsghdr *rt_build_dellink(void *buf, uint32_t seq, int ifindex,
				  const char *name)
{
	struct nlmsghdr *nlh = link_hdr(buf, RTM_DELLINK, 0, seq, ifindex);

	if (!ifindex && name)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return nlh;
}

struct nlmsghdr *rt_build_setgroup(void *buf, uint32_t seq, int ifindex,
				   const char *name, uint32_t group)
{
	struct nlmsghdr *nlh = link_hdr(buf, RTM_SETLINK, 0, seq, ifindex);

	if (!ifindex && name)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_GROUP, group);
	return nlh;
}

struct nlmsghdr *rt_build_delgroup(void *buf, uint32_t seq, uint32_t group)
{
	struct nlmsghdr *nlh = link_hdr(buf, RTM_DELLINK, 0, seq, 0);

	/* No index and no name: the kernel deletes the whole group. */
	mnl_attr_put_u32(nlh, IFLA_GROUP, group);
	return nlh;
}

struct nlmsghdr *rt_build_getlink(void *buf, uint32_t seq, const char *name)
{
	struct nlmsghdr *nlh = link_hdr(buf, RTM_GETLINK, 0, seq, 0);

	if (name)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	/* Statistics are most of a link message and nobody here reads them. */
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	return nlh;
}

static int tun_cb(const struct nlattr *a, void *data)
{
	struct kl_link *l = data;
	int t = mnl_attr_get_type(a);

	switch (t) {
	case IFLA_TUN_TYPE:
	case IFLA_TUN_PERSIST:
	case IFLA_TUN_MULTI_QUEUE:
		if (mnl_attr_validate(a, MNL_TYPE_U8))
			break;
		if (t == IFLA_TUN_TYPE)
			l->tun_tap = mnl_attr_get_u8(a) == IFF_TAP;
		else if (t == IFLA_TUN_PERSIST)
			l->tun_persist = mnl_attr_get_u8(a);
		else
			l->tun_mq = mnl_attr_get_u8(a);
		break;
	case IFLA_TUN_OWNER:
	case IFLA_TUN_GROUP:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
			uint32_t v = mnl_attr_get_u32(a);
			int64_t id = v == (uint32_t)-1 ? -1 : (int64_t)v;
			if (t == IFLA_TUN_OWNER)
				l->tun_owner = id;
			else
				l->tun_group = id;
		}
		break;
	}
	return MNL_CB_OK;
}

static int info_cb(const struct nlattr *a, void *data)
{
	struct kl_link *l = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND &&
	    mnl_attr_validate(a, MNL_TYPE_STRING) == 0) {
		size_t n = mnl_attr_get_payload_len(a);
		if (n >= sizeof(l->kind))
			n = sizeof(l->kind) - 1;
		memcpy(l->kind, mnl_attr_get_payload(a), n);
		l->kind[n] = 0;
	}
	/* IFLA_INFO_KIND comes first, so the kind is known here */
	if (mnl_attr_get_type(a) == IFLA_INFO_DATA && !strcmp(l->kind, "tun") &&
	    mnl_attr_validate(a, MNL_TYPE_NESTED) == 0)
		(void)mnl_attr_parse_nested(a, tun_cb, l);
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	struct kl_link *l = data;

	switch (mnl_attr_get_type(a)) {
	case IFLA_IFNAME:
		if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			snprintf(l->name, sizeof(l->name), "%s",
				 mnl_attr_get_str(a));
		break;
	case IFLA_IFALIAS:
		/* a long alias is not ours: leave it "" */
		if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 &&
		    strlen(mnl_attr_get_str(a)) < sizeof(l->alias))
			snprintf(l->alias, sizeof(l->alias), "%s",
				 mnl_attr_get_str(a));
		break;
	case IFLA_ADDRESS:
		if (mnl_attr_get_payload_len(a) == 6)
			memcpy(l->mac, mnl_attr_get_payload(a), 6);
		break;
	case IFLA_MTU:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			l->mtu = mnl_attr_get_u32(a);
		break;
	case IFLA_MASTER:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			l->master = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_GROUP:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			l->group = mnl_attr_get_u32(a);
		break;
	case IFLA_LINKINFO:
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) == 0)
			(void)mnl_attr_parse_nested(a, info_cb, l);
		break;
	}
	return MNL_CB_OK;
}

int link_parse(const struct nlmsghdr *nlh, struct kl_link *l)
{
	const struct ifinfomsg *ifm;

	memset(l, 0, sizeof(*l));
	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifm)))
		return -EINVAL;
	ifm = mnl_nlmsg_get_payload(nlh);
	l->ifindex = ifm->ifi_index;
	l->flags = ifm->ifi_flags;
	l->tun_owner = l->tun_group = -1;
	if (mnl_attr_parse(nlh, sizeof(*ifm), link_attr_cb, l) < 0)
		return -EINVAL;
	return 0;
}

static int get_cb(const struct nlmsghdr *nlh, void *data)
{
	return link_parse(nlh, data) == 0 ? 0 : -EBADMSG;
}

int link_get(struct kl_nl *nl, const char *name, struct kl_link *out)
{
	char buf[256];
	uint32_t seq = ++nl->seq;
	struct nlmsghdr *nlh = rt_build_getlink(buf, seq, name);

	memset(out, 0, sizeof(*out));
	return nl_talk(nl, nlh, nlh->nlmsg_len, seq, 1, NULL, get_cb, out);
}

int link_dump(struct kl_nl *nl, struct kl_link **out, size_t *n)
{
	char buf[256];
	struct nlmsghdr *nlh = rt_build_getlink(buf, 0, NULL);
	void *v;
	/* get_cb's -EBADMSG for a reply that is not a link skips it here */
	int err = nl_dump_array(nl, nlh, sizeof(**out), get_cb, &v, n);

	if (!err)
		*out = v;
	return err;
}

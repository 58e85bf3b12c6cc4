/* rtnetlink requests built by net/ and parsed back with libmnl, plus the
 * extended-ack parser fed a crafted kernel error. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/if_tun.h>
#include "t.h"
#include "priv.h"
#include "nltb.h"

static void newbridge(void)
{
	char buf[512];
	struct nlmsghdr *nlh = rt_build_newbridge(buf, 7, "kl-lab", 0, 9000, true, NULL);
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	struct tb t = {0}, info = {0}, data = {0};

	CHECK_EQ(nlh->nlmsg_type, RTM_NEWLINK, "newbridge: RTM_NEWLINK");
	CHECK(nlh->nlmsg_flags & NLM_F_ACK, "newbridge asks for an ack");
	CHECK((nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ==
		      (NLM_F_CREATE | NLM_F_EXCL), "newbridge: create, exclusive");
	CHECK_EQ(nlh->nlmsg_seq, 7, "newbridge: sequence number");
	CHECK(ifm->ifi_flags & IFF_UP && ifm->ifi_change & IFF_UP,
	      "newbridge: created up");
	CHECK(mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t) >= 0,
	      "newbridge attributes parse");
	CHECK(t.a[IFLA_IFNAME] && !strcmp(mnl_attr_get_str(t.a[IFLA_IFNAME]),
					  "kl-lab"), "newbridge: IFLA_IFNAME");
	CHECK(t.a[IFLA_MTU] && mnl_attr_get_u32(t.a[IFLA_MTU]) == 9000,
	      "newbridge: IFLA_MTU");
	CHECK(t.a[IFLA_LINKINFO] &&
		      mnl_attr_parse_nested(t.a[IFLA_LINKINFO], tb_put, &info) >= 0,
	      "newbridge: IFLA_LINKINFO nest");
	CHECK(info.a[IFLA_INFO_KIND] &&
		      !strcmp(mnl_attr_get_str(info.a[IFLA_INFO_KIND]), "bridge"),
	      "newbridge: kind bridge");
	CHECK(info.a[IFLA_INFO_DATA] &&
		      mnl_attr_parse_nested(info.a[IFLA_INFO_DATA], tb_put, &data) >= 0 &&
		      data.a[IFLA_BR_STP_STATE] &&
		      mnl_attr_get_u32(data.a[IFLA_BR_STP_STATE]) == 1,
	      "newbridge: IFLA_BR_STP_STATE 1");

	nlh = rt_build_newbridge(buf, 8, "kl-x", 0, 0, false, NULL);
	memset(&t, 0, sizeof(t));
	(void)mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t);
	CHECK(!t.a[IFLA_MTU], "newbridge without mtu leaves the default");
}

static void setlink(void)
{
	char buf[512];
	struct nlmsghdr *nlh = rt_build_setlink(buf, 9, 0, "t0", 5, 1500, true, NULL);
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	struct tb t = {0};

	CHECK_EQ(nlh->nlmsg_type, RTM_SETLINK, "setlink: RTM_SETLINK");
	CHECK(nlh->nlmsg_flags & NLM_F_ACK, "setlink asks for an ack");
	CHECK_EQ(ifm->ifi_index, 0, "setlink by name: no index");
	(void)mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t);
	CHECK(t.a[IFLA_IFNAME] && !strcmp(mnl_attr_get_str(t.a[IFLA_IFNAME]), "t0"),
	      "setlink: name");
	CHECK(t.a[IFLA_MASTER] && mnl_attr_get_u32(t.a[IFLA_MASTER]) == 5,
	      "setlink: IFLA_MASTER");
	CHECK(t.a[IFLA_MTU] && mnl_attr_get_u32(t.a[IFLA_MTU]) == 1500,
	      "setlink: IFLA_MTU");
	CHECK(ifm->ifi_flags == IFF_UP && ifm->ifi_change == IFF_UP, "setlink: up");

	nlh = rt_build_setlink(buf, 10, 42, NULL, 0, 0, false, NULL);
	ifm = mnl_nlmsg_get_payload(nlh);
	memset(&t, 0, sizeof(t));
	(void)mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t);
	CHECK(ifm->ifi_index == 42 && !t.a[IFLA_IFNAME] && !t.a[IFLA_MASTER] &&
		      !t.a[IFLA_MTU] && ifm->ifi_change == 0,
	      "setlink by index with nothing to change carries nothing");

	nlh = rt_build_dellink(buf, 11, 0, "t1");
	ifm = mnl_nlmsg_get_payload(nlh);
	memset(&t, 0, sizeof(t));
	(void)mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t);
	CHECK(nlh->nlmsg_type == RTM_DELLINK && t.a[IFLA_IFNAME] &&
		      !strcmp(mnl_attr_get_str(t.a[IFLA_IFNAME]), "t1"),
	      "dellink by name");

	nlh = rt_build_setgroup(buf, 12, 0, "t2", 0xabcdef);
	ifm = mnl_nlmsg_get_payload(nlh);
	memset(&t, 0, sizeof(t));
	(void)mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t);
	CHECK(t.a[IFLA_GROUP] && mnl_attr_get_u32(t.a[IFLA_GROUP]) == 0xabcdef,
	      "setgroup: IFLA_GROUP");
	nlh = rt_build_delgroup(buf, 13, 0xabcdef);
	ifm = mnl_nlmsg_get_payload(nlh);
	memset(&t, 0, sizeof(t));
	(void)mnl_attr_parse(nlh, sizeof(*ifm), tb_put, &t);
	CHECK(nlh->nlmsg_type == RTM_DELLINK && ifm->ifi_index == 0 &&
		      !t.a[IFLA_IFNAME] && t.a[IFLA_GROUP] &&
		      mnl_attr_get_u32(t.a[IFLA_GROUP]) == 0xabcdef,
	      "delgroup: only the group selects");
}

static void addr(void)
{
	char buf[256];
	struct nlmsghdr *nlh = rt_build_addr(buf, 3, RTM_NEWADDR, 6, 0xc0a83901, 24);
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct tb t = {0};
	struct kl_addr4 a;

	CHECK(nlh->nlmsg_type == RTM_NEWADDR && (nlh->nlmsg_flags & NLM_F_ACK) &&
		      (nlh->nlmsg_flags & NLM_F_EXCL), "newaddr: exclusive, acked");
	CHECK(ifa->ifa_family == AF_INET && ifa->ifa_prefixlen == 24 &&
		      ifa->ifa_index == 6, "newaddr: family, prefix, index");
	(void)mnl_attr_parse(nlh, sizeof(*ifa), tb_put, &t);
	CHECK(t.a[IFA_LOCAL] && ntohl(mnl_attr_get_u32(t.a[IFA_LOCAL])) == 0xc0a83901,
	      "newaddr: IFA_LOCAL");
	CHECK(t.a[IFA_ADDRESS] &&
		      ntohl(mnl_attr_get_u32(t.a[IFA_ADDRESS])) == 0xc0a83901,
	      "newaddr: IFA_ADDRESS");
	CHECK(t.a[IFA_BROADCAST] &&
		      ntohl(mnl_attr_get_u32(t.a[IFA_BROADCAST])) == 0xc0a839ff,
	      "newaddr: IFA_BROADCAST is the subnet's last address");
	/* the dump parser reads the same layout back */
	CHECK(addr_parse(nlh, &a) == 0 && a.addr == 0xc0a83901 && a.prefix == 24 &&
		      a.ifindex == 6, "addr_parse reads it back");

	nlh = rt_build_addr(buf, 4, RTM_DELADDR, 6, 0x0a000001, 8);
	ifa = mnl_nlmsg_get_payload(nlh);
	memset(&t, 0, sizeof(t));
	(void)mnl_attr_parse(nlh, sizeof(*ifa), tb_put, &t);
	CHECK(nlh->nlmsg_type == RTM_DELADDR && !(nlh->nlmsg_flags & NLM_F_CREATE) &&
		      !t.a[IFA_BROADCAST] && t.a[IFA_LOCAL], "deladdr");
}

static void link_reply(void)
{
	char buf[512];
	struct nlmsghdr *nlh = rt_build_newbridge(buf, 1, "kl-lab", 0, 1400, false, NULL);
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	struct kl_link l;

	/* A kernel reply has the same shape as a create request. */
	ifm->ifi_index = 17;
	mnl_attr_put_u32(nlh, IFLA_MASTER, 3);
	mnl_attr_put_u32(nlh, IFLA_GROUP, 99);
	CHECK(link_parse(nlh, &l) == 0, "link_parse accepts a link message");
	CHECK(l.ifindex == 17 && l.mtu == 1400 && l.master == 3 && l.group == 99 &&
		      !strcmp(l.name, "kl-lab") && !strcmp(l.kind, "bridge"),
	      "link_parse: index, mtu, master, group, name, kind");
	CHECK(l.alias[0] == 0 && l.tun_owner == -1, "no alias, no tun data");
	nlh->nlmsg_type = RTM_DELADDR;
	CHECK(link_parse(nlh, &l) == -EINVAL, "link_parse rejects other types");

	/* a tap with its tag, tun data and MAC, as the kernel reports it */
	char big[1024];
	nlh = rt_build_setlink(big, 2, 21, NULL, 5, 1500, true, "kvmlab:lab:tap");
	nlh->nlmsg_type = RTM_NEWLINK;
	const uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "tun");
	struct nlattr *d = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u8(nlh, IFLA_TUN_TYPE, IFF_TAP);
	mnl_attr_put_u8(nlh, IFLA_TUN_PERSIST, 1);
	mnl_attr_put_u8(nlh, IFLA_TUN_MULTI_QUEUE, 1);
	mnl_attr_put_u32(nlh, IFLA_TUN_OWNER, 1000);
	mnl_attr_put_u32(nlh, IFLA_TUN_GROUP, 0xffffffffu);
	mnl_attr_nest_end(nlh, d);
	mnl_attr_nest_end(nlh, li);
	CHECK(link_parse(nlh, &l) == 0 && !strcmp(l.alias, "kvmlab:lab:tap") &&
		      !strcmp(l.kind, "tun") && l.tun_tap && l.tun_persist && l.tun_mq &&
		      l.tun_owner == 1000 && l.tun_group == -1 && !memcmp(l.mac, mac, 6),
	      "link_parse: alias, tun type/persist/multi_queue/owner/group, MAC");
	CHECK(link_is_tap_of(&l, "lab", NULL), "and it is lab's tap");
	/* an alias too long to be a tag is dropped, not cut into one */
	char longa[200];
	memset(longa, 'x', sizeof(longa) - 1);
	longa[sizeof(longa) - 1] = 0;
	memcpy(longa, "kvmlab:lab", 10);
	nlh = rt_build_setlink(big, 3, 22, NULL, 0, 0, false, longa);
	nlh->nlmsg_type = RTM_NEWLINK;
	CHECK(link_parse(nlh, &l) == 0 && l.alias[0] == 0, "long alias ignored");
}

static void ext_ack(void)
{
	char buf[512], ext[128];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nlmsgerr *e;

	/* A capped error as the kernel sends it with NETLINK_CAP_ACK and
	 * NETLINK_EXT_ACK: header, nlmsgerr, then TLVs. */
	nlh->nlmsg_type = NLMSG_ERROR;
	nlh->nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
	e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
	e->error = -EEXIST;
	e->msg.nlmsg_len = 200; /* the request's length: not echoed */
	mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, "Address already assigned\n");
	mnl_attr_put_u32(nlh, NLMSGERR_ATTR_OFFS, 24);
	CHECK_EQ(nl_parse_err(nlh, ext, sizeof(ext)), -EEXIST, "error code read");
	CHECK(!strcmp(ext, "Address already assigned"),
	      "extack text read, newline trimmed: '%s'", ext);

	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_ERROR;
	e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
	e->error = 0;
	CHECK_EQ(nl_parse_err(nlh, ext, sizeof(ext)), 0, "plain ack is 0");
	CHECK(ext[0] == 0, "plain ack has no text");

	nlh->nlmsg_len = sizeof(*nlh) + 2;
	CHECK_EQ(nl_parse_err(nlh, ext, sizeof(ext)), -EBADMSG,
		 "truncated error rejected");
}

int main(void)
{
	newbridge();
	setlink();
	addr();
	link_reply();
	ext_ack();
	return t_done();
}

/* The tc requests of kl_tap_dhcp_local parsed back with libmnl, and its
 * DHCP-request BPF program run by the kernel itself: attached to one end
 * of an AF_UNIX datagram socketpair (no privilege needed), where a
 * datagram the program refuses never arrives. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include "t.h"
#include "priv.h"
#include "nltb.h"

static void clsact(void)
{
	char buf[256];
	struct nlmsghdr *nlh = tc_build_clsact(buf, 5, 42, true);
	const struct tcmsg *t = mnl_nlmsg_get_payload(nlh);
	struct tb tb = {0};

	CHECK_EQ(nlh->nlmsg_type, RTM_NEWQDISC, "clsact: RTM_NEWQDISC");
	CHECK((nlh->nlmsg_flags & (NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)) ==
		      (NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL), "clsact: ack, create, exclusive");
	CHECK(t->tcm_ifindex == 42 && t->tcm_parent == TC_H_CLSACT &&
		      t->tcm_handle == TC_H_MAKE(TC_H_CLSACT, 0), "clsact: ifindex, parent, handle");
	CHECK(mnl_attr_parse(nlh, sizeof(*t), tb_put, &tb) >= 0 && tb.a[TCA_KIND] &&
		      !strcmp(mnl_attr_get_str(tb.a[TCA_KIND]), "clsact"), "clsact: kind");
	nlh = tc_build_clsact(buf, 6, 42, false);
	CHECK(nlh->nlmsg_type == RTM_DELQDISC && (nlh->nlmsg_flags & NLM_F_ACK) &&
		      !(nlh->nlmsg_flags & NLM_F_CREATE), "clsact delete: RTM_DELQDISC with ack");
}

static void filter_msg(void)
{
	char buf[512];
	struct nlmsghdr *nlh = tc_build_dhcp_filter(buf, 9, 42);
	const struct tcmsg *t = mnl_nlmsg_get_payload(nlh);
	struct tb tb = {0}, opt = {0};

	CHECK_EQ(nlh->nlmsg_type, RTM_NEWTFILTER, "filter: RTM_NEWTFILTER");
	CHECK(nlh->nlmsg_flags & NLM_F_ACK, "filter asks for an ack");
	CHECK(t->tcm_ifindex == 42 && t->tcm_parent == TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS),
	      "filter: on the tap's ingress");
	CHECK(TC_H_MIN(t->tcm_info) == htons(ETH_P_IP) && TC_H_MAJ(t->tcm_info) >> 16 == TC_DHCP_PRIO,
	      "filter: protocol ip, our priority");
	CHECK(mnl_attr_parse(nlh, sizeof(*t), tb_put, &tb) >= 0 && tb.a[TCA_KIND] &&
		      !strcmp(mnl_attr_get_str(tb.a[TCA_KIND]), "bpf"), "filter: kind bpf");
	CHECK(tb.a[TCA_OPTIONS] && mnl_attr_parse_nested(tb.a[TCA_OPTIONS], tb_put, &opt) >= 0,
	      "filter: options nest");
	CHECK(opt.a[TCA_BPF_FLAGS] && mnl_attr_get_u32(opt.a[TCA_BPF_FLAGS]) == TCA_BPF_FLAG_ACT_DIRECT,
	      "filter: direct action (the program's verdict is the action)");
	CHECK(opt.a[TCA_BPF_NAME] && !strcmp(mnl_attr_get_str(opt.a[TCA_BPF_NAME]), TC_DHCP_NAME),
	      "filter: named");
	CHECK(opt.a[TCA_BPF_OPS_LEN] && mnl_attr_get_u16(opt.a[TCA_BPF_OPS_LEN]) == KL_DHCP_BPF_LEN &&
		      opt.a[TCA_BPF_OPS] &&
		      mnl_attr_get_payload_len(opt.a[TCA_BPF_OPS]) ==
			      KL_DHCP_BPF_LEN * sizeof(struct sock_filter),
	      "filter: the whole program");
	if (opt.a[TCA_BPF_OPS]) {
		struct sock_filter p[KL_DHCP_BPF_LEN];
		memcpy(p, mnl_attr_get_payload(opt.a[TCA_BPF_OPS]), sizeof(p));
		CHECK(p[KL_DHCP_BPF_LEN - 2].k == TC_ACT_SHOT &&
			      p[KL_DHCP_BPF_LEN - 1].k == (uint32_t)TC_ACT_UNSPEC,
		      "filter: a request is shot, the rest goes on to later filters");
	}
}

/* An Ethernet + IPv4 (ihl words) + UDP/TCP frame. */
static size_t frame(uint8_t *f, uint16_t ethertype, uint8_t proto, unsigned ihl,
		    uint16_t frag, uint16_t dport)
{
	memset(f, 0, 128);
	memset(f, 0xff, 6);
	f[12] = ethertype >> 8;
	f[13] = ethertype & 0xff;
	uint8_t *ip = f + 14;
	ip[0] = 0x40 | ihl;
	ip[6] = frag >> 8;
	ip[7] = frag & 0xff;
	ip[9] = proto;
	uint8_t *l4 = ip + 4 * ihl;
	l4[0] = 0;
	l4[1] = 68;
	l4[2] = dport >> 8;
	l4[3] = dport & 0xff;
	return 14 + 4 * ihl + 8 + 20;
}

/* Does the program (match 100, miss 0) let this frame through? */
static int passes(int sv[2], const uint8_t *f, size_t len)
{
	uint8_t got[256];
	if (send(sv[0], f, len, 0) != (ssize_t)len)
		return -1;
	ssize_t r = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN ? 0 : -1;
	return r == 100 || (size_t)r == len ? 1 : -1; /* cut to 100 bytes */
}

static void program(void)
{
	struct sock_filter p[KL_DHCP_BPF_LEN];
	kl_dhcp_bpf(p, 100, 0);
	struct sock_fprog fp = { .len = KL_DHCP_BPF_LEN, .filter = p };
	int sv[2];
	uint8_t f[128];

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
		CHECK(0, "socketpair: %s", strerror(errno));
		return;
	}
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) == 0,
	      "the kernel accepts the program: %s", strerror(errno));
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IP, 17, 5, 0, 67)), 1, "UDP to 67 matches");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IP, 17, 7, 0, 67)), 1,
		 "UDP to 67 after IP options matches (header length read)");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IP, 17, 5, 0x2000, 67)), 1,
		 "first fragment (more-fragments set) matches");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IP, 17, 5, 0x0010, 67)), 0,
		 "a later fragment does not (no UDP header there)");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IP, 17, 5, 0, 68)), 0, "UDP to 68 does not");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IP, 6, 5, 0, 67)), 0, "TCP to 67 does not");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_IPV6, 17, 5, 0, 67)), 0, "IPv6 does not");
	CHECK_EQ(passes(sv, f, frame(f, ETH_P_ARP, 17, 5, 0, 67)), 0, "ARP does not");
	CHECK_EQ(passes(sv, f, 10), 0, "a runt does not");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	clsact();
	filter_msg();
	program();
	return t_done();
}

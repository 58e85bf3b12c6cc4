/* A tap's DHCP stays local: a clsact qdisc on the tap and, on its
 * ingress, a classic BPF classifier in direct-action mode that drops
 * IPv4 UDP frames to port 67. Ingress runs after packet sockets got
 * their copy and before the bridge, so a VMM's packet socket still sees
 * its guest's requests (and answers them) while the bridge never does.
 * Both objects belong to the tap: the kernel deletes them with it, so no
 * exit path leaves them behind. cls_bpf and sch_ingress are all it
 * needs (no act_gact, no flower: kernels without them still work). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include "priv.h"

/* Classic BPF over an Ethernet frame: IPv4, UDP, first (or only)
 * fragment, destination port 67 returns match, anything else miss. */
void kl_dhcp_bpf(struct sock_filter *out, uint32_t match, uint32_t miss)
{
	const struct sock_filter prog[KL_DHCP_BPF_LEN] = {
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),          /* ethertype */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 8),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),          /* IP protocol */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 6),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),          /* fragment offset */
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),         /* X = IP header length */
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),          /* UDP destination port */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 67, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, match),
		BPF_STMT(BPF_RET | BPF_K, miss),
	};
	memcpy(out, prog, sizeof(prog));
}

static struct nlmsghdr *tc_hdr(void *buf, uint16_t type, uint16_t flags, uint32_t seq,
			       int ifindex, uint32_t parent, uint32_t handle, uint32_t info)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	struct tcmsg *t = mnl_nlmsg_put_extra_header(nlh, sizeof(*t));
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = ifindex;
	t->tcm_parent = parent;
	t->tcm_handle = handle;
	t->tcm_info = info;
	return nlh;
}

struct nlmsghdr *tc_build_clsact(void *buf, uint32_t seq, int ifindex, bool add)
{
	struct nlmsghdr *nlh = tc_hdr(buf, add ? RTM_NEWQDISC : RTM_DELQDISC,
				      add ? NLM_F_CREATE | NLM_F_EXCL : 0, seq, ifindex,
				      TC_H_CLSACT, TC_H_MAKE(TC_H_CLSACT, 0), 0);
	mnl_attr_put_strz(nlh, TCA_KIND, "clsact");
	return nlh;
}

struct nlmsghdr *tc_build_dhcp_filter(void *buf, uint32_t seq, int ifindex)
{
	struct sock_filter prog[KL_DHCP_BPF_LEN];
	/* TC_ACT_UNSPEC (-1) on a miss: let any later filter decide */
	kl_dhcp_bpf(prog, TC_ACT_SHOT, (uint32_t)TC_ACT_UNSPEC);
	struct nlmsghdr *nlh = tc_hdr(buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, seq,
				      ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS), 0,
				      TC_H_MAKE(TC_DHCP_PRIO << 16, htons(ETH_P_IP)));
	mnl_attr_put_strz(nlh, TCA_KIND, "bpf");
	struct nlattr *opt = mnl_attr_nest_start(nlh, TCA_OPTIONS);
	mnl_attr_put_u16(nlh, TCA_BPF_OPS_LEN, KL_DHCP_BPF_LEN);
	mnl_attr_put(nlh, TCA_BPF_OPS, sizeof(prog), prog);
	mnl_attr_put_u32(nlh, TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT);
	mnl_attr_put_strz(nlh, TCA_BPF_NAME, TC_DHCP_NAME);
	mnl_attr_nest_end(nlh, opt);
	return nlh;
}

int kl_tap_dhcp_local(struct kl_net *h, const char *tap)
{
	char buf[512];
	struct kl_link l;
	int err;

	kl_reset_msgs(h);
	if ((err = bad_name(h, "tap", tap)))
		return err;
	if ((err = link_get(&h->rt, tap, &l)))
		return kl_nlerr(h, &h->rt, err, "tap %s: not found", tap);
	if (strcmp(l.kind, "tun") || !l.tun_tap)
		return kl_err(h, -EINVAL, "tap %s: not a tap (kind %s)", tap,
			      l.kind[0] ? l.kind : "none");
	struct nlmsghdr *nlh = tc_build_clsact(buf, ++h->rt.seq, l.ifindex, true);
	if ((err = talk1(&h->rt, nlh)))
		return kl_nlerr(h, &h->rt, err, "tap %s: cannot add a clsact qdisc", tap);
	nlh = tc_build_dhcp_filter(buf, ++h->rt.seq, l.ifindex);
	if ((err = talk1(&h->rt, nlh))) {
		err = kl_nlerr(h, &h->rt, err, "tap %s: cannot add the DHCP ingress filter",
			       tap);
		/* the qdisc is ours (it was made exclusively above): all or nothing */
		nlh = tc_build_clsact(buf, ++h->rt.seq, l.ifindex, false);
		IGNORE(talk1(&h->rt, nlh));
		return err;
	}
	return 0;
}

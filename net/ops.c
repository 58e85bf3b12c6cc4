/* What the operations (up.c, down.c, taps.c, show.c) share: the view of
 * a network as the kernel holds it, the lock around each run, deleting
 * links by ifindex in one request, and the test hooks.
 *
 * Crash points for KVMLAB_NET_CRASH (tests/netns/kill9.sh):
 *   up:table up:bridge up:addr up:fwd up:nft-repair up:taps
 *   tap:made tap:tagged tap:persist tap:up
 *   down:links down:fwd
 *   tapdel:links
 * POINT:stop stops the process there instead (holding the lock). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include "priv.h"

void crash_point(const char *point)
{
	const char *c = getenv("KVMLAB_NET_CRASH");
	size_t n = strlen(point);

	if (!c || strncmp(c, point, n))
		return;
	if (!c[n])
		kill(getpid(), SIGKILL);
	else if (!strcmp(c + n, ":stop"))
		kill(getpid(), SIGSTOP);
}

bool fault_is(const char *what)
{
	const char *f = getenv("KVMLAB_NET_FAULT");

	return f && !strcmp(f, what);
}

int bad_name(struct kl_net *h, const char *what, const char *name)
{
	const char *why;

	if (kl_name_check(name, &why) == 0)
		return 0;
	return kl_err(h, -EINVAL, "%s %s: %s", what, name, why);
}

int need_cap(struct kl_net *h, const char *what, const char *name)
{
	if (kl_cap_net_admin() == 0)
		return 0;
	return kl_err(h, -EPERM, "%s %s: CAP_NET_ADMIN is needed "
			       "(operation not permitted)", what, name);
}

int op_begin(struct kl_net *h)
{
	return state_lock(h, true);
}

void op_end(struct kl_net *h)
{
	state_unlock(h);
}

int talk1(struct kl_nl *nl, struct nlmsghdr *nlh)
{
	return nl_talk(nl, nlh, nlh->nlmsg_len, nlh->nlmsg_seq, 1, NULL, NULL,
		       NULL);
}

/* Ports joining or leaving change the bridge's carrier, which the kernel
 * spreads (operstate, routes' linkdown flag) from its link-watch work up
 * to a second later. A GETLINK makes it do that now, so that what we
 * leave behind is settled when we return. */
void settle(struct kl_net *h, int ifindex)
{
	char name[IF_NAMESIZE];
	struct kl_link l;

	if (ifindex > 0 && if_indextoname((unsigned)ifindex, name))
		IGNORE(link_get(&h->rt, name, &l));
}

static void drop_warn(void *data, const char *fam, const char *table,
		      const char *chain)
{
	kl_warn(data, "nft chain %s %s %s: forward hook with policy drop; it "
		      "may drop this network's routed traffic; accept it there (see "
		      "FIREWALLS in kvmlab-net(8))", fam, table, chain);
}

/* IPv6 forwarding makes the kernel a router, and a router with
 * accept_ra=1 ignores router advertisements: the routes they gave the
 * host expire. libvirt refuses to start such a network; this says it. */
static void ra_warn(void *data, int ifindex)
{
	char ifn[IF_NAMESIZE];

	if (!if_indextoname((unsigned)ifindex, ifn))
		return;
	kl_warn(data, "%s: has IPv6 routes from router advertisements and "
		      "accept_ra=1, which IPv6 forwarding makes the kernel "
		      "ignore (the routes expire); sysctl -w "
		      "net.ipv6.conf.%s.accept_ra=2", ifn, ifn);
}

void gather_warnings(struct kl_net *h, const struct kl_net_cfg *cfg)
{
	char own[64];
	int v;

	if (sysctl_read_int(SYSCTL_BRNF, &v) == 0 && v == 1)
		kl_warn(h, "bridge %s: br_netfilter is loaded with "
			   "net.bridge.bridge-nf-call-iptables=1; iptables and "
			   "nftables ip rules also see bridged traffic; unless that is "
			   "meant, sysctl -w net.bridge.bridge-nf-call-iptables=0",
			cfg->bridge);
	if (cfg->has6 && sysctl_read_int(SYSCTL_BRNF6, &v) == 0 && v == 1)
		kl_warn(h, "bridge %s: br_netfilter is loaded with "
			   "net.bridge.bridge-nf-call-ip6tables=1; ip6tables and "
			   "nftables ip6 rules also see bridged traffic; unless that "
			   "is meant, sysctl -w net.bridge.bridge-nf-call-ip6tables=0",
			cfg->bridge);
	nft_table_name(cfg->name, own, sizeof(own));
	/* Only a warning: a failed dump must not fail the operation. */
	IGNORE(nft_forward_drops(&h->nf, own, drop_warn, h));
	if (cfg->has6 && sysctl_read_int(SYSCTL_FWD6, &v) == 0 && v != 1)
		IGNORE(ra_routes_at_risk(&h->rt, ra_warn, h));
}

static int cmp_link(const void *a, const void *b)
{
	return strcmp(((const struct kl_link *)a)->name,
		      ((const struct kl_link *)b)->name);
}

const struct kl_link *view_find(const struct net_view *v, const char *name)
{
	struct kl_link key;

	snprintf(key.name, sizeof(key.name), "%s", name);
	return v->nlinks ? bsearch(&key, v->links, v->nlinks, sizeof(key),
				   cmp_link)
			 : NULL;
}

int view_load(struct kl_net *h, const char *net, struct net_view *v)
{
	return view_load_with(h, net, NULL, 0, v);
}

int view_load_with(struct kl_net *h, const char *net,
		   const struct store_net *nets, size_t nnets, struct net_view *v)
{
	int err = -ENOENT;

	memset(v, 0, sizeof(*v));
	if (nets) {
		for (size_t i = 0; i < nnets; i++)
			if (!strcmp(nets[i].cfg.name, net)) {
				v->def = nets[i];
				err = 0;
			}
	} else {
		err = store_read(h, net, &v->def);
	}
	if (err && err != -ENOENT)
		return kl_nlerr(h, &h->nf, err, "nft table ip %s%s: cannot read",
				NFT_TABLE_PREFIX, net);
	v->have_def = !err;
	if ((err = link_dump(&h->rt, &v->links, &v->nlinks)))
		return kl_nlerr(h, &h->rt, err, "network %s: cannot list links",
				net);
	qsort(v->links, v->nlinks, sizeof(v->links[0]), cmp_link);
	for (size_t i = 0; i < v->nlinks; i++) {
		const struct kl_link *l = &v->links[i];
		if (link_is_tap_of(l, net, NULL))
			v->ntaps++;
		/* two bridges tagged for one network only come from a hand
		 * edit: the one with the defined name wins */
		else if (link_is_bridge_of(l, net) &&
			 (!v->br || (v->have_def &&
				     !strcmp(l->name, v->def.cfg.bridge))))
			v->br = l;
	}
	if (v->have_def && !v->def.bad)
		v->named = view_find(v, v->def.cfg.bridge);
	return 0;
}

void view_free(struct net_view *v)
{
	free(v->links);
	v->links = NULL;
	v->nlinks = 0;
}

static bool group_used(const struct kl_link *v, size_t n, uint32_t g)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].group == g)
			return true;
	return false;
}

/* One DELLINK per ifindex, all in one request. */
static int del_each(struct kl_net *h, char *buf, const int *ifindex, size_t n)
{
	char *p = buf;
	uint32_t first = h->rt.seq + 1;

	for (size_t i = 0; i < n; i++) {
		struct nlmsghdr *nlh = rt_build_dellink(p, ++h->rt.seq, ifindex[i],
							NULL);
		if (i + 1 < n)
			nlh->nlmsg_flags &= ~NLM_F_ACK;
		p += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	return nl_send_all(&h->rt, buf, (size_t)(p - buf), first, (unsigned)n);
}

int del_links(struct kl_net *h, const int *ifindex, size_t n, const char *what)
{
	struct kl_link *links = NULL;
	size_t nlinks = 0;
	uint32_t g = 0, first;
	char *buf, *p;
	int err;

	if (n == 0)
		return 0;
	buf = calloc(n + 1, RT_MSG_ROOM);
	if (!buf)
		return kl_err(h, -ENOMEM, "%s: out of memory", what);
	if (n > 1 && link_dump(&h->rt, &links, &nlinks) == 0)
		for (int tries = 0;
		     tries < 16 && (!g || group_used(links, nlinks, g)); tries++)
			if (getrandom(&g, sizeof(g), 0) != sizeof(g))
				g = 0;
	if (!g || group_used(links, nlinks, g)) {
		err = del_each(h, buf, ifindex, n);
		/* gone already is what we wanted */
		if (err == -ENODEV)
			err = 0;
		goto out;
	}
	/* Deleting devices one by one costs an RCU grace period each (tens
	 * of ms under load); one DELLINK of a group unregisters them all
	 * together. Group moves and the delete go in one sendmsg, which the
	 * kernel runs to its end: no kill -9 leaves a device in the group. */
	p = buf;
	first = h->rt.seq + 1;
	for (size_t i = 0; i < n; i++) {
		struct nlmsghdr *nlh = rt_build_setgroup(p, ++h->rt.seq, ifindex[i],
							 NULL, g);
		nlh->nlmsg_flags &= ~NLM_F_ACK;
		p += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	struct nlmsghdr *nlh = rt_build_delgroup(p, ++h->rt.seq, g);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	err = nl_send_all(&h->rt, buf, (size_t)(p - buf), first, (unsigned)n + 1);
	if (err == -ENODEV && h->rt.fail_index >= 0 &&
	    (size_t)h->rt.fail_index < n) {
		/* One of them went away meanwhile: the others are in the group
		 * and (if any) were deleted with it. */
		err = 0;
	}
out:
	if (err)
		err = kl_nlerr(h, &h->rt, err, "%s: cannot delete", what);
	free(links);
	free(buf);
	return err;
}

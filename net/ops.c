/* The operations behind the public API: up, down, tap add/del/open and
 * show. Each one validates everything first, then changes the kernel in
 * order, and on failure undoes what it made itself before returning. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include "priv.h"

#define MTU_MIN 68
#define MTU_MAX 65535

/* Ports joining or leaving change the bridge's carrier, which the kernel
 * spreads (operstate, routes' linkdown flag) from its link-watch work up
 * to a second later. A GETLINK makes it do that now, so that what we
 * leave behind is settled when we return. */
static void settle(struct kl_net *h, const char *dev)
{
	struct kl_link l;

	IGNORE(link_get(&h->rt, dev, &l));
}

/* Drop tap j from a network's record, keeping the others in order. */
static void tap_forget(struct st_net *n, size_t j)
{
	memmove(&n->taps[j], &n->taps[j + 1],
		(n->ntaps - j - 1) * sizeof(n->taps[0]));
	n->ntaps--;
}

static int bad_name(struct kl_net *h, const char *what, const char *name)
{
	const char *why;

	if (kl_name_check(name, &why) == 0)
		return 0;
	return kl_err(h, -EINVAL, "%s %s: %s", what, name, why);
}

static int need_cap(struct kl_net *h, const char *what, const char *name)
{
	if (kl_cap_net_admin() == 0)
		return 0;
	return kl_err(h, -EPERM, "%s %s: CAP_NET_ADMIN is needed "
			       "(operation not permitted)", what, name);
}

static int begin(struct kl_net *h, struct kl_state *st, bool exclusive)
{
	int err = state_lock(h, exclusive);

	if (err == -EACCES || err == -EPERM || err == -EROFS)
		return kl_err(h, err, "state directory %s: %s (CAP_NET_ADMIN "
				      "and write access are needed)",
			      h->statedir, strerror(-err));
	if (err)
		return kl_err(h, err, "state directory %s: %s", h->statedir,
			      strerror(-err));
	err = state_load(h, st);
	if (err) {
		state_unlock(h);
		return kl_err(h, err, "state file %s/%llu.state: %s",
			      h->statedir, (unsigned long long)h->ino,
			      err == -EBADMSG ? "corrupt" : strerror(-err));
	}
	return 0;
}

static void end(struct kl_net *h, struct kl_state *st)
{
	state_free(st);
	state_unlock(h);
}

/* begin, for an operation on an existing network: *sn is its record.
 * On failure nothing stays locked or loaded. */
WUR static int begin_net(struct kl_net *h, struct kl_state *st,
			 const char *name, bool exclusive, struct st_net **sn)
{
	int err = begin(h, st, exclusive);

	if (err)
		return err;
	*sn = state_find(st, name);
	if (*sn)
		return 0;
	end(h, st);
	return kl_err(h, -ENOENT, "network %s: not found in this network "
		      "namespace", name);
}

static int save(struct kl_net *h, struct kl_state *st)
{
	int err = state_save(h, st);

	if (err)
		return kl_err(h, err, "state file %s/%llu.state: cannot write: %s",
			      h->statedir, (unsigned long long)h->ino,
			      strerror(-err));
	return 0;
}

/* One request, one ack. */
static int talk1(struct kl_nl *nl, struct nlmsghdr *nlh)
{
	return nl_talk(nl, nlh, nlh->nlmsg_len, nlh->nlmsg_seq, 1, NULL, NULL,
		       NULL);
}

/* A network's nft batch, built in buf (NL_BUF_SIZE) and sent; without
 * commit the kernel checks it and aborts. The batch's begin and end take
 * sequence numbers too. */
WUR static int nft_send_net(struct kl_net *h, char *buf,
			    const struct kl_net_cfg *cfg, enum nft_mode mode,
			    unsigned faults, bool commit)
{
	uint32_t first;
	unsigned nack;
	long len = nft_build_net_batch(buf, NL_BUF_SIZE, ++h->nf.seq, cfg, mode,
				       faults, commit, &first, &nack);

	h->nf.seq += nack + 2;
	if (len < 0)
		return (int)len;
	return nl_talk(&h->nf, buf, (size_t)len, first, nack, NULL, NULL, NULL);
}

/* Delete a network's nft table in one batch (begin, delete, end). */
WUR static int nft_send_del(struct kl_net *h, char *buf, size_t size,
			    const char *net)
{
	uint32_t first;
	long len = nft_build_del_batch(buf, size, ++h->nf.seq, net, &first);

	h->nf.seq += 3;
	if (len < 0)
		return (int)len;
	return nl_talk(&h->nf, buf, (size_t)len, first, 1, NULL, NULL, NULL);
}

static const char *ifname_of(int ifindex, char buf[IF_NAMESIZE])
{
	if (!if_indextoname((unsigned)ifindex, buf))
		snprintf(buf, IF_NAMESIZE, "ifindex %d", ifindex);
	return buf;
}

static void cidr_text(const struct kl_net_cfg *c, char *buf, size_t len)
{
	char ip[16];

	snprintf(buf, len, "%s/%u", kl_ip4(c->addr, ip), c->prefix);
}

static void subnet_text(const struct kl_net_cfg *c, char *buf, size_t len)
{
	char ip[16];

	snprintf(buf, len, "%s/%u", kl_ip4(c->addr & (~0u << (32 - c->prefix)), ip),
		 c->prefix);
}

/* Which field of two definitions differs, or NULL. */
static const char *cfg_diff(const struct kl_net_cfg *a,
			    const struct kl_net_cfg *b)
{
	if (strcmp(a->bridge, b->bridge))
		return "bridge";
	if (a->addr != b->addr || a->prefix != b->prefix)
		return "cidr";
	if (a->nat != b->nat)
		return "nat";
	if (strcmp(a->uplink, b->uplink))
		return "uplink";
	if (a->mtu != b->mtu)
		return "mtu";
	if (a->stp != b->stp)
		return "stp";
	return NULL;
}

static void drop_warn(void *data, const char *fam, const char *table,
		      const char *chain)
{
	kl_warn(data, "nft chain %s %s %s: forward hook with policy drop; it "
		      "may drop this network's routed traffic", fam, table, chain);
}

static void gather_warnings(struct kl_net *h, const struct kl_net_cfg *cfg)
{
	int v;

	if (sysctl_read_int(SYSCTL_BRNF, &v) == 0 && v == 1)
		kl_warn(h, "bridge %s: br_netfilter is loaded with "
			   "net.bridge.bridge-nf-call-iptables=1; iptables and "
			   "nftables ip rules also see bridged traffic",
			cfg->bridge);
	/* Only a warning: a failed dump must not fail the operation. */
	IGNORE(nft_forward_drops(&h->nf, drop_warn, h));
}

static int check_cfg(struct kl_net *h, struct kl_net_cfg *cfg)
{
	char ip[16];
	uint32_t mask;
	int err;

	if ((err = bad_name(h, "network", cfg->name)))
		return err;
	if (!cfg->bridge[0])
		kl_bridge_name(cfg->name, cfg->bridge);
	if ((err = bad_name(h, "bridge", cfg->bridge)))
		return err;
	if (cfg->uplink[0] && (err = bad_name(h, "uplink", cfg->uplink)))
		return err;
	if (cfg->uplink[0] && !strcmp(cfg->uplink, cfg->bridge))
		return kl_err(h, -EINVAL, "uplink %s: is the network's own bridge",
			      cfg->uplink);
	if (cfg->prefix < 1 || cfg->prefix > 31)
		return kl_err(h, -EINVAL, "network %s: prefix length /%u not "
			      "allowed", cfg->name, cfg->prefix);
	mask = ~0u << (32 - cfg->prefix);
	if ((cfg->addr & ~mask) == 0 || (cfg->addr & ~mask) == ~mask)
		return kl_err(h, -EINVAL, "network %s: %s/%u is the network or "
			      "broadcast address", cfg->name,
			      kl_ip4(cfg->addr, ip), cfg->prefix);
	if (cfg->mtu && (cfg->mtu < MTU_MIN || cfg->mtu > MTU_MAX))
		return kl_err(h, -EINVAL, "network %s: mtu %u outside %u..%u",
			      cfg->name, cfg->mtu, MTU_MIN, MTU_MAX);
	return 0;
}

/* TUNSETIFF says EBUSY when the name belongs to another device. */
static int tap_create_err(struct kl_net *h, int err, const char *name)
{
	if (err == -EBUSY)
		return kl_err(h, -EEXIST, "tap %s: name already in use", name);
	return kl_nlerr(h, NULL, err, "tap %s: cannot create", name);
}

static bool fault_is(const char *what)
{
	const char *f = getenv("KVMLAB_NET_FAULT");

	return f && !strcmp(f, what);
}

static void plan_up(struct kl_net *h, const struct kl_net_cfg *cfg,
		    bool br_exists, bool br_up, bool have_addr, int fwd,
		    bool nft_needed)
{
	char cidr[32], sub[32];

	cidr_text(cfg, cidr, sizeof(cidr));
	subnet_text(cfg, sub, sizeof(sub));
	if (!br_exists)
		kl_plan(h, "create bridge %s (stp %s, mtu %s%u) and set it up",
			cfg->bridge, cfg->stp ? "on" : "off",
			cfg->mtu ? "" : "default ", cfg->mtu ? cfg->mtu : 1500);
	else if (!br_up)
		kl_plan(h, "set bridge %s up", cfg->bridge);
	else
		kl_plan(h, "bridge %s exists and is up", cfg->bridge);
	if (!have_addr)
		kl_plan(h, "add address %s to %s", cidr, cfg->bridge);
	else
		kl_plan(h, "address %s is on %s", cidr, cfg->bridge);
	if (fwd != 1)
		kl_plan(h, "set net.ipv4.ip_forward to 1 (now %d)", fwd);
	else
		kl_plan(h, "net.ipv4.ip_forward is already 1");
	if (cfg->nat && nft_needed)
		kl_plan(h, "nft table ip %s%s: chain postrouting (nat, srcnat 100) "
			   "masquerades %s leaving through %s%s; chain forward "
			   "(filter 0) accepts %s out and established/related "
			   "back", NFT_TABLE_PREFIX, cfg->name, sub,
			cfg->uplink[0] ? "" : "any interface but ",
			cfg->uplink[0] ? cfg->uplink : cfg->bridge, sub);
	else if (cfg->nat)
		kl_plan(h, "nft table ip %s%s holds the rules already",
			NFT_TABLE_PREFIX, cfg->name);
}

int kl_net_up(struct kl_net *h, const struct kl_net_cfg *in, unsigned flags)
{
	struct kl_net_cfg cfg = *in;
	bool dry = flags & KL_DRY_RUN;
	struct kl_state st;
	struct st_net *old;
	struct kl_link br, upl;
	struct kl_addr4 *addrs = NULL;
	size_t naddrs = 0;
	bool br_exists = true, have_addr = false, nft_needed = cfg.nat;
	bool made_br = false, made_addr = false, set_fwd = false;
	bool made_table = false;
	char cidr[32], sub[32], ifn[IF_NAMESIZE], ip[16];
	char *buf = NULL;
	int err, fwd = -1, fwd_prev;
	const char *d;

	kl_reset_msgs(h);
	if ((err = check_cfg(h, &cfg)))
		return err;
	if ((err = need_cap(h, "network", cfg.name)))
		return err;
	cidr_text(&cfg, cidr, sizeof(cidr));
	subnet_text(&cfg, sub, sizeof(sub));
	if ((err = begin(h, &st, !dry)))
		return err;
	fwd_prev = st.fwd_prev;

	old = state_find(&st, cfg.name);
	if (old && (d = cfg_diff(&old->cfg, &cfg))) {
		char oc[32];
		cidr_text(&old->cfg, oc, sizeof(oc));
		err = kl_err(h, -EEXIST, "network %s: already up with a different "
			     "%s (bridge %s, cidr %s%s%s%s); run down first",
			     cfg.name, d, old->cfg.bridge, oc,
			     old->cfg.nat ? ", nat" : "",
			     old->cfg.uplink[0] ? ", uplink " : "",
			     old->cfg.uplink);
		goto out;
	}
	for (size_t i = 0; !old && i < st.nnets; i++) {
		struct st_net *o = &st.nets[i];
		if (!strcmp(o->cfg.bridge, cfg.bridge)) {
			err = kl_err(h, -EEXIST, "bridge %s: already used by kvmlab "
				     "network %s", cfg.bridge, o->cfg.name);
			goto out;
		}
		if (cidr_overlap(o->cfg.addr, o->cfg.prefix, cfg.addr,
				 cfg.prefix)) {
			char oc[32];
			cidr_text(&o->cfg, oc, sizeof(oc));
			err = kl_err(h, -EEXIST, "network %s: subnet %s overlaps "
				     "kvmlab network %s (%s)", cfg.name, sub,
				     o->cfg.name, oc);
			goto out;
		}
	}

	err = link_get(&h->rt, cfg.bridge, &br);
	if (err == -ENODEV) {
		br_exists = false;
	} else if (err) {
		err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot look up",
			       cfg.bridge);
		goto out;
	} else if (strcmp(br.kind, "bridge")) {
		err = kl_err(h, -EEXIST, "bridge %s: name taken by a device that "
			     "is not a bridge (%s%s)", cfg.bridge,
			     br.kind[0] ? "kind " : "no link kind", br.kind);
		goto out;
	} else if (!old || !old->made_bridge) {
		err = kl_err(h, -EEXIST, "bridge %s: exists and was not created "
			     "by kvmlab", cfg.bridge);
		goto out;
	}
	if (cfg.uplink[0]) {
		err = link_get(&h->rt, cfg.uplink, &upl);
		if (err) {
			err = err == -ENODEV
				? kl_err(h, err, "uplink %s: no such device",
					 cfg.uplink)
				: kl_nlerr(h, &h->rt, err, "uplink %s: cannot look up",
					   cfg.uplink);
			goto out;
		}
	}
	if ((err = addr_dump(&h->rt, &addrs, &naddrs))) {
		err = kl_nlerr(h, &h->rt, err, "network %s: cannot list addresses",
			       cfg.name);
		goto out;
	}
	for (size_t i = 0; i < naddrs; i++) {
		struct kl_addr4 *a = &addrs[i];
		if (br_exists && a->ifindex == br.ifindex) {
			if (a->addr == cfg.addr && a->prefix == cfg.prefix)
				have_addr = true;
			continue;
		}
		if (cidr_overlap(a->addr, a->prefix, cfg.addr, cfg.prefix)) {
			err = kl_err(h, -EEXIST, "network %s: subnet %s overlaps "
				     "%s/%u on %s", cfg.name, sub,
				     kl_ip4(a->addr, ip), a->prefix,
				     ifname_of(a->ifindex, ifn));
			goto out;
		}
	}
	if ((err = sysctl_read_int(SYSCTL_FWD, &fwd))) {
		err = kl_err(h, err, "sysctl net.ipv4.ip_forward: cannot read: %s",
			     strerror(-err));
		goto out;
	}
	if (cfg.nat && old && old->made_nft) {
		bool same;
		/* A second up leaves intact rules alone, handles and all. */
		if (nft_rules_match(&h->nf, &cfg, &same) == 0 && same)
			nft_needed = false;
	}
	gather_warnings(h, &cfg);

	buf = malloc(NL_BUF_SIZE);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	enum nft_mode mode = old && old->made_nft ? NFT_REFRESH : NFT_CREATE;
	unsigned faults = fault_is("nft") ? NFT_FAULT : 0;
	char tname[64];
	nft_table_name(cfg.name, tname, sizeof(tname));

	if (dry) {
		plan_up(h, &cfg, br_exists, br_exists && (br.flags & IFF_UP),
			have_addr, fwd, nft_needed);
		if (cfg.nat && nft_needed) {
			err = nft_send_net(h, buf, &cfg, mode, faults, false);
			if (err) {
				err = kl_nlerr(h, &h->nf, err, "nft table ip %s: "
					       "the kernel rejects the batch",
					       tname);
				goto out;
			}
			kl_plan(h, "nft batch validated by the kernel, not "
				   "committed");
		}
		goto out;
	}

	int ifindex = br.ifindex;
	struct nlmsghdr *nlh;
	if (!br_exists) {
		nlh = rt_build_newbridge(buf, ++h->rt.seq, cfg.bridge, cfg.mtu,
					 cfg.stp);
		if ((err = talk1(&h->rt, nlh))) {
			err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot create",
				       cfg.bridge);
			goto out;
		}
		made_br = true;
		if ((err = link_get(&h->rt, cfg.bridge, &br))) {
			err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot look up",
				       cfg.bridge);
			goto rollback;
		}
		ifindex = br.ifindex;
	} else if (!(br.flags & IFF_UP) || (cfg.mtu && br.mtu != cfg.mtu)) {
		nlh = rt_build_setlink(buf, ++h->rt.seq, ifindex, NULL, 0,
				       cfg.mtu, true);
		if ((err = talk1(&h->rt, nlh))) {
			err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot set up",
				       cfg.bridge);
			goto out;
		}
	}
	if (!have_addr) {
		nlh = rt_build_addr(buf, ++h->rt.seq, RTM_NEWADDR, ifindex,
				    cfg.addr, cfg.prefix);
		if ((err = talk1(&h->rt, nlh))) {
			err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot add "
				       "address %s", cfg.bridge, cidr);
			goto rollback;
		}
		made_addr = true;
	}
	if (fwd != 1) {
		if ((err = sysctl_write_int(SYSCTL_FWD, 1))) {
			err = kl_err(h, err, "sysctl net.ipv4.ip_forward: cannot "
				     "set: %s", strerror(-err));
			goto rollback;
		}
		set_fwd = true;
		if (st.fwd_prev < 0)
			st.fwd_prev = fwd;
	}
	if (cfg.nat && nft_needed) {
		err = nft_send_net(h, buf, &cfg, mode, faults, true);
		if (err) {
			err = kl_nlerr(h, &h->nf, err, "nft table ip %s: the kernel "
				       "rejects the batch%s", tname,
				       faults ? " (KVMLAB_NET_FAULT=nft)" : "");
			goto rollback;
		}
		made_table = mode == NFT_CREATE;
	}
	if (!old) {
		struct st_net *v = realloc(st.nets, (st.nnets + 1) * sizeof(*v));
		if (!v) {
			err = kl_err(h, -ENOMEM, "network %s: out of memory",
				     cfg.name);
			goto rollback;
		}
		st.nets = v;
		old = &st.nets[st.nnets++];
		memset(old, 0, sizeof(*old));
		old->cfg = cfg;
	}
	settle(h, cfg.bridge);
	old->made_bridge |= made_br;
	old->made_addr |= made_addr;
	old->made_nft |= cfg.nat;
	if ((err = save(h, &st)))
		goto rollback;
	err = 0;
	goto out;

rollback:
	/* Undo in reverse; each step is best effort, the first error is the
	 * one worth reporting. */
	if (made_table)
		IGNORE(nft_send_del(h, buf, NL_BUF_SIZE, cfg.name));
	if (set_fwd) {
		IGNORE(sysctl_write_int(SYSCTL_FWD, fwd));
		st.fwd_prev = fwd_prev;
	}
	if (made_br) {
		nlh = rt_build_dellink(buf, ++h->rt.seq, ifindex, NULL);
		IGNORE(talk1(&h->rt, nlh));
	} else if (made_addr) {
		nlh = rt_build_addr(buf, ++h->rt.seq, RTM_DELADDR, ifindex,
				    cfg.addr, cfg.prefix);
		IGNORE(talk1(&h->rt, nlh));
	}
out:
	free(buf);
	free(addrs);
	end(h, &st);
	return err;
}

/* For each name one DELLINK or, with group set, one move into that
 * group, all in one talk; buf holds n * RT_MSG_ROOM. res[i] gets each
 * answer. Returns the first failure other than "already gone" as the
 * error, and how many succeeded in *done. */
WUR static int links_each(struct kl_net *h, char *buf,
			  char (*names)[KL_NAME_MAX + 1], size_t stride, size_t n,
			  uint32_t group, int *res, const char *what, size_t *done)
{
	char *p = buf;
	uint32_t first = h->rt.seq + 1;

	for (size_t i = 0; i < n; i++) {
		const char *name = (const char *)names + i * stride;
		struct nlmsghdr *nlh =
			group ? rt_build_setgroup(p, ++h->rt.seq, name, group)
			      : rt_build_dellink(p, ++h->rt.seq, 0, name);
		p += NLMSG_ALIGN(nlh->nlmsg_len);
		/* stays unless the kernel answers: a broken transport is an
		 * error, not a success */
		res[i] = -EIO;
	}
	IGNORE(nl_talk(&h->rt, buf, (size_t)(p - buf), first, (unsigned)n, res,
		      NULL, NULL));
	*done = 0;
	for (size_t i = 0; i < n; i++) {
		if (res[i] == 0)
			++*done;
		else if (res[i] != -ENODEV)
			return kl_nlerr(h, &h->rt, res[i], "%s %s: cannot delete",
					what, (const char *)names + i * stride);
	}
	return 0;
}

/* Delete links by name, one message each; those already gone are fine. */
static int del_links_each(struct kl_net *h, char (*names)[KL_NAME_MAX + 1],
			  size_t stride, size_t n, const char *what)
{
	char *buf = calloc(1, n * RT_MSG_ROOM + RT_MSG_ROOM);
	int *res = calloc(n ? n : 1, sizeof(int));
	size_t done;
	int err;

	if (!buf || !res)
		err = kl_err(h, -ENOMEM, "%s: out of memory", what);
	else
		err = links_each(h, buf, names, stride, n, 0, res, what, &done);
	free(buf);
	free(res);
	return err;
}

static bool group_used(const struct kl_link *v, size_t n, uint32_t g)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].group == g)
			return true;
	return false;
}

/* Delete links by name; those already gone are fine. Deleting devices
 * one by one costs an RCU grace period each (tens of ms under load), so
 * they first move into a device group no link uses, and one DELLINK of
 * that group unregisters them all together. */
static int del_links(struct kl_net *h, char (*names)[KL_NAME_MAX + 1],
		     size_t stride, size_t n, const char *what)
{
	struct kl_link *links = NULL;
	size_t nlinks = 0, m;
	char *buf = NULL;
	int *res = NULL, err;
	uint32_t g = 0;

	if (n == 0)
		return 0;
	if (n < 2 || link_dump(&h->rt, &links, &nlinks))
		return del_links_each(h, names, stride, n, what);
	for (int tries = 0; tries < 16 && (!g || group_used(links, nlinks, g));
	     tries++)
		if (getrandom(&g, sizeof(g), 0) != sizeof(g))
			g = 0;
	buf = calloc(1, n * RT_MSG_ROOM + RT_MSG_ROOM);
	res = calloc(n, sizeof(int));
	if (!g || group_used(links, nlinks, g) || !buf || !res) {
		err = del_links_each(h, names, stride, n, what);
		goto out;
	}
	if ((err = links_each(h, buf, names, stride, n, g, res, what, &m)))
		goto out;
	if (m) {
		struct nlmsghdr *nlh = rt_build_delgroup(buf, ++h->rt.seq, g);
		if (talk1(&h->rt, nlh))
			err = del_links_each(h, names, stride, n, what);
	}
out:
	free(links);
	free(buf);
	free(res);
	return err;
}

int kl_net_down(struct kl_net *h, const char *name)
{
	struct kl_state st;
	struct st_net *n;
	char buf[4096];
	int err;

	kl_reset_msgs(h);
	if ((err = bad_name(h, "network", name)))
		return err;
	if ((err = need_cap(h, "network", name)))
		return err;
	if ((err = begin_net(h, &st, name, true, &n)))
		return err;
	/* Without --nat too: leases and forwards make the table on demand. */
	{
		err = nft_send_del(h, buf, sizeof(buf), name);
		if (err && err != -ENOENT) {
			err = kl_nlerr(h, &h->nf, err, "nft table ip %s%s: cannot "
				       "delete", NFT_TABLE_PREFIX, name);
			goto out;
		}
	}
	/* Taps and bridge go in one unregistration; the bridge takes its
	 * address with it. */
	if (n->ntaps || n->made_bridge) {
		size_t k = 0;
		char (*names)[KL_NAME_MAX + 1] = calloc(n->ntaps + 1,
							sizeof(*names));
		if (!names) {
			err = kl_err(h, -ENOMEM, "network %s: out of memory", name);
			goto out;
		}
		for (size_t i = 0; i < n->ntaps; i++)
			memcpy(names[k++], n->taps[i].name, sizeof(names[0]));
		if (n->made_bridge) {
			memcpy(names[k++], n->cfg.bridge, sizeof(names[0]));
			/* Down first: each port that leaves an up bridge makes
			 * it walk all the others, N^2 work for N taps. Best
			 * effort; the delete below is what counts. */
			struct nlmsghdr *nlh = rt_build_setlink(
				buf, ++h->rt.seq, 0, n->cfg.bridge, 0, 0, false);
			struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
			ifm->ifi_change = IFF_UP;
			IGNORE(talk1(&h->rt, nlh));
		}
		err = del_links(h, names, sizeof(names[0]), k,
				n->made_bridge ? "bridge or tap" : "tap");
		free(names);
		if (err)
			goto out;
	}
	if (!n->made_bridge && n->made_addr) {
		int idx = (int)if_nametoindex(n->cfg.bridge);
		if (idx) {
			struct nlmsghdr *nlh = rt_build_addr(
				buf, ++h->rt.seq, RTM_DELADDR, idx, n->cfg.addr,
				n->cfg.prefix);
			err = talk1(&h->rt, nlh);
			if (err && err != -EADDRNOTAVAIL) {
				err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot "
					       "remove its address", n->cfg.bridge);
				goto out;
			}
		}
	}
	free(n->taps);
	*n = st.nets[--st.nnets];
	if (st.nnets == 0 && st.fwd_prev >= 0) {
		/* The last network gone: forwarding back as kvmlab found it. */
		err = sysctl_write_int(SYSCTL_FWD, st.fwd_prev);
		if (err) {
			err = kl_err(h, err, "sysctl net.ipv4.ip_forward: cannot "
				     "restore %d: %s", st.fwd_prev, strerror(-err));
			goto out;
		}
		st.fwd_prev = -1;
	}
	err = save(h, &st);
out:
	end(h, &st);
	return err;
}

int kl_tap_add(struct kl_net *h, const char *net, const char *const *taps,
	       size_t n, const struct kl_tap_cfg *cfg)
{
	struct kl_state st;
	struct st_net *sn;
	struct kl_link br;
	unsigned features = 0, queues = cfg && cfg->queues ? cfg->queues : 1;
	char (*made)[KL_NAME_MAX + 1] = NULL, (*known)[KL_NAME_MAX + 1] = NULL;
	char *buf = NULL, *p;
	size_t nmade = 0, nknown = 0;
	int err;

	kl_reset_msgs(h);
	if ((err = bad_name(h, "network", net)))
		return err;
	if (n == 0)
		return kl_err(h, -EINVAL, "network %s: no tap names given", net);
	for (size_t i = 0; i < n; i++)
		if ((err = bad_name(h, "tap", taps[i])))
			return err;
	/* The pairwise scan only runs to name the culprit (or without
	 * memory): it is N^2 for N taps. */
	bool dup = true;
	if (names_dup(taps, n, &dup) || dup)
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (!strcmp(taps[i], taps[j]))
					return kl_err(h, -EINVAL,
						      "tap %s: named twice",
						      taps[i]);
	if (cfg && (cfg->queues < 1 || cfg->queues > KL_QUEUES_MAX))
		return kl_err(h, -EINVAL, "tap %s: --queues %u outside 1..%u",
			      taps[0], cfg->queues, KL_QUEUES_MAX);
	if ((err = need_cap(h, "network", net)))
		return err;
	if ((err = begin_net(h, &st, net, true, &sn)))
		return err;
	err = link_get(&h->rt, sn->cfg.bridge, &br);
	if (err) {
		err = err == -ENODEV
			? kl_err(h, err, "bridge %s: missing; run up %s again",
				 sn->cfg.bridge, net)
			: kl_nlerr(h, &h->rt, err, "bridge %s: cannot look up",
				   sn->cfg.bridge);
		goto out;
	}
	if ((err = tap_features(&features))) {
		err = kl_err(h, err, "/dev/net/tun: %s%s", strerror(-err),
			     err == -ENOENT ? " (is the tun module loaded?)" : "");
		goto out;
	}
	if (queues > 1 && !(features & IFF_MULTI_QUEUE)) {
		err = kl_err(h, -EOPNOTSUPP, "tap %s: this kernel has no "
			     "multi-queue taps", taps[0]);
		goto out;
	}
	made = calloc(n, sizeof(*made));
	buf = malloc(n * RT_MSG_ROOM + RT_MSG_ROOM);
	if (!made || !buf) {
		err = kl_err(h, -ENOMEM, "network %s: out of memory", net);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int fd;
		err = tap_create(taps[i], features, queues, cfg, true, NULL, &fd);
		if (err) {
			err = tap_create_err(h, err, taps[i]);
			goto rollback;
		}
		/* Persistent: the device outlives the fd. */
		close(fd);
		snprintf(made[nmade++], KL_NAME_MAX + 1, "%s", taps[i]);
	}
	if (fault_is("tap")) {
		err = kl_err(h, -EIO, "tap %s: injected failure "
			     "(KVMLAB_NET_FAULT=tap)", taps[n - 1]);
		goto rollback;
	}
	/* Two batches: MTU of the bridge and enslaved while still down, then
	 * up. A port that joins while up makes the bridge walk every port
	 * (state selection, multicast), which turns N taps into N^2 work. */
	/* The same walk happens when a port comes up with an operstate the
	 * kernel has not yet updated from the carrier loss of closing the
	 * fd (link watch runs up to a second later); a GETLINK makes the
	 * kernel sync it now, so the taps join as the carrier-less ports
	 * they are. */
	for (int pass = -1; pass < 2; pass++) {
		p = buf;
		uint32_t first = h->rt.seq + 1;
		for (size_t i = 0; i < n; i++) {
			struct nlmsghdr *nlh =
				pass < 0 ? rt_build_getlink(p, ++h->rt.seq, taps[i])
					 : rt_build_setlink(p, ++h->rt.seq, 0,
							    taps[i],
							    pass ? 0 : br.ifindex,
							    pass ? 0 : br.mtu,
							    pass);
			p += NLMSG_ALIGN(nlh->nlmsg_len);
		}
		err = nl_talk(&h->rt, buf, (size_t)(p - buf), first, (unsigned)n,
			      NULL, NULL, NULL);
		if (err) {
			int fi = h->rt.fail_index;
			err = kl_nlerr(h, &h->rt, err, "tap %s: cannot %s %s",
				       fi >= 0 ? taps[fi] : taps[0],
				       pass < 0 ? "look up for" :
				       pass ? "set up on" : "attach to",
				       sn->cfg.bridge);
			goto rollback;
		}
	}
	settle(h, sn->cfg.bridge);
	/* The names recorded before, sorted: scanning the record for each
	 * new tap would be N^2. The snapshot stays true for each name looked
	 * up, as the loop only adds and drops the (distinct) new names.
	 * Without it, every name takes the slow path. */
	if (state_tap_names(&st, &known, &nknown))
		known = NULL;
	for (size_t i = 0; i < n; i++) {
		if (known && !names_has(known, nknown, taps[i])) {
			err = state_append_tap(sn, taps[i], queues);
		} else {
			/* Forget it elsewhere if an earlier network claimed
			 * the name for a tap that has since vanished. */
			size_t j;
			struct st_net *o = state_find_tap(&st, taps[i], &j);
			if (o && o != sn)
				tap_forget(o, j);
			err = state_add_tap(sn, taps[i], queues);
		}
		if (err) {
			err = kl_err(h, err, "network %s: out of memory", net);
			goto rollback;
		}
	}
	if ((err = save(h, &st)))
		goto rollback;
	goto out;
rollback:
	if (nmade) {
		char keep[sizeof(h->err)], kext[sizeof(h->extack)];
		memcpy(keep, h->err, sizeof(keep));
		memcpy(kext, h->extack, sizeof(kext));
		IGNORE(del_links(h, made, sizeof(made[0]), nmade, "tap"));
		settle(h, sn->cfg.bridge);
		memcpy(h->err, keep, sizeof(keep));
		memcpy(h->extack, kext, sizeof(kext));
	}
out:
	free(made);
	free(known);
	free(buf);
	end(h, &st);
	return err;
}

int kl_tap_del(struct kl_net *h, const char *const *taps, size_t n)
{
	struct kl_state st;
	char (*names)[KL_NAME_MAX + 1] = NULL, (*known)[KL_NAME_MAX + 1] = NULL;
	size_t nknown = 0;
	bool dup = false;
	int err;

	kl_reset_msgs(h);
	if (n == 0)
		return kl_err(h, -EINVAL, "tap del: no tap names given");
	for (size_t i = 0; i < n; i++)
		if ((err = bad_name(h, "tap", taps[i])))
			return err;
	if ((err = need_cap(h, "tap", taps[0])))
		return err;
	if ((err = begin(h, &st, true)))
		return err;
	/* Sorted lookups instead of a scan of the record per name, which is
	 * N^2 for N taps; the slow path stays for odd cases (no memory, a
	 * name given twice or recorded twice), where it decides. */
	if (state_tap_names(&st, &known, &nknown) ||
	    names_dup(taps, n, &dup) || dup || sorted_dup(known, nknown)) {
		free(known);
		known = NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (known ? !names_has(known, nknown, taps[i])
			  : !state_find_tap(&st, taps[i], NULL)) {
			err = kl_err(h, -ENOENT, "tap %s: not a kvmlab tap in this "
				     "network namespace", taps[i]);
			goto out;
		}
	names = calloc(n, sizeof(*names));
	if (!names) {
		err = kl_err(h, -ENOMEM, "tap %s: out of memory", taps[0]);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(names[i], sizeof(names[i]), "%s", taps[i]);
	if ((err = del_links(h, names, sizeof(names[0]), n, "tap")))
		goto out;
	if (known) {
		/* Every name is recorded once, so one filtering pass per
		 * network drops the same entries as the loop below. */
		qsort(names, n, sizeof(names[0]), cmp_name);
		for (size_t i = 0; i < st.nnets; i++) {
			struct st_net *o = &st.nets[i];
			size_t k = 0;
			for (size_t j = 0; j < o->ntaps; j++)
				if (!names_has(names, n, o->taps[j].name))
					o->taps[k++] = o->taps[j];
			if (k != o->ntaps)
				o->settle = true;
			o->ntaps = k;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			size_t j;
			struct st_net *o = state_find_tap(&st, taps[i], &j);
			if (o) {
				tap_forget(o, j);
				o->settle = true;
			}
		}
	}
	for (size_t i = 0; i < st.nnets; i++)
		if (st.nets[i].settle)
			settle(h, st.nets[i].cfg.bridge);
	err = save(h, &st);
out:
	free(names);
	free(known);
	end(h, &st);
	return err;
}

int kl_tap_open(struct kl_net *h, const char *net, const char *name,
		char name_out[KL_NAME_MAX + 1], int *fd_out)
{
	struct kl_state st;
	struct st_net *sn;
	struct kl_link br;
	unsigned features;
	char got[KL_NAME_MAX + 1], buf[1024];
	int err, fd = -1;

	kl_reset_msgs(h);
	if ((err = bad_name(h, "network", net)))
		return err;
	if (name && *name && (err = bad_name(h, "tap", name)))
		return err;
	if ((err = need_cap(h, "network", net)))
		return err;
	/* Shared: taps opened by several VMMs at once need not queue. */
	if ((err = begin_net(h, &st, net, false, &sn)))
		return err;
	if ((err = link_get(&h->rt, sn->cfg.bridge, &br))) {
		err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot look up",
			       sn->cfg.bridge);
		goto out;
	}
	if ((err = tap_features(&features))) {
		err = kl_err(h, err, "/dev/net/tun: %s", strerror(-err));
		goto out;
	}
	if (!(features & IFF_VNET_HDR)) {
		err = kl_err(h, -EOPNOTSUPP, "/dev/net/tun: no IFF_VNET_HDR");
		goto out;
	}
	snprintf(got, sizeof(got), "%s", name ? name : "");
	err = tap_create(name && *name ? name : NULL, features, 1, NULL, false,
			 got, &fd);
	if (err) {
		/* no name asked for: the kernel picks a free one, so no EBUSY */
		err = tap_create_err(h, err, name && *name ? name : "(any)");
		goto out;
	}
	struct nlmsghdr *nlh = rt_build_setlink(buf, ++h->rt.seq, 0, got,
						br.ifindex, br.mtu, true);
	if ((err = talk1(&h->rt, nlh))) {
		err = kl_nlerr(h, &h->rt, err, "tap %s: cannot attach to %s", got,
			       sn->cfg.bridge);
		close(fd);
		goto out;
	}
	settle(h, sn->cfg.bridge);
	if (name_out)
		snprintf(name_out, KL_NAME_MAX + 1, "%s", got);
	*fd_out = fd;
out:
	end(h, &st);
	return err;
}

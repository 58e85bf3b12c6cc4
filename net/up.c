/* kl_net_up: make a network, or repair one, in this order:
 *   1. its nft table with the definition in its comment (and, with NAT,
 *      the chains it owns): written first, so that whatever a crash
 *      leaves behind is found from it;
 *   2. the bridge, created, tagged and addressed in one request;
 *   3. the address, ip_forward, and every tagged tap back on the bridge.
 * Objects are found by tag and ifindex; a device with the name but not
 * the tag is never touched. A failure undoes what this run made. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include "priv.h"

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

static const char *ifname_of(int ifindex, char buf[IF_NAMESIZE])
{
	if (!if_indextoname((unsigned)ifindex, buf))
		snprintf(buf, IF_NAMESIZE, "ifindex %d", ifindex);
	return buf;
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
	if (a->ndns != b->ndns ||
	    memcmp(a->dns, b->dns, a->ndns * sizeof(a->dns[0])))
		return "dns";
	return NULL;
}

static int check_cfg(struct kl_net *h, struct kl_net_cfg *cfg)
{
	char ip[16];
	const char *why;
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
	char cidr[32];
	snprintf(cidr, sizeof(cidr), "%s/%u", kl_ip4(cfg->addr, ip), cfg->prefix);
	uint32_t a;
	unsigned p;
	if (kl_cidr_parse(cidr, &a, &p, &why))
		return kl_err(h, -EINVAL, "network %s: cidr %s: %s", cfg->name,
			      cidr, why);
	if (cfg->mtu && (cfg->mtu < KL_MTU_MIN || cfg->mtu > KL_MTU_MAX))
		return kl_err(h, -EINVAL, "network %s: mtu %u outside %u..%u (a "
			      "tap takes at most %u)", cfg->name, cfg->mtu,
			      KL_MTU_MIN, KL_MTU_MAX, KL_MTU_MAX);
	if (cfg->ndns > KL_DNS_MAX)
		return kl_err(h, -EINVAL, "network %s: more than %d dns servers",
			      cfg->name, KL_DNS_MAX);
	return 0;
}

/* An ifindex far above where the kernel's counter runs, free now: the
 * bridge is created at it, and the tag is set on it, in one request. If
 * the create fails, the tag cannot land on anybody else's device. */
static int pick_ifindex(const struct net_view *v)
{
	for (;;) {
		uint32_t r = 0;
		bool used = false;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)rand();
		int idx = 0x100000 + (int)(r % 0x3ff00000u);
		for (size_t i = 0; i < v->nlinks && !used; i++)
			used = v->links[i].ifindex == idx;
		if (!used)
			return idx;
	}
}

struct up_run {
	struct kl_net_cfg cfg;
	struct net_view v;
	struct store_net *nets;
	size_t nnets;
	struct nft_chain_state cs[2];
	bool br_up, have_addr, nft_needed;
	int fwd;
	int *fix;        /* taps to put back on the bridge */
	size_t nfix;
};

static void plan_up(struct kl_net *h, const struct up_run *r)
{
	const struct kl_net_cfg *cfg = &r->cfg;
	char cidr[32], sub[32];

	cidr_text(cfg, cidr, sizeof(cidr));
	subnet_text(cfg, sub, sizeof(sub));
	if (!r->v.have_def)
		kl_plan(h, "create nft table ip %s%s holding the definition",
			NFT_TABLE_PREFIX, cfg->name);
	if (!r->v.br)
		kl_plan(h, "create bridge %s (stp %s, mtu %s%u), tagged "
			   TAG_PREFIX "%s, and set it up", cfg->bridge,
			cfg->stp ? "on" : "off", cfg->mtu ? "" : "default ",
			cfg->mtu ? cfg->mtu : 1500, cfg->name);
	else if (!r->br_up)
		kl_plan(h, "set bridge %s up", cfg->bridge);
	else
		kl_plan(h, "bridge %s exists and is up", cfg->bridge);
	if (!r->have_addr)
		kl_plan(h, "add address %s to %s", cidr, cfg->bridge);
	else
		kl_plan(h, "address %s is on %s", cidr, cfg->bridge);
	if (r->fwd != 1)
		kl_plan(h, "set net.ipv4.ip_forward to 1 (now %d)", r->fwd);
	else
		kl_plan(h, "net.ipv4.ip_forward is already 1");
	if (r->nfix)
		kl_plan(h, "put %zu tap(s) back on %s, up", r->nfix, cfg->bridge);
	if (cfg->nat && r->nft_needed)
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

/* Everything up checks before it changes anything. */
static int up_check(struct kl_net *h, struct up_run *r)
{
	struct kl_net_cfg *cfg = &r->cfg;
	const struct store_net *old = r->v.have_def ? &r->v.def : NULL;
	struct kl_addr4 *addrs = NULL;
	size_t naddrs = 0;
	char sub[32], oc[32], ip[16], ifn[IF_NAMESIZE];
	const char *d;
	int err;

	subnet_text(cfg, sub, sizeof(sub));
	if (old && old->bad)
		return kl_err(h, -EBADMSG, "network %s: the comment of nft table "
			      "ip %s%s is not a definition kvmlab can read; run "
			      "down %s first", cfg->name, NFT_TABLE_PREFIX,
			      cfg->name, cfg->name);
	if (old && (d = cfg_diff(&old->cfg, cfg))) {
		cidr_text(&old->cfg, oc, sizeof(oc));
		return kl_err(h, -EEXIST, "network %s: already up with a different "
			      "%s (bridge %s, cidr %s%s%s%s); run down first",
			      cfg->name, d, old->cfg.bridge, oc,
			      old->cfg.nat ? ", nat" : "",
			      old->cfg.uplink[0] ? ", uplink " : "",
			      old->cfg.uplink);
	}
	for (size_t i = 0; i < r->nnets; i++) {
		const struct store_net *o = &r->nets[i];
		if (o->bad || !strcmp(o->cfg.name, cfg->name))
			continue;
		if (!strcmp(o->cfg.bridge, cfg->bridge))
			return kl_err(h, -EEXIST, "bridge %s: already used by kvmlab "
				      "network %s", cfg->bridge, o->cfg.name);
		if (cidr_overlap(o->cfg.addr, o->cfg.prefix, cfg->addr,
				 cfg->prefix)) {
			cidr_text(&o->cfg, oc, sizeof(oc));
			return kl_err(h, -EEXIST, "network %s: subnet %s overlaps "
				      "kvmlab network %s (%s)", cfg->name, sub,
				      o->cfg.name, oc);
		}
	}
	const struct kl_link *br = r->v.br, *named = view_find(&r->v, cfg->bridge);
	if (br && strcmp(br->name, cfg->bridge))
		return kl_err(h, -EEXIST, "bridge %s: network %s's bridge is now "
			      "named %s; rename it back or run down %s", cfg->bridge,
			      cfg->name, br->name, cfg->name);
	if (named && named != br) {
		if (strcmp(named->kind, "bridge"))
			return kl_err(h, -EEXIST, "bridge %s: name taken by a device "
				      "that is not a bridge (%s%s)", cfg->bridge,
				      named->kind[0] ? "kind " : "no link kind",
				      named->kind);
		return kl_err(h, -EEXIST, "bridge %s: exists and was not created "
			      "by kvmlab for network %s (alias \"%s\")",
			      cfg->bridge, cfg->name, named->alias);
	}
	if (cfg->uplink[0] && !view_find(&r->v, cfg->uplink))
		return kl_err(h, -ENODEV, "uplink %s: no such device", cfg->uplink);
	if ((err = addr_dump(&h->rt, &addrs, &naddrs)))
		return kl_nlerr(h, &h->rt, err, "network %s: cannot list addresses",
				cfg->name);
	for (size_t i = 0; i < naddrs; i++) {
		struct kl_addr4 *a = &addrs[i];
		if (br && a->ifindex == br->ifindex) {
			if (a->addr == cfg->addr && a->prefix == cfg->prefix)
				r->have_addr = true;
			continue;
		}
		if (cidr_overlap(a->addr, a->prefix, cfg->addr, cfg->prefix)) {
			err = kl_err(h, -EEXIST, "network %s: subnet %s overlaps "
				     "%s/%u on %s", cfg->name, sub,
				     kl_ip4(a->addr, ip), a->prefix,
				     ifname_of(a->ifindex, ifn));
			free(addrs);
			return err;
		}
	}
	free(addrs);
	r->br_up = br && (br->flags & IFF_UP);
	if ((err = sysctl_read_int(SYSCTL_FWD, &r->fwd)))
		return kl_err(h, err, "sysctl net.ipv4.ip_forward: cannot read: %s",
			      strerror(-err));
	r->nft_needed = !old || old->dormant;
	if (old && cfg->nat) {
		if ((err = nft_chains_check(&h->nf, cfg, r->cs)))
			return kl_nlerr(h, &h->nf, err, "nft table ip %s%s: cannot "
					"read its chains", NFT_TABLE_PREFIX,
					cfg->name);
		for (int i = 0; i < 2; i++)
			if (!r->cs[i].exists || !r->cs[i].base_ok ||
			    !r->cs[i].policy_ok || !r->cs[i].rules_ok)
				r->nft_needed = true;
	}
	/* taps of the network that lost the bridge, went down, or have
	 * another MTU: put back */
	r->fix = calloc(r->v.ntaps + 1, sizeof(int));
	if (!r->fix)
		return kl_err(h, -ENOMEM, "network %s: out of memory", cfg->name);
	for (size_t i = 0; i < r->v.nlinks; i++) {
		const struct kl_link *l = &r->v.links[i];
		if (link_is_tap_of(l, cfg->name, NULL) &&
		    (!br || l->master != br->ifindex || !(l->flags & IFF_UP) ||
		     l->mtu != (cfg->mtu ? cfg->mtu : br->mtu)))
			r->fix[r->nfix++] = l->ifindex;
	}
	return 0;
}

static int put_taps_back(struct kl_net *h, struct up_run *r, int br,
			 unsigned mtu)
{
	char *buf = calloc(r->nfix + 1, RT_MSG_ROOM), *p = buf;
	uint32_t first = h->rt.seq + 1;
	int err;

	if (!buf)
		return kl_err(h, -ENOMEM, "network %s: out of memory", r->cfg.name);
	for (size_t i = 0; i < r->nfix; i++) {
		struct nlmsghdr *nlh = rt_build_setlink(p, ++h->rt.seq, r->fix[i],
							NULL, br, mtu, true, NULL);
		if (i + 1 < r->nfix)
			nlh->nlmsg_flags &= ~NLM_F_ACK;
		p += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	err = nl_send_all(&h->rt, buf, (size_t)(p - buf), first, (unsigned)r->nfix);
	free(buf);
	if (err)
		return kl_nlerr(h, &h->rt, err, "network %s: cannot put its taps "
				"back on %s", r->cfg.name, r->cfg.bridge);
	return 0;
}

/* Create, tag and address the bridge at a fresh ifindex: three messages
 * in one sendmsg. *made says whether it exists now. */
static int make_bridge(struct kl_net *h, struct up_run *r, char *buf,
		       int *ifindex, bool *made)
{
	const struct kl_net_cfg *cfg = &r->cfg;
	char tag[TAG_MAX], *p = buf;
	uint32_t first = h->rt.seq + 1;
	int res[3] = {-EIO, -EIO, -EIO}, err;
	struct nlmsghdr *nlh;

	*ifindex = pick_ifindex(&r->v);
	tag_bridge(cfg->name, tag);
	nlh = rt_build_newbridge(p, ++h->rt.seq, cfg->bridge, *ifindex, cfg->mtu,
				 cfg->stp, tag);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	nlh = rt_build_setlink(p, ++h->rt.seq, *ifindex, NULL, 0, 0, false, tag);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	nlh = rt_build_addr(p, ++h->rt.seq, RTM_NEWADDR, *ifindex, cfg->addr,
			    cfg->prefix);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	err = nl_talk(&h->rt, buf, (size_t)(p - buf), first, 3, res, NULL, NULL);
	*made = res[0] == 0;
	if (err) {
		int fi = h->rt.fail_index;
		return kl_nlerr(h, &h->rt, err, "bridge %s: cannot %s", cfg->bridge,
				fi <= 0 ? "create" : fi == 1 ? "tag" : "add address");
	}
	r->have_addr = true;
	return 0;
}

int kl_net_up(struct kl_net *h, const struct kl_net_cfg *in, unsigned flags)
{
	struct up_run r = {.cfg = *in, .fwd = -1};
	struct kl_net_cfg *cfg = &r.cfg;
	bool dry = flags & KL_DRY_RUN;
	bool made_br = false, made_addr = false, set_fwd = false;
	bool made_table = false;
	char cidr[32];
	char *buf = NULL;
	int err, ifindex = 0;
	unsigned faults = fault_is("nft") ? NFT_FAULT : 0;
	struct nlmsghdr *nlh;

	kl_reset_msgs(h);
	if ((err = check_cfg(h, cfg)))
		return err;
	if ((err = need_cap(h, "network", cfg->name)))
		return err;
	cidr_text(cfg, cidr, sizeof(cidr));
	if (!dry && (err = op_begin(h)))
		return err;
	if ((err = store_list(h, &r.nets, &r.nnets))) {
		err = kl_nlerr(h, &h->nf, err, "network %s: cannot list nft tables",
			       cfg->name);
		goto out;
	}
	if ((err = view_load_with(h, cfg->name, r.nets, r.nnets, &r.v)) ||
	    (err = up_check(h, &r)))
		goto out;
	gather_warnings(h, cfg);
	buf = malloc(NL_BUF_SIZE);
	if (!buf) {
		err = kl_err(h, -ENOMEM, "network %s: out of memory", cfg->name);
		goto out;
	}
	struct store_net def = {.cfg = *cfg, .fwd_prev = r.fwd};
	if (r.v.have_def) {
		def.fwd_prev = r.v.def.fwd_prev;
	} else {
		/* ip_forward as found before the first network: another
		 * network may have turned it on already */
		for (size_t i = 0; i < r.nnets; i++)
			if (!r.nets[i].bad && r.nets[i].fwd_prev >= 0) {
				def.fwd_prev = r.nets[i].fwd_prev;
				break;
			}
	}
	enum nft_mode mode = r.v.have_def ? NFT_REFRESH : NFT_CREATE;
	if (dry) {
		plan_up(h, &r);
		if (r.nft_needed) {
			err = store_write(h, buf, &def, mode, r.cs, faults, false);
			if (err) {
				err = kl_nlerr(h, &h->nf, err, "nft table ip %s%s: the "
					       "kernel rejects the batch",
					       NFT_TABLE_PREFIX, cfg->name);
				goto out;
			}
			kl_plan(h, "nft batch validated by the kernel, not "
				   "committed");
		}
		goto out;
	}
	if (r.nft_needed && r.v.have_def && r.v.def.dormant) {
		/* Waking a table and adding base chains to it in one batch is
		 * refused (EINVAL): wake it first, alone. */
		const struct nft_chain_state whole[2] = {
			{true, true, true, true}, {true, true, true, true}};
		err = store_write(h, buf, &def, NFT_REFRESH, whole, 0, true);
		if (err) {
			err = kl_nlerr(h, &h->nf, err, "nft table ip %s%s: cannot "
				       "wake it (dormant)", NFT_TABLE_PREFIX,
				       cfg->name);
			goto out;
		}
	}
	if (r.nft_needed) {
		err = store_write(h, buf, &def, mode, r.cs, faults, true);
		if (err == -EEXIST && mode == NFT_CREATE && !faults) {
			err = kl_err(h, err, "nft table ip %s%s: exists and is not "
				     "kvmlab's (no \"" NFT_COMMENT_PREFIX "%s:\" "
				     "comment); left alone", NFT_TABLE_PREFIX,
				     cfg->name, cfg->name);
			goto out;
		}
		if (err) {
			err = kl_nlerr(h, &h->nf, err, "nft table ip %s%s: the kernel "
				       "rejects the batch%s", NFT_TABLE_PREFIX,
				       cfg->name,
				       faults ? " (KVMLAB_NET_FAULT=nft)" : "");
			goto out;
		}
		made_table = mode == NFT_CREATE;
		crash_point(made_table ? "up:table" : "up:nft-repair");
	}
	if (!r.v.br) {
		err = make_bridge(h, &r, buf, &ifindex, &made_br);
		if (err)
			goto rollback;
		crash_point("up:bridge");
	} else {
		ifindex = r.v.br->ifindex;
		if (!r.br_up || (cfg->mtu && r.v.br->mtu != cfg->mtu)) {
			nlh = rt_build_setlink(buf, ++h->rt.seq, ifindex, NULL, 0,
					       cfg->mtu, true, NULL);
			if ((err = talk1(&h->rt, nlh))) {
				err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot "
					       "set up", cfg->bridge);
				goto rollback;
			}
		}
	}
	if (!r.have_addr) {
		nlh = rt_build_addr(buf, ++h->rt.seq, RTM_NEWADDR, ifindex,
				    cfg->addr, cfg->prefix);
		if ((err = talk1(&h->rt, nlh))) {
			err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot add "
				       "address %s", cfg->bridge, cidr);
			goto rollback;
		}
		made_addr = true;
		crash_point("up:addr");
	}
	if (r.fwd != 1) {
		if ((err = sysctl_write_int(SYSCTL_FWD, 1))) {
			err = kl_err(h, err, "sysctl net.ipv4.ip_forward: cannot "
				     "set: %s", strerror(-err));
			goto rollback;
		}
		set_fwd = true;
		crash_point("up:fwd");
	}
	if (r.nfix) {
		struct kl_link now;
		if ((err = link_get(&h->rt, cfg->bridge, &now)) ||
		    now.ifindex != ifindex) {
			err = kl_nlerr(h, &h->rt, err ? err : -ENODEV, "bridge %s: "
				       "cannot look up", cfg->bridge);
			goto rollback;
		}
		if ((err = put_taps_back(h, &r, ifindex, now.mtu)))
			goto rollback;
		crash_point("up:taps");
	}
	if (fault_is("up")) {
		err = kl_err(h, -EIO, "network %s: injected failure "
			     "(KVMLAB_NET_FAULT=up)", cfg->name);
		goto rollback;
	}
	settle(h, ifindex);
	err = 0;
	goto out;

rollback:
	/* Undo in reverse; each step is best effort, the first error is the
	 * one worth reporting. */
	{
		char keep[sizeof(h->err)], kext[sizeof(h->extack)];
		memcpy(keep, h->err, sizeof(keep));
		memcpy(kext, h->extack, sizeof(kext));
		if (set_fwd)
			IGNORE(sysctl_write_int(SYSCTL_FWD, r.fwd));
		if (made_br) {
			nlh = rt_build_dellink(buf, ++h->rt.seq, ifindex, NULL);
			IGNORE(talk1(&h->rt, nlh));
		} else if (made_addr) {
			nlh = rt_build_addr(buf, ++h->rt.seq, RTM_DELADDR, ifindex,
					    cfg->addr, cfg->prefix);
			IGNORE(talk1(&h->rt, nlh));
		}
		if (made_table)
			IGNORE(store_delete(h, cfg->name));
		memcpy(h->err, keep, sizeof(keep));
		memcpy(h->extack, kext, sizeof(kext));
	}
out:
	free(buf);
	free(r.fix);
	free(r.nets);
	view_free(&r.v);
	if (!dry)
		op_end(h);
	return err;
}

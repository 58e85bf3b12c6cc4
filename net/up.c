/* kl_net_up: make a network, or repair one, in this order:
 *   1. its nft table with the definition in its comment (and, with NAT,
 *      the chains it owns): written first, so that whatever a crash
 *      leaves behind is found from it;
 *   2. the bridge, created, tagged and addressed in one request;
 *   3. the address, ip_forward, and every tagged tap back on the bridge.
 * A network with IPv6 gets the ip6 table in the same batch as 1., its
 * IPv6 address and fe80::1 in the request of 2., and IPv6 forwarding
 * with ip_forward.
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

static void cidr6_text(const uint8_t a[16], unsigned prefix, char *buf,
		       size_t len)
{
	char ip[46];

	snprintf(buf, len, "%s/%u", kl_ip6(a, ip), prefix);
}

static void subnet6_text(const struct kl_net_cfg *c, char *buf, size_t len)
{
	uint8_t net[16];

	kl_prefix6(c->addr6, c->prefix6, net);
	cidr6_text(net, c->prefix6, buf, len);
}

static const uint8_t router_ll[16] = KL_ROUTER6_LL;

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
	    memcmp(a->dns, b->dns, a->ndns * sizeof(a->dns[0])) ||
	    a->ndns6 != b->ndns6 ||
	    memcmp(a->dns6, b->dns6, a->ndns6 * sizeof(a->dns6[0])))
		return "dns";
	if (a->has6 != b->has6 || (a->has6 && (a->prefix6 != b->prefix6 ||
						memcmp(a->addr6, b->addr6, 16))))
		return "cidr6";
	return NULL;
}

static int check_cfg(struct kl_net *h, struct kl_net_cfg *cfg)
{
	char ip[16];
	const char *why;
	int err;
	char cidr[64];

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
	if (cfg->ndns > KL_DNS_MAX || cfg->ndns6 > KL_DNS_MAX)
		return kl_err(h, -EINVAL, "network %s: more than %d dns servers "
			      "of a family", cfg->name, KL_DNS_MAX);
	for (unsigned i = 0; i < cfg->ndns6; i++) {
		char a6[46];
		if (!cfg->has6)
			return kl_err(h, -EINVAL, "network %s: dns %s: an IPv6 DNS "
				      "server needs IPv6 on the network (--cidr6)",
				      cfg->name, kl_ip6(cfg->dns6[i], a6));
		if ((why = dns6_bad(cfg->dns6[i])))
			return kl_err(h, -EINVAL, "network %s: dns %s: %s",
				      cfg->name, kl_ip6(cfg->dns6[i], a6), why);
	}
	if (cfg->has6) {
		uint8_t a6[16];
		cidr6_text(cfg->addr6, cfg->prefix6, cidr, sizeof(cidr));
		if (kl_cidr6_parse(cidr, a6, &p, &why))
			return kl_err(h, -EINVAL, "network %s: cidr6 %s: %s",
				      cfg->name, cidr, why);
		/* the kernel turns IPv6 off on a link below it (RFC 8200 5) */
		if (cfg->mtu && cfg->mtu < 1280)
			return kl_err(h, -EINVAL, "network %s: mtu %u is below IPv6's "
				      "minimum of 1280 (--cidr6)", cfg->name,
				      cfg->mtu);
	}
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
	struct nft_chain_state cs[NFT_NCHAINS];
	bool br_up, have_addr, nft_needed;
	bool have_addr6, have_ll; /* has6: cfg.addr6, fe80::1 on the bridge */
	int fwd, fwd6;
	int *fix;        /* taps to put back on the bridge */
	size_t nfix;
};

static void plan_up(struct kl_net *h, const struct up_run *r)
{
	const struct kl_net_cfg *cfg = &r->cfg;
	char cidr[32], sub[64];

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
	if (cfg->has6) {
		char c6[64];
		cidr6_text(cfg->addr6, cfg->prefix6, c6, sizeof(c6));
		if (r->have_addr6 && r->have_ll)
			kl_plan(h, "IPv6 addresses %s and fe80::1/64 are on %s", c6,
				cfg->bridge);
		else
			kl_plan(h, "add IPv6 addresses %s and fe80::1/64 (no DAD) to %s",
				c6, cfg->bridge);
	}
	if (r->fwd != 1)
		kl_plan(h, "set net.ipv4.ip_forward to 1 (now %d)", r->fwd);
	else
		kl_plan(h, "net.ipv4.ip_forward is already 1");
	if (cfg->has6 && r->fwd6 != 1)
		kl_plan(h, "set net.ipv6.conf.all.forwarding to 1 (now %d)", r->fwd6);
	else if (cfg->has6)
		kl_plan(h, "net.ipv6.conf.all.forwarding is already 1");
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
	if (cfg->has6 && (!r->v.have_def || (cfg->nat && r->nft_needed))) {
		subnet6_text(cfg, sub, sizeof(sub));
		kl_plan(h, "nft table ip6 %s%s%s%s", NFT_TABLE_PREFIX, cfg->name,
			cfg->nat ? ": the same two chains for " : " (no NAT)",
			cfg->nat ? sub : "");
	}
}

/* The IPv6 addresses: ours on the bridge, and no other interface's
 * global prefix overlapping the network's. */
static int check_addr6(struct kl_net *h, struct up_run *r)
{
	const struct kl_net_cfg *cfg = &r->cfg;
	const struct kl_link *br = r->v.br;
	struct kl_addr6 *a6 = NULL;
	size_t n6 = 0;
	char s6[64], o6[64], ifn[IF_NAMESIZE];
	int err;

	if ((err = addr6_dump(&h->rt, &a6, &n6)))
		return kl_nlerr(h, &h->rt, err, "network %s: cannot list IPv6 "
				"addresses", cfg->name);
	for (size_t i = 0; i < n6; i++) {
		const struct kl_addr6 *a = &a6[i];
		if (br && a->ifindex == br->ifindex) {
			if (a->prefix == cfg->prefix6 && !memcmp(a->addr, cfg->addr6, 16))
				r->have_addr6 = true;
			if (a->prefix == 64 && !memcmp(a->addr, router_ll, 16))
				r->have_ll = true;
			continue;
		}
		/* link-local and host (loopback) scopes are every link's */
		if (a->scope != RT_SCOPE_UNIVERSE && a->scope != RT_SCOPE_SITE)
			continue;
		if (cidr6_overlap(a->addr, a->prefix, cfg->addr6, cfg->prefix6)) {
			subnet6_text(cfg, s6, sizeof(s6));
			cidr6_text(a->addr, a->prefix, o6, sizeof(o6));
			err = kl_err(h, -EEXIST, "network %s: prefix %s overlaps %s "
				     "on %s", cfg->name, s6, o6,
				     ifname_of(a->ifindex, ifn));
			break;
		}
	}
	free(a6);
	return err;
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
	if (old && !old->have4)
		return kl_err(h, -EBADMSG, "network %s: nft table ip %s%s is missing "
			      "and its ip6 table is left; run down %s first",
			      cfg->name, NFT_TABLE_PREFIX, cfg->name, cfg->name);
	if (old && (old->bad || old->bad6))
		return kl_err(h, -EBADMSG, "network %s: the comment of nft table "
			      "%s %s%s is not a definition kvmlab can read; run "
			      "down %s first", cfg->name, old->bad ? "ip" : "ip6",
			      NFT_TABLE_PREFIX, cfg->name, cfg->name);
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
		if (cfg->has6 && o->cfg.has6 &&
		    cidr6_overlap(o->cfg.addr6, o->cfg.prefix6, cfg->addr6,
				  cfg->prefix6)) {
			char s6[64], o6[64];
			subnet6_text(cfg, s6, sizeof(s6));
			cidr6_text(o->cfg.addr6, o->cfg.prefix6, o6, sizeof(o6));
			return kl_err(h, -EEXIST, "network %s: prefix %s overlaps "
				      "kvmlab network %s (%s)", cfg->name, s6,
				      o->cfg.name, o6);
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
	if (cfg->has6 && (err = check_addr6(h, r)))
		return err;
	r->br_up = br && (br->flags & IFF_UP);
	if ((err = sysctl_read_int(SYSCTL_FWD, &r->fwd)))
		return kl_err(h, err, "sysctl net.ipv4.ip_forward: cannot read: %s",
			      strerror(-err));
	if (cfg->has6 && (err = sysctl_read_int(SYSCTL_FWD6, &r->fwd6)))
		return kl_err(h, err, "network %s: sysctl "
			      "net.ipv6.conf.all.forwarding: cannot read: %s%s",
			      cfg->name, strerror(-err), err == -ENOENT ?
			      " (IPv6 is off in this kernel)" : "");
	r->nft_needed = !old || old->dormant || old->dormant6;
	if (old && cfg->nat) {
		if ((err = nft_chains_check(&h->nf, cfg, r->cs)))
			return kl_nlerr(h, &h->nf, err, "nft table ip %s%s: cannot "
					"read its chains", NFT_TABLE_PREFIX,
					cfg->name);
		for (int i = 0; i < (cfg->has6 ? 4 : 2); i++)
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

/* Locally administered, unicast, from an FNV-1a hash of the name. */
static void bridge_mac(const char *net, uint8_t mac[6])
{
	uint64_t h = 14695981039346656037ull;

	for (const char *c = "kvmlab-bridge:"; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	for (const char *c = net; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * i));
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02);
}

/* Create, tag and address the bridge at a fresh ifindex: three messages
 * in one sendmsg. *made says whether it exists now. */
static int make_bridge(struct kl_net *h, struct up_run *r, char *buf,
		       int *ifindex, bool *made)
{
	const struct kl_net_cfg *cfg = &r->cfg;
	char tag[TAG_MAX], *p = buf;
	uint32_t first = h->rt.seq + 1;
	int res[5] = {-EIO, -EIO, -EIO, -EIO, -EIO}, err;
	unsigned n = cfg->has6 ? 5 : 3;
	struct nlmsghdr *nlh;

	*ifindex = pick_ifindex(&r->v);
	tag_bridge(cfg->name, tag);
	nlh = rt_build_newbridge(p, ++h->rt.seq, cfg->bridge, *ifindex, cfg->mtu,
				 cfg->stp, tag);
	/* A MAC of its own, kept whatever ports come and go: a bridge
	 * without one takes its lowest port's, which changes as taps do,
	 * and a guest's neighbour entry for its router (an advertisement's
	 * link-layer address, taken before the VM's tap exists) would go
	 * stale. Derived from the network's name: the same every time. */
	uint8_t mac[6];
	bridge_mac(cfg->name, mac);
	mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(mac), mac);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	nlh = rt_build_setlink(p, ++h->rt.seq, *ifindex, NULL, 0, 0, false, tag);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	nlh = rt_build_addr(p, ++h->rt.seq, RTM_NEWADDR, *ifindex, cfg->addr,
			    cfg->prefix);
	p += NLMSG_ALIGN(nlh->nlmsg_len);
	if (cfg->has6) {
		nlh = rt_build_addr6(p, ++h->rt.seq, RTM_NEWADDR, *ifindex,
				     cfg->addr6, cfg->prefix6);
		p += NLMSG_ALIGN(nlh->nlmsg_len);
		nlh = rt_build_addr6(p, ++h->rt.seq, RTM_NEWADDR, *ifindex,
				     router_ll, 64);
		p += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	err = nl_talk(&h->rt, buf, (size_t)(p - buf), first, n, res, NULL, NULL);
	*made = res[0] == 0;
	if (err) {
		static const char *const what[] = {"create", "tag", "add address",
						   "add IPv6 address",
						   "add fe80::1"};
		int fi = h->rt.fail_index;
		return kl_nlerr(h, &h->rt, err, "bridge %s: cannot %s", cfg->bridge,
				what[fi <= 0 ? 0 : fi > 4 ? 4 : fi]);
	}
	r->have_addr = true;
	r->have_addr6 = r->have_ll = cfg->has6;
	return 0;
}

int kl_net_up(struct kl_net *h, const struct kl_net_cfg *in, unsigned flags)
{
	struct up_run r = {.cfg = *in, .fwd = -1, .fwd6 = -1};
	struct kl_net_cfg *cfg = &r.cfg;
	bool dry = flags & KL_DRY_RUN;
	bool made_br = false, made_addr = false, set_fwd = false;
	bool made_addr6 = false, made_ll = false, set_fwd6 = false;
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
	struct store_net def = {.cfg = *cfg, .fwd_prev = r.fwd, .fwd6_prev = r.fwd6};
	if (r.v.have_def) {
		def.fwd_prev = r.v.def.fwd_prev;
		def.fwd6_prev = r.v.def.fwd6_prev;
	} else {
		/* ip_forward as found before the first network: another
		 * network may have turned it on already */
		for (size_t i = 0; i < r.nnets; i++)
			if (!r.nets[i].bad && r.nets[i].fwd_prev >= 0) {
				def.fwd_prev = r.nets[i].fwd_prev;
				break;
			}
		/* and IPv6 forwarding before the first IPv6 network */
		for (size_t i = 0; i < r.nnets; i++)
			if (r.nets[i].cfg.has6 && r.nets[i].fwd6_prev >= 0) {
				def.fwd6_prev = r.nets[i].fwd6_prev;
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
	if (r.nft_needed && r.v.have_def && (r.v.def.dormant || r.v.def.dormant6)) {
		/* Waking a table and adding base chains to it in one batch is
		 * refused (EINVAL): wake it first, alone. */
		const struct nft_chain_state whole[NFT_NCHAINS] = {
			{true, true, true, true}, {true, true, true, true},
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
	for (int k = 0; cfg->has6 && k < 2; k++) {
		bool *have = k ? &r.have_ll : &r.have_addr6;
		if (*have)
			continue;
		nlh = rt_build_addr6(buf, ++h->rt.seq, RTM_NEWADDR, ifindex,
				     k ? router_ll : cfg->addr6, k ? 64 : cfg->prefix6);
		if ((err = talk1(&h->rt, nlh))) {
			char c6[64];
			cidr6_text(k ? router_ll : cfg->addr6, k ? 64 : cfg->prefix6,
				   c6, sizeof(c6));
			err = kl_nlerr(h, &h->rt, err, "bridge %s: cannot add "
				       "address %s", cfg->bridge, c6);
			goto rollback;
		}
		*(k ? &made_ll : &made_addr6) = true;
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
	if (cfg->has6 && r.fwd6 != 1) {
		if ((err = sysctl_write_int(SYSCTL_FWD6, 1))) {
			err = kl_err(h, err, "sysctl net.ipv6.conf.all.forwarding: "
				     "cannot set: %s", strerror(-err));
			goto rollback;
		}
		set_fwd6 = true;
		crash_point("up:fwd6");
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
		if (set_fwd6)
			IGNORE(sysctl_write_int(SYSCTL_FWD6, r.fwd6));
		if (set_fwd)
			IGNORE(sysctl_write_int(SYSCTL_FWD, r.fwd));
		if (made_br) {
			nlh = rt_build_dellink(buf, ++h->rt.seq, ifindex, NULL);
			IGNORE(talk1(&h->rt, nlh));
		} else {
			if (made_addr) {
				nlh = rt_build_addr(buf, ++h->rt.seq, RTM_DELADDR,
						    ifindex, cfg->addr, cfg->prefix);
				IGNORE(talk1(&h->rt, nlh));
			}
			if (made_addr6) {
				nlh = rt_build_addr6(buf, ++h->rt.seq, RTM_DELADDR,
						     ifindex, cfg->addr6, cfg->prefix6);
				IGNORE(talk1(&h->rt, nlh));
			}
			if (made_ll) {
				nlh = rt_build_addr6(buf, ++h->rt.seq, RTM_DELADDR,
						     ifindex, router_ll, 64);
				IGNORE(talk1(&h->rt, nlh));
			}
		}
		if (made_table)
			IGNORE(store_delete(h, cfg->name, NFT_IP |
					    (cfg->has6 ? NFT_IP6 : 0)));
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

/* show: the kvmlab networks of this namespace, read back from the kernel:
 * the definitions from their nft tables, bridges and taps by their tags
 * (one table dump, one link dump, one address dump). Without
 * CAP_NET_ADMIN nfnetlink answers nothing, not even reads: then the
 * networks come from the bridges' tags alone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include "lease.h"

void kl_show_free(struct kl_show *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nnets; i++) {
		free(s->nets[i].taps);
		free(s->nets[i].leases);
		free(s->nets[i].fwds);
	}
	free(s->nets);
	free(s);
}

struct show_ctx {
	struct kl_link *links;
	size_t nlinks;
	struct kl_addr4 *addrs;
	size_t naddrs;
	struct kl_addr6 *addrs6;
	size_t naddrs6;
};

/* Bridge, address and taps of network o (o->cfg.name set). */
static int fill_net(const struct show_ctx *c, struct kl_show_net *o)
{
	const struct kl_link *br = NULL;
	size_t nt = 0;

	for (size_t i = 0; i < c->nlinks; i++) {
		const struct kl_link *l = &c->links[i];
		if (link_is_bridge_of(l, o->cfg.name) &&
		    (!br || !strcmp(l->name, o->cfg.bridge)))
			br = l;
		else if (link_is_tap_of(l, o->cfg.name, NULL))
			nt++;
	}
	if (br) {
		o->bridge_exists = true;
		o->bridge_up = br->flags & IFF_UP;
		o->bridge_mtu = br->mtu;
		if (!o->def_known)
			snprintf(o->cfg.bridge, sizeof(o->cfg.bridge), "%s",
				 br->name);
		for (size_t j = 0; j < c->naddrs; j++) {
			const struct kl_addr4 *a = &c->addrs[j];
			if (a->ifindex != br->ifindex)
				continue;
			/* from tags alone: the bridge's first address */
			if (!o->def_known && !o->cfg.prefix) {
				o->cfg.addr = a->addr;
				o->cfg.prefix = a->prefix;
			}
			if (a->addr == o->cfg.addr && a->prefix == o->cfg.prefix)
				o->addr_present = true;
		}
		static const uint8_t ll[16] = KL_ROUTER6_LL;
		int found = 0;
		for (size_t j = 0; o->cfg.has6 && j < c->naddrs6; j++) {
			const struct kl_addr6 *a = &c->addrs6[j];
			if (a->ifindex != br->ifindex)
				continue;
			if (a->prefix == o->cfg.prefix6 &&
			    !memcmp(a->addr, o->cfg.addr6, 16))
				found |= 1;
			if (a->prefix == 64 && !memcmp(a->addr, ll, 16))
				found |= 2;
		}
		o->addr6_present = found == 3;
	}
	o->taps = calloc(nt ? nt : 1, sizeof(*o->taps));
	if (!o->taps)
		return -ENOMEM;
	for (size_t i = 0; i < c->nlinks; i++) {
		const struct kl_link *l = &c->links[i];
		unsigned q = 1;
		if (!link_is_tap_of(l, o->cfg.name, &q))
			continue;
		struct kl_show_tap *t = &o->taps[o->ntaps++];
		snprintf(t->name, sizeof(t->name), "%s", l->name);
		t->exists = true;
		t->ifindex = l->ifindex;
		t->up = l->flags & IFF_UP;
		t->mtu = l->mtu;
		t->enslaved = br && l->master == br->ifindex;
		t->persist = l->tun_persist;
		t->multi_queue = l->tun_mq;
		t->queues = q;
		t->owner = l->tun_owner;
		t->group = l->tun_group;
		memcpy(t->mac, l->mac, sizeof(t->mac));
	}
	return 0;
}

static int cmp_link(const void *a, const void *b)
{
	return strcmp(((const struct kl_link *)a)->name,
		      ((const struct kl_link *)b)->name);
}

static int cmp_net(const void *a, const void *b)
{
	return strcmp(((const struct kl_show_net *)a)->cfg.name,
		      ((const struct kl_show_net *)b)->cfg.name);
}

int kl_net_show(struct kl_net *h, const char *name, struct kl_show **out)
{
	struct show_ctx c = {0};
	struct store_net *defs = NULL;
	size_t ndefs = 0, cap;
	struct kl_show *s = NULL;
	bool defs_known = true;
	int err;

	kl_reset_msgs(h);
	if (name) {
		const char *why;
		if (kl_name_check(name, &why))
			return kl_err(h, -EINVAL, "network %s: %s", name, why);
	}
	err = store_list(h, &defs, &ndefs);
	if (err == -EPERM) {
		defs_known = false;
		ndefs = 0;
	} else if (err) {
		return kl_nlerr(h, &h->nf, err, "show: cannot list nft tables");
	}
	if ((err = link_dump(&h->rt, &c.links, &c.nlinks)) ||
	    (err = addr_dump(&h->rt, &c.addrs, &c.naddrs)) ||
	    (err = addr6_dump(&h->rt, &c.addrs6, &c.naddrs6))) {
		err = kl_nlerr(h, &h->rt, err, "show: cannot read links and "
			       "addresses");
		goto out;
	}
	qsort(c.links, c.nlinks, sizeof(c.links[0]), cmp_link);
	s = calloc(1, sizeof(*s));
	cap = ndefs + c.nlinks + 1;
	if (!s || !(s->nets = calloc(cap, sizeof(*s->nets)))) {
		err = kl_err(h, -ENOMEM, "show: out of memory");
		goto out;
	}
	s->netns = h->ino;
	s->forwarding_prev = -1;
	if (sysctl_read_int(SYSCTL_FWD, &s->forwarding))
		s->forwarding = -1;
	s->forwarding6_prev = -1;
	if (sysctl_read_int(SYSCTL_FWD6, &s->forwarding6))
		s->forwarding6 = -1;
	for (size_t i = 0; i < ndefs; i++) {
		struct kl_show_net *o = &s->nets[s->nnets++];
		o->cfg = defs[i].cfg;
		o->def_known = !defs[i].bad;
		/* "ip kvmlab-NAME": an entry from an ip6 table alone lacks it */
		o->nft_present = defs[i].have4 ? 1 : 0;
		if (!defs[i].bad && s->forwarding_prev < 0)
			s->forwarding_prev = defs[i].fwd_prev;
		if (defs[i].cfg.has6 && s->forwarding6_prev < 0)
			s->forwarding6_prev = defs[i].fwd6_prev;
	}
	/* bridges tagged for a network without a (readable) table */
	for (size_t i = 0; i < c.nlinks; i++) {
		char net[KL_NAME_MAX + 1];
		bool seen = false;
		if (strcmp(c.links[i].kind, "bridge") ||
		    tag_parse(c.links[i].alias, net, NULL) != TAG_BRIDGE)
			continue;
		for (size_t j = 0; j < s->nnets && !seen; j++)
			seen = !strcmp(s->nets[j].cfg.name, net);
		if (seen)
			continue;
		struct kl_show_net *o = &s->nets[s->nnets++];
		snprintf(o->cfg.name, sizeof(o->cfg.name), "%s", net);
		o->nft_present = defs_known ? 0 : -1;
	}
	qsort(s->nets, s->nnets, sizeof(s->nets[0]), cmp_net);
	size_t k = 0;
	for (size_t i = 0; i < s->nnets; i++) {
		if (name && strcmp(s->nets[i].cfg.name, name))
			continue;
		s->nets[k++] = s->nets[i];
	}
	s->nnets = k;
	if (name && !k) {
		err = kl_err(h, -ENOENT, "network %s: not found in this network "
			     "namespace", name);
		goto out;
	}
	for (size_t i = 0; i < s->nnets; i++)
		if (fill_net(&c, &s->nets[i])) {
			err = kl_err(h, -ENOMEM, "show: out of memory");
			goto out;
		}
	/* leases, forwards and the DNS servers guests get (lease_ops.c) */
	for (size_t i = 0; i < s->nnets; i++)
		if ((err = lease_show(h, &s->nets[i])))
			goto out;
	*out = s;
	s = NULL;
	err = 0;
out:
	kl_show_free(s);
	free(defs);
	free(c.links);
	free(c.addrs);
	free(c.addrs6);
	return err;
}

/* show: the networks kvmlab knows of in this namespace, each read back
 * from the kernel (one link dump, one address dump, one table look-up
 * per NAT network). */
#include <errno.h>
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

static const struct kl_link *find_link(const struct kl_link *v, size_t n,
				       const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

int kl_net_show(struct kl_net *h, const char *name, struct kl_show **out)
{
	struct kl_state st;
	struct kl_show *s;
	struct kl_link *links = NULL;
	struct kl_addr4 *addrs = NULL;
	size_t nlinks = 0, naddrs = 0;
	int err;

	kl_reset_msgs(h);
	if (name) {
		const char *why;
		if (kl_name_check(name, &why))
			return kl_err(h, -EINVAL, "network %s: %s", name, why);
	}
	err = state_lock(h, false);
	if (err)
		return kl_err(h, err, "state directory %s: %s", h->statedir,
			      strerror(-err));
	err = state_load(h, &st);
	state_unlock(h);
	if (err)
		return kl_err(h, err, "state file %s/%llu.state: %s", h->statedir,
			      (unsigned long long)h->ino,
			      err == -EBADMSG ? "corrupt" : strerror(-err));
	if (name && !state_find(&st, name)) {
		err = kl_err(h, -ENOENT, "network %s: not found in this network "
			     "namespace", name);
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		err = kl_err(h, -ENOMEM, "show: out of memory");
		goto out;
	}
	s->netns = h->ino;
	s->forwarding_prev = st.fwd_prev;
	if (sysctl_read_int(SYSCTL_FWD, &s->forwarding))
		s->forwarding = -1;
	if ((err = link_dump(&h->rt, &links, &nlinks)) ||
	    (err = addr_dump(&h->rt, &addrs, &naddrs))) {
		err = kl_nlerr(h, &h->rt, err, "show: cannot read links and "
			       "addresses");
		goto err_s;
	}
	s->nets = calloc(st.nnets ? st.nnets : 1, sizeof(*s->nets));
	if (!s->nets) {
		err = kl_err(h, -ENOMEM, "show: out of memory");
		goto err_s;
	}
	for (size_t i = 0; i < st.nnets; i++) {
		const struct st_net *n = &st.nets[i];
		struct kl_show_net *o;
		const struct kl_link *br;

		if (name && strcmp(n->cfg.name, name))
			continue;
		o = &s->nets[s->nnets++];
		o->cfg = n->cfg;
		br = find_link(links, nlinks, n->cfg.bridge);
		if (br) {
			o->bridge_exists = true;
			o->bridge_up = br->flags & IFF_UP;
			o->bridge_mtu = br->mtu;
			for (size_t j = 0; j < naddrs; j++)
				if (addrs[j].ifindex == br->ifindex &&
				    addrs[j].addr == n->cfg.addr &&
				    addrs[j].prefix == n->cfg.prefix)
					o->addr_present = true;
		}
		if (n->cfg.nat) {
			bool present;
			err = nft_table_present(&h->nf, n->cfg.name, &present);
			/* nfnetlink answers nothing, not even reads, without
			 * CAP_NET_ADMIN: show the rest anyway. */
			if (err == -EPERM) {
				o->nft_present = -1;
			} else if (err) {
				err = kl_nlerr(h, &h->nf, err, "nft table ip %s%s: "
					       "cannot read", NFT_TABLE_PREFIX,
					       n->cfg.name);
				goto err_s;
			} else {
				o->nft_present = present;
			}
		}
		o->taps = calloc(n->ntaps ? n->ntaps : 1, sizeof(*o->taps));
		if (!o->taps) {
			err = kl_err(h, -ENOMEM, "show: out of memory");
			goto err_s;
		}
		o->ntaps = n->ntaps;
		for (size_t j = 0; j < n->ntaps; j++) {
			struct kl_show_tap *t = &o->taps[j];
			const struct kl_link *l = find_link(links, nlinks,
							    n->taps[j].name);
			snprintf(t->name, sizeof(t->name), "%s", n->taps[j].name);
			if (!l)
				continue;
			t->exists = true;
			t->up = l->flags & IFF_UP;
			t->mtu = l->mtu;
			t->enslaved = br && l->master == br->ifindex;
		}
		if ((err = lease_show(h, o)))
			goto err_s;
	}
	*out = s;
	err = 0;
	goto out;
err_s:
	kl_show_free(s);
out:
	free(links);
	free(addrs);
	state_free(&st);
	return err;
}

/* Taps: tap add, tap del, and the VMM's tap (kl_tap_open).
 *
 * tap add makes each tap without IFF_PERSIST first, so that it lives only
 * as long as our fd; the first request after creating it tags it (with
 * its master and MTU); only then it is made persistent. A kill -9 at any
 * point leaves either nothing (the fd closes, the tap goes) or a tagged
 * tap, which the next up, tap add or down finds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include "priv.h"

/* TUNSETIFF says EBUSY when the name belongs to another device. */
static int tap_create_err(struct kl_net *h, int err, const char *name)
{
	if (err == -EBUSY)
		return kl_err(h, -EEXIST, "tap %s: name already in use", name);
	return kl_nlerr(h, NULL, err, "tap %s: cannot create", name);
}

/* How many taps to hold open at once: the fd limit, less some room. */
static size_t chunk_size(void)
{
	struct rlimit rl;
	size_t c = 512;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < c + 64)
		c = rl.rlim_cur > 80 ? (size_t)rl.rlim_cur - 64 : 16;
	return c;
}

/* Does an existing tap of this network match what tap add asks for? */
static bool same_tap(const struct kl_link *l, unsigned lq, unsigned queues,
		     const struct kl_tap_cfg *cfg)
{
	int64_t owner = cfg && cfg->set_owner ? (int64_t)cfg->owner : -1;
	int64_t group = cfg && cfg->set_group ? (int64_t)cfg->group : -1;

	return lq == queues && l->tun_owner == owner && l->tun_group == group &&
	       l->tun_persist;
}

struct tap_run {
	const char *net;
	const char *const *taps;
	size_t n;
	const struct kl_tap_cfg *cfg;
	unsigned queues, features;
	struct net_view v;
	bool *adopt;      /* taps[i] exists as this network's tap already */
	size_t nnew;
};

/* All checks before any tap is made. */
static int add_check(struct kl_net *h, struct tap_run *r)
{
	const struct kl_link *br = r->v.br;
	size_t ports = 0;
	int err;

	if (!r->v.have_def)
		return kl_err(h, -ENOENT, "network %s: not found in this network "
			      "namespace", r->net);
	if (!br)
		return kl_err(h, -ENODEV, "bridge %s: missing; run up %s again",
			      r->v.def.cfg.bridge, r->net);
	for (size_t i = 0; i < r->n; i++) {
		const struct kl_link *l = view_find(&r->v, r->taps[i]);
		unsigned lq = 0;
		if (!l) {
			r->nnew++;
			continue;
		}
		if (!link_is_tap_of(l, r->net, &lq))
			return kl_err(h, -EEXIST, "tap %s: name already in use by a "
				      "device kvmlab did not make for network %s "
				      "(kind %s, alias \"%s\")", r->taps[i], r->net,
				      l->kind[0] ? l->kind : "none", l->alias);
		if (!same_tap(l, lq, r->queues, r->cfg))
			return kl_err(h, -EEXIST, "tap %s: already a tap of network "
				      "%s with another owner, group or queues; "
				      "tap del it first", r->taps[i], r->net);
		r->adopt[i] = true;
	}
	for (size_t i = 0; i < r->v.nlinks; i++)
		if (r->v.links[i].master == br->ifindex)
			ports++;
	/* the adopted ones may be off the bridge: count them as new */
	size_t joining = r->nnew;
	for (size_t i = 0; i < r->n; i++)
		if (r->adopt[i] && view_find(&r->v, r->taps[i])->master != br->ifindex)
			joining++;
	if (ports + joining > KL_BRIDGE_PORTS_MAX)
		return kl_err(h, -ENOSPC, "bridge %s: %zu ports and %zu new taps "
			      "exceed the bridge's limit of %d ports; spread the "
			      "taps over several networks", br->name, ports,
			      joining, KL_BRIDGE_PORTS_MAX);
	if ((err = tap_features(&r->features)))
		return kl_err(h, err, "/dev/net/tun: %s%s", strerror(-err),
			      err == -ENOENT ? " (is the tun module loaded?)" : "");
	if (r->queues > 1 && !(r->features & IFF_MULTI_QUEUE))
		return kl_err(h, -EOPNOTSUPP, "tap %s: this kernel has no "
			      "multi-queue taps", r->taps[0]);
	return 0;
}

/* One request per tap in one sendmsg: by ifindex when idx is given, else
 * by name (only for taps whose fd we hold). pass 0: SETLINK alias, master
 * and MTU; pass 1: SETLINK up; pass -1: GETLINK. Only the last acked. */
static int taps_request(struct kl_net *h, char *buf, const char *const *names,
			const int *idx, size_t n, int pass, const char *tag,
			int br, unsigned mtu)
{
	char *p = buf;
	uint32_t first = h->rt.seq + 1;

	for (size_t i = 0; i < n; i++) {
		int x = idx ? idx[i] : 0;
		const char *name = idx ? NULL : names[i];
		struct nlmsghdr *nlh;
		if (pass < 0) {
			nlh = rt_build_getlink(p, ++h->rt.seq, name);
			((struct ifinfomsg *)mnl_nlmsg_get_payload(nlh))->ifi_index = x;
		} else {
			nlh = pass == 0 ? rt_build_setlink(p, ++h->rt.seq, x, name, br,
							   mtu, false, tag)
					: rt_build_setlink(p, ++h->rt.seq, x, name, 0, 0,
							   true, NULL);
			/* SETLINKs are answered only when they fail */
			if (i + 1 < n)
				nlh->nlmsg_flags &= ~NLM_F_ACK;
		}
		p += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	if (pass < 0)
		return nl_talk(&h->rt, buf, (size_t)(p - buf), first, (unsigned)n,
			       NULL, NULL, NULL);
	return nl_send_all(&h->rt, buf, (size_t)(p - buf), first, (unsigned)n);
}

/* Delete what this run made (tagged for net and named in made). */
static void add_rollback(struct kl_net *h, const char *net,
			 const char *const *made, size_t nmade)
{
	struct net_view v;
	int *idx = calloc(nmade + 1, sizeof(int));
	size_t k = 0;

	if (idx && view_load(h, net, &v) == 0) {
		for (size_t i = 0; i < nmade; i++) {
			const struct kl_link *l = view_find(&v, made[i]);
			if (l && link_is_tap_of(l, net, NULL))
				idx[k++] = l->ifindex;
		}
		IGNORE(del_links(h, idx, k, "tap"));
		if (v.br)
			settle(h, v.br->ifindex);
	}
	if (idx)
		view_free(&v);
	free(idx);
}

int kl_tap_add(struct kl_net *h, const char *net, const char *const *taps,
	       size_t n, const struct kl_tap_cfg *cfg)
{
	struct tap_run r = {.net = net, .taps = taps, .n = n, .cfg = cfg,
			    .queues = cfg && cfg->queues ? cfg->queues : 1};
	const char **todo = NULL;   /* new names, in order */
	int *fds = NULL, *idx = NULL;
	struct net_view v2;
	bool have_v2 = false;
	char *buf = NULL, tag[TAG_MAX];
	size_t nmade = 0, chunk = chunk_size();
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
	if ((err = op_begin(h)))
		return err;
	r.adopt = calloc(n, sizeof(bool));
	todo = calloc(n, sizeof(*todo));
	fds = calloc(chunk, sizeof(int));
	buf = malloc((n < chunk ? n : chunk) * RT_MSG_ROOM + 2 * RT_MSG_ROOM);
	if (!r.adopt || !todo || !fds || !buf) {
		err = kl_err(h, -ENOMEM, "network %s: out of memory", net);
		goto out;
	}
	if ((err = view_load(h, net, &r.v)) || (err = add_check(h, &r)))
		goto out;
	const struct kl_link *br = r.v.br;
	size_t nt = 0;
	for (size_t i = 0; i < n; i++)
		if (!r.adopt[i])
			todo[nt++] = taps[i];
	tag_tap(net, r.queues, tag);
	/* Chunks of taps held open: made, tagged and enslaved (still down,
	 * see below) in one request, then persistent and closed. */
	for (size_t c0 = 0; c0 < nt; c0 += chunk) {
		size_t cn = nt - c0 < chunk ? nt - c0 : chunk, open = 0;
		for (; open < cn; open++) {
			err = tap_create(todo[c0 + open], r.features, r.queues, cfg,
					 NULL, &fds[open]);
			if (err) {
				err = tap_create_err(h, err, todo[c0 + open]);
				break;
			}
		}
		if (!err)
			crash_point("tap:made");
		if (!err) {
			err = taps_request(h, buf, todo + c0, NULL, cn, 0, tag,
					   br->ifindex, br->mtu);
			if (err) {
				int fi = h->rt.fail_index;
				err = kl_nlerr(h, &h->rt, err, "tap %s: cannot tag and "
					       "attach to %s", fi >= 0 ?
					       todo[c0 + (size_t)fi] : todo[c0],
					       br->name);
			}
		}
		if (!err)
			crash_point("tap:tagged");
		for (size_t i = 0; i < open; i++) {
			if (!err && (err = tap_persist(fds[i])))
				err = kl_err(h, err, "tap %s: cannot make persistent: "
					     "%s", todo[c0 + i], strerror(-err));
			if (!err)
				nmade++;
			/* Not persistent (failed or never asked): it goes now. */
			close(fds[i]);
		}
		if (err)
			goto rollback;
		crash_point("tap:persist");
	}
	if (fault_is("tap")) {
		err = kl_err(h, -EIO, "tap %s: injected failure "
			     "(KVMLAB_NET_FAULT=tap)", taps[n - 1]);
		goto rollback;
	}
	crash_point("tap:up");
	/* Up in a second pass: a port that joins while up makes the bridge
	 * walk every port (state selection, multicast), which turns N taps
	 * into N^2 work. The same walk happens when a port comes up with an
	 * operstate the kernel has not yet updated from the carrier loss of
	 * closing the fd (link watch runs up to a second later); a GETLINK
	 * makes the kernel sync it now, so the taps join as the
	 * carrier-less ports they are. Adopted taps are made whole here. */
	/* From here on by tag and ifindex: look them all up once more. */
	if ((err = view_load_with(h, net, &r.v.def, 1, &v2)))
		goto rollback;
	have_v2 = true;
	idx = calloc(2 * n, sizeof(int));
	if (!idx) {
		err = kl_err(h, -ENOMEM, "network %s: out of memory", net);
		goto rollback;
	}
	if (!v2.br || v2.br->ifindex != br->ifindex) {
		err = kl_err(h, -ENODEV, "bridge %s: gone meanwhile", br->name);
		goto rollback;
	}
	size_t na = 0;
	for (size_t i = 0; i < n; i++) {
		const struct kl_link *l = view_find(&v2, taps[i]);
		if (!l || !link_is_tap_of(l, net, NULL)) {
			err = kl_err(h, -ENODEV, "tap %s: gone or replaced meanwhile",
				     taps[i]);
			goto rollback;
		}
		idx[i] = l->ifindex;
		if (r.adopt[i]) {
			todo[nt + na] = taps[i];
			idx[n + na++] = l->ifindex;
		}
	}
	for (int pass = -1; pass < 2; pass++) {
		/* attach (pass 0) only what was there already: the new ones
		 * were attached when they were tagged */
		const char **all = pass == 0 ? todo + nt : (const char **)taps;
		const int *ai = pass == 0 ? idx + n : idx;
		size_t an = pass == 0 ? na : n;
		for (size_t c0 = 0; c0 < an; c0 += chunk) {
			size_t cn = an - c0 < chunk ? an - c0 : chunk;
			err = taps_request(h, buf, all + c0, ai + c0, cn, pass, tag,
					   br->ifindex, br->mtu);
			if (err) {
				int fi = h->rt.fail_index;
				err = kl_nlerr(h, &h->rt, err, "tap %s: cannot %s %s",
					       all[c0 + (fi >= 0 ? (size_t)fi : 0)],
					       pass < 0 ? "look up for" :
					       pass ? "set up on" : "attach to",
					       br->name);
				goto rollback;
			}
		}
	}
	settle(h, br->ifindex);
	err = 0;
	goto out;
rollback:
	if (nmade) {
		char keep[sizeof(h->err)], kext[sizeof(h->extack)];
		memcpy(keep, h->err, sizeof(keep));
		memcpy(kext, h->extack, sizeof(kext));
		add_rollback(h, net, todo, nmade);
		memcpy(h->err, keep, sizeof(keep));
		memcpy(h->extack, kext, sizeof(kext));
	}
out:
	if (have_v2)
		view_free(&v2);
	free(idx);
	free(r.adopt);
	free(todo);
	free(fds);
	free(buf);
	view_free(&r.v);
	op_end(h);
	return err;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int kl_tap_del(struct kl_net *h, const char *const *taps, size_t n,
	       unsigned flags)
{
	struct net_view v;
	int *idx = NULL, *masters = NULL, err;
	size_t k = 0;

	kl_reset_msgs(h);
	if (n == 0)
		return kl_err(h, -EINVAL, "tap del: no tap names given");
	for (size_t i = 0; i < n; i++)
		if ((err = bad_name(h, "tap", taps[i])))
			return err;
	if ((err = need_cap(h, "tap", taps[0])))
		return err;
	if ((err = op_begin(h)))
		return err;
	/* the network does not matter here: only the links */
	if ((err = view_load(h, "-", &v)))
		goto out;
	idx = calloc(n, sizeof(int));
	masters = calloc(n, sizeof(int));
	if (!idx || !masters) {
		err = kl_err(h, -ENOMEM, "tap %s: out of memory", taps[0]);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct kl_link *l = view_find(&v, taps[i]);
		char net[KL_NAME_MAX + 1];
		if (!l) {
			if (flags & KL_IF_EXISTS)
				continue;
			err = kl_err(h, -ENOENT, "tap %s: no such device in this "
				     "network namespace", taps[i]);
			goto out;
		}
		if (strcmp(l->kind, "tun") || tag_parse(l->alias, net, NULL) !=
						      TAG_TAP) {
			err = kl_err(h, -EPERM, "tap %s: not a kvmlab tap (kind %s, "
				     "alias \"%s\"); left alone", taps[i],
				     l->kind[0] ? l->kind : "none", l->alias);
			goto out;
		}
		masters[k] = l->master;
		idx[k++] = l->ifindex;
	}
	/* a name given twice is one device */
	qsort(idx, k, sizeof(int), cmp_int);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (!u || idx[u - 1] != idx[i])
			idx[u++] = idx[i];
	if ((err = del_links(h, idx, u, "tap")))
		goto out;
	crash_point("tapdel:links");
	qsort(masters, k, sizeof(int), cmp_int);
	for (size_t i = 0; i < k; i++)
		if (masters[i] && (!i || masters[i] != masters[i - 1]))
			settle(h, masters[i]);
out:
	free(idx);
	free(masters);
	view_free(&v);
	op_end(h);
	return err;
}

int kl_tap_open(struct kl_net *h, const char *net, const char *name,
		char name_out[KL_NAME_MAX + 1], int *fd_out)
{
	return kl_tap_open_mq(h, net, name, 1, name_out, fd_out);
}

int kl_tap_open_mq(struct kl_net *h, const char *net, const char *name,
		   unsigned queues, char name_out[KL_NAME_MAX + 1], int *fds)
{
	struct net_view v;
	unsigned features;
	char got[KL_NAME_MAX + 1], buf[1024], tag[TAG_MAX];
	int err, fd = -1;

	kl_reset_msgs(h);
	if ((err = bad_name(h, "network", net)))
		return err;
	if (name && *name && (err = bad_name(h, "tap", name)))
		return err;
	if ((err = need_cap(h, "network", net)))
		return err;
	if ((err = op_begin(h)))
		return err;
	if ((err = view_load(h, net, &v)))
		goto out;
	if (!v.have_def) {
		err = kl_err(h, -ENOENT, "network %s: not found in this network "
			     "namespace", net);
		goto out;
	}
	if (!v.br) {
		err = kl_err(h, -ENODEV, "bridge %s: missing; run up %s again",
			     v.def.cfg.bridge, net);
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
	if (queues < 1 || queues > KL_QUEUES_MAX) {
		err = kl_err(h, -EINVAL, "tap: %u queues outside 1..%u", queues,
			     KL_QUEUES_MAX);
		goto out;
	}
	snprintf(got, sizeof(got), "%s", name ? name : "");
	err = tap_create(name && *name ? name : NULL, features, queues, NULL, got,
			 &fd);
	if (err) {
		/* no name asked for: the kernel picks a free one, so no EBUSY */
		err = tap_create_err(h, err, name && *name ? name : "(any)");
		goto out;
	}
	fds[0] = fd;
	for (unsigned i = 1; i < queues; i++) {
		if ((err = tap_attach(got, features, &fds[i]))) {
			err = kl_err(h, err, "tap %s: queue %u: %s", got, i,
				     strerror(-err));
			while (i-- > 0)
				close(fds[i]); /* the last one removes the tap */
			goto out;
		}
	}
	/* Tagged like tap add's, so down takes it too; it goes with fds. */
	tag_tap(net, queues, tag);
	struct nlmsghdr *nlh = rt_build_setlink(buf, ++h->rt.seq, 0, got,
						v.br->ifindex, v.br->mtu, true,
						tag);
	if ((err = talk1(&h->rt, nlh))) {
		err = kl_nlerr(h, &h->rt, err, "tap %s: cannot attach to %s", got,
			       v.br->name);
		for (unsigned i = 0; i < queues; i++)
			close(fds[i]);
		goto out;
	}
	settle(h, v.br->ifindex);
	if (name_out)
		snprintf(name_out, KL_NAME_MAX + 1, "%s", got);
out:
	view_free(&v);
	op_end(h);
	return err;
}

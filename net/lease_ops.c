/* The public lease and forward calls. Each one: lock the namespace, read
 * the network (view_load: its definition from its table, its bridge by
 * tag), its lease map and its forwards back from the kernel, let lease.c compute the next lease table, then send every
 * change (map elements, forward rules of VMs whose lease went, a new
 * forward) as one nft batch, which the kernel commits all or nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "lease.h"

struct ctx {
	struct kl_net *h;
	const char *net;
	char table[64];
	struct net_view view;
	const struct kl_net_cfg *cfg;
	struct lease_tab old;
	struct fwd_tab fwds;
	bool locked;
};

static void ctx_close(struct ctx *c)
{
	lease_tab_free(&c->old);
	fwd_tab_free(&c->fwds);
	view_free(&c->view);
	if (c->locked)
		op_end(c->h);
	c->locked = false;
}

static int check_names(struct kl_net *h, const char *net, const char *vm)
{
	const char *why;

	if (kl_name_check(net, &why))
		return kl_err(h, -EINVAL, "network %s: %s", net, why);
	if (vm && kl_vm_name_check(vm, &why))
		return kl_err(h, -EINVAL, "network %s: vm %s: %s", net, vm, why);
	return 0;
}

static void set_states(struct lease_tab *t)
{
	for (size_t i = 0; i < t->n; i++)
		t->v[i].state = lease_state_of(
			&t->v[i], proc_owner_alive(t->v[i].pid, t->v[i].start));
}

/* Lock, then read the network, its leases and forwards. need_bridge: the
 * call uses the bridge (its MTU, its name in rules), which must be the
 * network's tagged bridge under its defined name. On failure the error is
 * set and nothing is held. */
static int ctx_open(struct kl_net *h, const char *net, const char *vm,
		    bool need_bridge, struct ctx *c)
{
	int err;

	memset(c, 0, sizeof(*c));
	c->h = h;
	c->net = net;
	kl_reset_msgs(h);
	if ((err = check_names(h, net, vm)))
		return err;
	if ((err = need_cap(h, "network", net)))
		return err;
	snprintf(c->table, sizeof(c->table), NFT_TABLE_PREFIX "%s", net);
	/* op_begin names the holder when it times out. */
	if ((err = op_begin(h)))
		return err;
	c->locked = true;
	/* Under the lock: nobody takes the network away meanwhile. Every
	 * network has its table, which holds its definition: none, no
	 * network (the lease objects are never made on their own). */
	if ((err = view_load(h, net, &c->view)))
		goto err;
	c->cfg = &c->view.def.cfg;
	if (!c->view.have_def) {
		err = kl_err(h, -ENOENT, "network %s: not found in this network "
			     "namespace", net);
		goto err;
	}
	if (c->view.def.bad) {
		err = kl_err(h, -EBADMSG, "network %s: the comment of nft table "
			     "ip %s is not a definition kvmlab can read; run "
			     "down %s first", net, c->table, net);
		goto err;
	}
	/* The tagged bridge only: a device that merely has the name is not
	 * the network's. */
	if (need_bridge && (!c->view.br ||
			    strcmp(c->view.br->name, c->cfg->bridge))) {
		err = kl_err(h, -ENODEV, "bridge %s: missing; run up %s again",
			     c->cfg->bridge, net);
		goto err;
	}
	if ((err = lease_nft_read(&h->nf, net, &c->old))) {
		err = kl_nlerr(h, &h->nf, err, "network %s: cannot read map ip "
			       "%s " LEASE_MAP, net, c->table);
		goto err;
	}
	set_states(&c->old);
	if ((err = fwd_read(&h->nf, net, &c->fwds))) {
		err = kl_nlerr(h, &h->nf, err, "network %s: cannot read the "
			       "forward rules of table ip %s", net, c->table);
		goto err;
	}
	return 0;
err:
	ctx_close(c);
	return err;
}

/* A VM's forwards live while its lease keeps the owner that made them:
 * they go with the lease, with its owner, and when a new owner retakes a
 * stale lease (the VM restarted after a crash adds its own again). */
static bool fwd_orphan(const struct kl_forward *f, const struct lease_tab *old,
		       const struct lease_tab *new)
{
	const struct kl_lease *l, *was;

	if (!f->vm[0])
		return false;
	l = lease_find_vm(new, f->vm);
	was = lease_find_vm(old, f->vm);
	return !l || !l->pid ||
	       (was && (was->pid != l->pid || was->start != l->start));
}

/* Which forwards a commit removes: those of proto and port in family
 * (AF_UNSPEC: either); proto 0: none. */
struct fwd_key {
	int family, proto;
	uint16_t port;
};

static bool key_has(const struct fwd_key *k, const struct kl_forward *f)
{
	return k && k->proto && f->proto == k->proto && f->port == k->port &&
	       (k->family == AF_UNSPEC || fwd_family(f) == k->family);
}

/* One batch from the old state to: the lease table new (NULL: unchanged),
 * without the forwards of del (NULL: none) and with add (NULL: none). */
static int commit(struct ctx *c, struct lease_tab *new,
		  const struct fwd_key *del, const struct kl_forward *add,
		  const char *what)
{
	struct kl_net *h = c->h;
	size_t size = (c->old.n + (new ? new->n : 0) + 3 * c->fwds.n + 16) * 1024;
	char *buf = malloc(size);
	unsigned changes = 0, nack;
	struct nb b;
	long len;
	int err;

	if (!buf)
		return kl_err(h, -ENOMEM, "network %s: %s: out of memory",
			      c->net, what);
	nb_init(&b, buf, size, ++h->nf.seq, c->table);
	nb_begin(&b);
	/* The table is up's (ctx_open saw it): only our objects go in it. */
	if (new) {
		lease_sort_mac(new);
		changes += lease_nft_put(&b, &c->old, new);
	}
	for (size_t i = 0; i < c->fwds.n; i++) {
		const struct fwd_entry *e = &c->fwds.v[i];
		if (key_has(del, &e->f) || (new && fwd_orphan(&e->f, &c->old, new))) {
			fwd_put_del(&b, e);
			changes++;
		}
	}
	if (add) {
		int fam = fwd_family(add);
		if (!(fam == AF_INET6 ? c->fwds.chains6 : c->fwds.chains))
			fwd_put_chains(&b, c->cfg, fam);
		fwd_put_add(&b, c->cfg, add);
		changes++;
	}
	nack = nb_nacked(&b);
	nb_end(&b);
	len = nb_len(&b, buf);
	h->nf.seq = b.seq;
	if (len < 0) {
		err = kl_err(h, (int)len, "network %s: %s: cannot build the nft "
			     "batch: %s", c->net, what, strerror((int)-len));
	} else if (!changes) {
		err = 0; /* already so: nothing to send */
	} else {
		err = nl_talk(&h->nf, buf, (size_t)len, b.first, nack, NULL,
			      NULL, NULL);
		if (err)
			err = kl_nlerr(h, &h->nf, err, "network %s: %s: nft batch "
				       "on table ip %s rejected, nothing changed",
				       c->net, what, c->table);
	}
	free(buf);
	return err;
}

static void fill_info(const struct ctx *c, const struct kl_lease *l,
		      struct kl_lease_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->vm, sizeof(out->vm), "%s", l->vm);
	memcpy(out->mac, l->mac, 6);
	out->addr = l->addr;
	out->router = c->cfg->addr;
	out->prefix = c->cfg->prefix;
	out->mtu = c->view.br->mtu;
	out->has6 = c->cfg->has6;
	memcpy(out->addr6, c->cfg->addr6, 16);
	out->prefix6 = c->cfg->prefix6;
	memcpy(out->router_mac, c->view.br->mac, 6);
	struct kl_net_cfg cfg = *c->cfg;
	bool host;
	/* No up --dns: the host's upstream resolvers (maybe none). */
	dns_for_guests(&cfg, &host);
	out->ndns = cfg.ndns;
	memcpy(out->dns, cfg.dns, sizeof(out->dns));
	out->ndns6 = cfg.has6 ? cfg.ndns6 : 0;
	memcpy(out->dns6, cfg.dns6, sizeof(out->dns6));
}

static const char *ip(uint32_t a, char buf[16])
{
	return kl_ip4(a, buf);
}

/* Who holds vm's lease, for an -EEXIST message. */
static const char *holder(const struct lease_tab *t, const char *vm,
			  char *buf, size_t len)
{
	const struct kl_lease *l = lease_find_vm(t, vm);
	char a[16];

	if (!l)
		return "";
	if (l->pid)
		snprintf(buf, len, " (%s, owner pid %d)", ip(l->addr, a),
			 (int)l->pid);
	else
		snprintf(buf, len, " (%s, reserved)", ip(l->addr, a));
	return buf;
}

int kl_lease_take(struct kl_net *h, const char *net, const char *vm,
		  pid_t owner, struct kl_lease_info *out)
{
	struct lease_tab new;
	struct kl_lease l;
	const char *why = "";
	char hb[96];
	uint64_t start;
	struct ctx c;
	int err;

	if ((err = ctx_open(h, net, vm, true, &c)))
		return err;
	if ((err = proc_start(owner, &start))) {
		err = kl_err(h, err, "network %s: vm %s: owner pid %d: %s", net,
			     vm, (int)owner, err == -ESRCH ? "not running"
			     : strerror(-err));
		goto out;
	}
	if ((err = lease_tab_copy(&new, &c.old))) {
		err = kl_err(h, err, "network %s: out of memory", net);
		goto out;
	}
	err = lease_plan_take(c.cfg, &new, vm, owner, start, &l, &why);
	if (err)
		err = kl_err(h, err, "network %s: vm %s: %s%s", net, vm, why,
			     err == -EEXIST ? holder(&c.old, vm, hb, sizeof(hb))
					    : "");
	else
		err = commit(&c, &new, NULL, NULL, "lease take");
	if (!err)
		fill_info(&c, &l, out);
	lease_tab_free(&new);
out:
	ctx_close(&c);
	return err;
}

/* release and del: the same shape, a different plan. */
static int lease_drop(struct kl_net *h, const char *net, const char *vm,
		      bool del)
{
	struct lease_tab new;
	const char *why = "";
	struct ctx c;
	int err;

	if ((err = ctx_open(h, net, vm, false, &c)))
		return err;
	if ((err = lease_tab_copy(&new, &c.old))) {
		err = kl_err(h, err, "network %s: out of memory", net);
		goto out;
	}
	err = del ? lease_plan_del(&new, vm, &why)
		  : lease_plan_release(&new, vm, &why);
	if (err)
		err = kl_err(h, err, "network %s: vm %s: %s", net, vm, why);
	else
		err = commit(&c, &new, NULL, NULL,
			     del ? "lease del" : "lease release");
	lease_tab_free(&new);
out:
	ctx_close(&c);
	return err;
}

int kl_lease_release(struct kl_net *h, const char *net, const char *vm)
{
	return lease_drop(h, net, vm, false);
}

int kl_lease_del(struct kl_net *h, const char *net, const char *vm)
{
	return lease_drop(h, net, vm, true);
}

static void mac_text(const uint8_t *m, char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
		 m[3], m[4], m[5]);
}

int kl_lease_add(struct kl_net *h, const char *net, const char *vm,
		 const uint8_t *mac, uint32_t addr)
{
	struct lease_tab new;
	struct kl_lease l;
	const char *why = "";
	char what[64] = "", hb[96];
	struct ctx c;
	int err;

	if ((err = ctx_open(h, net, vm, false, &c)))
		return err;
	if ((err = lease_tab_copy(&new, &c.old))) {
		err = kl_err(h, err, "network %s: out of memory", net);
		goto out;
	}
	err = lease_plan_add(c.cfg, &new, vm, mac, addr, &l, &why);
	if (err) {
		/* Name the value the reason is about. */
		char m[18], a[16];
		if (mac && (strstr(why, "MAC") || err == -ENOSPC)) {
			mac_text(mac, m);
			snprintf(what, sizeof(what), "mac %s: ", m);
		} else if (addr && !strstr(why, "MAC")) {
			snprintf(what, sizeof(what), "address %s: ", ip(addr, a));
		}
		err = kl_err(h, err, "network %s: vm %s: %s%s%s", net, vm, what,
			     why, !strcmp(why, "the VM already holds a lease")
			     ? holder(&c.old, vm, hb, sizeof(hb)) : "");
	} else {
		err = commit(&c, &new, NULL, NULL, "lease add");
	}
	lease_tab_free(&new);
out:
	ctx_close(&c);
	return err;
}

static bool same_fwd(const struct kl_forward *a, const struct kl_forward *b)
{
	bool v6 = fwd_family(a) == AF_INET6;

	return fwd_family(a) == fwd_family(b) && a->proto == b->proto &&
	       a->port == b->port && a->to_port == b->to_port &&
	       (v6 ? !memcmp(a->addr6, b->addr6, 16) : a->addr == b->addr) &&
	       !strcmp(a->vm, b->vm);
}

/* The host port taken by another network's forward? */
static int port_elsewhere(struct ctx *c, const struct kl_forward *f)
{
	struct store_net *nets;
	size_t n;
	int err = store_list(c->h, &nets, &n);

	if (err)
		return kl_nlerr(c->h, &c->h->nf, err, "network %s: cannot list "
				"the kvmlab networks", c->net);
	for (size_t i = 0; i < n && !err; i++) {
		struct fwd_tab t;
		if (!strcmp(nets[i].cfg.name, c->net))
			continue;
		if ((err = fwd_read(&c->h->nf, nets[i].cfg.name, &t))) {
			err = kl_nlerr(c->h, &c->h->nf, err, "network %s: cannot "
				       "read the forwards of network %s", c->net,
				       nets[i].cfg.name);
			break;
		}
		if (fwd_find(&t, fwd_family(f), f->proto, f->port))
			err = kl_err(c->h, -EEXIST, "network %s: forward %s %u%s: "
				     "host port already forwarded by network %s",
				     c->net, fwd_proto_name(f->proto), f->port,
				     fwd_family(f) == AF_INET6 ? " (IPv6)" : "",
				     nets[i].cfg.name);
		fwd_tab_free(&t);
	}
	free(nets);
	return err;
}

/* Why an IPv6 forward's target is not a guest address of cfg's prefix,
 * or NULL. */
static const char *check_addr6(const struct kl_net_cfg *cfg,
			       const uint8_t a[16])
{
	uint8_t p[16], q[16];

	if (!cfg->has6)
		return "the network has no IPv6 (up --cidr6 gives it)";
	kl_prefix6(a, cfg->prefix6, p);
	kl_prefix6(cfg->addr6, cfg->prefix6, q);
	if (memcmp(p, q, 16))
		return "not in the network's IPv6 prefix";
	if (!memcmp(a, cfg->addr6, 16))
		return "the bridge's own address";
	/* all-zero host bits: the subnet-router anycast address, the
	 * router itself (RFC 4291 2.6.1); a /127 has none (RFC 6164) */
	if (cfg->prefix6 < 127 && !memcmp(a, p, 16))
		return "the subnet-router anycast address (host bits all zero)";
	return NULL;
}

int kl_forward_add(struct kl_net *h, const char *net, const struct kl_forward *in)
{
	struct kl_forward f = *in;
	const struct fwd_entry *old;
	const char *why, *pn = fwd_proto_name(f.proto);
	char a[64];
	struct ctx c;
	bool v6;
	int err;

	kl_reset_msgs(h);
	if (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP)
		return kl_err(h, -EINVAL, "network %s: forward: protocol %d is "
			      "neither tcp nor udp", net, f.proto);
	if (!f.port || !f.to_port)
		return kl_err(h, -EINVAL, "network %s: forward %s %u: port 0 "
			      "cannot be forwarded", net, pn, f.port);
	if (f.family != 0 && f.family != AF_INET && f.family != AF_INET6)
		return kl_err(h, -EAFNOSUPPORT, "network %s: forward %s %u: "
			      "address family %d is neither IPv4 nor IPv6", net,
			      pn, f.port, f.family);
	f.family = fwd_family(&f);
	v6 = f.family == AF_INET6;
	if (v6)
		f.addr = 0;
	else
		memset(f.addr6, 0, sizeof(f.addr6));
	f.vm[sizeof(f.vm) - 1] = 0;
	if ((err = ctx_open(h, net, f.vm[0] ? f.vm : NULL, true, &c)))
		return err;
	if (f.vm[0]) {
		const struct kl_lease *l = lease_find_vm(&c.old, f.vm);
		if (!l || l->state != KL_LEASE_ACTIVE) {
			err = kl_err(h, -ENOENT, "network %s: forward %s %u: vm %s "
				     "holds no active lease", net, pn, f.port, f.vm);
			goto out;
		}
		if (!v6 && !f.addr)
			f.addr = l->addr;
	}
	if (v6 ? (why = check_addr6(c.cfg, f.addr6)) != NULL
	       : lease_check_addr(c.cfg, f.addr, &why) != 0) {
		err = kl_err(h, -EINVAL, "network %s: forward %s %u: to %s: %s",
			     net, pn, f.port, fwd_target(&f, a), why);
		goto out;
	}
	old = fwd_find(&c.fwds, f.family, f.proto, f.port);
	if (old && !same_fwd(&old->f, &f)) {
		err = kl_err(h, -EEXIST, "network %s: forward %s %u: host port "
			     "already forwarded to %s%s%s", net, pn, f.port,
			     fwd_target(&old->f, a),
			     old->f.vm[0] ? " for vm " : "", old->f.vm);
		goto out;
	}
	/* The same forward again, whole: nothing to do. A partial one (a
	 * rule deleted by hand) is put back whole. */
	if (old && old->handle[FWD_PRE] && old->handle[FWD_OUT] &&
	    old->handle[FWD_ACCEPT] && (v6 ? c.fwds.chains6 : c.fwds.chains))
		goto out;
	if (!old && (err = port_elsewhere(&c, &f)))
		goto out;
	struct fwd_key k = {f.family, f.proto, f.port};
	err = commit(&c, NULL, old ? &k : NULL, &f, "forward add");
out:
	ctx_close(&c);
	return err;
}

int kl_forward_del_family(struct kl_net *h, const char *net, int family,
			  int proto, uint16_t port)
{
	struct fwd_key k = {family, proto, port};
	struct ctx c;
	int err;

	kl_reset_msgs(h);
	if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
		return kl_err(h, -EAFNOSUPPORT, "network %s: forward %s %u: "
			      "address family %d is neither IPv4 nor IPv6", net,
			      fwd_proto_name(proto), port, family);
	if ((err = ctx_open(h, net, NULL, false, &c)))
		return err;
	if (!fwd_find(&c.fwds, family, proto, port))
		err = kl_err(h, -ENOENT, "network %s: forward %s %u%s: no such "
			     "forward", net, fwd_proto_name(proto), port,
			     family == AF_INET6 ? " (IPv6)"
			     : family == AF_INET ? " (IPv4)" : "");
	else
		err = commit(&c, NULL, &k, NULL, "forward del");
	ctx_close(&c);
	return err;
}

int kl_forward_del(struct kl_net *h, const char *net, int proto, uint16_t port)
{
	return kl_forward_del_family(h, net, AF_UNSPEC, proto, port);
}

int lease_show(struct kl_net *h, struct kl_show_net *n)
{
	struct lease_tab t;
	struct fwd_tab f;
	int err;

	/* Without a definition the DNS servers are unknown, not the host's. */
	if (n->def_known)
		dns_for_guests(&n->cfg, &n->dns_host);
	/* nfnetlink answers nothing without CAP_NET_ADMIN: leases and
	 * forwards unknown, like the table itself. No table: none. */
	if (n->nft_present <= 0)
		return 0;
	err = lease_nft_read(&h->nf, n->cfg.name, &t);
	if (err == -EPERM) {
		n->nft_present = -1;
		return 0;
	}
	if (err)
		return kl_nlerr(h, &h->nf, err, "network %s: cannot read map ip "
				NFT_TABLE_PREFIX "%s " LEASE_MAP, n->cfg.name,
				n->cfg.name);
	set_states(&t);
	lease_sort_addr(t.v, t.n);
	n->leases = t.v;
	n->nleases = t.n;
	if ((err = fwd_read(&h->nf, n->cfg.name, &f)))
		return kl_nlerr(h, &h->nf, err, "network %s: cannot read its "
				"forwards", n->cfg.name);
	n->fwds = calloc(f.n ? f.n : 1, sizeof(*n->fwds));
	if (!n->fwds) {
		fwd_tab_free(&f);
		return kl_err(h, -ENOMEM, "show: out of memory");
	}
	for (size_t i = 0; i < f.n; i++)
		n->fwds[i] = f.v[i].f;
	n->nfwds = f.n;
	fwd_tab_free(&f);
	return 0;
}

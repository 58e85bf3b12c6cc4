/* Lease allocation, pure: a network's lease table in, the next table out.
 * A VM's MAC and address are hashes of the network and VM names, so they
 * come out the same every time while free; a collision probes on (the
 * next MAC attempt, the next address). No I/O here: liveness of owners
 * is decided by the caller and given in each lease's state. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lease.h"

void lease_tab_free(struct lease_tab *t)
{
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

int lease_tab_push(struct lease_tab *t, const struct kl_lease *l)
{
	struct kl_lease *v = kl_grow(t->v, &t->cap, t->n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	t->v = v;
	t->v[t->n++] = *l;
	return 0;
}

int lease_tab_copy(struct lease_tab *dst, const struct lease_tab *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		if (lease_tab_push(dst, &src->v[i])) {
			lease_tab_free(dst);
			return -ENOMEM;
		}
	return 0;
}

struct kl_lease *lease_find_vm(const struct lease_tab *t, const char *vm)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].vm, vm))
			return &t->v[i];
	return NULL;
}

static int cmp_mac(const void *a, const void *b)
{
	return memcmp(((const struct kl_lease *)a)->mac,
		      ((const struct kl_lease *)b)->mac, 6);
}

static int cmp_addr(const void *a, const void *b)
{
	uint32_t x = ((const struct kl_lease *)a)->addr;
	uint32_t y = ((const struct kl_lease *)b)->addr;

	return x < y ? -1 : x > y;
}

void lease_sort_mac(struct lease_tab *t)
{
	if (t->n)
		qsort(t->v, t->n, sizeof(t->v[0]), cmp_mac);
}

void lease_sort_addr(struct kl_lease *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof(v[0]), cmp_addr);
}

/* FNV-1a over the parts, then a 64-bit finaliser (splitmix64) so that
 * names differing in one byte land far apart. Fixed across hosts and
 * builds: stability is the point. */
static uint64_t hash(const char *a, const char *b, unsigned salt)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *parts[2] = {a, b};

	for (int i = 0; i < 2; i++) {
		for (const char *s = parts[i]; *s; s++)
			h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
		h = (h ^ 0xff) * 0x100000001b3ull; /* separator: "ab"+"c" != "a"+"bc" */
	}
	h ^= salt;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

void lease_mac(const char *net, const char *vm, unsigned attempt,
	       uint8_t mac[6])
{
	uint64_t h = hash(net, vm, attempt);

	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * i));
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02); /* local, unicast */
}

int lease_check_mac(const uint8_t mac[6], const char **why)
{
	static const uint8_t zero[6];

	if (!memcmp(mac, zero, 6))
		return *why = "the all-zero MAC is not a station address", -EINVAL;
	if (mac[0] & 1)
		return *why = "a multicast MAC is not a station address", -EINVAL;
	return 0;
}

/* The pool: first..last, every address a guest may hold but the bridge's. */
static void pool(const struct kl_net_cfg *cfg, uint32_t *first, uint32_t *last)
{
	uint32_t mask = ~0u << (32 - cfg->prefix);
	uint32_t net = cfg->addr & mask;

	if (cfg->prefix >= 31) { /* RFC 3021: both addresses are hosts */
		*first = net;
		*last = net | ~mask;
	} else {
		*first = net + 1;
		*last = (net | ~mask) - 1;
	}
}

int lease_check_addr(const struct kl_net_cfg *cfg, uint32_t addr,
		     const char **why)
{
	uint32_t mask = ~0u << (32 - cfg->prefix), first, last;

	if ((addr & mask) != (cfg->addr & mask))
		return *why = "outside the network's subnet", -EINVAL;
	if (addr == cfg->addr)
		return *why = "the bridge's own address", -EINVAL;
	pool(cfg, &first, &last);
	if (addr < first)
		return *why = "the network address", -EINVAL;
	if (addr > last)
		return *why = "the broadcast address", -EINVAL;
	return 0;
}

enum kl_lease_state lease_state_of(const struct kl_lease *l, bool alive)
{
	if (l->pid && alive)
		return KL_LEASE_ACTIVE;
	return l->reserved ? KL_LEASE_RESERVED : KL_LEASE_STALE;
}

static void drop(struct lease_tab *t, size_t i)
{
	t->v[i] = t->v[--t->n];
}

size_t lease_reclaim(struct lease_tab *t)
{
	size_t changed = 0;

	for (size_t i = 0; i < t->n;) {
		struct kl_lease *l = &t->v[i];
		if (l->state == KL_LEASE_ACTIVE) {
			i++;
			continue;
		}
		changed++;
		if (!l->reserved) {
			drop(t, i);
			continue;
		}
		/* A reservation outlives its owner; only the owner goes. */
		if (l->pid)
			l->pid = 0, l->start = 0;
		else
			changed--;
		i++;
	}
	return changed;
}

static bool mac_used(const struct lease_tab *t, const uint8_t mac[6])
{
	for (size_t i = 0; i < t->n; i++)
		if (!memcmp(t->v[i].mac, mac, 6))
			return true;
	return false;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The first free address from vm's own slot on, wrapping. */
static int pick_addr(const struct kl_net_cfg *cfg, const struct lease_tab *t,
		     const char *vm, uint32_t *out)
{
	uint32_t first, last, *used;
	uint64_t size;
	size_t n = 0;
	int err = -ENOSPC;

	pool(cfg, &first, &last);
	size = (uint64_t)last - first + 1;
	used = malloc((t->n + 1) * sizeof(*used));
	if (!used)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].addr >= first && t->v[i].addr <= last)
			used[n++] = t->v[i].addr;
	if (cfg->addr >= first && cfg->addr <= last)
		used[n++] = cfg->addr;
	qsort(used, n, sizeof(*used), cmp_u32);
	/* At most n + 1 probes find a free one when there is any. */
	uint64_t start = hash("", vm, 0) % size;
	for (uint64_t k = 0; k < size && k <= n; k++) {
		uint32_t a = first + (uint32_t)((start + k) % size);
		if (!bsearch(&a, used, n, sizeof(*used), cmp_u32)) {
			*out = a;
			err = 0;
			break;
		}
	}
	free(used);
	return err;
}

/* A new lease for vm in t: mac/addr as given (checked) or derived. */
static int alloc(const struct kl_net_cfg *cfg, struct lease_tab *t,
		 const char *vm, const uint8_t *mac, uint32_t addr,
		 struct kl_lease *l, const char **why)
{
	int err;

	memset(l, 0, sizeof(*l));
	snprintf(l->vm, sizeof(l->vm), "%s", vm);
	if (mac) {
		memcpy(l->mac, mac, 6);
		if (mac_used(t, mac))
			return *why = "the MAC is already leased", -EEXIST;
	} else {
		unsigned k = 0;
		/* 2^46 MACs: a clash is rare and two is rarer still. */
		do
			lease_mac(cfg->name, vm, k++, l->mac);
		while (mac_used(t, l->mac) && k < 64);
		if (mac_used(t, l->mac))
			return *why = "no free MAC", -ENOSPC;
	}
	if (addr) {
		for (size_t i = 0; i < t->n; i++)
			if (t->v[i].addr == addr)
				return *why = "the address is already leased",
				       -EEXIST;
		l->addr = addr;
	} else if ((err = pick_addr(cfg, t, vm, &l->addr)) != 0) {
		if (err == -ENOSPC)
			*why = "no free address left in the subnet";
		else
			*why = "out of memory";
		return err;
	}
	return 0;
}

int lease_plan_take(const struct kl_net_cfg *cfg, struct lease_tab *t,
		    const char *vm, pid_t pid, uint64_t start,
		    struct kl_lease *l, const char **why)
{
	struct kl_lease *own = lease_find_vm(t, vm);
	int err;

	if (own && own->state == KL_LEASE_ACTIVE) {
		if (own->pid != pid || own->start != start)
			return *why = "already leased to a running owner",
			       -EEXIST;
		*l = *own; /* the same owner again: nothing changes */
		return 0;
	}
	if (own) {
		/* Its own lease, reserved or stale, comes back with the same
		 * MAC and address: mark it active before reclaiming. */
		own->pid = pid;
		own->start = start;
		own->state = KL_LEASE_ACTIVE;
		*l = *own;
		lease_reclaim(t);
		return 0;
	}
	lease_reclaim(t);
	if ((err = alloc(cfg, t, vm, NULL, 0, l, why)) != 0)
		return err;
	l->pid = pid;
	l->start = start;
	l->state = KL_LEASE_ACTIVE;
	return lease_tab_push(t, l) ? (*why = "out of memory", -ENOMEM) : 0;
}

int lease_plan_add(const struct kl_net_cfg *cfg, struct lease_tab *t,
		   const char *vm, const uint8_t *mac, uint32_t addr,
		   struct kl_lease *l, const char **why)
{
	int err;

	if (mac && (err = lease_check_mac(mac, why)) != 0)
		return err;
	if (addr && (err = lease_check_addr(cfg, addr, why)) != 0)
		return err;
	if (lease_find_vm(t, vm) &&
	    lease_find_vm(t, vm)->state != KL_LEASE_STALE)
		return *why = "the VM already holds a lease", -EEXIST;
	/* A stale lease (its own included) gives way to the reservation. */
	lease_reclaim(t);
	if ((err = alloc(cfg, t, vm, mac, addr, l, why)) != 0)
		return err;
	l->reserved = true;
	l->state = KL_LEASE_RESERVED;
	return lease_tab_push(t, l) ? (*why = "out of memory", -ENOMEM) : 0;
}

int lease_plan_release(struct lease_tab *t, const char *vm, const char **why)
{
	struct kl_lease *l = lease_find_vm(t, vm);

	if (!l)
		return *why = "holds no lease", -ENOENT;
	if (l->reserved) {
		l->pid = 0;
		l->start = 0;
		l->state = KL_LEASE_RESERVED;
	} else {
		drop(t, (size_t)(l - t->v));
	}
	return 0;
}

int lease_plan_del(struct lease_tab *t, const char *vm, const char **why)
{
	struct kl_lease *l = lease_find_vm(t, vm);

	if (!l)
		return *why = "holds no lease", -ENOENT;
	drop(t, (size_t)(l - t->v));
	return 0;
}

int lease_comment(const struct kl_lease *l, char *buf, size_t len)
{
	int n = snprintf(buf, len, "vm=%s owner=%d/%" PRIu64 "%s", l->vm,
			 (int)l->pid, l->start, l->reserved ? " reserved" : "");

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int lease_comment_parse(const char *s, struct kl_lease *l)
{
	char vm[KL_VM_NAME_MAX + 2], rest[16] = "";
	int pid, n = 0;
	uint64_t start;
	const char *why;

	/* %64[^ ] takes one byte more than a name may have: a longer one is
	 * caught by the name check instead of being cut. */
	if (sscanf(s, "vm=%64[^ ] owner=%d/%" SCNu64 "%n", vm, &pid, &start,
		   &n) != 3 || pid < 0)
		return -EBADMSG;
	if (s[n] && (sscanf(s + n, " %15s", rest) != 1 ||
		     strcmp(rest, "reserved") ||
		     strcmp(s + n, " reserved")))
		return -EBADMSG;
	if (kl_vm_name_check(vm, &why))
		return -EBADMSG;
	memcpy(l->vm, vm, strlen(vm) + 1); /* checked: at most 63 bytes */
	l->pid = pid;
	l->start = start;
	l->reserved = s[n] != 0;
	return 0;
}

int kl_vm_name_check(const char *vm, const char **why)
{
	size_t n = strlen(vm);

	if (n == 0)
		return *why = "empty VM name", -EINVAL;
	if (n > KL_VM_NAME_MAX)
		return *why = "VM name longer than 63 bytes", -EINVAL;
	if (strspn(vm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		       "0123456789_.-") != n)
		return *why = "VM names may only hold A-Z a-z 0-9 _ . -", -EINVAL;
	if (!strcmp(vm, ".") || !strcmp(vm, ".."))
		return *why = "\".\" and \"..\" are not VM names", -EINVAL;
	return 0;
}

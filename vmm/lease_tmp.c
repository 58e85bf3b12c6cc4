/* TEMPORARY: replaced by net/lease.c at merge. Delete this file and its
 * line in vmm/vmm.mk then. A minimal stand-in for the lease branch's
 * kl_lease_*() and kl_forward_*() (declared in net/net.h), only so that
 * `kvmlab-vm run --net` and its DHCP server can be tested before the
 * merge: no lease table, no owner check, no reclaim, no forwards. The
 * address is .2 + a hash of the VM name, the MAC 02:6b:6c + hash bytes;
 * no DNS server is offered. Nothing but vmm/main.c may call these. */
#include <errno.h>
#include <string.h>

#include "net.h"

static uint32_t fnv1a(const char *a, const char *b)
{
	uint32_t h = 2166136261u;
	for (const char *p = a; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (const char *p = b; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

int kl_lease_take(struct kl_net *h, const char *net, const char *vm, pid_t owner,
		  struct kl_lease_info *out)
{
	struct kl_show *s;
	(void)owner;
	if (strlen(vm) > KL_VM_NAME_MAX)
		return -EINVAL;
	int rc = kl_net_show(h, net, &s);
	if (rc)
		return rc;
	if (s->nnets != 1) {
		kl_show_free(s);
		return -ENOENT;
	}
	const struct kl_show_net *n = &s->nets[0];
	memset(out, 0, sizeof(*out));
	strcpy(out->vm, vm);
	out->router = n->cfg.addr;
	out->prefix = n->cfg.prefix;
	out->mtu = n->bridge_mtu;
	kl_show_free(s);

	uint32_t hash = fnv1a(net, vm);
	uint32_t mask = ~0u << (32 - out->prefix);
	uint32_t hosts = ~mask - 1; /* usable host parts 1..hosts */
	if (hosts < 2)
		return -ENOSPC;
	uint32_t host = 2 + hash % (hosts - 1);
	if (host == (out->router & ~mask))
		host = host == hosts ? 2 : host + 1;
	out->addr = (out->router & mask) | host;
	out->mac[0] = 0x02;
	out->mac[1] = 0x6b;
	out->mac[2] = 0x6c;
	out->mac[3] = (uint8_t)(hash >> 24);
	out->mac[4] = (uint8_t)(hash >> 16);
	out->mac[5] = (uint8_t)(hash >> 8);
	return 0;
}

int kl_lease_release(struct kl_net *h, const char *net, const char *vm)
{
	(void)h, (void)net, (void)vm;
	return 0;
}

int kl_lease_add(struct kl_net *h, const char *net, const char *vm,
		 const uint8_t *mac, uint32_t addr)
{
	(void)h, (void)net, (void)vm, (void)mac, (void)addr;
	return -EOPNOTSUPP;
}

int kl_lease_del(struct kl_net *h, const char *net, const char *vm)
{
	(void)h, (void)net, (void)vm;
	return -EOPNOTSUPP;
}

int kl_forward_add(struct kl_net *h, const char *net, const struct kl_forward *f)
{
	(void)h, (void)net, (void)f;
	return -EOPNOTSUPP;
}

int kl_forward_del(struct kl_net *h, const char *net, int proto, uint16_t port)
{
	(void)h, (void)net, (void)proto, (void)port;
	return -EOPNOTSUPP;
}

#include "fwd6.h"

#include "cmd_dhcp.h"
#include "devices.h"
#include "ra.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int fwd6_start(struct fwd6 *f, const char *net, const char *vm, unsigned nic,
	       const struct kl_forward *fw, unsigned nfw)
{
	memset(f, 0, sizeof(*f));
	if (!nfw)
		return 0;
	int rc = kl_net_open(&f->h);
	if (rc) {
		f->h = NULL;
		return rc;
	}
	kl_net_set_wait(f->h, 0);
	f->net = net;
	f->vm = vm;
	f->nic = nic;
	f->fw = fw;
	f->nfw = nfw;
	return 0;
}

/* The IPv6 twin of --forward i, to a. */
static struct kl_forward twin(const struct fwd6 *f, unsigned i, const uint8_t a[16])
{
	struct kl_forward g = f->fw[i];
	g.family = AF_INET6;
	g.addr = 0;
	memcpy(g.addr6, a, 16);
	snprintf(g.vm, sizeof(g.vm), "%s", f->vm);
	return g;
}

void fwd6_tick(struct fwd6 *f)
{
	uint8_t claims[DEV_ADDR6_MAX][16], next[16];
	unsigned n;
	int rc = 0;

	if (!f->h)
		return;
	n = devices_nic_addr6(f->nic, claims, DEV_ADDR6_MAX);
	if (!ra_claim_pick(f->to, f->have, claims, n, next) ||
	    (f->has_failed && !memcmp(next, f->failed, 16)))
		return;
	/* off the old address first: the same host port to another target
	 * is refused. Only ours: f->have says we put them there */
	for (unsigned i = 0; f->have && i < f->nfw && !rc; i++) {
		rc = kl_forward_del_family(f->h, f->net, AF_INET6, f->fw[i].proto, f->fw[i].port);
		if (rc == -ENOENT) /* removed by hand: fine */
			rc = 0;
	}
	if (!rc)
		f->have = false;
	for (unsigned i = 0; i < f->nfw && !rc; i++) {
		struct kl_forward g = twin(f, i, next);
		rc = kl_forward_add(f->h, f->net, &g);
		/* the namespace's lock busy: again next tick (what is in
		 * place by then is added again as a no-op) */
		if (!rc || rc == -ETIMEDOUT)
			continue;
		char a[INET6_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET6, next, a, sizeof(a));
		fprintf(stderr, "kvmlab-vm: --forward %u:%u%s over IPv6 to %s: %s; the forwards stay "
			"IPv4 only\n", g.port, g.to_port, g.proto == IPPROTO_UDP ? "/udp" : "", a,
			front_net_why(f->h, rc));
		memcpy(f->failed, next, 16);
		f->has_failed = true;
		/* all or none: the ones this round put in place go again */
		for (unsigned k = 0; k < i; k++)
			if (kl_forward_del_family(f->h, f->net, AF_INET6, f->fw[k].proto,
						  f->fw[k].port)) {
				/* left to the lease, which takes them at exit */
			}
	}
	if (!rc) {
		memcpy(f->to, next, 16);
		f->have = true;
	}
}

void fwd6_stop(struct fwd6 *f)
{
	if (f->h)
		kl_net_close(f->h);
	f->h = NULL;
}

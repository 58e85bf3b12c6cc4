/* show --json for a network's leases, forwards and DNS servers, through
 * jansson: every string goes through the library's escaping. */
#include <stdio.h>
#include <netinet/in.h>
#include "cli_lease.h"

static json_t *ip(uint32_t a)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		 (a >> 8) & 255, a & 255);
	return json_string(buf);
}

static const char *state_name(enum kl_lease_state s)
{
	return s == KL_LEASE_ACTIVE ? "active"
	       : s == KL_LEASE_RESERVED ? "reserved" : "stale";
}

static json_t *lease(const struct kl_lease *l)
{
	char mac[18];

	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", l->mac[0],
		 l->mac[1], l->mac[2], l->mac[3], l->mac[4], l->mac[5]);
	return json_pack("{s:s, s:s, s:o, s:s, s:b, s:o, s:o}", "vm", l->vm,
			 "mac", mac, "address", ip(l->addr), "state",
			 state_name(l->state), "reserved", l->reserved, "pid",
			 l->pid ? json_integer(l->pid) : json_null(), "start",
			 l->pid ? json_integer((json_int_t)l->start) : json_null());
}

static json_t *forward(const struct kl_forward *f)
{
	return json_pack("{s:s, s:i, s:o, s:i, s:o}", "proto",
			 f->proto == IPPROTO_TCP ? "tcp" : "udp", "port", f->port,
			 "to_address", ip(f->addr), "to_port", f->to_port, "vm",
			 f->vm[0] ? json_string(f->vm) : json_null());
}

json_t *cli_json_lease(const struct kl_show_net *n)
{
	json_t *servers = json_array(), *leases = json_array();
	json_t *fwds = json_array();

	if (!servers || !leases || !fwds)
		goto err;
	for (unsigned i = 0; i < n->cfg.ndns && i < KL_DNS_MAX; i++)
		if (json_array_append_new(servers, ip(n->cfg.dns[i])))
			goto err;
	for (size_t i = 0; i < n->nleases; i++)
		if (json_array_append_new(leases, lease(&n->leases[i])))
			goto err;
	for (size_t i = 0; i < n->nfwds; i++)
		if (json_array_append_new(fwds, forward(&n->fwds[i])))
			goto err;
	/* Unreadable without CAP_NET_ADMIN: null, not an empty list. */
	if (n->nft_present < 0) {
		json_decref(leases);
		json_decref(fwds);
		leases = json_null();
		fwds = json_null();
	}
	/* "o" steals the references, on failure too. */
	return json_pack("{s:{s:o, s:s}, s:o, s:o}", "dns", "servers", servers,
			 "from", n->dns_host ? "host" : "network", "leases",
			 leases, "forwards", fwds);
err:
	json_decref(servers);
	json_decref(leases);
	json_decref(fwds);
	return NULL;
}

/* The host's upstream DNS resolvers, picked the way Docker does it:
 * resolv.conf; when that names only loopback resolvers (systemd-resolved's
 * stub at 127.0.0.53), systemd-resolved's own upstream list; loopback
 * addresses dropped, since a guest cannot reach the host's. IPv4 ones go
 * out by DHCPv4, IPv6 ones in router advertisements (RDNSS): a scoped
 * link-local server (fe80::1%eth0) is on the host's link, not the
 * guests', and is dropped too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include "lease.h"

#define RESOLV_CONF "/etc/resolv.conf"
#define RESOLVED_CONF "/run/systemd/resolve/resolv.conf"

struct found {
	unsigned total, loopback; /* every nameserver line, IPv6 included */
	struct dns_set *out;
};

static void add4(struct dns_set *d, uint32_t a)
{
	for (unsigned i = 0; i < d->n4; i++)
		if (d->v4[i] == a)
			return;
	if (d->n4 < KL_DNS_MAX && a != 0)
		d->v4[d->n4++] = a;
}

static void add6(struct dns_set *d, const uint8_t a[16])
{
	for (unsigned i = 0; i < d->n6; i++)
		if (!memcmp(d->v6[i], a, 16))
			return;
	if (d->n6 < KL_DNS_MAX && !dns6_bad(a))
		memcpy(d->v6[d->n6++], a, 16);
}

static void read_conf(const char *path, struct found *f)
{
	FILE *fp = fopen(path, "re");
	char line[512], addr[128];

	/* A missing file offers nothing; that is not an error. */
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		struct in_addr a4;
		struct in6_addr a6;
		char *pct;

		if (sscanf(line, " nameserver %127s", addr) != 1)
			continue;
		if ((pct = strchr(addr, '%'))) /* fe80::1%eth0 */
			*pct = 0;
		if (inet_pton(AF_INET, addr, &a4) == 1) {
			uint32_t a = ntohl(a4.s_addr);
			f->total++;
			if ((a >> 24) == 127)
				f->loopback++;
			else
				add4(f->out, a);
		} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
			f->total++;
			if (IN6_IS_ADDR_LOOPBACK(&a6))
				f->loopback++;
			else
				add6(f->out, a6.s6_addr);
		}
	}
	fclose(fp);
}

int dns_pick(const char *path, const char *fallback, struct dns_set *out)
{
	struct found f = {.out = out};

	memset(out, 0, sizeof(*out));
	read_conf(path, &f);
	if (f.total && f.total == f.loopback && fallback) {
		memset(out, 0, sizeof(*out));
		f.total = f.loopback = 0;
		read_conf(fallback, &f);
	}
	return 0;
}

int dns_host(struct dns_set *out)
{
	const char *p = getenv("KVMLAB_RESOLV_CONF");
	const char *fb = getenv("KVMLAB_RESOLVED_CONF");

	return dns_pick(p && *p ? p : RESOLV_CONF, fb && *fb ? fb : RESOLVED_CONF,
			out);
}

void dns_for_guests(struct kl_net_cfg *cfg, bool *from_host)
{
	struct dns_set d;

	*from_host = false;
	if (cfg->ndns || cfg->ndns6)
		return;
	IGNORE(dns_host(&d));
	*from_host = true;
	cfg->ndns = d.n4;
	memcpy(cfg->dns, d.v4, sizeof(cfg->dns));
	if (cfg->has6) {
		cfg->ndns6 = d.n6;
		memcpy(cfg->dns6, d.v6, sizeof(cfg->dns6));
	}
}

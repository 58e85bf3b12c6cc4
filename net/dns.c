/* The host's upstream DNS resolvers, picked the way Docker does it:
 * resolv.conf; when that names only loopback resolvers (systemd-resolved's
 * stub at 127.0.0.53), systemd-resolved's own upstream list; loopback
 * addresses dropped, since a guest cannot reach the host's. Only IPv4
 * servers count: DHCPv4 offers nothing else. */
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
	uint32_t *out;
	unsigned max, n;
};

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
			if ((a >> 24) == 127) {
				f->loopback++;
			} else if (f->n < f->max) {
				bool dup = false;
				for (unsigned i = 0; i < f->n; i++)
					dup |= f->out[i] == a;
				if (!dup && a != 0)
					f->out[f->n++] = a;
			}
		} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
			f->total++;
			if (IN6_IS_ADDR_LOOPBACK(&a6))
				f->loopback++;
		}
	}
	fclose(fp);
}

int dns_pick(const char *path, const char *fallback, uint32_t *out,
	     unsigned max, unsigned *n)
{
	struct found f = {.out = out, .max = max};

	read_conf(path, &f);
	if (f.total && f.total == f.loopback && fallback) {
		memset(&f, 0, sizeof(f));
		f.out = out;
		f.max = max;
		read_conf(fallback, &f);
	}
	*n = f.n;
	return 0;
}

int dns_host(uint32_t *out, unsigned max, unsigned *n)
{
	const char *p = getenv("KVMLAB_RESOLV_CONF");
	const char *fb = getenv("KVMLAB_RESOLVED_CONF");

	return dns_pick(p && *p ? p : RESOLV_CONF, fb && *fb ? fb : RESOLVED_CONF,
			out, max, n);
}

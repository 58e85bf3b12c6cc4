/* Input validation shared by the library and the CLI: interface names
 * and IPv4 CIDRs. No kernel access, so unit tests cover it without root. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "priv.h"

int kl_name_check(const char *name, const char **why)
{
	const char *p;

	/* The kernel's dev_valid_name() plus a byte limit we can state up
	 * front instead of a bare EINVAL later. */
	if (!name || !*name)
		return *why = "name is empty", -EINVAL;
	if (strlen(name) > KL_NAME_MAX)
		return *why = "name is longer than 15 bytes", -EINVAL;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return *why = "name may not be '.' or '..'", -EINVAL;
	for (p = name; *p; p++) {
		if (*p == '/')
			return *why = "name contains '/'", -EINVAL;
		if (*p == ':')
			return *why = "name contains ':'", -EINVAL;
		if (*p == ' ')
			return *why = "name contains a space", -EINVAL;
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return *why = "name contains a control or blank character",
			       -EINVAL;
	}
	return 0;
}

int kl_cidr_parse(const char *s, uint32_t *addr, unsigned *prefix,
		  const char **why)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/'), *p;
	struct in_addr in;
	unsigned long len = 0;
	uint32_t a, mask;

	if (!slash)
		return *why = "malformed CIDR (want a.b.c.d/len)", -EINVAL;
	if ((size_t)(slash - s) >= sizeof(ip))
		return *why = "malformed address", -EINVAL;
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = 0;
	/* inet_pton takes only the strict dotted quad: no octal, no short
	 * forms, which inet_aton would quietly accept. */
	if (inet_pton(AF_INET, ip, &in) != 1)
		return *why = "malformed address", -EINVAL;
	p = slash + 1;
	if (!*p || strlen(p) > 2)
		return *why = "malformed prefix length", -EINVAL;
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return *why = "malformed prefix length", -EINVAL;
		len = len * 10 + (unsigned long)(*p - '0');
	}
	if (len == 0)
		return *why = "prefix length /0 is not allowed", -EINVAL;
	if (len >= 32)
		return *why = len == 32 ? "prefix length /32 leaves no room for hosts"
				       : "prefix length over 32",
		       -EINVAL;
	a = ntohl(in.s_addr);
	mask = ~0u << (32 - len);
	if ((a & ~mask) == 0)
		return *why = "host address is the network address", -EINVAL;
	if ((a & ~mask) == ~mask)
		return *why = "host address is the broadcast address", -EINVAL;
	*addr = a;
	*prefix = (unsigned)len;
	return 0;
}

void kl_bridge_name(const char *net, char out[KL_NAME_MAX + 1])
{
	uint32_t h = 2166136261u;
	const char *p;

	if (strlen(net) + 3 <= KL_NAME_MAX) {
		snprintf(out, KL_NAME_MAX + 1, "kl-%s", net);
		return;
	}
	/* Too long for the prefix: keep the start and add a short hash of
	 * the whole name so that two long names rarely meet. */
	for (p = net; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(out, KL_NAME_MAX + 1, "kl-%.8s-%03x", net, h & 0xfff);
}

const char *kl_ip4(uint32_t a, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		 (a >> 8) & 255, a & 255);
	return buf;
}

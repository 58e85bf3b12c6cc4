/* Input validation shared by the library and the CLI (interface names,
 * IPv4 CIDRs, DNS lists), the link tags, and name helpers. No kernel
 * access, so unit tests cover it without root. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "priv.h"

int kl_name_check(const char *name, const char **why)
{
	const unsigned char *p;

	/* A whitelist: the kernel reads '%' as a name template, and quotes,
	 * backslashes and non-ASCII bytes only cause trouble in JSON, shells
	 * and nft comments. */
	if (!name || !*name)
		return *why = "name is empty", -EINVAL;
	if (strlen(name) > KL_NAME_MAX)
		return *why = "name is longer than 15 bytes", -EINVAL;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return *why = "name may not be '.' or '..'", -EINVAL;
	for (p = (const unsigned char *)name; *p; p++) {
		if (isascii(*p) && (isalnum(*p) || *p == '_' || *p == '.' ||
				    *p == '-'))
			continue;
		switch (*p) {
		case '%': return *why = "name contains '%' (the kernel would "
				       "make it a name template)", -EINVAL;
		case '/': return *why = "name contains '/'", -EINVAL;
		case ':': return *why = "name contains ':'", -EINVAL;
		case ' ': return *why = "name contains a space", -EINVAL;
		case '"': return *why = "name contains '\"'", -EINVAL;
		case '\\': return *why = "name contains a backslash", -EINVAL;
		}
		if (*p >= 0x80)
			return *why = "name contains a byte >= 0x80 (only ASCII "
				      "letters, digits, '_', '.' and '-')", -EINVAL;
		if (isspace(*p) || iscntrl(*p))
			return *why = "name contains a control or blank character",
			       -EINVAL;
		return *why = "name contains a character other than ASCII "
			      "letters, digits, '_', '.' and '-'", -EINVAL;
	}
	return 0;
}

/* Host addresses no bridge should hold. */
static const char *bad_host(uint32_t a)
{
	if ((a >> 24) == 0)
		return "address is in 0.0.0.0/8 (\"this network\")";
	if ((a >> 24) == 127)
		return "address is in 127.0.0.0/8 (loopback)";
	if ((a >> 28) == 0xe)
		return "address is multicast (224.0.0.0/4)";
	if ((a >> 28) == 0xf)
		return "address is class E (240.0.0.0/4) or broadcast";
	return NULL;
}

/* "LEN" of a CIDR, 1 to digits decimal digits, not 0: NULL, or why not. */
static const char *prefix_len(const char *p, size_t digits, unsigned long *len)
{
	*len = 0;
	if (!*p || strlen(p) > digits)
		return "malformed prefix length";
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return "malformed prefix length";
		*len = *len * 10 + (unsigned long)(*p - '0');
	}
	return *len ? NULL : "prefix length /0 is not allowed";
}

/* Why the first n bytes of s are no IPv4 address: an IPv6 one is told
 * apart, since kvmlab networks are IPv4 only and the user may not know. */
static const char *bad_addr(const char *s, size_t n)
{
	return memchr(s, ':', n) ? "an IPv6 address (kvmlab networks are IPv4)"
				 : "malformed address";
}

int kl_cidr_parse(const char *s, uint32_t *addr, unsigned *prefix,
		  const char **why)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr in;
	unsigned long len = 0;
	uint32_t a, mask;

	if (!slash)
		return *why = "malformed CIDR (want a.b.c.d/len)", -EINVAL;
	if ((size_t)(slash - s) >= sizeof(ip))
		return *why = bad_addr(s, (size_t)(slash - s)), -EINVAL;
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = 0;
	/* inet_pton takes only the strict dotted quad: no octal, no short
	 * forms, which inet_aton would quietly accept. */
	if (inet_pton(AF_INET, ip, &in) != 1)
		return *why = bad_addr(ip, strlen(ip)), -EINVAL;
	if ((*why = prefix_len(slash + 1, 2, &len)))
		return -EINVAL;
	if (len >= 32)
		return *why = len == 32 ? "prefix length /32 leaves no room for hosts"
				       : "prefix length over 32",
		       -EINVAL;
	a = ntohl(in.s_addr);
	if ((*why = bad_host(a)))
		return -EINVAL;
	mask = ~0u << (32 - len);
	/* A /31 has no network or broadcast address (RFC 3021): the bridge
	 * takes one end, one guest the other. */
	if (len < 31 && (a & ~mask) == 0)
		return *why = "host address is the network address", -EINVAL;
	if (len < 31 && (a & ~mask) == ~mask)
		return *why = "host address is the broadcast address", -EINVAL;
	*addr = a;
	*prefix = (unsigned)len;
	return 0;
}

/* Are the bits of a past the first len all zero? */
static bool host_bits_zero(const uint8_t a[16], unsigned len)
{
	for (unsigned i = len; i < 128; i++)
		if (a[i / 8] & (0x80u >> (i % 8)))
			return false;
	return true;
}

int kl_cidr6_parse(const char *s, uint8_t addr[16], unsigned *prefix,
		   const char **why)
{
	char ip[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	unsigned long len = 0;
	uint8_t a[16];

	if (!slash)
		return *why = "malformed CIDR (want an IPv6 address/len)", -EINVAL;
	if ((size_t)(slash - s) >= sizeof(ip))
		return *why = "malformed IPv6 address", -EINVAL;
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = 0;
	/* No zone index ("%eth0"): inet_pton refuses it, as it should for a
	 * global address. */
	if (inet_pton(AF_INET6, ip, a) != 1)
		return *why = memchr(ip, '.', strlen(ip)) && !memchr(ip, ':', strlen(ip))
			      ? "an IPv4 address (--cidr6 takes IPv6)"
			      : "malformed IPv6 address", -EINVAL;
	if ((*why = prefix_len(slash + 1, 3, &len)))
		return -EINVAL;
	if (len >= 128)
		return *why = len == 128 ? "prefix length /128 leaves no room for hosts"
					: "prefix length over 128", -EINVAL;
	if (a[0] == 0)
		return *why = "address in ::/8 (unspecified, loopback, IPv4-mapped)",
		       -EINVAL;
	if (a[0] == 0xff)
		return *why = "multicast address", -EINVAL;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return *why = "link-local address (fe80::/10; the bridge gets fe80::1 "
			      "itself)", -EINVAL;
	/* The all-zero host part is the subnet-router anycast address
	 * (RFC 4291 2.6.1); a /127 has none (RFC 6164). */
	if (len < 127 && host_bits_zero(a, (unsigned)len))
		return *why = "host address is the subnet-router anycast address "
			      "(host bits all zero)", -EINVAL;
	memcpy(addr, a, 16);
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

void kl_prefix6(const uint8_t a[16], unsigned len, uint8_t out[16])
{
	memset(out, 0, 16);
	for (unsigned i = 0; i < len && i < 128; i++)
		out[i / 8] |= a[i / 8] & (uint8_t)(0x80u >> (i % 8));
}

const char *kl_ip6(const uint8_t a[16], char buf[46])
{
	if (!inet_ntop(AF_INET6, a, buf, 46))
		snprintf(buf, 46, "?");
	return buf;
}

const char *dns6_bad(const uint8_t a[16])
{
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (a[0] == 0xff)
		return "a multicast address";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "a link-local address (no use on the guests' link)";
	if (!memcmp(a, mapped, 12))
		return "an IPv4-mapped address (give it as IPv4)";
	if (a[0] == 0 && host_bits_zero(a, 8))
		return "not a unicast address";
	/* ::1 and the rest of ::/8 are no address a guest can reach */
	if (a[0] == 0)
		return "in ::/8 (loopback, unspecified, IPv4-compatible)";
	return NULL;
}

int kl_dns_parse46(const char *s, uint32_t dns[KL_DNS_MAX], unsigned *n,
		   uint8_t dns6[KL_DNS_MAX][16], unsigned *n6, const char **why)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned k = 0, k6 = 0;

	if (!s || !*s)
		return *why = "no address given", -EINVAL;
	for (;;) {
		size_t len = strcspn(s, ",");
		struct in_addr in;
		uint8_t a6[16];
		uint32_t a;
		if (len == 0 || len >= sizeof(ip))
			return *why = "malformed address", -EINVAL;
		memcpy(ip, s, len);
		ip[len] = 0;
		if (inet_pton(AF_INET, ip, &in) == 1) {
			a = ntohl(in.s_addr);
			if ((a >> 24) == 0 || (a >> 28) >= 0xe)
				return *why = "not a unicast address", -EINVAL;
			if (k == KL_DNS_MAX)
				return *why = "more than 3 IPv4 addresses", -EINVAL;
			dns[k++] = a;
		} else if (inet_pton(AF_INET6, ip, a6) == 1) {
			if ((*why = dns6_bad(a6)))
				return -EINVAL;
			if (k6 == KL_DNS_MAX)
				return *why = "more than 3 IPv6 addresses", -EINVAL;
			memcpy(dns6[k6++], a6, 16);
		} else {
			return *why = "malformed address", -EINVAL;
		}
		if (!s[len])
			break;
		s += len + 1;
	}
	*n = k;
	*n6 = k6;
	return 0;
}

int kl_dns_parse(const char *s, uint32_t dns[KL_DNS_MAX], unsigned *n,
		 const char **why)
{
	uint8_t six[KL_DNS_MAX][16];
	unsigned n4 = 0, n6 = 0;
	int err = kl_dns_parse46(s, dns, &n4, six, &n6, why);

	if (!err && n6)
		return *why = "an IPv6 address (this list takes IPv4)", -EINVAL;
	if (!err)
		*n = n4;
	return err;
}

void tag_bridge(const char *net, char out[TAG_MAX])
{
	snprintf(out, TAG_MAX, TAG_PREFIX "%s", net);
}

void tag_tap(const char *net, unsigned queues, char out[TAG_MAX])
{
	if (queues > 1)
		snprintf(out, TAG_MAX, TAG_PREFIX "%s:tap:queues=%u", net, queues);
	else
		snprintf(out, TAG_MAX, TAG_PREFIX "%s:tap", net);
}

enum tag_kind tag_parse(const char *alias, char *net, unsigned *queues)
{
	const char *p, *colon, *why;
	size_t len;

	if (strncmp(alias, TAG_PREFIX, strlen(TAG_PREFIX)))
		return TAG_NONE;
	p = alias + strlen(TAG_PREFIX);
	colon = strchr(p, ':');
	len = colon ? (size_t)(colon - p) : strlen(p);
	if (len == 0 || len > KL_NAME_MAX)
		return TAG_NONE;
	memcpy(net, p, len);
	net[len] = 0;
	if (kl_name_check(net, &why))
		return TAG_NONE;
	if (!colon)
		return TAG_BRIDGE;
	if (!strcmp(colon, ":tap")) {
		if (queues)
			*queues = 1;
		return TAG_TAP;
	}
	if (!strncmp(colon, ":tap:queues=", 12)) {
		const char *d = colon + 12;
		unsigned long q;
		if (!*d || strspn(d, "0123456789") != strlen(d) || strlen(d) > 3 ||
		    *d == '0')
			return TAG_NONE;
		q = strtoul(d, NULL, 10);
		if (q < 2 || q > KL_QUEUES_MAX)
			return TAG_NONE;
		if (queues)
			*queues = (unsigned)q;
		return TAG_TAP;
	}
	return TAG_NONE;
}

bool link_is_bridge_of(const struct kl_link *l, const char *net)
{
	char n[KL_NAME_MAX + 1];

	return !strcmp(l->kind, "bridge") &&
	       tag_parse(l->alias, n, NULL) == TAG_BRIDGE && !strcmp(n, net);
}

bool link_is_tap_of(const struct kl_link *l, const char *net, unsigned *queues)
{
	char n[KL_NAME_MAX + 1];

	return !strcmp(l->kind, "tun") && l->tun_tap &&
	       tag_parse(l->alias, n, queues) == TAG_TAP && !strcmp(n, net);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Works on both a key string and a char[KL_NAME_MAX + 1] element. */
int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Sorting, because a scan per name makes N^2 string compares out of a
 * thousand taps. */
int names_dup(const char *const *names, size_t n, bool *dup)
{
	const char **v;

	*dup = false;
	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, names, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 1; i < n && !*dup; i++)
		*dup = !strcmp(v[i - 1], v[i]);
	free(v);
	return 0;
}

/* A network's definition, kept where the kernel keeps it: the comment of
 * the network's own nft table "ip kvmlab-NAME". One line of text,
 *
 *   kvmlab network NAME: cidr=A.B.C.D/LEN bridge=BR nat=0|1 uplink=IF|-
 *     mtu=N stp=0|1 dns=A.B.C.D[,...]|- fwd_prev=0|1
 *
 * (one line, single spaces; unknown keys are skipped, every key above is
 * required once). fwd_prev is ip_forward as it was before the first
 * kvmlab network of the namespace: each table carries it, so the last
 * `down` can put it back even after a crash. The table goes with the
 * namespace, and nothing is ever written to a file. Writing a network is
 * the nft batch that makes its table (nft.c builds it); the kernel
 * commits the definition and the rules together or not at all.
 *
 * A network with IPv6 also has "ip6 kvmlab-NAME", made and deleted in the
 * same batches, whose comment holds the rest (both would not fit in one
 * comment's 255 bytes):
 *
 *   kvmlab network NAME: cidr6=ADDR/LEN fwd6_prev=0|1[ dns6=ADDR6[,...]]
 *
 * fwd6_prev is net.ipv6.conf.all.forwarding before the first IPv6
 * network, as fwd_prev is for IPv4; dns6 (only when up --dns had IPv6
 * servers, so that older definitions read the same) the IPv6 ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include "priv.h"

static void put_ip(char *buf, size_t len, size_t *off, uint32_t a)
{
	char ip[16];

	if (*off < len)
		*off += (size_t)snprintf(buf + *off, len - *off, "%s", kl_ip4(a, ip));
}

int store_format(const struct store_net *n, char *buf, size_t len)
{
	const struct kl_net_cfg *c = &n->cfg;
	char ip[16];
	size_t off;
	int k;

	k = snprintf(buf, len, NFT_COMMENT_PREFIX "%s: cidr=%s/%u bridge=%s nat=%d "
		     "uplink=%s mtu=%u stp=%d dns=", c->name, kl_ip4(c->addr, ip),
		     c->prefix, c->bridge, c->nat ? 1 : 0,
		     c->uplink[0] ? c->uplink : "-", c->mtu, c->stp ? 1 : 0);
	if (k < 0 || (size_t)k >= len)
		return -ENAMETOOLONG;
	off = (size_t)k;
	for (unsigned i = 0; i < c->ndns; i++) {
		if (i && off < len)
			off += (size_t)snprintf(buf + off, len - off, ",");
		put_ip(buf, len, &off, c->dns[i]);
	}
	if (!c->ndns && off < len)
		off += (size_t)snprintf(buf + off, len - off, "-");
	if (off < len)
		off += (size_t)snprintf(buf + off, len - off, " fwd_prev=%d",
					n->fwd_prev > 0 ? 1 : 0);
	return off < len ? 0 : -ENAMETOOLONG;
}

int store6_format(const struct store_net *n, char *buf, size_t len)
{
	char ip[46];
	int k = snprintf(buf, len, NFT_COMMENT_PREFIX "%s: cidr6=%s/%u fwd6_prev=%d",
			 n->cfg.name, kl_ip6(n->cfg.addr6, ip), n->cfg.prefix6,
			 n->fwd6_prev > 0 ? 1 : 0);
	size_t off;

	if (k < 0 || (size_t)k >= len)
		return -ENAMETOOLONG;
	off = (size_t)k;
	for (unsigned i = 0; i < n->cfg.ndns6 && i < KL_DNS_MAX && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i ? "," : " dns6=",
					kl_ip6(n->cfg.dns6[i], ip));
	return off < len ? 0 : -ENAMETOOLONG;
}

/* "0" or "1" */
static int parse_bit(const char *v, bool *out)
{
	if (strcmp(v, "0") && strcmp(v, "1"))
		return -EBADMSG;
	*out = v[0] == '1';
	return 0;
}

static int parse_name(const char *v, char *dst, bool dash_empty)
{
	const char *why;

	if (dash_empty && !strcmp(v, "-")) {
		dst[0] = 0;
		return 0;
	}
	if (kl_name_check(v, &why))
		return -EBADMSG;
	snprintf(dst, KL_NAME_MAX + 1, "%s", v);
	return 0;
}

static int parse_kv(char *key, char *v, struct store_net *o)
{
	struct kl_net_cfg *c = &o->cfg;
	const char *why;
	bool b;

	if (!strcmp(key, "cidr"))
		return kl_cidr_parse(v, &c->addr, &c->prefix, &why) ? -EBADMSG : 0;
	if (!strcmp(key, "bridge"))
		return parse_name(v, c->bridge, false);
	if (!strcmp(key, "uplink"))
		return parse_name(v, c->uplink, true);
	if (!strcmp(key, "nat"))
		return parse_bit(v, &c->nat);
	if (!strcmp(key, "stp"))
		return parse_bit(v, &c->stp);
	if (!strcmp(key, "fwd_prev")) {
		if (parse_bit(v, &b))
			return -EBADMSG;
		o->fwd_prev = b;
		return 0;
	}
	if (!strcmp(key, "mtu")) {
		unsigned long m;
		char *end;
		if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 5)
			return -EBADMSG;
		m = strtoul(v, &end, 10);
		if (m && (m < KL_MTU_MIN || m > KL_MTU_MAX))
			return -EBADMSG;
		c->mtu = (unsigned)m;
		return 0;
	}
	if (!strcmp(key, "dns")) {
		if (!strcmp(v, "-")) {
			c->ndns = 0;
			return 0;
		}
		return kl_dns_parse(v, c->dns, &c->ndns, &why) ? -EBADMSG : 0;
	}
	return 1; /* not a key we know */
}

/* The text after "kvmlab network NET: ", copied into text[256]; NULL if
 * the comment is not one of net's. */
static char *def_body(const char *net, const char *comment, char text[256])
{
	char head[64];

	snprintf(head, sizeof(head), NFT_COMMENT_PREFIX "%s: ", net);
	if (strncmp(comment, head, strlen(head)) || strlen(comment) >= 256)
		return NULL;
	snprintf(text, 256, "%s", comment + strlen(head));
	return text;
}

int store6_parse(const char *net, const char *comment, struct store_net *out)
{
	char text[256], *save = NULL, *tok;
	unsigned seen = 0;
	const char *why;
	bool b;

	if (!def_body(net, comment, text))
		return -EBADMSG;
	for (tok = strtok_r(text, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return -EBADMSG;
		*eq = 0;
		if (!strcmp(tok, "cidr6")) {
			if ((seen & 1) || kl_cidr6_parse(eq + 1, out->cfg.addr6,
							 &out->cfg.prefix6, &why))
				return -EBADMSG;
			seen |= 1;
		} else if (!strcmp(tok, "fwd6_prev")) {
			if ((seen & 2) || parse_bit(eq + 1, &b))
				return -EBADMSG;
			out->fwd6_prev = b;
			seen |= 2;
		} else if (!strcmp(tok, "dns6")) {
			uint32_t v4[KL_DNS_MAX];
			unsigned n4 = 0;
			/* IPv6 addresses only: an IPv4 one is a hand edit */
			if ((seen & 4) ||
			    kl_dns_parse46(eq + 1, v4, &n4, out->cfg.dns6,
					   &out->cfg.ndns6, &why) || n4)
				return -EBADMSG;
			seen |= 4;
		}
	}
	if ((seen & 3) != 3)
		return -EBADMSG;
	out->cfg.has6 = true;
	return 0;
}

int store_parse(const char *net, const char *comment, struct store_net *out)
{
	static const char *const keys[] = {"cidr", "bridge", "nat", "uplink",
					   "mtu", "stp", "dns", "fwd_prev"};
	char text[256], *save = NULL, *tok;
	unsigned seen = 0;

	memset(out, 0, sizeof(*out));
	out->fwd_prev = -1;
	out->fwd6_prev = -1;
	if (!def_body(net, comment, text))
		return -EBADMSG;
	snprintf(out->cfg.name, sizeof(out->cfg.name), "%s", net);
	for (tok = strtok_r(text, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		unsigned bit = 0;
		if (!eq)
			return -EBADMSG;
		*eq = 0;
		for (unsigned i = 0; i < ARRAY_SIZE(keys); i++)
			if (!strcmp(tok, keys[i]))
				bit = 1u << i;
		/* a key twice: a hand edit, not something kvmlab wrote */
		if (seen & bit)
			return -EBADMSG;
		seen |= bit;
		int r = parse_kv(tok, eq + 1, out);
		if (r < 0)
			return r;
	}
	if (seen != (1u << ARRAY_SIZE(keys)) - 1)
		return -EBADMSG;
	if (out->cfg.uplink[0] && !strcmp(out->cfg.uplink, out->cfg.bridge))
		return -EBADMSG;
	return 0;
}

/* Is t a kvmlab table? Then its network's name. */
static const char *table_net(const struct nft_table_info *t)
{
	const char *net = t->name + strlen(NFT_TABLE_PREFIX);
	const char *why;

	if (strncmp(t->name, NFT_TABLE_PREFIX, strlen(NFT_TABLE_PREFIX)) ||
	    kl_name_check(net, &why) ||
	    strncmp(t->comment, NFT_COMMENT_PREFIX, strlen(NFT_COMMENT_PREFIX)))
		return NULL;
	return net;
}

/* Fill o from ip table t (o->bad when its definition cannot be read). */
static void from_table(const struct nft_table_info *t, const char *net,
		       struct store_net *o)
{
	if (store_parse(net, t->comment, o)) {
		memset(o, 0, sizeof(*o));
		snprintf(o->cfg.name, sizeof(o->cfg.name), "%s", net);
		o->fwd_prev = -1;
		o->fwd6_prev = -1;
		o->bad = true;
	}
	o->have4 = true;
	o->dormant = t->flags & NFT_TABLE_F_DORMANT;
}

/* Add ip6 table t to its network's entry in v[0..*k), or a new entry (an
 * ip6 table whose ip table is gone: only `down` can use it, so it is
 * bad). */
static void from_table6(const struct nft_table_info *t, const char *net,
			struct store_net *v, size_t *k)
{
	struct store_net *o = NULL;

	for (size_t i = 0; i < *k && !o; i++)
		if (!strcmp(v[i].cfg.name, net))
			o = &v[i];
	if (!o) {
		o = &v[(*k)++];
		memset(o, 0, sizeof(*o));
		snprintf(o->cfg.name, sizeof(o->cfg.name), "%s", net);
		o->fwd_prev = -1;
		o->fwd6_prev = -1;
		o->bad = true;
	}
	o->have6 = true;
	o->dormant6 = t->flags & NFT_TABLE_F_DORMANT;
	if (store6_parse(net, t->comment, o)) {
		o->bad6 = true;
		o->cfg.has6 = false;
		o->fwd6_prev = -1;
	}
}

int store_list(struct kl_net *h, struct store_net **out, size_t *n)
{
	struct nft_table_info *t = NULL, *t6 = NULL;
	struct store_net *v;
	size_t nt = 0, nt6 = 0, k = 0;
	const char *net;
	int err = nft_tables_dump(&h->nf, NFPROTO_IPV4, &t, &nt);

	if (err)
		return err;
	/* A kernel without IPv6 has no ip6 tables either */
	err = nft_tables_dump(&h->nf, NFPROTO_IPV6, &t6, &nt6);
	if (err == -EAFNOSUPPORT) {
		err = 0;
		nt6 = 0;
	}
	if (err) {
		free(t);
		return err;
	}
	v = calloc(nt + nt6 ? nt + nt6 : 1, sizeof(*v));
	if (!v) {
		free(t);
		free(t6);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nt; i++)
		if ((net = table_net(&t[i])))
			from_table(&t[i], net, &v[k++]);
	for (size_t i = 0; i < nt6; i++)
		if ((net = table_net(&t6[i])))
			from_table6(&t6[i], net, v, &k);
	free(t);
	free(t6);
	*out = v;
	*n = k;
	return 0;
}

int store_read(struct kl_net *h, const char *net, struct store_net *out)
{
	struct store_net *v;
	size_t n;
	int err = store_list(h, &v, &n);

	if (err)
		return err;
	err = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].cfg.name, net)) {
			*out = v[i];
			err = 0;
		}
	free(v);
	return err;
}

int store_write(struct kl_net *h, char *buf, const struct store_net *n,
		enum nft_mode mode, const struct nft_chain_state *cs,
		unsigned faults, bool commit)
{
	char comment[256], comment6[256];
	uint32_t first;
	unsigned nack;
	long len;
	int err = store_format(n, comment, sizeof(comment));

	if (!err && n->cfg.has6)
		err = store6_format(n, comment6, sizeof(comment6));
	if (err)
		return err;
	len = nft_build_net_batch(buf, NL_BUF_SIZE, ++h->nf.seq, &n->cfg,
				  comment, n->cfg.has6 ? comment6 : NULL, mode, cs,
				  faults, commit, &first, &nack);
	if (len < 0)
		return (int)len;
	/* the batch's begin and end take sequence numbers too */
	h->nf.seq += nack + 2;
	return nl_talk(&h->nf, buf, (size_t)len, first, nack, NULL, NULL, NULL);
}

int store_delete(struct kl_net *h, const char *net, unsigned fams)
{
	char buf[8192];
	uint32_t first;
	long len = nft_build_del_batch(buf, sizeof(buf), ++h->nf.seq, net, fams,
				       &first);
	unsigned n = (fams & NFT_IP ? 1u : 0u) + (fams & NFT_IP6 ? 1u : 0u);

	h->nf.seq += n + 2;
	if (len < 0)
		return (int)len;
	return nl_talk(&h->nf, buf, (size_t)len, first, n, NULL, NULL, NULL);
}

/* Port forwards: DNAT rules in the network's table (ip, or ip6 for an
 * IPv6 forward: the same chains in each), built with libnftnl.
 *   chain fwd-pre    nat prerouting (dstnat, -100): from outside and from
 *                    the network's guests (hairpin)
 *   chain fwd-out    nat output (-100): from the host itself
 *   chain fwd-post   nat postrouting (srcnat, 100): masquerade DNATed
 *                    flows into the bridge from the subnet (hairpin: the
 *                    reply must come back through the host) or from the
 *                    host's own addresses (the guest needs no route back)
 *   chain fwd-accept filter forward (0): accept the DNATed flows
 * Each forward is one rule in fwd-pre, fwd-out and fwd-accept, each with
 * the comment "fwd tcp 8080 to 10.0.0.5:80[ vm=NAME]" (IPv6: "to
 * [fd00::5]:80"), which is how a forward is read back and found again.
 * Loopback destinations are left alone: DNAT from 127.0.0.1 to a guest
 * needs route_localnet, and ::1 has no such switch at all. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/rtnetlink.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include "lease.h"

static const char *const chain_names[FWD_NCHAINS] = {"fwd-pre", "fwd-out",
						       "fwd-accept"};
#define FWD_POST "fwd-post"
#define HAIRPIN_COMMENT "fwd masquerade from the subnet (hairpin)"
#define HOST_COMMENT "fwd masquerade from the host"

void fwd_tab_free(struct fwd_tab *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

int fwd_family(const struct kl_forward *f)
{
	return f->family == AF_INET6 ? AF_INET6 : AF_INET;
}

static uint32_t nfproto(int family)
{
	return family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

struct fwd_entry *fwd_find(const struct fwd_tab *t, int family, int proto,
			   uint16_t port)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].f.proto == proto && t->v[i].f.port == port &&
		    (family == AF_UNSPEC || fwd_family(&t->v[i].f) == family))
			return &t->v[i];
	return NULL;
}

const char *fwd_proto_name(int proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "?";
}

const char *fwd_target(const struct kl_forward *f, char buf[64])
{
	char ip[INET6_ADDRSTRLEN];

	if (fwd_family(f) == AF_INET6)
		snprintf(buf, 64, "[%s]:%u", kl_ip6(f->addr6, ip), f->to_port);
	else
		snprintf(buf, 64, "%s:%u", kl_ip4(f->addr, ip), f->to_port);
	return buf;
}

int fwd_comment(const struct kl_forward *f, char *buf, size_t len)
{
	char to[64];
	int n = snprintf(buf, len, "fwd %s %u to %s%s%s",
			 fwd_proto_name(f->proto), f->port, fwd_target(f, to),
			 f->vm[0] ? " vm=" : "", f->vm);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* "[ADDR6]:PORT" at p into f; the bytes it took, or -1. */
static int target6_parse(const char *p, struct kl_forward *f, unsigned *to_port)
{
	const char *close = strchr(p, ']');
	char ip[INET6_ADDRSTRLEN];
	size_t n;
	int m = -1;

	if (*p != '[' || !close)
		return -1;
	n = (size_t)(close - p - 1);
	if (!n || n >= sizeof(ip))
		return -1;
	memcpy(ip, p + 1, n);
	ip[n] = 0;
	if (inet_pton(AF_INET6, ip, f->addr6) != 1 ||
	    sscanf(close + 1, ":%u%n", to_port, &m) != 1 || m < 0)
		return -1;
	f->family = AF_INET6;
	return (int)(close + 1 - p) + m;
}

int fwd_comment_parse(const char *s, struct kl_forward *f)
{
	char proto[4], ip[16], vm[KL_VM_NAME_MAX + 2] = "";
	unsigned port, to_port;
	struct in_addr a;
	const char *why;
	int n = -1, m = -1;

	if (sscanf(s, "fwd %3s %u to %n", proto, &port, &n) != 2 || n < 0)
		return -EBADMSG;
	s += n;
	if (*s == '[') {
		if ((m = target6_parse(s, f, &to_port)) < 0)
			return -EBADMSG;
	} else {
		if (sscanf(s, "%15[0-9.]:%u%n", ip, &to_port, &m) != 2 || m < 0 ||
		    inet_pton(AF_INET, ip, &a) != 1)
			return -EBADMSG;
		f->family = AF_INET;
		f->addr = ntohl(a.s_addr);
	}
	s += m;
	if (*s && (sscanf(s, " vm=%64s", vm) != 1 ||
		   kl_vm_name_check(vm, &why) ||
		   (size_t)snprintf(NULL, 0, " vm=%s", vm) != strlen(s)))
		return -EBADMSG;
	if (!port || port > 65535 || !to_port || to_port > 65535)
		return -EBADMSG;
	if (!strcmp(proto, "tcp"))
		f->proto = IPPROTO_TCP;
	else if (!strcmp(proto, "udp"))
		f->proto = IPPROTO_UDP;
	else
		return -EBADMSG;
	f->port = (uint16_t)port;
	f->to_port = (uint16_t)to_port;
	memcpy(f->vm, vm, strlen(vm) + 1); /* checked: at most 63 bytes */
	return 0;
}

/* ---- expressions ---- */
static int mask(struct nftnl_rule *r, uint32_t len, const void *m)
{
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
	static const uint8_t zero[16];

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, m, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	}
	return nft_add_expr(r, e);
}

static int payload(struct nftnl_rule *r, uint32_t base, uint32_t off,
		   uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	}
	return nft_add_expr(r, e);
}

/* An address of the family as bytes in network order: a (IPv4, host
 * order) or a6. */
struct fam_addr {
	int family;
	uint8_t b[16];
};

static struct fam_addr fam_addr(int family, uint32_t a, const uint8_t a6[16])
{
	struct fam_addr x = {family, {0}};
	uint32_t be = htonl(a);

	if (family == AF_INET6)
		memcpy(x.b, a6, 16);
	else
		memcpy(x.b, &be, 4);
	return x;
}

/* ip/ip6 saddr or daddr op a/prefix (the header offsets: ip 12/16, ip6
 * 8/24) */
static int addr_match(struct nftnl_rule *r, bool dst, enum nft_cmp_ops op,
		      const struct fam_addr *a, unsigned prefix)
{
	bool v6 = a->family == AF_INET6;
	uint32_t len = v6 ? 16 : 4, off = v6 ? (dst ? 24 : 8) : (dst ? 16 : 12);
	uint8_t m[16] = {0}, v[16];
	int err;

	for (unsigned i = 0; i < prefix && i < len * 8; i++)
		m[i / 8] |= (uint8_t)(0x80u >> (i % 8));
	for (unsigned i = 0; i < len; i++)
		v[i] = a->b[i] & m[i];
	err = payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len);
	if (!err && prefix < len * 8)
		err = mask(r, len, m);
	return err ? err : nft_put_cmp(r, op, v, len);
}

static int meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return nft_add_expr(r, e);
}

static int oifname(struct nftnl_rule *r, const char *name)
{
	char pad[IFNAMSIZ] = {0};

	/* The whole zero-padded name: "br0" must not match "br0x". */
	strncpy(pad, name, IFNAMSIZ - 1);
	return meta(r, NFT_META_OIFNAME) ? -ENOMEM
					 : nft_put_cmp(r, NFT_CMP_EQ, pad, IFNAMSIZ);
}

/* fib saddr/daddr type local */
static int fib_local(struct nftnl_rule *r, uint32_t flags)
{
	struct nftnl_expr *e = nftnl_expr_alloc("fib");
	uint32_t local = RTN_LOCAL;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT,
				   NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flags);
	}
	return nft_add_expr(r, e) ? -ENOMEM : nft_put_cmp(r, NFT_CMP_EQ, &local, 4);
}

/* meta l4proto P, then P dport (or another 2-byte port field) == port */
static int port_match(struct nftnl_rule *r, int proto, uint16_t port)
{
	uint8_t p = (uint8_t)proto;
	uint16_t be = htons(port);

	if (meta(r, NFT_META_L4PROTO) || nft_put_cmp(r, NFT_CMP_EQ, &p, 1) ||
	    payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)) /* dport: tcp and udp */
		return -ENOMEM;
	return nft_put_cmp(r, NFT_CMP_EQ, &be, 2);
}

static int ct_dnat(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	uint32_t bit = IPS_DST_NAT, zero = 0;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	if (nft_add_expr(r, e) || mask(r, 4, &bit))
		return -ENOMEM;
	return nft_put_cmp(r, NFT_CMP_NEQ, &zero, 4);
}

static int imm(struct nftnl_rule *r, uint32_t reg, const void *d, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, d, len);
	}
	return nft_add_expr(r, e);
}

static int dnat(struct nftnl_rule *r, const struct fam_addr *to, uint16_t port)
{
	struct nftnl_expr *e;
	uint16_t p = htons(port);

	if (imm(r, NFT_REG_1, to->b, to->family == AF_INET6 ? 16 : 4) ||
	    imm(r, NFT_REG_2, &p, 2))
		return -ENOMEM;
	e = nftnl_expr_alloc("nat");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, nfproto(to->family));
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
	}
	return nft_add_expr(r, e);
}

static int verdict_accept(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
	}
	return nft_add_expr(r, e);
}

/* ---- messages ---- */
enum rule_kind { R_PRE, R_OUT, R_ACCEPT, R_HAIRPIN, R_HOST, R_FLUSH, R_DEL };
struct rule_args {
	enum rule_kind kind;
	int family; /* AF_INET: the ip table; AF_INET6: ip6 */
	const struct kl_net_cfg *cfg;
	const struct kl_forward *f;
	uint64_t handle; /* R_DEL */
	const char *chain;
	const char *comment;
};

static int rule_exprs(struct nftnl_rule *r, const struct rule_args *a)
{
	static const uint8_t lo6[16] = {[15] = 1};
	const struct kl_net_cfg *cfg = a->cfg;
	const struct kl_forward *f = a->f;
	bool v6 = a->family == AF_INET6;
	struct fam_addr to, x;

	switch (a->kind) {
	case R_PRE:
	case R_OUT:
		/* Any of the host's own addresses, but never loopback. */
		to = fam_addr(a->family, f->addr, f->addr6);
		x = fam_addr(a->family, 0x7f000000, lo6);
		if (fib_local(r, NFTA_FIB_F_DADDR) ||
		    addr_match(r, true, NFT_CMP_NEQ, &x, v6 ? 128 : 8) ||
		    port_match(r, f->proto, f->port))
			return -ENOMEM;
		return dnat(r, &to, f->to_port);
	case R_ACCEPT:
		to = fam_addr(a->family, f->addr, f->addr6);
		if (oifname(r, cfg->bridge) ||
		    addr_match(r, true, NFT_CMP_EQ, &to, v6 ? 128 : 32) ||
		    port_match(r, f->proto, f->to_port) || ct_dnat(r))
			return -ENOMEM;
		return verdict_accept(r);
	case R_HAIRPIN:
	case R_HOST:
		x = fam_addr(a->family, cfg->addr, cfg->addr6);
		if (oifname(r, cfg->bridge) || ct_dnat(r))
			return -ENOMEM;
		if (a->kind == R_HAIRPIN
			    ? addr_match(r, false, NFT_CMP_EQ, &x,
					 v6 ? cfg->prefix6 : cfg->prefix)
			    : fib_local(r, NFTA_FIB_F_SADDR))
			return -ENOMEM;
		return nft_add_expr(r, nftnl_expr_alloc("masq"));
	case R_FLUSH:
	case R_DEL:
		break;
	}
	return 0;
}

static void put_rule(struct nb *b, const struct rule_args *a)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;
	bool del = a->kind == R_FLUSH || a->kind == R_DEL;
	char *buf = nb_room(b);
	int err = 0;

	if (!r) {
		err = -ENOMEM;
		goto out;
	}
	if (!buf)
		goto out;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, b->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, a->chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, nfproto(a->family));
	if (a->kind == R_DEL)
		nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, a->handle);
	if ((err = rule_exprs(r, a)) != 0)
		goto out;
	if (a->comment) {
		if (!(ud = nb_comment(b, NFTNL_UDATA_RULE_COMMENT, a->comment)))
			goto out;
		nftnl_rule_set_data(r, NFTNL_RULE_USERDATA,
				    nftnl_udata_buf_data(ud),
				    nftnl_udata_buf_len(ud));
	}
	nlh = nftnl_nlmsg_build_hdr(buf, del ? NFT_MSG_DELRULE : NFT_MSG_NEWRULE,
				    (uint16_t)nfproto(a->family),
				    NLM_F_ACK | (del ? 0 : NLM_F_CREATE | NLM_F_APPEND),
				    b->seq);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nb_next(b, nlh);
out:
	if (err)
		nb_fail(b, err);
	if (ud)
		nftnl_udata_buf_free(ud);
	if (r)
		nftnl_rule_free(r);
}

void fwd_put_chains(struct nb *b, const struct kl_net_cfg *cfg, int family)
{
	struct rule_args a = {.family = family, .cfg = cfg, .chain = FWD_POST};
	uint32_t was = b->family;

	b->family = nfproto(family);
	nb_chain(b, chain_names[FWD_PRE], "nat", NF_INET_PRE_ROUTING, -100);
	nb_chain(b, chain_names[FWD_OUT], "nat", NF_INET_LOCAL_OUT, -100);
	nb_chain(b, FWD_POST, "nat", NF_INET_POST_ROUTING, 100);
	nb_chain(b, chain_names[FWD_ACCEPT], "filter", NF_INET_FORWARD, 0);
	b->family = was;
	/* fwd-post holds only these two: empty it, then put them back. */
	a.kind = R_FLUSH;
	put_rule(b, &a);
	a.kind = R_HAIRPIN;
	a.comment = HAIRPIN_COMMENT;
	put_rule(b, &a);
	a.kind = R_HOST;
	a.comment = HOST_COMMENT;
	put_rule(b, &a);
}

void fwd_put_add(struct nb *b, const struct kl_net_cfg *cfg,
		 const struct kl_forward *f)
{
	char text[NFTNL_UDATA_COMMENT_MAXLEN];
	static const enum rule_kind kinds[FWD_NCHAINS] = {R_PRE, R_OUT, R_ACCEPT};
	int err = fwd_comment(f, text, sizeof(text));

	if (err) {
		nb_fail(b, err);
		return;
	}
	for (int i = 0; i < FWD_NCHAINS; i++) {
		struct rule_args a = {kinds[i], fwd_family(f), cfg, f, 0,
				      chain_names[i], text};
		put_rule(b, &a);
	}
}

void fwd_put_del(struct nb *b, const struct fwd_entry *e)
{
	for (int i = 0; i < FWD_NCHAINS; i++) {
		struct rule_args a = {.kind = R_DEL, .family = fwd_family(&e->f),
				      .handle = e->handle[i],
				      .chain = chain_names[i]};
		if (e->handle[i])
			put_rule(b, &a);
	}
}

/* ---- reading back ---- */
static int rule_udata_cb(const struct nftnl_udata *a, void *data)
{
	if (nftnl_udata_type(a) == NFTNL_UDATA_RULE_COMMENT)
		snprintf(data, NFTNL_UDATA_COMMENT_MAXLEN, "%.*s",
			 (int)nftnl_udata_len(a), (const char *)nftnl_udata_get(a));
	return 0;
}

int fwd_parse(const struct nlmsghdr *nlh, struct fwd_tab *t)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	char text[NFTNL_UDATA_COMMENT_MAXLEN] = "";
	struct kl_forward f;
	const char *chain;
	const void *ud;
	uint32_t len = 0;
	int ci = -1, err = 0, family;

	if (!r)
		return -ENOMEM;
	if (nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		err = -EBADMSG;
		goto out;
	}
	chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
	ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
	family = nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) == NFPROTO_IPV6 ? AF_INET6
									 : AF_INET;
	if (!chain)
		goto out;
	if (ud)
		nftnl_udata_parse(ud, len, rule_udata_cb, text);
	if (!strcmp(chain, FWD_POST) && !strcmp(text, HAIRPIN_COMMENT))
		*(family == AF_INET6 ? &t->chains6 : &t->chains) = true;
	for (int i = 0; i < FWD_NCHAINS; i++)
		if (!strcmp(chain, chain_names[i]))
			ci = i;
	/* A rule kvmlab did not write (no such comment, or one of the other
	 * family's in this table) is not a forward. */
	memset(&f, 0, sizeof(f));
	if (ci < 0 || fwd_comment_parse(text, &f) || f.family != family)
		goto out;
	struct fwd_entry *e = fwd_find(t, family, f.proto, f.port);
	if (!e) {
		e = kl_grow(t->v, &t->cap, t->n + 1, sizeof(*e));
		if (!e) {
			err = -ENOMEM;
			goto out;
		}
		t->v = e;
		e = &t->v[t->n++];
		memset(e, 0, sizeof(*e));
		e->f = f;
	}
	e->handle[ci] = nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE);
out:
	nftnl_rule_free(r);
	return err;
}

/* One table's dump into t, which may already hold the other family's. */
struct fwd_dump {
	struct fwd_tab *t;
	int family;
};

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	return fwd_parse(nlh, ((struct fwd_dump *)data)->t);
}

/* A dump started again: drop what this family's gave so far. */
static void dump_reset(void *data)
{
	struct fwd_dump *d = data;
	struct fwd_tab *t = d->t;
	size_t k = 0;

	for (size_t i = 0; i < t->n; i++)
		if (fwd_family(&t->v[i].f) != d->family)
			t->v[k++] = t->v[i];
	t->n = k;
	*(d->family == AF_INET6 ? &t->chains6 : &t->chains) = false;
}

static int cmp_fwd(const void *a, const void *b)
{
	const struct kl_forward *x = &((const struct fwd_entry *)a)->f;
	const struct kl_forward *y = &((const struct fwd_entry *)b)->f;

	if (fwd_family(x) != fwd_family(y))
		return fwd_family(x) - fwd_family(y);
	if (x->proto != y->proto)
		return x->proto - y->proto;
	return (int)x->port - (int)y->port;
}

int fwd_read(struct kl_nl *nl, const char *net, struct fwd_tab *t)
{
	static const int families[] = {AF_INET, AF_INET6};
	char buf[256], table[64];
	int err = 0;

	memset(t, 0, sizeof(*t));
	snprintf(table, sizeof(table), NFT_TABLE_PREFIX "%s", net);
	for (size_t i = 0; i < 2 && !err; i++) {
		struct fwd_dump d = {t, families[i]};
		struct nftnl_rule *r = nftnl_rule_alloc();
		struct nlmsghdr *nlh;

		if (!r) {
			err = -ENOMEM;
			break;
		}
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE,
					    (uint16_t)nfproto(d.family),
					    NLM_F_DUMP, 0);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
		/* no such table (an IPv4-only network has no ip6 one, a
		 * kernel without IPv6 none at all): no forwards there */
		err = nl_dump(nl, nlh, dump_cb, dump_reset, &d);
		if (err == -ENOENT || (err == -EAFNOSUPPORT && i))
			err = 0;
	}
	if (err)
		fwd_tab_free(t);
	else if (t->n)
		qsort(t->v, t->n, sizeof(t->v[0]), cmp_fwd);
	return err;
}

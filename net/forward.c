/* Port forwards: DNAT rules in the network's table, built with libnftnl.
 *   chain fwd-pre    nat prerouting (dstnat, -100): from outside and from
 *                    the network's guests (hairpin)
 *   chain fwd-out    nat output (-100): from the host itself
 *   chain fwd-post   nat postrouting (srcnat, 100): masquerade DNATed
 *                    flows into the bridge from the subnet (hairpin: the
 *                    reply must come back through the host) or from the
 *                    host's own addresses (the guest needs no route back)
 *   chain fwd-accept filter forward (0): accept the DNATed flows
 * Each forward is one rule in fwd-pre, fwd-out and fwd-accept, each with
 * the comment "fwd tcp 8080 to 10.0.0.5:80[ vm=NAME]", which is how a
 * forward is read back and found again. Loopback destinations are left
 * alone: DNAT from 127.0.0.1 to a guest needs route_localnet. */
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

struct fwd_entry *fwd_find(const struct fwd_tab *t, int proto, uint16_t port)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].f.proto == proto && t->v[i].f.port == port)
			return &t->v[i];
	return NULL;
}

const char *fwd_proto_name(int proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "?";
}

int fwd_comment(const struct kl_forward *f, char *buf, size_t len)
{
	char ip[16];
	int n = snprintf(buf, len, "fwd %s %u to %s:%u%s%s",
			 fwd_proto_name(f->proto), f->port, kl_ip4(f->addr, ip),
			 f->to_port, f->vm[0] ? " vm=" : "", f->vm);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fwd_comment_parse(const char *s, struct kl_forward *f)
{
	char proto[4], ip[16], vm[KL_VM_NAME_MAX + 2] = "";
	unsigned port, to_port;
	struct in_addr a;
	const char *why;
	int n = 0;

	if (sscanf(s, "fwd %3s %u to %15[0-9.]:%u%n", proto, &port, ip,
		   &to_port, &n) != 4)
		return -EBADMSG;
	if (s[n] && (sscanf(s + n, " vm=%64s", vm) != 1 ||
		     kl_vm_name_check(vm, &why) ||
		     (size_t)snprintf(NULL, 0, " vm=%s", vm) != strlen(s + n)))
		return -EBADMSG;
	if (inet_pton(AF_INET, ip, &a) != 1 || !port || port > 65535 ||
	    !to_port || to_port > 65535)
		return -EBADMSG;
	if (!strcmp(proto, "tcp"))
		f->proto = IPPROTO_TCP;
	else if (!strcmp(proto, "udp"))
		f->proto = IPPROTO_UDP;
	else
		return -EBADMSG;
	f->port = (uint16_t)port;
	f->to_port = (uint16_t)to_port;
	f->addr = ntohl(a.s_addr);
	memcpy(f->vm, vm, strlen(vm) + 1); /* checked: at most 63 bytes */
	return 0;
}

/* ---- expressions ---- */
static int mask(struct nftnl_rule *r, uint32_t len, const void *m)
{
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
	static const uint8_t zero[4];

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

/* ip saddr/daddr (off 12/16) op a/prefix */
static int ip_match(struct nftnl_rule *r, uint32_t off, enum nft_cmp_ops op,
		    uint32_t a, unsigned prefix)
{
	uint32_t m = htonl(prefix ? ~0u << (32 - prefix) : 0);
	uint32_t v = htonl(a) & m;
	int err = payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, 4);

	if (!err && prefix < 32)
		err = mask(r, 4, &m);
	return err ? err : nft_put_cmp(r, op, &v, 4);
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

static int dnat(struct nftnl_rule *r, uint32_t addr, uint16_t port)
{
	struct nftnl_expr *e;
	uint32_t a = htonl(addr);
	uint16_t p = htons(port);

	if (imm(r, NFT_REG_1, &a, 4) || imm(r, NFT_REG_2, &p, 2))
		return -ENOMEM;
	e = nftnl_expr_alloc("nat");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
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
	const struct kl_net_cfg *cfg;
	const struct kl_forward *f;
	uint64_t handle; /* R_DEL */
	const char *chain;
	const char *comment;
};

static int rule_exprs(struct nftnl_rule *r, const struct rule_args *a)
{
	const struct kl_net_cfg *cfg = a->cfg;
	const struct kl_forward *f = a->f;

	switch (a->kind) {
	case R_PRE:
	case R_OUT:
		/* Any of the host's own addresses, but never loopback. */
		if (fib_local(r, NFTA_FIB_F_DADDR) ||
		    ip_match(r, 16, NFT_CMP_NEQ, 0x7f000000, 8) ||
		    port_match(r, f->proto, f->port))
			return -ENOMEM;
		return dnat(r, f->addr, f->to_port);
	case R_ACCEPT:
		if (oifname(r, cfg->bridge) ||
		    ip_match(r, 16, NFT_CMP_EQ, f->addr, 32) ||
		    port_match(r, f->proto, f->to_port) || ct_dnat(r))
			return -ENOMEM;
		return verdict_accept(r);
	case R_HAIRPIN:
	case R_HOST:
		if (oifname(r, cfg->bridge) || ct_dnat(r))
			return -ENOMEM;
		if (a->kind == R_HAIRPIN
			    ? ip_match(r, 12, NFT_CMP_EQ, cfg->addr, cfg->prefix)
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
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
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
				    NFPROTO_IPV4,
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

void fwd_put_chains(struct nb *b, const struct kl_net_cfg *cfg)
{
	struct rule_args a = {.cfg = cfg, .chain = FWD_POST};

	nb_chain(b, chain_names[FWD_PRE], "nat", NF_INET_PRE_ROUTING, -100);
	nb_chain(b, chain_names[FWD_OUT], "nat", NF_INET_LOCAL_OUT, -100);
	nb_chain(b, FWD_POST, "nat", NF_INET_POST_ROUTING, 100);
	nb_chain(b, chain_names[FWD_ACCEPT], "filter", NF_INET_FORWARD, 0);
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
		struct rule_args a = {kinds[i], cfg, f, 0, chain_names[i], text};
		put_rule(b, &a);
	}
}

void fwd_put_del(struct nb *b, const struct fwd_entry *e)
{
	for (int i = 0; i < FWD_NCHAINS; i++) {
		struct rule_args a = {.kind = R_DEL, .handle = e->handle[i],
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
	int ci = -1, err = 0;

	if (!r)
		return -ENOMEM;
	if (nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		err = -EBADMSG;
		goto out;
	}
	chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
	ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
	if (!chain)
		goto out;
	if (ud)
		nftnl_udata_parse(ud, len, rule_udata_cb, text);
	if (!strcmp(chain, FWD_POST) && !strcmp(text, HAIRPIN_COMMENT))
		t->chains = true;
	for (int i = 0; i < FWD_NCHAINS; i++)
		if (!strcmp(chain, chain_names[i]))
			ci = i;
	/* A rule kvmlab did not write (no such comment) is not a forward. */
	memset(&f, 0, sizeof(f));
	if (ci < 0 || fwd_comment_parse(text, &f))
		goto out;
	struct fwd_entry *e = fwd_find(t, f.proto, f.port);
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

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	return fwd_parse(nlh, data);
}

static void dump_reset(void *data)
{
	struct fwd_tab *t = data;

	t->n = 0;
	t->chains = false;
}

static int cmp_fwd(const void *a, const void *b)
{
	const struct kl_forward *x = &((const struct fwd_entry *)a)->f;
	const struct kl_forward *y = &((const struct fwd_entry *)b)->f;

	if (x->proto != y->proto)
		return x->proto - y->proto;
	return (int)x->port - (int)y->port;
}

int fwd_read(struct kl_nl *nl, const char *net, struct fwd_tab *t)
{
	char buf[256], table[64];
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	int err;

	memset(t, 0, sizeof(*t));
	if (!r)
		return -ENOMEM;
	snprintf(table, sizeof(table), NFT_TABLE_PREFIX "%s", net);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_IPV4,
				    NLM_F_DUMP, 0);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	err = nl_dump(nl, nlh, dump_cb, dump_reset, t);
	if (err == -ENOENT)
		err = 0;
	if (err)
		fwd_tab_free(t);
	else if (t->n)
		qsort(t->v, t->n, sizeof(t->v[0]), cmp_fwd);
	return err;
}

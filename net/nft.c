/* nftables through libnftnl: each network gets its own table,
 * "ip kvmlab-NAME", with a comment saying so, holding a nat postrouting
 * chain (srcnat, 100) and a filter forward chain (0). A network with
 * IPv6 has "ip6 kvmlab-NAME" too, with the same two chains for its
 * prefix, made and deleted in the same batches as the ip table. A whole operation
 * is one batch, which the kernel commits all or nothing; a batch without
 * its END message is validated and then aborted, which is the dry run
 * (the same trick as `nft --check`). Tables kvmlab does not own are only
 * ever read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include "priv.h"

#define IP_SADDR_OFF 12
#define IP_DADDR_OFF 16
#define IP6_SADDR_OFF 8
#define IP6_DADDR_OFF 24

void nft_table_name(const char *net, char *out, size_t len)
{
	snprintf(out, len, NFT_TABLE_PREFIX "%s", net);
}

/* NEWTABLE (with comment when given; flags 0 wakes a dormant table) or
 * DELTABLE. */
static void put_table(struct nb *b, const char *net, uint16_t type,
		      uint16_t flags, const char *comment)
{
	char name[64];
	struct nftnl_table *t;
	struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;
	char *buf = nb_room(b);

	if (!buf)
		return;
	t = nftnl_table_alloc();
	if (!t) {
		nb_fail(b, -ENOMEM);
		return;
	}
	nft_table_name(net, name, sizeof(name));
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, b->family);
	if (type == NFT_MSG_NEWTABLE)
		nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
	if (type == NFT_MSG_NEWTABLE && comment) {
		/* The comment is how a reader of `nft list ruleset` (and
		 * kvmlab itself) tells the table's owner and the network's
		 * definition. One TLV holds up to 255 bytes. */
		if (!(ud = nb_comment(b, NFTNL_UDATA_TABLE_COMMENT, comment)))
			goto out;
		nftnl_table_set_data(t, NFTNL_TABLE_USERDATA,
				     nftnl_udata_buf_data(ud),
				     nftnl_udata_buf_len(ud));
	}
	nlh = nftnl_nlmsg_build_hdr(buf, type, (uint16_t)b->family,
				    NLM_F_ACK | flags, b->seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nb_next(b, nlh);
out:
	if (ud)
		nftnl_udata_buf_free(ud);
	nftnl_table_free(t);
}

/* A rule is built from a short list of these. */
enum op {
	OP_END,
	OP_SADDR,    /* ip saddr in subnet */
	OP_DADDR,    /* ip daddr in subnet */
	OP_SADDR6,   /* ip6 saddr in prefix */
	OP_DADDR6,   /* ip6 daddr in prefix */
	OP_IIF_EQ,   /* iifname == s */
	OP_OIF_EQ,   /* oifname == s */
	OP_OIF_NE,   /* oifname != s */
	OP_CT_ESTREL,/* ct state established,related */
	OP_MASQ,
	OP_ACCEPT,
};
struct step {
	enum op op;
	const char *s;
};

int nft_add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return -ENOMEM;
	nftnl_rule_add_expr(r, e);
	return 0;
}

int nft_put_cmp(struct nftnl_rule *r, enum nft_cmp_ops op, const void *d,
		uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, d, len);
	}
	return nft_add_expr(r, e);
}

static int put_bitwise_n(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
	const uint8_t zero[16] = {0};

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	}
	return nft_add_expr(r, e);
}

static int put_bitwise(struct nftnl_rule *r, uint32_t mask)
{
	return put_bitwise_n(r, &mask, 4);
}

static int put_ifname(struct nftnl_rule *r, unsigned key, enum nft_cmp_ops op,
		      const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");
	char pad[IFNAMSIZ] = {0};

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	if (nft_add_expr(r, e))
		return -ENOMEM;
	/* The register holds the whole zero-padded name: compare it all so
	 * "br0" does not match "br0x". */
	strncpy(pad, name, IFNAMSIZ - 1);
	return nft_put_cmp(r, op, pad, IFNAMSIZ);
}

/* Load len bytes of the network header at off into register 1, mask
 * them and compare with net. */
static int put_masked(struct nftnl_rule *r, unsigned off, const void *mask,
		      const void *net, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE,
				   NFT_PAYLOAD_NETWORK_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	}
	if (nft_add_expr(r, e) || put_bitwise_n(r, mask, len))
		return -ENOMEM;
	return nft_put_cmp(r, NFT_CMP_EQ, net, len);
}

static int put_addr(struct nftnl_rule *r, unsigned off,
		    const struct kl_net_cfg *cfg)
{
	uint32_t mask = htonl(~0u << (32 - cfg->prefix));
	uint32_t net = htonl(cfg->addr) & mask;

	return put_masked(r, off, &mask, &net, 4);
}

static int put_addr6(struct nftnl_rule *r, unsigned off,
		     const struct kl_net_cfg *cfg)
{
	uint8_t mask[16] = {0}, net[16];

	for (unsigned i = 0; i < cfg->prefix6; i++)
		mask[i / 8] |= (uint8_t)(0x80u >> (i % 8));
	for (unsigned i = 0; i < 16; i++)
		net[i] = cfg->addr6[i] & mask[i];
	return put_masked(r, off, mask, net, 16);
}

static int put_ct_estrel(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	uint32_t bits = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) |
			NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	if (nft_add_expr(r, e) || put_bitwise(r, bits))
		return -ENOMEM;
	return nft_put_cmp(r, NFT_CMP_NEQ, &zero, 4);
}

static int put_steps(struct nftnl_rule *r, const struct step *s,
		     const struct kl_net_cfg *cfg)
{
	struct nftnl_expr *e;
	int err = 0;

	for (; !err && s->op != OP_END; s++) {
		switch (s->op) {
		case OP_SADDR:
			err = put_addr(r, IP_SADDR_OFF, cfg);
			break;
		case OP_DADDR:
			err = put_addr(r, IP_DADDR_OFF, cfg);
			break;
		case OP_SADDR6:
			err = put_addr6(r, IP6_SADDR_OFF, cfg);
			break;
		case OP_DADDR6:
			err = put_addr6(r, IP6_DADDR_OFF, cfg);
			break;
		case OP_IIF_EQ:
			err = put_ifname(r, NFT_META_IIFNAME, NFT_CMP_EQ, s->s);
			break;
		case OP_OIF_EQ:
			err = put_ifname(r, NFT_META_OIFNAME, NFT_CMP_EQ, s->s);
			break;
		case OP_OIF_NE:
			err = put_ifname(r, NFT_META_OIFNAME, NFT_CMP_NEQ, s->s);
			break;
		case OP_CT_ESTREL:
			err = put_ct_estrel(r);
			break;
		case OP_MASQ:
			err = nft_add_expr(r, nftnl_expr_alloc("masq"));
			break;
		case OP_ACCEPT:
			e = nftnl_expr_alloc("immediate");
			if (e) {
				nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG,
						   NFT_REG_VERDICT);
				nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT,
						   NF_ACCEPT);
			}
			err = nft_add_expr(r, e);
			break;
		case OP_END:
			break;
		}
	}
	return err;
}

/* NEWRULE with steps, or with steps NULL a DELRULE of the whole chain. */
static void put_rule(struct nb *b, const char *table, const char *chain,
		     const struct step *steps, const struct kl_net_cfg *cfg)
{
	struct nftnl_rule *r;
	struct nlmsghdr *nlh;
	char *buf = nb_room(b);
	int err;

	if (!buf)
		return;
	r = nftnl_rule_alloc();
	if (!r) {
		nb_fail(b, -ENOMEM);
		return;
	}
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, b->family);
	if (steps && (err = put_steps(r, steps, cfg)) != 0) {
		b->err = err;
		goto out;
	}
	nlh = nftnl_nlmsg_build_hdr(buf, steps ? NFT_MSG_NEWRULE : NFT_MSG_DELRULE,
				    (uint16_t)b->family,
				    NLM_F_ACK | (steps ? NLM_F_CREATE | NLM_F_APPEND : 0),
				    b->seq);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nb_next(b, nlh);
out:
	nftnl_rule_free(r);
}

/* One owned chain: how it hooks in and what it holds. */
struct owned_chain {
	const char *name, *type;
	unsigned hook;
	int prio;
	const struct step *rules[3];
};

/* Put chain c into the batch as cs says the kernel holds it. */
static void put_owned(struct nb *b, const char *table,
		      const struct owned_chain *c, enum nft_mode mode,
		      const struct nft_chain_state *cs,
		      const struct kl_net_cfg *cfg)
{
	bool exists = mode == NFT_REFRESH && cs->exists;

	if (exists && cs->base_ok && cs->policy_ok && cs->rules_ok)
		return;
	if (exists && !cs->base_ok) {
		/* Hook, type and priority of a chain cannot change: empty
		 * it, delete it and make it again, all in this batch. */
		put_rule(b, table, c->name, NULL, cfg);
		nb_delchain(b, c->name);
		exists = false;
	}
	/* On an existing chain NEWCHAIN sets the policy back to accept. */
	nb_chain(b, c->name, c->type, c->hook, c->prio);
	if (exists)
		put_rule(b, table, c->name, NULL, cfg);
	for (size_t i = 0; i < ARRAY_SIZE(c->rules) && c->rules[i]; i++)
		put_rule(b, table, c->name, c->rules[i], cfg);
}

long nft_build_net_batch(void *buf, size_t size, uint32_t seq,
			 const struct kl_net_cfg *cfg, const char *comment,
			 const char *comment6, enum nft_mode mode, const struct nft_chain_state *cs,
			 unsigned faults, bool end, uint32_t *first_seq,
			 unsigned *nacked)
{
	char table[64];
	struct nb b;
	const char *br = cfg->bridge, *up = cfg->uplink;
	bool any = !*up;
	/* Masquerade what leaves the subnet through any other interface, or
	 * only through the uplink. */
	const struct step masq[] = {
		{OP_SADDR, NULL},
		{any ? OP_OIF_NE : OP_OIF_EQ, any ? br : up},
		{OP_MASQ, NULL},
		{OP_END, NULL},
	};
	/* Forward: the subnet out, and answers back in. */
	const struct step fwd_out[] = {
		{OP_IIF_EQ, br},
		{OP_SADDR, NULL},
		{any ? OP_OIF_NE : OP_OIF_EQ, any ? br : up},
		{OP_ACCEPT, NULL},
		{OP_END, NULL},
	};
	const struct step fwd_back[] = {
		{OP_OIF_EQ, br},
		{OP_DADDR, NULL},
		{OP_CT_ESTREL, NULL},
		{OP_ACCEPT, NULL},
		{OP_END, NULL},
	};
	/* The same for the IPv6 prefix, in the ip6 table. */
	const struct step masq6[] = {
		{OP_SADDR6, NULL},
		{any ? OP_OIF_NE : OP_OIF_EQ, any ? br : up},
		{OP_MASQ, NULL},
		{OP_END, NULL},
	};
	const struct step fwd6_out[] = {
		{OP_IIF_EQ, br},
		{OP_SADDR6, NULL},
		{any ? OP_OIF_NE : OP_OIF_EQ, any ? br : up},
		{OP_ACCEPT, NULL},
		{OP_END, NULL},
	};
	const struct step fwd6_back[] = {
		{OP_OIF_EQ, br},
		{OP_DADDR6, NULL},
		{OP_CT_ESTREL, NULL},
		{OP_ACCEPT, NULL},
		{OP_END, NULL},
	};
	const struct step fault[] = {{OP_ACCEPT, NULL}, {OP_END, NULL}};
	const struct owned_chain chains[NFT_NCHAINS] = {
		{NFT_CHAIN_POST, "nat", NF_INET_POST_ROUTING, 100,
		 {masq, NULL, NULL}},
		{NFT_CHAIN_FWD, "filter", NF_INET_FORWARD, 0,
		 {fwd_out, fwd_back, NULL}},
		{NFT_CHAIN_POST, "nat", NF_INET_POST_ROUTING, 100,
		 {masq6, NULL, NULL}},
		{NFT_CHAIN_FWD, "filter", NF_INET_FORWARD, 0,
		 {fwd6_out, fwd6_back, NULL}},
	};
	const struct nft_chain_state none[NFT_NCHAINS] = {{0}};

	if (!cs)
		cs = none;
	nft_table_name(cfg->name, table, sizeof(table));
	nb_init(&b, buf, size, seq, table);
	nb_begin(&b);
	*first_seq = b.first;
	put_table(&b, cfg->name, NFT_MSG_NEWTABLE,
		  NLM_F_CREATE | (mode == NFT_CREATE ? NLM_F_EXCL : 0),
		  mode == NFT_CREATE ? comment : NULL);
	for (size_t i = 0; cfg->nat && i < 2; i++)
		put_owned(&b, table, &chains[i], mode, &cs[i], cfg);
	if (cfg->has6) {
		b.family = NFPROTO_IPV6;
		put_table(&b, cfg->name, NFT_MSG_NEWTABLE,
			  NLM_F_CREATE | (mode == NFT_CREATE ? NLM_F_EXCL : 0),
			  mode == NFT_CREATE ? comment6 : NULL);
		for (size_t i = 2; cfg->nat && i < NFT_NCHAINS; i++)
			put_owned(&b, table, &chains[i], mode, &cs[i], cfg);
		b.family = NFPROTO_IPV4;
	}
	if (faults & NFT_FAULT)
		put_rule(&b, table, "kvmlab-fault-no-such-chain", fault, cfg);
	*nacked = nb_nacked(&b);
	if (end)
		nb_end(&b);
	return nb_len(&b, buf);
}

long nft_build_del_batch(void *buf, size_t size, uint32_t seq,
			 const char *net, unsigned fams, uint32_t *first_seq)
{
	char table[64];
	struct nb b;

	nft_table_name(net, table, sizeof(table));
	nb_init(&b, buf, size, seq, table);
	nb_begin(&b);
	*first_seq = b.first;
	if (fams & NFT_IP)
		put_table(&b, net, NFT_MSG_DELTABLE, 0, NULL);
	b.family = NFPROTO_IPV6;
	if (fams & NFT_IP6)
		put_table(&b, net, NFT_MSG_DELTABLE, 0, NULL);
	nb_end(&b);
	return nb_len(&b, buf);
}

struct drop_ctx {
	nft_drop_fn fn;
	void *data;
	const char *skip;
};

static const char *family_name(unsigned f)
{
	switch (f) {
	case NFPROTO_IPV4: return "ip";
	case NFPROTO_IPV6: return "ip6";
	case NFPROTO_INET: return "inet";
	case NFPROTO_BRIDGE: return "bridge";
	}
	return NULL;
}

static int drop_cb(const struct nlmsghdr *nlh, void *data)
{
	struct drop_ctx *c = data;
	struct nftnl_chain *ch = nftnl_chain_alloc();
	const char *fam, *table;

	if (!ch)
		return -ENOMEM;
	if (nftnl_chain_nlmsg_parse(nlh, ch) < 0)
		goto out;
	if (!nftnl_chain_is_set(ch, NFTNL_CHAIN_HOOKNUM) ||
	    !nftnl_chain_is_set(ch, NFTNL_CHAIN_POLICY))
		goto out;
	fam = family_name(nftnl_chain_get_u32(ch, NFTNL_CHAIN_FAMILY));
	table = nftnl_chain_get_str(ch, NFTNL_CHAIN_TABLE);
	/* The forward hook has the same number in every family listed. */
	if (fam && table &&
	    nftnl_chain_get_u32(ch, NFTNL_CHAIN_HOOKNUM) == NF_INET_FORWARD &&
	    nftnl_chain_get_u32(ch, NFTNL_CHAIN_POLICY) == NF_DROP &&
	    !((nftnl_chain_get_u32(ch, NFTNL_CHAIN_FAMILY) == NFPROTO_IPV4 ||
	       nftnl_chain_get_u32(ch, NFTNL_CHAIN_FAMILY) == NFPROTO_IPV6) &&
	      c->skip && !strcmp(table, c->skip)))
		c->fn(c->data, fam, table,
		      nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME));
out:
	nftnl_chain_free(ch);
	return 0;
}

int nft_forward_drops(struct kl_nl *nl, const char *skip_table, nft_drop_fn fn,
		      void *data)
{
	char buf[128];
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN,
						     NFPROTO_UNSPEC, 0, 0);
	struct drop_ctx c = {fn, data, skip_table};

	/* A restarted dump may report a chain twice; a repeated warning is
	 * harmless, so no reset. */
	return nl_dump(nl, nlh, drop_cb, NULL, &c);
}

/* A rule as text without its handle and position, for comparing what
 * the kernel holds with what we would send. */
static char *rule_text(struct nftnl_rule *r)
{
	char buf[2048];

	nftnl_rule_unset(r, NFTNL_RULE_HANDLE);
	nftnl_rule_unset(r, NFTNL_RULE_POSITION);
	nftnl_rule_unset(r, NFTNL_RULE_ID);
	nftnl_rule_unset(r, NFTNL_RULE_COMPAT_PROTO);
	nftnl_rule_unset(r, NFTNL_RULE_COMPAT_FLAGS);
	if (nftnl_rule_snprintf(buf, sizeof(buf), r, NFTNL_OUTPUT_DEFAULT, 0) < 0)
		return NULL;
	return strdup(buf);
}

struct rules_ctx {
	const char *chain; /* the one chain compared */
	char **want;
	size_t nwant, i;
	bool same;
};

static int rules_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rules_ctx *c = data;
	struct nftnl_rule *r = nftnl_rule_alloc();
	char *t;

	if (!r)
		return -ENOMEM;
	if (nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		nftnl_rule_free(r);
		return -EBADMSG;
	}
	/* The dump is filtered to our chain; should a kernel send others
	 * (the fwd-* chains hold the forwards, not ours), they are not
	 * compared. */
	const char *chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
	if (!chain || strcmp(chain, c->chain)) {
		nftnl_rule_free(r);
		return 0;
	}
	t = rule_text(r);
	nftnl_rule_free(r);
	if (!t)
		return -ENOMEM;
	if (c->i >= c->nwant || strcmp(t, c->want[c->i]))
		c->same = false;
	c->i++;
	free(t);
	return 0;
}

static void rules_reset(void *data)
{
	struct rules_ctx *c = data;

	c->i = 0;
	c->same = true;
}

/* The chain itself: base chain of the right type, hook and priority,
 * and its policy. */
struct chain_ctx {
	const char *type;
	unsigned hook;
	int prio;
	struct nft_chain_state *cs;
};

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct chain_ctx *c = data;
	struct nftnl_chain *ch = nftnl_chain_alloc();

	if (!ch)
		return -ENOMEM;
	if (nftnl_chain_nlmsg_parse(nlh, ch) < 0) {
		nftnl_chain_free(ch);
		return -EBADMSG;
	}
	c->cs->exists = true;
	c->cs->base_ok =
		nftnl_chain_is_set(ch, NFTNL_CHAIN_HOOKNUM) &&
		nftnl_chain_is_set(ch, NFTNL_CHAIN_TYPE) &&
		nftnl_chain_get_u32(ch, NFTNL_CHAIN_HOOKNUM) == c->hook &&
		nftnl_chain_get_s32(ch, NFTNL_CHAIN_PRIO) == c->prio &&
		!strcmp(nftnl_chain_get_str(ch, NFTNL_CHAIN_TYPE), c->type);
	c->cs->policy_ok = nftnl_chain_is_set(ch, NFTNL_CHAIN_POLICY) &&
			   nftnl_chain_get_u32(ch, NFTNL_CHAIN_POLICY) == NF_ACCEPT;
	nftnl_chain_free(ch);
	return 0;
}

/* The rules up would put into chain, as text, from a batch built in buf. */
static int want_rules(const char *buf, long len, uint32_t family,
		      const char *chain, struct rules_ctx *c)
{
	for (const struct nlmsghdr *h = (const void *)buf; mnl_nlmsg_ok(h, (int)len);
	     h = mnl_nlmsg_next(h, (int *)&len)) {
		if (NFNL_MSG_TYPE(h->nlmsg_type) != NFT_MSG_NEWRULE)
			continue;
		struct nftnl_rule *r = nftnl_rule_alloc();
		if (!r || nftnl_rule_nlmsg_parse(h, r) < 0) {
			nftnl_rule_free(r);
			return -ENOMEM;
		}
		if (strcmp(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), chain) ||
		    nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) != family) {
			nftnl_rule_free(r);
			continue;
		}
		char *t = rule_text(r);
		nftnl_rule_free(r);
		if (!t)
			return -ENOMEM;
		char **v = realloc(c->want, (c->nwant + 1) * sizeof(*v));
		if (!v) {
			free(t);
			return -ENOMEM;
		}
		c->want = v;
		c->want[c->nwant++] = t;
	}
	return 0;
}

static int check_one(struct kl_nl *nl, uint32_t family, const char *table,
		     const char *buf, long len, const char *chain, const char *type,
		     unsigned hook, int prio, struct nft_chain_state *cs)
{
	char req[512];
	struct rules_ctx rc = {.chain = chain, .same = true};
	struct chain_ctx cc = {type, hook, prio, cs};
	struct nlmsghdr *nlh;
	uint32_t seq = ++nl->seq;
	int err;

	memset(cs, 0, sizeof(*cs));
	struct nftnl_chain *q = nftnl_chain_alloc();
	if (!q)
		return -ENOMEM;
	nftnl_chain_set_str(q, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(q, NFTNL_CHAIN_NAME, chain);
	nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETCHAIN, (uint16_t)family,
				    NLM_F_ACK, seq);
	nftnl_chain_nlmsg_build_payload(nlh, q);
	nftnl_chain_free(q);
	err = nl_talk(nl, nlh, nlh->nlmsg_len, seq, 1, NULL, chain_cb, &cc);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	if ((err = want_rules(buf, len, family, chain, &rc)))
		goto out;
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r) {
		err = -ENOMEM;
		goto out;
	}
	/* A dump filtered to table and chain: the fwd-* chains (forward.c) in
	 * the same table are not looked at. */
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETRULE, (uint16_t)family, 0, 0);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	err = nl_dump(nl, nlh, rules_cb, rules_reset, &rc);
	if (err == -ENOENT)
		err = 0;
	cs->rules_ok = !err && rc.same && rc.i == rc.nwant;
out:
	for (size_t i = 0; i < rc.nwant; i++)
		free(rc.want[i]);
	free(rc.want);
	return err;
}

int nft_chains_check(struct kl_nl *nl, const struct kl_net_cfg *cfg,
		     struct nft_chain_state cs[NFT_NCHAINS])
{
	char *buf = malloc(16384), table[64];
	uint32_t first;
	unsigned nack;
	long len;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	len = nft_build_net_batch(buf, 16384, 1, cfg, NULL, NULL, NFT_CREATE,
				  NULL, 0, true, &first, &nack);
	if (len < 0) {
		free(buf);
		return (int)len;
	}
	nft_table_name(cfg->name, table, sizeof(table));
	memset(cs, 0, NFT_NCHAINS * sizeof(*cs));
	for (unsigned i = 0; !err && i < (cfg->has6 ? 4u : 2u); i++) {
		uint32_t fam = i < 2 ? NFPROTO_IPV4 : NFPROTO_IPV6;
		err = i % 2 ? check_one(nl, fam, table, buf, len, NFT_CHAIN_FWD,
					"filter", NF_INET_FORWARD, 0, &cs[i])
			    : check_one(nl, fam, table, buf, len, NFT_CHAIN_POST,
					"nat", NF_INET_POST_ROUTING, 100, &cs[i]);
	}
	free(buf);
	return err;
}

static int table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_table_info *ti = data;
	struct nftnl_table *t = nftnl_table_alloc();
	const void *ud;
	uint32_t ulen = 0;
	int err = -EINVAL;

	memset(ti, 0, sizeof(*ti));
	if (!t)
		return -EINVAL;
	if (nftnl_table_nlmsg_parse(nlh, t) < 0 ||
	    !nftnl_table_is_set(t, NFTNL_TABLE_NAME))
		goto out;
	snprintf(ti->name, sizeof(ti->name), "%s",
		 nftnl_table_get_str(t, NFTNL_TABLE_NAME));
	if (nftnl_table_is_set(t, NFTNL_TABLE_FLAGS))
		ti->flags = nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS);
	ud = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &ulen);
	if (ud) {
		/* Walk the TLVs by hand: type, length, value. */
		const uint8_t *p = ud, *e = p + ulen;
		while (p + 2 <= e && p + 2 + p[1] <= e) {
			if (p[0] == NFTNL_UDATA_TABLE_COMMENT && p[1] &&
			    p[2 + p[1] - 1] == 0) {
				snprintf(ti->comment, sizeof(ti->comment), "%s",
					 (const char *)p + 2);
				break;
			}
			p += 2 + p[1];
		}
	}
	err = 0;
out:
	nftnl_table_free(t);
	return err;
}

int nft_tables_dump(struct kl_nl *nl, uint32_t family,
		    struct nft_table_info **out, size_t *n)
{
	char buf[128];
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE,
						     (uint16_t)family, 0, 0);
	void *v;
	int err = nl_dump_array(nl, nlh, sizeof(**out), table_cb, &v, n);

	if (!err)
		*out = v;
	return err;
}

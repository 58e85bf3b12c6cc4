/* The nft batch built by net/nft.c and parsed back with libnftnl: the
 * batch frame, the table with its comment, the chains' hooks and
 * priorities, and each rule's expressions. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include "t.h"
#include "priv.h"

struct seen {
	int begin, end, tables, chains, rules, delrules, deltables, delchains;
	unsigned acked;
	char comment[128];
	char rule_exprs[8][256]; /* expression names, space-separated */
	char rule_chain[8][32];
	unsigned hook[2];
	int prio[2];
	char chain_type[2][16];
	uint32_t masq_saddr_mask, masq_saddr;
	char oif_cmp[16];
	uint32_t oif_op;
};

static int expr_cb(struct nftnl_expr *e, void *data)
{
	char *s = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	strcat(s, name);
	strcat(s, " ");
	return 0;
}

struct walk {
	struct seen *sn;
	int payload_seen;
};

static int detail_cb(struct nftnl_expr *e, void *data)
{
	struct walk *w = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	uint32_t len;

	if (!strcmp(name, "payload"))
		w->payload_seen = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
	if (!strcmp(name, "bitwise") && w->payload_seen == 12) {
		const uint32_t *m = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len);
		if (m && len == 4)
			w->sn->masq_saddr_mask = ntohl(*m);
	}
	if (!strcmp(name, "cmp")) {
		const void *d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
		if (len == 4 && w->payload_seen == 12 && !w->sn->masq_saddr)
			w->sn->masq_saddr = ntohl(*(const uint32_t *)d);
		if (len == 16) {
			memcpy(w->sn->oif_cmp, d, 16);
			w->sn->oif_op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
		}
	}
	return 0;
}

static int table_udata_cb(const struct nftnl_udata *a, void *data)
{
	if (nftnl_udata_type(a) == NFTNL_UDATA_TABLE_COMMENT)
		snprintf(data, 128, "%.*s", (int)nftnl_udata_len(a),
			 (const char *)nftnl_udata_get(a));
	return 0;
}

static void walk(const void *buf, long len, struct seen *sn)
{
	int left = (int)len;

	memset(sn, 0, sizeof(*sn));
	for (const struct nlmsghdr *h = buf; mnl_nlmsg_ok(h, left);
	     h = mnl_nlmsg_next(h, &left)) {
		if (h->nlmsg_flags & NLM_F_ACK)
			sn->acked++;
		if (h->nlmsg_type == NFNL_MSG_BATCH_BEGIN) {
			const struct nfgenmsg *g = mnl_nlmsg_get_payload(h);
			if (ntohs(g->res_id) == NFNL_SUBSYS_NFTABLES)
				sn->begin++;
			continue;
		}
		if (h->nlmsg_type == NFNL_MSG_BATCH_END) {
			sn->end++;
			continue;
		}
		switch (NFNL_MSG_TYPE(h->nlmsg_type)) {
		case NFT_MSG_NEWTABLE: {
			struct nftnl_table *t = nftnl_table_alloc();
			uint32_t ulen = 0;
			const void *ud;
			if (nftnl_table_nlmsg_parse(h, t) == 0 &&
			    !strcmp(nftnl_table_get_str(t, NFTNL_TABLE_NAME),
				    "kvmlab-lab") &&
			    nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) == NFPROTO_IPV4)
				sn->tables++;
			ud = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &ulen);
			if (ud)
				nftnl_udata_parse(ud, ulen, table_udata_cb, sn->comment);
			nftnl_table_free(t);
			break;
		}
		case NFT_MSG_DELTABLE:
			sn->deltables++;
			break;
		case NFT_MSG_NEWCHAIN: {
			struct nftnl_chain *c = nftnl_chain_alloc();
			if (nftnl_chain_nlmsg_parse(h, c) == 0 && sn->chains < 2) {
				sn->hook[sn->chains] =
					nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
				sn->prio[sn->chains] =
					nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
				snprintf(sn->chain_type[sn->chains], 16, "%s",
					 nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE));
				sn->chains++;
			}
			nftnl_chain_free(c);
			break;
		}
		case NFT_MSG_DELRULE:
			sn->delrules++;
			break;
		case NFT_MSG_DELCHAIN:
			sn->delchains++;
			break;
		case NFT_MSG_NEWRULE: {
			struct nftnl_rule *r = nftnl_rule_alloc();
			if (nftnl_rule_nlmsg_parse(h, r) == 0 && sn->rules < 8) {
				struct walk w = {sn, -1};
				snprintf(sn->rule_chain[sn->rules], 32, "%s",
					 nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
				nftnl_expr_foreach(r, expr_cb,
						   sn->rule_exprs[sn->rules]);
				if (sn->rules == 0)
					nftnl_expr_foreach(r, detail_cb, &w);
				sn->rules++;
			}
			nftnl_rule_free(r);
			break;
		}
		}
	}
}

static void fresh(void)
{
	static char buf[16384];
	struct kl_net_cfg cfg = {.name = "lab", .bridge = "kl-lab",
				 .addr = 0xc0a83901, .prefix = 24, .nat = true};
	uint32_t first = 0;
	unsigned nack = 0;
	long len = nft_build_net_batch(buf, sizeof(buf), 100, &cfg,
				       "kvmlab network lab: test", NULL, NFT_CREATE, NULL,
				       0, true, &first, &nack);
	struct seen sn;

	CHECK(len > 0, "batch built (%ld bytes)", len);
	walk(buf, len, &sn);
	CHECK(sn.begin == 1 && sn.end == 1, "one BEGIN for nftables, one END");
	CHECK_EQ(first, 101, "first acked message follows BEGIN");
	CHECK_EQ(nack, sn.acked, "every message between asks for an ack");
	CHECK_EQ(nack, 6, "table, 2 chains, 3 rules");
	CHECK_EQ(sn.tables, 1, "table ip kvmlab-lab");
	CHECK(!strcmp(sn.comment, "kvmlab network lab: test"), "table comment: '%s'",
	      sn.comment);
	CHECK(sn.chains == 2 && sn.hook[0] == NF_INET_POST_ROUTING &&
		      sn.prio[0] == 100 && !strcmp(sn.chain_type[0], "nat"),
	      "postrouting chain: nat at srcnat 100");
	CHECK(sn.hook[1] == NF_INET_FORWARD && sn.prio[1] == 0 &&
		      !strcmp(sn.chain_type[1], "filter"),
	      "forward chain: filter at 0");
	CHECK_EQ(sn.rules, 3, "three rules");
	CHECK(!strcmp(sn.rule_chain[0], "postrouting") &&
		      !strcmp(sn.rule_exprs[0], "payload bitwise cmp meta cmp masq "),
	      "masquerade rule: %s", sn.rule_exprs[0]);
	CHECK_EQ(sn.masq_saddr_mask, 0xffffff00, "source mask /24");
	CHECK_EQ(sn.masq_saddr, 0xc0a83900, "source subnet 192.168.57.0");
	CHECK(!strcmp(sn.oif_cmp, "kl-lab") && sn.oif_op == NFT_CMP_NEQ,
	      "leaves through any interface but the bridge");
	CHECK(!strcmp(sn.rule_chain[1], "forward") &&
		      !strcmp(sn.rule_exprs[1],
			      "meta cmp payload bitwise cmp meta cmp immediate "),
	      "forward out rule: %s", sn.rule_exprs[1]);
	CHECK(!strcmp(sn.rule_exprs[2],
		      "meta cmp payload bitwise cmp ct bitwise cmp immediate "),
	      "forward back rule (ct state): %s", sn.rule_exprs[2]);
	CHECK(sn.delrules == 0, "a fresh network flushes nothing");
}

static void variants(void)
{
	static char buf[16384];
	struct kl_net_cfg cfg = {.name = "lab", .bridge = "kl-lab",
				 .uplink = "eth9", .addr = 0x0a000001,
				 .prefix = 16, .nat = true};
	uint32_t first;
	unsigned nack;
	struct seen sn;
	long len;

	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_CREATE, NULL,
				  0, false, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.begin == 1 && sn.end == 0, "dry run: batch without END");
	CHECK(!strcmp(sn.oif_cmp, "eth9") && sn.oif_op == NFT_CMP_EQ,
	      "--uplink: only through eth9");
	CHECK_EQ(sn.masq_saddr_mask, 0xffff0000, "source mask /16");

	struct nft_chain_state cs[2] = {
		{.exists = true, .base_ok = true, .policy_ok = true, .rules_ok = false},
		{.exists = true, .base_ok = true, .policy_ok = false, .rules_ok = true},
	};
	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_REFRESH, cs,
				  0, true, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.delrules == 2 && sn.rules == 3 && sn.tables == 1 && !sn.comment[0],
	      "refresh: both chains flushed, rules again, comment untouched");
	CHECK_EQ(nack, 8, "refresh: 8 acked messages");

	cs[0].rules_ok = true;
	cs[1].policy_ok = true;
	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_REFRESH, cs,
				  0, true, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.chains == 0 && sn.rules == 0 && sn.delrules == 0,
	      "refresh of whole chains: nothing but the table");

	cs[1].base_ok = false;
	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_REFRESH, cs,
				  0, true, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.delchains == 1 && sn.chains == 1 && sn.rules == 2 &&
		      sn.delrules == 1, "a forward chain of the wrong kind: "
	      "flushed, deleted, made again");

	cs[0].exists = false;
	cs[1] = cs[0];
	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_REFRESH, cs,
				  0, true, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.chains == 2 && sn.rules == 3 && sn.delrules == 0,
	      "missing chains: made again, nothing flushed");

	cfg.nat = false;
	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_CREATE, NULL,
				  0, true, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.tables == 1 && sn.chains == 0 && sn.rules == 0 && nack == 1,
	      "without --nat: the table alone");
	cfg.nat = true;

	len = nft_build_net_batch(buf, sizeof(buf), 1, &cfg, "c", NULL, NFT_CREATE, NULL,
				  NFT_FAULT, true, &first, &nack);
	walk(buf, len, &sn);
	CHECK(sn.rules == 4 && !strcmp(sn.rule_chain[3], "kvmlab-fault-no-such-chain"),
	      "fault hook: a rule into a missing chain");

	len = nft_build_net_batch(buf, 1024, 1, &cfg, "c", NULL, NFT_CREATE, NULL, 0,
				  true, &first, &nack);
	CHECK_EQ(len, -ENOSPC, "small buffer: ENOSPC, no overflow");

	len = nft_build_del_batch(buf, sizeof(buf), 50, "lab", NFT_IP, &first);
	walk(buf, len, &sn);
	CHECK(sn.begin == 1 && sn.end == 1 && sn.deltables == 1 && sn.acked == 1 &&
		      first == 51, "down: one DELTABLE in a batch");
}

int main(void)
{
	fresh();
	variants();
	return t_done();
}

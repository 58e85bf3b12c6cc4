/* The lease map batch and the forward batch, built into a buffer and
 * parsed back with libnftnl (not with our readers); our readers then
 * parse the same messages, as they would a kernel dump. And the DNS
 * resolver picking over resolv.conf files written here. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include "t.h"
#include "lease.h"

static struct kl_lease mk(const char *vm, uint8_t last, uint32_t addr,
			  pid_t pid, bool reserved)
{
	struct kl_lease l;

	memset(&l, 0, sizeof(l));
	snprintf(l.vm, sizeof(l.vm), "%s", vm);
	uint8_t mac[6] = {0x02, 0, 0, 0, 0, last};
	memcpy(l.mac, mac, 6);
	l.addr = addr;
	l.pid = pid;
	l.start = pid ? 777 : 0;
	l.reserved = reserved;
	return l;
}

struct elems {
	int n;
	uint8_t mac[8][6];
	uint32_t addr[8];
	char comment[8][128];
};

static int ud_cb(const struct nftnl_udata *a, void *data)
{
	if (nftnl_udata_type(a) == NFTNL_UDATA_SET_ELEM_COMMENT)
		snprintf(data, 128, "%.*s", (int)nftnl_udata_len(a),
			 (const char *)nftnl_udata_get(a));
	return 0;
}

static int elem_cb(struct nftnl_set_elem *e, void *data)
{
	struct elems *x = data;
	uint32_t len = 0;
	const void *p;

	if (x->n >= 8)
		return 0;
	p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
	if (p && len == 6)
		memcpy(x->mac[x->n], p, 6);
	p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len);
	if (p && len == 4)
		x->addr[x->n] = ntohl(*(const uint32_t *)p);
	x->comment[x->n][0] = 0;
	p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &len);
	if (p)
		nftnl_udata_parse(p, len, ud_cb, x->comment[x->n]);
	x->n++;
	return 0;
}

static void lease_batch(void)
{
	static char buf[65536];
	struct lease_tab old = {0}, new = {0}, back = {0};
	struct kl_lease a = mk("web", 1, 0x0a000005, 100, false);
	struct kl_lease b = mk("db", 2, 0x0a000006, 0, true);
	struct kl_lease c = mk("gone", 3, 0x0a000007, 55, false);
	struct nb bb;
	int newsets = 0, adds = 0, dels = 0, tables = 0, excl = 0, other = 0;
	struct elems added = {0}, deleted = {0};

	/* old: web (owner 100), gone; new: web with another owner, db */
	IGNORE(lease_tab_push(&old, &a));
	IGNORE(lease_tab_push(&old, &c));
	a.pid = 101;
	IGNORE(lease_tab_push(&new, &a));
	IGNORE(lease_tab_push(&new, &b));
	lease_sort_mac(&old);
	lease_sort_mac(&new);
	nb_init(&bb, buf, sizeof(buf), 500, "kvmlab-lab");
	nb_begin(&bb);
	unsigned n = lease_nft_put(&bb, &old, &new);
	unsigned nack = nb_nacked(&bb);
	nb_end(&bb);
	long len = nb_len(&bb, buf);
	CHECK(len > 0, "batch built (%ld bytes)", len);
	CHECK_EQ(n, 4, "element messages: del web, del gone, add web, add db");
	CHECK_EQ(nack, 5, "map and 4 elements ask for an ack");
	CHECK_EQ(bb.first, 501, "first acked message after BEGIN");

	int left = (int)len;
	for (const struct nlmsghdr *h = (void *)buf; mnl_nlmsg_ok(h, left);
	     h = mnl_nlmsg_next(h, &left)) {
		if (h->nlmsg_type == NFNL_MSG_BATCH_BEGIN ||
		    h->nlmsg_type == NFNL_MSG_BATCH_END)
			continue;
		struct nftnl_set *s = nftnl_set_alloc();
		switch (NFNL_MSG_TYPE(h->nlmsg_type)) {
		case NFT_MSG_NEWTABLE:
			/* the table is up's: a lease batch never makes it */
			tables++;
			break;
		case NFT_MSG_NEWSET:
			newsets++;
			CHECK(nftnl_set_nlmsg_parse(h, s) == 0, "NEWSET parses");
			CHECK(!strcmp(nftnl_set_get_str(s, NFTNL_SET_NAME), "leases") &&
				      !strcmp(nftnl_set_get_str(s, NFTNL_SET_TABLE),
					      "kvmlab-lab"),
			      "map leases in kvmlab-lab");
			CHECK(nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & NFT_SET_MAP,
			      "it is a map");
			CHECK(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE) == 9 &&
				      nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) == 6,
			      "key ether_addr (type 9, 6 bytes)");
			CHECK(nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE) == 7 &&
				      nftnl_set_get_u32(s, NFTNL_SET_DATA_LEN) == 4,
			      "data ipv4_addr (type 7, 4 bytes)");
			CHECK(!(h->nlmsg_flags & NLM_F_EXCL), "map: no EXCL");
			break;
		case NFT_MSG_NEWSETELEM:
			adds++;
			excl += !!(h->nlmsg_flags & NLM_F_EXCL);
			if (nftnl_set_elems_nlmsg_parse(h, s) == 0)
				nftnl_set_elem_foreach(s, elem_cb, &added);
			/* and our own reader, as for a dump reply */
			IGNORE(lease_nft_parse(h, &back));
			break;
		case NFT_MSG_DELSETELEM:
			dels++;
			if (nftnl_set_elems_nlmsg_parse(h, s) == 0)
				nftnl_set_elem_foreach(s, elem_cb, &deleted);
			break;
		default:
			other++;
		}
		nftnl_set_free(s);
	}
	CHECK(tables == 0 && newsets == 1 && other == 0, "no table, one map");
	CHECK(dels == 2 && adds == 2 && excl == 2, "2 deletes, 2 adds with EXCL");
	CHECK(deleted.n == 2 && deleted.mac[0][5] == 1 && deleted.mac[1][5] == 3,
	      "deleted: web's old element and gone's");
	CHECK(added.n == 2 && added.mac[0][5] == 1 && added.addr[0] == 0x0a000005 &&
		      !strcmp(added.comment[0], "vm=web owner=101/777"),
	      "added web 10.0.0.5 '%s'", added.comment[0]);
	CHECK(added.mac[1][5] == 2 && added.addr[1] == 0x0a000006 &&
		      !strcmp(added.comment[1], "vm=db owner=0/0 reserved"),
	      "added db 10.0.0.6 '%s'", added.comment[1]);
	CHECK(back.n == 2 && !strcmp(back.v[0].vm, "web") && back.v[0].pid == 101 &&
		      back.v[1].reserved && back.v[1].addr == 0x0a000006,
	      "our reader gets the same two leases");

	/* nothing changed: no element message */
	nb_init(&bb, buf, sizeof(buf), 1, "kvmlab-lab");
	CHECK_EQ(lease_nft_put(&bb, &new, &new), 0, "same table: no element change");
	/* a buffer too small fails cleanly */
	nb_init(&bb, buf, 100, 1, "kvmlab-lab");
	nb_begin(&bb);
	CHECK(nb_len(&bb, buf) == -ENOSPC, "no room: -ENOSPC");
	lease_tab_free(&old);
	lease_tab_free(&new);
	lease_tab_free(&back);
}

struct rules {
	int n, chains, flush;
	char chain[8][16], exprs[8][200], comment[8][128];
	char chain_name[4][16], chain_type[4][8];
	unsigned hook[4];
	int prio[4];
	uint32_t dnat_addr;
	uint16_t dnat_port, dport;
	int nat_type;
};

static int rule_ud_cb(const struct nftnl_udata *a, void *data)
{
	if (nftnl_udata_type(a) == NFTNL_UDATA_RULE_COMMENT)
		snprintf(data, 128, "%.*s", (int)nftnl_udata_len(a),
			 (const char *)nftnl_udata_get(a));
	return 0;
}

static int expr_cb(struct nftnl_expr *e, void *data)
{
	struct rules *r = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	uint32_t len = 0;

	strcat(r->exprs[r->n], name);
	strcat(r->exprs[r->n], " ");
	if (strcmp(r->chain[r->n], "fwd-pre"))
		return 0;
	/* the prerouting rule's values */
	if (!strcmp(name, "immediate")) {
		const void *d = nftnl_expr_get(e, NFTNL_EXPR_IMM_DATA, &len);
		if (d && len == 4)
			r->dnat_addr = ntohl(*(const uint32_t *)d);
		if (d && len == 2)
			r->dnat_port = ntohs(*(const uint16_t *)d);
	}
	if (!strcmp(name, "nat"))
		r->nat_type = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE);
	if (!strcmp(name, "cmp")) {
		const void *d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
		if (d && len == 2)
			r->dport = ntohs(*(const uint16_t *)d);
	}
	return 0;
}

/* The network "lab" of the forward tests: kl-lab, 10.0.0.1/24 */
static void lab_cfg(struct kl_net_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->name, sizeof(cfg->name), "lab");
	snprintf(cfg->bridge, sizeof(cfg->bridge), "kl-lab");
	cfg->addr = 0x0a000001;
	cfg->prefix = 24;
}

static void forward_batch(void)
{
	static char buf[65536];
	struct kl_net_cfg cfg;
	struct kl_forward f = {.proto = IPPROTO_TCP, .port = 8080,
			       .addr = 0x0a000005, .to_port = 80, .vm = "web"};
	struct fwd_tab back = {0};
	struct rules r;
	struct nb bb;

	lab_cfg(&cfg);
	memset(&r, 0, sizeof(r));
	nb_init(&bb, buf, sizeof(buf), 1, "kvmlab-lab");
	nb_begin(&bb);
	fwd_put_chains(&bb, &cfg, AF_INET);
	fwd_put_add(&bb, &cfg, &f);
	nb_end(&bb);
	long len = nb_len(&bb, buf);
	CHECK(len > 0, "forward batch built (%ld bytes)", len);

	int left = (int)len;
	for (const struct nlmsghdr *h = (void *)buf; mnl_nlmsg_ok(h, left);
	     h = mnl_nlmsg_next(h, &left)) {
		if (h->nlmsg_type == NFNL_MSG_BATCH_BEGIN ||
		    h->nlmsg_type == NFNL_MSG_BATCH_END)
			continue;
		if (NFNL_MSG_TYPE(h->nlmsg_type) == NFT_MSG_NEWCHAIN) {
			struct nftnl_chain *c = nftnl_chain_alloc();
			if (nftnl_chain_nlmsg_parse(h, c) == 0 && r.chains < 4) {
				snprintf(r.chain_name[r.chains], 16, "%s",
					 nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
				snprintf(r.chain_type[r.chains], 8, "%s",
					 nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE));
				r.hook[r.chains] = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
				r.prio[r.chains] = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
				r.chains++;
			}
			CHECK(!(h->nlmsg_flags & NLM_F_EXCL), "chain: no EXCL");
			nftnl_chain_free(c);
		} else if (NFNL_MSG_TYPE(h->nlmsg_type) == NFT_MSG_DELRULE) {
			r.flush++;
		} else if (NFNL_MSG_TYPE(h->nlmsg_type) == NFT_MSG_NEWRULE) {
			struct nftnl_rule *x = nftnl_rule_alloc();
			uint32_t ulen = 0;
			if (nftnl_rule_nlmsg_parse(h, x) == 0 && r.n < 8) {
				const void *ud = nftnl_rule_get_data(x, NFTNL_RULE_USERDATA,
								     &ulen);
				snprintf(r.chain[r.n], 16, "%s",
					 nftnl_rule_get_str(x, NFTNL_RULE_CHAIN));
				if (ud)
					nftnl_udata_parse(ud, ulen, rule_ud_cb,
							  r.comment[r.n]);
				nftnl_expr_foreach(x, expr_cb, &r);
				r.n++;
			}
			IGNORE(fwd_parse(h, &back));
			nftnl_rule_free(x);
		}
	}
	CHECK_EQ(r.chains, 4, "four chains");
	CHECK(!strcmp(r.chain_name[0], "fwd-pre") && r.hook[0] == NF_INET_PRE_ROUTING &&
		      r.prio[0] == -100 && !strcmp(r.chain_type[0], "nat"),
	      "fwd-pre: nat prerouting dstnat");
	CHECK(!strcmp(r.chain_name[1], "fwd-out") && r.hook[1] == NF_INET_LOCAL_OUT &&
		      r.prio[1] == -100 && !strcmp(r.chain_type[1], "nat"),
	      "fwd-out: nat output -100");
	CHECK(!strcmp(r.chain_name[2], "fwd-post") &&
		      r.hook[2] == NF_INET_POST_ROUTING && r.prio[2] == 100,
	      "fwd-post: nat postrouting srcnat");
	CHECK(!strcmp(r.chain_name[3], "fwd-accept") && r.hook[3] == NF_INET_FORWARD &&
		      r.prio[3] == 0 && !strcmp(r.chain_type[3], "filter"),
	      "fwd-accept: filter forward 0");
	CHECK_EQ(r.flush, 1, "fwd-post emptied before its two rules");
	CHECK_EQ(r.n, 5, "2 masquerade rules + 3 forward rules");
	CHECK(!strcmp(r.chain[0], "fwd-post") &&
		      !strcmp(r.exprs[0], "meta cmp ct bitwise cmp payload bitwise cmp masq "),
	      "hairpin masquerade: %s", r.exprs[0]);
	CHECK(!strcmp(r.exprs[1], "meta cmp ct bitwise cmp fib cmp masq "),
	      "host masquerade: %s", r.exprs[1]);
	CHECK(!strcmp(r.chain[2], "fwd-pre") &&
		      !strcmp(r.exprs[2], "fib cmp payload bitwise cmp meta cmp "
					  "payload cmp immediate immediate nat "),
	      "prerouting DNAT: %s", r.exprs[2]);
	CHECK(r.dnat_addr == 0x0a000005 && r.dnat_port == 80 &&
		      r.nat_type == NFT_NAT_DNAT && r.dport == 8080,
	      "tcp dport 8080 dnat to 10.0.0.5:80");
	CHECK(!strcmp(r.chain[3], "fwd-out") && !strcmp(r.exprs[3], r.exprs[2]),
	      "output DNAT: the same match");
	CHECK(!strcmp(r.chain[4], "fwd-accept") &&
		      !strcmp(r.exprs[4], "meta cmp payload cmp meta cmp payload cmp "
					  "ct bitwise cmp immediate "),
	      "forward accept: %s", r.exprs[4]);
	CHECK(!strcmp(r.comment[2], "fwd tcp 8080 to 10.0.0.5:80 vm=web") &&
		      !strcmp(r.comment[4], r.comment[2]),
	      "rule comment: %s", r.comment[2]);
	CHECK(back.n == 1 && back.chains && back.v[0].f.port == 8080 &&
		      back.v[0].f.to_port == 80 && back.v[0].f.addr == 0x0a000005 &&
		      !strcmp(back.v[0].f.vm, "web") && back.v[0].f.proto == IPPROTO_TCP,
	      "our reader: one forward from three rules, chains present");
	fwd_tab_free(&back);

	/* delete: one DELRULE per rule handle */
	struct fwd_entry e = {f, {11, 12, 0}};
	nb_init(&bb, buf, sizeof(buf), 1, "kvmlab-lab");
	fwd_put_del(&bb, &e);
	left = (int)nb_len(&bb, buf);
	int dels = 0;
	uint64_t hs = 0;
	for (const struct nlmsghdr *h = (void *)buf; mnl_nlmsg_ok(h, left);
	     h = mnl_nlmsg_next(h, &left)) {
		struct nftnl_rule *x = nftnl_rule_alloc();
		if (NFNL_MSG_TYPE(h->nlmsg_type) == NFT_MSG_DELRULE &&
		    nftnl_rule_nlmsg_parse(h, x) == 0) {
			dels++;
			hs += nftnl_rule_get_u64(x, NFTNL_RULE_HANDLE);
		}
		nftnl_rule_free(x);
	}
	CHECK(dels == 2 && hs == 23, "two DELRULEs by handle (a missing rule skipped)");
}

static void fwd_comments(void)
{
	struct kl_forward f = {.proto = IPPROTO_UDP, .port = 53,
			       .addr = 0xc0a80002, .to_port = 5353}, p;
	char buf[128];

	CHECK(fwd_comment(&f, buf, sizeof(buf)) == 0 &&
		      !strcmp(buf, "fwd udp 53 to 192.168.0.2:5353"), "%s", buf);
	CHECK(fwd_comment_parse(buf, &p) == 0 && p.proto == IPPROTO_UDP &&
		      p.port == 53 && p.to_port == 5353 && p.addr == 0xc0a80002 &&
		      !p.vm[0], "parsed back");
	const char *bad[] = {"fwd sctp 1 to 1.2.3.4:5", "fwd tcp 0 to 1.2.3.4:5",
			     "fwd tcp 1 to 1.2.3.4:65536", "fwd tcp 1 to 1.2.3:5",
			     "fwd tcp 1 to 1.2.3.4:5 vm=a b", "fwd tcp 1 to 1.2.3.4:5x",
			     "fwd masquerade from the host", ""};
	int n = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		n += fwd_comment_parse(bad[i], &p) == -EBADMSG;
	CHECK_EQ(n, (int)(sizeof(bad) / sizeof(bad[0])), "malformed forward comments");

	/* IPv6: the address in brackets */
	struct kl_forward g = {.proto = IPPROTO_TCP, .port = 8080, .to_port = 80,
			       .vm = "web", .family = AF_INET6,
			       .addr6 = {0xfd, 0x59, [15] = 5}};
	CHECK(fwd_comment(&g, buf, sizeof(buf)) == 0 &&
		      !strcmp(buf, "fwd tcp 8080 to [fd59::5]:80 vm=web"), "%s", buf);
	memset(&p, 0, sizeof(p));
	CHECK(fwd_comment_parse(buf, &p) == 0 && p.family == AF_INET6 &&
		      !memcmp(p.addr6, g.addr6, 16) && p.port == 8080 &&
		      p.to_port == 80 && !p.addr && !strcmp(p.vm, "web"),
	      "IPv6 parsed back");
	CHECK(fwd_comment_parse("fwd udp 53 to [::ffff:1.2.3.4]:53", &p) == 0 &&
		      p.family == AF_INET6 && p.addr6[10] == 0xff && p.addr6[15] == 4,
	      "an IPv4-mapped IPv6 text is IPv6");
	const char *bad6[] = {"fwd tcp 1 to [fd00::5:80", "fwd tcp 1 to []:80",
			      "fwd tcp 1 to [fd00::zz]:80", "fwd tcp 1 to [fd00::5]80",
			      "fwd tcp 1 to [fd00::5]:0", "fwd tcp 1 to [1.2.3.4]:5",
			      "fwd tcp 1 to [fd00::5]:5 vm=", "fwd tcp 1 to [fd00::5%eth0]:5",
			      "fwd tcp 1 to fd00::5:80",
			      "fwd tcp 1 to [0000:0000:0000:0000:0000:0000:0000:0000:1]:5"};
	n = 0;
	for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++)
		n += fwd_comment_parse(bad6[i], &p) == -EBADMSG;
	CHECK_EQ(n, (int)(sizeof(bad6) / sizeof(bad6[0])), "malformed IPv6 forward comments");
}

/* An IPv6 forward: every message in the ip6 table, addresses 16 bytes
 * at the IPv6 header's offsets. */
struct rules6 {
	int chains6, chains4, rules6, rules4;
	char pre[200], accept[200], hairpin[200];
	uint8_t dnat6[16], accept_daddr[16], hairpin_mask[16], lo[16];
	int nat_family, dnat_len, accept_off, hairpin_off, lo_off, lo_op;
	const char *chain;
	bool first_post; /* the rule is fwd-post's first: the hairpin one */
};

static int expr6_cb(struct nftnl_expr *e, void *data)
{
	struct rules6 *r = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	char *ex = !strcmp(r->chain, "fwd-pre") ? r->pre
		   : !strcmp(r->chain, "fwd-accept") ? r->accept
		   : r->first_post ? r->hairpin : NULL;
	static uint32_t last_off;
	uint32_t len = 0;
	const void *d;

	if (!ex)
		return 0;
	if (strlen(ex) + strlen(name) + 2 < 200) {
		strcat(ex, name);
		strcat(ex, " ");
	}
	if (!strcmp(name, "payload"))
		last_off = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
	if (!strcmp(name, "immediate") && ex == r->pre &&
	    (d = nftnl_expr_get(e, NFTNL_EXPR_IMM_DATA, &len)) && len == 16) {
		memcpy(r->dnat6, d, 16);
		r->dnat_len = (int)len;
	}
	if (!strcmp(name, "nat"))
		r->nat_family = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY);
	if (!strcmp(name, "bitwise") && ex == r->hairpin &&
	    (d = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len)) && len == 16) {
		memcpy(r->hairpin_mask, d, 16);
		r->hairpin_off = (int)last_off;
	}
	if (!strcmp(name, "cmp") && (d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len)) &&
	    len == 16) {
		if (ex == r->accept) {
			memcpy(r->accept_daddr, d, 16);
			r->accept_off = (int)last_off;
		} else if (ex == r->pre) {
			memcpy(r->lo, d, 16);
			r->lo_off = (int)last_off;
			r->lo_op = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
		}
	}
	return 0;
}

static void forward_batch6(void)
{
	static char buf[65536];
	static const uint8_t target[16] = {0xfd, 0x59, [15] = 5},
			     lo[16] = {[15] = 1}, m64[16] = {255, 255, 255, 255,
							    255, 255, 255, 255};
	struct kl_net_cfg cfg;
	struct kl_forward f = {.proto = IPPROTO_TCP, .port = 8080, .to_port = 80,
			       .vm = "web", .family = AF_INET6};
	struct fwd_tab back = {0};
	struct rules6 r;
	struct nb bb;

	memcpy(f.addr6, target, 16);
	lab_cfg(&cfg);
	memset(&r, 0, sizeof(r));
	cfg.has6 = true;
	memcpy(cfg.addr6, target, 16);
	cfg.addr6[15] = 1;
	cfg.prefix6 = 64;
	nb_init(&bb, buf, sizeof(buf), 1, "kvmlab-lab");
	nb_begin(&bb);
	fwd_put_chains(&bb, &cfg, AF_INET6);
	fwd_put_add(&bb, &cfg, &f);
	nb_end(&bb);
	CHECK(bb.family == NFPROTO_IPV4, "the batch's family is put back");
	int left = (int)nb_len(&bb, buf);
	for (const struct nlmsghdr *h = (void *)buf; mnl_nlmsg_ok(h, left);
	     h = mnl_nlmsg_next(h, &left)) {
		const struct nfgenmsg *g = mnl_nlmsg_get_payload(h);
		bool v6 = g->nfgen_family == NFPROTO_IPV6;
		if (h->nlmsg_type == NFNL_MSG_BATCH_BEGIN ||
		    h->nlmsg_type == NFNL_MSG_BATCH_END)
			continue;
		if (NFNL_MSG_TYPE(h->nlmsg_type) == NFT_MSG_NEWCHAIN)
			*(v6 ? &r.chains6 : &r.chains4) += 1;
		if (NFNL_MSG_TYPE(h->nlmsg_type) == NFT_MSG_NEWRULE) {
			struct nftnl_rule *x = nftnl_rule_alloc();
			*(v6 ? &r.rules6 : &r.rules4) += 1;
			if (nftnl_rule_nlmsg_parse(h, x) == 0) {
				r.chain = nftnl_rule_get_str(x, NFTNL_RULE_CHAIN);
				r.first_post = !strcmp(r.chain, "fwd-post") && !r.hairpin[0];
				nftnl_expr_foreach(x, expr6_cb, &r);
			}
			IGNORE(fwd_parse(h, &back));
			nftnl_rule_free(x);
		}
	}
	CHECK(r.chains6 == 4 && r.chains4 == 0, "four chains, all in the ip6 table");
	CHECK(r.rules6 == 5 && r.rules4 == 0, "five rules, all in the ip6 table");
	CHECK(!strcmp(r.pre, "fib cmp payload cmp meta cmp payload cmp immediate "
			     "immediate nat ") && r.lo_off == 24 && r.lo_op == NFT_CMP_NEQ &&
		      !memcmp(r.lo, lo, 16),
	      "prerouting: ip6 daddr (offset 24) != ::1, no mask: %s", r.pre);
	CHECK(r.dnat_len == 16 && !memcmp(r.dnat6, target, 16) &&
		      r.nat_family == NFPROTO_IPV6, "dnat ip6 to fd59::5");
	CHECK(r.accept_off == 24 && !memcmp(r.accept_daddr, target, 16),
	      "forward accept: ip6 daddr fd59::5: %s", r.accept);
	CHECK(r.hairpin_off == 8 && !memcmp(r.hairpin_mask, m64, 16),
	      "hairpin: ip6 saddr (offset 8) in the /64: %s", r.hairpin);
	CHECK(back.n == 1 && back.chains6 && !back.chains &&
		      back.v[0].f.family == AF_INET6 && !memcmp(back.v[0].f.addr6, target, 16) &&
		      fwd_find(&back, AF_INET6, IPPROTO_TCP, 8080) &&
		      !fwd_find(&back, AF_INET, IPPROTO_TCP, 8080) &&
		      fwd_find(&back, AF_UNSPEC, IPPROTO_TCP, 8080),
	      "our reader: one IPv6 forward, found by family");
	fwd_tab_free(&back);
}

/* ---- DNS ---- */
static char dir[] = "/tmp/kvmlab-unit-dns.XXXXXX";

static const char *conf(const char *name, const char *text)
{
	static char path[16][128];
	static int k;
	char *p = path[k++ % 16];
	FILE *f;

	snprintf(p, 128, "%s/%s", dir, name);
	f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return p;
}

static void dns(void)
{
	static const uint8_t g6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1},
			     u6[16] = {0xfd, 0x00, [15] = 0x53};
	struct dns_set d;
	uint32_t *v = d.v4;

	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	const char *fb = conf("resolved", "nameserver 192.0.2.53\nnameserver 127.0.0.1\n"
				      "nameserver 198.51.100.53\n");
	const char *plain = conf("plain", "# c\nsearch x\nnameserver 9.9.9.9\n"
				  "nameserver  1.1.1.1 \noptions edns0\n");
	CHECK(dns_pick(plain, fb, &d) == 0 && d.n4 == 2 && v[0] == 0x09090909 &&
		      v[1] == 0x01010101 && d.n6 == 0, "plain resolv.conf: both, in order");
	const char *stub = conf("stub", "nameserver 127.0.0.53\noptions edns0 trust-ad\n");
	CHECK(dns_pick(stub, fb, &d) == 0 && d.n4 == 2 && v[0] == 0xc0000235 &&
		      v[1] == 0xc6336435,
	      "only the systemd-resolved stub: its upstream list, loopback dropped");
	const char *mixed = conf("mixed", "nameserver 127.0.0.1\nnameserver 10.1.1.1\n"
				  "nameserver ::1\n");
	CHECK(dns_pick(mixed, fb, &d) == 0 && d.n4 == 1 && v[0] == 0x0a010101 &&
		      d.n6 == 0, "loopback and a real one: the real one, no fallback");
	const char *v6 = conf("v6", "nameserver 2001:db8::1\nnameserver ::1\n"
			      "nameserver fe80::1%eth0\nnameserver fd00::53\n"
			      "nameserver ::ffff:1.2.3.4\nnameserver ff02::fb\n");
	CHECK(dns_pick(v6, fb, &d) == 0 && d.n4 == 0 && d.n6 == 2 &&
		      !memcmp(d.v6[0], g6, 16) && !memcmp(d.v6[1], u6, 16),
	      "IPv6: global and unique-local kept, in order; loopback, scoped "
	      "link-local, IPv4-mapped and multicast dropped; none for DHCPv4");
	const char *lo6 = conf("lo6", "nameserver ::1\n");
	CHECK(dns_pick(lo6, fb, &d) == 0 && d.n4 == 2,
	      "::1 only counts as loopback only: fallback");
	CHECK(dns_pick(stub, "/nonexistent/x", &d) == 0 && d.n4 == 0 && d.n6 == 0,
	      "stub and no systemd-resolved file: none");
	CHECK(dns_pick("/nonexistent/y", fb, &d) == 0 && d.n4 == 0,
	      "no resolv.conf: none");
	const char *many = conf("many", "nameserver 1.0.0.1\nnameserver 1.0.0.2\n"
				 "nameserver 1.0.0.1\nnameserver 1.0.0.3\n"
				 "nameserver 1.0.0.4\nnameserver bogus\n"
				 "nameserver 2001:db8::1\nnameserver 2001:db8::2\n"
				 "nameserver 2001:db8::1\nnameserver 2001:db8::3\n"
				 "nameserver 2001:db8::4\n");
	CHECK(dns_pick(many, fb, &d) == 0 && d.n4 == 3 && v[2] == 0x01000003 &&
		      d.n6 == 3 && d.v6[2][15] == 3,
	      "at most three of each family, duplicates once");
	const char *junk = conf("junk", "nameserverx 1.2.3.4\n#nameserver 5.6.7.8\n"
				 "nameserver 300.1.1.1\nnameserver 2001:db8::g\n");
	CHECK(dns_pick(junk, fb, &d) == 0 && d.n4 == 0 && d.n6 == 0,
	      "malformed lines ignored");
	setenv("KVMLAB_RESOLV_CONF", stub, 1);
	setenv("KVMLAB_RESOLVED_CONF", fb, 1);
	CHECK(dns_host(&d) == 0 && d.n4 == 2, "dns_host follows the overrides");

	/* what guests get: the network's own, else the host's (IPv6 ones
	 * only on an IPv6 network) */
	struct kl_net_cfg c;
	bool host;
	setenv("KVMLAB_RESOLV_CONF", many, 1);
	memset(&c, 0, sizeof(c));
	dns_for_guests(&c, &host);
	CHECK(host && c.ndns == 3 && c.ndns6 == 0,
	      "no --dns, no IPv6: the host's IPv4 resolvers only");
	memset(&c, 0, sizeof(c));
	c.has6 = true;
	dns_for_guests(&c, &host);
	CHECK(host && c.ndns == 3 && c.ndns6 == 3, "no --dns, IPv6: the host's of both");
	memset(&c, 0, sizeof(c));
	c.has6 = true;
	c.ndns6 = 1;
	memcpy(c.dns6[0], u6, 16);
	dns_for_guests(&c, &host);
	CHECK(!host && c.ndns == 0 && c.ndns6 == 1 && !memcmp(c.dns6[0], u6, 16),
	      "--dns with an IPv6 server only: exactly that, no host IPv4 ones");
	const char *names[] = {"resolved", "plain", "stub", "mixed", "v6", "lo6",
			       "many", "junk"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char p[128];
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

int main(void)
{
	lease_batch();
	forward_batch();
	forward_batch6();
	fwd_comments();
	dns();
	return t_done();
}

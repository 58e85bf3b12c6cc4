/* Internal to net/ and its unit tests: message builders (which write
 * into a caller's buffer, so tests can parse them back without a
 * socket), the netlink transport, the store, the lock and the handle. */
#ifndef KVMLAB_NET_PRIV_H
#define KVMLAB_NET_PRIV_H
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include "net.h"

#define WUR KL_WUR
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Best-effort calls (rollback, warnings): the result is not needed. */
#define IGNORE(x) do { if (x) {} } while (0)
#define NL_BUF_SIZE (64 * 1024)
/* Room for one link request (by name, with a few u32 attributes). */
#define RT_MSG_ROOM 128

/* Room for need elements of elem bytes in v, whose capacity is *cap;
 * doubling keeps a run of appends linear. Returns the array (maybe
 * moved), or NULL with v and *cap untouched. */
static inline void *kl_grow(void *v, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 16;

	while (c < need) {
		if (c > SIZE_MAX / 2 / elem)
			return NULL;
		c *= 2;
	}
	if (c == *cap)
		return v;
	v = realloc(v, c * elem);
	if (v)
		*cap = c;
	return v;
}

/* ---- nl.c: one netlink socket ---- */
struct kl_nl {
	struct mnl_socket *sk;
	int bus;
	uint32_t portid;
	uint32_t seq;
	char *rbuf; /* NL_BUF_SIZE */
	char extack[256];
	int fail_index; /* which message of the last talk failed, -1 none */
};
typedef int (*nl_data_cb)(const struct nlmsghdr *nlh, void *data);

WUR int nl_open(struct kl_nl *nl, int bus);
void nl_close(struct kl_nl *nl);
/* Send n requests (consecutive sequence numbers from first_seq, each
 * with NLM_F_ACK) in buf and read until every one is answered. Returns
 * the first error; res[i] (optional) receives each message's result.
 * Data replies (echo) go to cb. */
WUR int nl_talk(struct kl_nl *nl, const void *buf, size_t len,
		uint32_t first_seq, unsigned n, int *res, nl_data_cb cb,
		void *data);
/* Send n requests in one sendmsg, which the kernel handles in a row
 * before the call returns (so no signal can fall between them). Only
 * the last may carry NLM_F_ACK; the others are answered only when they
 * fail. Reads until the last one's ack; returns the first error
 * (fail_index tells which message). */
WUR int nl_send_all(struct kl_nl *nl, const void *buf, size_t len,
		    uint32_t first_seq, unsigned n);
/* A dump request; cb sees every object. If the kernel flags the dump
 * as interrupted, reset(data) runs and the dump starts over. */
WUR int nl_dump(struct kl_nl *nl, struct nlmsghdr *req, nl_data_cb cb,
		void (*reset)(void *), void *data);
/* A dump gathered into an array of elem-byte objects (caller frees *out):
 * parse fills the next one from a reply and returns 0 to keep it, or
 * anything else to skip a reply that is not of interest. */
WUR int nl_dump_array(struct kl_nl *nl, struct nlmsghdr *req, size_t elem,
		      nl_data_cb parse, void **out, size_t *n);
/* Parse one NLMSG_ERROR: returns its error (<= 0), copies extack text. */
int nl_parse_err(const struct nlmsghdr *nlh, char *ext, size_t extlen);

/* ---- link.c / addr.c builders (rtnetlink) ---- */
/* A new bridge, up, at ifindex (0: the kernel picks), tagged with alias
 * (NULL: none). */
struct nlmsghdr *rt_build_newbridge(void *buf, uint32_t seq, const char *name,
				    int ifindex, unsigned mtu, bool stp,
				    const char *alias);
/* Set master (0: leave), mtu (0: leave), alias (NULL: leave) and IFF_UP
 * on ifindex, or by name when ifindex is 0. */
struct nlmsghdr *rt_build_setlink(void *buf, uint32_t seq, int ifindex,
				  const char *name, int master, unsigned mtu,
				  bool up, const char *alias);
struct nlmsghdr *rt_build_dellink(void *buf, uint32_t seq, int ifindex,
				  const char *name);
struct nlmsghdr *rt_build_getlink(void *buf, uint32_t seq, const char *name);
/* Move a link into a device group, and delete a whole group at once: one
 * batched unregistration instead of one RCU wait per device. */
struct nlmsghdr *rt_build_setgroup(void *buf, uint32_t seq, int ifindex,
				   const char *name, uint32_t group);
struct nlmsghdr *rt_build_delgroup(void *buf, uint32_t seq, uint32_t group);
struct nlmsghdr *rt_build_addr(void *buf, uint32_t seq, uint16_t type,
			       int ifindex, uint32_t addr, unsigned prefix);

/* ---- tc.c builders (rtnetlink tc) ---- */
#define TC_DHCP_PRIO 49152u /* the filter's priority: below what users pick */
#define TC_DHCP_NAME "kvmlab-dhcp-local"
/* Add (exclusively) or delete a tap's clsact qdisc. */
struct nlmsghdr *tc_build_clsact(void *buf, uint32_t seq, int ifindex, bool add);
/* The ingress filter of kl_tap_dhcp_local. */
struct nlmsghdr *tc_build_dhcp_filter(void *buf, uint32_t seq, int ifindex);

/* Links as the kernel reports them. */
#define LINK_ALIAS_MAX 64 /* longer aliases are never kvmlab tags */
struct kl_link {
	int ifindex, master;
	unsigned flags, mtu;
	uint32_t group;
	char name[KL_NAME_MAX + 1];
	char kind[16];
	char alias[LINK_ALIAS_MAX]; /* "" none or too long */
	uint8_t mac[6];
	/* tun only (IFLA_TUN_*): */
	bool tun_tap, tun_persist, tun_mq;
	int64_t tun_owner, tun_group; /* -1 none */
};
/* One link by name: 0, -ENODEV, or another error. */
WUR int link_get(struct kl_nl *nl, const char *name, struct kl_link *out);
/* All links (caller frees *out). */
WUR int link_dump(struct kl_nl *nl, struct kl_link **out, size_t *n);
/* Parse an RTM_NEWLINK reply into l; -EINVAL if not a link message. */
int link_parse(const struct nlmsghdr *nlh, struct kl_link *l);

struct kl_addr4 {
	int ifindex;
	uint32_t addr; /* host order */
	unsigned prefix;
};
WUR int addr_dump(struct kl_nl *nl, struct kl_addr4 **out, size_t *n);
int addr_parse(const struct nlmsghdr *nlh, struct kl_addr4 *a);
bool cidr_overlap(uint32_t a, unsigned pa, uint32_t b, unsigned pb);
/* IPv6: an address with IFA_F_NODAD (the bridge's are ours by
 * definition, and usable at once, before the bridge has a port). */
struct nlmsghdr *rt_build_addr6(void *buf, uint32_t seq, uint16_t type,
				int ifindex, const uint8_t addr[16],
				unsigned prefix);
struct kl_addr6 {
	int ifindex;
	uint8_t addr[16];
	unsigned prefix;
	unsigned scope;
};
WUR int addr6_dump(struct kl_nl *nl, struct kl_addr6 **out, size_t *n);
int addr6_parse(const struct nlmsghdr *nlh, struct kl_addr6 *a);
bool cidr6_overlap(const uint8_t a[16], unsigned pa, const uint8_t b[16],
		   unsigned pb);
/* Interfaces whose IPv6 routes came from router advertisements while
 * their accept_ra is 1, which the kernel stops honouring once forwarding
 * is on: fn(data, ifindex) for each, once. */
WUR int ra_routes_at_risk(struct kl_nl *nl, void (*fn)(void *, int),
			  void *data);

/* ---- tags (check.c): what marks a link as kvmlab's ---- */
#define TAG_PREFIX "kvmlab:"
#define TAG_MAX 48
/* "kvmlab:NET" for a bridge, "kvmlab:NET:tap" (queues 1) or
 * "kvmlab:NET:tap:queues=N" for a tap. */
void tag_bridge(const char *net, char out[TAG_MAX]);
void tag_tap(const char *net, unsigned queues, char out[TAG_MAX]);
enum tag_kind { TAG_NONE, TAG_BRIDGE, TAG_TAP };
/* What alias says: the kind, its network into net (KL_NAME_MAX + 1) and,
 * for a tap, its queues. Anything malformed is TAG_NONE. */
enum tag_kind tag_parse(const char *alias, char *net, unsigned *queues);
/* Is l kvmlab's bridge (kind bridge) / tap (kind tun) of network net? */
bool link_is_bridge_of(const struct kl_link *l, const char *net);
bool link_is_tap_of(const struct kl_link *l, const char *net, unsigned *queues);

/* ---- nft_batch.c: an nftables batch being built in a caller's buffer ---- */
struct nftnl_udata_buf;
struct nb {
	char *p, *end;
	uint32_t seq, first;
	int err;
	const char *table; /* "kvmlab-NET" */
	uint32_t family;   /* of table and chains: NFPROTO_IPV4 from nb_init */
};
void nb_init(struct nb *b, void *buf, size_t size, uint32_t seq,
	     const char *table);
/* Room for one more message, or NULL (b->err set). */
char *nb_room(struct nb *b);
void nb_next(struct nb *b, struct nlmsghdr *nlh);
void nb_begin(struct nb *b);
void nb_end(struct nb *b);
/* Messages that ask for an ACK (all but begin/end). */
unsigned nb_nacked(const struct nb *b);
/* The first error, or the batch's length. */
long nb_len(const struct nb *b, const void *buf);
/* Keep err unless an earlier one is kept. */
void nb_fail(struct nb *b, int err);
/* A comment TLV of the given udata type, or NULL (b->err set). */
struct nftnl_udata_buf *nb_comment(struct nb *b, int type, const char *text);
/* NEWCHAIN of a base chain in b->table, policy accept, no EXCL. */
void nb_chain(struct nb *b, const char *name, const char *type, unsigned hook,
	      int prio);
/* DELCHAIN of an emptied chain in b->table. */
void nb_delchain(struct nb *b, const char *name);

/* ---- nft.c ---- */
struct nftnl_rule;
struct nftnl_expr;
/* Rule expressions shared by nft.c and forward.c: e NULL (allocation
 * failed) is -ENOMEM; cmp compares register 1 with d. */
WUR int nft_add_expr(struct nftnl_rule *r, struct nftnl_expr *e);
WUR int nft_put_cmp(struct nftnl_rule *r, enum nft_cmp_ops op, const void *d,
		    uint32_t len);
enum nft_mode {
	NFT_CREATE,  /* fresh network: table made with NLM_F_EXCL */
	NFT_REFRESH, /* existing network: repair the chains up owns */
};
#define NFT_FAULT 1u /* add a rule into a missing chain: batch rejected */
/* The chains up owns in a NAT network's table (leases and forwards,
 * lease_nft.c and forward.c, own the "fwd-*" and "lease*" objects there;
 * up never touches those). */
#define NFT_CHAIN_POST "postrouting"
#define NFT_CHAIN_FWD "forward"
/* Owned chains, in cs[] order: the ip table's two, then the ip6 table's
 * (same names) on an IPv6 network. */
#define NFT_NCHAINS 4
/* What the kernel holds of one owned chain, for the repair. */
struct nft_chain_state {
	bool exists, base_ok; /* base_ok: type, hook, priority as ours */
	bool policy_ok, rules_ok;
};
/* Build the whole batch (begin .. end) into buf; with end false the batch
 * lacks its END message, which makes the kernel validate and abort. The
 * table is made with comment (NFT_CREATE only), and with cfg->has6 the
 * table "ip6 kvmlab-NET" too, with comment6. In NFT_REFRESH mode
 * cs[NFT_NCHAINS] (postrouting, forward; ip, then ip6) says what exists: a chain of the wrong kind is
 * deleted and made again, otherwise its policy is set and its rules
 * replaced. The number of messages that ask for an ACK goes to *nacked,
 * the sequence number of the first one to *first_seq. Returns its length
 * or -errno. */
WUR long nft_build_net_batch(void *buf, size_t size, uint32_t seq,
			     const struct kl_net_cfg *cfg, const char *comment,
			     const char *comment6, enum nft_mode mode, const struct nft_chain_state *cs,
			     unsigned faults, bool end, uint32_t *first_seq,
			     unsigned *nacked);
/* Delete the network's tables: fams NFT_IP, NFT_IP6 or both. */
#define NFT_IP 1u
#define NFT_IP6 2u
WUR long nft_build_del_batch(void *buf, size_t size, uint32_t seq,
			     const char *net, unsigned fams,
			     uint32_t *first_seq);
void nft_table_name(const char *net, char *out, size_t len);
/* What the kernel holds of the chains up owns, for a NAT network. */
WUR int nft_chains_check(struct kl_nl *nl, const struct kl_net_cfg *cfg,
			 struct nft_chain_state cs[NFT_NCHAINS]);
/* Call fn for each base chain on the forward hook with policy drop in
 * any table but skip_table ("kvmlab-NET" of the network being made). */
typedef void (*nft_drop_fn)(void *data, const char *family,
			    const char *table, const char *chain);
WUR int nft_forward_drops(struct kl_nl *nl, const char *skip_table,
			  nft_drop_fn fn, void *data);
#define NFT_TABLE_PREFIX "kvmlab-"
#define NFT_COMMENT_PREFIX "kvmlab network "
/* One ip table as listed: name, flags, comment ("" none). */
struct nft_table_info {
	char name[64];
	uint32_t flags;
	char comment[256];
};
WUR int nft_tables_dump(struct kl_nl *nl, uint32_t family,
			struct nft_table_info **out, size_t *n);

/* ---- store.c: a network's definition, kept in its nft table ---- */
struct store_net {
	struct kl_net_cfg cfg; /* cfg.has6: its ip6 table was read */
	int fwd_prev;  /* ip_forward before the first kvmlab network: 0/1 */
	bool bad;      /* the table's comment is not a definition we read */
	bool dormant;  /* the table's dormant flag is set */
	bool have4;    /* table "ip kvmlab-NET" exists (false: only ip6) */
	bool have6;    /* table "ip6 kvmlab-NET" exists */
	bool bad6, dormant6;
	int fwd6_prev; /* IPv6 forwarding before the first IPv6 network; -1 */
};
/* The comment of network n's table, and back. parse: -EBADMSG unless it
 * is a whole definition of network net. */
WUR int store_format(const struct store_net *n, char *buf, size_t len);
WUR int store_parse(const char *net, const char *comment,
		    struct store_net *out);
/* The same for the ip6 table's comment: "kvmlab network NET: cidr6=A/LEN
 * fwd6_prev=0|1" (parse fills cfg.addr6, prefix6, has6 and fwd6_prev). */
WUR int store6_format(const struct store_net *n, char *buf, size_t len);
WUR int store6_parse(const char *net, const char *comment,
		     struct store_net *out);
/* Every kvmlab network in this namespace (tables "ip kvmlab-*" whose
 * comment starts with "kvmlab network "); caller frees *out. */
WUR int store_list(struct kl_net *h, struct store_net **out, size_t *n);
/* One network: 0, -ENOENT, or another error. */
WUR int store_read(struct kl_net *h, const char *net, struct store_net *out);
/* Write the network: one nft batch making (NFT_CREATE) or repairing its
 * table with the definition and the chains up owns. buf: NL_BUF_SIZE. */
WUR int store_write(struct kl_net *h, char *buf, const struct store_net *n,
		    enum nft_mode mode, const struct nft_chain_state *cs,
		    unsigned faults, bool commit);
/* Delete the network's tables, those of fams (NFT_IP, NFT_IP6) in one
 * batch (-ENOENT when one is gone). */
WUR int store_delete(struct kl_net *h, const char *net, unsigned fams);

/* ---- lock.c: one run at a time per network namespace ---- */
/* An abstract unix socket bound inside the namespace: per namespace, let
 * go when the process dies, gone with the namespace. exclusive false
 * takes nothing (readers read the kernel, whose objects are each read
 * whole). Waits up to h->wait_ms; -ETIMEDOUT names the holder's pid.
 * Not nested: a run takes it once (op_begin) and reads the network with
 * view_load/store_*, never through kl_net_show; one state_unlock lets go. */
WUR int state_lock(struct kl_net *h, bool exclusive);
void state_unlock(struct kl_net *h);
#define LOCK_NAME "kvmlab-net.lock"

/* ---- name helpers (check.c) ---- */
/* strcmp for qsort/bsearch over char[KL_NAME_MAX + 1] arrays. */
int cmp_name(const void *a, const void *b);
/* Whether two of names are equal, in N log N. */
WUR int names_dup(const char *const *names, size_t n, bool *dup);

/* ---- sysctl.c ---- */
WUR int sysctl_read_int(const char *path, int *val);
WUR int sysctl_write_int(const char *path, int val);
#define SYSCTL_FWD "/proc/sys/net/ipv4/ip_forward"
#define SYSCTL_FWD6 "/proc/sys/net/ipv6/conf/all/forwarding"
#define SYSCTL_BRNF "/proc/sys/net/bridge/bridge-nf-call-iptables"
#define SYSCTL_BRNF6 "/proc/sys/net/bridge/bridge-nf-call-ip6tables"

/* ---- tap.c ---- */
WUR int tap_features(unsigned *features);
/* TUNSETIFF (+ owner/group when cfg says so); returns the fd. Not
 * persistent: the device goes with the fd until tap_persist. */
WUR int tap_create(const char *name, unsigned features, unsigned queues,
		   const struct kl_tap_cfg *cfg,
		   char name_out[KL_NAME_MAX + 1], int *fd_out);
/* One more queue (fd) of the existing multi-queue tap name. */
WUR int tap_attach(const char *name, unsigned features, int *fd_out);
WUR int tap_persist(int fd);

/* ---- ops.c: what the operations share ---- */
/* A network as the kernel holds it: its stored definition and its tagged
 * links, from one link dump. */
struct net_view {
	struct store_net def;
	bool have_def;
	struct kl_link *links; /* the dump, sorted by name */
	size_t nlinks;
	const struct kl_link *br;     /* the tagged bridge, or NULL */
	const struct kl_link *named;  /* whatever holds cfg.bridge's name */
	size_t ntaps;                 /* tagged taps of the network */
};
/* Fill v for network net (def from the store when there; bridge name
 * from def). -ENOENT is not an error here: have_def tells. */
WUR int view_load(struct kl_net *h, const char *net, struct net_view *v);
/* The same with the networks already listed (store_list). */
WUR int view_load_with(struct kl_net *h, const char *net,
		       const struct store_net *nets, size_t nnets,
		       struct net_view *v);
void view_free(struct net_view *v);
const struct kl_link *view_find(const struct net_view *v, const char *name);
/* Lock, then nothing else: every operation starts here. */
WUR int op_begin(struct kl_net *h);
void op_end(struct kl_net *h);
/* One request, one ack. */
WUR int talk1(struct kl_nl *nl, struct nlmsghdr *nlh);
/* Delete links by ifindex in one atomic request: all move into a fresh
 * device group and one DELLINK takes the group (one unregistration for
 * all, and a kill -9 cannot fall between the messages). */
WUR int del_links(struct kl_net *h, const int *ifindex, size_t n,
		  const char *what);
/* KVMLAB_NET_CRASH=point: die (or stop) here, for the crash tests. */
void crash_point(const char *point);
bool fault_is(const char *what);
WUR int bad_name(struct kl_net *h, const char *what, const char *name);
WUR int need_cap(struct kl_net *h, const char *what, const char *name);
void settle(struct kl_net *h, int ifindex);
void gather_warnings(struct kl_net *h, const struct kl_net_cfg *cfg);

/* ---- the handle ---- */
struct kl_net {
	struct kl_nl rt, nf;
	char err[512];
	char extack[256];
	char **warn, **plan;
	size_t nwarn, nplan;
	int lockfd;
	unsigned wait_ms;
	uint64_t ino, cookie;
};
__attribute__((format(printf, 3, 4))) int kl_err(struct kl_net *h, int e,
						  const char *fmt, ...);
/* kl_err with the netlink socket's extack appended. */
__attribute__((format(printf, 4, 5))) int kl_nlerr(struct kl_net *h,
						    struct kl_nl *nl, int e,
						    const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void kl_warn(struct kl_net *h,
						   const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void kl_plan(struct kl_net *h,
						   const char *fmt, ...);
void kl_reset_msgs(struct kl_net *h);
const char *kl_ip4(uint32_t a, char buf[16]);
const char *kl_ip6(const uint8_t a[16], char buf[46]);
/* Why a is no DNS server for guests (multicast, link-local, IPv4-mapped,
 * ::/8), or NULL. */
const char *dns6_bad(const uint8_t a[16]);
WUR int kl_cap_net_admin(void);
#endif

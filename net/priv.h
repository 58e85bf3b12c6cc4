/* Internal to net/ and its unit tests: message builders (which write
 * into a caller's buffer, so tests can parse them back without a
 * socket), the netlink transport, state and the handle. */
#ifndef KVMLAB_NET_PRIV_H
#define KVMLAB_NET_PRIV_H
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <libmnl/libmnl.h>
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
struct nlmsghdr *rt_build_newbridge(void *buf, uint32_t seq, const char *name,
				    unsigned mtu, bool stp);
/* Set master (0: leave), mtu (0: leave) and IFF_UP on ifindex, or by name
 * when ifindex is 0. */
struct nlmsghdr *rt_build_setlink(void *buf, uint32_t seq, int ifindex,
				  const char *name, int master, unsigned mtu,
				  bool up);
struct nlmsghdr *rt_build_dellink(void *buf, uint32_t seq, int ifindex,
				  const char *name);
struct nlmsghdr *rt_build_getlink(void *buf, uint32_t seq, const char *name);
/* Move a link into a device group, and delete a whole group at once: one
 * batched unregistration instead of one RCU wait per device. */
struct nlmsghdr *rt_build_setgroup(void *buf, uint32_t seq, const char *name,
				   uint32_t group);
struct nlmsghdr *rt_build_delgroup(void *buf, uint32_t seq, uint32_t group);
struct nlmsghdr *rt_build_addr(void *buf, uint32_t seq, uint16_t type,
			       int ifindex, uint32_t addr, unsigned prefix);

/* Links as the kernel reports them. */
struct kl_link {
	int ifindex, master;
	unsigned flags, mtu;
	uint32_t group;
	char name[KL_NAME_MAX + 1];
	char kind[16];
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

/* ---- nft.c ---- */
enum nft_mode {
	NFT_CREATE,  /* fresh network: table made with NLM_F_EXCL */
	NFT_REFRESH, /* existing network: flush its chains, rules again */
};
#define NFT_FAULT 1u /* add a rule into a missing chain: batch rejected */
/* Build the whole batch (begin .. end) into buf; with end false the batch
 * lacks its END message, which makes the kernel validate and abort. The
 * number of messages that ask for an ACK goes to *nacked, the sequence
 * number of the first one to *first_seq. Returns its length or -errno. */
WUR long nft_build_net_batch(void *buf, size_t size, uint32_t seq,
			     const struct kl_net_cfg *cfg, enum nft_mode mode,
			     unsigned faults, bool end, uint32_t *first_seq,
			     unsigned *nacked);
WUR long nft_build_del_batch(void *buf, size_t size, uint32_t seq,
			     const char *net, uint32_t *first_seq);
void nft_table_name(const char *net, char *out, size_t len);
/* Does the kernel hold exactly the rules up would install? */
WUR int nft_rules_match(struct kl_nl *nl, const struct kl_net_cfg *cfg,
			bool *match);
WUR int nft_table_present(struct kl_nl *nl, const char *net, bool *present);
/* Call fn for each base chain on the forward hook with policy drop in a
 * table that is not kvmlab's. */
typedef void (*nft_drop_fn)(void *data, const char *family,
			    const char *table, const char *chain);
WUR int nft_forward_drops(struct kl_nl *nl, nft_drop_fn fn, void *data);
#define NFT_TABLE_PREFIX "kvmlab-"
#define NFT_COMMENT_PREFIX "kvmlab network "

/* ---- state.c: what the kernel cannot tell back ---- */
struct st_tap {
	char name[KL_NAME_MAX + 1];
	unsigned queues;
};
struct st_net {
	struct kl_net_cfg cfg;
	bool made_bridge, made_addr, made_nft;
	bool settle; /* scratch: its bridge lost ports in this run */
	size_t ntaps, cap;
	struct st_tap *taps;
};
struct kl_state {
	uint64_t ino, cookie;
	int fwd_prev; /* -1: kvmlab did not change ip_forward */
	size_t nnets;
	struct st_net *nets;
};
WUR int state_lock(struct kl_net *h, bool exclusive);
void state_unlock(struct kl_net *h);
WUR int state_load(struct kl_net *h, struct kl_state *st);
WUR int state_save(struct kl_net *h, const struct kl_state *st);
void state_free(struct kl_state *st);
/* Text form, for tests: parse replaces st. */
WUR int state_format(const struct kl_state *st, char **out, size_t *len);
WUR int state_parse(const char *text, struct kl_state *st);
struct st_net *state_find(struct kl_state *st, const char *name);
struct st_net *state_find_tap(struct kl_state *st, const char *tap,
			      size_t *idx);
WUR int state_add_tap(struct st_net *n, const char *name, unsigned queues);
/* state_add_tap for a name known not to be in n. */
WUR int state_append_tap(struct st_net *n, const char *name, unsigned queues);
/* Every tap name st records, sorted for names_has; free() it. */
WUR int state_tap_names(const struct kl_state *st,
			char (**out)[KL_NAME_MAX + 1], size_t *n);
bool names_has(const char (*v)[KL_NAME_MAX + 1], size_t n, const char *name);
/* Whether sorted v holds a name twice. */
bool sorted_dup(const char (*v)[KL_NAME_MAX + 1], size_t n);
/* strcmp for qsort/bsearch over char[KL_NAME_MAX + 1] arrays. */
int cmp_name(const void *a, const void *b);
/* Whether two of names are equal, in N log N. */
WUR int names_dup(const char *const *names, size_t n, bool *dup);

/* ---- sysctl.c ---- */
WUR int sysctl_read_int(const char *path, int *val);
WUR int sysctl_write_int(const char *path, int val);
#define SYSCTL_FWD "/proc/sys/net/ipv4/ip_forward"
#define SYSCTL_BRNF "/proc/sys/net/bridge/bridge-nf-call-iptables"

/* ---- tap.c ---- */
WUR int tap_features(unsigned *features);
/* TUNSETIFF (+ owner/group/persist when persist); returns the fd. */
WUR int tap_create(const char *name, unsigned features, unsigned queues,
		   const struct kl_tap_cfg *cfg, bool persist,
		   char name_out[KL_NAME_MAX + 1], int *fd_out);

/* ---- the handle ---- */
struct kl_net {
	struct kl_nl rt, nf;
	char err[512];
	char extack[256];
	char **warn, **plan;
	size_t nwarn, nplan;
	int lockfd;
	unsigned lockdepth; /* state_lock nested this many times */
	uint64_t ino, cookie;
	char statedir[200];
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
WUR int kl_cap_net_admin(void);
#endif

/* Internal to net/ and its unit tests: leases and forwards. lease.c is
 * pure (no I/O): it turns a network's lease table into the next one.
 * lease_nft.c and forward.c build the nft messages into a caller's buffer
 * and read the kernel's objects back; lease_ops.c wires them to the
 * public calls; dns.c picks the host's resolvers; proc.c reads owners. */
#ifndef KVMLAB_NET_LEASE_H
#define KVMLAB_NET_LEASE_H
#include "priv.h"

/* ---- lease.c ---- */
/* A lease table: owned array, kept sorted by MAC by lease_sort(). */
struct lease_tab {
	struct kl_lease *v;
	size_t n, cap;
};
void lease_tab_free(struct lease_tab *t);
WUR int lease_tab_push(struct lease_tab *t, const struct kl_lease *l);
WUR int lease_tab_copy(struct lease_tab *dst, const struct lease_tab *src);
struct kl_lease *lease_find_vm(const struct lease_tab *t, const char *vm);
void lease_sort_mac(struct lease_tab *t);
void lease_sort_addr(struct kl_lease *v, size_t n);

/* The stable MAC of vm on net (attempt 0; a later attempt gives another
 * one, for a collision): locally administered, unicast. */
void lease_mac(const char *net, const char *vm, unsigned attempt,
	       uint8_t mac[6]);
WUR int lease_check_mac(const uint8_t mac[6], const char **why);
/* An address guests may hold: in the subnet, not the bridge's, the
 * network or the broadcast address (a /31 has neither of those). */
WUR int lease_check_addr(const struct kl_net_cfg *cfg, uint32_t addr,
			 const char **why);
/* What an owner's liveness makes of a lease. */
enum kl_lease_state lease_state_of(const struct kl_lease *l, bool alive);

/* The table changes, all pure. Each fills l (the VM's lease afterwards,
 * except for del) and sets *why on failure; the error names the cause.
 * take: the VM's own lease (reserved or stale) gets owner pid/start;
 * else a new one with the derived MAC and address. Stale leases of other
 * VMs are reclaimed, dead owners of reserved ones cleared. */
WUR int lease_plan_take(const struct kl_net_cfg *cfg, struct lease_tab *t,
			const char *vm, pid_t pid, uint64_t start,
			struct kl_lease *l, const char **why);
WUR int lease_plan_add(const struct kl_net_cfg *cfg, struct lease_tab *t,
		       const char *vm, const uint8_t *mac, uint32_t addr,
		       struct kl_lease *l, const char **why);
WUR int lease_plan_release(struct lease_tab *t, const char *vm,
			   const char **why);
WUR int lease_plan_del(struct lease_tab *t, const char *vm, const char **why);
/* Reclaim only: stale leases go, dead owners of reserved ones are cleared.
 * Returns how many leases changed. */
size_t lease_reclaim(struct lease_tab *t);

/* The element comment: "vm=NAME owner=PID/START[ reserved]". */
WUR int lease_comment(const struct kl_lease *l, char *buf, size_t len);
WUR int lease_comment_parse(const char *s, struct kl_lease *l);

/* ---- proc.c ---- */
/* Start time (field 22) from the text of /proc/PID/stat. */
WUR int proc_stat_start(const char *stat, uint64_t *start);
/* The start time of pid now: -ESRCH when it is not running. */
WUR int proc_start(pid_t pid, uint64_t *start);
/* A lease's owner is alive: same pid, same start time. */
bool proc_owner_alive(pid_t pid, uint64_t start);

/* ---- dns.c ---- */
struct dns_set {
	uint32_t v4[KL_DNS_MAX]; /* host order */
	unsigned n4;
	uint8_t v6[KL_DNS_MAX][16];
	unsigned n6;
};
/* Up to KL_DNS_MAX resolvers of each family the way Docker picks them:
 * path (resolv.conf); when it names only loopback ones, fallback
 * (systemd-resolved's upstream list); loopback addresses dropped, and
 * IPv6 ones a guest cannot use (dns6_bad). Counts may be 0: nothing to
 * offer. */
WUR int dns_pick(const char *path, const char *fallback, struct dns_set *out);
/* /etc/resolv.conf and /run/systemd/resolve/resolv.conf, unless
 * KVMLAB_RESOLV_CONF / KVMLAB_RESOLVED_CONF say otherwise (tests). */
WUR int dns_host(struct dns_set *out);
/* The DNS servers cfg's guests get, into cfg: its own (up --dns), else
 * the host's (*from_host set; IPv6 ones only for a network with IPv6). */
void dns_for_guests(struct kl_net_cfg *cfg, bool *from_host);

/* ---- nft batches (lease_nft.c, forward.c) ---- */
#define LEASE_MAP "leases"

/* The map (NEWSET without EXCL), then deletes of every element of old
 * that new does not hold as is, then the new or changed elements. Both
 * tables sorted by MAC. */
/* Returns the number of element messages (0: the leases are the same). */
unsigned lease_nft_put(struct nb *b, const struct lease_tab *old,
		       const struct lease_tab *new);
/* The map's elements as the kernel holds them (state not set). An absent
 * table or map is an empty table. */
WUR int lease_nft_read(struct kl_nl *nl, const char *net, struct lease_tab *t);
/* Parse one NEWSETELEM message (a batch or a dump reply) into t. */
WUR int lease_nft_parse(const struct nlmsghdr *nlh, struct lease_tab *t);

/* ---- forward.c ---- */
/* A forward as the kernel holds it: its rules' handles per chain. */
enum { FWD_PRE, FWD_OUT, FWD_ACCEPT, FWD_NCHAINS };
struct fwd_entry {
	struct kl_forward f;          /* f.family: AF_INET or AF_INET6 */
	uint64_t handle[FWD_NCHAINS]; /* 0: rule missing */
};
struct fwd_tab {
	struct fwd_entry *v;
	size_t n, cap;
	bool chains;  /* the fwd-* chains of the ip table exist */
	bool chains6; /* those of the ip6 table */
};
void fwd_tab_free(struct fwd_tab *t);
/* AF_INET6 for an IPv6 forward, else AF_INET (family 0 is IPv4). */
int fwd_family(const struct kl_forward *f);
/* family AF_UNSPEC: the first of either family. */
struct fwd_entry *fwd_find(const struct fwd_tab *t, int family, int proto,
			   uint16_t port);
const char *fwd_proto_name(int proto);
/* "ADDR:PORT", or "[ADDR6]:PORT" for IPv6. */
const char *fwd_target(const struct kl_forward *f, char buf[64]);
/* The rule comment: "fwd tcp 8080 to 10.0.0.5:80[ vm=NAME]", or for
 * IPv6 "fwd tcp 8080 to [fd00::5]:80[ vm=NAME]". */
WUR int fwd_comment(const struct kl_forward *f, char *buf, size_t len);
WUR int fwd_comment_parse(const char *s, struct kl_forward *f);
/* The fwd-* chains of the family's table (AF_INET: ip, AF_INET6: ip6)
 * and their fixed masquerade rules, and the three rules of f (in f's). */
void fwd_put_chains(struct nb *b, const struct kl_net_cfg *cfg, int family);
void fwd_put_add(struct nb *b, const struct kl_net_cfg *cfg,
		 const struct kl_forward *f);
/* DELRULE of every rule of e. */
void fwd_put_del(struct nb *b, const struct fwd_entry *e);
/* The forwards in the network's fwd-* chains, both tables. */
WUR int fwd_read(struct kl_nl *nl, const char *net, struct fwd_tab *t);
/* Parse one NEWRULE (batch or dump) into t; other chains are ignored. */
WUR int fwd_parse(const struct nlmsghdr *nlh, struct fwd_tab *t);

/* ---- lease_ops.c: for show ---- */
/* Fill n's leases (with their state), forwards and DNS servers. */
WUR int lease_show(struct kl_net *h, struct kl_show_net *n);
#endif

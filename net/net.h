/* kvmlab net library: bridges, taps, addresses, forwarding and NAT for
 * lab networks, over rtnetlink (libmnl), /dev/net/tun and libnftnl.
 *
 * The only public header. Every call that can fail returns 0 or -errno;
 * kl_net_errmsg() then holds one human line naming the object and the
 * reason (with the kernel's extack text when it sent one). The library
 * never prints and never exits. A handle works in the network namespace
 * the process was in when kl_net_open() ran.
 *
 * State lives in the kernel only: bridges and taps carry IFLA_IFALIAS
 * tags ("kvmlab:NET", "kvmlab:NET:tap"), and every network has its nft
 * table "ip kvmlab-NET" whose comment holds the definition. No files.
 * Runs in one network namespace are serialised by an abstract unix socket
 * bound in it (KVMLAB_LOCK_TIMEOUT seconds of waiting, default 10).
 *
 * Test hooks: KVMLAB_NET_FAULT=nft makes `up` fail its nft batch (a rule
 * in a chain that does not exist, so the kernel rejects the whole batch),
 * the first thing up changes; KVMLAB_NET_FAULT=up makes `up` fail after
 * table, bridge, address and forwarding are in place; KVMLAB_NET_FAULT=tap
 * makes `tap add` fail after the last tap device has been created. All
 * exercise the rollback. KVMLAB_NET_CRASH=POINT makes the process SIGKILL
 * itself at POINT (POINT:stop: SIGSTOP instead); the points are listed in
 * net/ops.c. */
#ifndef KVMLAB_NET_H
#define KVMLAB_NET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KL_WUR __attribute__((warn_unused_result))
#define KL_NAME_MAX 15 /* IFNAMSIZ - 1: network, bridge and tap names */
#define KL_QUEUES_MAX 256 /* the kernel's MAX_TAP_QUEUES */
#define KL_DNS_MAX 3
#define KL_VM_NAME_MAX 63 /* VM names: [A-Za-z0-9_.-], 1..63 bytes */
#define KL_MTU_MIN 68
#define KL_MTU_MAX 65521 /* a tap's limit: 65535 minus its Ethernet header */
#define KL_BRIDGE_PORTS_MAX 1023 /* the bridge's port numbers are 10 bits */
#define KL_LOCK_WAIT_MS 10000 /* default wait for another run's lock */

struct kl_net;

/* Open a handle: rtnetlink and nfnetlink sockets with extended acks. */
KL_WUR int kl_net_open(struct kl_net **out);
void kl_net_close(struct kl_net *h);

/* The last failure as one line ("bridge kl-lab: exists and is not a
 * bridge"), and the kernel's own extack text ("" if none). */
const char *kl_net_errmsg(const struct kl_net *h);
const char *kl_net_extack(const struct kl_net *h);

/* How long a call waits for another run in this network namespace
 * before failing with -ETIMEDOUT (the message names the holder's pid).
 * Default: KVMLAB_LOCK_TIMEOUT (seconds, fractions allowed) or 10 s. */
void kl_net_set_wait(struct kl_net *h, unsigned ms);

/* Warnings (non-fatal: something outside kvmlab may drop traffic) and,
 * for dry runs, the plan: lines gathered by the last call. */
size_t kl_net_nwarnings(const struct kl_net *h);
const char *kl_net_warning(const struct kl_net *h, size_t i);
size_t kl_net_nplan(const struct kl_net *h);
const char *kl_net_plan(const struct kl_net *h, size_t i);

/* Validation, usable without a handle or privilege. On failure they
 * return -EINVAL and point *why at a static reason. Names: 1..15 bytes
 * of [A-Za-z0-9_.-], not "." or "..". */
KL_WUR int kl_name_check(const char *name, const char **why);
/* "a.b.c.d/len": host address and prefix, host order; rejects /0, /32,
 * the network and the broadcast address (except on a /31, RFC 3021),
 * and host addresses in 0.0.0.0/8, 127.0.0.0/8, multicast and class E. */
KL_WUR int kl_cidr_parse(const char *s, uint32_t *addr, unsigned *prefix,
			 const char **why);
/* "addr/len", IPv6: the bridge's address and the network's prefix, 1..127
 * (a /127 is RFC 6164's point-to-point). Refused: addresses in ::/8
 * (unspecified, loopback, IPv4-mapped), link-local fe80::/10, multicast
 * ff00::/8, and the subnet-router anycast address (host bits all zero)
 * of prefixes up to /126. */
KL_WUR int kl_cidr6_parse(const char *s, uint8_t addr[16], unsigned *prefix,
			  const char **why);
/* a's first len bits, the rest zero: the prefix of an IPv6 address. */
void kl_prefix6(const uint8_t a[16], unsigned len, uint8_t out[16]);
/* "a.b.c.d[,a.b.c.d...]": 1..KL_DNS_MAX unicast addresses, host order. */
KL_WUR int kl_dns_parse(const char *s, uint32_t dns[KL_DNS_MAX], unsigned *n,
			const char **why);
/* The same with IPv6 servers among them ("1.1.1.1,2606:4700:4700::1111"):
 * IPv4 into dns, IPv6 into dns6, at most KL_DNS_MAX of each; an IPv6 one
 * must be a global or unique-local unicast address a guest can reach (not
 * ::, ::1, link-local, multicast or IPv4-mapped). */
KL_WUR int kl_dns_parse46(const char *s, uint32_t dns[KL_DNS_MAX], unsigned *n,
			  uint8_t dns6[KL_DNS_MAX][16], unsigned *n6,
			  const char **why);
/* The bridge name used when --bridge is not given. */
void kl_bridge_name(const char *net, char out[KL_NAME_MAX + 1]);

struct kl_net_cfg {
	char name[KL_NAME_MAX + 1];
	char bridge[KL_NAME_MAX + 1]; /* "" = kl_bridge_name(name) */
	uint32_t addr;                /* host order */
	unsigned prefix;
	bool nat;
	char uplink[KL_NAME_MAX + 1]; /* "" = any interface but the bridge */
	unsigned mtu;                 /* 0 = kernel default */
	bool stp;
	uint32_t dns[KL_DNS_MAX];     /* host order; stored, handed to guests */
	unsigned ndns;
	/* IPv6 (optional): the bridge's address and the prefix guests
	 * autoconfigure from (router advertisements, SLAAC on a /64), plus
	 * fe80::1 on the bridge as their router; forwarding on, and with
	 * nat masquerade in table "ip6 kvmlab-NAME". */
	bool has6;
	uint8_t addr6[16];
	unsigned prefix6;
	/* IPv6 DNS servers from up --dns (a network with has6 only): what
	 * the router advertisements carry (RDNSS, RFC 8106). With neither
	 * dns nor dns6 given, guests get the host's resolvers of both. */
	uint8_t dns6[KL_DNS_MAX][16];
	unsigned ndns6;
};

#define KL_DRY_RUN 1u
#define KL_IF_EXISTS 2u /* down, tap del: a missing object is no error */

/* Ensure the network: its table, bridge up with its address, forwarding
 * on, NAT rules with cfg->nat, every tap of the network enslaved and up.
 * Idempotent, and it repairs what it owns; a different definition of an
 * existing network fails with -EEXIST. On failure everything this call
 * made is removed again. KL_DRY_RUN validates (nft batch checked by the
 * kernel, not committed), fills the plan and changes nothing. */
KL_WUR int kl_net_up(struct kl_net *h, const struct kl_net_cfg *cfg,
		     unsigned flags);
/* Remove exactly what up and tap add made (found by their tags): taps,
 * bridge (and so its address), nft table; restore forwarding when the
 * last network goes. Also finishes what a crashed run left. flags:
 * KL_IF_EXISTS. */
KL_WUR int kl_net_down(struct kl_net *h, const char *name, unsigned flags);

struct kl_tap_cfg {
	bool set_owner, set_group;
	uid_t owner;
	gid_t group;
	unsigned queues; /* 1..KL_QUEUES_MAX; >1 makes a multi-queue tap */
};

/* Persistent taps (IFF_VNET_HDR when the kernel has it), owned as asked,
 * with the bridge's MTU, tagged, enslaved and up. All or nothing. A name
 * that already is this network's tap with the same owner, group and
 * queues is made whole again instead (what a crashed run left). */
KL_WUR int kl_tap_add(struct kl_net *h, const char *net,
		      const char *const *taps, size_t n,
		      const struct kl_tap_cfg *cfg);
/* Delete taps that kvmlab made (by tag). All names are checked first.
 * flags: KL_IF_EXISTS. */
KL_WUR int kl_tap_del(struct kl_net *h, const char *const *taps, size_t n,
		      unsigned flags);

/* For a VMM: a non-persistent tap on network net, IFF_VNET_HDR set (the
 * VMM must use a 12-byte virtio_net_hdr, TUNSETVNETHDRSZ is set to 12),
 * IFF_NO_PI, with the bridge's MTU, enslaved and up. name may be NULL or
 * "" to let the kernel choose; the chosen name goes to name_out. The tap
 * disappears when the returned fd (O_CLOEXEC, blocking) is closed. */
KL_WUR int kl_tap_open(struct kl_net *h, const char *net, const char *name,
		       char name_out[KL_NAME_MAX + 1], int *fd_out);
/* The same with queues (1..KL_QUEUES_MAX) fds in fds[]: more than one
 * makes a multi-queue tap (IFF_MULTI_QUEUE), one fd per queue; the tap
 * disappears when the last of them is closed. */
KL_WUR int kl_tap_open_mq(struct kl_net *h, const char *net, const char *name,
			  unsigned queues, char name_out[KL_NAME_MAX + 1], int *fds);
/* For a VMM that answers its guest's DHCP itself, from a packet socket on
 * the tap: IPv4 UDP frames to port 67 that enter the host through tap
 * (from the guest) never reach its bridge (a tc clsact ingress filter;
 * packet sockets see the frames before it). The kernel deletes the
 * filter with the tap. All or nothing. */
KL_WUR int kl_tap_dhcp_local(struct kl_net *h, const char *tap);
/* Writes into out[KL_DHCP_BPF_LEN] the classic BPF program (over an
 * Ethernet frame) that tells such a request: it returns match for IPv4
 * UDP to port 67 (first or only fragment), miss for anything else. One
 * definition for the filter above and the VMM's packet socket, so the
 * two never disagree. */
#define KL_DHCP_BPF_LEN 11
struct sock_filter;
void kl_dhcp_bpf(struct sock_filter *out, uint32_t match, uint32_t miss);

/* ---- Leases and forwards ----
 * A network's leases live in the nft map "leases" (ether_addr :
 * ipv4_addr) of its table "ip kvmlab-NET", one element per VM, whose
 * comment holds the VM name, the owner and whether it is reserved. A
 * VM's MAC and address are derived from the network and VM names, so
 * they are the same every time while they are free. */
enum kl_lease_state { KL_LEASE_ACTIVE, KL_LEASE_RESERVED, KL_LEASE_STALE };
struct kl_lease {
	char vm[KL_VM_NAME_MAX + 1];
	uint8_t mac[6];
	uint32_t addr;            /* host order */
	pid_t pid;                /* owner; 0 none */
	uint64_t start;           /* owner's start time, /proc/PID/stat field 22 */
	bool reserved;
	enum kl_lease_state state;
};
/* Everything a VMM needs to answer its guest's DHCP (plain data). */
struct kl_lease_info {
	char vm[KL_VM_NAME_MAX + 1];
	uint8_t mac[6];
	uint32_t addr, router;    /* host order; router = the bridge address */
	unsigned prefix, mtu;     /* mtu = the bridge's */
	uint32_t dns[KL_DNS_MAX]; /* up --dns, else the host's upstream resolvers */
	unsigned ndns;            /* 0: none to offer */
	/* IPv6 of the network (has6): the bridge's address and prefix, for
	 * the router advertisements a VMM sends its guest; their source is
	 * fe80::1 (KL_ROUTER6_LL) from the bridge's MAC. */
	bool has6;
	uint8_t addr6[16];
	unsigned prefix6;
	uint8_t router_mac[6];
	/* IPv6 DNS servers for the advertisements' RDNSS option (has6 only):
	 * up --dns's, else the host's IPv6 resolvers; 0: none. */
	uint8_t dns6[KL_DNS_MAX][16];
	unsigned ndns6;
};
/* The router's link-local address on every IPv6 network's bridge. */
#define KL_ROUTER6_LL {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
/* VM names: 1..KL_VM_NAME_MAX bytes of [A-Za-z0-9_.-], not "." or "..". */
KL_WUR int kl_vm_name_check(const char *vm, const char **why);
/* Take the lease of VM vm on net for process owner (pid; its start time is
 * read from /proc): an existing reservation for vm is used as is; else
 * vm's own stable MAC/address if free; stale leases are reclaimed first.
 * -EEXIST if vm is held by a live owner (taking it again for the same
 * owner changes nothing), -ENOSPC when exhausted, -ESRCH if owner is not
 * running, -ENODEV if the network's tagged bridge is missing. Every lease
 * and forward call fails with -ENOENT for a network without its table. */
KL_WUR int kl_lease_take(struct kl_net *h, const char *net, const char *vm,
			 pid_t owner, struct kl_lease_info *out);
/* Give it back: a non-reserved lease goes, a reserved one loses its
 * owner; forwards tied to vm go too. -ENOENT if vm holds no lease. */
KL_WUR int kl_lease_release(struct kl_net *h, const char *net, const char *vm);
/* Reserve (any VMM): mac NULL / addr 0 = derive. -EINVAL for a MAC that
 * is multicast or zero, an address outside the subnet or the bridge's,
 * network or broadcast address; -EEXIST when vm, the MAC or the address
 * is already leased. Stale leases are reclaimed first. */
KL_WUR int kl_lease_add(struct kl_net *h, const char *net, const char *vm,
			const uint8_t *mac, uint32_t addr);
/* Remove vm's lease, whatever its state, with the forwards tied to vm. */
KL_WUR int kl_lease_del(struct kl_net *h, const char *net, const char *vm);

/* A port forward: DNAT of host port `port` (on any of the host's own
 * addresses but loopback) to addr:to_port, from outside (prerouting), from
 * the host itself (output) and from the network's own guests (hairpin).
 * Rules in the chains fwd-pre, fwd-out and fwd-accept of the network's
 * table (ip, or ip6 for an IPv6 forward), identified by their comment.
 * A host port is forwarded per family: tcp 8080 over IPv4 and tcp 8080
 * over IPv6 are two forwards, to the same guest or to two. */
struct kl_forward {
	int proto;                /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;            /* host port */
	uint32_t addr;            /* guest address, host order; 0 with vm set:
				     vm's leased address */
	uint16_t to_port;
	char vm[KL_VM_NAME_MAX + 1]; /* "" standalone; else removed with vm's lease */
	/* AF_INET6: an IPv6 forward to addr6 (a network with --cidr6; the
	 * guest picks its own IPv6 address, so addr6 is always given, and vm
	 * only ties the forward to vm's lease). 0 or AF_INET: IPv4, addr. */
	int family;
	uint8_t addr6[16];
};
/* Idempotent: the same forward again changes nothing; the same family,
 * proto and port to another target is -EEXIST. With vm set, vm must hold
 * a lease. */
KL_WUR int kl_forward_add(struct kl_net *h, const char *net,
			  const struct kl_forward *f);
/* Remove the forward of proto and port, in both families (each that
 * exists). -ENOENT if there is none. */
KL_WUR int kl_forward_del(struct kl_net *h, const char *net, int proto,
			  uint16_t port);
/* The same in one family: AF_INET or AF_INET6 (AF_UNSPEC: both). */
KL_WUR int kl_forward_del_family(struct kl_net *h, const char *net,
				 int family, int proto, uint16_t port);

/* What show reads back from the kernel, for one network. */
struct kl_show_tap {
	char name[KL_NAME_MAX + 1];
	bool exists, up, enslaved; /* enslaved: master is the bridge */
	bool persist, multi_queue;
	unsigned mtu, queues;      /* queues: as tap add was asked */
	int ifindex;
	int64_t owner, group;      /* -1: none */
	uint8_t mac[6];
};
struct kl_show_net {
	struct kl_net_cfg cfg;
	bool def_known; /* cfg from the table; false: only the tags seen
			 * (the table is missing, or unreadable without
			 * CAP_NET_ADMIN): name, bridge, addr are a guess */
	bool bridge_exists, bridge_up, addr_present;
	bool addr6_present; /* cfg.addr6 and fe80::1 on the bridge (has6) */
	int nft_present; /* 1, 0, or -1 unknown (reading needs CAP_NET_ADMIN) */
	unsigned bridge_mtu;
	size_t ntaps;
	struct kl_show_tap *taps;
	/* Leases and forwards: none (0) without a table, unknown (0, and
	 * nft_present -1) without CAP_NET_ADMIN. */
	size_t nleases;               /* sorted by address */
	struct kl_lease *leases;
	size_t nfwds;                 /* sorted by proto, port */
	struct kl_forward *fwds;
	/* cfg.dns came from the host's resolvers, not up --dns (only with
	 * def_known: an unknown definition gets no servers) */
	bool dns_host;
};
struct kl_show {
	uint64_t netns;       /* inode of the network namespace */
	int forwarding;       /* ip_forward now: 0, 1, or -1 unreadable */
	int forwarding_prev;  /* value before the first kvmlab network; -1
			       * unknown or no network */
	int forwarding6;      /* net.ipv6.conf.all.forwarding: 0, 1, -1 */
	int forwarding6_prev; /* before the first IPv6 network; -1 none */
	size_t nnets;
	struct kl_show_net *nets;
};
/* name NULL: all networks. An unknown name fails with -ENOENT. */
KL_WUR int kl_net_show(struct kl_net *h, const char *name,
		       struct kl_show **out);
void kl_show_free(struct kl_show *s);
#endif

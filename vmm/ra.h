/* IPv6 Router Advertisements (RFC 4861) for the VM's own guest, so that
 * it autoconfigures by SLAAC from the network's prefix. Pure: no I/O, no
 * state, no clock; the caller owns the packet socket and the timer. The
 * router is the bridge, whose link-local address is fe80::1: every RA
 * comes from there, so the guest's default route points at the bridge.
 *
 * What ra_handle answers is a Router Solicitation as RFC 4861 6.1.1
 * validates it (see below); everything else is "not ours" and goes on
 * untouched. It never consumes a frame without a reply. */
#ifndef KVMLAB_VMM_RA_H
#define KVMLAB_VMM_RA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define RA_FRAME_MAX 256          /* the largest RA we build (174 bytes, with 3 DNS servers) */
#define RA_INTERVAL_S 600         /* unsolicited RA period (RFC 4861 MaxRtrAdvInterval default) */
#define RA_ROUTER_LIFETIME 1800   /* 3 x the interval */
#define RA_DNS_MAX 3              /* RDNSS addresses (KL_DNS_MAX) */
#define RA_RDNSS_LIFETIME 1800    /* RFC 8106 5.1: at least 3 x MaxRtrAdvInterval */
#define RA_VALID_LIFETIME 86400   /* prefix information option */
#define RA_PREFERRED_LIFETIME 14400
#define RA_BPF_LEN 11

struct ra_cfg {
	uint8_t router_mac[6];   /* Ethernet source and the source link-layer address option */
	uint8_t prefix[16];      /* the network's IPv6 prefix (host bits may be set: masked when built) */
	unsigned prefix_len;     /* 1..128; the autonomous (A) flag only when 64, on-link (L) always */
	unsigned mtu;            /* MTU option when 1280..65535, else none */
	uint8_t dns6[RA_DNS_MAX][16]; /* Recursive DNS Server option (RFC 8106) */
	unsigned ndns6;          /* 0: no RDNSS option; at most RA_DNS_MAX */
};

/* 0, or -EINVAL: multicast/zero router MAC, prefix_len outside 1..128,
 * more than RA_DNS_MAX DNS servers or one that is multicast, unspecified
 * or loopback, or
 * a prefix that overlaps link-local fe80::/10 or multicast ff00::/8
 * (either way round: fe80::/64 and 8000::/1 are both refused), is all
 * zero once masked (::/n: the unspecified address, and ::1 for n < 128),
 * or is the loopback ::1/128. */
int ra_cfg_check(const struct ra_cfg *c) WUR;

/* One RA frame into out[0..cap): Ethernet (src router_mac, dst dst_mac)
 * + IPv6 (src fe80::1, dst dst_ip, hop limit 255, next header 58) +
 * ICMPv6 type 134 code 0 with a correct checksum: cur hop limit 64, flags
 * 0 (no DHCPv6), router lifetime RA_ROUTER_LIFETIME, reachable time and
 * retrans timer 0 (unspecified); options in this order: source
 * link-layer address, MTU (when set), prefix information (L, A as above,
 * RA_VALID_LIFETIME / RA_PREFERRED_LIFETIME, prefix masked to
 * prefix_len), recursive DNS servers (when ndns6: lifetime
 * RA_RDNSS_LIFETIME). Returns the length (<= RA_FRAME_MAX), or 0 if cap
 * is too small. c should pass ra_cfg_check; if not, the frame is still
 * built within bounds (prefix_len above 128 counts as 128, ndns6 above
 * RA_DNS_MAX as RA_DNS_MAX). */
size_t ra_build(const struct ra_cfg *c, const uint8_t dst_mac[6], const uint8_t dst_ip[16],
		uint8_t *out, size_t cap) WUR;

/* The unsolicited one: to all-nodes (33:33:00:00:00:01, ff02::1). */
size_t ra_build_unsolicited(const struct ra_cfg *c, uint8_t *out, size_t cap) WUR;

/* A dhcp_tap_fn (opaque: const struct ra_cfg *). *reply_len on entry is
 * the room in reply (RA_FRAME_MAX always suffices). A valid Router
 * Solicitation, i.e. untagged Ethernet type 0x86dd from a unicast MAC,
 * IPv6 version 6, payload length >= 8 and within the frame (bytes after
 * it, such as Ethernet padding, are ignored), next header 58 directly (no
 * extension headers), hop limit 255, source not multicast, ICMPv6 type
 * 133 code 0, checksum correct, every option's length nonzero and inside
 * the packet, no source link-layer option when the source is ::, gets an
 * RA: unicast to the solicitor's Ethernet source and IPv6 source, or to
 * all-nodes when the source is ::. Returns 1 with the reply in
 * reply[0..*reply_len). Anything else, and a reply that does not fit,
 * returns 0 with *reply_len 0 (not ours: the frame goes on untouched). */
int ra_handle(void *opaque, const uint8_t *frame, size_t len, uint8_t *reply,
	      size_t *reply_len);

/* The address a guest claims: 1 with it in target[] when frame is the
 * Neighbor Solicitation of its duplicate address detection (RFC 4862
 * 5.4.2) sent from Ethernet source mac, as RFC 4861 7.1.1 validates an
 * NS: untagged Ethernet type 0x86dd, IPv6 version 6, payload length >= 24
 * and within the frame, next header 58 directly, hop limit 255, source
 * :: (DAD), destination the target's solicited-node group (ff02::1:ff
 * and its last 24 bits), ICMPv6 type 135 code 0, checksum correct, a
 * target that is not multicast, every option's length nonzero and inside
 * the packet, no source link-layer option. Else 0, target untouched. */
int ra_dad_target(const uint8_t *frame, size_t len, const uint8_t mac[6], uint8_t target[16]);

/* 1 when a is inside c's prefix (prefix_len bits; above 128 counts as
 * 128), else 0. */
int ra_prefix_has(const struct ra_cfg *c, const uint8_t a[16]);

/* Which claimed address to send a guest's IPv6 port forwards to: claims
 * lists n of them, newest first (devices_nic_addr6). cur (when have)
 * stays while the list still holds it; else the oldest claim, which is
 * the stable one (SLAAC's from the MAC or stable-privacy comes before
 * any temporary address, RFC 8981). 1 with out set when that is a new
 * target, else 0 (n == 0: nothing claimed yet). */
int ra_claim_pick(const uint8_t cur[16], bool have, const uint8_t (*claims)[16], unsigned n,
		  uint8_t out[16]);

/* Writes into out[RA_BPF_LEN] the classic BPF program (over an Ethernet
 * frame) for the packet socket on the tap: it returns match for Ethernet
 * type 0x86dd, IPv6 next header 58 and ICMPv6 type 133 or 135 (offset 54:
 * solicitations, router and neighbor), miss for anything else, runts
 * included. out is a pointer, not an array
 * parameter: an array of the incomplete struct sock_filter (from
 * <linux/filter.h>) would not compile where that header is not included. */
struct sock_filter;
void ra_bpf(struct sock_filter *out, uint32_t match, uint32_t miss);
#endif

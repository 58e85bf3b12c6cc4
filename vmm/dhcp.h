/* A DHCP server for exactly one client: the VM's own guest (RFC 2131,
 * options from RFC 2132). Pure: no I/O, no state, no clock. virtio-net
 * hands it every frame the guest transmits (through the tx filter that
 * devices.c sets); it answers from one fixed lease, plain data handed
 * down by main.c.
 *
 * What it claims ("consumed", never sent to the tap): IPv4/UDP to port 67
 * addressed to the limited broadcast, the subnet broadcast or the router
 * (= our server identifier), untagged. Of those it answers only a
 * well-formed BOOTREQUEST whose Ethernet source and chaddr are the
 * lease's MAC; everything else it claims is dropped without a reply: the
 * guest's DHCP stays inside its VMM (no other DHCP server on the bridge
 * hears it or answers it), and no other MAC gets our lease. Everything
 * else passes untouched,
 * including 802.1Q/802.1ad-tagged frames (another L2 segment, not the
 * network the lease belongs to) and non-first IPv4 fragments (which
 * cannot be told apart from other UDP). */
#ifndef KVMLAB_VMM_DHCP_H
#define KVMLAB_VMM_DHCP_H
#include <stddef.h>
#include <stdint.h>

#define DHCP_DNS_MAX 3
#define DHCP_HOSTNAME_MAX 63
#define DHCP_LEASE_TIME 3600 /* seconds, when the lease says 0 */
/* Largest reply we build (Ethernet+IPv4+UDP+BOOTP+our options, padded to
 * the 300-byte BOOTP minimum): a reply buffer this big always fits. */
#define DHCP_REPLY_MAX 600

struct dhcp_lease {
	uint8_t mac[6];              /* the only client we answer */
	uint32_t addr, router;       /* host order; router = server identifier */
	unsigned prefix;             /* 1..30 */
	unsigned mtu;                /* option 26 when 68..65535 */
	uint32_t dns[DHCP_DNS_MAX];  /* host order */
	unsigned ndns;               /* 0: no option 6 */
	char hostname[DHCP_HOSTNAME_MAX + 1]; /* "": no option 12 */
	uint32_t lease_time;         /* 0: DHCP_LEASE_TIME */
};

enum dhcp_verdict {
	DHCP_PASS = 0,   /* not ours: send it on, untouched */
	DHCP_REPLY = 1,  /* consumed; the reply frame is in reply[0..*reply_len) */
	DHCP_DROP = 2,   /* consumed; no reply (malformed, foreign, RELEASE, ...) */
};

/* frame: one Ethernet frame as the guest sent it (after the virtio-net
 * header), len bytes. reply: room for *reply_len bytes (DHCP_REPLY_MAX is
 * always enough; less makes an answer DHCP_DROP); on DHCP_REPLY,
 * *reply_len is the reply's length, else 0. The lease must be sane
 * (dhcp_lease_check). */
enum dhcp_verdict dhcp_handle(const struct dhcp_lease *l, const uint8_t *frame,
			      size_t len, uint8_t *reply, size_t *reply_len);

/* 0, or -EINVAL if the lease cannot be served (prefix, address outside
 * the router's subnet, multicast MAC, too many DNS servers). */
int dhcp_lease_check(const struct dhcp_lease *l);

/* The tx filter virtio-net calls (opaque: a struct dhcp_lease): 1 consumed
 * (reply in reply[0..*reply_len), *reply_len 0 for none), 0 pass. */
int dhcp_tx_filter(void *opaque, const uint8_t *frame, size_t len,
		   uint8_t *reply, size_t *reply_len);
#endif

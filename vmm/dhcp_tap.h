/* A packet socket that answers what the guest sends on its tap. It
 * serves the guest's IPv6 router solicitations (ra.c) whatever moves
 * the frames, and the guest's DHCP when vhost-net moves them: vhost sends the
 * guest's DISCOVER/REQUEST straight to the tap, past virtio-net's tx
 * filter, so a packet socket on the tap sees them (only UDP to port 67,
 * by a socket filter) and sends the filter's reply back out of the tap,
 * which hands it to the guest. Without vhost the tx filter answers first
 * and this socket sees nothing. */
#ifndef KVMLAB_VMM_DHCP_TAP_H
#define KVMLAB_VMM_DHCP_TAP_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* Same contract as virtio-net's tx filter: 1 consumed (reply in
 * reply[0..*reply_len) if *reply_len > 0), 0 not ours. */
typedef int dhcp_tap_fn(void *opaque, const uint8_t *frame, size_t len, uint8_t *reply,
			size_t *reply_len);

#define DHCP_TAP_FRAME_MAX 2048 /* a DHCP request fits; longer ones are cut, then refused */

struct dhcp_tap {
	int fd;       /* AF_PACKET on the tap; -1 closed */
	int ifindex;
	dhcp_tap_fn *fn;
	void *opaque;
	uint8_t frame[DHCP_TAP_FRAME_MAX], reply[DHCP_TAP_FRAME_MAX];
};

struct sock_fprog;
/* Open the packet socket on the tap behind tap_fd (needs CAP_NET_RAW).
 * match: the socket filter that picks the DHCP requests out of every
 * frame the guest sends (returning the bytes to keep, at most
 * DHCP_TAP_FRAME_MAX); the caller's, so that it is the same definition as
 * the tap's ingress filter that keeps them off the bridge. */
int dhcp_tap_open(struct dhcp_tap *t, int tap_fd, const struct sock_fprog *match,
		  dhcp_tap_fn *fn, void *opaque, struct err *e) WUR;
/* The same on interface ifname (kvmlab-vm dhcp: a network's bridge,
 * where the requests of other VMMs' guests arrive). */
int dhcp_sock_open(struct dhcp_tap *t, const char *ifname, const struct sock_fprog *match,
		   dhcp_tap_fn *fn, void *opaque, struct err *e) WUR;
/* Event-loop callback (opaque = t): answer every request waiting. */
void dhcp_tap_ready(void *opaque, uint32_t events);
/* Send frame (its first 6 bytes: the destination MAC) out of the
 * interface: to the guest on a tap, to every port on a bridge. Best
 * effort, as a wire is. */
void dhcp_tap_send(struct dhcp_tap *t, const uint8_t *frame, size_t len);
void dhcp_tap_close(struct dhcp_tap *t);
#endif

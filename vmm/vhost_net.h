/* vhost-net: the host kernel moves one virtio-net queue pair's frames
 * between the guest's rings and a tap, with no exit to the VMM on either
 * side. The VMM keeps doing everything before that (feature negotiation,
 * ring validation through vq_enable) with its own virtqueue code; vhost
 * only takes the rings over once the driver is running, and gives them
 * back (with the ring position) on reset. One vhost fd per queue pair:
 * vring 0 is the pair's rx queue, vring 1 its tx queue. */
#ifndef KVMLAB_VMM_VHOST_NET_H
#define KVMLAB_VMM_VHOST_NET_H
#include <stdbool.h>
#include <stdint.h>
#include "guestmem.h"
#include "util.h"
#include "vhost.h"

struct vhost_net {
	int fd;            /* /dev/vhost-net; -1 closed */
	uint64_t features; /* what the kernel backend supports */
	bool running[2];   /* vring has a backend (tap) attached */
};

/* Open /dev/vhost-net, become its owner and give it the guest's memory.
 * -ENOENT when there is no vhost-net here (the caller falls back). */
int vhost_net_open(struct vhost_net *vh, const struct gmem *gm, struct err *e) WUR;
void vhost_net_close(struct vhost_net *vh);
/* The virtio feature bits the backend itself must implement (ring
 * layout and header handling); the rest (MAC, offloads, MQ, ...) stay
 * with the VMM and the tap. */
uint64_t vhost_net_ring_features(void);
/* Can the backend serve a driver that acked these features? */
bool vhost_net_can(const struct vhost_net *vh, uint64_t acked);
/* Tell the backend what the driver acked (only the ring bits go down). */
int vhost_net_set_features(struct vhost_net *vh, uint64_t acked) WUR;
/* The eventfd ring idx signals used buffers on. Returns once the backend
 * writes fd only (it swaps under the ring's mutex, which its worker holds
 * while it signals). Any time after open, also before vhost_net_start. */
int vhost_net_set_call(struct vhost_net *vh, unsigned idx, int fd) WUR;
/* Hand ring idx (0 rx, 1 tx) to the backend, serving tap_fd. Its call fd
 * is set before (vhost_net_set_call): a ring without one signals nobody. */
int vhost_net_start(struct vhost_net *vh, unsigned idx, const struct vhost_ring *r,
		    int tap_fd) WUR;
/* Take ring idx back: detach the tap and learn where the backend stopped
 * (*base: next avail index; may be NULL). Idempotent. */
int vhost_net_stop(struct vhost_net *vh, unsigned idx, uint16_t *base) WUR;
#endif

/* What every vhost backend (vhost-net, vhost-vsock) is set up with: an
 * owned fd that knows the guest's memory, and rings handed over by
 * address. The device-specific parts (a tap for net, a CID for vsock)
 * stay with each backend's own file. */
#ifndef KVMLAB_VMM_VHOST_H
#define KVMLAB_VMM_VHOST_H
#include <stdint.h>
#include "guestmem.h"
#include "util.h"

/* One ring, already validated and mapped by vq_enable: host addresses. */
struct vhost_ring {
	uint16_t size;     /* entries */
	uint16_t base;     /* next avail index the backend starts from */
	void *desc, *avail, *used;
	int kick_fd;       /* eventfd the guest's notify writes (ioeventfd) */
};

/* The gmem regions as a vhost memory table (pure, for tests): returns the
 * number of regions written (<= max) or -E2BIG. */
struct vhost_memory;
int vhost_mem_table(const struct gmem *gm, struct vhost_memory *m, unsigned max) WUR;

/* Open the device at path (what: the name for messages), become its
 * owner, read its features and give it the guest's memory. The fd, or
 * -errno with e set (-ENOENT: no such backend here). */
int vhost_open(const char *path, const char *what, const struct gmem *gm,
	       uint64_t *features, struct err *e) WUR;
/* Size, start index, addresses and kick eventfd of ring idx. */
int vhost_ring_set(int fd, unsigned idx, const struct vhost_ring *r) WUR;
/* The eventfd ring idx signals used buffers on. */
int vhost_ring_call(int fd, unsigned idx, int call_fd) WUR;
/* Stop ring idx and learn where it stopped (*base: next avail index). */
int vhost_ring_base(int fd, unsigned idx, uint16_t *base) WUR;
#endif

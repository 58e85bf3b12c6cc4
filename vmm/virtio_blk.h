/* virtio-blk (virtio 1.x 5.2) on a raw image fd: one request queue,
 * requests IN/OUT/FLUSH/GET_ID/DISCARD/WRITE_ZEROES (blk_req.c), served
 * by one of two backends chosen at vblk_init:
 *  - thread: preadv/pwritev/fdatasync on the thread that runs notify,
 *    one request at a time: the disk's own event-loop thread once
 *    vpci_start() was called (devices.c does), inline otherwise;
 *  - uring: reads, writes and flushes go to io_uring (liburing) and
 *    complete when the kernel says so, possibly out of order; the
 *    completions arrive on the same event loop after vblk_start(), or
 *    when the caller asks (vblk_complete: unit tests, fuzzers). */
#ifndef KVMLAB_VMM_VIRTIO_BLK_H
#define KVMLAB_VMM_VIRTIO_BLK_H
#include <stdbool.h>
#include <stdint.h>
#include "blk_req.h"
#include "virtio_pci.h"

#define VBLK_QUEUE_SIZE 128
#define VBLK_SEG_MAX (VBLK_QUEUE_SIZE - 2) /* data segments besides header and status */
#define VBLK_MAX_DISCARD_SECTORS BLK_MAX_DISCARD_SECTORS
#define VBLK_MAX_DISCARD_SEG BLK_MAX_DISCARD_SEG
#define VBLK_BOUNCE BLK_BOUNCE

/* vblk_init flags */
#define VBLK_RO     1u /* read-only image: RO offered, no DISCARD/WRITE_ZEROES, writes IOERR */
#define VBLK_DIRECT 2u /* fd was opened O_DIRECT (cache=none): align or bounce */
#define VBLK_URING  4u /* the io_uring backend, else the thread one */

struct vblk {
	struct vpci vpci; /* first: the PCI layer hands us back this pointer */
	struct blk_img img; /* owned by the queue lock */
	const struct blk_io_ops *io;
	void *io_ctx;
	struct iovec data[VQ_MAX_SEGS]; /* thread backend's scratch, queue lock */
};

/* fd stays owned by the caller; size is the image size in bytes (a
 * trailing partial sector is not exposed); flags VBLK_*. img.blk starts
 * at 512; a caller may raise it (power of two <= 4096) before the guest
 * runs, for O_DIRECT on a device with larger sectors. With VBLK_URING,
 * a kernel without io_uring (or with it disabled) gives -ENOSYS, -EPERM
 * or another -errno from io_uring_queue_init and nothing is left made. */
int vblk_init(struct vblk *b, int fd, unsigned flags, uint64_t size, const char *id,
	      const struct gmem *gm, const struct dev_irq_ops *irq) WUR;
/* Completions (uring) on loop ev from now on; call with vpci_start(). */
int vblk_start(struct vblk *b, struct event_loop *ev, struct err *e) WUR;
void vblk_destroy(struct vblk *b);
/* Serve every queued request (start them, with uring). Any thread. */
void vblk_process(struct vblk *b);
/* Without vblk_start: take what completed; wait: until none in flight. */
void vblk_complete(struct vblk *b, bool wait);
/* "thread" or "uring" */
const char *vblk_backend(const struct vblk *b);
uint64_t vblk_features(bool ro);
#endif

/* The io_uring backend of virtio-blk (liburing): reads, writes and
 * flushes become SQEs, up to one per queue entry, and complete when the
 * kernel posts their CQE, in whatever order it does. An eventfd
 * registered with the ring wakes the disk's event loop. */
#ifndef KVMLAB_VMM_BLK_URING_H
#define KVMLAB_VMM_BLK_URING_H
#include "blk_req.h"

struct blk_uring;

/* depth: the most requests in flight (the queue size). img and v must
 * outlive it; requests go through queue 0 of v. -errno of
 * io_uring_queue_init when the kernel has no io_uring for us (-ENOSYS,
 * -EPERM under the io_uring_disabled sysctl, ...). */
int blk_uring_new(struct blk_uring **out, struct blk_img *img, struct vpci *v,
		  unsigned depth) WUR;
extern const struct blk_io_ops blk_uring_ops;
#endif

/* virtio-blk (virtio 1.x 5.2) on a raw image fd: one request queue,
 * requests IN/OUT/FLUSH/GET_ID served synchronously with preadv/pwritev
 * on the thread that kicked the queue. */
#ifndef KVMLAB_VMM_VIRTIO_BLK_H
#define KVMLAB_VMM_VIRTIO_BLK_H
#include <stdbool.h>
#include <stdint.h>
#include "virtio_pci.h"

#define VBLK_QUEUE_SIZE 128
#define VBLK_SEG_MAX (VBLK_QUEUE_SIZE - 2) /* data segments besides header and status */

struct vblk {
	struct vpci vpci; /* first: the PCI layer hands us back this pointer */
	int fd;
	bool ro;
	uint64_t capacity; /* 512-byte sectors */
	char id[20];
	struct iovec data[VQ_MAX_SEGS]; /* scratch, owned by the queue lock */
};

/* fd stays owned by the caller; size is the image size in bytes (a
 * trailing partial sector is not exposed). */
int vblk_init(struct vblk *b, int fd, bool ro, uint64_t size, const char *id,
	      const struct gmem *gm, const struct dev_irq_ops *irq) WUR;
void vblk_destroy(struct vblk *b);
/* Serve every queued request. Any thread. */
void vblk_process(struct vblk *b);
uint64_t vblk_features(bool ro);
#endif

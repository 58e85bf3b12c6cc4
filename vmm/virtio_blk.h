/* virtio-blk (virtio 1.x 5.2) on a raw image fd: one request queue,
 * requests IN/OUT/FLUSH/GET_ID/DISCARD/WRITE_ZEROES served with
 * preadv/pwritev/fdatasync/fallocate on the thread that runs notify: the
 * disk's own event-loop thread once vpci_start() was called (devices.c
 * does), inline otherwise (unit tests, fuzzers). */
#ifndef KVMLAB_VMM_VIRTIO_BLK_H
#define KVMLAB_VMM_VIRTIO_BLK_H
#include <stdbool.h>
#include <stdint.h>
#include "virtio_pci.h"

#define VBLK_QUEUE_SIZE 128
#define VBLK_SEG_MAX (VBLK_QUEUE_SIZE - 2) /* data segments besides header and status */
/* DISCARD / WRITE_ZEROES limits offered in config space */
#define VBLK_MAX_DISCARD_SECTORS 0x3fffffu /* 2 GiB - 512 per segment */
#define VBLK_MAX_DISCARD_SEG 32u
#define VBLK_BOUNCE (1u << 20) /* O_DIRECT bounce buffer for unaligned guest buffers */

/* vblk_init flags */
#define VBLK_RO     1u /* read-only image: RO offered, no DISCARD/WRITE_ZEROES, writes IOERR */
#define VBLK_DIRECT 2u /* fd was opened O_DIRECT (cache=none): align or bounce */

struct vblk {
	struct vpci vpci; /* first: the PCI layer hands us back this pointer */
	int fd;
	bool ro, direct;
	uint32_t blk;      /* logical block size offered (512, or the device's) */
	uint64_t capacity; /* 512-byte sectors */
	char id[20];
	uint8_t *bounce;   /* VBLK_BOUNCE bytes, aligned; O_DIRECT only */
	struct iovec data[VQ_MAX_SEGS]; /* scratch, owned by the queue lock */
	/* counters, for tests and the log */
	uint64_t n_flush, n_discard, n_wzeroes, n_bounced;
};

/* fd stays owned by the caller; size is the image size in bytes (a
 * trailing partial sector is not exposed); flags VBLK_*. b->blk starts
 * at 512; a caller may raise it (power of two <= 4096) before the guest
 * runs, for O_DIRECT on a device with larger sectors. */
int vblk_init(struct vblk *b, int fd, unsigned flags, uint64_t size, const char *id,
	      const struct gmem *gm, const struct dev_irq_ops *irq) WUR;
void vblk_destroy(struct vblk *b);
/* Serve every queued request. Any thread. */
void vblk_process(struct vblk *b);
uint64_t vblk_features(bool ro);
#endif

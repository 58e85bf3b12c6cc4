/* Split virtqueue (virtio 1.x, 2.7) over a guest-memory view. Pure
 * logic: no KVM, no threads, no fds. The caller serialises access to one
 * struct vq (the device holds a per-queue mutex). Everything read from
 * the rings is guest-controlled and treated as hostile. */
#ifndef KVMLAB_VMM_VIRTQUEUE_H
#define KVMLAB_VMM_VIRTQUEUE_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>
#include "guestmem.h"
#include "util.h"

/* Largest queue we offer, and the most segments one chain (direct plus
 * indirect) may have. A chain never needs more than a queue's worth. */
#define VQ_MAX_SIZE 256
#define VQ_MAX_SEGS 256
#define VQ_LOG_MAX 8

struct vq {
	const struct gmem *gm;
	const char *name; /* for the log line when the queue breaks */
	unsigned logged;  /* break lines logged; survives vq_reset */
	uint16_t size;
	bool ready;
	bool broken;      /* the driver broke the ring: stop until reset */
	bool event_idx;   /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;    /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint16_t last_avail;  /* next avail entry we will consume */
	uint16_t used_idx;    /* our copy of used->idx */
	uint16_t signalled;   /* used_idx when we last decided about an irq */
	bool signalled_valid;
	/* host views of the rings, resolved and bounds-checked once at enable */
	uint8_t *desc, *avail, *used;
};

/* One descriptor chain: out (device-readable) segments first, then in
 * (device-writable) ones, as the spec requires. Zero-length descriptors
 * are accepted and dropped. */
struct vq_chain {
	uint16_t head;
	unsigned nr_out, nr_in;   /* iov[0..nr_out) readable, then nr_in writable */
	uint64_t out_len, in_len; /* byte totals of each part */
	struct iovec iov[VQ_MAX_SEGS];
};

/* Validate and map the three rings: size a power of two in 1..VQ_MAX_SIZE,
 * every ring inside guest RAM and aligned as the spec says.
 * -EINVAL / -EFAULT, and the queue stays disabled. */
int vq_enable(struct vq *q, const struct gmem *gm, uint16_t size, uint64_t desc,
	      uint64_t avail, uint64_t used, bool event_idx, bool indirect) WUR;
/* Forget everything (device reset / queue disabled). */
void vq_reset(struct vq *q);
/* 1: a chain was popped into *c; 0: nothing available (or queue not
 * ready); -EIO: the ring is malformed, the queue is now broken and stays
 * so until reset (logged the first VQ_LOG_MAX times only: a guest can
 * reset and break a queue in a loop). */
int vq_pop(struct vq *q, struct vq_chain *c) WUR;
/* Give back the last n popped chains that were not used (nothing about
 * them was published yet). */
void vq_unpop(struct vq *q, uint16_t n);
/* Publish one used element: len bytes were written into the chain. */
void vq_push(struct vq *q, uint16_t head, uint32_t len);
/* Write used element k (0, 1, ...) past the published ones without
 * publishing it; vq_flush(q, n) then publishes elements [0, n) with one
 * used->idx store. For what the driver must see whole: a frame spread
 * over n merged rx buffers (a driver that sees its first buffer reads
 * the other n - 1 at once). n <= the queue size. */
void vq_fill(struct vq *q, uint16_t k, uint16_t head, uint32_t len);
void vq_flush(struct vq *q, uint16_t n);
/* After pushes: does the driver want an interrupt now (EVENT_IDX /
 * NO_INTERRUPT)? Updates the suppression state, so ask once per batch. */
bool vq_should_signal(struct vq *q);
/* Ask for a kick as soon as the driver adds anything past what is in the
 * avail ring now. Returns true if buffers arrived meanwhile (re-check). */
bool vq_arm(struct vq *q);
/* A backend (vhost) ran the ring and stopped with base as its next avail
 * index: take over from there, with used->idx as it left it. */
void vq_resync(struct vq *q, uint16_t base);
/* One line (newline included) of the ring's state: the driver's and our
 * indexes and suppression fields, for a stuck-queue report (SIGQUIT).
 * Reads guest fields without the driver's cooperation: a snapshot. The
 * caller holds the queue's lock (the ring pointers change at a reset). */
void vq_dump(const struct vq *q, FILE *f);
/* Entries the driver has made available that we did not pop yet. */
uint16_t vq_pending(struct vq *q);

/* Helpers over a chain's iovecs (n segments starting at iov). Copy out
 * of / into the chain starting at byte offset off; return bytes copied. */
size_t vq_iov_read(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len);
size_t vq_iov_write(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len);
#endif

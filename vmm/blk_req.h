/* virtio-blk requests (virtio 1.x 5.2.6) on a raw image, apart from how
 * they are scheduled. A chain is parsed and bound-checked once into a
 * struct blk_req; what is left to do then (a read, a write or a flush)
 * is done either here, synchronously, or by an asynchronous backend that
 * only moves the data (blk_uring.c). Everything else (GET_ID, DISCARD,
 * WRITE_ZEROES, every refusal) is answered while parsing.
 *
 * A backend is a small ops table; virtio_blk.c picks one per disk. */
#ifndef KVMLAB_VMM_BLK_REQ_H
#define KVMLAB_VMM_BLK_REQ_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "event.h"
#include "virtio_pci.h"
#include "virtqueue.h"

#define BLK_SECTOR 512u
#define BLK_MEM_ALIGN 4096u /* O_DIRECT buffer alignment that every filesystem takes */
#define BLK_BOUNCE (1u << 20) /* O_DIRECT bounce buffer for unaligned guest buffers */
/* DISCARD / WRITE_ZEROES limits offered in config space */
#define BLK_MAX_DISCARD_SECTORS 0x3fffffu /* 2 GiB - 512 per segment */
#define BLK_MAX_DISCARD_SEG 32u

/* The image and what the device offered. Used by one thread at a time:
 * the one that holds the request queue's lock. */
struct blk_img {
	int fd;
	bool ro, direct;
	uint32_t blk;      /* logical block size offered (512, or the device's) */
	uint64_t capacity; /* 512-byte sectors */
	char id[20];
	uint8_t *bounce;   /* BLK_BOUNCE bytes, aligned; O_DIRECT only */
	/* counters, for tests and the log */
	uint64_t n_flush, n_discard, n_wzeroes, n_bounced;
	uint64_t n_async; /* completed by an asynchronous backend */
};

enum blk_op { BLK_OP_DONE, BLK_OP_READ, BLK_OP_WRITE, BLK_OP_FLUSH };

struct blk_req {
	enum blk_op op;
	uint8_t status;     /* BLK_OP_DONE: the answer */
	uint8_t *status_at; /* the chain's last writable byte; NULL: none */
	uint64_t wrote;     /* data bytes put into the chain when it succeeds */
	uint64_t off, len;  /* READ/WRITE: byte range of the image */
	struct iovec *iov;  /* READ/WRITE: len bytes of guest buffers */
	unsigned n;
};

/* Parse chain c (negotiated features from v) into r. READ/WRITE data
 * segments are copied into iov (VQ_MAX_SEGS entries). */
void blk_req_parse(struct blk_img *img, const struct vpci *v, const struct vq_chain *c,
		   struct blk_req *r, struct iovec *iov);
/* Do a parsed READ/WRITE/FLUSH now; returns the status. The iovecs are
 * consumed. */
uint8_t blk_req_sync(struct blk_img *img, struct blk_req *r);
/* Can the kernel take r's buffers as they are (always without O_DIRECT)? */
bool blk_req_aligned(const struct blk_img *img, const struct blk_req *r);
/* Store the status byte; returns the used length for the ring. */
uint32_t blk_req_finish(const struct blk_req *r, uint8_t status);

/* How requests reach the image. ctx is what the backend's constructor
 * made. Every op but destroy runs with the request queue's lock held
 * by the caller or taken inside, as noted. */
struct blk_io_ops {
	const char *name;
	/* The queue was kicked: serve or start what it holds (takes the lock). */
	void (*kick)(void *ctx);
	/* Take what completed (takes the lock); wait: until nothing is in
	 * flight. For callers without an event loop (unit tests, fuzzers). */
	void (*complete)(void *ctx, bool wait);
	/* Device reset, the lock held: nothing is in flight on return, and
	 * nothing in flight ever reaches the ring. */
	void (*reset)(void *ctx);
	/* Completions from now on arrive on loop ev. Optional. */
	int (*start)(void *ctx, struct event_loop *ev, struct err *e);
	/* No thread uses the device any more. */
	void (*destroy)(void *ctx);
};
#endif

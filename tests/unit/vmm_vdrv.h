/* A tiny virtio driver for unit tests: flat guest memory, the modern
 * transport driven through the device's BAR ops, split rings written by
 * hand. Counts interrupts instead of delivering them (td_msi), or, for a
 * device on threads of its own, writes one eventfd per vector
 * (td_msi_efd) and kicks and sleeps as Linux does with EVENT_IDX
 * (td_kick_event, td_enable_cb). */
#ifndef KVMLAB_T_VDRV_H
#define KVMLAB_T_VDRV_H
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include "virtio_pci.h"

#define TD_MEM (1u << 20)
#define TD_BUF 0x40000u /* buffers live above the rings */

struct td_q {
	uint16_t size, avail_idx, used_seen, next_desc;
	uint64_t desc, avail, used;
};

struct td {
	uint8_t *mem;
	struct gmem gm;
	struct vpci *v;
	struct td_q q[VPCI_MAX_QUEUES];
	int msi_count, line, line_edges;
	uint64_t last_addr;
	uint32_t last_data;
	struct dev_irq_ops irq;
	int efd[4]; /* td_msi_efd: vector v's eventfd */
};

static inline int td_msi(void *o, uint64_t addr, uint32_t data)
{
	struct td *d = o;
	d->msi_count++;
	d->last_addr = addr;
	d->last_data = data;
	return 0;
}

/* The msi op for tests whose device runs on its own thread: vector v
 * (< 4) writes d->efd[v], which the driver thread polls, as KVM's irqfd
 * would inject it. td_msix programs data 0x40 + v. */
static inline int td_msi_efd(void *o, uint64_t addr, uint32_t data)
{
	struct td *d = o;
	uint32_t vec = data - 0x40;
	uint64_t one = 1;
	(void)addr;
	if (vec < 4)
		(void)!write(d->efd[vec], &one, sizeof(one));
	return 0;
}

static inline int td_line(void *o, unsigned gsi, int level)
{
	struct td *d = o;
	(void)gsi;
	if (level && !d->line)
		d->line_edges++;
	d->line = level;
	return 0;
}

static inline void td_mem_init(struct td *d)
{
	memset(d, 0, sizeof(*d));
	d->mem = aligned_alloc(4096, TD_MEM);
	memset(d->mem, 0, TD_MEM);
	gmem_init_flat(&d->gm, d->mem, TD_MEM);
	d->irq = (struct dev_irq_ops){ .msi = td_msi, .irq_line = td_line, .opaque = d };
}

static inline uint64_t td_rd(struct td *d, uint64_t off, unsigned len)
{
	uint64_t v = 0;
	d->v->pci.ops->bar_read(&d->v->pci, 0, off, &v, len);
	return v;
}

static inline void td_wr(struct td *d, uint64_t off, uint64_t val, unsigned len)
{
	d->v->pci.ops->bar_write(&d->v->pci, 0, off, &val, len);
}

/* Feature negotiation: returns the status read back after FEATURES_OK. */
static inline uint8_t td_negotiate(struct td *d, uint64_t feats)
{
	td_wr(d, 0x14, 0, 1); /* reset */
	td_wr(d, 0x14, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	td_wr(d, 0x14, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	for (unsigned sel = 0; sel < 2; sel++) {
		td_wr(d, 0x08, sel, 4);
		td_wr(d, 0x0c, (uint32_t)(feats >> (32 * sel)), 4);
	}
	td_wr(d, 0x14, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK, 1);
	return (uint8_t)td_rd(d, 0x14, 1);
}

/* Set up queue qi with size entries at a fixed spot per queue. Returns
 * queue_enable as read back. */
static inline int td_queue(struct td *d, unsigned qi, uint16_t size)
{
	struct td_q *q = &d->q[qi];
	/* 0x2000 holds a 256-entry ring; 17 queues stay below TD_BUF */
	uint64_t base = 0x1000 + (uint64_t)qi * 0x2000;
	q->size = size;
	q->desc = base;
	q->avail = base + 16u * size;
	q->used = (q->avail + 6 + 2u * size + 3) & ~3ull;
	q->avail_idx = q->used_seen = q->next_desc = 0;
	memset(d->mem + base, 0, 0x2000); /* a driver hands over zeroed rings */
	td_wr(d, 0x16, qi, 2);
	td_wr(d, 0x18, size, 2);
	td_wr(d, 0x20, q->desc, 8);
	td_wr(d, 0x28, (uint32_t)q->avail, 4); /* Linux writes 64-bit fields as halves */
	td_wr(d, 0x2c, q->avail >> 32, 4);
	td_wr(d, 0x30, q->used, 8);
	td_wr(d, 0x1c, 1, 2);
	return (int)td_rd(d, 0x1c, 2);
}

static inline void td_driver_ok(struct td *d)
{
	td_wr(d, 0x14, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

struct td_seg {
	uint64_t gpa;
	uint32_t len;
	int write;
};

/* Write a chain of descriptors and make it available; returns the head. */
static inline uint16_t td_add(struct td *d, unsigned qi, const struct td_seg *s, unsigned n)
{
	struct td_q *q = &d->q[qi];
	uint16_t head = q->next_desc % q->size;
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % q->size);
		struct vring_desc de = {
			.addr = s[i].gpa, .len = s[i].len,
			.flags = (uint16_t)((s[i].write ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			.next = (uint16_t)((at + 1) % q->size),
		};
		memcpy(d->mem + q->desc + 16u * at, &de, sizeof(de));
	}
	q->next_desc = (uint16_t)(q->next_desc + n);
	uint16_t slot = q->avail_idx % q->size;
	memcpy(d->mem + q->avail + 4 + 2u * slot, &head, 2);
	q->avail_idx++;
	/* ring entry and descriptors before the index (a device thread may
	 * be looking right now: tests/unit/vmm_vnet_stress.c) */
	__atomic_store_n((uint16_t *)(d->mem + q->avail + 2), q->avail_idx, __ATOMIC_RELEASE);
	return head;
}

static inline void td_kick(struct td *d, unsigned qi)
{
	td_wr(d, 0x3000 + 4u * qi, qi, 2);
}

/* Next used element: 1 and id/len, or 0 if none. */
static inline int td_used(struct td *d, unsigned qi, uint32_t *id, uint32_t *len)
{
	struct td_q *q = &d->q[qi];
	/* acquire: the element is read after the index that published it */
	uint16_t idx = __atomic_load_n((uint16_t *)(d->mem + q->used + 2), __ATOMIC_ACQUIRE);
	if (idx == q->used_seen)
		return 0;
	uint32_t e[2];
	memcpy(e, d->mem + q->used + 4 + 8u * (q->used_seen % q->size), 8);
	q->used_seen++;
	*id = e[0];
	*len = e[1];
	return 1;
}

/* CLOCK_MONOTONIC in ns: the threaded tests' run and stall bounds. */
static inline long long td_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Linux's virtqueue_kick_prepare with EVENT_IDX, for a device on
 * another thread: the driver made [old, avail_idx) available; kick if
 * the device's avail_event lies in that range. True if it kicked. */
static inline bool td_kick_event(struct td *d, unsigned qi, uint16_t old)
{
	struct td_q *q = &d->q[qi];
	uint16_t nw = q->avail_idx;
	if (nw == old)
		return false;
	/* the avail->idx store before the avail_event load (virtio_mb) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t ev = __atomic_load_n((uint16_t *)(d->mem + q->used + 4 + 8u * q->size),
				      __ATOMIC_RELAXED);
	if ((uint16_t)(nw - ev - 1) >= (uint16_t)(nw - old))
		return false;
	td_kick(d, qi);
	return true;
}

/* Linux's virtqueue_enable_cb with EVENT_IDX: an interrupt at the next
 * used element, please. True if one is already there: look again
 * instead of sleeping. */
static inline bool td_enable_cb(struct td *d, unsigned qi)
{
	struct td_q *q = &d->q[qi];
	__atomic_store_n((uint16_t *)(d->mem + q->avail + 4 + 2u * q->size), q->used_seen,
			 __ATOMIC_RELAXED);
	/* used_event before the used->idx re-read, or both sides skip */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n((uint16_t *)(d->mem + q->used + 2), __ATOMIC_ACQUIRE) != q->used_seen;
}

/* MSI-X: program vector vec and point queue qi (or config, qi = -1) at it. */
static inline void td_msix(struct td *d, unsigned vec, int qi)
{
	uint32_t ent[4] = { 0xfee00000u + vec, 0, 0x40 + vec, 0 };
	for (unsigned i = 0; i < 4; i++)
		td_wr(d, 0x4000 + 16u * vec + 4u * i, ent[i], 4);
	if (qi < 0) {
		td_wr(d, 0x10, vec, 2);
	} else {
		td_wr(d, 0x16, (unsigned)qi, 2);
		td_wr(d, 0x1a, vec, 2);
	}
}

/* Flip MSI-X enable / function mask the way config cycles would. */
static inline void td_msix_ctl(struct td *d, int enable, int maskall)
{
	unsigned at = d->v->msix_cap + 2;
	uint16_t c;
	memcpy(&c, d->v->pci.cfg + at, 2);
	c = (uint16_t)(c & ~0xc000);
	c = (uint16_t)(c | (enable ? 0x8000 : 0) | (maskall ? 0x4000 : 0));
	memcpy(d->v->pci.cfg + at, &c, 2);
	d->v->pci.ops->cfg_written(&d->v->pci, at, 2);
}

/* The usual start: feats, queues [0, nq) of 64 entries, queue i on MSI-X
 * vector i when msix, then DRIVER_OK. A refusal aborts the test. */
static inline void td_up(struct td *d, uint64_t feats, unsigned nq, int msix)
{
	if (!(td_negotiate(d, feats) & VIRTIO_CONFIG_S_FEATURES_OK))
		abort();
	for (unsigned q = 0; q < nq; q++)
		if (td_queue(d, q, 64) != 1)
			abort();
	if (msix) {
		for (unsigned q = 0; q < nq; q++)
			td_msix(d, q, (int)q);
		td_msix_ctl(d, 1, 0);
	}
	td_driver_ok(d);
}
#endif

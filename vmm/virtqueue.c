#include "virtqueue.h"

#include <stdio.h>
#include <string.h>
#include <linux/virtio_ring.h>

/* Ring layout (virtio 1.x 2.7): desc[size] of 16 bytes; avail = flags,
 * idx, ring[size], used_event; used = flags, idx, {id,len}[size],
 * avail_event. All little-endian, which is the host order on x86. */
#define DESC_SZ 16u
#define AVAIL_BYTES(n) (4u + 2u * (n) + 2u)
#define USED_BYTES(n)  (4u + 8u * (n) + 2u)

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static uint16_t load16(const uint8_t *p)
{
	/* the driver writes these concurrently: one untorn load */
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}

static void store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED);
}

static int vq_break(struct vq *q, const char *why)
{
	/* a guest can reset and break a queue in a loop: log a few, not all */
	if (!q->broken && q->logged < VQ_LOG_MAX) {
		q->logged++;
		fprintf(stderr, "kvmlab-vm: virtio %s: %s; queue stopped until reset%s\n",
			q->name ? q->name : "queue", why,
			q->logged == VQ_LOG_MAX ? " (further errors not logged)" : "");
	}
	q->broken = true;
	return -EIO;
}

void vq_reset(struct vq *q)
{
	const char *name = q->name;
	unsigned logged = q->logged;
	memset(q, 0, sizeof(*q));
	q->name = name;
	q->logged = logged;
}

int vq_enable(struct vq *q, const struct gmem *gm, uint16_t size, uint64_t desc,
	      uint64_t avail, uint64_t used, bool event_idx, bool indirect)
{
	vq_reset(q);
	if (size == 0 || size > VQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -EINVAL;
	uint8_t *d = gmem_ptr(gm, desc, (uint64_t)size * DESC_SZ);
	uint8_t *a = gmem_ptr(gm, avail, AVAIL_BYTES(size));
	uint8_t *u = gmem_ptr(gm, used, USED_BYTES(size));
	if (!d || !a || !u)
		return -EFAULT;
	q->gm = gm;
	q->size = size;
	q->desc = d;
	q->avail = a;
	q->used = u;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->ready = true;
	return 0;
}

uint16_t vq_pending(struct vq *q)
{
	if (!q->ready || q->broken)
		return 0;
	return (uint16_t)(load16(q->avail + 2) - q->last_avail);
}

static void set_avail_event(struct vq *q, uint16_t v)
{
	if (q->event_idx)
		store16(q->used + 4 + 8u * q->size, v);
}

int vq_pop(struct vq *q, struct vq_chain *c)
{
	if (!q->ready || q->broken)
		return 0;
	uint16_t avail_idx = load16(q->avail + 2);
	uint16_t n = (uint16_t)(avail_idx - q->last_avail);
	if (n == 0 && q->event_idx) {
		/* about to go idle: our avail_event store must be visible
		 * before the last look at avail->idx, or a buffer added right
		 * now gets no kick from the driver and no attention from us */
		set_avail_event(q, q->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(q->avail + 2);
		n = (uint16_t)(avail_idx - q->last_avail);
	}
	if (n == 0)
		return 0;
	if (n > q->size)
		return vq_break(q, "avail index ran more than a queue ahead");
	/* pairs with the driver's write barrier before it bumped avail->idx:
	 * the ring entry and descriptors must be read after the index */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint16_t head = load16(q->avail + 4 + 2u * (q->last_avail % q->size));
	if (head >= q->size)
		return vq_break(q, "avail ring names a descriptor past the table");

	const uint8_t *table = q->desc;
	uint32_t table_n = q->size;
	uint32_t budget = q->size; /* more hops than entries means a loop */
	uint16_t idx = head;
	bool in_indirect = false;

	c->head = head;
	c->nr_out = c->nr_in = 0;
	c->out_len = c->in_len = 0;
	for (;;) {
		struct desc d;
		if (budget-- == 0)
			return vq_break(q, "descriptor chain loops or is longer than its table");
		/* copy once: the guest may rewrite the entry while we look */
		memcpy(&d, table + (size_t)idx * DESC_SZ, sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!q->indirect)
				return vq_break(q, "indirect descriptor without INDIRECT_DESC");
			if (in_indirect)
				return vq_break(q, "nested indirect descriptor");
			if (d.flags & VRING_DESC_F_NEXT)
				return vq_break(q, "indirect descriptor with NEXT");
			if (d.len == 0 || d.len % DESC_SZ || d.len / DESC_SZ > VQ_MAX_SEGS)
				return vq_break(q, "bad indirect table length");
			table = gmem_ptr(q->gm, d.addr, d.len);
			if (!table)
				return vq_break(q, "indirect table outside guest RAM");
			table_n = d.len / DESC_SZ;
			budget = table_n;
			idx = 0;
			in_indirect = true;
			continue;
		}
		if (d.len) {
			void *host = gmem_ptr(q->gm, d.addr, d.len);
			if (!host)
				return vq_break(q, "buffer outside guest RAM");
			if (d.flags & VRING_DESC_F_WRITE) {
				c->nr_in++;
				c->in_len += d.len;
			} else {
				if (c->nr_in)
					return vq_break(q, "readable descriptor after a writable one");
				c->nr_out++;
				c->out_len += d.len;
			}
			unsigned at = c->nr_out + c->nr_in - 1;
			if (at >= VQ_MAX_SEGS)
				return vq_break(q, "chain has too many segments");
			c->iov[at].iov_base = host;
			c->iov[at].iov_len = d.len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		idx = d.next;
		if (idx >= table_n)
			return vq_break(q, "next index past the descriptor table");
	}
	q->last_avail++;
	set_avail_event(q, q->last_avail);
	return 1;
}

void vq_resync(struct vq *q, uint16_t base)
{
	q->last_avail = base;
	/* used->idx: byte 2 of the used ring, mapped by vq_enable */
	q->used_idx = load16(q->used + 2);
	q->signalled_valid = false;
}

void vq_dump(const struct vq *q, FILE *f)
{
	if (!q->ready) {
		fprintf(f, "off\n");
		return;
	}
	const uint8_t *a = q->avail, *u = q->used;
	uint16_t size = q->size;
	/* racy snapshots of guest-written fields: a diagnostic, never trusted */
	uint16_t aflags = load16(a), aidx = load16(a + 2);
	uint16_t used_event = load16(a + 4 + 2u * size);
	uint16_t uidx = load16(u + 2), avail_event = load16(u + 4 + 8u * size);
	fprintf(f, "size %u, avail %u (flags 0x%x%s), taken %u, used %u (ours %u), ",
		size, aidx, aflags,
		aflags & VRING_AVAIL_F_NO_INTERRUPT ? " no-interrupt" : "", q->last_avail,
		uidx, q->used_idx);
	if (q->event_idx)
		fprintf(f, "used_event %u, avail_event %u, last irq decision at %u%s",
			used_event, avail_event, q->signalled,
			q->signalled_valid ? "" : " (none yet)");
	else
		fprintf(f, "no event index");
	fprintf(f, "%s\n", q->broken ? ", BROKEN" : "");
}

void vq_unpop(struct vq *q, uint16_t n)
{
	q->last_avail = (uint16_t)(q->last_avail - n);
	set_avail_event(q, q->last_avail);
}

void vq_fill(struct vq *q, uint16_t k, uint16_t head, uint32_t len)
{
	if (!q->ready || q->broken)
		return;
	uint8_t *e = q->used + 4 + 8u * ((uint16_t)(q->used_idx + k) % q->size);
	uint32_t v[2] = { head, len };
	memcpy(e, v, sizeof(v));
}

void vq_flush(struct vq *q, uint16_t n)
{
	if (!q->ready || q->broken || n == 0)
		return;
	/* the elements must be visible before the index that publishes them */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx = (uint16_t)(q->used_idx + n);
	store16(q->used + 2, q->used_idx);
}

void vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	vq_fill(q, 0, head, len);
	vq_flush(q, 1);
}

bool vq_should_signal(struct vq *q)
{
	if (!q->ready || q->broken)
		return false;
	/* our used->idx store must be visible before we read the driver's
	 * suppression fields, or we and the driver can both skip the irq */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t old = q->signalled, now = q->used_idx;
	bool valid = q->signalled_valid;
	q->signalled = now;
	q->signalled_valid = true;
	if (!valid)
		return true;
	uint16_t event = load16(q->avail + 4 + 2u * q->size);
	/* spec 2.7.10: signal if used_event lies in (old, now] */
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

bool vq_arm(struct vq *q)
{
	if (!q->ready || q->broken)
		return false;
	uint16_t seen = load16(q->avail + 2);
	set_avail_event(q, seen);
	/* publish avail_event before re-reading avail->idx: otherwise a
	 * buffer added in between gets neither a kick nor our attention */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(q->avail + 2) != seen;
}

/* Copy between buf and the bytes of n segments from offset off on; to_iov
 * picks the direction. Returns the bytes copied (short at the chain's end). */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t off, void *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - off;
		if (k > len - done)
			k = len - done;
		uint8_t *seg = (uint8_t *)iov[i].iov_base + off, *b = (uint8_t *)buf + done;
		memcpy(to_iov ? seg : b, to_iov ? b : seg, k);
		done += k;
		off = 0;
	}
	return done;
}

size_t vq_iov_read(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
	return iov_copy(iov, n, off, dst, len, false);
}

size_t vq_iov_write(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
	/* the cast only lets one helper serve both directions; src is never written */
	return iov_copy(iov, n, off, (void *)src, len, true);
}

#include "virtio_pci.h"

#include <stdarg.h>
#include <stdio.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#define VPCI_VENDOR 0x1af4 /* Red Hat / Qumranet: virtio */
#define VPCI_ISR_QUEUE 1 /* ISR bit 0: used buffers; bit 1 is config change */

/* common cfg register offsets (virtio 1.x 4.1.4.3) */
enum {
	CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
	CC_MSIX = 0x10, CC_NUMQ = 0x12, CC_STATUS = 0x14, CC_GEN = 0x15,
	CC_QSEL = 0x16, CC_QSIZE = 0x18, CC_QVEC = 0x1a, CC_QENABLE = 0x1c,
	CC_QNOFF = 0x1e, CC_QDESC = 0x20, CC_QAVAIL = 0x28, CC_QUSED = 0x30,
	CC_QNDATA = 0x38, CC_QRESET = 0x3a, CC_SIZE = 0x3c,
};

static const struct { uint8_t off, len; } cc_fields[] = {
	{ CC_DFSELECT, 4 }, { CC_DF, 4 }, { CC_GFSELECT, 4 }, { CC_GF, 4 },
	{ CC_MSIX, 2 }, { CC_NUMQ, 2 }, { CC_STATUS, 1 }, { CC_GEN, 1 },
	{ CC_QSEL, 2 }, { CC_QSIZE, 2 }, { CC_QVEC, 2 }, { CC_QENABLE, 2 },
	{ CC_QNOFF, 2 }, { CC_QDESC, 8 }, { CC_QAVAIL, 8 }, { CC_QUSED, 8 },
	{ CC_QNDATA, 2 }, { CC_QRESET, 2 },
};

static void put(uint8_t *p, uint64_t v, unsigned len) { memcpy(p, &v, len); }
static uint64_t get(const uint8_t *p, unsigned len) { uint64_t v = 0; memcpy(&v, p, len); return v; }

bool vpci_has(const struct vpci *v, unsigned bit)
{
	return (__atomic_load_n(&v->driver_features, __ATOMIC_RELAXED) >> bit) & 1;
}

/* --- interrupts (irq_lock) --- */

static void efd_signal(int fd)
{
	uint64_t one = 1;
	/* only a counter at its maximum fails, and that one is pending anyway */
	(void)!write(fd, &one, sizeof(one));
}

/* Take an eventfd's count (0: nothing written since the last take). */
static uint64_t efd_take(int fd)
{
	uint64_t cnt = 0;
	if (fd < 0 || read(fd, &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
		return 0;
	return cnt;
}

static uint64_t msix_addr(const struct vpci *v, uint16_t vec)
{
	return (uint64_t)v->msix[vec][1] << 32 | v->msix[vec][0];
}

static bool vec_masked(const struct vpci *v, uint16_t vec)
{
	return !v->msix_enabled || v->msix_masked ||
	       (v->msix[vec][3] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* Make vector vec's MSI route match its table entry, creating route and
 * irqfd on first use. false: use irq.msi for it. */
static bool vec_commit_locked(struct vpci *v, uint16_t vec)
{
	struct vpci_vec *x = &v->vec[vec];
	if (!v->started || x->failed || !v->irq.msi_route || !v->irq.irqfd)
		return false;
	if (x->call_fd >= 0 && !x->dirty)
		return true;
	int gsi = v->irq.msi_route(v->irq.opaque, x->gsi, msix_addr(v, vec), v->msix[vec][2]);
	if (gsi < 0)
		goto fail;
	x->gsi = gsi;
	x->dirty = false;
	if (x->call_fd < 0) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			goto fail;
		if (v->irq.irqfd(v->irq.opaque, (unsigned)gsi, fd, -1, true)) {
			close(fd);
			goto fail;
		}
		x->call_fd = fd;
	}
	return true;
fail:
	/* once refused, always refused: do not retry on every interrupt */
	x->failed = true;
	return false;
}

static void msix_fire_locked(struct vpci *v, uint16_t vec)
{
	if (vec >= VPCI_MSIX_VECTORS)
		return;
	if (v->msix_masked || (v->msix[vec][3] & PCI_MSIX_ENTRY_CTRL_MASKBIT)) {
		v->pba |= 1u << vec;
		return;
	}
	v->pba &= ~(1u << vec);
	if (vec_commit_locked(v, vec))
		efd_signal(v->vec[vec].call_fd);
	else if (v->irq.msi)
		(void)v->irq.msi(v->irq.opaque, msix_addr(v, vec), v->msix[vec][2]);
}

static void raise_locked(struct vpci *v, uint8_t isr_bit, uint16_t vec)
{
	if (v->msix_enabled) {
		msix_fire_locked(v, vec);
		return;
	}
	v->isr |= isr_bit;
	if (v->line)
		return;
	if (v->intx_fd >= 0) {
		v->line = 1;
		efd_signal(v->intx_fd);
	} else if (v->irq.irq_line) {
		v->line = 1;
		(void)v->irq.irq_line(v->irq.opaque, v->gsi, 1);
	}
}

static void lower_locked(struct vpci *v)
{
	/* a resample irqfd's line drops in the kernel at the guest's EOI;
	 * intx_resampled() then raises it again if the ISR is still set */
	if (v->line && v->intx_fd < 0 && v->irq.irq_line)
		(void)v->irq.irq_line(v->irq.opaque, v->gsi, 0);
	v->line = 0;
}

/* Point the backends on vector vec at the fd they must write now: its
 * irqfd, or its hold fd while it is masked. Then move what the hold fd
 * caught into the PBA (msix_flush_locked sends it). */
static void backend_sync_locked(struct vpci *v, uint16_t vec)
{
	struct vpci_vec *x = &v->vec[vec];
	if (x->hold_fd < 0)
		return;
	int fd = vec_masked(v, vec) ? x->hold_fd : x->call_fd;
	for (unsigned i = 0; i < v->nq; i++) {
		struct vpci_queue *q = &v->q[i];
		if (q->backend_fd < 0 || q->backend_vec != vec || q->backend_fd == fd)
			continue;
		v->ops->set_call(v->dev, i, fd);
		q->backend_fd = fd;
	}
	/* only after the switch: set_call returned, so no backend can still
	 * write the hold fd, and nothing lands there after this take */
	if (fd == x->call_fd && efd_take(x->hold_fd)) {
		v->pba |= 1u << vec;
		v->stat_held++;
	}
}

/* Deliver whatever became unmasked. */
static void msix_flush_locked(struct vpci *v)
{
	if (!v->msix_enabled || v->msix_masked)
		return;
	for (uint16_t i = 0; i < VPCI_MSIX_VECTORS; i++)
		if ((v->pba & (1u << i)) && !(v->msix[i][3] & PCI_MSIX_ENTRY_CTRL_MASKBIT))
			msix_fire_locked(v, i);
}

void vpci_signal(struct vpci *v, unsigned q)
{
	if (q >= v->nq)
		return;
	uint16_t vec = __atomic_load_n(&v->q[q].vector, __ATOMIC_RELAXED);
	pthread_mutex_lock(&v->irq_lock);
	raise_locked(v, VPCI_ISR_QUEUE, vec);
	pthread_mutex_unlock(&v->irq_lock);
}

void vpci_drain(struct vpci *v, unsigned qi,
		uint32_t (*serve)(void *dev, const struct vq_chain *c))
{
	struct vpci_queue *pq = &v->q[qi];
	struct vq_chain c;
	bool pushed = false;

	pthread_mutex_lock(&pq->lock);
	for (;;) {
		int rc = vq_pop(&pq->vq, &c);
		if (rc < 0)
			vpci_set_needs_reset(v);
		if (rc <= 0)
			break;
		vq_push(&pq->vq, c.head, serve(v->dev, &c));
		pushed = true;
	}
	if (pushed && vq_should_signal(&pq->vq))
		vpci_signal(v, qi);
	pthread_mutex_unlock(&pq->lock);
}

void vpci_config_changed(struct vpci *v)
{
	uint16_t vec = __atomic_load_n(&v->msix_config, __ATOMIC_RELAXED);
	pthread_mutex_lock(&v->irq_lock);
	raise_locked(v, VIRTIO_PCI_ISR_CONFIG, vec);
	pthread_mutex_unlock(&v->irq_lock);
}

void vpci_set_needs_reset(struct vpci *v)
{
	if (__atomic_exchange_n(&v->needs_reset, 1, __ATOMIC_SEQ_CST))
		return;
	vpci_config_changed(v);
}

/* --- kick eventfds (ioev_lock) --- */

/* Where KVM must catch queue qi's notify. PCI: any write length counts
 * when every queue has its own address; when they share one (MULT 0)
 * the 16-bit queue index written tells them apart, and KVM's datamatch
 * needs a length. MMIO: every queue shares QueueNotify and writes its
 * index there, 32 bits wide. false: nowhere yet (memory decoding off). */
static bool kick_where(const struct vpci *v, unsigned qi, uint64_t *addr, unsigned *len,
		       bool *match)
{
	if (v->mmio_base) {
		*addr = v->mmio_base + VIRTIO_MMIO_QUEUE_NOTIFY;
		*len = 4;
		*match = true;
		return true;
	}
	uint64_t base = pci_bar_base(&v->pci, 0);
	*addr = base + VPCI_NOTIFY_OFF + (uint64_t)qi * VPCI_NOTIFY_MULT;
	*len = VPCI_NOTIFY_MULT == 0 ? 2u : 0u;
	*match = VPCI_NOTIFY_MULT == 0;
	return base != 0;
}

static void kick_unbind_locked(struct vpci *v, struct vpci_queue *q)
{
	if (!q->kick_bound)
		return;
	unsigned qi = (unsigned)(q - v->q), len;
	uint64_t addr;
	bool match;
	(void)kick_where(v, qi, &addr, &len, &match);
	(void)v->irq.ioeventfd(v->irq.opaque, q->kick_addr, len, match, qi, q->kick_fd, false);
	q->kick_bound = false;
}

/* retry: also forget refusals (a BAR move may make binding possible) */
static void kicks_unbind(struct vpci *v, bool retry)
{
	pthread_mutex_lock(&v->ioev_lock);
	for (unsigned i = 0; i < v->nq; i++) {
		kick_unbind_locked(v, &v->q[i]);
		if (retry)
			v->q[i].kick_refused = false;
	}
	pthread_mutex_unlock(&v->ioev_lock);
}

/* Let KVM turn the driver's notify writes for queue qi into kick_fd
 * writes, at the notify address the transport has now. */
static void kick_bind(struct vpci *v, unsigned qi)
{
	struct vpci_queue *q = &v->q[qi];
	uint64_t addr;
	unsigned len;
	bool match;
	if (q->kick_fd < 0 || !v->irq.ioeventfd || !kick_where(v, qi, &addr, &len, &match))
		return;
	pthread_mutex_lock(&v->ioev_lock);
	if (q->kick_bound && q->kick_addr != addr)
		kick_unbind_locked(v, q);
	/* a refusal (no ioeventfd here) is not retried on every trapped kick */
	if (!q->kick_bound && !q->kick_refused) {
		if (v->irq.ioeventfd(v->irq.opaque, addr, len, match, qi, q->kick_fd, true) == 0) {
			q->kick_bound = true;
			q->kick_addr = addr;
		} else {
			q->kick_refused = true;
		}
	}
	pthread_mutex_unlock(&v->ioev_lock);
}

/* --- common cfg (v->lock) --- */

static void reset_locked(struct vpci *v)
{
	kicks_unbind(v, false);
	for (unsigned i = 0; i < v->nq; i++)
		pthread_mutex_lock(&v->q[i].lock);
	if (v->ops->reset)
		v->ops->reset(v->dev);
	for (unsigned i = 0; i < v->nq; i++) {
		struct vpci_queue *q = &v->q[i];
		vq_reset(&q->vq);
		q->size = v->queue_max;
		q->vector = VPCI_NO_VECTOR;
		q->enabled = false;
		q->desc = q->avail = q->used = 0;
	}
	for (unsigned i = v->nq; i-- > 0;)
		pthread_mutex_unlock(&v->q[i].lock);
	__atomic_store_n(&v->driver_features, 0, __ATOMIC_RELAXED);
	v->dfselect = v->gfselect = 0;
	v->status = 0;
	v->qsel = 0;
	v->msix_config = VPCI_NO_VECTOR;
	__atomic_store_n(&v->needs_reset, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->irq_lock);
	v->isr = 0;
	v->pba = 0;
	/* ops->reset stopped the backends: what they held is void now */
	for (unsigned i = 0; i < v->nq; i++)
		v->q[i].backend_fd = -1;
	for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++)
		(void)efd_take(v->vec[i].hold_fd);
	lower_locked(v);
	pthread_mutex_unlock(&v->irq_lock);
}

static void common_snapshot(struct vpci *v, uint8_t *b)
{
	memset(b, 0, CC_SIZE);
	put(b + CC_DFSELECT, v->dfselect, 4);
	put(b + CC_DF, v->dfselect < 2 ? (uint32_t)(v->features >> (32 * v->dfselect)) : 0, 4);
	put(b + CC_GFSELECT, v->gfselect, 4);
	put(b + CC_GF, v->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * v->gfselect)) : 0, 4);
	put(b + CC_MSIX, v->msix_config, 2);
	put(b + CC_NUMQ, v->nq, 2);
	b[CC_STATUS] = v->status | (__atomic_load_n(&v->needs_reset, __ATOMIC_SEQ_CST) ?
				    VIRTIO_CONFIG_S_NEEDS_RESET : 0);
	b[CC_GEN] = v->generation;
	put(b + CC_QSEL, v->qsel, 2);
	if (v->qsel < v->nq) {
		struct vpci_queue *q = &v->q[v->qsel];
		put(b + CC_QSIZE, q->size, 2);
		put(b + CC_QVEC, q->vector, 2);
		put(b + CC_QENABLE, q->enabled, 2);
		put(b + CC_QNOFF, v->qsel, 2);
		put(b + CC_QDESC, q->desc, 8);
		put(b + CC_QAVAIL, q->avail, 8);
		put(b + CC_QUSED, q->used, 8);
	}
}

static void set_status_locked(struct vpci *v, uint8_t val)
{
	if (val == 0) {
		reset_locked(v);
		return;
	}
	/* bits only ever get added; a driver clearing one is ignored */
	uint8_t add = val & ~v->status & ~VIRTIO_CONFIG_S_NEEDS_RESET;
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		uint64_t f = v->driver_features;
		int ok = !(f & ~v->features) && (f >> VIRTIO_F_VERSION_1) & 1;
		if (ok && v->ops->set_features && v->ops->set_features(v->dev, f))
			ok = 0;
		if (!ok)
			add &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !((v->status | add) & VIRTIO_CONFIG_S_FEATURES_OK))
		add &= ~VIRTIO_CONFIG_S_DRIVER_OK;
	v->status |= add;
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) && v->ops->driver_ok)
		v->ops->driver_ok(v->dev);
}

/* A driver error on queue q. The guest can repeat it at will (reset,
 * enable again), so only the first VQ_LOG_MAX reach the log. */
static void __attribute__((format(printf, 3, 4)))
log_locked(struct vpci *v, const struct vpci_queue *q, const char *fmt, ...)
{
	if (v->logged >= VQ_LOG_MAX)
		return;
	v->logged++;
	char msg[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "kvmlab-vm: virtio %s: driver enabled %s%s\n",
		q->vq.name ? q->vq.name : "queue", msg,
		v->logged == VQ_LOG_MAX ? " (further errors not logged)" : "");
}

static void queue_enable_locked(struct vpci *v, struct vpci_queue *q)
{
	if (q->enabled || !(v->status & VIRTIO_CONFIG_S_FEATURES_OK))
		return;
	/* the driver may only shrink queue_size (4.1.4.3.2): refuse a ring
	 * larger than the device said it handles (blk's seg_max derives from it) */
	if (q->size > v->queue_max) {
		log_locked(v, q, "queue size %u above the maximum %u", q->size, v->queue_max);
		vpci_set_needs_reset(v);
		return;
	}
	pthread_mutex_lock(&q->lock);
	int rc = vq_enable(&q->vq, v->gm, q->size, q->desc, q->avail, q->used,
			   vpci_has(v, VIRTIO_RING_F_EVENT_IDX),
			   vpci_has(v, VIRTIO_RING_F_INDIRECT_DESC));
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		log_locked(v, q, "bad ring (%s)", strerror(-rc));
		vpci_set_needs_reset(v);
		return;
	}
	q->enabled = true;
	kick_bind(v, (unsigned)(q - v->q));
}

static void common_set(struct vpci *v, unsigned off, uint64_t val)
{
	struct vpci_queue *q = v->qsel < v->nq ? &v->q[v->qsel] : NULL;
	bool qw = q && !q->enabled; /* queue registers freeze once enabled */

	switch (off) {
	case CC_DFSELECT: v->dfselect = (uint32_t)val; break;
	case CC_GFSELECT: v->gfselect = (uint32_t)val; break;
	case CC_GF:
		/* bits we did not offer are refused at FEATURES_OK, not here */
		if (v->gfselect < 2 && !(v->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			unsigned sh = 32 * v->gfselect;
			uint64_t f = v->driver_features & ~(0xffffffffull << sh);
			f |= (val & 0xffffffffull) << sh;
			__atomic_store_n(&v->driver_features, f, __ATOMIC_RELAXED);
		}
		break;
	case CC_MSIX:
		/* a vector we do not have means "none", so msix_fire_locked
		 * never indexes past the table */
		__atomic_store_n(&v->msix_config,
				 val < VPCI_MSIX_VECTORS ? (uint16_t)val : VPCI_NO_VECTOR,
				 __ATOMIC_RELAXED);
		break;
	case CC_STATUS: set_status_locked(v, (uint8_t)val); break;
	/* any qsel is kept (reads then see zeros, writes go nowhere) */
	case CC_QSEL: v->qsel = (uint16_t)val; break;
	/* size and ring addresses are taken as is: queue_enable_locked and
	 * vq_enable vet them all before anything reads a ring */
	case CC_QSIZE: if (qw) q->size = (uint16_t)val; break;
	case CC_QVEC:
		if (q)
			__atomic_store_n(&q->vector,
					 val < VPCI_MSIX_VECTORS ? (uint16_t)val : VPCI_NO_VECTOR,
					 __ATOMIC_RELAXED);
		break;
	case CC_QENABLE: if (q && val == 1) queue_enable_locked(v, q); break;
	case CC_QDESC: if (qw) q->desc = val; break;
	case CC_QAVAIL: if (qw) q->avail = val; break;
	case CC_QUSED: if (qw) q->used = val; break;
	default: break; /* read-only */
	}
}

static void common_read(struct vpci *v, uint64_t off, void *data, unsigned len)
{
	uint8_t b[CC_SIZE];
	memset(data, 0, len);
	if (off >= CC_SIZE)
		return;
	pthread_mutex_lock(&v->lock);
	common_snapshot(v, b);
	pthread_mutex_unlock(&v->lock);
	memcpy(data, b + off, off + len <= CC_SIZE ? len : CC_SIZE - off);
}

static void common_write(struct vpci *v, uint64_t off, const void *data, unsigned len)
{
	uint8_t b[CC_SIZE];
	if (off >= CC_SIZE)
		return;
	if (off + len > CC_SIZE)
		len = (unsigned)(CC_SIZE - off);
	pthread_mutex_lock(&v->lock);
	common_snapshot(v, b);
	memcpy(b + off, data, len);
	/* a write may cover part of a field (64-bit addresses come as two
	 * 32-bit halves) or several fields: set each field it touches */
	for (unsigned i = 0; i < ARRAY_SIZE(cc_fields); i++) {
		unsigned fo = cc_fields[i].off, fl = cc_fields[i].len;
		if (fo + fl <= off || fo >= off + len)
			continue;
		common_set(v, fo, get(b + fo, fl));
	}
	pthread_mutex_unlock(&v->lock);
}

void vpci_notify(struct vpci *v, unsigned qi)
{
	if (qi >= v->nq)
		return; /* the guest names the queue: one we do not have is ignored */
	struct vpci_queue *q = &v->q[qi];
	if (q->kick_fd >= 0) {
		/* the device works on its event thread, never here; an
		 * enabled queue whose kick still traps lost its binding
		 * (the BAR moved): bind at the new address */
		efd_signal(q->kick_fd);
		if (__atomic_load_n(&q->enabled, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&q->kick_bound, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&q->kick_refused, __ATOMIC_RELAXED))
			kick_bind(v, qi);
	} else if (v->ops->notify) {
		v->ops->notify(v->dev, qi);
	}
}

void vpci_common_read(struct vpci *v, unsigned off, void *data, unsigned len)
{
	common_read(v, off, data, len);
}

void vpci_common_write(struct vpci *v, unsigned off, const void *data, unsigned len)
{
	common_write(v, off, data, len);
}

/* The guest picks offset and width: only whole accesses inside the
 * device's config reach it. */
static bool devcfg_fits(const struct vpci *v, uint64_t off, unsigned len)
{
	return off < v->cfg_size && len <= v->cfg_size - off;
}

void vpci_devcfg_read(struct vpci *v, uint64_t off, void *data, unsigned len)
{
	if (devcfg_fits(v, off, len) && v->ops->cfg_read)
		v->ops->cfg_read(v->dev, (unsigned)off, data, len);
}

void vpci_devcfg_write(struct vpci *v, uint64_t off, const void *data, unsigned len)
{
	if (devcfg_fits(v, off, len) && v->ops->cfg_write)
		v->ops->cfg_write(v->dev, (unsigned)off, data, len);
}

uint8_t vpci_isr_peek(struct vpci *v)
{
	pthread_mutex_lock(&v->irq_lock);
	uint8_t isr = v->isr;
	pthread_mutex_unlock(&v->irq_lock);
	return isr;
}

void vpci_isr_ack(struct vpci *v, uint8_t bits)
{
	pthread_mutex_lock(&v->irq_lock);
	v->isr &= (uint8_t)~bits;
	if (!v->isr)
		lower_locked(v);
	pthread_mutex_unlock(&v->irq_lock);
}

int vpci_queue_disable(struct vpci *v, unsigned qi)
{
	int rc = 0;
	pthread_mutex_lock(&v->lock);
	if (qi >= v->nq || !v->q[qi].enabled)
		goto out;
	/* once the device runs, its threads (or vhost) own the ring, and
	 * once it took a buffer something may still be in flight on it
	 * (a disk's I/O): only a reset, which quiesces the device, takes
	 * the ring back then */
	if (v->status & VIRTIO_CONFIG_S_DRIVER_OK) {
		rc = -EBUSY;
		goto out;
	}
	struct vpci_queue *q = &v->q[qi];
	pthread_mutex_lock(&q->lock);
	if (q->vq.last_avail) {
		pthread_mutex_unlock(&q->lock);
		rc = -EBUSY;
		goto out;
	}
	vq_reset(&q->vq);
	q->enabled = false;
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_lock(&v->ioev_lock);
	kick_unbind_locked(v, q);
	pthread_mutex_unlock(&v->ioev_lock);
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* --- BAR 0 --- */

static void msix_read(struct vpci *v, uint64_t off, void *data, unsigned len)
{
	memset(data, 0, len);
	pthread_mutex_lock(&v->irq_lock);
	if (off >= VPCI_MSIX_OFF && off - VPCI_MSIX_OFF + len <= sizeof(v->msix)) {
		memcpy(data, (uint8_t *)v->msix + (off - VPCI_MSIX_OFF), len);
	} else if (off >= VPCI_PBA_OFF && off - VPCI_PBA_OFF + len <= 8) {
		uint64_t pba = v->pba;
		for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++) {
			struct pollfd p = { .fd = v->vec[i].hold_fd, .events = POLLIN };
			/* a backend's write held back by the mask is pending */
			if (p.fd >= 0 && poll(&p, 1, 0) == 1)
				pba |= 1ull << i;
		}
		memcpy(data, (uint8_t *)&pba + (off - VPCI_PBA_OFF), len);
	}
	pthread_mutex_unlock(&v->irq_lock);
}

static void msix_write(struct vpci *v, uint64_t off, const void *data, unsigned len)
{
	/* the PBA is read-only; table entries take 4/8-byte aligned writes */
	if (off < VPCI_MSIX_OFF || off - VPCI_MSIX_OFF + len > sizeof(v->msix) ||
	    (len != 4 && len != 8) || off % len)
		return;
	pthread_mutex_lock(&v->irq_lock);
	unsigned vec = (unsigned)((off - VPCI_MSIX_OFF) / 16);
	uint32_t before[4];
	memcpy(before, v->msix[vec], sizeof(before));
	memcpy((uint8_t *)v->msix + (off - VPCI_MSIX_OFF), data, len);
	/* a new address/data reaches the KVM route before the next
	 * interrupt of that vector (no ioctl per 4-byte half) */
	if (memcmp(before, v->msix[vec], 12))
		v->vec[vec].dirty = true;
	bool was = before[3] & PCI_MSIX_ENTRY_CTRL_MASKBIT;
	bool now = v->msix[vec][3] & PCI_MSIX_ENTRY_CTRL_MASKBIT;
	if (!was && now && v->msix_enabled)
		v->stat_masks++;
	/* an unmasked vector gets its route now, before a backend is
	 * pointed at its irqfd below */
	if (was && !now && v->msix_enabled)
		(void)vec_commit_locked(v, (uint16_t)vec);
	backend_sync_locked(v, (uint16_t)vec);
	msix_flush_locked(v);
	pthread_mutex_unlock(&v->irq_lock);
}

static void bar_read(struct pci_dev *d, unsigned bar, uint64_t off, void *data, unsigned len)
{
	struct vpci *v = d->opaque;
	memset(data, 0, len);
	if (bar != 0)
		return;
	if (off < VPCI_ISR_OFF) {
		common_read(v, off - VPCI_COMMON_OFF, data, len);
	} else if (off < VPCI_DEVCFG_OFF) {
		if (off != VPCI_ISR_OFF)
			return;
		/* reading ISR acknowledges it and drops INTx */
		pthread_mutex_lock(&v->irq_lock);
		*(uint8_t *)data = v->isr;
		v->isr = 0;
		lower_locked(v);
		pthread_mutex_unlock(&v->irq_lock);
	} else if (off < VPCI_NOTIFY_OFF) {
		vpci_devcfg_read(v, off - VPCI_DEVCFG_OFF, data, len);
	} else if (off >= VPCI_MSIX_OFF) {
		msix_read(v, off, data, len);
	}
}

static void bar_write(struct pci_dev *d, unsigned bar, uint64_t off, const void *data, unsigned len)
{
	struct vpci *v = d->opaque;
	if (bar != 0)
		return;
	if (off < VPCI_ISR_OFF) {
		common_write(v, off - VPCI_COMMON_OFF, data, len);
	} else if (off >= VPCI_DEVCFG_OFF && off < VPCI_NOTIFY_OFF) {
		vpci_devcfg_write(v, off - VPCI_DEVCFG_OFF, data, len);
	} else if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_REGION_SIZE) {
		off -= VPCI_NOTIFY_OFF;
		unsigned qi = (unsigned)(off / VPCI_NOTIFY_MULT);
		/* the written value is ignored: the address alone names the queue */
		if (off % VPCI_NOTIFY_MULT)
			return;
		vpci_notify(v, qi);
	} else if (off >= VPCI_MSIX_OFF) {
		msix_write(v, off, data, len);
	}
}

static void cfg_written(struct pci_dev *d, unsigned off, unsigned len)
{
	struct vpci *v = d->opaque;
	/* BAR 0 moved or memory decoding changed: KVM's notify bindings are
	 * stale; the next notify that traps binds at the new address */
	if ((off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) ||
	    (off < PCI_BASE_ADDRESS_0 + 4 && off + len > PCI_BASE_ADDRESS_0))
		kicks_unbind(v, true);
	unsigned ctl = v->msix_cap + 2;
	if (off + len <= ctl || off > ctl + 1)
		return;
	uint16_t c = (uint16_t)get(d->cfg + ctl, 2);
	pthread_mutex_lock(&v->irq_lock);
	bool was = !v->msix_enabled || v->msix_masked;
	v->msix_enabled = c & PCI_MSIX_FLAGS_ENABLE;
	v->msix_masked = c & PCI_MSIX_FLAGS_MASKALL;
	if (!was && (!v->msix_enabled || v->msix_masked))
		v->stat_masks++;
	if (v->msix_enabled)
		lower_locked(v);
	for (uint16_t i = 0; i < VPCI_MSIX_VECTORS; i++)
		backend_sync_locked(v, i);
	msix_flush_locked(v);
	pthread_mutex_unlock(&v->irq_lock);
}

static const struct pci_dev_ops vpci_pci_ops = {
	.bar_read = bar_read, .bar_write = bar_write, .cfg_written = cfg_written,
};

static int add_vcap(struct vpci *v, uint8_t type, uint32_t off, uint32_t len, unsigned caplen)
{
	int at = pci_dev_add_cap(&v->pci, PCI_CAP_ID_VNDR, caplen);
	if (at < 0)
		return at;
	uint8_t *c = v->pci.cfg + at;
	c[2] = (uint8_t)caplen;
	c[3] = type;
	c[4] = 0; /* BAR 0 */
	put(c + 8, off, 4);
	put(c + 12, len, 4);
	return at;
}

int vpci_init(struct vpci *v, uint16_t type, uint32_t class_code, uint64_t features,
	      unsigned nq, uint16_t queue_max, unsigned cfg_size,
	      const struct vpci_ops *ops, void *dev, const struct gmem *gm,
	      const struct dev_irq_ops *irq)
{
	int at;

	if (nq == 0 || nq > VPCI_MAX_QUEUES || cfg_size > VPCI_REGION_SIZE ||
	    !(features >> VIRTIO_F_VERSION_1 & 1) || queue_max == 0 ||
	    queue_max > VQ_MAX_SIZE || (queue_max & (queue_max - 1)))
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->ops = ops;
	v->dev = dev;
	v->gm = gm;
	if (irq)
		v->irq = *irq;
	v->type = type;
	v->features = features;
	v->nq = nq;
	v->cfg_size = cfg_size;
	v->queue_max = queue_max;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->irq_lock, NULL);
	pthread_mutex_init(&v->ioev_lock, NULL);
	for (unsigned i = 0; i < nq; i++) {
		pthread_mutex_init(&v->q[i].lock, NULL);
		v->q[i].size = queue_max;
		v->q[i].vector = VPCI_NO_VECTOR;
		v->q[i].kick_fd = -1;
		v->q[i].owner = v;
		v->q[i].backend_fd = -1;
		v->q[i].relay_fd = -1;
	}
	for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++)
		v->vec[i] = (struct vpci_vec){ .gsi = -1, .call_fd = -1, .hold_fd = -1 };
	v->intx_fd = v->intx_resample_fd = -1;
	v->msix_config = VPCI_NO_VECTOR;
	for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++)
		v->msix[i][3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;

	struct pci_dev *p = &v->pci;
	/* modern-only ids: 0x1040 + type, revision 1, subsystem >= 0x40 */
	pci_dev_init(p, VPCI_VENDOR, (uint16_t)(0x1040 + type), class_code,
		     VPCI_VENDOR, 0x40);
	p->cfg[PCI_REVISION_ID] = 1;
	p->ops = &vpci_pci_ops;
	p->opaque = v;
	int rc = pci_dev_add_bar(p, 0, VPCI_BAR_SIZE);
	if (rc)
		goto err;
	if ((rc = add_vcap(v, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF, CC_SIZE, 16)) < 0 ||
	    (rc = add_vcap(v, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, 1, 16)) < 0 ||
	    (rc = add_vcap(v, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVCFG_OFF,
			   cfg_size ? cfg_size : 4, 16)) < 0 ||
	    (rc = add_vcap(v, VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY_OFF,
			   VPCI_NOTIFY_MULT * nq, 20)) < 0)
		goto err;
	put(p->cfg + rc + 16, VPCI_NOTIFY_MULT, 4);
	at = pci_dev_add_cap(p, PCI_CAP_ID_MSIX, 12);
	if (at < 0) {
		rc = at;
		goto err;
	}
	v->msix_cap = (unsigned)at;
	put(p->cfg + at + 2, VPCI_MSIX_VECTORS - 1, 2);
	put(p->cfg + at + 4, VPCI_MSIX_OFF | 0 /* BIR 0 */, 4);
	put(p->cfg + at + 8, VPCI_PBA_OFF | 0, 4);
	put(p->wmask + at + 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	return 0;
err:
	vpci_destroy(v);
	return rc;
}

void vpci_set_slot(struct vpci *v, unsigned slot)
{
	v->gsi = pci_slot_gsi(slot);
}

void vpci_set_mmio(struct vpci *v, uint64_t base, unsigned gsi)
{
	v->mmio_base = base;
	v->gsi = gsi;
}

/* --- fast paths --- */

static void kick_ready(void *opaque, uint32_t events)
{
	struct vpci_queue *q = opaque;
	struct vpci *v = q->owner;
	uint64_t cnt;
	(void)events;
	/* any number of kicks since the last read mean one look at the ring */
	if (read(q->kick_fd, &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
		return;
	if (v->ops->notify)
		v->ops->notify(v->dev, (unsigned)(q - v->q));
}

static void relay_ready(void *opaque, uint32_t events)
{
	struct vpci_queue *q = opaque;
	struct vpci *v = q->owner;
	(void)events;
	/* any number of backend signals since the last read: one interrupt */
	if (efd_take(q->relay_fd))
		vpci_signal(v, (unsigned)(q - v->q));
}

static void intx_resampled(void *opaque, uint32_t events)
{
	struct vpci *v = opaque;
	uint64_t cnt;
	(void)events;
	if (read(v->intx_resample_fd, &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
		return;
	/* the guest EOIed and KVM dropped the line: still pending? */
	pthread_mutex_lock(&v->irq_lock);
	v->line = 0;
	if (v->isr && !v->msix_enabled) {
		v->line = 1;
		efd_signal(v->intx_fd);
	}
	pthread_mutex_unlock(&v->irq_lock);
}

static int setup_intx(struct vpci *v, struct event_loop *ev, struct err *e)
{
	if (!v->irq.irqfd)
		return 0;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0 || rfd < 0)
		goto none;
	if (v->irq.irqfd(v->irq.opaque, v->gsi, fd, rfd, true))
		goto none; /* no KVM_CAP_IRQFD_RESAMPLE: KVM_IRQ_LINE stays */
	v->intx_resample_fd = rfd;
	int rc = event_add(ev, rfd, EPOLLIN, intx_resampled, v, e);
	if (rc) {
		(void)v->irq.irqfd(v->irq.opaque, v->gsi, fd, -1, false);
		v->intx_resample_fd = -1;
		close(fd);
		close(rfd);
		return rc;
	}
	pthread_mutex_lock(&v->irq_lock);
	v->intx_fd = fd;
	pthread_mutex_unlock(&v->irq_lock);
	return 0;
none:
	if (fd >= 0)
		close(fd);
	if (rfd >= 0)
		close(rfd);
	return 0;
}

int vpci_start(struct vpci *v, struct event_loop *ev, struct err *e)
{
	int rc;
	for (unsigned i = 0; i < v->nq; i++) {
		struct vpci_queue *q = &v->q[i];
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0) {
			rc = errf(e, errno, "virtio: eventfd: %s", strerror(errno));
			goto err;
		}
		rc = event_add(ev, q->kick_fd, EPOLLIN, kick_ready, q, e);
		if (rc) {
			close(q->kick_fd);
			q->kick_fd = -1;
			goto err;
		}
		if (!v->ops->set_call)
			continue; /* no backend will ever need it */
		q->relay_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->relay_fd < 0) {
			rc = errf(e, errno, "virtio: eventfd: %s", strerror(errno));
			goto err;
		}
		rc = event_add(ev, q->relay_fd, EPOLLIN, relay_ready, q, e);
		if (rc) {
			close(q->relay_fd);
			q->relay_fd = -1;
			goto err;
		}
	}
	rc = setup_intx(v, ev, e);
	if (rc)
		goto err;
	v->ev = ev;
	pthread_mutex_lock(&v->irq_lock);
	v->started = true;
	pthread_mutex_unlock(&v->irq_lock);
	return 0;
err:
	/* fds already in the loop stay open until vpci_stop, after the
	 * caller stops the loop */
	return rc;
}

void vpci_stop(struct vpci *v)
{
	kicks_unbind(v, false);
	pthread_mutex_lock(&v->irq_lock);
	v->started = false;
	for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++) {
		struct vpci_vec *x = &v->vec[i];
		if (x->call_fd >= 0) {
			(void)v->irq.irqfd(v->irq.opaque, (unsigned)x->gsi, x->call_fd, -1, false);
			close(x->call_fd);
		}
		if (x->hold_fd >= 0)
			close(x->hold_fd);
		if (x->gsi >= 0 && v->irq.msi_route_free)
			v->irq.msi_route_free(v->irq.opaque, x->gsi);
		*x = (struct vpci_vec){ .gsi = -1, .call_fd = -1, .hold_fd = -1 };
	}
	for (unsigned i = 0; i < v->nq; i++)
		v->q[i].backend_fd = -1;
	if (v->intx_fd >= 0) {
		(void)v->irq.irqfd(v->irq.opaque, v->gsi, v->intx_fd, -1, false);
		close(v->intx_fd);
		close(v->intx_resample_fd);
		v->intx_fd = v->intx_resample_fd = -1;
	}
	pthread_mutex_unlock(&v->irq_lock);
	for (unsigned i = 0; i < v->nq; i++) {
		if (v->q[i].kick_fd >= 0)
			close(v->q[i].kick_fd);
		if (v->q[i].relay_fd >= 0)
			close(v->q[i].relay_fd);
		v->q[i].kick_fd = v->q[i].relay_fd = -1;
		v->q[i].owner = v;
	}
}

int vpci_queue_kick_fd(struct vpci *v, unsigned q)
{
	return q < v->nq ? v->q[q].kick_fd : -1;
}

int vpci_queue_pause_kick(struct vpci *v, unsigned q, bool pause)
{
	if (q >= v->nq || !v->ev || v->q[q].kick_fd < 0)
		return -ENOENT;
	return event_pause(v->ev, v->q[q].kick_fd, pause);
}

int vpci_queue_backend(struct vpci *v, unsigned q, bool on)
{
	if (q >= v->nq || !v->ops->set_call)
		return -EOPNOTSUPP;
	struct vpci_queue *pq = &v->q[q];
	int rc = 0;
	pthread_mutex_lock(&v->irq_lock);
	if (!on) {
		if (pq->backend_fd >= 0) {
			uint16_t vec = pq->backend_vec;
			pq->backend_fd = -1;
			/* the backend stopped: what it left in the relay is
			 * signalled by the loop, what it left in the hold fd is
			 * pending */
			if (vec < VPCI_MSIX_VECTORS && efd_take(v->vec[vec].hold_fd)) {
				v->pba |= 1u << vec;
				v->stat_held++;
			}
			msix_flush_locked(v);
		}
		goto out;
	}
	uint16_t vec = __atomic_load_n(&pq->vector, __ATOMIC_RELAXED);
	if (!v->msix_enabled && pq->relay_fd >= 0) {
		/* INTx (virtio-mmio too) needs the ISR set with each
		 * interrupt, which only we can do: the backend writes the
		 * relay, and the loop sets the ISR and raises the line */
		pq->backend_vec = VPCI_NO_VECTOR;
		pq->backend_fd = pq->relay_fd;
		v->ops->set_call(v->dev, q, pq->backend_fd);
		goto out;
	}
	if (!v->msix_enabled || vec >= VPCI_MSIX_VECTORS || !vec_commit_locked(v, vec)) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	struct vpci_vec *x = &v->vec[vec];
	if (x->hold_fd < 0) {
		x->hold_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (x->hold_fd < 0) {
			rc = -errno;
			goto out;
		}
	}
	pq->backend_vec = vec;
	pq->backend_fd = vec_masked(v, vec) ? x->hold_fd : x->call_fd;
	/* under irq_lock: no mask or unmask can slip in between */
	v->ops->set_call(v->dev, q, pq->backend_fd);
out:
	pthread_mutex_unlock(&v->irq_lock);
	return rc;
}

void vpci_msix_stats(struct vpci *v, uint64_t *masks, uint64_t *held)
{
	pthread_mutex_lock(&v->irq_lock);
	*masks = v->stat_masks;
	*held = v->stat_held;
	pthread_mutex_unlock(&v->irq_lock);
}

/* A lock for a report: a thread stuck while holding it is itself the
 * news, so wait a moment, then report without it. */
static bool lock_briefly(pthread_mutex_t *m, unsigned wait_ms)
{
	struct timespec t = deadline_ms(wait_ms);
	return pthread_mutex_timedlock(m, &t) == 0;
}

void vpci_dump(struct vpci *v, FILE *f, const char *name, unsigned wait_ms)
{
	uint32_t ctrl[VPCI_MSIX_VECTORS], pba;
	bool backend[VPCI_MAX_QUEUES];

	/* the interrupt state first, copied and let go: the data path takes
	 * a queue lock and then irq_lock, so never hold irq_lock while
	 * waiting for a queue lock */
	bool irq = lock_briefly(&v->irq_lock, wait_ms);
	fprintf(f, "  %s: status 0x%x%s, %s, isr 0x%x, line %d, pba 0x%x%s\n", name,
		__atomic_load_n(&v->status, __ATOMIC_RELAXED),
		__atomic_load_n(&v->needs_reset, __ATOMIC_RELAXED) ? " (needs reset)" : "",
		v->mmio_base ? "virtio-mmio" : !v->msix_enabled ? "INTx" :
		v->msix_masked ? "MSI-X (all masked)" : "MSI-X",
		v->isr, v->line, v->pba, irq ? "" : " (irq lock held)");
	pba = v->pba;
	for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++)
		ctrl[i] = v->msix[i][3];
	for (unsigned i = 0; i < v->nq; i++)
		backend[i] = v->q[i].backend_fd >= 0;
	if (irq)
		pthread_mutex_unlock(&v->irq_lock);

	for (unsigned i = 0; i < v->nq; i++) {
		struct vpci_queue *q = &v->q[i];
		uint16_t vec = __atomic_load_n(&q->vector, __ATOMIC_RELAXED);
		bool ql = lock_briefly(&q->lock, wait_ms);
		fprintf(f, "    %s: ", q->vq.name ? q->vq.name : "queue");
		if (vec < VPCI_MSIX_VECTORS)
			fprintf(f, "vector %u%s%s, ", vec,
				ctrl[vec] & PCI_MSIX_ENTRY_CTRL_MASKBIT ? " masked" : "",
				pba & (1u << vec) ? " pending" : "");
		if (backend[i])
			fprintf(f, "backend-owned, ");
		if (ql) {
			vq_dump(&q->vq, f);
			pthread_mutex_unlock(&q->lock);
		} else {
			/* a reset may be moving the rings: ours only, racy */
			fprintf(f, "queue lock held (the ring is not read), taken %u, used %u\n",
				__atomic_load_n(&q->vq.last_avail, __ATOMIC_RELAXED),
				__atomic_load_n(&q->vq.used_idx, __ATOMIC_RELAXED));
		}
	}
}

void vpci_destroy(struct vpci *v)
{
	if (v->nq)
		vpci_stop(v);
	for (unsigned i = 0; i < v->nq; i++)
		pthread_mutex_destroy(&v->q[i].lock);
	pthread_mutex_destroy(&v->ioev_lock);
	pthread_mutex_destroy(&v->irq_lock);
	pthread_mutex_destroy(&v->lock);
	v->nq = 0;
}

/* virtio-pci modern transport (virtio 1.x, 4.1): one 32-bit memory BAR
 * holding common cfg, ISR, device cfg, notify and the MSI-X table + PBA.
 * Devices plug in through struct vpci_ops and see queues, guest memory
 * and vpci_signal() only.
 *
 * Locks, always taken in this order: v->lock (transport state) ->
 * q[i].lock (one queue, held by the device while it works the queue) ->
 * v->irq_lock (ISR, INTx level, MSI-X table/PBA, vector routes) ->
 * v->ioev_lock (which kick eventfds KVM has bound). The PCI bus lock is
 * taken before irq_lock and ioev_lock only (MSI-X control, BAR moves).
 *
 * Fast paths, after vpci_start(): each queue has a kick eventfd, bound
 * with KVM_IOEVENTFD to its notify address while the queue is enabled,
 * and read by an event-loop thread that calls ops->notify; a notify
 * that still reaches us as MMIO (no ioeventfd, BAR moved) is forwarded
 * to the same eventfd, so ops->notify never runs on a vCPU. Each MSI-X
 * vector in use has a KVM MSI route and an irqfd ("call" eventfd); INTx
 * goes through a resample irqfd. Without vpci_start() (unit tests,
 * fuzzers) or without the KVM capabilities, notify runs inline and
 * interrupts go through dev_irq_ops.msi / irq_line.
 *
 * MSI-X masking: our own signals check the mask under irq_lock and set
 * the PBA bit instead. A backend that writes an eventfd itself (vhost's
 * worker, vpci_queue_backend) cannot check it, so it is never given a
 * masked vector's irqfd: it writes the vector's hold eventfd while the
 * vector is masked (ops->set_call switches it), which reads as pending in
 * the PBA and is moved into the PBA and sent at the unmask. The irqfds
 * stay assigned throughout (no KVM_IRQFD deassign on a mask). Without
 * MSI-X (INTx, virtio-mmio) a backend writes the queue's relay eventfd
 * instead, and the event loop sets the ISR and raises the line for it.
 *
 * The same state also backs the virtio-mmio transport (virtio_mmio.c,
 * after vpci_set_mmio): its registers map onto the common cfg fields
 * here, MSI-X stays off, interrupts take the INTx path (ISR + a level
 * line, the resample irqfd) on the device's own GSI, and every queue's
 * kick is bound at QueueNotify with the queue index as datamatch. */
#ifndef KVMLAB_VMM_VIRTIO_PCI_H
#define KVMLAB_VMM_VIRTIO_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "event.h"
#include "irq.h"
#include "pci.h"
#include "virtqueue.h"

#define VPCI_MAX_QUEUES 17 /* virtio-net: 8 queue pairs + control */
#define VPCI_MSIX_VECTORS 18 /* config + up to 17 queues */
#define VPCI_NO_VECTOR 0xffff

/* BAR 0 layout. */
#define VPCI_BAR_SIZE     0x8000u
#define VPCI_COMMON_OFF   0x0000u
#define VPCI_ISR_OFF      0x1000u
#define VPCI_DEVCFG_OFF   0x2000u
#define VPCI_NOTIFY_OFF   0x3000u
#define VPCI_NOTIFY_MULT  4u
#define VPCI_MSIX_OFF     0x4000u
#define VPCI_PBA_OFF      0x5000u
#define VPCI_REGION_SIZE  0x1000u

struct vpci_ops {
	/* Device config space; off + len <= cfg_size is guaranteed. */
	void (*cfg_read)(void *dev, unsigned off, void *data, unsigned len);
	void (*cfg_write)(void *dev, unsigned off, const void *data, unsigned len);
	/* The driver kicked queue q (the event thread after vpci_start, else
	 * the caller of the MMIO write; no vpci lock held). */
	void (*notify)(void *dev, unsigned q);
	/* The driver asks for FEATURES_OK with these (already a subset of
	 * the offered ones): 0 accepts, -errno refuses. */
	int (*set_features)(void *dev, uint64_t features);
	/* Device reset; called with v->lock and every queue lock held. */
	void (*reset)(void *dev);
	/* The driver set DRIVER_OK: queues are set up and it is running
	 * (v->lock held, no queue lock). Optional. */
	void (*driver_ok)(void *dev);
	/* Queue q's backend (vpci_queue_backend) must write eventfd fd from
	 * now on. Called with irq_lock held, also on a vCPU thread handling
	 * a mask write: take no vpci lock. Return only once the backend can
	 * no longer write the fd it had (vhost swaps its call fd under the
	 * ring's mutex, which its worker holds while it signals): vpci looks
	 * at the old one right after. Optional (no backend then). */
	void (*set_call)(void *dev, unsigned q, int fd);
};

struct vpci;

struct vpci_queue {
	pthread_mutex_t lock;
	struct vpci *owner; /* for the event loop's callback */
	struct vq vq;
	/* transport registers, owned by v->lock */
	uint16_t size, vector;
	bool enabled;
	uint64_t desc, avail, used;
	int kick_fd;       /* eventfd, -1 before vpci_start */
	bool kick_bound;   /* ioev_lock: KVM writes kick_fd on notify at kick_addr */
	bool kick_refused; /* ioev_lock: KVM said no; retried after a BAR move */
	uint64_t kick_addr;
	/* irq_lock: the fd the queue's backend writes (-1: no backend), on
	 * the vector it had when the backend took it (VPCI_NO_VECTOR: the
	 * relay below) */
	int backend_fd;
	uint16_t backend_vec;
	/* eventfd a backend writes when interrupts go through us (INTx:
	 * the ISR must be set first); our loop signals for it. -1: none
	 * (before vpci_start, or a device without ops->set_call) */
	int relay_fd;
};

/* One MSI-X vector's in-kernel path (irq_lock). */
struct vpci_vec {
	int gsi;     /* its KVM MSI route, -1 none yet */
	int call_fd; /* irqfd on gsi, -1 none */
	int hold_fd; /* eventfd backends write while the vector is masked, -1 none */
	bool dirty;  /* table entry changed since the route was written */
	bool failed; /* KVM refused: this vector uses irq.msi */
};

struct vpci {
	struct pci_dev pci;
	const struct vpci_ops *ops;
	void *dev;
	const struct gmem *gm;
	struct dev_irq_ops irq;
	unsigned gsi;
	uint16_t type;      /* virtio device id */
	uint64_t mmio_base; /* 0: PCI; else the virtio-mmio registers' address */

	pthread_mutex_t lock;
	uint64_t features, driver_features;
	uint32_t dfselect, gfselect;
	uint8_t status, generation;
	uint16_t qsel, msix_config;
	unsigned nq, cfg_size;
	uint16_t queue_max;
	unsigned logged; /* lines logged about driver errors (bounded) */
	struct vpci_queue q[VPCI_MAX_QUEUES];

	pthread_mutex_t irq_lock;
	uint32_t msix[VPCI_MSIX_VECTORS][4]; /* addr lo, addr hi, data, ctrl */
	uint32_t pba;
	bool msix_enabled, msix_masked;
	uint8_t isr;
	int line;
	unsigned msix_cap;
	int needs_reset; /* atomic: a queue broke */

	/* in-kernel paths (see the top) */
	bool started;
	struct event_loop *ev; /* the loop serving the kick eventfds */
	struct vpci_vec vec[VPCI_MSIX_VECTORS];
	int intx_fd, intx_resample_fd; /* resample irqfd on gsi, -1 none */
	pthread_mutex_t ioev_lock;
	/* irq_lock: vector mask transitions seen, and backend interrupts
	 * held back by a mask (sent at the unmask) */
	uint64_t stat_masks, stat_held;
};

/* type: virtio device id (1 net, 2 blk); features: everything offered,
 * VIRTIO_F_VERSION_1 included; queue_max: power of two <= VQ_MAX_SIZE. */
int vpci_init(struct vpci *v, uint16_t type, uint32_t class_code, uint64_t features,
	      unsigned nq, uint16_t queue_max, unsigned cfg_size,
	      const struct vpci_ops *ops, void *dev, const struct gmem *gm,
	      const struct dev_irq_ops *irq) WUR;
/* Call once the PCI slot is known (sets the INTx GSI). */
void vpci_set_slot(struct vpci *v, unsigned slot);
/* Or, instead of a PCI slot: the virtio-mmio transport, registers at
 * base (virtio_mmio.c serves them), interrupts on gsi. */
void vpci_set_mmio(struct vpci *v, uint64_t base, unsigned gsi);
/* Turn on the fast paths: kick eventfds served by loop ev (which may be
 * running already), the INTx resample irqfd, MSI routes + irqfds as the
 * guest programs vectors. Call after vpci_set_slot(); missing KVM
 * capabilities are not an error (the slow paths stay). */
int vpci_start(struct vpci *v, struct event_loop *ev, struct err *e) WUR;
/* Unbind everything from KVM, close the eventfds. The event loop that
 * serves them must be stopped first. Also done by vpci_destroy(). */
void vpci_stop(struct vpci *v);
void vpci_destroy(struct vpci *v);
/* For vhost-style users (VHOST_SET_VRING_KICK): queue q's kick eventfd
 * (what the guest's notify writes; -1 before vpci_start). */
int vpci_queue_kick_fd(struct vpci *v, unsigned q);
/* A backend takes (on) or gives back (off) queue q's interrupts: it
 * writes whatever fd ops->set_call gives it, now (before on returns) and
 * at every mask/unmask of the vector q uses now: the vector's irqfd while
 * unmasked, its hold eventfd while masked; with MSI-X off, the queue's
 * relay eventfd. Off: after the backend stopped writing; what it left
 * held stays pending in the PBA. -EOPNOTSUPP: MSI-X on and q has no
 * vector or KVM has no route for it, MSI-X off before vpci_start, or no
 * ops->set_call (then interrupt through vpci_signal). A vector the driver points q at
 * later is not followed: take the queue again. Caller may hold q's lock. */
int vpci_queue_backend(struct vpci *v, unsigned q, bool on) WUR;
/* Stop (pause) or resume reading queue q's kick eventfd here: while
 * paused, a vhost backend is its only reader. -ENOENT before vpci_start. */
int vpci_queue_pause_kick(struct vpci *v, unsigned q, bool pause) WUR;
/* Used buffers were pushed on queue q: interrupt the driver (MSI-X vector
 * of the queue, or INTx + ISR bit 0). Caller holds q's lock. */
void vpci_signal(struct vpci *v, unsigned q);
/* Pop every chain queue qi has (qi < nq), serve each (the return value is
 * the used length: bytes written into the chain), then signal once. A
 * malformed ring sets NEEDS_RESET. Takes q's lock; serve gets ops' dev. */
void vpci_drain(struct vpci *v, unsigned qi,
		uint32_t (*serve)(void *dev, const struct vq_chain *c));
/* Device config changed (ISR bit 1 / msix_config vector). */
void vpci_config_changed(struct vpci *v);
/* A queue broke: show DEVICE_NEEDS_RESET and tell the driver. */
void vpci_set_needs_reset(struct vpci *v);
/* Negotiated feature bit? (stable after FEATURES_OK) */
bool vpci_has(const struct vpci *v, unsigned bit);
/* Vector masks the driver wrote (vector or function), and the backend
 * interrupts a mask held back and the unmask sent (for --stats). */
void vpci_msix_stats(struct vpci *v, uint64_t *masks, uint64_t *held);
/* For the virtio-mmio front: common cfg access (offsets and widths as
 * in virtio-pci's common cfg), device config (bounds-checked here), the
 * driver's notify of queue qi (any qi: unknown ones are ignored), the
 * ISR read without acknowledging it and the acknowledgment of bits
 * (the line drops once none is left), and QueueReady = 0: -EBUSY once
 * the driver set DRIVER_OK or the device took a buffer from the queue
 * (the device owns the ring until a reset). */
void vpci_common_read(struct vpci *v, unsigned off, void *data, unsigned len);
void vpci_common_write(struct vpci *v, unsigned off, const void *data, unsigned len);
void vpci_devcfg_read(struct vpci *v, uint64_t off, void *data, unsigned len);
void vpci_devcfg_write(struct vpci *v, uint64_t off, const void *data, unsigned len);
void vpci_notify(struct vpci *v, unsigned qi);
uint8_t vpci_isr_peek(struct vpci *v);
void vpci_isr_ack(struct vpci *v, uint8_t bits);
int vpci_queue_disable(struct vpci *v, unsigned qi) WUR;
/* Lines on f about the transport and each queue's ring (SIGQUIT, SIGUSR2):
 * where a stuck device stands. Waits at most wait_ms for each lock that is
 * held, then reports without it (and says so). */
void vpci_dump(struct vpci *v, FILE *f, const char *name, unsigned wait_ms);
#endif

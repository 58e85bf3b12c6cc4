/* virtio-rng (virtio 1.x 5.4, the entropy device): one request queue of
 * device-writable buffers, filled from the host's getrandom(2). No
 * config space and no features of its own. Requests are served on the
 * thread that runs notify (the device's event loop after vpci_start()). */
#ifndef KVMLAB_VMM_VIRTIO_RNG_H
#define KVMLAB_VMM_VIRTIO_RNG_H
#include <stdint.h>
#include <sys/types.h>
#include "virtio_pci.h"

#define VRNG_QUEUE_SIZE 64
/* What one request gets at most: the guest's driver asks for tens of
 * bytes at a time; a huge buffer must not hold the thread */
#define VRNG_MAX_REQ (64u << 10)

struct vrng {
	struct vpci vpci; /* first: the PCI layer hands us back this pointer */
	/* where the bytes come from: getrandom(2) unless a test says
	 * otherwise; returns bytes written or -errno, as getrandom does */
	ssize_t (*fill)(void *buf, size_t len);
	uint64_t bytes; /* served so far (queue lock) */
};

int vrng_init(struct vrng *r, const struct gmem *gm, const struct dev_irq_ops *irq) WUR;
void vrng_destroy(struct vrng *r);
#endif

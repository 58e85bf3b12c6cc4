/* How a device reaches the interrupt controller and the kernel's fast
 * paths. This sits below the devices (virtio_pci, virtio_net,
 * virtio_blk) and below devices.c that builds them: a device only ever
 * sees these callbacks and an opaque pointer, never the VM. */
#ifndef KVMLAB_VMM_IRQ_H
#define KVMLAB_VMM_IRQ_H
#include <stdbool.h>
#include <stdint.h>

struct dev_irq_ops {
	/* Deliver an MSI (message address/data as programmed by the guest). */
	int (*msi)(void *opaque, uint64_t addr, uint32_t data);
	/* Set a level-triggered IOAPIC line (GSI) to level 0/1. */
	int (*irq_line)(void *opaque, unsigned gsi, int level);

	/* Optional in-kernel paths; NULL (or -ENOTSUP) means "not here",
	 * and the device keeps using the calls above. 0 or -errno. */
	/* Bind (assign) or unbind eventfd fd to guest writes of len bytes
	 * (0: any length) at MMIO address addr; with datamatch only writes
	 * of value data count. */
	int (*ioeventfd)(void *opaque, uint64_t addr, unsigned len, bool datamatch,
			 uint64_t data, int fd, bool assign);
	/* Point MSI route gsi at addr/data; gsi < 0 allocates a new route.
	 * Returns the route's GSI or -errno. */
	int (*msi_route)(void *opaque, int gsi, uint64_t addr, uint32_t data);
	void (*msi_route_free)(void *opaque, int gsi);
	/* Bind (assign) or unbind eventfd fd to gsi: a write injects it. With
	 * resample_fd >= 0 the line is level-triggered: it stays up until the
	 * guest's EOI, which signals resample_fd. */
	int (*irqfd)(void *opaque, unsigned gsi, int fd, int resample_fd, bool assign);
	void *opaque;
};
#endif

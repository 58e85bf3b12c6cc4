/* The VMM core's one entry point into the PCI devices: it hands over the
 * buses, a guest-memory view and interrupt callbacks, nothing else. */
#ifndef KVMLAB_VMM_DEVICES_H
#define KVMLAB_VMM_DEVICES_H
#include <stdint.h>
#include "bus.h"
#include "dhcp.h"
#include "guestmem.h"
#include "util.h"

struct dev_irq_ops {
	/* Deliver an MSI (message address/data as programmed by the guest). */
	int (*msi)(void *opaque, uint64_t addr, uint32_t data);
	/* Set a level-triggered IOAPIC line (GSI) to level 0/1. */
	int (*irq_line)(void *opaque, unsigned gsi, int level);
	void *opaque;
};

struct dev_env {
	struct bus *pio, *mmio;
	const struct gmem *gm;
	struct dev_irq_ops irq;
};

struct dev_cfg {
	int tap_fd;            /* -1: no virtio-net */
	const char *disk_path; /* NULL: no virtio-blk */
	int disk_readonly;
	uint8_t mac[6];        /* virtio-net MAC address */
	const struct dhcp_lease *dhcp; /* non-NULL: answer the guest's DHCP
					* from this lease (copied) */
};

/* Registers PCI conf1 ports + host bridge + devices on the buses; starts
 * device threads. Call after the buses exist and before vCPUs run. */
int devices_setup(const struct dev_env *env, const struct dev_cfg *cfg, struct err *e) WUR;
void devices_stop(void);
#endif

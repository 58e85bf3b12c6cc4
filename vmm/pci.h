/* PCI bus 0 behind configuration mechanism #1 (ports 0xcf8/0xcfc), with
 * 32-bit memory BARs placed in the PCI hole. Config space is 256 bytes
 * per function; writes go through a per-byte writable mask, so BAR
 * sizing (write all-ones, read back the size mask) falls out of it. The
 * whole MMIO window is claimed once on the mmio bus and routed by the
 * BARs' current values, so a guest may move BARs freely. */
#ifndef KVMLAB_VMM_PCI_H
#define KVMLAB_VMM_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "bus.h"
#include "util.h"

#define PCI_MAX_SLOTS 32
#define PCI_NUM_BARS 6

struct pci_dev;

struct pci_dev_ops {
	/* BAR access: off within the BAR, len 1/2/4/8. Called without the
	 * PCI lock held. */
	void (*bar_read)(struct pci_dev *d, unsigned bar, uint64_t off, void *data, unsigned len);
	void (*bar_write)(struct pci_dev *d, unsigned bar, uint64_t off, const void *data, unsigned len);
	/* Optional: config bytes [off, off+len) changed (after the mask was
	 * applied). Called with the PCI lock held: take only leaf locks. */
	void (*cfg_written)(struct pci_dev *d, unsigned off, unsigned len);
};

struct pci_dev {
	uint8_t cfg[256];
	uint8_t wmask[256]; /* 1 bits are guest-writable */
	uint32_t bar_size[PCI_NUM_BARS]; /* 0: BAR unused */
	unsigned slot;
	const struct pci_dev_ops *ops;
	void *opaque;
	uint8_t cap_last; /* offset of the last capability, 0 if none */
	uint8_t cap_next; /* where the next capability goes */
	bool no_intx;     /* raises no interrupt: interrupt pin 0 */
};

struct pci_bus {
	pthread_mutex_t lock; /* config space and routing of every device */
	uint32_t addr;        /* the 0xcf8 register */
	struct pci_dev *dev[PCI_MAX_SLOTS];
	struct pci_dev host;  /* 00.0 */
	uint64_t mmio_next;   /* next free address for BAR placement */
};

/* Fill the standard header of d (type 0) before adding capabilities. */
void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint16_t sub_vendor, uint16_t sub_device);
/* Declare a 32-bit memory BAR of size bytes (power of two, >= 4 KiB). */
int pci_dev_add_bar(struct pci_dev *d, unsigned bar, uint32_t size) WUR;
/* Append a capability of len bytes (id at byte 0, next at byte 1 are
 * filled in); returns its config offset, or -ENOSPC. */
int pci_dev_add_cap(struct pci_dev *d, uint8_t id, unsigned len) WUR;

/* Set up the bus with its host bridge; claims the conf1 ports on pio and
 * the PCI MMIO window on mmio. b must stay valid while the buses are. */
int pci_bus_init(struct pci_bus *b, struct bus *pio, struct bus *mmio, struct err *e) WUR;
/* Put d into the first free slot, place its BARs, give it INTA# (unless
 * no_intx); returns the slot or -errno. */
int pci_bus_add(struct pci_bus *b, struct pci_dev *d, struct err *e) WUR;
/* The GSI a slot's INTA# is wired to (matches the DSDT's _PRT). */
unsigned pci_slot_gsi(unsigned slot);
/* Current base of a BAR if memory decoding is on, else 0. */
uint64_t pci_bar_base(const struct pci_dev *d, unsigned bar);
void pci_bus_destroy(struct pci_bus *b);

/* Bus ops, exposed so unit tests and fuzzers can drive them directly. */
extern const struct bus_ops pci_conf1_ops, pci_mmio_ops;
#endif

/* pvpanic as a PCI device (1b36:0011, QEMU's pvpanic-pci, Linux's
 * pvpanic-pci driver): how a guest without ACPI, which never finds the
 * QEMU0001 port, reports a panic. BAR 0's first byte is the same register
 * as the port's (power.c): it reads the events understood, and a write
 * with the "panicked" bit ends the VM with status 3. */
#ifndef KVMLAB_VMM_PVPANIC_PCI_H
#define KVMLAB_VMM_PVPANIC_PCI_H
#include "exit.h"
#include "pci.h"
#include "util.h"

#define PVPANIC_PCI_VENDOR 0x1b36
#define PVPANIC_PCI_DEVICE 0x0011

struct pvpanic_pci {
	struct pci_dev pci;
	struct exit_latch *exit;
};

/* Fill p's config space and BAR; then pci_bus_add(&p->pci). */
int pvpanic_pci_init(struct pvpanic_pci *p, struct exit_latch *exit) WUR;
#endif

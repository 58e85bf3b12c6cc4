/* The virtio-mmio transport (virtio 1.x, 4.2; register layout version 2)
 * for guests without PCI, as Firecracker's and QEMU microvm's kernels
 * are. One page of registers per device on the MMIO bus, over the same
 * transport state as virtio-pci (struct vpci, after vpci_set_mmio): the
 * registers map onto its common cfg, the device config follows at
 * 0x100, interrupts are the ISR plus a level line the driver
 * acknowledges through InterruptACK. The guest finds the devices in the
 * DSDT (LNRO0005, acpi.c) or on its command line (virtio_mmio.device=,
 * vmmio_cmdline), and the MP table wires their lines (mptable.c). */
#ifndef KVMLAB_VMM_VIRTIO_MMIO_H
#define KVMLAB_VMM_VIRTIO_MMIO_H
#include <stddef.h>
#include <stdint.h>
#include "bus.h"

#define VMMIO_MAGIC   0x74726976u /* "virt" */
#define VMMIO_VERSION 2u          /* virtio 1.x register layout */
#define VMMIO_VENDOR  0x4c4b564bu /* "KVLK": any value will do (4.2.2) */

/* Register on the MMIO bus with a struct vpci * as the opaque. */
extern const struct bus_ops vmmio_ops;

/* " virtio_mmio.device=4K@0xADDR:GSI" for devices 0..n-1 (layout.h),
 * for a kernel without ACPI. Returns the length written, -ENOSPC, or -EINVAL for
 * n above LAYOUT_VIRTIO_MMIO_MAX. */
int vmmio_cmdline(char *buf, size_t cap, unsigned n);
#endif

/* Intel MultiProcessor Specification 1.4 tables: how a guest booted
 * without ACPI (or with acpi=off) finds its CPUs and interrupt wiring. */
#ifndef KVMLAB_VMM_MPTABLE_H
#define KVMLAB_VMM_MPTABLE_H
#include <stddef.h>
#include <stdint.h>

#include "guestmem.h"
#include "util.h"

/* Floating pointer + configuration table at LAYOUT_MPTABLE; nmmio:
 * virtio-mmio devices 0..nmmio-1 (layout.h), whose lines it wires. */
int mptable_write(const struct gmem *gm, unsigned ncpus, unsigned nmmio, struct err *e) WUR;

/* Build both into buf (cap bytes) as if buf sat at guest address gpa.
 * Returns the bytes used, -EINVAL for ncpus outside 1..LAYOUT_MAX_CPUS (or too many nmmio),
 * -ENOSPC if cap is too small. */
int mptable_build(uint8_t *buf, size_t cap, uint64_t gpa, unsigned ncpus,
		  unsigned nmmio) WUR;

/* Bytes mptable_build needs for ncpus and nmmio. */
size_t mptable_size(unsigned ncpus, unsigned nmmio);

#define MP_ISA_BUS_ID 1
#define MP_PCI_BUS_ID 0
#define MP_PCI_SLOTS  32 /* INTx entries for slots 1..31, pins A-D */
#endif

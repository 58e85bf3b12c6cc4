/* ACPI tables for a hardware-reduced platform: RSDP -> XSDT -> FADT
 * (-> DSDT) and MADT. Enough for Linux to find N CPUs, the PCI host
 * bridge, COM1, pvpanic, virtio-mmio devices, and to power off (S5) and reset through I/O
 * ports the VMM watches (layout.h LAYOUT_PORT_ACPI_*). */
#ifndef KVMLAB_VMM_ACPI_H
#define KVMLAB_VMM_ACPI_H
#include <stddef.h>
#include <stdint.h>

#include "guestmem.h"
#include "util.h"

/* RSDP at LAYOUT_ACPI_RSDP, tables in [LAYOUT_ACPI_TABLES, LAYOUT_ACPI_END);
 * nmmio: virtio-mmio devices 0..nmmio-1 (layout.h) in the DSDT. */
int acpi_write(const struct gmem *gm, unsigned ncpus, unsigned nmmio, struct err *e) WUR;

/* The same into buf, which stands for guest memory from gpa on: RSDP
 * at buf[0], tables from buf[tables_off]. Returns the bytes used,
 * -EINVAL for ncpus outside 1..LAYOUT_MAX_CPUS, -ENOSPC if cap is short. */
int acpi_build(uint8_t *buf, size_t cap, uint64_t gpa, size_t tables_off,
	       unsigned ncpus, unsigned nmmio) WUR;

/* The DSDT's AML body alone (no table header), for tests. Returns its
 * length or -errno. */
int acpi_build_dsdt_aml(uint8_t *buf, size_t cap, unsigned nmmio) WUR;

/* What Linux writes to the sleep control register for S5:
 * SLP_TYP (bits 2-4) = the \_S5 package's first value, SLP_EN (bit 5). */
#define ACPI_S5_SLP_TYP 5
#define ACPI_RESET_VALUE 1
#endif

/* Every guest-physical address, I/O port and IRQ the VMM uses, in one
 * place. Nothing else in vmm/ may hard-code a guest address. */
#ifndef KVMLAB_VMM_LAYOUT_H
#define KVMLAB_VMM_LAYOUT_H

/* --- low memory (below 1 MiB) --- */
#define LAYOUT_GDT          0x00000500ULL /* 4 entries: null, tss, code64 (0x10 = __BOOT_CS), data (0x18 = __BOOT_DS) */
#define LAYOUT_IDT          0x00000520ULL /* empty IDT for the 64-bit entry */
#define LAYOUT_ZEROPAGE     0x00007000ULL /* struct boot_params */
#define LAYOUT_BOOT_STACK   0x00008ff0ULL /* initial RSP of the BSP (grows down to 0x8000) */
#define LAYOUT_PML4         0x00009000ULL /* identity page tables: PML4 */
#define LAYOUT_PDPT         0x0000a000ULL /* one PDPT */
#define LAYOUT_PD           0x0000b000ULL /* 4 PDs of 2 MiB pages: maps 4 GiB */
#define LAYOUT_PD_COUNT     4
#define LAYOUT_CMDLINE      0x00020000ULL /* kernel command line */
#define LAYOUT_CMDLINE_MAX  0x00010000ULL /* room we reserve; the kernel's own cmdline_size applies too */
#define LAYOUT_EBDA         0x0009fc00ULL /* e820-reserved from here to 1 MiB */
#define LAYOUT_EBDA_END     0x000a0000ULL
#define LAYOUT_BIOS_START   0x000e0000ULL /* ACPI RSDP is scanned for in e0000-fffff */
#define LAYOUT_ACPI_RSDP    0x000e0000ULL
#define LAYOUT_ACPI_TABLES  0x000e0040ULL /* XSDT, FADT, DSDT, MADT follow the RSDP */
#define LAYOUT_ACPI_END     0x000f0000ULL
/* The MP table for 255 CPUs (~6.5 KiB) does not fit in the 1 KiB EBDA;
 * Linux also scans f0000-fffff for the floating pointer, so it goes here. */
#define LAYOUT_MPTABLE      0x000f0000ULL
#define LAYOUT_MPTABLE_END  0x00100000ULL
#define LAYOUT_BIOS_END     0x00100000ULL

/* --- RAM --- */
#define LAYOUT_KERNEL       0x00100000ULL /* protected-mode kernel, 1 MiB */
#define LAYOUT_RAM_LOW_END  0xc0000000ULL /* RAM below 4 GiB stops at the PCI hole */
#define LAYOUT_HIGH_RAM     0x100000000ULL /* the rest of RAM resumes at 4 GiB */

/* --- the 32-bit PCI hole: MMIO only --- */
#define LAYOUT_PCI_HOLE     LAYOUT_RAM_LOW_END
#define LAYOUT_PCI_MMIO     0xc0000000ULL /* BARs are placed from here up */
#define LAYOUT_PCI_MMIO_END 0xfe000000ULL
/* virtio-mmio (--virtio-transport mmio): device i's registers at
 * LAYOUT_VIRTIO_MMIO + i * LAYOUT_VIRTIO_MMIO_SIZE, between the PCI
 * window and the IOAPIC */
#define LAYOUT_VIRTIO_MMIO      0xfe000000ULL
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ULL
#define LAYOUT_IOAPIC       0xfec00000ULL
#define LAYOUT_LAPIC        0xfee00000ULL
#define LAYOUT_KVM_IDENTITY_MAP 0xfeffc000ULL /* 1 page, KVM_SET_IDENTITY_MAP_ADDR */
#define LAYOUT_KVM_TSS      0xfeffd000ULL /* 3 pages, KVM_SET_TSS_ADDR */
#define LAYOUT_PCI_HOLE_END 0x100000000ULL

/* --- I/O ports --- */
#define LAYOUT_PORT_I8042_DATA 0x60
#define LAYOUT_PORT_I8042_CMD  0x64
#define LAYOUT_PORT_COM1       0x3f8
#define LAYOUT_PORT_PVPANIC    0x505  /* QEMU0001 pvpanic: guest writes 1 on panic */
#define LAYOUT_PORT_ACPI_SLEEP 0x600  /* hw-reduced ACPI sleep control (S5 = poweroff) */
#define LAYOUT_PORT_ACPI_SLEEP_STS 0x601
#define LAYOUT_PORT_ACPI_RESET 0x602  /* FADT reset register */
#define LAYOUT_PORT_PCI_CONF   0xcf8  /* configuration mechanism #1, 8 ports */

/* --- IRQs (IOAPIC pins / GSIs) --- */
#define LAYOUT_IRQ_COM1     4
/* PCI INTx: slot s, pin p (0 = INTA#) -> GSI LAYOUT_PCI_INTX_GSI(s, p),
 * on IOAPIC pins 16..19: above the ISA IRQs so they never share a pin
 * with an edge-triggered ISA line. The DSDT's _PRT and the MP table
 * describe exactly this; KVM's default routing maps GSI n to pin n. */
#define LAYOUT_IRQ_PCI_BASE 16
#define LAYOUT_PCI_INTX_GSI(slot, pin) (LAYOUT_IRQ_PCI_BASE + ((slot) + (pin) + 3) % 4)
#define LAYOUT_IOAPIC_PINS  24
/* The ACPI Generic Event Device's line (the power button): edge, active
 * high, on a pin neither the ISA devices nor PCI INTx use */
#define LAYOUT_IRQ_GED      20
/* virtio-mmio device i's line: level-triggered, active high, its own
 * pin. ISA pins no device here uses come first, so up to 8 devices work
 * even where only ISA IRQs are wired (a kernel without ACPI, MP table);
 * 21-23 follow (ACPI describes them; the MP table lists them too). */
#define LAYOUT_VIRTIO_MMIO_MAX  11
#define LAYOUT_VIRTIO_MMIO_GSI(i) \
	((unsigned)(unsigned char)"\x05\x06\x07\x0a\x0b\x0e\x0f\x03\x15\x16\x17"[(i)])

#define LAYOUT_MAX_CPUS     255
#endif

/* MP table: one floating pointer, then the configuration table right
 * after it. Entries are written in the order the spec asks for
 * (processors, buses, I/O APICs, I/O interrupts, local interrupts). */
#include "mptable.h"

#include <stdbool.h>
#include <string.h>

#include "bytes.h"
#include "layout.h"

#define FP_LEN      16
#define HDR_LEN     44
#define CPU_LEN     20
#define SHORT_LEN   8 /* bus, IOAPIC, I/O and local interrupt entries */

#define ENT_CPU     0
#define ENT_BUS     1
#define ENT_IOAPIC  2
#define ENT_IOINT   3
#define ENT_LINT    4

#define INT_VECTORED 0
#define INT_NMI      1
#define INT_EXTINT   3

#define LAPIC_VERSION  0x14 /* what KVM's in-kernel local APIC reports */
#define IOAPIC_VERSION 0x11 /* KVM's 24-pin IOAPIC */
/* PCI INTx: level-triggered, active low (MP spec table 4-10 flags) */
#define PCI_INT_FLAGS  0x0f
/* virtio-mmio lines: level-triggered, active high */
#define MMIO_INT_FLAGS 0x0d

static unsigned nr_isa_irqs(void) { return 16; }
static unsigned nr_pci_ints(void) { return (MP_PCI_SLOTS - 1) * 4; }

/* virtio-mmio devices whose line is above the ISA IRQs: each needs an
 * entry of its own (the ones below share the ISA entry of their pin) */
static unsigned nr_mmio_high(unsigned nmmio)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nmmio && i < LAYOUT_VIRTIO_MMIO_MAX; i++)
		n += LAYOUT_VIRTIO_MMIO_GSI(i) >= nr_isa_irqs();
	return n;
}

/* The virtio-mmio device on pin, if any: its lines are level-triggered */
static bool mmio_pin(unsigned nmmio, unsigned pin)
{
	for (unsigned i = 0; i < nmmio && i < LAYOUT_VIRTIO_MMIO_MAX; i++)
		if (LAYOUT_VIRTIO_MMIO_GSI(i) == pin)
			return true;
	return false;
}

size_t mptable_size(unsigned ncpus, unsigned nmmio)
{
	return FP_LEN + HDR_LEN + (size_t)ncpus * CPU_LEN +
	       SHORT_LEN * (2 /* buses */ + 1 /* IOAPIC */ + nr_isa_irqs() +
			    nr_mmio_high(nmmio) + nr_pci_ints() + 2 /* LINT0, LINT1 */);
}

static uint8_t *intr(uint8_t *p, uint8_t kind, uint8_t irqtype, uint16_t flags,
		     uint8_t bus, uint8_t busirq, uint8_t dst, uint8_t dstpin)
{
	p[0] = kind;
	p[1] = irqtype;
	put_le16(p + 2, flags);
	p[4] = bus;
	p[5] = busirq;
	p[6] = dst;
	p[7] = dstpin;
	return p + SHORT_LEN;
}

int mptable_build(uint8_t *buf, size_t cap, uint64_t gpa, unsigned ncpus, unsigned nmmio)
{
	if (ncpus == 0 || ncpus > LAYOUT_MAX_CPUS || nmmio > LAYOUT_VIRTIO_MMIO_MAX)
		return -EINVAL;
	size_t need = mptable_size(ncpus, nmmio);
	if (cap < need || gpa + need > UINT32_MAX)
		return -ENOSPC;
	memset(buf, 0, need);

	uint8_t *fp = buf, *hdr = buf + FP_LEN, *p = hdr + HDR_LEN;
	const uint8_t ioapic_id = (uint8_t)ncpus; /* after the last APIC id */
	unsigned count = 0;

	for (unsigned i = 0; i < ncpus; i++, count++) {
		p[0] = ENT_CPU;
		p[1] = (uint8_t)i; /* APIC id = vCPU index; cpu.c sets the same */
		p[2] = LAPIC_VERSION;
		p[3] = 0x01 | (i == 0 ? 0x02 : 0); /* enabled, BSP */
		put_le32(p + 4, 0x600);               /* family 6: informational */
		put_le32(p + 8, (1u << 0) | (1u << 9)); /* FPU, APIC */
		p += CPU_LEN;
	}
	p[0] = ENT_BUS;
	p[1] = MP_PCI_BUS_ID;
	memcpy(p + 2, "PCI   ", 6);
	p += SHORT_LEN;
	p[0] = ENT_BUS;
	p[1] = MP_ISA_BUS_ID;
	memcpy(p + 2, "ISA   ", 6);
	p += SHORT_LEN;
	count += 2;

	p[0] = ENT_IOAPIC;
	p[1] = ioapic_id;
	p[2] = IOAPIC_VERSION;
	p[3] = 0x01; /* usable */
	put_le32(p + 4, (uint32_t)LAYOUT_IOAPIC);
	p += SHORT_LEN;
	count++;

	/* ISA IRQ n -> pin n: KVM's default GSI routing, no IRQ0->2 swap;
	 * flags 0 = the ISA bus's own edge/high convention, but a
	 * virtio-mmio device's line is level-triggered; the ones above 15
	 * are ISA lines of their own (a kernel without ACPI has only this
	 * table to map them) */
	for (unsigned irq = 0; irq < nr_isa_irqs(); irq++, count++)
		p = intr(p, ENT_IOINT, INT_VECTORED, mmio_pin(nmmio, irq) ? MMIO_INT_FLAGS : 0,
			 MP_ISA_BUS_ID, (uint8_t)irq, ioapic_id, (uint8_t)irq);
	for (unsigned i = 0; i < nmmio; i++) {
		unsigned pin = LAYOUT_VIRTIO_MMIO_GSI(i);
		if (pin < nr_isa_irqs())
			continue;
		p = intr(p, ENT_IOINT, INT_VECTORED, MMIO_INT_FLAGS, MP_ISA_BUS_ID, (uint8_t)pin,
			 ioapic_id, (uint8_t)pin);
		count++;
	}
	/* PCI source irq = slot << 2 | pin (spec 4.3.4) */
	for (unsigned slot = 1; slot < MP_PCI_SLOTS; slot++)
		for (unsigned pin = 0; pin < 4; pin++, count++)
			p = intr(p, ENT_IOINT, INT_VECTORED, PCI_INT_FLAGS, MP_PCI_BUS_ID,
				 (uint8_t)(slot << 2 | pin), ioapic_id,
				 (uint8_t)LAYOUT_PCI_INTX_GSI(slot, pin));
	/* virtual wire: the 8259 reaches every CPU's LINT0, NMI on LINT1 */
	p = intr(p, ENT_LINT, INT_EXTINT, 0, MP_ISA_BUS_ID, 0, 0xff, 0);
	p = intr(p, ENT_LINT, INT_NMI, 0, MP_ISA_BUS_ID, 0, 0xff, 1);
	count += 2;

	size_t tlen = (size_t)(p - hdr);
	memcpy(hdr, "PCMP", 4);
	put_le16(hdr + 4, (uint16_t)tlen);
	hdr[6] = 4; /* spec revision 1.4 */
	memcpy(hdr + 8, "KVMLAB  ", 8);
	memcpy(hdr + 16, "KVMLAB-VM   ", 12);
	put_le16(hdr + 34, (uint16_t)count);
	put_le32(hdr + 36, (uint32_t)LAYOUT_LAPIC);
	hdr[7] = (uint8_t)-sum8(hdr, tlen);

	memcpy(fp, "_MP_", 4);
	put_le32(fp + 4, (uint32_t)(gpa + FP_LEN));
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = 4;
	/* feature bytes 0: a config table follows; IMCR absent (virtual wire) */
	fp[10] = (uint8_t)-sum8(fp, FP_LEN);
	return (int)need;
}

int mptable_write(const struct gmem *gm, unsigned ncpus, unsigned nmmio, struct err *e)
{
	if (ncpus == 0 || ncpus > LAYOUT_MAX_CPUS)
		return errf(e, EINVAL, "mptable: %u CPUs, need 1..%u", ncpus, LAYOUT_MAX_CPUS);
	if (nmmio > LAYOUT_VIRTIO_MMIO_MAX)
		return errf(e, EINVAL, "mptable: %u virtio-mmio devices, at most %u", nmmio,
			    LAYOUT_VIRTIO_MMIO_MAX);
	size_t need = mptable_size(ncpus, nmmio);
	if (need > LAYOUT_MPTABLE_END - LAYOUT_MPTABLE)
		return errf(e, ENOSPC, "mptable: %zu bytes do not fit at 0x%llx", need,
			    (unsigned long long)LAYOUT_MPTABLE);
	uint8_t *p = gmem_ptr(gm, LAYOUT_MPTABLE, need);
	if (!p)
		return errf(e, EFAULT, "mptable: no guest RAM at 0x%llx",
			    (unsigned long long)LAYOUT_MPTABLE);
	int rc = mptable_build(p, need, LAYOUT_MPTABLE, ncpus, nmmio);
	if (rc < 0)
		return errf(e, -rc, "mptable: cannot build for %u CPUs", ncpus);
	return 0;
}

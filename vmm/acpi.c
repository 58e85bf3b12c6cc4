/* ACPI tables (ACPI 6.x, chapter 5). Choices, with reasons:
 * - Hardware-reduced (FADT flag): no PM1/GPE blocks or SCI to emulate;
 *   sleep and reset are plain I/O ports (QEMU microvm and Cloud
 *   Hypervisor do the same). Linux then also skips the PIT and 8259.
 * - MADT has no interrupt source overrides: KVM's default GSI routing
 *   sends GSI n to IOAPIC pin n (IRQ0 included), so ISA IRQs are
 *   identity-mapped, which is what "no override" means to the guest.
 * - PCAT_COMPAT = 1: KVM's in-kernel irqchip does include the dual 8259,
 *   and the flag only tells the OS to mask it when it uses the APICs.
 * - The DSDT names COM1 (PNP0501, IRQ 4): with a hardware-reduced FADT
 *   Linux has no legacy IRQ map, so only an ACPI-described port gets its
 *   IRQ 4 wired through the IOAPIC. */
#include "acpi.h"

#include <stdio.h>
#include <string.h>

#include "aml.h"
#include "bytes.h"
#include "layout.h"

#define HDR_LEN   36
#define RSDP_LEN  36
#define FADT_LEN  276 /* revision 6 */
#define OEM_ID    "KVMLAB"
#define OEM_TABLE "KVMLABVM"
#define CREATOR   "KVML"

/* FADT fields (ACPI 6.x table 5.9) */
#define FADT_DSDT          40
#define FADT_BOOT_ARCH     109
#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_MINOR         131
#define FADT_X_DSDT        140
#define FADT_SLEEP_CTL     244
#define FADT_SLEEP_STS     256
#define FADT_HV_VENDOR     268

#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED    (1u << 20)
/* IAPC_BOOT_ARCH: no VGA, no CMOS RTC; no 8042 bit, so Linux skips
 * probing a keyboard controller; "MSI not supported" stays clear */
#define BOOT_ARCH_NO_VGA     (1u << 2)
#define BOOT_ARCH_NO_CMOS    (1u << 5)

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

static void header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put_le32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE, 8);
	put_le32(t + 24, 1);
	memcpy(t + 28, CREATOR, 4);
	put_le32(t + 32, 1);
	t[9] = (uint8_t)-sum8(t, len);
}

static void gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = GAS_SYSTEM_IO;
	g[1] = 8; /* bit width */
	g[2] = 0; /* bit offset */
	g[3] = GAS_ACCESS_BYTE;
	put_le64(g + 4, port);
}

static void dev_crs(struct aml *a, const uint8_t *rt, size_t n)
{
	aml_name(a, "_CRS");
	aml_buffer(a, rt, n);
}

static void name_eisaid(struct aml *a, const char *name, const char *id)
{
	uint32_t v = 0;
	if (aml_eisaid(id, &v) != 0 && !a->err)
		a->err = -EINVAL;
	aml_name(a, name);
	aml_dword(a, v);
}

static void name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name(a, name);
	aml_int(a, v);
}

int acpi_build_dsdt_aml(uint8_t *buf, size_t cap, unsigned nmmio)
{
	struct aml a;
	uint8_t rt[128];
	size_t n, m, dev;

	aml_init(&a, buf, cap);

	/* \_S5: SLP_TYPa/b = 5; power.c accepts exactly this */
	aml_name(&a, "\\_S5_");
	m = aml_package(&a, 4);
	aml_int(&a, ACPI_S5_SLP_TYP);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_end(&a, m);

	size_t sb = aml_scope(&a, "\\_SB");

	/* Without a PNP0A03 host bridge in the DSDT, Linux with ACPI never
	 * scans PCI at all. */
	dev = aml_device(&a, "PCI0");
	name_eisaid(&a, "_HID", "PNP0A03");
	name_int(&a, "_ADR", 0);
	name_int(&a, "_UID", 0);
	name_int(&a, "_SEG", 0);
	name_int(&a, "_BBN", 0);
	n = 0;
	n += aml_rt_word_bus(rt + n, 0, 0);
	n += aml_rt_io(rt + n, LAYOUT_PORT_PCI_CONF, 8);
	n += aml_rt_word_io(rt + n, 0x0000, LAYOUT_PORT_PCI_CONF - 1);
	n += aml_rt_word_io(rt + n, 0x0d00, 0xffff);
	n += aml_rt_dword_mem(rt + n, (uint32_t)LAYOUT_PCI_MMIO, (uint32_t)(LAYOUT_PCI_MMIO_END - 1));
	n += aml_rt_end(rt + n);
	dev_crs(&a, rt, n);
	/* INTx: slot s pin p -> GSI (layout.h); Source 0 = a GSI, not a link */
	aml_name(&a, "_PRT");
	m = aml_package(&a, 31 * 4);
	for (unsigned slot = 1; slot < 32; slot++)
		for (unsigned pin = 0; pin < 4; pin++) {
			size_t e = aml_package(&a, 4);
			aml_dword(&a, slot << 16 | 0xffff);
			aml_int(&a, pin);
			aml_int(&a, 0);
			aml_int(&a, LAYOUT_PCI_INTX_GSI(slot, pin));
			aml_end(&a, e);
		}
	aml_end(&a, m);
	aml_end(&a, dev);

	dev = aml_device(&a, "COM1");
	name_eisaid(&a, "_HID", "PNP0501");
	name_int(&a, "_UID", 1);
	n = aml_rt_io(rt, LAYOUT_PORT_COM1, 8);
	n += aml_rt_irq(rt + n, LAYOUT_IRQ_COM1);
	n += aml_rt_end(rt + n);
	dev_crs(&a, rt, n);
	aml_end(&a, dev);

	/* pvpanic: Linux's pvpanic-mmio binds to QEMU0001 and takes its
	 * port from _CRS */
	dev = aml_device(&a, "PEVT");
	aml_name(&a, "_HID");
	aml_string(&a, "QEMU0001");
	n = aml_rt_io(rt, LAYOUT_PORT_PVPANIC, 1);
	n += aml_rt_end(rt + n);
	dev_crs(&a, rt, n);
	aml_end(&a, dev);

	/* The power button (kvmlab-vm run: SIGPWR, Ctrl-A p). Hardware-
	 * reduced ACPI has no fixed power button event: a Generic Event
	 * Device takes the line and its _EVT sends the button's notify,
	 * which Linux's button driver turns into KEY_POWER. */
	dev = aml_device(&a, "PWRB");
	name_eisaid(&a, "_HID", "PNP0C0C");
	name_int(&a, "_UID", 0);
	aml_end(&a, dev);
	dev = aml_device(&a, "GED0");
	aml_name(&a, "_HID");
	aml_string(&a, "ACPI0013");
	name_int(&a, "_UID", 0);
	n = aml_rt_ext_irq(rt, LAYOUT_IRQ_GED, false);
	n += aml_rt_end(rt + n);
	dev_crs(&a, rt, n);
	m = aml_method(&a, "_EVT", 1); /* Arg0: the GSI; there is only one */
	aml_notify(&a, "\\_SB.PWRB", 0x80);
	aml_end(&a, m);
	aml_end(&a, dev);

	/* virtio-mmio: Linux's virtio_mmio driver binds LNRO0005 and takes
	 * the registers and the line from _CRS */
	if (nmmio > LAYOUT_VIRTIO_MMIO_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < nmmio; i++) {
		char name[5];
		snprintf(name, sizeof(name), "VR%02u", i);
		dev = aml_device(&a, name);
		aml_name(&a, "_HID");
		aml_string(&a, "LNRO0005");
		name_int(&a, "_UID", i);
		n = aml_rt_mem32(rt, (uint32_t)(LAYOUT_VIRTIO_MMIO + i * LAYOUT_VIRTIO_MMIO_SIZE),
				 (uint32_t)LAYOUT_VIRTIO_MMIO_SIZE);
		n += aml_rt_ext_irq(rt + n, LAYOUT_VIRTIO_MMIO_GSI(i), true);
		n += aml_rt_end(rt + n);
		dev_crs(&a, rt, n);
		aml_end(&a, dev);
	}

	aml_end(&a, sb);
	return a.err ? a.err : (int)a.len;
}

static size_t madt_len(unsigned ncpus)
{
	return HDR_LEN + 8 + 8 * (size_t)ncpus + 12 /* IOAPIC */ + 6 /* LAPIC NMI */;
}

static void build_madt(uint8_t *t, unsigned ncpus)
{
	size_t len = madt_len(ncpus);
	uint8_t *p = t + HDR_LEN;

	put_le32(p, (uint32_t)LAYOUT_LAPIC);
	put_le32(p + 4, 1); /* PCAT_COMPAT */
	p += 8;
	for (unsigned i = 0; i < ncpus; i++, p += 8) {
		p[0] = 0; /* Processor Local APIC */
		p[1] = 8;
		p[2] = (uint8_t)i; /* ACPI processor UID */
		p[3] = (uint8_t)i; /* APIC id = vCPU index */
		put_le32(p + 4, 1);     /* enabled */
	}
	p[0] = 1; /* I/O APIC */
	p[1] = 12;
	p[2] = (uint8_t)ncpus; /* id after the last CPU, as in the MP table */
	p[3] = 0;
	put_le32(p + 4, (uint32_t)LAYOUT_IOAPIC);
	put_le32(p + 8, 0); /* GSI base */
	p += 12;
	p[0] = 4; /* Local APIC NMI: every CPU, LINT1 */
	p[1] = 6;
	p[2] = 0xff;
	put_le16(p + 3, 0);
	p[5] = 1;
	header(t, "APIC", (uint32_t)len, 5);
}

static void build_fadt(uint8_t *t, uint64_t dsdt)
{
	memset(t, 0, FADT_LEN);
	put_le32(t + FADT_DSDT, (uint32_t)dsdt);
	put_le16(t + FADT_BOOT_ARCH, BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS);
	put_le32(t + FADT_FLAGS, FADT_F_HW_REDUCED | FADT_F_RESET_REG_SUP);
	gas_io8(t + FADT_RESET_REG, LAYOUT_PORT_ACPI_RESET);
	t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
	t[FADT_MINOR] = 0; /* 6.0 */
	put_le64(t + FADT_X_DSDT, dsdt);
	gas_io8(t + FADT_SLEEP_CTL, LAYOUT_PORT_ACPI_SLEEP);
	gas_io8(t + FADT_SLEEP_STS, LAYOUT_PORT_ACPI_SLEEP_STS);
	memcpy(t + FADT_HV_VENDOR, "KVMLAB\0\0", 8);
	header(t, "FACP", FADT_LEN, 6);
}

static size_t align8(size_t v)
{
	return (v + 7) & ~(size_t)7;
}

int acpi_build(uint8_t *buf, size_t cap, uint64_t gpa, size_t tables_off, unsigned ncpus,
	       unsigned nmmio)
{
	if (ncpus == 0 || ncpus > LAYOUT_MAX_CPUS)
		return -EINVAL;
	if (tables_off < RSDP_LEN || tables_off > cap)
		return -ENOSPC;
	memset(buf, 0, cap);

	const size_t xsdt_len = HDR_LEN + 2 * 8;
	size_t xsdt = align8(tables_off);
	size_t fadt = align8(xsdt + xsdt_len);
	size_t dsdt = align8(fadt + FADT_LEN);
	if (dsdt + HDR_LEN > cap)
		return -ENOSPC;
	int aml = acpi_build_dsdt_aml(buf + dsdt + HDR_LEN, cap - dsdt - HDR_LEN, nmmio);
	if (aml < 0)
		return aml;
	size_t dsdt_len = HDR_LEN + (size_t)aml;
	size_t madt = align8(dsdt + dsdt_len);
	size_t end = madt + madt_len(ncpus);
	if (end > cap || gpa + end > UINT32_MAX)
		return -ENOSPC;

	header(buf + dsdt, "DSDT", (uint32_t)dsdt_len, 2); /* 2: 64-bit AML integers */
	build_fadt(buf + fadt, gpa + dsdt);
	build_madt(buf + madt, ncpus);
	put_le64(buf + xsdt + HDR_LEN, gpa + fadt);
	put_le64(buf + xsdt + HDR_LEN + 8, gpa + madt);
	header(buf + xsdt, "XSDT", (uint32_t)xsdt_len, 1);

	uint8_t *r = buf;
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, OEM_ID, 6);
	r[15] = 2; /* ACPI 2.0+ RSDP: XSDT */
	put_le32(r + 16, 0); /* no RSDT: every OS we care about reads the XSDT */
	put_le32(r + 20, RSDP_LEN);
	put_le64(r + 24, gpa + xsdt);
	r[8] = (uint8_t)-sum8(r, 20);
	r[32] = (uint8_t)-sum8(r, RSDP_LEN);
	return (int)end;
}

int acpi_write(const struct gmem *gm, unsigned ncpus, unsigned nmmio, struct err *e)
{
	if (ncpus == 0 || ncpus > LAYOUT_MAX_CPUS)
		return errf(e, EINVAL, "acpi: %u CPUs, need 1..%u", ncpus, LAYOUT_MAX_CPUS);
	const uint64_t size = LAYOUT_ACPI_END - LAYOUT_ACPI_RSDP;
	uint8_t *p = gmem_ptr(gm, LAYOUT_ACPI_RSDP, size);
	if (!p)
		return errf(e, EFAULT, "acpi: no guest RAM at 0x%llx",
			    (unsigned long long)LAYOUT_ACPI_RSDP);
	int rc = acpi_build(p, size, LAYOUT_ACPI_RSDP,
			    LAYOUT_ACPI_TABLES - LAYOUT_ACPI_RSDP, ncpus, nmmio);
	if (rc < 0)
		return errf(e, -rc, "acpi: cannot build tables for %u CPUs: %s", ncpus, strerror(-rc));
	return 0;
}

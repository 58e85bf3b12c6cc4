/* MP table: walk the bytes per the MP spec 1.4 layout (not mptable.c's
 * own constants) and check signatures, checksums and entries. */
#include <stdint.h>
#include <stdlib.h>

#include "layout.h"
#include "mptable.h"
#include "le.h"
#include "t.h"

/* virtio-mmio device i's line, per layout.h; -1: none of them */
static int mmio_dev(unsigned nmmio, unsigned pin)
{
	for (unsigned i = 0; i < nmmio; i++)
		if (LAYOUT_VIRTIO_MMIO_GSI(i) == pin)
			return (int)i;
	return -1;
}

static void check(unsigned n, unsigned nmmio)
{
	static uint8_t mem[0x100000];
	struct gmem gm;
	struct err e = { "" };
	memset(mem, 0xa5, sizeof(mem));
	gmem_init_flat(&gm, mem, sizeof(mem));
	CHECK_EQ(mptable_write(&gm, n, nmmio, &e), 0, "%u cpus, %u virtio-mmio: written (%s)", n,
		 nmmio, e.msg);

	/* find the floating pointer the way Linux does: 16-byte steps */
	const uint8_t *fp = t_scan16(mem, 0xf0000, 0x100000, "_MP_", 16);
	CHECK(fp != NULL, "%u cpus: _MP_ found in f0000-fffff with checksum 0", n);
	if (!fp)
		return;
	CHECK(fp[8] == 1 && fp[9] == 4 && fp[11] == 0, "%u cpus: fp length 1, rev 1.4, table present", n);
	uint32_t phys = rd_le32(fp + 4);
	CHECK(phys >= 0xf0000 && phys < LAYOUT_MPTABLE_END - 44, "%u cpus: table at 0x%x", n, phys);
	const uint8_t *t = mem + phys;
	CHECK(memcmp(t, "PCMP", 4) == 0, "%u cpus: PCMP signature", n);
	uint16_t len = rd_le16(t + 4), count = rd_le16(t + 34);
	CHECK(phys + len <= LAYOUT_MPTABLE_END, "%u cpus: %u bytes fit below 1 MiB", n, len);
	CHECK_EQ(t_sum8(t, len), 0, "%u cpus: table checksum", n);
	CHECK_EQ(t[6], 4, "%u cpus: spec rev", n);
	CHECK_EQ(rd_le32(t + 36), LAYOUT_LAPIC, "%u cpus: LAPIC address", n);
	CHECK(rd_le16(t + 40) == 0, "%u cpus: no extended table", n);

	unsigned cpus = 0, bsp = 0, buses = 0, ioapics = 0, isa = 0, pci = 0, lint = 0, walked = 0;
	unsigned isa_high = 0, flags_bad = 0;
	int ids_ok = 1, walk_ok = 1, isa_id = -1, pci_id = -1, ioapic_id = -1;
	const uint8_t *p = t + 44, *end = t + len;
	while (p < end) {
		unsigned sz = p[0] == 0 ? 20 : 8;
		if (p[0] > 4 || p + sz > end) {
			walk_ok = 0;
			break;
		}
		walked++;
		switch (p[0]) {
		case 0:
			if (p[1] != cpus || !(p[3] & 1))
				ids_ok = 0;
			if (p[3] & 2)
				bsp++;
			cpus++;
			break;
		case 1:
			buses++;
			if (memcmp(p + 2, "ISA   ", 6) == 0)
				isa_id = p[1];
			if (memcmp(p + 2, "PCI   ", 6) == 0)
				pci_id = p[1];
			break;
		case 2:
			ioapics++;
			ioapic_id = p[1];
			CHECK(rd_le32(p + 4) == LAYOUT_IOAPIC && (p[3] & 1), "%u cpus: IOAPIC at 0x%x, enabled", n, rd_le32(p + 4));
			break;
		case 3:
			if (p[4] == isa_id && p[1] == 0 && p[5] == p[7] && p[6] == ioapic_id) {
				/* MP spec flags: level (bits 2-3 = 11), active high
				 * (bits 0-1 = 01) for a virtio-mmio line; else 0,
				 * the ISA bus's own edge/high */
				unsigned want = mmio_dev(nmmio, p[7]) >= 0 ? 0x0d : 0;
				flags_bad += rd_le16(p + 2) != want;
				if (p[5] < 16)
					isa++;
				else if (mmio_dev(nmmio, p[7]) >= 0)
					isa_high++;
				else
					flags_bad++;
			}
			else if (p[4] == pci_id && p[6] == ioapic_id && p[7] >= 16 && p[7] < LAYOUT_IOAPIC_PINS &&
				 rd_le16(p + 2) == 0x0f && p[7] == LAYOUT_PCI_INTX_GSI(p[5] >> 2, p[5] & 3))
				pci++;
			break;
		case 4:
			if (p[6] == 0xff && ((p[1] == 3 && p[7] == 0) || (p[1] == 1 && p[7] == 1)))
				lint++;
			break;
		}
		p += sz;
	}
	CHECK(walk_ok && p == end, "%u cpus: entries walk exactly to the end", n);
	CHECK_EQ(walked, count, "%u cpus: entry count field", n);
	CHECK_EQ(cpus, n, "%u cpus: processor entries", n);
	CHECK(ids_ok && bsp == 1, "%u cpus: APIC ids 0..n-1, enabled, one BSP (cpu 0: flags 0x%x)", n, t[44 + 3]);
	CHECK(buses == 2 && isa_id >= 0 && pci_id >= 0 && isa_id != pci_id, "%u cpus: ISA and PCI buses", n);
	CHECK(ioapics == 1 && ioapic_id == (int)n, "%u cpus: one IOAPIC, id %d", n, ioapic_id);
	CHECK_EQ(isa, 16, "%u cpus: ISA IRQs 0..15 identity", n);
	unsigned want_high = 0;
	for (unsigned i = 0; i < nmmio; i++)
		want_high += LAYOUT_VIRTIO_MMIO_GSI(i) >= 16;
	CHECK_EQ(isa_high, want_high, "%u virtio-mmio: an ISA entry for each line above 15", nmmio);
	CHECK_EQ(flags_bad, 0, "%u virtio-mmio: their lines level/high, the rest ISA defaults", nmmio);
	CHECK_EQ(pci, 31 * 4, "%u cpus: PCI INTx entries for slots 1..31", n);
	CHECK_EQ(lint, 2, "%u cpus: ExtINT->LINT0, NMI->LINT1", n);
	CHECK(mem[0xf0000 - 1] == 0xa5 && mem[phys + len] == 0xa5, "%u cpus: nothing written outside", n);
}

int main(void)
{
	check(1, 0);
	check(2, 0);
	check(255, 0);
	check(2, 3);
	check(2, LAYOUT_VIRTIO_MMIO_MAX);
	check(255, LAYOUT_VIRTIO_MMIO_MAX);
	struct err e = { "" };
	static uint8_t mem[0x100000];
	struct gmem gm;
	gmem_init_flat(&gm, mem, sizeof(mem));
	CHECK(mptable_write(&gm, 0, 0, &e) == -EINVAL && strstr(e.msg, "0 CPUs"), "0 cpus rejected: %s", e.msg);
	CHECK(mptable_write(&gm, 256, 0, &e) == -EINVAL, "256 cpus rejected: %s", e.msg);
	gmem_init_flat(&gm, mem, 0xf0000);
	CHECK(mptable_write(&gm, 1, 0, &e) == -EFAULT, "no RAM there: %s", e.msg);
	gmem_init_flat(&gm, mem, sizeof(mem));
	CHECK(mptable_write(&gm, 1, LAYOUT_VIRTIO_MMIO_MAX + 1, &e) == -EINVAL &&
	      strstr(e.msg, "virtio-mmio"), "12 virtio-mmio devices rejected: %s", e.msg);
	uint8_t small[100];
	CHECK(mptable_build(small, sizeof(small), 0xf0000, 1, 0) == -ENOSPC, "small buffer: -ENOSPC");
	return t_done();
}

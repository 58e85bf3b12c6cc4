/* PCI conf1, BAR sizing and routing, and the virtio-pci modern transport
 * (features, status, queues, notify, MSI-X/INTx) with a dummy device. */
#include <stdlib.h>
#include <string.h>
#include <linux/pci_regs.h>

#include "t.h"
#include "bus.h"
#include "layout.h"
#include "pci.h"
#include "vmm_vdrv.h"

static struct bus pio, mmio;

static uint32_t cfg_rd(unsigned slot, unsigned reg, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;
	bus_dispatch(&pio, 0xcf8, &a, 4, true);
	bus_dispatch(&pio, 0xcfc + (reg & 3), &v, len, false);
	return len == 4 ? v : v & ((1u << (8 * len)) - 1);
}

static void cfg_wr(unsigned slot, unsigned reg, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);
	bus_dispatch(&pio, 0xcf8, &a, 4, true);
	bus_dispatch(&pio, 0xcfc + (reg & 3), &v, len, true);
}

static uint32_t mm_rd(uint64_t gpa, unsigned len)
{
	uint32_t v = 0;
	bus_dispatch(&mmio, gpa, &v, len, false);
	return v;
}

/* dummy device */
static int notified[VPCI_MAX_QUEUES], resets, refuse_features;
static unsigned cfg_max_end;
static void d_cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	(void)dev;
	if (off + len > cfg_max_end)
		cfg_max_end = off + len;
	memset(data, 0xab, len);
}
static void d_notify(void *dev, unsigned q) { (void)dev; notified[q]++; }
static int d_features(void *dev, uint64_t f) { (void)dev; (void)f; return refuse_features ? -EINVAL : 0; }
static void d_reset(void *dev) { (void)dev; resets++; }
static const struct vpci_ops dops = {
	.cfg_read = d_cfg_read, .notify = d_notify, .set_features = d_features, .reset = d_reset,
};

#define F_VER (1ull << VIRTIO_F_VERSION_1)
#define F_EVT (1ull << VIRTIO_RING_F_EVENT_IDX)
#define OFFER (F_VER | F_EVT | 1ull << 5)

int main(void)
{
	struct pci_bus *pb = calloc(1, sizeof(*pb));
	struct err e = { "" };
	struct td d;
	struct vpci *v = calloc(1, sizeof(*v));

	CHECK_EQ(pci_bus_init(pb, &pio, &mmio, &e), 0, "pci bus init: %s", e.msg);
	CHECK_EQ(cfg_rd(0, PCI_VENDOR_ID, 2), 0x8086, "host bridge vendor");
	CHECK_EQ(cfg_rd(0, PCI_CLASS_REVISION, 4) >> 8, 0x060000, "host bridge class 06.00");
	CHECK_EQ(cfg_rd(5, 0, 4), 0xffffffff, "empty slot reads all-ones");
	uint32_t a = 0x80000100u; /* function 1 */
	bus_dispatch(&pio, 0xcf8, &a, 4, true);
	uint32_t val;
	bus_dispatch(&pio, 0xcfc, &val, 4, false);
	CHECK_EQ(val, 0xffffffff, "function 1 reads all-ones");
	a = 0x80010000u; /* bus 1 */
	bus_dispatch(&pio, 0xcf8, &a, 4, true);
	bus_dispatch(&pio, 0xcfc, &val, 4, false);
	CHECK_EQ(val, 0xffffffff, "bus 1 reads all-ones");
	a = 0; /* enable bit clear */
	bus_dispatch(&pio, 0xcf8, &a, 4, true);
	bus_dispatch(&pio, 0xcfc, &val, 4, false);
	CHECK_EQ(val, 0xffffffff, "conf1 without the enable bit reads all-ones");
	bus_dispatch(&pio, 0xcf8, &val, 4, false);
	CHECK_EQ(val, 0, "address register reads back");

	td_mem_init(&d);
	d.v = v;
	CHECK_EQ(vpci_init(v, 2, 0x018000, OFFER, 2, 64, 8, &dops, NULL, &d.gm, &d.irq), 0, "vpci init");
	struct vpci *v2 = calloc(1, sizeof(*v2));
	CHECK_EQ(vpci_init(v2, 2, 0, OFFER & ~F_VER, 2, 64, 8, &dops, NULL, &d.gm, &d.irq),
		 -EINVAL, "a device without VERSION_1 is refused");
	free(v2);
	int slot = pci_bus_add(pb, &v->pci, &e);
	CHECK_EQ(slot, 1, "first device in slot 1");
	vpci_set_slot(v, (unsigned)slot);
	CHECK_EQ(cfg_rd(1, PCI_VENDOR_ID, 4), 0x10421af4, "virtio vendor, modern device id 0x1040+2");
	CHECK_EQ(cfg_rd(1, PCI_DEVICE_ID, 2), 0x1042, "word access at 0xcfe");
	CHECK_EQ(cfg_rd(1, PCI_REVISION_ID, 1), 1, "revision 1");
	CHECK_EQ(cfg_rd(1, PCI_SUBSYSTEM_ID, 2), 0x40, "subsystem id >= 0x40");
	CHECK_EQ(cfg_rd(1, PCI_INTERRUPT_PIN, 1), 1, "INTA#");
	CHECK_EQ(cfg_rd(1, PCI_INTERRUPT_LINE, 1), pci_slot_gsi(1), "interrupt line is the slot's GSI");
	cfg_wr(1, PCI_VENDOR_ID, 0x1234, 2);
	CHECK_EQ(cfg_rd(1, PCI_VENDOR_ID, 2), 0x1af4, "vendor id is read-only");

	/* capability list */
	CHECK(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, "status has CAP_LIST");
	unsigned seen = 0, hops = 0, notify_mult = 0, msix_at = 0;
	for (unsigned p = cfg_rd(1, PCI_CAPABILITY_LIST, 1); p && hops < 48; hops++) {
		unsigned id = cfg_rd(1, p, 1);
		if (id == PCI_CAP_ID_VNDR) {
			unsigned type = cfg_rd(1, p + 3, 1);
			seen |= 1u << type;
			CHECK_EQ(cfg_rd(1, p + 4, 1), 0, "virtio cap %u in BAR 0", type);
			if (type == 2)
				notify_mult = cfg_rd(1, p + 16, 4);
		} else if (id == PCI_CAP_ID_MSIX) {
			msix_at = p;
		}
		p = cfg_rd(1, p + 1, 1);
	}
	CHECK_EQ(seen, 0x1e, "common, notify, ISR and device cfg caps present");
	CHECK_EQ(notify_mult, VPCI_NOTIFY_MULT, "notify_off_multiplier");
	CHECK(msix_at && (cfg_rd(1, msix_at + 2, 2) & 0x7ff) == VPCI_MSIX_VECTORS - 1, "MSI-X cap with table size");

	/* BAR sizing and placement */
	uint32_t bar = cfg_rd(1, PCI_BASE_ADDRESS_0, 4);
	CHECK(bar >= LAYOUT_PCI_MMIO && bar < LAYOUT_PCI_MMIO_END && bar % VPCI_BAR_SIZE == 0,
	      "BAR0 placed in the window, aligned (0x%x)", bar);
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	CHECK_EQ(cfg_rd(1, PCI_BASE_ADDRESS_0, 4), (uint32_t)~(VPCI_BAR_SIZE - 1), "BAR0 sizing returns the size mask");
	cfg_wr(1, PCI_BASE_ADDRESS_1, 0xffffffff, 4);
	CHECK_EQ(cfg_rd(1, PCI_BASE_ADDRESS_1, 4), 0, "unused BAR1 sizes as 0");
	CHECK_EQ(mm_rd(bar + 0x12, 2), 0xffff, "BAR being sized decodes nothing at its old place");
	cfg_wr(1, PCI_BASE_ADDRESS_0, bar, 4);
	CHECK_EQ(mm_rd(bar + 0x12, 2), 2, "common cfg num_queues through the mmio bus");
	uint32_t moved = 0xd0000000u;
	cfg_wr(1, PCI_BASE_ADDRESS_0, moved, 4);
	CHECK_EQ(mm_rd(moved + 0x12, 2), 2, "moved BAR decodes at its new base");
	CHECK_EQ(mm_rd(bar + 0x12, 2), 0xffff, "old base no longer decodes");
	cfg_wr(1, PCI_COMMAND, 0, 2);
	CHECK_EQ(mm_rd(moved + 0x12, 2), 0xffff, "memory decoding off: no access");
	cfg_wr(1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	CHECK_EQ(mm_rd(moved + VPCI_BAR_SIZE - 2, 4), 0xffffffff, "access straddling the BAR end ignored");

	/* device cfg bounds */
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 4, 4), 0xabababab, "device cfg read");
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 6, 4), 0, "device cfg read past cfg_size returns 0");
	CHECK_EQ(cfg_max_end, 8, "device never asked for bytes past its cfg");

	/* features */
	td_wr(&d, 0x00, 0, 4);
	CHECK_EQ(td_rd(&d, 0x04, 4), (uint32_t)OFFER, "device_feature low word");
	td_wr(&d, 0x00, 1, 4);
	CHECK_EQ(td_rd(&d, 0x04, 4), (uint32_t)(OFFER >> 32), "device_feature high word");
	td_wr(&d, 0x00, 7, 4);
	CHECK_EQ(td_rd(&d, 0x04, 4), 0, "device_feature select 7 reads 0");
	CHECK(!(td_negotiate(&d, OFFER | 1ull << 3) & VIRTIO_CONFIG_S_FEATURES_OK), "unoffered bit: FEATURES_OK refused");
	CHECK(!(td_negotiate(&d, OFFER & ~F_VER) & VIRTIO_CONFIG_S_FEATURES_OK), "no VERSION_1: FEATURES_OK refused");
	refuse_features = 1;
	CHECK(!(td_negotiate(&d, F_VER) & VIRTIO_CONFIG_S_FEATURES_OK), "device refuses: FEATURES_OK refused");
	refuse_features = 0;
	/* a driver that never gets FEATURES_OK cannot enable queues or go live */
	CHECK_EQ(td_queue(&d, 0, 16), 0, "queue enable before FEATURES_OK ignored");
	td_wr(&d, 0x14, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK, 1);
	CHECK(!(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_DRIVER_OK), "DRIVER_OK without FEATURES_OK ignored");
	int r0 = resets;
	CHECK(td_negotiate(&d, F_VER | F_EVT) & VIRTIO_CONFIG_S_FEATURES_OK, "offered subset: FEATURES_OK");
	CHECK(resets > r0, "status 0 reset the device");
	td_wr(&d, 0x08, 0, 4);
	td_wr(&d, 0x0c, 0xffffffff, 4);
	td_wr(&d, 0x08, 0, 4);
	CHECK_EQ(td_rd(&d, 0x0c, 4), (uint32_t)F_EVT, "driver_feature frozen after FEATURES_OK");

	/* queues */
	td_wr(&d, 0x16, 0, 2);
	CHECK_EQ(td_rd(&d, 0x18, 2), 64, "queue_size starts at the max");
	td_wr(&d, 0x16, 5, 2);
	CHECK_EQ(td_rd(&d, 0x18, 2), 0, "queue_size of a missing queue reads 0");
	CHECK_EQ(td_queue(&d, 0, 24), 0, "queue size not a power of two: enable refused");
	CHECK(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET, "bad ring sets NEEDS_RESET");
	td_negotiate(&d, F_VER | F_EVT);
	CHECK(!(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET), "reset clears NEEDS_RESET");
	CHECK_EQ(td_queue(&d, 0, 512), 0, "queue size above the max: enable refused");
	td_negotiate(&d, F_VER | F_EVT);
	CHECK_EQ(td_queue(&d, 0, 16), 1, "queue 0 enabled");
	CHECK_EQ(td_queue(&d, 1, 16), 1, "queue 1 enabled");
	CHECK(v->q[0].vq.event_idx, "EVENT_IDX reached the ring");
	td_wr(&d, 0x16, 0, 2);
	CHECK_EQ(td_rd(&d, 0x20, 4), d.q[0].desc, "queue_desc reads back");
	CHECK_EQ(td_rd(&d, 0x1e, 2), 0, "queue_notify_off");
	td_wr(&d, 0x20, 0x5000, 8);
	CHECK_EQ(td_rd(&d, 0x20, 4), d.q[0].desc, "queue registers frozen once enabled");
	td_driver_ok(&d);
	CHECK(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_DRIVER_OK, "DRIVER_OK");

	/* notify */
	td_kick(&d, 1);
	td_wr(&d, VPCI_NOTIFY_OFF + 2, 0, 2);
	td_wr(&d, VPCI_NOTIFY_OFF + 4 * 3, 3, 2);
	CHECK(notified[1] == 1 && notified[0] == 0, "notify reaches the right queue only");

	/* INTx */
	vpci_signal(v, 0);
	CHECK(d.line == 1 && d.msi_count == 0, "no MSI-X: INTx asserted");
	CHECK_EQ(td_rd(&d, VPCI_ISR_OFF, 1), 1, "ISR bit 0 for a queue");
	CHECK_EQ(d.line, 0, "reading ISR lowers INTx");
	CHECK_EQ(td_rd(&d, VPCI_ISR_OFF, 1), 0, "ISR read clears");
	vpci_config_changed(v);
	CHECK_EQ(td_rd(&d, VPCI_ISR_OFF, 1), 2, "ISR bit 1 for config change");

	/* MSI-X */
	td_msix(&d, 1, 0);
	td_msix(&d, 0, -1);
	td_wr(&d, 0x16, 1, 2);
	td_wr(&d, 0x1a, VPCI_MSIX_VECTORS, 2);
	CHECK_EQ(td_rd(&d, 0x1a, 2), VPCI_NO_VECTOR, "vector past the table reads NO_VECTOR");
	td_msix_ctl(&d, 1, 0);
	vpci_signal(v, 0);
	CHECK(d.msi_count == 1 && d.last_addr == 0xfee00001u && d.last_data == 0x41,
	      "queue 0 MSI with its vector's address/data");
	vpci_signal(v, 1);
	CHECK_EQ(d.msi_count, 1, "queue without a vector: no interrupt");
	td_wr(&d, 0x4000 + 16 + 12, 1, 4); /* mask vector 1 */
	vpci_signal(v, 0);
	CHECK_EQ(d.msi_count, 1, "masked vector not delivered");
	CHECK_EQ(td_rd(&d, VPCI_PBA_OFF, 4), 2, "masked vector pending in the PBA");
	td_wr(&d, 0x4000 + 16 + 12, 0, 4);
	CHECK(d.msi_count == 2 && td_rd(&d, VPCI_PBA_OFF, 4) == 0, "unmask delivers the pending vector");
	td_msix_ctl(&d, 1, 1);
	vpci_config_changed(v);
	CHECK_EQ(d.msi_count, 2, "function mask holds the config vector");
	td_msix_ctl(&d, 1, 0);
	CHECK(d.msi_count == 3 && d.last_data == 0x40, "function unmask delivers the config vector");
	td_wr(&d, VPCI_PBA_OFF, 0xff, 4);
	CHECK_EQ(td_rd(&d, VPCI_PBA_OFF, 4), 0, "PBA is read-only");

	/* reset clears the queues */
	td_wr(&d, 0x14, 0, 1);
	td_wr(&d, 0x16, 0, 2);
	CHECK(td_rd(&d, 0x1c, 2) == 0 && !v->q[0].vq.ready && td_rd(&d, 0x1a, 2) == VPCI_NO_VECTOR,
	      "reset disables queues and vectors");
	CHECK_EQ(td_rd(&d, 0x14, 1), 0, "status 0 after reset");

	vpci_destroy(v);
	free(v);
	free(d.mem);
	pci_bus_destroy(pb);
	free(pb);
	return t_done();
}

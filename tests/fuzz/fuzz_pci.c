/* fuzz-srcs: vmm/pvpanic_pci.c vmm/power.c vmm/exit.c */
/* Random config-space and BAR accesses through the real buses: conf1
 * ports, the PCI MMIO window (common cfg, notify, ISR, device cfg,
 * MSI-X), with a virtio-net and a virtio-blk behind them whose rings
 * live in guest memory the input also fills, and pvpanic-pci after them. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "bus.h"
#include "fuzz_script.h"
#include "layout.h"
#include "pci.h"
#include "pvpanic_pci.h"
#include "virtio_blk.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

static struct td d; /* guest memory and irq counters only */
static struct bus pio, mmio;
static struct pci_bus *pb;
static struct vnet *n;
static struct vblk *b;
static int sv[2], fd;
static struct pvpanic_pci pv;
static struct exit_latch x = { EXIT_EV_NONE, -1 };
static uint32_t pv_bar0; /* where pci_bus_add put pvpanic's BAR */

static void setup(void)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 2 };
	struct err e;
	td_mem_init(&d);
	pb = calloc(1, sizeof(*pb));
	n = calloc(1, sizeof(*n));
	b = calloc(1, sizeof(*b));
	fd = memfd_create("fuzz-img", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 8192) || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) ||
	    pci_bus_init(pb, &pio, &mmio, &e) ||
	    vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq) ||
	    vblk_init(b, fd, false, 8192, "f", &d.gm, &d.irq) ||
	    pci_bus_add(pb, &n->vpci.pci, &e) < 0 || pci_bus_add(pb, &b->vpci.pci, &e) < 0 ||
	    pvpanic_pci_init(&pv, &x) || pci_bus_add(pb, &pv.pci, &e) < 0)
		abort();
	memcpy(&pv_bar0, pv.pci.cfg + 0x10, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pb)
		setup();
	if (size < 2)
		return 0;
	/* first half of the input: guest memory; second: an access script */
	const uint8_t *p = fuzz_guest_mem(&d, data, size), *end = data + size;
	while (end - p >= 8) {
		static const unsigned lens[4] = { 1, 2, 4, 8 };
		uint8_t op = p[0];
		unsigned len = lens[op >> 6];
		uint32_t where;
		memcpy(&where, p + 1, 3);
		where &= 0xffffff;
		uint64_t val = 0;
		memcpy(&val, p + 4, 4);
		val |= (uint64_t)val << 32;
		p += 8;
		switch (op & 7) {
		case 0: { /* conf1 address: bus 0, slot 0..3 */
			uint32_t a = 0x80000000u | (where & 0x3fff);
			bus_dispatch(&pio, LAYOUT_PORT_PCI_CONF, &a, 4, true);
			break;
		}
		case 1:
			bus_dispatch(&pio, LAYOUT_PORT_PCI_CONF + 4 + (where & 3), &val,
				     len > 4 ? 4 : len, true);
			break;
		case 2:
			bus_dispatch(&pio, LAYOUT_PORT_PCI_CONF + (where & 7), &val, len > 4 ? 4 : len, false);
			break;
		case 3: /* BAR space near the initial placement: both devices */
		case 4:
			bus_dispatch(&mmio, LAYOUT_PCI_MMIO + (where & 0xffff), &val, len, (op & 7) == 3);
			break;
		case 5: /* anywhere in the window (moved BARs) */
			bus_dispatch(&mmio, LAYOUT_PCI_MMIO + ((uint64_t)where << 6), &val, len, (op & 1));
			break;
		case 6:
			vnet_pair_run(n, 0); /* what the pair thread does on a kick or frame */
			break;
		default: /* the "tap" delivers a frame made of the script's tail */
			fuzz_tap_send(sv[1], p - 8, end, where);
			break;
		}
	}
	fuzz_tap_drain(sv);
	/* back to power-on state: device resets, BARs and command restored */
	uint8_t zero = 0;
	n->vpci.pci.ops->bar_write(&n->vpci.pci, 0, 0x14, &zero, 1);
	b->vpci.pci.ops->bar_write(&b->vpci.pci, 0, 0x14, &zero, 1);
	memcpy(pv.pci.cfg + 0x10, &pv_bar0, 4);
	pv.pci.cfg[4] = 2;
	x.ev = EXIT_EV_NONE;
	for (unsigned s = 1; s <= 2; s++) {
		struct pci_dev *dv = pb->dev[s];
		uint32_t bar = (uint32_t)(LAYOUT_PCI_MMIO + (s - 1) * VPCI_BAR_SIZE);
		memcpy(dv->cfg + 0x10, &bar, 4);
		dv->cfg[4] = 2;
		uint16_t ctl;
		struct vpci *v = s == 1 ? &n->vpci : &b->vpci;
		memcpy(&ctl, dv->cfg + v->msix_cap + 2, 2);
		ctl &= 0x7ff;
		memcpy(dv->cfg + v->msix_cap + 2, &ctl, 2);
		dv->ops->cfg_written(dv, v->msix_cap + 2, 2);
		for (unsigned i = 0; i < VPCI_MSIX_VECTORS; i++) {
			memset(v->msix[i], 0, 12);
			v->msix[i][3] = 1;
		}
	}
	return 0;
}

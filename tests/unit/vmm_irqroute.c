/* The GSI routing table KVM_SET_GSI_ROUTING gets (pure), and the
 * virtio-pci fast paths against fake KVM callbacks: kick eventfds bound
 * at the notify addresses and dropped on reset, MMIO notifies forwarded
 * to the eventfd, one MSI route + irqfd per vector in use, masking into
 * the PBA and delivery on unmask, the INTx resample irqfd. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/virtio_blk.h>
#include <sys/mman.h>

#include "t.h"
#include "kvm.h"
#include "virtio_blk.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))

/* --- fake KVM --- */
static struct {
	int ioev_assigned, ioev_deassigned;
	uint64_t ioev_addr[VPCI_MAX_QUEUES];
	unsigned ioev_len;
	bool ioev_dm;
	int routes, route_updates, routes_freed;
	uint64_t route_addr[64];
	uint32_t route_data[64];
	int irqfds, irqfd_resample, irqfd_deassigned;
	int resample_fd;
} K;

static int f_ioev(void *o, uint64_t addr, unsigned len, bool dm, uint64_t data, int fd, bool assign)
{
	(void)o, (void)fd;
	if (assign) {
		K.ioev_assigned++;
		if (data < VPCI_MAX_QUEUES)
			K.ioev_addr[data] = addr;
		K.ioev_len = len;
		K.ioev_dm = dm;
	} else {
		K.ioev_deassigned++;
	}
	return 0;
}

static int refusals;
static int f_ioev_no(void *o, uint64_t addr, unsigned len, bool dm, uint64_t data, int fd, bool assign)
{
	(void)o, (void)addr, (void)len, (void)dm, (void)data, (void)fd, (void)assign;
	refusals++;
	return -ENOTSUP;
}

static int f_route(void *o, int gsi, uint64_t addr, uint32_t data)
{
	(void)o;
	if (gsi < 0)
		gsi = (int)KVM_GSI_MSI_BASE + K.routes++;
	else
		K.route_updates++;
	K.route_addr[gsi - KVM_GSI_MSI_BASE] = addr;
	K.route_data[gsi - KVM_GSI_MSI_BASE] = data;
	return gsi;
}

static void f_route_free(void *o, int gsi) { (void)o, (void)gsi; K.routes_freed++; }

static int f_irqfd(void *o, unsigned gsi, int fd, int rfd, bool assign)
{
	(void)o, (void)gsi, (void)fd;
	if (!assign)
		K.irqfd_deassigned++;
	else if (rfd >= 0) {
		K.irqfd_resample++;
		K.resample_fd = rfd;
	} else
		K.irqfds++;
	return 0;
}

static uint64_t efd_count(int fd)
{
	uint64_t c = 0;
	if (fd < 0 || read(fd, &c, sizeof(c)) != (ssize_t)sizeof(c))
		return 0;
	return c;
}

static int notified;
int main(void)
{
	/* --- the table --- */
	struct kvm_irq_routing_entry e[200];
	struct kvm_msi_route r[4] = {
		{ true, 0xfee00000, 0x41 }, { false, 0, 0 }, { true, 0xfee01000ull | (1ull << 32), 0x42 },
		{ false, 0, 0 },
	};
	int n = kvm_routes_build(r, 4, e, 200);
	CHECK_EQ(n, KVM_IRQCHIP_ROUTES + 2, "irqchip defaults + one entry per used route");
	int pic = 0, ioapic = 0, ok = 1;
	for (int i = 0; i < (int)KVM_IRQCHIP_ROUTES; i++) {
		if (e[i].type != KVM_IRQ_ROUTING_IRQCHIP)
			ok = 0;
		else if (e[i].u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC)
			ok &= e[i].u.irqchip.pin == e[i].gsi, ioapic++;
		else
			ok &= e[i].gsi < 16 && e[i].u.irqchip.pin == e[i].gsi % 8 &&
			      e[i].u.irqchip.irqchip == (e[i].gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE),
			pic++;
	}
	CHECK(ok && pic == 16 && ioapic == 24, "GSIs 0-15 on PIC+IOAPIC, 16-23 IOAPIC, pin = GSI (KVM's defaults)");
	struct kvm_irq_routing_entry *m0 = &e[KVM_IRQCHIP_ROUTES], *m1 = m0 + 1;
	CHECK(m0->type == KVM_IRQ_ROUTING_MSI && m0->gsi == KVM_GSI_MSI_BASE &&
	      m0->u.msi.address_lo == 0xfee00000 && m0->u.msi.address_hi == 0 && m0->u.msi.data == 0x41,
	      "first MSI route at GSI 24");
	CHECK(m1->gsi == KVM_GSI_MSI_BASE + 2 && m1->u.msi.address_lo == 0xfee01000 &&
	      m1->u.msi.address_hi == 1 && m1->u.msi.data == 0x42, "unused slots skipped, GSI kept, 64-bit address split");
	CHECK_EQ(kvm_routes_build(r, 4, e, KVM_IRQCHIP_ROUTES + 1), -ENOSPC, "table larger than KVM takes: ENOSPC");
	CHECK_EQ(kvm_routes_build(r, 0, e, KVM_IRQCHIP_ROUTES), KVM_IRQCHIP_ROUTES, "no MSI route: defaults only");

	/* --- the fast paths on a device --- */
	struct td d;
	td_mem_init(&d);
	d.irq.ioeventfd = f_ioev;
	d.irq.msi_route = f_route;
	d.irq.msi_route_free = f_route_free;
	d.irq.irqfd = f_irqfd;
	int img = memfd_create("img", MFD_CLOEXEC);
	if (img < 0 || ftruncate(img, 1 << 20))
		return 1;
	struct vblk *b = calloc(1, sizeof(*b));
	CHECK_EQ(vblk_init(b, img, 0, 1 << 20, NULL, &d.gm, &d.irq), 0, "vblk init");
	d.v = &b->vpci;
	/* a BAR at 0xc0000000 with memory decoding on, as the guest sets it */
	uint32_t bar = 0xc0000000u;
	memcpy(b->vpci.pci.cfg + 0x10, &bar, 4);
	b->vpci.pci.cfg[4] |= 2;
	vpci_set_slot(&b->vpci, 1);
	struct event_loop ev;
	struct err er;
	CHECK_EQ(event_init(&ev, &er), 0, "event loop");
	CHECK_EQ(vpci_start(&b->vpci, &ev, &er), 0, "vpci_start");
	CHECK_EQ(K.irqfd_resample, 1, "INTx: one resample irqfd on the slot's GSI");
	int kick = vpci_queue_kick_fd(&b->vpci, 0);
	CHECK(kick >= 0 && vpci_queue_kick_fd(&b->vpci, 1) == -1, "queue 0 has a kick fd, queue 1 does not exist");

	if (!(td_negotiate(&d, B(VIRTIO_F_VERSION_1)) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, 16) != 1)
		return 1;
	CHECK_EQ(K.ioev_assigned, 1, "enabling the queue binds its kick eventfd");
	CHECK_EQ(K.ioev_addr[0], 0xc0000000ull + VPCI_NOTIFY_OFF, "... at BAR + notify offset + 0 * multiplier");
	CHECK(K.ioev_len == 0 && K.ioev_dm == (VPCI_NOTIFY_MULT == 0), "any length; datamatch only if queues share an address");
	td_driver_ok(&d);

	/* a notify that still traps is forwarded to the eventfd: the device
	 * runs on the event thread (not running here), never inline */
	uint64_t done0 = b->img.n_flush;
	struct { uint32_t type, reserved; uint64_t sector; } h = { VIRTIO_BLK_T_FLUSH, 0, 0 };
	memcpy(d.mem + TD_BUF, &h, sizeof(h));
	struct td_seg s[2] = { { TD_BUF, 16, 0 }, { TD_BUF + 0x100, 1, 1 } };
	td_add(&d, 0, s, 2);
	td_kick(&d, 0);
	CHECK(b->img.n_flush == done0, "an MMIO notify does not run the device inline");
	CHECK_EQ(efd_count(kick), 1, "... it lands in the kick eventfd");
	CHECK_EQ(event_start(&ev, &er), 0, "event thread");
	td_kick(&d, 0);
	for (int i = 0; i < 200 && b->img.n_flush == done0; i++)
		usleep(5000);
	CHECK_EQ(b->img.n_flush, done0 + 1, "the event thread served the request");
	(void)notified;

	/* INTx through the resample irqfd: the ISR bit is set; the line
	 * comes back after the EOI if the ISR is still pending */
	CHECK(b->vpci.isr & 1, "INTx: ISR bit set for the used buffer");
	CHECK_EQ(d.line_edges, 0, "INTx did not go through KVM_IRQ_LINE");
	CHECK(efd_count(b->vpci.intx_fd) >= 1, "INTx: the irqfd was written");
	uint64_t one = 1;
	CHECK(write(K.resample_fd, &one, 8) == 8, "EOI (resample) while the ISR is still set");
	for (int i = 0; i < 200 && !efd_count(b->vpci.intx_fd); i++)
		usleep(5000);
	CHECK(b->vpci.line == 1, "resample re-raised the pending line");
	CHECK_EQ(td_rd(&d, VPCI_ISR_OFF, 1), 1, "ISR read returns and clears");
	CHECK(write(K.resample_fd, &one, 8) == 8, "EOI after the ISR read");
	for (int i = 0; i < 200 && b->vpci.line; i++)
		usleep(5000);
	CHECK(b->vpci.line == 0 && !efd_count(b->vpci.intx_fd), "nothing pending: the line stays down");

	/* MSI-X: a route + irqfd per vector in use, masking via the PBA */
	td_msix_ctl(&d, 1, 0);
	td_msix(&d, 1, 0); /* entry unmasked as written (ctrl 0) */
	CHECK_EQ(K.routes, 1, "unmasking vector 1 made one MSI route");
	CHECK_EQ(K.irqfds, 1, "... and one irqfd");
	CHECK(K.route_addr[0] == 0xfee00001u && K.route_data[0] == 0x41, "route holds the entry's address/data");
	int call = b->vpci.vec[1].call_fd;
	CHECK(call >= 0, "vector 1 (queue 0's) has its irqfd");
	CHECK_EQ(vpci_queue_backend(&b->vpci, 0, true), -EOPNOTSUPP,
		 "a device without set_call cannot hand its interrupts to a backend");
	int msi0 = d.msi_count;
	vpci_signal(&b->vpci, 0);
	CHECK(efd_count(call) == 1 && d.msi_count == msi0, "signal writes the irqfd, no KVM_SIGNAL_MSI");
	/* mask the vector: PBA, no irqfd write; unmask fires it */
	td_wr(&d, 0x4000 + 16 + 12, 1, 4);
	vpci_signal(&b->vpci, 0);
	CHECK(efd_count(call) == 0 && (td_rd(&d, VPCI_PBA_OFF, 4) & 2), "masked vector: PBA bit, nothing sent");
	/* the guest moves the vector meanwhile: the route follows */
	td_wr(&d, 0x4000 + 16 + 8, 0x55, 4);
	td_wr(&d, 0x4000 + 16 + 12, 0, 4);
	CHECK(efd_count(call) == 1 && !(td_rd(&d, VPCI_PBA_OFF, 4) & 2), "unmask delivers the pending interrupt");
	CHECK(K.route_data[0] == 0x55 && K.route_updates >= 1, "route rewritten with the new data before delivery");
	CHECK_EQ(K.routes, 1, "same vector, same route (no new GSI)");
	td_msix_ctl(&d, 1, 1);
	vpci_signal(&b->vpci, 0);
	CHECK(efd_count(call) == 0 && (td_rd(&d, VPCI_PBA_OFF, 4) & 2), "function mask: PBA, nothing sent");
	td_msix_ctl(&d, 1, 0);
	CHECK(efd_count(call) == 1, "function unmask delivers it");

	/* a BAR move drops KVM's bindings; the next trapped notify rebinds */
	int deas = K.ioev_deassigned;
	bar = 0xc0100000u;
	memcpy(b->vpci.pci.cfg + 0x10, &bar, 4);
	b->vpci.pci.ops->cfg_written(&b->vpci.pci, 0x10, 4);
	CHECK_EQ(K.ioev_deassigned, deas + 1, "BAR write unbinds the kick eventfd");
	td_kick(&d, 0);
	CHECK_EQ(K.ioev_addr[0], 0xc0100000ull + VPCI_NOTIFY_OFF, "trapped notify rebinds at the new address");

	/* reset unbinds */
	deas = K.ioev_deassigned;
	td_wr(&d, 0x14, 0, 1);
	CHECK_EQ(K.ioev_deassigned, deas + 1, "device reset unbinds the kick eventfd");

	event_destroy(&ev);
	vblk_destroy(b);
	CHECK(K.routes_freed == 1 && K.irqfd_deassigned >= 2, "destroy frees the route and unbinds the irqfds");

	/* no ioeventfd on this host: kicks trap, go to the eventfd all the
	 * same, and KVM is asked once, not on every kick */
	d.irq.ioeventfd = f_ioev_no;
	CHECK_EQ(vblk_init(b, img, 0, 1 << 20, NULL, &d.gm, &d.irq), 0, "vblk init (no ioeventfd)");
	d.v = &b->vpci;
	memcpy(b->vpci.pci.cfg + 0x10, &bar, 4);
	b->vpci.pci.cfg[4] |= 2;
	CHECK_EQ(event_init(&ev, &er), 0, "event loop");
	CHECK_EQ(vpci_start(&b->vpci, &ev, &er), 0, "vpci_start");
	if (!(td_negotiate(&d, B(VIRTIO_F_VERSION_1)) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, 16) != 1)
		return 1;
	td_driver_ok(&d);
	for (int i = 0; i < 5; i++)
		td_kick(&d, 0);
	CHECK_EQ(refusals, 1, "a refused ioeventfd is asked for once");
	CHECK_EQ(efd_count(vpci_queue_kick_fd(&b->vpci, 0)), 5, "every trapped kick reached the kick eventfd");
	event_destroy(&ev);
	vblk_destroy(b);
	free(b);
	free(d.mem);
	close(img);
	return t_done();
}

/* The virtio-mmio transport, driven the way Linux's virtio_mmio driver
 * does (register by register, 32-bit accesses), over virtio-rng:
 * identification, feature negotiation, queue setup (QueueNumMax names
 * the queues there are), a request served with the interrupt status
 * kept until InterruptACK drops the line, hostile queue indexes and
 * widths, QueueReady = 0 before and after DRIVER_OK, reset; then the
 * fast path's binding (QueueNotify with the queue index as datamatch),
 * the command line and the firmware-table pieces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include "t.h"
#include "layout.h"
#include "virtio_mmio.h"
#include "virtio_rng.h"
#include "vmm_vdrv.h"

#define BASE 0xfe000000ull

static struct td d;

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0;
	vmmio_ops.read(d.v, off, &v, 4);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	vmmio_ops.write(d.v, off, &v, 4);
}

static void wr64(uint64_t lo, uint64_t v)
{
	wr(lo, (uint32_t)v);
	wr(lo + 4, (uint32_t)(v >> 32));
}

/* Linux's vm_setup_vq for queue 0 with 64 entries at the vdrv spot */
static uint32_t setup_queue0(void)
{
	struct td_q *q = &d.q[0];
	q->size = 64;
	q->desc = 0x1000;
	q->avail = q->desc + 16u * 64;
	q->used = (q->avail + 6 + 2u * 64 + 3) & ~3ull;
	q->avail_idx = q->used_seen = q->next_desc = 0;
	memset(d.mem + 0x1000, 0, 0x2000);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, 64);
	wr64(VIRTIO_MMIO_QUEUE_DESC_LOW, q->desc);
	wr64(VIRTIO_MMIO_QUEUE_AVAIL_LOW, q->avail);
	wr64(VIRTIO_MMIO_QUEUE_USED_LOW, q->used);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	return rd(VIRTIO_MMIO_QUEUE_READY);
}

static uint32_t negotiate(void)
{
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	uint64_t f = (uint64_t)rd(VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f |= rd(VIRTIO_MMIO_DEVICE_FEATURES);
	CHECK(f >> VIRTIO_F_VERSION_1 & 1, "DeviceFeatures has VERSION_1 (0x%llx)", (unsigned long long)f);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1u << (VIRTIO_F_VERSION_1 - 32));
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK);
	return rd(VIRTIO_MMIO_STATUS);
}

/* what KVM would have been asked to bind */
static struct { uint64_t addr, data; unsigned len; bool match; int fd; int n; } ioev;

static int fake_ioeventfd(void *o, uint64_t addr, unsigned len, bool datamatch, uint64_t data,
			  int fd, bool assign)
{
	(void)o;
	if (assign) {
		ioev.addr = addr;
		ioev.len = len;
		ioev.match = datamatch;
		ioev.data = data;
		ioev.fd = fd;
	}
	ioev.n += assign ? 1 : -1;
	return 0;
}

static void transport(void)
{
	uint32_t id, len;
	uint8_t *m = d.mem;

	CHECK_EQ(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976, "MagicValue \"virt\"");
	CHECK_EQ(rd(VIRTIO_MMIO_VERSION), 2, "Version 2 (virtio 1.x layout)");
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG, "DeviceID 4 (entropy)");
	CHECK(rd(VIRTIO_MMIO_VENDOR_ID) != 0, "VendorID set");
	uint16_t half = 0xbeef;
	vmmio_ops.read(d.v, VIRTIO_MMIO_MAGIC_VALUE, &half, 2);
	CHECK_EQ(half, 0, "a 16-bit register read reads 0");
	vmmio_ops.read(d.v, VIRTIO_MMIO_VERSION + 1, &half, 2);
	CHECK_EQ(half, 0, "a misaligned register read reads 0");

	CHECK(negotiate() & VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK accepted");
	wr(VIRTIO_MMIO_QUEUE_SEL, 1);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "QueueNumMax of queue 1 (rng has one): 0");
	wr(VIRTIO_MMIO_QUEUE_SEL, 0xffff);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "QueueNumMax of queue 0xffff: 0");
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), d.v->queue_max, "QueueNumMax of queue 0");
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0, "queue 0 not ready before setup");
	CHECK_EQ(rd(VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffffu, "no shared memory region (length all-ones)");

	/* a driver that gives up before DRIVER_OK takes the queue back */
	CHECK_EQ(setup_queue0(), 1, "QueueReady reads 1 after setup");
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0, "QueueReady = 0 before DRIVER_OK: the queue is off");
	CHECK_EQ(setup_queue0(), 1, "and can be set up again");
	/* a driver that has the device take a buffer before DRIVER_OK: the
	 * queue is the device's now (it may have I/O in flight on it) */
	struct td_seg s0 = { TD_BUF, 16, 1 };
	td_add(&d, 0, &s0, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	CHECK(td_used(&d, 0, &id, &len), "a request before DRIVER_OK is served");
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 1, "QueueReady = 0 after the device took a buffer: still ready");
	wr(VIRTIO_MMIO_INTERRUPT_ACK, 3);
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK(negotiate() & VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK again after a reset");
	CHECK_EQ(setup_queue0(), 1, "queue 0 set up again");
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK, "DRIVER_OK");

	/* one request: served at the notify, the status set, the line up */
	memset(m + TD_BUF, 0, 64);
	struct td_seg s = { TD_BUF, 64, 1 };
	td_add(&d, 0, &s, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	CHECK(td_used(&d, 0, &id, &len) && len == 64, "QueueNotify 0: the request is served (%u)", len);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING, "InterruptStatus: used buffer");
	CHECK_EQ(d.line, 1, "the line is up");
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING,
		 "reading the status does not acknowledge it");
	CHECK_EQ(d.line, 1, "nor drop the line");
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(d.line, 1, "acknowledging the other bit leaves it up");
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0, "InterruptACK clears the bit");
	CHECK_EQ(d.line, 0, "and drops the line");

	/* hostile: unknown queue indexes, widths, config space past its end */
	int edges = d.line_edges;
	td_add(&d, 0, &s, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffffu);
	uint16_t zero = 0;
	vmmio_ops.write(d.v, VIRTIO_MMIO_QUEUE_NOTIFY, &zero, 2);
	CHECK(!td_used(&d, 0, &id, &len) && d.line_edges == edges,
	      "notify of queues 1 and 0xffffffff, or 16 bits wide: nothing served");
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	CHECK(td_used(&d, 0, &id, &len), "the real notify still works");
	wr(VIRTIO_MMIO_INTERRUPT_ACK, 3);
	uint64_t big = 0x1122334455667788ull;
	vmmio_ops.read(d.v, VIRTIO_MMIO_CONFIG + 0xef8, &big, 8);
	CHECK_EQ(big, 0, "device config past its size reads 0 (rng has none)");
	vmmio_ops.write(d.v, VIRTIO_MMIO_CONFIG + 0xef8, &big, 8);

	/* once running, the ring is the device's: QueueReady = 0 is refused */
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 1, "QueueReady = 0 after DRIVER_OK: still ready");
	td_add(&d, 0, &s, 1);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	CHECK(td_used(&d, 0, &id, &len), "and still served");

	/* the legacy registers (GuestPageSize, QueuePFN) do nothing */
	wr(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
	wr(VIRTIO_MMIO_QUEUE_PFN, 0x12345);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 1, "legacy QueuePFN writes change nothing");

	/* reset: status 0 turns everything off, the line too */
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0, "Status 0: reset");
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0, "the queue is off after the reset");
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0, "no interrupt pending after the reset");
	CHECK_EQ(d.line, 0, "and the line is down");
}

static void fast_path(void)
{
	struct err e = { "" };
	struct event_loop ev;
	struct vrng *r = calloc(1, sizeof(*r));

	free(d.mem);
	td_mem_init(&d);
	d.irq.ioeventfd = fake_ioeventfd;
	CHECK_EQ(vrng_init(r, &d.gm, &d.irq), 0, "vrng init (fast path)");
	d.v = &r->vpci;
	vpci_set_mmio(d.v, BASE + 0x3000, 10);
	CHECK_EQ(event_init(&ev, &e), 0, "event loop");
	CHECK_EQ(vpci_start(d.v, &ev, &e), 0, "vpci_start on virtio-mmio (%s)", e.msg);
	CHECK(negotiate() & VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK");
	CHECK_EQ(setup_queue0(), 1, "queue 0 ready");
	CHECK(ioev.n == 1 && ioev.addr == BASE + 0x3000 + VIRTIO_MMIO_QUEUE_NOTIFY && ioev.len == 4 &&
	      ioev.match && ioev.data == 0 && ioev.fd == vpci_queue_kick_fd(d.v, 0),
	      "the kick is bound at QueueNotify, 4 bytes, datamatch queue 0 (addr 0x%llx len %u)",
	      (unsigned long long)ioev.addr, ioev.len);
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(ioev.n, 0, "QueueReady = 0 unbinds it");
	CHECK_EQ(setup_queue0(), 1, "queue 0 ready again");
	CHECK_EQ(ioev.n, 1, "bound again");
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(ioev.n, 0, "a reset unbinds it");
	vpci_stop(d.v);
	event_destroy(&ev);
	vrng_destroy(r);
	free(r);
}

/* A backend (vhost) on virtio-mmio: no MSI-X, so it gets the queue's
 * relay eventfd, and the loop turns each write into the ISR bit and the
 * line, as the driver needs them. */
static int be_fd = -1, be_calls;
static void be_set_call(void *dev, unsigned q, int fd)
{
	(void)dev, (void)q;
	be_fd = fd;
	be_calls++;
}
static const struct vpci_ops be_ops = { .set_call = be_set_call };

static void relay(void)
{
	struct err e = { "" };
	struct event_loop ev;
	struct vpci *v = calloc(1, sizeof(*v));

	free(d.mem);
	td_mem_init(&d);
	CHECK_EQ(vpci_init(v, 1, 0x020000, 1ull << VIRTIO_F_VERSION_1, 2, 64, 0, &be_ops, NULL,
			   &d.gm, &d.irq), 0, "a two-queue device with a backend");
	d.v = v;
	vpci_set_mmio(v, BASE, 6);
	CHECK_EQ(event_init(&ev, &e), 0, "event loop");
	CHECK_EQ(vpci_start(v, &ev, &e), 0, "vpci_start (%s)", e.msg);
	snprintf(ev.name, sizeof(ev.name), "t-relay");
	CHECK_EQ(event_start(&ev, &e), 0, "loop running");
	CHECK(negotiate() & VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK");
	CHECK_EQ(setup_queue0(), 1, "queue 0 ready");
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	CHECK_EQ(vpci_queue_backend(v, 0, true), 0, "the backend takes queue 0 without MSI-X");
	CHECK(be_calls == 1 && be_fd >= 0 && be_fd == v->q[0].relay_fd,
	      "it is given the queue's relay eventfd");
	uint64_t one = 1;
	CHECK_EQ(write(be_fd, &one, 8), 8, "the backend signals");
	long long until = td_now_ns() + 2000000000ll;
	while (!(rd(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING) && td_now_ns() < until)
		usleep(1000);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING,
		 "the loop set the used-buffer bit for it");
	CHECK_EQ(d.line, 1, "and raised the line");
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(d.line, 0, "the driver's ACK drops it");
	CHECK_EQ(vpci_queue_backend(v, 0, false), 0, "the backend gives the queue back");
	CHECK_EQ(v->q[0].backend_fd, -1, "and holds nothing");
	event_destroy(&ev);
	vpci_destroy(v);
	free(v);
}

static void cmdline(void)
{
	char buf[600];
	CHECK_EQ(vmmio_cmdline(buf, sizeof(buf), 0), 0, "no device: nothing added");
	CHECK_EQ(buf[0], 0, "and an empty string");
	int n = vmmio_cmdline(buf, sizeof(buf), 2);
	CHECK(n > 0 && !strcmp(buf, " virtio_mmio.device=4K@0xfe000000:5"
			       " virtio_mmio.device=4K@0xfe001000:6"),
	      "two devices: \"%s\"", buf);
	n = vmmio_cmdline(buf, sizeof(buf), LAYOUT_VIRTIO_MMIO_MAX);
	CHECK(n > 0 && strstr(buf, "4K@0xfe00a000:23") && (size_t)n == strlen(buf),
	      "11 devices, the last on 0xfe00a000 line 23");
	CHECK_EQ(vmmio_cmdline(buf, 20, 1), -ENOSPC, "a short buffer: -ENOSPC");
	CHECK_EQ(vmmio_cmdline(buf, sizeof(buf), LAYOUT_VIRTIO_MMIO_MAX + 1), -EINVAL,
		 "12 devices: -EINVAL");
	/* the lines: distinct, on the IOAPIC, none shared with COM1, the
	 * GED, PCI INTx or the legacy timer/keyboard/cascade/RTC/mouse */
	unsigned seen = 0;
	int ok = 1;
	for (unsigned i = 0; i < LAYOUT_VIRTIO_MMIO_MAX; i++) {
		unsigned g = LAYOUT_VIRTIO_MMIO_GSI(i);
		if (g >= LAYOUT_IOAPIC_PINS || (seen >> g & 1) || g == LAYOUT_IRQ_COM1 ||
		    g == LAYOUT_IRQ_GED || (g >= LAYOUT_IRQ_PCI_BASE && g < LAYOUT_IRQ_PCI_BASE + 4) ||
		    g <= 2 || g == 8 || g == 12)
			ok = 0;
		seen |= 1u << g;
		if (i < 8 && g >= 16)
			ok = 0; /* the first 8 must be ISA lines */
	}
	CHECK(ok, "virtio-mmio lines: distinct, free, the first 8 below 16");
}

int main(void)
{
	td_mem_init(&d);
	struct vrng *r = calloc(1, sizeof(*r));
	CHECK_EQ(vrng_init(r, &d.gm, &d.irq), 0, "vrng init");
	d.v = &r->vpci;
	vpci_set_mmio(d.v, BASE, 5);
	transport();
	vrng_destroy(r);
	free(r);
	fast_path();
	relay();
	cmdline();
	free(d.mem);
	return t_done();
}

/* fuzz-srcs: vmm/virtio_mmio.c */
/* Random register and device-config accesses of any width through the
 * MMIO bus to a virtio-net and a virtio-blk on the virtio-mmio transport
 * (--virtio-transport mmio), whose rings live in guest memory the input
 * also fills; the "tap" delivers frames the input makes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "bus.h"
#include "fuzz_script.h"
#include "layout.h"
#include "virtio_blk.h"
#include "virtio_mmio.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

static struct td d; /* guest memory and irq counters only */
static struct bus mmio;
static struct vnet *n;
static struct vblk *b;
static int sv[2], fd;
static bool ready;

static void setup(void)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 3 };
	td_mem_init(&d);
	n = calloc(1, sizeof(*n));
	b = calloc(1, sizeof(*b));
	fd = memfd_create("fuzz-img", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 8192) || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) ||
	    vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq) ||
	    vblk_init(b, fd, false, 8192, "f", &d.gm, &d.irq))
		abort();
	vpci_set_mmio(&n->vpci, LAYOUT_VIRTIO_MMIO, LAYOUT_VIRTIO_MMIO_GSI(0));
	vpci_set_mmio(&b->vpci, LAYOUT_VIRTIO_MMIO + LAYOUT_VIRTIO_MMIO_SIZE,
		      LAYOUT_VIRTIO_MMIO_GSI(1));
	if (bus_register(&mmio, LAYOUT_VIRTIO_MMIO, LAYOUT_VIRTIO_MMIO_SIZE, &vmmio_ops, &n->vpci) ||
	    bus_register(&mmio, LAYOUT_VIRTIO_MMIO + LAYOUT_VIRTIO_MMIO_SIZE,
			 LAYOUT_VIRTIO_MMIO_SIZE, &vmmio_ops, &b->vpci))
		abort();
	ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		setup();
	if (size < 2)
		return 0;
	/* first part of the input: guest memory; then an access script */
	const uint8_t *p = fuzz_guest_mem(&d, data, size), *end = data + size;
	while (end - p >= 8) {
		static const unsigned lens[4] = { 1, 2, 4, 8 };
		uint8_t op = p[0];
		unsigned len = lens[op >> 6];
		uint16_t where;
		memcpy(&where, p + 1, 2);
		uint64_t val = 0;
		memcpy(&val, p + 3, 5);
		val |= val << 40;
		p += 8;
		/* bit 3: which device; registers mostly, sometimes anywhere in
		 * the window (device config, reserved, past the end) */
		uint64_t base = LAYOUT_VIRTIO_MMIO + ((op >> 3) & 1) * LAYOUT_VIRTIO_MMIO_SIZE;
		uint64_t off = (op & 0x10) ? (where & 0xfff) : (where & 0x1fc);
		switch (op & 7) {
		case 0: case 1: case 2:
			bus_dispatch(&mmio, base + off, &val, (op & 0x20) ? len : 4, true);
			break;
		case 3: case 4:
			bus_dispatch(&mmio, base + off, &val, (op & 0x20) ? len : 4, false);
			break;
		case 5: { /* a notify of the queue the script names */
			uint32_t q = (uint32_t)val & ((op & 0x20) ? 0xffffffffu : 3);
			bus_dispatch(&mmio, base + 0x50, &q, 4, true);
			break;
		}
		case 6:
			vnet_pair_run(n, 0); /* what the pair thread does on a kick or frame */
			break;
		default: /* the "tap" delivers a frame made of the script's tail */
			fuzz_tap_send(sv[1], p - 8, end, where);
			break;
		}
	}
	fuzz_tap_drain(sv);
	/* back to power-on state: both devices reset through Status */
	uint32_t zero = 0;
	vmmio_ops.write(&n->vpci, 0x70, &zero, 4);
	vmmio_ops.write(&b->vpci, 0x70, &zero, 4);
	return 0;
}

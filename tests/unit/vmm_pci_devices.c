/* devices_setup()/devices_stop(): what the VMM core calls. The guest's
 * view (conf1 on the port bus) and the kernel's file locks are the
 * observers. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>

#include "t.h"
#include "bus.h"
#include "devices.h"
#include "exit.h"
#include "layout.h"

static struct bus pio, mmio;

static uint32_t cfg_rd(unsigned slot, unsigned reg)
{
	uint32_t a = 0x80000000u | slot << 11 | reg, v = 0;
	bus_dispatch(&pio, LAYOUT_PORT_PCI_CONF, &a, 4, true);
	bus_dispatch(&pio, LAYOUT_PORT_PCI_CONF + 4, &v, 4, false);
	return v;
}

static int msi(void *o, uint64_t a, uint32_t d) { (void)o, (void)a, (void)d; return 0; }
static int line(void *o, unsigned g, int l) { (void)o, (void)g, (void)l; return 0; }

int main(void)
{
	char path[] = "/tmp/kvmlab-devices-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC), sv[2];
	uint8_t *ram = aligned_alloc(4096, 1 << 20);
	struct gmem gm;
	struct err e = { "" };

	if (fd < 0 || !ram || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	if (ftruncate(fd, 1 << 20))
		return 1;
	gmem_init_flat(&gm, ram, 1 << 20);
	struct dev_env env = { .pio = &pio, .mmio = &mmio, .gm = &gm,
			       .irq = { .msi = msi, .irq_line = line } };

	struct dev_cfg bad = { .disks = { { .path = "/nonexistent/kvmlab.img" } }, .ndisks = 1 };
	CHECK(devices_setup(&env, &bad, &e) < 0 && strstr(e.msg, "/nonexistent/kvmlab.img"),
	      "missing image: error names the file (%s)", e.msg);
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));

	struct dev_cfg cfg = { .nics = { { .tap_fds = { sv[0] }, .queues = 1 } }, .nnics = 1,
			       .disks = { { .path = path } }, .ndisks = 1 };
	CHECK_EQ(devices_setup(&env, &cfg, &e), 0, "setup with disk and net: %s", e.msg);
	CHECK_EQ(cfg_rd(0, 0), 0x12378086, "host bridge at 00.0");
	CHECK_EQ(cfg_rd(1, 0), 0x10421af4, "virtio-blk at 01.0");
	CHECK_EQ(cfg_rd(2, 0), 0x10411af4, "virtio-net at 02.0");
	CHECK_EQ(cfg_rd(3, 0), 0xffffffff, "nothing at 03.0");
	CHECK_EQ(cfg_rd(1, 0x3c) & 0xffff, 0x100 | LAYOUT_PCI_INTX_GSI(1, 0), "blk INTA# line matches the _PRT");
	int other = open(path, O_RDWR | O_CLOEXEC);
	CHECK(other >= 0 && flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
	      "the image is locked while the VM runs");
	CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK, "tap fd switched to non-blocking");
	/* a frame arriving before the guest set up rx must not hurt */
	CHECK_EQ(send(sv[1], "0123456789abcdef", 16, 0), 16, "frame sent to the idle device");
	usleep(20000);
	devices_stop();
	CHECK_EQ(cfg_rd(1, 0), 0xffffffff, "devices gone after stop");
	CHECK(flock(other, LOCK_EX | LOCK_NB) == 0, "lock released after stop");
	close(other);

	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	other = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(other >= 0 && flock(other, LOCK_SH) == 0, "a reader holds the image");
	struct dev_cfg busy = { .disks = { { .path = path } }, .ndisks = 1 };
	CHECK(devices_setup(&env, &busy, &e) < 0 && strstr(e.msg, "in use"),
	      "a second writer is refused (%s)", e.msg);
	struct dev_cfg ro = { .disks = { { .path = path, .readonly = 1 } }, .ndisks = 1 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK_EQ(devices_setup(&env, &ro, &e), 0, "a read-only user may share it: %s", e.msg);
	devices_stop();
	close(other);

	/* several disks and NICs: disks first, each in the order given */
	char path2[] = "/tmp/kvmlab-devices2-XXXXXX";
	int fd2 = mkostemp(path2, O_CLOEXEC), sv2[2];
	CHECK(fd2 >= 0 && ftruncate(fd2, 4096) == 0 &&
	      socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv2) == 0, "second image and tap");
	struct dev_cfg two = { .disks = { { .path = path }, { .path = path2, .readonly = 1 } },
			       .ndisks = 2,
			       .nics = { { .tap_fds = { sv[0] }, .queues = 1 },
					 { .tap_fds = { sv2[0] }, .queues = 1 } },
			       .nnics = 2 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK_EQ(devices_setup(&env, &two, &e), 0, "two disks and two NICs: %s", e.msg);
	CHECK_EQ(cfg_rd(1, 0), 0x10421af4, "first disk at 01.0");
	CHECK_EQ(cfg_rd(2, 0), 0x10421af4, "second disk at 02.0");
	CHECK_EQ(cfg_rd(3, 0), 0x10411af4, "first NIC at 03.0");
	CHECK_EQ(cfg_rd(4, 0), 0x10411af4, "second NIC at 04.0");
	CHECK_EQ(cfg_rd(5, 0), 0xffffffff, "nothing at 05.0");
	CHECK_EQ(cfg_rd(4, 0x3c) & 0xff, LAYOUT_PCI_INTX_GSI(4, 0), "second NIC's INTA# line matches the _PRT");
	/* each device its own BAR: no two share an MMIO window */
	uint32_t bars[4];
	for (unsigned i = 0; i < 4; i++)
		bars[i] = cfg_rd(i + 1, 0x10) & ~0xfu;
	int distinct = 1;
	for (unsigned i = 0; i < 4; i++)
		for (unsigned j = i + 1; j < 4; j++)
			distinct &= bars[i] != bars[j] && bars[i] != 0;
	CHECK(distinct, "BAR0s distinct and set: %x %x %x %x", bars[0], bars[1], bars[2], bars[3]);
	CHECK(fcntl(sv2[0], F_GETFL) & O_NONBLOCK, "second tap fd switched to non-blocking");
	other = open(path2, O_RDWR | O_CLOEXEC);
	CHECK(other >= 0 && flock(other, LOCK_EX | LOCK_NB) < 0, "the second image is held (shared)");
	close(other);
	devices_stop();
	CHECK_EQ(cfg_rd(3, 0), 0xffffffff, "all four gone after stop");

	/* the same writable image twice is two writers: refused, nothing left */
	struct dev_cfg twice = { .disks = { { .path = path2 }, { .path = path2 } }, .ndisks = 2 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK(devices_setup(&env, &twice, &e) < 0 && strstr(e.msg, "given twice") && strstr(e.msg, path2),
	      "one image given twice is refused as such (%s)", e.msg);
	CHECK_EQ(cfg_rd(1, 0), 0xffffffff, "the first disk was taken back");
	other = open(path2, O_RDWR | O_CLOEXEC);
	CHECK(other >= 0 && flock(other, LOCK_EX | LOCK_NB) == 0, "and its lock with it");
	close(other);
	struct dev_cfg tworo = { .disks = { { .path = path2, .readonly = 1 }, { .path = path2, .readonly = 1 } },
				 .ndisks = 2 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK_EQ(devices_setup(&env, &tworo, &e), 0, "one image twice, both read-only: allowed (%s)", e.msg);
	devices_stop();
	struct dev_cfg many = { .ndisks = DEV_DISKS_MAX + 1 };
	CHECK(devices_setup(&env, &many, &e) < 0 && strstr(e.msg, "at most"),
	      "more disks than slots kept for them: refused (%s)", e.msg);
	struct dev_cfg nonic = { .nics = { { .tap_fds = { sv2[0] }, .queues = 0 } }, .nnics = 1 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK(devices_setup(&env, &nonic, &e) < 0 && strstr(e.msg, "queues"),
	      "a NIC with 0 queues: refused (%s)", e.msg);
	/* vsock and rng come after the NICs; without /dev/vhost-vsock the
	 * vsock device is refused in one line naming what to load, and the
	 * devices before it are taken back */
	struct dev_cfg vs = { .disks = { { .path = path2 } }, .ndisks = 1, .vsock_cid = 7, .rng = 1 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	int rc = devices_setup(&env, &vs, &e);
	if (access("/dev/vhost-vsock", R_OK | W_OK) == 0) {
		CHECK_EQ(rc, 0, "disk, vsock (CID 7) and rng: %s", e.msg);
		CHECK_EQ(cfg_rd(2, 0), 0x10531af4, "virtio-vsock (0x1053) at 02.0, after the disk");
		CHECK_EQ(cfg_rd(3, 0), 0x10441af4, "virtio-rng (0x1044) at 03.0, last");
		devices_stop();
	} else {
		CHECK(rc < 0 && strstr(e.msg, "/dev/vhost-vsock") && strstr(e.msg, "modprobe vhost_vsock"),
		      "no /dev/vhost-vsock here: refused, saying what to load (%s)", e.msg);
		CHECK_EQ(cfg_rd(1, 0), 0xffffffff, "and the disk before it was taken back");
	}
	struct dev_cfg rngonly = { .rng = 1 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK_EQ(devices_setup(&env, &rngonly, &e), 0, "rng alone: %s", e.msg);
	CHECK_EQ(cfg_rd(1, 0), 0x10441af4, "virtio-rng at 01.0");
	devices_stop();

	/* pvpanic-pci, last: the guest's driver reads BAR 0's byte 0 for the
	 * events understood, and a write with bit 0 is a panic; nothing else
	 * in the BAR does anything */
	struct exit_latch x = { EXIT_EV_NONE, -1 };
	env.exit = &x;
	struct dev_cfg pv = { .rng = 1, .pvpanic = 1 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK_EQ(devices_setup(&env, &pv, &e), 0, "rng and pvpanic: %s", e.msg);
	CHECK_EQ(cfg_rd(2, 0), 0x00111b36, "pvpanic-pci (1b36:0011) at 02.0, after the rng");
	CHECK_EQ(cfg_rd(2, 8) >> 8, 0x088000, "class: system peripheral, other");
	CHECK_EQ(cfg_rd(2, 0x3c) & 0xffff, 0, "no interrupt pin, no line");
	uint32_t bar = cfg_rd(2, 0x10) & ~0xfu;
	uint8_t b = 0xee;
	uint32_t w = 0xeeeeeeee;
	bus_dispatch(&mmio, bar, &b, 1, false);
	CHECK_EQ(b, 1, "BAR 0 byte 0: the events understood (panicked)");
	bus_dispatch(&mmio, bar + 4, &w, 4, false);
	CHECK_EQ(w, 0, "the rest of the BAR reads 0");
	b = 1;
	bus_dispatch(&mmio, bar + 1, &b, 1, true);
	w = 0xffffffff;
	bus_dispatch(&mmio, bar + 0xffc, &w, 4, true);
	b = 2;
	bus_dispatch(&mmio, bar, &b, 1, true);
	CHECK_EQ(exit_get(&x), EXIT_EV_NONE, "writes elsewhere, or of another event: no exit");
	b = 1;
	bus_dispatch(&mmio, bar, &b, 1, true);
	CHECK_EQ(exit_get(&x), EXIT_EV_PANIC, "writing 'panicked' raises the panic");
	devices_stop();
	CHECK_EQ(cfg_rd(2, 0), 0xffffffff, "pvpanic gone after stop");
	unlink(path2);
	close(fd2);
	close(sv2[0]);
	close(sv2[1]);

	unlink(path);
	close(fd);
	close(sv[0]);
	close(sv[1]);
	free(ram);
	return t_done();
}

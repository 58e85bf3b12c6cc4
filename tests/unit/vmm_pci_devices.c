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

	struct dev_cfg bad = { .disk_path = "/nonexistent/kvmlab.img" };
	CHECK(devices_setup(&env, &bad, &e) < 0 && strstr(e.msg, "/nonexistent/kvmlab.img"),
	      "missing image: error names the file (%s)", e.msg);
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));

	struct dev_cfg cfg = { .tap_fds = { sv[0] }, .tap_queues = 1, .disk_path = path };
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
	struct dev_cfg busy = { .disk_path = path };
	CHECK(devices_setup(&env, &busy, &e) < 0 && strstr(e.msg, "in use"),
	      "a second writer is refused (%s)", e.msg);
	struct dev_cfg ro = { .disk_path = path, .disk_readonly = 1 };
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	CHECK_EQ(devices_setup(&env, &ro, &e), 0, "a read-only user may share it: %s", e.msg);
	devices_stop();
	close(other);

	unlink(path);
	close(fd);
	close(sv[0]);
	close(sv[1]);
	free(ram);
	return t_done();
}

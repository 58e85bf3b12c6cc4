/* A multi-queue tap that a previous boot of the VM left with queues
 * detached (virtio-net's reset keeps one pair: set_pairs) must come back
 * whole when the next boot's device is created (kvmlab-vm run
 * --on-reboot restart reuses the taps). Needs CAP_NET_ADMIN; it makes
 * its own network namespace (unshare), so the tap goes with the process
 * and nothing is left behind. The kernel is the oracle: TUNSETQUEUE
 * IFF_ATTACH_QUEUE succeeds on a detached queue and fails with EINVAL on
 * an attached one. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>

#include "t.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

#define QUEUES 3

static int queue_open(void)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "klre0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int set_queue(int fd, short flag)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = flag;
	return ioctl(fd, TUNSETQUEUE, &ifr) < 0 ? -errno : 0;
}

int main(void)
{
	static struct td d;
	int fds[QUEUES];
	const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };

	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		printf("ok - vnet reattach # SKIP needs CAP_NET_ADMIN (unshare -n)\n");
		return 0;
	}
	for (int i = 0; i < QUEUES; i++) {
		fds[i] = queue_open();
		CHECK(fds[i] >= 0, "tap queue %d opened", i);
		if (fds[i] < 0)
			return t_done();
	}
	/* the oracle itself: attach answers 0 on a detached queue, EINVAL
	 * on an attached one */
	CHECK_EQ(set_queue(fds[2], IFF_ATTACH_QUEUE), -EINVAL, "the kernel: queue 2 attached at open");
	CHECK_EQ(set_queue(fds[2], IFF_DETACH_QUEUE), 0, "queue 2 detached");
	CHECK_EQ(set_queue(fds[2], IFF_ATTACH_QUEUE), 0, "the kernel: a detached queue attaches");
	/* what a previous boot's reset left: only pair 0 attached */
	CHECK(set_queue(fds[1], IFF_DETACH_QUEUE) == 0 && set_queue(fds[2], IFF_DETACH_QUEUE) == 0,
	      "queues 1 and 2 detached, as a reset leaves them");

	td_mem_init(&d);
	struct vnet *n = calloc(1, sizeof(*n));
	/* a new device starts with one pair (it detaches the others itself):
	 * it must know where the tap stands, or that detach fails */
	CHECK_EQ(vnet_init(n, fds, QUEUES, true, mac, &d.gm, &d.irq), 0,
		 "vnet_init on the tap a previous boot left");
	CHECK_EQ(vnet_cur_pairs(n), 1, "one pair active");
	for (int i = 1; i < QUEUES; i++)
		CHECK_EQ(set_queue(fds[i], IFF_DETACH_QUEUE), -EINVAL,
			 "the kernel: queue %d detached by the device, as it says", i);
	vnet_destroy(n);
	/* and again: a third boot of the same VM */
	CHECK_EQ(vnet_init(n, fds, QUEUES, true, mac, &d.gm, &d.irq), 0, "vnet_init once more");
	vnet_destroy(n);
	free(n);
	for (int i = 0; i < QUEUES; i++)
		close(fds[i]);
	return t_done();
}

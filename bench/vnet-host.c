/* virtio-net's receive path on the host alone, no guest and no KVM: small
 * frames written into a datagram socketpair (the tap's stand-in) and
 * taken by the real device (vnet_rx) into a ring of mergeable buffers
 * posted by the unit tests' little driver (tests/unit/vmm_vdrv.h).
 * usage: vnet-host mtu|gso BURST SECONDS
 *   mtu: MRG_RXBUF only: the device gathers room for one MTU frame;
 *   gso: MRG_RXBUF + GUEST_TSO4: room for a 64 KiB frame before each
 *        read, whatever arrives (what a Linux guest negotiates).
 * Each round posts the 256-entry ring full of 1536-byte buffers, sends
 * BURST 64-byte frames and times one vnet_rx drain. Prints
 *   RES <mode> <burst> <ns per frame inside vnet_rx> */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "virtio_net.h"
#include "vmm_vdrv.h"

#define B(x) (1ull << (x))
#define QSZ 256u
#define BUF 1536u
#define RXBUF 0x80000u /* above the rings td_queue lays out */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
	static struct td d;
	int sv[2];

	if (argc != 4 || (strcmp(argv[1], "mtu") && strcmp(argv[1], "gso"))) {
		fprintf(stderr, "usage: vnet-host mtu|gso BURST SECONDS\n");
		return 2;
	}
	bool gso = !strcmp(argv[1], "gso");
	unsigned burst = (unsigned)atoi(argv[2]);
	double secs = atof(argv[3]);
	if (burst < 1 || burst > 64 || secs <= 0) {
		fprintf(stderr, "vnet-host: BURST 1..64, SECONDS > 0\n");
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) || fcntl(sv[0], F_SETFL, O_NONBLOCK))
		return 1;
	td_mem_init(&d);
	if (QSZ * BUF + RXBUF > TD_MEM) /* the driver's memory is 1 MiB */
		return 1;
	struct vnet *n = calloc(1, sizeof(*n));
	if (!n || vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq)) {
		fprintf(stderr, "vnet-host: vnet_init failed\n");
		return 1;
	}
	d.v = &n->vpci;
	uint64_t f = B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_RING_F_EVENT_IDX) |
		     B(VIRTIO_NET_F_MRG_RXBUF) |
		     (gso ? B(VIRTIO_NET_F_GUEST_CSUM) | B(VIRTIO_NET_F_GUEST_TSO4) : 0);
	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, QSZ) != 1 ||
	    td_queue(&d, 1, QSZ) != 1) {
		fprintf(stderr, "vnet-host: the device refused the setup\n");
		return 1;
	}
	td_driver_ok(&d);

	uint8_t pkt[VNET_HDR_LEN + 64];
	memset(pkt, 0, sizeof(pkt));
	memcpy(pkt + VNET_HDR_LEN, mac, 6);
	double in_rx = 0, end = now() + secs;
	unsigned long frames = 0;
	while (now() < end) {
		while ((uint16_t)(d.q[0].avail_idx - d.q[0].used_seen) < QSZ) {
			uint16_t slot = (uint16_t)(d.q[0].next_desc % QSZ);
			struct td_seg s = { RXBUF + (uint64_t)slot * BUF, BUF, 1 };
			td_add(&d, 0, &s, 1);
		}
		for (unsigned i = 0; i < burst; i++)
			if (send(sv[1], pkt, sizeof(pkt), 0) != (ssize_t)sizeof(pkt))
				return 1;
		double t0 = now();
		vnet_rx(n, 0);
		in_rx += now() - t0;
		uint32_t id, len;
		unsigned got = 0;
		while (td_used(&d, 0, &id, &len) == 1)
			got++;
		if (got != burst) {
			fprintf(stderr, "vnet-host: %u of %u frames received\n", got, burst);
			return 1;
		}
		frames += got;
	}
	printf("RES %s %u %.0f\n", argv[1], burst, in_rx * 1e9 / (double)frames);
	vnet_destroy(n);
	free(n);
	free(d.mem);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

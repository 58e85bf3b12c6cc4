/* vhost-net glue without a kernel backend: the memory table handed to
 * VHOST_SET_MEM_TABLE and the feature split. Where /dev/vhost-net exists
 * (the test host), the open/owner/mem-table sequence runs for real. */
#include <stdlib.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include "t.h"
#include "vhost_net.h"

#define BIT(n) (1ull << (n))

int main(void)
{
	static uint8_t lo[4096], hi[8192];
	struct gmem gm = { .nr = 2, .ram_size = sizeof(lo) + sizeof(hi) };
	gm.r[0] = (struct gmem_region){ .gpa = 0, .size = sizeof(lo), .host = lo };
	gm.r[1] = (struct gmem_region){ .gpa = 1ull << 32, .size = sizeof(hi), .host = hi };

	struct vhost_memory *m = calloc(1, sizeof(*m) + 4 * sizeof(m->regions[0]));
	CHECK_EQ(vhost_mem_table(&gm, m, 4), 2, "two RAM regions, two table entries");
	CHECK_EQ(m->nregions, 2, "nregions");
	CHECK(m->regions[1].guest_phys_addr == 1ull << 32 &&
	      m->regions[1].memory_size == sizeof(hi) &&
	      m->regions[1].userspace_addr == (uint64_t)(uintptr_t)hi,
	      "the region above the PCI hole maps guest to host as gmem does");
	CHECK_EQ(vhost_mem_table(&gm, m, 1), -E2BIG, "a table too small is refused, not cut");
	free(m);

	uint64_t ring = vhost_net_ring_features();
	CHECK(ring & BIT(VIRTIO_NET_F_MRG_RXBUF), "MRG_RXBUF goes to the backend (it fills num_buffers)");
	CHECK(!(ring & BIT(VIRTIO_NET_F_CSUM)) && !(ring & BIT(VIRTIO_NET_F_MAC)),
	      "offloads and MAC stay with the tap and the VMM");
	CHECK(!(ring & BIT(VIRTIO_F_ACCESS_PLATFORM)), "no IOTLB: the backend sees guest RAM directly");

	struct vhost_net vh = { .fd = -1 };
	CHECK(!vhost_net_can(&vh, BIT(VIRTIO_F_VERSION_1)), "a closed backend serves nobody");
	vh.fd = 99;
	vh.features = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF);
	CHECK(vhost_net_can(&vh, BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_CSUM) |
				 BIT(VIRTIO_NET_F_MRG_RXBUF)),
	      "device-only bits do not need the backend");
	CHECK(!vhost_net_can(&vh, BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX)),
	      "a ring feature the backend lacks rules vhost out");

	if (access("/dev/vhost-net", R_OK | W_OK) == 0) {
		struct err e = { "" };
		struct vhost_net real;
		int rc = vhost_net_open(&real, &gm, &e);
		CHECK_EQ(rc, 0, "open, SET_OWNER, SET_MEM_TABLE on /dev/vhost-net (%s)", e.msg);
		if (rc == 0) {
			CHECK(real.features & BIT(VIRTIO_F_VERSION_1), "the backend speaks virtio 1");
			uint16_t base = 7;
			CHECK_EQ(vhost_net_stop(&real, 0, &base), 0, "stopping a ring never started is a no-op");
			CHECK_EQ(base, 7, "and reports nothing");
			vhost_net_close(&real);
		}
	} else {
		printf("ok - vhost-net open # SKIP no /dev/vhost-net here\n");
	}
	return t_done();
}

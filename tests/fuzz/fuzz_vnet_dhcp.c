/* fuzz-srcs: vmm/dhcp.c */
/* virtio-net with the DHCP tx filter on (as `run --net` sets it), on
 * random rings: fuzz_vnet's harness plus the filter's copy, verdict,
 * reply injection into rx and the pending-reply slot. Nothing may escape
 * guest memory, and nothing longer than a GSO frame may reach the fd. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "dhcp.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"
#include "fuzz_ring.h"

static struct td d;
static struct vnet *n;
static int sv[2] = { -1, -1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	static struct dhcp_lease lease = {
		.mac = { 2, 0, 0, 0, 0, 1 }, .addr = 0x0a000002, .router = 0x0a000001,
		.prefix = 24, .mtu = 1500, .ndns = 1, .dns = { 0x0a000001 }, .hostname = "f",
	};
	if (sv[0] < 0) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
			abort();
		td_mem_init(&d);
		n = calloc(1, sizeof(*n));
		if (vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq))
			abort();
		n->tx_filter = dhcp_tx_filter;
		n->tx_filter_opaque = &lease;
		d.v = &n->vpci;
	}
	if (size < 8)
		return 0;
	/* header: features, queue sizes, frame length */
	uint64_t f = vnet_features(1) & (0x300000000ull | (uint64_t)data[0] << 13 | data[1] | (uint64_t)data[2] << 8);
	f |= 1ull << VIRTIO_F_VERSION_1;
	uint16_t qs = (uint16_t)(1u << (data[3] % 9));
	size_t flen = (size_t)data[4] << 8 | data[5];
	data += 8;
	size -= 8;
	if (flen > size)
		flen = size;

	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK))
		return 0;
	/* queue geometry is ours; ring contents come from the input below */
	if (td_queue(&d, 0, qs) != 1 || td_queue(&d, 1, qs) != 1)
		return 0;
	td_driver_ok(&d);
	const uint8_t *r = data + flen;
	size_t rn = size - flen;
	size_t k = fuzz_ring(&d, 1, r, rn); /* tx */
	k += fuzz_ring(&d, 0, r + k, rn - k); /* rx */
	size_t m = rn - k < FR_AREA ? rn - k : FR_AREA;
	memset(d.mem + TD_BUF, 0, FR_AREA);
	memcpy(d.mem + TD_BUF, r + k, m); /* frames to send */
	if (flen)
		(void)!send(sv[1], data, flen, MSG_DONTWAIT);
	td_kick(&d, 1);
	td_kick(&d, 0);
	vnet_pair_run(n, 0);
	/* drain both directions so inputs stay independent; no datagram on
	 * the "tap" may be longer than a 64 KiB GSO frame (MSG_TRUNC: the
	 * real length, however little we copy) */
	uint8_t buf[70000];
	ssize_t got;
	while ((got = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC)) > 0)
		if (got > VNET_HDR_LEN + 65535 + 14 + 4)
			abort();
	while (recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	td_wr(&d, 0x14, 0, 1);
	return 0;
}

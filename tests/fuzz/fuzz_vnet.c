/* virtio-net tx, rx and the control queue on random rings, two queue
 * pairs: the input is guest memory plus one frame the "tap" delivers.
 * Nothing may escape guest memory, whatever is sent must have come from
 * it, and the active pair count stays within 1..2. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "virtio_net.h"
#include "vmm_vdrv.h"
#include "fuzz_ring.h"

static struct td d;
static struct vnet *n;
static int sv[2] = { -1, -1 }, sv2[2] = { -1, -1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	if (sv[0] < 0) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) ||
		    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv2))
			abort();
		td_mem_init(&d);
		n = calloc(1, sizeof(*n));
		int fds[2] = { sv[0], sv2[0] };
		if (vnet_init(n, fds, 2, false, mac, &d.gm, &d.irq))
			abort();
		d.v = &n->vpci;
	}
	if (size < 8)
		return 0;
	/* header: features, queue sizes, frame length */
	uint64_t f = vnet_features(2) & (0x300000000ull | (uint64_t)data[0] << 13 | data[1] |
					 (uint64_t)data[2] << 8 | (uint64_t)data[6] << 16);
	f |= 1ull << VIRTIO_F_VERSION_1;
	uint16_t qs = (uint16_t)(1u << (data[3] % 9));
	size_t flen = (size_t)data[4] << 8 | data[5];
	uint8_t opt = data[7]; /* 1: control queue, 2: pair 1 tx, 4: frame to pair 1,
				* 8: it twice (the second meets chains the first held) */
	data += 8;
	size -= 8;
	if (flen > size)
		flen = size;

	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK))
		return 0;
	/* queue geometry is ours; ring contents come from the input below */
	for (unsigned q = 0; q < 5; q++)
		if (td_queue(&d, q, qs) != 1)
			return 0;
	td_driver_ok(&d);
	unsigned ctrlq = (f >> VIRTIO_NET_F_MQ) & 1 ? 4 : 2;
	const uint8_t *r = data + flen;
	size_t rn = size - flen;
	size_t k = 0;
	if (opt & 1)
		k += fuzz_ring(&d, ctrlq, r + k, rn - k); /* control commands */
	k += fuzz_ring(&d, 1, r + k, rn - k); /* tx */
	k += fuzz_ring(&d, 0, r + k, rn - k); /* rx */
	if (opt & 2)
		k += fuzz_ring(&d, 3, r + k, rn - k); /* tx of pair 1 */
	size_t m = rn - k < FR_AREA ? rn - k : FR_AREA;
	memset(d.mem + TD_BUF, 0, FR_AREA);
	memcpy(d.mem + TD_BUF, r + k, m); /* frames to send */
	for (int i = 0; flen && i < (opt & 8 ? 2 : 1); i++)
		(void)!send(opt & 4 ? sv2[1] : sv[1], data, flen, MSG_DONTWAIT);
	if (opt & 1)
		td_kick(&d, ctrlq); /* served inline: may switch pairs */
	if (vnet_cur_pairs(n) < 1 || vnet_cur_pairs(n) > 2)
		abort();
	td_kick(&d, 1);
	td_kick(&d, 0);
	td_kick(&d, 3);
	vnet_pair_run(n, 0);
	vnet_pair_run(n, 1);
	/* drain both directions so inputs stay independent; no datagram on
	 * the "tap" may be longer than a 64 KiB GSO frame (MSG_TRUNC: the
	 * real length, however little we copy) */
	uint8_t buf[70000];
	ssize_t got;
	for (int *s = sv; s; s = s == sv ? sv2 : NULL) {
		while ((got = recv(s[1], buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC)) > 0)
			if (got > VNET_HDR_LEN + 65535 + 14 + 4)
				abort();
		while (recv(s[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
	}
	td_wr(&d, 0x14, 0, 1);
	return 0;
}

/* fuzz-srcs: vmm/ra.c */
/* The VMM's Router Solicitation handler on arbitrary frames. The input's
 * first 2 bytes pick the configuration (prefix length, MTU) and the reply
 * room; the rest is the frame. A reply must fit its room and RA_FRAME_MAX,
 * answer only a frame that at least looks like an RS (type 133, hop limit
 * 255, from a unicast MAC), and be an RA from the router's MAC and
 * fe80::1 whose ICMPv6 checksum is right (checked here, not by ra.c).
 * The same frame as a DAD claim (ra_dad_target, with the frame's own
 * source MAC): a claim only from a checksummed NS from ::, hop limit 255,
 * for the target in the message, which is not multicast. */
#include <stdlib.h>
#include <string.h>

#include "ra.h"

/* one's-complement sum of the pseudo-header and the message, folded */
static int icmp6_ok(const uint8_t *ip, const uint8_t *m, size_t n)
{
	uint64_t s = 58 + (uint64_t)n;
	for (size_t i = 8; i < 40; i += 2)
		s += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	for (size_t i = 0; i < n; i++)
		s += (uint64_t)m[i] << (i & 1 ? 0 : 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s == 0xffff;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const uint8_t fe80_1[16] = { 0xfe, 0x80, [15] = 1 };
	struct ra_cfg c = {
		.router_mac = { 0x02, 0x6b, 0x6c, 0x00, 0x00, 0x01 },
		.prefix = { 0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, [15] = 1 },
		.prefix_len = 64,
		.mtu = 1500,
	};
	/* prefix lengths 1..128 (ra_cfg_check may refuse some: still built
	 * safely), MTU on or off */
	c.prefix_len = 1 + (data[0] & 0x7f);
	if (data[0] & 0x80)
		c.mtu = 0;
	size_t cap = data[1] & 1 ? RA_FRAME_MAX : (size_t)data[1];
	data += 2;
	size -= 2;

	/* the frame and the reply in buffers of their own sizes, so ASan
	 * sees any overread or overwrite */
	uint8_t *f = malloc(size ? size : 1), *reply = malloc(cap ? cap : 1);
	if (!f || !reply)
		abort();
	memcpy(f, data, size);
	size_t rl = cap;
	int r = ra_handle(&c, f, size, reply, &rl);
	if (r != 0 && r != 1)
		abort();
	if (!r && rl)
		abort();
	if (r) {
		if (!rl || rl > cap || rl > RA_FRAME_MAX || rl < 54 + 16)
			abort();
		if (size < 62 || f[54] != 133 || f[21] != 255 || (f[6] & 1))
			abort(); /* answered something that is no RS */
		const uint8_t *ip = reply + 14, *m = reply + 54;
		if (reply[12] != 0x86 || reply[13] != 0xdd || memcmp(reply + 6, c.router_mac, 6))
			abort();
		if ((ip[0] >> 4) != 6 || ip[6] != 58 || ip[7] != 255 || memcmp(ip + 8, fe80_1, 16))
			abort();
		if ((size_t)(ip[4] << 8 | ip[5]) != rl - 54 || m[0] != 134 || m[1] != 0)
			abort();
		if (!icmp6_ok(ip, m, rl - 54))
			abort();
	}
	/* the same frame as a claim: only a checksummed DAD NS from the
	 * MAC asked for, for its own solicited-node group, yields one */
	uint8_t t[16];
	memset(t, 0xa5, sizeof(t));
	r = ra_dad_target(f, size, f + (size >= 12 ? 6 : 0), t);
	if (r == 1) {
		const uint8_t *ip = f + 14, *m = f + 54;
		size_t n = (size_t)(ip[4] << 8 | ip[5]);
		if (size < 54 + 24 || m[0] != 135 || ip[7] != 255 || n < 24 || n > size - 54)
			abort();
		for (int i = 8; i < 24; i++)
			if (ip[i])
				abort(); /* not from :: */
		if (memcmp(t, m + 8, 16) || t[0] == 0xff || memcmp(ip + 24 + 13, t + 13, 3) ||
		    !icmp6_ok(ip, m, n))
			abort();
		(void)ra_prefix_has(&c, t);
	} else if (r != 0) {
		abort();
	} else {
		for (int i = 0; i < 16; i++)
			if (t[i] != 0xa5)
				abort(); /* refused, yet wrote */
	}
	free(reply);
	free(f);
	return 0;
}

/* fuzz-srcs: vmm/dhcp.c */
/* The VMM's DHCP server on arbitrary frames: the parser (every length
 * the guest controls) and the reply builder. The input's first 4 bytes
 * pick the lease and the reply room; the rest is the frame. A reply must
 * fit its room, carry valid IPv4 and UDP checksums (checked here, not by
 * dhcp.c), go to the lease's MAC or broadcast, and never come for a
 * frame from another MAC. */
#include <stdlib.h>
#include <string.h>

#include "dhcp.h"

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	struct dhcp_lease l = {
		.mac = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 },
		.addr = 0x0a141e4d, .router = 0x0a141e01, .prefix = 24,
		.mtu = 1500, .dns = { 0x0a141e01, 0xc0000235, 0x08080808 },
		.hostname = "fuzz-vm", .lease_time = 0,
	};
	/* lease variants: prefix 8..30, DNS count, host name, MTU, lease time */
	l.prefix = 8 + data[0] % 23;
	l.ndns = data[1] % 4;
	if (data[1] & 0x80)
		memset(l.hostname, 'h', DHCP_HOSTNAME_MAX);
	if (data[1] & 0x40)
		l.mtu = 0;
	l.lease_time = (uint32_t)data[2] * 0x01010101u;
	uint32_t m = ~0u << (32 - l.prefix);
	l.addr = (l.router & m) | ((l.router + 1 + data[3]) & ~m);
	if (dhcp_lease_check(&l))
		return 0;
	size_t cap = data[3] & 1 ? DHCP_REPLY_MAX : (size_t)data[3] * 3;
	data += 4;
	size -= 4;

	/* the frame in a buffer of its own size, so ASan sees any overread */
	uint8_t *f = malloc(size ? size : 1);
	if (!f)
		return 0;
	memcpy(f, data, size);
	uint8_t *reply = malloc(cap ? cap : 1);
	size_t rl = cap;
	enum dhcp_verdict v = dhcp_handle(&l, f, size, reply, &rl);
	if (v != DHCP_PASS && v != DHCP_REPLY && v != DHCP_DROP)
		abort();
	if (v != DHCP_REPLY && rl)
		abort();
	if (v == DHCP_REPLY) {
		if (rl > cap || rl < 14 + 20 + 8 + 300 || rl > DHCP_REPLY_MAX)
			abort();
		if (memcmp(f + 6, l.mac, 6))
			abort(); /* answered someone else */
		static const uint8_t bc[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
		if (memcmp(reply, l.mac, 6) && memcmp(reply, bc, 6))
			abort();
		const uint8_t *ip = reply + 14, *u = ip + 20;
		if (sum16(ip, 20, 0) != 0xffff)
			abort(); /* IPv4 header checksum */
		size_t ulen = (size_t)(u[4] << 8 | u[5]);
		if (ulen != rl - 34)
			abort();
		uint32_t ps = sum16(ip + 12, 8, 0) + 17 + (uint32_t)ulen;
		if (sum16(u, ulen, ps) != 0xffff)
			abort(); /* UDP checksum over the pseudo-header */
	}
	free(reply);
	free(f);
	return 0;
}

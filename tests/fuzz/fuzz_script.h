/* What the transport fuzzers (fuzz_pci, fuzz_mmio) share: an input is
 * guest memory, then an access script; and a fake tap, a socketpair
 * whose far end (sv[1]) delivers frames the script makes, drained of
 * what the device sent and left unread between inputs. */
#ifndef KVMLAB_FUZZ_SCRIPT_H
#define KVMLAB_FUZZ_SCRIPT_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include "vmm_vdrv.h"

/* data[0] * 64 bytes (at most what there is) fill the first 128 KiB of
 * guest memory, the rest zeroed; returns where the script starts.
 * size >= 2. */
static inline const uint8_t *fuzz_guest_mem(struct td *d, const uint8_t *data, size_t size)
{
	size_t memlen = (size_t)data[0] * 64;
	if (memlen > size - 1)
		memlen = size - 1;
	memset(d->mem, 0, 0x20000);
	memcpy(d->mem, data + 1, memlen < 0x20000 ? memlen : 0x20000);
	return data + 1 + memlen;
}

/* A frame of 8 + (len & 0x3ff) bytes of the script from op on, cut at end. */
static inline void fuzz_tap_send(int fd, const uint8_t *op, const uint8_t *end, unsigned len)
{
	size_t fl = 8 + (len & 0x3ff);
	if (fl > (size_t)(end - op))
		fl = (size_t)(end - op);
	(void)!send(fd, op, fl, MSG_DONTWAIT);
}

static inline void fuzz_tap_drain(const int sv[2])
{
	uint8_t buf[2048];
	while (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	while (recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}
#endif

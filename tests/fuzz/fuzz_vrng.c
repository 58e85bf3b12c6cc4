/* virtio-rng on random rings: whatever chains the guest builds (readable
 * and writable segments, indirect tables, buffers outside RAM), the
 * device reports at most VRNG_MAX_REQ per request and writes nowhere but
 * the buffer area fuzz_ring folds addresses into: guest RAM right above
 * it is a canary, and ASan watches everything outside RAM. */
#include <stdlib.h>
#include <string.h>

#include "virtio_rng.h"
#include "vmm_vdrv.h"
#include "fuzz_ring.h"

static struct td d;
static struct vrng *r;

#define CANARY_AT (TD_BUF + FR_AREA + 0x4000u) /* past the largest folded buffer */
#define CANARY_LEN 0x4000u

static ssize_t counter(void *buf, size_t len)
{
	memset(buf, 0x5a, len);
	return (ssize_t)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!r) {
		td_mem_init(&d);
		r = calloc(1, sizeof(*r));
		if (!r || vrng_init(r, &d.gm, &d.irq))
			abort();
		r->fill = counter;
		d.v = &r->vpci;
	}
	if (size < 2)
		return 0;
	uint64_t f = (1ull << 32) | (data[0] & 1 ? 1ull << 28 : 0) | (data[0] & 2 ? 1ull << 29 : 0);
	uint16_t qs = (uint16_t)(1u << (data[1] % 7));
	data += 2;
	size -= 2;
	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, qs) != 1)
		return 0;
	td_driver_ok(&d);
	memset(d.mem + CANARY_AT, 0xa5, CANARY_LEN);
	fuzz_ring(&d, 0, data, size);
	/* the rings and their tables live below TD_BUF; what the device may
	 * write is bounded by the used lengths it reports */
	td_kick(&d, 0);
	uint32_t id, len;
	while (td_used(&d, 0, &id, &len))
		if (len > VRNG_MAX_REQ)
			abort();
	for (size_t i = CANARY_AT; i < CANARY_AT + CANARY_LEN; i++)
		if (d.mem[i] != 0xa5)
			abort();
	td_wr(&d, 0x14, 0, 1); /* reset */
	return 0;
}

/* Turn fuzz input into a plausible split ring on a td queue: descriptor
 * table and avail entries come from the input, but descriptors whose
 * address has the top bit clear are folded into the buffer area, so the
 * fuzzer reaches the device code instead of only the bounds checks.
 * Returns the input bytes consumed. */
#ifndef KVMLAB_FUZZ_RING_H
#define KVMLAB_FUZZ_RING_H
#include <string.h>
#include "vmm_vdrv.h"

#define FR_AREA 0x20000u /* buffers live in [TD_BUF, TD_BUF + FR_AREA) */

static size_t fuzz_ring(struct td *d, unsigned qi, const uint8_t *in, size_t n)
{
	struct td_q *q = &d->q[qi];
	size_t used = 0;
	if (n < 1)
		return 0;
	unsigned navail = in[0] % (q->size + 1u);
	used = 1;
	for (unsigned i = 0; i < q->size && used + 16 <= n; i++, used += 16) {
		struct vring_desc de;
		memcpy(&de, in + used, 16);
		if (!(de.addr >> 63)) {
			de.addr = TD_BUF + (de.addr % FR_AREA);
			de.len &= 0x3fff;
		}
		de.next %= (uint16_t)(q->size + (de.next >> 15)); /* mostly in range */
		memcpy(d->mem + q->desc + 16u * i, &de, 16);
	}
	for (unsigned i = 0; i < navail && used + 2 <= n; i++, used += 2) {
		uint16_t h;
		memcpy(&h, in + used, 2);
		h %= (uint16_t)(q->size + (h >> 15));
		memcpy(d->mem + q->avail + 4 + 2u * (q->avail_idx % q->size), &h, 2);
		q->avail_idx++;
	}
	/* the event index fields, as a driver might leave them */
	if (used + 2 <= n) {
		memcpy(d->mem + q->avail + 4 + 2u * q->size, in + used, 2);
		used += 2;
	}
	memcpy(d->mem + q->avail + 2, &q->avail_idx, 2);
	return used;
}
#endif

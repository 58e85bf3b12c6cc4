/* Virtqueue walker on random guest memory and random ring state. Every
 * segment a popped chain hands out must lie inside guest memory. */
#include <stdlib.h>
#include <string.h>

#include "virtqueue.h"

#define MEM (64u * 1024)

static uint8_t *mem;
static struct gmem gm;
static struct vq_chain chain;

static void inside(const struct iovec *iov, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = iov[i].iov_base;
		if (p < mem || p > mem + MEM || iov[i].iov_len > (size_t)(mem + MEM - p))
			abort();
		/* touch both ends so ASan sees any escape */
		volatile uint8_t x = p[0];
		x = p[iov[i].iov_len - 1];
		(void)x;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vq q;
	if (!mem) {
		mem = aligned_alloc(4096, MEM);
		gmem_init_flat(&gm, mem, MEM);
	}
	if (size < 16)
		return 0;
	/* header: ring geometry and walker state, then memory contents */
	uint16_t qsize = (uint16_t)(1u << (data[0] % 10)); /* 1..512: 512 is refused */
	uint64_t desc, avail, used;
	uint16_t d16, a16, u16;
	memcpy(&d16, data + 1, 2);
	memcpy(&a16, data + 3, 2);
	memcpy(&u16, data + 5, 2);
	desc = d16 & ~15u;
	avail = a16 & ~1u;
	used = u16 & ~3u;
	if (data[11] & 0x80) /* sometimes an absurd address */
		desc |= 0xffffffffff000000ull;
	bool event_idx = data[7] & 1, indirect = data[7] & 2;
	uint16_t last;
	memcpy(&last, data + 8, 2);
	unsigned rounds = data[10] % 64;
	size_t n = size - 16 < MEM ? size - 16 : MEM;
	memset(mem, 0, MEM);
	memcpy(mem, data + 16, n);

	memset(&q, 0, sizeof(q));
	q.name = "fuzz";
	if (vq_enable(&q, &gm, qsize, desc, avail, used, event_idx, indirect))
		return 0;
	q.last_avail = last;
	q.used_idx = last;
	for (unsigned i = 0; i < rounds; i++) {
		int rc = vq_pop(&q, &chain);
		if (rc <= 0)
			break;
		if (chain.nr_out + chain.nr_in > VQ_MAX_SEGS || chain.head >= qsize)
			abort();
		inside(chain.iov, chain.nr_out + chain.nr_in);
		uint8_t tmp[64];
		(void)vq_iov_read(chain.iov, chain.nr_out, 3, tmp, sizeof(tmp));
		(void)vq_iov_write(chain.iov + chain.nr_out, chain.nr_in, 5, tmp, sizeof(tmp));
		if (i % 7 == 3)
			vq_unpop(&q, 1);
		else
			vq_push(&q, chain.head, (uint32_t)chain.in_len);
		(void)vq_should_signal(&q);
	}
	(void)vq_arm(&q);
	(void)vq_pending(&q);
	return 0;
}

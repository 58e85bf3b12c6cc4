/* virtio-rng with crafted rings: writable buffers come back filled
 * (what the fake source wrote, byte for byte, and only there), readable
 * segments are left alone, a request is capped at VRNG_MAX_REQ, a failing
 * source gives a short count, and a hostile ring (buffer outside RAM)
 * stalls the queue without touching memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "t.h"
#include "virtio_rng.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))

static struct td d;
static uint8_t next_byte = 1;
static int fail_after = -1; /* calls that succeed before the source fails */
static unsigned calls;

/* a counter, so every byte's origin is known */
static ssize_t fake(void *buf, size_t len)
{
	calls++;
	if (fail_after >= 0 && (int)calls > fail_after)
		return -EIO;
	if (len > 1000)
		len = 1000; /* short reads: the device must loop */
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = next_byte++;
	return (ssize_t)len;
}

static int filled_from(const uint8_t *p, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(first + i))
			return 0;
	return 1;
}

int main(void)
{
	uint32_t id, len;

	td_mem_init(&d);
	uint8_t *m = d.mem;
	struct vrng *r = calloc(1, sizeof(*r));
	CHECK_EQ(vrng_init(r, &d.gm, &d.irq), 0, "vrng init");
	r->fill = fake;
	d.v = &r->vpci;
	CHECK_EQ(r->vpci.pci.cfg[2] | r->vpci.pci.cfg[3] << 8, 0x1040 + VIRTIO_ID_RNG,
		 "PCI device id 0x1044 (virtio 1.x entropy)");
	td_up(&d, B(VIRTIO_F_VERSION_1), 1, 0);

	/* one writable buffer of 3000 bytes: filled in three short reads */
	memset(m + TD_BUF, 0xee, 4096);
	struct td_seg s1 = { TD_BUF, 3000, 1 };
	td_add(&d, 0, &s1, 1);
	uint8_t first = next_byte;
	td_kick(&d, 0);
	CHECK(td_used(&d, 0, &id, &len) && len == 3000, "3000-byte buffer: used len 3000 (%u)", len);
	CHECK(filled_from(m + TD_BUF, 3000, first), "every byte is the source's, in order");
	CHECK(m[TD_BUF + 3000] == 0xee, "nothing past the buffer written");

	/* a readable segment first (no business there), then two writable */
	memset(m + TD_BUF, 0xee, 4096);
	struct td_seg s2[3] = { { TD_BUF, 16, 0 }, { TD_BUF + 100, 10, 1 }, { TD_BUF + 200, 20, 1 } };
	td_add(&d, 0, s2, 3);
	first = next_byte;
	td_kick(&d, 0);
	CHECK(td_used(&d, 0, &id, &len) && len == 30, "10 + 20 writable bytes: used len 30 (%u)", len);
	CHECK(m[TD_BUF] == 0xee && m[TD_BUF + 15] == 0xee, "the readable segment is untouched");
	CHECK(filled_from(m + TD_BUF + 100, 10, first) && filled_from(m + TD_BUF + 200, 20, (uint8_t)(first + 10)),
	      "both writable segments filled in order");
	CHECK(m[TD_BUF + 110] == 0xee && m[TD_BUF + 220] == 0xee, "and only them");

	/* a buffer larger than VRNG_MAX_REQ: capped */
	struct td_seg s3 = { TD_BUF, VRNG_MAX_REQ + 4096, 1 };
	td_add(&d, 0, &s3, 1);
	td_kick(&d, 0);
	CHECK(td_used(&d, 0, &id, &len) && len == VRNG_MAX_REQ, "a huge buffer gets VRNG_MAX_REQ (%u)", len);

	/* the source fails after one call: what it gave is used, no more */
	fail_after = (int)calls + 1;
	memset(m + TD_BUF, 0xee, 4096);
	struct td_seg s4 = { TD_BUF, 2500, 1 };
	td_add(&d, 0, &s4, 1);
	td_kick(&d, 0);
	CHECK(td_used(&d, 0, &id, &len) && len == 1000, "a failing source: short count 1000 (%u)", len);
	CHECK(m[TD_BUF + 1000] == 0xee, "nothing written past the short count");
	fail_after = -1;

	/* hostile: a buffer reaching past guest RAM stalls the queue, and
	 * no byte beyond RAM is touched (ASan would see it) */
	struct td_seg s5 = { TD_MEM - 8, 64, 1 };
	td_add(&d, 0, &s5, 1);
	td_kick(&d, 0);
	CHECK(!td_used(&d, 0, &id, &len), "a buffer outside guest RAM: no used entry");
	CHECK(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET, "and the device asks for a reset");

	vrng_destroy(r);

	/* the real source (getrandom): 256 bytes that are not what was there */
	memset(r, 0, sizeof(*r));
	free(d.mem);
	td_mem_init(&d);
	m = d.mem;
	CHECK_EQ(vrng_init(r, &d.gm, &d.irq), 0, "vrng init, host source");
	d.v = &r->vpci;
	td_up(&d, B(VIRTIO_F_VERSION_1), 1, 0);
	memset(m + TD_BUF, 0, 256);
	struct td_seg s6 = { TD_BUF, 256, 1 };
	td_add(&d, 0, &s6, 1);
	td_kick(&d, 0);
	unsigned zero = 0;
	for (unsigned i = 0; i < 256; i++)
		zero += m[TD_BUF + i] == 0;
	CHECK(td_used(&d, 0, &id, &len) && len == 256 && zero < 16,
	      "getrandom fills 256 bytes (%u left zero)", zero);
	vrng_destroy(r);
	free(r);
	free(d.mem);
	return t_done();
}

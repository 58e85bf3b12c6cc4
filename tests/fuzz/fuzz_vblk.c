/* virtio-blk request parsing on random rings over a small memfd image:
 * IN/OUT/FLUSH/GET_ID and DISCARD/WRITE_ZEROES segment arrays (byte 3
 * of the input opens feature bits 8-15, where those two live). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "virtio_blk.h"
#include "vmm_vdrv.h"
#include "fuzz_ring.h"

#define IMG (64u * 512)

static struct td d;
static struct vblk *b;
static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fd < 0) {
		fd = memfd_create("fuzz-img", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, IMG))
			abort();
		td_mem_init(&d);
		b = calloc(1, sizeof(*b));
		if (vblk_init(b, fd, false, IMG, "fuzz", &d.gm, &d.irq))
			abort();
		d.v = &b->vpci;
	}
	if (size < 4)
		return 0;
	uint64_t f = vblk_features(false) &
		     ((uint64_t)data[0] << 24 | (uint64_t)data[3] << 8 | data[1] | 0x100000000ull);
	uint16_t qs = (uint16_t)(1u << (data[2] % 8));
	data += 4;
	size -= 4;
	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, qs) != 1)
		return 0;
	td_driver_ok(&d);
	size_t k = fuzz_ring(&d, 0, data, size);
	size_t m = size - k < FR_AREA ? size - k : FR_AREA;
	memset(d.mem + TD_BUF, 0, FR_AREA);
	memcpy(d.mem + TD_BUF, data + k, m); /* request headers and data */
	td_kick(&d, 0);
	if (lseek(fd, 0, SEEK_END) != IMG) /* the image never grows */
		abort();
	td_wr(&d, 0x14, 0, 1);
	return 0;
}

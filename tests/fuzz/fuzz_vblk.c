/* virtio-blk request parsing on random rings over a small memfd image:
 * IN/OUT/FLUSH/GET_ID and DISCARD/WRITE_ZEROES segment arrays (byte 3
 * of the input opens feature bits 8-15, where those two live). Byte 2
 * also picks the backend (bit 3: io_uring, where the kernel has it) and,
 * for io_uring, whether the device is reset with requests in flight
 * (bit 4) or after they completed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "virtio_blk.h"
#include "vmm_vdrv.h"
#include "fuzz_ring.h"

#define IMG (64u * 512)

static struct td d;
static struct vblk *bt, *bu; /* thread, io_uring (NULL: none here) */
static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fd < 0) {
		fd = memfd_create("fuzz-img", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, IMG))
			abort();
		td_mem_init(&d);
		bt = calloc(1, sizeof(*bt));
		bu = calloc(1, sizeof(*bu));
		if (!bt || !bu || vblk_init(bt, fd, 0, IMG, "fuzz", &d.gm, &d.irq))
			abort();
		if (vblk_init(bu, fd, VBLK_URING, IMG, "fuzz", &d.gm, &d.irq)) {
			free(bu);
			bu = NULL;
		}
	}
	if (size < 4)
		return 0;
	uint64_t f = vblk_features(false) &
		     ((uint64_t)data[0] << 24 | (uint64_t)data[3] << 8 | data[1] | 0x100000000ull);
	uint16_t qs = (uint16_t)(1u << (data[2] % 8));
	struct vblk *b = (data[2] & 8) && bu ? bu : bt;
	bool in_flight = data[2] & 16;
	d.v = &b->vpci;
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
	if (!in_flight)
		vblk_complete(b, true);
	if (lseek(fd, 0, SEEK_END) != IMG) /* the image never grows */
		abort();
	td_wr(&d, 0x14, 0, 1); /* reset: nothing in flight afterwards */
	return 0;
}

/* virtio-blk DISCARD / WRITE_ZEROES / FLUSH / read-only against a
 * temporary sparse image: the file system is the oracle (SEEK_HOLE,
 * st_blocks, pread), and every guest number is bound-checked. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/virtio_blk.h>

#include "t.h"
#include "virtio_blk.h"
#include "vblk_t.h"

#define B(n) (1ull << (n))
#define MIB (1u << 20)
#define IMG (8u * MIB)


static uint8_t *m;

#define H (TD_BUF)
#define S (TD_BUF + 0x100)
#define D (TD_BUF + 0x1000)

struct seg { uint64_t sector; uint32_t num, flags; };

/* header + n segments (device-readable) + status */
static int req_segs(uint32_t type, const struct seg *sg, unsigned n, uint32_t bytes)
{
	struct { uint32_t type, reserved; uint64_t sector; } h = { type, 0, 0 };
	memcpy(m + H, &h, sizeof(h));
	if (n)
		memcpy(m + D, sg, n * sizeof(*sg));
	m[S] = 0xee;
	struct td_seg s[3] = { { H, 16, 0 }, { D, bytes, 0 }, { S, 1, 1 } };
	if (bytes) {
		td_add(&d, 0, s, 3);
	} else {
		s[1] = s[2];
		td_add(&d, 0, s, 2);
	}
	kick();
	uint32_t id, ul;
	if (!td_used(&d, 0, &id, &ul))
		return -1;
	return m[S];
}

static int req1(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags)
{
	struct seg s = { sector, num, flags };
	return req_segs(type, &s, 1, sizeof(s));
}

static int rw(uint32_t type, uint64_t sector, uint32_t len)
{
	struct { uint32_t type, reserved; uint64_t sector; } h = { type, 0, sector };
	memcpy(m + H, &h, sizeof(h));
	m[S] = 0xee;
	struct td_seg s[3] = { { H, 16, 0 }, { D, len, type == VIRTIO_BLK_T_IN }, { S, 1, 1 } };
	td_add(&d, 0, s, 3);
	kick();
	uint32_t id, ul;
	if (!td_used(&d, 0, &id, &ul))
		return -1;
	return m[S];
}

static long long blocks(int fd)
{
	struct stat st;
	return fstat(fd, &st) ? -1 : (long long)st.st_blocks;
}

/* is [off, off+len) entirely a hole? */
static bool hole(int fd, off_t off, off_t len)
{
	off_t h = lseek(fd, off, SEEK_HOLE);
	if (h != off)
		return false;
	off_t dt = lseek(fd, off, SEEK_DATA);
	return dt < 0 || dt >= off + len;
}

static bool zeros(int fd, off_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	bool ok = buf && pread(fd, buf, len, off) == (ssize_t)len;
	for (size_t i = 0; ok && i < len; i++)
		ok = buf[i] == 0;
	free(buf);
	return ok;
}

static void bring_up(uint64_t f)
{
	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, 64) != 1)
		abort();
	td_driver_ok(&d);
}

static uint32_t cfg32(unsigned off) { return (uint32_t)td_rd(&d, VPCI_DEVCFG_OFF + off, 4); }

int main(void)
{
	char path[] = "/tmp/kvmlab-vblks-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return 1;
	unlink(path); /* nothing left behind, whatever happens */
	/* fully written first: every block allocated */
	uint8_t *fill = malloc(MIB);
	memset(fill, 0x5a, MIB);
	for (unsigned i = 0; i < IMG / MIB; i++)
		if (write(fd, fill, MIB) != (ssize_t)MIB)
			return 1;
	fsync(fd);
	long long full = blocks(fd);
	bool fs_holes = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 0) == 0 ||
			errno != EOPNOTSUPP;

	td_mem_init(&d);
	m = d.mem;
	struct vblk *b = calloc(1, sizeof(*b));
	CHECK_EQ(vinit(b, fd, 0, IMG, "sparse"), 0, "vblk init");
	d.v = &b->vpci;
	td_wr(&d, 0, 0, 4);
	uint64_t off = td_rd(&d, 4, 4);
	CHECK((off & B(VIRTIO_BLK_F_DISCARD)) && (off & B(VIRTIO_BLK_F_WRITE_ZEROES)) &&
	      (off & B(VIRTIO_BLK_F_FLUSH)), "writable image offers DISCARD, WRITE_ZEROES, FLUSH");
	CHECK_EQ(cfg32(offsetof(struct virtio_blk_config, max_discard_sectors)),
		 VBLK_MAX_DISCARD_SECTORS, "max_discard_sectors in config");
	CHECK_EQ(cfg32(offsetof(struct virtio_blk_config, max_discard_seg)), VBLK_MAX_DISCARD_SEG,
		 "max_discard_seg in config");
	CHECK_EQ(cfg32(offsetof(struct virtio_blk_config, max_write_zeroes_seg)), VBLK_MAX_DISCARD_SEG,
		 "max_write_zeroes_seg in config");
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + offsetof(struct virtio_blk_config, write_zeroes_may_unmap), 1),
		 1, "write_zeroes_may_unmap");

	/* without negotiating them, the new requests are unsupported */
	bring_up(B(VIRTIO_F_VERSION_1));
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_UNSUPP, "discard not negotiated: UNSUPP");
	CHECK(!hole(fd, 0, 4096), "... and the file is untouched");

	bring_up(B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_DISCARD) | B(VIRTIO_BLK_F_WRITE_ZEROES) |
		 B(VIRTIO_BLK_F_FLUSH));
	/* 1 MiB at 1 MiB: a hole afterwards */
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, 2048, 2048, 0), VIRTIO_BLK_S_OK, "discard 1 MiB");
	if (fs_holes) {
		CHECK(hole(fd, MIB, MIB), "discarded range is a hole (SEEK_HOLE)");
		CHECK(blocks(fd) <= full - (MIB / 512) + 8, "st_blocks dropped by ~1 MiB (%lld -> %lld)",
		      full, blocks(fd));
	}
	CHECK(zeros(fd, MIB, MIB), "discarded range reads back as zeros");
	CHECK(!hole(fd, 0, 512) && !hole(fd, 2 * MIB, 512), "neighbours keep their data");
	CHECK_EQ(lseek(fd, 0, SEEK_END), IMG, "image size unchanged (KEEP_SIZE)");

	/* two segments in one request */
	struct seg two[2] = { { 3 * 2048, 2048, 0 }, { 5 * 2048, 1024, 0 } };
	CHECK_EQ(req_segs(VIRTIO_BLK_T_DISCARD, two, 2, 32), VIRTIO_BLK_S_OK, "discard 2 segments");
	if (fs_holes)
		CHECK(hole(fd, 3 * MIB, MIB) && hole(fd, 5 * MIB, MIB / 2), "both segments are holes");

	/* write zeroes with unmap: a hole; without: zeros, allocated */
	CHECK_EQ(req1(VIRTIO_BLK_T_WRITE_ZEROES, 4 * 2048, 256, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
		 VIRTIO_BLK_S_OK, "write zeroes with unmap");
	if (fs_holes)
		CHECK(hole(fd, 4 * MIB, 128 * 1024), "write zeroes + unmap punches a hole");
	CHECK(zeros(fd, 4 * MIB, 128 * 1024), "write zeroes + unmap reads zeros");
	CHECK_EQ(req1(VIRTIO_BLK_T_WRITE_ZEROES, 6 * 2048, 256, 0), VIRTIO_BLK_S_OK, "write zeroes");
	CHECK(zeros(fd, 6 * MIB, 128 * 1024), "write zeroes reads zeros");
	CHECK(!hole(fd, 6 * MIB, 4096), "write zeroes without unmap keeps the blocks allocated");
	uint8_t one;
	CHECK(pread(fd, &one, 1, 6 * MIB + 128 * 1024) == 1 && one == 0x5a, "write zeroes stops at its end");

	/* FLUSH after a write: the data is in the file */
	memset(m + D, 0xc3, 4096);
	CHECK_EQ(rw(VIRTIO_BLK_T_OUT, 2048, 4096), VIRTIO_BLK_S_OK, "write 4 KiB into the hole");
	uint64_t nf = b->img.n_flush;
	CHECK_EQ(req_segs(VIRTIO_BLK_T_FLUSH, NULL, 0, 0), VIRTIO_BLK_S_OK, "flush");
	CHECK_EQ(b->img.n_flush, nf + 1, "flush reached fdatasync");
	CHECK(pread(fd, &one, 1, MIB) == 1 && one == 0xc3, "written data in the file");

	/* bound checks: every number from the guest */
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, IMG / 512 - 1, 2, 0), VIRTIO_BLK_S_IOERR, "discard past the end");
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, UINT64_MAX, 1, 0), VIRTIO_BLK_S_IOERR, "discard at sector 2^64-1");
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, UINT64_MAX / 512 + 1, 1, 0), VIRTIO_BLK_S_IOERR,
		 "discard whose byte offset overflows");
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, 0, VBLK_MAX_DISCARD_SECTORS + 1, 0), VIRTIO_BLK_S_IOERR,
		 "discard above max_discard_sectors");
	CHECK_EQ(req1(VIRTIO_BLK_T_WRITE_ZEROES, 0, UINT32_MAX, 0), VIRTIO_BLK_S_IOERR,
		 "write zeroes of 2^32-1 sectors");
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), VIRTIO_BLK_S_UNSUPP,
		 "unmap flag on a discard: UNSUPP");
	CHECK_EQ(req1(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0x80), VIRTIO_BLK_S_UNSUPP, "unknown flag: UNSUPP");
	static struct seg many[VBLK_MAX_DISCARD_SEG + 1];
	for (unsigned i = 0; i <= VBLK_MAX_DISCARD_SEG; i++)
		many[i] = (struct seg){ i * 8, 8, 0 };
	CHECK_EQ(req_segs(VIRTIO_BLK_T_DISCARD, many, VBLK_MAX_DISCARD_SEG + 1,
			  (VBLK_MAX_DISCARD_SEG + 1) * 16), VIRTIO_BLK_S_IOERR, "more than max_discard_seg segments");
	CHECK_EQ(req_segs(VIRTIO_BLK_T_DISCARD, many, 1, 15), VIRTIO_BLK_S_IOERR, "segment array not a multiple of 16");
	CHECK_EQ(req_segs(VIRTIO_BLK_T_DISCARD, many, 0, 0), VIRTIO_BLK_S_IOERR, "no segment at all");
	struct seg bad2[2] = { { 0, 8, 0 }, { IMG / 512, 8, 0 } };
	CHECK_EQ(req_segs(VIRTIO_BLK_T_DISCARD, bad2, 2, 32), VIRTIO_BLK_S_IOERR, "one bad segment fails the request");
	CHECK(!hole(fd, 0, 4096), "... before any segment was applied");
	CHECK_EQ(lseek(fd, 0, SEEK_END), IMG, "the image never grows");
	vblk_destroy(b);

	/* read-only: nothing offered, every write refused */
	CHECK_EQ(vinit(b, fd, VBLK_RO, IMG, NULL), 0, "vblk init ro");
	td_wr(&d, 0, 0, 4);
	off = td_rd(&d, 4, 4);
	CHECK(!(off & (B(VIRTIO_BLK_F_DISCARD) | B(VIRTIO_BLK_F_WRITE_ZEROES))) && (off & B(VIRTIO_BLK_F_RO)),
	      "read-only image: RO, no DISCARD/WRITE_ZEROES");
	CHECK_EQ(cfg32(offsetof(struct virtio_blk_config, max_discard_sectors)), 0,
		 "read-only image: no discard limits in config");
	/* a driver may not ask for them: FEATURES_OK refused */
	CHECK(!(td_negotiate(&d, B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_DISCARD)) & VIRTIO_CONFIG_S_FEATURES_OK),
	      "read-only image refuses a driver that wants DISCARD");
	bring_up(B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_RO));
	long long before = blocks(fd);
	CHECK_EQ(req1(VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_IOERR, "discard on a read-only image: IOERR");
	CHECK_EQ(req1(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 1), VIRTIO_BLK_S_IOERR, "write zeroes on read-only: IOERR");
	CHECK_EQ(rw(VIRTIO_BLK_T_OUT, 0, 512), VIRTIO_BLK_S_IOERR, "write on read-only: IOERR");
	CHECK(!hole(fd, 0, 4096) && blocks(fd) == before, "read-only image unchanged");
	vblk_destroy(b);

	/* cache=none: O_DIRECT where the file system has it; unaligned guest
	 * buffers go through the bounce buffer */
	char dpath[64];
	snprintf(dpath, sizeof(dpath), "/proc/self/fd/%d", fd);
	int dfd = open(dpath, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		printf("ok - O_DIRECT # SKIP the temp file system has no O_DIRECT\n");
	} else {
		CHECK_EQ(vinit(b, dfd, VBLK_DIRECT, IMG, NULL), 0, "vblk init direct");
		bring_up(B(VIRTIO_F_VERSION_1));
		for (int i = 0; i < 1024; i++)
			m[D + 512 + i] = (uint8_t)(i * 7);
		struct { uint32_t type, reserved; uint64_t sector; } h = { VIRTIO_BLK_T_OUT, 0, 100 };
		memcpy(m + H, &h, sizeof(h));
		/* data at D+512: not 4 KiB aligned */
		struct td_seg s[3] = { { H, 16, 0 }, { D + 512, 1024, 0 }, { S, 1, 1 } };
		td_add(&d, 0, s, 3);
		kick();
		uint32_t id, ul;
		CHECK(td_used(&d, 0, &id, &ul) && m[S] == VIRTIO_BLK_S_OK, "O_DIRECT write from an unaligned buffer");
		CHECK(b->img.n_bounced == 1, "... went through the bounce buffer");
		uint8_t back[1024];
		CHECK(pread(fd, back, 1024, 100 * 512) == 1024 && memcmp(back, m + D + 512, 1024) == 0,
		      "... and the file holds it");
		memset(m + D + 512, 0, 1024);
		h.type = VIRTIO_BLK_T_IN;
		memcpy(m + H, &h, sizeof(h));
		s[1].write = 1;
		td_add(&d, 0, s, 3);
		kick();
		CHECK(td_used(&d, 0, &id, &ul) && m[S] == VIRTIO_BLK_S_OK &&
		      memcmp(back, m + D + 512, 1024) == 0, "O_DIRECT read into an unaligned buffer");
		CHECK_EQ(rw(VIRTIO_BLK_T_IN, 200, 4096), VIRTIO_BLK_S_OK, "O_DIRECT aligned read");
		CHECK(b->img.n_bounced == 2, "aligned buffers skip the bounce buffer");
		vblk_destroy(b);
		close(dfd);
	}

	free(b);
	free(fill);
	free(d.mem);
	close(fd);
	return t_done();
}

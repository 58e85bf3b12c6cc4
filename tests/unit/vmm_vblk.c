/* virtio-blk against a temporary raw image: read, write, flush, get-id,
 * out-of-range and malformed requests, read-only images. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>

#include "t.h"
#include "virtio_blk.h"
#include "vblk_t.h"

#define B(n) (1ull << (n))
#define SECTORS 64u

static uint8_t *m;

struct hdr { uint32_t type, reserved; uint64_t sector; };

/* One request: header at H, data at D (len bytes, direction by type),
 * status at S. Returns the status byte, used len in *ulen. */
#define H (TD_BUF)
#define S (TD_BUF + 0x100)
#define D (TD_BUF + 0x1000)
static int req(uint32_t type, uint64_t sector, uint32_t len, uint32_t *ulen)
{
	struct hdr h = { type, 0, sector };
	memcpy(m + H, &h, sizeof(h));
	m[S] = 0xee;
	struct td_seg s[3] = { { H, 16, 0 }, { D, len, type != VIRTIO_BLK_T_OUT }, { S, 1, 1 } };
	unsigned n = 0;
	struct td_seg ss[3];
	ss[n++] = s[0];
	if (len)
		ss[n++] = s[1];
	ss[n++] = s[2];
	td_add(&d, 0, ss, n);
	kick();
	uint32_t id;
	if (!td_used(&d, 0, &id, ulen))
		return -1;
	return m[S];
}

static void bring_up(uint64_t f)
{
	if (!(td_negotiate(&d, f) & VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, 16) != 1)
		abort();
	td_driver_ok(&d);
}

int main(void)
{
	char path[] = "/tmp/kvmlab-vblk-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	uint8_t img[SECTORS * 512], buf[4096];
	uint32_t ul;

	if (fd < 0)
		return 1;
	unlink(path); /* nothing left behind, whatever happens */
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)(i * 13 + i / 512);
	if (write(fd, img, sizeof(img)) != (ssize_t)sizeof(img) || write(fd, "xyz", 3) != 3)
		return 1;

	td_mem_init(&d);
	m = d.mem;
	struct vblk *b = calloc(1, sizeof(*b));
	CHECK_EQ(vinit(b, fd, 0, sizeof(img) + 3, "kvmlab-test"), 0, "vblk init");
	d.v = &b->vpci;
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF, 4) | td_rd(&d, VPCI_DEVCFG_OFF + 4, 4) << 32, SECTORS,
		 "capacity in sectors (partial tail sector hidden)");
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 12, 4), VBLK_SEG_MAX, "seg_max");
	CHECK_EQ(td_rd(&d, VPCI_DEVCFG_OFF + 20, 4), 512, "blk_size");
	td_wr(&d, 0, 0, 4);
	CHECK(!(td_rd(&d, 4, 4) & B(VIRTIO_BLK_F_RO)), "writable image: no RO bit");
	bring_up(B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_FLUSH));

	CHECK_EQ(req(VIRTIO_BLK_T_IN, 3, 1024, &ul), VIRTIO_BLK_S_OK, "read 2 sectors");
	CHECK_EQ(ul, 1025, "read used len = data + status");
	CHECK(memcmp(m + D, img + 3 * 512, 1024) == 0, "read returns the image bytes");

	for (int i = 0; i < 512; i++)
		m[D + i] = (uint8_t)(0xa5 ^ i);
	CHECK_EQ(req(VIRTIO_BLK_T_OUT, 10, 512, &ul), VIRTIO_BLK_S_OK, "write 1 sector");
	CHECK_EQ(ul, 1, "write used len = status only");
	CHECK(pread(fd, buf, 512, 10 * 512) == 512 && memcmp(buf, m + D, 512) == 0,
	      "the file holds what the guest wrote");
	CHECK(pread(fd, buf, 512, 11 * 512) == 512 && memcmp(buf, img + 11 * 512, 512) == 0,
	      "neighbouring sector untouched");

	CHECK_EQ(req(VIRTIO_BLK_T_FLUSH, 0, 0, &ul), VIRTIO_BLK_S_OK, "flush");
	memset(m + D, 0, 64);
	CHECK_EQ(req(VIRTIO_BLK_T_GET_ID, 0, 64, &ul), VIRTIO_BLK_S_OK, "get id");
	CHECK(memcmp(m + D, "kvmlab-test", 11) == 0 && ul == 21, "id string, 20 bytes + status");

	CHECK_EQ(req(VIRTIO_BLK_T_IN, SECTORS - 1, 1024, &ul), VIRTIO_BLK_S_IOERR, "read past the end refused");
	CHECK_EQ(req(VIRTIO_BLK_T_IN, SECTORS, 512, &ul), VIRTIO_BLK_S_IOERR, "read at capacity refused");
	CHECK_EQ(req(VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 5, 512, &ul), VIRTIO_BLK_S_IOERR,
		 "sector whose byte offset overflows refused");
	CHECK_EQ(req(VIRTIO_BLK_T_OUT, UINT64_MAX, 512, &ul), VIRTIO_BLK_S_IOERR, "write at sector 2^64-1 refused");
	CHECK_EQ(req(VIRTIO_BLK_T_IN, 0, 100, &ul), VIRTIO_BLK_S_IOERR, "length not a multiple of 512 refused");
	CHECK_EQ(req(VIRTIO_BLK_T_IN, SECTORS - 1, 512, &ul), VIRTIO_BLK_S_OK, "last sector readable");
	CHECK_EQ(req(77, 0, 0, &ul), VIRTIO_BLK_S_UNSUPP, "unknown type: UNSUPP");
	CHECK(pread(fd, buf, 3, sizeof(img)) == 3 && memcmp(buf, "xyz", 3) == 0, "tail bytes never written");

	/* header too short: IOERR in the status byte */
	struct td_seg shorth[2] = { { H, 8, 0 }, { S, 1, 1 } };
	m[S] = 0xee;
	td_add(&d, 0, shorth, 2);
	kick();
	uint32_t id;
	CHECK(td_used(&d, 0, &id, &ul) == 1 && m[S] == VIRTIO_BLK_S_IOERR, "8-byte header: IOERR");
	/* no writable byte at all: returned with len 0, nothing written */
	struct td_seg nost = { H, 16, 0 };
	td_add(&d, 0, &nost, 1);
	kick();
	CHECK(td_used(&d, 0, &id, &ul) == 1 && ul == 0, "no status byte: returned, len 0");

	/* indirect request */
	bring_up(B(VIRTIO_F_VERSION_1) | B(VIRTIO_RING_F_INDIRECT_DESC));
	struct hdr h = { VIRTIO_BLK_T_IN, 0, 5 };
	memcpy(m + H, &h, sizeof(h));
	struct vring_desc it[3] = {
		{ H, 16, VRING_DESC_F_NEXT, 1 },
		{ D, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2 },
		{ S, 1, VRING_DESC_F_WRITE, 0 },
	};
	memcpy(m + TD_BUF + 0x800, it, sizeof(it));
	struct vring_desc top = { TD_BUF + 0x800, sizeof(it), VRING_DESC_F_INDIRECT, 0 };
	memcpy(m + d.q[0].desc, &top, sizeof(top));
	uint16_t head = 0, ai = 1;
	memcpy(m + d.q[0].avail + 4, &head, 2);
	memcpy(m + d.q[0].avail + 2, &ai, 2);
	d.q[0].avail_idx = 1;
	d.q[0].next_desc = 1;
	kick();
	CHECK(td_used(&d, 0, &id, &ul) == 1 && ul == 513 && m[S] == 0 &&
	      memcmp(m + D, img + 5 * 512, 512) == 0, "read through an indirect table");

	CHECK(strcmp(vblk_backend(b), t_flags & VBLK_URING ? "uring" : "thread") == 0 &&
	      ((t_flags & VBLK_URING) ? b->img.n_async >= 3 : b->img.n_async == 0),
	      "%s backend: %llu requests completed asynchronously", vblk_backend(b),
	      (unsigned long long)b->img.n_async);
	vblk_destroy(b);

	/* read-only */
	CHECK_EQ(vinit(b, fd, VBLK_RO, sizeof(img), NULL), 0, "vblk init ro");
	td_wr(&d, 0, 0, 4);
	CHECK(td_rd(&d, 4, 4) & B(VIRTIO_BLK_F_RO), "read-only image offers RO");
	bring_up(B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_RO));
	memset(m + D, 0x11, 512);
	CHECK_EQ(req(VIRTIO_BLK_T_OUT, 0, 512, &ul), VIRTIO_BLK_S_IOERR, "write to a read-only image refused");
	CHECK(pread(fd, buf, 512, 0) == 512 && memcmp(buf, img, 512) == 0, "read-only image unchanged");
	CHECK_EQ(req(VIRTIO_BLK_T_IN, 0, 512, &ul), VIRTIO_BLK_S_OK, "read-only image readable");

	vblk_destroy(b);
	free(b);
	free(d.mem);
	close(fd);
	return t_done();
}

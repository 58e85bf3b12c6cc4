#include "virtio_blk.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))
#define SECTOR 512u
#define HDR_LEN 16u  /* type, reserved, sector */
#define SEG_LEN 16u  /* struct virtio_blk_discard_write_zeroes */
#define MEM_ALIGN 4096u /* O_DIRECT buffer alignment that every filesystem takes */
/* config space up to write_zeroes_may_unmap and its padding */
#define CFG_SIZE ((unsigned)offsetof(struct virtio_blk_config, unused1) + 3)

uint64_t vblk_features(bool ro)
{
	return BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	       BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_BLK_F_SEG_MAX) |
	       BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH) |
	       (ro ? BIT(VIRTIO_BLK_F_RO)
		   : BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES));
}

#define PUT(field, val) do { \
	__typeof__(((struct virtio_blk_config *)0)->field) v_ = (val); \
	memcpy(c + offsetof(struct virtio_blk_config, field), &v_, sizeof(v_)); \
} while (0)

static void cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	struct vblk *b = dev;
	uint8_t c[CFG_SIZE] = { 0 };
	PUT(capacity, b->capacity);
	PUT(seg_max, VBLK_SEG_MAX);
	PUT(blk_size, b->blk);
	if (!b->ro) {
		PUT(max_discard_sectors, VBLK_MAX_DISCARD_SECTORS);
		PUT(max_discard_seg, VBLK_MAX_DISCARD_SEG);
		PUT(discard_sector_alignment, b->blk / SECTOR);
		PUT(max_write_zeroes_sectors, VBLK_MAX_DISCARD_SECTORS);
		PUT(max_write_zeroes_seg, VBLK_MAX_DISCARD_SEG);
		PUT(write_zeroes_may_unmap, 1);
	}
	memcpy(data, c + off, len);
}

static void cfg_write(void *dev, unsigned off, const void *data, unsigned len)
{
	(void)dev, (void)off, (void)data, (void)len; /* no writable fields offered */
}

/* Move len bytes between the file at off and n iovecs; short transfers
 * are retried, EOF inside the image is an error. */
static int rw_full(int fd, bool wr, struct iovec *iov, unsigned n, uint64_t off)
{
	while (n) {
		ssize_t r = wr ? pwritev(fd, iov, (int)n, (off_t)off)
			       : preadv(fd, iov, (int)n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		off += (uint64_t)r;
		while (n && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static bool aligned(const struct vblk *b, const struct iovec *iov, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % MEM_ALIGN || iov[i].iov_len % b->blk)
			return false;
	return true;
}

/* The request's data (len bytes in b->data[0..n)) to or from the file at
 * off. O_DIRECT takes only aligned buffers: guest buffers that are not
 * go through the bounce buffer, a chunk at a time. */
static int rw_data(struct vblk *b, bool wr, unsigned n, uint64_t off, uint64_t len)
{
	if (!b->direct || aligned(b, b->data, n))
		return rw_full(b->fd, wr, b->data, n, off);
	b->n_bounced++;
	for (uint64_t done = 0; done < len;) {
		size_t k = len - done < VBLK_BOUNCE ? (size_t)(len - done) : VBLK_BOUNCE;
		struct iovec bi = { b->bounce, k };
		if (wr)
			(void)vq_iov_read(b->data, n, done, b->bounce, k);
		int rc = rw_full(b->fd, wr, &bi, 1, off + done);
		if (rc)
			return rc;
		if (!wr)
			(void)vq_iov_write(b->data, n, done, b->bounce, k);
		done += k;
	}
	return 0;
}

/* Copy the segments that make up bytes [skip, skip+len) of src into
 * b->data; returns how many. */
static unsigned slice(struct vblk *b, const struct iovec *src, unsigned n, uint64_t skip, uint64_t len)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = src[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t take = l - skip < len ? l - skip : len;
		b->data[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		b->data[k].iov_len = take;
		k++;
		len -= take;
		skip = 0;
	}
	return k;
}

static bool in_range(const struct vblk *b, uint64_t sector, uint64_t len)
{
	/* overflow-safe: sector and len come from the guest */
	return sector <= b->capacity && len / SECTOR <= b->capacity - sector;
}

/* Zeros without deallocating: the filesystem's zero range, else written. */
static int zero_fill(struct vblk *b, uint64_t off, uint64_t len)
{
	if (fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENODEV && errno != EINVAL)
		return -errno;
	static const uint8_t zeros[65536] __attribute__((aligned(MEM_ALIGN)));
	while (len) {
		size_t k = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		struct iovec z = { (void *)zeros, k };
		int rc = rw_full(b->fd, true, &z, 1, off);
		if (rc)
			return rc;
		off += k;
		len -= k;
	}
	return 0;
}

/* DISCARD / WRITE_ZEROES: the out data is an array of 16-byte segments
 * (sector, num_sectors, flags). Every field is guest-controlled: the
 * whole array is checked before the file is touched. */
static uint8_t discard_zeroes(struct vblk *b, const struct vq_chain *c, uint64_t out_data,
			      bool wz)
{
	struct virtio_blk_discard_write_zeroes s;
	uint64_t nseg = out_data / SEG_LEN;

	if (out_data % SEG_LEN || nseg == 0 || nseg > VBLK_MAX_DISCARD_SEG)
		return VIRTIO_BLK_S_IOERR;
	for (uint64_t i = 0; i < nseg; i++) {
		(void)vq_iov_read(c->iov, c->nr_out, HDR_LEN + i * SEG_LEN, &s, SEG_LEN);
		uint32_t known = wz ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
		/* the spec: unmap in a discard, or unknown flags, are unsupported */
		if (s.flags & ~known)
			return VIRTIO_BLK_S_UNSUPP;
		if (s.num_sectors > VBLK_MAX_DISCARD_SECTORS ||
		    !in_range(b, s.sector, (uint64_t)s.num_sectors * SECTOR) ||
		    (s.sector * SECTOR) % b->blk || ((uint64_t)s.num_sectors * SECTOR) % b->blk)
			return VIRTIO_BLK_S_IOERR;
	}
	for (uint64_t i = 0; i < nseg; i++) {
		(void)vq_iov_read(c->iov, c->nr_out, HDR_LEN + i * SEG_LEN, &s, SEG_LEN);
		/* re-read: the guest may have changed it meanwhile; re-check */
		if (s.num_sectors > VBLK_MAX_DISCARD_SECTORS ||
		    !in_range(b, s.sector, (uint64_t)s.num_sectors * SECTOR))
			return VIRTIO_BLK_S_IOERR;
		if (s.num_sectors == 0)
			continue;
		off_t off = (off_t)(s.sector * SECTOR), len = (off_t)s.num_sectors * SECTOR;
		int rc;
		if (!wz || (s.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) {
			/* a punched range reads back as zeros, and a sparse
			 * image stays sparse */
			rc = fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
			rc = rc ? -errno : 0;
			if (rc == -EOPNOTSUPP && wz)
				rc = zero_fill(b, (uint64_t)off, (uint64_t)len);
			else if (rc == -EOPNOTSUPP)
				rc = 0; /* discard is a hint: nothing to do is fine */
		} else {
			rc = zero_fill(b, (uint64_t)off, (uint64_t)len);
		}
		if (rc)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/* Serve one request; returns bytes written into the chain's writable part. */
static uint32_t serve(void *dev, const struct vq_chain *c)
{
	struct vblk *b = dev;
	const struct iovec *in = c->iov + c->nr_out;
	struct { uint32_t type, reserved; uint64_t sector; } h;
	uint8_t status = VIRTIO_BLK_S_IOERR;
	uint64_t wrote = 0; /* data bytes written into the chain */

	if (c->in_len == 0)
		return 0; /* no room for a status byte: nothing we can say */
	uint64_t in_data = c->in_len - 1; /* the last writable byte is status */
	/* one copy of the header: the guest may rewrite it while we work */
	if (vq_iov_read(c->iov, c->nr_out, 0, &h, HDR_LEN) != HDR_LEN)
		goto out;
	uint64_t out_data = c->out_len - HDR_LEN; /* >= 0: the header fit */

	switch (h.type) {
	case VIRTIO_BLK_T_IN: {
		/* whole blocks inside the image: then sector * SECTOR cannot
		 * overflow, as sector <= capacity = size / SECTOR */
		if (in_data % b->blk || !in_range(b, h.sector, in_data) ||
		    (h.sector * SECTOR) % b->blk)
			break;
		unsigned k = slice(b, in, c->nr_in, 0, in_data);
		if (rw_data(b, false, k, h.sector * SECTOR, in_data) == 0) {
			status = VIRTIO_BLK_S_OK;
			wrote = in_data;
		}
		break;
	}
	case VIRTIO_BLK_T_OUT: {
		if (b->ro || out_data % b->blk || !in_range(b, h.sector, out_data) ||
		    (h.sector * SECTOR) % b->blk)
			break;
		unsigned k = slice(b, c->iov, c->nr_out, HDR_LEN, out_data);
		if (rw_data(b, true, k, h.sector * SECTOR, out_data) == 0)
			status = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		/* everything completed before this request reaches the disk
		 * (requests are served in order, one at a time) */
		b->n_flush++;
		if (b->ro || fdatasync(b->fd) == 0)
			status = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool wz = h.type == VIRTIO_BLK_T_WRITE_ZEROES;
		if (b->ro)
			break; /* a read-only image stays so: IOERR */
		if (!vpci_has(&b->vpci, wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)) {
			status = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		status = discard_zeroes(b, c, out_data, wz);
		if (status == VIRTIO_BLK_S_OK)
			(*(wz ? &b->n_wzeroes : &b->n_discard))++;
		break;
	}
	case VIRTIO_BLK_T_GET_ID: {
		/* a short buffer gets a prefix of the id, never more than it holds */
		uint64_t n = in_data < sizeof(b->id) ? in_data : sizeof(b->id);
		wrote = vq_iov_write(in, c->nr_in, 0, b->id, n);
		status = VIRTIO_BLK_S_OK;
		break;
	}
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
out:
	(void)vq_iov_write(in, c->nr_in, in_data, &status, 1);
	return (uint32_t)(wrote + 1);
}

void vblk_process(struct vblk *b)
{
	vpci_drain(&b->vpci, 0, serve);
}

static void notify(void *dev, unsigned q)
{
	if (q == 0)
		vblk_process(dev);
}

static const struct vpci_ops vblk_ops = {
	.cfg_read = cfg_read, .cfg_write = cfg_write, .notify = notify,
};

int vblk_init(struct vblk *b, int fd, unsigned flags, uint64_t size, const char *id,
	      const struct gmem *gm, const struct dev_irq_ops *irq)
{
	bool ro = flags & VBLK_RO;
	/* class 01.80: other mass storage controller */
	int rc = vpci_init(&b->vpci, VIRTIO_ID_BLOCK, 0x018000, vblk_features(ro), 1,
			   VBLK_QUEUE_SIZE, CFG_SIZE, &vblk_ops, b, gm, irq);
	if (rc)
		return rc;
	b->fd = fd;
	b->ro = ro;
	b->direct = flags & VBLK_DIRECT;
	b->blk = SECTOR;
	b->capacity = size / SECTOR;
	b->bounce = NULL;
	b->n_flush = b->n_discard = b->n_wzeroes = b->n_bounced = 0;
	if (b->direct) {
		b->bounce = aligned_alloc(MEM_ALIGN, VBLK_BOUNCE);
		if (!b->bounce) {
			vpci_destroy(&b->vpci);
			return -ENOMEM;
		}
	}
	memset(b->id, 0, sizeof(b->id));
	if (id) /* a 20-byte id carries no NUL, per spec */
		memcpy(b->id, id, strnlen(id, sizeof(b->id)));
	b->vpci.q[0].vq.name = "blk";
	return 0;
}

void vblk_destroy(struct vblk *b)
{
	vpci_destroy(&b->vpci);
	free(b->bounce);
	b->bounce = NULL;
}

#include "blk_req.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>

#define HDR_LEN 16u  /* type, reserved, sector */
#define SEG_LEN 16u  /* struct virtio_blk_discard_write_zeroes */

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

bool blk_req_aligned(const struct blk_img *img, const struct blk_req *r)
{
	if (!img->direct)
		return true;
	for (unsigned i = 0; i < r->n; i++)
		if ((uintptr_t)r->iov[i].iov_base % BLK_MEM_ALIGN || r->iov[i].iov_len % img->blk)
			return false;
	return true;
}

/* The request's data to or from the file. O_DIRECT takes only aligned
 * buffers: guest buffers that are not go through the bounce buffer, a
 * chunk at a time. */
static int rw_data(struct blk_img *img, struct blk_req *r)
{
	bool wr = r->op == BLK_OP_WRITE;
	if (blk_req_aligned(img, r))
		return rw_full(img->fd, wr, r->iov, r->n, r->off);
	img->n_bounced++;
	for (uint64_t done = 0; done < r->len;) {
		size_t k = r->len - done < BLK_BOUNCE ? (size_t)(r->len - done) : BLK_BOUNCE;
		struct iovec bi = { img->bounce, k };
		if (wr)
			(void)vq_iov_read(r->iov, r->n, done, img->bounce, k);
		int rc = rw_full(img->fd, wr, &bi, 1, r->off + done);
		if (rc)
			return rc;
		if (!wr)
			(void)vq_iov_write(r->iov, r->n, done, img->bounce, k);
		done += k;
	}
	return 0;
}

/* Copy the segments that make up bytes [skip, skip+len) of src into
 * dst; returns how many. */
static unsigned slice(struct iovec *dst, const struct iovec *src, unsigned n, uint64_t skip,
		      uint64_t len)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = src[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t take = l - skip < len ? l - skip : len;
		dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[k].iov_len = take;
		k++;
		len -= take;
		skip = 0;
	}
	return k;
}

static bool in_range(const struct blk_img *img, uint64_t sector, uint64_t len)
{
	/* overflow-safe: sector and len come from the guest */
	return sector <= img->capacity && len / BLK_SECTOR <= img->capacity - sector;
}

/* Zeros without deallocating: the filesystem's zero range, else written. */
static int zero_fill(struct blk_img *img, uint64_t off, uint64_t len)
{
	if (fallocate(img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENODEV && errno != EINVAL)
		return -errno;
	static const uint8_t zeros[65536] __attribute__((aligned(BLK_MEM_ALIGN)));
	while (len) {
		size_t k = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		struct iovec z = { (void *)zeros, k };
		int rc = rw_full(img->fd, true, &z, 1, off);
		if (rc)
			return rc;
		off += k;
		len -= k;
	}
	return 0;
}

/* DISCARD / WRITE_ZEROES: the out data is an array of 16-byte segments
 * (sector, num_sectors, flags). Every field is guest-controlled: the
 * whole array is checked before the file is touched. Done synchronously
 * by every backend: rare, and the checks and fallbacks are here. */
static uint8_t discard_zeroes(struct blk_img *img, const struct vq_chain *c, uint64_t out_data,
			      bool wz)
{
	struct virtio_blk_discard_write_zeroes s;
	uint64_t nseg = out_data / SEG_LEN;

	if (out_data % SEG_LEN || nseg == 0 || nseg > BLK_MAX_DISCARD_SEG)
		return VIRTIO_BLK_S_IOERR;
	for (uint64_t i = 0; i < nseg; i++) {
		(void)vq_iov_read(c->iov, c->nr_out, HDR_LEN + i * SEG_LEN, &s, SEG_LEN);
		uint32_t known = wz ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
		/* the spec: unmap in a discard, or unknown flags, are unsupported */
		if (s.flags & ~known)
			return VIRTIO_BLK_S_UNSUPP;
		if (s.num_sectors > BLK_MAX_DISCARD_SECTORS ||
		    !in_range(img, s.sector, (uint64_t)s.num_sectors * BLK_SECTOR) ||
		    (s.sector * BLK_SECTOR) % img->blk ||
		    ((uint64_t)s.num_sectors * BLK_SECTOR) % img->blk)
			return VIRTIO_BLK_S_IOERR;
	}
	for (uint64_t i = 0; i < nseg; i++) {
		(void)vq_iov_read(c->iov, c->nr_out, HDR_LEN + i * SEG_LEN, &s, SEG_LEN);
		/* re-read: the guest may have changed it meanwhile; re-check */
		if (s.num_sectors > BLK_MAX_DISCARD_SECTORS ||
		    !in_range(img, s.sector, (uint64_t)s.num_sectors * BLK_SECTOR))
			return VIRTIO_BLK_S_IOERR;
		if (s.num_sectors == 0)
			continue;
		off_t off = (off_t)(s.sector * BLK_SECTOR), len = (off_t)s.num_sectors * BLK_SECTOR;
		int rc;
		if (!wz || (s.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) {
			/* a punched range reads back as zeros, and a sparse
			 * image stays sparse */
			rc = fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
			rc = rc ? -errno : 0;
			if (rc == -EOPNOTSUPP && wz)
				rc = zero_fill(img, (uint64_t)off, (uint64_t)len);
			else if (rc == -EOPNOTSUPP)
				rc = 0; /* discard is a hint: nothing to do is fine */
		} else {
			rc = zero_fill(img, (uint64_t)off, (uint64_t)len);
		}
		if (rc)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/* Host address of byte off of the writable part (in bounds: off < in_len). */
static uint8_t *in_byte(const struct vq_chain *c, uint64_t off)
{
	const struct iovec *in = c->iov + c->nr_out;
	for (unsigned i = 0; i < c->nr_in; i++) {
		if (off < in[i].iov_len)
			return (uint8_t *)in[i].iov_base + off;
		off -= in[i].iov_len;
	}
	return NULL;
}

void blk_req_parse(struct blk_img *img, const struct vpci *v, const struct vq_chain *c,
		   struct blk_req *r, struct iovec *iov)
{
	const struct iovec *in = c->iov + c->nr_out;
	struct { uint32_t type, reserved; uint64_t sector; } h;

	memset(r, 0, sizeof(*r));
	r->op = BLK_OP_DONE;
	r->status = VIRTIO_BLK_S_IOERR;
	r->iov = iov;
	if (c->in_len == 0)
		return; /* no room for a status byte: nothing we can say */
	uint64_t in_data = c->in_len - 1; /* the last writable byte is status */
	r->status_at = in_byte(c, in_data);
	/* one copy of the header: the guest may rewrite it while we work */
	if (vq_iov_read(c->iov, c->nr_out, 0, &h, HDR_LEN) != HDR_LEN)
		return;
	uint64_t out_data = c->out_len - HDR_LEN; /* >= 0: the header fit */

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
		/* whole blocks inside the image: then sector * BLK_SECTOR
		 * cannot overflow, as sector <= capacity = size / BLK_SECTOR */
		if (in_data % img->blk || !in_range(img, h.sector, in_data) ||
		    (h.sector * BLK_SECTOR) % img->blk)
			return;
		r->op = BLK_OP_READ;
		r->n = slice(iov, in, c->nr_in, 0, in_data);
		r->off = h.sector * BLK_SECTOR;
		r->len = r->wrote = in_data;
		return;
	case VIRTIO_BLK_T_OUT:
		if (img->ro || out_data % img->blk || !in_range(img, h.sector, out_data) ||
		    (h.sector * BLK_SECTOR) % img->blk)
			return;
		r->op = BLK_OP_WRITE;
		r->n = slice(iov, c->iov, c->nr_out, HDR_LEN, out_data);
		r->off = h.sector * BLK_SECTOR;
		r->len = out_data;
		return;
	case VIRTIO_BLK_T_FLUSH:
		img->n_flush++;
		if (img->ro)
			r->status = VIRTIO_BLK_S_OK; /* nothing was written */
		else
			r->op = BLK_OP_FLUSH;
		return;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool wz = h.type == VIRTIO_BLK_T_WRITE_ZEROES;
		if (img->ro)
			return; /* a read-only image stays so: IOERR */
		if (!vpci_has(v, wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)) {
			r->status = VIRTIO_BLK_S_UNSUPP;
			return;
		}
		r->status = discard_zeroes(img, c, out_data, wz);
		if (r->status == VIRTIO_BLK_S_OK)
			(*(wz ? &img->n_wzeroes : &img->n_discard))++;
		return;
	}
	case VIRTIO_BLK_T_GET_ID: {
		/* a short buffer gets a prefix of the id, never more than it holds */
		uint64_t n = in_data < sizeof(img->id) ? in_data : sizeof(img->id);
		r->wrote = vq_iov_write(in, c->nr_in, 0, img->id, n);
		r->status = VIRTIO_BLK_S_OK;
		return;
	}
	default:
		r->status = VIRTIO_BLK_S_UNSUPP;
		return;
	}
}

uint8_t blk_req_sync(struct blk_img *img, struct blk_req *r)
{
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return rw_data(img, r) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case BLK_OP_FLUSH:
		/* every write completed before this request reached the disk
		 * is on it afterwards, which is all FLUSH promises */
		return fdatasync(img->fd) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case BLK_OP_DONE:
		break;
	}
	return r->status;
}

uint32_t blk_req_finish(const struct blk_req *r, uint8_t status)
{
	if (!r->status_at)
		return 0;
	*r->status_at = status;
	return (uint32_t)((status == VIRTIO_BLK_S_OK ? r->wrote : 0) + 1);
}

#include "virtio_blk.h"

#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))
#define SECTOR 512u
#define HDR_LEN 16u  /* type, reserved, sector */
#define CFG_SIZE 24u /* capacity .. blk_size */

uint64_t vblk_features(bool ro)
{
	return BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	       BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_BLK_F_SEG_MAX) |
	       BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH) |
	       (ro ? BIT(VIRTIO_BLK_F_RO) : 0);
}

static void cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	struct vblk *b = dev;
	uint8_t c[CFG_SIZE] = { 0 };
	uint32_t seg_max = VBLK_SEG_MAX, blk_size = SECTOR;
	memcpy(c, &b->capacity, 8);
	memcpy(c + 12, &seg_max, 4);
	memcpy(c + 20, &blk_size, 4);
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
		/* whole sectors inside the image: then sector * SECTOR cannot
		 * overflow, as sector <= capacity = size / SECTOR */
		if (in_data % SECTOR || !in_range(b, h.sector, in_data))
			break;
		unsigned k = slice(b, in, c->nr_in, 0, in_data);
		if (rw_full(b->fd, false, b->data, k, h.sector * SECTOR) == 0) {
			status = VIRTIO_BLK_S_OK;
			wrote = in_data;
		}
		break;
	}
	case VIRTIO_BLK_T_OUT: {
		if (b->ro || out_data % SECTOR || !in_range(b, h.sector, out_data))
			break;
		unsigned k = slice(b, c->iov, c->nr_out, HDR_LEN, out_data);
		if (rw_full(b->fd, true, b->data, k, h.sector * SECTOR) == 0)
			status = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (b->ro || fdatasync(b->fd) == 0)
			status = VIRTIO_BLK_S_OK;
		break;
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

int vblk_init(struct vblk *b, int fd, bool ro, uint64_t size, const char *id,
	      const struct gmem *gm, const struct dev_irq_ops *irq)
{
	/* class 01.80: other mass storage controller */
	int rc = vpci_init(&b->vpci, VIRTIO_ID_BLOCK, 0x018000, vblk_features(ro), 1,
			   VBLK_QUEUE_SIZE, CFG_SIZE, &vblk_ops, b, gm, irq);
	if (rc)
		return rc;
	b->fd = fd;
	b->ro = ro;
	b->capacity = size / SECTOR;
	memset(b->id, 0, sizeof(b->id));
	if (id) /* a 20-byte id carries no NUL, per spec */
		memcpy(b->id, id, strnlen(id, sizeof(b->id)));
	b->vpci.q[0].vq.name = "blk";
	return 0;
}

void vblk_destroy(struct vblk *b)
{
	vpci_destroy(&b->vpci);
}

#include "virtio_blk.h"
#include "blk_uring.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))
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
	PUT(capacity, b->img.capacity);
	PUT(seg_max, VBLK_SEG_MAX);
	PUT(blk_size, b->img.blk);
	if (!b->img.ro) {
		PUT(max_discard_sectors, VBLK_MAX_DISCARD_SECTORS);
		PUT(max_discard_seg, VBLK_MAX_DISCARD_SEG);
		PUT(discard_sector_alignment, b->img.blk / BLK_SECTOR);
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

/* --- the thread backend: each request served where it was popped --- */

static uint32_t serve_sync(void *dev, const struct vq_chain *c)
{
	struct vblk *b = dev;
	struct blk_req r;
	blk_req_parse(&b->img, &b->vpci, c, &r, b->data);
	return blk_req_finish(&r, blk_req_sync(&b->img, &r));
}

static void thread_kick(void *ctx)
{
	struct vblk *b = ctx;
	vpci_drain(&b->vpci, 0, serve_sync);
}

static void thread_complete(void *ctx, bool wait)
{
	(void)ctx, (void)wait; /* every request completed where it was popped */
}

static void thread_reset(void *ctx)
{
	(void)ctx; /* nothing is ever in flight outside the queue lock */
}

static void thread_destroy(void *ctx)
{
	(void)ctx;
}

static const struct blk_io_ops thread_ops = {
	.name = "thread", .kick = thread_kick, .complete = thread_complete,
	.reset = thread_reset, .destroy = thread_destroy,
};

/* --- the device --- */

void vblk_process(struct vblk *b)
{
	b->io->kick(b->io_ctx);
}

void vblk_complete(struct vblk *b, bool wait)
{
	b->io->complete(b->io_ctx, wait);
}

const char *vblk_backend(const struct vblk *b)
{
	return b->io->name;
}

static void notify(void *dev, unsigned q)
{
	if (q == 0)
		vblk_process(dev);
}

/* every queue lock held: the ring is about to be forgotten, so whatever
 * the backend has in flight must be finished (and dropped) first */
static void reset(void *dev)
{
	struct vblk *b = dev;
	b->io->reset(b->io_ctx);
}

static const struct vpci_ops vblk_ops = {
	.cfg_read = cfg_read, .cfg_write = cfg_write, .notify = notify, .reset = reset,
};

int vblk_init(struct vblk *b, int fd, unsigned flags, uint64_t size, const char *id,
	      const struct gmem *gm, const struct dev_irq_ops *irq)
{
	bool ro = flags & VBLK_RO;
	struct blk_img *img = &b->img;
	int rc;

	memset(img, 0, sizeof(*img));
	img->fd = fd;
	img->ro = ro;
	img->direct = flags & VBLK_DIRECT;
	img->blk = BLK_SECTOR;
	img->capacity = size / BLK_SECTOR;
	if (id) /* a 20-byte id carries no NUL, per spec */
		memcpy(img->id, id, strnlen(id, sizeof(img->id)));
	if (img->direct) {
		img->bounce = aligned_alloc(BLK_MEM_ALIGN, BLK_BOUNCE);
		if (!img->bounce)
			return -ENOMEM;
	}
	/* the one place a backend is chosen */
	if (flags & VBLK_URING) {
		struct blk_uring *u;
		rc = blk_uring_new(&u, img, &b->vpci, VBLK_QUEUE_SIZE);
		if (rc)
			goto err_bounce;
		b->io = &blk_uring_ops;
		b->io_ctx = u;
	} else {
		b->io = &thread_ops;
		b->io_ctx = b;
	}
	/* class 01.80: other mass storage controller */
	rc = vpci_init(&b->vpci, VIRTIO_ID_BLOCK, 0x018000, vblk_features(ro), 1,
		       VBLK_QUEUE_SIZE, CFG_SIZE, &vblk_ops, b, gm, irq);
	if (rc)
		goto err_io;
	b->vpci.q[0].vq.name = "blk";
	return 0;
err_io:
	b->io->destroy(b->io_ctx);
err_bounce:
	free(img->bounce);
	img->bounce = NULL;
	return rc;
}

int vblk_start(struct vblk *b, struct event_loop *ev, struct err *e)
{
	return b->io->start ? b->io->start(b->io_ctx, ev, e) : 0;
}

void vblk_destroy(struct vblk *b)
{
	/* before the queue goes: the backend may still finish requests */
	b->io->destroy(b->io_ctx);
	vpci_destroy(&b->vpci);
	free(b->img.bounce);
	b->img.bounce = NULL;
}

#include "virtio_rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))

static ssize_t host_random(void *buf, size_t len)
{
	/* the host booted long ago: its pool is initialised, so this does
	 * not block; the urandom source, as QEMU's and Firecracker's */
	ssize_t n = getrandom(buf, len, 0);
	return n < 0 ? -errno : n;
}

/* Fill the chain's writable part, up to VRNG_MAX_REQ; readable segments
 * (the driver has no business sending any) are skipped. Returns the
 * bytes written: a short count is allowed by the spec. */
static uint32_t serve(void *dev, const struct vq_chain *c)
{
	struct vrng *r = dev;
	uint32_t done = 0;
	for (unsigned i = c->nr_out; i < c->nr_out + c->nr_in && done < VRNG_MAX_REQ; i++) {
		/* iov_base/iov_len were bound-checked against guest RAM by vq_pop */
		uint8_t *p = c->iov[i].iov_base;
		size_t left = c->iov[i].iov_len;
		if (left > VRNG_MAX_REQ - done)
			left = VRNG_MAX_REQ - done;
		while (left) {
			ssize_t n = r->fill(p, left);
			if (n == -EINTR)
				continue;
			if (n <= 0)
				goto out; /* what was written so far is used */
			p += n;
			left -= (size_t)n;
			done += (uint32_t)n;
		}
	}
out:
	r->bytes += done;
	return done;
}

static void notify(void *dev, unsigned q)
{
	struct vrng *r = dev;
	if (q == 0)
		vpci_drain(&r->vpci, 0, serve);
}

static void cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	(void)dev, (void)off;
	memset(data, 0, len); /* cfg_size 0: never called */
}

static void cfg_write(void *dev, unsigned off, const void *data, unsigned len)
{
	(void)dev, (void)off, (void)data, (void)len;
}

static void reset(void *dev)
{
	(void)dev; /* nothing is kept between requests */
}

static const struct vpci_ops vrng_ops = {
	.cfg_read = cfg_read, .cfg_write = cfg_write, .notify = notify, .reset = reset,
};

int vrng_init(struct vrng *r, const struct gmem *gm, const struct dev_irq_ops *irq)
{
	r->fill = host_random;
	r->bytes = 0;
	/* class ff.00: unclassified, as QEMU's virtio-rng-pci */
	int rc = vpci_init(&r->vpci, VIRTIO_ID_RNG, 0xff0000,
			   BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
			   BIT(VIRTIO_RING_F_INDIRECT_DESC),
			   1, VRNG_QUEUE_SIZE, 0, &vrng_ops, r, gm, irq);
	if (rc)
		return rc;
	r->vpci.q[0].vq.name = "rng";
	return 0;
}

void vrng_destroy(struct vrng *r)
{
	vpci_destroy(&r->vpci);
}

#include "vhost_net.h"

#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))

uint64_t vhost_net_ring_features(void)
{
	/* The tap writes and reads the 12-byte header itself
	 * (TUNSETVNETHDRSZ), so VHOST_NET_F_VIRTIO_NET_HDR stays off; the
	 * backend only has to know the ring format and, for MRG_RXBUF, to
	 * fill num_buffers. */
	return BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	       BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_NET_F_MRG_RXBUF);
}

bool vhost_net_can(const struct vhost_net *vh, uint64_t acked)
{
	uint64_t need = acked & vhost_net_ring_features();
	return vh->fd >= 0 && (need & vh->features) == need;
}

int vhost_net_open(struct vhost_net *vh, const struct gmem *gm, struct err *e)
{
	vh->running[0] = vh->running[1] = false;
	vh->fd = vhost_open("/dev/vhost-net", "vhost-net", gm, &vh->features, e);
	if (vh->fd < 0) {
		int rc = vh->fd;
		vh->fd = -1;
		return rc;
	}
	return 0;
}

void vhost_net_close(struct vhost_net *vh)
{
	if (vh->fd < 0)
		return;
	for (unsigned i = 0; i < 2; i++)
		if (vhost_net_stop(vh, i, NULL)) {} /* closing the fd stops it anyway */
	close(vh->fd);
	vh->fd = -1;
}

int vhost_net_set_features(struct vhost_net *vh, uint64_t acked)
{
	uint64_t f = acked & vhost_net_ring_features();
	if (!vhost_net_can(vh, acked))
		return -EOPNOTSUPP;
	if (ioctl(vh->fd, VHOST_SET_FEATURES, &f) < 0)
		return -errno;
	return 0;
}

int vhost_net_start(struct vhost_net *vh, unsigned idx, const struct vhost_ring *r,
		    int tap_fd)
{
	if (vh->fd < 0 || idx > 1)
		return -EINVAL;
	struct vhost_vring_file be = { .index = idx, .fd = tap_fd };
	int rc = vhost_ring_set(vh->fd, idx, r);
	if (rc)
		return rc;
	if (ioctl(vh->fd, VHOST_NET_SET_BACKEND, &be) < 0)
		return -errno;
	vh->running[idx] = true;
	return 0;
}

int vhost_net_set_call(struct vhost_net *vh, unsigned idx, int fd)
{
	if (vh->fd < 0 || idx > 1)
		return -EINVAL;
	return vhost_ring_call(vh->fd, idx, fd);
}

int vhost_net_stop(struct vhost_net *vh, unsigned idx, uint16_t *base)
{
	if (vh->fd < 0 || idx > 1)
		return -EINVAL;
	if (!vh->running[idx])
		return 0;
	struct vhost_vring_file be = { .index = idx, .fd = -1 };
	vh->running[idx] = false;
	if (ioctl(vh->fd, VHOST_NET_SET_BACKEND, &be) < 0)
		return -errno;
	return vhost_ring_base(vh->fd, idx, base);
}

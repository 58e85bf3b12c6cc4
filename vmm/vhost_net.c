#include "vhost_net.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))

int vhost_mem_table(const struct gmem *gm, struct vhost_memory *m, unsigned max)
{
	if (gm->nr > max)
		return -E2BIG;
	m->nregions = gm->nr;
	m->padding = 0;
	for (unsigned i = 0; i < gm->nr; i++) {
		m->regions[i] = (struct vhost_memory_region){
			.guest_phys_addr = gm->r[i].gpa,
			.memory_size = gm->r[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)gm->r[i].host,
		};
	}
	return (int)gm->nr;
}

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
	struct vhost_memory *m;
	int rc;

	vh->fd = -1;
	vh->running[0] = vh->running[1] = false;
	int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errf(e, errno, "vhost-net: /dev/vhost-net: %s", strerror(errno));
	if (ioctl(fd, VHOST_SET_OWNER) < 0) {
		rc = errf(e, errno, "vhost-net: VHOST_SET_OWNER: %s", strerror(errno));
		goto err_fd;
	}
	if (ioctl(fd, VHOST_GET_FEATURES, &vh->features) < 0) {
		rc = errf(e, errno, "vhost-net: VHOST_GET_FEATURES: %s", strerror(errno));
		goto err_fd;
	}
	m = calloc(1, sizeof(*m) + GMEM_MAX_REGIONS * sizeof(m->regions[0]));
	if (!m) {
		rc = errf(e, ENOMEM, "vhost-net: out of memory");
		goto err_fd;
	}
	rc = vhost_mem_table(gm, m, GMEM_MAX_REGIONS);
	if (rc >= 0 && ioctl(fd, VHOST_SET_MEM_TABLE, m) < 0)
		rc = errf(e, errno, "vhost-net: VHOST_SET_MEM_TABLE: %s", strerror(errno));
	else if (rc < 0)
		rc = errf(e, -rc, "vhost-net: too many memory regions");
	free(m);
	if (rc < 0)
		goto err_fd;
	vh->fd = fd;
	return 0;
err_fd:
	close(fd);
	return rc;
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
	struct vhost_vring_state num = { .index = idx, .num = r->size };
	struct vhost_vring_state base = { .index = idx, .num = r->base };
	struct vhost_vring_addr addr = {
		.index = idx,
		.desc_user_addr = (uint64_t)(uintptr_t)r->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)r->avail,
		.used_user_addr = (uint64_t)(uintptr_t)r->used,
	};
	struct vhost_vring_file kick = { .index = idx, .fd = r->kick_fd };
	struct vhost_vring_file be = { .index = idx, .fd = tap_fd };

	/* the ring addresses went through vq_enable's checks: inside guest
	 * RAM, aligned, sized; vhost re-checks them against the mem table */
	if (ioctl(vh->fd, VHOST_SET_VRING_NUM, &num) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_KICK, &kick) < 0 ||
	    ioctl(vh->fd, VHOST_NET_SET_BACKEND, &be) < 0)
		return -errno;
	vh->running[idx] = true;
	return 0;
}

int vhost_net_set_call(struct vhost_net *vh, unsigned idx, int fd)
{
	if (vh->fd < 0 || idx > 1)
		return -EINVAL;
	struct vhost_vring_file call = { .index = idx, .fd = fd };
	return ioctl(vh->fd, VHOST_SET_VRING_CALL, &call) < 0 ? -errno : 0;
}

int vhost_net_stop(struct vhost_net *vh, unsigned idx, uint16_t *base)
{
	if (vh->fd < 0 || idx > 1)
		return -EINVAL;
	if (!vh->running[idx])
		return 0;
	struct vhost_vring_file be = { .index = idx, .fd = -1 };
	struct vhost_vring_state st = { .index = idx };
	vh->running[idx] = false;
	if (ioctl(vh->fd, VHOST_NET_SET_BACKEND, &be) < 0)
		return -errno;
	/* GET_VRING_BASE also stops the ring: the backend touches it no more */
	if (ioctl(vh->fd, VHOST_GET_VRING_BASE, &st) < 0)
		return -errno;
	if (base)
		*base = (uint16_t)st.num;
	return 0;
}

#include "vhost.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>

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

int vhost_open(const char *path, const char *what, const struct gmem *gm,
	       uint64_t *features, struct err *e)
{
	struct vhost_memory *m;
	int rc;

	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errf(e, errno, "%s: %s: %s", what, path, strerror(errno));
	if (ioctl(fd, VHOST_SET_OWNER) < 0) {
		rc = errf(e, errno, "%s: VHOST_SET_OWNER: %s", what, strerror(errno));
		goto err_fd;
	}
	if (ioctl(fd, VHOST_GET_FEATURES, features) < 0) {
		rc = errf(e, errno, "%s: VHOST_GET_FEATURES: %s", what, strerror(errno));
		goto err_fd;
	}
	m = calloc(1, sizeof(*m) + GMEM_MAX_REGIONS * sizeof(m->regions[0]));
	if (!m) {
		rc = errf(e, ENOMEM, "%s: out of memory", what);
		goto err_fd;
	}
	rc = vhost_mem_table(gm, m, GMEM_MAX_REGIONS);
	if (rc >= 0 && ioctl(fd, VHOST_SET_MEM_TABLE, m) < 0)
		rc = errf(e, errno, "%s: VHOST_SET_MEM_TABLE: %s", what, strerror(errno));
	else if (rc < 0)
		rc = errf(e, -rc, "%s: too many memory regions", what);
	free(m);
	if (rc < 0)
		goto err_fd;
	return fd;
err_fd:
	close(fd);
	return rc;
}

int vhost_ring_set(int fd, unsigned idx, const struct vhost_ring *r)
{
	struct vhost_vring_state num = { .index = idx, .num = r->size };
	struct vhost_vring_state base = { .index = idx, .num = r->base };
	struct vhost_vring_addr addr = {
		.index = idx,
		.desc_user_addr = (uint64_t)(uintptr_t)r->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)r->avail,
		.used_user_addr = (uint64_t)(uintptr_t)r->used,
	};
	struct vhost_vring_file kick = { .index = idx, .fd = r->kick_fd };

	/* the ring addresses went through vq_enable's checks: inside guest
	 * RAM, aligned, sized; vhost re-checks them against the mem table */
	if (ioctl(fd, VHOST_SET_VRING_NUM, &num) < 0 ||
	    ioctl(fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
	    ioctl(fd, VHOST_SET_VRING_KICK, &kick) < 0)
		return -errno;
	return 0;
}

int vhost_ring_call(int fd, unsigned idx, int call_fd)
{
	struct vhost_vring_file call = { .index = idx, .fd = call_fd };
	return ioctl(fd, VHOST_SET_VRING_CALL, &call) < 0 ? -errno : 0;
}

int vhost_ring_base(int fd, unsigned idx, uint16_t *base)
{
	struct vhost_vring_state st = { .index = idx };
	/* GET_VRING_BASE also stops the ring: the backend touches it no more */
	if (ioctl(fd, VHOST_GET_VRING_BASE, &st) < 0)
		return -errno;
	if (base)
		*base = (uint16_t)st.num;
	return 0;
}

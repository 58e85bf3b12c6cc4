/* Taps through /dev/net/tun: the kernel has no rtnetlink path that
 * creates them. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include "priv.h"

#define TUN_PATH "/dev/net/tun"
/* struct virtio_net_hdr_v1: what a VIRTIO_F_VERSION_1 device uses. */
#define VNET_HDR_LEN 12

int tap_features(unsigned *features)
{
	int fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, TUNGETFEATURES, features) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	close(fd);
	return 0;
}

int tap_create(const char *name, unsigned features, unsigned queues,
	       const struct kl_tap_cfg *cfg, char name_out[KL_NAME_MAX + 1],
	       int *fd_out)
{
	struct ifreq ifr;
	int fd, err;

	if (queues > 1 && !(features & IFF_MULTI_QUEUE))
		return -EOPNOTSUPP;
	fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	if (name)
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* IFF_TUN_EXCL: fail on an existing name instead of attaching to it. */
	ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL |
				(features & IFF_VNET_HDR) |
				(queues > 1 ? IFF_MULTI_QUEUE : 0));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto err_errno;
	if (features & IFF_VNET_HDR) {
		int len = VNET_HDR_LEN;
		if (ioctl(fd, TUNSETVNETHDRSZ, &len) < 0)
			goto err_errno;
	}
	if (cfg && cfg->set_owner &&
	    ioctl(fd, TUNSETOWNER, (unsigned long)cfg->owner) < 0)
		goto err_errno;
	if (cfg && cfg->set_group &&
	    ioctl(fd, TUNSETGROUP, (unsigned long)cfg->group) < 0)
		goto err_errno;
	if (name_out)
		snprintf(name_out, KL_NAME_MAX + 1, "%s", ifr.ifr_name);
	*fd_out = fd;
	return 0;
err_errno:
	err = -errno;
	/* Not persistent, so closing the fd removes the device. */
	close(fd);
	return err;
}

int tap_persist(int fd)
{
	return ioctl(fd, TUNSETPERSIST, 1UL) < 0 ? -errno : 0;
}

int tap_attach(const char *name, unsigned features, int *fd_out)
{
	struct ifreq ifr;
	int fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* no IFF_TUN_EXCL: joining the existing device is the point */
	ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE |
				(features & IFF_VNET_HDR));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

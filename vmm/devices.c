#include "devices.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include "event.h"
#include "pci.h"
#include "virtio_blk.h"
#include "virtio_net.h"

/* One VM per process: the devices live here, set up once by main. */
static struct {
	struct pci_bus pci;
	struct event_loop ev, blk_ev; /* net's I/O thread; the disk's own */
	bool ev_ready, blk_ev_ready;
	struct vnet *net;
	struct vblk *blk;
	int disk_fd;
} D = { .disk_fd = -1 };

static void tap_ready(void *opaque, uint32_t events)
{
	(void)events;
	vnet_rx(opaque);
}

static int setup_net(const struct dev_env *env, int tap_fd, const uint8_t mac[6],
		     struct err *e)
{
	int rc;

	D.net = calloc(1, sizeof(*D.net));
	if (!D.net)
		return errf(e, ENOMEM, "virtio-net: out of memory");
	rc = vnet_init(D.net, tap_fd, true, mac, env->gm, &env->irq);
	if (rc) {
		free(D.net);
		D.net = NULL;
		return errf(e, -rc, "virtio-net: tap fd %d: %s", tap_fd, strerror(-rc));
	}
	rc = pci_bus_add(&D.pci, &D.net->vpci.pci, e);
	if (rc < 0)
		return rc;
	vpci_set_slot(&D.net->vpci, (unsigned)rc);
	rc = event_init(&D.ev, e);
	if (rc)
		return rc;
	D.ev_ready = true;
	/* edge-triggered: vnet_rx drains until EAGAIN or the guest is out
	 * of buffers; in the latter case the guest's rx kick resumes it */
	rc = event_add(&D.ev, tap_fd, EPOLLIN | EPOLLET, tap_ready, D.net, e);
	if (rc)
		return rc;
	/* kicks (ioeventfd) and tap rx on one thread: the rx path's kick and
	 * the tap never race each other for the rx queue lock */
	rc = vpci_start(&D.net->vpci, &D.ev, e);
	if (rc)
		return rc;
	return event_start(&D.ev, e);
}

static int setup_blk(const struct dev_env *env, const char *path, bool ro, bool direct,
		     struct err *e)
{
	struct stat st;
	int rc;

	D.disk_fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (D.disk_fd < 0 && direct && errno == EINVAL)
		return errf(e, EINVAL, "virtio-blk: %s: cache=none: the filesystem does not "
			    "support O_DIRECT", path);
	if (D.disk_fd < 0)
		return errf(e, errno, "virtio-blk: %s: %s", path, strerror(errno));
	/* two VMs writing one image corrupt it: refuse instead */
	if (flock(D.disk_fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB))
		return errf(e, errno, "virtio-blk: %s: image is in use (%s)", path, strerror(errno));
	if (fstat(D.disk_fd, &st))
		return errf(e, errno, "virtio-blk: %s: %s", path, strerror(errno));
	off_t size = lseek(D.disk_fd, 0, SEEK_END); /* works for block devices too */
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return errf(e, EINVAL, "virtio-blk: %s: not a file or block device", path);
	if (size < 512)
		return errf(e, EINVAL, "virtio-blk: %s: smaller than one sector", path);
	D.blk = calloc(1, sizeof(*D.blk));
	if (!D.blk)
		return errf(e, ENOMEM, "virtio-blk: out of memory");
	rc = vblk_init(D.blk, D.disk_fd, (ro ? VBLK_RO : 0) | (direct ? VBLK_DIRECT : 0),
		       (uint64_t)size, "kvmlab-disk", env->gm, &env->irq);
	if (rc) {
		free(D.blk);
		D.blk = NULL;
		return errf(e, -rc, "virtio-blk: %s", strerror(-rc));
	}
	int ssz;
	/* O_DIRECT on a device with 4 KiB sectors: the guest must use them too */
	if (direct && S_ISBLK(st.st_mode) && ioctl(D.disk_fd, BLKSSZGET, &ssz) == 0 &&
	    ssz > 512 && ssz <= 4096)
		D.blk->blk = (uint32_t)ssz;
	rc = pci_bus_add(&D.pci, &D.blk->vpci.pci, e);
	if (rc < 0)
		return rc;
	vpci_set_slot(&D.blk->vpci, (unsigned)rc);
	/* the disk's own I/O thread: a slow disk never holds up the network */
	rc = event_init(&D.blk_ev, e);
	if (rc)
		return rc;
	D.blk_ev_ready = true;
	rc = vpci_start(&D.blk->vpci, &D.blk_ev, e);
	if (rc)
		return rc;
	return event_start(&D.blk_ev, e);
}

int devices_setup(const struct dev_env *env, const struct dev_cfg *cfg, struct err *e)
{
	int rc = pci_bus_init(&D.pci, env->pio, env->mmio, e);
	if (rc)
		return rc;
	/* blk first: its slot (and GSI) then does not depend on --tap */
	if (cfg->disk_path) {
		rc = setup_blk(env, cfg->disk_path, cfg->disk_readonly, cfg->disk_direct, e);
		if (rc)
			goto err;
	}
	if (cfg->tap_fd >= 0) {
		rc = setup_net(env, cfg->tap_fd, cfg->mac, e);
		if (rc)
			goto err;
	}
	return 0;
err:
	devices_stop();
	return rc;
}

void devices_stop(void)
{
	/* the buses still point at the PCI layer: unhook the devices first */
	pthread_mutex_lock(&D.pci.lock);
	for (unsigned i = 1; i < PCI_MAX_SLOTS; i++)
		D.pci.dev[i] = NULL;
	pthread_mutex_unlock(&D.pci.lock);
	/* threads first: nothing may call into a device being torn down */
	if (D.ev_ready) {
		event_destroy(&D.ev);
		D.ev_ready = false;
	}
	if (D.blk_ev_ready) {
		event_destroy(&D.blk_ev);
		D.blk_ev_ready = false;
	}
	if (D.net) {
		vnet_destroy(D.net);
		free(D.net);
		D.net = NULL;
	}
	if (D.blk) {
		vblk_destroy(D.blk);
		free(D.blk);
		D.blk = NULL;
	}
	if (D.disk_fd >= 0) {
		close(D.disk_fd);
		D.disk_fd = -1;
	}
}

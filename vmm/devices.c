#include "devices.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "event.h"
#include "pci.h"
#include "virtio_blk.h"
#include "virtio_net.h"

/* One VM per process: the devices live here, set up once by main. */
static struct {
	struct pci_bus pci;
	struct event_loop ev;
	bool ev_ready;
	struct vnet *net;
	struct vblk *blk;
	int disk_fd;
	struct dhcp_lease lease; /* the tx filter's opaque */
} D = { .disk_fd = -1 };

static void tap_ready(void *opaque, uint32_t events)
{
	(void)events;
	vnet_rx(opaque);
}

static int setup_net(const struct dev_env *env, int tap_fd, const uint8_t mac[6],
		     const struct dhcp_lease *dhcp, struct err *e)
{
	int rc;

	if (dhcp && dhcp_lease_check(dhcp))
		return errf(e, EINVAL, "virtio-net: DHCP lease unusable (address, router, prefix or MAC)");

	D.net = calloc(1, sizeof(*D.net));
	if (!D.net)
		return errf(e, ENOMEM, "virtio-net: out of memory");
	rc = vnet_init(D.net, tap_fd, true, mac, env->gm, &env->irq);
	if (rc) {
		free(D.net);
		D.net = NULL;
		return errf(e, -rc, "virtio-net: tap fd %d: %s", tap_fd, strerror(-rc));
	}
	if (dhcp) {
		/* the guest's DHCP is answered here and never reaches the tap */
		D.lease = *dhcp;
		D.net->tx_filter = dhcp_tx_filter;
		D.net->tx_filter_opaque = &D.lease;
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
	return event_start(&D.ev, e);
}

static int setup_blk(const struct dev_env *env, const char *path, bool ro, struct err *e)
{
	struct stat st;
	int rc;

	D.disk_fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
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
	rc = vblk_init(D.blk, D.disk_fd, ro, (uint64_t)size, "kvmlab-disk", env->gm, &env->irq);
	if (rc) {
		free(D.blk);
		D.blk = NULL;
		return errf(e, -rc, "virtio-blk: %s", strerror(-rc));
	}
	rc = pci_bus_add(&D.pci, &D.blk->vpci.pci, e);
	if (rc < 0)
		return rc;
	vpci_set_slot(&D.blk->vpci, (unsigned)rc);
	return 0;
}

int devices_setup(const struct dev_env *env, const struct dev_cfg *cfg, struct err *e)
{
	int rc = pci_bus_init(&D.pci, env->pio, env->mmio, e);
	if (rc)
		return rc;
	/* blk first: its slot (and GSI) then does not depend on --tap */
	if (cfg->disk_path) {
		rc = setup_blk(env, cfg->disk_path, cfg->disk_readonly, e);
		if (rc)
			goto err;
	}
	if (cfg->tap_fd >= 0) {
		rc = setup_net(env, cfg->tap_fd, cfg->mac, cfg->dhcp, e);
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
	if (D.ev_ready) {
		event_destroy(&D.ev);
		D.ev_ready = false;
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

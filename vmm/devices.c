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

#include "dhcp_tap.h"
#include "event.h"
#include "pci.h"
#include "virtio_blk.h"
#include "virtio_net.h"

/* One VM per process: the devices live here, set up once by main. */
static struct {
	struct pci_bus pci;
	struct event_loop ev[DEV_NET_QUEUES_MAX]; /* net: one per queue pair */
	unsigned nev;
	struct event_loop blk_ev; /* the disk's own */
	bool blk_ev_ready;
	struct vnet *net;
	struct vblk *blk;
	int disk_fd;
	struct dhcp_lease lease; /* the tx filter's opaque */
	struct dhcp_tap dhcp_tap; /* the same lease when vhost-net moves frames */
} D = { .disk_fd = -1, .dhcp_tap = { .fd = -1 } };

/* One handler per queue pair: its tap queue became readable or its
 * queues were kicked. */
struct net_pair_ref {
	struct vnet *n;
	unsigned p;
};
static struct net_pair_ref net_refs[DEV_NET_QUEUES_MAX];

static void pair_ready(void *opaque, uint32_t events)
{
	struct net_pair_ref *r = opaque;
	(void)events;
	vnet_pair_run(r->n, r->p);
}

/* Net I/O threads: one per queue pair (the default), so pairs run in
 * parallel on the host as they do in the guest; KVMLAB_NET_THREADS=one
 * puts every pair on a single epoll thread (for comparison, bench/). */
static bool net_one_thread(void)
{
	const char *v = getenv("KVMLAB_NET_THREADS");
	return v && !strcmp(v, "one");
}

/* vhost-net takes a pair's tap queue: our loop stops reading it. */
static int pause_fd(void *opaque, int fd, bool pause)
{
	(void)opaque;
	for (unsigned i = 0; i < D.nev; i++) {
		int rc = event_pause(&D.ev[i], fd, pause);
		if (rc != -ENOENT)
			return rc;
	}
	return -ENOENT;
}

static int setup_net(const struct dev_env *env, const struct dev_cfg *cfg, struct err *e)
{
	const int *fds = cfg->tap_fds;
	unsigned queues = cfg->tap_queues;
	int vhost = cfg->vhost, rc;
	const struct dhcp_lease *dhcp = cfg->dhcp;

	if (dhcp && dhcp_lease_check(dhcp))
		return errf(e, EINVAL, "virtio-net: DHCP lease unusable (address, router, prefix or MAC)");


	D.net = calloc(1, sizeof(*D.net));
	if (!D.net)
		return errf(e, ENOMEM, "virtio-net: out of memory");
	rc = vnet_init(D.net, fds, queues, true, cfg->mac, env->gm, &env->irq);
	if (rc) {
		free(D.net);
		D.net = NULL;
		return errf(e, -rc, "virtio-net: tap fd %d (%u queues): %s", fds[0], queues,
			    strerror(-rc));
	}
	if (vhost != DEV_VHOST_OFF) {
		const struct vnet_io io = { .pause = pause_fd };
		rc = vnet_vhost_enable(D.net, vhost == DEV_VHOST_ON, &io, e);
		if (rc) {
			vnet_destroy(D.net);
			free(D.net);
			D.net = NULL;
			return rc;
		}
	}
	if (dhcp) {
		/* the guest's DHCP is answered here and never reaches the tap */
		D.lease = *dhcp;
		D.net->tx_filter = dhcp_tx_filter;
		D.net->tx_filter_opaque = &D.lease;
	}
	if (dhcp && D.net->vhost_open) {
		/* vhost sends past the tx filter: answer from the tap's side */
		rc = dhcp_tap_open(&D.dhcp_tap, fds[0], cfg->dhcp_bpf, dhcp_tx_filter, &D.lease, e);
		if (rc && vhost == DEV_VHOST_ON)
			return rc;
		if (rc)
			vnet_vhost_close(D.net); /* auto: DHCP matters more */
	}
	rc = pci_bus_add(&D.pci, &D.net->vpci.pci, e);
	if (rc < 0)
		return rc;
	vpci_set_slot(&D.net->vpci, (unsigned)rc);
	unsigned nloops = net_one_thread() ? 1 : queues;
	for (; D.nev < nloops; D.nev++) {
		rc = event_init(&D.ev[D.nev], e);
		if (rc)
			return rc;
		snprintf(D.ev[D.nev].name, sizeof(D.ev[D.nev].name), "kl-net%u", D.nev);
	}
	for (unsigned p = 0; p < queues; p++) {
		struct event_loop *l = &D.ev[p % nloops];
		net_refs[p] = (struct net_pair_ref){ D.net, p };
		/* edge-triggered: vnet_rx drains until EAGAIN or the guest is
		 * out of buffers; in the latter case the guest's rx kick
		 * (the pair's kick eventfd) resumes it */
		rc = event_add(l, fds[p], EPOLLIN | EPOLLET, pair_ready, &net_refs[p], e);
		if (!rc)
			rc = event_add(l, vnet_pair_kickfd(D.net, p), EPOLLIN, pair_ready,
				       &net_refs[p], e);
		if (rc)
			return rc;
	}
	/* the guest's kicks (ioeventfds) land on the first loop; a kick of
	 * another pair only bumps that pair's eventfd (vnet's notify) */
	if (D.dhcp_tap.fd >= 0) {
		rc = event_add(&D.ev[0], D.dhcp_tap.fd, EPOLLIN, dhcp_tap_ready, &D.dhcp_tap, e);
		if (rc)
			return rc;
	}
	rc = vpci_start(&D.net->vpci, &D.ev[0], e);
	if (rc)
		return rc;
	for (unsigned i = 0; i < nloops; i++) {
		rc = event_start(&D.ev[i], e);
		if (rc)
			return rc;
	}
	return 0;
}

static int setup_blk(const struct dev_env *env, const char *path, bool ro, bool direct,
		     int aio, struct err *e)
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
	unsigned fl = (ro ? VBLK_RO : 0) | (direct ? VBLK_DIRECT : 0);
	bool uring = aio == DEV_AIO_URING || (aio == DEV_AIO_AUTO && direct);
	rc = vblk_init(D.blk, D.disk_fd, fl | (uring ? VBLK_URING : 0),
		       (uint64_t)size, "kvmlab-disk", env->gm, &env->irq);
	if (rc && aio == DEV_AIO_URING) {
		free(D.blk);
		D.blk = NULL;
		return errf(e, -rc, "virtio-blk: %s: aio=uring: io_uring unavailable: %s%s", path,
			    strerror(-rc), rc == -EPERM ? " (sysctl kernel.io_uring_disabled?)" : "");
	}
	if (rc && aio == DEV_AIO_AUTO && uring) {
		/* auto: a kernel without io_uring for us still gets a disk */
		fprintf(stderr, "kvmlab-vm: virtio-blk: %s: io_uring unavailable (%s%s), "
			"using the I/O thread\n", path, strerror(-rc),
			rc == -EPERM ? ", sysctl kernel.io_uring_disabled?" : "");
		rc = vblk_init(D.blk, D.disk_fd, fl, (uint64_t)size, "kvmlab-disk", env->gm, &env->irq);
	}
	if (rc) {
		free(D.blk);
		D.blk = NULL;
		return errf(e, -rc, "virtio-blk: %s", strerror(-rc));
	}
	int ssz;
	/* O_DIRECT on a device with 4 KiB sectors: the guest must use them too */
	if (direct && S_ISBLK(st.st_mode) && ioctl(D.disk_fd, BLKSSZGET, &ssz) == 0 &&
	    ssz > 512 && ssz <= 4096)
		D.blk->img.blk = (uint32_t)ssz;
	rc = pci_bus_add(&D.pci, &D.blk->vpci.pci, e);
	if (rc < 0)
		return rc;
	vpci_set_slot(&D.blk->vpci, (unsigned)rc);
	/* the disk's own I/O thread: a slow disk never holds up the network */
	rc = event_init(&D.blk_ev, e);
	if (rc)
		return rc;
	D.blk_ev_ready = true;
	snprintf(D.blk_ev.name, sizeof(D.blk_ev.name), "kl-blk");
	rc = vpci_start(&D.blk->vpci, &D.blk_ev, e);
	if (rc)
		return rc;
	rc = vblk_start(D.blk, &D.blk_ev, e);
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
		rc = setup_blk(env, cfg->disk_path, cfg->disk_readonly, cfg->disk_direct,
			       cfg->disk_aio, e);
		if (rc)
			goto err;
	}
	if (cfg->tap_queues > DEV_NET_QUEUES_MAX) {
		rc = errf(e, EINVAL, "virtio-net: %u queues, at most %u", cfg->tap_queues,
			  DEV_NET_QUEUES_MAX);
		goto err;
	}
	if (cfg->tap_queues) {
		rc = setup_net(env, cfg, e);
		if (rc)
			goto err;
	}
	return 0;
err:
	devices_stop();
	return rc;
}

/* MSI-X counts, taken as devices_stop() tears the devices down (vm_stop
 * does, before --stats prints) */
static struct dev_irq_stats {
	bool set;
	uint64_t masks, held;
} S_net, S_blk;

static void stats_take(struct dev_irq_stats *s, struct vpci *v)
{
	vpci_msix_stats(v, &s->masks, &s->held);
	s->set = true;
}

static void stats_one(FILE *f, const char *name, struct dev_irq_stats *s, struct vpci *v)
{
	if (v)
		stats_take(s, v);
	if (!s->set)
		return;
	fprintf(f, "  %s: MSI-X vector masks %llu, backend interrupts held by a mask %llu\n",
		name, (unsigned long long)s->masks, (unsigned long long)s->held);
}

void devices_stats_print(FILE *f)
{
	fprintf(f, "kvmlab-vm: device interrupts:\n");
	stats_one(f, "virtio-net", &S_net, D.net ? &D.net->vpci : NULL);
	stats_one(f, "virtio-blk", &S_blk, D.blk ? &D.blk->vpci : NULL);
}

void devices_stop(void)
{
	/* the buses still point at the PCI layer: unhook the devices first */
	pthread_mutex_lock(&D.pci.lock);
	for (unsigned i = 1; i < PCI_MAX_SLOTS; i++)
		D.pci.dev[i] = NULL;
	pthread_mutex_unlock(&D.pci.lock);
	/* threads first: nothing may call into a device being torn down */
	for (unsigned i = 0; i < D.nev; i++)
		event_destroy(&D.ev[i]);
	D.nev = 0;
	dhcp_tap_close(&D.dhcp_tap);
	if (D.blk_ev_ready) {
		event_destroy(&D.blk_ev);
		D.blk_ev_ready = false;
	}
	if (D.net) {
		stats_take(&S_net, &D.net->vpci);
		vnet_destroy(D.net);
		free(D.net);
		D.net = NULL;
	}
	if (D.blk) {
		stats_take(&S_blk, &D.blk->vpci);
		vblk_destroy(D.blk);
		free(D.blk);
		D.blk = NULL;
	}
	if (D.disk_fd >= 0) {
		close(D.disk_fd);
		D.disk_fd = -1;
	}
}

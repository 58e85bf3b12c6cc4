#include "devices.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <linux/filter.h>

#include "dhcp_tap.h"
#include "event.h"
#include "layout.h"
#include "pci.h"
#include "pvpanic_pci.h"
#include "virtio_blk.h"
#include "virtio_mmio.h"
#include "virtio_net.h"
#include "virtio_rng.h"
#include "virtio_vsock.h"

/* One virtio-net device: its queue pairs' I/O threads and, with a
 * lease, its DHCP answers. */
struct nic;
struct net_pair_ref { /* one handler per queue pair */
	struct nic *nic;
	unsigned p;
};
struct nic {
	struct vnet *net;
	struct event_loop ev[DEV_NET_QUEUES_MAX]; /* one per queue pair */
	unsigned nev;
	struct net_pair_ref refs[DEV_NET_QUEUES_MAX];
	struct dhcp_lease lease;   /* the tx filter's opaque */
	struct dhcp_tap dhcp_tap;  /* the same lease when vhost-net moves frames */
	struct ra_cfg ra;          /* IPv6: the router advertisements' */
	struct dhcp_tap ra_tap;    /* the guest's router solicitations */
	struct sock_filter ra_prog[RA_BPF_LEN];
	int ra_timer;              /* timerfd: an unsolicited RA each period */
	uint8_t mac[6];            /* the guest's: its own frames carry it */
	uint8_t addr6[DEV_ADDR6_MAX][16]; /* claimed by DAD, newest first (addr6_lock) */
	unsigned naddr6;
};

/* One virtio-blk device and its own I/O thread. */
struct disk {
	struct vblk *blk;
	int fd;
	struct event_loop ev;
	bool ev_ready;
};

/* One VM per process: the devices live here, set up once by main. */
static struct {
	struct pci_bus pci;
	struct nic nic[DEV_NICS_MAX];
	unsigned nnics;
	struct disk disk[DEV_DISKS_MAX];
	unsigned ndisks;
	struct vrng *rng;
	struct event_loop rng_ev;
	bool rng_ev_ready;
	struct vvsock *vsock;
	struct event_loop vsock_ev;
	bool vsock_ev_ready;
	struct pvpanic_pci pvpanic; /* no thread: a register on the vCPUs' exits */
	bool mmio;                  /* virtio on virtio-mmio windows */
	struct vpci *window[LAYOUT_VIRTIO_MMIO_MAX]; /* atomic: NULL once torn down */
	unsigned nwindows;
} D;

/* A virtio-mmio window: the bus keeps its range for good, so a device
 * torn down leaves an empty slot that reads as nothing is there. */
static void window_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vpci *v = __atomic_load_n((struct vpci **)opaque, __ATOMIC_ACQUIRE);
	if (v)
		vmmio_ops.read(v, off, data, len);
	else
		memset(data, 0, len);
}

static void window_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vpci *v = __atomic_load_n((struct vpci **)opaque, __ATOMIC_ACQUIRE);
	if (v)
		vmmio_ops.write(v, off, data, len);
}

static const struct bus_ops window_ops = { .read = window_read, .write = window_write };

unsigned devices_mmio_count(const struct dev_cfg *cfg)
{
	if (!cfg->mmio)
		return 0;
	return cfg->ndisks + cfg->nnics + (cfg->vsock_cid != 0) + (cfg->rng != 0);
}

/* Put a virtio device where the guest finds it: the next PCI slot (and
 * its INTx line), or the next virtio-mmio window and its own line. */
static int attach(const struct dev_env *env, struct vpci *v, const char *what, struct err *e)
{
	if (!D.mmio) {
		int rc = pci_bus_add(&D.pci, &v->pci, e);
		if (rc < 0)
			return rc;
		vpci_set_slot(v, (unsigned)rc);
		return 0;
	}
	unsigned i = D.nwindows;
	if (i >= LAYOUT_VIRTIO_MMIO_MAX)
		return errf(e, ENOSPC, "%s: virtio-mmio: no window left (%u devices at most)",
			    what, LAYOUT_VIRTIO_MMIO_MAX);
	uint64_t base = LAYOUT_VIRTIO_MMIO + i * LAYOUT_VIRTIO_MMIO_SIZE;
	int rc = bus_register(env->mmio, base, LAYOUT_VIRTIO_MMIO_SIZE, &window_ops, &D.window[i]);
	if (rc)
		return errf(e, -rc, "%s: virtio-mmio window at 0x%llx: %s", what,
			    (unsigned long long)base, strerror(-rc));
	vpci_set_mmio(v, base, LAYOUT_VIRTIO_MMIO_GSI(i));
	__atomic_store_n(&D.window[i], v, __ATOMIC_RELEASE);
	D.nwindows++;
	return 0;
}

/* A pair's tap queue became readable or its queues were kicked. */
static void pair_ready(void *opaque, uint32_t events)
{
	struct net_pair_ref *r = opaque;
	(void)events;
	vnet_pair_run(r->nic->net, r->p);
}

/* Net I/O threads: one per queue pair (the default), so pairs run in
 * parallel on the host as they do in the guest; KVMLAB_NET_THREADS=one
 * puts every pair of a NIC on a single epoll thread (for comparison,
 * bench/). */
static bool net_one_thread(void)
{
	const char *v = getenv("KVMLAB_NET_THREADS");
	return v && !strcmp(v, "one");
}

/* vhost-net takes a pair's tap queue: our loop stops reading it. */
static int pause_fd(void *opaque, int fd, bool pause)
{
	struct nic *N = opaque;
	for (unsigned i = 0; i < N->nev; i++) {
		int rc = event_pause(&N->ev[i], fd, pause);
		if (rc != -ENOENT)
			return rc;
	}
	return -ENOENT;
}

/* Thread and --stats names: the first device keeps the plain name. */
static void dev_name(char *buf, size_t len, const char *base, unsigned i)
{
	if (i)
		snprintf(buf, len, "%s%u", base, (uint8_t)i); /* i < DEV_*_MAX */
	else
		snprintf(buf, len, "%s", base);
}

/* A device on the bus, served by an event loop (thread) of its own,
 * named name: a slot or window (and its line), the loop, the fast paths. */
static int plug(const struct dev_env *env, struct vpci *v, struct event_loop *ev,
		bool *ev_ready, const char *name, struct err *e)
{
	int rc = attach(env, v, name, e);
	if (rc)
		return rc;
	rc = event_init(ev, e);
	if (rc)
		return rc;
	*ev_ready = true;
	snprintf(ev->name, sizeof(ev->name), "%s", name);
	rc = vpci_start(v, ev, e);
	if (rc)
		return rc;
	return event_start(ev, e);
}

/* plug()'s undo for the loop: stop its thread (idempotent) */
static void unplug_loop(struct event_loop *ev, bool *ev_ready)
{
	if (*ev_ready) {
		event_destroy(ev);
		*ev_ready = false;
	}
}

/* the NICs' addr6: written by their I/O threads, read by the control
 * socket's */
static pthread_mutex_t addr6_lock = PTHREAD_MUTEX_INITIALIZER;

/* a at the front of N's addresses: moved there if known, else added,
 * the oldest dropped when full */
static void addr6_note(struct nic *N, const uint8_t a[16])
{
	pthread_mutex_lock(&addr6_lock);
	unsigned i = 0, n = N->naddr6;
	while (i < n && memcmp(N->addr6[i], a, 16))
		i++;
	if (i == n) {
		if (n < DEV_ADDR6_MAX)
			N->naddr6++;
		else
			i = DEV_ADDR6_MAX - 1;
	}
	memmove(N->addr6[1], N->addr6[0], (size_t)i * 16);
	memcpy(N->addr6[0], a, 16);
	pthread_mutex_unlock(&addr6_lock);
}

unsigned devices_nic_addr6(unsigned nic, uint8_t (*out)[16], unsigned max)
{
	if (nic >= DEV_NICS_MAX)
		return 0;
	struct nic *N = &D.nic[nic];
	pthread_mutex_lock(&addr6_lock);
	unsigned n = N->naddr6 < max ? N->naddr6 : max;
	memcpy(out, N->addr6, (size_t)n * 16);
	pthread_mutex_unlock(&addr6_lock);
	return n;
}

/* The tap's IPv6 socket: the guest's router solicitations get an RA, and
 * its duplicate address detection says which address it took. */
static int ra_frame(void *opaque, const uint8_t *f, size_t len, uint8_t *reply,
		    size_t *reply_len)
{
	struct nic *N = opaque;
	uint8_t a[16];
	if (ra_dad_target(f, len, N->mac, a)) {
		/* trust decision: a guest may claim any address; only those
		 * inside the network's prefix are shown, and a few at most */
		if (ra_prefix_has(&N->ra, a))
			addr6_note(N, a);
		*reply_len = 0;
		return 0;
	}
	return ra_handle(&N->ra, f, len, reply, reply_len);
}

/* The timer: one unsolicited RA per period, so that the guest's default
 * route (RA_ROUTER_LIFETIME) and prefix never run out. */
static void ra_tick(void *opaque, uint32_t events)
{
	struct nic *N = opaque;
	uint64_t n;
	uint8_t frame[RA_FRAME_MAX];
	size_t len;

	(void)events;
	if (read(N->ra_timer, &n, sizeof(n)) != sizeof(n))
		return;
	len = ra_build_unsolicited(&N->ra, frame, sizeof(frame));
	if (len)
		dhcp_tap_send(&N->ra_tap, frame, len);
}

/* The packet socket that hears the guest's router solicitations and its
 * duplicate address detection (with vhost or without: they are not
 * consumed on the way to the tap, so the tap's socket sees them either
 * way), and the period's timer. */
static int ra_open(struct nic *N, const struct ra_cfg *ra, int tap_fd, const char *what,
		   struct err *e)
{
	struct sock_fprog prog = { .len = RA_BPF_LEN, .filter = N->ra_prog };
	const struct itimerspec its = {
		.it_value = { .tv_sec = RA_INTERVAL_S },
		.it_interval = { .tv_sec = RA_INTERVAL_S },
	};

	N->ra = *ra;
	ra_bpf(N->ra_prog, DHCP_TAP_FRAME_MAX, 0);
	int rc = dhcp_tap_open(&N->ra_tap, tap_fd, &prog, ra_frame, N, e);
	if (rc)
		return rc;
	N->ra_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (N->ra_timer < 0 || timerfd_settime(N->ra_timer, 0, &its, NULL))
		return errf(e, errno, "%s: router advertisement timer: %s", what,
			    strerror(errno));
	return 0;
}

static int setup_net(const struct dev_env *env, const struct dev_nic *c, int vhost,
		     const struct sock_fprog *dhcp_bpf, unsigned idx, struct err *e)
{
	struct nic *N = &D.nic[idx];
	const int *fds = c->tap_fds;
	unsigned queues = c->queues;
	const struct dhcp_lease *dhcp = c->dhcp;
	char what[16];
	int rc;

	dev_name(what, sizeof(what), "virtio-net", idx);
	N->dhcp_tap.fd = -1;
	N->ra_tap.fd = -1;
	N->ra_timer = -1;
	memcpy(N->mac, c->mac, 6);
	if (queues < 1 || queues > DEV_NET_QUEUES_MAX)
		return errf(e, EINVAL, "%s: %u queues, want 1..%u", what, queues,
			    DEV_NET_QUEUES_MAX);
	if (dhcp && dhcp_lease_check(dhcp))
		return errf(e, EINVAL, "%s: DHCP lease unusable (address, router, prefix or MAC)",
			    what);
	if (c->ra && ra_cfg_check(c->ra))
		return errf(e, EINVAL, "%s: IPv6 prefix or router MAC unusable", what);
	N->net = calloc(1, sizeof(*N->net));
	if (!N->net)
		return errf(e, ENOMEM, "%s: out of memory", what);
	rc = vnet_init(N->net, fds, queues, true, c->mac, env->gm, &env->irq);
	if (rc) {
		free(N->net);
		N->net = NULL;
		return errf(e, -rc, "%s: tap fd %d (%u queues): %s", what, fds[0], queues,
			    strerror(-rc));
	}
	if (vhost != DEV_VHOST_OFF) {
		const struct vnet_io io = { .pause = pause_fd, .opaque = N };
		rc = vnet_vhost_enable(N->net, vhost == DEV_VHOST_ON, &io, e);
		if (rc) {
			vnet_destroy(N->net);
			free(N->net);
			N->net = NULL;
			return rc;
		}
	}
	if (dhcp) {
		/* the guest's DHCP is answered here and never reaches the tap */
		N->lease = *dhcp;
		N->net->tx_filter = dhcp_tx_filter;
		N->net->tx_filter_opaque = &N->lease;
	}
	if (dhcp && N->net->vhost_open) {
		/* vhost sends past the tx filter: answer from the tap's side */
		rc = dhcp_tap_open(&N->dhcp_tap, fds[0], dhcp_bpf, dhcp_tx_filter, &N->lease, e);
		if (rc && vhost == DEV_VHOST_ON)
			return rc;
		if (rc)
			vnet_vhost_close(N->net); /* auto: DHCP matters more */
	}
	if (c->ra && (rc = ra_open(N, c->ra, fds[0], what, e)))
		return rc;
	rc = attach(env, &N->net->vpci, what, e);
	if (rc)
		return rc;
	unsigned nloops = net_one_thread() ? 1 : queues;
	for (; N->nev < nloops; N->nev++) {
		rc = event_init(&N->ev[N->nev], e);
		if (rc)
			return rc;
		/* kl-net<pair> for the first NIC (bench/ reads it), kl-net<nic>.<pair> after */
		if (idx)
			snprintf(N->ev[N->nev].name, sizeof(N->ev[N->nev].name), "kl-net%u.%u",
				 (uint8_t)idx, (uint8_t)N->nev);
		else
			snprintf(N->ev[N->nev].name, sizeof(N->ev[N->nev].name), "kl-net%u",
				 N->nev);
	}
	for (unsigned p = 0; p < queues; p++) {
		struct event_loop *l = &N->ev[p % nloops];
		N->refs[p] = (struct net_pair_ref){ N, p };
		/* edge-triggered: vnet_rx drains until EAGAIN or the guest is
		 * out of buffers; in the latter case the guest's rx kick
		 * (the pair's kick eventfd) resumes it */
		rc = event_add(l, fds[p], EPOLLIN | EPOLLET, pair_ready, &N->refs[p], e);
		if (!rc)
			rc = event_add(l, vnet_pair_kickfd(N->net, p), EPOLLIN, pair_ready,
				       &N->refs[p], e);
		if (rc)
			return rc;
	}
	/* the guest's kicks (ioeventfds) land on the first loop; a kick of
	 * another pair only bumps that pair's eventfd (vnet's notify) */
	if (N->dhcp_tap.fd >= 0) {
		rc = event_add(&N->ev[0], N->dhcp_tap.fd, EPOLLIN, dhcp_tap_ready, &N->dhcp_tap, e);
		if (rc)
			return rc;
	}
	if (N->ra_tap.fd >= 0) {
		rc = event_add(&N->ev[0], N->ra_tap.fd, EPOLLIN, dhcp_tap_ready, &N->ra_tap, e);
		if (!rc)
			rc = event_add(&N->ev[0], N->ra_timer, EPOLLIN, ra_tick, N, e);
		if (rc)
			return rc;
	}
	rc = vpci_start(&N->net->vpci, &N->ev[0], e);
	if (rc)
		return rc;
	for (unsigned i = 0; i < nloops; i++) {
		rc = event_start(&N->ev[i], e);
		if (rc)
			return rc;
	}
	return 0;
}

static int setup_blk(const struct dev_env *env, const struct dev_disk *c, unsigned idx,
		     struct err *e)
{
	struct disk *K = &D.disk[idx];
	const char *path = c->path;
	bool ro = c->readonly, direct = c->direct;
	int aio = c->aio;
	char id[20];
	struct stat st;
	int rc;

	/* the guest's /sys/block/vdX/serial: kvmlab-disk, kvmlab-disk1, ... */
	dev_name(id, sizeof(id), "kvmlab-disk", idx);
	K->fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (K->fd < 0 && direct && errno == EINVAL)
		return errf(e, EINVAL, "virtio-blk: %s: cache=none: the filesystem does not "
			    "support O_DIRECT", path);
	if (K->fd < 0)
		return errf(e, errno, "virtio-blk: %s: %s", path, strerror(errno));
	if (fstat(K->fd, &st))
		return errf(e, errno, "virtio-blk: %s: %s", path, strerror(errno));
	/* the same image twice in this VM (under any name): say so plainly,
	 * before the lock below refuses it as "in use" */
	for (unsigned i = 0; i < idx; i++) {
		struct stat o;
		if (D.disk[i].fd >= 0 && !fstat(D.disk[i].fd, &o) && o.st_dev == st.st_dev &&
		    o.st_ino == st.st_ino && S_ISREG(st.st_mode) && !(ro && D.disk[i].blk->img.ro))
			return errf(e, EBUSY, "virtio-blk: %s: the same image as disk %u (given "
				    "twice; only read-only twice is allowed)", path, i + 1);
	}
	/* two VMs writing one image corrupt it: refuse instead */
	if (flock(K->fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB))
		return errf(e, errno, "virtio-blk: %s: image is in use (%s)", path, strerror(errno));
	off_t size = lseek(K->fd, 0, SEEK_END); /* works for block devices too */
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return errf(e, EINVAL, "virtio-blk: %s: not a file or block device", path);
	if (size < 512)
		return errf(e, EINVAL, "virtio-blk: %s: smaller than one sector", path);
	K->blk = calloc(1, sizeof(*K->blk));
	if (!K->blk)
		return errf(e, ENOMEM, "virtio-blk: out of memory");
	unsigned fl = (ro ? VBLK_RO : 0) | (direct ? VBLK_DIRECT : 0);
	bool uring = aio == DEV_AIO_URING || (aio == DEV_AIO_AUTO && direct);
	rc = vblk_init(K->blk, K->fd, fl | (uring ? VBLK_URING : 0), (uint64_t)size, id,
		       env->gm, &env->irq);
	if (rc && aio == DEV_AIO_URING) {
		free(K->blk);
		K->blk = NULL;
		return errf(e, -rc, "virtio-blk: %s: aio=uring: io_uring unavailable: %s%s", path,
			    strerror(-rc), rc == -EPERM ? " (sysctl kernel.io_uring_disabled?)" : "");
	}
	if (rc && aio == DEV_AIO_AUTO && uring) {
		/* auto: a kernel without io_uring for us still gets a disk */
		fprintf(stderr, "kvmlab-vm: virtio-blk: %s: io_uring unavailable (%s%s), "
			"using the I/O thread\n", path, strerror(-rc),
			rc == -EPERM ? ", sysctl kernel.io_uring_disabled?" : "");
		rc = vblk_init(K->blk, K->fd, fl, (uint64_t)size, id, env->gm, &env->irq);
	}
	if (rc) {
		free(K->blk);
		K->blk = NULL;
		return errf(e, -rc, "virtio-blk: %s", strerror(-rc));
	}
	int ssz;
	/* O_DIRECT on a device with 4 KiB sectors: the guest must use them too */
	if (direct && S_ISBLK(st.st_mode) && ioctl(K->fd, BLKSSZGET, &ssz) == 0 &&
	    ssz > 512 && ssz <= 4096)
		K->blk->img.blk = (uint32_t)ssz;
	rc = attach(env, &K->blk->vpci, "virtio-blk", e);
	if (rc)
		return rc;
	/* each disk's own I/O thread: a slow disk never holds up the
	 * network or another disk */
	rc = event_init(&K->ev, e);
	if (rc)
		return rc;
	K->ev_ready = true;
	dev_name(K->ev.name, sizeof(K->ev.name), "kl-blk", idx);
	rc = vpci_start(&K->blk->vpci, &K->ev, e);
	if (rc)
		return rc;
	rc = vblk_start(K->blk, &K->ev, e);
	if (rc)
		return rc;
	return event_start(&K->ev, e);
}

_Static_assert(DEV_VSOCK_CID_MIN == VVSOCK_CID_MIN && DEV_VSOCK_CID_MAX == VVSOCK_CID_MAX,
	       "one CID range");

/* virtio-vsock: the kernel moves its packets; its loop only holds the
 * kick eventfds until the driver runs (and the event queue's) */
static int setup_vsock(const struct dev_env *env, uint64_t cid, struct err *e)
{
	D.vsock = calloc(1, sizeof(*D.vsock));
	if (!D.vsock)
		return errf(e, ENOMEM, "virtio-vsock: out of memory");
	int rc = vvsock_init(D.vsock, cid, env->gm, &env->irq, e);
	if (rc) {
		free(D.vsock);
		D.vsock = NULL;
		return rc;
	}
	return plug(env, &D.vsock->vpci, &D.vsock_ev, &D.vsock_ev_ready, "kl-vsock", e);
}

/* virtio-rng on a thread of its own: getrandom never waits on a disk
 * or a tap, and a guest draining entropy never holds up either */
static int setup_rng(const struct dev_env *env, struct err *e)
{
	D.rng = calloc(1, sizeof(*D.rng));
	if (!D.rng)
		return errf(e, ENOMEM, "virtio-rng: out of memory");
	int rc = vrng_init(D.rng, env->gm, &env->irq);
	if (rc) {
		free(D.rng);
		D.rng = NULL;
		return errf(e, -rc, "virtio-rng: %s", strerror(-rc));
	}
	return plug(env, &D.rng->vpci, &D.rng_ev, &D.rng_ev_ready, "kl-rng", e);
}

int devices_setup(const struct dev_env *env, const struct dev_cfg *cfg, struct err *e)
{
	int rc;

	if (cfg->ndisks > DEV_DISKS_MAX)
		return errf(e, EINVAL, "virtio-blk: %u disks, at most %u", cfg->ndisks,
			    DEV_DISKS_MAX);
	if (cfg->nnics > DEV_NICS_MAX)
		return errf(e, EINVAL, "virtio-net: %u NICs, at most %u", cfg->nnics, DEV_NICS_MAX);
	rc = pci_bus_init(&D.pci, env->pio, env->mmio, e);
	if (rc)
		return rc;
	D.mmio = cfg->mmio;
	D.nwindows = 0; /* a new VM: its buses are new */
	/* disks first: their slots (and GSIs) then do not depend on the NICs */
	for (; D.ndisks < cfg->ndisks; D.ndisks++) {
		D.disk[D.ndisks].fd = -1;
		rc = setup_blk(env, &cfg->disks[D.ndisks], D.ndisks, e);
		if (rc) {
			D.ndisks++; /* devices_stop takes back what it made */
			goto err;
		}
	}
	for (; D.nnics < cfg->nnics; D.nnics++) {
		rc = setup_net(env, &cfg->nics[D.nnics], cfg->vhost, cfg->dhcp_bpf, D.nnics, e);
		if (rc) {
			D.nnics++;
			goto err;
		}
	}
	if (cfg->vsock_cid) {
		rc = setup_vsock(env, cfg->vsock_cid, e);
		if (rc)
			goto err;
	}
	if (cfg->rng) {
		rc = setup_rng(env, e);
		if (rc)
			goto err;
	}
	if (cfg->pvpanic) {
		rc = pvpanic_pci_init(&D.pvpanic, env->exit);
		if (rc) {
			rc = errf(e, -rc, "pvpanic-pci: %s", strerror(-rc));
			goto err;
		}
		rc = pci_bus_add(&D.pci, &D.pvpanic.pci, e);
		if (rc < 0)
			goto err;
	}
	return 0;
err:
	devices_stop();
	return rc;
}

/* MSI-X counts, taken as devices_stop() tears the devices down (vm_stop
 * does, before --stats prints) */
struct dev_irq_stats {
	bool set;
	uint64_t masks, held;
};
static struct dev_irq_stats S_net[DEV_NICS_MAX], S_blk[DEV_DISKS_MAX];

static void stats_take(struct dev_irq_stats *s, struct vpci *v)
{
	vpci_msix_stats(v, &s->masks, &s->held);
	s->set = true;
}

static void stats_one(FILE *f, const char *base, unsigned i, struct dev_irq_stats *s,
		      struct vpci *v)
{
	char name[24];
	if (v)
		stats_take(s, v);
	if (!s->set)
		return;
	dev_name(name, sizeof(name), base, i);
	fprintf(f, "  %s: MSI-X vector masks %llu, backend interrupts held by a mask %llu\n",
		name, (unsigned long long)s->masks, (unsigned long long)s->held);
}

void devices_stats_print(FILE *f)
{
	fprintf(f, "kvmlab-vm: device interrupts:\n");
	for (unsigned i = 0; i < DEV_NICS_MAX; i++)
		stats_one(f, "virtio-net", i, &S_net[i],
			  i < D.nnics && D.nic[i].net ? &D.nic[i].net->vpci : NULL);
	for (unsigned i = 0; i < DEV_DISKS_MAX; i++)
		stats_one(f, "virtio-blk", i, &S_blk[i],
			  i < D.ndisks && D.disk[i].blk ? &D.disk[i].blk->vpci : NULL);
}

void devices_dump(FILE *f, unsigned wait_ms)
{
	char name[24];
	fprintf(f, "kvmlab-vm: devices (virtqueues: the driver's avail index, what we took, used):\n");
	for (unsigned i = 0; i < D.nnics; i++)
		if (D.nic[i].net) {
			dev_name(name, sizeof(name), "virtio-net", i);
			vpci_dump(&D.nic[i].net->vpci, f, name, wait_ms);
		}
	for (unsigned i = 0; i < D.ndisks; i++)
		if (D.disk[i].blk) {
			dev_name(name, sizeof(name), "virtio-blk", i);
			vpci_dump(&D.disk[i].blk->vpci, f, name, wait_ms);
		}
	if (D.rng)
		vpci_dump(&D.rng->vpci, f, "virtio-rng", wait_ms);
	if (D.vsock)
		vpci_dump(&D.vsock->vpci, f, "virtio-vsock", wait_ms);
}

void devices_stop(void)
{
	/* the buses still point at the PCI layer: unhook the devices first */
	pthread_mutex_lock(&D.pci.lock);
	for (unsigned i = 1; i < PCI_MAX_SLOTS; i++)
		D.pci.dev[i] = NULL;
	pthread_mutex_unlock(&D.pci.lock);
	for (unsigned i = 0; i < D.nwindows; i++)
		__atomic_store_n(&D.window[i], NULL, __ATOMIC_RELEASE);
	/* threads first: nothing may call into a device being torn down */
	for (unsigned n = 0; n < D.nnics; n++) {
		struct nic *N = &D.nic[n];
		for (unsigned i = 0; i < N->nev; i++)
			event_destroy(&N->ev[i]);
		N->nev = 0;
		dhcp_tap_close(&N->dhcp_tap);
		dhcp_tap_close(&N->ra_tap);
		if (N->ra_timer >= 0)
			close(N->ra_timer);
		N->ra_timer = -1;
	}
	unplug_loop(&D.vsock_ev, &D.vsock_ev_ready);
	if (D.vsock) {
		vvsock_destroy(D.vsock);
		free(D.vsock);
		D.vsock = NULL;
	}
	unplug_loop(&D.rng_ev, &D.rng_ev_ready);
	if (D.rng) {
		vrng_destroy(D.rng);
		free(D.rng);
		D.rng = NULL;
	}
	for (unsigned d = 0; d < D.ndisks; d++) {
		unplug_loop(&D.disk[d].ev, &D.disk[d].ev_ready);
	}
	for (unsigned n = 0; n < D.nnics; n++) {
		struct nic *N = &D.nic[n];
		if (N->net) {
			stats_take(&S_net[n], &N->net->vpci);
			vnet_destroy(N->net);
			free(N->net);
			N->net = NULL;
		}
	}
	D.nnics = 0;
	for (unsigned d = 0; d < D.ndisks; d++) {
		struct disk *K = &D.disk[d];
		if (K->blk) {
			stats_take(&S_blk[d], &K->blk->vpci);
			vblk_destroy(K->blk);
			free(K->blk);
			K->blk = NULL;
		}
		if (K->fd >= 0) {
			close(K->fd);
			K->fd = -1;
		}
	}
	D.ndisks = 0;
}

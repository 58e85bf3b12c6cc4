#include "virtio_vsock.h"
#include "vhost.h"

#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#define BIT(n) (1ull << (n))
#define RING_FEATURES (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) | \
		       BIT(VIRTIO_RING_F_INDIRECT_DESC))
#define NQ 3 /* rx, tx, event; vhost has the first two */

static void log_once(struct vvsock *s, const char *what, int err)
{
	if (s->logged)
		return;
	s->logged = true;
	fprintf(stderr, "kvmlab-vm: virtio-vsock: %s: %s (the device stays silent "
		"until the driver resets it; logged once)\n", what, strerror(err));
}

static void cfg_read(void *dev, unsigned off, void *data, unsigned len)
{
	struct vvsock *s = dev;
	uint64_t cid = htole64(s->cid);
	/* off + len <= 8, checked by the transport */
	memcpy(data, (uint8_t *)&cid + off, len);
}

static void cfg_write(void *dev, unsigned off, const void *data, unsigned len)
{
	(void)dev, (void)off, (void)data, (void)len; /* guest_cid is read-only */
}

static int set_features(void *dev, uint64_t f)
{
	struct vvsock *s = dev;
	uint64_t ring = f & RING_FEATURES;
	return ioctl(s->fd, VHOST_SET_FEATURES, &ring) < 0 ? -errno : 0;
}

static void notify(void *dev, unsigned q)
{
	/* rx and tx kicks before DRIVER_OK wait in their rings for the
	 * kernel; the event queue's buffers are only ever kept */
	(void)dev, (void)q;
}

static void set_call(void *dev, unsigned q, int fd)
{
	struct vvsock *s = dev;
	int rc = q < 2 ? vhost_ring_call(s->fd, q, fd) : 0;
	if (rc)
		log_once(s, "VHOST_SET_VRING_CALL", -rc);
}

/* The rings back from the kernel (and our position in them). */
static void stop(struct vvsock *s)
{
	int off = 0;
	if (!s->running)
		return;
	if (ioctl(s->fd, VHOST_VSOCK_SET_RUNNING, &off) < 0)
		log_once(s, "VHOST_VSOCK_SET_RUNNING 0", errno);
	for (unsigned q = 0; q < 2; q++) {
		uint16_t base;
		/* only a ring the kernel had has a position to take back */
		if (s->ring_set[q] && vhost_ring_base(s->fd, q, &base) == 0)
			vq_resync(&s->vpci.q[q].vq, base);
		s->ring_set[q] = false;
		if (vpci_queue_backend(&s->vpci, q, false)) {} /* off cannot fail */
		if (vpci_queue_pause_kick(&s->vpci, q, false))
			log_once(s, "resuming our kick reader", EIO);
	}
	s->running = false;
}

/* DRIVER_OK (v->lock held): hand rx and tx to the kernel. Needs each
 * ring set up, its kick eventfd (ioeventfd) and a way to interrupt (an
 * MSI-X vector's irqfd, or with INTx and virtio-mmio the transport's
 * relay): there is no userspace data path to fall back to. */
static void driver_ok(void *dev)
{
	struct vvsock *s = dev;
	struct vhost_ring r[2];
	int on = 1, rc;

	for (unsigned q = 0; q < 2; q++) {
		struct vq *vq = &s->vpci.q[q].vq;
		int kick = vpci_queue_kick_fd(&s->vpci, q);
		if (!vq->ready || vq->broken || kick < 0) {
			log_once(s, vq->ready ? "no kick eventfd" : "the driver left a ring unset",
				 EINVAL);
			return;
		}
		r[q] = (struct vhost_ring){ .size = vq->size, .base = vq->last_avail,
					    .desc = vq->desc, .avail = vq->avail,
					    .used = vq->used, .kick_fd = kick };
	}
	for (unsigned q = 0; q < 2; q++) {
		rc = vpci_queue_backend(&s->vpci, q, true);
		if (rc) {
			if (q && vpci_queue_backend(&s->vpci, 0, false)) {}
			log_once(s, "interrupts for the kernel (a queue without a vector or irqfd)", -rc);
			return;
		}
	}
	for (unsigned q = 0; q < 2; q++) {
		/* from now on the kernel is the only reader of the kick fds */
		rc = 0;
		if (vpci_queue_pause_kick(&s->vpci, q, true) ||
		    (rc = vhost_ring_set(s->fd, q, &r[q])) != 0) {
			log_once(s, "handing the rings over", rc ? -rc : EIO);
			s->running = true; /* stop() undoes what was done */
			stop(s);
			return;
		}
		s->ring_set[q] = true;
	}
	if (ioctl(s->fd, VHOST_VSOCK_SET_RUNNING, &on) < 0) {
		log_once(s, "VHOST_VSOCK_SET_RUNNING", errno);
		s->running = true;
		stop(s);
		return;
	}
	s->running = true;
	/* a kick taken before the hand-over: have the kernel look once */
	for (unsigned q = 0; q < 2; q++) {
		uint64_t one = 1;
		(void)!write(r[q].kick_fd, &one, sizeof(one));
	}
}

/* every queue lock held, and v->lock */
static void reset(void *dev)
{
	struct vvsock *s = dev;
	stop(s);
	s->logged = false;
}

static const struct vpci_ops vvsock_ops = {
	.cfg_read = cfg_read, .cfg_write = cfg_write, .notify = notify,
	.set_features = set_features, .reset = reset, .driver_ok = driver_ok,
	.set_call = set_call,
};

int vvsock_init(struct vvsock *s, uint64_t cid, const struct gmem *gm,
		const struct dev_irq_ops *irq, struct err *e)
{
	int rc;

	s->running = s->logged = false;
	s->ring_set[0] = s->ring_set[1] = false;
	s->cid = cid;
	if (cid < VVSOCK_CID_MIN || cid > VVSOCK_CID_MAX)
		return errf(e, EINVAL, "virtio-vsock: CID %llu: want %u..%u",
			    (unsigned long long)cid, VVSOCK_CID_MIN, VVSOCK_CID_MAX);
	s->fd = vhost_open("/dev/vhost-vsock", "virtio-vsock", gm, &s->backend_features, e);
	if (s->fd < 0) {
		rc = s->fd;
		if (rc == -ENOENT)
			snprintf(e->msg + strlen(e->msg), sizeof(e->msg) - strlen(e->msg),
				 " (modprobe vhost_vsock)");
		return rc;
	}
	if (ioctl(s->fd, VHOST_VSOCK_SET_GUEST_CID, &s->cid) < 0) {
		rc = errf(e, errno, "virtio-vsock: CID %llu: %s%s", (unsigned long long)cid,
			  strerror(errno), errno == EADDRINUSE ? " (another VM has it)" : "");
		goto err_fd;
	}
	/* only what the kernel's rings do: the device has no features of
	 * its own that we offer */
	uint64_t f = RING_FEATURES & s->backend_features;
	if (!(f & BIT(VIRTIO_F_VERSION_1))) {
		rc = errf(e, EOPNOTSUPP, "virtio-vsock: vhost-vsock lacks VIRTIO_F_VERSION_1");
		goto err_fd;
	}
	/* class 08.80: other system peripheral, as QEMU's vhost-vsock-pci */
	rc = vpci_init(&s->vpci, VIRTIO_ID_VSOCK, 0x088000, f, NQ, VVSOCK_QUEUE_SIZE, 8,
		       &vvsock_ops, s, gm, irq);
	if (rc) {
		rc = errf(e, -rc, "virtio-vsock: %s", strerror(-rc));
		goto err_fd;
	}
	s->vpci.q[0].vq.name = "vsock-rx";
	s->vpci.q[1].vq.name = "vsock-tx";
	s->vpci.q[2].vq.name = "vsock-event";
	return 0;
err_fd:
	close(s->fd);
	s->fd = -1;
	return rc;
}

void vvsock_destroy(struct vvsock *s)
{
	if (s->running) {
		int off = 0;
		if (ioctl(s->fd, VHOST_VSOCK_SET_RUNNING, &off)) {} /* closing stops it too */
		s->running = false;
	}
	vpci_destroy(&s->vpci);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

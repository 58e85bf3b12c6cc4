/* virtio-net's hand-over of its queue pairs to vhost-net.
 *
 * Everything up to DRIVER_OK runs on our own virtqueue code: feature
 * negotiation, ring validation (vq_enable), the control queue always.
 * Then each active pair's rx/tx rings go to that pair's vhost backend
 * with the kick eventfds KVM writes (ioeventfd) and, for interrupts,
 * whatever fd the transport gives (vpci_queue_backend: the vector's
 * irqfd, or its hold fd while the driver masks it), so the data path
 * never leaves the kernel. A reset, or
 * the driver dropping the pair (VQ_PAIRS_SET), takes the rings back.
 *
 * Hand-overs run on the pair's own I/O thread (vnet_vhost_pair_poll),
 * never on a vCPU or with the control queue's lock held, holding the
 * pair's two queue locks in index order, as vpci's reset does. */
#include "virtio_net.h"

#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RXQ(p) (2u * (p))
#define TXQ(p) (2u * (p) + 1)

static void efd_post(int fd)
{
	uint64_t one = 1;
	/* only a counter at its maximum fails, and that one is pending anyway */
	(void)!write(fd, &one, sizeof(one));
}

static void log_once(struct vnet *n, unsigned p, const char *what, int err)
{
	if (n->vhost_logged)
		return;
	n->vhost_logged = true;
	fprintf(stderr, "kvmlab-vm: virtio-net: vhost-net: pair %u: %s: %s "
		"(the VMM serves it; logged once)\n", p, what, strerror(err));
}

int vnet_vhost_enable(struct vnet *n, bool required, const struct vnet_io *io,
		      struct err *e)
{
	unsigned p;
	int rc = 0;

	for (p = 0; p < n->max_pairs; p++)
		n->pair[p]->vh.fd = -1;
	if (!n->tap)
		return required ? errf(e, EINVAL, "vhost-net: needs a tap") : 0;
	for (p = 0; p < n->max_pairs; p++) {
		rc = vhost_net_open(&n->pair[p]->vh, n->vpci.gm, e);
		if (rc)
			break;
	}
	if (rc) {
		while (p-- > 0)
			vhost_net_close(&n->pair[p]->vh);
		return required ? rc : 0;
	}
	n->io = *io;
	n->vhost_open = true;
	return 0;
}

void vnet_vhost_close(struct vnet *n)
{
	if (!n->vhost_open)
		return;
	for (unsigned p = 0; p < n->max_pairs; p++)
		vhost_net_close(&n->pair[p]->vh);
	n->vhost_open = false;
}

bool vnet_vhost_active(const struct vnet *n, unsigned p)
{
	return p < n->max_pairs && __atomic_load_n(&n->pair[p]->vhost, __ATOMIC_ACQUIRE);
}

void vnet_vhost_features(struct vnet *n, uint64_t acked)
{
	n->vhost_ok = false;
	if (!n->vhost_open)
		return;
	for (unsigned p = 0; p < n->max_pairs; p++) {
		int rc = vhost_net_set_features(&n->pair[p]->vh, acked);
		if (rc) {
			log_once(n, p, "VHOST_SET_FEATURES", -rc);
			return;
		}
	}
	n->vhost_ok = true;
}

void vnet_vhost_driver_ok(struct vnet *n)
{
	if (!n->vhost_ok)
		return;
	__atomic_store_n(&n->vhost_live, true, __ATOMIC_RELEASE);
	/* each pair's thread makes the move itself */
	for (unsigned p = 0; p < n->max_pairs; p++)
		efd_post(n->pair[p]->kickfd);
}

static void pause_ours(struct vnet *n, unsigned p, bool pause)
{
	struct vnet_pair *pr = n->pair[p];
	/* while paused, a kick or frame is the backend's alone */
	if (vpci_queue_pause_kick(&n->vpci, RXQ(p), pause) ||
	    vpci_queue_pause_kick(&n->vpci, TXQ(p), pause) ||
	    (n->io.pause && n->io.pause(n->io.opaque, pr->fd, pause)))
		log_once(n, p, pause ? "pausing our readers" : "resuming our readers", EIO);
}

/* The transport's interrupts for both rings back to us; only after the
 * rings stopped (what the backend held back then shows in the PBA). */
static void backend_off(struct vnet *n, unsigned p)
{
	for (unsigned i = 0; i < 2; i++)
		if (vpci_queue_backend(&n->vpci, 2 * p + i, false)) {} /* off cannot fail */
}

void vnet_vhost_set_call(struct vnet *n, unsigned q, int fd)
{
	unsigned p = q / 2;
	if (p >= n->max_pairs || n->pair[p]->vh.fd < 0)
		return;
	int rc = vhost_net_set_call(&n->pair[p]->vh, q % 2, fd);
	if (rc)
		log_once(n, p, "VHOST_SET_VRING_CALL", -rc);
}

/* Caller holds both of the pair's queue locks. */
static void stop_locked(struct vnet *n, unsigned p)
{
	struct vnet_pair *pr = n->pair[p];
	if (!pr->vhost)
		return;
	for (unsigned i = 0; i < 2; i++) {
		uint16_t base;
		if (vhost_net_stop(&pr->vh, i, &base) == 0)
			vq_resync(&n->vpci.q[2 * p + i].vq, base);
	}
	backend_off(n, p);
	__atomic_store_n(&pr->vhost, false, __ATOMIC_RELEASE);
	pause_ours(n, p, false);
}

/* Caller holds both of the pair's queue locks. */
static int start_locked(struct vnet *n, unsigned p)
{
	struct vnet_pair *pr = n->pair[p];
	struct vhost_ring r[2];
	int rc;

	for (unsigned i = 0; i < 2; i++) {
		unsigned qi = 2 * p + i;
		struct vq *q = &n->vpci.q[qi].vq;
		if (!q->ready || q->broken)
			return -EINVAL; /* the driver left it unset: nothing to move */
		int kick = vpci_queue_kick_fd(&n->vpci, qi);
		if (kick < 0)
			return -EOPNOTSUPP;
		r[i] = (struct vhost_ring){
			.size = q->size, .base = q->last_avail,
			.desc = q->desc, .avail = q->avail, .used = q->used,
			.kick_fd = kick,
		};
	}
	/* the call fds first: a ring the backend serves must signal someone.
	 * INTx, no vector or no irqfd: the ISR needs us in the loop */
	for (unsigned i = 0; i < 2; i++) {
		rc = vpci_queue_backend(&n->vpci, 2 * p + i, true);
		if (rc) {
			backend_off(n, p);
			return rc;
		}
	}
	pause_ours(n, p, true);
	/* vhost index 0 is the pair's rx queue, 1 its tx queue */
	for (unsigned i = 0; i < 2; i++) {
		rc = vhost_net_start(&pr->vh, i, &r[i], pr->fd);
		if (rc) {
			if (i && vhost_net_stop(&pr->vh, 0, &r[0].base) == 0)
				vq_resync(&n->vpci.q[RXQ(p)].vq, r[0].base);
			backend_off(n, p);
			pause_ours(n, p, false);
			return rc;
		}
	}
	__atomic_store_n(&pr->vhost, true, __ATOMIC_RELEASE);
	/* a kick our loop took before the pause would be lost: make the
	 * backend look at both rings once */
	efd_post(r[0].kick_fd);
	efd_post(r[1].kick_fd);
	return 0;
}

void vnet_vhost_reset_locked(struct vnet *n)
{
	__atomic_store_n(&n->vhost_live, false, __ATOMIC_RELEASE);
	n->vhost_ok = false;
	for (unsigned p = 0; p < n->max_pairs; p++) {
		stop_locked(n, p);
		n->pair[p]->vhost_refused = false;
	}
}

bool vnet_vhost_pair_poll(struct vnet *n, unsigned p)
{
	struct vnet_pair *pr = n->pair[p];
	if (!n->vhost_open)
		return false;
	bool want = __atomic_load_n(&n->vhost_live, __ATOMIC_ACQUIRE) &&
		    p < vnet_cur_pairs(n);
	bool have = __atomic_load_n(&pr->vhost, __ATOMIC_ACQUIRE);
	if (want != have && !(want && pr->vhost_refused)) {
		struct vpci_queue *rq = &n->vpci.q[RXQ(p)], *tq = &n->vpci.q[TXQ(p)];
		pthread_mutex_lock(&rq->lock);
		pthread_mutex_lock(&tq->lock);
		/* again under the locks: a reset may have come between */
		want = __atomic_load_n(&n->vhost_live, __ATOMIC_ACQUIRE) &&
		       p < vnet_cur_pairs(n);
		if (want && !pr->vhost && !pr->vhost_refused) {
			int rc = start_locked(n, p);
			/* not again until the next reset: no ioctls per kick */
			if (rc) {
				pr->vhost_refused = true;
				log_once(n, p, "taking the rings", -rc);
			}
		} else if (!want) {
			stop_locked(n, p);
		}
		pthread_mutex_unlock(&tq->lock);
		pthread_mutex_unlock(&rq->lock);
	}
	return __atomic_load_n(&pr->vhost, __ATOMIC_ACQUIRE);
}

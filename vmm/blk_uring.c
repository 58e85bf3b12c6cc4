#include "blk_uring.h"

#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <linux/virtio_blk.h>

#define LOG_MAX 8 /* lines about ring failures, per disk */

/* One request in flight. */
struct slot {
	struct blk_req r;
	uint16_t head;
	bool busy;  /* carries a request the ring still holds */
	bool stale; /* dropped by a reset whose wait failed: its CQE means nothing */
	struct iovec iov[VQ_MAX_SEGS];
};

struct blk_uring {
	struct io_uring ring;
	int efd; /* registered with the ring: a CQE was posted */
	struct blk_img *img;
	struct vpci *v;
	unsigned depth;
	/* the rest is owned by queue 0's lock */
	unsigned inflight, nfree;
	uint16_t *free; /* slot indices, a stack */
	struct slot *slot;
	struct vq_chain chain; /* pop scratch */
	unsigned logged;
};

static void __attribute__((format(printf, 2, 3))) log_once(struct blk_uring *u, const char *fmt, ...)
{
	if (u->logged >= LOG_MAX)
		return;
	u->logged++;
	va_list ap;
	va_start(ap, fmt);
	fputs("kvmlab-vm: virtio-blk: io_uring: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Put slot i's request (its remaining part) on the SQ. false: no SQE. */
static bool prep(struct blk_uring *u, unsigned i)
{
	struct slot *s = &u->slot[i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return false;
	switch (s->r.op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, u->img->fd, s->r.iov, s->r.n, s->r.off);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, u->img->fd, s->r.iov, s->r.n, s->r.off);
		break;
	case BLK_OP_FLUSH:
		/* no IOSQE_IO_DRAIN: FLUSH covers the writes completed (used)
		 * before it was made available (virtio 1.x 5.2.6.2), and
		 * those are done; writes still in flight are not covered, so
		 * they need not wait, nor make everything behind them wait */
		io_uring_prep_fsync(sqe, u->img->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DONE:
		break;
	}
	io_uring_sqe_set_data(sqe, s);
	return true;
}

/* A transfer came back short by res bytes of r->len: move on. */
static void advance(struct blk_req *r, uint64_t res)
{
	r->off += res;
	r->len -= res;
	while (r->n && res >= r->iov->iov_len) {
		res -= r->iov->iov_len;
		r->iov++;
		r->n--;
	}
	if (r->n) {
		r->iov->iov_base = (uint8_t *)r->iov->iov_base + res;
		r->iov->iov_len -= res;
	}
}

static void put_slot(struct blk_uring *u, unsigned i)
{
	u->slot[i].busy = false;
	u->free[u->nfree++] = (uint16_t)i;
}

static void submit_locked(struct blk_uring *u)
{
	for (unsigned tries = 0; tries < 16; tries++) {
		int rc = io_uring_submit(&u->ring);
		if (rc >= 0)
			return;
		if (rc != -EINTR && rc != -EAGAIN) {
			/* the SQEs stay on the ring: the next submit retries */
			log_once(u, "submit: %s", strerror(-rc));
			return;
		}
	}
}

/* Take every posted CQE; *queued counts short transfers put back. */
static bool reap_locked(struct blk_uring *u, unsigned *queued)
{
	struct vq *q = &u->v->q[0].vq;
	struct io_uring_cqe *cqe;
	bool pushed = false;

	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct slot *s = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		unsigned i = (unsigned)(s - u->slot);
		if (s->stale) {
			s->stale = false;
			put_slot(u, i);
			continue;
		}
		uint8_t st = res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		if (res >= 0 && s->r.op != BLK_OP_FLUSH && (uint64_t)res < s->r.len) {
			/* short: the rest goes again; nothing at all means
			 * EOF inside the image (it shrank under us) */
			advance(&s->r, (uint64_t)res);
			if (res > 0 && prep(u, i)) {
				(*queued)++;
				continue;
			}
			st = VIRTIO_BLK_S_IOERR;
		}
		/* completions come in the kernel's order: each names its own
		 * head, and the used ring takes them in any order */
		vq_push(q, s->head, blk_req_finish(&s->r, st));
		u->img->n_async++;
		u->inflight--;
		put_slot(u, i);
		pushed = true;
	}
	return pushed;
}

/* Pop what the driver made available while a slot is free. */
static bool fill_locked(struct blk_uring *u, unsigned *queued)
{
	struct vq *q = &u->v->q[0].vq;
	bool pushed = false;

	while (u->nfree) {
		int rc = vq_pop(q, &u->chain);
		if (rc < 0)
			vpci_set_needs_reset(u->v);
		if (rc <= 0)
			break;
		unsigned i = u->free[--u->nfree];
		struct slot *s = &u->slot[i];
		s->head = u->chain.head;
		blk_req_parse(u->img, u->v, &u->chain, &s->r, s->iov);
		/* answered while parsing, nothing to move, or guest buffers
		 * O_DIRECT refuses (the one bounce buffer, now), or (never
		 * expected: one SQE per slot) no SQE: served right here */
		if (s->r.op == BLK_OP_DONE ||
		    (s->r.op != BLK_OP_FLUSH && (s->r.len == 0 || !blk_req_aligned(u->img, &s->r))) ||
		    !prep(u, i)) {
			vq_push(q, s->head, blk_req_finish(&s->r, blk_req_sync(u->img, &s->r)));
			u->free[u->nfree++] = (uint16_t)i;
			pushed = true;
			continue;
		}
		s->busy = true;
		u->inflight++;
		(*queued)++;
	}
	return pushed;
}

/* Completions in, new requests out, until neither moves; wait: until
 * nothing is in flight. One interrupt at the end, if the driver wants. */
static void pump(struct blk_uring *u, bool wait)
{
	struct vpci_queue *pq = &u->v->q[0];
	bool pushed = false;

	pthread_mutex_lock(&pq->lock);
	for (;;) {
		unsigned queued = 0;
		pushed |= reap_locked(u, &queued);
		pushed |= fill_locked(u, &queued);
		if (queued) {
			submit_locked(u);
			continue; /* cached I/O often completes inside the submit */
		}
		if (!wait || !u->inflight)
			break;
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&u->ring, &cqe);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
			log_once(u, "wait: %s", strerror(-rc));
			break;
		}
	}
	if (pushed && vq_should_signal(&pq->vq))
		vpci_signal(u->v, 0);
	pthread_mutex_unlock(&pq->lock);
}

static void kick(void *ctx)
{
	pump(ctx, false);
}

static void complete(void *ctx, bool wait)
{
	pump(ctx, wait);
}

static void on_cqe(void *opaque, uint32_t events)
{
	struct blk_uring *u = opaque;
	uint64_t n;
	(void)events;
	/* cleared before the CQ is read: a CQE posted after this read
	 * makes the eventfd readable again, so none is missed */
	(void)!read(u->efd, &n, sizeof(n));
	pump(u, false);
}

/* Wait out everything the ring holds and drop it unanswered: the driver
 * reset the device and forgets these requests, and the used ring they
 * would go to is about to be unmapped. */
static void drain_locked(struct blk_uring *u)
{
	struct io_uring_cqe *cqe;

	while (u->inflight) {
		/* SQEs not yet taken by the kernel are submitted here */
		int rc = io_uring_submit_and_wait(&u->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			/* cannot wait: leave the slots to their CQEs, which
			 * then free them without a word to the ring */
			log_once(u, "reset: %s", strerror(-rc));
			for (unsigned i = 0; i < u->depth; i++)
				if (u->slot[i].busy)
					u->slot[i].stale = true;
			u->inflight = 0;
			return;
		}
		while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
			struct slot *s = io_uring_cqe_get_data(cqe);
			io_uring_cqe_seen(&u->ring, cqe);
			bool stale = s->stale;
			s->stale = false;
			put_slot(u, (unsigned)(s - u->slot));
			if (!stale)
				u->inflight--;
		}
	}
}

static void reset(void *ctx)
{
	drain_locked(ctx);
}

static int start(void *ctx, struct event_loop *ev, struct err *e)
{
	struct blk_uring *u = ctx;
	return event_add(ev, u->efd, EPOLLIN, on_cqe, u, e);
}

static void destroy(void *ctx)
{
	struct blk_uring *u = ctx;
	/* no other thread is left: the event loop was stopped */
	drain_locked(u);
	io_uring_queue_exit(&u->ring);
	close(u->efd);
	free(u->slot);
	free(u->free);
	free(u);
}

const struct blk_io_ops blk_uring_ops = {
	.name = "uring", .kick = kick, .complete = complete, .reset = reset,
	.start = start, .destroy = destroy,
};

int blk_uring_new(struct blk_uring **out, struct blk_img *img, struct vpci *v, unsigned depth)
{
	int rc = -ENOMEM;
	struct blk_uring *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->img = img;
	u->v = v;
	u->depth = depth;
	u->slot = calloc(depth, sizeof(*u->slot));
	u->free = calloc(depth, sizeof(*u->free));
	if (!u->slot || !u->free)
		goto err_mem;
	for (unsigned i = 0; i < depth; i++)
		u->free[u->nfree++] = (uint16_t)(depth - 1 - i);
	u->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->efd < 0) {
		rc = -errno;
		goto err_mem;
	}
	/* depth SQEs, 2 x depth CQEs: with at most depth requests in flight
	 * and one SQE each, neither ring can fill. The kernel makes the
	 * ring fd close-on-exec itself. */
	rc = io_uring_queue_init(depth, &u->ring, 0);
	if (rc)
		goto err_efd;
	rc = io_uring_register_eventfd(&u->ring, u->efd);
	if (rc)
		goto err_ring;
	*out = u;
	return 0;
err_ring:
	io_uring_queue_exit(&u->ring);
err_efd:
	close(u->efd);
err_mem:
	free(u->slot);
	free(u->free);
	free(u);
	return rc;
}

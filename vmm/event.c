#include "event.h"

#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* the stop eventfd is registered with this tag instead of a handler index */
#define STOP_TAG UINT64_MAX

int event_init(struct event_loop *l, struct err *e)
{
	int rc;

	memset(l, 0, sizeof(*l));
	l->stopfd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return errf(e, errno, "event: epoll_create1: %s", strerror(errno));
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->stopfd < 0) {
		rc = errf(e, errno, "event: eventfd: %s", strerror(errno));
		goto err_ep;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = STOP_TAG };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev)) {
		rc = errf(e, errno, "event: epoll_ctl: %s", strerror(errno));
		goto err_stop;
	}
	return 0;
err_stop:
	close(l->stopfd);
	l->stopfd = -1;
err_ep:
	close(l->epfd);
	l->epfd = -1;
	return rc;
}

int event_add(struct event_loop *l, int fd, uint32_t events, event_cb cb, void *opaque,
	      struct err *e)
{
	/* adders are setup code on one thread; only the loop runs beside them */
	unsigned i = __atomic_load_n(&l->nr, __ATOMIC_RELAXED);
	if (i == EVENT_MAX)
		return errf(e, ENOSPC, "event: no room for fd %d (%u handlers)", fd, EVENT_MAX);
	l->h[i].cb = cb;
	l->h[i].opaque = opaque;
	l->h[i].fd = fd;
	l->h[i].events = events;
	/* the handler is in place before the loop can see the tag */
	__atomic_store_n(&l->nr, i + 1, __ATOMIC_RELEASE);
	struct epoll_event ev = { .events = events, .data.u64 = i };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		__atomic_store_n(&l->nr, i, __ATOMIC_RELEASE);
		return errf(e, errno, "event: epoll_ctl(fd %d): %s", fd, strerror(errno));
	}
	return 0;
}

int event_pause(struct event_loop *l, int fd, bool pause)
{
	unsigned nr = __atomic_load_n(&l->nr, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < nr; i++) {
		if (l->h[i].fd != fd)
			continue;
		/* MOD keeps the slot; no events means epoll reports nothing,
		 * and a resume re-checks readiness, so no edge is lost */
		struct epoll_event ev = { .events = pause ? 0 : l->h[i].events, .data.u64 = i };
		return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
	}
	return -ENOENT;
}

static void *loop_main(void *arg)
{
	struct event_loop *l = arg;
	struct epoll_event evs[EVENT_MAX + 1];

	for (;;) {
		int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			if (tag == STOP_TAG)
				return NULL;
			if (tag < __atomic_load_n(&l->nr, __ATOMIC_ACQUIRE))
				l->h[tag].cb(l->h[tag].opaque, evs[i].events);
		}
	}
}

int event_start(struct event_loop *l, struct err *e)
{
	int rc = pthread_create(&l->thread, NULL, loop_main, l);
	if (rc)
		return errf(e, rc, "event: cannot start thread: %s", strerror(rc));
	l->running = true;
	if (l->name[0])
		(void)pthread_setname_np(l->thread, l->name);
	return 0;
}

void event_destroy(struct event_loop *l)
{
	if (l->running) {
		uint64_t one = 1;
		/* a full counter still leaves the fd readable, so ignore errors */
		(void)!write(l->stopfd, &one, sizeof(one));
		pthread_join(l->thread, NULL);
		l->running = false;
	}
	if (l->stopfd >= 0)
		close(l->stopfd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->stopfd = l->epfd = -1;
}

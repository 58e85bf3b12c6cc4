#include "console.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct console {
	pthread_mutex_t lock;
	pthread_cond_t more;     /* writer: bytes queued, or stop */
	pthread_cond_t drained;  /* console_free: the queue is empty */
	int fd;
	uint8_t *q;              /* ring of CONSOLE_QUEUE bytes */
	size_t head, len;        /* [head, head+len) is being or will be written */
	uint64_t dropped;
	bool told;               /* the stall has been reported */
	bool gone;               /* the fd failed for good (EPIPE, ENOSPC) */
	bool stop;
	pthread_t th;
};

static const char stall_msg[] =
	"kvmlab-vm: console: output is not being read; dropping guest output\n";

/* stderr may be the same stalled terminal as the console: a thread of its
 * own says it, so that no caller can block on it */
static void *tell_stall(void *arg)
{
	(void)arg;
	ssize_t n = write(STDERR_FILENO, stall_msg, sizeof(stall_msg) - 1);
	(void)n;
	return NULL;
}

static void say_stall_once(void)
{
	pthread_t t;
	pthread_attr_t at;
	if (pthread_attr_init(&at))
		return;
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64u << 10);
	if (pthread_create(&t, &at, tell_stall, NULL))
		tell_stall(NULL); /* no thread: better a late line than none */
	pthread_attr_destroy(&at);
}

/* Write the ring out. The lock is never held across write() or poll():
 * those are the only places the thread may block, and the only places
 * where console_free may cancel it. */
static void *writer(void *arg)
{
	struct console *c = arg;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->len && !c->stop)
			pthread_cond_wait(&c->more, &c->lock);
		if (!c->len)
			break;
		/* producers only append past head+len: this span is ours */
		size_t n = c->len < CONSOLE_QUEUE - c->head ? c->len : CONSOLE_QUEUE - c->head;
		const uint8_t *p = c->q + c->head;
		pthread_mutex_unlock(&c->lock);

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		ssize_t w = write(c->fd, p, n);
		int err = errno;
		if (w < 0 && err == EAGAIN) { /* someone made the fd non-blocking */
			struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
			(void)poll(&pf, 1, -1);
		}
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);

		pthread_mutex_lock(&c->lock);
		if (w > 0) {
			c->head = (c->head + (size_t)w) % CONSOLE_QUEUE;
			c->len -= (size_t)w;
		} else if (w == 0 || (err != EINTR && err != EAGAIN)) {
			/* the output is gone (EPIPE, a full disk): drop from now on */
			c->gone = true;
			c->dropped += c->len;
			c->len = 0;
		}
		if (!c->len)
			pthread_cond_broadcast(&c->drained);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int console_new(struct console **out, int fd, struct err *e)
{
	struct console *c = calloc(1, sizeof(*c));
	int rc;

	if (!c || !(c->q = malloc(CONSOLE_QUEUE))) {
		free(c);
		return errf(e, ENOMEM, "console: out of memory");
	}
	c->fd = fd;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->more, NULL);
	pthread_cond_init(&c->drained, NULL);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 64u << 10);
	rc = pthread_create(&c->th, &at, writer, c);
	pthread_attr_destroy(&at);
	if (rc) {
		pthread_cond_destroy(&c->drained);
		pthread_cond_destroy(&c->more);
		pthread_mutex_destroy(&c->lock);
		free(c->q);
		free(c);
		return errf(e, rc, "console: pthread_create: %s", strerror(rc));
	}
	*out = c;
	return 0;
}

size_t console_write(struct console *c, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	bool tell = false;

	pthread_mutex_lock(&c->lock);
	size_t room = c->gone ? 0 : CONSOLE_QUEUE - c->len;
	size_t n = len < room ? len : room;
	size_t tail = (c->head + c->len) % CONSOLE_QUEUE;
	size_t first = n < CONSOLE_QUEUE - tail ? n : CONSOLE_QUEUE - tail;
	memcpy(c->q + tail, b, first);
	memcpy(c->q, b + first, n - first);
	if (n && !c->len)
		pthread_cond_signal(&c->more);
	c->len += n;
	if (n < len) {
		c->dropped += len - n;
		if (!c->told && !c->gone)
			tell = c->told = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (tell)
		say_stall_once();
	return n;
}

uint64_t console_dropped(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t d = c->dropped;
	pthread_mutex_unlock(&c->lock);
	return d;
}

void console_free(struct console *c, unsigned drain_ms)
{
	if (!c)
		return;
	struct timespec until = deadline_ms(drain_ms);
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->more);
	while (c->len && pthread_cond_timedwait(&c->drained, &c->lock, &until) == 0)
		;
	size_t left = c->len;
	c->dropped += left;
	uint64_t dropped = c->dropped;
	bool gone = c->gone;
	pthread_mutex_unlock(&c->lock);
	/* still blocked on the reader: give up on it (it holds no lock) */
	if (left)
		pthread_cancel(c->th);
	pthread_join(c->th, NULL);
	if (dropped)
		fprintf(stderr, "kvmlab-vm: console: %llu bytes of guest output dropped (%s)\n",
			(unsigned long long)dropped,
			gone ? "the output failed" : "the reader did not keep up");
	pthread_cond_destroy(&c->drained);
	pthread_cond_destroy(&c->more);
	pthread_mutex_destroy(&c->lock);
	free(c->q);
	free(c);
}

#include "exit.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int exit_init(struct exit_latch *x, struct err *e)
{
	x->ev = EXIT_EV_NONE;
	x->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (x->efd < 0)
		return errf(e, errno, "eventfd: %s", strerror(errno));
	return 0;
}

void exit_fini(struct exit_latch *x)
{
	if (x->efd >= 0)
		close(x->efd);
	x->efd = -1;
}

void exit_raise(struct exit_latch *x, enum exit_event ev)
{
	int none = EXIT_EV_NONE;
	/* the first reason sticks: a panic that triple-faults is a panic */
	if (__atomic_compare_exchange_n(&x->ev, &none, (int)ev, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) && x->efd >= 0) {
		uint64_t one = 1;
		ssize_t n = write(x->efd, &one, sizeof(one));
		(void)n; /* a full counter still wakes the reader */
	}
}

enum exit_event exit_get(const struct exit_latch *x)
{
	return (enum exit_event)__atomic_load_n(&x->ev, __ATOMIC_SEQ_CST);
}

int exit_fd(const struct exit_latch *x)
{
	return x->efd;
}

void exit_ack(struct exit_latch *x)
{
	uint64_t cnt;
	if (x->efd >= 0)
		(void)!read(x->efd, &cnt, sizeof(cnt));
}

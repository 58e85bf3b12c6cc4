/* The per-namespace lock (an abstract unix socket): a second taker waits
 * the bounded time, then fails naming the holder's pid; the lock is free
 * again the moment the holder dies; a reader takes nothing. Runs in a
 * private network namespace (a user namespace without root), so the
 * machine's own is never touched; skips when neither can be made. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include "t.h"
#include "priv.h"

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(void)
{
	struct kl_net *h;
	struct timespec t0;
	int p[2], err;
	char c, want[32];
	pid_t kid;

	if (unshare(geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET)) {
		puts("ok - net_lock # SKIP cannot make a private network namespace");
		return 0;
	}
	if (pipe(p) || kl_net_open(&h)) {
		CHECK(0, "pipe and handle");
		return t_done();
	}
	kid = fork();
	if (kid == 0) {
		struct kl_net *k;
		if (kl_net_open(&k) || state_lock(k, true))
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK(read(p[0], &c, 1) == 1, "child %d holds the lock", (int)kid);
	CHECK(state_lock(h, false) == 0, "a reader takes nothing and waits not");
	kl_net_set_wait(h, 300);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = state_lock(h, true);
	long ms = ms_since(&t0);
	CHECK(err == -ETIMEDOUT, "second taker times out: %s", kl_net_errmsg(h));
	CHECK(ms >= 290 && ms < 3000, "after the bounded wait (%ld ms)", ms);
	snprintf(want, sizeof(want), "pid %d", (int)kid);
	CHECK(strstr(kl_net_errmsg(h), want) != NULL, "message names %s", want);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	kl_net_set_wait(h, 2000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(state_lock(h, true) == 0, "free once the holder is killed");
	CHECK(ms_since(&t0) < 500, "at once (%ld ms)", ms_since(&t0));
	CHECK(state_lock(h, true) == 0, "taking it again in one handle is a no-op");
	state_unlock(h);
	kl_net_set_wait(h, 0);
	CHECK(state_lock(h, true) == 0, "free after unlock");
	state_unlock(h);
	kl_net_close(h);
	return t_done();
}

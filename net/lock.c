/* One run at a time per network namespace: an abstract unix socket bound
 * inside the namespace is the lock. Abstract names are per namespace, the
 * kernel lets go of them when the holder dies (even by kill -9), and they
 * vanish with the namespace: nothing to clean up, nothing on disk.
 *
 * The holder also listens, so a waiter that gives up can connect and ask
 * the kernel (SO_PEERCRED) which process holds it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "priv.h"

static socklen_t lock_addr(struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* sun_path[0] = 0: the abstract namespace */
	memcpy(sa->sun_path + 1, LOCK_NAME, strlen(LOCK_NAME));
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			   strlen(LOCK_NAME));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The holder's pid (0 unknown) and command name. */
static pid_t holder(char *comm, size_t len)
{
	struct sockaddr_un sa;
	socklen_t sl = lock_addr(&sa);
	struct ucred cr = {0};
	socklen_t cl = sizeof(cr);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	comm[0] = 0;
	if (fd < 0)
		return 0;
	/* A full backlog says EAGAIN: then the pid stays unknown. */
	if (connect(fd, (struct sockaddr *)&sa, sl) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0)
		cr.pid = 0;
	close(fd);
	if (cr.pid > 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)cr.pid);
		int cfd = open(path, O_RDONLY | O_CLOEXEC);
		if (cfd >= 0) {
			ssize_t n = read(cfd, comm, len - 1);
			comm[n > 0 ? n : 0] = 0;
			comm[strcspn(comm, "\n")] = 0;
			close(cfd);
		}
	}
	return cr.pid;
}

int state_lock(struct kl_net *h, bool exclusive)
{
	struct sockaddr_un sa;
	socklen_t sl = lock_addr(&sa);
	uint64_t deadline = now_ms() + h->wait_ms;
	unsigned nap_us = 500;
	int fd;

	if (!exclusive || h->lockfd >= 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kl_err(h, -errno, "lock: cannot make a unix socket: %s",
			      strerror(errno));
	while (bind(fd, (struct sockaddr *)&sa, sl) < 0) {
		if (errno != EADDRINUSE) {
			int e = -errno;
			close(fd);
			return kl_err(h, e, "lock @%s: cannot bind: %s", LOCK_NAME,
				      strerror(-e));
		}
		if (now_ms() >= deadline) {
			char comm[32];
			pid_t pid = holder(comm, sizeof(comm));
			close(fd);
			if (pid > 0)
				return kl_err(h, -ETIMEDOUT, "network namespace busy: "
					      "pid %d (%s) holds kvmlab's lock; gave "
					      "up after %u ms (--wait, "
					      "KVMLAB_LOCK_TIMEOUT)", (int)pid,
					      comm[0] ? comm : "?", h->wait_ms);
			return kl_err(h, -ETIMEDOUT, "network namespace busy: another "
				      "process holds kvmlab's lock; gave up after "
				      "%u ms (--wait, KVMLAB_LOCK_TIMEOUT)",
				      h->wait_ms);
		}
		/* Short naps first: runs hold it for milliseconds. */
		usleep(nap_us);
		if (nap_us < 20000)
			nap_us *= 2;
	}
	/* Only so that a waiter can learn who holds it; never accepted. */
	(void)listen(fd, 64);
	h->lockfd = fd;
	return 0;
}

void state_unlock(struct kl_net *h)
{
	if (h->lockfd >= 0)
		close(h->lockfd);
	h->lockfd = -1;
}

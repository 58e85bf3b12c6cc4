/* The client side of a VM's control endpoint (ctl.h): kvmlab-vm list
 * and stop. */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

/* /proc/net/unix: the kernel's own table of this namespace's sockets */
#define PROC_UNIX "/proc/net/unix"
#define ACCEPTCON 0x10000 /* __SO_ACCEPTCON in its Flags column: listening */

int ctl_connect(const char *name, int *fd, pid_t *pid, struct err *e)
{
	struct sockaddr_un a;
	socklen_t alen;
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	int rc;

	*fd = -1;
	if (ctl_sockaddr(name, &a, &alen))
		return errf(e, EINVAL, "VM %s: want a name of 1..%d bytes", name, CTL_NAME_MAX);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errf(e, errno, "VM %s: socket: %s", name, strerror(errno));
	if (connect(s, (struct sockaddr *)&a, alen)) {
		int err = errno;
		if (err == ECONNREFUSED || err == ENOENT)
			rc = errf(e, ENOENT, "VM %s: not running in this network namespace", name);
		else
			rc = errf(e, err, "VM %s: connect: %s", name, strerror(err));
		goto err_close;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &ul)) {
		rc = errf(e, errno, "VM %s: SO_PEERCRED: %s", name, strerror(errno));
		goto err_close;
	}
	/* anyone in the namespace can bind an abstract name: talk only to a
	 * VMM that root or this user runs */
	if (uc.uid != 0 && uc.uid != geteuid()) {
		rc = errf(e, EPERM, "VM %s: its control socket is held by uid %u (pid %ld), not "
			  "root or this user", name, (unsigned)uc.uid, (long)uc.pid);
		goto err_close;
	}
	*fd = s;
	if (pid)
		*pid = uc.pid;
	return 0;
err_close:
	close(s);
	return rc;
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* poll fd for what within the time left; 0 ready, -ETIMEDOUT */
static int wait_fd(int fd, short what, long long end)
{
	for (;;) {
		long long left = end < 0 ? -1 : end - now_ms();
		if (end >= 0 && left < 0)
			left = 0;
		struct pollfd p = { .fd = fd, .events = what };
		int r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0 && end >= 0 && now_ms() >= end)
			return -ETIMEDOUT;
	}
}

int ctl_call(int fd, const char *cmd, json_t **reply, int timeout_ms, struct err *e)
{
	char buf[65536];
	long long end = now_ms() + timeout_ms;
	int rc;

	*reply = NULL;
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!s)
		return errf(e, ENOMEM, "%s: out of memory", cmd);
	ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);
	int serr = errno;
	free(s);
	/* a server that refused us at once (another uid) has closed
	 * already; its reason is still queued here: read it */
	if (n < 0 && serr != EPIPE && serr != ECONNRESET)
		return errf(e, serr, "%s: send: %s", cmd, strerror(serr));
	rc = wait_fd(fd, POLLIN, end);
	if (rc)
		return errf(e, -rc, "%s: no reply in %d ms", cmd, timeout_ms);
	n = recv(fd, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT);
	/* a server that closed with our request unread resets us, and the
	 * first recv reports only that; its reply may still be queued */
	if (n < 0 && errno == ECONNRESET)
		n = recv(fd, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0 && (errno == ECONNRESET || errno == EAGAIN))
		n = 0;
	if (n < 0)
		return errf(e, errno, "%s: recv: %s", cmd, strerror(errno));
	if (n == 0)
		return errf(e, EPIPE, "%s: the VM closed the connection (it is going)", cmd);
	if ((size_t)n > sizeof(buf))
		return errf(e, EMSGSIZE, "%s: reply of %zd bytes, too long", cmd, n);
	json_error_t je;
	json_t *r = json_loadb(buf, (size_t)n, 0, &je);
	if (!json_is_object(r)) {
		json_decref(r);
		return errf(e, EPROTO, "%s: reply is no JSON object", cmd);
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		const char *why = json_string_value(json_object_get(r, "error"));
		rc = errf(e, EREMOTEIO, "%s: %s", cmd, why ? why : "refused");
		json_decref(r);
		return rc;
	}
	*reply = r;
	return 0;
}

int ctl_wait_gone(int fd, int timeout_ms)
{
	long long end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	for (;;) {
		int rc = wait_fd(fd, POLLIN, end);
		if (rc)
			return rc;
		char b[512];
		ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 0; /* closed: the VMM is gone */
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ctl_names(char ***names, size_t *n)
{
	char line[512];
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	int rc = 0;

	*names = NULL;
	*n = 0;
	FILE *f = fopen(PROC_UNIX, "re");
	if (!f)
		return -errno;
	/* Num RefCount Protocol Flags Type St Inode Path */
	if (!fgets(line, sizeof(line), f))
		goto out;
	while (fgets(line, sizeof(line), f)) {
		unsigned long flags, type;
		char path[256];
		if (sscanf(line, "%*s %*s %*s %lx %lx %*s %*s %255s", &flags, &type, path) != 3)
			continue;
		/* a listening SOCK_SEQPACKET at "@kvmlab-vm/NAME" */
		if (!(flags & ACCEPTCON) || type != SOCK_SEQPACKET || path[0] != '@' ||
		    strncmp(path + 1, CTL_PREFIX, strlen(CTL_PREFIX)))
			continue;
		const char *name = path + 1 + strlen(CTL_PREFIX);
		if (!*name || strlen(name) > CTL_NAME_MAX)
			continue;
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 8;
			char **nv = realloc(v, nc * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				goto out;
			}
			v = nv;
			cap = nc;
		}
		if (!(v[cnt] = strdup(name))) {
			rc = -ENOMEM;
			goto out;
		}
		cnt++;
	}
	qsort(v, cnt, sizeof(*v), cmp_str);
out:
	fclose(f);
	if (rc) {
		while (cnt)
			free(v[--cnt]);
		free(v);
		return rc;
	}
	*names = v;
	*n = cnt;
	return 0;
}

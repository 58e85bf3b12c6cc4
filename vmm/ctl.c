/* The VM's control endpoint (ctl.h): the server side, run from the main
 * thread's poll loop. */
#include "ctl.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

struct ctl_client {
	int fd;          /* -1: free slot */
	uid_t uid;
	pid_t pid;
};

struct ctl {
	int lfd;
	const struct ctl_ops *ops;
	void *opaque;
	struct ctl_client cl[CTL_CLIENTS_MAX];
};

int ctl_sockaddr(const char *name, struct sockaddr_un *a, socklen_t *len)
{
	size_t n = strlen(name);
	if (!n || n > CTL_NAME_MAX)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + 1, CTL_PREFIX, strlen(CTL_PREFIX));
	memcpy(a->sun_path + 1 + strlen(CTL_PREFIX), name, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(CTL_PREFIX) + n);
	return 0;
}

int ctl_open(struct ctl **out, const char *name, const struct ctl_ops *ops, void *opaque,
	     struct err *e)
{
	struct sockaddr_un a;
	socklen_t alen;
	int rc;

	*out = NULL;
	if (ctl_sockaddr(name, &a, &alen))
		return errf(e, EINVAL, "VM name %s: want 1..%d bytes", name, CTL_NAME_MAX);
	struct ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return errf(e, ENOMEM, "control socket: out of memory");
	for (unsigned i = 0; i < CTL_CLIENTS_MAX; i++)
		c->cl[i].fd = -1;
	c->ops = ops;
	c->opaque = opaque;
	c->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0) {
		rc = errf(e, errno, "control socket @%s%s: %s", CTL_PREFIX, name, strerror(errno));
		goto err_free;
	}
	if (bind(c->lfd, (struct sockaddr *)&a, alen)) {
		int err = errno;
		if (err == EADDRINUSE) {
			/* say who has the name when it answers; a VMM that is
			 * not ours still shows in its credentials */
			char who[48] = "";
			int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
			struct ucred uc;
			socklen_t ul = sizeof(uc);
			if (fd >= 0 && !connect(fd, (struct sockaddr *)&a, alen) &&
			    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul))
				snprintf(who, sizeof(who), " (pid %ld)", (long)uc.pid);
			if (fd >= 0)
				close(fd);
			rc = errf(e, err, "--name %s: a VM of this name runs in this network "
				  "namespace%s", name, who);
		} else {
			rc = errf(e, err, "control socket @%s%s: bind: %s", CTL_PREFIX, name,
				  strerror(err));
		}
		goto err_close;
	}
	if (listen(c->lfd, CTL_CLIENTS_MAX)) {
		rc = errf(e, errno, "control socket @%s%s: listen: %s", CTL_PREFIX, name,
			  strerror(errno));
		goto err_close;
	}
	*out = c;
	return 0;
err_close:
	close(c->lfd);
err_free:
	free(c);
	return rc;
}

int ctl_pollfds(const struct ctl *c, struct pollfd *p)
{
	int n = 0;
	p[n++] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
	for (unsigned i = 0; i < CTL_CLIENTS_MAX; i++)
		p[n++] = (struct pollfd){ .fd = c->cl[i].fd, .events = POLLIN };
	return n;
}

static void drop(struct ctl_client *cl)
{
	close(cl->fd);
	cl->fd = -1;
}

/* One reply (s: malloc'd; NULL: out of memory); a client that cannot
 * take it now (its queue full: it does not read) is dropped rather than
 * waited for. */
static void send_reply(struct ctl_client *cl, char *s)
{
	if (!s || send(cl->fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		drop(cl);
	free(s);
}

static json_t *fail(const char *why)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", why);
}

/* One request's reply. The client's bytes are untrusted: jansson parses
 * them within their length, and only a "cmd" string of a known value
 * acts. */
static json_t *handle(struct ctl *c, const char *buf, size_t n, pid_t by)
{
	if (n > CTL_MSG_MAX)
		return fail("request too long");
	json_t *req = json_loadb(buf, n, JSON_REJECT_DUPLICATES, NULL);
	const char *cmd = json_is_object(req) ? json_string_value(json_object_get(req, "cmd")) : NULL;
	json_t *r;
	if (!cmd) {
		r = fail("want a JSON object with \"cmd\"");
	} else if (!strcmp(cmd, "status")) {
		json_t *st = c->ops->status(c->opaque);
		r = st ? json_pack("{s:b, s:o}", "ok", 1, "status", st) : fail("out of memory");
	} else if (!strcmp(cmd, "powerdown")) {
		int rc = c->ops->power_button(c->opaque);
		r = rc ? fail(strerror(-rc)) : json_pack("{s:b}", "ok", 1);
	} else if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		int pause = cmd[0] == 'p';
		int rc = pause ? c->ops->pause(c->opaque) : c->ops->resume(c->opaque);
		r = rc == -EALREADY ? fail(pause ? "paused already" : "not paused")
		    : rc ? fail(strerror(-rc)) : json_pack("{s:b}", "ok", 1);
	} else if (!strcmp(cmd, "quit")) {
		c->ops->quit(c->opaque, by);
		r = json_pack("{s:b}", "ok", 1);
	} else {
		r = fail("unknown cmd (want status, powerdown, pause, resume or quit)");
	}
	json_decref(req);
	return r;
}

char *ctl_handle(struct ctl *c, const void *buf, size_t n, pid_t by)
{
	json_t *r = handle(c, buf, n, by);
	char *s = r ? json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	json_decref(r);
	return s;
}

static void request(struct ctl *c, struct ctl_client *cl)
{
	char buf[CTL_MSG_MAX];
	/* MSG_TRUNC: the whole message's length, so an overlong one is
	 * refused, not parsed cut short */
	ssize_t n = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			drop(cl);
		return;
	}
	if (n == 0) { /* the client closed */
		drop(cl);
		return;
	}
	send_reply(cl, ctl_handle(c, buf, (size_t)n, cl->pid));
}

static void accept_all(struct ctl *c)
{
	for (;;) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred uc;
		socklen_t ul = sizeof(uc);
		unsigned i = 0;
		while (i < CTL_CLIENTS_MAX && c->cl[i].fd >= 0)
			i++;
		/* no slot, or no credentials: close, the client sees it */
		if (i == CTL_CLIENTS_MAX || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul)) {
			close(fd);
			continue;
		}
		struct ctl_client *cl = &c->cl[i];
		cl->fd = fd;
		cl->uid = uc.uid;
		cl->pid = uc.pid;
		/* the socket is open to the whole namespace: only root and
		 * the VMM's own user may drive the VM */
		if (uc.uid != 0 && uc.uid != geteuid()) {
			json_t *r = fail("permission denied: only root or the VM's user");
			send_reply(cl, r ? json_dumps(r, JSON_COMPACT) : NULL);
			json_decref(r);
			if (cl->fd >= 0)
				drop(cl); /* the reply stays readable after the close */
		}
	}
}

void ctl_ready(struct ctl *c, const struct pollfd *p, int n)
{
	if (n > 0 && (p[0].revents & POLLIN))
		accept_all(c);
	for (int k = 1; k < n; k++) {
		if (p[k].fd < 0 || !p[k].revents)
			continue;
		for (unsigned i = 0; i < CTL_CLIENTS_MAX; i++) {
			struct ctl_client *cl = &c->cl[i];
			if (cl->fd != p[k].fd)
				continue;
			if (p[k].revents & POLLIN)
				request(c, cl);
			else
				drop(cl); /* POLLHUP, POLLERR, POLLNVAL */
			break;
		}
	}
}

void ctl_close(struct ctl *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < CTL_CLIENTS_MAX; i++)
		if (c->cl[i].fd >= 0)
			close(c->cl[i].fd);
	close(c->lfd);
	free(c);
}

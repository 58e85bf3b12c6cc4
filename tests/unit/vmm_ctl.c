/* The control socket (vmm/ctl.c, ctl_client.c) without a VM: the server
 * runs here on fake ops, in a poll loop like the VMM's main loop, while
 * tests/unit/ctl_peer.py (independent: the protocol from ctl.h, python3
 * standard library) plays well-behaved and hostile clients against it.
 * Then the client side against this server: a clash of names, a name
 * nobody serves, the names listed, and the wait for a server to go. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "t.h"

struct fake {
	int presses, quits, paused;
	pid_t quit_by;
};

static json_t *fake_status(void *opaque)
{
	(void)opaque;
	return json_pack("{s:s, s:i}", "name", getenv("KL_CTL_NAME"), "cpus", 3);
}

static int fake_power(void *opaque)
{
	((struct fake *)opaque)->presses++;
	return 0;
}

static void fake_quit(void *opaque, pid_t by)
{
	struct fake *f = opaque;
	f->quits++;
	f->quit_by = by;
}

static int fake_pause(void *opaque)
{
	struct fake *f = opaque;
	return f->paused++ ? (f->paused--, -EALREADY) : 0;
}

static int fake_resume(void *opaque)
{
	struct fake *f = opaque;
	return f->paused ? (f->paused = 0) : -EALREADY;
}

static const struct ctl_ops ops = {
	.status = fake_status, .power_button = fake_power, .pause = fake_pause,
	.resume = fake_resume, .quit = fake_quit,
};

/* serve until f->quits or the deadline; 0 on quit */
static int serve(struct ctl *c, struct fake *f, int seconds)
{
	time_t end = time(NULL) + seconds;
	while (!f->quits && time(NULL) < end) {
		struct pollfd p[CTL_POLLFDS];
		int n = ctl_pollfds(c, p);
		if (poll(p, (nfds_t)n, 200) > 0)
			ctl_ready(c, p, n);
	}
	return f->quits ? 0 : -1;
}

int main(void)
{
	char name[64], other[64];
	struct fake f = { 0 };
	struct ctl *c = NULL, *c2 = NULL;
	struct err e = { "" };
	int fd;
	pid_t pid;

	snprintf(name, sizeof(name), "unit-%ld", (long)getpid());
	snprintf(other, sizeof(other), "unit-none-%ld", (long)getpid());
	setenv("KL_CTL_NAME", name, 1);
	signal(SIGPIPE, SIG_IGN);

	CHECK(ctl_open(&c, name, &ops, &f, &e) == 0, "ctl_open %s: %s", name, e.msg);
	if (!c)
		return t_done();
	int rc = ctl_open(&c2, name, &ops, &f, &e);
	char want[64];
	snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
	CHECK(rc == -EADDRINUSE && !c2 && strstr(e.msg, want) && strstr(e.msg, name),
	      "a second endpoint of the same name: EADDRINUSE, naming the holder: %s", e.msg);
	CHECK(ctl_open(&c2, "", &ops, &f, &e) == -EINVAL, "an empty name: EINVAL");
	CHECK(ctl_connect(other, &fd, &pid, &e) == -ENOENT && fd == -1 &&
	      strstr(e.msg, "not running"), "connect to a name nobody serves: ENOENT: %s", e.msg);

	char **names;
	size_t n;
	int found = 0;
	CHECK(ctl_names(&names, &n) == 0, "ctl_names");
	for (size_t i = 0; i < n; i++) {
		found += !strcmp(names[i], name);
		if (i)
			CHECK(strcmp(names[i - 1], names[i]) < 0, "names sorted: %s < %s",
			      names[i - 1], names[i]);
		free(names[i]);
	}
	free(names);
	CHECK(found == 1, "ctl_names lists %s once (%zu names)", name, n);

	/* the independent peer, against the server run from this loop */
	fflush(stdout);
	pid_t peer = fork();
	if (peer == 0) {
		execlp("python3", "python3", "tests/unit/ctl_peer.py", name, (char *)NULL);
		_exit(127);
	}
	CHECK(peer > 0, "fork the peer");
	rc = serve(c, &f, 60);
	CHECK(rc == 0, "the peer sent quit within 60 s");
	ctl_close(c); /* the peer waits for this close */
	c = NULL;
	int st = -1;
	waitpid(peer, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ctl_peer.py passed (status %d)", st);
	CHECK_EQ(f.presses, 1, "one powerdown pressed the power button once");
	CHECK_EQ(f.quits, 1, "one quit (the refused uid's did not count)");
	CHECK_EQ(f.quit_by, peer, "quit names the client's pid (SO_PEERCRED)");

	/* the client side: a call, then the wait for the server to go */
	memset(&f, 0, sizeof(f));
	CHECK(ctl_open(&c, name, &ops, &f, &e) == 0, "the name is free again after close: %s",
	      e.msg);
	pid_t srv = fork();
	if (srv == 0) {
		_exit(serve(c, &f, 20) ? 1 : 0);
	}
	ctl_close(c); /* the child serves; this copy of the endpoint goes */
	json_t *r = NULL;
	pid = 0;
	/* SO_PEERCRED gives whoever called listen(): this process */
	CHECK(ctl_connect(name, &fd, &pid, &e) == 0 && pid == getpid(),
	      "ctl_connect: the listener's pid from the kernel (%ld)", (long)pid);
	CHECK(ctl_call(fd, "status", &r, 5000, &e) == 0 &&
	      json_integer_value(json_object_get(json_object_get(r, "status"), "cpus")) == 3,
	      "ctl_call status: %s", e.msg);
	json_decref(r);
	CHECK(ctl_call(fd, "nonsense", &r, 5000, &e) == -EREMOTEIO && !r &&
	      strstr(e.msg, "unknown cmd"), "a refused request: EREMOTEIO with the server's words: %s",
	      e.msg);
	CHECK(ctl_wait_gone(fd, 300) == -ETIMEDOUT, "ctl_wait_gone: still there after 300 ms");
	CHECK(ctl_call(fd, "quit", &r, 5000, &e) == 0, "ctl_call quit: %s", e.msg);
	json_decref(r);
	CHECK(ctl_wait_gone(fd, 5000) == 0, "ctl_wait_gone: the server's exit is seen");
	close(fd);
	waitpid(srv, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the serving child saw quit");
	CHECK(ctl_connect(name, &fd, &pid, &e) == -ENOENT, "gone: nothing serves the name");
	return t_done();
}

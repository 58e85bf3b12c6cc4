/* kvmlab-vm list, stop, pause, resume and console: the running VMs of
 * this network namespace, through their control sockets (ctl.h). */
#include "cmd_ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "cli.h"
#include "ctl.h"
#include "vm.h"

#define CALL_MS 5000        /* a live VMM answers from its main loop at once */
#define STOP_DEFAULT_S 30   /* the guest's own shutdown, before giving up */
#define QUIT_WAIT_MS 30000  /* after "quit": the VMM removes its taps and leases */
#define EXIT_WAIT_MS 5000   /* from the socket's close to the process's exit */

const char cmd_list_usage[] =
	"usage: kvmlab-vm list [NAME] [--json]\n"
	"\n"
	"list: the VMs running in this network namespace (each one's control\n"
	"socket, @kvmlab-vm/NAME): name, pid, vCPUs, memory, uptime, state\n"
	"(running, paused) and each NIC's tap, network and address. With NAME only that VM (exit 1 if it\n"
	"does not run). Only VMs run by root or by this user answer. On an IPv6\n"
	"network the guest picks its own address (SLAAC): the ones it claimed\n"
	"in the prefix (its duplicate address detection) follow, newest first.\n"
	"  --json     one JSON array of the VMs' full status (kernel, command\n"
	"             line, console, NICs with MAC and forwards, disks, ...)\n"
	"  --help     this text\n";

const char cmd_stop_usage[] =
	"usage: kvmlab-vm stop NAME [--timeout SECONDS] [--force]\n"
	"\n"
	"stop: press VM NAME's ACPI power button (as SIGPWR and Ctrl-A p do; a\n"
	"paused VM is resumed first) and wait until its kvmlab-vm has exited and removed what it made (taps,\n"
	"leases, forwards).\n"
	"  --timeout  how long the guest has to shut down, default 30\n"
	"  --force    when it has not by then, quit the VM (as Ctrl-A x does);\n"
	"             with --timeout 0, at once\n"
	"  --help     this text\n"
	"exit status: 0 the VM is gone, 1 it is not running, not ours, or still\n"
	"running after --timeout without --force, 2 usage error\n";

const char cmd_pause_usage[] =
	"usage: kvmlab-vm pause NAME\n"
	"\n"
	"pause: stop running VM NAME's vCPUs until kvmlab-vm resume (its devices\n"
	"go on; the guest sees nothing until it runs again, and a kvmclock guest\n"
	"is told it was paused, so it reports no lockup). list shows it paused.\n"
	"  --help     this text\n"
	"exit status: 0 paused, 1 not running, not ours or paused already\n";

const char cmd_resume_usage[] =
	"usage: kvmlab-vm resume NAME\n"
	"\n"
	"resume: run VM NAME's vCPUs again after kvmlab-vm pause.\n"
	"  --help     this text\n"
	"exit status: 0 running, 1 not running, not ours or not paused\n";

static int want_name(const char *cmd, const char *name)
{
	const char *bad = name + strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					"0123456789_.-");
	if (!*name || strlen(name) > CTL_NAME_MAX || *bad)
		return cli_value_error("%s %s: want a VM name of 1..%d of [A-Za-z0-9_.-]", cmd,
				       name, CTL_NAME_MAX);
	return 0;
}

/* VM name's status object (*st, a new reference), or -errno with e set:
 * -ENOENT and -EPIPE when the VM is not there, or going */
static int status_of(const char *name, json_t **st, struct err *e)
{
	int fd, rc;
	json_t *r = NULL;
	*st = NULL;
	if ((rc = ctl_connect(name, &fd, NULL, e)))
		return rc;
	rc = ctl_call(fd, "status", &r, CALL_MS, e);
	if (!rc) {
		*st = json_incref(json_object_get(r, "status"));
		if (!json_is_object(*st)) {
			json_decref(*st);
			*st = NULL;
			rc = errf(e, EPROTO, "VM %s: status: no status object in the reply", name);
		}
	} else {
		/* ctl_call names the request; say which VM */
		char m[sizeof(e->msg)];
		snprintf(m, sizeof(m), "%s", e->msg);
		errf(e, -rc, "VM %s: %s", name, m);
	}
	json_decref(r);
	close(fd);
	return rc;
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static void print_row(const json_t *st)
{
	char nets[256] = "";
	size_t i;
	json_t *nic;
	json_array_foreach(json_object_get(st, "nics"), i, nic) {
		size_t l = strlen(nets);
		snprintf(nets + l, sizeof(nets) - l, "%s%s", l ? "," : "", str(nic, "tap"));
		l = strlen(nets);
		if (!json_object_get(nic, "net"))
			continue;
		snprintf(nets + l, sizeof(nets) - l, "(%s %s", str(nic, "net"), str(nic, "addr"));
		size_t k;
		json_t *a6;
		json_array_foreach(json_object_get(nic, "addr6"), k, a6) {
			l = strlen(nets);
			snprintf(nets + l, sizeof(nets) - l, " %s", json_string_value(a6) ?
				 json_string_value(a6) : "-");
		}
		l = strlen(nets);
		snprintf(nets + l, sizeof(nets) - l, ")");
	}
	double up = json_real_value(json_object_get(st, "uptime_s"));
	printf("%-20s %8lld %4lld %7lldM %9.0fs %-8s %s\n", str(st, "name"),
	       (long long)json_integer_value(json_object_get(st, "pid")),
	       (long long)json_integer_value(json_object_get(st, "cpus")),
	       (long long)json_integer_value(json_object_get(st, "mem_mib")), up,
	       str(st, "state"), *nets ? nets : "-");
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, json = 0, rc = 0, named = 0;
	char **names = NULL;
	size_t n = 0;
	struct err e = { "" };

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'h': fputs(cmd_list_usage, stdout); return 0;
		default:
			return cli_usage_error("list", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return cli_usage_error("list", "unexpected argument '%s'", argv[optind + 1]);
	if (optind < argc) {
		if ((rc = want_name("list", argv[optind])))
			return rc;
		names = malloc(sizeof(*names));
		if (!names || !(names[0] = strdup(argv[optind])))
			return cli_value_error("list: out of memory");
		n = 1;
		named = 1;
	} else {
		int r = ctl_names(&names, &n);
		if (r)
			return cli_value_error("list: /proc/net/unix: %s", strerror(-r));
	}
	json_t *all = json_array();
	if (!json)
		printf("%-20s %8s %4s %8s %10s %-8s %s\n", "NAME", "PID", "CPUS", "MEM", "UPTIME",
		       "STATE", "NICS (NETWORK ADDRESS)");
	for (size_t i = 0; i < n; i++) {
		json_t *st;
		int r = status_of(names[i], &st, &e);
		/* one that ended since /proc/net/unix was read is not
		 * running: left out, unless it was asked for by name */
		if ((r == -ENOENT || r == -EPIPE) && !named)
			continue;
		if (r) {
			/* not ours, or not answering: one line each, and the
			 * list goes on */
			fprintf(stderr, "kvmlab-vm: list: %s\n", e.msg);
			rc = VM_RC_SETUP;
			continue;
		}
		if (json)
			json_array_append(all, st);
		else
			print_row(st);
		json_decref(st);
	}
	if (json) {
		char *s = json_dumps(all, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
		if (s)
			puts(s);
		free(s);
	}
	json_decref(all);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (fflush(stdout))
		rc = VM_RC_SETUP;
	return rc;
}

/* The one VM NAME argument left after the options: checked, then its
 * control socket connected (*fd, the VMM's *pid). 0, or the exit status
 * with its line said. */
static int open_vm(const char *cmd, int argc, char **argv, const char **name, int *fd,
		   pid_t *pid)
{
	struct err e = { "" };
	int rc;
	if (optind >= argc)
		return cli_usage_error(cmd, "missing VM name");
	if (argc - optind > 1)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
	*name = argv[optind];
	if ((rc = want_name(cmd, *name)))
		return rc;
	if (ctl_connect(*name, fd, pid, &e))
		return cli_value_error("%s: %s", cmd, e.msg);
	return 0;
}

/* pause NAME, resume NAME: one request, its answer */
static int one_call(const char *cmd, const char *usage, int argc, char **argv)
{
	int fd, rc;
	pid_t pid;
	json_t *r = NULL;
	struct err e = { "" };

	if ((rc = cli_help_only(cmd, usage, argc, argv)) >= 0)
		return rc;
	const char *name;
	if ((rc = open_vm(cmd, argc, argv, &name, &fd, &pid)))
		return rc;
	if (ctl_call(fd, cmd, &r, CALL_MS, &e))
		rc = cli_value_error("VM %s (pid %ld): %s", name, (long)pid, e.msg);
	json_decref(r);
	close(fd);
	return rc;
}

int cmd_pause(int argc, char **argv)
{
	return one_call("pause", cmd_pause_usage, argc, argv);
}

int cmd_resume(int argc, char **argv)
{
	return one_call("resume", cmd_resume_usage, argc, argv);
}

const char cmd_console_usage[] =
	"usage: kvmlab-vm console NAME\n"
	"\n"
	"console: attach this terminal to VM NAME's console, which must be a\n"
	"pseudo-terminal (kvmlab-vm run with its console on a pty): what the guest\n"
	"prints comes here, what you type goes to it (Ctrl-A x there quits the VM,\n"
	"as always). Ctrl-] leaves, and the VM runs on; past the end of its input\n"
	"it goes on showing the output. It ends by itself when the VM does.\n"
	"  --help     this text\n"
	"exit status: 0 left, or the VM ended; 1 not running, not ours, or its\n"
	"console is no pty\n";

#define DETACH 0x1d /* Ctrl-] as telnet and virsh console have it */

/* Copy what is readable on from to to; -1 when from is done (EOF, EIO:
 * a pty whose other side is gone), else 0 (or 1: the detach key seen,
 * with what came before it written). */
static int pump(int from, int to, bool watch_detach)
{
	char b[4096];
	ssize_t n = read(from, b, sizeof(b));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	char *d = watch_detach ? memchr(b, DETACH, (size_t)n) : NULL;
	size_t len = d ? (size_t)(d - b) : (size_t)n;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(to, b + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = to, .events = POLLOUT };
			(void)poll(&p, 1, 100);
			continue;
		}
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return d ? 1 : 0;
}

int cmd_console(int argc, char **argv)
{
	int fd, rc, pty = -1;
	pid_t pid;
	json_t *r = NULL;
	struct err e = { "" };

	if ((rc = cli_help_only("console", cmd_console_usage, argc, argv)) >= 0)
		return rc;
	const char *name;
	if ((rc = open_vm("console", argc, argv, &name, &fd, &pid)))
		return rc;
	if (ctl_call(fd, "status", &r, CALL_MS, &e)) {
		rc = cli_value_error("console: VM %s (pid %ld): %s", name, (long)pid, e.msg);
		goto out;
	}
	const char *con = json_string_value(json_object_get(json_object_get(r, "status"), "console"));
	if (!con || strncmp(con, "pty:", 4)) {
		rc = cli_value_error("console: VM %s (pid %ld): its console is %s, not a pty (run it "
				     "with its console on a pty)", name, (long)pid, con ? con : "unknown");
		goto out;
	}
	pty = open(con + 4, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (pty < 0) {
		rc = cli_value_error("console: VM %s: %s: %s", name, con + 4, strerror(errno));
		goto out;
	}
	if (isatty(STDIN_FILENO)) {
		fprintf(stderr, "kvmlab-vm: console of VM %s (%s); Ctrl-] leaves\n", name, con + 4);
		cli_tty_raw();
	}
	bool in_open = true, left = false;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = pty, .events = POLLIN },
			{ .fd = fd, .events = POLLIN }, /* the VMM's close: it is gone */
		};
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents && pump(pty, STDOUT_FILENO, false) < 0)
			break;
		if (p[0].revents) {
			int k = pump(STDIN_FILENO, pty, true);
			if (k == 1) {
				left = true;
				break;
			}
			if (k < 0)
				in_open = false; /* no more input: watch the output */
		}
		if (p[2].revents) {
			/* gone: what it printed last is still in the pty */
			while (pump(pty, STDOUT_FILENO, false) == 0 && poll(p + 1, 1, 50) > 0)
				;
			break;
		}
	}
	cli_tty_restore();
	fprintf(stderr, "%skvmlab-vm: %s\n", isatty(STDOUT_FILENO) ? "\r\n" : "",
		left ? "left the console; the VM runs on" : "the VM has ended");
	rc = 0;
out:
	if (pty >= 0)
		close(pty);
	json_decref(r);
	close(fd);
	return rc;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' }, { "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c, force = 0, rc, fd;
	long tmo = STOP_DEFAULT_S;
	pid_t pid;
	json_t *r = NULL;
	struct err e = { "" };

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 't': {
			char *end;
			errno = 0;
			tmo = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || tmo < 0 || tmo > 86400)
				return cli_value_error("stop: --timeout %s: want 0..86400 seconds",
						       optarg);
			break;
		}
		case 'f': force = 1; break;
		case 'h': fputs(cmd_stop_usage, stdout); return 0;
		case ':':
			return cli_usage_error("stop", "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error("stop", "unknown option '%s'", argv[optind - 1]);
		}
	}
	const char *name;
	if ((rc = open_vm("stop", argc, argv, &name, &fd, &pid)))
		return rc;
	/* the process itself, while it still holds the socket (so the pid is
	 * its): its close comes last in the VMM, and the exit right after */
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* the connection stays open: its close is the VMM's exit */
	if (!(force && tmo == 0)) {
		/* a paused guest cannot see its button: run it first */
		int q = ctl_call(fd, "status", &r, CALL_MS, &e);
		if (q == -EPIPE)
			goto out; /* it was going anyway: gone now */
		const char *state = json_string_value(
			json_object_get(json_object_get(r, "status"), "state"));
		if (!q && state && !strcmp(state, "paused")) {
			json_decref(r);
			r = NULL;
			q = ctl_call(fd, "resume", &r, CALL_MS, &e);
		}
		if (q) {
			rc = cli_value_error("stop: VM %s (pid %ld): %s", name, (long)pid, e.msg);
			goto out;
		}
		json_decref(r);
		r = NULL;
		if (ctl_call(fd, "powerdown", &r, CALL_MS, &e)) {
			rc = cli_value_error("stop: VM %s (pid %ld): %s", name, (long)pid, e.msg);
			goto out;
		}
		json_decref(r);
		r = NULL;
		if (!ctl_wait_gone(fd, (int)(tmo * 1000)))
			goto out; /* rc 0 */
		if (!force) {
			rc = cli_value_error("stop: VM %s (pid %ld): still running %ld s after its "
					     "power button was pressed (--force quits it)", name,
					     (long)pid, tmo);
			goto out;
		}
	}
	/* -EPIPE: it closed before answering, it was going anyway */
	int q = ctl_call(fd, "quit", &r, CALL_MS, &e);
	if (q && q != -EPIPE) {
		rc = cli_value_error("stop: VM %s (pid %ld): %s", name, (long)pid, e.msg);
		goto out;
	}
	if (ctl_wait_gone(fd, QUIT_WAIT_MS))
		rc = cli_value_error("stop: VM %s (pid %ld): still running %d s after quit", name,
				     (long)pid, QUIT_WAIT_MS / 1000);
out:
	if (!rc && pfd >= 0) {
		/* readable once the process has exited (Linux 5.3+; without
		 * pidfds the socket's close is the word) */
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		if (poll(&p, 1, EXIT_WAIT_MS) == 0)
			rc = cli_value_error("stop: VM %s (pid %ld): its VMM closed its socket but "
					     "has not exited %d s later", name, (long)pid,
					     EXIT_WAIT_MS / 1000);
	}
	if (pfd >= 0)
		close(pfd);
	json_decref(r);
	close(fd);
	return rc;
}

#include "runloop.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "serial.h"

#define CTRL_A 0x01
#define RETRY_MS 20  /* held input: how often to offer it to the UART again */

struct input {
	bool open;       /* in_fd still readable */
	bool esc;        /* Ctrl-A seen */
	bool told;       /* the "input dropped" note was given */
	size_t len;      /* bytes held for the UART */
	uint8_t held[RUNLOOP_INPUT_MAX];
};

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void note(const struct runloop_cfg *c, const char *msg)
{
	/* the console queue, not stderr: a note must not block this loop */
	if (c->out)
		(void)console_write(c->out, msg, strlen(msg));
}

/* The guest's ACPI power button; what it does is the guest's business. */
static void press(const struct runloop_cfg *c)
{
	if (c->power_button(c->opaque))
		note(c, "\r\nkvmlab-vm: the power button could not be pressed\r\n");
	else
		note(c, "\r\nkvmlab-vm: power button pressed\r\n");
}

/* The devices' state on stderr; the guest runs on. */
static void report(const struct runloop_cfg *c)
{
	int rc = c->report(c->opaque);
	if (rc == -EBUSY)
		note(c, "\r\nkvmlab-vm: the last device report is still being written\r\n");
	else if (rc) {
		char msg[96];
		snprintf(msg, sizeof(msg), "\r\nkvmlab-vm: no device report: %s\r\n", strerror(-rc));
		note(c, msg);
	}
}

/* Offer the held input to the UART; keep what it cannot take yet. */
static void push(const struct runloop_cfg *c, struct input *in)
{
	if (!in->len)
		return;
	size_t n = serial_input(c->serial, in->held, in->len);
	memmove(in->held, in->held + n, in->len - n);
	in->len -= n;
}

/* Read what the user typed, whatever the UART's state: the escape keys
 * act at once; other bytes are held for the guest, and dropped (said
 * once) beyond RUNLOOP_INPUT_MAX. Returns true when the user quits. */
static bool read_input(const struct runloop_cfg *c, struct input *in)
{
	uint8_t buf[512];
	ssize_t n = read(c->in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return false;
	if (n <= 0) {
		in->open = false;
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		uint8_t ch = buf[i];
		if (in->esc) {
			in->esc = false;
			if (ch == 'x' || ch == 'X')
				return true;
			if (ch == 'h' || ch == '?') {
				note(c, "\r\nkvmlab-vm: Ctrl-A x quits, Ctrl-A p presses the power "
				     "button, Ctrl-A s reports the devices' state on stderr, "
				     "Ctrl-A Ctrl-A sends Ctrl-A\r\n");
				continue;
			}
			if ((ch == 'p' || ch == 'P') && c->power_button) {
				press(c);
				continue;
			}
			if ((ch == 's' || ch == 'S') && c->report) {
				report(c);
				continue;
			}
			if (ch != CTRL_A)
				continue;
		} else if (ch == CTRL_A) {
			in->esc = true;
			continue;
		}
		if (in->len < sizeof(in->held)) {
			in->held[in->len++] = ch;
		} else if (!in->told) {
			in->told = true;
			note(c, "\r\nkvmlab-vm: the guest is not reading its console; input dropped\r\n");
		}
	}
	push(c, in);
	return false;
}

enum exit_event runloop_run(const struct runloop_cfg *c, int *sig)
{
	static struct input in; /* 4 KiB: off the stack; one loop per process */
	long long panic_end = -1; /* when to stop waiting for the panic report's end */
	long long next_tick = c->tick ? now_ms() + RUNLOOP_TICK_MS : -1;

	memset(&in, 0, sizeof(in));
	in.open = c->in_fd >= 0;
	*sig = 0;
	for (;;) {
		struct pollfd p[3 + RUNLOOP_WATCH_MAX] = {
			{ .fd = c->sig_fd, .events = POLLIN },
			{ .fd = exit_fd(c->exit), .events = POLLIN },
			{ .fd = in.open ? c->in_fd : -1, .events = POLLIN },
		};
		int nw = c->watch_fds ? c->watch_fds(c->wopaque, p + 3) : 0;
		int tmo = in.len || panic_end >= 0 ? RETRY_MS : -1;
		if (next_tick >= 0) {
			long long left = next_tick - now_ms();
			left = left < 0 ? 0 : left;
			if (tmo < 0 || left < tmo)
				tmo = (int)left;
		}
		int r = poll(p, (nfds_t)(3 + nw), tmo);
		if (r < 0 && errno != EINTR)
			return EXIT_EV_FATAL;
		if (nw && r > 0)
			c->watch_ready(c->wopaque, p + 3, nw);
		if (next_tick >= 0 && now_ms() >= next_tick) {
			c->tick(c->opaque);
			next_tick = now_ms() + RUNLOOP_TICK_MS;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(c->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGPWR && c->power_button) {
					/* a graceful stop, as lxc-stop sends init */
					press(c);
					continue;
				}
				if (si.ssi_signo == SIGUSR2 && c->report) {
					report(c);
					continue;
				}
				*sig = (int)si.ssi_signo;
				return EXIT_EV_NONE;
			}
		}
		enum exit_event ev = exit_get(c->exit);
		if (ev == EXIT_EV_PANIC) {
			/* pvpanic fires before the kernel finishes its report:
			 * let the guest print the rest, briefly */
			if (panic_end < 0)
				panic_end = now_ms() + RUNLOOP_PANIC_TAIL_MS;
			if (now_ms() >= panic_end || serial_panic_done(c->serial))
				return ev;
			exit_ack(c->exit);
		} else if (ev != EXIT_EV_NONE) {
			return ev;
		}
		if (p[2].revents & POLLNVAL)
			in.open = false;
		else if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (read_input(c, &in))
				return EXIT_EV_QUIT;
		} else {
			push(c, &in);
		}
	}
}

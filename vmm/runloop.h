/* The main thread's loop while the guest runs: signals, the exit latch,
 * and console input with its escape keys (Ctrl-A x quits, Ctrl-A p
 * presses the power button, Ctrl-A s reports the devices' state, Ctrl-A
 * Ctrl-A sends Ctrl-A, Ctrl-A h helps).
 * It stays responsive whatever the guest and the terminal do: it takes no
 * lock that a vCPU can hold across a blocking call, never write()s to a
 * blocking fd, and reads input even while the UART's receive buffer is
 * full (holding it here, bounded), so the escape key and signals always
 * work. */
#ifndef KVMLAB_VMM_RUNLOOP_H
#define KVMLAB_VMM_RUNLOOP_H
#include "exit.h"

#define RUNLOOP_INPUT_MAX 4096   /* typed-ahead bytes held for a full UART */
#define RUNLOOP_PANIC_TAIL_MS 500 /* room for the rest of a panic report */
#define RUNLOOP_TICK_MS 1000     /* how often cfg.tick runs */
#define RUNLOOP_WATCH_MAX 16     /* fds cfg.watch_fds may add */

struct serial;
struct console;
struct pollfd;

struct runloop_cfg {
	int sig_fd;              /* signalfd; its signals end the loop */
	int in_fd;               /* console input, -1: none */
	struct exit_latch *exit;
	struct serial *serial;   /* where input goes, panic-report end */
	struct console *out;     /* for our own notes to the user; NULL: none */
	/* SIGPWR and Ctrl-A p press the guest's power button through this
	 * (the loop goes on: the guest decides); NULL: they end the loop
	 * like other signals */
	int (*power_button)(void *opaque);
	/* SIGUSR2 and Ctrl-A s ask for the devices' state on stderr (0 or
	 * -errno; the loop goes on either way); NULL: SIGUSR2 ends the loop */
	int (*report)(void *opaque);
	/* every RUNLOOP_TICK_MS (NULL: never); it may raise the exit latch */
	void (*tick)(void *opaque);
	void *opaque;
	/* more fds to serve (NULL: none), e.g. the control socket:
	 * watch_fds fills at most RUNLOOP_WATCH_MAX pollfds and returns how
	 * many; watch_ready gets them back with their revents. Neither may
	 * block; either may raise the exit latch. */
	int (*watch_fds)(void *wopaque, struct pollfd *p);
	void (*watch_ready)(void *wopaque, const struct pollfd *p, int n);
	void *wopaque;
};

/* Run until the guest is done (its exit event), the user quits
 * (EXIT_EV_QUIT), or a signal other than SIGPWR/SIGUSR2 arrives (EXIT_EV_NONE,
 * *sig set). A failed poll() is EXIT_EV_FATAL. */
enum exit_event runloop_run(const struct runloop_cfg *c, int *sig);
#endif

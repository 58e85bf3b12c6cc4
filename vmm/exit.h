/* Why the VM stops: a one-shot latch that vCPU threads and devices raise
 * and the main loop waits on. It sits below every unit that can end the
 * guest (cpu, serial, i8042, power) and below vm.c, which owns one; those
 * units get a pointer to it, never the VM. */
#ifndef KVMLAB_VMM_EXIT_H
#define KVMLAB_VMM_EXIT_H
#include "util.h"

/* The first event raised wins. */
enum exit_event {
	EXIT_EV_NONE = 0,
	EXIT_EV_POWEROFF, /* ACPI S5, KVM_SYSTEM_EVENT_SHUTDOWN */
	EXIT_EV_REBOOT,   /* ACPI reset, i8042 0xFE, triple fault, SYSTEM_EVENT_RESET */
	EXIT_EV_QUIT,     /* Ctrl-A x on the console */
	EXIT_EV_PANIC,    /* pvpanic, SYSTEM_EVENT_CRASH or the console panic line */
	EXIT_EV_FATAL,    /* a KVM exit we cannot handle (registers dumped) */
	EXIT_EV_HALT,     /* every vCPU stopped for good (halt.h) */
};

/* efd is an eventfd, so the waiter can sit in poll() next to stdin and
 * the signalfd; -1 (a latch without exit_init) only records the event. */
struct exit_latch {
	int ev;   /* enum exit_event, written once with a CAS */
	int efd;
};

int exit_init(struct exit_latch *x, struct err *e) WUR;
void exit_fini(struct exit_latch *x);
/* Any thread, any time; async-signal-safe. Later events are ignored. */
void exit_raise(struct exit_latch *x, enum exit_event ev);
enum exit_event exit_get(const struct exit_latch *x);
/* Readable once an event is raised (until exit_ack). */
int exit_fd(const struct exit_latch *x);
/* Consume the wake-up (the event stays). */
void exit_ack(struct exit_latch *x);
#endif

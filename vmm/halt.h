/* A guest that halted for good. A kernel without ACPI powers off by
 * halting every CPU ("System halted"), and `halt` does that on any
 * kernel: nothing exits to the VMM, the vCPUs just block in KVM. The
 * main loop calls halt_tick about once a second. While every vCPU blocks
 * (KVM's `blocking` statistic, read without disturbing them), it asks
 * each to look at its own state (cpu_probe: one signal exit each);
 * when all have stopped (cpu_stopped) in HALT_ROUNDS rounds in a row,
 * the guest is done. */
#ifndef KVMLAB_VMM_HALT_H
#define KVMLAB_VMM_HALT_H
#include <stdbool.h>

#define HALT_ROUNDS 2

struct halt_ops {
	/* 1: every vCPU is blocked in KVM now, 0: not, -errno: cannot tell
	 * (no binary statistics: the watch turns itself off) */
	int (*all_blocking)(void *opaque);
	void (*probe)(void *opaque, unsigned cpu, unsigned seq);
	/* -1 no answer to seq (yet), 0 may run, 1 stopped */
	int (*answer)(void *opaque, unsigned cpu, unsigned seq);
	void *opaque;
	unsigned ncpus;
};

struct halt_watch {
	unsigned seq;     /* the last round asked; 0: none yet */
	unsigned rounds;  /* rounds in a row that found every vCPU stopped */
	bool asked;       /* a round is out: read its answers next tick */
	bool off;
};

/* One tick: true once the guest has halted for good. */
bool halt_tick(struct halt_watch *w, const struct halt_ops *o);
#endif

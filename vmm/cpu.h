/* vCPUs: creation, CPUID/MSR/FPU/LAPIC state, the 64-bit entry state of
 * the BSP, and the run loop that dispatches exits to the buses. */
#ifndef KVMLAB_VMM_CPU_H
#define KVMLAB_VMM_CPU_H
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "bus.h"
#include "guestmem.h"
#include "util.h"

struct exit_latch;

/* Where vCPUs wait while the VM is paused (vm_pause): a vCPU kicked out
 * of KVM_RUN with `paused` set counts itself in `parked` and sleeps on
 * cv until `paused` clears or the VM stops. */
struct cpu_pause {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int paused;       /* under mu */
	unsigned parked;  /* under mu: vCPU threads asleep here */
};

/* What a vCPU needs of the VM (vm.c fills it; it outlives the vCPUs). */
struct cpu_env {
	int vm_fd;
	size_t run_size;             /* of the kvm_run mapping */
	const struct bus *pio, *mmio;
	struct exit_latch *exit;     /* raised when the guest is done */
	const int *stopping;         /* atomic: leave the run loop */
	const int *dump;             /* atomic: when leaving, dump the registers */
	struct cpu_pause *pause;     /* NULL: never paused */
};

struct vcpu {
	const struct cpu_env *env;
	unsigned id;            /* also its APIC id */
	int fd;
	int stats_fd;           /* KVM_GET_STATS_FD, -1: none (Linux < 5.14) */
	struct kvm_run *run;
	pthread_t th;
	/* cpu_probe: the last request, the last one answered, its answer */
	unsigned probe_req, probe_done; /* atomic */
	int probe_stopped;              /* atomic; valid for probe_done */
};

/* KVM_GET_SUPPORTED_CPUID, grown until it fits; free() the result. */
int cpu_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct err *e) WUR;
/* Leaf 1's TSC-deadline timer bit, set or cleared (what
 * KVM_CAP_TSC_DEADLINE_TIMER says; cpu_supported_cpuid applies it). */
void cpu_cpuid_tsc_deadline(struct kvm_cpuid2 *c, bool on);
/* Give CPUID entries the APIC id of vCPU id (leaves 1, 0xb, 0x1f,
 * 0x8000001e) and a one-package topology of ncpus cores. */
void cpu_patch_cpuid(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus);
/* Create vCPU id and give it CPUID (tmpl patched with its APIC id and the
 * topology of ncpus), MSRs, FPU and LAPIC LINT0/1 wiring. APs are left in
 * the wait-for-SIPI state. */
int cpu_init(struct vcpu *v, const struct cpu_env *env, unsigned id, unsigned ncpus,
	     const struct kvm_cpuid2 *tmpl, struct err *e) WUR;
/* GDT, empty IDT and identity page tables for the first 4 GiB. */
int cpu_write_boot_tables(const struct gmem *gm, struct err *e) WUR;
/* Long mode, paging on, RIP=entry, RSI=zeropage: the boot protocol's
 * 64-bit entry. */
int cpu_setup_bsp(struct vcpu *v, uint64_t entry, uint64_t zeropage,
		  struct err *e) WUR;
void cpu_close(struct vcpu *v);

/* Install the (empty) kick signal handler once per process. */
int cpu_signals_init(void) WUR;
#define CPU_KICK_SIGNAL SIGUSR1
void cpu_kick(struct vcpu *v);

/* One KVM_EXIT_IO / KVM_EXIT_MMIO onto its bus; run_size is the size of
 * the kvm_run mapping. -EINVAL (nothing dispatched) when KVM's sizes or
 * data offset would reach outside it. */
int cpu_exit_io(const struct bus *pio, struct kvm_run *run, size_t run_size) WUR;
int cpu_exit_mmio(const struct bus *mmio, struct kvm_run *run) WUR;
void *cpu_thread(void *arg);

/* What decides whether a vCPU has stopped for good (cpu_stopped). */
struct cpu_stop_view {
	uint32_t mp_state;   /* KVM_GET_MP_STATE */
	uint64_t rflags;
	uint32_t svr;        /* the LAPIC's spurious-interrupt vector register */
	bool nmi_pending;    /* an NMI or an event waiting to be delivered */
	bool event_injected;
};
/* Pure: can this vCPU run again only through an INIT, SIPI or NMI sent
 * from outside? Waiting for SIPI (never started, or taken offline by an
 * INIT), or halted with interrupts off and its LAPIC software-disabled:
 * where Linux's stop_this_cpu() leaves each CPU on halt, and on power-off
 * without ACPI. A spinlock deadlock (halted with IF=0 in PV spinlocks'
 * kvm_wait, LAPIC enabled) is not this. */
bool cpu_stopped(const struct cpu_stop_view *s);
/* Ask vCPU v to look at its own state (cpu_stopped) when its KVM_RUN
 * next returns; it is kicked out of KVM_RUN for that. seq != 0 names the
 * request. Any thread. */
void cpu_probe(struct vcpu *v, unsigned seq);
/* The answer to request seq: -1 not answered (yet), 0 may run, 1 stopped. */
int cpu_probe_answer(const struct vcpu *v, unsigned seq);
void cpu_dump(const struct vcpu *v, FILE *f);
#endif

/* The VM: configuration and the ordered builder. Devices and vCPUs
 * report that the guest is done through its exit latch (exit.h). */
#ifndef KVMLAB_VMM_VM_H
#define KVMLAB_VMM_VM_H
#include <pthread.h>
#include <stdint.h>
#include "bus.h"
#include "cpu.h"
#include "devices.h"
#include "exit.h"
#include "guestmem.h"
#include "halt.h"
#include "kvm.h"
#include "util.h"

/* Exit codes of `kvmlab-vm run` (also in --help). */
#define VM_RC_OK      0 /* poweroff, reboot, Ctrl-A x */
#define VM_RC_SETUP   1 /* host-side error before or while starting */
#define VM_RC_USAGE   2
#define VM_RC_PANIC   3
#define VM_RC_FATAL   4
/* killed by signal S: 128+S */

struct vm_cfg {
	const char *kernel, *initrd, *cmdline;
	uint64_t mem;      /* bytes */
	unsigned cpus;
	int console_fd;    /* where guest console output goes; -1: nowhere */
	struct dev_cfg dev; /* disks and NICs, in PCI slot order */
};

struct vcpu;
struct console;
struct serial;
struct i8042;

struct vm {
	struct kvm kvm;
	struct gmem gm;
	struct bus pio, mmio;
	struct exit_latch exit;
	struct cpu_env cpu_env;
	struct console *console; /* NULL: no console output */
	struct serial *serial;
	struct i8042 *i8042;
	struct vcpu *vcpus;
	unsigned nr_vcpus;
	unsigned nr_threads;   /* vCPU threads started */
	int devices_started;
	int stopping;          /* atomic: vCPU threads leave their loop */
	int dump;              /* atomic: vCPUs dump their registers when stopped */
	struct halt_watch halt;
	struct cpu_pause pause;
};

/* Validate cfg against the host, then build everything up to (not
 * including) the vCPU threads. On error, everything built is undone. */
int vm_build(struct vm *vm, const struct vm_cfg *cfg, struct err *e) WUR;
/* Start the vCPU threads. */
int vm_start(struct vm *vm, struct err *e) WUR;
#define VM_DUMP_WAIT_MS 200   /* SIGQUIT: the VM is going anyway */
#define VM_REPORT_WAIT_MS 20  /* SIGUSR2: the main loop waits for it */

/* Stop and join vCPU threads (idempotent). */
void vm_stop(struct vm *vm);
/* Stop, and have every vCPU dump its registers and interrupt state on
 * stderr as it leaves, then every device its rings, before they go
 * (SIGQUIT: where was the guest, and which queue is stuck?). */
void vm_stop_dump(struct vm *vm);
void vm_destroy(struct vm *vm);
/* Press the ACPI power button (the DSDT's GED line, layout.h): a guest
 * that handles it shuts down and powers off. 0 or -errno. Takes a
 * struct vm * as void * (runloop's callback). */
int vm_power_button(void *vm) WUR;
/* The devices' state (devices_dump) on stderr while the guest runs
 * (SIGUSR2, Ctrl-A s). The report is built here, with short waits for
 * busy locks, and written by a thread of its own: stderr may be a pipe
 * nobody reads, and the caller's loop must not block on it. -EBUSY: the
 * last report is still being written. Takes a struct vm * as void *. */
int vm_report(void *vm) WUR;
#define VM_PAUSE_WAIT_MS 1000 /* for every vCPU to leave KVM_RUN */
/* Stop running the guest's vCPUs until vm_resume: each is kicked out of
 * KVM_RUN and sleeps (devices and their threads go on; the guest does
 * not see their interrupts until it runs again). Waits until every vCPU
 * is out, then tells a kvmclock guest it was stopped (KVM_KVMCLOCK_CTRL:
 * no soft-lockup report for the gap). -EALREADY: paused already;
 * -ETIMEDOUT: a vCPU did not leave in VM_PAUSE_WAIT_MS (it is still
 * asked to; the VM counts as paused). Main thread. */
int vm_pause(struct vm *vm) WUR;
/* Run the vCPUs again. -EALREADY: not paused. */
int vm_resume(struct vm *vm) WUR;
int vm_paused(struct vm *vm);
/* The main loop's tick: raises EXIT_EV_HALT once the guest has halted
 * for good (halt.h). Takes a struct vm * as void *. */
void vm_tick(void *vm);
#endif

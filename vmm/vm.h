/* The VM: configuration, the ordered builder, the run/wait loop and the
 * way devices and vCPUs report that the guest is done. */
#ifndef KVMLAB_VMM_VM_H
#define KVMLAB_VMM_VM_H
#include <pthread.h>
#include <stdint.h>
#include "bus.h"
#include "guestmem.h"
#include "kvm.h"
#include "util.h"

/* Why the VM stops. The first event raised wins. */
enum vm_event {
	VM_EV_NONE = 0,
	VM_EV_POWEROFF, /* ACPI S5, KVM_SYSTEM_EVENT_SHUTDOWN */
	VM_EV_REBOOT,   /* ACPI reset, i8042 0xFE, triple fault, SYSTEM_EVENT_RESET */
	VM_EV_QUIT,     /* Ctrl-A x on the console */
	VM_EV_PANIC,    /* pvpanic, SYSTEM_EVENT_CRASH or the console panic line */
	VM_EV_FATAL,    /* a KVM exit we cannot handle (registers dumped) */
};

/* Exit codes of `kvmlab-vm run` (also in --help). */
#define VM_RC_OK      0 /* poweroff, reboot, Ctrl-A x */
#define VM_RC_SETUP   1 /* host-side error before or while starting */
#define VM_RC_USAGE   2
#define VM_RC_PANIC   3
#define VM_RC_FATAL   4
/* killed by signal S: 128+S */

/* A one-shot latch that vCPU threads and devices raise and the main
 * thread waits on (an eventfd, so it can sit in poll() next to stdin and
 * the signalfd). */
struct vm_exit {
	int ev;   /* enum vm_event, written once with a CAS */
	int efd;  /* eventfd */
};
void vm_exit_raise(struct vm_exit *x, enum vm_event ev);

struct vm_cfg {
	const char *kernel, *initrd, *cmdline;
	uint64_t mem;      /* bytes */
	unsigned cpus;
	int console_fd;    /* where guest console output goes; -1: nowhere */
	int tap_fd;        /* -1: none */
	const char *disk_path;
	int disk_readonly;
	uint8_t mac[6];    /* virtio-net MAC */
	const struct dhcp_lease *dhcp; /* non-NULL: answer the guest's DHCP (devices.h) */
};

struct dhcp_lease;
struct vcpu;
struct serial;
struct i8042;

struct vm {
	struct kvm kvm;
	struct gmem gm;
	struct bus pio, mmio;
	struct vm_exit exit;
	struct serial *serial;
	struct i8042 *i8042;
	struct vcpu *vcpus;
	unsigned nr_vcpus;
	unsigned nr_threads;   /* vCPU threads started */
	int devices_started;
	int stopping;          /* atomic: vCPU threads leave their loop */
};

/* Validate cfg against the host, then build everything up to (not
 * including) the vCPU threads. On error, everything built is undone. */
int vm_build(struct vm *vm, const struct vm_cfg *cfg, struct err *e) WUR;
/* Start the vCPU threads. */
int vm_start(struct vm *vm, struct err *e) WUR;
/* Stop and join vCPU threads (idempotent). */
void vm_stop(struct vm *vm);
void vm_destroy(struct vm *vm);
#endif

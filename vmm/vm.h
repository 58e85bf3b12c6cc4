/* The VM: configuration and the ordered builder. Devices and vCPUs
 * report that the guest is done through its exit latch (exit.h). */
#ifndef KVMLAB_VMM_VM_H
#define KVMLAB_VMM_VM_H
#include <pthread.h>
#include <stdint.h>
#include "bus.h"
#include "cpu.h"
#include "exit.h"
#include "guestmem.h"
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
	int tap_fds[8];    /* virtio-net: one tap queue per queue pair */
	unsigned tap_queues; /* 0: no virtio-net */
	int vhost;         /* DEV_VHOST_AUTO (0), _OFF, _ON */
	const char *disk_path;
	int disk_readonly;
	int disk_direct;   /* cache=none */
	int disk_aio;      /* DEV_AIO_AUTO (0), _THREAD, _URING */
	uint8_t mac[6];    /* virtio-net MAC */
	const struct dhcp_lease *dhcp; /* non-NULL: answer the guest's DHCP (devices.h) */
	const struct sock_fprog *dhcp_bpf; /* with dhcp: what a DHCP request is */
};

struct dhcp_lease;
struct sock_fprog;
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
};

/* Validate cfg against the host, then build everything up to (not
 * including) the vCPU threads. On error, everything built is undone. */
int vm_build(struct vm *vm, const struct vm_cfg *cfg, struct err *e) WUR;
/* Start the vCPU threads. */
int vm_start(struct vm *vm, struct err *e) WUR;
/* Stop and join vCPU threads (idempotent). */
void vm_stop(struct vm *vm);
/* Stop, and have every vCPU dump its registers and interrupt state on
 * stderr as it leaves (SIGQUIT: where was the guest?). */
void vm_stop_dump(struct vm *vm);
void vm_destroy(struct vm *vm);
#endif

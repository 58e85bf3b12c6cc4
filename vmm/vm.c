#include "vm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "acpi.h"
#include "boot.h"
#include "console.h"
#include "cpu.h"
#include "devices.h"
#include "layout.h"
#include "mptable.h"
#include "power.h"
#include "serial.h"
#include "virtio_mmio.h"

#define VCPU_STACK (256u << 10) /* run loops are shallow; keep RSS small */

static uint64_t host_mem_total(void)
{
	struct sysinfo si;
	if (sysinfo(&si) < 0)
		return 0;
	return (uint64_t)si.totalram * si.mem_unit;
}

static int validate(const struct vm_cfg *cfg, struct err *e)
{
	if (cfg->cpus < 1 || cfg->cpus > LAYOUT_MAX_CPUS)
		return errf(e, EINVAL, "--cpus %u: must be 1..%u", cfg->cpus, LAYOUT_MAX_CPUS);
	if (cfg->mem == 0)
		return errf(e, EINVAL, "--mem: must be above 0");
	if (cfg->mem % 4096)
		return errf(e, EINVAL, "--mem: must be a multiple of 4 KiB");
	unsigned virtio = devices_mmio_count(&cfg->dev);
	if (virtio > LAYOUT_VIRTIO_MMIO_MAX)
		return errf(e, EINVAL, "--virtio-transport mmio: %u virtio devices, at most %u",
			    virtio, LAYOUT_VIRTIO_MMIO_MAX);
	uint64_t host = host_mem_total();
	if (host && cfg->mem > host)
		return errf(e, ENOMEM, "--mem %llu MiB: more than host memory (%llu MiB)",
			    (unsigned long long)(cfg->mem >> 20),
			    (unsigned long long)(host >> 20));
	return 0;
}

static int add_pio(struct vm *vm, uint64_t port, uint64_t len,
		   const struct bus_ops *ops, void *opaque, const char *what, struct err *e)
{
	int rc = bus_register(&vm->pio, port, len, ops, opaque);
	if (rc)
		return errf(e, -rc, "bus: %s at port 0x%llx: %s", what,
			    (unsigned long long)port, strerror(-rc));
	return 0;
}

/* The whole VM, in the order things depend on each other. Nothing here
 * starts a thread except the console's writer (which only waits for
 * output) and devices_setup(), which comes last, after every host-side
 * check (files, sizes, KVM capabilities) has passed. */
int vm_build(struct vm *vm, const struct vm_cfg *cfg, struct err *e)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct boot_info bi;
	int rc;

	memset(vm, 0, sizeof(*vm));
	vm->pause = (struct cpu_pause){
		.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
	};
	vm->kvm.sys_fd = vm->kvm.vm_fd = -1;
	vm->exit.efd = -1;

	/* 1. config against the host */
	rc = validate(cfg, e);
	if (rc)
		return rc;
	rc = exit_init(&vm->exit, e);
	if (rc)
		return rc;
	if (cfg->console_fd >= 0) {
		rc = console_new(&vm->console, cfg->console_fd, e);
		if (rc)
			goto err_efd;
	}

	/* 2. guest RAM, and everything the guest finds in it at boot: this
	 * also validates the kernel, initrd and cmdline before KVM is touched */
	rc = gmem_alloc(&vm->gm, cfg->mem, e);
	if (rc)
		goto err_console;
	/* virtio-mmio devices are described before they exist: in the
	 * DSDT, the MP table and, for a kernel without ACPI, the command line */
	unsigned nmmio = devices_mmio_count(&cfg->dev);
	char *cmdline = NULL;
	int added = 0;
	if (nmmio) {
		char more[LAYOUT_VIRTIO_MMIO_MAX * 48];
		added = vmmio_cmdline(more, sizeof(more), nmmio);
		if (added < 0 || asprintf(&cmdline, "%s%s", cfg->cmdline, more) < 0) {
			rc = errf(e, ENOMEM, "virtio-mmio: command line: out of memory");
			goto err_gm;
		}
	}
	struct boot_cfg bc = { .kernel = cfg->kernel, .initrd = cfg->initrd,
			       .cmdline = cmdline ? cmdline : cfg->cmdline };
	rc = boot_load(&vm->gm, &bc, &bi, e);
	free(cmdline);
	if (rc == -E2BIG && added) {
		/* the user did not write all of it: say what was added */
		char was[sizeof(e->msg)];
		snprintf(was, sizeof(was), "%s", e->msg);
		(void)errf(e, E2BIG, "%s (%d bytes of it are the virtio_mmio.device= entries "
			   "of --virtio-transport mmio)", was, added);
	}
	if (rc)
		goto err_gm;
	rc = mptable_write(&vm->gm, cfg->cpus, nmmio, e);
	if (rc)
		goto err_gm;
	rc = acpi_write(&vm->gm, cfg->cpus, nmmio, e);
	if (rc)
		goto err_gm;
	rc = cpu_write_boot_tables(&vm->gm, e);
	if (rc)
		goto err_gm;

	/* 3. KVM: API, capabilities, VM, slots, irqchip, PIT */
	rc = kvm_open(&vm->kvm, e);
	if (rc)
		goto err_gm;
	if (cfg->cpus > vm->kvm.max_vcpus) {
		rc = errf(e, EINVAL, "--cpus %u: KVM allows at most %u",
			  cfg->cpus, vm->kvm.max_vcpus);
		goto err_kvm;
	}
	rc = kvm_setup_vm(&vm->kvm, &vm->gm, e);
	if (rc)
		goto err_kvm;

	/* 4. legacy devices on the port bus */
	struct serial_cfg sc = {
		.out = vm->console,
		.exit = &vm->exit,
		.irq_line = kvm_irq_line,
		.irq_opaque = &vm->kvm,
		.gsi = LAYOUT_IRQ_COM1,
	};
	rc = serial_new(&vm->serial, &sc, e);
	if (rc)
		goto err_kvm;
	vm->i8042 = i8042_new(&vm->exit);
	if (!vm->i8042) {
		rc = errf(e, ENOMEM, "i8042: out of memory");
		goto err_serial;
	}
	if ((rc = add_pio(vm, LAYOUT_PORT_COM1, 8, &serial_ops, vm->serial, "serial", e)) ||
	    (rc = add_pio(vm, LAYOUT_PORT_I8042_DATA, 1, &i8042_data_ops, vm->i8042, "i8042", e)) ||
	    (rc = add_pio(vm, LAYOUT_PORT_I8042_CMD, 1, &i8042_cmd_ops, vm->i8042, "i8042", e)) ||
	    (rc = add_pio(vm, LAYOUT_PORT_ACPI_SLEEP, 3, &power_acpi_ops, &vm->exit, "acpi", e)) ||
	    (rc = add_pio(vm, LAYOUT_PORT_PVPANIC, 1, &power_pvpanic_ops, &vm->exit, "pvpanic", e)))
		goto err_i8042;

	/* 5. vCPUs: CPUID/MSRs/FPU/LAPIC each, 64-bit entry state on the BSP */
	rc = cpu_supported_cpuid(vm->kvm.sys_fd, &cpuid, e);
	if (rc)
		goto err_i8042;
	vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		rc = errf(e, ENOMEM, "cpu: out of memory");
		goto err_cpuid;
	}
	vm->cpu_env = (struct cpu_env){
		.vm_fd = vm->kvm.vm_fd, .run_size = (size_t)vm->kvm.run_size,
		.pio = &vm->pio, .mmio = &vm->mmio, .exit = &vm->exit,
		.stopping = &vm->stopping, .dump = &vm->dump, .pause = &vm->pause,
	};
	for (; vm->nr_vcpus < cfg->cpus; vm->nr_vcpus++) {
		rc = cpu_init(&vm->vcpus[vm->nr_vcpus], &vm->cpu_env, vm->nr_vcpus, cfg->cpus, cpuid, e);
		if (rc)
			goto err_vcpus;
	}
	free(cpuid);
	cpuid = NULL;
	rc = cpu_setup_bsp(&vm->vcpus[0], bi.entry, bi.zeropage, e);
	if (rc)
		goto err_vcpus;

	/* 6. PCI bus and its devices (may start device threads) */
	struct dev_env env = {
		.pio = &vm->pio, .mmio = &vm->mmio, .gm = &vm->gm,
		.irq = { .msi = kvm_msi, .irq_line = kvm_irq_line,
			 .ioeventfd = kvm_ioeventfd, .msi_route = kvm_msi_route,
			 .msi_route_free = kvm_msi_route_free, .irqfd = kvm_irqfd,
			 .opaque = &vm->kvm },
		.exit = &vm->exit,
	};
	rc = devices_setup(&env, &cfg->dev, e);
	if (rc)
		goto err_vcpus;
	vm->devices_started = 1;
	return 0;

err_vcpus:
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		cpu_close(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nr_vcpus = 0;
err_cpuid:
	free(cpuid);
err_i8042:
	i8042_free(vm->i8042);
	vm->i8042 = NULL;
err_serial:
	serial_free(vm->serial);
	vm->serial = NULL;
err_kvm:
	kvm_close(&vm->kvm);
err_gm:
	gmem_free(&vm->gm);
err_console:
	console_free(vm->console, 0);
	vm->console = NULL;
err_efd:
	exit_fini(&vm->exit);
	return rc;
}

int vm_start(struct vm *vm, struct err *e)
{
	pthread_attr_t at;
	int rc;

	rc = cpu_signals_init();
	if (rc)
		return errf(e, -rc, "sigaction: %s", strerror(-rc));
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, VCPU_STACK);
	for (; vm->nr_threads < vm->nr_vcpus; vm->nr_threads++) {
		struct vcpu *v = &vm->vcpus[vm->nr_threads];
		rc = pthread_create(&v->th, &at, cpu_thread, v);
		if (rc) {
			pthread_attr_destroy(&at);
			vm_stop(vm);
			return errf(e, rc, "cpu %u: pthread_create: %s", v->id, strerror(rc));
		}
	}
	pthread_attr_destroy(&at);
	return 0;
}

void vm_stop(struct vm *vm)
{
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_SEQ_CST);
	/* under the lock: a vCPU about to park sees `stopping` or the wake */
	pthread_mutex_lock(&vm->pause.mu);
	pthread_cond_broadcast(&vm->pause.cv);
	pthread_mutex_unlock(&vm->pause.mu);
	for (unsigned i = 0; i < vm->nr_threads; i++)
		cpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nr_threads; i++)
		pthread_join(vm->vcpus[i].th, NULL);
	vm->nr_threads = 0;
	if (vm->devices_started) {
		/* the vCPUs told where they were; the rings tell the rest */
		if (__atomic_load_n(&vm->dump, __ATOMIC_SEQ_CST))
			devices_dump(stderr, VM_DUMP_WAIT_MS);
		devices_stop();
		vm->devices_started = 0;
	}
}

void vm_stop_dump(struct vm *vm)
{
	__atomic_store_n(&vm->dump, 1, __ATOMIC_SEQ_CST);
	vm_stop(vm);
}

void vm_destroy(struct vm *vm)
{
	vm_stop(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		cpu_close(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nr_vcpus = 0;
	i8042_free(vm->i8042);
	vm->i8042 = NULL;
	serial_free(vm->serial);
	vm->serial = NULL;
	/* what the guest printed last (a panic report) is worth a moment */
	console_free(vm->console, CONSOLE_DRAIN_MS);
	vm->console = NULL;
	kvm_close(&vm->kvm);
	gmem_free(&vm->gm);
	exit_fini(&vm->exit);
}

static int report_busy; /* atomic: a report thread is still writing */

static void *report_write(void *arg)
{
	char *buf = arg;
	size_t len = strlen(buf), off = 0;
	/* write(2), not stdio: a stuck stderr must not hold stdio's lock
	 * against the main thread's own messages */
	while (off < len) {
		ssize_t w = write(STDERR_FILENO, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(buf);
	__atomic_store_n(&report_busy, 0, __ATOMIC_RELEASE);
	return NULL;
}

int vm_report(void *opaque)
{
	struct vm *vm = opaque;
	char *buf = NULL;
	size_t len = 0;
	pthread_attr_t a;
	pthread_t t;
	int rc;

	if (!vm->devices_started)
		return -ENODEV;
	if (__atomic_exchange_n(&report_busy, 1, __ATOMIC_ACQ_REL))
		return -EBUSY;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		rc = -errno;
		goto err_busy;
	}
	devices_dump(f, VM_REPORT_WAIT_MS);
	if (fclose(f)) {
		rc = -ENOMEM;
		goto err_buf;
	}
	rc = -pthread_attr_init(&a);
	if (rc)
		goto err_buf;
	(void)pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	rc = -pthread_create(&t, &a, report_write, buf);
	pthread_attr_destroy(&a);
	if (rc)
		goto err_buf;
	return 0;
err_buf:
	free(buf);
err_busy:
	__atomic_store_n(&report_busy, 0, __ATOMIC_RELEASE);
	return rc;
}

static int halt_all_blocking(void *opaque)
{
	struct vm *vm = opaque;
	int fds[LAYOUT_MAX_CPUS];
	uint64_t n;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		fds[i] = vm->vcpus[i].stats_fd;
	int rc = kvm_stats_fd_sum(fds, vm->nr_vcpus, "blocking", &n);
	return rc ? rc : n == vm->nr_vcpus;
}

static void halt_probe(void *opaque, unsigned cpu, unsigned seq)
{
	struct vm *vm = opaque;
	cpu_probe(&vm->vcpus[cpu], seq);
}

static int halt_answer(void *opaque, unsigned cpu, unsigned seq)
{
	struct vm *vm = opaque;
	return cpu_probe_answer(&vm->vcpus[cpu], seq);
}

int vm_pause(struct vm *vm)
{
	struct cpu_pause *p = &vm->pause;
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	if (p->paused) {
		pthread_mutex_unlock(&p->mu);
		return -EALREADY;
	}
	p->paused = 1;
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < vm->nr_threads; i++)
		cpu_kick(&vm->vcpus[i]);
	struct timespec end = deadline_ms(VM_PAUSE_WAIT_MS);
	pthread_mutex_lock(&p->mu);
	while (p->parked < vm->nr_threads && !rc)
		rc = -pthread_cond_timedwait(&p->cv, &p->mu, &end);
	pthread_mutex_unlock(&p->mu);
	if (rc)
		return rc;
	/* the guest's kvmclock gets PVCLOCK_GUEST_STOPPED, so its watchdogs
	 * take the gap for a pause, not a lockup; EINVAL: no kvmclock there */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		(void)ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);
	return 0;
}

int vm_resume(struct vm *vm)
{
	struct cpu_pause *p = &vm->pause;
	pthread_mutex_lock(&p->mu);
	int was = p->paused;
	p->paused = 0;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return was ? 0 : -EALREADY;
}

int vm_paused(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause.mu);
	int v = vm->pause.paused;
	pthread_mutex_unlock(&vm->pause.mu);
	return v;
}

void vm_tick(void *opaque)
{
	struct vm *vm = opaque;
	/* a paused VM's vCPUs are not in KVM_RUN: nothing to watch */
	if (vm->nr_threads != vm->nr_vcpus || vm_paused(vm))
		return;
	const struct halt_ops o = {
		.all_blocking = halt_all_blocking, .probe = halt_probe, .answer = halt_answer,
		.opaque = vm, .ncpus = vm->nr_vcpus,
	};
	if (halt_tick(&vm->halt, &o))
		exit_raise(&vm->exit, EXIT_EV_HALT);
}

int vm_power_button(void *opaque)
{
	struct vm *vm = opaque;
	/* edge-triggered: the rising edge is the event, the fall re-arms */
	int rc = kvm_irq_line(&vm->kvm, LAYOUT_IRQ_GED, 1);
	if (rc == 0)
		rc = kvm_irq_line(&vm->kvm, LAYOUT_IRQ_GED, 0);
	return rc;
}

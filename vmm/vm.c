#include "vm.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "acpi.h"
#include "boot.h"
#include "cpu.h"
#include "devices.h"
#include "layout.h"
#include "mptable.h"
#include "power.h"
#include "serial.h"

#define VCPU_STACK (256u << 10) /* run loops are shallow; keep RSS small */

void vm_exit_raise(struct vm_exit *x, enum vm_event ev)
{
	int none = VM_EV_NONE;
	/* the first reason sticks: a panic that triple-faults is a panic */
	if (__atomic_compare_exchange_n(&x->ev, &none, (int)ev, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		uint64_t one = 1;
		ssize_t n = write(x->efd, &one, sizeof(one));
		(void)n; /* a full counter still wakes the reader */
	}
}

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
 * starts a thread except devices_setup(), which comes last, after every
 * host-side check (files, sizes, KVM capabilities) has passed. */
int vm_build(struct vm *vm, const struct vm_cfg *cfg, struct err *e)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct boot_info bi;
	int rc;

	memset(vm, 0, sizeof(*vm));
	vm->kvm.sys_fd = vm->kvm.vm_fd = -1;
	vm->exit.efd = -1;

	/* 1. config against the host */
	rc = validate(cfg, e);
	if (rc)
		return rc;
	vm->exit.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit.efd < 0)
		return errf(e, errno, "eventfd: %s", strerror(errno));

	/* 2. guest RAM, and everything the guest finds in it at boot: this
	 * also validates the kernel, initrd and cmdline before KVM is touched */
	rc = gmem_alloc(&vm->gm, cfg->mem, e);
	if (rc)
		goto err_efd;
	struct boot_cfg bc = { .kernel = cfg->kernel, .initrd = cfg->initrd,
			       .cmdline = cfg->cmdline };
	rc = boot_load(&vm->gm, &bc, &bi, e);
	if (rc)
		goto err_gm;
	rc = mptable_write(&vm->gm, cfg->cpus, e);
	if (rc)
		goto err_gm;
	rc = acpi_write(&vm->gm, cfg->cpus, e);
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
		.out_fd = cfg->console_fd,
		.exit = &vm->exit,
		.irq_line = kvm_irq_line,
		.irq_opaque = &vm->kvm,
		.gsi = LAYOUT_IRQ_COM1,
		.stop = &vm->stopping,
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
	for (; vm->nr_vcpus < cfg->cpus; vm->nr_vcpus++) {
		rc = cpu_init(&vm->vcpus[vm->nr_vcpus], vm, vm->nr_vcpus, cfg->cpus, cpuid, e);
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
		.irq = { .msi = kvm_msi, .irq_line = kvm_irq_line, .opaque = &vm->kvm },
	};
	struct dev_cfg dc = { .tap_fd = cfg->tap_fd, .disk_path = cfg->disk_path,
			      .disk_readonly = cfg->disk_readonly, .dhcp = cfg->dhcp };
	memcpy(dc.mac, cfg->mac, sizeof(dc.mac));
	rc = devices_setup(&env, &dc, e);
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
err_efd:
	close(vm->exit.efd);
	vm->exit.efd = -1;
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
	for (unsigned i = 0; i < vm->nr_threads; i++)
		cpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nr_threads; i++)
		pthread_join(vm->vcpus[i].th, NULL);
	vm->nr_threads = 0;
	if (vm->devices_started) {
		devices_stop();
		vm->devices_started = 0;
	}
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
	kvm_close(&vm->kvm);
	gmem_free(&vm->gm);
	if (vm->exit.efd >= 0)
		close(vm->exit.efd);
	vm->exit.efd = -1;
}

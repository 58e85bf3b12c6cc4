/* /dev/kvm: the API version and required capabilities, the VM fd, memory
 * slots, irqchip and PIT, and interrupt injection. */
#ifndef KVMLAB_VMM_KVM_H
#define KVMLAB_VMM_KVM_H
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "guestmem.h"
#include "util.h"

/* MSI routes get GSIs above the IOAPIC's pins. */
#define KVM_GSI_MSI_BASE 24u
#define KVM_MSI_ROUTES_MAX 512u
/* KVM's own default routing: GSIs 0-15 to PIC and IOAPIC, 16-23 to the
 * IOAPIC only; KVM_SET_GSI_ROUTING replaces it, so we repeat it. */
#define KVM_IRQCHIP_ROUTES (16u * 2 + 8u)

struct kvm_msi_route {
	bool used;
	uint64_t addr;
	uint32_t data;
};

struct kvm {
	int sys_fd;        /* /dev/kvm */
	int vm_fd;
	int run_size;      /* mmap size of a vCPU's struct kvm_run */
	unsigned max_vcpus;
	/* optional capabilities (the fast paths fall back without them);
	 * KVMLAB_VM_NO_FASTPATH=1 in the environment turns all of them off,
	 * to measure or test the fallbacks */
	bool has_routing, has_resample, has_ioev_anylen, has_ioeventfd;
	unsigned max_routes;
	/* MSI routes by GSI - KVM_GSI_MSI_BASE; route_lock guards them and
	 * serialises KVM_SET_GSI_ROUTING, which replaces the whole table */
	pthread_mutex_t route_lock;
	struct kvm_msi_route routes[KVM_MSI_ROUTES_MAX];
	struct kvm_irq_routing *route_buf;
};

struct kvm_cap_req {
	int cap;
	const char *name;
};
/* Every capability the VMM relies on; `check` reports the same list. */
extern const struct kvm_cap_req kvm_required_caps[];
extern const unsigned kvm_required_caps_nr;

/* Open /dev/kvm, check KVM_API_VERSION and every required capability
 * (the error names the first missing one), create the VM. */
int kvm_open(struct kvm *k, struct err *e) WUR;
/* TSS and identity-map pages, one memory slot per RAM region, the
 * in-kernel irqchip (PIC+IOAPIC+LAPIC) and PIT. */
int kvm_setup_vm(struct kvm *k, const struct gmem *gm, struct err *e) WUR;
void kvm_close(struct kvm *k);

/* Interrupt callbacks for devices; opaque is the struct kvm. 0 or -errno. */
int kvm_irq_line(void *opaque, unsigned gsi, int level);
int kvm_msi(void *opaque, uint64_t addr, uint32_t data);

/* In-kernel fast paths (struct dev_irq_ops); opaque is the struct kvm.
 * -ENOTSUP when the host lacks the capability. */
int kvm_ioeventfd(void *opaque, uint64_t addr, unsigned len, bool datamatch,
		  uint64_t data, int fd, bool assign);
int kvm_msi_route(void *opaque, int gsi, uint64_t addr, uint32_t data);
void kvm_msi_route_free(void *opaque, int gsi);
int kvm_irqfd(void *opaque, unsigned gsi, int fd, int resample_fd, bool assign);

/* Pure: the full table KVM_SET_GSI_ROUTING takes, the default irqchip
 * routes (KVM_IRQCHIP_ROUTES) then one MSI entry per used route r[i]
 * (GSI KVM_GSI_MSI_BASE + i). Entries written, or -ENOSPC above max. */
int kvm_routes_build(const struct kvm_msi_route *r, unsigned n,
		     struct kvm_irq_routing_entry *out, unsigned max) WUR;

/* Print the exit counts by reason (every vCPU statistic named *exits,
 * summed over vcpu_fds) from KVM's binary statistics (Linux 5.14+), or
 * else from debugfs. -errno if neither is readable. */
int kvm_stats_print(FILE *f, const struct kvm *k, const int *vcpu_fds, unsigned n);
/* Sum the binary statistic name over vCPU fds; -errno if absent. It
 * opens each vCPU's stats fd, a vCPU ioctl that waits while that vCPU is
 * in KVM_RUN: only once the vCPUs are stopped. */
int kvm_stats_sum(const int *fds, unsigned n, const char *name, uint64_t *out) WUR;
/* The same over stats fds opened before (KVM_GET_STATS_FD; -1: none,
 * -ENOTSUP); safe while the vCPUs run. */
int kvm_stats_fd_sum(const int *stats_fds, unsigned n, const char *name, uint64_t *out) WUR;

/* ioctl() that retries EINTR and returns -errno. */
int kvm_ioctl(int fd, unsigned long req, void *arg);
#endif

/* /dev/kvm: the API version and required capabilities, the VM fd, memory
 * slots, irqchip and PIT, and interrupt injection. */
#ifndef KVMLAB_VMM_KVM_H
#define KVMLAB_VMM_KVM_H
#include <stdint.h>
#include "guestmem.h"
#include "util.h"

struct kvm {
	int sys_fd;        /* /dev/kvm */
	int vm_fd;
	int run_size;      /* mmap size of a vCPU's struct kvm_run */
	unsigned max_vcpus;
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

/* ioctl() that retries EINTR and returns -errno. */
int kvm_ioctl(int fd, unsigned long req, void *arg);
#endif

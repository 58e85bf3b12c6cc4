#include "kvm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "layout.h"

const struct kvm_cap_req kvm_required_caps[] = {
#define CAP(c) { c, #c }
	CAP(KVM_CAP_USER_MEMORY),
	CAP(KVM_CAP_SET_TSS_ADDR),
	CAP(KVM_CAP_SET_IDENTITY_MAP_ADDR),
	CAP(KVM_CAP_IRQCHIP),
	CAP(KVM_CAP_PIT2),
	CAP(KVM_CAP_EXT_CPUID),
	CAP(KVM_CAP_MP_STATE),
	CAP(KVM_CAP_IMMEDIATE_EXIT),
	CAP(KVM_CAP_SIGNAL_MSI),
	CAP(KVM_CAP_IRQFD),
	CAP(KVM_CAP_IOEVENTFD),
#undef CAP
};
const unsigned kvm_required_caps_nr = ARRAY_SIZE(kvm_required_caps);

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int rc;
	do
		rc = ioctl(fd, req, arg);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

int kvm_open(struct kvm *k, struct err *e)
{
	int rc;

	k->vm_fd = -1;
	k->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->sys_fd < 0)
		return errf(e, errno, "kvm: /dev/kvm: %s", strerror(errno));
	rc = ioctl(k->sys_fd, KVM_GET_API_VERSION, 0);
	if (rc != KVM_API_VERSION) {
		rc = errf(e, ENOTSUP, "kvm: /dev/kvm: API version %d, need %d",
			  rc, KVM_API_VERSION);
		goto err_sys;
	}
	for (unsigned i = 0; i < kvm_required_caps_nr; i++) {
		if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, kvm_required_caps[i].cap) <= 0) {
			rc = errf(e, ENOTSUP, "kvm: /dev/kvm lacks %s",
				  kvm_required_caps[i].name);
			goto err_sys;
		}
	}
	k->run_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size < (int)sizeof(struct kvm_run)) {
		rc = errf(e, EINVAL, "kvm: KVM_GET_VCPU_MMAP_SIZE: %d", k->run_size);
		goto err_sys;
	}
	rc = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (rc <= 0)
		rc = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	k->max_vcpus = rc > 0 ? (unsigned)rc : 4; /* the API's documented floor */
	do
		k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
	while (k->vm_fd < 0 && errno == EINTR);
	if (k->vm_fd < 0) {
		rc = errf(e, errno, "kvm: KVM_CREATE_VM: %s", strerror(errno));
		goto err_sys;
	}
	return 0;
err_sys:
	close(k->sys_fd);
	k->sys_fd = -1;
	return rc;
}

int kvm_setup_vm(struct kvm *k, const struct gmem *gm, struct err *e)
{
	int rc;
	uint64_t idmap = LAYOUT_KVM_IDENTITY_MAP;

	/* VMX needs these pages for real-mode emulation; they sit in the
	 * PCI hole where no RAM or BAR lives */
	rc = ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);
	if (rc < 0)
		return errf(e, errno, "kvm: KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	rc = ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS);
	if (rc < 0)
		return errf(e, errno, "kvm: KVM_SET_TSS_ADDR: %s", strerror(errno));
	for (unsigned i = 0; i < gm->nr; i++) {
		struct kvm_userspace_memory_region mr = {
			.slot = i,
			.guest_phys_addr = gm->r[i].gpa,
			.memory_size = gm->r[i].size,
			.userspace_addr = (uintptr_t)gm->r[i].host,
		};
		rc = ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr);
		if (rc < 0)
			return errf(e, errno, "kvm: KVM_SET_USER_MEMORY_REGION slot %u: %s",
				    i, strerror(errno));
	}
	rc = ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0);
	if (rc < 0)
		return errf(e, errno, "kvm: KVM_CREATE_IRQCHIP: %s", strerror(errno));
	/* the dummy speaker port (0x61) keeps PIT calibration in the kernel */
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	rc = ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit);
	if (rc < 0)
		return errf(e, errno, "kvm: KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

void kvm_close(struct kvm *k)
{
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->sys_fd >= 0)
		close(k->sys_fd);
	k->vm_fd = k->sys_fd = -1;
}

int kvm_irq_line(void *opaque, unsigned gsi, int level)
{
	const struct kvm *k = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = level ? 1 : 0 };
	return kvm_ioctl(k->vm_fd, KVM_IRQ_LINE, &irq);
}

int kvm_msi(void *opaque, uint64_t addr, uint32_t data)
{
	const struct kvm *k = opaque;
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	/* returns >0 when delivered, 0 when blocked by the guest */
	int rc = kvm_ioctl(k->vm_fd, KVM_SIGNAL_MSI, &msi);
	return rc < 0 ? rc : 0;
}

#include "kvm.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdlib.h>
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
	rc = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	k->has_routing = rc > 0;
	k->max_routes = rc > 0 ? (unsigned)rc : 0;
	k->has_resample = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD_RESAMPLE) > 0;
	k->has_ioev_anylen = ioctl(k->sys_fd, KVM_CHECK_EXTENSION,
				   KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	k->has_ioeventfd = true; /* KVM_CAP_IOEVENTFD is required above */
	const char *nf = getenv("KVMLAB_VM_NO_FASTPATH");
	if (nf && *nf && strcmp(nf, "0"))
		k->has_routing = k->has_resample = k->has_ioeventfd = false;
	memset(k->routes, 0, sizeof(k->routes));
	k->route_buf = NULL;
	pthread_mutex_init(&k->route_lock, NULL);
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
	if (k->sys_fd >= 0) { /* kvm_open succeeded: its lock exists */
		free(k->route_buf);
		k->route_buf = NULL;
		pthread_mutex_destroy(&k->route_lock);
	}
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

/* --- in-kernel fast paths --- */

int kvm_ioeventfd(void *opaque, uint64_t addr, unsigned len, bool datamatch,
		  uint64_t data, int fd, bool assign)
{
	const struct kvm *k = opaque;
	if (!k->has_ioeventfd)
		return -ENOTSUP;
	if (len == 0 && !k->has_ioev_anylen)
		len = 2; /* virtio drivers write the 16-bit queue index */
	struct kvm_ioeventfd io = {
		.datamatch = data, .addr = addr, .len = len, .fd = fd,
		.flags = (datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	return kvm_ioctl(k->vm_fd, KVM_IOEVENTFD, &io);
}

int kvm_routes_build(const struct kvm_msi_route *r, unsigned n,
		     struct kvm_irq_routing_entry *out, unsigned max)
{
	unsigned k = 0;
	for (unsigned gsi = 0; gsi < KVM_GSI_MSI_BASE; gsi++) {
		if (gsi < 16) {
			if (k == max)
				return -ENOSPC;
			out[k++] = (struct kvm_irq_routing_entry){
				.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
								 : KVM_IRQCHIP_PIC_SLAVE,
					       .pin = gsi % 8 },
			};
		}
		if (k == max)
			return -ENOSPC;
		out[k++] = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi },
		};
	}
	for (unsigned i = 0; i < n; i++) {
		if (!r[i].used)
			continue;
		if (k == max)
			return -ENOSPC;
		out[k++] = (struct kvm_irq_routing_entry){
			.gsi = KVM_GSI_MSI_BASE + i, .type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)r[i].addr,
				   .address_hi = (uint32_t)(r[i].addr >> 32),
				   .data = r[i].data },
		};
	}
	return (int)k;
}

/* Route table of used entries up to the highest one; route_lock held. */
static int routes_commit_locked(struct kvm *k)
{
	unsigned max = KVM_IRQCHIP_ROUTES + KVM_MSI_ROUTES_MAX;
	if (max > k->max_routes)
		max = k->max_routes;
	if (!k->route_buf) {
		k->route_buf = calloc(1, sizeof(*k->route_buf) +
				      max * sizeof(struct kvm_irq_routing_entry));
		if (!k->route_buf)
			return -ENOMEM;
	}
	int nr = kvm_routes_build(k->routes, KVM_MSI_ROUTES_MAX, k->route_buf->entries, max);
	if (nr < 0)
		return nr;
	k->route_buf->nr = (uint32_t)nr;
	k->route_buf->flags = 0;
	return kvm_ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, k->route_buf);
}

int kvm_msi_route(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
	struct kvm *k = opaque;
	if (!k->has_routing)
		return -ENOTSUP;
	pthread_mutex_lock(&k->route_lock);
	int rc, i = gsi - (int)KVM_GSI_MSI_BASE;
	if (gsi < 0) {
		for (i = 0; i < (int)KVM_MSI_ROUTES_MAX && k->routes[i].used; i++)
			;
	}
	if (i < 0 || i >= (int)KVM_MSI_ROUTES_MAX || (gsi >= 0 && !k->routes[i].used)) {
		rc = gsi < 0 ? -ENOSPC : -EINVAL;
		goto out;
	}
	struct kvm_msi_route old = k->routes[i];
	if (old.used && old.addr == addr && old.data == data) {
		rc = (int)KVM_GSI_MSI_BASE + i; /* unchanged: spare the ioctl */
		goto out;
	}
	k->routes[i] = (struct kvm_msi_route){ .used = true, .addr = addr, .data = data };
	rc = routes_commit_locked(k);
	if (rc < 0)
		k->routes[i] = old;
	else
		rc = (int)KVM_GSI_MSI_BASE + i;
out:
	pthread_mutex_unlock(&k->route_lock);
	return rc;
}

void kvm_msi_route_free(void *opaque, int gsi)
{
	struct kvm *k = opaque;
	int i = gsi - (int)KVM_GSI_MSI_BASE;
	if (i < 0 || i >= (int)KVM_MSI_ROUTES_MAX)
		return;
	pthread_mutex_lock(&k->route_lock);
	if (k->routes[i].used) {
		k->routes[i].used = false;
		(void)routes_commit_locked(k);
	}
	pthread_mutex_unlock(&k->route_lock);
}

int kvm_irqfd(void *opaque, unsigned gsi, int fd, int resample_fd, bool assign)
{
	const struct kvm *k = opaque;
	struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi };
	if (!assign) {
		f.flags = KVM_IRQFD_FLAG_DEASSIGN;
	} else if (resample_fd >= 0) {
		if (!k->has_resample)
			return -ENOTSUP;
		f.flags = KVM_IRQFD_FLAG_RESAMPLE;
		f.resamplefd = (uint32_t)resample_fd;
	}
	return kvm_ioctl(k->vm_fd, KVM_IRQFD, &f);
}

/* --- statistics --- */

#define STATS_MAX 64

struct stat_acc {
	unsigned n;
	struct { char name[48]; uint64_t val; } s[STATS_MAX];
};

static void acc_add(struct stat_acc *a, const char *name, uint64_t val)
{
	for (unsigned i = 0; i < a->n; i++) {
		if (!strcmp(a->s[i].name, name)) {
			a->s[i].val += val;
			return;
		}
	}
	if (a->n == STATS_MAX || strlen(name) >= sizeof(a->s[0].name))
		return;
	snprintf(a->s[a->n].name, sizeof(a->s[0].name), "%s", name);
	a->s[a->n++].val = val;
}

static bool is_exit_stat(const char *name)
{
	size_t l = strlen(name);
	return l >= 5 && !strcmp(name + l - 5, "exits");
}

/* Walk one binary stats fd (Documentation/virt/kvm/api.rst, 4.133):
 * header, then descriptors of name_size-byte names, then the data.
 * Single-value statistics only; histograms are skipped. */
static int stats_walk(int fd, bool (*want)(const char *), struct stat_acc *a)
{
	struct kvm_stats_header h;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	if (h.num_desc > 4096 || h.name_size > 4096)
		return -EIO;
	char *descs = malloc(dsz * h.num_desc);
	if (!descs)
		return -ENOMEM;
	int rc = 0;
	if (pread(fd, descs, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc)) {
		rc = -EIO;
		goto out;
	}
	for (unsigned i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (void *)(descs + i * dsz);
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(h.name_size < 255 ? h.name_size : 255),
			 d->name);
		if (d->size != 1 || !want(name))
			continue;
		uint64_t v;
		if (pread(fd, &v, sizeof(v), (off_t)h.data_offset + d->offset) == (ssize_t)sizeof(v))
			acc_add(a, name, v);
	}
out:
	free(descs);
	return rc;
}

static const char *want_name;
static bool is_wanted(const char *name) { return !strcmp(name, want_name); }

static int stats_collect(const int *fds, unsigned n, bool (*want)(const char *),
			 struct stat_acc *a)
{
	for (unsigned i = 0; i < n; i++) {
		int sfd = ioctl(fds[i], KVM_GET_STATS_FD, NULL);
		if (sfd < 0)
			return -errno;
		int rc = stats_walk(sfd, want, a);
		close(sfd);
		if (rc)
			return rc;
	}
	return 0;
}

static int stats_sum(const int *fds, unsigned n, bool open_fds, const char *name,
		     uint64_t *out)
{
	struct stat_acc a = { 0 };
	int rc = 0;
	want_name = name; /* main thread only: at exit, the halt watch, tests */
	if (open_fds)
		rc = stats_collect(fds, n, is_wanted, &a);
	else
		for (unsigned i = 0; i < n && !rc; i++)
			rc = fds[i] < 0 ? -ENOTSUP : stats_walk(fds[i], is_wanted, &a);
	if (rc)
		return rc;
	if (a.n != 1)
		return -ENOENT;
	*out = a.s[0].val;
	return 0;
}

int kvm_stats_sum(const int *fds, unsigned n, const char *name, uint64_t *out)
{
	return stats_sum(fds, n, true, name, out);
}

int kvm_stats_fd_sum(const int *stats_fds, unsigned n, const char *name, uint64_t *out)
{
	return stats_sum(stats_fds, n, false, name, out);
}

/* debugfs sums every vCPU's statistic at the VM's directory */
static int stats_debugfs(const struct kvm *k, struct stat_acc *a)
{
	char dir[96];
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/kvm/%d-%d", (int)getpid(), k->vm_fd);
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_exit_stat(de->d_name))
			continue;
		char p[400], buf[32];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r > 0) {
			buf[r] = 0;
			acc_add(a, de->d_name, strtoull(buf, NULL, 10));
		}
	}
	closedir(d);
	return 0;
}

static uint64_t acc_get(const struct stat_acc *a, const char *name)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!strcmp(a->s[i].name, name))
			return a->s[i].val;
	return 0;
}

int kvm_stats_print(FILE *f, const struct kvm *k, const int *vcpu_fds, unsigned n)
{
	struct stat_acc a = { 0 };
	const char *src = "KVM binary stats";
	int rc = -ENOTSUP;
	if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) > 0)
		rc = stats_collect(vcpu_fds, n, is_exit_stat, &a);
	if (rc) {
		a.n = 0;
		src = "debugfs";
		rc = stats_debugfs(k, &a);
	}
	if (rc) {
		fprintf(f, "kvmlab-vm: --stats: no KVM statistics (binary stats need Linux 5.14+; "
			"debugfs: %s)\n", strerror(-rc));
		return rc;
	}
	fprintf(f, "kvmlab-vm: exit counts by reason (%s, %u vCPU%s summed):\n", src, n,
		n == 1 ? "" : "s");
	for (unsigned i = 0; i < a.n; i++)
		fprintf(f, "  %-22s %" PRIu64 "\n", a.s[i].name, a.s[i].val);
	/* KVM counts an exit to us under io_exits (KVM_EXIT_IO) or
	 * mmio_exits (KVM_EXIT_MMIO); everything else stays in the kernel */
	fprintf(f, "  %-22s %" PRIu64 "\n", "userspace_exits",
		acc_get(&a, "io_exits") + acc_get(&a, "mmio_exits"));
	return 0;
}

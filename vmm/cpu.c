#include "cpu.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"
#include "exit.h"

/* x86 architectural bits the entry state needs */
#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_PS (1ULL << 7)

#define SEL_TSS  0x08
#define SEL_CODE 0x10 /* __BOOT_CS */
#define SEL_DATA 0x18 /* __BOOT_DS */

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI    (4u << 8)
#define APIC_MODE_EXTINT (7u << 8)
#define APIC_SVR         0xf0
#define APIC_SVR_ENABLE  (1u << 8)
#define RFLAGS_IF        (1ull << 9)

#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_MTRR_DEF_TYPE       0x2ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

int cpu_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct err *e)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return errf(e, ENOMEM, "cpu: out of memory");
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			/* KVM emulates the TSC-deadline timer (on VMX with the
			 * preemption timer: no host hrtimer per event) but says
			 * so by a capability, not in the CPUID it hands out */
			cpu_cpuid_tsc_deadline(c, ioctl(kvm_fd, KVM_CHECK_EXTENSION,
							KVM_CAP_TSC_DEADLINE_TIMER) > 0);
			*out = c;
			return 0;
		}
		int err = errno;
		free(c);
		if (err != E2BIG)
			return errf(e, err, "cpu: KVM_GET_SUPPORTED_CPUID: %s", strerror(err));
	}
	return errf(e, E2BIG, "cpu: KVM_GET_SUPPORTED_CPUID: too many entries");
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

void cpu_cpuid_tsc_deadline(struct kvm_cpuid2 *c, bool on)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1) {
			if (on)
				c->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
			else
				c->entries[i].ecx &= ~CPUID_1_ECX_TSC_DEADLINE;
		}
}

/* One package of ncpus cores, one thread each; APIC id = vCPU index. The
 * guest must find in CPUID the same APIC id that the MP table/MADT gives
 * for this CPU, or it complains and may mis-number CPUs. */
void cpu_patch_cpuid(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *x = &c->entries[i];
		switch (x->function) {
		case 1:
			x->ebx = (x->ebx & 0x0000ffffu) | (id << 24) |
				 ((ncpus > 255 ? 255 : ncpus) << 16);
			if (ncpus > 1)
				x->edx |= 1u << 28; /* HTT: ebx[23:16] is valid */
			x->ecx |= 1u << 31;         /* running on a hypervisor */
			break;
		case 4:
			/* cores per package - 1; no cache is shared by threads */
			x->eax = (x->eax & 0x03ffc3ffu) | ((ncpus - 1) << 26);
			break;
		case 0xb:
		case 0x1f:
			x->edx = id;
			if (x->index == 0) { /* SMT level: one thread per core */
				x->eax = 0;
				x->ebx = 1;
				x->ecx = (1u << 8) | 0;
			} else if (x->index == 1) { /* core level */
				x->eax = bits_for(ncpus);
				x->ebx = ncpus;
				x->ecx = (2u << 8) | 1;
			} else {
				x->eax = x->ebx = 0;
				x->ecx = x->index & 0xff;
			}
			break;
		case 0x8000001e:
			x->eax = id; /* AMD extended APIC id */
			x->ebx = (x->ebx & ~0xffu) | (id & 0xff);
			break;
		default:
			break;
		}
	}
}

/* The TSC is left alone: KVM starts every vCPU's TSC in sync, and
 * writing it per vCPU at different times made guests mark it unstable. */
static int set_msrs(struct vcpu *v, struct err *e)
{
	static const struct { uint32_t idx; uint64_t val; } msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_IA32_MISC_ENABLE, 1 },           /* fast string operations */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 }, /* MTRRs on, default write-back */
	};
	const unsigned n = ARRAY_SIZE(msrs);
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	if (!m)
		return errf(e, ENOMEM, "cpu %u: out of memory", v->id);
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m->entries[i].index = msrs[i].idx;
		m->entries[i].data = msrs[i].val;
	}
	int rc = ioctl(v->fd, KVM_SET_MSRS, m);
	int err = errno;
	free(m);
	if (rc < 0)
		return errf(e, err, "cpu %u: KVM_SET_MSRS: %s", v->id, strerror(err));
	/* KVM stops at the first MSR it refuses and returns how many it set */
	if ((unsigned)rc < n)
		return errf(e, EINVAL, "cpu %u: KVM_SET_MSRS: MSR 0x%x refused",
			    v->id, msrs[rc].idx);
	return 0;
}

static int set_lint(struct vcpu *v, struct err *e)
{
	struct kvm_lapic_state lapic;
	uint32_t r;

	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return errf(e, errno, "cpu %u: KVM_GET_LAPIC: %s", v->id, strerror(errno));
	/* LINT0 takes the 8259's ExtINT, LINT1 the NMI, as on a PC */
	memcpy(&r, lapic.regs + APIC_LVT_LINT0, 4);
	r = (r & ~0x700u) | APIC_MODE_EXTINT;
	memcpy(lapic.regs + APIC_LVT_LINT0, &r, 4);
	memcpy(&r, lapic.regs + APIC_LVT_LINT1, 4);
	r = (r & ~0x700u) | APIC_MODE_NMI;
	memcpy(lapic.regs + APIC_LVT_LINT1, &r, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return errf(e, errno, "cpu %u: KVM_SET_LAPIC: %s", v->id, strerror(errno));
	return 0;
}

int cpu_init(struct vcpu *v, const struct cpu_env *env, unsigned id, unsigned ncpus,
	     const struct kvm_cpuid2 *tmpl, struct err *e)
{
	int rc;
	size_t csz = sizeof(*tmpl) + tmpl->nent * sizeof(tmpl->entries[0]);
	struct kvm_cpuid2 *c;

	v->env = env;
	v->id = id;
	v->run = NULL;
	v->stats_fd = -1;
	v->fd = ioctl(env->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return errf(e, errno, "cpu %u: KVM_CREATE_VCPU: %s", id, strerror(errno));
	/* KVM hands out vCPU fds with O_CLOEXEC already (anon inode) */
	void *p = mmap(NULL, env->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (p == MAP_FAILED) {
		rc = errf(e, errno, "cpu %u: mmap kvm_run: %s", id, strerror(errno));
		goto err_fd;
	}
	v->run = p;

	c = malloc(csz);
	if (!c) {
		rc = errf(e, ENOMEM, "cpu %u: out of memory", id);
		goto err_run;
	}
	memcpy(c, tmpl, csz);
	cpu_patch_cpuid(c, id, ncpus);
	rc = ioctl(v->fd, KVM_SET_CPUID2, c);
	free(c);
	if (rc < 0) {
		rc = errf(e, errno, "cpu %u: KVM_SET_CPUID2: %s", id, strerror(errno));
		goto err_run;
	}
	rc = set_msrs(v, e);
	if (rc)
		goto err_run;
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0) {
		rc = errf(e, errno, "cpu %u: KVM_SET_FPU: %s", id, strerror(errno));
		goto err_run;
	}
	rc = set_lint(v, e);
	if (rc)
		goto err_run;
	if (id != 0) {
		/* APs wait for INIT/SIPI from the guest, via the in-kernel LAPIC */
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };
		if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
			rc = errf(e, errno, "cpu %u: KVM_SET_MP_STATE: %s", id, strerror(errno));
			goto err_run;
		}
	}
	/* opened now: a vCPU ioctl waits for KVM_RUN to return, reading
	 * this fd does not (halt.h reads it while the guest runs) */
	v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
	return 0;
err_run:
	munmap(v->run, env->run_size);
	v->run = NULL;
err_fd:
	close(v->fd);
	v->fd = -1;
	return rc;
}

void cpu_close(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->env->run_size);
	if (v->stats_fd >= 0)
		close(v->stats_fd);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
	v->stats_fd = -1;
}

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       ((uint64_t)(flags & 0xf0ffu) << 40) | ((uint64_t)(limit & 0x000f0000u) << 32) |
	       (limit & 0xffffu);
}

int cpu_write_boot_tables(const struct gmem *gm, struct err *e)
{
	uint64_t gdt[4] = {
		[0] = 0,
		[SEL_TSS >> 3] = gdt_entry(0x808b, 0, 0xfffff),  /* busy TSS */
		[SEL_CODE >> 3] = gdt_entry(0xa09b, 0, 0xfffff), /* 64-bit code, G */
		[SEL_DATA >> 3] = gdt_entry(0xc093, 0, 0xfffff), /* 4 GiB data */
	};
	uint64_t idt = 0;
	uint64_t pml4 = LAYOUT_PDPT | PTE_P | PTE_RW;
	uint64_t pdpt[LAYOUT_PD_COUNT];
	uint64_t pd[512];

	if (gmem_write(gm, LAYOUT_GDT, gdt, sizeof(gdt)) ||
	    gmem_write(gm, LAYOUT_IDT, &idt, sizeof(idt)) ||
	    gmem_write(gm, LAYOUT_PML4, &pml4, sizeof(pml4)))
		return errf(e, EFAULT, "cpu: boot tables do not fit in guest RAM");
	for (unsigned i = 0; i < LAYOUT_PD_COUNT; i++) {
		uint64_t pd_gpa = LAYOUT_PD + i * 0x1000ULL;
		pdpt[i] = pd_gpa | PTE_P | PTE_RW;
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((uint64_t)i << 30 | (uint64_t)j << 21) | PTE_P | PTE_RW | PTE_PS;
		if (gmem_write(gm, pd_gpa, pd, sizeof(pd)))
			return errf(e, EFAULT, "cpu: page tables do not fit in guest RAM");
	}
	if (gmem_write(gm, LAYOUT_PDPT, pdpt, sizeof(pdpt)))
		return errf(e, EFAULT, "cpu: page tables do not fit in guest RAM");
	return 0;
}

static void seg64(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1,
		.l = code ? 1 : 0, .g = 1,
	};
}

int cpu_setup_bsp(struct vcpu *v, uint64_t entry, uint64_t zeropage, struct err *e)
{
	struct kvm_sregs sr;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return errf(e, errno, "cpu 0: KVM_GET_SREGS: %s", strerror(errno));
	seg64(&sr.cs, SEL_CODE, 0xb, 1);
	seg64(&sr.ds, SEL_DATA, 0x3, 0);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.tr = (struct kvm_segment){
		.base = 0, .limit = 0xfffff, .selector = SEL_TSS, .type = 0xb,
		.present = 1, .s = 0, .g = 1,
	};
	sr.gdt.base = LAYOUT_GDT;
	sr.gdt.limit = 4 * 8 - 1;
	sr.idt.base = LAYOUT_IDT;
	sr.idt.limit = 0;
	sr.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sr.cr3 = LAYOUT_PML4;
	sr.cr4 = CR4_PAE;
	sr.efer = EFER_LME | EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return errf(e, errno, "cpu 0: KVM_SET_SREGS: %s", strerror(errno));

	struct kvm_regs r = {
		.rflags = 2, /* reserved bit; interrupts off */
		.rip = entry,
		.rsi = zeropage,
		.rsp = LAYOUT_BOOT_STACK,
		.rbp = LAYOUT_BOOT_STACK,
	};
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return errf(e, errno, "cpu 0: KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

static void kick_handler(int sig)
{
	(void)sig;
}

int cpu_signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	/* no SA_RESTART: KVM_RUN must come back with EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(CPU_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

void cpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->th, CPU_KICK_SIGNAL);
}

static const char *exit_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_UNKNOWN: return "UNKNOWN";
	case KVM_EXIT_EXCEPTION: return "EXCEPTION";
	case KVM_EXIT_HYPERCALL: return "HYPERCALL";
	case KVM_EXIT_DEBUG: return "DEBUG";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	default: return "?";
	}
}

static void dump_seg(FILE *f, const char *n, const struct kvm_segment *s)
{
	fprintf(f, "  %-3s sel=%04x base=%016llx limit=%08x type=%x p=%u dpl=%u db=%u s=%u l=%u g=%u\n",
		n, s->selector, (unsigned long long)s->base, s->limit, s->type,
		s->present, s->dpl, s->db, s->s, s->l, s->g);
}

static uint32_t apic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t r;
	memcpy(&r, l->regs + off, 4);
	return r;
}

/* Highest vector set in a 256-bit LAPIC register (ISR, IRR), -1: none. */
static int apic_top(const struct kvm_lapic_state *l, unsigned off)
{
	for (int i = 7; i >= 0; i--) {
		uint32_t r = apic_reg(l, off + 0x10 * (unsigned)i);
		if (r)
			return i * 32 + 31 - __builtin_clz(r);
	}
	return -1;
}

/* Why a vCPU does (not) take interrupts: run state, interrupt shadow,
 * pending events, and the LAPIC's priority and request registers. */
static void dump_irq_state(const struct vcpu *v, FILE *f)
{
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	struct kvm_lapic_state l;

	if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0)
		fprintf(f, "  mp_state=%u (0 runnable, 1 uninit, 2 init-received, 3 halted, 4 sipi)", mp.mp_state);
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) == 0)
		fprintf(f, " shadow=%u irq_injected=%u nr=%u nmi_pending=%u nmi_masked=%u "
			"exc_injected=%u exc_nr=%u\n",
			ev.interrupt.shadow, ev.interrupt.injected, ev.interrupt.nr,
			ev.nmi.pending, ev.nmi.masked, ev.exception.injected, ev.exception.nr);
	else
		fputc('\n', f);
	/* the global interrupt flag (SVM's GIF) is only visible here; a
	 * header-only answer is enough outside nested guest mode */
	const uint32_t nsz = 16384;
	struct kvm_nested_state *ns = calloc(1, nsz);
	if (ns) {
		ns->size = nsz;
		if (ioctl(v->fd, KVM_GET_NESTED_STATE, ns) == 0)
			fprintf(f, "  nested: format=%u flags=0x%x (GIF %s)\n", ns->format, ns->flags,
				ns->format == KVM_STATE_NESTED_FORMAT_SVM ?
				(ns->flags & KVM_STATE_NESTED_GIF_SET ? "set" : "CLEAR") : "n/a");
		free(ns);
	}
	if (ioctl(v->fd, KVM_GET_LAPIC, &l) == 0)
		fprintf(f, "  LAPIC TPR=%02x PPR=%02x ISR.top=%d IRR.top=%d SVR=%03x LVTT=%08x TMICT=%08x TMCCT=%08x TDCR=%x\n",
			apic_reg(&l, 0x80), apic_reg(&l, 0xa0), apic_top(&l, 0x100), apic_top(&l, 0x200),
			apic_reg(&l, 0xf0), apic_reg(&l, 0x320), apic_reg(&l, 0x380),
			apic_reg(&l, 0x390), apic_reg(&l, 0x3e0));
}

void cpu_dump(const struct vcpu *v, FILE *f)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	flockfile(f);
	if (ioctl(v->fd, KVM_GET_REGS, &r) == 0) {
		fprintf(f, "  RIP=%016llx RSP=%016llx RBP=%016llx RFLAGS=%016llx\n"
			   "  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
			   "  RSI=%016llx RDI=%016llx R8 =%016llx R9 =%016llx\n"
			   "  R10=%016llx R11=%016llx R12=%016llx R13=%016llx\n"
			   "  R14=%016llx R15=%016llx\n",
			(unsigned long long)r.rip, (unsigned long long)r.rsp,
			(unsigned long long)r.rbp, (unsigned long long)r.rflags,
			(unsigned long long)r.rax, (unsigned long long)r.rbx,
			(unsigned long long)r.rcx, (unsigned long long)r.rdx,
			(unsigned long long)r.rsi, (unsigned long long)r.rdi,
			(unsigned long long)r.r8, (unsigned long long)r.r9,
			(unsigned long long)r.r10, (unsigned long long)r.r11,
			(unsigned long long)r.r12, (unsigned long long)r.r13,
			(unsigned long long)r.r14, (unsigned long long)r.r15);
	} else {
		fprintf(f, "  (KVM_GET_REGS failed)\n");
	}
	if (ioctl(v->fd, KVM_GET_SREGS, &s) == 0) {
		fprintf(f, "  CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx\n"
			   "  CR8=%016llx EFER=%016llx APIC_BASE=%016llx\n",
			(unsigned long long)s.cr0, (unsigned long long)s.cr2,
			(unsigned long long)s.cr3, (unsigned long long)s.cr4,
			(unsigned long long)s.cr8, (unsigned long long)s.efer,
			(unsigned long long)s.apic_base);
		dump_seg(f, "CS", &s.cs);
		dump_seg(f, "SS", &s.ss);
		dump_seg(f, "DS", &s.ds);
		dump_seg(f, "ES", &s.es);
		dump_seg(f, "FS", &s.fs);
		dump_seg(f, "GS", &s.gs);
		dump_seg(f, "TR", &s.tr);
		dump_seg(f, "LDT", &s.ldt);
		fprintf(f, "  GDT base=%016llx limit=%04x  IDT base=%016llx limit=%04x\n",
			(unsigned long long)s.gdt.base, s.gdt.limit,
			(unsigned long long)s.idt.base, s.idt.limit);
	} else {
		fprintf(f, "  (KVM_GET_SREGS failed)\n");
	}
	dump_irq_state(v, f);
	funlockfile(f);
}

static void fatal_exit(struct vcpu *v, const char *what)
{
	struct kvm_run *run = v->run;

	flockfile(stderr);
	fprintf(stderr, "\nkvmlab-vm: vcpu %u: fatal KVM exit %s (%u)", v->id, what,
		run->exit_reason);
	if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		fprintf(stderr, ": hardware_entry_failure_reason=0x%llx",
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
		static const char *const sub[] = {
			[KVM_INTERNAL_ERROR_EMULATION] = "emulation failure",
			[KVM_INTERNAL_ERROR_SIMUL_EX] = "exception while delivering an exception",
			[KVM_INTERNAL_ERROR_DELIVERY_EV] = "event delivery failed",
			[KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON] = "unexpected exit reason",
		};
		uint32_t se = run->internal.suberror;
		fprintf(stderr, ": suberror %u (%s), data", se,
			se < ARRAY_SIZE(sub) && sub[se] ? sub[se] : "unknown");
		for (unsigned i = 0; i < run->internal.ndata && i < 16; i++)
			fprintf(stderr, " %llx", (unsigned long long)run->internal.data[i]);
	}
	fputc('\n', stderr);
	cpu_dump(v, stderr);
	funlockfile(stderr);
	exit_raise(v->env->exit, EXIT_EV_FATAL);
}

int cpu_exit_io(const struct bus *pio, struct kvm_run *run, size_t run_size)
{
	/* KVM fills these, but one bad value would have us read and write
	 * past the kvm_run mapping: check the whole data area first */
	uint32_t size = run->io.size, count = run->io.count;
	uint64_t at = run->io.data_offset;
	if ((size != 1 && size != 2 && size != 4) || at > run_size ||
	    (uint64_t)size * count > run_size - at)
		return -EINVAL;
	uint8_t *p = (uint8_t *)run + at;
	bool wr = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint32_t i = 0; i < count; i++, p += size)
		bus_dispatch(pio, run->io.port, p, size, wr);
	return 0;
}

int cpu_exit_mmio(const struct bus *mmio, struct kvm_run *run)
{
	/* mmio.data is 8 bytes and devices expect 1..8 */
	uint32_t len = run->mmio.len;
	if (len == 0 || len > sizeof(run->mmio.data))
		return -EINVAL;
	bus_dispatch(mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
	return 0;
}

bool cpu_stopped(const struct cpu_stop_view *s)
{
	if (s->mp_state == KVM_MP_STATE_UNINITIALIZED || s->mp_state == KVM_MP_STATE_INIT_RECEIVED)
		return true;
	if (s->mp_state != KVM_MP_STATE_HALTED || s->nmi_pending || s->event_injected)
		return false;
	return !(s->rflags & RFLAGS_IF) && !(s->svr & APIC_SVR_ENABLE);
}

void cpu_probe(struct vcpu *v, unsigned seq)
{
	__atomic_store_n(&v->probe_req, seq, __ATOMIC_RELEASE);
	cpu_kick(v);
}

int cpu_probe_answer(const struct vcpu *v, unsigned seq)
{
	if (__atomic_load_n(&v->probe_done, __ATOMIC_ACQUIRE) != seq)
		return -1;
	return __atomic_load_n(&v->probe_stopped, __ATOMIC_RELAXED) ? 1 : 0;
}

/* This vCPU's own state, read between two KVM_RUNs; any read that fails
 * says "may run" (the watch then just waits). */
static bool look_stopped(const struct vcpu *v)
{
	struct cpu_stop_view s = { 0 };
	struct kvm_mp_state mp;
	struct kvm_regs r;
	struct kvm_lapic_state l;
	struct kvm_vcpu_events ev;

	if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0)
		return false;
	s.mp_state = mp.mp_state;
	if (s.mp_state == KVM_MP_STATE_HALTED) {
		if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_LAPIC, &l) < 0 ||
		    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return false;
		s.rflags = r.rflags;
		s.svr = apic_reg(&l, APIC_SVR);
		s.nmi_pending = ev.nmi.pending || ev.nmi.injected;
		s.event_injected = ev.interrupt.injected || ev.exception.injected;
	}
	return cpu_stopped(&s);
}

/* After KVM_RUN came back with EINTR: answer a probe if one is waiting. */
static void probe_reply(struct vcpu *v)
{
	unsigned req = __atomic_load_n(&v->probe_req, __ATOMIC_ACQUIRE);
	if (req == __atomic_load_n(&v->probe_done, __ATOMIC_RELAXED))
		return;
	/* the probe's kick set immediate_exit; clear it or KVM_RUN never
	 * runs again. A stop sets `stopping` before its own kick, and the
	 * run loop checks that next, so no stop is lost here. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&v->probe_stopped, look_stopped(v), __ATOMIC_RELAXED);
	__atomic_store_n(&v->probe_done, req, __ATOMIC_RELEASE);
}

/* After KVM_RUN came back with EINTR: sleep while the VM is paused. The
 * kick that paused us set immediate_exit; clear it first, or KVM_RUN
 * would return at once after the resume. A stop wakes us (vm_stop
 * broadcasts after setting `stopping`), and the run loop checks that. */
static void park(struct vcpu *v)
{
	struct cpu_pause *p = v->env->pause;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->paused && !__atomic_load_n(v->env->stopping, __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		p->parked++;
		pthread_cond_broadcast(&p->cv);
		while (p->paused && !__atomic_load_n(v->env->stopping, __ATOMIC_SEQ_CST))
			pthread_cond_wait(&p->cv, &p->mu);
		p->parked--;
	}
	pthread_mutex_unlock(&p->mu);
}

void *cpu_thread(void *arg)
{
	struct vcpu *v = arg;
	const struct cpu_env *env = v->env;
	struct kvm_run *run = v->run;
	sigset_t ss;

	/* every other thread keeps the kick signal blocked */
	sigemptyset(&ss);
	sigaddset(&ss, CPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &ss, NULL);

	while (!__atomic_load_n(env->stopping, __ATOMIC_SEQ_CST)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* a kick: its flag goes first, then what it was for is
				 * looked at (each asker sets its own flag before it
				 * kicks), so none is lost and none makes KVM_RUN spin */
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				probe_reply(v);
				park(v);
				continue;
			}
			flockfile(stderr);
			fprintf(stderr, "kvmlab-vm: vcpu %u: KVM_RUN: %s\n", v->id, strerror(errno));
			cpu_dump(v, stderr);
			funlockfile(stderr);
			exit_raise(env->exit, EXIT_EV_FATAL);
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (cpu_exit_io(env->pio, run, env->run_size)) {
				fatal_exit(v, "IO with an out-of-bounds data area");
				return NULL;
			}
			break;
		case KVM_EXIT_MMIO:
			if (cpu_exit_mmio(env->mmio, run)) {
				fatal_exit(v, "MMIO with a bad length");
				return NULL;
			}
			break;
		case KVM_EXIT_INTR:
		case KVM_EXIT_HLT: /* the in-kernel LAPIC handles HLT; just resume */
			break;
		case KVM_EXIT_SHUTDOWN:
			/* triple fault: a PC resets, so this is a reboot; say so,
			 * since an early one looks like a silent clean exit */
			fprintf(stderr, "kvmlab-vm: vCPU %u: triple fault, treated as a reset\n", v->id);
			exit_raise(env->exit, EXIT_EV_REBOOT);
			return NULL;
		case KVM_EXIT_SYSTEM_EVENT:
			switch (run->system_event.type) {
			case KVM_SYSTEM_EVENT_SHUTDOWN:
				exit_raise(env->exit, EXIT_EV_POWEROFF);
				return NULL;
			case KVM_SYSTEM_EVENT_RESET:
				exit_raise(env->exit, EXIT_EV_REBOOT);
				return NULL;
			case KVM_SYSTEM_EVENT_CRASH:
				exit_raise(env->exit, EXIT_EV_PANIC);
				return NULL;
			default:
				break;
			}
			break;
		default:
			fatal_exit(v, exit_name(run->exit_reason));
			return NULL;
		}
	}
	if (env->dump && __atomic_load_n(env->dump, __ATOMIC_SEQ_CST)) {
		flockfile(stderr);
		fprintf(stderr, "kvmlab-vm: vcpu %u at stop:\n", v->id);
		cpu_dump(v, stderr);
		funlockfile(stderr);
	}
	return NULL;
}

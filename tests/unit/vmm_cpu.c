/* cpu.c without KVM: the boot GDT/page tables as the CPU would decode
 * them, and the per-vCPU CPUID patches. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "layout.h"
#include "t.h"

/* a port/MMIO device that counts accesses and the bytes it saw */
static unsigned io_hits, io_last_len;
static uint8_t io_last[8];

static void rec_read(void *o, uint64_t off, void *data, unsigned len)
{
	(void)o, (void)off;
	io_hits++;
	io_last_len = len;
	memset(data, 0x5a, len);
}

static void rec_write(void *o, uint64_t off, const void *data, unsigned len)
{
	(void)o, (void)off;
	io_hits++;
	io_last_len = len;
	memcpy(io_last, data, len < 8 ? len : 8);
}

static const struct bus_ops rec_ops = { .read = rec_read, .write = rec_write };

/* KVM_EXIT_IO / KVM_EXIT_MMIO with sane and insane sizes, on a kvm_run
 * buffer exactly run_size long so ASan sees any overrun */
static void exit_checks(void)
{
	const size_t run_size = 4096;
	struct bus pio = { 0 }, mmio = { 0 };
	struct kvm_run *run = calloc(1, run_size);
	if (!run || bus_register(&pio, 0x3f8, 8, &rec_ops, NULL) ||
	    bus_register(&mmio, 0xd0000000, 0x1000, &rec_ops, NULL))
		abort();

	run->io = (typeof(run->io)){ .direction = KVM_EXIT_IO_OUT, .size = 1, .port = 0x3f8,
				     .count = 3, .data_offset = 1024 };
	memcpy((uint8_t *)run + 1024, "abc", 3);
	io_hits = 0;
	CHECK_EQ(cpu_exit_io(&pio, run, run_size), 0, "rep outsb of 3 dispatched");
	CHECK_EQ(io_hits, 3, "one bus access per rep count");
	CHECK_EQ(io_last[0], 'c', "last byte of the string seen last");

	run->io.direction = KVM_EXIT_IO_IN;
	run->io.size = 4;
	run->io.count = 1;
	run->io.data_offset = run_size - 4;
	io_hits = 0;
	CHECK_EQ(cpu_exit_io(&pio, run, run_size), 0, "inl into the last 4 bytes of kvm_run");
	CHECK_EQ(((uint8_t *)run)[run_size - 1], 0x5a, "read data lands at data_offset");

	static const struct { uint8_t size; uint32_t count; uint64_t off; const char *what; } bad[] = {
		{ 4, 1, 4096 - 3, "inl straddling the end of kvm_run" },
		{ 1, 1, 4096, "data_offset at the end of kvm_run" },
		{ 1, 1, 1ull << 40, "data_offset far past kvm_run" },
		{ 2, 0x80000000u, 1024, "count * size past kvm_run" },
		{ 4, 0xffffffffu, 0, "count * size overflowing 32 bits" },
		{ 8, 1, 1024, "size 8" },
		{ 3, 1, 1024, "size 3" },
		{ 0, 1, 1024, "size 0" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run->io = (typeof(run->io)){ .direction = KVM_EXIT_IO_IN, .size = bad[i].size,
					     .port = 0x3f8, .count = bad[i].count,
					     .data_offset = bad[i].off };
		io_hits = 0;
		CHECK_EQ(cpu_exit_io(&pio, run, run_size), -EINVAL, "refused: %s", bad[i].what);
		CHECK_EQ(io_hits, 0, "nothing dispatched: %s", bad[i].what);
	}

	run->mmio = (typeof(run->mmio)){ .phys_addr = 0xd0000010, .len = 8, .is_write = 1 };
	memcpy(run->mmio.data, "12345678", 8);
	io_hits = 0;
	CHECK_EQ(cpu_exit_mmio(&mmio, run), 0, "8-byte MMIO write dispatched");
	CHECK_EQ(io_hits * 100 + io_last_len, 108, "with its length");
	static const uint32_t badlen[] = { 0, 9, 16, 0xffffffffu };
	for (unsigned i = 0; i < sizeof(badlen) / sizeof(badlen[0]); i++) {
		uint32_t len = badlen[i];
		run->mmio.len = len;
		io_hits = 0;
		CHECK_EQ(cpu_exit_mmio(&mmio, run), -EINVAL, "MMIO len %u refused", len);
		CHECK_EQ(io_hits, 0, "nothing dispatched for MMIO len %u", len);
	}
	free(run);
}

static uint64_t rd64(const uint8_t *ram, uint64_t gpa)
{
	uint64_t v;
	memcpy(&v, ram + gpa, 8);
	return v;
}

/* walk the 4-level tables like the MMU: 2 MiB pages expected */
static int64_t translate(const uint8_t *ram, uint64_t cr3, uint64_t va)
{
	uint64_t e = rd64(ram, cr3 + ((va >> 39) & 511) * 8);
	if (!(e & 1))
		return -1;
	e = rd64(ram, (e & ~0xfffULL) + ((va >> 30) & 511) * 8);
	if (!(e & 1))
		return -1;
	e = rd64(ram, (e & ~0xfffULL) + ((va >> 21) & 511) * 8);
	if (!(e & 1) || !(e & 0x80))
		return -1;
	return (int64_t)((e & ~0x1fffffULL) | (va & 0x1fffff));
}

/* cpu_stopped: stopped for good only when nothing from inside the guest
 * can wake the vCPU */
static void stopped_checks(void)
{
	const uint64_t IF = 1u << 9;
	const uint32_t ON = 0x1ff, OFF = 0x0ff; /* SVR, software-enable bit 8 */
	struct cpu_stop_view s;

#define STOPPED(mp, fl, svr, nmi, inj) \
	(s = (struct cpu_stop_view){ (mp), (fl), (svr), (nmi), (inj) }, cpu_stopped(&s))
	CHECK(STOPPED(KVM_MP_STATE_HALTED, 0x2, OFF, 0, 0), "halted, IF=0, LAPIC off: stopped (Linux's halt)");
	CHECK(!STOPPED(KVM_MP_STATE_HALTED, 0x2, ON, 0, 0), "halted, IF=0, LAPIC on: a deadlock, not a stop");
	CHECK(!STOPPED(KVM_MP_STATE_HALTED, 0x2 | IF, OFF, 0, 0), "halted with IF=1: idle");
	CHECK(!STOPPED(KVM_MP_STATE_HALTED, 0x2 | IF, ON, 0, 0), "halted with IF=1, LAPIC on: idle");
	CHECK(!STOPPED(KVM_MP_STATE_HALTED, 0x2, OFF, 1, 0), "an NMI waiting wakes it");
	CHECK(!STOPPED(KVM_MP_STATE_HALTED, 0x2, OFF, 0, 1), "an event being injected wakes it");
	CHECK(!STOPPED(KVM_MP_STATE_RUNNABLE, 0x2, OFF, 0, 0), "runnable: runs");
	CHECK(!STOPPED(KVM_MP_STATE_SIPI_RECEIVED, 0x2, OFF, 0, 0), "SIPI received: about to run");
	CHECK(STOPPED(KVM_MP_STATE_UNINITIALIZED, 0x2 | IF, ON, 0, 0), "waiting for SIPI: stopped");
	CHECK(STOPPED(KVM_MP_STATE_INIT_RECEIVED, 0x2, ON, 0, 0), "INIT received, no SIPI: stopped");
	CHECK(!STOPPED(99, 0x2, OFF, 0, 0), "an unknown run state: may run");
#undef STOPPED
}

int main(void)
{
	const uint64_t size = 1 << 20;
	uint8_t *ram = calloc(1, size);
	struct gmem gm;
	struct err e;

	if (!ram)
		return 1;
	gmem_init_flat(&gm, ram, size);
	stopped_checks();
	CHECK_EQ(cpu_write_boot_tables(&gm, &e), 0, "boot tables written");

	CHECK_EQ(translate(ram, LAYOUT_PML4, 0x100200), 0x100200, "kernel entry identity-mapped");
	CHECK_EQ(translate(ram, LAYOUT_PML4, LAYOUT_ZEROPAGE), LAYOUT_ZEROPAGE, "zero page identity-mapped");
	CHECK_EQ(translate(ram, LAYOUT_PML4, 0xbffff000ULL), 0xbffff000LL, "top of low RAM mapped");
	CHECK_EQ(translate(ram, LAYOUT_PML4, 0xfffff000ULL), 0xfffff000LL, "last page under 4 GiB mapped");
	CHECK_EQ(translate(ram, LAYOUT_PML4, 0x100000000ULL), -1, "nothing at 4 GiB");
	CHECK_EQ(rd64(ram, LAYOUT_PML4) & 3, 3, "PML4[0] present+writable");

	/* GDT: selectors of the boot protocol */
	uint64_t code = rd64(ram, LAYOUT_GDT + 0x10), data = rd64(ram, LAYOUT_GDT + 0x18);
	CHECK_EQ(rd64(ram, LAYOUT_GDT), 0, "null descriptor");
	CHECK_EQ((code >> 47) & 1, 1, "__BOOT_CS present");
	CHECK_EQ((code >> 53) & 1, 1, "__BOOT_CS is 64-bit (L)");
	CHECK_EQ((code >> 40) & 0xf, 0xb, "__BOOT_CS execute/read");
	CHECK_EQ((data >> 40) & 0xf, 0x3, "__BOOT_DS read/write");
	CHECK_EQ((data >> 55) & 1, 1, "__BOOT_DS 4 GiB (G)");
	CHECK_EQ(((data >> 48) & 0xf) << 16 | (data & 0xffff), 0xfffff, "__BOOT_DS limit");

	/* too little RAM for the tables */
	struct gmem tiny;
	gmem_init_flat(&tiny, ram, 0x8000);
	CHECK(cpu_write_boot_tables(&tiny, &e) < 0, "no room: error (%s)", e.msg);

	/* CPUID */
	unsigned n = 6;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c)
		return 1;
	c->nent = n;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .ebx = 0xff0a0800 };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0 };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 1 };
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 0x1f, .index = 2 };
	c->entries[4] = (struct kvm_cpuid_entry2){ .function = 0x8000001e };
	c->entries[5] = (struct kvm_cpuid_entry2){ .function = 4, .eax = 0xfc000121 };
	cpu_patch_cpuid(c, 5, 6);
	CHECK_EQ(c->entries[0].ebx >> 24, 5, "leaf 1: initial APIC id");
	CHECK_EQ((c->entries[0].ebx >> 16) & 0xff, 6, "leaf 1: logical CPU count");
	CHECK_EQ(c->entries[0].ebx & 0xffff, 0x0800, "leaf 1: CLFLUSH size kept");
	CHECK_EQ(c->entries[0].ecx >> 31, 1, "leaf 1: hypervisor bit");
	CHECK_EQ(c->entries[1].edx, 5, "leaf 0xb.0: x2APIC id");
	CHECK_EQ((c->entries[1].ecx >> 8) & 0xff, 1, "leaf 0xb.0: SMT level");
	CHECK_EQ(c->entries[2].ebx, 6, "leaf 0xb.1: 6 logical CPUs in the package");
	CHECK_EQ(c->entries[2].eax, 3, "leaf 0xb.1: 3 id bits for 6 CPUs");
	CHECK_EQ(c->entries[3].ecx, 2, "leaf 0x1f.2: invalid level, index echoed");
	CHECK_EQ(c->entries[3].edx, 5, "leaf 0x1f: x2APIC id");
	CHECK_EQ(c->entries[4].eax, 5, "leaf 0x8000001e: extended APIC id");
	CHECK_EQ(c->entries[5].eax >> 26, 5, "leaf 4: cores per package - 1");
	CHECK_EQ(c->entries[5].eax & 0x3ff, 0x121, "leaf 4: cache type/level kept");
	c->entries[0].ecx = 0x80000001u;
	cpu_cpuid_tsc_deadline(c, true);
	CHECK_EQ(c->entries[0].ecx, 0x81000001u, "leaf 1: TSC-deadline timer bit set, the rest kept");
	CHECK_EQ(c->entries[5].ecx, 0, "TSC-deadline bit: other leaves untouched");
	cpu_cpuid_tsc_deadline(c, false);
	CHECK_EQ(c->entries[0].ecx, 0x80000001u, "leaf 1: TSC-deadline timer bit cleared");
	free(c);
	free(ram);
	exit_checks();
	return t_done();
}

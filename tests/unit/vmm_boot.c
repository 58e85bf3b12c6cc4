/* Boot protocol: synthetic bzImages in memory and in temp files, e820
 * maps, cmdline limits, initrd placement. Offsets are checked against
 * the numbers in Documentation/arch/x86/boot.rst, not boot.c's names. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <elf.h>

#include "boot.h"
#include "boot_elf.h"
#include "layout.h"
#include "t.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static uint16_t rd16(const uint8_t *p, size_t o) { uint16_t v; memcpy(&v, p + o, 2); return v; }
static uint32_t rd32(const uint8_t *p, size_t o) { uint32_t v; memcpy(&v, p + o, 4); return v; }
static uint64_t rd64(const uint8_t *p, size_t o) { uint64_t v; memcpy(&v, p + o, 8); return v; }
static void wr16(uint8_t *p, size_t o, uint16_t v) { memcpy(p + o, &v, 2); }
static void wr32(uint8_t *p, size_t o, uint32_t v) { memcpy(p + o, &v, 4); }
static void wr64(uint8_t *p, size_t o, uint64_t v) { memcpy(p + o, &v, 8); }

/* A minimal modern bzImage: 4 setup sectors (setup_sects 0 means 4),
 * kernel_sects 16-byte paragraphs of payload. */
#define FAKE_SETUP (5 * 512)
static uint8_t *fake_image(uint32_t paras, size_t *len)
{
	*len = FAKE_SETUP + (size_t)paras * 16;
	uint8_t *p = calloc(1, *len);
	if (!p)
		abort();
	p[0x1f1] = 0; /* setup_sects: 0 means 4 */
	wr32(p, 0x1f4, paras);
	wr16(p, 0x1fe, 0xaa55);
	p[0x200] = 0xeb;
	p[0x201] = 0x6a; /* jump over the header: ends at 0x26c */
	memcpy(p + 0x202, "HdrS", 4);
	wr16(p, 0x206, 0x020f);
	p[0x211] = 0x01; /* LOADED_HIGH */
	wr32(p, 0x22c, 0x7fffffff);
	wr32(p, 0x230, 0x200000);
	p[0x234] = 1;
	wr16(p, 0x236, 0x7f);
	wr32(p, 0x238, 2047);
	wr64(p, 0x258, 0x1000000);
	wr32(p, 0x260, 0x1000000); /* init_size 16 MiB */
	memset(p + 0x26c, 0xee, 0x290 - 0x26c); /* past the header: not copied */
	for (size_t i = FAKE_SETUP; i < *len; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	return p;
}

static void test_parse(void)
{
	size_t len;
	uint8_t *img = fake_image(1000, &len);
	struct boot_hdr h;
	struct err e = { "" };

	CHECK_EQ(boot_parse_header(img, len, len, "k", &h, &e), 0, "good header parses (%s)", e.msg);
	CHECK_EQ(h.setup_size, FAKE_SETUP, "setup_sects 0 means 4 -> 2560 bytes");
	CHECK_EQ(h.kernel_size, 16000, "kernel size = syssize * 16");
	CHECK_EQ(h.version, 0x20f, "version");
	CHECK_EQ(h.cmdline_size, 2047, "cmdline_size");
	CHECK_EQ(h.hdr_end, 0x26c, "header ends at 0x202 + jump byte");
	CHECK_EQ(h.pref_address, 0x1000000, "pref_address");
	CHECK_EQ(boot_kernel_end(&h), 0x2000000, "kernel end = pref_address + init_size");

	/* a longer file (signature appended) is fine */
	CHECK_EQ(boot_parse_header(img, len, len + 1472, "k", &h, &e), 0, "trailing bytes ok");

	struct { const char *what; size_t off; int size; uint64_t val; const char *msg; } bad[] = {
		{ "boot flag", 0x1fe, 2, 0x1234, "boot: k: not a bzImage (no boot flag 0xAA55)" },
		{ "magic", 0x202, 4, 0x53726448 + 1, "boot: k: not a bzImage (no \"HdrS\" magic)" },
		{ "protocol 2.02", 0x206, 2, 0x0202, "boot: k: bzImage too old (protocol 2.02, need 2.06)" },
		{ "no 64-bit", 0x236, 2, 0x7e, "boot: k: no 64-bit entry point (protocol 2.15, XLF_KERNEL_64 not set)" },
		{ "zImage", 0x211, 1, 0x00, "boot: k: not a bzImage (zImage: LOADED_HIGH not set)" },
		{ "syssize 0", 0x1f4, 4, 0, "boot: k: not a bzImage (syssize is 0)" },
		{ "short header", 0x201, 1, 0x10, "boot: k: setup header too short (33 bytes)" },
		{ "huge syssize", 0x1f4, 4, 0xffffffff, "boot: k: truncated (kernel part 16000 bytes, header says 68719476720)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint8_t *c = malloc(len);
		if (!c)
			abort();
		memcpy(c, img, len);
		memcpy(c + bad[i].off, &bad[i].val, (size_t)bad[i].size);
		e.msg[0] = 0;
		int rc = boot_parse_header(c, len, len, "k", &h, &e);
		CHECK(rc < 0, "%s rejected (rc %d)", bad[i].what, rc);
		CHECK(strcmp(e.msg, bad[i].msg) == 0, "%s message: '%s'", bad[i].what, e.msg);
		free(c);
	}

	/* truncated: protected-mode part shorter than syssize*16 */
	CHECK(boot_parse_header(img, len, len - 16, "k", &h, &e) < 0 &&
	      strstr(e.msg, "truncated"), "truncated kernel part: '%s'", e.msg);
	/* truncated inside the setup */
	CHECK(boot_parse_header(img, 1024, 1024, "k", &h, &e) < 0 &&
	      strcmp(e.msg, "boot: k: truncated (setup needs 2560 bytes, file has 1024)") == 0,
	      "truncated setup: '%s'", e.msg);
	CHECK(boot_parse_header(img, 100, 100, "k", &h, &e) < 0 &&
	      strstr(e.msg, "not a bzImage (only 100 bytes)"), "tiny file: '%s'", e.msg);
	CHECK(boot_parse_header(img, 0, 0, "k", &h, &e) < 0, "empty file rejected");
	/* odd: setup_sects 255 */
	img[0x1f1] = 255;
	CHECK(boot_parse_header(img, len, len, "k", &h, &e) < 0 && strstr(e.msg, "truncated"),
	      "setup_sects 255 past the file: '%s'", e.msg);
	free(img);
}

/* A gmem for a given size, laid out as gmem_alloc does, without memory. */
static void fake_gmem(struct gmem *gm, uint64_t ram)
{
	memset(gm, 0, sizeof(*gm));
	uint64_t low = ram < LAYOUT_RAM_LOW_END ? ram : LAYOUT_RAM_LOW_END;
	gm->r[gm->nr++] = (struct gmem_region){ .gpa = 0, .size = low };
	if (ram > low)
		gm->r[gm->nr++] = (struct gmem_region){ .gpa = LAYOUT_HIGH_RAM, .size = ram - low };
	gm->ram_size = ram;
}

static void check_e820(uint64_t ram, const char *name)
{
	struct gmem gm;
	struct boot_e820 t[BOOT_E820_MAX];
	fake_gmem(&gm, ram);
	int n = boot_build_e820(&gm, t, BOOT_E820_MAX);
	CHECK(n > 0, "%s: e820 built (%d entries)", name, n);
	if (n <= 0)
		return;
	uint64_t ram_sum = 0, covered = 0;
	int sorted = 1, in_hole = 0, rsv_ok = 0, low_ram = 0;
	for (int i = 0; i < n; i++) {
		uint64_t a = t[i].addr, end = a + t[i].size;
		if (i && t[i - 1].addr + t[i - 1].size > a)
			sorted = 0;
		if (t[i].type == BOOT_E820_RAM) {
			ram_sum += t[i].size;
			if (a < LAYOUT_PCI_HOLE_END && end > LAYOUT_PCI_HOLE)
				in_hole = 1;
			if (a == 0 && end == LAYOUT_EBDA)
				low_ram = 1;
		}
		if (t[i].type == BOOT_E820_RESERVED && a == LAYOUT_EBDA && end == 0x100000)
			rsv_ok = 1;
		covered += t[i].size;
	}
	CHECK(sorted, "%s: sorted and non-overlapping", name);
	CHECK(!in_hole, "%s: no RAM in the PCI hole", name);
	CHECK(low_ram, "%s: RAM [0, EBDA)", name);
	CHECK(rsv_ok, "%s: reserved [EBDA, 1 MiB) covers MP/ACPI tables", name);
	CHECK_EQ(covered, ram, "%s: entries cover exactly the guest RAM", name);
	CHECK_EQ(ram_sum, ram - (0x100000 - LAYOUT_EBDA), "%s: RAM = requested minus the BIOS window", name);
	if (ram > LAYOUT_RAM_LOW_END)
		CHECK(t[n - 1].addr == LAYOUT_HIGH_RAM && t[n - 1].size == ram - LAYOUT_RAM_LOW_END,
		      "%s: high RAM at 4 GiB", name);
}

static void test_e820(void)
{
	check_e820(256 * MIB, "256M");
	check_e820(3 * GIB, "3G");
	check_e820(6 * GIB, "6G");
	check_e820(LAYOUT_RAM_LOW_END + 4096, "hole+4K");
	struct gmem gm;
	struct boot_e820 t[2];
	fake_gmem(&gm, 256 * MIB);
	CHECK_EQ(boot_build_e820(&gm, t, 2), -ENOSPC, "too small a table: -ENOSPC");
	/* the real allocator's layout agrees */
	struct err e;
	if (gmem_alloc(&gm, 5 * GIB, &e) == 0) {
		struct boot_e820 tt[BOOT_E820_MAX];
		int n = boot_build_e820(&gm, tt, BOOT_E820_MAX);
		uint64_t sum = 0;
		for (int i = 0; i < n; i++)
			sum += tt[i].size;
		CHECK(n == 4 && sum == 5 * GIB, "gmem_alloc 5G: 4 entries, %llu bytes", (unsigned long long)sum);
		gmem_free(&gm);
	} else {
		printf("ok - gmem_alloc 5G # SKIP %s\n", e.msg);
	}
	/* host and guest agree modulo 2 MiB, so THP and KVM's 2 MiB nested
	 * pages can back guest RAM from the first touch. Newer kernels align
	 * big anonymous mappings by themselves, but only sizes that are a
	 * multiple of 2 MiB: 257 MiB tests our own alignment there too. */
	static const uint64_t sizes[] = { 257 * MIB, 5 * GIB + 3 * MIB };
	for (unsigned k = 0; k < ARRAY_SIZE(sizes); k++) {
		if (gmem_alloc(&gm, sizes[k], &e) != 0) {
			printf("ok - gmem_alloc %llu MiB # SKIP %s\n", (unsigned long long)(sizes[k] >> 20), e.msg);
			continue;
		}
		for (unsigned i = 0; i < gm.nr; i++)
			CHECK(((uintptr_t)gm.r[i].host & ((2u << 20) - 1)) == 0,
			      "gmem_alloc %llu MiB: region %u's host mapping is 2 MiB-aligned (%p)",
			      (unsigned long long)(sizes[k] >> 20), i, (void *)gm.r[i].host);
		gmem_free(&gm);
	}
}

static void test_cmdline(void)
{
	size_t len;
	uint8_t *img = fake_image(16, &len);
	struct boot_hdr h;
	struct err e = { "" };
	CHECK_EQ(boot_parse_header(img, len, len, "k", &h, &e), 0, "parse");
	CHECK_EQ(boot_check_cmdline(&h, 2047, &e), 0, "2047 bytes fit cmdline_size 2047");
	CHECK(boot_check_cmdline(&h, 2048, &e) < 0 &&
	      strcmp(e.msg, "cmdline: 2048 bytes, kernel allows at most 2047") == 0,
	      "2048 bytes: '%s'", e.msg);
	h.cmdline_size = 0xffffffff;
	CHECK(boot_check_cmdline(&h, LAYOUT_CMDLINE_MAX, &e) < 0, "capped at the room layout.h reserves: '%s'", e.msg);
	free(img);
}

static void test_initrd(void)
{
	size_t len;
	uint8_t *img = fake_image(16, &len);
	struct boot_hdr h;
	struct gmem gm;
	struct err e;
	uint64_t g = 0, kend;
	CHECK_EQ(boot_parse_header(img, len, len, "k", &h, &e), 0, "parse");
	kend = boot_kernel_end(&h);

	fake_gmem(&gm, 256 * MIB);
	CHECK_EQ(boot_place_initrd(&gm, &h, 10 * MIB + 5, &g), 0, "10M initrd fits in 256M");
	CHECK(g % 4096 == 0, "page aligned (0x%llx)", (unsigned long long)g);
	CHECK(g >= kend, "above the kernel's init_size end");
	CHECK(g + 10 * MIB + 5 <= 256 * MIB && g + 10 * MIB + 5 > 256 * MIB - 4096, "as high as possible");
	CHECK(boot_place_initrd(&gm, &h, 256 * MIB - kend + 1, &g) == -ENOSPC, "too big: -ENOSPC");
	CHECK(boot_place_initrd(&gm, &h, 256 * MIB - kend, &g) == 0 && g == kend, "exactly fits above kernel");

	/* initrd_addr_max respected (no XLF_CAN_BE_LOADED_ABOVE_4G) */
	fake_gmem(&gm, 3 * GIB);
	h.initrd_addr_max = 0x37ffffff;
	h.xloadflags = BOOT_XLF_KERNEL_64;
	CHECK(boot_place_initrd(&gm, &h, 20 * MIB, &g) == 0 && g + 20 * MIB <= 0x38000000 &&
	      g % 4096 == 0, "below initrd_addr_max (0x%llx)", (unsigned long long)g);
	CHECK(boot_place_initrd(&gm, &h, 0x38000000 - kend + 4096, &g) == -ENOSPC,
	      "over initrd_addr_max: -ENOSPC");
	/* above 4G allowed: low region used first, up to its end */
	h.xloadflags = BOOT_XLF_KERNEL_64 | BOOT_XLF_ABOVE_4G;
	CHECK(boot_place_initrd(&gm, &h, 20 * MIB, &g) == 0 && g + 20 * MIB == 3 * GIB,
	      "XLF_CAN_BE_LOADED_ABOVE_4G ignores initrd_addr_max");
	fake_gmem(&gm, 7 * GIB);
	CHECK(boot_place_initrd(&gm, &h, 3500 * MIB, &g) == 0 && g >= LAYOUT_HIGH_RAM &&
	      g + 3500 * MIB <= LAYOUT_HIGH_RAM + 4 * GIB, "too big for low RAM: goes above 4 GiB");
	h.xloadflags = BOOT_XLF_KERNEL_64;
	CHECK(boot_place_initrd(&gm, &h, 3500 * MIB, &g) == -ENOSPC, "but not without the flag");
	/* hostile pref_address: no overflow */
	h.pref_address = UINT64_MAX - 10;
	CHECK_EQ(boot_kernel_end(&h), 0, "pref_address overflow -> 0");
	CHECK(boot_place_initrd(&gm, &h, 4096, &g) == -ENOSPC, "and no placement");
	free(img);
}

static int write_tmp(char *path, const void *data, size_t len)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, len);
	close(fd);
	return w == (ssize_t)len ? 0 : -1;
}

static void test_load(void)
{
	size_t len;
	uint8_t *img = fake_image(4096, &len); /* 64 KiB kernel */
	char kpath[] = "/tmp/kvmlab-boot-k.XXXXXX", ipath[] = "/tmp/kvmlab-boot-i.XXXXXX";
	char tpath[] = "/tmp/kvmlab-boot-t.XXXXXX", bpath[] = "/tmp/kvmlab-boot-b.XXXXXX";
	uint8_t initrd[12345];
	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	if (write_tmp(kpath, img, len) || write_tmp(ipath, initrd, sizeof(initrd)) ||
	    write_tmp(tpath, img, len - 100) || write_tmp(bpath, initrd, 5000)) {
		CHECK(0, "temp files");
		goto out;
	}
	uint64_t ram = 64 * MIB;
	uint8_t *mem = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		CHECK(0, "mmap");
		goto out;
	}
	memset(mem + LAYOUT_ZEROPAGE, 0xcc, 4096); /* must be zeroed by the loader */
	struct gmem gm;
	gmem_init_flat(&gm, mem, ram);
	struct boot_info bi = { 0, 0 };
	struct err e = { "" };
	struct boot_cfg cfg = { .kernel = kpath, .initrd = ipath, .cmdline = "console=ttyS0 tok=42" };
	CHECK_EQ(boot_load(&gm, &cfg, &bi, &e), 0, "boot_load (%s)", e.msg);
	CHECK_EQ(bi.entry, 0x100000 + 0x200, "64-bit entry at 1 MiB + 0x200");
	CHECK_EQ(bi.zeropage, LAYOUT_ZEROPAGE, "zero page");
	const uint8_t *zp = mem + LAYOUT_ZEROPAGE;
	CHECK(memcmp(mem + 0x100000, img + FAKE_SETUP, len - FAKE_SETUP) == 0, "kernel bytes at 1 MiB");
	CHECK(zp[0] == 0 && zp[0x1ef] == 0 && zp[0xfff] == 0, "zero page zeroed (sentinel 0)");
	CHECK(rd16(zp, 0x1fe) == 0xaa55 && memcmp(zp + 0x202, "HdrS", 4) == 0, "header copied");
	CHECK(zp[0x26c] == 0, "nothing copied past the header end");
	CHECK_EQ(zp[0x210], 0xff, "type_of_loader");
	CHECK_EQ(zp[0x211], 0x81, "loadflags: LOADED_HIGH | CAN_USE_HEAP");
	CHECK_EQ(rd16(zp, 0x1fa), 0xffff, "vid_mode normal");
	CHECK_EQ(rd16(zp, 0x224), 0xfe00, "heap_end_ptr");
	CHECK_EQ(rd32(zp, 0x228), LAYOUT_CMDLINE, "cmd_line_ptr");
	CHECK(strcmp((char *)mem + LAYOUT_CMDLINE, "console=ttyS0 tok=42") == 0, "cmdline in guest memory");
	uint32_t ri = rd32(zp, 0x218), rs = rd32(zp, 0x21c);
	CHECK_EQ(rs, sizeof(initrd), "ramdisk_size");
	CHECK(ri % 4096 == 0 && ri >= 0x2000000 && ri + rs <= ram, "ramdisk_image 0x%x aligned, above kernel, in RAM", ri);
	CHECK(ri + rs <= ram && memcmp(mem + ri, initrd, sizeof(initrd)) == 0, "initrd bytes in guest memory");
	CHECK_EQ(rd32(zp, 0xc0), 0, "ext_ramdisk_image 0");
	CHECK_EQ(rd64(zp, 0x70), LAYOUT_ACPI_RSDP, "acpi_rsdp_addr (protocol 2.15)");
	CHECK_EQ(zp[0x1e8], 3, "3 e820 entries for 64 MiB");
	CHECK(rd64(zp, 0x2d0 + 2 * 20) == 0x100000 && rd64(zp, 0x2d0 + 2 * 20 + 8) == ram - 0x100000 &&
	      rd32(zp, 0x2d0 + 2 * 20 + 16) == 1, "e820[2] = RAM [1M, 64M)");

	/* error paths name the file and the reason */
	cfg.initrd = NULL;
	cfg.kernel = "/nonexistent/bzImage";
	CHECK(boot_load(&gm, &cfg, &bi, &e) == -ENOENT &&
	      strcmp(e.msg, "boot: /nonexistent/bzImage: No such file or directory") == 0, "missing: '%s'", e.msg);
	cfg.kernel = "/tmp";
	CHECK(boot_load(&gm, &cfg, &bi, &e) < 0 && strstr(e.msg, "not a regular file"), "directory: '%s'", e.msg);
	cfg.kernel = tpath;
	CHECK(boot_load(&gm, &cfg, &bi, &e) < 0 && strstr(e.msg, tpath) && strstr(e.msg, "truncated"),
	      "truncated: '%s'", e.msg);
	cfg.kernel = bpath;
	CHECK(boot_load(&gm, &cfg, &bi, &e) < 0 && strstr(e.msg, "not a bzImage"), "not a bzImage: '%s'", e.msg);
	cfg.kernel = kpath;
	char longcl[3000];
	memset(longcl, 'a', sizeof(longcl) - 1);
	longcl[sizeof(longcl) - 1] = 0;
	cfg.cmdline = longcl;
	CHECK(boot_load(&gm, &cfg, &bi, &e) < 0 &&
	      strcmp(e.msg, "cmdline: 2999 bytes, kernel allows at most 2047") == 0, "cmdline: '%s'", e.msg);
	cfg.cmdline = NULL;
	/* an initrd bigger than the RAM left above the kernel */
	struct gmem small;
	gmem_init_flat(&small, mem, 0x2000000 + 8192);
	cfg.initrd = ipath;
	CHECK(boot_load(&small, &cfg, &bi, &e) < 0 &&
	      strcmp(e.msg, "initrd: ") > 0 && strstr(e.msg, "(1 MiB) does not fit in guest memory"),
	      "initrd too big: '%s'", e.msg);
	/* RAM smaller than init_size */
	gmem_init_flat(&small, mem, 16 * MIB);
	cfg.initrd = NULL;
	CHECK(boot_load(&small, &cfg, &bi, &e) < 0 && strstr(e.msg, "init_size"), "small RAM: '%s'", e.msg);
	munmap(mem, ram);
out:
	unlink(kpath);
	unlink(ipath);
	unlink(tpath);
	unlink(bpath);
	free(img);
}

/* A real kernel: KVMLAB_BZIMAGE, else the default guest's if built
 * (tests/run runs from the top of the tree). */
static void test_real(void)
{
	const char *k = getenv("KVMLAB_BZIMAGE");
	if (!k)
		k = "build/guest/bzImage";
	if (access(k, R_OK) != 0) {
		printf("ok - real bzImage # SKIP no %s (set KVMLAB_BZIMAGE)\n", k);
		return;
	}
	uint64_t ram = 256 * MIB;
	uint8_t *mem = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		CHECK(0, "mmap");
		return;
	}
	struct gmem gm;
	gmem_init_flat(&gm, mem, ram);
	struct boot_cfg cfg = { .kernel = k, .initrd = NULL, .cmdline = "console=ttyS0" };
	struct boot_info bi;
	struct err e = { "" };
	CHECK_EQ(boot_load(&gm, &cfg, &bi, &e), 0, "real bzImage %s loads (%s)", k, e.msg);
	const uint8_t *zp = mem + LAYOUT_ZEROPAGE;
	CHECK(rd16(zp, 0x206) >= 0x20c && (rd16(zp, 0x236) & 1), "real: protocol 0x%x, xloadflags 0x%x",
	      rd16(zp, 0x206), rd16(zp, 0x236));
	uint64_t kend = (rd64(zp, 0x258) > 0x100000 ? rd64(zp, 0x258) : 0x100000) + rd32(zp, 0x260);
	CHECK(kend < ram && zp[0x1e8] == 3, "real: init_size end 0x%llx inside RAM, 3 e820 entries",
	      (unsigned long long)kend);
	CHECK(rd16(zp, 0x206) < 0x20e || rd64(zp, 0x70) == LAYOUT_ACPI_RSDP, "real: acpi_rsdp_addr");
	munmap(mem, ram);
}


/* ---- ELF vmlinux ---- */
#define EK_BASE 0x1000000ULL /* a vmlinux's LOAD_PHYSICAL_ADDR */
#define EK_TEXT 8192
#define EK_DATA 100
#define EK_BSS  10000

/* An x86-64 ET_EXEC with text, data+bss and a NOTE, as a vmlinux has. */
static uint8_t *fake_elf(size_t *len)
{
	size_t n = 4096 + EK_TEXT + EK_DATA;
	uint8_t *f = calloc(1, n);
	Elf64_Ehdr eh = {
		.e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
		.e_entry = EK_BASE + 0x40, .e_phoff = sizeof(Elf64_Ehdr),
		.e_ehsize = sizeof(Elf64_Ehdr), .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 3,
	};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	Elf64_Phdr ph[3] = {
		{ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 4096,
		  .p_vaddr = 0xffffffff81000000ULL, .p_paddr = EK_BASE, .p_filesz = EK_TEXT, .p_memsz = EK_TEXT },
		{ .p_type = PT_NOTE, .p_offset = 4096, .p_paddr = EK_BASE, .p_filesz = 16, .p_memsz = 16 },
		{ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = 4096 + EK_TEXT,
		  .p_vaddr = 0xffffffff81200000ULL, .p_paddr = EK_BASE + 0x200000, .p_filesz = EK_DATA, .p_memsz = EK_BSS },
	};
	memcpy(f, &eh, sizeof(eh));
	memcpy(f + sizeof(eh), ph, sizeof(ph));
	for (size_t i = 4096; i < n; i++)
		f[i] = (uint8_t)(i * 7 + 1);
	*len = n;
	return f;
}

static Elf64_Phdr *phdr(uint8_t *f, unsigned i)
{
	return (Elf64_Phdr *)(f + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

static void test_elf_parse(void)
{
	size_t len;
	uint8_t *f = fake_elf(&len);
	struct boot_elf el;
	struct err e = { "" };
	CHECK(boot_elf_is(f, len), "ELF magic seen");
	CHECK_EQ(boot_elf_parse(f, 4096, len, "vmlinux", &el, &e), 0, "good vmlinux parses (%s)", e.msg);
	CHECK(el.nseg == 2 && el.entry == EK_BASE + 0x40 && el.lo == EK_BASE &&
	      el.hi == EK_BASE + 0x200000 + EK_BSS, "2 PT_LOADs (the NOTE skipped), entry, span");
	CHECK(el.seg[1].filesz == EK_DATA && el.seg[1].memsz == EK_BSS, "data + bss sizes kept");

	/* each defect alone: rejected with a message that names the file */
	static const struct {
		const char *what, *msg;
	} bad[] = {
		{ "32-bit", "not an x86-64 ELF" },
		{ "aarch64", "not an x86-64 ELF" },
		{ "ET_DYN", "not an executable" },
		{ "phentsize", "no usable program headers" },
		{ "phoff past the head", "not in the first" },
		{ "filesz > memsz", "more bytes in the file" },
		{ "offset + filesz past EOF", "not inside the file" },
		{ "paddr wraps", "wraps around" },
		{ "entry outside", "in no loaded segment" },
		{ "no PT_LOAD", "no loadable segment" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *g = fake_elf(&len);
		Elf64_Ehdr *eh = (Elf64_Ehdr *)g;
		switch (i) {
		case 0: eh->e_ident[EI_CLASS] = ELFCLASS32; break;
		case 1: eh->e_machine = EM_AARCH64; break;
		case 2: eh->e_type = ET_DYN; break;
		case 3: eh->e_phentsize = 32; break;
		case 4: eh->e_phoff = 4096 - sizeof(Elf64_Phdr); break;
		case 5: phdr(g, 0)->p_filesz = EK_TEXT + 1; break;
		case 6: phdr(g, 2)->p_offset = len - EK_DATA + 1; break;
		case 7: phdr(g, 2)->p_paddr = UINT64_MAX - 100; break;
		case 8: eh->e_entry = EK_BASE + 0x200000 + EK_DATA; break; /* in bss, not in the file's bytes */
		case 9: phdr(g, 0)->p_type = PT_NOTE; phdr(g, 2)->p_type = PT_NOTE; break;
		}
		struct boot_elf x;
		int rc = boot_elf_parse(g, 4096, len, "vmlinux", &x, &e);
		CHECK(rc == -ENOEXEC && strstr(e.msg, bad[i].msg) && strstr(e.msg, "boot: vmlinux: "),
		      "%s rejected: '%s'", bad[i].what, e.msg);
		free(g);
	}
	/* more segments than we keep */
	uint8_t big[4096] = { 0 };
	memcpy(big, f, sizeof(Elf64_Ehdr));
	((Elf64_Ehdr *)big)->e_phnum = BOOT_ELF_MAX_SEGS + 1;
	for (unsigned i = 0; i <= BOOT_ELF_MAX_SEGS; i++)
		*phdr(big, i) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = 0, .p_paddr = EK_BASE + i * 4096,
					     .p_filesz = 64, .p_memsz = 64 };
	CHECK(boot_elf_parse(big, sizeof(big), len, "vmlinux", &el, &e) == -ENOEXEC &&
	      strstr(e.msg, "more than 16 loadable segments"), "17 segments rejected: '%s'", e.msg);
	CHECK(boot_elf_parse(f, 40, 40, "vmlinux", &el, &e) == -ENOEXEC && strstr(e.msg, "not an ELF file"),
	      "a file shorter than an ELF header: '%s'", e.msg);
	free(f);
}

static void test_elf_load(void)
{
	size_t len;
	uint8_t *f = fake_elf(&len);
	char kpath[] = "/tmp/kvmlab-boot-elf.XXXXXX", ipath[] = "/tmp/kvmlab-boot-ei.XXXXXX";
	uint8_t initrd[5000];
	memset(initrd, 0x3c, sizeof(initrd));
	uint64_t ram = 64 * MIB;
	uint8_t *mem = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (write_tmp(kpath, f, len) || write_tmp(ipath, initrd, sizeof(initrd)) || mem == MAP_FAILED) {
		CHECK(0, "temp files, mmap");
		goto out;
	}
	/* sentinels: bss and the zero page must be cleared by the loader */
	memset(mem + EK_BASE + 0x200000, 0xcc, EK_BSS);
	memset(mem + LAYOUT_ZEROPAGE, 0xcc, 4096);
	struct gmem gm;
	gmem_init_flat(&gm, mem, ram);
	struct boot_info bi = { 0, 0 };
	struct err e = { "" };
	struct boot_cfg cfg = { .kernel = kpath, .initrd = ipath, .cmdline = "console=ttyS0 elf=1" };
	CHECK_EQ(boot_load(&gm, &cfg, &bi, &e), 0, "vmlinux: boot_load (%s)", e.msg);
	CHECK_EQ(bi.entry, EK_BASE + 0x40, "vmlinux: entered at e_entry");
	CHECK(memcmp(mem + EK_BASE, f + 4096, EK_TEXT) == 0, "vmlinux: text bytes at their paddr");
	CHECK(memcmp(mem + EK_BASE + 0x200000, f + 4096 + EK_TEXT, EK_DATA) == 0, "vmlinux: data bytes at their paddr");
	bool zero = true;
	for (size_t i = EK_DATA; i < EK_BSS; i++)
		zero &= mem[EK_BASE + 0x200000 + i] == 0;
	CHECK(zero, "vmlinux: bss (memsz past filesz) zeroed");
	const uint8_t *zp = mem + LAYOUT_ZEROPAGE;
	CHECK(rd16(zp, 0x1fe) == 0xaa55 && memcmp(zp + 0x202, "HdrS", 4) == 0 && rd16(zp, 0x206) == 0x20f,
	      "vmlinux: zero page has a 2.15 setup header");
	CHECK(zp[0] == 0 && zp[0xfff] == 0 && zp[0x210] == 0xff, "vmlinux: zero page cleared, loader 0xff");
	CHECK_EQ(rd32(zp, 0x228), LAYOUT_CMDLINE, "vmlinux: cmd_line_ptr");
	CHECK(strcmp((char *)mem + LAYOUT_CMDLINE, "console=ttyS0 elf=1") == 0, "vmlinux: cmdline in guest memory");
	uint32_t ri = rd32(zp, 0x218), rs = rd32(zp, 0x21c);
	CHECK(rs == sizeof(initrd) && ri >= EK_BASE + 0x200000 + EK_BSS && ri + rs <= ram &&
	      memcmp(mem + ri, initrd, rs) == 0, "vmlinux: initrd above the kernel's end (0x%x)", ri);
	CHECK(zp[0x1e8] == 3 && rd64(zp, 0x70) == LAYOUT_ACPI_RSDP, "vmlinux: e820 and ACPI RSDP filled");

	/* segments where the VMM's tables are, or past the guest's RAM */
	static const uint64_t where[] = { 0x9000, 64 * MIB - 4096, 0xc0000000ULL - 4096 };
	for (unsigned i = 0; i < 3; i++) {
		uint8_t *g = fake_elf(&len);
		char p2[] = "/tmp/kvmlab-boot-elf2.XXXXXX";
		phdr(g, 0)->p_paddr = where[i];
		((Elf64_Ehdr *)g)->e_entry = where[i];
		memset(mem + LAYOUT_PML4, 0x5a, 16);
		if (write_tmp(p2, g, len) == 0) {
			cfg.kernel = p2;
			CHECK(boot_load(&gm, &cfg, &bi, &e) == -ENOMEM && strstr(e.msg, p2) &&
			      strstr(e.msg, "not in guest RAM"), "vmlinux: segment at 0x%llx refused: '%s'",
			      (unsigned long long)where[i], e.msg);
			CHECK(mem[LAYOUT_PML4] == 0x5a, "vmlinux: nothing written below 1 MiB");
			unlink(p2);
		}
		free(g);
	}
out:
	unlink(kpath);
	unlink(ipath);
	if (mem != MAP_FAILED)
		munmap(mem, ram);
	free(f);
}

/* boot_cmdline_has: whole parameters only, quotes as the kernel reads
 * them, nothing after "--" */
static void test_cmdline_has(void)
{
	static const struct { const char *line; bool want; } c[] = {
		{ "console=ttyS0 reboot=k panic=1 pci=off", true },
		{ "pci=off", true },
		{ "  pci=off\tquiet", true },
		{ "\"pci=off\"", true },
		{ "pci=\"off\"", true },
		{ "pci=offline", false },
		{ "nopci=off", false },
		{ "pci=of", false },
		{ "kvmlab.run=\"echo pci=off\" quiet", false },
		{ "quiet -- pci=off", false },
		{ "", false },
	};
	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		CHECK(boot_cmdline_has(c[i].line, "pci=off") == c[i].want,
		      "cmdline '%s': pci=off %s", c[i].line, c[i].want ? "found" : "not found");
	CHECK(!boot_cmdline_has(NULL, "pci=off"), "no cmdline: not found");
}

int main(void)
{
	test_cmdline_has();
	test_parse();
	test_e820();
	test_cmdline();
	test_initrd();
	test_load();
	test_elf_parse();
	test_elf_load();
	test_real();
	return t_done();
}

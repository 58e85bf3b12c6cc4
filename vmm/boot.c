/* bzImage loading per Documentation/arch/x86/boot.rst. We enter the
 * kernel at its 64-bit entry point, so the real-mode setup code is never
 * run or even loaded: only its header is read, then copied into
 * boot_params the way a real-mode boot would have left it. An ELF
 * vmlinux (boot_elf.c) gets the same zero page, with a header made up
 * for it, and is entered at its own startup_64. */
#include "boot.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot_elf.h"
#include "layout.h"

/* setup header fields (offsets in the image and in boot_params) */
#define OFF_SETUP_SECTS     0x1f1
#define OFF_SYSSIZE         0x1f4
#define OFF_VID_MODE        0x1fa
#define OFF_BOOT_FLAG       0x1fe
#define OFF_JUMP            0x200
#define OFF_HEADER          0x202
#define OFF_VERSION         0x206
#define OFF_TYPE_OF_LOADER  0x210
#define OFF_LOADFLAGS       0x211
#define OFF_RAMDISK_IMAGE   0x218
#define OFF_RAMDISK_SIZE    0x21c
#define OFF_HEAP_END_PTR    0x224
#define OFF_CMD_LINE_PTR    0x228
#define OFF_INITRD_ADDR_MAX 0x22c
#define OFF_KERNEL_ALIGN    0x230
#define OFF_RELOCATABLE     0x234
#define OFF_XLOADFLAGS      0x236
#define OFF_CMDLINE_SIZE    0x238
#define OFF_SETUP_DATA      0x250
#define OFF_PREF_ADDRESS    0x258
#define OFF_INIT_SIZE       0x260
/* the last field we read lives before here; hdr_end must reach it */
#define HDR_NEED_END        0x264

/* boot_params-only fields */
#define ZP_ACPI_RSDP_ADDR   0x070
#define ZP_EXT_RAMDISK_IMG  0x0c0
#define ZP_EXT_RAMDISK_SIZE 0x0c4
#define ZP_EXT_CMD_LINE_PTR 0x0c8
#define ZP_E820_ENTRIES     0x1e8
#define ZP_E820_TABLE       0x2d0

#define PAGE_SIZE 4096ULL
#define MIB (1ULL << 20)

static uint16_t get16(const uint8_t *p, size_t off)
{
	uint16_t v;
	memcpy(&v, p + off, sizeof(v));
	return v;
}

static uint32_t get32(const uint8_t *p, size_t off)
{
	uint32_t v;
	memcpy(&v, p + off, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *p, size_t off)
{
	uint64_t v;
	memcpy(&v, p + off, sizeof(v));
	return v;
}

static void put16(uint8_t *p, size_t off, uint16_t v) { memcpy(p + off, &v, sizeof(v)); }
static void put32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, sizeof(v)); }
static void put64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, sizeof(v)); }

int boot_parse_header(const void *img, size_t len, uint64_t file_size,
		      const char *name, struct boot_hdr *h, struct err *e)
{
	const uint8_t *p = img;

	memset(h, 0, sizeof(*h));
	if (len > file_size)
		len = file_size;
	if (len < BOOT_HDR_MAX_END)
		return errf(e, ENOEXEC, "boot: %s: not a bzImage (only %llu bytes)",
			    name, (unsigned long long)file_size);
	if (get16(p, OFF_BOOT_FLAG) != 0xaa55)
		return errf(e, ENOEXEC, "boot: %s: not a bzImage (no boot flag 0xAA55)", name);
	if (memcmp(p + OFF_HEADER, "HdrS", 4) != 0)
		return errf(e, ENOEXEC, "boot: %s: not a bzImage (no \"HdrS\" magic)", name);
	h->version = get16(p, OFF_VERSION);
	if (h->version < 0x0206)
		return errf(e, ENOEXEC, "boot: %s: bzImage too old (protocol %u.%02u, need 2.06)",
			    name, h->version >> 8, h->version & 0xff);
	/* the header's length is encoded in the jump over it */
	h->hdr_end = OFF_JUMP + 2 + p[OFF_JUMP + 1];
	if (h->hdr_end > BOOT_HDR_MAX_END)
		h->hdr_end = BOOT_HDR_MAX_END;
	h->loadflags = p[OFF_LOADFLAGS];
	if (!(h->loadflags & BOOT_LOADED_HIGH))
		return errf(e, ENOEXEC, "boot: %s: not a bzImage (zImage: LOADED_HIGH not set)", name);
	h->xloadflags = h->version >= 0x020c ? get16(p, OFF_XLOADFLAGS) : 0;
	if (!(h->xloadflags & BOOT_XLF_KERNEL_64))
		return errf(e, ENOEXEC,
			    "boot: %s: no 64-bit entry point (protocol %u.%02u, XLF_KERNEL_64 not set)",
			    name, h->version >> 8, h->version & 0xff);
	if (h->hdr_end < HDR_NEED_END)
		return errf(e, ENOEXEC, "boot: %s: setup header too short (%u bytes)",
			    name, h->hdr_end - BOOT_HDR_START);

	unsigned sects = p[OFF_SETUP_SECTS] ? p[OFF_SETUP_SECTS] : 4;
	h->setup_size = (sects + 1) * 512;
	if (file_size < h->setup_size)
		return errf(e, ENOEXEC, "boot: %s: truncated (setup needs %u bytes, file has %llu)",
			    name, h->setup_size, (unsigned long long)file_size);
	h->kernel_size = (uint64_t)get32(p, OFF_SYSSIZE) * 16;
	if (h->kernel_size == 0)
		return errf(e, ENOEXEC, "boot: %s: not a bzImage (syssize is 0)", name);
	if (file_size - h->setup_size < h->kernel_size)
		return errf(e, ENOEXEC,
			    "boot: %s: truncated (kernel part %llu bytes, header says %llu)",
			    name, (unsigned long long)(file_size - h->setup_size),
			    (unsigned long long)h->kernel_size);
	h->cmdline_size = get32(p, OFF_CMDLINE_SIZE);
	h->initrd_addr_max = get32(p, OFF_INITRD_ADDR_MAX);
	h->kernel_alignment = get32(p, OFF_KERNEL_ALIGN);
	h->relocatable = p[OFF_RELOCATABLE];
	h->init_size = get32(p, OFF_INIT_SIZE);
	h->pref_address = get64(p, OFF_PREF_ADDRESS);
	return 0;
}

uint64_t boot_kernel_end(const struct boot_hdr *h)
{
	/* The 64-bit entry decompresses to max(load address rounded up to
	 * kernel_alignment, LOAD_PHYSICAL_ADDR == pref_address) and uses
	 * init_size bytes from there; the compressed copy we load sits at
	 * LAYOUT_KERNEL until then. */
	uint64_t base = LAYOUT_KERNEL;
	uint64_t a = h->kernel_alignment;
	if (h->relocatable && a && (a & (a - 1)) == 0 && a <= (1ULL << 30))
		base = (base + a - 1) & ~(a - 1);
	if (h->pref_address > base)
		base = h->pref_address;
	if (base > UINT64_MAX - h->init_size)
		return 0;
	uint64_t end = base + h->init_size;
	if (LAYOUT_KERNEL + h->kernel_size > end)
		end = LAYOUT_KERNEL + h->kernel_size;
	return end;
}

bool boot_cmdline_has(const char *cmdline, const char *param)
{
	const char *p = cmdline ? cmdline : "";
	size_t want = strlen(param);
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			return false;
		/* one parameter: up to a blank outside quotes, quotes dropped */
		size_t n = 0;
		bool quoted = false, same = true;
		for (; *p && (quoted || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
			if (*p == '"') {
				quoted = !quoted;
				continue;
			}
			same = same && n < want && *p == param[n];
			n++;
		}
		if (same && n == want)
			return true;
		/* "--" ends the kernel's parameters */
		if (n == 2 && p[-1] == '-' && p[-2] == '-')
			return false;
	}
}

int boot_check_cmdline(const struct boot_hdr *h, size_t cmdline_len, struct err *e)
{
	uint64_t max = h->cmdline_size;
	if (max > LAYOUT_CMDLINE_MAX - 1)
		max = LAYOUT_CMDLINE_MAX - 1;
	if (cmdline_len > max)
		return errf(e, E2BIG, "cmdline: %zu bytes, kernel allows at most %llu",
			    cmdline_len, (unsigned long long)max);
	return 0;
}

static const struct gmem_region *region_at(const struct gmem *gm, uint64_t gpa)
{
	for (unsigned i = 0; i < gm->nr && i < GMEM_MAX_REGIONS; i++)
		if (gm->r[i].gpa == gpa)
			return &gm->r[i];
	return NULL;
}

/* Highest page-aligned start in [lo, hi) that holds size bytes. */
static int fit_top(uint64_t lo, uint64_t hi, uint64_t size, uint64_t *gpa)
{
	if (hi <= lo || size > hi - lo)
		return -ENOSPC;
	uint64_t a = (hi - size) & ~(PAGE_SIZE - 1);
	if (a < lo)
		return -ENOSPC;
	*gpa = a;
	return 0;
}

int boot_place_initrd(const struct gmem *gm, const struct boot_hdr *h,
		      uint64_t size, uint64_t *gpa)
{
	uint64_t lo = boot_kernel_end(h);
	if (lo == 0 || lo > UINT64_MAX - PAGE_SIZE)
		return -ENOSPC;
	lo = (lo + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);

	const struct gmem_region *low = region_at(gm, 0);
	if (low) {
		uint64_t hi = low->size;
		if (hi > LAYOUT_RAM_LOW_END)
			hi = LAYOUT_RAM_LOW_END;
		if (!(h->xloadflags & BOOT_XLF_ABOVE_4G) &&
		    (uint64_t)h->initrd_addr_max + 1 < hi)
			hi = (uint64_t)h->initrd_addr_max + 1;
		if (fit_top(lo, hi, size, gpa) == 0)
			return 0;
	}
	/* only a kernel that says so may find its initrd above 4 GiB */
	const struct gmem_region *high = region_at(gm, LAYOUT_HIGH_RAM);
	if (high && (h->xloadflags & BOOT_XLF_ABOVE_4G)) {
		uint64_t hlo = high->gpa > lo ? high->gpa : lo;
		if (fit_top(hlo, high->gpa + high->size, size, gpa) == 0)
			return 0;
	}
	return -ENOSPC;
}

static int e820_add(struct boot_e820 *tbl, unsigned max, unsigned *n,
		    uint64_t addr, uint64_t end, uint32_t type)
{
	if (end <= addr)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	tbl[(*n)++] = (struct boot_e820){ .addr = addr, .size = end - addr, .type = type };
	return 0;
}

int boot_build_e820(const struct gmem *gm, struct boot_e820 *tbl, unsigned max)
{
	unsigned n = 0;
	int rc = 0;

	for (unsigned i = 0; i < gm->nr && i < GMEM_MAX_REGIONS && rc == 0; i++) {
		uint64_t a = gm->r[i].gpa, end = a + gm->r[i].size;
		if (a < LAYOUT_BIOS_END) {
			/* the EBDA..1 MiB window holds the MP and ACPI tables
			 * and the legacy VGA/BIOS holes: never RAM */
			uint64_t cut1 = end < LAYOUT_EBDA ? end : LAYOUT_EBDA;
			uint64_t cut2 = end < LAYOUT_BIOS_END ? end : LAYOUT_BIOS_END;
			rc = e820_add(tbl, max, &n, a, cut1, BOOT_E820_RAM);
			if (!rc)
				rc = e820_add(tbl, max, &n, a > cut1 ? a : cut1, cut2,
					      BOOT_E820_RESERVED);
			if (!rc)
				rc = e820_add(tbl, max, &n, cut2, end, BOOT_E820_RAM);
		} else {
			rc = e820_add(tbl, max, &n, a, end, BOOT_E820_RAM);
		}
	}
	if (rc)
		return rc;
	/* insertion sort: a handful of entries */
	for (unsigned i = 1; i < n; i++) {
		struct boot_e820 t = tbl[i];
		unsigned j = i;
		for (; j > 0 && tbl[j - 1].addr > t.addr; j--)
			tbl[j] = tbl[j - 1];
		tbl[j] = t;
	}
	return (int)n;
}

int boot_fill_zeropage(uint8_t *zp, const void *img, const struct boot_hdr *h,
		       const struct gmem *gm, uint64_t initrd_gpa, uint64_t initrd_size)
{
	struct boot_e820 map[BOOT_E820_MAX];
	int n = boot_build_e820(gm, map, BOOT_E820_MAX);
	if (n < 0)
		return n;

	memset(zp, 0, BOOT_ZEROPAGE_SIZE);
	memcpy(zp + BOOT_HDR_START, (const uint8_t *)img + BOOT_HDR_START,
	       h->hdr_end - BOOT_HDR_START);
	zp[OFF_TYPE_OF_LOADER] = 0xff; /* undefined loader */
	zp[OFF_LOADFLAGS] = h->loadflags | BOOT_CAN_USE_HEAP;
	/* setup is never run, but the field must look sane */
	put16(zp, OFF_HEAP_END_PTR, 0xfe00);
	put16(zp, OFF_VID_MODE, 0xffff); /* "normal" */
	put32(zp, OFF_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE);
	put32(zp, ZP_EXT_CMD_LINE_PTR, (uint32_t)(LAYOUT_CMDLINE >> 32));
	put32(zp, OFF_RAMDISK_IMAGE, initrd_size ? (uint32_t)initrd_gpa : 0);
	put32(zp, OFF_RAMDISK_SIZE, (uint32_t)initrd_size);
	put32(zp, ZP_EXT_RAMDISK_IMG, initrd_size ? (uint32_t)(initrd_gpa >> 32) : 0);
	put32(zp, ZP_EXT_RAMDISK_SIZE, (uint32_t)(initrd_size >> 32));
	/* a bzImage's own setup_data pointer would point into nowhere */
	put64(zp, OFF_SETUP_DATA, 0);
	if (h->version >= 0x020e)
		put64(zp, ZP_ACPI_RSDP_ADDR, LAYOUT_ACPI_RSDP);
	zp[ZP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + ZP_E820_TABLE, map, (size_t)n * sizeof(map[0]));
	return 0;
}

/* pread exactly len bytes at off into dst. */
static int read_full(int fd, void *dst, uint64_t len, uint64_t off)
{
	uint8_t *p = dst;
	while (len) {
		size_t chunk = len > (1U << 30) ? (1U << 30) : (size_t)len;
		ssize_t r = pread(fd, p, chunk, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA; /* the file shrank under us */
		p += r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

static int open_file(const char *what, const char *path, uint64_t *size, struct err *e)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(e, errno, "%s: %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int rc = errf(e, errno, "%s: %s: %s", what, path, strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return errf(e, EINVAL, "%s: %s: not a regular file", what, path);
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

static unsigned long long mib_up(uint64_t b)
{
	return (unsigned long long)((b + MIB - 1) / MIB);
}

/* The setup header a vmlinux lacks: what a 2.15 bzImage of a 64-bit
 * kernel would say, with the kernel spanning [el->lo, el->hi). The caller
 * checked that span lies in low RAM, so it fits init_size's 32 bits. */
static void elf_setup_header(const struct boot_elf *el, uint8_t *setup, struct boot_hdr *h)
{
	*h = (struct boot_hdr){
		.hdr_end = HDR_NEED_END, .version = 0x020f, .loadflags = BOOT_LOADED_HIGH,
		.xloadflags = BOOT_XLF_KERNEL_64 | BOOT_XLF_ABOVE_4G, .cmdline_size = 2047,
		.initrd_addr_max = 0x7fffffff, .init_size = (uint32_t)(el->hi - el->lo),
		.kernel_alignment = 0x200000, .pref_address = el->lo,
	};
	/* the same values as bytes, for boot_fill_zeropage to copy */
	memset(setup, 0, BOOT_HDR_MAX_END);
	put16(setup, OFF_BOOT_FLAG, 0xaa55);
	memcpy(setup + OFF_HEADER, "HdrS", 4);
	put16(setup, OFF_VERSION, h->version);
	setup[OFF_LOADFLAGS] = h->loadflags;
	put32(setup, OFF_INITRD_ADDR_MAX, h->initrd_addr_max);
	put32(setup, OFF_KERNEL_ALIGN, h->kernel_alignment);
	put16(setup, OFF_XLOADFLAGS, h->xloadflags);
	put32(setup, OFF_CMDLINE_SIZE, h->cmdline_size);
	put64(setup, OFF_PREF_ADDRESS, h->pref_address);
	put32(setup, OFF_INIT_SIZE, h->init_size);
}

/* Every segment in guest RAM, above the VMM's tables below 1 MiB. */
static int elf_check_fit(const struct gmem *gm, const struct boot_elf *el, const char *name,
			 struct err *e)
{
	for (unsigned i = 0; i < el->nseg; i++) {
		const struct boot_elf_seg *s = &el->seg[i];
		if (s->paddr < LAYOUT_BIOS_END || s->paddr + s->memsz > LAYOUT_RAM_LOW_END ||
		    !gmem_ptr(gm, s->paddr, s->memsz))
			return errf(e, ENOMEM,
				    "boot: %s: segment at 0x%llx (%llu bytes) is not in guest RAM between 1 MiB and the PCI hole",
				    name, (unsigned long long)s->paddr, (unsigned long long)s->memsz);
	}
	return 0;
}

int boot_load(const struct gmem *gm, const struct boot_cfg *cfg,
	      struct boot_info *bi, struct err *e)
{
	uint8_t head[BOOT_ELF_HEAD], setup[BOOT_HDR_MAX_END];
	struct boot_hdr h;
	struct boot_elf el;
	uint64_t ksize, isize = 0, igpa = 0;
	int kfd, ifd = -1, rc;
	const char *cmdline = cfg->cmdline ? cfg->cmdline : "";
	size_t cmdline_len = strlen(cmdline);

	kfd = open_file("boot", cfg->kernel, &ksize, e);
	if (kfd < 0)
		return kfd;
	memset(head, 0, sizeof(head));
	size_t want = ksize < sizeof(head) ? (size_t)ksize : sizeof(head);
	rc = read_full(kfd, head, want, 0);
	if (rc) {
		rc = errf(e, -rc, "boot: %s: %s", cfg->kernel, strerror(-rc));
		goto err_kfd;
	}
	bool elf = boot_elf_is(head, want);
	if (elf) {
		rc = boot_elf_parse(head, want, ksize, cfg->kernel, &el, e);
		if (!rc)
			rc = elf_check_fit(gm, &el, cfg->kernel, e);
		if (rc)
			goto err_kfd;
		elf_setup_header(&el, setup, &h);
	} else {
		memcpy(setup, head, sizeof(setup));
		rc = boot_parse_header(setup, want < sizeof(setup) ? want : sizeof(setup), ksize,
				       cfg->kernel, &h, e);
		if (rc)
			goto err_kfd;
	}
	rc = boot_check_cmdline(&h, cmdline_len, e);
	if (rc)
		goto err_kfd;

	uint64_t kend = boot_kernel_end(&h);
	if (kend == 0 || !gmem_ptr(gm, LAYOUT_KERNEL, kend - LAYOUT_KERNEL)) {
		const struct gmem_region *low = region_at(gm, 0);
		rc = errf(e, ENOMEM,
			  "boot: %s: kernel needs RAM up to %llu MiB (init_size), guest has %llu MiB below the PCI hole",
			  cfg->kernel, mib_up(kend ? kend : UINT64_MAX),
			  (unsigned long long)(low ? low->size / MIB : 0));
		goto err_kfd;
	}

	/* place the initrd before loading anything, so a misfit costs no I/O */
	if (cfg->initrd) {
		ifd = open_file("initrd", cfg->initrd, &isize, e);
		if (ifd < 0) {
			rc = ifd;
			goto err_kfd;
		}
		if (isize && boot_place_initrd(gm, &h, isize, &igpa) != 0) {
			rc = errf(e, ENOMEM, "initrd: %s (%llu MiB) does not fit in guest memory",
				  cfg->initrd, mib_up(isize));
			goto err_ifd;
		}
	}

	if (elf) {
		/* elf_check_fit put every segment in guest RAM */
		for (unsigned i = 0; i < el.nseg && rc == 0; i++) {
			uint8_t *dst = gmem_ptr(gm, el.seg[i].paddr, el.seg[i].memsz);
			rc = dst ? read_full(kfd, dst, el.seg[i].filesz, el.seg[i].off) : -EFAULT;
			if (!rc)
				memset(dst + el.seg[i].filesz, 0, el.seg[i].memsz - el.seg[i].filesz);
		}
	} else {
		void *kdst = gmem_ptr(gm, LAYOUT_KERNEL, h.kernel_size);
		rc = kdst ? read_full(kfd, kdst, h.kernel_size, h.setup_size) : -EFAULT;
	}
	if (rc) {
		rc = errf(e, -rc, "boot: %s: loading the kernel: %s", cfg->kernel, strerror(-rc));
		goto err_ifd;
	}
	if (isize) {
		void *idst = gmem_ptr(gm, igpa, isize);
		rc = idst ? read_full(ifd, idst, isize, 0) : -EFAULT;
		if (rc) {
			rc = errf(e, -rc, "initrd: %s: %s", cfg->initrd, strerror(-rc));
			goto err_ifd;
		}
	}

	rc = gmem_write(gm, LAYOUT_CMDLINE, cmdline, cmdline_len + 1);
	if (rc) {
		rc = errf(e, -rc, "boot: no guest RAM for the cmdline at 0x%llx",
			  (unsigned long long)LAYOUT_CMDLINE);
		goto err_ifd;
	}
	uint8_t *zp = gmem_ptr(gm, LAYOUT_ZEROPAGE, BOOT_ZEROPAGE_SIZE);
	rc = zp ? boot_fill_zeropage(zp, setup, &h, gm, igpa, isize) : -EFAULT;
	if (rc) {
		rc = errf(e, -rc, "boot: cannot build the zero page: %s", strerror(-rc));
		goto err_ifd;
	}
	/* a bzImage's 64-bit entry is 0x200 into its protected-mode part */
	bi->entry = elf ? el.entry : LAYOUT_KERNEL + 0x200;
	bi->zeropage = LAYOUT_ZEROPAGE;
	rc = 0;
err_ifd:
	if (ifd >= 0)
		close(ifd);
err_kfd:
	close(kfd);
	return rc;
}

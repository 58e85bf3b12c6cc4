/* fuzz-srcs: vmm/boot.c vmm/boot_elf.c */
/* The bzImage path of boot_load, minus the file I/O, on arbitrary bytes:
 * the setup header parser, the cmdline check, the kernel's footprint, the
 * initrd placement and the zero page. Input: the file size (8 bytes), the
 * initrd size (8), guest RAM in MiB (2), the cmdline length (4), then the
 * file's head (what boot_load hands the parser: at most BOOT_HDR_MAX_END
 * bytes). The kernel file is the user's, not the guest's, but a broken or
 * hostile one must be refused with a reason, never loaded out of bounds:
 * whatever the parser accepts is checked against what boot_load then
 * copies, and where. */
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "layout.h"

#define MIB (1ull << 20)

static void need(int ok)
{
	if (!ok)
		abort();
}

/* [gpa, gpa + len) inside one region of gm (no host bytes needed). */
static int in_ram(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < gm->nr; i++) {
		const struct gmem_region *r = &gm->r[i];
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t zp[BOOT_ZEROPAGE_SIZE];
	uint64_t fsize, isize;
	uint16_t ram_mib;
	uint32_t clen;

	if (size < 22)
		return 0;
	memcpy(&fsize, data, 8);
	memcpy(&isize, data + 8, 8);
	memcpy(&ram_mib, data + 16, 2);
	memcpy(&clen, data + 18, 4);
	data += 22, size -= 22;
	if (size > BOOT_HDR_MAX_END)
		size = BOOT_HDR_MAX_END;

	struct boot_hdr h;
	struct err e;
	e.msg[0] = 0;
	if (boot_parse_header(data, size, fsize, "fuzz", &h, &e) != 0) {
		need(e.msg[0] != 0); /* every refusal says why */
		return 0;
	}
	/* what the zero page copies, and what boot_load reads from the file */
	need(h.hdr_end > BOOT_HDR_START && h.hdr_end <= BOOT_HDR_MAX_END && h.hdr_end <= size);
	need(h.setup_size >= 512 && h.setup_size <= fsize);
	need(h.kernel_size > 0 && h.kernel_size <= fsize - h.setup_size);
	need(h.xloadflags & BOOT_XLF_KERNEL_64);

	e.msg[0] = 0;
	if (boot_check_cmdline(&h, clen, &e) != 0)
		need(e.msg[0] != 0);
	else
		need(clen < LAYOUT_CMDLINE_MAX);

	/* guest RAM as gmem_alloc splits it around the PCI hole; placement
	 * is arithmetic, so the regions need no host memory */
	struct gmem gm;
	memset(&gm, 0, sizeof(gm));
	uint64_t ram = (uint64_t)(ram_mib ? ram_mib : 1) * MIB;
	gm.r[0].gpa = 0;
	gm.r[0].size = ram < LAYOUT_RAM_LOW_END ? ram : LAYOUT_RAM_LOW_END;
	gm.nr = 1;
	if (ram > LAYOUT_RAM_LOW_END) {
		gm.r[1].gpa = LAYOUT_HIGH_RAM;
		gm.r[1].size = ram - LAYOUT_RAM_LOW_END;
		gm.nr = 2;
	}
	gm.ram_size = ram;

	uint64_t kend = boot_kernel_end(&h);
	if (kend != 0)
		need(kend >= LAYOUT_KERNEL + h.kernel_size);
	if (kend == 0 || !in_ram(&gm, LAYOUT_KERNEL, kend - LAYOUT_KERNEL))
		return 0; /* boot_load refuses here: the kernel does not fit */

	uint64_t igpa = 0;
	if (isize && boot_place_initrd(&gm, &h, isize, &igpa) == 0) {
		/* page-aligned, above everything the kernel uses, inside RAM,
		 * and below 4 GiB and initrd_addr_max unless the kernel said
		 * it can take it higher */
		need((igpa & 4095) == 0 && igpa >= kend && in_ram(&gm, igpa, isize));
		if (!(h.xloadflags & BOOT_XLF_ABOVE_4G))
			need(igpa + isize <= (uint64_t)h.initrd_addr_max + 1 &&
			     igpa + isize <= LAYOUT_RAM_LOW_END);
	} else {
		isize = 0;
	}
	/* the header went into the zero page (its magic at 0x202), and the
	 * memory map's entry count (0x1e8) fits the table */
	if (boot_fill_zeropage(zp, data, &h, &gm, igpa, isize) == 0)
		need(!memcmp(zp + 0x202, "HdrS", 4) && zp[0x1e8] >= 1 && zp[0x1e8] <= BOOT_E820_MAX);
	return 0;
}

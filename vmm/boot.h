/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst): validate a
 * bzImage, load it, fill boot_params (the "zero page"). */
#ifndef KVMLAB_VMM_BOOT_H
#define KVMLAB_VMM_BOOT_H
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "guestmem.h"
#include "util.h"

struct boot_cfg {
	const char *kernel;
	const char *initrd;  /* NULL: none */
	const char *cmdline; /* NULL: empty */
};

struct boot_info {
	uint64_t entry;    /* gpa of the 64-bit entry point */
	uint64_t zeropage; /* gpa of boot_params, goes in RSI */
};

/* Load kernel (+initrd, cmdline) into guest memory and fill the zero
 * page at LAYOUT_ZEROPAGE. Errors name the file and the reason. */
int boot_load(const struct gmem *gm, const struct boot_cfg *cfg,
	      struct boot_info *bi, struct err *e) WUR;

/* --- pure pieces, exposed for unit tests --- */

/* Offsets in the image (and in boot_params: the header sits at the same
 * offset in both). */
#define BOOT_HDR_START     0x1f1
#define BOOT_HDR_MAX_END   0x290 /* where boot_params.hdr's room ends */
#define BOOT_ZEROPAGE_SIZE 0x1000
#define BOOT_E820_MAX      128   /* entries that fit in the zero page */

#define BOOT_LOADED_HIGH   0x01
#define BOOT_CAN_USE_HEAP  0x80
#define BOOT_XLF_KERNEL_64 0x01
#define BOOT_XLF_ABOVE_4G  0x02 /* XLF_CAN_BE_LOADED_ABOVE_4G */

#define BOOT_E820_RAM      1
#define BOOT_E820_RESERVED 2

/* What boot_load needs from the setup header, already validated. */
struct boot_hdr {
	uint32_t setup_size;   /* bytes of real-mode setup (incl. boot sector) */
	uint64_t kernel_size;  /* protected-mode bytes to load: syssize * 16 */
	uint32_t hdr_end;      /* copy [BOOT_HDR_START, hdr_end) into boot_params */
	uint16_t version;      /* 0x020f = 2.15 */
	uint8_t loadflags;
	uint16_t xloadflags;
	uint32_t cmdline_size; /* max cmdline bytes without the NUL */
	uint32_t initrd_addr_max; /* highest byte an initrd may occupy */
	uint32_t init_size;    /* bytes the kernel needs from its load address */
	uint32_t kernel_alignment;
	uint8_t relocatable;
	uint64_t pref_address; /* where the kernel decompresses itself */
};

/* img holds the first len bytes of a file of file_size bytes (len may
 * be less than file_size: only the setup part is needed). name is used
 * in error messages. */
int boot_parse_header(const void *img, size_t len, uint64_t file_size,
		      const char *name, struct boot_hdr *h, struct err *e) WUR;

struct boot_e820 {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* The guest's memory map from gm's regions, sorted. Returns the number
 * of entries, or -ENOSPC if more than max are needed. */
int boot_build_e820(const struct gmem *gm, struct boot_e820 *tbl, unsigned max) WUR;

/* First gpa the kernel never touches while it decompresses and runs
 * early (what an initrd must stay above). 0 if it overflows. */
uint64_t boot_kernel_end(const struct boot_hdr *h);

/* Where an initrd of size bytes goes: page-aligned, as high as possible,
 * above boot_kernel_end, within the initrd limits of h and guest RAM.
 * 0 on success, -ENOSPC if it does not fit. */
int boot_place_initrd(const struct gmem *gm, const struct boot_hdr *h,
		      uint64_t size, uint64_t *gpa) WUR;

/* cmdline_len (without the NUL) against the kernel's cmdline_size and
 * the room layout.h reserves. */
int boot_check_cmdline(const struct boot_hdr *h, size_t cmdline_len,
		       struct err *e) WUR;

/* Does the kernel command line carry parameter param (e.g. "pci=off")?
 * Parameters are split at spaces outside double quotes, and compared
 * with their quotes removed, as the kernel's own parser does; nothing
 * after "--" counts (init's arguments). */
bool boot_cmdline_has(const char *cmdline, const char *param);

/* Fill the 4 KiB zero page zp (a host buffer) from the image's setup
 * header (img as given to boot_parse_header), the memory map of gm and
 * the initrd placement (size 0: none). */
int boot_fill_zeropage(uint8_t *zp, const void *img, const struct boot_hdr *h,
		       const struct gmem *gm, uint64_t initrd_gpa,
		       uint64_t initrd_size) WUR;
#endif

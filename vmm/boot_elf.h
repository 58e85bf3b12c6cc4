/* An uncompressed ELF vmlinux (what Firecracker boots): its program
 * headers, validated. boot.c loads the segments and enters the kernel at
 * its 64-bit startup_64 with the same zero page a bzImage gets. */
#ifndef KVMLAB_VMM_BOOT_ELF_H
#define KVMLAB_VMM_BOOT_ELF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define BOOT_ELF_MAX_SEGS 16
/* the program headers must lie in the file's first this many bytes */
#define BOOT_ELF_HEAD     4096

struct boot_elf_seg {
	uint64_t off, filesz; /* bytes in the file */
	uint64_t paddr, memsz; /* where they go; memsz - filesz zeroed */
};

struct boot_elf {
	uint64_t entry;  /* physical address of startup_64 (e_entry) */
	uint64_t lo, hi; /* lowest paddr and highest paddr + memsz */
	unsigned nseg;
	struct boot_elf_seg seg[BOOT_ELF_MAX_SEGS];
};

/* Does the file start like an ELF file at all? */
bool boot_elf_is(const void *head, size_t len);
/* head holds the first len bytes of a file of file_size bytes. Accepts a
 * little-endian x86-64 ET_EXEC with 1..BOOT_ELF_MAX_SEGS PT_LOAD segments
 * that lie inside the file, do not overflow, and hold the entry point.
 * name is used in error messages. */
int boot_elf_parse(const void *head, size_t len, uint64_t file_size, const char *name,
		   struct boot_elf *el, struct err *e) WUR;
#endif

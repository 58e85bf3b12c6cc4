/* fuzz-srcs: vmm/boot_elf.c */
/* The vmlinux ELF parser on arbitrary bytes. The input's first 8 bytes
 * are the file size the parser is told (the head may be shorter than the
 * file, or claim bytes the file lacks); the rest is the file's head. What
 * it accepts must be safe for boot.c to load: every segment inside the
 * file, no more file bytes than memory bytes, no address wrap, the entry
 * inside a segment's file bytes, and lo/hi bounding them all. */
#include <stdlib.h>
#include <string.h>

#include "boot_elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t fsize;
	memcpy(&fsize, data, 8);
	data += 8, size -= 8;
	if (size > BOOT_ELF_HEAD)
		size = BOOT_ELF_HEAD;
	struct boot_elf el;
	struct err e;
	if (boot_elf_parse(data, size, fsize, "fuzz", &el, &e) != 0) {
		if (!e.msg[0])
			abort(); /* every refusal says why */
		return 0;
	}
	if (el.nseg == 0 || el.nseg > BOOT_ELF_MAX_SEGS || el.lo > el.hi)
		abort();
	int in = 0;
	for (unsigned i = 0; i < el.nseg; i++) {
		const struct boot_elf_seg *s = &el.seg[i];
		if (s->filesz > s->memsz || s->off > fsize || s->filesz > fsize - s->off ||
		    s->paddr > UINT64_MAX - s->memsz || s->paddr < el.lo || s->paddr + s->memsz > el.hi)
			abort();
		if (el.entry >= s->paddr && el.entry - s->paddr < s->filesz)
			in = 1;
	}
	if (!in)
		abort();
	return 0;
}

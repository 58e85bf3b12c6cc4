/* ELF vmlinux: the program headers of an uncompressed x86-64 kernel. The
 * file is the user's, not the guest's, but is still checked like input:
 * every offset, size and address before boot.c writes guest memory. */
#include "boot_elf.h"

#include <elf.h>
#include <string.h>

bool boot_elf_is(const void *head, size_t len)
{
	return len >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0;
}

int boot_elf_parse(const void *head, size_t len, uint64_t file_size, const char *name,
		   struct boot_elf *el, struct err *e)
{
	Elf64_Ehdr eh;

	memset(el, 0, sizeof(*el));
	if (len > file_size)
		len = file_size;
	if (!boot_elf_is(head, len) || len < sizeof(eh))
		return errf(e, ENOEXEC, "boot: %s: not an ELF file", name);
	memcpy(&eh, head, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return errf(e, ENOEXEC, "boot: %s: not an x86-64 ELF file", name);
	if (eh.e_type != ET_EXEC)
		return errf(e, ENOEXEC, "boot: %s: ELF type %u, not an executable (a vmlinux is ET_EXEC)",
			    name, eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0)
		return errf(e, ENOEXEC, "boot: %s: no usable program headers (%u of %u bytes)",
			    name, eh.e_phnum, eh.e_phentsize);
	if (eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return errf(e, ENOEXEC, "boot: %s: program headers not in the first %zu bytes",
			    name, len);

	el->lo = UINT64_MAX;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, (const uint8_t *)head + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (el->nseg == BOOT_ELF_MAX_SEGS)
			return errf(e, ENOEXEC, "boot: %s: more than %u loadable segments",
				    name, BOOT_ELF_MAX_SEGS);
		if (ph.p_filesz > ph.p_memsz)
			return errf(e, ENOEXEC,
				    "boot: %s: segment %u has more bytes in the file (%llu) than in memory (%llu)",
				    name, i, (unsigned long long)ph.p_filesz,
				    (unsigned long long)ph.p_memsz);
		if (ph.p_offset > file_size || ph.p_filesz > file_size - ph.p_offset)
			return errf(e, ENOEXEC,
				    "boot: %s: segment %u (offset 0x%llx, %llu bytes) is not inside the file",
				    name, i, (unsigned long long)ph.p_offset,
				    (unsigned long long)ph.p_filesz);
		if (ph.p_paddr > UINT64_MAX - ph.p_memsz)
			return errf(e, ENOEXEC, "boot: %s: segment %u wraps around the address space",
				    name, i);
		el->seg[el->nseg++] = (struct boot_elf_seg){
			.off = ph.p_offset, .filesz = ph.p_filesz,
			.paddr = ph.p_paddr, .memsz = ph.p_memsz,
		};
		if (ph.p_paddr < el->lo)
			el->lo = ph.p_paddr;
		if (ph.p_paddr + ph.p_memsz > el->hi)
			el->hi = ph.p_paddr + ph.p_memsz;
	}
	if (el->nseg == 0)
		return errf(e, ENOEXEC, "boot: %s: no loadable segment", name);
	/* a vmlinux's e_entry is physical (phys_startup_64) */
	bool in = false;
	for (unsigned i = 0; i < el->nseg && !in; i++)
		in = eh.e_entry >= el->seg[i].paddr &&
		     eh.e_entry - el->seg[i].paddr < el->seg[i].filesz;
	if (!in)
		return errf(e, ENOEXEC, "boot: %s: entry point 0x%llx is in no loaded segment",
			    name, (unsigned long long)eh.e_entry);
	el->entry = eh.e_entry;
	return 0;
}

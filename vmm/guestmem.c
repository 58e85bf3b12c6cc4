#include "guestmem.h"

#include <string.h>
#include <sys/mman.h>

#include "layout.h"

void *gmem_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (unsigned i = 0; i < gm->nr; i++) {
		const struct gmem_region *r = &gm->r[i];
		/* guest-supplied gpa/len: compare by subtraction, never gpa+len */
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off >= r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int gmem_read(const struct gmem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct gmem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

/* A guest 2 MiB page can only sit on a host huge page, and KVM can only
 * map it with one 2 MiB nested-page entry, when host address and guest
 * address agree modulo 2 MiB. Guest regions start 2 MiB-aligned, so the
 * host mapping must too. mmap alone gives 4 KiB alignment (kernels before
 * 6.7, and later ones for sizes that are not a multiple of 2 MiB), and KVM
 * then maps the whole memslot with 4 KiB entries, whatever THP does. */
#define GMEM_HUGE_ALIGN (2ULL << 20)

static int map_region(struct gmem *gm, uint64_t gpa, uint64_t size, struct err *e)
{
	uint64_t span = size + GMEM_HUGE_ALIGN;
	if (span < size)
		return errf(e, EINVAL, "memory: size %llu too large", (unsigned long long)size);
	uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return errf(e, errno, "memory: cannot map %llu MiB of guest RAM: %s",
			    (unsigned long long)(size >> 20), strerror(errno));
	uint64_t head = (GMEM_HUGE_ALIGN - ((uintptr_t)raw & (GMEM_HUGE_ALIGN - 1))) &
			(GMEM_HUGE_ALIGN - 1);
	uint8_t *p = raw + head;
	/* give back the unaligned ends; munmap of a range we own cannot fail */
	if (head)
		(void)munmap(raw, head);
	if (span - head - size)
		(void)munmap(p + size, span - head - size);
	/* guest RAM is big and cold: let THP back it where it can */
	(void)madvise(p, size, MADV_HUGEPAGE);
	gm->r[gm->nr++] = (struct gmem_region){ .gpa = gpa, .size = size, .host = p };
	return 0;
}

int gmem_alloc(struct gmem *gm, uint64_t ram_size, struct err *e)
{
	int rc;

	memset(gm, 0, sizeof(*gm));
	if (ram_size == 0)
		return errf(e, EINVAL, "memory: size must be above 0");
	uint64_t low = ram_size < LAYOUT_RAM_LOW_END ? ram_size : LAYOUT_RAM_LOW_END;
	rc = map_region(gm, 0, low, e);
	if (rc)
		return rc;
	if (ram_size > low) {
		rc = map_region(gm, LAYOUT_HIGH_RAM, ram_size - low, e);
		if (rc) {
			gmem_free(gm);
			return rc;
		}
	}
	gm->ram_size = ram_size;
	return 0;
}

void gmem_free(struct gmem *gm)
{
	for (unsigned i = 0; i < gm->nr; i++)
		munmap(gm->r[i].host, gm->r[i].size);
	memset(gm, 0, sizeof(*gm));
}

void gmem_init_flat(struct gmem *gm, uint8_t *host, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	gm->r[0] = (struct gmem_region){ .gpa = 0, .size = size, .host = host };
	gm->nr = 1;
	gm->ram_size = size;
}

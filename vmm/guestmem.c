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

static int map_region(struct gmem *gm, uint64_t gpa, uint64_t size, struct err *e)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return errf(e, errno, "memory: cannot map %llu MiB of guest RAM: %s",
			    (unsigned long long)(size >> 20), strerror(errno));
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

/* The one way to turn a guest-physical range into a host pointer. */
#ifndef KVMLAB_VMM_GUESTMEM_H
#define KVMLAB_VMM_GUESTMEM_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define GMEM_MAX_REGIONS 4

struct gmem_region {
	uint64_t gpa;  /* guest-physical start */
	uint64_t size; /* bytes */
	uint8_t *host; /* host mapping of the same bytes */
};

/* A view of guest RAM. Devices get a const pointer to one of these and
 * nothing else of the VM. */
struct gmem {
	struct gmem_region r[GMEM_MAX_REGIONS];
	unsigned nr;
	uint64_t ram_size; /* total RAM bytes across regions */
};

/* Host pointer for [gpa, gpa+len) if the whole range lies inside one RAM
 * region, else NULL. len 0 is treated as 1. Overflow-safe: guest numbers
 * go straight in here. */
void *gmem_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len);

/* Copy helpers: 0 on success, -EFAULT if any byte is outside RAM. */
int gmem_read(const struct gmem *gm, uint64_t gpa, void *dst, uint64_t len) WUR;
int gmem_write(const struct gmem *gm, uint64_t gpa, const void *src, uint64_t len) WUR;

/* Split ram_size bytes into regions around the PCI hole (layout.h) and
 * map them anonymously. */
int gmem_alloc(struct gmem *gm, uint64_t ram_size, struct err *e) WUR;
void gmem_free(struct gmem *gm);

/* Describe regions for an existing buffer (unit tests, fuzzers). */
void gmem_init_flat(struct gmem *gm, uint8_t *host, uint64_t size);
#endif

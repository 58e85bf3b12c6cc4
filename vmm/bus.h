/* PIO and MMIO range registry with dispatch. Ranges are registered while
 * the VM is built, before any vCPU runs; afterwards the registry is
 * read-only, so vCPU threads dispatch without a lock. Devices that keep
 * state lock it themselves. */
#ifndef KVMLAB_VMM_BUS_H
#define KVMLAB_VMM_BUS_H
#include <stdbool.h>
#include <stdint.h>
#include "util.h"

struct bus_ops {
	/* off is relative to the registered base; len is 1, 2, 4 or 8.
	 * Reads must fill all len bytes of data. */
	void (*read)(void *opaque, uint64_t off, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t off, const void *data, unsigned len);
};

#define BUS_MAX_RANGES 64

struct bus_range {
	uint64_t base, len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	struct bus_range r[BUS_MAX_RANGES];
	unsigned nr;
};

/* -EEXIST on overlap, -ENOSPC when full, -EINVAL on len 0 / overflow. */
int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque) WUR;
/* false if nothing claims addr (reads then see all-ones). */
bool bus_dispatch(const struct bus *b, uint64_t addr, void *data,
		  unsigned len, bool is_write);
#endif

#include "bus.h"

#include <string.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	if (b->nr >= BUS_MAX_RANGES)
		return -ENOSPC;
	for (unsigned i = 0; i < b->nr; i++) {
		const struct bus_range *r = &b->r[i];
		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	b->r[b->nr++] = (struct bus_range){
		.base = base, .len = len, .ops = ops, .opaque = opaque,
	};
	return 0;
}

bool bus_dispatch(const struct bus *b, uint64_t addr, void *data,
		  unsigned len, bool is_write)
{
	for (unsigned i = 0; i < b->nr; i++) {
		const struct bus_range *r = &b->r[i];
		/* the access must lie wholly inside one range; a straddling
		 * access belongs to nobody, like on real hardware */
		if (addr < r->base)
			continue;
		uint64_t off = addr - r->base;
		if (off >= r->len || len > r->len - off)
			continue;
		if (is_write) {
			if (r->ops->write)
				r->ops->write(r->opaque, off, data, len);
		} else if (r->ops->read) {
			r->ops->read(r->opaque, off, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}

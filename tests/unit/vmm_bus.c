/* bus.c: range registry and dispatch. */
#include <stdint.h>
#include <string.h>

#include "bus.h"
#include "t.h"

struct dev {
	uint64_t last_off;
	unsigned last_len, reads, writes;
	uint8_t last_byte;
};

static void d_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct dev *d = o;
	d->reads++;
	d->last_off = off;
	d->last_len = len;
	memset(data, 0x5a, len);
}

static void d_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct dev *d = o;
	d->writes++;
	d->last_off = off;
	d->last_len = len;
	d->last_byte = *(const uint8_t *)data;
}

static const struct bus_ops ops = { .read = d_read, .write = d_write };
static const struct bus_ops wo_ops = { .write = d_write };

int main(void)
{
	struct bus b;
	struct dev a = { 0 }, c = { 0 }, w = { 0 };
	uint32_t v;
	uint8_t byte = 0x42;

	memset(&b, 0, sizeof(b));
	CHECK_EQ(bus_register(&b, 0x3f8, 8, &ops, &a), 0, "register 0x3f8+8");
	CHECK_EQ(bus_register(&b, 0x3ff, 1, &ops, &c), -EEXIST, "overlap at the last port refused");
	CHECK_EQ(bus_register(&b, 0x3f0, 9, &ops, &c), -EEXIST, "overlap at the first port refused");
	CHECK_EQ(bus_register(&b, 0x3f0, 8, &ops, &c), 0, "adjacent range below accepted");
	CHECK_EQ(bus_register(&b, 0x400, 0, &ops, &c), -EINVAL, "length 0 refused");
	CHECK_EQ(bus_register(&b, UINT64_MAX - 1, 4, &ops, &c), -EINVAL, "wrapping range refused");
	CHECK_EQ(bus_register(&b, 0x500, 2, &wo_ops, &w), 0, "write-only device");

	v = 0;
	CHECK(bus_dispatch(&b, 0x3fa, &v, 1, false), "read inside a range is claimed");
	CHECK(a.reads == 1 && a.last_off == 2 && a.last_len == 1, "offset is relative to the base");
	CHECK_EQ(v, 0x5a, "device filled the data");
	CHECK(bus_dispatch(&b, 0x3f9, &byte, 1, true), "write claimed");
	CHECK(a.writes == 1 && a.last_off == 1 && a.last_byte == 0x42, "write reached the device");

	v = 0;
	CHECK(!bus_dispatch(&b, 0x3fe, &v, 4, false), "access straddling the end belongs to nobody");
	CHECK_EQ(v, 0xffffffff, "unclaimed read sees all-ones");
	CHECK(!bus_dispatch(&b, 0x1234, &v, 2, true), "unclaimed write");
	v = 0;
	CHECK(bus_dispatch(&b, 0x500, &v, 2, false), "read of a write-only device is claimed");
	CHECK_EQ(v, 0xffff, "and reads all-ones");

	/* fill the table */
	struct bus f;
	memset(&f, 0, sizeof(f));
	int rc = 0;
	for (unsigned i = 0; i < BUS_MAX_RANGES && !rc; i++)
		rc = bus_register(&f, 0x1000 + i * 4, 4, &ops, &a);
	CHECK_EQ(rc, 0, "BUS_MAX_RANGES ranges fit");
	CHECK_EQ(bus_register(&f, 0x9000, 4, &ops, &a), -ENOSPC, "one more is -ENOSPC");
	return t_done();
}

/* ACPI tables: find the RSDP the way Linux scans for it, follow the
 * chain, check every checksum and length, walk the MADT, and parse the
 * DSDT's AML with a walker written here from the spec (not acpi.c's
 * encoder). When iasl (acpica-tools) is installed it is a second,
 * independent oracle: it must disassemble every table and recompile
 * the DSDT without errors. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acpi.h"
#include "aml.h"
#include "layout.h"
#include "le.h"
#include "t.h"

static uint8_t mem[0x100000];


/* ---- a minimal AML walker: Name, Scope, Device, data objects ---- */
#define MAX_OBJS 64
struct obj {
	char path[64];
	const uint8_t *data, *end; /* the data object after NameOp */
};
struct walk {
	struct obj o[MAX_OBJS];
	unsigned n;
	int ok;
	char why[128];
};

static int fail(struct walk *w, const char *why, const uint8_t *at, const uint8_t *base)
{
	if (w->ok)
		snprintf(w->why, sizeof(w->why), "%s at offset %td", why, at - base);
	w->ok = 0;
	return 0;
}

/* PkgLength: returns bytes of the encoding, *len the value */
static int pkglen(const uint8_t *p, const uint8_t *end, size_t *len)
{
	if (p >= end)
		return 0;
	unsigned follow = p[0] >> 6;
	if (end - p < (ptrdiff_t)(1 + follow))
		return 0;
	if (follow == 0) {
		*len = p[0] & 0x3f;
		return 1;
	}
	if (p[0] & 0x30)
		return 0; /* bits 4-5 must be 0 with follow bytes */
	size_t v = p[0] & 0x0f;
	for (unsigned i = 0; i < follow; i++)
		v |= (size_t)p[1 + i] << (4 + 8 * i);
	*len = v;
	return (int)(1 + follow);
}

static int seg_ok(const uint8_t *s)
{
	for (int i = 0; i < 4; i++) {
		uint8_t c = s[i];
		if (!((c >= 'A' && c <= 'Z') || c == '_' || (i && c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

/* NameString -> absolute dotted path under scope. Returns bytes used. */
static int namestr(const uint8_t *p, const uint8_t *end, const char *scope, char *out, size_t cap)
{
	const uint8_t *s = p;
	unsigned nseg;
	char buf[64];
	if (p < end && *p == '\\') {
		strcpy(buf, "\\");
		p++;
	} else {
		snprintf(buf, sizeof(buf), "%s", scope);
	}
	if (p >= end)
		return 0;
	if (*p == 0x2e) {
		nseg = 2;
		p++;
	} else if (*p == 0x2f) {
		if (p + 1 >= end)
			return 0;
		nseg = p[1];
		p += 2;
	} else if (*p == 0x00) {
		nseg = 0;
		p++;
	} else {
		nseg = 1;
	}
	for (unsigned i = 0; i < nseg; i++) {
		if (end - p < 4 || !seg_ok(p))
			return 0;
		size_t l = strlen(buf);
		if (l + 6 > sizeof(buf))
			return 0;
		snprintf(buf + l, sizeof(buf) - l, "%s%.4s", strcmp(buf, "\\") ? "." : "", (const char *)p);
		p += 4;
	}
	snprintf(out, cap, "%s", buf);
	return (int)(p - s);
}

/* Skip one data object (integer, string, buffer, package). NULL if bad. */
static const uint8_t *data_obj(struct walk *w, const uint8_t *p, const uint8_t *end, const uint8_t *base)
{
	size_t len;
	int n;
	if (p >= end)
		return fail(w, "data past end", p, base), NULL;
	switch (p[0]) {
	case 0x00: case 0x01: case 0xff:
		return p + 1;
	case 0x0a: return end - p >= 2 ? p + 2 : NULL;
	case 0x0b: return end - p >= 3 ? p + 3 : NULL;
	case 0x0c: return end - p >= 5 ? p + 5 : NULL;
	case 0x0e: return end - p >= 9 ? p + 9 : NULL;
	case 0x0d: {
		const uint8_t *q = p + 1;
		while (q < end && *q)
			if (*q++ > 0x7f)
				return fail(w, "non-ASCII string", q, base), NULL;
		return q < end ? q + 1 : (fail(w, "unterminated string", p, base), NULL);
	}
	case 0x11: case 0x12: {
		n = pkglen(p + 1, end, &len);
		if (!n || len < (size_t)n || (size_t)(end - (p + 1)) < len)
			return fail(w, "bad PkgLength", p, base), NULL;
		const uint8_t *q = p + 1 + n, *oend = p + 1 + len;
		if (p[0] == 0x11) {
			const uint8_t *b = data_obj(w, q, oend, base);
			if (!b)
				return NULL;
			uint64_t size = q[0] == 0x0a ? q[1] : q[0] == 0x0b ? rd_le16(q + 1) : q[0] == 0x01 ? 1 : q[0] == 0 ? 0 : UINT64_MAX;
			if (size != (uint64_t)(oend - b))
				return fail(w, "buffer size mismatch", p, base), NULL;
			return oend;
		}
		if (q >= oend)
			return fail(w, "package without count", p, base), NULL;
		unsigned count = *q++, seen = 0;
		while (q < oend) {
			q = data_obj(w, q, oend, base);
			if (!q)
				return NULL;
			seen++;
		}
		if (seen != count)
			return fail(w, "package count mismatch", p, base), NULL;
		return oend;
	}
	}
	return fail(w, "unknown data opcode", p, base), NULL;
}

static void term_list(struct walk *w, const uint8_t *p, const uint8_t *end, const char *scope, const uint8_t *base)
{
	while (w->ok && p < end) {
		char path[64];
		size_t len;
		int n;
		if (p[0] == 0x08) {
			n = namestr(p + 1, end, scope, path, sizeof(path));
			if (!n) {
				fail(w, "bad name", p, base);
				return;
			}
			const uint8_t *d = p + 1 + n, *next = data_obj(w, d, end, base);
			if (!next)
				return;
			if (w->n < MAX_OBJS) {
				snprintf(w->o[w->n].path, sizeof(w->o[w->n].path), "%s", path);
				w->o[w->n].data = d;
				w->o[w->n].end = next;
				w->n++;
			}
			p = next;
		} else if (p[0] == 0x10 || (p[0] == 0x5b && end - p > 1 && p[1] == 0x82)) {
			const uint8_t *pl = p + (p[0] == 0x10 ? 1 : 2);
			n = pkglen(pl, end, &len);
			if (!n || len < (size_t)n || (size_t)(end - pl) < len) {
				fail(w, "bad scope/device PkgLength", p, base);
				return;
			}
			const uint8_t *bend = pl + len;
			int m = namestr(pl + n, bend, scope, path, sizeof(path));
			if (!m) {
				fail(w, "bad scope/device name", p, base);
				return;
			}
			term_list(w, pl + n + m, bend, path, base);
			p = bend;
		} else if (p[0] == 0x14) {
			/* Method: kept whole (flags byte, then its body), not walked */
			n = pkglen(p + 1, end, &len);
			if (!n || len < (size_t)n || (size_t)(end - p - 1) < len) {
				fail(w, "bad method PkgLength", p, base);
				return;
			}
			const uint8_t *bend = p + 1 + len;
			int m = namestr(p + 1 + n, bend, scope, path, sizeof(path));
			if (!m || p + 1 + n + m >= bend) {
				fail(w, "bad method name", p, base);
				return;
			}
			if (w->n < MAX_OBJS) {
				snprintf(w->o[w->n].path, sizeof(w->o[w->n].path), "%s", path);
				w->o[w->n].data = p + 1 + n + m;
				w->o[w->n].end = bend;
				w->n++;
			}
			p = bend;
		} else {
			fail(w, "unexpected opcode", p, base);
			return;
		}
	}
}

static const struct obj *find(const struct walk *w, const char *path)
{
	for (unsigned i = 0; i < w->n; i++)
		if (strcmp(w->o[i].path, path) == 0)
			return &w->o[i];
	return NULL;
}

static int int_of(const uint8_t *d, uint64_t *v)
{
	switch (d[0]) {
	case 0x00: *v = 0; return 1;
	case 0x01: *v = 1; return 1;
	case 0x0a: *v = d[1]; return 1;
	case 0x0b: *v = rd_le16(d + 1); return 1;
	case 0x0c: *v = rd_le32(d + 1); return 1;
	case 0x0e: *v = rd_le64(d + 1); return 1;
	}
	return 0;
}

static int name_int(const struct walk *w, const char *path, uint64_t want)
{
	const struct obj *o = find(w, path);
	uint64_t v;
	return o && int_of(o->data, &v) && v == want;
}

/* The resource template bytes inside a Buffer object. */
static const uint8_t *rt_of(const struct obj *o, size_t *len)
{
	if (!o || o->data[0] != 0x11)
		return NULL;
	size_t pl;
	int n = pkglen(o->data + 1, o->end, &pl);
	const uint8_t *q = o->data + 1 + n; /* BufferSize */
	int isz = q[0] == 0x0a ? 2 : q[0] == 0x0b ? 3 : 1;
	*len = (size_t)(o->end - (q + isz));
	return q + isz;
}

/* Walk descriptors by their own length fields; count kinds, check the
 * end tag is last. Fills what it found. */
struct rt_seen {
	int ok, io_cf8, io_lo, io_hi, bus, mem, io505, io3f8, irq4, ged_irq;
};
static struct rt_seen rt_walk(const uint8_t *p, size_t len)
{
	struct rt_seen s = { 0 };
	const uint8_t *end = p + len;
	while (p < end) {
		size_t dl;
		if (p[0] & 0x80) {
			if (end - p < 3)
				return s;
			dl = 3 + rd_le16(p + 1);
		} else {
			dl = 1 + (p[0] & 7);
		}
		if ((size_t)(end - p) < dl)
			return s;
		if (p[0] == 0x79) {
			s.ok = (p + dl == end);
			return s;
		}
		if (p[0] == 0x47) {
			uint16_t mn = rd_le16(p + 2), mx = rd_le16(p + 4);
			if (mn == 0xcf8 && mx == 0xcf8 && p[7] == 8)
				s.io_cf8 = 1;
			if (mn == LAYOUT_PORT_PVPANIC && mx == mn && p[7] == 1)
				s.io505 = 1;
			if (mn == LAYOUT_PORT_COM1 && mx == mn && p[7] == 8)
				s.io3f8 = 1;
		} else if (p[0] == 0x22 || p[0] == 0x23) {
			if (rd_le16(p + 1) == 1u << LAYOUT_IRQ_COM1)
				s.irq4 = 1;
		} else if (p[0] == 0x88) {
			uint16_t mn = rd_le16(p + 8), mx = rd_le16(p + 10), l = rd_le16(p + 14);
			if (p[3] == 2 && mn == 0 && mx == 0 && l == 1)
				s.bus = 1;
			if (p[3] == 1 && mn == 0 && mx == 0xcf7 && l == 0xcf8)
				s.io_lo = 1;
			if (p[3] == 1 && mn == 0xd00 && mx == 0xffff && l == 0xf300)
				s.io_hi = 1;
		} else if (p[0] == 0x89) {
			/* Extended Interrupt: consumer, edge, active high, one GSI */
			if (dl == 9 && p[3] == 0x03 && p[4] == 1 && rd_le32(p + 5) == LAYOUT_IRQ_GED)
				s.ged_irq = 1;
		} else if (p[0] == 0x87) {
			uint32_t mn = rd_le32(p + 10), mx = rd_le32(p + 14), l = rd_le32(p + 22);
			if (p[3] == 0 && mn == LAYOUT_PCI_MMIO && mx == LAYOUT_PCI_MMIO_END - 1 &&
			    l == LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO)
				s.mem = 1;
		}
		p += dl;
	}
	return s;
}

static void check_dsdt(const uint8_t *aml, size_t len, const char *tag)
{
	struct walk w;
	memset(&w, 0, sizeof(w));
	w.ok = 1;
	term_list(&w, aml, aml + len, "\\", aml);
	CHECK(w.ok, "%s: AML parses to the end (%s)", tag, w.why);
	if (!w.ok)
		return;
	const struct obj *s5 = find(&w, "\\_S5_");
	CHECK(s5 && s5->data[0] == 0x12 && s5->data[2] == 4 && s5->data[3] == 0x0a && s5->data[4] == 5,
	      "%s: \\_S5_ = Package(4){5,...}", tag);
	CHECK(name_int(&w, "\\_SB_.PCI0._HID", 0x030ad041), "%s: PCI0 _HID EisaId(PNP0A03)", tag);
	CHECK(name_int(&w, "\\_SB_.PCI0._SEG", 0) && name_int(&w, "\\_SB_.PCI0._BBN", 0) &&
	      name_int(&w, "\\_SB_.PCI0._UID", 0) && name_int(&w, "\\_SB_.PCI0._ADR", 0),
	      "%s: PCI0 _SEG/_BBN/_UID/_ADR 0", tag);
	size_t rl = 0;
	const uint8_t *rt = rt_of(find(&w, "\\_SB_.PCI0._CRS"), &rl);
	struct rt_seen s = rt ? rt_walk(rt, rl) : (struct rt_seen){ 0 };
	CHECK(s.ok && s.bus && s.io_cf8 && s.io_lo && s.io_hi && s.mem,
	      "%s: PCI0 _CRS: bus 0..0, conf1, I/O windows, 32-bit MMIO window (%d%d%d%d%d%d)",
	      tag, s.ok, s.bus, s.io_cf8, s.io_lo, s.io_hi, s.mem);
	/* _PRT: Package of Package(4){addr, pin, source, gsi} */
	const struct obj *prt = find(&w, "\\_SB_.PCI0._PRT");
	unsigned good = 0, total = 0;
	if (prt && prt->data[0] == 0x12) {
		size_t pl;
		int n = pkglen(prt->data + 1, prt->end, &pl);
		total = prt->data[1 + n];
		const uint8_t *q = prt->data + 2 + n;
		for (unsigned i = 0; i < total && q < prt->end; i++) {
			size_t el;
			int en = pkglen(q + 1, prt->end, &el);
			const uint8_t *f = q + 1 + en + 1;
			uint64_t addr, pin, src, gsi;
			if (q[0] == 0x12 && q[1 + en] == 4 && int_of(f, &addr)) {
				f += f[0] == 0x0c ? 5 : 1;
				if (int_of(f, &pin)) {
					f += (f[0] == 0x0a) ? 2 : 1;
					if (int_of(f, &src)) {
						f += 1;
						if (int_of(f, &gsi) && (addr & 0xffff) == 0xffff && pin < 4 && src == 0 &&
						    gsi == (uint64_t)LAYOUT_PCI_INTX_GSI(addr >> 16, pin) &&
						    gsi >= 16 && gsi < LAYOUT_IOAPIC_PINS)
							good++;
					}
				}
			}
			q += 1 + el;
		}
	}
	CHECK(total == 124 && good == 124, "%s: _PRT has 124 entries routed to GSIs 16..23 (%u good)", tag, good);

	const struct obj *hid = find(&w, "\\_SB_.PEVT._HID");
	CHECK(hid && hid->data[0] == 0x0d && strcmp((const char *)hid->data + 1, "QEMU0001") == 0,
	      "%s: pvpanic device _HID \"QEMU0001\"", tag);
	rt = rt_of(find(&w, "\\_SB_.PEVT._CRS"), &rl);
	s = rt ? rt_walk(rt, rl) : (struct rt_seen){ 0 };
	CHECK(s.ok && s.io505, "%s: pvpanic _CRS IO 0x505 len 1", tag);
	CHECK(name_int(&w, "\\_SB_.COM1._HID", 0x0105d041), "%s: COM1 _HID EisaId(PNP0501)", tag);
	rt = rt_of(find(&w, "\\_SB_.COM1._CRS"), &rl);
	s = rt ? rt_walk(rt, rl) : (struct rt_seen){ 0 };
	CHECK(s.ok && s.io3f8 && s.irq4, "%s: COM1 _CRS IO 0x3f8 len 8, IRQ 4", tag);

	/* the power button: a GED on its own line whose _EVT notifies PWRB */
	CHECK(name_int(&w, "\\_SB_.PWRB._HID", 0x0c0cd041), "%s: PWRB _HID EisaId(PNP0C0C)", tag);
	hid = find(&w, "\\_SB_.GED0._HID");
	CHECK(hid && hid->data[0] == 0x0d && strcmp((const char *)hid->data + 1, "ACPI0013") == 0,
	      "%s: GED0 _HID \"ACPI0013\"", tag);
	rt = rt_of(find(&w, "\\_SB_.GED0._CRS"), &rl);
	s = rt ? rt_walk(rt, rl) : (struct rt_seen){ 0 };
	CHECK(s.ok && s.ged_irq, "%s: GED0 _CRS Interrupt(edge, high) { %d }", tag, LAYOUT_IRQ_GED);
	static const uint8_t evt[] = { 0x01, 0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B',
				       0x0a, 0x80 };
	const struct obj *ev = find(&w, "\\_SB_.GED0._EVT");
	CHECK(ev && (size_t)(ev->end - ev->data) == sizeof(evt) && !memcmp(ev->data, evt, sizeof(evt)),
	      "%s: GED0 _EVT(1 arg) is Notify(\\_SB.PWRB, 0x80) and nothing else", tag);
	/* the line is free: no PCI INTx and no ISA device shares it */
	CHECK(LAYOUT_IRQ_GED >= LAYOUT_IRQ_PCI_BASE + 4 && LAYOUT_IRQ_GED < LAYOUT_IOAPIC_PINS,
	      "%s: GED line %d above the PCI INTx pins, on the IOAPIC", tag, LAYOUT_IRQ_GED);
}

struct tables {
	const uint8_t *rsdp, *xsdt, *fadt, *dsdt, *madt;
};

static int table_ok(uint64_t a, const char *sig)
{
	if (a < LAYOUT_ACPI_TABLES || a + 36 > LAYOUT_ACPI_END)
		return 0;
	uint32_t len = rd_le32(mem + a + 4);
	return memcmp(mem + a, sig, 4) == 0 && len >= 36 && a + len <= LAYOUT_ACPI_END &&
	       t_sum8(mem + a, len) == 0;
}

static void check(unsigned n, unsigned nmmio, struct tables *tb)
{
	struct gmem gm;
	struct err e = { "" };
	memset(mem, 0xa5, sizeof(mem));
	memset(tb, 0, sizeof(*tb));
	gmem_init_flat(&gm, mem, sizeof(mem));
	CHECK_EQ(acpi_write(&gm, n, nmmio, &e), 0, "%u cpus, %u virtio-mmio: written (%s)", n, nmmio,
		 e.msg);

	/* Linux's scan: 16-byte steps over e0000-fffff, 20-byte checksum */
	const uint8_t *r = t_scan16(mem, 0xe0000, 0x100000, "RSD PTR ", 20);
	CHECK(r == mem + LAYOUT_ACPI_RSDP, "%u cpus: RSDP found at LAYOUT_ACPI_RSDP", n);
	if (!r)
		return;
	CHECK(r[15] == 2 && rd_le32(r + 20) == 36 && t_sum8(r, 36) == 0, "%u cpus: RSDP rev 2, length 36, extended checksum", n);
	uint64_t x = rd_le64(r + 24);
	CHECK(table_ok(x, "XSDT"), "%u cpus: XSDT at 0x%llx, checksum", n, (unsigned long long)x);
	if (!table_ok(x, "XSDT"))
		return;
	uint32_t xl = rd_le32(mem + x + 4);
	CHECK((xl - 36) % 8 == 0 && xl > 36, "%u cpus: XSDT has %u entries", n, (xl - 36) / 8);
	tb->rsdp = r;
	tb->xsdt = mem + x;
	uint64_t lo[8], hi[8];
	unsigned cnt = 0;
	lo[cnt] = x;
	hi[cnt++] = x + xl;
	for (uint32_t off = 36; off + 8 <= xl; off += 8) {
		uint64_t t = rd_le64(mem + x + off);
		if (table_ok(t, "FACP"))
			tb->fadt = mem + t;
		else if (table_ok(t, "APIC"))
			tb->madt = mem + t;
		else
			CHECK(0, "%u cpus: XSDT entry 0x%llx is a valid FACP/APIC", n, (unsigned long long)t);
		if (cnt < 8) {
			lo[cnt] = t;
			hi[cnt++] = t + rd_le32(mem + t + 4);
		}
	}
	CHECK(tb->fadt && tb->madt, "%u cpus: XSDT -> FADT and MADT, checksums 0", n);
	if (!tb->fadt || !tb->madt)
		return;
	const uint8_t *f = tb->fadt;
	CHECK(rd_le32(f + 4) == 276 && f[8] == 6, "%u cpus: FADT rev 6, 276 bytes", n);
	uint64_t d = rd_le64(f + 140);
	CHECK(table_ok(d, "DSDT") && rd_le32(f + 40) == d, "%u cpus: X_DSDT -> DSDT (checksum ok), DSDT field agrees", n);
	if (!table_ok(d, "DSDT"))
		return;
	tb->dsdt = mem + d;
	if (cnt < 8) {
		lo[cnt] = d;
		hi[cnt++] = d + rd_le32(mem + d + 4);
	}
	int overlap = 0;
	for (unsigned i = 0; i < cnt; i++)
		for (unsigned j = i + 1; j < cnt; j++)
			if (lo[i] < hi[j] && lo[j] < hi[i])
				overlap = 1;
	CHECK(!overlap, "%u cpus: tables do not overlap", n);
	uint32_t flags = rd_le32(f + 112);
	CHECK((flags & (1u << 20)) && (flags & (1u << 10)), "%u cpus: HW_REDUCED_ACPI and RESET_REG_SUP", n);
	CHECK(!(rd_le16(f + 109) & (1u << 3)), "%u cpus: IAPC_BOOT_ARCH does not say MSI unsupported", n);
	for (unsigned o = 56; o < 88; o += 4)
		if (rd_le32(f + o))
			CHECK(0, "%u cpus: legacy PM block at FADT+%u is set", n, o);
	static const struct { unsigned off; uint64_t port; const char *what; } gas[] = {
		{ 244, LAYOUT_PORT_ACPI_SLEEP, "SLEEP_CONTROL_REG" },
		{ 256, LAYOUT_PORT_ACPI_SLEEP_STS, "SLEEP_STATUS_REG" },
		{ 116, LAYOUT_PORT_ACPI_RESET, "RESET_REG" },
	};
	for (unsigned i = 0; i < 3; i++) {
		const uint8_t *g = f + gas[i].off;
		CHECK(g[0] == 1 && g[1] == 8 && g[2] == 0 && g[3] == 1 && rd_le64(g + 4) == gas[i].port,
		      "%u cpus: %s = SystemIO 8-bit 0x%llx", n, gas[i].what, (unsigned long long)gas[i].port);
	}
	CHECK_EQ(f[128], 1, "%u cpus: RESET_VALUE", n);
	CHECK(memcmp(f + 268, "KVMLAB", 6) == 0, "%u cpus: hypervisor vendor id", n);

	/* MADT */
	const uint8_t *m = tb->madt, *p = m + 44, *end = m + rd_le32(m + 4);
	CHECK(rd_le32(m + 36) == LAYOUT_LAPIC, "%u cpus: MADT local APIC address", n);
	unsigned lapics = 0, ioapics = 0, isos = 0, ids_ok = 1;
	while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
		if (p[0] == 0 && p[1] == 8) {
			if (p[3] != lapics || !(rd_le32(p + 4) & 1))
				ids_ok = 0;
			lapics++;
		} else if (p[0] == 1 && p[1] == 12) {
			ioapics++;
			CHECK(rd_le32(p + 4) == LAYOUT_IOAPIC && rd_le32(p + 8) == 0 && p[2] == n,
			      "%u cpus: IOAPIC id %u at 0x%x, GSI base %u", n, p[2], rd_le32(p + 4), rd_le32(p + 8));
		} else if (p[0] == 2) {
			isos++;
		}
		p += p[1];
	}
	CHECK(p == end, "%u cpus: MADT entries walk exactly to its length", n);
	CHECK_EQ(lapics, n, "%u cpus: MADT has N local APICs", n);
	CHECK(ids_ok, "%u cpus: APIC ids 0..N-1, all enabled", n);
	CHECK_EQ(ioapics, 1, "%u cpus: one IOAPIC", n);
	CHECK_EQ(isos, 0, "%u cpus: no interrupt source overrides (KVM routes GSI n to pin n)", n);
	CHECK(mem[LAYOUT_ACPI_RSDP - 1] == 0xa5 && mem[LAYOUT_ACPI_END] == 0xa5, "%u cpus: nothing written outside the ACPI area", n);

	char tag[32];
	snprintf(tag, sizeof(tag), "%u cpus DSDT", n);
	check_dsdt(tb->dsdt + 36, rd_le32(tb->dsdt + 4) - 36, tag);
}

/* ---- encoder corner cases, decoded with the walker's own pkglen ---- */
static void test_aml(void)
{
	static uint8_t buf[1 << 21];
	struct aml a;
	/* the body is the 5-byte "\\_SB_" name plus k filler bytes; k on
	 * both sides of each PkgLength size boundary (63, 4095, 2^20-1) */
	static const struct { size_t k; int n; } cases[] = {
		{ 0, 1 }, { 57, 1 }, { 58, 2 }, { 4088, 2 }, { 4089, 3 },
		{ 1048567, 3 }, { 1048568, 4 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		aml_init(&a, buf, sizeof(buf));
		size_t m = aml_scope(&a, "\\_SB");
		for (size_t k = 0; k < cases[i].k; k++)
			aml_byte(&a, 0xaa);
		aml_end(&a, m);
		size_t len = 0;
		int n = pkglen(buf + 1, buf + a.len, &len);
		CHECK(a.err == 0 && n == cases[i].n && len == a.len - 1 &&
		      len == (size_t)n + 5 + cases[i].k && memcmp(buf + 1 + n, "\\_SB_", 5) == 0,
		      "PkgLength for %zu filler bytes: %d bytes (want %d), value %zu", cases[i].k, n,
		      cases[i].n, len);
	}
	uint8_t tiny[8];
	aml_init(&a, tiny, sizeof(tiny));
	aml_string(&a, "QEMU0001");
	CHECK(a.err == -ENOSPC, "overflow sticks as -ENOSPC");
	aml_init(&a, buf, sizeof(buf));
	aml_namestring(&a, "PCI00");
	CHECK(a.err == -EINVAL, "5-char segment rejected");
	aml_init(&a, buf, sizeof(buf));
	aml_namestring(&a, "1ABC");
	CHECK(a.err == -EINVAL, "segment starting with a digit rejected");
	aml_init(&a, buf, sizeof(buf));
	aml_namestring(&a, "\\A.B.C");
	CHECK(a.err == 0 && a.len == 1 + 2 + 12 && buf[0] == '\\' && buf[1] == 0x2f && buf[2] == 3 &&
	      memcmp(buf + 3, "A___B___C___", 12) == 0, "multi-name path");
	uint32_t v;
	CHECK(aml_eisaid("PNP0A03", &v) == 0 && v == 0x030ad041, "EisaId(PNP0A03) = 0x%08x", v);
	CHECK(aml_eisaid("PNP0501", &v) == 0 && v == 0x0105d041, "EisaId(PNP0501) = 0x%08x", v);
	CHECK(aml_eisaid("pnp0a03", &v) < 0 && aml_eisaid("PNP0A0", &v) < 0, "bad EisaIds rejected");
	uint64_t vals[] = { 0, 1, 2, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000ULL };
	int ints_ok = 1;
	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_int(&a, vals[i]);
		uint64_t got;
		if (!int_of(buf, &got) || got != vals[i])
			ints_ok = 0;
	}
	CHECK(ints_ok, "integers round-trip through every encoding");
	struct tables tb;
	(void)tb;
	CHECK(acpi_build_dsdt_aml(buf, 100, 0) == -ENOSPC, "DSDT into a short buffer: -ENOSPC");
	CHECK(acpi_build(buf, 4096, 0xe0000, 64, 0, 0) == -EINVAL &&
	      acpi_build(buf, 4096, 0xe0000, 64, 256, 0) == -EINVAL, "0 and 256 CPUs rejected");
	CHECK(acpi_build(buf, 2048, 0xe0000, 64, 255, 0) == -ENOSPC, "255 CPUs into 2 KiB: -ENOSPC");
}

/* ---- iasl as an independent oracle ---- */
static int run(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* How often needle occurs in the file. */
static unsigned file_count(const char *path, const char *needle)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	unsigned c = 0;
	for (const char *p = text; (p = strstr(p, needle)); p++)
		c++;
	return c;
}

static int file_has(const char *path, const char *needle)
{
	return file_count(path, needle) > 0;
}

static int dump(const char *dir, const char *name, const uint8_t *t)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	FILE *f = fopen(path, "we");
	if (!f)
		return -1;
	size_t len = rd_le32(t + 4);
	int rc = fwrite(t, 1, len, f) == len ? 0 : -1;
	return fclose(f) || rc ? -1 : 0;
}

static void test_iasl(const struct tables *tb, unsigned n, unsigned nmmio)
{
	if (run("command -v iasl >/dev/null 2>&1") != 0) {
		printf("ok - iasl oracle # SKIP iasl not installed (acpica-tools)\n");
		return;
	}
	char dir[] = "/tmp/kvmlab-acpi.XXXXXX", cmd[1024], path[300];
	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	const char *names[] = { "dsdt", "facp", "apic", "xsdt" };
	const uint8_t *ts[] = { tb->dsdt, tb->fadt, tb->madt, tb->xsdt };
	for (int i = 0; i < 4; i++) {
		CHECK(ts[i] && dump(dir, names[i], ts[i]) == 0, "dump %s", names[i]);
		snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat >%s.log 2>&1", dir, names[i], names[i]);
		CHECK_EQ(run(cmd), 0, "iasl -d %s (%u cpus)", names[i], n);
	}
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	CHECK(file_has(path, "Name (\\_S5, Package (0x04)"), "iasl: DSDT has \\_S5");
	CHECK(file_has(path, "EisaId (\"PNP0A03\")"), "iasl: DSDT has PNP0A03");
	CHECK(file_has(path, "\"QEMU0001\""), "iasl: DSDT has QEMU0001");
	CHECK(file_has(path, "\"ACPI0013\""), "iasl: DSDT has the GED (ACPI0013)");
	CHECK(file_has(path, "EisaId (\"PNP0C0C\")"), "iasl: DSDT has the power button (PNP0C0C)");
	CHECK(file_has(path, "Notify (PWRB, 0x80)") || file_has(path, "Notify (\\_SB.PWRB, 0x80)"),
	      "iasl: GED's _EVT notifies the power button");
	CHECK(file_has(path, "0xFDFFFFFF,         // Range Maximum"), "iasl: MMIO window end");
	CHECK_EQ(file_count(path, "\"LNRO0005\""), nmmio, "iasl: %u virtio-mmio devices (LNRO0005)",
		 nmmio);
	if (nmmio) {
		/* the last one's registers and line, as iasl prints them */
		char want[96];
		snprintf(want, sizeof(want), "Memory32Fixed (ReadWrite,\n                    0x%08llX,",
			 (unsigned long long)(LAYOUT_VIRTIO_MMIO + (nmmio - 1) * LAYOUT_VIRTIO_MMIO_SIZE));
		CHECK(file_has(path, want), "iasl: device %u's registers at 0x%llx", nmmio - 1,
		      (unsigned long long)(LAYOUT_VIRTIO_MMIO + (nmmio - 1) * LAYOUT_VIRTIO_MMIO_SIZE));
		CHECK_EQ(file_count(path, "Interrupt (ResourceConsumer, Level, ActiveHigh, Shared, ,, )"),
			 nmmio, "iasl: each a level, active-high, shared interrupt");
		snprintf(want, sizeof(want), "0x%08X,\n", LAYOUT_VIRTIO_MMIO_GSI(nmmio - 1));
		CHECK(file_has(path, want), "iasl: device %u on line %u", nmmio - 1,
		      LAYOUT_VIRTIO_MMIO_GSI(nmmio - 1));
	}
	snprintf(path, sizeof(path), "%s/facp.dsl", dir);
	CHECK(file_has(path, "Hardware Reduced (V5) : 1"), "iasl: FADT hardware reduced");
	CHECK(file_has(path, "Address : 0000000000000600"), "iasl: sleep control at 0x600");
	CHECK(!file_has(path, "Invalid") && !file_has(path, "Incorrect"), "iasl: no checksum/length complaints in FADT");
	snprintf(path, sizeof(path), "%s/apic.dsl", dir);
	CHECK(file_has(path, "[Processor Local APIC]") && file_has(path, "[I/O APIC]"), "iasl: MADT entries");
	CHECK(!file_has(path, "Invalid") && !file_has(path, "Incorrect"), "iasl: no complaints in MADT");
	/* the strongest check: the disassembly compiles back without errors */
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -p recomp dsdt.dsl >recomp.log 2>&1", dir);
	CHECK_EQ(run(cmd), 0, "iasl recompiles the disassembled DSDT");
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	if (run(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

int main(void)
{
	struct tables tb;
	test_aml();
	check(1, 0, &tb);
	check(255, 0, &tb);
	test_iasl(&tb, 255, 0);
	check(2, 0, &tb);
	test_iasl(&tb, 2, 0);
	check(2, 3, &tb);
	test_iasl(&tb, 2, 3);
	check(255, LAYOUT_VIRTIO_MMIO_MAX, &tb);
	test_iasl(&tb, 255, LAYOUT_VIRTIO_MMIO_MAX);
	return t_done();
}

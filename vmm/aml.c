#include "aml.h"
#include "bytes.h"

#include <errno.h>
#include <string.h>

#define OP_ZERO     0x00
#define OP_ONE      0x01
#define OP_NAME     0x08
#define OP_BYTE     0x0a
#define OP_WORD     0x0b
#define OP_DWORD    0x0c
#define OP_STRING   0x0d
#define OP_QWORD    0x0e
#define OP_SCOPE    0x10
#define OP_BUFFER   0x11
#define OP_PACKAGE  0x12
#define OP_METHOD   0x14
#define OP_NOTIFY   0x86
#define OP_EXT      0x5b
#define OP_DEVICE   0x82 /* after OP_EXT */
#define ROOT_CHAR   0x5c
#define DUAL_PREFIX 0x2e
#define MULTI_PREFIX 0x2f

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	a->buf = buf;
	a->cap = cap;
	a->len = 0;
	a->err = 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		a->err = -ENOSPC;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void le(struct aml *a, uint8_t op, uint64_t v, unsigned n)
{
	uint8_t b[9];
	b[0] = op;
	for (unsigned i = 0; i < n; i++)
		b[1 + i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n + 1);
}

void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0)
		aml_byte(a, OP_ZERO);
	else if (v == 1)
		aml_byte(a, OP_ONE);
	else if (v <= 0xff)
		le(a, OP_BYTE, v, 1);
	else if (v <= 0xffff)
		le(a, OP_WORD, v, 2);
	else if (v <= 0xffffffff)
		le(a, OP_DWORD, v, 4);
	else
		le(a, OP_QWORD, v, 8);
}

void aml_dword(struct aml *a, uint32_t v)
{
	le(a, OP_DWORD, v, 4);
}

void aml_string(struct aml *a, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c > 0x7f) { /* AsciiCharList */
			a->err = a->err ? a->err : -EINVAL;
			return;
		}
	aml_byte(a, OP_STRING);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int aml_eisaid(const char *id, uint32_t *out)
{
	if (strlen(id) != 7)
		return -EINVAL;
	uint32_t v = 0;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		v = v << 5 | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int h = hexval(id[i]);
		if (h < 0)
			return -EINVAL;
		v = v << 4 | (uint32_t)h;
	}
	/* the id is stored big-endian inside a little-endian DWord */
	*out = __builtin_bswap32(v);
	return 0;
}

static int seg_char_ok(char c, int first)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

void aml_namestring(struct aml *a, const char *path)
{
	uint8_t segs[8][4];
	unsigned n = 0;
	const char *p = path;
	int root = 0;

	if (*p == '\\') {
		root = 1;
		p++;
	}
	while (*p) {
		if (n == sizeof(segs) / sizeof(segs[0]))
			goto bad;
		unsigned k = 0;
		while (*p && *p != '.') {
			if (k == 4 || !seg_char_ok(*p, k == 0))
				goto bad;
			segs[n][k++] = (uint8_t)*p++;
		}
		if (k == 0)
			goto bad;
		while (k < 4)
			segs[n][k++] = '_';
		n++;
		if (*p == '.' && !*++p)
			goto bad;
	}
	if (root)
		aml_byte(a, ROOT_CHAR);
	if (n == 0) {
		aml_byte(a, 0x00); /* NullName */
		return;
	}
	if (n == 2)
		aml_byte(a, DUAL_PREFIX);
	else if (n > 2) {
		aml_byte(a, MULTI_PREFIX);
		aml_byte(a, (uint8_t)n);
	}
	aml_bytes(a, segs, 4 * (size_t)n);
	return;
bad:
	if (!a->err)
		a->err = -EINVAL;
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, OP_NAME);
	aml_namestring(a, path);
}

static size_t begin(struct aml *a)
{
	return a->len;
}

void aml_end(struct aml *a, size_t mark)
{
	if (a->err)
		return;
	/* PkgLength counts itself: 1 byte up to 63, then 2..4 bytes with
	 * the low nibble in the lead byte and 8 bits per follow byte */
	size_t body = a->len - mark;
	unsigned n;
	if (body + 1 < 0x40)
		n = 1;
	else if (body + 2 < (1u << 12))
		n = 2;
	else if (body + 3 < (1u << 20))
		n = 3;
	else if (body + 4 < (1u << 28))
		n = 4;
	else {
		a->err = -ENOSPC;
		return;
	}
	if (n > a->cap - a->len) {
		a->err = -ENOSPC;
		return;
	}
	size_t total = body + n;
	memmove(a->buf + mark + n, a->buf + mark, body);
	if (n == 1) {
		a->buf[mark] = (uint8_t)total;
	} else {
		a->buf[mark] = (uint8_t)((n - 1) << 6 | (total & 0x0f));
		for (unsigned i = 1; i < n; i++)
			a->buf[mark + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	a->len += n;
}

size_t aml_scope(struct aml *a, const char *path)
{
	aml_byte(a, OP_SCOPE);
	size_t m = begin(a);
	aml_namestring(a, path);
	return m;
}

size_t aml_device(struct aml *a, const char *path)
{
	aml_byte(a, OP_EXT);
	aml_byte(a, OP_DEVICE);
	size_t m = begin(a);
	aml_namestring(a, path);
	return m;
}

size_t aml_package(struct aml *a, uint8_t nelems)
{
	aml_byte(a, OP_PACKAGE);
	size_t m = begin(a);
	aml_byte(a, nelems);
	return m;
}

size_t aml_method(struct aml *a, const char *path, unsigned nargs)
{
	if (nargs > 7 && !a->err)
		a->err = -EINVAL;
	aml_byte(a, OP_METHOD);
	size_t m = begin(a);
	aml_namestring(a, path);
	aml_byte(a, (uint8_t)(nargs & 7)); /* MethodFlags: not serialized, SyncLevel 0 */
	return m;
}

void aml_notify(struct aml *a, const char *path, uint8_t value)
{
	aml_byte(a, OP_NOTIFY);
	aml_namestring(a, path);
	aml_int(a, value);
}

void aml_buffer(struct aml *a, const void *bytes, size_t n)
{
	aml_byte(a, OP_BUFFER);
	size_t m = begin(a);
	aml_int(a, n);
	aml_bytes(a, bytes, n);
	aml_end(a, m);
}

size_t aml_rt_io(uint8_t *p, uint16_t base, uint8_t len)
{
	p[0] = 0x47; /* small item: I/O port, 7 bytes */
	p[1] = 0x01; /* 16-bit decode */
	put_le16(p + 2, base);
	put_le16(p + 4, base);
	p[6] = 1;    /* alignment */
	p[7] = len;
	return 8;
}

size_t aml_rt_irq(uint8_t *p, unsigned irq)
{
	p[0] = 0x22; /* small item: IRQ, 2 bytes: edge, active high */
	put_le16(p + 1, (uint16_t)(1u << (irq & 15)));
	return 3;
}

size_t aml_rt_ext_irq(uint8_t *p, uint32_t gsi, bool level)
{
	p[0] = 0x89; /* large item: Extended Interrupt, 6 bytes */
	put_le16(p + 1, 6);
	/* consumer; edge-triggered, exclusive, or level-triggered, shared;
	 * active high either way */
	p[3] = level ? 0x09 : 0x03;
	p[4] = 1;    /* one interrupt */
	put_le32(p + 5, gsi);
	return 9;
}

/* large item: Word Address Space; producer, MinFixed, MaxFixed */
static size_t word_space(uint8_t *p, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	p[0] = 0x88;
	put_le16(p + 1, 13);
	p[3] = type;
	p[4] = 0x0c;
	p[5] = tflags;
	put_le16(p + 6, 0); /* granularity */
	put_le16(p + 8, min);
	put_le16(p + 10, max);
	put_le16(p + 12, 0); /* translation */
	put_le16(p + 14, (uint16_t)(max - min + 1));
	return 16;
}

size_t aml_rt_word_bus(uint8_t *p, uint16_t min, uint16_t max)
{
	return word_space(p, 2, 0, min, max);
}

size_t aml_rt_word_io(uint8_t *p, uint16_t min, uint16_t max)
{
	return word_space(p, 1, 0x03 /* entire range */, min, max);
}

size_t aml_rt_dword_mem(uint8_t *p, uint32_t min, uint32_t max)
{
	p[0] = 0x87; /* large item: DWord Address Space */
	put_le16(p + 1, 23);
	p[3] = 0;    /* memory */
	p[4] = 0x0c; /* producer, MinFixed, MaxFixed */
	p[5] = 0x01; /* read-write, non-cacheable */
	put_le32(p + 6, 0);
	put_le32(p + 10, min);
	put_le32(p + 14, max);
	put_le32(p + 18, 0);
	put_le32(p + 22, max - min + 1);
	return 26;
}

size_t aml_rt_mem32(uint8_t *p, uint32_t base, uint32_t len)
{
	p[0] = 0x86; /* large item: 32-bit Fixed Memory Range, 9 bytes */
	put_le16(p + 1, 9);
	p[3] = 0x01; /* read-write */
	put_le32(p + 4, base);
	put_le32(p + 8, len);
	return 12;
}

size_t aml_rt_end(uint8_t *p)
{
	p[0] = 0x79;
	p[1] = 0; /* checksum 0: "treat as correct" */
	return 2;
}

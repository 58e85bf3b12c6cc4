/* Readers for the little-endian firmware tables the VMM writes (ACPI, MP
 * table), and their 8-bit byte sum. Kept apart from vmm/bytes.h on
 * purpose: the tests read the bytes back with code of their own. */
#ifndef KVMLAB_T_LE_H
#define KVMLAB_T_LE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t t_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static inline uint16_t rd_le16(const uint8_t *p) { return (uint16_t)t_le(p, 2); }
static inline uint32_t rd_le32(const uint8_t *p) { return (uint32_t)t_le(p, 4); }
static inline uint64_t rd_le64(const uint8_t *p) { return t_le(p, 8); }

/* A valid table sums to 0 mod 256. */
static inline uint8_t t_sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* How Linux finds a firmware pointer (RSDP, MP floating pointer): 16-byte
 * steps over [lo, hi) of mem, a signature, and a zero sum over the first
 * sumlen bytes. */
static inline const uint8_t *t_scan16(const uint8_t *mem, uint64_t lo,
				      uint64_t hi, const char *sig,
				      size_t sumlen)
{
	for (uint64_t a = lo; a + sumlen <= hi; a += 16)
		if (memcmp(mem + a, sig, strlen(sig)) == 0 &&
		    t_sum8(mem + a, sumlen) == 0)
			return mem + a;
	return NULL;
}
#endif

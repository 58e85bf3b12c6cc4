/* Little-endian stores and the 8-bit checksum shared by the firmware
 * tables the VMM writes (ACPI, MP table, AML resource templates), and the
 * network-order loads and stores of the packets it builds and parses
 * (DHCP, router advertisements). Byte by byte: the fields are in the
 * guest's or the wire's byte order whatever the host's, and the pointers
 * need no alignment. */
#ifndef KVMLAB_VMM_BYTES_H
#define KVMLAB_VMM_BYTES_H
#include <stddef.h>
#include <stdint.h>

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

/* Both specs want the bytes of a table to add up to 0 mod 256, so the
 * checksum byte is set to -sum8() of the table with that byte still 0. */
static inline uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}
#endif

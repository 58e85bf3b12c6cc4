/* A tiny AML encoder (ACPI spec 6.x, chapter 20): just what kvmlab's
 * DSDT needs. Writes append to a bounded buffer; the first overflow or
 * bad input sticks in a->err, so callers check once at the end. */
#ifndef KVMLAB_VMM_AML_H
#define KVMLAB_VMM_AML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t cap, len;
	int err; /* 0 or -ENOSPC / -EINVAL */
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t v);

/* Integer with the smallest encoding (ZeroOp, OneOp, Byte/Word/DWord/QWord). */
void aml_int(struct aml *a, uint64_t v);
/* Always a DWordConst (EISA ids, _PRT addresses read best this way). */
void aml_dword(struct aml *a, uint32_t v);
void aml_string(struct aml *a, const char *s);
/* "PNP0A03" -> the compressed EISA id integer, as iasl's EisaId(). */
int aml_eisaid(const char *id, uint32_t *out);
/* NameString: "\\_SB.PCI0", "_S5_", "COM1"; segments shorter than 4
 * characters are padded with '_'. */
void aml_namestring(struct aml *a, const char *path);
/* Name(path, <next object>) */
void aml_name(struct aml *a, const char *path);
/* Buffer(n){bytes} */
void aml_buffer(struct aml *a, const void *bytes, size_t n);

/* Objects with a PkgLength: begin returns a mark, aml_end closes it. */
size_t aml_scope(struct aml *a, const char *path);
size_t aml_device(struct aml *a, const char *path);
size_t aml_package(struct aml *a, uint8_t nelems);
void aml_end(struct aml *a, size_t mark);
/* Method(path, nargs) { ... aml_end }: not serialized. */
size_t aml_method(struct aml *a, const char *path, unsigned nargs);
/* Notify(path, value) */
void aml_notify(struct aml *a, const char *path, uint8_t value);

/* Resource template pieces (ACPI 6.4.2/6.4.3), written into a raw
 * byte buffer that aml_buffer then wraps. Each returns bytes written. */
size_t aml_rt_io(uint8_t *p, uint16_t base, uint8_t len);
size_t aml_rt_irq(uint8_t *p, unsigned irq);
/* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }, or
 * with level: Interrupt(ResourceConsumer, Level, ActiveHigh, Shared) */
size_t aml_rt_ext_irq(uint8_t *p, uint32_t gsi, bool level);
/* Memory32Fixed(ReadWrite, base, len) */
size_t aml_rt_mem32(uint8_t *p, uint32_t base, uint32_t len);
size_t aml_rt_word_bus(uint8_t *p, uint16_t min, uint16_t max);
size_t aml_rt_word_io(uint8_t *p, uint16_t min, uint16_t max);
size_t aml_rt_dword_mem(uint8_t *p, uint32_t min, uint32_t max);
size_t aml_rt_end(uint8_t *p);
#endif

/* A 16550A UART (COM1): output to an fd, input pushed in by the main
 * loop, interrupts through a line callback. */
#ifndef KVMLAB_VMM_SERIAL_H
#define KVMLAB_VMM_SERIAL_H
#include <stddef.h>
#include <stdint.h>
#include "bus.h"
#include "util.h"

struct vm_exit;

struct serial_cfg {
	int out_fd;               /* -1: output is discarded */
	struct vm_exit *exit;     /* NULL: no panic-line detection */
	int (*irq_line)(void *opaque, unsigned gsi, int level);
	void *irq_opaque;
	unsigned gsi;
	/* when set (atomically), a write interrupted by a signal gives up
	 * instead of retrying: lets vm_stop() free a vCPU stuck on a full
	 * pipe. NULL: always retry. */
	const int *stop;
};

struct serial;
extern const struct bus_ops serial_ops; /* opaque = struct serial *, 8 ports */

int serial_new(struct serial **out, const struct serial_cfg *cfg, struct err *e) WUR;
void serial_free(struct serial *s);
/* Queue host input for the guest; returns how many bytes were taken
 * (fewer than len when the receive buffer is full). */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t len);
size_t serial_rx_space(struct serial *s);
/* Write out buffered guest output. Call often enough that a prompt
 * without a newline shows up, and at exit. */
void serial_flush(struct serial *s);
/* The same, but skipped when a vCPU is busy writing (never blocks the
 * caller behind a full pipe: the main loop must stay responsive). */
void serial_flush_try(struct serial *s);
/* The guest printed the end of a kernel panic report. */
int serial_panic_done(struct serial *s);
#endif

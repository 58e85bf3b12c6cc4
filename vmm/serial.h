/* A 16550A UART (COM1): output queued on a console (console.h), input
 * pushed in by the main loop, interrupts through a line callback. The
 * lock inside is never held across anything that can block, so the main
 * loop may call in at any time. */
#ifndef KVMLAB_VMM_SERIAL_H
#define KVMLAB_VMM_SERIAL_H
#include <stddef.h>
#include <stdint.h>
#include "bus.h"
#include "util.h"

struct exit_latch;
struct console;

struct serial_cfg {
	struct console *out;      /* NULL: output is discarded */
	struct exit_latch *exit;  /* NULL: no panic-line detection */
	int (*irq_line)(void *opaque, unsigned gsi, int level);
	void *irq_opaque;
	unsigned gsi;
};

struct serial;
extern const struct bus_ops serial_ops; /* opaque = struct serial *, 8 ports */

int serial_new(struct serial **out, const struct serial_cfg *cfg, struct err *e) WUR;
void serial_free(struct serial *s);
/* Queue host input for the guest; returns how many bytes were taken
 * (fewer than len when the receive buffer is full). */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t len);
size_t serial_rx_space(struct serial *s);
/* The guest printed the end of a kernel panic report. */
int serial_panic_done(struct serial *s);
#endif

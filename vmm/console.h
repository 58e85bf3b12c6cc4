/* Guest console output on its way to a host fd (stdout, a file). The
 * threads that emulate the guest only queue bytes here, which never
 * blocks; a writer thread of its own does the write()s, so a reader that
 * stalls (a full pipe nobody drains, a stopped terminal) stalls nobody
 * else. When the queue is full the newest bytes are dropped and counted,
 * and stderr hears of it once. */
#ifndef KVMLAB_VMM_CONSOLE_H
#define KVMLAB_VMM_CONSOLE_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define CONSOLE_QUEUE (64u << 10)   /* bytes held for a slow reader */
#define CONSOLE_DRAIN_MS 1000       /* console_free: wait this long for the reader */

struct console;

/* fd stays the caller's; it may be blocking. */
int console_new(struct console **out, int fd, struct err *e) WUR;
/* Queue len bytes; returns how many were kept (the rest is dropped). Any
 * thread; never blocks on the reader. */
size_t console_write(struct console *c, const void *buf, size_t len);
/* Bytes dropped so far because the reader did not keep up (or went away). */
uint64_t console_dropped(struct console *c);
/* Let the writer empty the queue for at most drain_ms, then stop it
 * (even in the middle of a blocked write) and free everything. Says on
 * stderr how much was dropped, if anything. NULL is fine. */
void console_free(struct console *c, unsigned drain_ms);
#endif

/* Small shared helpers for the VMM: error text and attributes. */
#ifndef KVMLAB_VMM_UTIL_H
#define KVMLAB_VMM_UTIL_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define WUR __attribute__((warn_unused_result))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Host-side setup errors carry one human line up to main, which prints
 * "kvmlab-vm: <msg>" and exits. Functions return -errno. */
struct err {
	char msg[256];
};

/* Fill e (if non-NULL) and return -errnum, so callers can write
 * `return errf(e, EINVAL, "boot: %s: not a bzImage", path);` */
__attribute__((format(printf, 3, 4)))
static inline int errf(struct err *e, int errnum, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -errnum;
}

/* The CLOCK_REALTIME instant ms from now: pthread's timed waits take an
 * absolute time on that clock. */
static inline struct timespec deadline_ms(unsigned ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}
#endif

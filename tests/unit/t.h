/* Tiny unit-test harness: each CHECK prints one TAP-style line; t_done()
 * returns the exit status. tests/run counts the lines of every program. */
#ifndef KVMLAB_T_H
#define KVMLAB_T_H
#include <stdio.h>
#include <string.h>

static int t_failed, t_passed;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (cond) {                                                \
			t_passed++;                                        \
			printf("ok - %s:%d ", __FILE__, __LINE__);         \
		} else {                                                   \
			t_failed++;                                        \
			printf("not ok - %s:%d (%s) ", __FILE__, __LINE__, \
			       #cond);                                     \
		}                                                          \
		printf(__VA_ARGS__);                                       \
		putchar('\n');                                             \
	} while (0)

#define CHECK_EQ(a, b, ...)                                                \
	do {                                                               \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);    \
		if (t_a_ != t_b_)                                          \
			printf("# %s = %lld, %s = %lld\n", #a, t_a_, #b, t_b_); \
		CHECK(t_a_ == t_b_, __VA_ARGS__);                          \
	} while (0)

static inline int t_done(void)
{
	fflush(stdout);
	return t_failed ? 1 : 0;
}
#endif

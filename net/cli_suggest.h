/* "Did you mean" for the two command-line front ends (net/cli.c and
 * vmm/main.c). Header-only on purpose: it is not part of the library's
 * API and adds no symbol to libkvmlabnet. */
#ifndef KVMLAB_CLI_SUGGEST_H
#define KVMLAB_CLI_SUGGEST_H
#include <getopt.h>
#include <stddef.h>
#include <string.h>

/* Edit distance with adjacent swaps counting as one ("nta" -> "nat"),
 * capped: words longer than 31 bytes are never suggested. */
static inline unsigned cli_distance(const char *a, size_t la, const char *b)
{
	unsigned d[32][32];
	size_t lb = strlen(b);

	if (la > 31 || lb > 31)
		return ~0u;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < c)
				c = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < c)
				c = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
				c = d[i - 2][j - 2] + 1;
			d[i][j] = c;
		}
	}
	return d[la][lb];
}

/* The closest of words[0..n) to typed (its first len bytes), or NULL
 * when nothing is close: one edit for short words, two from 5 bytes on,
 * or typed being the start of exactly one word. */
static inline const char *cli_closest(const char *typed, size_t len,
				      const char *const *words, size_t n)
{
	const char *best = NULL, *prefix = NULL;
	unsigned best_d = len >= 5 ? 3 : 2;
	size_t nprefix = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned d = cli_distance(typed, len, words[i]);
		if (d < best_d) {
			best_d = d;
			best = words[i];
		}
		if (len && !strncmp(words[i], typed, len)) {
			prefix = words[i];
			nprefix++;
		}
	}
	return best ? best : nprefix == 1 ? prefix : NULL;
}

/* For a mistyped "--optoin" or "--optoin=value": the long option of opts
 * (a getopt_long table) it most likely meant, or NULL. */
static inline const char *cli_suggest_opt(const char *arg,
					  const struct option *opts)
{
	const char *words[64];
	size_t n = 0;

	if (strncmp(arg, "--", 2))
		return NULL;
	arg += 2;
	for (; n < 64 && opts[n].name; n++)
		words[n] = opts[n].name;
	return cli_closest(arg, strcspn(arg, "="), words, n);
}
#endif

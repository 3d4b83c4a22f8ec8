/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal TAP producer for the C unit tests: tests/run counts the
 * "ok" / "not ok" / "# SKIP" lines of every test program.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

static inline void tap_result(int ok, const char *file, int line,
			      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline void tap_result(int ok, const char *file, int line,
			      const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
}

/* ok(cond, "name %d", ...) */
#define ok(cond, ...) tap_result(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* is(got, want, "name"): integers, prints both on failure */
#define is(got, want, ...)                                                  \
	do {                                                                \
		long long g_ = (long long)(got), w_ = (long long)(want);    \
		tap_result(g_ == w_, __FILE__, __LINE__, __VA_ARGS__);      \
		if (g_ != w_)                                               \
			printf("#   got %lld, want %lld\n", g_, w_);      \
	} while (0)
#define skip(why, ...)                                                      \
	do {                                                                \
		printf("ok %d - ", ++tap_n);                                \
		printf(__VA_ARGS__);                                        \
		printf(" # SKIP %s\n", why);                                \
	} while (0)
#define diag(...)                                                           \
	do {                                                                \
		printf("# ");                                               \
		printf(__VA_ARGS__);                                        \
		printf("\n");                                               \
	} while (0)

/* Print the plan and return the exit status for main(). */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif

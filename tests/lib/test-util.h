/* SPDX-License-Identifier: GPL-2.0-only */
/* Small helpers the C unit tests share. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Open descriptors of this process, to find leaks. */
static inline int tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	/* not the one opendir itself held */
	return d ? n - 1 : 0;
}

/* A 4 KiB-aligned buffer (fit for O_DIRECT) of len bytes of fill. */
static inline void *tu_abuf(size_t len, int fill)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len))
		abort();
	memset(p, fill, len);
	return p;
}

static inline bool tu_all_bytes(const unsigned char *p, size_t len, int v)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

#endif

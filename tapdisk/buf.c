// SPDX-License-Identifier: GPL-2.0-only
/*
 * Power-of-two size classes from 4 KiB to 64 MiB. Large buffers would
 * otherwise be mmap'd and unmapped by malloc on every request; the cache
 * is capped so an idle tapdisk stays small.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"

#define BUF_MIN_SHIFT 12
#define BUF_MAX_SHIFT 26
#define BUF_CLASSES (BUF_MAX_SHIFT - BUF_MIN_SHIFT + 1)
#define BUF_CACHE_BYTES (64u << 20)
#define BUF_CACHE_PER_CLASS 64

struct buf_free {
	struct buf_free *next;
};

static struct buf_free *buf_cache[BUF_CLASSES];
static unsigned buf_cached_count[BUF_CLASSES];
static size_t buf_cached_bytes;

/* class index for size, or -1 if it is too large to cache */
static int buf_class(size_t size)
{
	int shift = BUF_MIN_SHIFT;

	while (((size_t)1 << shift) < size) {
		if (++shift > BUF_MAX_SHIFT)
			return -1;
	}
	return shift - BUF_MIN_SHIFT;
}

void *td_buf_get(size_t size)
{
	int c = buf_class(size ? size : 1);
	size_t alloc = c < 0 ? size : (size_t)1 << (c + BUF_MIN_SHIFT);
	void *p;
	int err;

	if (c >= 0 && buf_cache[c]) {
		struct buf_free *f = buf_cache[c];

		buf_cache[c] = f->next;
		buf_cached_count[c]--;
		buf_cached_bytes -= alloc;
		return f;
	}
	err = posix_memalign(&p, TD_BUF_ALIGN, alloc);
	if (err) {
		errno = err;
		return NULL;
	}
	return p;
}

void td_buf_put(void *buf, size_t size)
{
	int c = buf_class(size ? size : 1);
	size_t alloc;
	struct buf_free *f = buf;

	if (!buf)
		return;
	alloc = c < 0 ? size : (size_t)1 << (c + BUF_MIN_SHIFT);
	if (c < 0 || buf_cached_count[c] >= BUF_CACHE_PER_CLASS ||
	    buf_cached_bytes + alloc > BUF_CACHE_BYTES) {
		free(buf);
		return;
	}
	f->next = buf_cache[c];
	buf_cache[c] = f;
	buf_cached_count[c]++;
	buf_cached_bytes += alloc;
}

void td_buf_trim(void)
{
	int c;

	for (c = 0; c < BUF_CLASSES; c++) {
		while (buf_cache[c]) {
			struct buf_free *f = buf_cache[c];

			buf_cache[c] = f->next;
			free(f);
		}
		buf_cached_count[c] = 0;
	}
	buf_cached_bytes = 0;
}

bool td_buf_is_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;
	const unsigned char *b;
	size_t i, n = len / 8;

	/* eight words per step: the compiler turns this into vector ORs */
	for (i = 0; i + 8 <= n; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		    w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	for (; i < n; i++)
		if (w[i])
			return false;
	for (b = (const unsigned char *)(w + n); b < (const unsigned char *)buf + len; b++)
		if (*b)
			return false;
	return true;
}

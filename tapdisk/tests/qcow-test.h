/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the two qcow test programs share: a scratch folder, shell and file
 * helpers, and hand-made qcow headers (test-qcow-crafted.c breaks and
 * encrypts them; test-qcow.c checks what qemu and the driver write).
 */
#ifndef QCOW_TEST_H
#define QCOW_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>
#include <zlib.h>
#include "buf.h"
#include "drivers/drivers.h"
#include "image.h"
#include "log.h"
#include "syncio.h"
#include "tap.h"

#define KiB 1024u
#define MiB (1024u * KiB)
#define SIZE (8 * MiB)

static char dir[64];
static bool have_qemu;

static inline const char *path(const char *name)
{
	static char bufs[4][512];
	static int n;
	char *p = bufs[n++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", dir, name);
	return p;
}

static inline int sh(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		diag("command failed (%d): %s", rc, cmd);
	return rc;
}

static inline void put_file(const char *p, const void *buf, size_t len)
{
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
}

static inline void fill_random(uint8_t *b, size_t len, unsigned seed)
{
	size_t i;

	srand(seed);
	for (i = 0; i < len; i++)
		b[i] = (uint8_t)rand();
}

static inline void be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline void be64(uint8_t *p, uint64_t v)
{
	be32(p, v >> 32);
	be32(p + 4, (uint32_t)v);
}

struct hdr {
	uint32_t magic, version;
	uint64_t boff;
	uint32_t bsize;
	uint64_t size;
	uint8_t cbits, l2bits;
	uint32_t crypt;
	uint64_t l1off;
};

static inline void put_hdr(uint8_t *b, const struct hdr *h)
{
	memset(b, 0, 48);
	be32(b, h->magic);
	be32(b + 4, h->version);
	be64(b + 8, h->boff);
	be32(b + 16, h->bsize);
	be64(b + 24, h->size);
	b[32] = h->cbits;
	b[33] = h->l2bits;
	be32(b + 36, h->crypt);
	be64(b + 40, h->l1off);
}

/* A good 1 MiB image: 4 KiB clusters, L1 at 48, one L2 table at 4096. */
static const struct hdr good = {
	.magic = 0x514649fb,
	.version = 1,
	.size = 1 * MiB,
	.cbits = 12,
	.l2bits = 9,
	.l1off = 48,
};

static inline int open_err(const char *file, unsigned flags)
{
	char name[600];
	struct td_syncio *s;

	snprintf(name, sizeof(name), "qcow:%s", file);
	s = td_syncio_open(name, flags);
	if (s) {
		td_syncio_close(s);
		return 0;
	}
	return -errno;
}

/* A crafted image: header h, then extra bytes at given offsets. */
static inline void craft(const char *file, const struct hdr *h, size_t fsize,
			 const uint8_t *extra, size_t elen, size_t eoff)
{
	uint8_t *b = calloc(1, fsize > 48 ? fsize : 48);

	put_hdr(b, h);
	if (extra)
		memcpy(b + eoff, extra, elen);
	put_file(file, b, fsize);
	free(b);
}

static inline bool same_as(const char *name, const uint8_t *want, size_t len,
			   unsigned flags)
{
	struct td_syncio *s = td_syncio_open(name, flags | TD_OPEN_RDONLY);
	uint8_t *got = malloc(len);
	bool same = false;
	size_t off, chunk = 300 * KiB; /* not a multiple of clusters */

	if (!s || !got)
		goto out;
	if (td_syncio_size(s) != len) {
		diag("%s: size %llu, want %zu", name,
		     (unsigned long long)td_syncio_size(s), len);
		goto out;
	}
	for (off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (td_syncio_pread(s, got + off, n, off))
			goto out;
	}
	same = !memcmp(got, want, len);
	for (off = 0; !same && off < len; off++) {
		if (got[off] != want[off]) {
			diag("%s: first difference at %zu: %u, want %u", name,
			     off, got[off], want[off]);
			break;
		}
	}
out:
	td_syncio_close(s);
	free(got);
	return same;
}

/* An image qemu wrote with qemu-io patterns. */
#endif

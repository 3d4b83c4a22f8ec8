// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img compare: exit 0 when both images read the same, 1 at the first
 * difference (its offset printed, to the sector, as qemu-img does), 2 on
 * errors. Ranges both images report as zero are not read.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "img.h"
#include "log.h"
#include "progress.h"

#define CMP_CHUNK (1u << 20)
#define CMP_SECTOR 512

struct cmp_side {
	const char *file;
	struct td_syncio *s;
	void *buf;
};

/* how far from off both sides read as zero (0 if one of them holds data) */
static int cmp_zero_run(struct cmp_side *a, struct cmp_side *b, uint64_t off,
			uint64_t len, uint64_t *run)
{
	struct td_extent ea, eb;
	int rc;

	rc = td_syncio_block_status(a->s, off, len, &ea);
	if (!rc)
		rc = td_syncio_block_status(b->s, off, len, &eb);
	if (rc)
		return rc;
	*run = (ea.flags & TD_BS_ZERO) && (eb.flags & TD_BS_ZERO) ?
		       (ea.len < eb.len ? ea.len : eb.len) :
		       0;
	return 0;
}

static uint64_t cmp_first_diff(const unsigned char *x, const unsigned char *y,
			       size_t n)
{
	size_t i = 0;

	while (i < n && x[i] == y[i])
		i++;
	return i;
}

/* 0 same, 1 different (*at set), or -errno */
static int cmp_range(struct cmp_side *a, struct cmp_side *b, uint64_t start,
		     uint64_t end, struct tool_progress *p, uint64_t *at)
{
	uint64_t off = start, run, n;
	int rc;

	while (off < end) {
		rc = cmp_zero_run(a, b, off, end - off, &run);
		if (rc)
			return rc;
		if (run) {
			off += run;
			tool_progress_add(p, run);
			continue;
		}
		n = end - off < CMP_CHUNK ? end - off : CMP_CHUNK;
		rc = td_syncio_pread(a->s, a->buf, n, off);
		if (!rc)
			rc = td_syncio_pread(b->s, b->buf, n, off);
		if (rc)
			return rc;
		if (memcmp(a->buf, b->buf, n)) {
			*at = off + cmp_first_diff(a->buf, b->buf, n);
			return 1;
		}
		off += n;
		tool_progress_add(p, n);
	}
	return 0;
}

/* the tail of the larger image must read as zero */
static int cmp_tail(struct cmp_side *big, uint64_t start, uint64_t end,
		    struct tool_progress *p, uint64_t *at)
{
	uint64_t off = start, n;
	struct td_extent e;
	int rc;

	while (off < end) {
		rc = td_syncio_block_status(big->s, off, end - off, &e);
		if (rc)
			return rc;
		if (e.flags & TD_BS_ZERO) {
			off += e.len;
			tool_progress_add(p, e.len);
			continue;
		}
		n = e.len < CMP_CHUNK ? e.len : CMP_CHUNK;
		rc = td_syncio_pread(big->s, big->buf, n, off);
		if (rc)
			return rc;
		if (!td_buf_is_zero(big->buf, n)) {
			const unsigned char *c = big->buf;
			uint64_t i = 0;

			while (!c[i])
				i++;
			*at = off + i;
			return 1;
		}
		off += n;
		tool_progress_add(p, n);
	}
	return 0;
}

int img_compare(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmp_side a = { 0 }, b = { 0 };
	const char *fa = NULL, *fb = NULL;
	bool strict = false, progress = false;
	struct tool_progress p;
	uint64_t sa, sb, at = 0;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:F:sp", lopts, &rc)) !=
	       -1) {
		switch (c) {
		case 'f':
			fa = optarg;
			break;
		case 'F':
			fb = optarg;
			break;
		case 's':
			strict = true;
			break;
		case 'p':
			progress = true;
			break;
		default:
			/* qemu-img compare: usage errors are errors, exit 2 */
			return rc ? 2 : 0;
		}
	}
	if (argc - optind != 2) {
		img_usage_error(cmd, "expected two images");
		return 2;
	}
	a.file = argv[optind];
	b.file = argv[optind + 1];
	rc = 2;
	a.s = tool_open(a.file, fa, TD_OPEN_RDONLY);
	if (!a.s) {
		td_err("%s: cannot open: %s", a.file, strerror(errno));
		goto out;
	}
	b.s = tool_open(b.file, fb, TD_OPEN_RDONLY);
	if (!b.s) {
		td_err("%s: cannot open: %s", b.file, strerror(errno));
		goto out;
	}
	a.buf = td_buf_get(CMP_CHUNK);
	b.buf = td_buf_get(CMP_CHUNK);
	if (!a.buf || !b.buf) {
		td_err("no memory for the comparison buffers");
		goto out;
	}
	sa = td_syncio_size(a.s);
	sb = td_syncio_size(b.s);
	if (strict && sa != sb) {
		printf("Strict mode: Image size mismatch!\n");
		rc = 1;
		goto out;
	}
	tool_progress_init(&p, progress, sa > sb ? sa : sb);
	rc = cmp_range(&a, &b, 0, sa < sb ? sa : sb, &p, &at);
	if (!rc && sa != sb) {
		if (sa < sb)
			rc = cmp_tail(&b, sa, sb, &p, &at);
		else
			rc = cmp_tail(&a, sb, sa, &p, &at);
	}
	if (rc < 0) {
		td_err("cannot compare %s with %s: %s", a.file, b.file,
		       strerror(-rc));
		rc = 2;
		goto out;
	}
	tool_progress_end(&p);
	if (rc) {
		printf("Content mismatch at offset %llu!\n",
		       (unsigned long long)(at / CMP_SECTOR * CMP_SECTOR));
		goto out;
	}
	if (sa != sb)
		printf("Warning: Image size mismatch!\n");
	printf("Images are identical.\n");
out:
	if (a.buf)
		td_buf_put(a.buf, CMP_CHUNK);
	if (b.buf)
		td_buf_put(b.buf, CMP_CHUNK);
	td_syncio_close(a.s);
	td_syncio_close(b.s);
	return rc;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img rebase: give an image another backing file. Safe mode keeps what
 * the image reads: every range the image itself does not hold, where the
 * old and the new backing differ, is copied from the old into the image
 * before the reference changes. -u only changes the reference.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "chain.h"
#include "img.h"
#include "log.h"
#include "progress.h"

#define REBASE_CHUNK (1u << 20)

struct rebase {
	const char *file;
	struct td_syncio *top, *nb; /* nb NULL: no new backing, zeroes */
	uint64_t size, nsize;
	void *obuf, *nbuf;
	struct tool_progress prog;
};

/* the new backing's content of [off, off + n), zero past its end */
static int rebase_read_new(struct rebase *r, uint64_t off, uint64_t n)
{
	uint64_t have = 0;

	if (r->nb && off < r->nsize)
		have = r->nsize - off < n ? r->nsize - off : n;
	memset((char *)r->nbuf + have, 0, n - have);
	return have ? td_syncio_pread(r->nb, r->nbuf, have, off) : 0;
}

static int rebase_copy(struct rebase *r)
{
	uint64_t off, n;
	struct td_extent e;
	int rc;

	for (off = 0; off < r->size; off += n) {
		rc = td_syncio_block_status(r->top, off, r->size - off, &e);
		if (rc)
			return rc;
		n = e.len < REBASE_CHUNK ? e.len : REBASE_CHUNK;
		tool_progress_add(&r->prog, n);
		if (e.depth == 0)
			continue;
		rc = td_syncio_pread(r->top, r->obuf, n, off);
		if (!rc)
			rc = rebase_read_new(r, off, n);
		if (rc)
			return rc;
		if (!memcmp(r->obuf, r->nbuf, n))
			continue;
		rc = td_syncio_pwrite(r->top, r->obuf, n, off, 0);
		if (rc)
			return rc;
	}
	return td_syncio_flush(r->top);
}

int img_rebase(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rebase r = { 0 };
	const char *fmt = NULL, *bfmt = NULL, *nb = NULL;
	bool unsafe = false, progress = false;
	struct td_image *img;
	char *npath = NULL;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:b:F:up", lopts, &rc)) !=
	       -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			nb = optarg;
			break;
		case 'F':
			bfmt = optarg;
			break;
		case 'u':
			unsafe = true;
			break;
		case 'p':
			progress = true;
			break;
		default:
			return rc;
		}
	}
	if (argc - optind != 1)
		return img_usage_error(cmd, "expected one FILE");
	if (!nb)
		return img_usage_error(cmd, "-b NEW is required (\"\" for no backing file)");
	r.file = argv[optind];
	/* -u: the old backing file may be gone, which is often why */
	r.top = tool_open(r.file, fmt, unsafe ? TD_OPEN_NO_BACKING : 0);
	if (!r.top) {
		td_err("%s: cannot open: %s", r.file, strerror(errno));
		return 1;
	}
	rc = 1;
	img = td_syncio_image(r.top);
	if (!img->drv->set_parent) {
		td_err("%s: %s images have no backing file to change", r.file,
		       tool_fmt_name(img->drv->name));
		goto out;
	}
	if (!unsafe) {
		r.size = td_syncio_size(r.top);
		if (*nb) {
			npath = tool_backing_path(r.file, nb);
			r.nb = npath ? tool_open(npath, bfmt, TD_OPEN_RDONLY) :
				       NULL;
			if (!r.nb) {
				td_err("%s: cannot open the new backing file %s: %s",
				       r.file, nb, strerror(errno));
				goto out;
			}
			r.nsize = td_syncio_size(r.nb);
		}
		r.obuf = td_buf_get(REBASE_CHUNK);
		r.nbuf = td_buf_get(REBASE_CHUNK);
		if (!r.obuf || !r.nbuf) {
			td_err("%s: no memory for the copy buffers", r.file);
			goto out;
		}
		tool_progress_init(&r.prog, progress, r.size);
		if (rebase_copy(&r)) {
			td_err("%s: cannot keep the old backing file's data", r.file);
			goto out;
		}
		tool_progress_end(&r.prog);
	}
	if (img->drv->set_parent(img, *nb ? nb : NULL,
				 *nb && bfmt ? tool_fmt_type(bfmt) : NULL)) {
		td_err("%s: cannot change the backing file to '%s'", r.file, nb);
		goto out;
	}
	rc = 0;
out:
	if (r.obuf)
		td_buf_put(r.obuf, REBASE_CHUNK);
	if (r.nbuf)
		td_buf_put(r.nbuf, REBASE_CHUNK);
	td_syncio_close(r.nb);
	td_syncio_close(r.top);
	free(npath);
	return rc;
}

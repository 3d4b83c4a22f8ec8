// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img commit: copy everything the top layer holds into its backing
 * file, then (unless -d) empty the top layer, so that it reads through to
 * the backing file that now has its data.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "copy.h"
#include "img.h"
#include "log.h"

#define COMMIT_QUERY_MAX (1ull << 30)

/* discard what the top layer holds: the backing file has it now */
static int commit_empty(struct td_syncio *top, const char *file)
{
	uint64_t size = td_syncio_size(top), off;
	struct td_extent e;
	int rc;

	for (off = 0; off < size; off += e.len) {
		rc = td_syncio_block_status(top, off,
					    size - off < COMMIT_QUERY_MAX ?
						    size - off :
						    COMMIT_QUERY_MAX,
					    &e);
		if (!rc && e.depth == 0)
			rc = td_syncio_discard(top, off, e.len);
		if (rc) {
			td_err("%s: cannot empty the image at %llu: %s", file,
			       (unsigned long long)off, strerror(-rc));
			return rc;
		}
	}
	return td_syncio_flush(top);
}

int img_commit(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_copy_opts co = { .top_only = true };
	struct td_syncio *top, *base = NULL;
	struct td_image *timg, *bimg;
	bool keep = false;
	const char *fmt = NULL, *file;
	uint64_t size;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:dp", lopts, &rc)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'd':
			keep = true;
			break;
		case 'p':
			co.progress = true;
			break;
		default:
			return rc;
		}
	}
	if (argc - optind != 1)
		return img_usage_error(cmd, "expected one FILE");
	file = argv[optind];
	top = tool_open(file, fmt, 0);
	if (!top) {
		td_err("%s: cannot open: %s", file, strerror(errno));
		return 1;
	}
	rc = 1;
	timg = td_syncio_image(top);
	if (!timg->parent) {
		td_err("%s: the image has no backing file to commit to", file);
		goto out;
	}
	base = tool_open_name(timg->parent->name, TD_OPEN_NO_BACKING);
	if (!base) {
		td_err("%s: cannot open the backing file %s for writing: %s",
		       file, timg->parent->path, strerror(errno));
		goto out;
	}
	bimg = td_syncio_image(base);
	size = td_syncio_size(top);
	if (bimg->info.size < size) {
		/* like qemu-img: the backing file grows to hold it all */
		if (!bimg->drv->resize ||
		    bimg->drv->resize(bimg, size)) {
			td_err("%s: the backing file %s is smaller and cannot grow",
			       file, bimg->path);
			goto out;
		}
		/* reopen: the vbd checks requests against the size it saw */
		td_syncio_close(base);
		base = tool_open_name(timg->parent->name, TD_OPEN_NO_BACKING);
		if (!base)
			goto out;
		bimg = td_syncio_image(base);
	}
	co.granularity = tool_cluster_size(bimg);
	if (tool_copy(top, base, size, &co)) {
		td_err("%s: commit into %s failed", file, bimg->path);
		goto out;
	}
	if (!keep && commit_empty(top, file))
		goto out;
	printf("Image committed.\n");
	rc = 0;
out:
	td_syncio_close(base);
	td_syncio_close(top);
	return rc;
}

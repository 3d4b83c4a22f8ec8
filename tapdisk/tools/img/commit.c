// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img commit: copy everything the top layer holds into its backing
 * file, then (unless -d) empty the top layer, so that it reads through to
 * the backing file that now has its data.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "copy.h"
#include "img.h"
#include "log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* the layout options describe() reports that create takes back */
static const char *const commit_keep_keys[] = {
	"cluster_size", "compat", "refcount_bits", "lazy_refcounts",
	"extended_l2", "compression_type",
};

/*
 * Can the image be emptied by creating it again? Not when that would lose
 * something create cannot restore: snapshots, an external data file,
 * encryption.
 */
static bool commit_can_recreate(struct td_image *img, struct json_object *d)
{
	struct td_snapshot *snaps = NULL;
	struct json_object *v;
	int n = 0;

	if (!img->drv->create || !img->info.parent)
		return false;
	if (img->drv->snapshot_list && (img->drv->snapshot_list(img, &snaps, &n) || n))
		n = 1;
	free(snaps);
	if (n)
		return false;
	if (d && json_object_object_get_ex(d, "data_file", &v))
		return false;
	return !(d && json_object_object_get_ex(d, "encrypted", &v) &&
		 json_object_get_boolean(v));
}

/*
 * Empty the top layer, so that it reads through to the backing file that
 * now holds its data. A discard cannot do it: drivers turn discarded
 * clusters over a backing file into zero clusters, as qemu does, which
 * would hide the data just committed. So the image is made anew, with its
 * size, backing reference and layout; an image that cannot be remade
 * keeps its data, which now equals its backing file's, as with -d.
 */
static int commit_empty(struct td_syncio **top, const char *file)
{
	struct td_image *img = td_syncio_image(*top);
	const char *keys[ARRAY_SIZE(commit_keep_keys)];
	const char *vals[ARRAY_SIZE(commit_keep_keys)];
	struct json_object *d = tool_describe(img), *v;
	struct td_create_opts co = { 0 };
	const struct td_driver *drv = img->drv;
	struct td_name bn = { 0 };
	char *path = NULL;
	size_t i;
	int rc = 0;

	if (!commit_can_recreate(img, d)) {
		printf("The image keeps its clusters (it cannot be recreated empty).\n");
		goto out;
	}
	for (i = 0; d && i < ARRAY_SIZE(commit_keep_keys); i++) {
		if (!json_object_object_get_ex(d, commit_keep_keys[i], &v))
			continue;
		keys[co.nopts] = commit_keep_keys[i];
		vals[co.nopts++] = json_object_get_string(v);
	}
	co.keys = keys;
	co.vals = vals;
	co.size = img->info.size;
	rc = td_name_parse(img->info.parent, &bn);
	path = strdup(img->path);
	if (rc || !path) {
		rc = rc ? rc : -ENOMEM;
		goto out;
	}
	co.backing = bn.path;
	co.backing_fmt = bn.type[0] ? bn.type : NULL;
	td_syncio_close(*top);
	*top = NULL;
	rc = drv->create(path, &co);
	if (rc)
		td_err("%s: cannot recreate the image empty: %s", file,
		       strerror(-rc));
out:
	td_name_free(&bn);
	free(path);
	json_object_put(d);
	return rc;
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
	td_syncio_close(base);
	base = NULL;
	if (!keep && commit_empty(&top, file))
		goto out;
	printf("Image committed.\n");
	rc = 0;
out:
	td_syncio_close(base);
	td_syncio_close(top);
	return rc;
}

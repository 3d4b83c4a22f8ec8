// SPDX-License-Identifier: GPL-2.0-only
/* tap-img convert: any image into a new one, sparse, many requests in flight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "copy.h"
#include "img.h"
#include "log.h"

/*
 * -l snapshot.name=NAME, -l snapshot.id=ID, -l ID_OR_NAME or -s ID_OR_NAME:
 * the source becomes "SRC?snapshot=...", which only qcow2 opens.
 */
static int convert_snapshot(const struct img_cmd *cmd,
			    struct tool_convert_opts *co, const char *snap,
			    char **src)
{
	const char *type = co->src_fmt;

	if (!strncmp(snap, "snapshot.name=", 14))
		snap += 14;
	else if (!strncmp(snap, "snapshot.id=", 12))
		snap += 12;
	if (!*snap || strchr(snap, ','))
		return img_usage_error(cmd, "-l takes snapshot.name=NAME, "
					    "snapshot.id=ID or ID_OR_NAME");
	if (!type && td_probe(co->src, &type)) {
		td_err("%s: cannot open", co->src);
		return 1;
	}
	if (strcmp(type, "qcow2")) {
		td_err("%s: internal snapshots exist only in qcow2 images",
		       co->src);
		return 1;
	}
	if (asprintf(src, "%s?snapshot=%s", co->src, snap) < 0)
		return 1;
	co->src = *src;
	co->src_fmt = "qcow2";
	return 0;
}

int img_convert(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_convert_opts co = {
		.min_sparse = TOOL_DEFAULT_MIN_SPARSE,
		.src_cache = TOOL_CACHE_WRITEBACK,
		.dst_cache = TOOL_CACHE_NONE,
	};
	struct tool_opts o = { 0 };
	const char *snap = NULL;
	char *snap_src = NULL;
	uint64_t n;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:O:cpS:o:m:t:T:l:s:", lopts,
			       &rc)) != -1) {
		switch (c) {
		case 'f':
			co.src_fmt = optarg;
			break;
		case 'O':
			co.dst_fmt = optarg;
			break;
		case 'c':
			co.compress = true;
			break;
		case 'l':
		case 's':
			snap = optarg;
			break;
		case 'p':
			co.progress = true;
			break;
		case 'S':
			if (img_parse_size_arg(cmd, "-S size", optarg,
					       &co.min_sparse, &rc))
				goto out;
			if (co.min_sparse % 512 || co.min_sparse > TOOL_COPY_CHUNK) {
				rc = img_usage_error(cmd, "-S must be a multiple of 512 up to %u",
						     TOOL_COPY_CHUNK);
				goto out;
			}
			break;
		case 'o':
			if (img_add_opts(cmd, &o, optarg)) {
				rc = 1;
				goto out;
			}
			break;
		case 't':
		case 'T':
			if (tool_cache_parse(optarg, c == 't' ? &co.dst_cache :
								 &co.src_cache)) {
				rc = img_usage_error(cmd, "-%c takes none, writeback or unsafe",
						     c);
				goto out;
			}
			break;
		case 'm':
			if (tool_parse_size(optarg, &n) || !n ||
			    n > TOOL_COPY_MAX_INFLIGHT) {
				rc = img_usage_error(cmd, "-m takes 1 to %d",
						     TOOL_COPY_MAX_INFLIGHT);
				goto out;
			}
			co.inflight = (unsigned)n;
			break;
		default:
			goto out;
		}
	}
	if (argc - optind != 2) {
		rc = img_usage_error(cmd, "expected SRC and DST");
		goto out;
	}
	if (!co.dst_fmt) {
		rc = img_usage_error(cmd, "-O FMT is required");
		goto out;
	}
	co.src = argv[optind];
	co.dst = argv[optind + 1];
	co.create = &o;
	if (snap) {
		rc = convert_snapshot(cmd, &co, snap, &snap_src);
		if (rc)
			goto out;
	}
	rc = tool_convert(&co) ? 1 : 0;
out:
	free(snap_src);
	tool_opts_free(&o);
	return rc;
}

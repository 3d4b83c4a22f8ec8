// SPDX-License-Identifier: GPL-2.0-only
/*
 * img2qcow: the original blktap tool, same arguments. A raw image file or
 * partition into a new standalone qcow image; zero ranges stay sparse.
 * The source is read as raw, never probed: a disk whose first sector
 * happens to look like an image header is still copied byte for byte.
 */
#include <getopt.h>
#include <stdio.h>

#include "convert.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: img2qcow [-h] [-p] <QCOW_OUT> <SRC_IMAGE>\n\n"
		"Copy a raw image or partition into a new sparse, standalone qcow image.\n\n"
		"  -p, --progress  show progress on stderr\n"
		"  -h, --help      this help\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "progress", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_convert_opts co = {
		.src_fmt = "raw",
		.dst_fmt = "qcow",
		.min_sparse = TOOL_DEFAULT_MIN_SPARSE,
		/* a one-shot copy: durable when the tool says it is done */
		.src_cache = TOOL_CACHE_WRITEBACK,
		.dst_cache = TOOL_CACHE_NONE,
	};
	int c;

	td_log_open("img2qcow", true, LOG_WARNING);
	while ((c = getopt_long(argc, argv, "hp", lopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'p':
			co.progress = true;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 1;
	}
	co.dst = argv[optind];
	co.src = argv[optind + 1];
	return tool_convert(&co) ? 1 : 0;
}

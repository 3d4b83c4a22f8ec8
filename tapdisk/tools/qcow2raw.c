// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2raw: the original blktap tool, same arguments. A qcow image (or
 * any image tapdisk reads, probed) into a raw file or partition. An
 * existing RAW_OUT is only replaced when the user says so: asked on a
 * terminal, or -f.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qcow2raw [-h] [-f] [-p] <RAW_OUT> <QCOW_IN>\n\n"
		"Copy a qcow image (or qcow2, or any format tapdisk reads) into a raw\n"
		"file or partition.\n\n"
		"  -f, --force     replace RAW_OUT if it exists, without asking\n"
		"  -p, --progress  show progress on stderr\n"
		"  -h, --help      this help\n");
}

/* May RAW_OUT be written? */
static bool may_overwrite(const char *out, bool force)
{
	char answer[16];
	struct stat st;

	if (force || stat(out, &st))
		return true;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "qcow2raw: %s exists; use -f to overwrite it\n",
			out);
		return false;
	}
	fprintf(stderr, "qcow2raw: %s exists. Overwrite it? [y/N] ", out);
	if (!fgets(answer, sizeof(answer), stdin))
		return false;
	return answer[0] == 'y' || answer[0] == 'Y';
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "force", no_argument, NULL, 'f' },
		{ "progress", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_convert_opts co = {
		.dst_fmt = "raw",
		.min_sparse = TOOL_DEFAULT_MIN_SPARSE,
		/* a one-shot copy: durable when the tool says it is done */
		.src_cache = TOOL_CACHE_WRITEBACK,
		.dst_cache = TOOL_CACHE_NONE,
	};
	bool force = false;
	int c;

	td_log_open("qcow2raw", true, LOG_WARNING);
	while ((c = getopt_long(argc, argv, "hfp", lopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'f':
			force = true;
			break;
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
	if (access(co.src, R_OK)) {
		td_err("%s: cannot open: %m", co.src);
		return 1;
	}
	if (!may_overwrite(co.dst, force))
		return 1;
	return tool_convert(&co) ? 1 : 0;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow-create: the original blktap tool, same arguments. A standalone
 * sparse qcow image of SIZE megabytes, or a copy-on-write qcow image over
 * BACKING_FILENAME. -r reserves the image's whole space up front, as the
 * original's non-sparse mode did.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tool.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qcow-create [-h] [-r] <SIZE(MB)> <FILENAME> [<BACKING_FILENAME>]\n\n"
		"Create a qcow image of SIZE megabytes, or a copy-on-write image over\n"
		"BACKING_FILENAME (which then gives the image its size).\n\n"
		"  -r, --reserve   reserve the whole image's space now (not sparse)\n"
		"  -h, --help      this help\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "reserve", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[] = { "preallocation" };
	static const char *const vals[] = { "full" };
	struct td_create_opts co = { 0 };
	unsigned long long mb;
	const char *file;
	char *end;
	int c, rc;

	td_log_open("qcow-create", true, LOG_WARNING);
	while ((c = getopt_long(argc, argv, "hr", lopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'r':
			co.nopts = 1;
			co.keys = keys;
			co.vals = vals;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (argc - optind != 2 && argc - optind != 3) {
		usage(stderr);
		return 1;
	}
	errno = 0;
	mb = strtoull(argv[optind], &end, 10);
	if (errno || *end || end == argv[optind] || mb > (UINT64_MAX >> 20)) {
		fprintf(stderr, "qcow-create: invalid size '%s' (megabytes, a whole number)\n",
			argv[optind]);
		return 1;
	}
	file = argv[optind + 1];
	if (argc - optind == 3)
		co.backing = argv[optind + 2];
	/* a copy-on-write image is as large as what it covers */
	co.size = co.backing ? 0 : (uint64_t)mb << 20;
	if (!co.backing && !co.size) {
		fprintf(stderr, "qcow-create: the size must be at least 1 MB\n");
		return 1;
	}
	rc = tool_create(file, "qcow", &co);
	if (rc) {
		td_err("%s: cannot create the qcow image: %s", file,
		       strerror(-rc));
		return 1;
	}
	return 0;
}

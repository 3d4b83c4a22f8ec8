// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow-create: the original blktap tool, same arguments. A standalone
 * sparse qcow image of SIZE megabytes, or a copy-on-write qcow image over
 * BACKING_FILENAME. -r reserves the image's whole space up front, as the
 * original's non-sparse mode did: here as blocks allocated past the end of
 * the file (FALLOC_FL_KEEP_SIZE), which the qcow driver fills as it
 * appends clusters, so the image cannot run out of space later.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* data, plus an 8-byte L2 entry per 4 KiB cluster, plus header and L1 */
static int qcow_reserve(const char *file)
{
	struct td_syncio *s = tool_open(file, "qcow", TD_OPEN_RDONLY);
	uint64_t size, len;
	int fd, err = 0;

	if (!s)
		return -errno;
	size = td_syncio_size(s);
	td_syncio_close(s);
	len = size + size / 512 + (1u << 20);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)len) < 0) {
		err = -errno;
		td_err("%s: cannot reserve %llu bytes: %s", file,
		       (unsigned long long)len, strerror(-err));
	}
	if (fd >= 0)
		close(fd);
	return err;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "reserve", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct td_create_opts co = { 0 };
	unsigned long long mb;
	bool reserve = false;
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
			reserve = true;
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
	return reserve && qcow_reserve(file) ? 1 : 0;
}

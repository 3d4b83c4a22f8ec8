// SPDX-License-Identifier: GPL-2.0-only
/* tap-img snapshot -l: an image's internal snapshots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "img.h"
#include "log.h"

void img_snapshot_table(const struct td_snapshot *list, int n)
{
	char date[32], size[32], clock[32];
	struct tm tm;
	time_t t;
	uint64_t secs;
	int i;

	printf("%-10s%-17s%8s%20s%13s\n", "ID", "TAG", "VM SIZE", "DATE",
	       "VM CLOCK");
	for (i = 0; i < n; i++) {
		t = (time_t)list[i].date_sec;
		localtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		tool_human_size(list[i].vm_state_size, size, sizeof(size));
		secs = list[i].vm_clock_nsec / 1000000000ull;
		snprintf(clock, sizeof(clock), "%02llu:%02llu:%02llu.%03llu",
			 (unsigned long long)(secs / 3600),
			 (unsigned long long)(secs / 60 % 60),
			 (unsigned long long)(secs % 60),
			 (unsigned long long)(list[i].vm_clock_nsec /
					      1000000 % 1000));
		printf("%-9s %-16s %7s %19s %12s\n", list[i].id, list[i].name,
		       size, date, clock);
	}
}

int img_snapshot(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct td_snapshot *list = NULL;
	const char *fmt = NULL;
	struct td_syncio *s;
	struct td_image *img;
	bool listing = false;
	int c, n = 0, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hlf:", lopts, &rc)) != -1) {
		switch (c) {
		case 'l':
			listing = true;
			break;
		case 'f':
			fmt = optarg;
			break;
		default:
			return rc;
		}
	}
	if (!listing)
		return img_usage_error(cmd, "only listing (-l) is supported");
	if (argc - optind != 1)
		return img_usage_error(cmd, "expected one FILE");
	s = tool_open(argv[optind], fmt, TD_OPEN_RDONLY | TD_OPEN_NO_BACKING);
	if (!s) {
		td_err("%s: cannot open: %s", argv[optind], strerror(errno));
		return 1;
	}
	img = td_syncio_image(s);
	/* a format without internal snapshots simply has none */
	if (img->drv->snapshot_list) {
		rc = img->drv->snapshot_list(img, &list, &n);
		if (rc) {
			td_err("%s: cannot read the snapshot table: %s",
			       argv[optind], strerror(-rc));
			rc = 1;
		} else if (n > 0) {
			printf("Snapshot list:\n");
			img_snapshot_table(list, n);
		}
	}
	free(list);
	td_syncio_close(s);
	return rc;
}

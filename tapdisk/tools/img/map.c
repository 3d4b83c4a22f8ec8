// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img map: the image's extents as block_status reports them through
 * the whole chain, merged like qemu-img map --output=json (without host
 * offsets, which are the drivers' business).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "img.h"
#include "log.h"

#define MAP_QUERY_MAX (1ull << 30)

struct map_ext {
	uint64_t start, length;
	int depth;
	bool present, zero, data;
};

static void map_print(const struct map_ext *e, bool json, bool first)
{
	if (json) {
		printf("%s{ \"start\": %llu, \"length\": %llu, \"depth\": %d, "
		       "\"present\": %s, \"zero\": %s, \"data\": %s}",
		       first ? "[" : ",\n", (unsigned long long)e->start,
		       (unsigned long long)e->length, e->depth,
		       e->present ? "true" : "false",
		       e->zero ? "true" : "false", e->data ? "true" : "false");
		return;
	}
	if (first)
		printf("%-18s %-18s %-6s %-5s %s\n", "Offset", "Length",
		       "Depth", "Zero", "Data");
	printf("%#-18llx %#-18llx %-6d %-5s %s\n",
	       (unsigned long long)e->start, (unsigned long long)e->length,
	       e->depth, e->zero ? "yes" : "no", e->data ? "yes" : "no");
}

int img_map(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	struct map_ext cur = { 0 }, e;
	const char *fmt = NULL;
	struct td_syncio *s;
	struct td_image *img;
	struct td_extent ext;
	uint64_t size, off;
	bool json = false, first = true;
	int c, bottom = 0, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:", lopts, &rc)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'O':
			if (img_parse_output(cmd, optarg, &json))
				return 1;
			break;
		default:
			return rc;
		}
	}
	if (argc - optind != 1)
		return img_usage_error(cmd, "expected one FILE");
	s = tool_open(argv[optind], fmt, TD_OPEN_RDONLY);
	if (!s) {
		td_err("%s: cannot open: %s", argv[optind], strerror(errno));
		return 1;
	}
	/* a range no layer holds is reported at the bottom, as qemu-img does */
	for (img = td_syncio_image(s); img->parent; img = img->parent)
		bottom++;
	size = td_syncio_size(s);
	for (off = 0; off < size; off += ext.len) {
		rc = td_syncio_block_status(s, off,
					    size - off < MAP_QUERY_MAX ?
						    size - off :
						    MAP_QUERY_MAX,
					    &ext);
		if (rc) {
			td_err("%s: block status at %llu: %s", argv[optind],
			       (unsigned long long)off, strerror(-rc));
			rc = 1;
			goto out;
		}
		e.start = off;
		e.length = ext.len;
		e.present = ext.depth >= 0;
		e.depth = e.present ? ext.depth : bottom;
		e.zero = ext.flags & TD_BS_ZERO;
		/* qemu-img calls a range that reads as zero no data */
		e.data = !(ext.flags & (TD_BS_HOLE | TD_BS_ZERO));
		if (cur.length && cur.depth == e.depth &&
		    cur.present == e.present && cur.zero == e.zero &&
		    cur.data == e.data) {
			cur.length += e.length;
			continue;
		}
		if (cur.length) {
			map_print(&cur, json, first);
			first = false;
		}
		cur = e;
	}
	if (cur.length) {
		map_print(&cur, json, first);
		first = false;
	}
	if (json)
		printf(first ? "[]\n" : "]\n");
out:
	td_syncio_close(s);
	return rc;
}

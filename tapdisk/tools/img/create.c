// SPDX-License-Identifier: GPL-2.0-only
/* tap-img create: a new image, through its driver's create op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"
#include "log.h"

static void create_print(const char *file, const char *fmt,
			 const struct td_create_opts *co)
{
	int i;

	printf("Formatting '%s', fmt=%s", file, fmt);
	for (i = 0; i < co->nopts; i++)
		printf(" %s=%s", co->keys[i], co->vals[i]);
	if (co->size || !co->backing)
		printf(" size=%llu", (unsigned long long)co->size);
	if (co->backing)
		printf(" backing_file=%s", co->backing);
	if (co->backing_fmt)
		printf(" backing_fmt=%s", tool_fmt_name(co->backing_fmt));
	printf("\n");
}

int img_create(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *fmt = NULL, *backing = NULL, *bfmt = NULL, *osize = NULL;
	char *obacking = NULL, *obfmt = NULL;
	struct tool_opts o = { 0 };
	struct td_create_opts co = { 0 };
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:b:F:o:", lopts, &rc)) !=
	       -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			backing = optarg;
			break;
		case 'F':
			bfmt = optarg;
			break;
		case 'o':
			if (img_add_opts(cmd, &o, optarg)) {
				rc = 1;
				goto out;
			}
			break;
		default:
			goto out;
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		rc = img_usage_error(cmd, "expected FILE and SIZE");
		goto out;
	}
	if (!fmt) {
		rc = img_usage_error(cmd, "-f FMT is required");
		goto out;
	}
	/* qemu-img's spellings of the same things as -o keys */
	osize = tool_opts_take(&o, "size");
	obacking = tool_opts_take(&o, "backing_file");
	obfmt = tool_opts_take(&o, "backing_fmt");
	if (!backing)
		backing = obacking;
	if (!bfmt)
		bfmt = obfmt;
	if (argc - optind == 2 && img_parse_size_arg(cmd, "size",
						     argv[optind + 1],
						     &co.size, &rc))
		goto out;
	if (argc - optind == 1 && osize &&
	    img_parse_size_arg(cmd, "size", osize, &co.size, &rc))
		goto out;
	if (argc - optind == 1 && !osize && !backing) {
		rc = img_usage_error(cmd, "SIZE is required without a backing file");
		goto out;
	}
	co.backing = backing;
	co.backing_fmt = bfmt ? tool_fmt_type(bfmt) : NULL;
	co.nopts = o.n;
	co.keys = (const char *const *)o.keys;
	co.vals = (const char *const *)o.vals;
	create_print(argv[optind], fmt, &co);
	rc = tool_create(argv[optind], fmt, &co);
	if (rc) {
		td_err("%s: cannot create the %s image: %s", argv[optind], fmt,
		       strerror(-rc));
		rc = 1;
	}
out:
	free(osize);
	free(obacking);
	free(obfmt);
	tool_opts_free(&o);
	return rc;
}

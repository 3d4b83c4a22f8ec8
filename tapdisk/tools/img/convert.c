// SPDX-License-Identifier: GPL-2.0-only
/* tap-img convert: any image into a new one, sparse, many requests in flight. */
#include <stdlib.h>

#include "convert.h"
#include "copy.h"
#include "img.h"

int img_convert(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_convert_opts co = {
		.min_sparse = TOOL_DEFAULT_MIN_SPARSE,
		.src_cache = TOOL_CACHE_WRITEBACK,
		.dst_cache = TOOL_CACHE_UNSAFE,
	};
	struct tool_opts o = { 0 };
	uint64_t n;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:O:cpS:o:m:t:T:", lopts,
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
	rc = tool_convert(&co) ? 1 : 0;
out:
	tool_opts_free(&o);
	return rc;
}

// SPDX-License-Identifier: GPL-2.0-only
/* tap-img resize: a new virtual size, growing or (with --shrink) not. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "img.h"
#include "log.h"

int img_resize(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "shrink", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *file, *arg;
	uint64_t cur, delta, size;
	struct td_syncio *s;
	struct td_image *img;
	bool shrink = false;
	int c, sign = 0, rc = 0;

	/* "-1G" would look like an option: stop options at the first FILE */
	while ((c = img_getopt(cmd, argc, argv, "+hf:", lopts, &rc)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'S':
			shrink = true;
			break;
		default:
			return rc;
		}
	}
	if (argc - optind == 3 && !strcmp(argv[optind + 1], "--shrink")) {
		shrink = true;
		argv[optind + 1] = argv[optind];
		optind++;
	}
	if (argc - optind != 2)
		return img_usage_error(cmd, "expected FILE and SIZE");
	file = argv[optind];
	arg = argv[optind + 1];
	if (*arg == '+' || *arg == '-')
		sign = *arg++ == '+' ? 1 : -1;
	if (img_parse_size_arg(cmd, "size", arg, &delta, &rc))
		return rc;
	s = tool_open(file, fmt, TD_OPEN_NO_BACKING);
	if (!s) {
		td_err("%s: cannot open: %s", file, strerror(errno));
		return 1;
	}
	img = td_syncio_image(s);
	cur = img->info.size;
	if (sign < 0 && delta > cur) {
		td_err("%s: cannot shrink by %llu bytes: the image has %llu",
		       file, (unsigned long long)delta,
		       (unsigned long long)cur);
		rc = 1;
		goto out;
	}
	size = sign > 0 ? cur + delta : sign < 0 ? cur - delta : delta;
	if (size < cur && !shrink) {
		td_err("%s: use the --shrink option to make the image smaller (data past %llu bytes is lost)",
		       file, (unsigned long long)size);
		rc = 1;
		goto out;
	}
	if (!img->drv->resize) {
		td_err("%s: %s images cannot be resized", file,
		       tool_fmt_name(img->drv->name));
		rc = 1;
		goto out;
	}
	rc = img->drv->resize(img, size);
	if (rc) {
		td_err("%s: cannot resize to %llu bytes: %s", file,
		       (unsigned long long)size, strerror(-rc));
		rc = 1;
		goto out;
	}
	printf("Image resized.\n");
out:
	td_syncio_close(s);
	return rc;
}

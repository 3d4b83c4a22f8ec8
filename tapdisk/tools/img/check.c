// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img check: the driver's consistency check, reported and exiting as
 * qemu-img check does: 0 clean, 2 corruptions, 3 leaks only, 1 when the
 * check could not be done.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "img.h"
#include "log.h"

static void check_print_human(const struct td_check *r)
{
	if (r->corruptions_fixed || r->leaks_fixed)
		printf("The following inconsistencies were found and repaired:\n\n"
		       "    %llu leaked clusters\n    %llu corruptions\n\n"
		       "Double checking the fixed image now...\n",
		       (unsigned long long)r->leaks_fixed,
		       (unsigned long long)r->corruptions_fixed);
	if (r->corruptions)
		printf("\n%llu errors were found on the image.\n"
		       "Data may be corrupted, or further writes to the image may corrupt it.\n",
		       (unsigned long long)r->corruptions);
	if (r->leaks)
		printf("\n%llu leaked clusters were found on the image.\n"
		       "This means waste of disk space, but no harm to data.\n",
		       (unsigned long long)r->leaks);
	if (!r->corruptions && !r->leaks)
		printf("No errors were found on the image.\n");
	if (r->total_clusters)
		printf("%llu/%llu = %.2f%% allocated\n",
		       (unsigned long long)r->allocated_clusters,
		       (unsigned long long)r->total_clusters,
		       100.0 * (double)r->allocated_clusters /
			       (double)r->total_clusters);
	if (r->image_end_offset)
		printf("Image end offset: %llu\n",
		       (unsigned long long)r->image_end_offset);
}

static void check_print_json(const char *file, const char *fmt,
			     const struct td_check *r)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "filename", json_object_new_string(file));
	json_object_object_add(o, "format", json_object_new_string(fmt));
	json_object_object_add(o, "check-errors", json_object_new_int(0));
	json_object_object_add(o, "corruptions",
			       json_object_new_int64((int64_t)r->corruptions));
	json_object_object_add(o, "leaks",
			       json_object_new_int64((int64_t)r->leaks));
	json_object_object_add(o, "corruptions-fixed",
			       json_object_new_int64((int64_t)r->corruptions_fixed));
	json_object_object_add(o, "leaks-fixed",
			       json_object_new_int64((int64_t)r->leaks_fixed));
	json_object_object_add(o, "allocated-clusters",
			       json_object_new_int64((int64_t)r->allocated_clusters));
	json_object_object_add(o, "total-clusters",
			       json_object_new_int64((int64_t)r->total_clusters));
	json_object_object_add(o, "image-end-offset",
			       json_object_new_int64((int64_t)r->image_end_offset));
	printf("%s\n", json_object_to_json_string_ext(
			       o, JSON_C_TO_STRING_PRETTY |
					  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int img_check(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	struct td_check r = { 0 }, again = { 0 };
	const char *fmt = NULL, *file;
	unsigned fix = 0;
	struct td_syncio *s;
	struct td_image *img;
	bool json = false;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:r:", lopts, &rc)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = TD_CHECK_FIX_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = TD_CHECK_FIX_LEAKS | TD_CHECK_FIX_ERRORS;
			else
				return img_usage_error(cmd, "-r takes leaks or all, not '%s'",
						       optarg);
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
	file = argv[optind];
	s = tool_open(file, fmt,
		      TD_OPEN_NO_BACKING | (fix ? 0 : TD_OPEN_RDONLY));
	if (!s) {
		td_err("%s: cannot open: %s", file, strerror(errno));
		return 1;
	}
	img = td_syncio_image(s);
	if (!img->drv->check) {
		td_err("%s: %s images have no metadata to check", file,
		       tool_fmt_name(img->drv->name));
		rc = 1;
		goto out;
	}
	rc = img->drv->check(img, &r, fix);
	/* after repairs, what counts is what a fresh check still finds */
	if (!rc && (r.leaks_fixed || r.corruptions_fixed)) {
		rc = img->drv->check(img, &again, 0);
		again.leaks_fixed = r.leaks_fixed;
		again.corruptions_fixed = r.corruptions_fixed;
		r = again;
	}
	if (rc) {
		td_err("%s: the check could not be completed: %s", file,
		       strerror(-rc));
		rc = 1;
		goto out;
	}
	if (json)
		check_print_json(file, tool_fmt_name(img->drv->name), &r);
	else
		check_print_human(&r);
	rc = r.corruptions ? 2 : r.leaks ? 3 : 0;
out:
	td_syncio_close(s);
	return rc;
}

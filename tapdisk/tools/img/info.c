// SPDX-License-Identifier: GPL-2.0-only
/* tap-img info: what qemu-img info shows, for one image or a chain. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "img.h"
#include "log.h"

/* One layer's facts as qemu-img info --output=json names them. */
static struct json_object *info_layer(struct td_image *img)
{
	struct json_object *o = json_object_new_object(), *fs, *d;
	const char *fmt = tool_fmt_name(img->drv->name);
	uint64_t cluster = tool_cluster_size(img);
	struct td_snapshot *snaps = NULL;
	struct stat st;
	bool file = !stat(img->path, &st);
	int i, n = 0;

	json_object_object_add(o, "virtual-size",
			       json_object_new_int64((int64_t)img->info.size));
	/* a pool or ram disk is no file: its name says which it is */
	json_object_object_add(o, "filename",
			       json_object_new_string(file ? img->path :
							     img->name));
	json_object_object_add(o, "format", json_object_new_string(fmt));
	if (file)
		json_object_object_add(o, "actual-size",
				       json_object_new_int64(st.st_blocks * 512));
	if (cluster)
		json_object_object_add(o, "cluster-size",
				       json_object_new_int64((int64_t)cluster));
	if (img->info.parent) {
		struct td_name pn;

		if (!td_name_parse(img->info.parent, &pn)) {
			json_object_object_add(o, "backing-filename",
					       json_object_new_string(pn.path));
			if (pn.type[0])
				json_object_object_add(
					o, "backing-filename-format",
					json_object_new_string(
						tool_fmt_name(pn.type)));
			td_name_free(&pn);
		}
		if (img->parent)
			json_object_object_add(
				o, "full-backing-filename",
				json_object_new_string(img->parent->path));
	}
	json_object_object_add(o, "dirty-flag", json_object_new_boolean(0));
	if (img->drv->snapshot_list &&
	    !img->drv->snapshot_list(img, &snaps, &n) && n > 0) {
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *s = json_object_new_object();

			json_object_object_add(s, "id", json_object_new_string(snaps[i].id));
			json_object_object_add(s, "name", json_object_new_string(snaps[i].name));
			json_object_object_add(s, "vm-state-size",
					       json_object_new_int64((int64_t)snaps[i].vm_state_size));
			json_object_object_add(s, "date-sec",
					       json_object_new_int64((int64_t)snaps[i].date_sec));
			json_object_object_add(s, "vm-clock-nsec",
					       json_object_new_int64((int64_t)snaps[i].vm_clock_nsec));
			json_object_array_add(arr, s);
		}
		json_object_object_add(o, "snapshots", arr);
	}
	free(snaps);
	d = tool_describe(img);
	if (d) {
		fs = json_object_new_object();
		json_object_object_add(fs, "type", json_object_new_string(fmt));
		json_object_object_add(fs, "data", d);
		json_object_object_add(o, "format-specific", fs);
	}
	return o;
}

static void info_print_value(struct json_object *v, int indent);

static void info_print_object(struct json_object *o, int indent)
{
	json_object_object_foreach(o, key, val)
	{
		if (json_object_is_type(val, json_type_object) ||
		    json_object_is_type(val, json_type_array)) {
			printf("%*s%s:\n", indent, "", key);
			info_print_value(val, indent + 4);
		} else {
			printf("%*s%s: %s\n", indent, "", key,
			       json_object_get_string(val));
		}
	}
}

static void info_print_value(struct json_object *v, int indent)
{
	size_t i;

	if (json_object_is_type(v, json_type_object)) {
		info_print_object(v, indent);
		return;
	}
	if (!json_object_is_type(v, json_type_array)) {
		printf("%*s%s\n", indent, "", json_object_get_string(v));
		return;
	}
	for (i = 0; i < json_object_array_length(v); i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		printf("%*s[%zu]:\n", indent, "", i);
		info_print_value(e, indent + 4);
	}
}

static int64_t info_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) :
						       -1;
}

static const char *info_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) :
						       NULL;
}

static void info_print_human(struct json_object *o, struct td_image *img)
{
	char h[32];
	struct json_object *fs, *data;
	struct td_snapshot *snaps = NULL;
	int n = 0;

	printf("image: %s\n", info_str(o, "filename"));
	printf("file format: %s\n", info_str(o, "format"));
	tool_human_size((uint64_t)info_int(o, "virtual-size"), h, sizeof(h));
	printf("virtual size: %s (%lld bytes)\n", h,
	       (long long)info_int(o, "virtual-size"));
	if (info_int(o, "actual-size") >= 0) {
		tool_human_size((uint64_t)info_int(o, "actual-size"), h,
				sizeof(h));
		printf("disk size: %s\n", h);
	}
	if (info_int(o, "cluster-size") > 0)
		printf("cluster_size: %lld\n",
		       (long long)info_int(o, "cluster-size"));
	if (info_str(o, "backing-filename")) {
		printf("backing file: %s", info_str(o, "backing-filename"));
		if (info_str(o, "full-backing-filename") &&
		    strcmp(info_str(o, "full-backing-filename"),
			   info_str(o, "backing-filename")))
			printf(" (actual path: %s)",
			       info_str(o, "full-backing-filename"));
		printf("\n");
		if (info_str(o, "backing-filename-format"))
			printf("backing file format: %s\n",
			       info_str(o, "backing-filename-format"));
	}
	if (img->drv->snapshot_list &&
	    !img->drv->snapshot_list(img, &snaps, &n) && n > 0) {
		printf("Snapshot list:\n");
		img_snapshot_table(snaps, n);
	}
	free(snaps);
	if (json_object_object_get_ex(o, "format-specific", &fs) &&
	    json_object_object_get_ex(fs, "data", &data)) {
		printf("Format specific information:\n");
		info_print_object(data, 4);
	}
}

int img_info(const struct img_cmd *cmd, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "backing-chain", no_argument, NULL, 'B' },
		{ "output", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_object *all = NULL, *o;
	bool json = false, chain = false;
	struct td_syncio *s;
	struct td_image *img;
	const char *fmt = NULL;
	int c, rc = 0;

	while ((c = img_getopt(cmd, argc, argv, "hf:", lopts, &rc)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'B':
			chain = true;
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
	/* without --backing-chain, a missing backing file is no error */
	s = tool_open(argv[optind], fmt,
		      TD_OPEN_RDONLY | (chain ? 0 : TD_OPEN_NO_BACKING));
	if (!s) {
		td_err("%s: cannot open: %s", argv[optind], strerror(errno));
		return 1;
	}
	if (chain)
		all = json_object_new_array();
	for (img = td_syncio_image(s); img; img = chain ? img->parent : NULL) {
		o = info_layer(img);
		if (!json) {
			if (img->depth)
				printf("\n");
			info_print_human(o, img);
		}
		if (all)
			json_object_array_add(all, o);
		else if (json)
			all = o;
		else
			json_object_put(o);
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(
				       all, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	td_syncio_close(s);
	return 0;
}

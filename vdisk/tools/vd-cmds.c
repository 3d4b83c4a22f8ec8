// SPDX-License-Identifier: GPL-2.0-only
/*
 * The virtual-disk commands of Xen 1.2 (vd_format.py and friends), one
 * program that acts by the name it is run as. Exit status: 0 done, 1 the
 * pool refused or failed (the reason on stderr), 2 a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "vdisk.h"

#define EXIT_USAGE 2
/* what a command returns for a bad argument (library errors are -errno) */
#define VD_EUSAGE 1

struct vd_cmd {
	const char *name;
	const char *args;
	const char *help;
	int nargs_min, nargs_max;
	int (*run)(struct vdisk_db *db, char **argv);
};

static struct {
	const char *db;
	bool json, all, progress, no_scrub;
	uint64_t extent_size;
} opt;

static int vd_parse_id(const char *s, int64_t *id)
{
	char *end;

	errno = 0;
	*id = strtoll(s, &end, 10);
	if (errno || end == s || *end || *id <= 0) {
		td_err("%s: not a virtual disk id", s);
		return VD_EUSAGE;
	}
	return 0;
}

static int vd_parse_num(const char *s, const char *what, int64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	if (errno || end == s || *end || *v < 0) {
		td_err("%s: not a valid %s", s, what);
		return VD_EUSAGE;
	}
	return 0;
}

static int vd_size_mb(const char *s, uint64_t *bytes)
{
	int64_t mb;

	if (vd_parse_num(s, "size in MB", &mb))
		return VD_EUSAGE;
	if (!mb || (uint64_t)mb > (UINT64_MAX >> 21)) {
		td_err("%s: a size in MB must be at least 1", s);
		return VD_EUSAGE;
	}
	*bytes = (uint64_t)mb << 20;
	return 0;
}

static int vd_fail(struct vdisk_db *db, int err)
{
	if (err)
		td_err("%s", vdisk_errmsg(db));
	return err;
}

static void vd_progress(uint64_t done, uint64_t total, void *arg)
{
	fprintf(stderr, "\rzeroing: %" PRIu64 "/%" PRIu64 " MiB (%u%%)",
		done >> 20, total >> 20,
		total ? (unsigned)(done * 100 / total) : 100);
	if (done >= total)
		fputc('\n', stderr);
}

static void vd_create_opts(struct vdisk_create_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->no_scrub = opt.no_scrub;
	if (opt.progress)
		o->progress = vd_progress;
}

static int vd_format(struct vdisk_db *db, char **argv)
{
	return vd_fail(db, vdisk_format(db, argv[0], opt.extent_size));
}

static int vd_create(struct vdisk_db *db, char **argv)
{
	struct vdisk_create_opts o;
	int64_t expiry = 0, id;
	uint64_t size;
	int err;

	if (vd_size_mb(argv[0], &size) ||
	    (argv[1] && vd_parse_num(argv[1], "expiry in seconds", &expiry)))
		return VD_EUSAGE;
	vd_create_opts(&o);
	err = vdisk_create(db, size, expiry, &o, &id);
	if (!err)
		printf("%" PRId64 "\n", id);
	return vd_fail(db, err);
}

static int vd_refresh(struct vdisk_db *db, char **argv)
{
	int64_t id, expiry;

	if (vd_parse_id(argv[0], &id) ||
	    vd_parse_num(argv[1], "expiry in seconds", &expiry))
		return VD_EUSAGE;
	return vd_fail(db, vdisk_refresh(db, id, expiry));
}

static int vd_delete(struct vdisk_db *db, char **argv)
{
	int64_t id;

	if (vd_parse_id(argv[0], &id))
		return VD_EUSAGE;
	return vd_fail(db, vdisk_delete(db, id));
}

static int vd_undelete(struct vdisk_db *db, char **argv)
{
	int64_t id;

	if (vd_parse_id(argv[0], &id))
		return VD_EUSAGE;
	return vd_fail(db, vdisk_undelete(db, id));
}

static int vd_enlarge(struct vdisk_db *db, char **argv)
{
	struct vdisk_create_opts o;
	uint64_t size;
	int64_t id;

	if (vd_parse_id(argv[0], &id) || vd_size_mb(argv[1], &size))
		return VD_EUSAGE;
	vd_create_opts(&o);
	return vd_fail(db, vdisk_enlarge(db, id, size, &o));
}

static const char *vd_state(const struct vdisk_info *v)
{
	return !v->expired ? "live" : v->reused ? "reused" : "expired";
}

static struct json_object *vd_info_json(const struct vdisk_info *v)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64(v->id));
	json_object_object_add(o, "size",
			       json_object_new_int64((int64_t)v->size));
	json_object_object_add(o, "size_mb",
			       json_object_new_int64((int64_t)(v->size >> 20)));
	json_object_object_add(o, "created", json_object_new_int64(v->created));
	json_object_object_add(o, "expires", json_object_new_int64(v->expires));
	json_object_object_add(o, "state", json_object_new_string(vd_state(v)));
	json_object_object_add(o, "extents", json_object_new_int(v->nextents));
	return o;
}

static void vd_print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(
			       o, JSON_C_TO_STRING_PRETTY |
					  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void vd_fmt_expiry(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!t)
		snprintf(buf, len, "never");
	else if (!localtime_r(&tt, &tm) ||
		 !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "%" PRId64, t);
}

static int vd_list(struct vdisk_db *db, char **argv)
{
	struct vdisk_info *v;
	size_t n, i;
	int err;

	err = vdisk_list(db, opt.all ? VDISK_LIST_ALL : 0, &v, &n);
	if (err)
		return vd_fail(db, err);
	if (opt.json) {
		struct json_object *a = json_object_new_array();

		for (i = 0; i < n; i++)
			json_object_array_add(a, vd_info_json(&v[i]));
		vd_print_json(a);
	} else {
		printf("%-8s %10s %8s  %-8s %s\n", "ID", "SIZE_MB", "EXTENTS",
		       "STATE", "EXPIRES");
		for (i = 0; i < n; i++) {
			char exp[32];

			vd_fmt_expiry(v[i].expires, exp, sizeof(exp));
			printf("%-8" PRId64 " %10" PRIu64 " %8u  %-8s %s\n",
			       v[i].id, v[i].size >> 20, v[i].nextents,
			       vd_state(&v[i]), exp);
		}
	}
	free(v);
	return 0;
}

static int vd_info(struct vdisk_db *db, char **argv)
{
	struct vdisk_run *runs;
	struct vdisk_info info;
	size_t n, i;
	int64_t id;
	int err;

	if (vd_parse_id(argv[0], &id))
		return VD_EUSAGE;
	err = vdisk_info(db, id, &info);
	if (!err)
		err = vdisk_lookup(db, id, VDISK_LOOKUP_EXPIRED, &runs, &n);
	if (err)
		return vd_fail(db, err);
	if (opt.json) {
		struct json_object *o = vd_info_json(&info);
		struct json_object *a = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *r = json_object_new_object();

			json_object_object_add(
				r, "device",
				json_object_new_string(runs[i].device));
			json_object_object_add(
				r, "start_sector",
				json_object_new_int64((int64_t)runs[i].start));
			json_object_object_add(
				r, "nr_sectors",
				json_object_new_int64(
					(int64_t)runs[i].sectors));
			json_object_array_add(a, r);
		}
		json_object_object_add(o, "map", a);
		vd_print_json(o);
	} else {
		char exp[32];

		vd_fmt_expiry(info.expires, exp, sizeof(exp));
		printf("VD %" PRId64 ": %" PRIu64
		       " MiB, %u extents, %s, expires %s\n",
		       id, info.size >> 20, info.nextents, vd_state(&info),
		       exp);
		printf("%-24s %14s %14s\n", "DEVICE", "START_SECTOR",
		       "SECTORS");
		for (i = 0; i < n; i++)
			printf("%-24s %14" PRIu64 " %14" PRIu64 "\n",
			       runs[i].device, runs[i].start, runs[i].sectors);
	}
	vdisk_runs_free(runs, n);
	return 0;
}

static int vd_freespace(struct vdisk_db *db, char **argv)
{
	struct vdisk_space s;
	int err = vdisk_freespace(db, &s);

	if (err)
		return vd_fail(db, err);
	if (opt.json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(
			o, "free_mb",
			json_object_new_int64((int64_t)(s.free_bytes >> 20)));
		json_object_object_add(
			o, "free_bytes",
			json_object_new_int64((int64_t)s.free_bytes));
		json_object_object_add(
			o, "total_bytes",
			json_object_new_int64((int64_t)s.total_bytes));
		json_object_object_add(
			o, "free_extents",
			json_object_new_int64((int64_t)s.free_extents));
		json_object_object_add(
			o, "dirty_extents",
			json_object_new_int64((int64_t)s.dirty_extents));
		json_object_object_add(o, "devices",
				       json_object_new_int(s.devices));
		vd_print_json(o);
	} else {
		/* the free MB alone, as XenoUtil's vd_freespace() returned */
		printf("%" PRIu64 "\n", s.free_bytes >> 20);
	}
	return 0;
}

static const struct vd_cmd vd_cmds[] = {
	{ "vd_format", "DEVICE [--extent-size SIZE]",
	  "Add a partition (or a regular file) to the free pool, split into\n"
	  "extents (default 64M; SIZE takes K/M/G suffixes, whole MiB).\n"
	  "Nothing is written to DEVICE.",
	  1, 1, vd_format },
	{ "vd_create", "SIZE_MB [EXPIRY_SECONDS] [-p] [--no-scrub]",
	  "Create a virtual disk of SIZE_MB megabytes from the free pool and\n"
	  "print its id. EXPIRY_SECONDS from now (default 0: never). Reused\n"
	  "space is zeroed first (-p shows progress) unless --no-scrub.",
	  1, 2, vd_create },
	{ "vd_refresh", "ID EXPIRY_SECONDS",
	  "Set a disk's expiry to EXPIRY_SECONDS from now (0: never).", 2, 2,
	  vd_refresh },
	{ "vd_delete", "ID",
	  "Delete a disk: it expires now, and can be undeleted until its\n"
	  "space is reused.",
	  1, 1, vd_delete },
	{ "vd_undelete", "ID",
	  "Bring back an expired disk whose extents were not reused; it then\n"
	  "never expires.",
	  1, 1, vd_undelete },
	{ "vd_list", "[--json] [--all]",
	  "List the virtual disks (--all: expired ones too).", 0, 0, vd_list },
	{ "vd_info", "ID [--json]",
	  "Show a disk and its extent map: device, start sector, sectors.", 1,
	  1, vd_info },
	{ "vd_freespace", "[--json]",
	  "Print the free space of the pool, in MB.", 0, 0, vd_freespace },
	{ "vd_enlarge", "ID SIZE_MB [-p] [--no-scrub]",
	  "Grow a disk to SIZE_MB megabytes; new space is zeroed as by vd_create.",
	  2, 2, vd_enlarge },
};

static void vd_usage(const struct vd_cmd *c, FILE *f)
{
	fprintf(f, "Usage: %s [--db PATH] %s\n%s\n\n", c->name, c->args,
		c->help);
	fprintf(f,
		"  --db PATH   the pool database (default $VDISK_DB, else %s)\n"
		"  -h, --help  this help\n\n"
		"Exit status: 0 done, 1 error, 2 usage error. See %s(8).\n",
		VDISK_DEFAULT_DB, c->name);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "db", required_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'a' },
		{ "progress", no_argument, NULL, 'p' },
		{ "no-scrub", no_argument, NULL, 'S' },
		{ "extent-size", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct vd_cmd *c = NULL;
	const char *name = basename(argv[0]);
	struct vdisk_db *db;
	size_t i;
	int ch, nargs, err;

	for (i = 0; i < sizeof(vd_cmds) / sizeof(vd_cmds[0]); i++)
		if (!strcmp(vd_cmds[i].name, name))
			c = &vd_cmds[i];
	td_log_open(name, true, LOG_INFO);
	if (!c) {
		td_err("run as one of vd_format, vd_create, vd_refresh, vd_delete, vd_undelete, vd_list, vd_info, vd_freespace, vd_enlarge");
		return EXIT_USAGE;
	}
	while ((ch = getopt_long(argc, argv, "hpaj", lopts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			opt.db = optarg;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'a':
			opt.all = true;
			break;
		case 'p':
			opt.progress = true;
			break;
		case 'S':
			opt.no_scrub = true;
			break;
		case 'e':
			if (vdisk_parse_size(optarg, &opt.extent_size) ||
			    !opt.extent_size) {
				td_err("--extent-size %s: expected a size such as 64M",
				       optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			vd_usage(c, stdout);
			return 0;
		default:
			vd_usage(c, stderr);
			return EXIT_USAGE;
		}
	}
	nargs = argc - optind;
	if (nargs < c->nargs_min || nargs > c->nargs_max) {
		vd_usage(c, stderr);
		return EXIT_USAGE;
	}
	db = vdisk_new();
	if (!db) {
		td_err("out of memory");
		return 1;
	}
	err = vdisk_open(db, opt.db, 0);
	if (err)
		td_err("%s", vdisk_errmsg(db));
	else
		err = c->run(db, argv + optind);
	vdisk_free(db);
	if (err == VD_EUSAGE)
		return EXIT_USAGE;
	return err ? 1 : 0;
}

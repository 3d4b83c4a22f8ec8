// SPDX-License-Identifier: GPL-2.0-only
/*
 * The disk table and its state files. Every disk has RUNDIR/disk-N.json,
 * rewritten (temporary file + rename, so a reader never sees half of one)
 * whenever something a restarted daemon needs changes: which tapdisk
 * serves it, what it serves and how, and whether it is paused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blktapctrl.h"
#include "log.h"

static const char *const disk_state_names[] = {
	[DISK_RUNNING] = "running",	  [DISK_PAUSED] = "paused",
	[DISK_RESTARTING] = "restarting", [DISK_FAILED] = "failed",
	[DISK_EXITED] = "exited",	  [DISK_STARTING] = "starting",
};

const char *disk_state_name(enum disk_state s)
{
	return disk_state_names[s];
}

static int disk_state_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(disk_state_names) / sizeof(*disk_state_names);
	     i++)
		if (!strcmp(name, disk_state_names[i]))
			return i;
	return -EINVAL;
}

static struct disk *disk_alloc(struct ctl_daemon *d, int minor,
			       const char *image)
{
	struct disk *disk = calloc(1, sizeof(*disk));

	if (!disk)
		return NULL;
	disk->image = strdup(image);
	if (!disk->image) {
		free(disk);
		return NULL;
	}
	disk->d = d;
	disk->minor = minor;
	disk->pidfd = -1;
	disk->log_fd = -1;
	disk->ublk_want = -1;
	disk->ublk_id = -1;
	d->disks[minor] = disk;
	return disk;
}

/* The lowest free minor, as the kernel blktap driver handed them out. */
struct disk *disk_new(struct ctl_daemon *d, const char *image)
{
	int minor;

	for (minor = 0; minor < DISK_MAX_MINORS; minor++)
		if (!d->disks[minor])
			return disk_alloc(d, minor, image);
	errno = ENOSPC;
	return NULL;
}

void disk_free(struct disk *disk)
{
	int i;

	disk->d->disks[disk->minor] = NULL;
	for (i = 0; i < disk->n_nbd; i++)
		free(disk->nbd[i]);
	free(disk->fuse);
	free(disk->xen);
	free(disk->opened);
	free(disk->image);
	free(disk);
}

void disk_forget(struct disk *disk)
{
	char path[4096];

	disk_remove_state(disk);
	if (!disk_path(disk, "tapdisk-%d.log", path, sizeof(path)))
		unlink(path);
	disk_free(disk);
}

struct disk *disk_get(struct ctl_daemon *d, int minor)
{
	if (minor < 0 || minor >= DISK_MAX_MINORS)
		return NULL;
	return d->disks[minor];
}

int disk_add_export(struct disk *disk, const char *addr)
{
	if (disk->n_nbd == DISK_MAX_EXPORTS)
		return -E2BIG;
	disk->nbd[disk->n_nbd] = strdup(addr);
	if (!disk->nbd[disk->n_nbd])
		return -ENOMEM;
	disk->n_nbd++;
	return 0;
}

/* RUNDIR/<fmt with the minor>, e.g. "tapdisk-%d.sock". */
int disk_path(const struct disk *disk, const char *fmt, char *buf, size_t len)
{
	char name[64];
	int n;

	snprintf(name, sizeof(name), fmt, disk->minor);
	n = snprintf(buf, len, "%s/%s", disk->d->run_dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *disk_exports_str(const struct disk *disk, char *buf, size_t len)
{
	size_t off = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < disk->n_nbd && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%s", off ? "," : "",
				disk->nbd[i]);
	if (disk->fuse && off < len)
		off += snprintf(buf + off, len - off, "%sfuse:%s",
				off ? "," : "", disk->fuse);
	if (disk->ublk_id >= 0 && off < len)
		snprintf(buf + off, len - off, "%sublk:/dev/ublkb%d",
			 off ? "," : "", disk->ublk_id);
	return buf[0] ? buf : "-";
}

static void json_add_str(struct json_object *o, const char *key,
			 const char *val)
{
	if (val)
		json_object_object_add(o, key, json_object_new_string(val));
}

/* What list shows; also the state file, which holds a little more. */
struct json_object *disk_to_json(const struct disk *disk)
{
	struct json_object *o = json_object_new_object();
	struct json_object *exports = json_object_new_array();
	char ublk[32];
	int i;

	for (i = 0; i < disk->n_nbd; i++)
		json_object_array_add(exports,
				      json_object_new_string(disk->nbd[i]));
	json_object_object_add(o, "minor", json_object_new_int(disk->minor));
	json_object_object_add(o, "pid", json_object_new_int(disk->pid));
	json_object_object_add(
		o, "state",
		json_object_new_string(disk_state_name(disk->state)));
	json_add_str(o, "image", disk->image);
	json_object_object_add(o, "exports", exports);
	json_add_str(o, "fuse", disk->fuse);
	json_add_str(o, "xen", disk->xen);
	if (disk->ublk_id >= 0) {
		snprintf(ublk, sizeof(ublk), "/dev/ublkb%d", disk->ublk_id);
		json_add_str(o, "ublk", ublk);
	}
	json_object_object_add(o, "readonly",
			       json_object_new_boolean(disk->readonly));
	json_object_object_add(
		o, "restart",
		json_object_new_string(disk->restart ==
						       DISK_RESTART_ON_FAILURE ?
					       "on-failure" :
					       "no"));
	json_object_object_add(o, "restarts",
			       json_object_new_int(disk->restarts));
	json_object_object_add(o, "reason",
			       json_object_new_string(disk->reason));
	json_object_object_add(o, "started",
			       json_object_new_int64(disk->started));
	return o;
}

int disk_save(struct disk *disk)
{
	char path[4096], tmp[4096 + 8];
	struct json_object *o = disk_to_json(disk);
	const char *s;
	size_t len;
	int fd, rc = 0;

	json_add_str(o, "opened", disk->opened);
	json_object_object_add(o, "paused",
			       json_object_new_boolean(disk->paused));
	json_object_object_add(o, "pid_start",
			       json_object_new_uint64(disk->pid_start));
	json_object_object_add(o, "ublk_on",
			       json_object_new_boolean(disk->ublk));
	json_object_object_add(o, "ublk_want",
			       json_object_new_int(disk->ublk_want));
	json_object_object_add(o, "ublk_id",
			       json_object_new_int(disk->ublk_id));
	s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(s);
	if (disk_path(disk, "disk-%d.json", path, sizeof(path))) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (write(fd, s, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		rc = errno ? -errno : -EIO;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
out:
	if (rc)
		td_err("disk %d (%s): cannot write its state file: %s",
		       disk->minor, disk->image, strerror(-rc));
	json_object_put(o);
	return rc;
}

void disk_remove_state(struct disk *disk)
{
	char path[4096];

	if (!disk_path(disk, "disk-%d.json", path, sizeof(path)))
		unlink(path);
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t json_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ?
		       json_object_get_int64(v) :
		       0;
}

static int disk_from_json(struct ctl_daemon *d, struct json_object *o,
			  int minor)
{
	const char *image = json_str(o, "image"), *s;
	struct json_object *exports, *v;
	struct disk *disk;
	size_t i;
	int st;

	if (!image || minor < 0 || minor >= DISK_MAX_MINORS ||
	    d->disks[minor] || json_int(o, "minor") != minor)
		return -EINVAL;
	disk = disk_alloc(d, minor, image);
	if (!disk)
		return -ENOMEM;
	if (json_object_object_get_ex(o, "exports", &exports) &&
	    json_object_is_type(exports, json_type_array))
		for (i = 0; i < json_object_array_length(exports); i++)
			if (disk_add_export(disk,
					    json_object_get_string(
						    json_object_array_get_idx(
							    exports, i))))
				goto fail;
	if ((s = json_str(o, "fuse")) && !(disk->fuse = strdup(s)))
		goto fail;
	if ((s = json_str(o, "xen")) && !(disk->xen = strdup(s)))
		goto fail;
	if ((s = json_str(o, "opened")) && !(disk->opened = strdup(s)))
		goto fail;
	s = json_str(o, "reason");
	snprintf(disk->reason, sizeof(disk->reason), "%s", s ? s : "");
	s = json_str(o, "state");
	st = s ? disk_state_parse(s) : -EINVAL;
	disk->state = st < 0 ? DISK_FAILED : st;
	s = json_str(o, "restart");
	disk->restart = s && !strcmp(s, "on-failure") ?
				DISK_RESTART_ON_FAILURE :
				DISK_RESTART_NO;
	disk->readonly = json_object_object_get_ex(o, "readonly", &v) &&
			 json_object_get_boolean(v);
	disk->paused = json_object_object_get_ex(o, "paused", &v) &&
		       json_object_get_boolean(v);
	disk->ublk = json_object_object_get_ex(o, "ublk_on", &v) &&
		     json_object_get_boolean(v);
	disk->ublk_want = json_object_object_get_ex(o, "ublk_want", &v) ?
				  json_object_get_int(v) :
				  -1;
	disk->ublk_id = json_object_object_get_ex(o, "ublk_id", &v) ?
				json_object_get_int(v) :
				-1;
	disk->pid = json_int(o, "pid");
	disk->pid_start = json_int(o, "pid_start");
	disk->started = json_int(o, "started");
	disk->restarts = json_int(o, "restarts");
	return 0;
fail:
	disk_free(disk);
	return -ENOMEM;
}

int disk_load_all(struct ctl_daemon *d)
{
	struct json_object *o;
	struct dirent *de;
	char path[4096];
	DIR *dir;
	int minor, end, rc;

	dir = opendir(d->run_dir);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		end = 0;
		if (sscanf(de->d_name, "disk-%d.json%n", &minor, &end) != 1 ||
		    de->d_name[end])
			continue;
		snprintf(path, sizeof(path), "%s/%s", d->run_dir, de->d_name);
		o = json_object_from_file(path);
		rc = o ? disk_from_json(d, o, minor) : -EINVAL;
		if (rc)
			td_err("%s: not a disk state file this daemon can read "
			       "(%s); left alone",
			       path, strerror(-rc));
		json_object_put(o);
	}
	closedir(dir);
	return 0;
}

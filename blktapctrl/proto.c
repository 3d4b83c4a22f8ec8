// SPDX-License-Identifier: GPL-2.0-only
/*
 * blktapctrl's control socket: tapdisk's control server (tapdisk/control.h)
 * with a peer check (root, or the daemon's own user, which is how the tests
 * run it). Whatever waits for a tapdisk (starting, draining for pause,
 * stopping, any request to it) is answered later, from the loop, so one
 * slow disk holds up neither the other clients nor the noticing of a
 * tapdisk that dies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blktapctrl.h"
#include "client.h"
#include "control.h"
#include "log.h"

/* The disk named by the request's "minor", or an answer saying why not. */
static struct disk *ctl_disk(struct ctl_daemon *d, struct json_object *req,
			     struct td_control_call *call)
{
	struct json_object *v;
	struct disk *disk;
	char err[64];
	int minor;

	if (!json_object_object_get_ex(req, "minor", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		td_control_call_reply(call, NULL, -EINVAL,
				      "no \"minor\" number");
		return NULL;
	}
	minor = json_object_get_int(v);
	disk = disk_get(d, minor);
	if (!disk) {
		snprintf(err, sizeof(err), "no disk with minor %d", minor);
		td_control_call_reply(call, NULL, -ENODEV, err);
	}
	return disk;
}

static int ctl_bad(const char **error, const char *what)
{
	*error = what;
	return -EINVAL;
}

/* 0, or -errno with *error saying what is wrong with the request. */
static int ctl_create_opts(struct json_object *req, struct disk *disk,
			   const char **error)
{
	struct json_object *v, *a;
	const char *s;
	size_t i;

	if (json_object_object_get_ex(req, "nbd", &a)) {
		if (!json_object_is_type(a, json_type_array))
			return ctl_bad(error, "\"nbd\" is not an array of "
					      "addresses");
		for (i = 0; i < json_object_array_length(a); i++) {
			v = json_object_array_get_idx(a, i);
			if (!json_object_is_type(v, json_type_string))
				return ctl_bad(error, "\"nbd\" holds a "
						      "non-string");
			if (disk_add_export(disk, json_object_get_string(v)))
				return ctl_bad(error, "too many NBD exports");
		}
	}
	if (json_object_object_get_ex(req, "fuse", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return ctl_bad(error, "\"fuse\" is not a path");
		disk->fuse = strdup(json_object_get_string(v));
		if (!disk->fuse)
			return -ENOMEM;
	}
	if (json_object_object_get_ex(req, "ublk", &v))
		disk->ublk = json_object_get_boolean(v);
	if (json_object_object_get_ex(req, "ublk_id", &v)) {
		if (!json_object_is_type(v, json_type_int) ||
		    json_object_get_int(v) < 0)
			return ctl_bad(error, "\"ublk_id\" is not a device "
					      "number");
		disk->ublk = true;
		disk->ublk_want = json_object_get_int(v);
	}
	if (json_object_object_get_ex(req, "readonly", &v))
		disk->readonly = json_object_get_boolean(v);
	if (json_object_object_get_ex(req, "restart", &v)) {
		s = json_object_get_string(v);
		if (!strcmp(s, "on-failure"))
			disk->restart = DISK_RESTART_ON_FAILURE;
		else if (strcmp(s, "no"))
			return ctl_bad(error, "\"restart\" is neither \"no\" "
					      "nor \"on-failure\"");
	}
	return 0;
}

static void ctl_created(struct disk *disk, int rc, struct json_object *reply,
			const char *err, void *data)
{
	struct json_object *fields, *exports;
	char ublk[32];
	int i;

	if (rc) {
		td_err("disk %d (%s): create failed: %s", disk->minor,
		       disk->image, err);
		disk_forget(disk);
		td_control_call_reply(data, NULL, rc, err);
		return;
	}
	fields = json_object_new_object();
	exports = json_object_new_array();
	for (i = 0; i < disk->n_nbd; i++)
		json_object_array_add(exports,
				      json_object_new_string(disk->nbd[i]));
	json_object_object_add(fields, "minor",
			       json_object_new_int(disk->minor));
	json_object_object_add(fields, "pid", json_object_new_int(disk->pid));
	json_object_object_add(fields, "image",
			       json_object_new_string(disk->image));
	json_object_object_add(fields, "exports", exports);
	if (disk->fuse)
		json_object_object_add(fields, "fuse",
				       json_object_new_string(disk->fuse));
	if (disk->ublk_id >= 0) {
		snprintf(ublk, sizeof(ublk), "/dev/ublkb%d", disk->ublk_id);
		json_object_object_add(fields, "ublk",
				       json_object_new_string(ublk));
	}
	td_control_call_reply(data, fields, 0, NULL);
}

static void ctl_create(struct json_object *req, struct td_control_call *call,
		       void *data)
{
	struct ctl_daemon *d = data;
	const char *error = NULL;
	struct json_object *v;
	struct disk *disk;
	char err[64];
	int rc;

	if (!json_object_object_get_ex(req, "image", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !*json_object_get_string(v)) {
		td_control_call_reply(call, NULL, -EINVAL,
				      "no \"image\" (TYPE:PATH)");
		return;
	}
	disk = disk_new(d, json_object_get_string(v));
	if (!disk) {
		snprintf(err, sizeof(err), "no free minor (all %d used)",
			 DISK_MAX_MINORS);
		td_control_call_reply(call, NULL, -ENOSPC, err);
		return;
	}
	rc = ctl_create_opts(req, disk, &error);
	if (rc) {
		disk_forget(disk);
		td_control_call_reply(call, NULL, rc, error);
		return;
	}
	disk->state = DISK_STARTING;
	disk_start(disk, ctl_created, call);
}

static void ctl_destroyed(struct disk *disk, int rc, struct json_object *reply,
			  const char *err, void *data)
{
	/* gone either way: an unclean exit is in the log */
	disk_forget(disk);
	td_control_call_reply(data, NULL, 0, NULL);
}

static void ctl_destroy(struct json_object *req, struct td_control_call *call,
			void *data)
{
	struct disk *disk = ctl_disk(data, req, call);
	char err[1024];

	if (!disk)
		return;
	/* its creator is waiting for it; a restart in progress is ours */
	if (disk->state == DISK_STARTING || disk->op == DISK_OP_STOPPING) {
		snprintf(err, sizeof(err), "disk %d (%s) is busy: %s",
			 disk->minor, disk->image,
			 disk->state == DISK_STARTING ?
				 "it is being created" :
				 "it is being destroyed");
		td_control_call_reply(call, NULL, -EBUSY, err);
		return;
	}
	td_info("disk %d (%s): destroying", disk->minor, disk->image);
	disk_stop(disk, ctl_destroyed, call);
}

static int ctl_list(struct json_object *req, struct json_object *reply,
		    const char **error, void *data)
{
	struct ctl_daemon *d = data;
	struct json_object *disks = json_object_new_array();
	int minor;

	for (minor = 0; minor < DISK_MAX_MINORS; minor++)
		if (d->disks[minor])
			json_object_array_add(disks,
					      disk_to_json(d->disks[minor]));
	json_object_object_add(reply, "disks", disks);
	return 0;
}

/* Tapdisk's reply, under the disk's minor. */
static void ctl_relayed(struct disk *disk, int rc, struct json_object *reply,
			const char *err, void *data)
{
	struct json_object *fields;

	if (rc) {
		td_control_call_reply(data, NULL, rc, err);
		return;
	}
	fields = json_object_new_object();
	json_object_object_foreach(reply, key, val)
	{
		if (strcmp(key, "ok"))
			json_object_object_add(fields, key,
					       json_object_get(val));
	}
	json_object_object_add(fields, "minor",
			       json_object_new_int(disk->minor));
	json_object_object_add(
		fields, "state",
		json_object_new_string(disk_state_name(disk->state)));
	td_control_call_reply(data, fields, 0, NULL);
}

static void ctl_info(struct json_object *req, struct td_control_call *call,
		     void *data)
{
	struct disk *disk = ctl_disk(data, req, call);

	if (disk)
		disk_call(disk, ctl_request("info"), DISK_CALL_MS, ctl_relayed,
			  call);
}

static void ctl_stats(struct json_object *req, struct td_control_call *call,
		      void *data)
{
	struct disk *disk = ctl_disk(data, req, call);

	if (disk)
		disk_call(disk, ctl_request("stats"), DISK_CALL_MS, ctl_relayed,
			  call);
}

static void ctl_paused(struct disk *disk, int rc, struct json_object *reply,
		       const char *err, void *data)
{
	if (!rc) {
		disk->paused = true;
		disk->state = DISK_PAUSED;
		disk_save(disk);
		td_info("disk %d (%s): paused", disk->minor, disk->image);
	}
	td_control_call_reply(data, NULL, rc, err);
}

static void ctl_pause(struct json_object *req, struct td_control_call *call,
		      void *data)
{
	struct disk *disk = ctl_disk(data, req, call);

	if (disk)
		disk_call(disk, ctl_request("pause"), DISK_PAUSE_MS, ctl_paused,
			  call);
}

/* A resume onto another image asks tapdisk what it calls the new one. */
struct ctl_resume {
	struct td_control_call *call;
	char *image;
};

static void ctl_resume_end(struct ctl_resume *r, int rc, const char *err)
{
	td_control_call_reply(r->call, NULL, rc, err);
	free(r->image);
	free(r);
}

static void ctl_resumed_info(struct disk *disk, int rc,
			     struct json_object *reply, const char *err,
			     void *data)
{
	struct json_object *v;

	/* what a restarted daemon will expect tapdisk to report */
	if (!rc && json_object_object_get_ex(reply, "image", &v)) {
		free(disk->opened);
		disk->opened = strdup(json_object_get_string(v));
	}
	disk_save(disk);
	ctl_resume_end(data, 0, NULL);
}

static void ctl_resumed(struct disk *disk, int rc, struct json_object *reply,
			const char *err, void *data)
{
	struct ctl_resume *r = data;

	if (rc) {
		ctl_resume_end(r, rc, err);
		return;
	}
	disk->paused = false;
	disk->state = DISK_RUNNING;
	if (!r->image) {
		td_info("disk %d (%s): resumed", disk->minor, disk->image);
		disk_save(disk);
		ctl_resume_end(r, 0, NULL);
		return;
	}
	td_info("disk %d (%s): resumed onto %s", disk->minor, disk->image,
		r->image);
	free(disk->image);
	disk->image = r->image;
	r->image = NULL;
	disk_call(disk, ctl_request("info"), DISK_CALL_MS, ctl_resumed_info, r);
}

static void ctl_resume(struct json_object *req, struct td_control_call *call,
		       void *data)
{
	struct disk *disk = ctl_disk(data, req, call);
	struct json_object *treq, *v;
	struct ctl_resume *r;

	if (!disk)
		return;
	r = calloc(1, sizeof(*r));
	if (!r) {
		td_control_call_reply(call, NULL, -ENOMEM, NULL);
		return;
	}
	r->call = call;
	treq = ctl_request("resume");
	if (json_object_object_get_ex(req, "image", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			json_object_put(treq);
			ctl_resume_end(r, -EINVAL,
				       "\"image\" is not TYPE:PATH");
			return;
		}
		r->image = strdup(json_object_get_string(v));
		if (!r->image) {
			json_object_put(treq);
			ctl_resume_end(r, -ENOMEM, NULL);
			return;
		}
		json_object_object_add(treq, "image", json_object_get(v));
	}
	disk_call(disk, treq, DISK_PAUSE_MS, ctl_resumed, r);
}

static int ctl_peer(const struct ucred *peer, const char **error, void *data)
{
	if (peer->uid == 0 || peer->uid == geteuid())
		return 0;
	td_warn("refusing control requests of uid %d (pid %d)", (int)peer->uid,
		(int)peer->pid);
	*error = "permission denied: blktapctrl answers root only";
	return -EACCES;
}

struct td_control *ctl_server_new(struct ctl_daemon *d, const char *path)
{
	struct td_control *ctl = td_control_new(d->loop, path);

	if (!ctl)
		return NULL;
	td_control_set_peer_check(ctl, ctl_peer, d);
	td_control_register_async(ctl, "create", ctl_create, d);
	td_control_register_async(ctl, "destroy", ctl_destroy, d);
	td_control_register(ctl, "list", ctl_list, d);
	td_control_register_async(ctl, "pause", ctl_pause, d);
	td_control_register_async(ctl, "resume", ctl_resume, d);
	td_control_register_async(ctl, "stats", ctl_stats, d);
	td_control_register_async(ctl, "info", ctl_info, d);
	return ctl;
}

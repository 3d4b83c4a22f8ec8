// SPDX-License-Identifier: GPL-2.0-only
/*
 * blktapctrl's control socket: the framing and JSON of tapdisk's control
 * socket (tapdisk/control.h), with two things td_control does not do: the
 * peer's credentials are checked (root, or the daemon's own user, which is
 * how the tests run it), and a handler's error message can name the disk,
 * or relay tapdisk's own words. Handlers run to completion; every wait in
 * them (a tapdisk starting, draining for pause, stopping) is bounded.
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
#include "usock.h"

struct ctl_conn {
	struct ctl_server *s;
	int fd;
	struct td_watch *watch;
	uid_t uid;
	pid_t pid;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	bool eof; /* the peer has sent all it will */
	bool closing;
	struct ctl_conn *next;
};

struct ctl_server {
	struct ctl_daemon *d;
	char *path;
	int fd;
	struct td_watch *watch;
	struct ctl_conn *conns;
};

struct ctl_req {
	struct ctl_daemon *d;
	struct json_object *req;
	struct json_object *reply;
	char err[1024];
};

static int ctl_minor(struct ctl_req *r, struct disk **disk)
{
	struct json_object *v;
	int minor;

	if (!json_object_object_get_ex(r->req, "minor", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		snprintf(r->err, sizeof(r->err), "no \"minor\" number");
		return -EINVAL;
	}
	minor = json_object_get_int(v);
	*disk = disk_get(r->d, minor);
	if (!*disk) {
		snprintf(r->err, sizeof(r->err), "no disk with minor %d",
			 minor);
		return -ENODEV;
	}
	return 0;
}

static int ctl_bad(struct ctl_req *r, const char *what)
{
	snprintf(r->err, sizeof(r->err), "%s", what);
	return -EINVAL;
}

static int ctl_create_opts(struct ctl_req *r, struct disk *disk)
{
	struct json_object *v, *a;
	const char *s;
	size_t i;
	int rc;

	if (json_object_object_get_ex(r->req, "nbd", &a)) {
		if (!json_object_is_type(a, json_type_array))
			return ctl_bad(r, "\"nbd\" is not an array of "
					  "addresses");
		for (i = 0; i < json_object_array_length(a); i++) {
			v = json_object_array_get_idx(a, i);
			if (!json_object_is_type(v, json_type_string))
				return ctl_bad(r, "\"nbd\" holds a "
						  "non-string");
			rc = disk_add_export(disk, json_object_get_string(v));
			if (rc)
				return ctl_bad(r, "too many NBD exports");
		}
	}
	if (json_object_object_get_ex(r->req, "fuse", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return ctl_bad(r, "\"fuse\" is not a path");
		disk->fuse = strdup(json_object_get_string(v));
		if (!disk->fuse)
			return -ENOMEM;
	}
	if (json_object_object_get_ex(r->req, "readonly", &v))
		disk->readonly = json_object_get_boolean(v);
	if (json_object_object_get_ex(r->req, "restart", &v)) {
		s = json_object_get_string(v);
		if (!strcmp(s, "on-failure"))
			disk->restart = DISK_RESTART_ON_FAILURE;
		else if (strcmp(s, "no"))
			return ctl_bad(r, "\"restart\" is neither \"no\" nor "
					  "\"on-failure\"");
	}
	return 0;
}

static void ctl_disk_forget(struct disk *disk)
{
	char path[4096];

	disk_remove_state(disk);
	if (!disk_path(disk, "tapdisk-%d.log", path, sizeof(path)))
		unlink(path);
	disk_free(disk);
}

static int ctl_create(struct ctl_req *r)
{
	struct json_object *v, *exports;
	struct disk *disk;
	int i, rc;

	if (!json_object_object_get_ex(r->req, "image", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !*json_object_get_string(v))
		return ctl_bad(r, "no \"image\" (TYPE:PATH)");
	disk = disk_new(r->d, json_object_get_string(v));
	if (!disk) {
		snprintf(r->err, sizeof(r->err), "no free minor (all %d used)",
			 DISK_MAX_MINORS);
		return -ENOSPC;
	}
	rc = ctl_create_opts(r, disk);
	if (!rc)
		rc = disk_spawn(disk, r->err, sizeof(r->err));
	if (rc) {
		td_err("disk %d (%s): create failed: %s", disk->minor,
		       disk->image, r->err);
		ctl_disk_forget(disk);
		return rc;
	}
	exports = json_object_new_array();
	for (i = 0; i < disk->n_nbd; i++)
		json_object_array_add(exports,
				      json_object_new_string(disk->nbd[i]));
	json_object_object_add(r->reply, "minor",
			       json_object_new_int(disk->minor));
	json_object_object_add(r->reply, "pid", json_object_new_int(disk->pid));
	json_object_object_add(r->reply, "image",
			       json_object_new_string(disk->image));
	json_object_object_add(r->reply, "exports", exports);
	if (disk->fuse)
		json_object_object_add(r->reply, "fuse",
				       json_object_new_string(disk->fuse));
	return 0;
}

static int ctl_destroy(struct ctl_req *r)
{
	struct disk *disk;
	int rc;

	rc = ctl_minor(r, &disk);
	if (rc)
		return rc;
	td_info("disk %d (%s): destroying", disk->minor, disk->image);
	disk_stop(disk);
	ctl_disk_forget(disk);
	return 0;
}

static int ctl_list(struct ctl_req *r)
{
	struct json_object *disks = json_object_new_array();
	int minor;

	for (minor = 0; minor < DISK_MAX_MINORS; minor++)
		if (r->d->disks[minor])
			json_object_array_add(disks,
					      disk_to_json(r->d->disks[minor]));
	json_object_object_add(r->reply, "disks", disks);
	return 0;
}

/* Copy tapdisk's reply into ours, under the disk's minor. */
static void ctl_relay(struct ctl_req *r, struct disk *disk,
		      struct json_object *reply)
{
	json_object_object_foreach(reply, key, val)
	{
		if (strcmp(key, "ok"))
			json_object_object_add(r->reply, key,
					       json_object_get(val));
	}
	json_object_object_add(r->reply, "minor",
			       json_object_new_int(disk->minor));
	json_object_object_add(
		r->reply, "state",
		json_object_new_string(disk_state_name(disk->state)));
}

static int ctl_forward(struct ctl_req *r, const char *command)
{
	struct json_object *reply;
	struct disk *disk;
	int rc;

	rc = ctl_minor(r, &disk);
	if (rc)
		return rc;
	rc = disk_call(disk, ctl_request(command), DISK_CALL_MS, &reply, r->err,
		       sizeof(r->err));
	if (rc)
		return rc;
	ctl_relay(r, disk, reply);
	json_object_put(reply);
	return 0;
}

static int ctl_info(struct ctl_req *r)
{
	return ctl_forward(r, "info");
}

static int ctl_stats(struct ctl_req *r)
{
	return ctl_forward(r, "stats");
}

static int ctl_pause(struct ctl_req *r)
{
	struct json_object *reply;
	struct disk *disk;
	int rc;

	rc = ctl_minor(r, &disk);
	if (rc)
		return rc;
	rc = disk_call(disk, ctl_request("pause"), DISK_PAUSE_MS, &reply,
		       r->err, sizeof(r->err));
	if (rc)
		return rc;
	json_object_put(reply);
	disk->paused = true;
	disk->state = DISK_PAUSED;
	disk_save(disk);
	td_info("disk %d (%s): paused", disk->minor, disk->image);
	return 0;
}

static int ctl_resume(struct ctl_req *r)
{
	struct json_object *reply, *req, *v;
	const char *image = NULL;
	struct disk *disk;
	char *copy;
	int rc;

	rc = ctl_minor(r, &disk);
	if (rc)
		return rc;
	req = ctl_request("resume");
	if (json_object_object_get_ex(r->req, "image", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			json_object_put(req);
			return ctl_bad(r, "\"image\" is not TYPE:PATH");
		}
		image = json_object_get_string(v);
		json_object_object_add(req, "image",
				       json_object_new_string(image));
	}
	rc = disk_call(disk, req, DISK_PAUSE_MS, &reply, r->err,
		       sizeof(r->err));
	if (rc)
		return rc;
	json_object_put(reply);
	disk->paused = false;
	disk->state = DISK_RUNNING;
	if (image && (copy = strdup(image))) {
		td_info("disk %d (%s): resumed onto %s", disk->minor,
			disk->image, image);
		free(disk->image);
		disk->image = copy;
		/* what a restarted daemon will expect tapdisk to report */
		if (!disk_call(disk, ctl_request("info"), DISK_CALL_MS, &reply,
			       r->err, sizeof(r->err)) &&
		    json_object_object_get_ex(reply, "image", &v)) {
			free(disk->opened);
			disk->opened = strdup(json_object_get_string(v));
		}
		json_object_put(reply);
	} else {
		td_info("disk %d (%s): resumed", disk->minor, disk->image);
	}
	disk_save(disk);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct ctl_req *r);
} ctl_commands[] = {
	{ "create", ctl_create }, { "destroy", ctl_destroy },
	{ "list", ctl_list },	  { "pause", ctl_pause },
	{ "resume", ctl_resume }, { "stats", ctl_stats },
	{ "info", ctl_info },
};

static struct json_object *ctl_error(const char *msg, int err)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(false));
	json_object_object_add(r, "error", json_object_new_string(msg));
	json_object_object_add(r, "errno", json_object_new_int(err));
	return r;
}

static struct json_object *ctl_dispatch(struct ctl_conn *c, const char *msg)
{
	struct ctl_req r = { .d = c->s->d };
	struct json_object *v;
	const char *cmd;
	size_t i;
	int rc;

	if (c->uid != 0 && c->uid != geteuid())
		return ctl_error("permission denied: blktapctrl answers root "
				 "only",
				 EACCES);
	r.req = json_tokener_parse(msg);
	if (!r.req || !json_object_is_type(r.req, json_type_object)) {
		json_object_put(r.req);
		return ctl_error("message is not a JSON object", EINVAL);
	}
	if (!json_object_object_get_ex(r.req, "version", &v) ||
	    json_object_get_int(v) != TD_CONTROL_VERSION) {
		json_object_put(r.req);
		return ctl_error("unsupported protocol version (want 1)",
				 EPROTO);
	}
	if (!json_object_object_get_ex(r.req, "command", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(r.req);
		return ctl_error("no \"command\"", EINVAL);
	}
	cmd = json_object_get_string(v);
	for (i = 0; i < sizeof(ctl_commands) / sizeof(*ctl_commands); i++)
		if (!strcmp(ctl_commands[i].name, cmd))
			break;
	if (i == sizeof(ctl_commands) / sizeof(*ctl_commands)) {
		json_object_put(r.req);
		return ctl_error("unknown command", EOPNOTSUPP);
	}
	r.reply = json_object_new_object();
	json_object_object_add(r.reply, "ok", json_object_new_boolean(true));
	rc = ctl_commands[i].fn(&r);
	json_object_put(r.req);
	if (rc) {
		json_object_put(r.reply);
		return ctl_error(r.err[0] ? r.err : strerror(-rc), -rc);
	}
	return r.reply;
}

static void ctl_conn_free(struct ctl_conn *c)
{
	struct ctl_conn **pp;

	for (pp = &c->s->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	td_watch_remove(c->watch);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static void ctl_reply(struct ctl_conn *c, struct json_object *reply)
{
	if (td_control_frame(reply, &c->out, &c->out_len))
		c->closing = true;
	c->out_off = 0;
	json_object_put(reply);
}

/* Take the next whole message off the input, or find it cannot come. */
static void ctl_process(struct ctl_conn *c)
{
	const unsigned char *p = (const unsigned char *)c->in;
	size_t len;
	char *msg;

	if (c->in_len < 4) {
		if (c->eof && c->in_len)
			ctl_reply(c, ctl_error("truncated message", EPROTO));
		c->closing |= c->eof;
		return;
	}
	len = (size_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
	if (len > TD_CONTROL_MAX_MSG) {
		/* the rest of the stream cannot be framed: give up on it */
		ctl_reply(c, ctl_error("message too large", EMSGSIZE));
		c->closing = true;
		return;
	}
	if (c->in_len < len + 4) {
		if (c->eof) {
			ctl_reply(c, ctl_error("truncated message", EPROTO));
			c->closing = true;
		}
		return;
	}
	msg = strndup(c->in + 4, len);
	ctl_reply(c, msg ? ctl_dispatch(c, msg) :
			   ctl_error("out of memory", ENOMEM));
	free(msg);
	memmove(c->in, c->in + 4 + len, c->in_len - 4 - len);
	c->in_len -= 4 + len;
}

/* 0 when all is sent, 1 when the socket is full, -errno on error. */
static int ctl_flush(struct ctl_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN ? 1 : -errno;
		c->out_off += n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return 0;
}

static void ctl_conn_event(struct td_watch *w, int fd, uint32_t events,
			   void *data)
{
	struct ctl_conn *c = data;
	ssize_t n;
	int rc;

	if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) && !c->eof) {
		if (!c->in)
			c->in = malloc(TD_CONTROL_MAX_MSG + 4);
		if (!c->in)
			goto close;
		n = recv(fd, c->in + c->in_len,
			 TD_CONTROL_MAX_MSG + 4 - c->in_len, 0);
		if (n == 0)
			c->eof = true;
		else if (n < 0 && errno != EAGAIN)
			goto close;
		else if (n > 0)
			c->in_len += n;
	}
	/* one reply at a time, in order, until blocked or out of input */
	for (;;) {
		if (c->out) {
			rc = ctl_flush(c);
			if (rc < 0)
				goto close;
			if (rc > 0) {
				td_watch_set_events(c->watch, EPOLLOUT);
				return;
			}
		}
		if (c->closing)
			goto close;
		ctl_process(c);
		if (!c->out && !c->closing)
			break;
	}
	td_watch_set_events(c->watch, c->eof ? 0 : EPOLLIN | EPOLLRDHUP);
	return;
close:
	ctl_conn_free(c);
}

static void ctl_accept(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct ctl_server *s = data;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct ctl_conn *c;
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		td_err("control connection: no peer credentials: %s",
		       strerror(errno));
		close(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	c->s = s;
	c->fd = cfd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	if (c->uid != 0 && c->uid != geteuid())
		td_warn("refusing control requests of uid %d (pid %d)",
			(int)c->uid, (int)c->pid);
	c->watch = td_watch_add(s->d->loop, cfd, EPOLLIN | EPOLLRDHUP,
				ctl_conn_event, c);
	if (!c->watch) {
		close(cfd);
		free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
}

struct ctl_server *ctl_server_new(struct ctl_daemon *d, const char *path)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return NULL;
	s->d = d;
	s->path = strdup(path);
	if (!s->path) {
		err = -ENOMEM;
		goto fail;
	}
	/* owner only: whoever reaches it can start and stop any disk */
	s->fd = td_unix_listen(path, 64, 0600);
	if (s->fd < 0) {
		err = s->fd;
		goto fail;
	}
	s->watch = td_watch_add(d->loop, s->fd, EPOLLIN, ctl_accept, s);
	if (!s->watch) {
		err = -errno;
		close(s->fd);
		unlink(path);
		goto fail;
	}
	return s;
fail:
	td_err("control socket %s: %s", path,
	       err == -EADDRINUSE ? "another blktapctrl is listening there" :
	       err == -EEXIST	  ? "exists and is not a socket" :
				    strerror(-err));
	free(s->path);
	free(s);
	errno = -err;
	return NULL;
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	while (s->conns)
		ctl_conn_free(s->conns);
	td_watch_remove(s->watch);
	close(s->fd);
	unlink(s->path);
	free(s->path);
	free(s);
}

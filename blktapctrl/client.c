// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "control.h"
#include "loop.h"

struct ctl_acall {
	struct td_loop *loop;
	int fd;
	struct td_watch *watch;
	long timer;
	char *buf; /* the framed request, then the reply */
	size_t len, off; /* what there is to send or read, and how far */
	bool reading;
	unsigned char hdr[4];
	ctl_reply_fn fn;
	void *data;
};

static int client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a Unix socket connects at once or fails: no EINPROGRESS wait */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = errno == EAGAIN ? -ECONNREFUSED : -errno;

		close(fd);
		return err;
	}
	return fd;
}

void ctl_call_cancel(struct ctl_acall *a)
{
	if (a->timer)
		td_timer_cancel(a->loop, a->timer);
	td_watch_remove(a->watch);
	close(a->fd);
	free(a->buf);
	free(a);
}

/* The call is over: free it first, so that fn may do anything. */
static void client_done(struct ctl_acall *a, int rc)
{
	struct json_object *reply = NULL;
	ctl_reply_fn fn = a->fn;
	void *data = a->data;

	if (!rc) {
		a->buf[a->len] = '\0';
		reply = json_tokener_parse(a->buf);
		if (!reply || !json_object_is_type(reply, json_type_object)) {
			json_object_put(reply);
			reply = NULL;
			rc = -EPROTO;
		}
	}
	ctl_call_cancel(a);
	fn(rc, reply, data);
}

static void client_timeout(struct td_loop *loop, void *data)
{
	struct ctl_acall *a = data;

	a->timer = 0;
	client_done(a, -ETIMEDOUT);
}

/* Read the 4-byte length, then that much; 0 when all is there. */
static int client_read(struct ctl_acall *a)
{
	size_t n;
	ssize_t r;

	for (;;) {
		if (!a->buf) {
			r = recv(a->fd, a->hdr + a->off, 4 - a->off, 0);
		} else {
			if (a->off == a->len)
				return 0;
			r = recv(a->fd, a->buf + a->off, a->len - a->off, 0);
		}
		if (r == 0)
			return -EPROTO; /* closed before a whole reply */
		if (r < 0)
			return errno == EAGAIN ? 1 : -errno;
		a->off += r;
		if (a->buf || a->off < 4)
			continue;
		n = (size_t)a->hdr[0] << 24 | a->hdr[1] << 16 | a->hdr[2] << 8 |
		    a->hdr[3];
		if (n > TD_CONTROL_MAX_MSG)
			return -EPROTO;
		a->buf = malloc(n + 1);
		if (!a->buf)
			return -ENOMEM;
		a->len = n;
		a->off = 0;
	}
}

static void client_event(struct td_watch *w, int fd, uint32_t events,
			 void *data)
{
	struct ctl_acall *a = data;
	ssize_t n;
	int rc;

	if (!a->reading) {
		n = send(fd, a->buf + a->off, a->len - a->off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			client_done(a, -errno);
			return;
		}
		if (n > 0)
			a->off += n;
		if (a->off < a->len)
			return;
		free(a->buf);
		a->buf = NULL;
		a->off = 0;
		a->reading = true;
		td_watch_set_events(a->watch, EPOLLIN);
		return;
	}
	rc = client_read(a);
	if (rc <= 0)
		client_done(a, rc);
}

struct ctl_acall *ctl_call_async(struct td_loop *loop, const char *path,
				 struct json_object *request, int timeout_ms,
				 ctl_reply_fn fn, void *data)
{
	struct ctl_acall *a = calloc(1, sizeof(*a));
	int rc = -ENOMEM;
	long t;

	json_object_object_add(request, "version",
			       json_object_new_int(TD_CONTROL_VERSION));
	if (!a)
		goto fail;
	a->loop = loop;
	a->fn = fn;
	a->data = data;
	a->fd = client_connect(path);
	if (a->fd < 0) {
		rc = a->fd;
		goto fail;
	}
	rc = td_control_frame(request, &a->buf, &a->len);
	if (rc)
		goto fail_fd;
	/* the request goes out when the socket can take it */
	a->watch = td_watch_add(loop, a->fd, EPOLLOUT, client_event, a);
	if (!a->watch) {
		rc = -errno;
		goto fail_fd;
	}
	t = td_timer_add(loop, timeout_ms, client_timeout, a);
	if (t < 0) {
		rc = (int)t;
		td_watch_remove(a->watch);
		goto fail_fd;
	}
	a->timer = t;
	json_object_put(request);
	return a;
fail_fd:
	close(a->fd);
fail:
	if (a)
		free(a->buf);
	free(a);
	json_object_put(request);
	errno = -rc;
	return NULL;
}

struct ctl_wait {
	bool done;
	int rc;
	struct json_object *reply;
};

static void client_waited(int rc, struct json_object *reply, void *data)
{
	struct ctl_wait *w = data;

	w->done = true;
	w->rc = rc;
	w->reply = reply;
}

int ctl_call(const char *path, struct json_object *request, int timeout_ms,
	     struct json_object **reply)
{
	struct ctl_wait w = { 0 };
	struct td_loop *loop = td_loop_new();
	struct ctl_acall *a;
	int rc = 0, n;

	*reply = NULL;
	if (!loop) {
		json_object_put(request);
		return -errno;
	}
	a = ctl_call_async(loop, path, request, timeout_ms, client_waited, &w);
	if (!a)
		rc = -errno;
	while (a && !w.done && !rc) {
		n = td_loop_once(loop, -1);
		rc = n < 0 ? n : 0;
	}
	if (a && !w.done)
		ctl_call_cancel(a);
	td_loop_free(loop);
	if (rc)
		return rc;
	*reply = w.reply;
	return w.rc;
}

struct json_object *ctl_request(const char *command)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "command", json_object_new_string(command));
	return r;
}

const char *ctl_reply_error(struct json_object *reply)
{
	struct json_object *v;

	if (json_object_object_get_ex(reply, "error", &v))
		return json_object_get_string(v);
	return "failed (no error message in the reply)";
}

int ctl_reply_ok(struct json_object *reply)
{
	struct json_object *v;

	return json_object_object_get_ex(reply, "ok", &v) &&
	       json_object_get_boolean(v);
}

// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "log.h"
#include "usock.h"

#define CTL_MAX_COMMANDS 16

struct ctl_command {
	const char *name;
	td_control_fn fn;
	td_control_async_fn async_fn;
	void *data;
};

struct td_control_call {
	struct ctl_conn *conn; /* NULL once the client has gone */
};

struct ctl_conn {
	struct td_control *ctl;
	int fd;
	struct td_watch *watch;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	bool eof; /* the peer has sent all it will */
	bool closing;
	int refused; /* -errno from the peer check: every message gets it */
	const char *refused_msg;
	struct td_control_call *call; /* a reply still to come */
	bool dispatching; /* inside a handler: don't re-enter */
	struct ctl_conn *next;
};

struct td_control {
	struct td_loop *loop;
	char *path;
	int fd;
	struct td_watch *watch;
	struct ctl_command cmds[CTL_MAX_COMMANDS];
	int ncmds;
	td_control_peer_fn peer_fn;
	void *peer_data;
	struct ctl_conn *conns;
};

int td_control_frame(struct json_object *msg, char **buf, size_t *len)
{
	const char *s =
		json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *b = malloc(n + 4);

	if (!b)
		return -ENOMEM;
	b[0] = n >> 24;
	b[1] = n >> 16;
	b[2] = n >> 8;
	b[3] = n;
	memcpy(b + 4, s, n);
	*buf = b;
	*len = n + 4;
	return 0;
}

static void ctl_conn_free(struct ctl_conn *c)
{
	struct ctl_conn **pp;

	if (c->call)
		c->call->conn = NULL;
	for (pp = &c->ctl->conns; *pp; pp = &(*pp)->next) {
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

/* 0 when all is sent, 1 when the socket is full, -errno on error. */
static int ctl_flush(struct ctl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN ? 1 : -errno;
		c->out_off += n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return 0;
}

static void ctl_reply(struct ctl_conn *c, struct json_object *reply)
{
	char *buf;
	size_t len;

	if (td_control_frame(reply, &buf, &len)) {
		c->closing = true;
		return;
	}
	free(c->out);
	c->out = buf;
	c->out_len = len;
	c->out_off = 0;
}

static struct json_object *ctl_error(const char *msg, int err)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(false));
	json_object_object_add(r, "error", json_object_new_string(msg));
	json_object_object_add(r, "errno", json_object_new_int(err));
	return r;
}

/* The reply to a handler's failure: its own "error" if it gave one. */
static struct json_object *ctl_failed(struct json_object *reply,
				      const char *error, int rc)
{
	struct json_object *v, *r;

	if (json_object_object_get_ex(reply, "error", &v) &&
	    json_object_is_type(v, json_type_string))
		error = json_object_get_string(v);
	r = ctl_error(error ? error : strerror(-rc), -rc);
	json_object_put(reply);
	return r;
}

static struct json_object *ctl_dispatch(struct ctl_conn *c, const char *msg,
					size_t len)
{
	struct td_control *ctl = c->ctl;
	struct json_object *req, *v, *reply;
	const char *cmd, *error = NULL;
	int i, rc;

	if (c->refused)
		return ctl_error(c->refused_msg ? c->refused_msg :
						  strerror(-c->refused),
				 -c->refused);
	req = json_tokener_parse(msg);
	if (!req || !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return ctl_error("message is not a JSON object", EINVAL);
	}
	if (!json_object_object_get_ex(req, "version", &v) ||
	    json_object_get_int(v) != TD_CONTROL_VERSION) {
		json_object_put(req);
		return ctl_error("unsupported protocol version (want 1)",
				 EPROTO);
	}
	if (!json_object_object_get_ex(req, "command", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(req);
		return ctl_error("no \"command\"", EINVAL);
	}
	cmd = json_object_get_string(v);
	for (i = 0; i < ctl->ncmds; i++)
		if (!strcmp(ctl->cmds[i].name, cmd))
			break;
	if (i == ctl->ncmds) {
		json_object_put(req);
		return ctl_error("unknown command", EOPNOTSUPP);
	}
	if (ctl->cmds[i].async_fn) {
		c->call = calloc(1, sizeof(*c->call));
		if (!c->call) {
			json_object_put(req);
			return ctl_error("out of memory", ENOMEM);
		}
		c->call->conn = c;
		c->dispatching = true;
		ctl->cmds[i].async_fn(req, c->call, ctl->cmds[i].data);
		c->dispatching = false;
		json_object_put(req);
		return NULL;
	}
	reply = json_object_new_object();
	json_object_object_add(reply, "ok", json_object_new_boolean(true));
	rc = ctl->cmds[i].fn(req, reply, &error, ctl->cmds[i].data);
	json_object_put(req);
	return rc ? ctl_failed(reply, error, rc) : reply;
}

static void ctl_reply_error(struct ctl_conn *c, const char *msg, int err)
{
	struct json_object *reply = ctl_error(msg, err);

	ctl_reply(c, reply);
	json_object_put(reply);
}

/*
 * Take the next whole message off the input and answer it (now, or later
 * through its call), or find that none can come.
 */
static void ctl_process(struct ctl_conn *c)
{
	const unsigned char *p = (const unsigned char *)c->in;
	struct json_object *reply;
	size_t len;
	char *msg;

	if (c->in_len < 4) {
		if (c->eof && c->in_len)
			ctl_reply_error(c, "truncated message", EPROTO);
		c->closing |= c->eof;
		return;
	}
	len = (size_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
	if (len > TD_CONTROL_MAX_MSG) {
		/* the rest of the stream cannot be framed: give up on it */
		ctl_reply_error(c, "message too large", EMSGSIZE);
		c->closing = true;
		return;
	}
	if (c->in_len < len + 4) {
		if (c->eof) {
			ctl_reply_error(c, "truncated message", EPROTO);
			c->closing = true;
		}
		return;
	}
	msg = strndup(c->in + 4, len);
	reply = msg ? ctl_dispatch(c, msg, len) :
		      ctl_error("out of memory", ENOMEM);
	free(msg);
	if (reply) {
		ctl_reply(c, reply);
		json_object_put(reply);
	}
	/* (an async reply given at once is already in c->out) */
	memmove(c->in, c->in + 4 + len, c->in_len - 4 - len);
	c->in_len -= 4 + len;
}

static void ctl_conn_event(struct td_watch *w, int fd, uint32_t events,
			   void *data)
{
	struct ctl_conn *c = data;
	ssize_t n;
	int rc;

	/* input is read only while nothing is owed: the buffer has room */
	if ((events & EPOLLIN) && !c->eof) {
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
		if (c->call)
			break;
		ctl_process(c);
		if (!c->out && !c->closing)
			break;
	}
	/*
	 * A peer that hung up entirely cannot take the answer still to
	 * come (and its hangup would wake us until then): drop it. One
	 * that only shut its sending side still gets it.
	 */
	if (c->call && (events & (EPOLLHUP | EPOLLERR)))
		goto close;
	td_watch_set_events(c->watch, c->call || c->eof ? 0 : EPOLLIN);
	return;
close:
	ctl_conn_free(c);
}

static void ctl_accept(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct td_control *ctl = data;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct ctl_conn *c;
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	if (ctl->peer_fn) {
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
			td_err("control connection: no peer credentials: %s",
			       strerror(errno));
			goto fail;
		}
		c->refused =
			ctl->peer_fn(&cred, &c->refused_msg, ctl->peer_data);
	}
	c->ctl = ctl;
	c->fd = cfd;
	c->watch = td_watch_add(ctl->loop, cfd, EPOLLIN, ctl_conn_event, c);
	if (!c->watch)
		goto fail;
	c->next = ctl->conns;
	ctl->conns = c;
	return;
fail:
	close(cfd);
	free(c);
}

struct td_control *td_control_new(struct td_loop *loop, const char *path)
{
	struct td_control *ctl;
	int err;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return NULL;
	ctl->loop = loop;
	ctl->path = strdup(path);
	if (!ctl->path) {
		err = -ENOMEM;
		goto fail;
	}
	/* owner only: the socket can pause and reconfigure the disk */
	ctl->fd = td_unix_listen(path, 16, 0700);
	if (ctl->fd < 0) {
		err = ctl->fd;
		goto fail;
	}
	ctl->watch = td_watch_add(loop, ctl->fd, EPOLLIN, ctl_accept, ctl);
	if (!ctl->watch) {
		err = -errno;
		close(ctl->fd);
		unlink(path);
		goto fail;
	}
	return ctl;
fail:
	td_err("control socket %s: %s", path,
	       err == -EADDRINUSE ? "another process is listening there" :
	       err == -EEXIST	  ? "exists and is not a socket" :
				    strerror(-err));
	free(ctl->path);
	free(ctl);
	errno = -err;
	return NULL;
}

int td_control_register(struct td_control *ctl, const char *command,
			td_control_fn fn, void *data)
{
	if (ctl->ncmds == CTL_MAX_COMMANDS)
		return -ENOSPC;
	ctl->cmds[ctl->ncmds++] =
		(struct ctl_command){ .name = command, .fn = fn, .data = data };
	return 0;
}

void td_control_set_peer_check(struct td_control *ctl, td_control_peer_fn fn,
			       void *data)
{
	ctl->peer_fn = fn;
	ctl->peer_data = data;
}

int td_control_register_async(struct td_control *ctl, const char *command,
			      td_control_async_fn fn, void *data)
{
	if (ctl->ncmds == CTL_MAX_COMMANDS)
		return -ENOSPC;
	ctl->cmds[ctl->ncmds++] = (struct ctl_command){ .name = command,
							.async_fn = fn,
							.data = data };
	return 0;
}

void td_control_call_reply(struct td_control_call *call,
			   struct json_object *fields, int err,
			   const char *error)
{
	struct ctl_conn *c = call->conn;
	struct json_object *reply;

	free(call);
	if (!c) {
		json_object_put(fields);
		return;
	}
	c->call = NULL;
	if (err) {
		json_object_put(fields);
		reply = ctl_error(error ? error : strerror(-err), -err);
	} else {
		reply = json_object_new_object();
		json_object_object_add(reply, "ok",
				       json_object_new_boolean(true));
		if (fields) {
			json_object_object_foreach(fields, key, val)
				json_object_object_add(reply, key,
						       json_object_get(val));
			json_object_put(fields);
		}
	}
	ctl_reply(c, reply);
	json_object_put(reply);
	/* answered from inside its handler: the caller sends it */
	if (c->dispatching)
		return;
	/*
	 * Send it, and go on with what the client sent meanwhile, from the
	 * loop: the caller may be in the middle of something the next
	 * request would change.
	 */
	td_watch_set_events(c->watch, EPOLLOUT);
}

void td_control_free(struct td_control *ctl)
{
	if (!ctl)
		return;
	while (ctl->conns)
		ctl_conn_free(ctl->conns);
	td_watch_remove(ctl->watch);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

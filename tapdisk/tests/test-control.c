// SPDX-License-Identifier: GPL-2.0-only
/*
 * The control socket: framing, dispatch and every malformed-message path,
 * through a real Unix socket served by the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "log.h"
#include "loop.h"
#include "tap.h"

static struct td_loop *loop;

static int cmd_echo(struct json_object *req, struct json_object *reply,
		    const char **error, void *data)
{
	struct json_object *v;

	(*(int *)data)++;
	if (json_object_object_get_ex(req, "fail", &v)) {
		*error = "asked to fail";
		return -EBUSY;
	}
	json_object_object_add(reply, "echo", json_object_new_string("hi"));
	return 0;
}

/* a message built at run time, gone once the handler returns */
static int cmd_named(struct json_object *req, struct json_object *reply,
		     const char **error, void *data)
{
	char msg[64];

	*error = "the static one";
	snprintf(msg, sizeof(msg), "no disk with minor %d", 7);
	json_object_object_add(reply, "error", json_object_new_string(msg));
	return -ENODEV;
}

static struct td_control_call *pending_call;

static void cmd_later(struct json_object *req, struct td_control_call *call,
		      void *data)
{
	pending_call = call;
}

static void cmd_at_once(struct json_object *req, struct td_control_call *call,
			void *data)
{
	td_control_call_reply(call, NULL, -EALREADY, "at once");
}

static void cmd_named_at_once(struct json_object *req,
			      struct td_control_call *call, void *data)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "disk %d is busy", 3);
	td_control_call_reply(call, NULL, -EBUSY, msg);
	memset(msg, 'x', sizeof(msg) - 1);
}

static const struct ucred *seen_peer;
static struct ucred seen;

static int refuse_all(const struct ucred *peer, const char **error, void *data)
{
	seen = *peer;
	seen_peer = &seen;
	*error = "go away";
	return -EACCES;
}

static bool error_is(struct json_object *r, const char *msg)
{
	struct json_object *e;

	return json_object_object_get_ex(r, "error", &e) &&
	       !strcmp(json_object_get_string(e), msg);
}

static void answer_later(struct td_loop *l, void *data)
{
	struct json_object *f = json_object_new_object();

	json_object_object_add(f, "later", json_object_new_boolean(true));
	td_control_call_reply(pending_call, f, 0, NULL);
	pending_call = NULL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		abort();
	return fd;
}

static void send_raw(int fd, const void *buf, size_t len)
{
	if (send(fd, buf, len, 0) != (ssize_t)len)
		abort();
}

static void send_msg(int fd, const char *json)
{
	size_t n = strlen(json);
	unsigned char h[4] = { n >> 24, n >> 16, n >> 8, n };

	send_raw(fd, h, 4);
	send_raw(fd, json, n);
}

/* A whole reply at the start of buf, or 0. */
static size_t frame_len(const char *buf, size_t have)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t want;

	if (have < 4)
		return 0;
	want = (size_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
	return have >= want + 4 ? want + 4 : 0;
}

/* Run the loop until a whole reply arrives; NULL if the peer closed. */
static struct json_object *recv_reply(int fd)
{
	/* bytes past one reply belong to the next: keep them */
	static char buf[70000];
	static size_t have;
	struct json_tokener *tok;
	struct json_object *r;
	size_t len;
	int spins;

	for (spins = 0; spins < 2000 && !(len = frame_len(buf, have));
	     spins++) {
		ssize_t n;

		td_loop_once(loop, 5);
		n = recv(fd, buf + have, sizeof(buf) - have - 1, 0);
		if (n == 0)
			return NULL;
		if (n > 0)
			have += n;
	}
	if (!len)
		return NULL;
	tok = json_tokener_new();
	r = json_tokener_parse_ex(tok, buf + 4, len - 4);
	json_tokener_free(tok);
	memmove(buf, buf + len, have - len);
	have -= len;
	return r;
}

static bool reply_is(struct json_object *r, bool okv, int err)
{
	struct json_object *o, *e;

	if (!r || !json_object_object_get_ex(r, "ok", &o))
		return false;
	if (json_object_get_boolean(o) != okv)
		return false;
	if (okv)
		return true;
	return json_object_object_get_ex(r, "errno", &e) &&
	       json_object_get_int(e) == err &&
	       json_object_object_get_ex(r, "error", &e);
}

int main(void)
{
	char dir[] = "/tmp/td-test-ctl.XXXXXX", path[256];
	struct td_control *ctl;
	struct json_object *r;
	struct stat st;
	int fd, calls = 0, served;
	char *big;

	td_log_open("test-control", true, LOG_CRIT);
	loop = td_loop_new();
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	ctl = td_control_new(loop, path);
	ok(ctl != NULL, "control socket listening");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700,
	   "socket is owner-only (mode %o)", st.st_mode & 0777);
	td_control_register(ctl, "echo", cmd_echo, &calls);
	td_control_register_async(ctl, "later", cmd_later, NULL);
	td_control_register_async(ctl, "now", cmd_at_once, NULL);
	td_control_register(ctl, "named", cmd_named, NULL);
	td_control_register_async(ctl, "named-now", cmd_named_at_once, NULL);

	fd = connect_to(path);
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "good command answered ok");
	json_object_put(r);
	is(calls, 1, "handler ran once");

	send_msg(fd, "{\"version\":1,\"command\":\"echo\",\"fail\":1}");
	r = recv_reply(fd);
	ok(reply_is(r, false, EBUSY), "handler error carries errno");
	json_object_put(r);
	send_msg(fd, "not json at all");
	r = recv_reply(fd);
	ok(reply_is(r, false, EINVAL), "not JSON: EINVAL");
	json_object_put(r);
	send_msg(fd, "[1,2]");
	r = recv_reply(fd);
	ok(reply_is(r, false, EINVAL), "JSON but not an object: EINVAL");
	json_object_put(r);
	send_msg(fd, "{\"version\":2,\"command\":\"echo\"}");
	r = recv_reply(fd);
	ok(reply_is(r, false, EPROTO), "wrong version: EPROTO");
	json_object_put(r);
	send_msg(fd, "{\"version\":1,\"command\":\"explode\"}");
	r = recv_reply(fd);
	ok(reply_is(r, false, EOPNOTSUPP), "unknown command: EOPNOTSUPP");
	json_object_put(r);
	send_msg(fd, "{\"version\":1}");
	r = recv_reply(fd);
	ok(reply_is(r, false, EINVAL), "no command: EINVAL");
	json_object_put(r);
	/* messages sent back to back are all answered, in order */
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	send_msg(fd, "{\"version\":1,\"command\":\"echo\",\"fail\":1}");
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "first of three pipelined");
	json_object_put(r);
	r = recv_reply(fd);
	ok(reply_is(r, false, EBUSY), "second of three pipelined");
	json_object_put(r);
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "third of three pipelined");
	json_object_put(r);

	/* an answer that comes later holds back the next message's */
	send_msg(fd, "{\"version\":1,\"command\":\"later\"}");
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	td_loop_once(loop, 5);
	td_loop_once(loop, 5);
	ok(pending_call != NULL, "async handler holds the call");
	td_timer_add(loop, 20, answer_later, NULL);
	r = recv_reply(fd);
	ok(reply_is(r, true, 0) && json_object_object_get_ex(r, "later", NULL),
	   "the later answer arrives first, with its fields");
	json_object_put(r);
	r = recv_reply(fd);
	ok(reply_is(r, true, 0) && !json_object_object_get_ex(r, "later", NULL),
	   "then the next message is answered");
	json_object_put(r);

	/* an async handler may answer before it returns */
	send_msg(fd, "{\"version\":1,\"command\":\"now\"}");
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	r = recv_reply(fd);
	ok(reply_is(r, false, EALREADY), "async answer given at once");
	json_object_put(r);
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "and the connection goes on");
	json_object_put(r);

	/* error messages made at run time */
	send_msg(fd, "{\"version\":1,\"command\":\"named\"}");
	r = recv_reply(fd);
	ok(reply_is(r, false, ENODEV) && error_is(r, "no disk with minor 7"),
	   "a handler's own \"error\" wins over the static one");
	json_object_put(r);
	send_msg(fd, "{\"version\":1,\"command\":\"named-now\"}");
	r = recv_reply(fd);
	ok(reply_is(r, false, EBUSY) && error_is(r, "disk 3 is busy"),
	   "td_control_call_reply copies its message");
	json_object_put(r);

	/* oversized: error reply, then the connection is closed */
	big = malloc(4);
	big[0] = 0x7f;
	big[1] = big[2] = big[3] = 0;
	send_raw(fd, big, 4);
	free(big);
	r = recv_reply(fd);
	ok(reply_is(r, false, EMSGSIZE), "oversized length: EMSGSIZE");
	json_object_put(r);
	ok(recv_reply(fd) == NULL, "then closed");
	close(fd);

	/* a truncated message from a client that goes away */
	fd = connect_to(path);
	send_raw(fd, "\0\0\0\x40{\"vers", 10);
	td_loop_once(loop, 5);
	close(fd);
	td_loop_once(loop, 5);
	fd = connect_to(path);
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "server still answers after a truncated "
				 "message");
	json_object_put(r);
	close(fd);

	/* a client that shuts its sending side still gets its answers */
	fd = connect_to(path);
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	send_raw(fd, "\0\0", 2);
	shutdown(fd, SHUT_WR);
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "half-closed: the whole message answered");
	json_object_put(r);
	r = recv_reply(fd);
	ok(reply_is(r, false, EPROTO) && error_is(r, "truncated message"),
	   "the partial one reported truncated");
	json_object_put(r);
	ok(recv_reply(fd) == NULL, "then closed");
	close(fd);

	/* one that hangs up while an answer is pending loses it, safely */
	fd = connect_to(path);
	send_msg(fd, "{\"version\":1,\"command\":\"later\"}");
	td_loop_once(loop, 5);
	td_loop_once(loop, 5);
	ok(pending_call != NULL, "async call pending");
	close(fd);
	td_loop_once(loop, 5);
	td_loop_once(loop, 5);
	answer_later(loop, NULL);
	fd = connect_to(path);
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	r = recv_reply(fd);
	ok(reply_is(r, true, 0), "the server goes on after a dropped answer");
	json_object_put(r);
	close(fd);

	/* a peer check that refuses everyone: each message answered so */
	td_control_set_peer_check(ctl, refuse_all, NULL);
	served = calls;
	fd = connect_to(path);
	send_msg(fd, "{\"version\":1,\"command\":\"echo\"}");
	send_msg(fd, "not even JSON");
	r = recv_reply(fd);
	ok(reply_is(r, false, EACCES) && error_is(r, "go away"),
	   "refused peer: the check's error");
	json_object_put(r);
	r = recv_reply(fd);
	ok(reply_is(r, false, EACCES), "and again for its next message");
	json_object_put(r);
	ok(seen_peer && seen.uid == getuid() && seen.pid == getpid(),
	   "the check saw the peer's uid and pid");
	close(fd);
	is(calls, served, "no handler ran for the refused peer");

	td_control_free(ctl);
	ok(access(path, F_OK) != 0, "socket removed on free");
	rmdir(dir);
	td_loop_free(loop);
	return tap_done();
}

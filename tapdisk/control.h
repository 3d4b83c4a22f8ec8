/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The control socket of a tapdisk: a Unix stream socket carrying
 * length-prefixed JSON (4-byte big-endian length, then that many bytes of
 * one JSON object with "version" and "command"). Every request gets one
 * reply: {"ok":true,...} or {"ok":false,"error":"...","errno":N}.
 */
#ifndef TD_CONTROL_H
#define TD_CONTROL_H

#include "loop.h"

#define TD_CONTROL_VERSION 1
#define TD_CONTROL_MAX_MSG (64 * 1024)

struct td_control;
struct json_object;

/*
 * A command handler fills reply (an object already holding "ok":true) and
 * returns 0, or returns -errno and sets *error to a static message. A
 * message made at run time goes into reply as "error" instead: it wins.
 */
typedef int (*td_control_fn)(struct json_object *request,
			     struct json_object *reply, const char **error,
			     void *data);

/*
 * A command answered later (pause waits for in-flight I/O): the handler
 * keeps call and, from the loop, passes it to td_control_call_reply()
 * exactly once (the connection goes on from the loop, never inside this
 * call). The connection's next message waits until then. A
 * client that hangs up meanwhile loses the answer; one that only shuts
 * its sending side still gets it.
 */
struct td_control_call;
struct ucred;
typedef void (*td_control_async_fn)(struct json_object *request,
				    struct td_control_call *call, void *data);

/*
 * Whether to serve a peer, from its credentials when it connects: 0, or
 * -errno and a static *error that answers every message it sends.
 */
typedef int (*td_control_peer_fn)(const struct ucred *peer, const char **error,
				  void *data);

struct td_control *td_control_new(struct td_loop *loop, const char *path);
/* Connections from then on get the check; without one, all are served. */
void td_control_set_peer_check(struct td_control *ctl, td_control_peer_fn fn,
			       void *data);
int td_control_register(struct td_control *ctl, const char *command,
			td_control_fn fn, void *data);
int td_control_register_async(struct td_control *ctl, const char *command,
			      td_control_async_fn fn, void *data);
/*
 * err 0: {"ok":true} plus the members of fields (NULL for none; taken
 * over); else an error reply with error (copied: it may be built at run
 * time; NULL for strerror) and -err as errno.
 */
void td_control_call_reply(struct td_control_call *call,
			   struct json_object *fields, int err,
			   const char *error);
/* Closes every connection and unlinks the socket. */
void td_control_free(struct td_control *ctl);

/* Framing helpers, shared with clients of the protocol. */
int td_control_frame(struct json_object *msg, char **buf, size_t *len);

#endif

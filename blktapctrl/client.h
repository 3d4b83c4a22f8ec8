/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The client side of the control protocol (tapdisk's and blktapctrl's
 * sockets speak the same one): connect, send one framed request, read one
 * framed reply, all bounded by a timeout so that a hung peer cannot hang
 * its caller. blktapctrl waits for its tapdisks on its loop; tap-ctl and
 * the daemon's start-up simply wait.
 */
#ifndef CTL_CLIENT_H
#define CTL_CLIENT_H

struct json_object;
struct td_loop;
struct ctl_acall;

/*
 * rc 0 with the reply (which may say "ok":false: the callee reads it and
 * owns it), or -errno: -ETIMEDOUT, -EPROTO on a reply that is not one
 * framed JSON object, or what the socket said.
 */
typedef void (*ctl_reply_fn)(int rc, struct json_object *reply, void *data);

/*
 * Send request (which gets "version" added, and is consumed) to the
 * socket at path and call fn from loop with the reply, at most timeout_ms
 * later. NULL with errno when it cannot even connect (ENOENT or
 * ECONNREFUSED when nothing listens); fn is not called then.
 */
struct ctl_acall *ctl_call_async(struct td_loop *loop, const char *path,
				 struct json_object *request, int timeout_ms,
				 ctl_reply_fn fn, void *data);
/* Forget a call in flight: its fn is not called. */
void ctl_call_cancel(struct ctl_acall *a);

/* The same, waited for: 0 with *reply set, or -errno. */
int ctl_call(const char *path, struct json_object *request, int timeout_ms,
	     struct json_object **reply);

/* A request object {"command": command} to add arguments to. */
struct json_object *ctl_request(const char *command);

/* The reply's "error" string, or a fallback when it has none. */
const char *ctl_reply_error(struct json_object *reply);
/* The reply's "ok" member is true. */
int ctl_reply_ok(struct json_object *reply);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The client side of the control protocol (tapdisk's and blktapctrl's
 * sockets speak the same one): connect, send one framed request, read one
 * framed reply, all bounded by a timeout so that a hung peer cannot hang
 * its caller.
 */
#ifndef CTL_CLIENT_H
#define CTL_CLIENT_H

struct json_object;

/*
 * Send request (which gets "version" added, and is consumed) to the socket at path and
 * wait at most timeout_ms for the reply. Returns 0 with *reply set (which
 * may say "ok":false: the caller reads it), or -errno: -ENOENT or
 * -ECONNREFUSED when nothing listens, -ETIMEDOUT, -EPROTO on a reply that
 * is not one framed JSON object.
 */
int ctl_call(const char *path, struct json_object *request, int timeout_ms,
	     struct json_object **reply);

/* A request object {"command": command} to add arguments to. */
struct json_object *ctl_request(const char *command);

/* The reply's "error" string, or a fallback when it has none. */
const char *ctl_reply_error(struct json_object *reply);
/* The reply's "ok" member is true. */
int ctl_reply_ok(struct json_object *reply);

#endif

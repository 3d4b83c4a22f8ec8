/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The NBD export: a fixed-newstyle NBD server (NetworkBlockDevice
 * doc/proto.md) serving one vbd on a Unix or TCP socket, inside the
 * tapdisk event loop.
 */
#ifndef NBD_H
#define NBD_H

#include <stdbool.h>

#include "loop.h"

struct td_vbd;
struct nbd_server;

struct nbd_server_opts {
	const char *export_name; /* "" if NULL; clients may ask for "" too */
	const char *description; /* optional NBD_INFO_DESCRIPTION */
	bool readonly; /* export read-only even if the vbd is writable */
};

/*
 * addr: "unix:PATH" or "tcp:[HOST]:PORT" (HOST defaults to 127.0.0.1;
 * IPv6 as [::1]:PORT; port 0 picks a free one). Returns NULL with errno,
 * having logged the address and the reason.
 */
struct nbd_server *nbd_server_new(struct td_loop *loop, struct td_vbd *vbd,
				  const char *addr,
				  const struct nbd_server_opts *opts);
/* The bound address, e.g. "tcp:127.0.0.1:10809" or "unix:/run/x.sock". */
const char *nbd_server_address(const struct nbd_server *srv);
unsigned nbd_server_clients(const struct nbd_server *srv);
/*
 * Stop accepting; let every connection finish its in-flight requests and
 * send their replies; close them; then call done (at once if idle).
 */
void nbd_server_shutdown(struct nbd_server *srv, td_loop_fn done,
			 void *data);
/* Unlinks a Unix socket it created. */
void nbd_server_free(struct nbd_server *srv);

#endif

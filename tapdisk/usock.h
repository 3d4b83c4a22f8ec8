/* SPDX-License-Identifier: GPL-2.0-only */
/* Listening Unix stream sockets, shared by the NBD export and control. */
#ifndef TD_USOCK_H
#define TD_USOCK_H

#include <sys/types.h>

/*
 * Listen on PATH: bound and listening under a temporary name, then renamed
 * into place, so a client that sees the file can connect at once. A stale
 * socket file is replaced; a live one (something accepts there) is refused
 * with -EADDRINUSE, anything that is not a socket with -EEXIST. mode is
 * the socket file's permissions. Returns a non-blocking fd or -errno.
 */
int td_unix_listen(const char *path, int backlog, mode_t mode);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* What a long-running blktap program needs: detaching and stop signals. */
#ifndef TD_DAEMON_H
#define TD_DAEMON_H

#include "loop.h"

/*
 * Detach: fork, and let the parent wait until the child reports with
 * td_daemon_ready(), then exit with the child's status, so that when the
 * command returns the service is there. Call it before creating the loop
 * (epoll and io_uring do not survive a fork well). Returns the readiness
 * fd in the child, or -errno.
 */
int td_daemonize(void);
/*
 * Report status (0 ready, else the exit status) to the waiting parent and
 * point stdio at /dev/null; until then errors reach the terminal. fd < 0:
 * not detached, nothing to do.
 */
void td_daemon_ready(int fd, char status);

/*
 * SIGTERM and SIGINT through a signalfd watched by the loop (fn gets the
 * signalfd readable), SIGPIPE ignored. Returns the signalfd or -errno.
 */
int td_daemon_signals(struct td_loop *loop, td_watch_fn fn, void *data,
		      struct td_watch **watch);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Private to the I/O engine: the vtable between the engine-independent part
 * (io.c: queueing, accounting, continuation of short transfers) and its
 * back ends (io-uring.c, io-aio.c). Nothing outside those files includes it.
 */
#ifndef TD_IO_ENGINE_H
#define TD_IO_ENGINE_H

#include <stdbool.h>

#include "io.h"
#include "loop.h"

struct td_ioengine;

struct td_io_backend {
	const char *name;
	/*
	 * Set up for io->depth blocks in flight and make completions signal
	 * io->efd. Returns 0 or -errno.
	 */
	int (*init)(struct td_ioengine *io);
	void (*fini)(struct td_ioengine *io);
	/*
	 * Start n blocks with as few syscalls as possible (one, normally).
	 * Each block reads cb->cur_iov/cur_iovcnt at cb->offset +
	 * cb->done_bytes. Returns how many of them the back end took: those
	 * are now in flight, or already finished with td_io_finish_later().
	 * Fewer than n means the kernel is short of resources for now; the
	 * back end then leaves the ones it did not take at the end of cbs[],
	 * in their order. It may also take blocks but keep them back from the
	 * kernel for the same reason: it sets be_backlog, and is called again
	 * soon, with n == 0 if nothing new is queued.
	 */
	unsigned (*submit)(struct td_ioengine *io, struct td_iocb **cbs,
			   unsigned n);
	/*
	 * Hand every completion available now to td_io_complete(), without
	 * waiting. Returns how many there were.
	 */
	unsigned (*reap)(struct td_ioengine *io);
};

struct td_ioengine {
	struct td_loop *loop;
	const struct td_io_backend *be;
	void *be_priv;
	unsigned depth;
	int efd; /* eventfd the back end signals on completion */
	struct td_watch *watch;

	/* queued, not yet given to the back end */
	struct td_iocb *pend_head, *pend_tail;
	unsigned pending;
	/* taken by the back end and not yet finished */
	unsigned inflight;

	/* finished without a kernel completion: reported from a defer */
	struct td_iocb *ready_head, *ready_tail;
	struct td_defer ready_defer;

	struct td_iocb **batch; /* depth entries, for submit() */
	long retry_timer;
	bool be_backlog;
};

extern const struct td_io_backend td_io_uring_backend;
extern const struct td_io_backend td_io_aio_backend;

/* A kernel completion for cb: res is bytes transferred or -errno. */
void td_io_complete(struct td_ioengine *io, struct td_iocb *cb, long res);
/*
 * Finish cb with res from a deferred call rather than inline, for results
 * known during submit (synchronous fallbacks, errors the submit syscall
 * returns), so that no caller of td_io_submit() is re-entered.
 */
void td_io_finish_later(struct td_ioengine *io, struct td_iocb *cb, long res);

#endif

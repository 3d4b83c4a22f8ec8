// SPDX-License-Identifier: GPL-2.0-only
/*
 * The engine-independent half of the I/O engine: picks a back end, keeps
 * the blocks that do not fit in the kernel's depth, submits the whole batch
 * of a loop iteration from the loop's prepare hook, and turns the kernel's
 * short transfers into whole ones before anybody's done() sees them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io-engine.h"
#include "log.h"

#define IO_DEFAULT_DEPTH 128
#define IO_MAX_DEPTH 4096
/* how long to wait before retrying when the kernel refused a batch */
#define IO_RETRY_MS 1

static void io_finish(struct td_iocb *cb, long res)
{
	free(cb->own_iov);
	cb->own_iov = NULL;
	cb->done(cb, res);
}

static void io_push_front(struct td_ioengine *io, struct td_iocb *cb)
{
	cb->next = io->pend_head;
	io->pend_head = cb;
	if (!io->pend_tail)
		io->pend_tail = cb;
	io->pending++;
}

/*
 * Move past res transferred bytes. The caller's iovec array is never
 * touched: the first short transfer makes a private copy.
 */
static int io_advance(struct td_iocb *cb, long res)
{
	if (!cb->own_iov) {
		size_t sz = (size_t)cb->cur_iovcnt * sizeof(*cb->own_iov);

		cb->own_iov = malloc(sz);
		if (!cb->own_iov)
			return -ENOMEM;
		memcpy(cb->own_iov, cb->cur_iov, sz);
		cb->cur_iov = cb->own_iov;
	}
	while (cb->cur_iovcnt && (size_t)res >= cb->cur_iov->iov_len) {
		res -= cb->cur_iov->iov_len;
		cb->cur_iov++;
		cb->cur_iovcnt--;
	}
	if (cb->cur_iovcnt) {
		cb->cur_iov->iov_base = (char *)cb->cur_iov->iov_base + res;
		cb->cur_iov->iov_len -= res;
	}
	return 0;
}

static uint64_t io_remaining(const struct td_iocb *cb)
{
	uint64_t left = 0;
	int i;

	for (i = 0; i < cb->cur_iovcnt; i++)
		left += cb->cur_iov[i].iov_len;
	return left;
}

void td_io_complete(struct td_ioengine *io, struct td_iocb *cb, long res)
{
	io->inflight--;
	if (res == -EAGAIN || res == -EINTR) {
		io_push_front(io, cb);
		return;
	}
	if (res < 0 || (cb->op != TD_IO_READ && cb->op != TD_IO_WRITE)) {
		io_finish(cb, res);
		return;
	}
	if (res == 0) {
		/* a read of 0 is end of file; a write of 0 would never end */
		if (cb->op == TD_IO_READ || !io_remaining(cb))
			io_finish(cb, (long)cb->done_bytes);
		else
			io_finish(cb, -EIO);
		return;
	}
	cb->done_bytes += res;
	if (io_advance(cb, res))
		io_finish(cb, -ENOMEM);
	else if (!io_remaining(cb))
		io_finish(cb, (long)cb->done_bytes);
	else
		io_push_front(io, cb);
}

static void io_run_ready(struct td_loop *loop, void *data)
{
	struct td_ioengine *io = data;
	struct td_iocb *cb = io->ready_head;

	io->ready_head = io->ready_tail = NULL;
	while (cb) {
		struct td_iocb *next = cb->next;

		td_io_complete(io, cb, (long)cb->done_bytes);
		cb = next;
	}
}

void td_io_finish_later(struct td_ioengine *io, struct td_iocb *cb, long res)
{
	/* a finished block needs no progress count: keep its result there */
	cb->done_bytes = (uint64_t)res;
	cb->next = NULL;
	if (io->ready_tail)
		io->ready_tail->next = cb;
	else
		io->ready_head = cb;
	io->ready_tail = cb;
	td_loop_defer(io->loop, &io->ready_defer, io_run_ready, io);
}

void td_io_queue(struct td_ioengine *io, struct td_iocb *cb)
{
	cb->next = NULL;
	cb->done_bytes = 0;
	cb->cur_iov = cb->iov;
	cb->cur_iovcnt = cb->iovcnt;
	cb->own_iov = NULL;
	if (io->pend_tail)
		io->pend_tail->next = cb;
	else
		io->pend_head = cb;
	io->pend_tail = cb;
	io->pending++;
}

/* Waking the loop is all it takes: the prepare hook submits again. */
static void io_retry(struct td_loop *loop, void *data)
{
	struct td_ioengine *io = data;

	io->retry_timer = 0;
}

void td_io_submit(struct td_ioengine *io)
{
	unsigned n = 0, taken, i;

	while (io->pend_head && io->inflight + n < io->depth) {
		struct td_iocb *cb = io->pend_head;

		io->pend_head = cb->next;
		cb->next = NULL;
		io->batch[n++] = cb;
	}
	if (!io->pend_head)
		io->pend_tail = NULL;
	if (!n && !io->be_backlog)
		return;
	io->pending -= n;
	io->inflight += n;
	taken = io->be->submit(io, io->batch, n);
	if (taken == n && !io->be_backlog)
		return;
	/* the back end left the ones it did not take at the end, in order */
	for (i = n; i > taken; i--) {
		io->inflight--;
		io_push_front(io, io->batch[i - 1]);
	}
	if (!io->retry_timer) {
		long id = td_timer_add(io->loop, IO_RETRY_MS, io_retry, io);

		io->retry_timer = id > 0 ? id : 0;
	}
}

static void io_clear_eventfd(struct td_ioengine *io)
{
	uint64_t v;

	/* non-blocking: EAGAIN just means nobody signalled */
	if (read(io->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		td_warn("io engine: reading its eventfd: %s", strerror(errno));
}

/*
 * Before each wait: reap what completed meanwhile (on io_uring this costs
 * no syscall) so that its follow-up I/O joins this batch, then submit.
 * The eventfd is cleared before the final reap, never after, so that a
 * completion arriving in between still wakes the loop.
 */
static void io_prepare(struct td_loop *loop, void *data)
{
	struct td_ioengine *io = data;

	if (io->inflight && io->be->reap(io)) {
		io_clear_eventfd(io);
		while (io->be->reap(io))
			;
	}
	td_io_submit(io);
}

static void io_wake(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct td_ioengine *io = data;

	io_clear_eventfd(io);
	while (io->be->reap(io))
		;
}

static int io_try(struct td_ioengine *io, const struct td_io_backend *be)
{
	int err;

	io->be = be;
	err = be->init(io);
	if (err)
		io->be = NULL;
	return err;
}

static int io_pick(struct td_ioengine *io, enum td_io_kind kind)
{
	int err;

	switch (kind) {
	case TD_IO_URING:
		err = io_try(io, &td_io_uring_backend);
		if (err)
			td_err("io engine: io_uring requested but unavailable: %s",
			       strerror(-err));
		return err;
	case TD_IO_LIBAIO:
		err = io_try(io, &td_io_aio_backend);
		if (err)
			td_err("io engine: libaio setup failed: %s",
			       strerror(-err));
		return err;
	case TD_IO_AUTO:
		err = io_try(io, &td_io_uring_backend);
		if (!err)
			return 0;
		/* containers often forbid io_uring; libaio always works */
		td_info("io engine: io_uring unavailable (%s), trying libaio",
			strerror(-err));
		err = io_try(io, &td_io_aio_backend);
		if (err)
			td_err("io engine: neither io_uring nor libaio: %s",
			       strerror(-err));
		return err;
	}
	td_err("io engine: unknown kind %d", (int)kind);
	return -EINVAL;
}

struct td_ioengine *td_io_new(struct td_loop *loop, enum td_io_kind kind,
			      unsigned depth)
{
	struct td_ioengine *io;
	int err;

	io = calloc(1, sizeof(*io));
	if (!io)
		return NULL;
	io->loop = loop;
	io->efd = -1;
	io->depth = depth ? depth : IO_DEFAULT_DEPTH;
	if (io->depth > IO_MAX_DEPTH)
		io->depth = IO_MAX_DEPTH;
	io->batch = calloc(io->depth, sizeof(*io->batch));
	if (!io->batch) {
		err = -ENOMEM;
		goto fail;
	}
	io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->efd < 0) {
		err = -errno;
		td_err("io engine: eventfd: %s", strerror(-err));
		goto fail;
	}
	err = io_pick(io, kind);
	if (err)
		goto fail;
	io->watch = td_watch_add(loop, io->efd, EPOLLIN, io_wake, io);
	if (!io->watch) {
		err = -errno;
		td_err("io engine: watching its eventfd: %s", strerror(-err));
		goto fail_be;
	}
	err = td_loop_add_prepare(loop, io_prepare, io);
	if (err) {
		td_err("io engine: adding the prepare hook: %s",
		       strerror(-err));
		goto fail_watch;
	}
	td_info("io engine: %s, depth %u", io->be->name, io->depth);
	return io;

fail_watch:
	td_watch_remove(io->watch);
fail_be:
	io->be->fini(io);
fail:
	if (io->efd >= 0)
		close(io->efd);
	free(io->batch);
	free(io);
	errno = -err;
	return NULL;
}

static void io_free_late(struct td_loop *loop, void *data)
{
	struct td_ioengine *io = data;

	free(io->batch);
	free(io);
}

void td_io_free(struct td_ioengine *io)
{
	if (!io)
		return;
	if (td_io_busy(io))
		td_warn("io engine: freed with %u blocks unfinished; they will never complete",
			td_io_busy(io));
	td_loop_del_prepare(io->loop, io_prepare, io);
	td_watch_remove(io->watch);
	if (io->retry_timer)
		td_timer_cancel(io->loop, io->retry_timer);
	io->be->fini(io);
	close(io->efd);
	/* a queued deferred call cannot be withdrawn: it frees us instead */
	if (io->ready_defer.queued) {
		io->ready_defer.fn = io_free_late;
		return;
	}
	io_free_late(io->loop, io);
}

const char *td_io_name(const struct td_ioengine *io)
{
	return io->be->name;
}

unsigned td_io_busy(const struct td_ioengine *io)
{
	return io->pending + io->inflight;
}

unsigned td_io_pending(const struct td_ioengine *io)
{
	return io->pending;
}

int td_io_kind_parse(const char *s, enum td_io_kind *kind)
{
	if (!s)
		return -EINVAL;
	if (!strcasecmp(s, "auto"))
		*kind = TD_IO_AUTO;
	else if (!strcasecmp(s, "io_uring") || !strcasecmp(s, "uring"))
		*kind = TD_IO_URING;
	else if (!strcasecmp(s, "libaio") || !strcasecmp(s, "aio"))
		*kind = TD_IO_LIBAIO;
	else
		return -EINVAL;
	return 0;
}

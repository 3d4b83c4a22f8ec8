// SPDX-License-Identifier: GPL-2.0-only
/*
 * The libaio back end, for hosts where io_uring is missing or forbidden.
 * One kernel iocb per block in flight, from a fixed pool of the engine's
 * depth; every iocb signals the engine's eventfd on completion.
 */
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io-engine.h"
#include "log.h"

struct aio_priv {
	io_context_t ctx;
	struct iocb *iocbs;
	struct iocb **free; /* stack of unused iocbs */
	unsigned nfree;
	struct iocb **batch;
	struct io_event *events;
};

static void aio_release(struct aio_priv *p)
{
	free(p->iocbs);
	free(p->free);
	free(p->batch);
	free(p->events);
	free(p);
}

static int aio_init(struct td_ioengine *io)
{
	struct aio_priv *p = calloc(1, sizeof(*p));
	unsigned i;
	int err;

	if (!p)
		return -ENOMEM;
	p->iocbs = calloc(io->depth, sizeof(*p->iocbs));
	p->free = calloc(io->depth, sizeof(*p->free));
	p->batch = calloc(io->depth, sizeof(*p->batch));
	p->events = calloc(io->depth, sizeof(*p->events));
	if (!p->iocbs || !p->free || !p->batch || !p->events) {
		aio_release(p);
		return -ENOMEM;
	}
	err = io_setup((int)io->depth, &p->ctx);
	if (err < 0) {
		aio_release(p);
		return err;
	}
	for (i = 0; i < io->depth; i++)
		p->free[i] = &p->iocbs[i];
	p->nfree = io->depth;
	io->be_priv = p;
	return 0;
}

static void aio_fini(struct td_ioengine *io)
{
	struct aio_priv *p = io->be_priv;

	io_destroy(p->ctx);
	aio_release(p);
	io->be_priv = NULL;
}

static void aio_prep(struct iocb *iocb, struct td_iocb *cb, int efd)
{
	long long off = (long long)(cb->offset + cb->done_bytes);

	switch (cb->op) {
	case TD_IO_READ:
		io_prep_preadv(iocb, cb->fd, cb->cur_iov, cb->cur_iovcnt, off);
		break;
	case TD_IO_WRITE:
		io_prep_pwritev2(iocb, cb->fd, cb->cur_iov, cb->cur_iovcnt, off,
				 cb->flags & TD_IO_DSYNC ? RWF_DSYNC : 0);
		break;
	case TD_IO_FSYNC:
		io_prep_fdsync(iocb, cb->fd);
		break;
	case TD_IO_FALLOCATE:
		/* handled synchronously by aio_submit */
		break;
	}
	io_set_eventfd(iocb, efd);
	iocb->data = cb;
}

static unsigned aio_submit(struct td_ioengine *io, struct td_iocb **cbs,
			   unsigned n)
{
	struct aio_priv *p = io->be_priv;
	unsigned i, k = 0, done = 0, rest;
	int ret;

	for (i = 0; i < n; i++) {
		struct td_iocb *cb = cbs[i];
		struct iocb *iocb;

		if (cb->op == TD_IO_FALLOCATE) {
			/*
			 * Linux AIO has no fallocate command. It is a quick
			 * metadata call on every filesystem we serve from, so
			 * it runs here and reports through the loop like any
			 * other completion.
			 */
			ret = fallocate(cb->fd, cb->mode, (off_t)cb->offset,
					(off_t)cb->len);
			td_io_finish_later(io, cb, ret < 0 ? -errno : 0);
			continue;
		}
		iocb = p->free[--p->nfree];
		aio_prep(iocb, cb, io->efd);
		p->batch[k++] = iocb;
	}
	while (done < k) {
		ret = io_submit(p->ctx, (long)(k - done), p->batch + done);
		if (ret > 0) {
			done += (unsigned)ret;
		} else if (ret == -EINTR) {
			continue;
		} else if (ret == -EAGAIN || ret == 0) {
			break;
		} else {
			/* the first iocb of the rest was refused outright */
			struct iocb *bad = p->batch[done++];

			p->free[p->nfree++] = bad;
			td_io_finish_later(io, bad->data, ret);
		}
	}
	/* every cbs[] entry has been read: reuse its tail for the leftovers */
	rest = k - done;
	for (i = 0; i < rest; i++) {
		struct iocb *iocb = p->batch[done + i];

		cbs[n - rest + i] = iocb->data;
		p->free[p->nfree++] = iocb;
	}
	return n - rest;
}

static unsigned aio_reap(struct td_ioengine *io)
{
	struct aio_priv *p = io->be_priv;
	/* a zero timeout makes libaio check the ring without a syscall */
	struct timespec zero = { 0, 0 };
	unsigned total = 0;
	int n, i;

	for (;;) {
		n = io_getevents(p->ctx, 0, (long)io->depth, p->events, &zero);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			break;
		for (i = 0; i < n; i++)
			p->free[p->nfree++] = p->events[i].obj;
		/*
		 * A done() may submit and so reuse those iocbs: the block
		 * comes from the event's copy of iocb->data, not the iocb.
		 */
		for (i = 0; i < n; i++)
			td_io_complete(io, p->events[i].data,
				       (long)p->events[i].res);
		total += (unsigned)n;
	}
	if (n < 0)
		td_err("io engine: io_getevents: %s", strerror(-n));
	return total;
}

const struct td_io_backend td_io_aio_backend = {
	.name = "libaio",
	.init = aio_init,
	.fini = aio_fini,
	.submit = aio_submit,
	.reap = aio_reap,
};

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The io_uring back end: one ring per engine, sized to the engine's depth,
 * so the submission queue can never overflow (the engine never has more
 * than depth blocks taken) and the completion queue, twice as deep, never
 * overflows either.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "io-engine.h"
#include "log.h"

#define URING_REAP_BATCH 64

struct uring_priv {
	struct io_uring ring;
};

static int uring_init(struct td_ioengine *io)
{
	const char *force = getenv("TD_IO_FORCE_FAIL_URING");
	struct uring_priv *p;
	int err;

	/* lets tests exercise the fallback on hosts where io_uring works */
	if (force && !strcmp(force, "1"))
		return -ENOSYS;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	/*
	 * One thread submits and reaps, so completions need not interrupt
	 * it: their task work runs when it next enters the kernel.
	 */
	err = io_uring_queue_init(io->depth, &p->ring,
				  IORING_SETUP_SINGLE_ISSUER |
					  IORING_SETUP_COOP_TASKRUN);
	if (err == -EINVAL)
		err = io_uring_queue_init(io->depth, &p->ring, 0);
	if (err < 0) {
		free(p);
		return err;
	}
	err = io_uring_register_eventfd(&p->ring, io->efd);
	if (err < 0) {
		io_uring_queue_exit(&p->ring);
		free(p);
		return err;
	}
	/* saves the ring's fd lookup on every io_uring_enter() */
	io_uring_register_ring_fd(&p->ring);
	io->be_priv = p;
	return 0;
}

static void uring_fini(struct td_ioengine *io)
{
	struct uring_priv *p = io->be_priv;

	io_uring_queue_exit(&p->ring);
	free(p);
	io->be_priv = NULL;
}

static void uring_prep(struct io_uring_sqe *sqe, struct td_iocb *cb)
{
	uint64_t off = cb->offset + cb->done_bytes;

	switch (cb->op) {
	case TD_IO_READ:
		if (cb->cur_iovcnt == 1)
			io_uring_prep_read(sqe, cb->fd, cb->cur_iov->iov_base,
					   cb->cur_iov->iov_len, off);
		else
			io_uring_prep_readv(sqe, cb->fd, cb->cur_iov,
					    cb->cur_iovcnt, off);
		break;
	case TD_IO_WRITE:
		if (cb->cur_iovcnt == 1)
			io_uring_prep_write(sqe, cb->fd, cb->cur_iov->iov_base,
					    cb->cur_iov->iov_len, off);
		else
			io_uring_prep_writev(sqe, cb->fd, cb->cur_iov,
					     cb->cur_iovcnt, off);
		if (cb->flags & TD_IO_DSYNC)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case TD_IO_FSYNC:
		io_uring_prep_fsync(sqe, cb->fd, IORING_FSYNC_DATASYNC);
		break;
	case TD_IO_FALLOCATE:
		io_uring_prep_fallocate(sqe, cb->fd, cb->mode,
					(off_t)cb->offset, (off_t)cb->len);
		break;
	}
	io_uring_sqe_set_data(sqe, cb);
}

static unsigned uring_submit(struct td_ioengine *io, struct td_iocb **cbs,
			     unsigned n)
{
	struct uring_priv *p = io->be_priv;
	unsigned i;
	int ret;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

		if (!sqe)
			break;
		uring_prep(sqe, cbs[i]);
	}
	ret = io_uring_submit(&p->ring);
	if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR)
		td_err("io engine: io_uring_submit: %s; retrying",
		       strerror(-ret));
	/*
	 * Entries the kernel did not consume stay in the ring and go with
	 * the next io_uring_enter(): they are taken, just not started yet.
	 */
	io->be_backlog = io_uring_sq_ready(&p->ring) > 0;
	return i;
}

static unsigned uring_reap(struct td_ioengine *io)
{
	struct uring_priv *p = io->be_priv;
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct td_iocb *cbs[URING_REAP_BATCH];
	long res[URING_REAP_BATCH];
	unsigned n, i, total = 0;

	do {
		n = io_uring_peek_batch_cqe(&p->ring, cqes, URING_REAP_BATCH);
		for (i = 0; i < n; i++) {
			cbs[i] = io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
		}
		/* give the ring its slots back before anyone queues more */
		io_uring_cq_advance(&p->ring, n);
		for (i = 0; i < n; i++)
			td_io_complete(io, cbs[i], res[i]);
		total += n;
	} while (n == URING_REAP_BATCH);
	return total;
}

const struct td_io_backend td_io_uring_backend = {
	.name = "io_uring",
	.init = uring_init,
	.fini = uring_fini,
	.submit = uring_submit,
	.reap = uring_reap,
};

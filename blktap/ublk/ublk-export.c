// SPDX-License-Identifier: GPL-2.0-only
/*
 * The ublk export's queue: one per device (tapdisk is single-threaded),
 * UBLK_QUEUE_DEPTH tags. For every tag a fetch command waits in the
 * kernel; when it completes, the tag's descriptor (in memory mapped from
 * /dev/ublkcN) says what the block layer wants, with the data in the
 * buffer we gave for that tag. The request goes to the vbd; its answer
 * goes back in a commit-and-fetch command that also waits for the tag's
 * next request. Commands are queued during a loop iteration and submitted
 * together from the loop's prepare hook.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ublk-int.h"
#include "vbd.h"

/* devtmpfs makes the char device as the device is added; allow a little */
#define UBLK_CDEV_WAIT_MS 2000

const char *ublk_export_path(const struct ublk_export *exp)
{
	return exp->path;
}

int ublk_export_id(const struct ublk_export *exp)
{
	return exp->dev_id;
}

unsigned ublk_export_inflight(const struct ublk_export *exp)
{
	return exp->serving;
}

static void ublk_set_path(struct ublk_export *exp)
{
	snprintf(exp->path, sizeof(exp->path), "/dev/ublkb%d", exp->dev_id);
}

static void ublk_queue_cmd(struct ublk_io *io, unsigned op, int result)
{
	struct ublk_export *exp = io->exp;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&exp->q);
	struct ublksrv_io_cmd cmd = {
		.q_id = 0,
		.tag = io->tag,
		.result = result,
		.addr = (__u64)(uintptr_t)io->buf,
	};

	/* the ring has a slot for every tag, and a tag has one command */
	if (!sqe) {
		td_err("%s: no submission slot for tag %u", exp->path, io->tag);
		return;
	}
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, exp->cdev_fd, NULL, 0, 0);
	sqe->cmd_op = op;
	memcpy(sqe->cmd, &cmd, sizeof(cmd));
	io_uring_sqe_set_data64(sqe, io->tag);
}

static void ublk_check_stopped(struct ublk_export *exp);

static void ublk_io_done(struct td_request *req, int err)
{
	struct ublk_io *io = req->data;
	struct ublk_export *exp = io->exp;
	int res = 0;

	exp->serving--;
	if (err) {
		td_warn("%s: %s of %llu bytes at %llu failed: %s", exp->path,
			td_op_name(req->op), (unsigned long long)req->len,
			(unsigned long long)req->offset, strerror(-err));
		res = err;
	} else if (req->op == TD_OP_READ || req->op == TD_OP_WRITE) {
		/* the kernel completes as many bytes as we say */
		res = req->len;
	}
	if (exp->q_ring)
		ublk_queue_cmd(io, UBLK_U_IO_COMMIT_AND_FETCH_REQ, res);
	ublk_check_stopped(exp);
}

/* A fetch completed with a request for io's tag: hand it to the vbd. */
static void ublk_io_start(struct ublk_io *io)
{
	struct ublk_export *exp = io->exp;
	struct ublksrv_io_desc d = exp->iod[io->tag];
	unsigned flags = ublksrv_get_flags(&d);
	struct td_request *req = &io->req;

	*req = (struct td_request){
		.offset = d.start_sector << 9,
		.len = (uint64_t)d.nr_sectors << 9,
		.done = ublk_io_done,
		.data = io,
	};
	switch (ublksrv_get_op(&d)) {
	case UBLK_IO_OP_READ:
		req->op = TD_OP_READ;
		break;
	case UBLK_IO_OP_WRITE:
		req->op = TD_OP_WRITE;
		if (flags & UBLK_IO_F_FUA)
			req->flags |= TD_REQ_FUA;
		break;
	case UBLK_IO_OP_FLUSH:
		req->op = TD_OP_FLUSH;
		break;
	case UBLK_IO_OP_DISCARD:
		req->op = TD_OP_DISCARD;
		break;
	case UBLK_IO_OP_WRITE_ZEROES:
		req->op = TD_OP_WRITE_ZEROES;
		if (flags & UBLK_IO_F_NOUNMAP)
			req->flags |= TD_REQ_NO_HOLE;
		break;
	default:
		ublk_queue_cmd(io, UBLK_U_IO_COMMIT_AND_FETCH_REQ, -EOPNOTSUPP);
		return;
	}
	if (req->op == TD_OP_READ || req->op == TD_OP_WRITE) {
		if (req->len > exp->max_io) {
			ublk_queue_cmd(io, UBLK_U_IO_COMMIT_AND_FETCH_REQ,
				       -EIO);
			return;
		}
		io->iov.iov_base = io->buf;
		io->iov.iov_len = req->len;
		req->iov = &io->iov;
		req->iovcnt = 1;
	}
	exp->serving++;
	td_vbd_submit(exp->vbd, req);
}

static void ublk_queue_reap(struct ublk_export *exp)
{
	struct io_uring_cqe *cqe;
	struct ublk_io *io;
	int res;

	while (exp->q_ring && io_uring_peek_cqe(&exp->q, &cqe) == 0) {
		io = &exp->ios[cqe->user_data % exp->depth];
		res = cqe->res;
		io_uring_cqe_seen(&exp->q, cqe);
		if (res == UBLK_IO_RES_OK) {
			ublk_io_start(io);
			continue;
		}
		/* an abort is the kernel stopping the queue; else a bug */
		if (res != UBLK_IO_RES_ABORT)
			td_err("%s: command for tag %u failed: %s", exp->path,
			       io->tag, strerror(-res));
	}
}

static void ublk_submit(struct td_loop *loop, void *data)
{
	struct ublk_export *exp = data;
	int rc;

	ublk_ctrl_reap(exp);
	ublk_queue_reap(exp);
	if (!exp->q_ring || !io_uring_sq_ready(&exp->q))
		return;
	rc = io_uring_submit(&exp->q);
	if (rc < 0)
		td_err("%s: io_uring_submit: %s", exp->path, strerror(-rc));
}

static void ublk_event(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct ublk_export *exp = data;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		td_warn("%s: reading the eventfd: %s", exp->path,
			strerror(errno));
	ublk_ctrl_reap(exp);
	ublk_queue_reap(exp);
}

/* The char device, its descriptors, our buffers, the queue's ring. */
static int ublk_queue_open(struct ublk_export *exp)
{
	struct timespec pause = { 0, 10 * 1000000L };
	long page = sysconf(_SC_PAGESIZE);
	char cdev[32];
	unsigned i, waited;
	int rc;

	snprintf(cdev, sizeof(cdev), "/dev/ublkc%d", exp->dev_id);
	for (waited = 0;; waited += 10) {
		exp->cdev_fd = open(cdev, O_RDWR | O_CLOEXEC);
		if (exp->cdev_fd >= 0)
			break;
		if (errno != ENOENT || waited >= UBLK_CDEV_WAIT_MS) {
			rc = -errno;
			td_err("%s: cannot open %s: %s", exp->path, cdev,
			       strerror(-rc));
			return rc;
		}
		nanosleep(&pause, NULL);
	}
	exp->iod_size =
		(exp->depth * sizeof(struct ublksrv_io_desc) + page - 1) /
		page * page;
	exp->iod = mmap(NULL, exp->iod_size, PROT_READ,
			MAP_SHARED | MAP_POPULATE, exp->cdev_fd,
			UBLKSRV_CMD_BUF_OFFSET);
	if (exp->iod == MAP_FAILED) {
		rc = -errno;
		exp->iod = NULL;
		td_err("%s: cannot map the request descriptors: %s", exp->path,
		       strerror(-rc));
		return rc;
	}
	/* address space for every tag; pages come as requests use them */
	exp->bufs_size = (size_t)exp->depth * exp->max_io;
	exp->bufs = mmap(NULL, exp->bufs_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (exp->bufs == MAP_FAILED) {
		exp->bufs = NULL;
		return -ENOMEM;
	}
	exp->ios = calloc(exp->depth, sizeof(*exp->ios));
	if (!exp->ios)
		return -ENOMEM;
	rc = io_uring_queue_init(exp->depth, &exp->q, 0);
	if (rc) {
		td_err("%s: no io_uring: %s", exp->path, strerror(-rc));
		return rc;
	}
	exp->q_ring = true;
	rc = io_uring_register_eventfd(&exp->q, exp->efd);
	if (rc)
		return rc;
	for (i = 0; i < exp->depth; i++) {
		exp->ios[i].exp = exp;
		exp->ios[i].tag = i;
		exp->ios[i].buf = exp->bufs + (size_t)i * exp->max_io;
		ublk_queue_cmd(&exp->ios[i], UBLK_U_IO_FETCH_REQ, 0);
	}
	rc = io_uring_submit(&exp->q);
	if (rc != (int)exp->depth) {
		td_err("%s: cannot queue the fetch commands: %s", exp->path,
		       rc < 0 ? strerror(-rc) : "short submission");
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

/* Closing the ring cancels the commands the kernel still holds. */
static void ublk_queue_close(struct ublk_export *exp)
{
	if (exp->q_ring)
		io_uring_queue_exit(&exp->q);
	exp->q_ring = false;
	if (exp->iod)
		munmap((void *)exp->iod, exp->iod_size);
	exp->iod = NULL;
	if (exp->cdev_fd >= 0)
		close(exp->cdev_fd);
	exp->cdev_fd = -1;
}

void ublk_started(struct ublk_export *exp, int res)
{
	ublk_started_fn started = exp->started;

	if (res < 0)
		td_err("%s: the kernel would not start it: %s", exp->path,
		       strerror(-res));
	else
		td_info("%s: serving, %llu bytes%s", exp->path,
			(unsigned long long)td_vbd_size(exp->vbd),
			exp->readonly ? " read-only" : "");
	/* once: a later answer (none is expected) must not report twice */
	exp->started = NULL;
	if (started)
		started(exp, res < 0 ? res : 0, exp->started_data);
}

static void ublk_call_done(struct td_loop *loop, void *data)
{
	struct ublk_export *exp = data;

	if (exp->done)
		exp->done(loop, exp->done_data);
}

static void ublk_check_stopped(struct ublk_export *exp)
{
	if (!exp->stopping || !exp->stopped || exp->serving || !exp->q_ring)
		return;
	/* the device must be let go before the kernel can delete it */
	ublk_queue_close(exp);
	if (ublk_ctrl_del(exp)) {
		exp->deleted = true;
		td_loop_defer(exp->loop, &exp->defer, ublk_call_done, exp);
	}
}

void ublk_stopped(struct ublk_export *exp, int res)
{
	if (res < 0)
		td_err("%s: STOP_DEV: %s", exp->path, strerror(-res));
	exp->stopped = true;
	ublk_check_stopped(exp);
}

void ublk_deleted(struct ublk_export *exp, int res)
{
	if (res < 0)
		td_err("%s: DEL_DEV: %s", exp->path, strerror(-res));
	else
		td_info("%s: deleted", exp->path);
	exp->deleted = true;
	td_loop_defer(exp->loop, &exp->defer, ublk_call_done, exp);
}

void ublk_export_shutdown(struct ublk_export *exp, td_loop_fn done, void *data)
{
	exp->done = done;
	exp->done_data = data;
	if (exp->stopping)
		return;
	exp->stopping = true;
	td_info("%s: stopping (%u requests in flight)", exp->path,
		exp->serving);
	if (!exp->added || ublk_ctrl_stop(exp)) {
		exp->deleted = !exp->added;
		td_loop_defer(exp->loop, &exp->defer, ublk_call_done, exp);
	}
}

struct ublk_export *ublk_export_new(struct td_loop *loop, struct td_vbd *vbd,
				    const struct ublk_export_opts *opts)
{
	bool recover = opts->recover_id >= 0;
	struct ublk_export *exp = calloc(1, sizeof(*exp));
	int rc;

	if (!exp)
		return NULL;
	exp->loop = loop;
	exp->vbd = vbd;
	exp->readonly = opts->readonly || td_vbd_readonly(vbd);
	exp->started = opts->started;
	exp->started_data = opts->started_data;
	exp->dev_id = recover ? opts->recover_id : opts->dev_id;
	exp->ctrl_fd = exp->cdev_fd = -1;
	ublk_set_path(exp);
	exp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (exp->efd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = ublk_ctrl_open(exp);
	if (rc)
		goto fail;
	rc = recover ? ublk_ctrl_begin_recovery(exp, opts->recover_id) :
		       ublk_ctrl_add(exp, opts->dev_id);
	if (rc)
		goto fail;
	ublk_set_path(exp);
	if (!recover && (rc = ublk_ctrl_set_params(exp)))
		goto fail;
	exp->watch = td_watch_add(loop, exp->efd, EPOLLIN, ublk_event, exp);
	if (!exp->watch) {
		rc = -errno;
		goto fail;
	}
	rc = td_loop_add_prepare(loop, ublk_submit, exp);
	if (rc)
		goto fail;
	exp->prepare = true;
	rc = ublk_queue_open(exp);
	if (rc)
		goto fail;
	rc = ublk_ctrl_start(exp, recover);
	if (rc) {
		td_err("%s: cannot start: %s", exp->path, strerror(-rc));
		goto fail;
	}
	/* a failed recovery leaves the device for another attempt */
	exp->added = true;
	td_info("%s: %s, queue depth %u, requests up to %u KiB", exp->path,
		recover ? "recovering" : "added", exp->depth,
		exp->max_io / 1024);
	return exp;
fail:
	ublk_export_free(exp);
	errno = -rc;
	return NULL;
}

void ublk_export_free(struct ublk_export *exp)
{
	if (!exp)
		return;
	ublk_queue_close(exp);
	if (exp->added && !exp->deleted && exp->ctrl_ring)
		ublk_ctrl_del_now(exp);
	if (exp->prepare)
		td_loop_del_prepare(exp->loop, ublk_submit, exp);
	if (exp->watch)
		td_watch_remove(exp->watch);
	ublk_ctrl_close(exp);
	if (exp->efd >= 0)
		close(exp->efd);
	if (exp->bufs)
		munmap(exp->bufs, exp->bufs_size);
	free(exp->ios);
	free(exp);
}

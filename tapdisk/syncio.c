// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "log.h"
#include "loop.h"
#include "syncio.h"
#include "vbd.h"

struct td_syncio {
	struct td_loop *loop;
	struct td_ioengine *io;
	struct td_image *chain;
	struct td_vbd *vbd;
};

struct td_syncio *td_syncio_open(const char *name, unsigned flags)
{
	struct td_syncio *s = calloc(1, sizeof(*s));
	int rc = -ENOMEM;

	if (!s)
		goto fail;
	s->loop = td_loop_new();
	if (!s->loop)
		goto fail;
	s->io = td_io_new(s->loop, TD_IO_AUTO, 128);
	if (!s->io) {
		rc = -errno;
		goto fail;
	}
	rc = td_image_open_chain(name, flags, s->loop, s->io, &s->chain);
	if (rc)
		goto fail;
	s->vbd = td_vbd_new(s->loop, s->chain,
			    flags & TD_OPEN_RDONLY ? TD_VBD_RDONLY : 0, 0);
	if (!s->vbd) {
		rc = -ENOMEM;
		goto fail;
	}
	return s;
fail:
	td_syncio_close(s);
	errno = -rc;
	return NULL;
}

void td_syncio_close(struct td_syncio *s)
{
	if (!s)
		return;
	if (s->vbd) {
		td_syncio_wait(s, 0);
		td_vbd_free(s->vbd);
	}
	td_image_close_chain(s->chain);
	if (s->io)
		td_io_free(s->io);
	if (s->loop)
		td_loop_free(s->loop);
	free(s);
}

uint64_t td_syncio_size(const struct td_syncio *s)
{
	return td_vbd_size(s->vbd);
}

struct td_image *td_syncio_image(struct td_syncio *s)
{
	return s->chain;
}

void td_syncio_submit(struct td_syncio *s, struct td_request *req)
{
	td_vbd_submit(s->vbd, req);
}

int td_syncio_wait(struct td_syncio *s, unsigned max)
{
	/* the vbd counts a request until just before its done() returns */
	while (td_vbd_inflight(s->vbd) > max) {
		int rc = td_loop_once(s->loop, -1);

		if (rc < 0)
			return rc;
	}
	return 0;
}

struct syncio_result {
	bool done;
	int err;
};

static void syncio_done(struct td_request *req, int err)
{
	struct syncio_result *r = req->data;

	r->done = true;
	r->err = err;
}

static int syncio_run(struct td_syncio *s, struct td_request *req)
{
	struct syncio_result r = { 0 };
	int rc;

	req->done = syncio_done;
	req->data = &r;
	td_vbd_submit(s->vbd, req);
	while (!r.done) {
		rc = td_loop_once(s->loop, -1);
		if (rc < 0)
			return rc;
	}
	return r.err;
}

static int syncio_rw(struct td_syncio *s, enum td_op op, void *buf,
		     size_t len, uint64_t off, unsigned flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct td_request req = {
		.op = op,
		.flags = flags,
		.offset = off,
		.len = len,
		.iov = &iov,
		.iovcnt = 1,
	};

	return syncio_run(s, &req);
}

int td_syncio_pread(struct td_syncio *s, void *buf, size_t len, uint64_t off)
{
	return syncio_rw(s, TD_OP_READ, buf, len, off, 0);
}

int td_syncio_pwrite(struct td_syncio *s, const void *buf, size_t len,
		     uint64_t off, unsigned flags)
{
	/* the request's iovec is shared by reads and writes, hence non-const */
	return syncio_rw(s, TD_OP_WRITE, (void *)buf, len, off, flags);
}

static int syncio_op(struct td_syncio *s, enum td_op op, uint64_t off,
		     uint64_t len, unsigned flags, struct td_extent *ext)
{
	struct td_request req = {
		.op = op,
		.flags = flags,
		.offset = off,
		.len = len,
	};
	int rc = syncio_run(s, &req);

	if (!rc && ext)
		*ext = req.status;
	return rc;
}

int td_syncio_flush(struct td_syncio *s)
{
	return syncio_op(s, TD_OP_FLUSH, 0, 0, 0, NULL);
}

int td_syncio_discard(struct td_syncio *s, uint64_t off, uint64_t len)
{
	return syncio_op(s, TD_OP_DISCARD, off, len, 0, NULL);
}

int td_syncio_write_zeroes(struct td_syncio *s, uint64_t off, uint64_t len,
			   unsigned flags)
{
	return syncio_op(s, TD_OP_WRITE_ZEROES, off, len, flags, NULL);
}

int td_syncio_block_status(struct td_syncio *s, uint64_t off, uint64_t len,
			   struct td_extent *ext)
{
	return syncio_op(s, TD_OP_BLOCK_STATUS, off, len, 0, ext);
}

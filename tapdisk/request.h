/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A block request, as every frontend hands it to the vbd and the vbd hands
 * it down the image chain. Offsets and lengths are in bytes.
 */
#ifndef TD_REQUEST_H
#define TD_REQUEST_H

#include <stdint.h>
#include <sys/uio.h>

#include "loop.h"

enum td_op {
	TD_OP_READ,
	TD_OP_WRITE,
	TD_OP_FLUSH,
	TD_OP_DISCARD,
	TD_OP_WRITE_ZEROES,
	TD_OP_BLOCK_STATUS,
	TD_OP_CACHE,
	TD_OP_MAX
};

#define TD_REQ_FUA 0x1u /* write: durable when acknowledged */
#define TD_REQ_NO_HOLE 0x2u /* write zeroes: keep the range allocated */
#define TD_REQ_FAST_ZERO 0x4u /* write zeroes: fail with -ENOTSUP if slow */

/* block status flags, as NBD's base:allocation */
#define TD_BS_HOLE 0x1u
#define TD_BS_ZERO 0x2u

struct td_extent {
	uint64_t len; /* from req->offset; 0 < len <= req->len */
	uint32_t flags; /* TD_BS_* */
	int depth; /* 0 = the leaf image; -1 = nowhere in the chain */
};

struct td_request;
typedef void (*td_request_fn)(struct td_request *req, int err);

struct td_request {
	enum td_op op;
	unsigned flags;
	uint64_t offset;
	uint64_t len;
	struct iovec *iov; /* READ/WRITE: iovcnt buffers totalling len */
	int iovcnt;
	struct td_extent status; /* BLOCK_STATUS result */

	td_request_fn done; /* called once, from the loop, err 0 or -errno */
	void *data;

	/*
	 * Set by whoever queues the request to an image (the vbd, or a driver
	 * sending a request of its own to a parent); td_request_complete()
	 * calls it. Forwarding down the chain leaves it alone.
	 */
	td_request_fn io_done;
	void *io_data;

	/* owned by the vbd */
	struct td_request *qnext, *qprev;
	uint64_t seq;
	uint64_t t_start;
	struct td_defer defer;
	int err;
	void *align_ctx;
	unsigned vbd_flags;
};

const char *td_op_name(enum td_op op);

#endif

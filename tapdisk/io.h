/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The asynchronous I/O engine: one small interface, two back ends
 * (io_uring, the default, and libaio). Callers queue control blocks; the
 * engine submits everything queued in one loop iteration with one syscall
 * and calls each block's done() from the loop when it completes. Short
 * transfers are continued by the engine, so done() sees either the whole
 * length, a shorter count only at end of file for reads, or -errno.
 */
#ifndef TD_IO_H
#define TD_IO_H

#include <stdint.h>
#include <sys/uio.h>

struct td_loop;
struct td_ioengine;

enum td_io_op {
	TD_IO_READ,
	TD_IO_WRITE,
	TD_IO_FSYNC, /* fdatasync */
	TD_IO_FALLOCATE, /* mode, offset, len */
};

enum td_io_kind {
	TD_IO_AUTO, /* io_uring, else libaio */
	TD_IO_URING,
	TD_IO_LIBAIO,
};

#define TD_IO_DSYNC 0x1u /* write durable on completion (FUA) */

struct td_iocb {
	enum td_io_op op;
	int fd;
	unsigned flags;
	int mode; /* fallocate mode */
	uint64_t offset;
	uint64_t len; /* fallocate length */
	struct iovec *iov;
	int iovcnt;
	void (*done)(struct td_iocb *cb, long res);
	void *data;

	/* engine private */
	struct td_iocb *next;
	uint64_t done_bytes;
	struct iovec *cur_iov; /* advanced copy for short transfers */
	int cur_iovcnt;
	struct iovec *own_iov;
};

struct td_ioengine *td_io_new(struct td_loop *loop, enum td_io_kind kind,
			      unsigned depth);
void td_io_free(struct td_ioengine *io);
const char *td_io_name(const struct td_ioengine *io);
/* Never fails: the block waits in the engine until there is room. */
void td_io_queue(struct td_ioengine *io, struct td_iocb *cb);
/* Submit what is queued now (the loop also does this before each wait). */
void td_io_submit(struct td_ioengine *io);
/* Blocks queued or in flight. */
unsigned td_io_busy(const struct td_ioengine *io);
/* Blocks queued and not yet handed to the kernel. */
unsigned td_io_pending(const struct td_ioengine *io);
int td_io_kind_parse(const char *s, enum td_io_kind *kind);

#endif

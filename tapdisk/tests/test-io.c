// SPDX-License-Identifier: GPL-2.0-only
/* The I/O engine, both back ends, against real files. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "loop.h"
#include "tap.h"
#include "test-util.h"

#define BLK 4096

struct op {
	struct td_iocb cb;
	struct iovec iov[2];
	long res;
	bool done;
	int *count;
};

static char dir[64];

static void op_done(struct td_iocb *cb, long res)
{
	struct op *o = cb->data;

	o->res = res;
	o->done = true;
	if (o->count)
		(*o->count)++;
}

static void op_init(struct op *o, enum td_io_op op, int fd, uint64_t off,
		    void *buf, size_t len)
{
	memset(o, 0, sizeof(*o));
	o->cb.op = op;
	o->cb.fd = fd;
	o->cb.offset = off;
	o->iov[0].iov_base = buf;
	o->iov[0].iov_len = len;
	o->cb.iov = o->iov;
	o->cb.iovcnt = buf ? 1 : 0;
	o->cb.done = op_done;
	o->cb.data = o;
}

/* Run the loop until *count reaches want; returns the iterations used. */
static int run_until(struct td_loop *loop, int *count, int want)
{
	int i;

	for (i = 0; i < 1000 && *count < want; i++)
		td_loop_once(loop, 1000);
	return i;
}

static long run_one(struct td_loop *loop, struct td_ioengine *io, struct op *o)
{
	int count = 0;

	o->count = &count;
	td_io_queue(io, &o->cb);
	run_until(loop, &count, 1);
	return o->done ? o->res : -ETIMEDOUT;
}

static void test_basic(struct td_loop *loop, struct td_ioengine *io,
		       const char *name)
{
	char path[128];
	unsigned char *a = tu_abuf(4 * BLK, 0xa5), *b = tu_abuf(4 * BLK, 0);
	struct op o;
	int fd;

	snprintf(path, sizeof(path), "%s/basic-%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
	ok(fd >= 0, "%s: open O_DIRECT file", name);
	if (ftruncate(fd, 16 * BLK))
		diag("ftruncate: %s", strerror(errno));

	op_init(&o, TD_IO_WRITE, fd, BLK, a, 4 * BLK);
	is(run_one(loop, io, &o), 4 * BLK, "%s: write 16 KiB", name);
	is(td_io_busy(io), 0, "%s: idle after the write", name);

	op_init(&o, TD_IO_READ, fd, BLK, b, 2 * BLK);
	o.iov[1].iov_base = b + 2 * BLK;
	o.iov[1].iov_len = 2 * BLK;
	o.cb.iovcnt = 2;
	is(run_one(loop, io, &o), 4 * BLK, "%s: read back with two iovecs",
	   name);
	ok(!memcmp(a, b, 4 * BLK), "%s: the data read is the data written",
	   name);

	memset(a, 0x3c, BLK);
	op_init(&o, TD_IO_WRITE, fd, 0, a, BLK);
	o.cb.flags = TD_IO_DSYNC;
	is(run_one(loop, io, &o), BLK, "%s: FUA write (RWF_DSYNC)", name);

	op_init(&o, TD_IO_FSYNC, fd, 0, NULL, 0);
	is(run_one(loop, io, &o), 0, "%s: fdatasync", name);

	op_init(&o, TD_IO_FALLOCATE, fd, BLK, NULL, 0);
	o.cb.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	o.cb.len = 2 * BLK;
	is(run_one(loop, io, &o), 0, "%s: fallocate punch hole", name);
	op_init(&o, TD_IO_READ, fd, 0, b, 4 * BLK);
	is(run_one(loop, io, &o), 4 * BLK, "%s: read across the hole", name);
	ok(tu_all_bytes(b, BLK, 0x3c) && tu_all_bytes(b + BLK, 2 * BLK, 0) &&
		   tu_all_bytes(b + 3 * BLK, BLK, 0xa5),
	   "%s: the punched range reads as zero, the rest is kept", name);

	op_init(&o, TD_IO_READ, fd, 1, b, BLK);
	is(run_one(loop, io, &o), -EINVAL,
	   "%s: a misaligned O_DIRECT read fails with -EINVAL", name);
	close(fd);
	free(a);
	free(b);
}

static void test_eof(struct td_loop *loop, struct td_ioengine *io,
		     const char *name)
{
	char path[128];
	unsigned char *b = tu_abuf(2 * BLK, 0xff), data[BLK + 100];
	struct op o;
	int fd;

	snprintf(path, sizeof(path), "%s/eof-%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	memset(data, 0x11, sizeof(data));
	if (pwrite(fd, data, sizeof(data), 0) != (ssize_t)sizeof(data))
		diag("pwrite: %s", strerror(errno));
	op_init(&o, TD_IO_READ, fd, 0, b, BLK);
	o.iov[1].iov_base = b + BLK;
	o.iov[1].iov_len = BLK;
	o.cb.iovcnt = 2;
	is(run_one(loop, io, &o), BLK + 100,
	   "%s: a read past the end returns the bytes up to it", name);
	ok(tu_all_bytes(b, BLK + 100, 0x11) && tu_all_bytes(b + BLK + 100, 100, 0xff),
	   "%s: and stores nothing past them", name);
	ok(o.iov[1].iov_base == b + BLK && o.iov[1].iov_len == BLK,
	   "%s: the caller's iovecs are left alone", name);
	/* one buffer goes to the kernel as a plain read, not a readv */
	memset(b, 0xff, 2 * BLK);
	op_init(&o, TD_IO_READ, fd, 0, b, 2 * BLK);
	is(run_one(loop, io, &o), BLK + 100,
	   "%s: a single-buffer read past the end returns the bytes up to it",
	   name);
	ok(tu_all_bytes(b, BLK + 100, 0x11) &&
		   tu_all_bytes(b + BLK + 100, 100, 0xff),
	   "%s: and stores nothing past them in that buffer", name);
	op_init(&o, TD_IO_READ, fd, 8 * BLK, b, BLK);
	is(run_one(loop, io, &o), 0, "%s: a read wholly past the end is 0",
	   name);
	close(fd);
	free(b);
}

static void test_errors(struct td_loop *loop, struct td_ioengine *io,
			const char *name)
{
	char path[128], buf[512] = { 0 };
	struct op o[3];
	int fd, count = 0, i;

	op_init(&o[0], TD_IO_READ, -1, 0, buf, sizeof(buf));
	is(run_one(loop, io, &o[0]), -EBADF, "%s: read on fd -1 is -EBADF",
	   name);

	snprintf(path, sizeof(path), "%s/ro-%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	/* an error in the middle of a batch must not hold up the others */
	op_init(&o[0], TD_IO_WRITE, fd, 0, buf, sizeof(buf));
	op_init(&o[1], TD_IO_FSYNC, fd, 0, NULL, 0);
	op_init(&o[2], TD_IO_WRITE, 1000, 0, buf, sizeof(buf));
	for (i = 0; i < 3; i++) {
		o[i].count = &count;
		td_io_queue(io, &o[i].cb);
	}
	run_until(loop, &count, 3);
	is(o[0].res, -EBADF, "%s: write on a read-only fd is -EBADF", name);
	is(o[1].res, 0, "%s: the fsync batched with it succeeds", name);
	is(o[2].res, -EBADF, "%s: write on a closed fd is -EBADF", name);
	close(fd);
}

static void test_many(struct td_loop *loop, const char *name,
		      enum td_io_kind kind)
{
	enum { N = 200, DEPTH = 8 };
	struct td_ioengine *io = td_io_new(loop, kind, DEPTH);
	unsigned char *a = tu_abuf(N * 512, 0), *b = tu_abuf(N * 512, 0);
	struct op *o = calloc(N, sizeof(*o));
	char path[128];
	int fd, i, count = 0, iters;
	bool order = true;

	snprintf(path, sizeof(path), "%s/many-%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
	for (i = 0; i < N * 512; i++)
		a[i] = (unsigned char)(i / 512 + 1);
	for (i = 0; i < N; i++) {
		op_init(&o[i], TD_IO_WRITE, fd, (uint64_t)i * 512, a + i * 512,
			512);
		o[i].count = &count;
		td_io_queue(io, &o[i].cb);
	}
	is(td_io_busy(io), N, "%s: %d blocks queued at depth %d", name, N,
	   DEPTH);
	run_until(loop, &count, N);
	is(count, N, "%s: all %d writes completed", name, N);
	for (i = 0; i < N; i++)
		order = order && o[i].res == 512;
	ok(order, "%s: each wrote its 512 bytes", name);
	is(td_io_busy(io), 0, "%s: nothing left busy", name);

	count = 0;
	for (i = 0; i < N; i++) {
		op_init(&o[i], TD_IO_READ, fd, (uint64_t)i * 512, b + i * 512,
			512);
		o[i].count = &count;
		td_io_queue(io, &o[i].cb);
	}
	run_until(loop, &count, N);
	ok(count == N && !memcmp(a, b, N * 512),
	   "%s: %d reads at depth %d bring the data back", name, N, DEPTH);
	td_io_free(io);

	/* within the depth, one loop iteration submits the whole batch */
	io = td_io_new(loop, kind, 64);
	count = 0;
	for (i = 0; i < 64; i++) {
		op_init(&o[i], TD_IO_READ, fd, (uint64_t)i * 512, b + i * 512,
			512);
		o[i].count = &count;
		td_io_queue(io, &o[i].cb);
	}
	is(td_io_pending(io), 64, "%s: 64 reads wait for the batch", name);
	td_io_submit(io);
	is(td_io_pending(io), 0,
	   "%s: one submit hands all 64 to the kernel", name);
	iters = run_until(loop, &count, 64);
	ok(count == 64, "%s: 64 reads at depth 64 done (%d loop iterations)",
	   name, iters);
	td_io_free(io);
	close(fd);
	free(o);
	free(a);
	free(b);
}

static void test_engine(struct td_loop *loop, enum td_io_kind kind,
			const char *name)
{
	struct td_ioengine *io = td_io_new(loop, kind, 16);

	if (!io) {
		skip(strerror(errno), "%s: engine unavailable here", name);
		return;
	}
	ok(!strcmp(td_io_name(io), name), "%s: td_io_name says %s", name,
	   td_io_name(io));
	test_basic(loop, io, name);
	test_eof(loop, io, name);
	test_errors(loop, io, name);
	td_io_free(io);
	test_many(loop, name, kind);
}

static void test_fallback(struct td_loop *loop)
{
	struct td_ioengine *io;

	setenv("TD_IO_FORCE_FAIL_URING", "1", 1);
	io = td_io_new(loop, TD_IO_URING, 8);
	ok(!io, "forced io_uring failure: TD_IO_URING gives up");
	io = td_io_new(loop, TD_IO_AUTO, 8);
	ok(io && !strcmp(td_io_name(io), "libaio"),
	   "forced io_uring failure: TD_IO_AUTO falls back to libaio");
	td_io_free(io);
	unsetenv("TD_IO_FORCE_FAIL_URING");
	io = td_io_new(loop, TD_IO_LIBAIO, 8);
	ok(io && !strcmp(td_io_name(io), "libaio"),
	   "TD_IO_LIBAIO forces libaio");
	td_io_free(io);
}

/* libaio reports fallocate through a deferred call: free the engine first */
static void test_free_busy(struct td_loop *loop)
{
	struct td_ioengine *io = td_io_new(loop, TD_IO_LIBAIO, 8);
	char path[128];
	struct op o;
	int fd;

	snprintf(path, sizeof(path), "%s/free-busy", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	op_init(&o, TD_IO_FALLOCATE, fd, 0, NULL, 0);
	o.cb.len = BLK;
	td_io_queue(io, &o.cb);
	td_io_submit(io);
	is(td_io_busy(io), 1, "libaio: a fallocate awaits its deferred report");
	td_io_free(io);
	td_loop_once(loop, 0);
	ok(!o.done, "freeing a busy engine drops its blocks safely");
	close(fd);
}

static void test_parse(void)
{
	enum td_io_kind k = TD_IO_AUTO;

	ok(!td_io_kind_parse("io_uring", &k) && k == TD_IO_URING,
	   "parse io_uring");
	ok(!td_io_kind_parse("libaio", &k) && k == TD_IO_LIBAIO,
	   "parse libaio");
	ok(!td_io_kind_parse("auto", &k) && k == TD_IO_AUTO, "parse auto");
	is(td_io_kind_parse("posix", &k), -EINVAL, "parse refuses posix");
	is(td_io_kind_parse(NULL, &k), -EINVAL, "parse refuses NULL");
}

int main(void)
{
	struct td_loop *loop;
	char cmd[128];

	td_log_open("test-io", true, LOG_WARNING);
	snprintf(dir, sizeof(dir), "/var/tmp/td-test-io.XXXXXX");
	if (!mkdtemp(dir)) {
		diag("mkdtemp: %s", strerror(errno));
		return 1;
	}
	loop = td_loop_new();
	test_parse();
	test_engine(loop, TD_IO_URING, "io_uring");
	test_engine(loop, TD_IO_LIBAIO, "libaio");
	test_fallback(loop);
	test_free_busy(loop);
	td_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		diag("could not remove %s", dir);
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/* The synchronous wrapper, on a real file through the aio driver. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "syncio.h"
#include "tap.h"

#define SIZE (8 << 20)

static void count_done(struct td_request *req, int err)
{
	int *n = req->data;

	if (!err)
		(*n)++;
}

int main(void)
{
	char dir[] = "/var/tmp/td-test-syncio.XXXXXX", path[4096], name[4200];
	struct td_request reqs[32];
	struct iovec iovs[32];
	struct td_syncio *s;
	struct td_extent ext;
	unsigned char *buf;
	int fd, i, done = 0;

	td_log_open("test-syncio", true, LOG_ERR);
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/disk.img", dir);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, SIZE))
		abort();
	close(fd);
	snprintf(name, sizeof(name), "aio:%s", path);

	s = td_syncio_open(name, 0);
	ok(s != NULL, "opened %s", name);
	is(td_syncio_size(s), SIZE, "size");
	ok(!strcmp(td_syncio_image(s)->drv->name, "aio"), "aio driver");

	buf = td_buf_get(1 << 20);
	memset(buf, 0x5a, 1 << 20);
	is(td_syncio_pwrite(s, buf + 3, 1000, 4097, 0), 0,
	   "unaligned write from an unaligned buffer");
	memset(buf, 0, 1 << 20);
	is(td_syncio_pread(s, buf, 8192, 0), 0, "read back");
	ok(buf[4096] == 0 && buf[4097] == 0x5a && buf[5096] == 0x5a &&
		   buf[5097] == 0,
	   "exactly the written bytes changed");
	is(td_syncio_flush(s), 0, "flush");
	is(td_syncio_block_status(s, 0, SIZE, &ext), 0, "block status");
	ok(ext.len > 0 && ext.len <= SIZE, "an extent came back");
	is(td_syncio_write_zeroes(s, 0, 8192, 0), 0, "write zeroes");
	buf[4097] = 1;
	td_syncio_pread(s, buf, 8192, 0);
	is(buf[4097], 0, "zeroed");
	is(td_syncio_pread(s, buf, 4096, SIZE), -EINVAL,
	   "read past the end is -EINVAL");

	/* many in flight, then wait for all */
	for (i = 0; i < 32; i++) {
		memset(&reqs[i], 0, sizeof(reqs[i]));
		iovs[i].iov_base = buf + i * 4096;
		iovs[i].iov_len = 4096;
		reqs[i].op = TD_OP_WRITE;
		reqs[i].offset = (uint64_t)i * 65536;
		reqs[i].len = 4096;
		reqs[i].iov = &iovs[i];
		reqs[i].iovcnt = 1;
		reqs[i].done = count_done;
		reqs[i].data = &done;
		td_syncio_submit(s, &reqs[i]);
	}
	is(td_syncio_wait(s, 0), 0, "wait for all");
	is(done, 32, "32 parallel writes completed");

	/* an admin resize shows at once, and I/O may use the new space */
	is(td_syncio_image(s)->drv->resize(td_syncio_image(s), 2 * SIZE), 0,
	   "driver resize");
	is(td_syncio_size(s), 2 * SIZE, "the size follows the resize");
	is(td_syncio_pwrite(s, buf, 4096, 2 * SIZE - 4096, 0), 0,
	   "a write near the new end");
	td_syncio_close(s);

	s = td_syncio_open(name, TD_OPEN_RDONLY);
	is(td_syncio_pwrite(s, buf, 4096, 0, 0), -EPERM,
	   "read-only open refuses writes");
	td_syncio_close(s);
	errno = 0;
	ok(td_syncio_open("aio:/nonexistent/x", 0) == NULL && errno == ENOENT,
	   "missing image: NULL, ENOENT");

	td_buf_put(buf, 1 << 20);
	unlink(path);
	rmdir(dir);
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/* The aio, sync and ram drivers through their ops tables, on real files. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/drivers.h"
#include "image.h"
#include "io.h"
#include "log.h"
#include "loop.h"
#include "tap.h"
#include "test-util.h"

#define KiB 1024u
#define MiB (1024u * KiB)

static struct td_loop *loop;
static struct td_ioengine *io;
static char dir[64], shmdir[64];

static void req_done(struct td_request *req, int err)
{
	int *res = req->data;

	res[0] = err;
	res[1] = 1;
}

/* One request through the driver, run to completion. */
static int do_req(struct td_image *img, enum td_op op, unsigned flags,
		  uint64_t off, uint64_t len, void *buf,
		  struct td_extent *status)
{
	struct td_request req;
	struct iovec iov = { buf, len };
	int res[2] = { -ETIMEDOUT, 0 }, i;

	memset(&req, 0, sizeof(req));
	req.op = op;
	req.flags = flags;
	req.offset = off;
	req.len = len;
	req.iov = buf ? &iov : NULL;
	req.iovcnt = buf ? 1 : 0;
	req.done = req_done;
	req.io_done = req_done;
	req.data = res;
	td_image_queue(img, &req);
	ok(!res[1], "%s: %s does not complete inline", img->name,
	   td_op_name(op));
	for (i = 0; i < 1000 && !res[1]; i++)
		td_loop_once(loop, 1000);
	if (status)
		*status = req.status;
	return res[0];
}

static struct td_image *img_open(const struct td_driver *drv, const char *path,
				 unsigned flags, int *err)
{
	struct td_image *img = calloc(1, sizeof(*img));

	img->drv = drv;
	img->priv = calloc(1, drv->priv_size);
	img->path = strdup(path);
	if (asprintf(&img->name, "%s:%s", drv->name, path) < 0)
		abort();
	img->flags = flags;
	img->loop = loop;
	img->io = io;
	*err = drv->open(img, img->path, flags);
	if (*err) {
		free(img->priv);
		free(img->path);
		free(img->name);
		free(img);
		return NULL;
	}
	drv->info(img, &img->info);
	return img;
}

static void img_close(struct td_image *img)
{
	if (!img)
		return;
	img->drv->close(img);
	free(img->priv);
	free(img->path);
	free(img->name);
	free(img);
}

static void make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)size))
		diag("%s: %s", path, strerror(errno));
	close(fd);
}

/* Write, read back, FUA, flush, discard and write_zeroes, block status. */
static void test_data_path(struct td_image *img)
{
	const char *n = img->name;
	unsigned char *a = tu_abuf(256 * KiB, 0x5a), *b = tu_abuf(256 * KiB, 0);
	struct td_extent ext;

	is(do_req(img, TD_OP_WRITE, 0, 64 * KiB, 256 * KiB, a, NULL), 0,
	   "%s: write 256 KiB", n);
	is(do_req(img, TD_OP_READ, 0, 64 * KiB, 256 * KiB, b, NULL), 0,
	   "%s: read it back", n);
	ok(!memcmp(a, b, 256 * KiB), "%s: same data", n);
	memset(a, 0x77, 4 * KiB);
	is(do_req(img, TD_OP_WRITE, TD_REQ_FUA, 0, 4 * KiB, a, NULL), 0,
	   "%s: FUA write", n);
	is(do_req(img, TD_OP_FLUSH, 0, 0, 0, NULL, NULL), 0, "%s: flush", n);
	is(do_req(img, TD_OP_READ, 0, 0, 4 * KiB, b, NULL), 0,
	   "%s: read the FUA write", n);
	ok(tu_all_bytes(b, 4 * KiB, 0x77), "%s: FUA data is there", n);

	is(do_req(img, TD_OP_DISCARD, 0, 64 * KiB, 64 * KiB, NULL, NULL), 0,
	   "%s: discard 64 KiB", n);
	is(do_req(img, TD_OP_WRITE_ZEROES, 0, 128 * KiB, 64 * KiB, NULL, NULL),
	   0, "%s: write_zeroes (may punch)", n);
	is(do_req(img, TD_OP_WRITE_ZEROES, TD_REQ_NO_HOLE, 192 * KiB, 64 * KiB,
		  NULL, NULL),
	   0, "%s: write_zeroes NO_HOLE", n);
	is(do_req(img, TD_OP_READ, 0, 64 * KiB, 256 * KiB, b, NULL), 0,
	   "%s: read the zeroed ranges", n);
	ok(tu_all_bytes(b, 192 * KiB, 0) &&
		   tu_all_bytes(b + 192 * KiB, 64 * KiB, 0x5a),
	   "%s: discard and write_zeroes read back as zero", n);

	/*
	 * NO_HOLE zeroes may be unwritten extents, which SEEK_DATA counts
	 * as a hole: the hole is at least the discarded and punched part.
	 */
	is(do_req(img, TD_OP_BLOCK_STATUS, 0, 64 * KiB, 1 * MiB, NULL, &ext), 0,
	   "%s: block status at the discarded range", n);
	ok(ext.flags == (TD_BS_HOLE | TD_BS_ZERO) && ext.len >= 128 * KiB &&
		   ext.len <= 192 * KiB && ext.depth == 0,
	   "%s: discard and write_zeroes left a hole (len %llu flags %u)", n,
	   (unsigned long long)ext.len, ext.flags);
	is(do_req(img, TD_OP_BLOCK_STATUS, 0, 256 * KiB, 512 * KiB, NULL, &ext),
	   0, "%s: block status after the zeroes", n);
	ok(ext.flags == 0 && ext.len == 64 * KiB,
	   "%s: the data after them is 64 KiB of data (len %llu flags %u)", n,
	   (unsigned long long)ext.len, ext.flags);
	free(a);
	free(b);
}

static void test_sparse_status(const struct td_driver *drv)
{
	char path[128];
	unsigned char *a = tu_abuf(64 * KiB, 1);
	struct td_image *img;
	struct td_extent ext;
	int err;

	snprintf(path, sizeof(path), "%s/sparse-%s", dir, drv->name);
	make_file(path, 1 * MiB);
	img = img_open(drv, path, 0, &err);
	is(err, 0, "%s: open a sparse 1 MiB file", drv->name);
	if (!img)
		return;
	do_req(img, TD_OP_WRITE, 0, 256 * KiB, 64 * KiB, a, NULL);
	do_req(img, TD_OP_BLOCK_STATUS, 0, 0, 1 * MiB, NULL, &ext);
	ok(ext.flags == (TD_BS_HOLE | TD_BS_ZERO) && ext.len == 256 * KiB,
	   "%s: a hole up to the data (len %llu flags %u)", drv->name,
	   (unsigned long long)ext.len, ext.flags);
	do_req(img, TD_OP_BLOCK_STATUS, 0, 256 * KiB, 768 * KiB, NULL, &ext);
	ok(ext.flags == 0 && ext.len == 64 * KiB,
	   "%s: then 64 KiB of data (len %llu flags %u)", drv->name,
	   (unsigned long long)ext.len, ext.flags);
	do_req(img, TD_OP_BLOCK_STATUS, 0, 320 * KiB, 704 * KiB, NULL, &ext);
	ok(ext.flags == (TD_BS_HOLE | TD_BS_ZERO) && ext.len == 704 * KiB,
	   "%s: then a hole to the end (len %llu flags %u)", drv->name,
	   (unsigned long long)ext.len, ext.flags);
	do_req(img, TD_OP_BLOCK_STATUS, 0, 0, 128 * KiB, NULL, &ext);
	is(ext.len, 128 * KiB, "%s: an extent never outgrows the request",
	   drv->name);
	img_close(img);
	free(a);
}

static void test_raw(const struct td_driver *drv)
{
	char path[128];
	struct td_image *img;
	int err;

	snprintf(path, sizeof(path), "%s/disk-%s", dir, drv->name);
	make_file(path, 4 * MiB);
	img = img_open(drv, path, 0, &err);
	is(err, 0, "%s: open a 4 MiB file", drv->name);
	if (!img)
		return;
	is(img->info.size, 4 * MiB, "%s: size from the file", drv->name);
	is(img->info.sector_size, 512, "%s: sector size 512", drv->name);
	if (drv == &td_driver_aio)
		ok(img->info.align >= 512 && img->info.align <= 4096 &&
			   !(img->info.align & (img->info.align - 1)),
		   "aio: O_DIRECT alignment %u", img->info.align);
	else
		is(img->info.align, 1, "sync: no alignment needed");
	ok(img->info.can_discard && img->info.can_zero &&
		   !img->info.rotational && !img->info.parent,
	   "%s: discard and zero, not rotational, no parent", drv->name);
	test_data_path(img);
	if (drv->cache)
		is(do_req(img, TD_OP_CACHE, 0, 0, 64 * KiB, NULL, NULL), 0,
		   "%s: cache hint", drv->name);
	img_close(img);

	img = img_open(drv, path, TD_OPEN_RDONLY, &err);
	ok(img && img->info.size == 4 * MiB, "%s: opens read-only", drv->name);
	img_close(img);
	test_sparse_status(drv);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: the fallback writes zeroes. */
static void test_zero_fallback(const struct td_driver *drv)
{
	char path[128];
	unsigned char *a = tu_abuf(3 * MiB, 0x42), *b = tu_abuf(3 * MiB, 0x42);
	struct td_image *img;
	int err;

	snprintf(path, sizeof(path), "%s/zero-%s", shmdir, drv->name);
	make_file(path, 4 * MiB);
	img = img_open(drv, path, 0, &err);
	if (!img) {
		skip("no O_DIRECT on tmpfs", "%s: zero fallback", drv->name);
		return;
	}
	do_req(img, TD_OP_WRITE, 0, 512 * KiB, 3 * MiB, a, NULL);
	is(do_req(img, TD_OP_WRITE_ZEROES, TD_REQ_NO_HOLE | TD_REQ_FAST_ZERO,
		  1 * MiB, 1 * MiB, NULL, NULL),
	   -ENOTSUP, "%s on tmpfs: FAST_ZERO NO_HOLE is refused", drv->name);
	is(do_req(img, TD_OP_WRITE_ZEROES, TD_REQ_NO_HOLE | TD_REQ_FUA, 1 * MiB,
		  2 * MiB + 512 * KiB, NULL, NULL),
	   0, "%s on tmpfs: NO_HOLE falls back to writing zeroes", drv->name);
	do_req(img, TD_OP_READ, 0, 512 * KiB, 3 * MiB, b, NULL);
	ok(tu_all_bytes(b, 512 * KiB, 0x42) &&
		   tu_all_bytes(b + 512 * KiB, 2 * MiB + 512 * KiB, 0),
	   "%s on tmpfs: the range reads back as zero, the rest kept",
	   drv->name);
	img_close(img);
	free(a);
	free(b);
}

/* Open that must fail; returns the error, closing anything it opened. */
static int open_err(const struct td_driver *drv, const char *path,
		    unsigned flags)
{
	struct td_image *img;
	int err;

	img = img_open(drv, path, flags, &err);
	if (!img)
		return err;
	img_close(img);
	return 0;
}

static void test_raw_refused(void)
{
	char path[128];

	is(open_err(&td_driver_aio, dir, 0), -EINVAL,
	   "aio: a directory is refused with -EINVAL");
	is(open_err(&td_driver_sync, dir, TD_OPEN_RDONLY), -EINVAL,
	   "sync: a directory opened read-only is refused with -EINVAL");
	snprintf(path, sizeof(path), "%s/fifo", dir);
	mkfifo(path, 0600);
	is(open_err(&td_driver_aio, path, TD_OPEN_RDONLY), -EINVAL,
	   "aio: a FIFO is refused with -EINVAL");
	snprintf(path, sizeof(path), "%s/missing", dir);
	is(open_err(&td_driver_aio, path, 0), -ENOENT,
	   "aio: a missing file is -ENOENT");
}

static bool shm_exists(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/dev/shm/blktap-ram-%s", name);
	return access(path, F_OK) == 0;
}

static void test_ram_names(void)
{
	static const char *const bad[] = {
		"",
		"?size=0",
		"?size=1000",
		"?size=1X",
		"?size=1KB",
		"?size=",
		"?bs=512",
		"bad/name?size=1M",
		"sp ace?size=1M",
		"?size=99999999999T",
	};
	char longname[80];
	struct td_image *img;
	size_t i;
	int err;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is(open_err(&td_driver_ram, bad[i], 0), -EINVAL,
		   "ram:%s is refused", bad[i]);
	memset(longname, 'x', 65);
	strcpy(longname + 65, "?size=1M");
	is(open_err(&td_driver_ram, longname, 0), -EINVAL,
	   "ram: a 65-character name is refused");
	img = img_open(&td_driver_ram, "?size=2K", 0, &err);
	ok(img && img->info.size == 2048, "ram:?size=2K is 2048 bytes");
	img_close(img);
	img = img_open(&td_driver_ram, "?size=3m", 0, &err);
	ok(img && img->info.size == 3 * MiB, "ram:?size=3m is 3 MiB");
	img_close(img);
	img = img_open(&td_driver_ram, "?size=1T", 0, &err);
	ok(img && img->info.size == 1024ull * 1024 * MiB,
	   "ram:?size=1T is 1 TiB (and costs nothing until written)");
	img_close(img);
	img = img_open(&td_driver_ram, "?size=4096", 0, &err);
	ok(img && img->info.size == 4096 && img->info.align == 1 &&
		   img->info.sector_size == 512,
	   "ram:?size=4096: plain bytes, align 1, sector 512");
	img_close(img);
}

static void test_ram_shared(void)
{
	char name[64], spec[96];
	unsigned char *a = tu_abuf(64 * KiB, 0x6b), *b = tu_abuf(64 * KiB, 0);
	struct td_image *x, *y;
	int err;

	snprintf(name, sizeof(name), "td-test-%d", (int)getpid());
	is(open_err(&td_driver_ram, name, 0), -ENOENT,
	   "ram:%s without size: no such disk", name);

	snprintf(spec, sizeof(spec), "%s?size=2M", name);
	x = img_open(&td_driver_ram, spec, 0, &err);
	ok(x && shm_exists(name), "ram:%s creates the shared disk", spec);
	if (!x)
		goto out;
	y = img_open(&td_driver_ram, name, 0, &err);
	ok(y && y->info.size == 2 * MiB,
	   "ram:%s opens it again and takes its size", name);
	snprintf(spec, sizeof(spec), "%s?size=4M", name);
	is(open_err(&td_driver_ram, spec, 0), -EINVAL,
	   "ram:%s with another size is refused", spec);
	if (!y)
		goto out_x;
	is(do_req(x, TD_OP_WRITE, 0, 1 * MiB, 64 * KiB, a, NULL), 0,
	   "ram: write through the first open");
	is(do_req(y, TD_OP_READ, 0, 1 * MiB, 64 * KiB, b, NULL), 0,
	   "ram: read through the second");
	ok(!memcmp(a, b, 64 * KiB), "ram: the second open sees the write");
	img_close(y);
	ok(shm_exists(name), "ram: the disk lives while one user is left");
out_x:
	img_close(x);
	ok(!shm_exists(name), "ram: the last close removes it");
out:
	free(a);
	free(b);
}

static void test_ram(void)
{
	struct td_image *img;
	struct td_extent ext;
	int err;

	img = img_open(&td_driver_ram, "?size=1M", 0, &err);
	is(err, 0, "ram:?size=1M opens an anonymous disk");
	if (img) {
		ok(img->info.size == 1 * MiB && img->info.can_discard &&
			   img->info.can_zero && !img->info.rotational,
		   "ram: 1 MiB, discard and zero, not rotational");
		do_req(img, TD_OP_BLOCK_STATUS, 0, 0, 1 * MiB, NULL, &ext);
		ok(ext.flags == (TD_BS_HOLE | TD_BS_ZERO) && ext.len == 1 * MiB,
		   "ram: a fresh disk is one hole");
		test_data_path(img);
		img_close(img);
	}
	test_ram_names();
	test_ram_shared();
}

static int mkdtemp_in(char *buf, size_t len, const char *parent)
{
	snprintf(buf, len, "%s/td-test-drivers.XXXXXX", parent);
	return mkdtemp(buf) ? 0 : -errno;
}

static void rm_rf(const char *path)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd))
		diag("could not remove %s", path);
}

int main(void)
{
	static const enum td_io_kind kinds[] = { TD_IO_URING, TD_IO_LIBAIO };
	int i;

	td_log_open("test-drivers", true, LOG_WARNING);
	if (mkdtemp_in(dir, sizeof(dir), "/var/tmp") ||
	    mkdtemp_in(shmdir, sizeof(shmdir), "/dev/shm")) {
		diag("mkdtemp: %s", strerror(errno));
		return 1;
	}
	loop = td_loop_new();
	if (!loop)
		return 1;
	/* the raw drivers through both engines: libaio fallocates inline */
	for (i = 0; i < 2; i++) {
		io = td_io_new(loop, kinds[i], 64);
		if (!io) {
			skip(strerror(errno), "raw drivers on engine %d", i);
			continue;
		}
		diag("raw drivers on %s", td_io_name(io));
		test_raw(&td_driver_aio);
		test_raw(&td_driver_sync);
		test_zero_fallback(&td_driver_aio);
		test_zero_fallback(&td_driver_sync);
		td_io_free(io);
	}
	io = NULL;
	test_raw_refused();
	test_ram();
	td_loop_free(loop);
	rm_rf(dir);
	rm_rf(shmdir);
	return tap_done();
}

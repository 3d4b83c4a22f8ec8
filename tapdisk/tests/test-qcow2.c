// SPDX-License-Identifier: GPL-2.0-only
/*
 * The qcow2 driver on real files: malformed headers are refused with an
 * error (no crash, no hang), backing loops are refused, and images qemu-img
 * writes (compressed ones included) read back what was written, on both
 * I/O engines.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "io.h"
#include "log.h"
#include "loop.h"
#include "tap.h"
#include "test-util.h"

static struct td_loop *loop;
static struct td_ioengine *io;
static char dir[64];

static int sh(const char *fmt, const char *a, const char *b)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), fmt, a, b);
	return system(cmd);
}

static void patch(const char *path, uint64_t off, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		if (pwrite(fd, b, n, (off_t)off) != (ssize_t)n)
			diag("pwrite %s failed", path);
		close(fd);
	}
}

static void put_be32(unsigned char *b, uint32_t v)
{
	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
}

static int try_open(const char *path, unsigned flags)
{
	struct td_image *img = NULL;
	char name[256];
	int rc;

	snprintf(name, sizeof(name), "qcow2:%s", path);
	rc = td_image_open_chain(name, flags, loop, io, &img);
	if (!rc)
		td_image_close_chain(img);
	return rc;
}

/* A fresh 64 MiB image with 64 KiB clusters to break. */
static void fresh(const char *p)
{
	sh("qemu-img create -q -f qcow2 %s 64M", p, "");
}

static void test_malformed(void)
{
	char p[128];
	unsigned char b[8];
	int fds;

	snprintf(p, sizeof(p), "%s/bad.qcow2", dir);
	fds = tu_count_fds();

	fresh(p);
	is(try_open(p, TD_OPEN_RDONLY), 0, "a fresh image opens");

	fresh(p);
	if (truncate(p, 50) == 0)
		ok(try_open(p, TD_OPEN_RDONLY) < 0, "truncated header refused");

	fresh(p);
	put_be32(b, 25);
	patch(p, 20, b, 4);
	is(try_open(p, TD_OPEN_RDONLY), -EINVAL, "cluster_bits 25 refused");
	put_be32(b, 8);
	patch(p, 20, b, 4);
	is(try_open(p, TD_OPEN_RDONLY), -EINVAL, "cluster_bits 8 refused");

	fresh(p);
	memset(b, 0, 8);
	b[2] = 0x10; /* L1 at 1 TiB */
	patch(p, 40, b, 8);
	is(try_open(p, TD_OPEN_RDONLY), -EINVAL, "L1 table beyond EOF refused");

	fresh(p);
	put_be32(b, 0x10000000);
	patch(p, 36, b, 4);
	is(try_open(p, TD_OPEN_RDONLY), -EINVAL, "huge L1 size refused");

	fresh(p);
	memset(b, 0, 8);
	patch(p, 48, b, 8);
	is(try_open(p, TD_OPEN_RDONLY), -EINVAL,
	   "refcount table overlapping the header refused");

	fresh(p);
	memset(b, 0, 8);
	b[7] = 0x40; /* incompatible bit 6 */
	patch(p, 72, b, 8);
	is(try_open(p, TD_OPEN_RDONLY), -ENOTSUP,
	   "unknown incompatible feature refused");

	fresh(p);
	memset(b, 0, 8);
	b[7] = 0x02; /* corrupt */
	patch(p, 72, b, 8);
	is(try_open(p, 0), -EROFS, "corrupt image refused read-write");
	is(try_open(p, TD_OPEN_RDONLY), 0, "corrupt image opens read-only");

	fresh(p);
	put_be32(b, 7);
	patch(p, 96, b, 4);
	is(try_open(p, TD_OPEN_RDONLY), -EINVAL, "refcount_order 7 refused");
	/* the memory a failed open took is ASan's to count */
	is(tu_count_fds(), fds, "failed opens leave no descriptor open");
}

static void test_loop(void)
{
	char a[128], bb[128];

	snprintf(a, sizeof(a), "%s/A.qcow2", dir);
	snprintf(bb, sizeof(bb), "%s/B.qcow2", dir);
	sh("qemu-img create -q -f qcow2 %s 1M", bb, "");
	sh("qemu-img create -q -f qcow2 -b B.qcow2 -F qcow2 %s", a, "");
	sh("qemu-img rebase -q -u -f qcow2 -b A.qcow2 -F qcow2 %s", bb, "");
	is(try_open(a, TD_OPEN_RDONLY), -ELOOP, "backing chain loop refused");
}

static void req_done(struct td_request *req, int err)
{
	int *res = req->data;

	res[0] = err;
	res[1] = 1;
}

static int do_req_flags(struct td_image *img, enum td_op op, unsigned flags,
			uint64_t off, uint64_t len, void *buf)
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
	req.io_done = req.done = req_done;
	req.data = res;
	td_image_queue(img, &req);
	for (i = 0; i < 10000 && !res[1]; i++)
		td_loop_once(loop, 100);
	return res[0];
}

static int do_req(struct td_image *img, enum td_op op, uint64_t off,
		  uint64_t len, void *buf)
{
	return do_req_flags(img, op, 0, off, len, buf);
}

static void test_rw(const char *kind, const char *opts)
{
	char src[128], img_path[160], name[200];
	struct td_image *img = NULL;
	unsigned char *a, *b;
	int rc, fd;

	snprintf(src, sizeof(src), "%s/src.raw", dir);
	snprintf(img_path, sizeof(img_path), "%s/rw-%s.qcow2", dir, kind);
	sh("head -c 4194304 /dev/urandom > %s; dd if=/dev/zero of=%s bs=64k count=8 seek=8 conv=notrunc status=none",
	   src, src);
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd),
			 "qemu-img convert -q -f raw -O qcow2 %s %s %s", opts,
			 src, img_path);
		is(system(cmd), 0, "%s: qemu-img convert", kind);
	}
	snprintf(name, sizeof(name), "qcow2:%s", img_path);
	rc = td_image_open_chain(name, TD_OPEN_BUFFERED, loop, io, &img);
	is(rc, 0, "%s: opens", kind);
	if (rc)
		return;
	a = aligned_alloc(4096, 4 << 20);
	b = aligned_alloc(4096, 4 << 20);
	fd = open(src, O_RDONLY);
	if (read(fd, a, 4 << 20) != 4 << 20)
		diag("short read of %s", src);
	close(fd);
	is(do_req(img, TD_OP_READ, 0, 4 << 20, b), 0, "%s: read all", kind);
	ok(!memcmp(a, b, 4 << 20), "%s: data as written by qemu-img", kind);
	memset(a + 70000, 0x5a, 9000);
	is(do_req(img, TD_OP_WRITE, 65536, 65536, a + 65536), 0,
	   "%s: overwrite a cluster", kind);
	is(do_req(img, TD_OP_FLUSH, 0, 0, NULL), 0, "%s: flush", kind);
	is(do_req(img, TD_OP_READ, 0, 4 << 20, b), 0, "%s: read back", kind);
	ok(!memcmp(a, b, 4 << 20), "%s: new data reads back", kind);
	td_image_close_chain(img);
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", img_path);
		is(system(cmd), 0, "%s: qemu-img check clean after write", kind);
	}
	free(a);
	free(b);
}

/*
 * write_zeroes of parts of clusters over a backing file: the zeroes must be
 * visible and the backing must show through only around them. A discard
 * is a hint: it may leave the data as it was, or read zeroes where it
 * covers whole clusters or subclusters, but never anything else.
 */
static void test_partial_zero(const char *kind, const char *opts)
{
	static const struct {
		enum td_op op;
		uint64_t off, len;
	} ops[] = {
		{ TD_OP_WRITE_ZEROES, 65536 + 4096, 8192 },
		{ TD_OP_WRITE_ZEROES, 3 * 65536 - 4096, 8192 },
		{ TD_OP_WRITE_ZEROES, 5 * 65536 + 2048, 2048 },
		{ TD_OP_WRITE_ZEROES, 6 * 65536 + 512, 65536 + 1024 },
		{ TD_OP_DISCARD, 9 * 65536 + 4096, 4096 },
	};
	char base[128], top[160], ref[160], name[200], cmd[600];
	struct td_image *img = NULL;
	unsigned char *want, *got;
	const uint64_t size = 1 << 20;
	bool v2 = strstr(opts, "0.10") != NULL;
	size_t i;
	int rc, fd;

	snprintf(base, sizeof(base), "%s/pz-base.raw", dir);
	snprintf(top, sizeof(top), "%s/pz-%s.qcow2", dir, kind);
	snprintf(ref, sizeof(ref), "%s/pz-%s.raw", dir, kind);
	sh("head -c 1048576 /dev/urandom > %s", base, "");
	snprintf(cmd, sizeof(cmd),
		 "qemu-img create -q -f qcow2 -b pz-base.raw -F raw %s %s",
		 opts, top);
	is(system(cmd), 0, "%s: partial zeroes: qemu-img create", kind);
	want = aligned_alloc(4096, size);
	got = aligned_alloc(4096, size);
	fd = open(base, O_RDONLY);
	if (read(fd, want, size) != (ssize_t)size)
		diag("short read of %s", base);
	close(fd);
	snprintf(name, sizeof(name), "qcow2:%s", top);
	rc = td_image_open_chain(name, 0, loop, io, &img);
	is(rc, 0, "%s: partial zeroes: opens with its backing file", kind);
	if (rc)
		goto out;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		rc = do_req(img, ops[i].op, ops[i].off, ops[i].len, NULL);
		is(rc, 0, "%s: %s of %llu at %llu", kind, td_op_name(ops[i].op),
		   (unsigned long long)ops[i].len,
		   (unsigned long long)ops[i].off);
		if (ops[i].op == TD_OP_WRITE_ZEROES)
			memset(want + ops[i].off, 0, ops[i].len);
	}
	/* fast zeroes: only where the L2 entries can say it */
	is(do_req_flags(img, TD_OP_WRITE_ZEROES, TD_REQ_FAST_ZERO,
			11 * 65536 + 512, 1024, NULL),
	   -ENOTSUP, "%s: fast zeroes of a partial cluster: -ENOTSUP", kind);
	rc = do_req_flags(img, TD_OP_WRITE_ZEROES, TD_REQ_FAST_ZERO,
			  12 * 65536, 65536, NULL);
	is(rc, v2 ? -ENOTSUP : 0, "%s: fast zeroes of a whole cluster: %s",
	   kind, v2 ? "-ENOTSUP over a backing file in v2" : "done");
	if (!rc)
		memset(want + 12 * 65536, 0, 65536);
	is(do_req(img, TD_OP_READ, 0, size, got), 0, "%s: read back", kind);
	/* where a discard covers whole (sub)clusters, zeroes are as good */
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].op == TD_OP_DISCARD && !got[ops[i].off] &&
		    !memcmp(got + ops[i].off, got + ops[i].off + 1,
			    ops[i].len - 1))
			memset(want + ops[i].off, 0, ops[i].len);
	for (i = 0; i < size && !memcmp(want + i, got + i, 512); i += 512)
		;
	ok(i >= size, "%s: zeroes where written, the backing file around them",
	   kind);
	if (i < size)
		diag("%s: first difference in the sector at %zu: %s", kind, i,
		     got[i] ? "data" : "zeroes");
	is(do_req(img, TD_OP_FLUSH, 0, 0, NULL), 0, "%s: flush", kind);
	td_image_close_chain(img);
	fd = open(ref, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, want, size) != (ssize_t)size)
			diag("short write of %s", ref);
		close(fd);
	}
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", top);
	is(system(cmd), 0, "%s: partial zeroes: qemu-img check clean", kind);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img compare -q -f qcow2 -F raw %s %s", top, ref);
	is(system(cmd), 0, "%s: partial zeroes: qemu-img compare to raw",
	   kind);
out:
	free(want);
	free(got);
}

/*
 * Writes queued together into the same unallocated clusters (allocations
 * run in parallel, their data outside the metadata lock): every piece must
 * land, one host cluster per guest cluster, and the file must cover each
 * cluster although only parts of fresh clusters are written.
 */
static void test_concurrent(const char *kind, const char *opts)
{
	enum { N = 48 };
	char path[160], name[200], cmd[400];
	struct td_request req[N];
	struct iovec iov[N];
	int res[N][2], i, j, rc;
	unsigned char *want, *got;
	const uint64_t size = 4 << 20, piece = 4096;
	struct td_image *img = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/cc-%s.qcow2", dir, kind);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s %s 4M",
		 opts, path);
	is(system(cmd), 0, "%s: concurrent: qemu-img create", kind);
	snprintf(name, sizeof(name), "qcow2:%s", path);
	rc = td_image_open_chain(name, 0, loop, io, &img);
	is(rc, 0, "%s: concurrent: opens", kind);
	if (rc)
		return;
	want = aligned_alloc(4096, size);
	got = aligned_alloc(4096, size);
	memset(want, 0, size);
	/* 48 distinct pieces of three clusters, in scrambled order */
	for (i = 0; i < N; i++) {
		uint64_t off = (uint64_t)(i * 7 % 16) * piece +
			       (uint64_t)(i % 3) * (1 << 20);

		memset(want + off, i + 1, piece);
		memset(&req[i], 0, sizeof(req[i]));
		iov[i].iov_base = want + off;
		iov[i].iov_len = piece;
		req[i].op = i % 11 == 10 ? TD_OP_WRITE_ZEROES : TD_OP_WRITE;
		req[i].offset = off;
		req[i].len = piece;
		req[i].iov = req[i].op == TD_OP_WRITE ? &iov[i] : NULL;
		req[i].iovcnt = req[i].op == TD_OP_WRITE;
		req[i].io_done = req[i].done = req_done;
		req[i].data = res[i];
		res[i][0] = -ETIMEDOUT;
		res[i][1] = 0;
		if (req[i].op == TD_OP_WRITE_ZEROES)
			memset(want + off, 0, piece);
	}
	for (i = 0; i < N; i++)
		td_image_queue(img, &req[i]);
	for (i = 0, j = 0; i < 10000 && j < N; i++) {
		td_loop_once(loop, 100);
		for (j = 0; j < N && res[j][1]; j++)
			;
	}
	for (i = 0, rc = 0; i < N; i++)
		if (res[i][0] && !rc)
			rc = res[i][0];
	is(rc, 0, "%s: concurrent: every request succeeds", kind);
	is(do_req(img, TD_OP_READ, 0, size, got), 0, "%s: read back", kind);
	ok(!memcmp(want, got, size), "%s: every piece landed", kind);
	td_image_close_chain(img);
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", path);
	is(system(cmd), 0, "%s: concurrent: qemu-img check clean", kind);
	if (stat(path, &st))
		st.st_size = -1;
	ok(st.st_size % 65536 == 0, "%s: the file ends on a cluster (%lld)",
	   kind, (long long)st.st_size);
	/* reopened, the partly written clusters lie inside the file */
	rc = td_image_open_chain(name, TD_OPEN_RDONLY, loop, io, &img);
	is(rc, 0, "%s: concurrent: reopens", kind);
	if (!rc) {
		memset(got, 0xee, size);
		is(do_req(img, TD_OP_READ, 0, size, got), 0,
		   "%s: reads after reopening", kind);
		ok(!memcmp(want, got, size), "%s: same data after reopening",
		   kind);
		td_image_close_chain(img);
	}
	free(want);
	free(got);
}

/* The disk's last cluster is partial: zeroing its visible part is whole. */
static void test_tail_zero(void)
{
	char path[160], name[200], cmd[400];
	struct td_image *img = NULL;
	unsigned char *b = aligned_alloc(4096, 8192);
	int rc;

	snprintf(path, sizeof(path), "%s/tail.qcow2", dir);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s 1052672",
		 path);
	is(system(cmd), 0, "tail: qemu-img create");
	snprintf(name, sizeof(name), "qcow2:%s", path);
	rc = td_image_open_chain(name, 0, loop, io, &img);
	is(rc, 0, "tail: opens");
	if (rc) {
		free(b);
		return;
	}
	memset(b, 0x77, 8192);
	is(do_req(img, TD_OP_WRITE, 1048576 - 4096, 8192, b), 0,
	   "tail: data across the last cluster boundary");
	is(do_req_flags(img, TD_OP_WRITE_ZEROES, TD_REQ_FAST_ZERO, 1048576,
			4096, NULL),
	   0, "tail: fast zeroes of the partial last cluster");
	is(do_req(img, TD_OP_READ, 1048576 - 4096, 8192, b), 0,
	   "tail: read back");
	ok(b[0] == 0x77 && b[4095] == 0x77 && b[4096] == 0 && b[8191] == 0,
	   "tail: data before, zeroes in the last cluster");
	td_image_close_chain(img);
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", path);
	is(system(cmd), 0, "tail: qemu-img check clean");
	snprintf(cmd, sizeof(cmd),
		 "qemu-img map --output=json %s | grep '\"start\": 1048576' "
		 "| grep -q '\"data\": false'",
		 path);
	is(system(cmd), 0, "tail: a zero cluster, not zeroes written as data");
	free(b);
}

int main(void)
{
	enum td_io_kind kinds[] = { TD_IO_URING, TD_IO_LIBAIO };
	size_t k;

	td_log_open("test-qcow2", true, LOG_WARNING);
	if (system("qemu-img --version >/dev/null 2>&1")) {
		skip("qemu-img is not installed", "qcow2 tests");
		return tap_done();
	}
	snprintf(dir, sizeof(dir), "/var/tmp/test-qcow2.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	loop = td_loop_new();
	for (k = 0; k < 2; k++) {
		io = td_io_new(loop, kinds[k], 64);
		if (!io) {
			skip("engine unavailable", "engine %zu", k);
			continue;
		}
		diag("engine %s", td_io_name(io));
		if (k == 0) {
			test_malformed();
			test_loop();
			test_partial_zero("plain", "");
			test_partial_zero("extl2", "-o extended_l2=on");
			test_partial_zero("v2", "-o compat=0.10");
			test_partial_zero("c4k", "-o cluster_size=4k");
			test_tail_zero();
			test_concurrent("plain", "");
			test_concurrent("extl2", "-o extended_l2=on");
		}
		test_rw("plain", "");
		test_rw("zlib", "-c");
		test_rw("zstd", "-c -o compression_type=zstd");
		test_rw("extl2", "-o extended_l2=on");
		test_rw("c512", "-o cluster_size=512,refcount_bits=1");
		td_io_free(io);
	}
	td_loop_free(loop);
	sh("rm -rf %s", dir, "");
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2_write_compressed() (drivers/qcow2.h) on images qemu-img creates,
 * zlib and zstd, with qemu-img as the referee: check clean, compare equal
 * to the raw content, map shows compressed data (no host offset) where the
 * data compresses and plain clusters where it does not. Ordinary writes on
 * the same image before, between and after must stay consistent with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/qcow2.h"
#include "log.h"
#include "syncio.h"
#include "tap.h"

static char dir[64];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static size_t align4k(uint64_t n)
{
	return (n + 4095) / 4096 * 4096;
}

/* Cluster i: text that compresses, random bytes that do not, zeroes. */
static void fill(unsigned char *b, uint64_t cs, uint64_t i)
{
	uint64_t k;

	switch (i % 5) {
	case 0:
	case 1:
		for (k = 0; k < cs; k++)
			b[k] = "blktap qcow2 compressed "[(k + i) % 24];
		break;
	case 2:
		for (k = 0; k < cs; k++)
			b[k] = (unsigned char)(random() >> 7);
		break;
	case 3:
		memset(b, 0, cs);
		break;
	default:
		for (k = 0; k < cs; k++)
			b[k] = k < cs / 2 ? (unsigned char)(random() >> 7) :
					    (unsigned char)(k / 100);
		break;
	}
}

static void req_done(struct td_request *req, int err)
{
	*(int *)req->data = err;
}

/*
 * max_frac: the file's size at most, in percent of the disk's: 3 clusters
 * in 5 compress well, and they share host clusters unless the refcounts
 * are too narrow to count the sharers.
 */
static void test_one(const char *name, const char *opts, unsigned max_frac)
{
	const uint64_t size = (4u << 20) + 20480;
	char img[160], ref[160];
	struct td_syncio *s;
	struct td_image *leaf;
	unsigned char *want, *got;
	uint64_t cs, off, n;
	struct td_request req;
	struct iovec iov;
	struct stat st;
	int rc, bad = 0;

	snprintf(img, sizeof(img), "%s/%s.qcow2", dir, name);
	snprintf(ref, sizeof(ref), "%s/%s.raw", dir, name);
	is(run("qemu-img create -q -f qcow2 -o %s %s %llu", opts, img,
	       (unsigned long long)size),
	   0, "%s: qemu-img create", name);
	{
		char nm[200];

		snprintf(nm, sizeof(nm), "qcow2:%s", img);
		s = td_syncio_open(nm, 0);
	}
	ok(s != NULL, "%s: opens", name);
	if (!s)
		return;
	leaf = td_syncio_image(s);
	cs = qcow2_cluster_size(leaf);
	ok(cs >= 512, "%s: cluster size %llu", name, (unsigned long long)cs);
	want = aligned_alloc(4096, align4k(size + cs));
	got = aligned_alloc(4096, align4k(size + cs));
	srandom(42);
	for (off = 0; off < size; off += cs)
		fill(want + off, cs, off / cs);

	/* an ordinary write first, in cluster 5, which stays plain */
	is(td_syncio_pwrite(s, want + 5 * cs, cs, 5 * cs, 0), 0,
	   "%s: ordinary write before", name);
	for (off = 0; off < size; off += cs) {
		n = size - off < cs ? size - off : cs;
		if (off == 5 * cs || off == 7 * cs)
			continue;
		rc = qcow2_write_compressed(leaf, off, want + off, n);
		if (rc && !bad++)
			diag("%s: compressed write at %llu: %d", name,
			     (unsigned long long)off, rc);
	}
	is(bad, 0, "%s: every cluster written compressed (or plain)", name);
	is(qcow2_write_compressed(leaf, 0, want, cs), -EEXIST,
	   "%s: an allocated cluster is refused", name);
	is(qcow2_write_compressed(leaf, cs / 2, want, cs), -EINVAL,
	   "%s: a misaligned offset is refused", name);
	is(qcow2_write_compressed(leaf, 0, want, cs / 2), -EINVAL,
	   "%s: a partial cluster is refused", name);
	/* ordinary writes after: a new cluster, and over a compressed one */
	/* an ordinary write still in flight to the cluster comes first */
	memset(&req, 0, sizeof(req));
	req.op = TD_OP_WRITE;
	req.offset = 7 * cs;
	req.len = cs;
	req.iov = &iov;
	req.iovcnt = 1;
	req.done = req_done;
	req.data = &rc;
	iov.iov_base = want + 7 * cs;
	iov.iov_len = cs;
	rc = 1;
	td_syncio_submit(s, &req);
	is(qcow2_write_compressed(leaf, 7 * cs, want, cs), -EEXIST,
	   "%s: waits for a write in flight to the cluster, then refuses",
	   name);
	is(td_syncio_wait(s, 0), 0, "%s: the ordinary write completes", name);
	is(rc, 0, "%s: ordinary write to a skipped cluster", name);
	memset(want + cs + cs / 4, 0xa5, cs / 4);
	is(td_syncio_pwrite(s, want + cs, cs, cs, 0), 0,
	   "%s: ordinary write over a compressed cluster", name);
	is(td_syncio_pread(s, got, size, 0), 0, "%s: read back", name);
	for (off = 0; off < size && !memcmp(want + off, got + off, 512);)
		off += 512;
	ok(off >= size, "%s: reads what was written", name);
	if (off < size)
		diag("%s: first difference in the sector at %llu", name,
		     (unsigned long long)off);
	is(td_syncio_flush(s), 0, "%s: flush", name);
	td_syncio_close(s);

	rc = open(ref, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (rc >= 0) {
		if (write(rc, want, size) != (ssize_t)size)
			diag("short write of %s", ref);
		close(rc);
	}
	is(run("qemu-img check -q %s", img), 0, "%s: qemu-img check clean",
	   name);
	is(run("qemu-img compare -q -f qcow2 -F raw %s %s", img, ref), 0,
	   "%s: qemu-img compare equal to the raw content", name);
	/* compressed extents have no host offset in qemu-img map */
	ok(run("qemu-img map --output=json %s | grep -q '\"data\": true}'",
	       img) == 0,
	   "%s: qemu-img map shows compressed data", name);
	ok(run("qemu-img map --output=json %s | grep -q '\"offset\"'", img) ==
		   0,
	   "%s: qemu-img map shows the plain clusters", name);
	if (stat(img, &st))
		st.st_size = -1;
	ok((uint64_t)st.st_size < size * max_frac / 100,
	   "%s: the file holds %lld bytes for %llu", name,
	   (long long)st.st_size, (unsigned long long)size);
	free(want);
	free(got);
}

int main(void)
{
	td_log_open("test-qcow2-cwrite", true, LOG_WARNING);
	if (system("qemu-img --version >/dev/null 2>&1")) {
		skip("qemu-img is not installed", "qcow2 compressed writes");
		return tap_done();
	}
	snprintf(dir, sizeof(dir), "/var/tmp/test-qcow2-cw.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_one("zlib", "compression_type=zlib", 60);
	test_one("zstd", "compression_type=zstd", 60);
	test_one("zlib4k", "cluster_size=4k,refcount_bits=1", 110);
	test_one("zstd-extl2",
		 "compression_type=zstd,extended_l2=on,cluster_size=32k", 60);
	test_one("v2", "compat=0.10,cluster_size=512", 100);
	run("rm -rf %s", dir);
	return tap_done();
}

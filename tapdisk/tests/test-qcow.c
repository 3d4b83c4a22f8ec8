// SPDX-License-Identifier: GPL-2.0-only
/*
 * The qcow (version 1) driver on real files, with qemu-img and qemu-io as
 * the referee: images qemu writes read back right through the driver, and
 * images the driver writes read back right in qemu. (Hand-made headers,
 * malformed or encrypted: test-qcow-crafted.c.)
 */
#include "qcow-test.h"

static void test_qemu_written(void)
{
	uint8_t *want = calloc(1, SIZE);
	char name[600];

	if (sh("qemu-img create -q -f qcow %s 8M && "
	       "qemu-io -f qcow -c 'write -P 0x11 0 64k' "
	       "-c 'write -P 0x22 1000k 3k' -c 'write -P 0x33 5M 1M' "
	       "-c 'write -P 0x44 8188k 4k' %s >/dev/null",
	       path("q.qcow"), path("q.qcow"))) {
		ok(0, "qemu-img/qemu-io made a test image");
		free(want);
		return;
	}
	memset(want, 0x11, 64 * KiB);
	memset(want + 1000 * KiB, 0x22, 3 * KiB);
	memset(want + 5 * MiB, 0x33, MiB);
	memset(want + 8188 * KiB, 0x44, 4 * KiB);
	snprintf(name, sizeof(name), "qcow:%s", path("q.qcow"));
	ok(same_as(name, want, SIZE, 0),
	   "qemu-io's writes read back (O_DIRECT)");
	ok(same_as(name, want, SIZE, TD_OPEN_BUFFERED),
	   "qemu-io's writes read back (buffered)");
	ok(same_as(path("q.qcow"), want, SIZE, 0),
	   "the bare path is probed as qcow and reads the same");
	free(want);
}

/* qemu-img convert -c: compressed clusters. */
static void test_compressed(void)
{
	uint8_t *raw = malloc(SIZE), *buf;
	struct td_syncio *s;
	char name[600];
	size_t i;

	/* compressible, but not all alike */
	for (i = 0; i < SIZE; i += 4096)
		memset(raw + i, (int)(i / 4096 * 7 % 251), 4096);
	memset(raw + 3 * MiB, 0, MiB);
	fill_random(raw + 6 * MiB, 64 * KiB, 3); /* incompressible */
	put_file(path("z.raw"), raw, SIZE);
	/* qemu-img 7.2 exits 1 after writing a qcow image: compare instead */
	sh("qemu-img convert -c -f raw -O qcow %s %s 2>/dev/null || true",
	   path("z.raw"), path("z.qcow"));
	if (sh("qemu-img compare -q -f raw -F qcow %s %s", path("z.raw"),
	       path("z.qcow"))) {
		ok(0, "qemu-img convert -c made a compressed image");
		free(raw);
		return;
	}
	snprintf(name, sizeof(name), "qcow:%s", path("z.qcow"));
	ok(same_as(name, raw, SIZE, 0), "compressed clusters read back");

	/* rewrite part of a compressed cluster: the rest must survive */
	s = td_syncio_open(name, 0);
	buf = td_buf_get(4096);
	memset(buf, 0xee, 4096);
	ok(s && td_syncio_pwrite(s, buf, 1000, 8192 + 100, 0) == 0,
	   "a partial write over a compressed cluster");
	memset(raw + 8192 + 100, 0xee, 1000);
	td_syncio_close(s);
	ok(same_as(name, raw, SIZE, 0),
	   "the rest of the compressed cluster kept its data");
	put_file(path("z2.raw"), raw, SIZE);
	is(sh("qemu-img compare -q -f raw -F qcow %s %s", path("z2.raw"),
	      path("z.qcow")),
	   0, "qemu-img compare agrees");
	td_buf_put(buf, 4096);
	free(raw);
}

struct w {
	uint64_t off;
	size_t len;
};

/* Writes through the driver, checked by qemu. */
static void test_writes(unsigned flags, const char *what)
{
	static const struct w ws[] = {
		{ 0, 4096 },	       { 4096 * 3 + 512, 512 },
		{ 100000, 70000 },     { 2 * MiB - 1000, 3000 },
		{ 3 * MiB, 2 * MiB },  { SIZE - 700, 700 },
		{ 100000 + 512, 100 }, { 5 * MiB - 3, 9 },
	};
	uint8_t *want = calloc(1, SIZE), *buf = malloc(2 * MiB + 4096);
	struct td_syncio *s;
	struct td_extent ext;
	char name[600];
	size_t i;

	unlink(path("w.qcow"));
	if (sh("qemu-img create -q -f qcow %s 8M", path("w.qcow"))) {
		ok(0, "qemu-img create");
		goto out;
	}
	snprintf(name, sizeof(name), "qcow:%s", path("w.qcow"));
	s = td_syncio_open(name, flags);
	ok(s != NULL, "%s: opened an empty image for writing", what);
	if (!s)
		goto out;
	is(td_syncio_block_status(s, 0, SIZE, &ext), 0, "block status");
	ok(ext.len == SIZE && (ext.flags & TD_BS_HOLE) && ext.depth == -1,
	   "%s: an empty image is one hole", what);
	for (i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
		fill_random(buf, ws[i].len, (unsigned)i + 10);
		memcpy(want + ws[i].off, buf, ws[i].len);
		if (td_syncio_pwrite(s, buf, ws[i].len, ws[i].off, 0)) {
			ok(0, "%s: write %zu", what, i);
			break;
		}
	}
	ok(i == sizeof(ws) / sizeof(ws[0]), "%s: %zu writes, some unaligned",
	   what, i);
	is(td_syncio_flush(s), 0, "flush");
	is(td_syncio_block_status(s, 0, SIZE, &ext), 0, "block status");
	ok(ext.len == 4096 && ext.flags == 0 && ext.depth == 0,
	   "%s: the first cluster is data", what);
	is(td_syncio_block_status(s, 4096, SIZE - 4096, &ext), 0,
	   "block status");
	ok(ext.len == 8192 && (ext.flags & TD_BS_HOLE),
	   "%s: the next two clusters are a hole", what);
	is(td_syncio_write_zeroes(s, 3 * MiB + 4096, 8192, 0), 0,
	   "write_zeroes over data");
	memset(want + 3 * MiB + 4096, 0, 8192);
	is(td_syncio_write_zeroes(s, 7 * MiB, 4096, 0), 0,
	   "write_zeroes over a hole");
	is(td_syncio_block_status(s, 7 * MiB, 4096, &ext), 0, "block status");
	ok(ext.flags & TD_BS_HOLE, "%s: zeroing a hole keeps it a hole", what);
	is(td_syncio_write_zeroes(s, 0, 4096, TD_REQ_FAST_ZERO), -ENOTSUP,
	   "fast zero is not offered");
	td_syncio_close(s);
	ok(same_as(name, want, SIZE, flags), "%s: reads back", what);
	put_file(path("w.raw"), want, SIZE);
	is(sh("qemu-img compare -q -f raw -F qcow %s %s", path("w.raw"),
	      path("w.qcow")),
	   0, "%s: qemu-img compare agrees", what);
	is(sh("qemu-io -f qcow -c 'read -P 0 4k 8k' %s >/dev/null",
	      path("w.qcow")),
	   0, "%s: qemu-io reads the hole as zeroes", what);
out:
	free(want);
	free(buf);
}

/* A copy-on-write image over a raw backing file. */
static void test_cow(void)
{
	uint8_t *raw = malloc(SIZE), *want = malloc(SIZE), *buf = malloc(MiB);
	struct td_syncio *s;
	struct td_extent ext;
	char name[600];
	int i;

	fill_random(raw, SIZE, 42);
	put_file(path("base.raw"), raw, SIZE);
	memcpy(want, raw, SIZE);
	/* 4 KiB clusters, so partial writes must copy the rest from below */
	unlink(path("cow.qcow"));
	{
		const char *k[] = { "cluster_size" }, *v[] = { "4096" };
		struct td_create_opts o = {
			.size = 0,
			.backing = "base.raw",
			.nopts = 1,
			.keys = k,
			.vals = v,
		};

		is(td_driver_qcow.create(path("cow.qcow"), &o), 0,
		   "create a COW image over base.raw (size from the backing)");
	}
	snprintf(name, sizeof(name), "qcow:%s", path("cow.qcow"));
	ok(same_as(name, raw, SIZE, 0),
	   "an untouched COW image reads the backing");
	s = td_syncio_open(name, 0);
	ok(s != NULL, "opened the COW image");
	if (!s)
		goto out;
	ok(td_syncio_image(s)->parent != NULL &&
		   !strcmp(td_syncio_image(s)->info.parent, "base.raw"),
	   "info.parent is the backing name");
	for (i = 0; i < 6; i++) {
		uint64_t off = (uint64_t)i * 1234567 % (SIZE - 70000);
		size_t len = 512 + (size_t)i * 11111;

		fill_random(buf, len, 100 + i);
		memcpy(want + off, buf, len);
		ok(td_syncio_pwrite(s, buf, len, off, 0) == 0,
		   "COW write of %zu bytes at %llu", len,
		   (unsigned long long)off);
	}
	is(td_syncio_block_status(s, 0, 4096, &ext), 0, "block status");
	ok(ext.flags == 0 && ext.depth == 0,
	   "written cluster: data at depth 0");
	is(td_syncio_block_status(s, 4 * MiB, 4096, &ext), 0, "block status");
	ok(ext.flags == 0 && ext.depth == 1,
	   "unwritten cluster: data at depth 1 (the backing file)");
	is(td_syncio_write_zeroes(s, 6 * MiB + 100, 5000, 0), 0,
	   "write_zeroes over the backing's data");
	memset(want + 6 * MiB + 100, 0, 5000);
	td_syncio_close(s);
	ok(same_as(name, want, SIZE, 0), "the COW image reads back");
	ok(same_as(path("base.raw"), raw, SIZE, 0), "the backing is unchanged");
	put_file(path("cow.raw"), want, SIZE);
	is(sh("qemu-img compare -q -f raw -F qcow %s %s", path("cow.raw"),
	      path("cow.qcow")),
	   0, "qemu-img compare agrees on the COW image");
out:
	free(raw);
	free(want);
	free(buf);
}

static struct td_image *open_img(struct td_syncio **s, const char *file,
				 unsigned flags)
{
	char name[600];

	snprintf(name, sizeof(name), "qcow:%s", file);
	*s = td_syncio_open(name, flags | TD_OPEN_NO_BACKING);
	return *s ? td_syncio_image(*s) : NULL;
}

static void test_admin(void)
{
	const struct td_driver *drv = td_driver_find("qcow");
	const char *k[2], *v[2];
	struct td_create_opts o = { .keys = k, .vals = v };
	struct json_object *j;
	struct td_syncio *s;
	struct td_image *img;
	struct td_check chk;
	uint8_t *buf = td_buf_get(64 * KiB);

	ok(drv && drv->create && drv->describe && drv->set_parent &&
		   drv->resize && drv->check,
	   "qcow is registered with its admin ops");
	if (!drv)
		return;
	o.size = 64 * MiB;
	is(drv->create(path("c.qcow"), &o), 0, "create a standalone image");
	is(sh("qemu-img info %s | grep -q 'cluster_size: 4096'",
	      path("c.qcow")),
	   0, "qemu-img info: qcow, 4 KiB clusters");
	is(sh("truncate -s 64M %s && qemu-img compare -q -f qcow -F raw %s %s",
	      path("zero.raw"), path("c.qcow"), path("zero.raw")),
	   0, "qemu-img compare: all zeroes");
	o.size = 1000;
	is(drv->create(path("x.qcow"), &o), -EINVAL,
	   "a size not a multiple of 512 is refused");
	o.size = 64 * MiB;
	k[0] = "cluster_size";
	v[0] = "3000";
	o.nopts = 1;
	is(drv->create(path("x.qcow"), &o), -EINVAL,
	   "cluster_size 3000 is refused");
	k[0] = "preallocation";
	v[0] = "full";
	is(drv->create(path("x.qcow"), &o), -EINVAL,
	   "unknown options are refused");
	k[0] = "cluster_size";
	v[0] = "64k";
	is(drv->create(path("big.qcow"), &o), 0,
	   "create with cluster_size=64k");
	is(sh("qemu-img info %s | grep -q 'cluster_size: 65536'",
	      path("big.qcow")),
	   0, "qemu-img info sees 64 KiB clusters");

	/* an encrypted image made here, written here, read by qemu */
	k[0] = "encryption";
	v[0] = "on";
	o.size = MiB;
	is(drv->create(path("ce.qcow"), &o), 0, "create with encryption=on");
	{
		char name[1200];
		struct td_syncio *es;

		put_file(path("ckey"), "open sesame 12345678", 20);
		snprintf(name, sizeof(name), "qcow:%s?key-file=%s",
			 path("ce.qcow"), path("ckey"));
		es = td_syncio_open(name, 0);
		memset(buf, 0x6b, 64 * KiB);
		ok(es && !td_syncio_pwrite(es, buf, 10000, 4096, 0),
		   "write to it with a 20-byte password");
		td_syncio_close(es);
	}
	is(sh("qemu-io --object secret,id=s0,data='open sesame 12345678' "
	      "--image-opts driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
	      "-c 'read -P 0x6b 4096 10000' -c 'read -P 0 0 4096' >/dev/null",
	      path("ce.qcow")),
	   0, "qemu-io decrypts it (password cut to 16 bytes like qemu)");
	o.size = 64 * MiB;

	/* describe */
	img = open_img(&s, path("big.qcow"), 0);
	ok(img != NULL, "opened it");
	if (img) {
		j = json_object_new_object();
		drv->describe(img, j);
		ok(strstr(json_object_to_json_string_ext(
				  j, JSON_C_TO_STRING_PLAIN),
			  "\"cluster_size\":65536") &&
			   strstr(json_object_to_json_string_ext(
					  j, JSON_C_TO_STRING_PLAIN),
				  "\"encrypted\":false") &&
			   strstr(json_object_to_json_string_ext(
					  j, JSON_C_TO_STRING_PLAIN),
				  "\"backing\":null"),
		   "describe: %s",
		   json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
		/* resize: the L1 table grows into the empty tail */
		is(drv->resize(img, 1024ull * MiB), 0,
		   "grow an image with nothing allocated");
		is(td_syncio_size(s), 1024 * MiB,
		   "the open image has the new size");
		td_syncio_close(s);
	}
	is(sh("qemu-img info %s | grep -q 'virtual size: 1 GiB'",
	      path("big.qcow")),
	   0, "qemu-img info sees the new size");
	img = open_img(&s, path("big.qcow"), 0);
	if (img) {
		memset(buf, 0x77, 64 * KiB);
		is(td_syncio_pwrite(s, buf, 64 * KiB, 1000 * MiB, 0), 0,
		   "write near the new end");
		is(drv->resize(img, 1024ull * MiB + 512), 0,
		   "grow within the last L2 table's span");
		is(drv->resize(img, 4096ull * 1024 * MiB), -ENOTSUP,
		   "grow that needs the L1 table moved is refused");
		is(drv->resize(img, 10 * MiB), -ENOTSUP,
		   "shrinking is refused");
		is(drv->check(img, &chk, 0), 0, "check");
		ok(chk.corruptions == 0 && chk.allocated_clusters == 1,
		   "check: no corruption, one cluster");
		td_syncio_close(s);
	}
	is(sh("qemu-io -f qcow -c 'read -P 0x77 1000M 64k' %s >/dev/null",
	      path("big.qcow")),
	   0, "qemu-io reads the data after the resizes");

	/* COW create, set_parent */
	mkdir(path("sub"), 0755);
	{
		uint8_t z[4096];

		memset(z, 0x3c, sizeof(z));
		put_file(path("sub/base.raw"), z, sizeof(z));
		put_file(path("sub/bas2.raw"), z, sizeof(z));
	}
	o.size = 0;
	o.nopts = 0;
	o.backing = "base.raw";
	is(drv->create(path("sub/top.qcow"), &o), 0,
	   "create over a relative backing name");
	is(sh("qemu-img info %s | grep -q 'backing file: base.raw'",
	      path("sub/top.qcow")),
	   0, "qemu-img info shows the backing file");
	is(sh("qemu-img compare -q -f raw -F qcow %s %s", path("sub/base.raw"),
	      path("sub/top.qcow")),
	   0, "qemu-img compare: the COW image reads its backing");
	img = open_img(&s, path("sub/top.qcow"), 0);
	if (img) {
		j = json_object_new_object();
		drv->describe(img, j);
		ok(strstr(json_object_to_json_string_ext(
				  j, JSON_C_TO_STRING_PLAIN),
			  "\"backing\":\"base.raw\""),
		   "describe names the backing file");
		json_object_put(j);
		is(drv->set_parent(img, "bas2.raw", NULL), 0,
		   "set_parent to a name of the same length");
		ok(img->info.parent && !strcmp(img->info.parent, "bas2.raw"),
		   "info.parent follows");
		is(drv->set_parent(img, "a-much-longer-name-than-before.raw",
				   NULL),
		   -ENOSPC,
		   "a longer name than the header has room for: -ENOSPC");
		is(drv->set_parent(img, "b.raw", NULL), 0,
		   "set_parent to a shorter name");
		is(drv->set_parent(img, NULL, NULL), 0, "set_parent to none");
		is(drv->set_parent(img, "base.raw!", NULL), -ENOSPC,
		   "one byte too many: -ENOSPC");
		is(drv->set_parent(img, "bas2.raw", NULL), 0,
		   "and back, into the same space");
		td_syncio_close(s);
	}
	is(sh("qemu-img info %s | grep -q 'backing file: bas2.raw'",
	      path("sub/top.qcow")),
	   0, "qemu-img info shows the new backing file");
	img = open_img(&s, path("c.qcow"), 0);
	if (img) {
		is(drv->set_parent(img, "base.raw", NULL), -ENOSPC,
		   "set_parent on an image with no room for a name: -ENOSPC");
		td_syncio_close(s);
	}
	td_buf_put(buf, 64 * KiB);
}

/* Parallel writes, all allocating, to one L2 table and across tables. */
static void count_done(struct td_request *req, int err)
{
	int *n = req->data;

	if (!err)
		(*n)++;
}

static void test_parallel(void)
{
	enum { N = 64 };
	struct td_request reqs[N];
	struct iovec iovs[N];
	uint8_t *want = calloc(1, SIZE), *buf = td_buf_get(N * 16 * KiB);
	struct td_syncio *s;
	char name[600];
	int i, done = 0;

	unlink(path("p.qcow"));
	if (sh("qemu-img create -q -f qcow %s 8M", path("p.qcow")))
		goto out;
	snprintf(name, sizeof(name), "qcow:%s", path("p.qcow"));
	s = td_syncio_open(name, 0);
	if (!s) {
		ok(0, "open");
		goto out;
	}
	fill_random(buf, N * 16 * KiB, 9);
	for (i = 0; i < N; i++) {
		/* interleaved, overlapping L2 spans of 2 MiB */
		uint64_t off = (uint64_t)(i % 4) * 2 * MiB +
			       (uint64_t)(i / 4) * 20 * KiB + 512;

		memset(&reqs[i], 0, sizeof(reqs[i]));
		iovs[i].iov_base = buf + i * 16 * KiB;
		iovs[i].iov_len = 16 * KiB;
		reqs[i].op = TD_OP_WRITE;
		reqs[i].offset = off;
		reqs[i].len = 16 * KiB;
		reqs[i].iov = &iovs[i];
		reqs[i].iovcnt = 1;
		reqs[i].done = count_done;
		reqs[i].data = &done;
		memcpy(want + off, buf + i * 16 * KiB, 16 * KiB);
		td_syncio_submit(s, &reqs[i]);
	}
	td_syncio_wait(s, 0);
	is(done, N, "%d parallel allocating writes", N);
	td_syncio_close(s);
	ok(same_as(name, want, SIZE, 0), "they all read back");
	put_file(path("p.raw"), want, SIZE);
	is(sh("qemu-img compare -q -f raw -F qcow %s %s", path("p.raw"),
	      path("p.qcow")),
	   0, "qemu-img compare agrees");
out:
	free(want);
	td_buf_put(buf, N * 16 * KiB);
}

/* More L2 tables than the cache holds: evictions, reloads. */
static void test_many_tables(void)
{
	enum { TABLES = 150 };
	uint8_t *buf = td_buf_get(4096), *got = td_buf_get(4096);
	struct td_syncio *s;
	char name[600];
	int i, bad = 0;

	unlink(path("m.qcow"));
	if (sh("qemu-img create -q -f qcow %s 300M", path("m.qcow")))
		goto out;
	snprintf(name, sizeof(name), "qcow:%s", path("m.qcow"));
	s = td_syncio_open(name, 0);
	if (!s) {
		ok(0, "open");
		goto out;
	}
	for (i = 0; i < TABLES && !bad; i++) {
		memset(buf, i + 1, 4096);
		bad = td_syncio_pwrite(s, buf, 4096,
				       (uint64_t)i * 2 * MiB + 8192, 0);
	}
	is(bad, 0, "one cluster written under each of %d L2 tables", TABLES);
	for (i = TABLES - 1; i >= 0 && !bad; i--) {
		bad = td_syncio_pread(s, got, 4096,
				      (uint64_t)i * 2 * MiB + 8192);
		if (!bad && (got[0] != i + 1 || got[4095] != i + 1))
			bad = -EILSEQ;
	}
	is(bad, 0, "all of them read back, last table first");
	td_syncio_close(s);
	s = td_syncio_open(name, 0);
	for (i = 0; s && i < TABLES && !bad; i += 7) {
		bad = td_syncio_pread(s, got, 4096,
				      (uint64_t)i * 2 * MiB + 8192);
		if (!bad && got[0] != i + 1)
			bad = -EILSEQ;
	}
	ok(s && !bad, "and after reopening");
	td_syncio_close(s);
	is(sh("qemu-io -f qcow -c 'read -P 1 8k 4k' -c 'read -P 150 312483840 4k' "
	      "-c 'read -P 0 0 8k' %s >/dev/null",
	      path("m.qcow")),
	   0, "qemu-io reads the first and the last");
out:
	td_buf_put(buf, 4096);
	td_buf_put(got, 4096);
}

int main(void)
{
	td_log_open("test-qcow", true,
		    getenv("TD_TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT);
	snprintf(dir, sizeof(dir), "/var/tmp/td-test-qcow.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	have_qemu = system("qemu-img --version >/dev/null 2>&1 && "
			   "qemu-io --version >/dev/null 2>&1") == 0;

	if (have_qemu) {
		test_qemu_written();
		test_compressed();
		test_writes(0, "O_DIRECT");
		test_writes(TD_OPEN_BUFFERED, "buffered");
		test_cow();
		test_admin();
		test_parallel();
		test_many_tables();
	} else {
		skip("qemu-img and qemu-io are not installed",
		     "the tests against qemu");
	}
	sh("rm -rf %s", dir);
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The qcow (version 1) driver on real files, with qemu-img and qemu-io as
 * the referee: images qemu writes read back right through the driver, and
 * images the driver writes read back right in qemu. Malformed images are
 * refused without reading outside the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "buf.h"
#include "drivers/drivers.h"
#include "image.h"
#include "log.h"
#include "syncio.h"
#include "tap.h"

#define KiB 1024u
#define MiB (1024u * KiB)
#define SIZE (8 * MiB)

static char dir[64];
static bool have_qemu;

static const char *path(const char *name)
{
	static char bufs[4][512];
	static int n;
	char *p = bufs[n++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", dir, name);
	return p;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		diag("command failed (%d): %s", rc, cmd);
	return rc;
}

static void put_file(const char *p, const void *buf, size_t len)
{
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
}

static void fill_random(uint8_t *b, size_t len, unsigned seed)
{
	size_t i;

	srand(seed);
	for (i = 0; i < len; i++)
		b[i] = (uint8_t)rand();
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, v >> 32);
	be32(p + 4, (uint32_t)v);
}

struct hdr {
	uint32_t magic, version;
	uint64_t boff;
	uint32_t bsize;
	uint64_t size;
	uint8_t cbits, l2bits;
	uint32_t crypt;
	uint64_t l1off;
};

static void put_hdr(uint8_t *b, const struct hdr *h)
{
	memset(b, 0, 48);
	be32(b, h->magic);
	be32(b + 4, h->version);
	be64(b + 8, h->boff);
	be32(b + 16, h->bsize);
	be64(b + 24, h->size);
	b[32] = h->cbits;
	b[33] = h->l2bits;
	be32(b + 36, h->crypt);
	be64(b + 40, h->l1off);
}

/* A good 1 MiB image: 4 KiB clusters, L1 at 48, one L2 table at 4096. */
static const struct hdr good = {
	.magic = 0x514649fb,
	.version = 1,
	.size = 1 * MiB,
	.cbits = 12,
	.l2bits = 9,
	.l1off = 48,
};

static int open_err(const char *file, unsigned flags)
{
	char name[600];
	struct td_syncio *s;

	snprintf(name, sizeof(name), "qcow:%s", file);
	s = td_syncio_open(name, flags);
	if (s) {
		td_syncio_close(s);
		return 0;
	}
	return -errno;
}

/* A crafted image: header h, then extra bytes at given offsets. */
static void craft(const char *file, const struct hdr *h, size_t fsize,
		  const uint8_t *extra, size_t elen, size_t eoff)
{
	uint8_t *b = calloc(1, fsize > 48 ? fsize : 48);

	put_hdr(b, h);
	if (extra)
		memcpy(b + eoff, extra, elen);
	put_file(file, b, fsize);
	free(b);
}

static void test_malformed(void)
{
	const char *f = path("bad.qcow");
	uint8_t ent[8], blk[4096];
	struct hdr h;
	struct td_syncio *s;
	char name[600];
	int rc;

	craft(f, &good, 20, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "truncated header refused");
	h = good;
	h.magic = 0x514649fa;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "bad magic refused");
	h = good;
	h.version = 2;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "version 2 refused");
	h = good;
	h.cbits = 8;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "cluster_bits 8 refused");
	h.cbits = 17;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "cluster_bits 17 refused");
	h = good;
	h.l2bits = 5;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "l2_bits 5 refused");
	h.l2bits = 14;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "l2_bits 14 refused");
	h = good;
	h.crypt = 2;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "crypt_method 2 refused");
	h = good;
	h.size = 0;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "size 0 refused");
	h = good;
	h.size = UINT64_MAX - 100;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "size near 2^64 refused");
	h = good;
	h.size = 1ull << 62;
	h.cbits = 9;
	h.l2bits = 6;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL,
	   "size whose L1 table would be huge refused");
	h = good;
	h.size = 4096ull * MiB; /* 2048 L1 entries: 16 KiB */
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "L1 table beyond EOF refused");
	h = good;
	h.l1off = UINT64_MAX - 4;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "L1 offset near 2^64 refused");
	h = good;
	h.l1off = 8;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "L1 table overlapping the header refused");
	h = good;
	h.boff = 4000;
	h.bsize = 200;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "backing name beyond EOF refused");
	h.boff = 100;
	h.bsize = 2000;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "backing name over 1023 bytes refused");
	h.boff = 100;
	h.bsize = 8;
	craft(f, &h, 4096, (const uint8_t *)"ab\0cdefg", 8, 100);
	is(open_err(f, 0), -EINVAL, "backing name with a NUL refused");
	h.boff = UINT64_MAX - 2;
	h.bsize = 8;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "backing offset near 2^64 refused");

	/* metadata pointing outside the file: open works, reads fail */
	snprintf(name, sizeof(name), "qcow:%s", f);
	be64(ent, 1ull << 40);
	craft(f, &good, 8192, ent, 8, 48);
	s = td_syncio_open(name, 0);
	ok(s != NULL, "an L1 entry beyond EOF does not stop the open");
	if (s) {
		is(td_syncio_pread(s, blk, 4096, 0), -EIO,
		   "reading under an L1 entry beyond EOF is -EIO");
		td_syncio_close(s);
	}
	be64(ent, 4096);
	craft(f, &good, 8192, ent, 8, 48);
	memset(blk, 0, sizeof(blk));
	be64(blk, 1ull << 40); /* cluster 0 far past EOF */
	be64(blk + 8, 4096 + 7); /* cluster 1 unaligned */
	/* cluster 2 compressed, 100 bytes past the end */
	be64(blk + 16, (1ull << 63) | (100ull << (63 - 12)) | 8150);
	/* cluster 3 compressed, 50 bytes of garbage inside the file */
	be64(blk + 24, (1ull << 63) | (50ull << (63 - 12)) | 100);
	{
		int fd = open(f, O_WRONLY);

		if (fd < 0 || pwrite(fd, blk, sizeof(blk), 4096) != 4096)
			abort();
		close(fd);
	}
	s = td_syncio_open(name, 0);
	ok(s != NULL, "opened the image with bad L2 entries");
	if (s) {
		is(td_syncio_pread(s, blk, 4096, 0), -EIO,
		   "an L2 entry beyond EOF reads as -EIO");
		is(td_syncio_pread(s, blk, 4096, 4096), -EIO,
		   "an unaligned L2 entry reads as -EIO");
		is(td_syncio_pread(s, blk, 4096, 8192), -EIO,
		   "a compressed cluster past EOF reads as -EIO");
		is(td_syncio_pread(s, blk, 4096, 12288), -EIO,
		   "a compressed cluster that does not inflate reads as -EIO");
		rc = td_syncio_pread(s, blk, 4096, 16384);
		ok(rc == 0 && blk[0] == 0 && blk[4095] == 0,
		   "an unallocated cluster beside them reads as zeroes");
		td_syncio_close(s);
	}
	/* probing finds qcow for version 1 */
	{
		const char *type = NULL;

		craft(f, &good, 8192, NULL, 0, 0);
		ok(td_probe(f, &type) == 0 && type && !strcmp(type, "qcow"),
		   "a version 1 image probes as qcow");
	}
}

/* Read the whole image through the driver and compare with want. */
static bool same_as(const char *name, const uint8_t *want, size_t len,
		    unsigned flags)
{
	struct td_syncio *s = td_syncio_open(name, flags | TD_OPEN_RDONLY);
	uint8_t *got = malloc(len);
	bool same = false;
	size_t off, chunk = 300 * KiB; /* not a multiple of clusters */

	if (!s || !got)
		goto out;
	if (td_syncio_size(s) != len) {
		diag("%s: size %llu, want %zu", name,
		     (unsigned long long)td_syncio_size(s), len);
		goto out;
	}
	for (off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (td_syncio_pread(s, got + off, n, off))
			goto out;
	}
	same = !memcmp(got, want, len);
	for (off = 0; !same && off < len; off++) {
		if (got[off] != want[off]) {
			diag("%s: first difference at %zu: %u, want %u", name,
			     off, got[off], want[off]);
			break;
		}
	}
out:
	td_syncio_close(s);
	free(got);
	return same;
}

/* An image qemu wrote with qemu-io patterns. */
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

/* qemu's encryption, done independently here: AES-128-CBC per sector. */
static void encrypt_sectors(const char *pw, uint64_t sector, uint8_t *buf,
			    size_t len)
{
	unsigned char key[16] = { 0 }, iv[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	size_t i;
	int n, b;

	memcpy(key, pw, strlen(pw) < 16 ? strlen(pw) : 16);
	for (i = 0; i < len; i += 512, sector++) {
		memset(iv, 0, sizeof(iv));
		for (b = 0; b < 8; b++)
			iv[b] = (unsigned char)(sector >> (8 * b));
		EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv);
		EVP_CIPHER_CTX_set_padding(ctx, 0);
		EVP_EncryptUpdate(ctx, buf + i, &n, buf + i, 512);
	}
	EVP_CIPHER_CTX_free(ctx);
}

static void test_encrypted(void)
{
	uint8_t *want = calloc(1, MiB), *buf = td_buf_get(64 * KiB);
	const char *img = path("e.qcow");
	char name[1200];
	int fd;

	put_file(path("key"), "sesame\n", 7);
	/* an image made by hand: one L2 table, one encrypted cluster */
	{
		uint8_t *f = calloc(1, 3 * 4096), ent[8];
		struct hdr h = good;

		h.crypt = 1;
		put_hdr(f, &h);
		be64(f + 48, 4096);
		be64(ent, 8192);
		memcpy(f + 4096 + 8 * 2, ent, 8); /* cluster 2 at 8192 */
		fill_random(want + 2 * 4096, 4096, 7);
		memcpy(f + 8192, want + 2 * 4096, 4096);
		encrypt_sectors("sesame", 2 * 4096 / 512, f + 8192, 4096);
		put_file(img, f, 3 * 4096);
		free(f);
	}
	snprintf(name, sizeof(name), "qcow:%s", img);
	is(open_err(img, 0), -ENOKEY,
	   "an encrypted image without a key is refused");
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", img, path("key"));
	ok(same_as(name, want, MiB, 0),
	   "decrypts an image encrypted by qemu's scheme (key-file=)");
	setenv("TD_QCOW_KEY_FILE", path("key"), 1);
	snprintf(name, sizeof(name), "qcow:%s", img);
	ok(same_as(name, want, MiB, 0), "and with TD_QCOW_KEY_FILE");
	unsetenv("TD_QCOW_KEY_FILE");
	if (have_qemu)
		is(sh("qemu-io --object secret,id=s0,data=sesame --image-opts "
		      "driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
		      "-c 'read -P 0 0 8k' >/dev/null",
		      img),
		   0, "qemu-io reads the hand-made encrypted image");

	/* qemu's own encrypted image, and our writes to it read by qemu */
	unlink(path("qe.qcow"));
	if (sh("qemu-img create -q -f qcow --object secret,id=s0,data=sesame "
	       "-o encrypt.format=aes,encrypt.key-secret=s0 %s 1M && "
	       "qemu-io --object secret,id=s0,data=sesame --image-opts "
	       "driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
	       "-c 'write -P 0x5a 4k 8k' >/dev/null",
	       path("qe.qcow"), path("qe.qcow"))) {
		ok(0, "qemu made an encrypted image");
		goto out;
	}
	memset(want, 0, MiB);
	memset(want + 4096, 0x5a, 8192);
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", path("qe.qcow"),
		 path("key"));
	ok(same_as(name, want, MiB, 0), "reads qemu's encrypted image");
	{
		struct td_syncio *s = td_syncio_open(name, 0);

		memset(buf, 0xa5, 64 * KiB);
		ok(s && !td_syncio_pwrite(s, buf, 3000, 6000, 0) &&
			   !td_syncio_pwrite(s, buf, 64 * KiB, 512 * KiB, 0),
		   "writes to the encrypted image");
		memset(want + 6000, 0xa5, 3000);
		memset(want + 512 * KiB, 0xa5, 64 * KiB);
		td_syncio_close(s);
	}
	ok(same_as(name, want, MiB, 0), "and reads them back");
	is(sh("qemu-io --object secret,id=s0,data=sesame --image-opts "
	      "driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
	      "-c 'read -P 0x5a 4k 1904' -c 'read -P 0xa5 6000 3000' "
	      "-c 'read -P 0x5a 9000 3288' -c 'read -P 0xa5 512k 64k' "
	      "-c 'read -P 0 12k 500k' >/dev/null",
	      path("qe.qcow")),
	   0, "qemu-io decrypts what the driver wrote");
	put_file(path("badkey"), "wrong", 5);
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", path("qe.qcow"),
		 path("badkey"));
	ok(!same_as(name, want, MiB, 0), "a wrong key reads garbage, not data");
	fd = open(path("nokey"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	close(fd);
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", path("qe.qcow"),
		 path("nokey"));
	ok(td_syncio_open(name, 0) == NULL && errno == EINVAL,
	   "an empty key file is refused");
out:
	free(want);
	td_buf_put(buf, 64 * KiB);
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

	test_malformed();
	if (have_qemu) {
		test_qemu_written();
		test_compressed();
		test_writes(0, "O_DIRECT");
		test_writes(TD_OPEN_BUFFERED, "buffered");
		test_cow();
		test_encrypted();
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

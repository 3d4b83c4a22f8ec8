// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 internal snapshots on hand-made images: the driver creates an
 * image and writes a pattern, then this program adds a snapshot by hand
 * (a copy of the L1 table and a one-entry snapshot table), so that every
 * field of the table can be broken on purpose. A good table opens at the
 * snapshot read-only; a broken one is refused with -EINVAL by the open at
 * a snapshot and by the listing, and check survives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "image.h"
#include "log.h"
#include "syncio.h"
#include "tap.h"

#define KiB 1024ull
#define MiB (1024 * KiB)
#define CS (64 * KiB) /* the driver's default cluster size */
#define DISK (8 * MiB)
#define PAT_OFF (1 * MiB)
#define PAT_LEN (2 * MiB)

static char dir[64];
static char good[128], bad[128];
static unsigned char *pattern;
/* where the good image keeps its pieces */
static uint64_t l1_off, snap_l1, table;
static uint32_t l1_size;

static void pwrite_all(const char *f, const void *b, size_t n, uint64_t off)
{
	int fd = open(f, O_WRONLY);

	if (fd < 0 || pwrite(fd, b, n, (off_t)off) != (ssize_t)n)
		abort();
	close(fd);
}

/* A snapshot entry: the fixed part, extra data, ID and name. */
static size_t entry(unsigned char *e, uint64_t l1, uint32_t l1n, uint32_t extra,
		    uint64_t disk, const char *id, const char *name)
{
	size_t idl = strlen(id), nl = strlen(name);

	memset(e, 0, 40 + extra);
	td_be_put64(e, l1);
	td_be_put32(e + 8, l1n);
	e[12] = idl >> 8;
	e[13] = idl & 0xff;
	e[14] = nl >> 8;
	e[15] = nl & 0xff;
	td_be_put32(e + 16, 1700000000);
	td_be_put32(e + 36, extra);
	if (extra >= 16)
		td_be_put64(e + 48, disk);
	memcpy(e + 40 + extra, id, idl);
	memcpy(e + 40 + extra + idl, name, nl);
	return (40 + extra + idl + nl + 7) & ~7ull;
}

/* Point the header at n snapshots from the table offset t. */
static void set_table(const char *f, uint32_t n, uint64_t t)
{
	unsigned char b[12];

	td_be_put32(b, n);
	td_be_put64(b + 4, t);
	pwrite_all(f, b, sizeof(b), 60);
}

/* an image at f, created with o, with the pattern and snapshot "s1" */
static int make_snapshotted(const char *f, const struct td_create_opts *o)
{
	const struct td_driver *drv = td_driver_find("qcow2");
	unsigned char h[72], *l1, e[128];
	struct td_syncio *s;
	char name[160];
	int fd, rc;

	rc = drv->create(f, o);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "qcow2:%s", f);
	s = td_syncio_open(name, TD_OPEN_BUFFERED);
	if (!s)
		return -errno;
	rc = td_syncio_pwrite(s, pattern, PAT_LEN, PAT_OFF, 0);
	td_syncio_close(s);
	if (rc)
		return rc;
	fd = open(f, O_RDWR);
	if (fd < 0 || pread(fd, h, sizeof(h), 0) != sizeof(h))
		return -EIO;
	l1_size = td_be_get32(h + 36);
	l1_off = (uint64_t)td_be_get32(h + 40) << 32 | td_be_get32(h + 44);
	/* the snapshot's L1 table, then the table, past the end */
	snap_l1 = ((uint64_t)lseek(fd, 0, SEEK_END) + CS - 1) / CS * CS;
	table = snap_l1 + CS;
	l1 = calloc(1, CS);
	if (!l1 || pread(fd, l1, (size_t)l1_size * 8, (off_t)l1_off) < 0 ||
	    pwrite(fd, l1, CS, (off_t)snap_l1) != (ssize_t)CS ||
	    ftruncate(fd, (off_t)(table + CS)) < 0)
		abort();
	free(l1);
	close(fd);
	/* the snapshot says 4 MiB: its size field must win over the header */
	pwrite_all(f, e, entry(e, snap_l1, l1_size, 16, 4 * MiB, "7", "s1"),
		   table);
	set_table(f, 1, table);
	return 0;
}

static int make_good(void)
{
	struct td_create_opts o = { .size = DISK };

	return make_snapshotted(good, &o);
}

static void copy_good(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "cp %s %s", good, bad);
	if (system(cmd))
		abort();
}

static int open_err(const char *f, const char *opts, unsigned flags)
{
	struct td_syncio *s;
	char name[300];

	snprintf(name, sizeof(name), "qcow2:%s%s", f, opts);
	s = td_syncio_open(name, flags | TD_OPEN_BUFFERED);
	if (!s)
		return -errno;
	td_syncio_close(s);
	return 0;
}

static int list_err(const char *f)
{
	struct td_snapshot *list = NULL;
	struct td_check res = { 0 };
	struct td_syncio *s;
	struct td_image *img;
	char name[300];
	int n = 0, rc;

	snprintf(name, sizeof(name), "qcow2:%s", f);
	s = td_syncio_open(name, TD_OPEN_RDONLY | TD_OPEN_BUFFERED);
	if (!s)
		return -errno;
	img = td_syncio_image(s);
	rc = img->drv->snapshot_list(img, &list, &n);
	free(list);
	/* check walks the same table: it must survive it, whatever it says */
	img->drv->check(img, &res, 0);
	td_syncio_close(s);
	return rc;
}

static void test_good(void)
{
	struct td_snapshot *list = NULL;
	unsigned char *got = malloc(DISK);
	struct td_syncio *s;
	struct td_image *img;
	char name[300];
	int n = 0;

	snprintf(name, sizeof(name), "qcow2:%s?snapshot=s1", good);
	s = td_syncio_open(name, TD_OPEN_RDONLY | TD_OPEN_BUFFERED);
	ok(s != NULL, "open at snapshot s1 by name");
	if (!s || !got) {
		free(got);
		return;
	}
	is((long long)td_syncio_size(s), (long long)(4 * MiB),
	   "the snapshot's own disk size");
	ok(!td_syncio_pread(s, got, 4 * MiB, 0) &&
		   !memcmp(got + PAT_OFF, pattern, PAT_LEN) && got[0] == 0 &&
		   got[PAT_OFF - 1] == 0,
	   "the snapshot reads what was written");
	img = td_syncio_image(s);
	ok(!img->drv->snapshot_list(img, &list, &n) && n == 1 &&
		   !strcmp(list[0].id, "7") && !strcmp(list[0].name, "s1") &&
		   list[0].disk_size == 4 * MiB,
	   "listed with its ID, name and size");
	free(list);
	td_syncio_close(s);
	is(open_err(good, "?l2-cache=1M&snapshot=7", TD_OPEN_RDONLY), 0,
	   "open at snapshot by ID, with another option");
	is(open_err(good, "?snapshot=s1", 0), -EROFS,
	   "a write open at a snapshot is refused");
	is(open_err(good, "?snapshot=nope", TD_OPEN_RDONLY), -ENOENT,
	   "an unknown snapshot is refused");
	is(open_err(good, "?snapshot=", TD_OPEN_RDONLY), -EINVAL,
	   "an empty snapshot name is refused");
	is(open_err(good, "?snapshot=s1&bogus=1", TD_OPEN_RDONLY), -EINVAL,
	   "an unknown option is refused");
	is(open_err(good, "", 0), 0, "the active layer still opens writable");
	free(got);
}

/* The broken entry e (n bytes) replaces the good one; both paths refuse. */
static void refused(const unsigned char *e, size_t n, const char *what)
{
	copy_good();
	pwrite_all(bad, e, n, table);
	is(open_err(bad, "?snapshot=s1", TD_OPEN_RDONLY), -EINVAL,
	   "open at a snapshot: %s refused", what);
	is(list_err(bad), -EINVAL, "listing: %s refused", what);
}

static void test_malformed(void)
{
	unsigned char e[256];
	unsigned char *big;
	size_t n, i, one;

	/* header fields: the image does not open at all */
	copy_good();
	set_table(bad, 65537, table);
	is(open_err(bad, "", TD_OPEN_RDONLY), -EINVAL,
	   "more than 65536 snapshots refused");
	copy_good();
	set_table(bad, 1, table + 8);
	is(open_err(bad, "", TD_OPEN_RDONLY), -EINVAL,
	   "misaligned snapshot table refused");
	copy_good();
	set_table(bad, 1, table + 64 * CS);
	is(open_err(bad, "", TD_OPEN_RDONLY), -EINVAL,
	   "snapshot table beyond the end of the file refused");

	/* the file ends inside the first entry's fixed part */
	copy_good();
	if (truncate(bad, (off_t)table + 20))
		abort();
	is(open_err(bad, "?snapshot=s1", TD_OPEN_RDONLY), -EINVAL,
	   "entries beyond the end of the file refused");
	is(list_err(bad), -EINVAL, "listing entries beyond the end refused");

	n = entry(e, snap_l1, l1_size, 16, DISK, "1", "s1");
	td_be_put32(e + 36, 2000);
	refused(e, n, "2000 bytes of extra data");
	n = entry(e, snap_l1, l1_size, 16, DISK, "1", "s1");
	e[14] = e[15] = 0xff;
	refused(e, n, "a name past the end of the file");
	n = entry(e, snap_l1, l1_size, 16, DISK, "1", "s1");
	e[12] = e[13] = 0xff;
	refused(e, n, "an ID past the end of the file");
	n = entry(e, snap_l1, l1_size, 0, DISK, "1", "s\001");
	e[41 + 1] = 0;
	refused(e, n, "a NUL in the name");
	refused(e, entry(e, snap_l1 + 8, l1_size, 16, DISK, "1", "s1"),
		"a misaligned L1 table");
	refused(e, entry(e, 0, l1_size, 16, DISK, "1", "s1"),
		"an L1 table in the header");
	refused(e,
		entry(e, UINT64_MAX & ~(CS - 1), l1_size, 16, DISK, "1", "s1"),
		"an L1 table near 2^64");
	refused(e, entry(e, snap_l1, 8u << 20, 16, DISK, "1", "s1"),
		"an L1 table over 32 MiB");
	refused(e, entry(e, table, 1u << 16, 16, DISK, "1", "s1"),
		"an L1 table past the end of the file");
	refused(e, entry(e, snap_l1, 0, 16, DISK, "1", "s1"),
		"an L1 table too small for the disk size");
	refused(e, entry(e, snap_l1, l1_size, 16, 1ull << 63, "1", "s1"),
		"a disk size over 2^62");

	/*
	 * A table over 64 MiB: entries of maximal size (names of 'a's, so
	 * that each one is well formed) until the limit is crossed.
	 */
	one = 40 + 1024 + 2 * 65535;
	one = (one + 7) & ~(size_t)7;
	n = one * (64 * MiB / one + 2);
	big = malloc(n);
	if (!big) {
		skip("no memory", "table over 64 MiB");
		return;
	}
	memset(big, 'a', n);
	for (i = 0; i < n / one; i++) {
		memset(big + i * one, 0, 40 + 1024);
		td_be_put64(big + i * one, snap_l1);
		td_be_put32(big + i * one + 8, l1_size);
		big[i * one + 12] = big[i * one + 14] = 0xff;
		big[i * one + 13] = big[i * one + 15] = 0xff;
		td_be_put32(big + i * one + 36, 1024);
	}
	copy_good();
	pwrite_all(bad, big, n, table);
	set_table(bad, (uint32_t)(n / one), table);
	free(big);
	is(open_err(bad, "?snapshot=s1", TD_OPEN_RDONLY), -EINVAL,
	   "a snapshot table over 64 MiB refused");
	is(list_err(bad), -EINVAL, "listing a table over 64 MiB refused");
}

/*
 * With an external data file, guest data is not refcounted and is always
 * the current data: a snapshot of it cannot be read back.
 */
static void test_data_file(void)
{
	static const char *const keys[] = { "data_file" };
	const char *vals[1];
	struct td_create_opts o = { .size = DISK, .nopts = 1, .keys = keys };
	char img[160], data[160];

	snprintf(img, sizeof(img), "%s/df.qcow2", dir);
	snprintf(data, sizeof(data), "%s/df.data", dir);
	vals[0] = data;
	o.vals = vals;
	if (make_snapshotted(img, &o)) {
		ok(0, "the hand-made data-file image with a snapshot");
	} else {
		is(open_err(img, "?snapshot=s1", TD_OPEN_RDONLY), -ENOTSUP,
		   "a snapshot of an image with an external data file refused");
		is(open_err(img, "", TD_OPEN_RDONLY), 0,
		   "its active layer opens");
	}
	unlink(img);
	unlink(data);
}

int main(void)
{
	size_t i;

	td_log_open("test-qcow2-snapshot", true, LOG_CRIT);
	snprintf(dir, sizeof(dir), "/var/tmp/test-qcow2-snap.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(good, sizeof(good), "%s/good.qcow2", dir);
	snprintf(bad, sizeof(bad), "%s/bad.qcow2", dir);
	pattern = malloc(PAT_LEN);
	if (!pattern)
		return 1;
	srand(7);
	for (i = 0; i < PAT_LEN; i++)
		pattern[i] = (unsigned char)(rand() | 1);
	if (make_good()) {
		ok(0, "the hand-made image with a snapshot");
	} else {
		test_good();
		test_malformed();
	}
	test_data_file();
	free(pattern);
	unlink(good);
	unlink(bad);
	rmdir(dir);
	return tap_done();
}

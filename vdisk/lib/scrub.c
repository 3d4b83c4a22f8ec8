// SPDX-License-Identifier: GPL-2.0-only
/*
 * Zeroing reused space, durably, by the cheapest means that guarantees
 * zeroes: BLKZEROOUT where the device offloads it, BLKDISCARD where a
 * discard is guaranteed to read back zeroes, else written zeroes; on a
 * regular file a punched hole (which also gives the space back), else
 * FALLOC_FL_ZERO_RANGE, else written zeroes. Then fdatasync, since an
 * extent is only marked clean once its zeroes survive a power cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vdisk-priv.h"

/* one write or ioctl at a time, so progress moves and ^C is prompt */
#define VDISK_SCRUB_CHUNK (64ull << 20)
#define VDISK_ZERO_BUF (1u << 20)

static uint64_t vdisk_sysfs_u64(dev_t rdev, const char *attr)
{
	char path[128], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s",
		 major(rdev), minor(rdev), attr);
	f = fopen(path, "re");
	if (!f) {
		/* a partition: the queue is its disk's */
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../queue/%s",
			 major(rdev), minor(rdev), attr);
		f = fopen(path, "re");
	}
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 10);
}

enum vdisk_zero_how {
	ZERO_WRITE,
	ZERO_BLKZEROOUT,
	ZERO_BLKDISCARD,
	ZERO_PUNCH,
	ZERO_RANGE
};

static enum vdisk_zero_how vdisk_zero_method(const struct stat *st)
{
	if (!S_ISBLK(st->st_mode))
		return ZERO_PUNCH;
	if (vdisk_sysfs_u64(st->st_rdev, "write_zeroes_max_bytes"))
		return ZERO_BLKZEROOUT;
	if (vdisk_sysfs_u64(st->st_rdev, "discard_zeroes_data"))
		return ZERO_BLKDISCARD;
	return ZERO_WRITE;
}

static int vdisk_write_zeroes(int fd, uint64_t off, uint64_t len)
{
	static void *zero;

	if (!zero) {
		/* aligned: the device may be opened with O_DIRECT elsewhere */
		if (posix_memalign(&zero, 4096, VDISK_ZERO_BUF))
			return -ENOMEM;
		memset(zero, 0, VDISK_ZERO_BUF);
	}
	while (len) {
		size_t n = len < VDISK_ZERO_BUF ? len : VDISK_ZERO_BUF;
		ssize_t w = pwrite(fd, zero, n, (off_t)off);

		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* One chunk; on a method the device refuses, fall back to the next. */
static int vdisk_zero_chunk(int fd, enum vdisk_zero_how *how, uint64_t off,
			    uint64_t len)
{
	uint64_t range[2] = { off, len };
	int rc;

	for (;;) {
		switch (*how) {
		case ZERO_BLKZEROOUT:
			rc = ioctl(fd, BLKZEROOUT, range);
			break;
		case ZERO_BLKDISCARD:
			rc = ioctl(fd, BLKDISCARD, range);
			break;
		case ZERO_PUNCH:
			rc = fallocate(
				fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)off, (off_t)len);
			break;
		case ZERO_RANGE:
			rc = fallocate(
				fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
				(off_t)off, (off_t)len);
			break;
		default:
			return vdisk_write_zeroes(fd, off, len);
		}
		if (!rc)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
			return -errno;
		*how = *how == ZERO_PUNCH ? ZERO_RANGE : ZERO_WRITE;
	}
}

int vdisk_scrub_range(struct vdisk_db *db, const char *path, uint64_t start,
		      uint64_t len, vdisk_progress_fn progress, void *arg,
		      uint64_t done, uint64_t total)
{
	enum vdisk_zero_how how;
	struct stat st;
	uint64_t off;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return vdisk_fail(db, -errno, "%s: cannot open to zero it: %s",
				  path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = vdisk_fail(db, -errno, "%s: cannot stat: %s", path,
				 strerror(errno));
		goto out;
	}
	how = vdisk_zero_method(&st);
	for (off = 0; off < len && !err; off += VDISK_SCRUB_CHUNK) {
		uint64_t n = len - off < VDISK_SCRUB_CHUNK ? len - off :
							     VDISK_SCRUB_CHUNK;

		err = vdisk_zero_chunk(fd, &how, start + off, n);
		if (err)
			vdisk_fail(db, err,
				   "%s: cannot zero %llu bytes at %llu: %s",
				   path, (unsigned long long)n,
				   (unsigned long long)(start + off),
				   strerror(-err));
		else if (progress)
			progress(done + off + n, total, arg);
	}
	if (!err && fdatasync(fd) < 0)
		err = vdisk_fail(db, -errno, "%s: cannot sync the zeroes: %s",
				 path, strerror(errno));
out:
	close(fd);
	return err;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Adding devices to the free pool, and the guards that keep a device the
 * pool must not own out of it: one already in it (under any name), one
 * overlapping a pool device (a partition of a pool disk or the reverse),
 * one mounted, held by another driver or backing a loop device, and one a
 * VBD already gives to a domain.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vdisk-priv.h"

/* What a path names, for comparing devices however they are spelled. */
struct vdisk_dev {
	char path[PATH_MAX];
	char ident[64]; /* blk:MAJ:MIN or file:DEV:INO */
	char parent[64]; /* a partition's disk, blk:MAJ:MIN; else "" */
	bool bdev;
	dev_t rdev;
	uint64_t size;
};

static void vdisk_read_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (!f)
		return;
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

/* The whole disk of a partition, from sysfs: the directory above it. */
static void vdisk_partition_parent(dev_t rdev, char *out, size_t len)
{
	char path[96], dev[32];

	out[0] = '\0';
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition",
		 major(rdev), minor(rdev));
	if (access(path, F_OK))
		return;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major(rdev),
		 minor(rdev));
	vdisk_read_line(path, dev, sizeof(dev));
	if (dev[0])
		snprintf(out, len, "blk:%s", dev);
}

/* Resolve and identify a device or file; the message names it. */
static int vdisk_dev_probe(struct vdisk_db *db, const char *name,
			   struct vdisk_dev *d)
{
	struct stat st;
	int fd, err;

	memset(d, 0, sizeof(*d));
	if (!realpath(name, d->path))
		return vdisk_fail(db, -errno, "%s: %s", name, strerror(errno));
	fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return vdisk_fail(db, -errno, "%s: cannot open: %s", name,
				  strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = vdisk_fail(db, -errno, "%s: cannot stat: %s", name,
				 strerror(errno));
		goto out;
	}
	err = 0;
	if (S_ISBLK(st.st_mode)) {
		d->bdev = true;
		d->rdev = st.st_rdev;
		snprintf(d->ident, sizeof(d->ident), "blk:%u:%u",
			 major(st.st_rdev), minor(st.st_rdev));
		vdisk_partition_parent(st.st_rdev, d->parent,
				       sizeof(d->parent));
		if (ioctl(fd, BLKGETSIZE64, &d->size) < 0)
			err = vdisk_fail(db, -errno,
					 "%s: cannot get the device's size: %s",
					 name, strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		snprintf(d->ident, sizeof(d->ident), "file:%llu:%llu",
			 (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
		d->size = (uint64_t)st.st_size;
	} else {
		err = vdisk_fail(db, -EINVAL,
				 "%s: not a block device or regular file",
				 name);
	}
out:
	close(fd);
	return err;
}

/* Mounted (per /proc/self/mountinfo's MAJ:MIN field)? */
static bool vdisk_mounted(dev_t rdev, char *where, size_t len)
{
	char line[4096], want[32];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	bool found = false;

	if (!f)
		return false;
	snprintf(want, sizeof(want), "%u:%u", major(rdev), minor(rdev));
	while (!found && fgets(line, sizeof(line), f)) {
		char devno[32], mnt[PATH_MAX];

		if (sscanf(line, "%*s %*s %31s %*s %4095s", devno, mnt) != 2)
			continue;
		if (!strcmp(devno, want)) {
			snprintf(where, len, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* The first entry of /sys/dev/block/M:m/holders (device mapper, md...). */
static bool vdisk_held(dev_t rdev, char *holder, size_t len)
{
	char path[96];
	struct dirent *de;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders",
		 major(rdev), minor(rdev));
	dir = opendir(path);
	if (!dir)
		return false;
	while (!found && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(holder, len, "%s", de->d_name);
		found = true;
	}
	closedir(dir);
	return found;
}

/* The loop device a regular file backs, if any. */
static bool vdisk_loop_backed(const char *file, char *loop, size_t len)
{
	char path[PATH_MAX + 64], back[PATH_MAX];
	struct dirent *de;
	bool found = false;
	DIR *dir = opendir("/sys/block");

	if (!dir)
		return false;
	while (!found && (de = readdir(dir))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
			 de->d_name);
		vdisk_read_line(path, back, sizeof(back));
		if (!strcmp(back, file)) {
			snprintf(loop, len, "/dev/%s", de->d_name);
			found = true;
		}
	}
	closedir(dir);
	return found;
}

static int vdisk_dev_in_use(struct vdisk_db *db, const struct vdisk_dev *d)
{
	char what[PATH_MAX];
	int fd;

	if (!d->bdev) {
		if (vdisk_loop_backed(d->path, what, sizeof(what)))
			return vdisk_fail(db, -EBUSY, "%s: in use: it backs %s",
					  d->path, what);
		return 0;
	}
	if (vdisk_mounted(d->rdev, what, sizeof(what)))
		return vdisk_fail(db, -EBUSY, "%s: mounted on %s", d->path,
				  what);
	if (vdisk_held(d->rdev, what, sizeof(what)))
		return vdisk_fail(db, -EBUSY, "%s: in use by %s", d->path,
				  what);
	/* the kernel's own word: O_EXCL fails on a mounted or claimed disk */
	fd = open(d->path, O_RDONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY)
		return vdisk_fail(
			db, -EBUSY,
			"%s: in use (mounted, or held by another driver)",
			d->path);
	if (fd >= 0)
		close(fd);
	return 0;
}

/* Already in the pool, overlapping a pool device, or given to a VBD? */
static int vdisk_dev_conflict(struct vdisk_db *db, const struct vdisk_dev *d)
{
	static const char sql[] =
		"SELECT path, 'is already in the pool as' FROM devices"
		" WHERE ident = ?1 OR path = ?3 UNION ALL "
		"SELECT path, 'overlaps the pool device' FROM devices"
		" WHERE parent = ?1 OR (?2 != '' AND ident = ?2) UNION ALL "
		"SELECT devnode || ' of domain ' || domid,"
		"  'is given by a VBD to' FROM vbds"
		" WHERE ident = ?1 OR parent = ?1 OR (?2 != '' AND ident = ?2)"
		" LIMIT 1";
	sqlite3_stmt *st;
	int rc, err;

	err = vdisk_prepare(db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, d->ident, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->parent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->path, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = vdisk_fail(db, -EEXIST, "%s: %s %s", d->path,
				 (const char *)sqlite3_column_text(st, 1),
				 (const char *)sqlite3_column_text(st, 0));
	else if (rc != SQLITE_DONE)
		err = vdisk_sqlfail(db, "device lookup");
	sqlite3_finalize(st);
	return err;
}

static int vdisk_add_extents(struct vdisk_db *db, int64_t devid, int64_t holder,
			     uint64_t count, uint64_t extent_size)
{
	uint64_t sectors = extent_size / VDISK_SECTOR, i;
	sqlite3_stmt *st;
	int err;

	err = vdisk_prepare(db,
			    "INSERT INTO extents (device, start, sectors,"
			    " vdisk, part, dirty) VALUES (?, ?, ?, ?, ?, 1)",
			    &st);
	if (err)
		return err;
	for (i = 0; i < count && !err; i++) {
		sqlite3_bind_int64(st, 1, devid);
		sqlite3_bind_int64(st, 2, (int64_t)(i * sectors));
		sqlite3_bind_int64(st, 3, (int64_t)sectors);
		sqlite3_bind_int64(st, 4, holder);
		sqlite3_bind_int64(st, 5, (int64_t)i);
		if (sqlite3_step(st) != SQLITE_DONE)
			err = vdisk_sqlfail(db, "adding extents");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return err;
}

int vdisk_format(struct vdisk_db *db, const char *device, uint64_t extent_size)
{
	struct vdisk_dev d;
	int64_t now = vdisk_now(), devid, holder;
	sqlite3_stmt *st;
	uint64_t count;
	int err;

	if (!extent_size)
		extent_size = VDISK_DEFAULT_EXTENT;
	/* whole MiB: every run stays aligned for O_DIRECT on any device */
	if (extent_size % (1u << 20))
		return vdisk_fail(
			db, -EINVAL,
			"%s: extent size %llu is not a multiple of 1 MiB",
			device, (unsigned long long)extent_size);
	err = vdisk_dev_probe(db, device, &d);
	if (err)
		return err;
	err = vdisk_dev_in_use(db, &d);
	if (err)
		return err;
	err = vdisk_begin(db);
	if (err)
		return err;
	err = vdisk_dev_conflict(db, &d);
	if (err)
		goto fail;
	count = d.size / extent_size;
	if (!count) {
		err = vdisk_fail(db, -ENOSPC,
				 "%s: %llu bytes hold no extent of %llu bytes",
				 d.path, (unsigned long long)d.size,
				 (unsigned long long)extent_size);
		goto fail;
	}
	err = vdisk_prepare(db,
			    "INSERT INTO devices (path, ident, parent, size,"
			    " extent_size, added) VALUES (?, ?, NULLIF(?, ''),"
			    " ?, ?, ?)",
			    &st);
	if (err)
		goto fail;
	sqlite3_bind_text(st, 1, d.path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d.ident, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d.parent, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)d.size);
	sqlite3_bind_int64(st, 5, (int64_t)extent_size);
	sqlite3_bind_int64(st, 6, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		err = vdisk_sqlfail(db, "adding the device");
	sqlite3_finalize(st);
	if (err)
		goto fail;
	devid = sqlite3_last_insert_rowid(db->sql);
	/* as in Xen 1.2: new space belongs to an already expired disk */
	err = vdisk_prepare(db,
			    "INSERT INTO vdisks (size, created, expires, state)"
			    " VALUES (0, ?, 1, 'free')",
			    &st);
	if (err)
		goto fail;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		err = vdisk_sqlfail(db, "adding the free space");
	sqlite3_finalize(st);
	if (err)
		goto fail;
	holder = sqlite3_last_insert_rowid(db->sql);
	err = vdisk_add_extents(db, devid, holder, count, extent_size);
	if (err)
		goto fail;
	return vdisk_commit(db);
fail:
	vdisk_rollback(db);
	return err;
}

int vdisk_target_ident(struct vdisk_db *db, const char *path, char *ident,
		       size_t ilen, char *parent, size_t plen)
{
	struct vdisk_dev d;
	int err = vdisk_dev_probe(db, path, &d);

	if (err)
		return err;
	snprintf(ident, ilen, "%s", d.ident);
	snprintf(parent, plen, "%s", d.parent);
	return 0;
}

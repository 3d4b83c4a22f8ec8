// SPDX-License-Identifier: GPL-2.0-only
/*
 * libvdisk against real files and a real database: allocation, expiry,
 * the reuse order, undelete, enlarge, scrubbing (also after a create that
 * died half way) and the guards.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vdisk.h"

#define MiB (1ull << 20)

static char dir[64], dbpath[128];

static char *path_in(const char *name)
{
	static char buf[4][160];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void mkfile(const char *name, uint64_t size)
{
	int fd = open(path_in(name), O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	close(fd);
}

static struct vdisk_db *db_open(void)
{
	struct vdisk_db *db = vdisk_new();

	if (!db || vdisk_open(db, dbpath, 0)) {
		printf("# %s\n", vdisk_errmsg(db));
		abort();
	}
	return db;
}

static uint64_t free_mib(struct vdisk_db *db)
{
	struct vdisk_space s;

	return vdisk_freespace(db, &s) ? ~0ull : s.free_bytes / MiB;
}

/* the disk's map as one string, for comparing maps */
static void map_str(struct vdisk_db *db, int64_t id, unsigned flags, char *out,
		    size_t len)
{
	struct vdisk_run *r;
	size_t n, i, o = 0;

	out[0] = '\0';
	if (vdisk_lookup(db, id, flags, &r, &n))
		return;
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, len - o, "%s@%llu+%llu ",
				      strrchr(r[i].device, '/') + 1,
				      (unsigned long long)r[i].start,
				      (unsigned long long)r[i].sectors);
	vdisk_runs_free(r, n);
}

static void fill(const char *name, int byte)
{
	char buf[65536];
	struct stat st;
	int fd = open(path_in(name), O_RDWR);
	off_t off;

	memset(buf, byte, sizeof(buf));
	if (fd < 0 || fstat(fd, &st))
		abort();
	for (off = 0; off < st.st_size; off += (off_t)sizeof(buf))
		if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
			abort();
	fsync(fd);
	close(fd);
}

/* every byte of the disk's runs is zero */
static bool disk_zero(struct vdisk_db *db, int64_t id)
{
	static char buf[65536];
	struct vdisk_run *r;
	size_t n, i, j;
	bool ok = true;

	if (vdisk_lookup(db, id, 0, &r, &n))
		return false;
	for (i = 0; i < n && ok; i++) {
		int fd = open(r[i].device, O_RDONLY);
		uint64_t off = r[i].start * VDISK_SECTOR;
		uint64_t end = off + r[i].sectors * VDISK_SECTOR;

		for (; ok && off < end; off += sizeof(buf)) {
			if (pread(fd, buf, sizeof(buf), (off_t)off) !=
			    (ssize_t)sizeof(buf))
				ok = false;
			for (j = 0; ok && j < sizeof(buf); j++)
				ok = buf[j] == 0;
		}
		close(fd);
	}
	vdisk_runs_free(r, n);
	return ok;
}

static void test_format(struct vdisk_db *db)
{
	struct vdisk_space s;

	mkfile("a", 16 * MiB);
	mkfile("tiny", MiB / 2);
	is(vdisk_format(db, path_in("a"), MiB), 0, "format a 16 MiB file");
	is(vdisk_freespace(db, &s), 0, "freespace");
	is(s.free_bytes, 16 * MiB, "the whole file is free");
	is(s.free_extents, 16, "in 16 extents of 1 MiB");
	is(s.dirty_extents, 16, "new space counts as dirty (never zeroed)");
	is(vdisk_format(db, path_in("a"), MiB), -EEXIST,
	   "the same file again is refused");
	ok(strstr(vdisk_errmsg(db), "already in the pool"), "message: %s",
	   vdisk_errmsg(db));
	if (symlink(path_in("a"), path_in("a-link")) ||
	    link(path_in("a"), path_in("a-hard")))
		abort();
	is(vdisk_format(db, path_in("a-link"), MiB), -EEXIST,
	   "...and under a symlink");
	is(vdisk_format(db, path_in("a-hard"), MiB), -EEXIST,
	   "...and under a hard link");
	is(vdisk_format(db, path_in("tiny"), MiB), -ENOSPC,
	   "a file smaller than an extent is refused");
	is(vdisk_format(db, path_in("a"), MiB + 4096), -EINVAL,
	   "an extent size that is not whole MiB is refused");
	is(vdisk_format(db, "/dev/null", MiB), -EINVAL,
	   "a character device is refused");
	ok(strstr(vdisk_errmsg(db), "not a block device or regular file"),
	   "message: %s", vdisk_errmsg(db));
	is(vdisk_format(db, path_in("missing"), MiB), -ENOENT,
	   "a missing device is refused");
}

static void test_allocation(struct vdisk_db *db, int64_t *v)
{
	struct vdisk_create_opts o = { .no_scrub = false };
	struct vdisk_info info;
	char map[512];

	is(vdisk_create(db, 4 * MiB, 0, &o, &v[0]), 0, "create 4 MiB");
	map_str(db, v[0], 0, map, sizeof(map));
	is(strcmp(map, "a@0+8192 "), 0, "one run at the pool's start: %s", map);
	is(vdisk_create(db, 3 * MiB + 512, 0, &o, &v[1]), 0,
	   "create 3 MiB + 512 bytes");
	map_str(db, v[1], 0, map, sizeof(map));
	is(strcmp(map, "a@8192+6145 "), 0,
	   "4 extents, the last trimmed to the size: %s", map);
	is(vdisk_info(db, v[1], &info), 0, "info");
	is(info.nextents, 4, "4 extents");
	is(info.expires, 0, "expiry 0: never");
	is(vdisk_create(db, 8 * MiB, 0, &o, &v[2]), 0,
	   "create 8 MiB: the rest of the pool");
	is(free_mib(db), 0, "the pool is empty");
	is(vdisk_create(db, MiB, 0, &o, &v[3]), -ENOSPC,
	   "a disk larger than the free pool is refused");
	ok(strstr(vdisk_errmsg(db), "free pool has 0 MiB"), "message: %s",
	   vdisk_errmsg(db));
	is(vdisk_create(db, 1000, 0, &o, &v[3]), -EINVAL,
	   "a size that is not whole sectors is refused");
}

static void test_reuse(struct vdisk_db *db, int64_t *v)
{
	struct vdisk_create_opts o = { 0 };
	char m1[512], m2[512], got[512];
	int64_t n;

	map_str(db, v[1], 0, m1, sizeof(m1));
	map_str(db, v[0], 0, m2, sizeof(m2));
	is(vdisk_delete(db, v[1]), 0, "delete the second disk");
	sleep(1);
	is(vdisk_delete(db, v[0]), 0, "a second later, the first");
	is(vdisk_delete(db, v[0]), -ESTALE, "deleting it again is refused");
	is(free_mib(db), 8, "their extents are free");
	is(vdisk_lookup(db, v[0], 0, &(struct vdisk_run *){ NULL },
			&(size_t){ 0 }),
	   -ESTALE, "a deleted disk's lookup is refused");
	is(vdisk_create(db, 3 * MiB, 0, &o, &n), 0, "create 3 MiB");
	map_str(db, n, 0, got, sizeof(got));
	/* the second disk had a@8192+6145: its first three extents */
	is(strcmp(got, "a@8192+6144 "), 0,
	   "it takes the longest-expired disk's extents: %s (was %s)", got, m1);
	is(vdisk_undelete(db, v[1]), -ESTALE,
	   "the disk whose extents were reused cannot be undeleted");
	ok(strstr(vdisk_errmsg(db), "given to another disk"), "message: %s",
	   vdisk_errmsg(db));
	is(vdisk_undelete(db, v[0]), 0, "the other one can");
	map_str(db, v[0], 0, got, sizeof(got));
	is(strcmp(got, m2), 0, "with its map intact: %s", got);
	is(vdisk_undelete(db, v[0]), -EINVAL,
	   "undeleting a live disk is refused");
	v[1] = n;
}

static void test_expiry(struct vdisk_db *db, int64_t *v)
{
	struct vdisk_create_opts o = { 0 };
	struct vdisk_info *list;
	size_t n, i, live = 0;
	int64_t e;

	is(vdisk_delete(db, v[2]), 0, "delete the 8 MiB disk");
	is(vdisk_create(db, 2 * MiB, 1, &o, &e), 0, "create with expiry 1 s");
	is(vdisk_refresh(db, e, 1), 0, "refresh it (1 s from now)");
	sleep(2);
	is(vdisk_refresh(db, e, 100), -ESTALE,
	   "an expired disk cannot be refreshed");
	is(vdisk_list(db, 0, &list, &n), 0, "list");
	for (i = 0; i < n; i++)
		live += list[i].id == e;
	free(list);
	is(live, 0, "the expired disk is not listed");
	is(vdisk_list(db, VDISK_LIST_ALL, &list, &n), 0, "list --all");
	for (i = 0; i < n; i++)
		if (list[i].id == e)
			ok(list[i].expired && !list[i].reused,
			   "--all shows it expired, not reused");
	free(list);
	is(vdisk_undelete(db, e), 0, "an expired disk can be undeleted");
	is(vdisk_refresh(db, e, 0), 0, "refresh to never");
	is(vdisk_delete(db, e), 0, "delete it again");
}

static void test_enlarge(struct vdisk_db *db, int64_t *v)
{
	struct vdisk_create_opts o = { 0 };
	struct vdisk_info info;
	struct vdisk_run *r;
	uint64_t sectors = 0;
	size_t n, i;

	is(vdisk_enlarge(db, v[0], 6 * MiB, &o), 0, "enlarge 4 -> 6 MiB");
	is(vdisk_info(db, v[0], &info), 0, "info");
	is(info.size, 6 * MiB, "the new size");
	is(info.nextents, 6, "two more extents");
	is(vdisk_lookup(db, v[0], 0, &r, &n), 0, "lookup");
	for (i = 0; i < n; i++)
		sectors += r[i].sectors;
	vdisk_runs_free(r, n);
	is(sectors * VDISK_SECTOR, 6 * MiB, "the map covers the new size");
	is(vdisk_enlarge(db, v[0], 5 * MiB, &o), -EINVAL,
	   "shrinking is refused");
}

static void test_scrub(struct vdisk_db *db)
{
	struct vdisk_create_opts o = { 0 }, raw = { .no_scrub = true };
	int64_t a, b;

	mkfile("b", 8 * MiB);
	is(vdisk_format(db, path_in("b"), 2 * MiB), 0,
	   "format b, 2 MiB extents");
	/* whatever the file held before and what disks wrote since */
	fill("b", 0xa5);
	is(vdisk_create(db, 8 * MiB, 0, &raw, &a), 0,
	   "--no-scrub hands out space as it is");
	ok(!disk_zero(db, a), "and the old bytes show through");
	is(vdisk_delete(db, a), 0, "delete it");
	is(vdisk_create(db, 8 * MiB, 0, &o, &b), 0,
	   "create over the same space");
	ok(disk_zero(db, b), "the new disk reads zeroes everywhere");
	is(vdisk_delete(db, b), 0, "delete it");
}

static int dying_after;
static void die_progress(uint64_t done, uint64_t total, void *arg)
{
	if (done >= (uint64_t)dying_after * MiB)
		_exit(9);
}

static void test_crash(struct vdisk_db *db)
{
	struct vdisk_create_opts o = { 0 };
	struct vdisk_space s;
	uint64_t before;
	int64_t b, id;
	int status;
	pid_t pid;

	mkfile("c", 16 * MiB);
	is(vdisk_format(db, path_in("c"), MiB), 0, "format c");
	is(vdisk_create(db, 16 * MiB, 0,
			&(struct vdisk_create_opts){ .no_scrub = true }, &b),
	   0, "a disk over all of c");
	fill("c", 0x77);
	is(vdisk_delete(db, b), 0, "deleted: c is free and full of its bytes");
	is(vdisk_freespace(db, &s), 0, "freespace");
	before = s.free_bytes;
	dying_after = 5;
	pid = fork();
	if (!pid) {
		struct vdisk_db *c = db_open();
		struct vdisk_create_opts d = { .progress = die_progress };

		_exit(vdisk_create(c, 16 * MiB, 0, &d, &id) ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	is(WEXITSTATUS(status), 9, "a create died in its scrub");
	is(vdisk_freespace(db, &s), 0, "freespace");
	is(before - s.free_bytes, 16 * MiB,
	   "its reservation is not free while unclaimed");
	is(vdisk_create(db, 16 * MiB, 0, &o, &id), 0,
	   "the next create reclaims the dead one's extents");
	ok(disk_zero(db, id), "and hands them out zeroed");
	is(vdisk_delete(db, id), 0, "delete it");
}

static void test_vbds(struct vdisk_db *db, int64_t *v)
{
	char target[64];
	struct vdisk_vbd a = { .domid = 1,
			       .devnode = "/dev/xvda",
			       .writable = true };
	struct vdisk_vbd b = { .domid = 2,
			       .devnode = "/dev/xvdb",
			       .writable = true };
	struct vdisk_vbd c = { .domid = 3, .devnode = "/dev/xvdc" };
	struct vdisk_vbd phy = { .domid = 4,
				 .devnode = "/dev/xvdd",
				 .writable = true };
	char phytarget[200];

	snprintf(target, sizeof(target), "vd:%lld", (long long)v[0]);
	a.target = b.target = c.target = target;
	is(vdisk_vbd_add(db, &a), 0, "attach a disk writable to domain 1");
	is(vdisk_vbd_add(db, &a), -EBUSY, "the same again is refused");
	is(vdisk_vbd_add(db, &b), -EBUSY, "a second writer is refused");
	ok(strstr(vdisk_errmsg(db), "needs --expert 2"), "message: %s",
	   vdisk_errmsg(db));
	is(vdisk_vbd_add(db, &c), -EBUSY,
	   "a reader beside a writer is refused");
	c.expert = 1;
	is(vdisk_vbd_add(db, &c), 0, "...unless expert level 1");
	b.expert = 2;
	is(vdisk_vbd_add(db, &b), 0, "two writers at expert level 2");
	is(vdisk_delete(db, v[0]), -EBUSY,
	   "an attached disk cannot be deleted");
	snprintf(phytarget, sizeof(phytarget), "phy:%s", path_in("a"));
	phy.target = phytarget;
	is(vdisk_vbd_add(db, &phy), -EBUSY,
	   "a pool device cannot be a phy: VBD");
	ok(strstr(vdisk_errmsg(db), "virtual-disk pool"), "message: %s",
	   vdisk_errmsg(db));
	mkfile("loose", 4 * MiB);
	snprintf(phytarget, sizeof(phytarget), "phy:%s", path_in("loose"));
	is(vdisk_vbd_add(db, &phy), 0, "another file can");
	is(vdisk_format(db, path_in("loose"), MiB), -EEXIST,
	   "and then cannot join the pool");
	is(vdisk_vbd_remove(db, 1, "/dev/xvda"), 0, "detach");
	is(vdisk_vbd_remove(db, 1, "/dev/xvda"), -ENOENT,
	   "detach again: no such VBD");
	is(vdisk_vbd_remove(db, 2, "/dev/xvdb"), 0, "detach");
	is(vdisk_vbd_remove(db, 3, "/dev/xvdc"), 0, "detach");
	is(vdisk_vbd_remove(db, 4, "/dev/xvdd"), 0, "detach");
	is(vdisk_delete(db, v[0]), 0, "now it can be deleted");
}

int main(void)
{
	struct vdisk_db *db;
	int64_t v[4] = { 0 };
	char cmd[160];

	snprintf(dir, sizeof(dir), "/var/tmp/test-vdisk.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(dbpath, sizeof(dbpath), "%s/pool.sqlite", dir);
	db = db_open();
	is(vdisk_open(db, dbpath, 0), -EALREADY, "a handle opens once");
	test_format(db);
	test_allocation(db, v);
	test_reuse(db, v);
	test_expiry(db, v);
	test_enlarge(db, v);
	test_scrub(db);
	test_crash(db);
	test_vbds(db, v);
	vdisk_free(db);
	db = vdisk_new();
	is(vdisk_open(db, path_in("none/x.sqlite"), VDISK_OPEN_EXISTING),
	   -ENOENT, "opening a missing database for reading is refused");
	vdisk_free(db);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		diag("could not remove %s", dir);
	return tap_done();
}

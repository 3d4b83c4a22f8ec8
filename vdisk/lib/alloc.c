// SPDX-License-Identifier: GPL-2.0-only
/*
 * Allocation, as in Xen 1.2: a new disk takes the extents of the disks
 * that expired longest ago (space that never was a disk first, so deleted
 * disks stay undeletable as long as possible).
 *
 * Unlike Xen 1.2, reused space is zeroed before it is handed out. A create
 * that scrubs reserves its extents under a "pending" disk that records the
 * creating process, zeroes them outside any transaction, marks them clean
 * once the zeroes are durable, and only then turns the pending disk into a
 * live one. A crash leaves a pending disk whose owner is gone: the next
 * allocation returns its extents to the pool, still dirty where they were
 * not yet zeroed, so no crash ever hands out a previous owner's bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vdisk-priv.h"

/* how long a scrub runs between commits of its progress */
#define VDISK_SCRUB_COMMIT_NS 1000000000ll

/* An extent taken for a disk. */
struct vdisk_pick {
	int64_t id;
	int64_t device;
	uint64_t start; /* sector */
	uint64_t sectors;
	bool dirty;
};

struct vdisk_picks {
	struct vdisk_pick *v;
	size_t n, cap;
	uint64_t bytes;
};

/*
 * Free extents, longest expired first. Disks attached to a domain are
 * skipped even once expired: tapdisk keeps serving an open disk until its
 * next open, so its extents must not go to another disk under it.
 */
static const char vdisk_free_sql[] =
	"SELECT e.id, e.device, e.start, e.sectors, e.dirty, v.id, v.state"
	" FROM vdisks v JOIN extents e ON e.vdisk = v.id"
	" WHERE v.expires BETWEEN 1 AND ?1 AND v.state != 'pending'"
	"  AND NOT EXISTS (SELECT 1 FROM vbds b WHERE b.vdisk = v.id)"
	" ORDER BY v.expires, v.id, e.part";

static int vdisk_free_bytes(struct vdisk_db *db, int64_t now, uint64_t *out)
{
	int64_t v;
	int err = vdisk_query_int(
		db,
		"SELECT coalesce(sum(e.sectors), 0) FROM vdisks v"
		" JOIN extents e ON e.vdisk = v.id"
		" WHERE v.expires BETWEEN 1 AND ?1 AND v.state != 'pending'"
		"  AND NOT EXISTS (SELECT 1 FROM vbds b WHERE b.vdisk = v.id)",
		now, 0, &v);

	*out = (uint64_t)v * VDISK_SECTOR;
	return err;
}

/* Pending disks of processes that died: their extents become free. */
static int vdisk_reclaim(struct vdisk_db *db)
{
	sqlite3_stmt *st, *up;
	int err, rc;

	err = vdisk_prepare(db,
			    "SELECT id, owner_pid, owner_start, owner_boot"
			    " FROM vdisks WHERE state = 'pending'",
			    &st);
	if (err)
		return err;
	err = vdisk_prepare(db,
			    "UPDATE vdisks SET state = 'free', expires = 1,"
			    " size = 0 WHERE id = ?",
			    &up);
	if (err) {
		sqlite3_finalize(st);
		return err;
	}
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct vdisk_owner o = {
			.pid = sqlite3_column_int64(st, 1),
			.start = sqlite3_column_int64(st, 2),
		};
		const char *boot = (const char *)sqlite3_column_text(st, 3);

		snprintf(o.boot, sizeof(o.boot), "%s", boot ? boot : "");
		if (vdisk_owner_alive(&o))
			continue;
		sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
		if (sqlite3_step(up) != SQLITE_DONE)
			err = vdisk_sqlfail(db, "reclaiming a crashed create");
		sqlite3_reset(up);
	}
	if (!err && rc != SQLITE_DONE)
		err = vdisk_sqlfail(db, "looking for crashed creates");
	sqlite3_finalize(up);
	sqlite3_finalize(st);
	if (err)
		return err;
	/* holders of new space that gave all of it away */
	return vdisk_exec(db, "DELETE FROM vdisks WHERE state = 'free' AND"
			      " NOT EXISTS (SELECT 1 FROM extents"
			      " WHERE vdisk = vdisks.id)");
}

static int vdisk_picks_add(struct vdisk_db *db, struct vdisk_picks *p,
			   const struct vdisk_pick *x)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct vdisk_pick *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return vdisk_fail(db, -ENOMEM, "out of memory");
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = *x;
	p->bytes += x->sectors * VDISK_SECTOR;
	return 0;
}

/*
 * Inside the caller's transaction: move free extents to disk vd as parts
 * base, base + 1, ... until they hold need bytes.
 */
static int vdisk_take(struct vdisk_db *db, int64_t vd, int64_t base,
		      uint64_t need, struct vdisk_picks *p)
{
	int64_t now = vdisk_now();
	sqlite3_stmt *st, *mv = NULL, *donor = NULL;
	uint64_t avail;
	size_t i;
	int err, rc = SQLITE_DONE;

	err = vdisk_reclaim(db);
	if (err)
		return err;
	err = vdisk_prepare(db, vdisk_free_sql, &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, now);
	while (!err && p->bytes < need &&
	       (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct vdisk_pick x = {
			.id = sqlite3_column_int64(st, 0),
			.device = sqlite3_column_int64(st, 1),
			.start = (uint64_t)sqlite3_column_int64(st, 2),
			.sectors = (uint64_t)sqlite3_column_int64(st, 3),
			.dirty = sqlite3_column_int(st, 4) != 0,
		};

		err = vdisk_picks_add(db, p, &x);
	}
	if (!err && p->bytes < need && rc != SQLITE_DONE)
		err = vdisk_sqlfail(db, "looking for free extents");
	sqlite3_finalize(st);
	if (err)
		return err;
	if (p->bytes < need) {
		err = vdisk_free_bytes(db, now, &avail);
		if (err)
			return err;
		return vdisk_fail(
			db, -ENOSPC,
			"%s: %llu MiB asked for, the free pool has %llu MiB",
			db->path, (unsigned long long)(need >> 20),
			(unsigned long long)(avail >> 20));
	}
	err = vdisk_prepare(
		db, "UPDATE extents SET vdisk = ?, part = ? WHERE id = ?", &mv);
	if (!err)
		/* a disk that gave an extent away cannot come back */
		err = vdisk_prepare(db,
				    "UPDATE vdisks SET reused = 1 WHERE id ="
				    " (SELECT vdisk FROM extents WHERE id = ?)"
				    " AND state = 'live'",
				    &donor);
	for (i = 0; !err && i < p->n; i++) {
		sqlite3_bind_int64(donor, 1, p->v[i].id);
		if (sqlite3_step(donor) != SQLITE_DONE)
			err = vdisk_sqlfail(db, "marking a reused disk");
		sqlite3_reset(donor);
		sqlite3_bind_int64(mv, 1, vd);
		sqlite3_bind_int64(mv, 2, base + (int64_t)i);
		sqlite3_bind_int64(mv, 3, p->v[i].id);
		if (!err && sqlite3_step(mv) != SQLITE_DONE)
			err = vdisk_sqlfail(db, "taking an extent");
		sqlite3_reset(mv);
	}
	sqlite3_finalize(mv);
	sqlite3_finalize(donor);
	return err;
}

static int vdisk_insert_disk(struct vdisk_db *db, uint64_t size,
			     int64_t expires, bool pending, int64_t *id)
{
	struct vdisk_owner o = { 0 };
	sqlite3_stmt *st;
	int err;

	if (pending && vdisk_owner_self(&o))
		return vdisk_fail(
			db, -ENOENT,
			"cannot read this process's start time from /proc");
	err = vdisk_prepare(db,
			    "INSERT INTO vdisks (size, created, expires, state,"
			    " owner_pid, owner_start, owner_boot)"
			    " VALUES (?, ?, ?, ?, ?, ?, ?)",
			    &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (int64_t)size);
	sqlite3_bind_int64(st, 2, vdisk_now());
	sqlite3_bind_int64(st, 3, expires);
	sqlite3_bind_text(st, 4, pending ? "pending" : "live", -1,
			  SQLITE_STATIC);
	if (pending) {
		sqlite3_bind_int64(st, 5, o.pid);
		sqlite3_bind_int64(st, 6, o.start);
		sqlite3_bind_text(st, 7, o.boot, -1, SQLITE_TRANSIENT);
	}
	if (sqlite3_step(st) != SQLITE_DONE)
		err = vdisk_sqlfail(db, "adding a disk");
	sqlite3_finalize(st);
	*id = sqlite3_last_insert_rowid(db->sql);
	return err;
}

static int64_t vdisk_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int vdisk_mark_clean(struct vdisk_db *db, int64_t pending,
			    const struct vdisk_picks *p, size_t from, size_t to)
{
	sqlite3_stmt *st;
	size_t i;
	int err;

	err = vdisk_begin(db);
	if (err)
		return err;
	err = vdisk_prepare(db,
			    "UPDATE extents SET dirty = 0 WHERE id = ?"
			    " AND vdisk = ?",
			    &st);
	for (i = from; !err && i < to; i++) {
		if (!p->v[i].dirty)
			continue;
		sqlite3_bind_int64(st, 1, p->v[i].id);
		sqlite3_bind_int64(st, 2, pending);
		if (sqlite3_step(st) != SQLITE_DONE)
			err = vdisk_sqlfail(db, "marking an extent clean");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (!err)
		return vdisk_commit(db);
	vdisk_rollback(db);
	return err;
}

static int vdisk_device_path(struct vdisk_db *db, int64_t device, char **path)
{
	sqlite3_stmt *st;
	int err =
		vdisk_prepare(db, "SELECT path FROM devices WHERE id = ?", &st);

	if (err)
		return err;
	sqlite3_bind_int64(st, 1, device);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*path = strdup((const char *)sqlite3_column_text(st, 0));
		err = *path ? 0 : vdisk_fail(db, -ENOMEM, "out of memory");
	} else {
		err = vdisk_sqlfail(db, "finding a device");
	}
	sqlite3_finalize(st);
	return err;
}

/*
 * Zero the dirty picks, runs of adjacent extents at a time, committing
 * "clean" for what is durably zeroed every VDISK_SCRUB_COMMIT_NS.
 */
static int vdisk_scrub_picks(struct vdisk_db *db, int64_t pending,
			     const struct vdisk_picks *p,
			     const struct vdisk_create_opts *opts)
{
	uint64_t total = 0, done = 0;
	int64_t last = vdisk_mono_ns();
	size_t i, j, committed = 0;
	int err = 0;

	for (i = 0; i < p->n; i++)
		if (p->v[i].dirty)
			total += p->v[i].sectors * VDISK_SECTOR;
	for (i = 0; i < p->n && !err; i = j) {
		uint64_t sectors = p->v[i].sectors;
		char *path = NULL;

		for (j = i + 1; j < p->n && p->v[j].dirty == p->v[i].dirty &&
				p->v[j].device == p->v[i].device &&
				p->v[j].start == p->v[i].start + sectors;
		     j++)
			sectors += p->v[j].sectors;
		if (!p->v[i].dirty)
			continue;
		err = vdisk_device_path(db, p->v[i].device, &path);
		if (!err)
			err = vdisk_scrub_range(
				db, path, p->v[i].start * VDISK_SECTOR,
				sectors * VDISK_SECTOR,
				opts ? opts->progress : NULL,
				opts ? opts->progress_arg : NULL, done, total);
		free(path);
		done += sectors * VDISK_SECTOR;
		if (!err && (j == p->n ||
			     vdisk_mono_ns() - last >= VDISK_SCRUB_COMMIT_NS)) {
			err = vdisk_mark_clean(db, pending, p, committed, j);
			committed = j;
			last = vdisk_mono_ns();
		}
	}
	if (!err && committed < p->n)
		err = vdisk_mark_clean(db, pending, p, committed, p->n);
	return err;
}

/* A reservation given up: its extents go back to the pool as they are. */
static void vdisk_release(struct vdisk_db *db, int64_t pending)
{
	char msg[sizeof(db->err)];
	char sql[128];

	memcpy(msg, db->err, sizeof(msg));
	snprintf(sql, sizeof(sql),
		 "UPDATE vdisks SET state = 'free', expires = 1, size = 0"
		 " WHERE id = %lld",
		 (long long)pending);
	if (!vdisk_begin(db) && !vdisk_exec(db, sql))
		vdisk_commit(db);
	vdisk_rollback(db);
	memcpy(db->err, msg, sizeof(msg));
}

static int64_t vdisk_expires_at(int64_t expiry)
{
	return expiry ? vdisk_now() + expiry : 0;
}

static int vdisk_check_size(struct vdisk_db *db, uint64_t size)
{
	if (!size || size % VDISK_SECTOR || size > (uint64_t)INT64_MAX)
		return vdisk_fail(
			db, -EINVAL,
			"a disk's size must be a positive multiple of %u bytes, not %llu",
			VDISK_SECTOR, (unsigned long long)size);
	return 0;
}

/*
 * Reserve need bytes for disk target (create: 0) and scrub them unless
 * asked not to; returns with the reservation's disk in *holder and, when
 * scrubbing, without a transaction open; else inside the caller's.
 */
static int vdisk_reserve(struct vdisk_db *db, uint64_t need, int64_t base,
			 const struct vdisk_create_opts *opts, int64_t *holder)
{
	struct vdisk_picks p = { 0 };
	int err;

	err = vdisk_insert_disk(db, need, 0, true, holder);
	if (!err)
		err = vdisk_take(db, *holder, base, need, &p);
	if (!err)
		err = vdisk_commit(db);
	if (err) {
		vdisk_rollback(db);
		free(p.v);
		return err;
	}
	err = vdisk_scrub_picks(db, *holder, &p, opts);
	free(p.v);
	if (err)
		vdisk_release(db, *holder);
	return err;
}

int vdisk_create(struct vdisk_db *db, uint64_t size, int64_t expiry,
		 const struct vdisk_create_opts *opts, int64_t *id)
{
	struct vdisk_picks p = { 0 };
	int64_t dirty;
	int err;

	err = vdisk_check_size(db, size);
	if (err)
		return err;
	if (expiry < 0)
		return vdisk_fail(db, -EINVAL, "expiry %lld: negative",
				  (long long)expiry);
	err = vdisk_begin(db);
	if (err)
		return err;
	if (opts && opts->no_scrub) {
		err = vdisk_insert_disk(db, size, vdisk_expires_at(expiry),
					false, id);
		if (!err)
			err = vdisk_take(db, *id, 0, size, &p);
		free(p.v);
		goto finish;
	}
	err = vdisk_reserve(db, size, 0, opts, id);
	if (err)
		return err;
	err = vdisk_begin(db);
	if (err)
		goto release;
	err = vdisk_query_int(db,
			      "SELECT count(*) FROM extents WHERE vdisk = ?"
			      " AND dirty = 1",
			      *id, 0, &dirty);
	if (!err && dirty)
		err = vdisk_fail(db, -EIO, "VD %lld: %lld extents not zeroed",
				 (long long)*id, (long long)dirty);
	if (!err) {
		char sql[160];

		snprintf(sql, sizeof(sql),
			 "UPDATE vdisks SET state = 'live', expires = %lld,"
			 " created = %lld, owner_pid = NULL, owner_start ="
			 " NULL, owner_boot = NULL WHERE id = %lld",
			 (long long)vdisk_expires_at(expiry),
			 (long long)vdisk_now(), (long long)*id);
		err = vdisk_exec(db, sql);
	}
finish:
	if (!err) {
		char sql[96];

		/* from now on the disk's owner writes there */
		snprintf(sql, sizeof(sql),
			 "UPDATE extents SET dirty = 1 WHERE vdisk = %lld",
			 (long long)*id);
		err = vdisk_exec(db, sql);
	}
	if (!err)
		err = vdisk_commit(db);
	if (!err)
		return 0;
	vdisk_rollback(db);
	if (opts && opts->no_scrub)
		return err;
release:
	vdisk_release(db, *id);
	return err;
}

/* Inside a transaction: a live disk not yet expired, its extents' bytes. */
static int vdisk_live(struct vdisk_db *db, int64_t id, uint64_t *size,
		      uint64_t *held, int64_t *nparts)
{
	sqlite3_stmt *st;
	int err, rc;

	err = vdisk_prepare(db,
			    "SELECT v.size, v.state, v.expires,"
			    " (SELECT coalesce(sum(sectors), 0) FROM extents"
			    "  WHERE vdisk = v.id),"
			    " (SELECT coalesce(max(part) + 1, 0) FROM extents"
			    "  WHERE vdisk = v.id)"
			    " FROM vdisks v WHERE v.id = ?",
			    &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 1);
		int64_t expires = sqlite3_column_int64(st, 2);

		*size = (uint64_t)sqlite3_column_int64(st, 0);
		*held = (uint64_t)sqlite3_column_int64(st, 3) * VDISK_SECTOR;
		*nparts = sqlite3_column_int64(st, 4);
		if (strcmp(state, "live"))
			err = vdisk_fail(db, -ENOENT, "VD %lld: no such disk",
					 (long long)id);
		else if (expires && expires <= vdisk_now())
			err = vdisk_fail(db, -ESTALE, "VD %lld has expired",
					 (long long)id);
	} else if (rc == SQLITE_DONE) {
		err = vdisk_fail(db, -ENOENT, "VD %lld: no such disk",
				 (long long)id);
	} else {
		err = vdisk_sqlfail(db, "finding a disk");
	}
	sqlite3_finalize(st);
	return err;
}

int vdisk_enlarge(struct vdisk_db *db, int64_t id, uint64_t size,
		  const struct vdisk_create_opts *opts)
{
	struct vdisk_picks p = { 0 };
	uint64_t cur, held;
	int64_t nparts, pending;
	char sql[192];
	int err;

	err = vdisk_check_size(db, size);
	if (err)
		return err;
	err = vdisk_begin(db);
	if (err)
		return err;
	err = vdisk_live(db, id, &cur, &held, &nparts);
	if (!err && size <= cur)
		err = vdisk_fail(
			db, -EINVAL,
			"VD %lld: %llu MiB is not larger than its %llu MiB",
			(long long)id, (unsigned long long)(size >> 20),
			(unsigned long long)(cur >> 20));
	if (err)
		goto fail;
	if (size <= held || (opts && opts->no_scrub)) {
		/* the last extent has room, or nothing to zero: one step */
		if (size > held)
			err = vdisk_take(db, id, nparts, size - held, &p);
		free(p.v);
		if (!err)
			err = vdisk_set_field(db, id, "size", (int64_t)size);
		if (!err)
			err = vdisk_commit(db);
		if (err)
			goto fail;
		return 0;
	}
	err = vdisk_reserve(db, size - held, 0, opts, &pending);
	if (err)
		return err;
	err = vdisk_begin(db);
	if (!err)
		err = vdisk_live(db, id, &cur, &held, &nparts);
	if (!err && size <= held)
		err = vdisk_fail(db, -EAGAIN, "VD %lld was enlarged meanwhile",
				 (long long)id);
	if (!err) {
		snprintf(sql, sizeof(sql),
			 "UPDATE extents SET vdisk = %lld, part = part + %lld,"
			 " dirty = 1 WHERE vdisk = %lld",
			 (long long)id, (long long)nparts, (long long)pending);
		err = vdisk_exec(db, sql);
	}
	if (!err) {
		snprintf(sql, sizeof(sql), "DELETE FROM vdisks WHERE id = %lld",
			 (long long)pending);
		err = vdisk_exec(db, sql);
	}
	if (!err)
		err = vdisk_set_field(db, id, "size", (int64_t)size);
	if (!err)
		err = vdisk_commit(db);
	if (!err)
		return 0;
	vdisk_rollback(db);
	vdisk_release(db, pending);
	return err;
fail:
	vdisk_rollback(db);
	return err;
}

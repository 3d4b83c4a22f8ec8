// SPDX-License-Identifier: GPL-2.0-only
/*
 * A disk's life after creation (expiry, delete, undelete) and the read-only
 * views of the pool: a disk's extent map, the list of disks, free space.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk-priv.h"

static int vdisk_attached(struct vdisk_db *db, int64_t id)
{
	sqlite3_stmt *st;
	int err;

	err = vdisk_prepare(db,
			    "SELECT devnode, domid FROM vbds WHERE vdisk = ?"
			    " LIMIT 1",
			    &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		err = vdisk_fail(db, -EBUSY,
				 "VD %lld is attached to domain %lld as %s"
				 " (remove_vbd_from_dom first)",
				 (long long)id,
				 (long long)sqlite3_column_int64(st, 1),
				 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return err;
}

int vdisk_get_tx(struct vdisk_db *db, int64_t id, struct vdisk_info *info)
{
	sqlite3_stmt *st;
	int err, rc;

	err = vdisk_prepare(db,
			    "SELECT size, created, expires, reused, state,"
			    " (SELECT count(*) FROM extents WHERE vdisk = v.id)"
			    " FROM vdisks v WHERE id = ?",
			    &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    !strcmp((const char *)sqlite3_column_text(st, 4), "live")) {
		int64_t now = vdisk_now();

		info->id = id;
		info->size = (uint64_t)sqlite3_column_int64(st, 0);
		info->created = sqlite3_column_int64(st, 1);
		info->expires = sqlite3_column_int64(st, 2);
		info->expired = info->expires && info->expires <= now;
		info->reused = info->expired && sqlite3_column_int(st, 3);
		info->nextents = (unsigned)sqlite3_column_int64(st, 5);
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		err = vdisk_fail(db, -ENOENT, "VD %lld: no such disk",
				 (long long)id);
	} else {
		err = vdisk_sqlfail(db, "finding a disk");
	}
	sqlite3_finalize(st);
	return err;
}

enum vdisk_change { VDISK_REFRESH, VDISK_DELETE, VDISK_UNDELETE };

static int vdisk_change(struct vdisk_db *db, int64_t id, enum vdisk_change what,
			int64_t expiry)
{
	struct vdisk_info info;
	int64_t now = vdisk_now();
	int err;

	if (expiry < 0)
		return vdisk_fail(db, -EINVAL, "expiry %lld: negative",
				  (long long)expiry);
	err = vdisk_begin(db);
	if (err)
		return err;
	err = vdisk_get_tx(db, id, &info);
	if (err)
		goto fail;
	if (what != VDISK_UNDELETE && info.expired) {
		err = vdisk_fail(
			db, -ESTALE,
			"VD %lld has already expired (vd_undelete brings it back)",
			(long long)id);
		goto fail;
	}
	switch (what) {
	case VDISK_REFRESH:
		err = vdisk_set_field(db, id, "expires",
				      expiry ? now + expiry : 0);
		break;
	case VDISK_DELETE:
		err = vdisk_attached(db, id);
		if (!err)
			err = vdisk_set_field(db, id, "expires", now);
		break;
	case VDISK_UNDELETE:
		if (!info.expired)
			err = vdisk_fail(db, -EINVAL, "VD %lld has not expired",
					 (long long)id);
		else if (info.reused)
			err = vdisk_fail(
				db, -ESTALE,
				"VD %lld cannot be undeleted: its extents were given to another disk",
				(long long)id);
		else
			err = vdisk_set_field(db, id, "expires", 0);
		break;
	}
	if (!err)
		err = vdisk_commit(db);
	if (!err)
		return 0;
fail:
	vdisk_rollback(db);
	return err;
}

int vdisk_refresh(struct vdisk_db *db, int64_t id, int64_t expiry)
{
	return vdisk_change(db, id, VDISK_REFRESH, expiry);
}

int vdisk_delete(struct vdisk_db *db, int64_t id)
{
	return vdisk_change(db, id, VDISK_DELETE, 0);
}

int vdisk_undelete(struct vdisk_db *db, int64_t id)
{
	return vdisk_change(db, id, VDISK_UNDELETE, 0);
}

int vdisk_info(struct vdisk_db *db, int64_t id, struct vdisk_info *info)
{
	int err = vdisk_exec(db, "BEGIN");

	if (err)
		return err;
	err = vdisk_get_tx(db, id, info);
	vdisk_rollback(db);
	return err;
}

void vdisk_runs_free(struct vdisk_run *runs, size_t nruns)
{
	size_t i;

	for (i = 0; runs && i < nruns; i++)
		free(runs[i].device);
	free(runs);
}

/* Extents in disk order, merged where adjacent, up to size bytes. */
static int vdisk_map(struct vdisk_db *db, int64_t id, uint64_t size,
		     struct vdisk_run **runs, size_t *nruns)
{
	uint64_t left = size / VDISK_SECTOR;
	struct vdisk_run *v = NULL, *last = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int err, rc = SQLITE_DONE;

	err = vdisk_prepare(db,
			    "SELECT d.path, e.start, e.sectors FROM extents e"
			    " JOIN devices d ON d.id = e.device"
			    " WHERE e.vdisk = ? ORDER BY e.part",
			    &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, id);
	while (!err && left && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dev = (const char *)sqlite3_column_text(st, 0);
		uint64_t start = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t sectors = (uint64_t)sqlite3_column_int64(st, 2);

		if (sectors > left)
			sectors = left;
		left -= sectors;
		if (last && !strcmp(last->device, dev) &&
		    last->start + last->sectors == start) {
			last->sectors += sectors;
			continue;
		}
		if (n == cap) {
			struct vdisk_run *nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				err = vdisk_fail(db, -ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		last = &v[n];
		last->device = strdup(dev);
		last->start = start;
		last->sectors = sectors;
		if (!last->device)
			err = vdisk_fail(db, -ENOMEM, "out of memory");
		else
			n++;
	}
	if (!err && left && rc != SQLITE_DONE)
		err = vdisk_sqlfail(db, "reading the extent map");
	else if (!err && left)
		err = vdisk_fail(
			db, -EUCLEAN,
			"VD %lld: its extents hold %llu bytes less than its size",
			(long long)id,
			(unsigned long long)(left * VDISK_SECTOR));
	sqlite3_finalize(st);
	if (err) {
		vdisk_runs_free(v, n);
		return err;
	}
	*runs = v;
	*nruns = n;
	return 0;
}

int vdisk_lookup(struct vdisk_db *db, int64_t id, unsigned flags,
		 struct vdisk_run **runs, size_t *nruns)
{
	struct vdisk_info info;
	int err;

	/* one read transaction: the map and the expiry agree */
	err = vdisk_exec(db, "BEGIN");
	if (err)
		return err;
	err = vdisk_get_tx(db, id, &info);
	if (!err && info.expired && !(flags & VDISK_LOOKUP_EXPIRED))
		err = vdisk_fail(db, -ESTALE, "VD %lld has expired",
				 (long long)id);
	if (!err)
		err = vdisk_map(db, id, info.size, runs, nruns);
	vdisk_rollback(db);
	return err;
}

int vdisk_list(struct vdisk_db *db, unsigned flags, struct vdisk_info **list,
	       size_t *n)
{
	struct vdisk_info *v = NULL;
	size_t cnt = 0, cap = 0;
	int64_t now = vdisk_now();
	sqlite3_stmt *st;
	int err, rc;

	err = vdisk_prepare(
		db,
		"SELECT v.id, v.size, v.created, v.expires, v.reused,"
		" (SELECT count(*) FROM extents WHERE vdisk = v.id)"
		" FROM vdisks v WHERE state = 'live'"
		" AND (?1 OR expires = 0 OR expires > ?2)"
		" ORDER BY v.id",
		&st);
	if (err)
		return err;
	sqlite3_bind_int(st, 1, !!(flags & VDISK_LIST_ALL));
	sqlite3_bind_int64(st, 2, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct vdisk_info *x;

		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			x = realloc(v, cap * sizeof(*x));
			if (!x) {
				err = vdisk_fail(db, -ENOMEM, "out of memory");
				break;
			}
			v = x;
		}
		x = &v[cnt++];
		x->id = sqlite3_column_int64(st, 0);
		x->size = (uint64_t)sqlite3_column_int64(st, 1);
		x->created = sqlite3_column_int64(st, 2);
		x->expires = sqlite3_column_int64(st, 3);
		x->expired = x->expires && x->expires <= now;
		x->reused = x->expired && sqlite3_column_int(st, 4);
		x->nextents = (unsigned)sqlite3_column_int64(st, 5);
	}
	if (!err && rc != SQLITE_DONE)
		err = vdisk_sqlfail(db, "listing disks");
	sqlite3_finalize(st);
	if (err) {
		free(v);
		return err;
	}
	*list = v;
	*n = cnt;
	return 0;
}

int vdisk_freespace(struct vdisk_db *db, struct vdisk_space *space)
{
	sqlite3_stmt *st;
	int err;

	memset(space, 0, sizeof(*space));
	err = vdisk_prepare(
		db,
		"SELECT coalesce(sum(e.sectors), 0), count(*),"
		" coalesce(sum(e.dirty), 0),"
		" (SELECT coalesce(sum(sectors), 0) FROM extents),"
		" (SELECT count(*) FROM devices)"
		" FROM vdisks v JOIN extents e ON e.vdisk = v.id"
		" WHERE v.expires BETWEEN 1 AND ?1 AND v.state != 'pending'"
		"  AND NOT EXISTS (SELECT 1 FROM vbds b WHERE b.vdisk = v.id)",
		&st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, vdisk_now());
	if (sqlite3_step(st) == SQLITE_ROW) {
		space->free_bytes =
			(uint64_t)sqlite3_column_int64(st, 0) * VDISK_SECTOR;
		space->free_extents = (uint64_t)sqlite3_column_int64(st, 1);
		space->dirty_extents = (uint64_t)sqlite3_column_int64(st, 2);
		space->total_bytes =
			(uint64_t)sqlite3_column_int64(st, 3) * VDISK_SECTOR;
		space->devices = (unsigned)sqlite3_column_int64(st, 4);
	} else {
		err = vdisk_sqlfail(db, "measuring free space");
	}
	sqlite3_finalize(st);
	return err;
}

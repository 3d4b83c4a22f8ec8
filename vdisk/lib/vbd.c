// SPDX-License-Identifier: GPL-2.0-only
/*
 * VBDs: which domain has which disk, kept in the pool database so that
 * the Xen 1.2 sharing rules hold across separate add_vbd_to_dom runs and
 * reboots. It is only safe for two domains to share a disk when both have
 * it read-only; the old vbd_expert level lets an administrator who knows
 * better allow one writer among readers (1) or anything (2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk-priv.h"

/* What a target touches: a pool disk, or a device/file identity. */
struct vdisk_target {
	int64_t vdisk; /* 0: not a pool disk */
	char ident[64];
	char parent[64];
};

static int vdisk_target_parse(struct vdisk_db *db, const char *target,
			      struct vdisk_target *t)
{
	const char *colon = strchr(target, ':');
	char *end;

	memset(t, 0, sizeof(*t));
	if (!colon || colon == target || !colon[1])
		return vdisk_fail(db, -EINVAL,
				  "%s: expected vd:ID, phy:DEVICE or TYPE:PATH",
				  target);
	if (!strncmp(target, "vd:", 3)) {
		struct vdisk_info info;
		int err;

		errno = 0;
		t->vdisk = strtoll(target + 3, &end, 10);
		/* vd:ID?db=PATH names the database the caller opened */
		if (errno || t->vdisk <= 0 || (*end && *end != '?'))
			return vdisk_fail(db, -EINVAL, "%s: not a VD id",
					  target);
		err = vdisk_get_tx(db, t->vdisk, &info);
		if (!err && info.expired)
			err = vdisk_fail(db, -ESTALE, "VD %lld has expired",
					 (long long)t->vdisk);
		return err;
	}
	if (!strncmp(target, "phy:", 4))
		return vdisk_target_ident(db, target + 4, t->ident,
					  sizeof(t->ident), t->parent,
					  sizeof(t->parent));
	/* an image: its file is what is shared; a network name is itself */
	if (vdisk_target_ident(db, colon + 1, t->ident, sizeof(t->ident),
			       t->parent, sizeof(t->parent)))
		snprintf(t->ident, sizeof(t->ident), "name:%.58s", target);
	db->err[0] = '\0';
	return 0;
}

/* A phy: target on a pool device would write under the pool's disks. */
static int vdisk_target_pool(struct vdisk_db *db, const struct vdisk_target *t,
			     const char *target, int expert)
{
	sqlite3_stmt *st;
	int err;

	if (t->vdisk || expert >= 2)
		return 0;
	err = vdisk_prepare(db,
			    "SELECT path FROM devices WHERE ident = ?1"
			    " OR parent = ?1 OR (?2 != '' AND ident = ?2)",
			    &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, t->ident, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->parent, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		err = vdisk_fail(
			db, -EBUSY,
			"%s overlaps %s of the virtual-disk pool, whose extents belong to virtual disks (--expert 2 to force)",
			target, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return err;
}

static int vdisk_sharing(struct vdisk_db *db, const struct vdisk_vbd *vbd,
			 const struct vdisk_target *t)
{
	sqlite3_stmt *st;
	int err, rc;

	err = vdisk_prepare(
		db,
		"SELECT domid, devnode, target, writable FROM vbds WHERE"
		" (?1 != 0 AND vdisk = ?1) OR (?2 != '' AND (ident = ?2"
		"  OR parent = ?2 OR (?3 != '' AND ident = ?3)))"
		" ORDER BY writable DESC LIMIT 1",
		&st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, t->vdisk);
	sqlite3_bind_text(st, 2, t->ident, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, t->parent, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		bool other_w = sqlite3_column_int(st, 3) != 0;
		int need = vbd->writable && other_w ? 2 :
			   vbd->writable || other_w ? 1 :
						      0;

		if (vbd->expert < need)
			err = vdisk_fail(
				db, -EBUSY,
				"%s: already attached %s to domain %lld as %s (%s); %s sharing needs --expert %d",
				vbd->target, other_w ? "writable" : "read-only",
				(long long)sqlite3_column_int64(st, 0),
				(const char *)sqlite3_column_text(st, 1),
				(const char *)sqlite3_column_text(st, 2),
				need == 2 ? "two writers" : "writable", need);
	} else if (rc != SQLITE_DONE) {
		err = vdisk_sqlfail(db, "checking VBDs");
	}
	sqlite3_finalize(st);
	return err;
}

int vdisk_vbd_add(struct vdisk_db *db, const struct vdisk_vbd *vbd)
{
	struct vdisk_target t;
	sqlite3_stmt *st;
	int err;

	if (vbd->expert < 0 || vbd->expert > 2)
		return vdisk_fail(db, -EINVAL,
				  "expert level %d: expected 0, 1 or 2",
				  vbd->expert);
	err = vdisk_begin(db);
	if (err)
		return err;
	err = vdisk_target_parse(db, vbd->target, &t);
	if (!err)
		err = vdisk_target_pool(db, &t, vbd->target, vbd->expert);
	if (!err)
		err = vdisk_sharing(db, vbd, &t);
	if (err)
		goto fail;
	err = vdisk_prepare(
		db,
		"INSERT INTO vbds (domid, devnode, target, vdisk,"
		" ident, parent, writable, expert, backend, created)"
		" VALUES (?, ?, ?, NULLIF(?, 0), NULLIF(?, ''),"
		" NULLIF(?, ''), ?, ?, ?, ?)",
		&st);
	if (err)
		goto fail;
	sqlite3_bind_int64(st, 1, vbd->domid);
	sqlite3_bind_text(st, 2, vbd->devnode, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, vbd->target, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, t.vdisk);
	sqlite3_bind_text(st, 5, t.vdisk ? "" : t.ident, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, t.vdisk ? "" : t.parent, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, vbd->writable);
	sqlite3_bind_int(st, 8, vbd->expert);
	sqlite3_bind_text(st, 9, vbd->backend, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, vdisk_now());
	if (sqlite3_step(st) != SQLITE_DONE) {
		if ((sqlite3_extended_errcode(db->sql) & 0xff) ==
		    SQLITE_CONSTRAINT)
			err = vdisk_fail(
				db, -EEXIST,
				"%s of domain %lld is already attached",
				vbd->devnode, (long long)vbd->domid);
		else
			err = vdisk_sqlfail(db, "recording the VBD");
	}
	sqlite3_finalize(st);
	if (!err)
		err = vdisk_commit(db);
	if (!err)
		return 0;
fail:
	vdisk_rollback(db);
	return err;
}

static int vdisk_vbd_exec(struct vdisk_db *db, const char *sql, int64_t domid,
			  const char *devnode, const char *text)
{
	sqlite3_stmt *st;
	int err;

	err = vdisk_begin(db);
	if (err)
		return err;
	err = vdisk_prepare(db, sql, &st);
	if (err)
		goto out;
	sqlite3_bind_int64(st, 1, domid);
	sqlite3_bind_text(st, 2, devnode, -1, SQLITE_STATIC);
	if (text)
		sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		err = vdisk_sqlfail(db, "updating the VBD");
	else if (!sqlite3_changes(db->sql))
		err = vdisk_fail(db, -ENOENT, "%s of domain %lld: no such VBD",
				 devnode, (long long)domid);
	sqlite3_finalize(st);
	if (!err)
		return vdisk_commit(db);
out:
	vdisk_rollback(db);
	return err;
}

int vdisk_vbd_set_backend(struct vdisk_db *db, int64_t domid,
			  const char *devnode, const char *backend)
{
	return vdisk_vbd_exec(db,
			      "UPDATE vbds SET backend = ?3 WHERE domid = ?1"
			      " AND devnode = ?2",
			      domid, devnode, backend);
}

int vdisk_vbd_remove(struct vdisk_db *db, int64_t domid, const char *devnode)
{
	return vdisk_vbd_exec(
		db, "DELETE FROM vbds WHERE domid = ?1 AND devnode = ?2", domid,
		devnode, NULL);
}

static char *vdisk_dup_col(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return s ? strdup(s) : NULL;
}

int vdisk_vbd_get(struct vdisk_db *db, int64_t domid, const char *devnode,
		  struct vdisk_vbd *out)
{
	sqlite3_stmt *st;
	int err, rc;

	memset(out, 0, sizeof(*out));
	err = vdisk_prepare(db,
			    "SELECT target, writable, expert, backend FROM vbds"
			    " WHERE domid = ? AND devnode = ?",
			    &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, domid);
	sqlite3_bind_text(st, 2, devnode, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->domid = domid;
		out->devnode = strdup(devnode);
		out->target = vdisk_dup_col(st, 0);
		out->writable = sqlite3_column_int(st, 1) != 0;
		out->expert = sqlite3_column_int(st, 2);
		out->backend = vdisk_dup_col(st, 3);
		if (!out->devnode || !out->target)
			err = vdisk_fail(db, -ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		err = vdisk_fail(db, -ENOENT, "%s of domain %lld: no such VBD",
				 devnode, (long long)domid);
	} else {
		err = vdisk_sqlfail(db, "finding the VBD");
	}
	sqlite3_finalize(st);
	if (err)
		vdisk_vbd_clear(out);
	return err;
}

void vdisk_vbd_clear(struct vdisk_vbd *vbd)
{
	free(vbd->devnode);
	free(vbd->target);
	free(vbd->backend);
	memset(vbd, 0, sizeof(*vbd));
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The pool database: opening, the versioned schema and the small helpers
 * every change goes through. Changes run in BEGIN IMMEDIATE transactions
 * with a long busy timeout, so concurrent commands queue on the write lock
 * instead of failing, and no two of them ever see the same free extent.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vdisk-priv.h"

/* a command waiting for the pool lock waits this long before giving up */
#define VDISK_BUSY_MS 120000

/*
 * The schema, one migration per version: element i takes a database from
 * user_version i to i + 1. Never edit a released step; append a new one.
 */
static const char *const vdisk_migrations[] = {
	/* 1: the Xen 1.2 model plus scrub state, reservations and VBDs */
	"CREATE TABLE devices ("
	"  id INTEGER PRIMARY KEY,"
	"  path TEXT NOT NULL UNIQUE,"
	"  ident TEXT NOT NULL UNIQUE," /* blk:MAJ:MIN or file:DEV:INO */
	"  parent TEXT," /* a partition's whole disk, blk:MAJ:MIN */
	"  size INTEGER NOT NULL,"
	"  extent_size INTEGER NOT NULL,"
	"  added INTEGER NOT NULL);"
	/*
	 * state: live (a disk handed out; free once expired), free (holds
	 * pool space that never was a disk: new devices, reclaimed
	 * reservations), pending (a create or enlarge still scrubbing; its
	 * owner_* identify the process, so a crashed one is reclaimed).
	 */
	"CREATE TABLE vdisks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  size INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('live', 'free', 'pending')),"
	"  reused INTEGER NOT NULL DEFAULT 0,"
	"  owner_pid INTEGER, owner_start INTEGER, owner_boot TEXT);"
	"CREATE INDEX vdisks_expiry ON vdisks (expires, id);"
	/* dirty: may hold bytes of a previous owner or of the device */
	"CREATE TABLE extents ("
	"  id INTEGER PRIMARY KEY,"
	"  device INTEGER NOT NULL REFERENCES devices (id),"
	"  start INTEGER NOT NULL,"
	"  sectors INTEGER NOT NULL CHECK (sectors > 0),"
	"  vdisk INTEGER NOT NULL REFERENCES vdisks (id),"
	"  part INTEGER NOT NULL,"
	"  dirty INTEGER NOT NULL DEFAULT 1,"
	"  UNIQUE (device, start),"
	"  UNIQUE (vdisk, part));"
	"CREATE TABLE vbds ("
	"  id INTEGER PRIMARY KEY,"
	"  domid INTEGER NOT NULL,"
	"  devnode TEXT NOT NULL,"
	"  target TEXT NOT NULL,"
	"  vdisk INTEGER REFERENCES vdisks (id),"
	"  ident TEXT," /* phy: and TYPE:PATH targets: what they touch */
	"  parent TEXT,"
	"  writable INTEGER NOT NULL,"
	"  expert INTEGER NOT NULL DEFAULT 0,"
	"  backend TEXT,"
	"  created INTEGER NOT NULL,"
	"  UNIQUE (domid, devnode));",
};

#define VDISK_SCHEMA_VERSION \
	(int)(sizeof(vdisk_migrations) / sizeof(vdisk_migrations[0]))

int vdisk_fail(struct vdisk_db *db, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->err, sizeof(db->err), fmt, ap);
	va_end(ap);
	return err;
}

static int vdisk_sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

int vdisk_sqlfail(struct vdisk_db *db, const char *what)
{
	int rc = sqlite3_extended_errcode(db->sql);

	return vdisk_fail(db, vdisk_sql_errno(rc), "%s: %s: %s", db->path, what,
			  sqlite3_errmsg(db->sql));
}

int vdisk_exec(struct vdisk_db *db, const char *sql)
{
	if (sqlite3_exec(db->sql, sql, NULL, NULL, NULL) != SQLITE_OK)
		return vdisk_sqlfail(db, sql);
	return 0;
}

int vdisk_set_field(struct vdisk_db *db, int64_t id, const char *column,
		    int64_t value)
{
	char sql[128];

	snprintf(sql, sizeof(sql),
		 "UPDATE vdisks SET %s = %lld WHERE id = %lld", column,
		 (long long)value, (long long)id);
	return vdisk_exec(db, sql);
}

int vdisk_begin(struct vdisk_db *db)
{
	return vdisk_exec(db, "BEGIN IMMEDIATE");
}

int vdisk_commit(struct vdisk_db *db)
{
	return vdisk_exec(db, "COMMIT");
}

void vdisk_rollback(struct vdisk_db *db)
{
	/* keeps the message of the failure that led here */
	if (!sqlite3_get_autocommit(db->sql))
		sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

int vdisk_prepare(struct vdisk_db *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db->sql, sql, -1, st, NULL) != SQLITE_OK)
		return vdisk_sqlfail(db, "prepare");
	return 0;
}

int vdisk_query_int(struct vdisk_db *db, const char *sql, int64_t a, int64_t b,
		    int64_t *out)
{
	sqlite3_stmt *st;
	int rc, err;

	err = vdisk_prepare(db, sql, &st);
	if (err)
		return err;
	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		err = 0;
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = vdisk_sqlfail(db, "query");
	}
	sqlite3_finalize(st);
	return err;
}

int64_t vdisk_now(void)
{
	return (int64_t)time(NULL);
}

static int vdisk_migrate(struct vdisk_db *db)
{
	int64_t version;
	int err, i;

	/* the common case, an up-to-date schema, takes no write lock */
	err = vdisk_query_int(db, "PRAGMA user_version", 0, 0, &version);
	if (err)
		return err;
	if (version == VDISK_SCHEMA_VERSION)
		return 0;
	err = vdisk_begin(db);
	if (err)
		return err;
	/* read under the write lock: two first users migrate once */
	err = vdisk_query_int(db, "PRAGMA user_version", 0, 0, &version);
	if (err)
		goto fail;
	if (version > VDISK_SCHEMA_VERSION) {
		err = vdisk_fail(
			db, -EPROTO,
			"%s: schema version %lld is newer than this libvdisk's %d",
			db->path, (long long)version, VDISK_SCHEMA_VERSION);
		goto fail;
	}
	for (i = (int)version; i < VDISK_SCHEMA_VERSION; i++) {
		char pragma[48];

		err = vdisk_exec(db, vdisk_migrations[i]);
		if (err)
			goto fail;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
			 i + 1);
		err = vdisk_exec(db, pragma);
		if (err)
			goto fail;
	}
	return vdisk_commit(db);
fail:
	vdisk_rollback(db);
	return err;
}

struct vdisk_db *vdisk_new(void)
{
	return calloc(1, sizeof(struct vdisk_db));
}

int vdisk_open(struct vdisk_db *db, const char *path, unsigned flags)
{
	int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
	struct stat st;
	int err;

	if (db->sql)
		return vdisk_fail(db, -EALREADY, "%s: already open", db->path);
	if (!path || !*path)
		path = getenv("VDISK_DB");
	if (!path || !*path)
		path = VDISK_DEFAULT_DB;
	free(db->path);
	db->path = strdup(path);
	if (!db->path)
		return vdisk_fail(db, -ENOMEM, "out of memory");
	if (flags & VDISK_OPEN_EXISTING) {
		if (stat(path, &st) < 0)
			return vdisk_fail(db, -errno,
					  "%s: no virtual-disk database: %s",
					  path, strerror(errno));
	} else {
		oflags |= SQLITE_OPEN_CREATE;
	}
	if (sqlite3_open_v2(path, &db->sql, oflags, NULL) != SQLITE_OK) {
		err = vdisk_sqlfail(db, "cannot open the database");
		sqlite3_close(db->sql);
		db->sql = NULL;
		return err;
	}
	sqlite3_busy_timeout(db->sql, VDISK_BUSY_MS);
	/* WAL: readers (lookups, lists) never wait for a create */
	err = vdisk_exec(db, "PRAGMA journal_mode = WAL");
	if (!err)
		err = vdisk_exec(db, "PRAGMA foreign_keys = ON");
	if (!err)
		err = vdisk_exec(db, "PRAGMA synchronous = FULL");
	if (!err)
		err = vdisk_migrate(db);
	if (err) {
		sqlite3_close(db->sql);
		db->sql = NULL;
	}
	return err;
}

void vdisk_free(struct vdisk_db *db)
{
	if (!db)
		return;
	if (db->sql)
		sqlite3_close(db->sql);
	free(db->path);
	free(db);
}

const char *vdisk_errmsg(const struct vdisk_db *db)
{
	return db && db->err[0] ? db->err : "no error";
}

const char *vdisk_path(const struct vdisk_db *db)
{
	return db->path;
}

int vdisk_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (!*end) {
		*out = v;
		return 0;
	}
	u = strchr(units, toupper((unsigned char)*end));
	if (!u || !*u ||
	    (end[1] && strcasecmp(end + 1, "iB") && strcasecmp(end + 1, "B")))
		return -EINVAL;
	shift = 10 * (int)(u - units + 1);
	if (v > (~0ull >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

/* Field 22 of /proc/PID/stat: the start time, which a reused pid lacks. */
static int64_t vdisk_proc_start(int64_t pid)
{
	char path[64], buf[1024], *p;
	long long start = -1;
	size_t n;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* after ") " come fields 3, 4, ...: skip 19 of them to reach 22 */
	for (i = 0; i < 19 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%lld", &start) != 1)
		return -1;
	return start;
}

static void vdisk_boot_id(char *out, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	out[0] = '\0';
	if (!f)
		return;
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

int vdisk_owner_self(struct vdisk_owner *o)
{
	o->pid = getpid();
	o->start = vdisk_proc_start(o->pid);
	vdisk_boot_id(o->boot, sizeof(o->boot));
	return o->start < 0 ? -ENOENT : 0;
}

bool vdisk_owner_alive(const struct vdisk_owner *o)
{
	char boot[40];

	vdisk_boot_id(boot, sizeof(boot));
	if (strcmp(boot, o->boot))
		return false;
	return vdisk_proc_start(o->pid) == o->start;
}

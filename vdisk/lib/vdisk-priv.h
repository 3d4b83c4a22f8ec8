/* SPDX-License-Identifier: GPL-2.0-only */
/* libvdisk internals shared by its source files. */
#ifndef VDISK_PRIV_H
#define VDISK_PRIV_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk.h"

struct vdisk_db {
	sqlite3 *sql;
	char *path;
	char err[512];
};

/* Sets the handle's message; returns err (a -errno) for tail calls. */
int vdisk_fail(struct vdisk_db *db, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The SQLite error of the last call, as a -errno with the message set. */
int vdisk_sqlfail(struct vdisk_db *db, const char *what);

/* BEGIN IMMEDIATE: the write lock now, so a change never fails half way. */
int vdisk_begin(struct vdisk_db *db);
int vdisk_commit(struct vdisk_db *db);
void vdisk_rollback(struct vdisk_db *db);
int vdisk_exec(struct vdisk_db *db, const char *sql);
/* one integer column of VD id (column: a fixed name, never user input) */
int vdisk_set_field(struct vdisk_db *db, int64_t id, const char *column,
		    int64_t value);
int vdisk_prepare(struct vdisk_db *db, const char *sql, sqlite3_stmt **st);
/* one-row integer query with up to two integer parameters */
int vdisk_query_int(struct vdisk_db *db, const char *sql, int64_t a, int64_t b,
		    int64_t *out);
int64_t vdisk_now(void);

/* Zero [start, start + len) bytes of path durably (scrub.c). */
int vdisk_scrub_range(struct vdisk_db *db, const char *path, uint64_t start,
		      uint64_t len, vdisk_progress_fn progress, void *arg,
		      uint64_t done, uint64_t total);

/* Inside a transaction: a disk's row; -ENOENT unless a handed-out disk. */
int vdisk_get_tx(struct vdisk_db *db, int64_t id, struct vdisk_info *info);

/* The identity of a device or file (pool.c), for VBD sharing checks. */
int vdisk_target_ident(struct vdisk_db *db, const char *path, char *ident,
		       size_t ilen, char *parent, size_t plen);

/*
 * Whether a process that reserved extents is still running: its pid, its
 * start time (clock ticks after boot) and the boot it ran in.
 */
struct vdisk_owner {
	int64_t pid;
	int64_t start;
	char boot[40];
};
int vdisk_owner_self(struct vdisk_owner *o);
bool vdisk_owner_alive(const struct vdisk_owner *o);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libvdisk: the virtual-disk pool of Xen 1.2, kept in SQLite.
 *
 * Devices (partitions, or regular files on small hosts and in tests) are
 * added to a free pool split into extents. A virtual disk (VD) owns an
 * ordered list of extents; free space is the extents of expired disks;
 * delete means "expire now", so a deleted disk can be undeleted until one
 * of its extents is handed to another disk. Expiry 0 means never.
 *
 * Every call returns 0 or -errno; on failure the reason, naming the device
 * or disk, is kept in the handle (vdisk_errmsg) for the caller to print or
 * raise. The library never exits and never prints.
 */
#ifndef VDISK_H
#define VDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VDISK_DEFAULT_DB "/var/lib/xen_vdisks.sqlite"
#define VDISK_DEFAULT_EXTENT (64ull << 20)
#define VDISK_SECTOR 512u

struct vdisk_db;

/* A handle that only holds an error message until vdisk_open succeeds. */
struct vdisk_db *vdisk_new(void);
/*
 * path NULL: $VDISK_DB, else VDISK_DEFAULT_DB. The database and its schema
 * are created on first use unless VDISK_OPEN_EXISTING is given.
 */
#define VDISK_OPEN_EXISTING 0x1u
int vdisk_open(struct vdisk_db *db, const char *path, unsigned flags);
void vdisk_free(struct vdisk_db *db);
const char *vdisk_errmsg(const struct vdisk_db *db);
const char *vdisk_path(const struct vdisk_db *db);

/* Add a device to the free pool; extent_size 0: VDISK_DEFAULT_EXTENT. */
int vdisk_format(struct vdisk_db *db, const char *device, uint64_t extent_size);

/* Called while scrubbing: bytes zeroed so far of total. */
typedef void (*vdisk_progress_fn)(uint64_t done, uint64_t total, void *arg);

struct vdisk_create_opts {
	bool no_scrub; /* hand out extents without zeroing them */
	vdisk_progress_fn progress;
	void *progress_arg;
};

/* size in bytes (a multiple of 512); expiry in seconds from now, 0 never */
int vdisk_create(struct vdisk_db *db, uint64_t size, int64_t expiry,
		 const struct vdisk_create_opts *opts, int64_t *id);
/* grow a live disk to size bytes; new extents are scrubbed like create's */
int vdisk_enlarge(struct vdisk_db *db, int64_t id, uint64_t size,
		  const struct vdisk_create_opts *opts);
/* new expiry, seconds from now (0 never), for a disk not yet expired */
int vdisk_refresh(struct vdisk_db *db, int64_t id, int64_t expiry);
int vdisk_delete(struct vdisk_db *db, int64_t id);
/* an expired disk whose extents no other disk has taken: never expires */
int vdisk_undelete(struct vdisk_db *db, int64_t id);

struct vdisk_info {
	int64_t id;
	uint64_t size; /* bytes */
	int64_t created; /* unix time */
	int64_t expires; /* unix time, 0 never */
	bool expired;
	bool reused; /* expired and some extent handed on: no undelete */
	unsigned nextents;
};

/* One piece of the disk: sectors on a device, in disk order. */
struct vdisk_run {
	char *device;
	uint64_t start; /* sector on the device */
	uint64_t sectors;
};

int vdisk_info(struct vdisk_db *db, int64_t id, struct vdisk_info *info);
/*
 * The disk as runs on devices (adjacent extents merged, the last trimmed to
 * the disk's size). An expired disk is refused unless VDISK_LOOKUP_EXPIRED.
 */
#define VDISK_LOOKUP_EXPIRED 0x1u
int vdisk_lookup(struct vdisk_db *db, int64_t id, unsigned flags,
		 struct vdisk_run **runs, size_t *nruns);
void vdisk_runs_free(struct vdisk_run *runs, size_t nruns);

/* Live disks, or with VDISK_LIST_ALL expired ones as well; by id. */
#define VDISK_LIST_ALL 0x1u
int vdisk_list(struct vdisk_db *db, unsigned flags, struct vdisk_info **list,
	       size_t *n);

struct vdisk_space {
	uint64_t free_bytes; /* extents of expired disks */
	uint64_t total_bytes; /* every extent in the pool */
	uint64_t free_extents;
	uint64_t dirty_extents; /* free but not yet zeroed */
	unsigned devices;
};
int vdisk_freespace(struct vdisk_db *db, struct vdisk_space *space);

/*
 * Block devices attached to domains (add_vbd_to_dom), recorded so that the
 * sharing rules hold across separate commands and reboots.
 */
struct vdisk_vbd {
	int64_t domid;
	char *devnode; /* /dev/xvda */
	char *target; /* vd:ID, phy:/dev/sdb1 or TYPE:PATH as given */
	bool writable;
	int expert; /* 0: no writable sharing; 1: one writer and readers; 2: any */
	char *backend; /* how it was attached, for the remover to undo */
};

/* Check the sharing rules and record; -EBUSY with the conflict named. */
int vdisk_vbd_add(struct vdisk_db *db, const struct vdisk_vbd *vbd);
int vdisk_vbd_set_backend(struct vdisk_db *db, int64_t domid,
			  const char *devnode, const char *backend);
/* The record of domid's devnode; free *out with vdisk_vbd_clear. */
int vdisk_vbd_get(struct vdisk_db *db, int64_t domid, const char *devnode,
		  struct vdisk_vbd *out);
int vdisk_vbd_remove(struct vdisk_db *db, int64_t domid, const char *devnode);
void vdisk_vbd_clear(struct vdisk_vbd *vbd);

/* Sizes: bytes, or with a K/M/G/T binary suffix. 0 or -EINVAL. */
int vdisk_parse_size(const char *s, uint64_t *out);

#endif

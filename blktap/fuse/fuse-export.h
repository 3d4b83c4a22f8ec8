/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The FUSE export: the virtual disk as one regular file of the disk's
 * size, mounted over a file with libfuse3's low-level API and served
 * inside the tapdisk event loop, so that dom0 can losetup or
 * "mount -o loop" it where ublk is absent.
 */
#ifndef FUSE_EXPORT_H
#define FUSE_EXPORT_H

#include <stdbool.h>

#include "loop.h"

struct td_vbd;
struct fuse_export;

struct fuse_export_opts {
	bool readonly; /* export read-only even if the vbd is writable */
};

/*
 * Mount the disk over path, a regular file, creating it empty if it is
 * missing (it is left in place afterwards, like a mount point directory).
 * A stale mount on path (its tapdisk was killed: ENOTCONN) is detached
 * first, with a log line; a live mount is refused with -EBUSY. Returns NULL
 * with errno, having logged the path and the reason.
 */
struct fuse_export *fuse_export_new(struct td_loop *loop, struct td_vbd *vbd,
				    const char *path,
				    const struct fuse_export_opts *opts);
const char *fuse_export_path(const struct fuse_export *exp);
/*
 * Stop taking requests; let the in-flight ones finish and answer them;
 * unmount; then call done (at once if idle).
 */
void fuse_export_shutdown(struct fuse_export *exp, td_loop_fn done, void *data);
/* Unmounts if still mounted. */
void fuse_export_free(struct fuse_export *exp);

#endif

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The FUSE export. The file system has one inode, the root, and it is a
 * regular file (FUSE can mount over a file): its size is the disk's and
 * its data is the disk's. /dev/fuse is read non-blocking from a loop watch,
 * as many requests per wake-up as the kernel has queued; each becomes one
 * vbd request, answered from its done() callback, so many requests are in
 * flight at once without any thread.
 *
 * Every open is direct_io: the kernel's page cache must not hide tapdisk
 * (another frontend may write the same disk, and an fsync must reach the
 * image), and a loop device with --direct-io=on then costs no extra copy.
 */
#define FUSE_USE_VERSION 34

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fuse-export.h"
#include "log.h"
#include "vbd.h"

/* the largest read or write the kernel sends: libfuse's buffer holds it */
#define FX_MAX_IO (1u << 20)
/*
 * Asynchronous direct I/O (a loop device with --direct-io=on, libaio) is
 * "background" work that the kernel caps at max_background requests; its
 * default of 12 would starve a disk that serves 128 in flight.
 */
#define FX_MAX_BACKGROUND 128
/* stop reading /dev/fuse while this many requests wait for the vbd */
#define FX_MAX_INFLIGHT 512
/* the attributes never change while mounted */
#define FX_ATTR_TIMEOUT 3600.0

struct fx_io {
	struct td_request req;
	struct fuse_export *exp;
	fuse_req_t freq;
	void *buf;
	size_t buf_size;
	struct iovec iov;
	struct fx_io *next;
};

struct fuse_export {
	struct td_loop *loop;
	struct td_vbd *vbd;
	char *path;
	uint64_t size;
	bool readonly;
	struct timespec mtime;

	struct fuse_session *se;
	struct fuse_buf fbuf;
	struct td_watch *watch;
	bool mounted;
	bool throttled;
	bool stopping;
	bool freed; /* by fuse_export_free with requests in flight */

	unsigned inflight;
	struct fx_io *free_ios;
	td_loop_fn done;
	void *done_data;
};

static void fx_destroy(struct fuse_export *exp);
static void fx_maybe_done(struct fuse_export *exp);

/* libfuse's own messages, into tapdisk's log */
static void fx_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	td_log((int)level, "fuse: %s", msg);
}

static void fx_io_put(struct fx_io *io)
{
	struct fuse_export *exp = io->exp;

	if (io->buf)
		td_buf_put(io->buf, io->buf_size);
	io->buf = NULL;
	io->next = exp->free_ios;
	exp->free_ios = io;
	exp->inflight--;
	if (exp->throttled && exp->inflight < FX_MAX_INFLIGHT / 2 &&
	    exp->watch) {
		exp->throttled = false;
		td_watch_set_events(exp->watch, EPOLLIN);
	}
}

/*
 * A request's io, with a data buffer of size bytes (0: none); NULL after
 * answering the request ENOMEM itself.
 */
static struct fx_io *fx_io_get(struct fuse_export *exp, fuse_req_t freq,
			       size_t size)
{
	struct fx_io *io = exp->free_ios;

	if (io) {
		exp->free_ios = io->next;
	} else {
		io = calloc(1, sizeof(*io));
		if (!io) {
			fuse_reply_err(freq, ENOMEM);
			return NULL;
		}
		io->exp = exp;
	}
	io->freq = freq;
	io->buf = size ? td_buf_get(size) : NULL;
	io->buf_size = io->buf ? size : 0;
	exp->inflight++;
	if (size && !io->buf) {
		fx_io_put(io);
		fuse_reply_err(freq, ENOMEM);
		return NULL;
	}
	return io;
}

static void fx_io_done(struct td_request *req, int err)
{
	struct fx_io *io = req->data;
	struct fuse_export *exp = io->exp;
	fuse_req_t freq = io->freq;

	if (exp->freed) {
		/* the session is closed: free the request without a reply */
		fuse_reply_none(freq);
	} else if (err) {
		td_debug("fuse %s: %s of %llu bytes at %llu failed: %s",
			 exp->path, td_op_name(req->op),
			 (unsigned long long)req->len,
			 (unsigned long long)req->offset, strerror(-err));
		fuse_reply_err(freq, -err);
	} else if (req->op == TD_OP_READ) {
		fuse_reply_buf(freq, io->buf, req->len);
	} else if (req->op == TD_OP_WRITE) {
		fuse_reply_write(freq, req->len);
	} else {
		fuse_reply_err(freq, 0);
	}
	fx_io_put(io);
	if (exp->freed) {
		if (!exp->inflight)
			fx_destroy(exp);
		return;
	}
	fx_maybe_done(exp);
}

static void fx_submit(struct fx_io *io, enum td_op op, unsigned flags,
		      uint64_t offset, uint64_t len)
{
	struct td_request *req = &io->req;

	memset(req, 0, sizeof(*req));
	req->op = op;
	req->flags = flags;
	req->offset = offset;
	req->len = len;
	if (io->buf) {
		io->iov.iov_base = io->buf;
		io->iov.iov_len = len;
		req->iov = &io->iov;
		req->iovcnt = 1;
	}
	req->done = fx_io_done;
	req->data = io;
	td_vbd_submit(io->exp->vbd, req);
}

static void fx_attr(const struct fuse_export *exp, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFREG | (exp->readonly ? 0400 : 0600);
	st->st_nlink = 1;
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_size = (off_t)exp->size;
	st->st_blksize = TD_BUF_ALIGN;
	st->st_blocks = (blkcnt_t)((exp->size + 511) / 512);
	st->st_atim = st->st_mtim = st->st_ctim = exp->mtime;
}

static void fx_reply_attr(fuse_req_t freq, const struct fuse_export *exp)
{
	struct stat st;

	fx_attr(exp, &st);
	fuse_reply_attr(freq, &st, FX_ATTR_TIMEOUT);
}

static void fx_init(void *data, struct fuse_conn_info *conn)
{
	conn->max_write = FX_MAX_IO;
	conn->max_read = FX_MAX_IO;
	conn->max_background = FX_MAX_BACKGROUND;
	conn->congestion_threshold = FX_MAX_BACKGROUND * 3 / 4;
	/*
	 * O_TRUNC must reach setattr, which refuses it, rather than open.
	 * Splice buys nothing here: libfuse writes replies from memory
	 * buffers with writev anyway, and a write's payload has to land in
	 * a vbd buffer whichever way it is read.
	 */
	conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_SPLICE_READ |
			FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
}

static void fx_getattr(fuse_req_t freq, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	fx_reply_attr(freq, fuse_req_userdata(freq));
}

/*
 * The disk has a fixed size and no owner or mode of its own: a truncate
 * to any other size, chmod and chown are refused; times are accepted and
 * forgotten, so that touch works.
 */
static void fx_setattr(fuse_req_t freq, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fuse_export *exp = fuse_req_userdata(freq);

	if (to_set &
	    (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(freq, EPERM);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (uint64_t)attr->st_size != exp->size) {
		td_debug("fuse %s: truncate to %lld refused: the disk is "
			 "%llu bytes",
			 exp->path, (long long)attr->st_size,
			 (unsigned long long)exp->size);
		fuse_reply_err(freq, EPERM);
		return;
	}
	fx_reply_attr(freq, exp);
}

static void fx_open(fuse_req_t freq, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_export *exp = fuse_req_userdata(freq);

	/* root passes the 0400 permission check: refuse writers here */
	if (exp->readonly && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(freq, EROFS);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* close needs no round trip: fsync is what makes data durable */
	fi->noflush = 1;
	fuse_reply_open(freq, fi);
}

static void fx_read(fuse_req_t freq, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_export *exp = fuse_req_userdata(freq);
	struct fx_io *io;

	if (off < 0) {
		fuse_reply_err(freq, EINVAL);
		return;
	}
	/* like any file: a short read at the end, nothing past it */
	if ((uint64_t)off >= exp->size || !size) {
		fuse_reply_buf(freq, NULL, 0);
		return;
	}
	if (size > exp->size - (uint64_t)off)
		size = (size_t)(exp->size - (uint64_t)off);
	io = fx_io_get(exp, freq, size);
	if (!io)
		return;
	fx_submit(io, TD_OP_READ, 0, (uint64_t)off, size);
}

/*
 * A write that starts at or past the end fails with ENOSPC, as on a block
 * device: the file cannot grow. One that straddles the end is short.
 */
static void fx_write(fuse_req_t freq, fuse_ino_t ino, const char *data,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fuse_export *exp = fuse_req_userdata(freq);
	struct fx_io *io;

	if (off < 0) {
		fuse_reply_err(freq, EINVAL);
		return;
	}
	if (!size) {
		fuse_reply_write(freq, 0);
		return;
	}
	if ((uint64_t)off >= exp->size) {
		fuse_reply_err(freq, ENOSPC);
		return;
	}
	if (size > exp->size - (uint64_t)off)
		size = (size_t)(exp->size - (uint64_t)off);
	io = fx_io_get(exp, freq, size);
	if (!io)
		return;
	/* the data sits in the receive buffer, which the next read reuses */
	memcpy(io->buf, data, size);
	fx_submit(io, TD_OP_WRITE, 0, (uint64_t)off, size);
}

static void fx_fsync(fuse_req_t freq, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fuse_export *exp = fuse_req_userdata(freq);
	struct fx_io *io = fx_io_get(exp, freq, 0);

	if (io)
		fx_submit(io, TD_OP_FLUSH, 0, 0, 0);
}

/*
 * PUNCH_HOLE and ZERO_RANGE both promise zeroes when read back, which a
 * vbd discard (a hint, dropped at unaligned edges) does not: both become
 * WRITE_ZEROES, the punch allowed to deallocate, the zeroing not. Nothing
 * may extend the disk (EFBIG), so a range past the end is only accepted
 * with KEEP_SIZE and then clipped; plain allocation inside the disk has
 * nothing to do.
 */
static void fx_fallocate(fuse_req_t freq, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct fuse_export *exp = fuse_req_userdata(freq);
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE |
			  FALLOC_FL_ZERO_RANGE;
	uint64_t start = (uint64_t)off, end;
	struct fx_io *io;

	if (off < 0 || len <= 0 || (uint64_t)len > UINT64_MAX - start) {
		fuse_reply_err(freq, EINVAL);
		return;
	}
	if ((mode & ~known) ||
	    (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) ==
		    (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		fuse_reply_err(freq, EOPNOTSUPP);
		return;
	}
	if (exp->readonly) {
		fuse_reply_err(freq, EROFS);
		return;
	}
	end = start + (uint64_t)len;
	if (end > exp->size && !(mode & FALLOC_FL_KEEP_SIZE)) {
		fuse_reply_err(freq, EFBIG);
		return;
	}
	if (end > exp->size)
		end = exp->size;
	if (start >= end ||
	    !(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
		fuse_reply_err(freq, 0);
		return;
	}
	io = fx_io_get(exp, freq, 0);
	if (!io)
		return;
	fx_submit(io, TD_OP_WRITE_ZEROES,
		  mode & FALLOC_FL_ZERO_RANGE ? TD_REQ_NO_HOLE : 0, start,
		  end - start);
}

static const struct fuse_lowlevel_ops fx_ops = {
	.init = fx_init,
	.getattr = fx_getattr,
	.setattr = fx_setattr,
	.open = fx_open,
	.read = fx_read,
	.write = fx_write,
	.fsync = fx_fsync,
	.fallocate = fx_fallocate,
};

/* The kernel ended the session: FILE was unmounted or the connection aborted. */
static void fx_lost(struct fuse_export *exp, int err)
{
	if (err)
		td_err("fuse %s: reading /dev/fuse: %s; the export has ended",
		       exp->path, strerror(-err));
	else
		td_warn("fuse %s: unmounted from outside; the export has "
			"ended",
			exp->path);
	td_watch_remove(exp->watch);
	exp->watch = NULL;
}

static void fx_event(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct fuse_export *exp = data;

	while (exp->watch && exp->inflight < FX_MAX_INFLIGHT) {
		int rc = fuse_session_receive_buf(exp->se, &exp->fbuf);

		if (rc == -EAGAIN)
			return;
		if (rc == -EINTR)
			continue;
		if (rc <= 0 || fuse_session_exited(exp->se)) {
			fx_lost(exp, rc);
			return;
		}
		fuse_session_process_buf(exp->se, &exp->fbuf);
	}
	if (exp->watch && !exp->throttled) {
		exp->throttled = true;
		td_watch_set_events(exp->watch, 0);
	}
}

/*
 * Make path a regular file nothing is mounted on: create it if missing;
 * detach the mount of a killed tapdisk (its root answers ENOTCONN); refuse
 * a live mount, which another tapdisk is probably serving.
 */
static int fx_prepare_path(const char *path)
{
	struct statx stx;
	int fd;

	if (statx(AT_FDCWD, path, 0, STATX_TYPE, &stx) && errno == ENOTCONN) {
		td_warn("fuse %s: stale FUSE mount (its tapdisk is gone): "
			"detaching it",
			path);
		if (umount2(path, MNT_DETACH)) {
			int err = errno;

			td_err("fuse %s: cannot detach the stale mount: %s",
			       path, strerror(err));
			return -err;
		}
	}
	if (statx(AT_FDCWD, path, 0, STATX_TYPE, &stx)) {
		if (errno != ENOENT) {
			fd = -errno;
			td_err("fuse %s: %s", path, strerror(-fd));
			return fd;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			fd = -errno;
			td_err("fuse %s: cannot create the file to mount on: "
			       "%s",
			       path, strerror(-fd));
			return fd;
		}
		close(fd);
		return 0;
	}
	if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
		td_err("fuse %s: something is already mounted there (another "
		       "tapdisk?)",
		       path);
		return -EBUSY;
	}
	if (!S_ISREG(stx.stx_mode)) {
		td_err("fuse %s: not a regular file: the disk is mounted over "
		       "a file",
		       path);
		return -EINVAL;
	}
	return 0;
}

static int fx_mount(struct fuse_export *exp)
{
	char opts[256];
	char *argv[] = { "tapdisk", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int fd, flags;

	/*
	 * allow_other: root's loop driver and other users may open it, the
	 * mode bits (default_permissions) decide.
	 */
	snprintf(opts, sizeof(opts),
		 "allow_other,default_permissions,fsname=tapdisk,"
		 "subtype=blktap,max_read=%u%s",
		 FX_MAX_IO, exp->readonly ? ",ro" : "");
	exp->se = fuse_session_new(&args, &fx_ops, sizeof(fx_ops), exp);
	fuse_opt_free_args(&args);
	if (!exp->se) {
		td_err("fuse %s: cannot create the FUSE session", exp->path);
		return -EINVAL;
	}
	if (fuse_session_mount(exp->se, exp->path)) {
		td_err("fuse %s: mount failed (is /dev/fuse there? see the "
		       "lines above)",
		       exp->path);
		return -EIO;
	}
	exp->mounted = true;
	fd = fuse_session_fd(exp->se);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK))
		return -errno;
	exp->watch = td_watch_add(exp->loop, fd, EPOLLIN, fx_event, exp);
	return exp->watch ? 0 : -errno;
}

static void fx_unmount(struct fuse_export *exp)
{
	if (exp->watch)
		td_watch_remove(exp->watch);
	exp->watch = NULL;
	if (!exp->mounted)
		return;
	/*
	 * libfuse closes /dev/fuse first (so that a request still queued
	 * fails instead of deadlocking the unmount) and then detaches the
	 * mount; it skips the unmount if the connection is already gone.
	 */
	fuse_session_unmount(exp->se);
	exp->mounted = false;
	td_info("fuse %s: unmounted", exp->path);
}

static void fx_destroy(struct fuse_export *exp)
{
	while (exp->free_ios) {
		struct fx_io *io = exp->free_ios;

		exp->free_ios = io->next;
		free(io);
	}
	if (exp->se)
		fuse_session_destroy(exp->se);
	free(exp->fbuf.mem);
	free(exp->path);
	free(exp);
}

struct fuse_export *fuse_export_new(struct td_loop *loop, struct td_vbd *vbd,
				    const char *path,
				    const struct fuse_export_opts *opts)
{
	struct fuse_export *exp;
	int rc;

	fuse_set_log_func(fx_log);
	exp = calloc(1, sizeof(*exp));
	if (!exp)
		return NULL;
	exp->loop = loop;
	exp->vbd = vbd;
	exp->size = td_vbd_size(vbd);
	exp->readonly = td_vbd_readonly(vbd) || (opts && opts->readonly);
	clock_gettime(CLOCK_REALTIME, &exp->mtime);
	exp->path = strdup(path);
	if (!exp->path) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = fx_prepare_path(path);
	if (rc)
		goto fail;
	rc = fx_mount(exp);
	if (rc)
		goto fail;
	td_info("fuse %s: serving %llu bytes%s", path,
		(unsigned long long)exp->size,
		exp->readonly ? " read-only" : "");
	return exp;
fail:
	if (exp->se)
		fx_unmount(exp);
	fx_destroy(exp);
	errno = -rc;
	return NULL;
}

const char *fuse_export_path(const struct fuse_export *exp)
{
	return exp->path;
}

static void fx_maybe_done(struct fuse_export *exp)
{
	td_loop_fn done = exp->done;

	if (!exp->stopping || exp->inflight || !done)
		return;
	fx_unmount(exp);
	exp->done = NULL;
	done(exp->loop, exp->done_data);
}

void fuse_export_shutdown(struct fuse_export *exp, td_loop_fn done, void *data)
{
	td_info("fuse %s: shutting down, %u requests in flight", exp->path,
		exp->inflight);
	exp->stopping = true;
	exp->done = done;
	exp->done_data = data;
	/* requests the kernel still holds fail once /dev/fuse is closed */
	if (exp->watch)
		td_watch_remove(exp->watch);
	exp->watch = NULL;
	fx_maybe_done(exp);
}

void fuse_export_free(struct fuse_export *exp)
{
	if (!exp)
		return;
	exp->done = NULL;
	fx_unmount(exp);
	if (exp->inflight) {
		td_warn("fuse %s: freed with %u requests in flight", exp->path,
			exp->inflight);
		exp->freed = true; /* the last completion frees it */
		return;
	}
	fx_destroy(exp);
}

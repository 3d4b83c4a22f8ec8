// SPDX-License-Identifier: GPL-2.0-only
/*
 * Raw images: a regular file or a block device holding the disk byte for
 * byte. Two drivers share this code: "aio" opens with O_DIRECT (the vbd
 * aligns requests to what the file needs, so there is no bounce buffer
 * here), "sync" goes through the page cache for filesystems that cannot do
 * O_DIRECT. Both do their I/O through the asynchronous engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "drivers.h"
#include "file-util.h"
#include "io.h"
#include "log.h"

#define RAW_DEFAULT_ALIGN 512

enum raw_stage {
	RAW_ZERO_FALLOCATE, /* write_zeroes: trying fallocate */
	RAW_ZERO_WRITE, /* write_zeroes: writing zeroes, chunk by chunk */
	RAW_ZERO_SYNC, /* write_zeroes with FUA: the final fdatasync */
};

/* One request's I/O; recycled through raw_priv.free. */
struct raw_io {
	struct td_iocb cb;
	struct td_image *img;
	struct td_request *req;
	struct raw_io *next_free;
	enum raw_stage stage;
	uint64_t zpos; /* write_zeroes fallback: next byte to write */
	struct iovec ziov;
};

struct raw_priv {
	int fd;
	bool bdev;
	uint64_t size;
	unsigned align;
	unsigned sector_size;
	bool rotational;
	struct raw_io *free;
};

static struct raw_io *raw_get(struct td_image *img, struct td_request *req)
{
	struct raw_priv *p = img->priv;
	struct raw_io *rio = p->free;

	if (rio)
		p->free = rio->next_free;
	else
		rio = malloc(sizeof(*rio));
	if (!rio) {
		td_err("%s: no memory for a %s request", img->name,
		       td_op_name(req->op));
		td_request_complete(img, req, -ENOMEM);
		return NULL;
	}
	memset(rio, 0, sizeof(*rio));
	rio->img = img;
	rio->req = req;
	rio->cb.fd = p->fd;
	rio->cb.data = rio;
	return rio;
}

static void raw_put(struct raw_io *rio, int err)
{
	struct td_image *img = rio->img;
	struct td_request *req = rio->req;
	struct raw_priv *p = img->priv;

	rio->next_free = p->free;
	p->free = rio;
	td_request_complete(img, req, err);
}

static void raw_zero_iov_tail(struct td_request *req, uint64_t from)
{
	int i;

	for (i = 0; i < req->iovcnt; i++) {
		struct iovec *v = &req->iov[i];

		if (from < v->iov_len)
			memset((char *)v->iov_base + from, 0,
			       v->iov_len - from);
		from = from > v->iov_len ? from - v->iov_len : 0;
	}
}

static void raw_rw_done(struct td_iocb *cb, long res)
{
	struct raw_io *rio = cb->data;
	struct td_request *req = rio->req;
	int err = 0;

	if (res < 0) {
		err = (int)res;
	} else if ((uint64_t)res < req->len) {
		/*
		 * A file whose size is not a multiple of the alignment ends
		 * inside the last block: like a block device, the rest of it
		 * reads as zeroes.
		 */
		if (cb->op == TD_IO_READ)
			raw_zero_iov_tail(req, (uint64_t)res);
		else
			err = -EIO;
	}
	if (err)
		td_err("%s: %s of %llu bytes at %llu: %s", rio->img->name,
		       td_op_name(req->op), (unsigned long long)req->len,
		       (unsigned long long)req->offset, strerror(-err));
	raw_put(rio, err);
}

static void raw_queue_rw(struct td_image *img, struct td_request *req,
			 enum td_io_op op)
{
	struct raw_io *rio = raw_get(img, req);

	if (!rio)
		return;
	rio->cb.op = op;
	rio->cb.offset = req->offset;
	rio->cb.iov = req->iov;
	rio->cb.iovcnt = req->iovcnt;
	if (op == TD_IO_WRITE && (req->flags & TD_REQ_FUA))
		rio->cb.flags = TD_IO_DSYNC;
	rio->cb.done = raw_rw_done;
	td_io_queue(img->io, &rio->cb);
}

static void raw_queue_read(struct td_image *img, struct td_request *req)
{
	raw_queue_rw(img, req, TD_IO_READ);
}

static void raw_queue_write(struct td_image *img, struct td_request *req)
{
	raw_queue_rw(img, req, TD_IO_WRITE);
}

static void raw_flush_done(struct td_iocb *cb, long res)
{
	struct raw_io *rio = cb->data;

	if (res < 0)
		td_err("%s: flush: %s", rio->img->name, strerror((int)-res));
	raw_put(rio, res < 0 ? (int)res : 0);
}

static void raw_flush(struct td_image *img, struct td_request *req)
{
	struct raw_io *rio = raw_get(img, req);

	if (!rio)
		return;
	rio->cb.op = TD_IO_FSYNC;
	rio->cb.done = raw_flush_done;
	td_io_queue(img->io, &rio->cb);
}

static void raw_queue_fallocate(struct raw_io *rio, int mode,
				void (*done)(struct td_iocb *, long))
{
	rio->cb.op = TD_IO_FALLOCATE;
	rio->cb.mode = mode;
	rio->cb.offset = rio->req->offset;
	rio->cb.len = rio->req->len;
	rio->cb.done = done;
	td_io_queue(rio->img->io, &rio->cb);
}

static void raw_discard_done(struct td_iocb *cb, long res)
{
	struct raw_io *rio = cb->data;

	/* discard is a hint: a file that cannot punch holes just keeps it */
	if (res == -EOPNOTSUPP)
		res = 0;
	if (res < 0)
		td_err("%s: discard of %llu bytes at %llu: %s", rio->img->name,
		       (unsigned long long)rio->req->len,
		       (unsigned long long)rio->req->offset,
		       strerror((int)-res));
	raw_put(rio, (int)res);
}

static void raw_discard(struct td_image *img, struct td_request *req)
{
	struct raw_io *rio = raw_get(img, req);

	if (rio)
		raw_queue_fallocate(rio,
				    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				    raw_discard_done);
}

static void raw_zero_next(struct raw_io *rio)
{
	struct td_request *req = rio->req;
	uint64_t left = req->offset + req->len - rio->zpos;

	rio->ziov.iov_base = (void *)td_zero_buf();
	rio->ziov.iov_len = left < TD_ZERO_BUF_SIZE ? left : TD_ZERO_BUF_SIZE;
	rio->cb.op = TD_IO_WRITE;
	rio->cb.offset = rio->zpos;
	rio->cb.iov = &rio->ziov;
	rio->cb.iovcnt = 1;
	rio->cb.flags = req->flags & TD_REQ_FUA ? TD_IO_DSYNC : 0;
	td_io_queue(rio->img->io, &rio->cb);
}

static void raw_zero_done(struct td_iocb *cb, long res)
{
	struct raw_io *rio = cb->data;
	struct td_request *req = rio->req;

	switch (rio->stage) {
	case RAW_ZERO_FALLOCATE:
		if (res == -EOPNOTSUPP) {
			if (req->flags & TD_REQ_FAST_ZERO) {
				raw_put(rio, -ENOTSUP);
				return;
			}
			if (!td_zero_buf()) {
				res = -errno;
				break;
			}
			rio->stage = RAW_ZERO_WRITE;
			rio->zpos = req->offset;
			raw_zero_next(rio);
			return;
		}
		if (res == 0 && (req->flags & TD_REQ_FUA)) {
			/* fallocate has no FUA flag; make the zeroes durable */
			rio->stage = RAW_ZERO_SYNC;
			rio->cb.op = TD_IO_FSYNC;
			td_io_queue(rio->img->io, &rio->cb);
			return;
		}
		break;
	case RAW_ZERO_WRITE:
		if (res < 0)
			break;
		rio->zpos += rio->ziov.iov_len;
		if (rio->zpos < req->offset + req->len) {
			raw_zero_next(rio);
			return;
		}
		res = 0;
		break;
	case RAW_ZERO_SYNC:
		break;
	}
	if (res < 0)
		td_err("%s: write_zeroes of %llu bytes at %llu: %s",
		       rio->img->name, (unsigned long long)req->len,
		       (unsigned long long)req->offset, strerror((int)-res));
	raw_put(rio, res < 0 ? (int)res : 0);
}

static void raw_write_zeroes(struct td_image *img, struct td_request *req)
{
	struct raw_io *rio = raw_get(img, req);
	int mode = FALLOC_FL_KEEP_SIZE;

	if (!rio)
		return;
	mode |= req->flags & TD_REQ_NO_HOLE ? FALLOC_FL_ZERO_RANGE :
					      FALLOC_FL_PUNCH_HOLE;
	rio->stage = RAW_ZERO_FALLOCATE;
	raw_queue_fallocate(rio, mode, raw_zero_done);
}

static void raw_block_status(struct td_image *img, struct td_request *req)
{
	struct raw_priv *p = img->priv;

	/* lseek is quick and never waits for data I/O: no need to queue it */
	if (p->bdev) {
		req->status.len = req->len;
		req->status.flags = 0;
	} else {
		td_file_block_status(p->fd, req->offset, req->len,
				     &req->status);
	}
	req->status.depth = img->depth;
	td_request_complete(img, req, 0);
}

static void raw_cache(struct td_image *img, struct td_request *req)
{
	struct raw_priv *p = img->priv;

	/* a hint: whether the kernel takes it is no concern of the client */
	posix_fadvise(p->fd, (off_t)req->offset, (off_t)req->len,
		      POSIX_FADV_WILLNEED);
	td_request_complete(img, req, 0);
}

static bool raw_rotational(dev_t rdev)
{
	char path[96], c = '0';
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/rotational",
		 major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f) {
		/* a partition: the queue belongs to the whole disk */
		snprintf(path, sizeof(path),
			 "/sys/dev/block/%u:%u/../queue/rotational",
			 major(rdev), minor(rdev));
		f = fopen(path, "re");
	}
	if (!f)
		return false;
	if (fread(&c, 1, 1, f) != 1)
		c = '0';
	fclose(f);
	return c == '1';
}

static int raw_probe_bdev(struct td_image *img, const char *path,
			  const struct stat *st)
{
	struct raw_priv *p = img->priv;
	int ssz = 0;

	if (ioctl(p->fd, BLKGETSIZE64, &p->size) < 0 ||
	    ioctl(p->fd, BLKSSZGET, &ssz) < 0) {
		int err = -errno;

		td_err("%s: cannot get the block device's size: %s", path,
		       strerror(-err));
		return err;
	}
	p->bdev = true;
	p->sector_size = ssz > 0 ? (unsigned)ssz : RAW_DEFAULT_ALIGN;
	p->rotational = raw_rotational(st->st_rdev);
	return 0;
}

/* What O_DIRECT needs on this file, as the kernel reports it. */
static unsigned raw_dio_align(int fd)
{
	struct statx stx;
	unsigned a;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN) || !stx.stx_dio_offset_align)
		return RAW_DEFAULT_ALIGN;
	a = stx.stx_dio_offset_align;
	return stx.stx_dio_mem_align > a ? stx.stx_dio_mem_align : a;
}

static bool raw_servable(const struct stat *st)
{
	return S_ISREG(st->st_mode) || S_ISBLK(st->st_mode);
}

static int raw_open_fd(const char *path, unsigned flags, bool direct)
{
	int oflags = O_CLOEXEC | O_NONBLOCK, fd, err;
	struct stat st;

	oflags |= flags & TD_OPEN_RDONLY ? O_RDONLY : O_RDWR;
	if (direct)
		oflags |= O_DIRECT;
	/* O_NONBLOCK: a FIFO given by mistake must not hang the open */
	fd = open(path, oflags);
	if (fd >= 0)
		return fd;
	err = -errno;
	if ((err == -EISDIR || err == -EINVAL) && !stat(path, &st) &&
	    !raw_servable(&st)) {
		td_err("%s: not a regular file or block device", path);
		return -EINVAL;
	}
	if (err == -EINVAL && direct)
		td_err("%s: the filesystem refuses O_DIRECT; open it as sync:%s instead",
		       path, path);
	else
		td_err("%s: cannot open: %s", path, strerror(-err));
	return err;
}

static int raw_open_common(struct td_image *img, const char *path,
			   unsigned flags, bool direct)
{
	struct raw_priv *p = img->priv;
	struct stat st;
	int err;

	p->fd = raw_open_fd(path, flags, direct);
	if (p->fd < 0)
		return p->fd;
	if (fstat(p->fd, &st) < 0) {
		err = -errno;
		td_err("%s: cannot stat: %s", path, strerror(-err));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		err = raw_probe_bdev(img, path, &st);
		if (err)
			goto fail;
		p->align = direct ? p->sector_size : 1;
	} else if (S_ISREG(st.st_mode)) {
		/*
		 * Disks are whole sectors: a file that ends inside one is
		 * rounded up, as qemu does, and its tail reads as zeroes
		 * (raw_rw_done), so no byte of it is out of reach.
		 */
		p->size = ((uint64_t)st.st_size + RAW_DEFAULT_ALIGN - 1) &
			  ~(uint64_t)(RAW_DEFAULT_ALIGN - 1);
		p->sector_size = RAW_DEFAULT_ALIGN;
		p->align = direct ? raw_dio_align(p->fd) : 1;
	} else {
		td_err("%s: not a regular file or block device", path);
		err = -EINVAL;
		goto fail;
	}
	if (fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		err = -errno;
		td_err("%s: fcntl: %s", path, strerror(-err));
		goto fail;
	}
	return 0;

fail:
	close(p->fd);
	p->fd = -1;
	return err;
}

static int raw_aio_open(struct td_image *img, const char *path, unsigned flags)
{
	return raw_open_common(img, path, flags, !(flags & TD_OPEN_BUFFERED));
}

static int raw_sync_open(struct td_image *img, const char *path, unsigned flags)
{
	return raw_open_common(img, path, flags, false);
}

static void raw_close(struct td_image *img)
{
	struct raw_priv *p = img->priv;

	while (p->free) {
		struct raw_io *rio = p->free;

		p->free = rio->next_free;
		free(rio);
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

static void raw_info(struct td_image *img, struct td_image_info *info)
{
	struct raw_priv *p = img->priv;

	info->size = p->size;
	info->sector_size = p->sector_size;
	info->align = p->align;
	info->can_discard = true;
	info->can_zero = true;
	info->rotational = p->rotational;
	info->parent = NULL;
}

/* preallocation=off|falloc|full, as qemu-img's raw driver */
static int raw_create_prealloc(const char *path, const char *mode, int fd,
			       uint64_t size)
{
	const void *zero;
	uint64_t off;
	size_t n;
	ssize_t w;

	if (!strcmp(mode, "off"))
		return 0;
	if (!strcmp(mode, "falloc")) {
		if (size && fallocate(fd, 0, 0, (off_t)size) < 0) {
			int err = -errno;

			td_err("%s: cannot preallocate %llu bytes: %s", path,
			       (unsigned long long)size, strerror(-err));
			return err;
		}
		return 0;
	}
	if (strcmp(mode, "full")) {
		td_err("%s: preallocation=%s: expected off, falloc or full",
		       path, mode);
		return -EINVAL;
	}
	zero = td_zero_buf();
	if (!zero)
		return -errno;
	for (off = 0; off < size; off += (uint64_t)w) {
		n = size - off < TD_ZERO_BUF_SIZE ? size - off :
						    TD_ZERO_BUF_SIZE;
		w = pwrite(fd, zero, n, (off_t)off);
		if (w <= 0) {
			int err = w < 0 ? -errno : -EIO;

			td_err("%s: cannot write zeroes at %llu: %s", path,
			       (unsigned long long)off, strerror(-err));
			return err;
		}
	}
	return 0;
}

static int raw_create(const char *path, const struct td_create_opts *opts)
{
	const char *prealloc = "off";
	struct stat st;
	int i, fd, err = 0;

	if (opts->backing) {
		td_err("%s: raw images cannot have a backing file", path);
		return -ENOTSUP;
	}
	for (i = 0; i < opts->nopts; i++) {
		if (strcmp(opts->keys[i], "preallocation")) {
			td_err("%s: raw images have no option '%s' (known: preallocation)",
			       path, opts->keys[i]);
			return -EINVAL;
		}
		prealloc = opts->vals[i];
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		td_err("%s: cannot create: %s", path, strerror(-err));
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		td_err("%s: cannot stat: %s", path, strerror(-err));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		/* a device is as large as it is: it just has to be enough */
		uint64_t dsize = 0;

		if (S_ISBLK(st.st_mode) &&
		    !ioctl(fd, BLKGETSIZE64, &dsize) && dsize >= opts->size)
			goto out;
		td_err("%s: not a regular file, or a device smaller than %llu bytes",
		       path, (unsigned long long)opts->size);
		err = -EINVAL;
		goto out;
	}
	/* like qemu-img create: whatever the file held is gone */
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)opts->size) < 0) {
		err = -errno;
		td_err("%s: cannot set the size to %llu bytes: %s", path,
		       (unsigned long long)opts->size, strerror(-err));
		goto out;
	}
	err = raw_create_prealloc(path, prealloc, fd, opts->size);
out:
	close(fd);
	return err;
}

static void raw_describe(struct td_image *img, struct json_object *out)
{
	struct raw_priv *p = img->priv;

	json_object_object_add(out, "block-device",
			       json_object_new_boolean(p->bdev));
}

static int raw_resize(struct td_image *img, uint64_t size)
{
	struct raw_priv *p = img->priv;

	if (p->bdev) {
		td_err("%s: a block device cannot be resized", img->path);
		return -ENOTSUP;
	}
	if (ftruncate(p->fd, (off_t)size) < 0) {
		int err = -errno;

		td_err("%s: cannot resize to %llu bytes: %s", img->path,
		       (unsigned long long)size, strerror(-err));
		return err;
	}
	p->size = size;
	img->info.size = size;
	return 0;
}

const struct td_driver td_driver_aio = {
	.name = "aio",
	.priv_size = sizeof(struct raw_priv),
	.open = raw_aio_open,
	.close = raw_close,
	.info = raw_info,
	.queue_read = raw_queue_read,
	.queue_write = raw_queue_write,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.create = raw_create,
	.describe = raw_describe,
	.resize = raw_resize,
};

const struct td_driver td_driver_sync = {
	.name = "sync",
	.priv_size = sizeof(struct raw_priv),
	.open = raw_sync_open,
	.close = raw_close,
	.info = raw_info,
	.queue_read = raw_queue_read,
	.queue_write = raw_queue_write,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.cache = raw_cache,
	.create = raw_create,
	.describe = raw_describe,
	.resize = raw_resize,
};

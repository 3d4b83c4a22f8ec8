// SPDX-License-Identifier: GPL-2.0-only
/*
 * Virtual disks of the pool: "vd:ID" (or "vd:ID?db=PATH" for a database
 * other than $VDISK_DB or the default). The extent map is read once, at
 * open, and the disk is served as its runs laid end to end; a request that
 * spans runs is split, each piece going through the async engine to its
 * device (one descriptor per distinct device, O_DIRECT unless buffered).
 * Nothing outside the map is ever read or written.
 *
 * Expiry is checked at open only: an expired disk is refused, but a disk
 * that expires while open keeps being served until its next open (the
 * pool does not hand out the extents of a disk attached with
 * add_vbd_to_dom, so that never serves another disk's space).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers.h"
#include "file-util.h"
#include "io.h"
#include "log.h"
#include "vdisk.h"

struct vd_dev {
	char *path;
	int fd;
};

/* One run: bytes [off, off + len) of the disk at dev_off on a device. */
struct vd_run {
	uint64_t off, len, dev_off;
	int dev;
};

struct vd_priv {
	struct vd_dev *devs;
	int ndevs;
	struct vd_run *runs;
	size_t nruns;
	uint64_t size;
	unsigned align, sector_size;
};

enum vd_stage { VD_MAIN, VD_ZERO_WRITE, VD_SYNC };

struct vd_req;

/* One piece of a request: one device, one contiguous range. */
struct vd_sub {
	struct td_iocb cb;
	struct vd_req *parent;
	int dev;
	enum vd_stage stage;
	uint64_t pos, end; /* write_zeroes fallback: device bytes */
	struct iovec ziov;
};

struct vd_req {
	struct td_image *img;
	struct td_request *req;
	int pending, err;
	struct iovec *iovs; /* the slices of req->iov, for split requests */
	struct vd_sub subs[];
};

/* The index of the run holding disk byte off (off < size). */
static size_t vd_find(const struct vd_priv *p, uint64_t off)
{
	size_t lo = 0, hi = p->nruns;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (p->runs[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static size_t vd_count(const struct vd_priv *p, uint64_t off, uint64_t len)
{
	size_t i = vd_find(p, off), n = 0;
	uint64_t end = off + len;

	for (; i < p->nruns && p->runs[i].off < end; i++)
		n++;
	return n;
}

static void vd_finish(struct vd_req *r)
{
	struct td_image *img = r->img;
	struct td_request *req = r->req;
	int err = r->err;

	free(r->iovs);
	free(r);
	td_request_complete(img, req, err);
}

static void vd_sub_end(struct vd_sub *s, long res)
{
	struct vd_req *r = s->parent;

	if (res < 0 && !r->err) {
		struct vd_priv *p = r->img->priv;

		td_err("%s: %s at %llu on %s: %s", r->img->name,
		       td_op_name(r->req->op), (unsigned long long)s->cb.offset,
		       p->devs[s->dev].path, strerror((int)-res));
		r->err = (int)res;
	}
	if (--r->pending == 0)
		vd_finish(r);
}

static struct vd_req *vd_req_new(struct td_image *img, struct td_request *req,
				 size_t nsubs)
{
	struct vd_req *r = calloc(1, sizeof(*r) + nsubs * sizeof(r->subs[0]));
	size_t i;

	if (!r) {
		td_err("%s: no memory for a %s request", img->name,
		       td_op_name(req->op));
		td_request_complete(img, req, -ENOMEM);
		return NULL;
	}
	r->img = img;
	r->req = req;
	r->pending = (int)nsubs;
	for (i = 0; i < nsubs; i++) {
		r->subs[i].parent = r;
		r->subs[i].cb.data = &r->subs[i];
	}
	return r;
}

/* Copy the iovecs covering [skip, skip + len) of req's buffers to out. */
static int vd_slice(const struct td_request *req, uint64_t skip, uint64_t len,
		    struct iovec *out)
{
	int i, n = 0;

	for (i = 0; i < req->iovcnt && len; i++) {
		const struct iovec *v = &req->iov[i];
		uint64_t take;

		if (skip >= v->iov_len) {
			skip -= v->iov_len;
			continue;
		}
		take = v->iov_len - skip < len ? v->iov_len - skip : len;
		out[n].iov_base = (char *)v->iov_base + skip;
		out[n].iov_len = take;
		n++;
		len -= take;
		skip = 0;
	}
	return n;
}

static void vd_rw_done(struct td_iocb *cb, long res)
{
	struct vd_sub *s = cb->data;
	uint64_t want = 0;
	int i;

	for (i = 0; i < cb->iovcnt; i++)
		want += cb->iov[i].iov_len;
	/* a partition file cut short under the pool: the map is wrong */
	if (res >= 0 && (uint64_t)res != want)
		res = -EIO;
	vd_sub_end(s, res);
}

static void vd_queue_rw(struct td_image *img, struct td_request *req,
			enum td_io_op op)
{
	struct vd_priv *p = img->priv;
	size_t n = vd_count(p, req->offset, req->len), i, first;
	uint64_t pos = req->offset, end = req->offset + req->len;
	struct iovec *iov;
	struct vd_req *r;

	r = vd_req_new(img, req, n);
	if (!r)
		return;
	if (n > 1) {
		/* each piece needs at most all of the iovecs plus one split */
		r->iovs = calloc(n * (size_t)(req->iovcnt + 1), sizeof(*iov));
		if (!r->iovs) {
			r->pending = 0;
			r->err = -ENOMEM;
			vd_finish(r);
			return;
		}
	}
	first = vd_find(p, pos);
	for (i = 0; i < n; i++) {
		const struct vd_run *run = &p->runs[first + i];
		struct vd_sub *s = &r->subs[i];
		uint64_t len = run->off + run->len - pos;

		if (len > end - pos)
			len = end - pos;
		s->cb.op = op;
		s->dev = run->dev;
		s->cb.fd = p->devs[run->dev].fd;
		s->cb.offset = run->dev_off + (pos - run->off);
		s->cb.len = len;
		if (n == 1) {
			s->cb.iov = req->iov;
			s->cb.iovcnt = req->iovcnt;
		} else {
			iov = r->iovs + i * (size_t)(req->iovcnt + 1);
			s->cb.iov = iov;
			s->cb.iovcnt =
				vd_slice(req, pos - req->offset, len, iov);
		}
		if (op == TD_IO_WRITE && (req->flags & TD_REQ_FUA))
			s->cb.flags = TD_IO_DSYNC;
		s->cb.done = vd_rw_done;
		pos += len;
	}
	for (i = 0; i < n; i++)
		td_io_queue(img->io, &r->subs[i].cb);
}

static void vd_queue_read(struct td_image *img, struct td_request *req)
{
	vd_queue_rw(img, req, TD_IO_READ);
}

static void vd_queue_write(struct td_image *img, struct td_request *req)
{
	vd_queue_rw(img, req, TD_IO_WRITE);
}

static void vd_flush_done(struct td_iocb *cb, long res)
{
	vd_sub_end(cb->data, res);
}

static void vd_flush(struct td_image *img, struct td_request *req)
{
	struct vd_priv *p = img->priv;
	struct vd_req *r = vd_req_new(img, req, (size_t)p->ndevs);
	int i;

	if (!r)
		return;
	for (i = 0; i < p->ndevs; i++) {
		r->subs[i].dev = i;
		r->subs[i].cb.op = TD_IO_FSYNC;
		r->subs[i].cb.fd = p->devs[i].fd;
		r->subs[i].cb.done = vd_flush_done;
	}
	for (i = 0; i < p->ndevs; i++)
		td_io_queue(img->io, &r->subs[i].cb);
}

static void vd_zero_next(struct vd_sub *s)
{
	uint64_t left = s->end - s->pos;

	s->ziov.iov_base = (void *)td_zero_buf();
	s->ziov.iov_len = left < TD_ZERO_BUF_SIZE ? left : TD_ZERO_BUF_SIZE;
	s->cb.op = TD_IO_WRITE;
	s->cb.offset = s->pos;
	s->cb.iov = &s->ziov;
	s->cb.iovcnt = 1;
	td_io_queue(s->parent->img->io, &s->cb);
}

static void vd_zero_done(struct td_iocb *cb, long res)
{
	struct vd_sub *s = cb->data;
	struct td_request *req = s->parent->req;

	switch (s->stage) {
	case VD_MAIN:
		if (req->op == TD_OP_DISCARD) {
			/* a hint: a device that cannot discard keeps the data */
			if (res == -EOPNOTSUPP)
				res = 0;
			break;
		}
		if (res == -EOPNOTSUPP) {
			if (req->flags & TD_REQ_FAST_ZERO) {
				res = -ENOTSUP;
				break;
			}
			if (!td_zero_buf()) {
				res = -ENOMEM;
				break;
			}
			s->stage = VD_ZERO_WRITE;
			s->pos = cb->offset;
			s->end = cb->offset + cb->len;
			vd_zero_next(s);
			return;
		}
		if (res == 0 && (req->flags & TD_REQ_FUA))
			goto sync;
		break;
	case VD_ZERO_WRITE:
		if (res < 0)
			break;
		s->pos += s->ziov.iov_len;
		if (s->pos < s->end) {
			vd_zero_next(s);
			return;
		}
		res = 0;
		if (req->flags & TD_REQ_FUA)
			goto sync;
		break;
	case VD_SYNC:
		break;
	}
	vd_sub_end(s, res);
	return;
sync:
	/* fallocate has no FUA: make the zeroes durable before answering */
	s->stage = VD_SYNC;
	cb->op = TD_IO_FSYNC;
	td_io_queue(s->parent->img->io, cb);
}

static void vd_queue_fallocate(struct td_image *img, struct td_request *req,
			       int mode)
{
	struct vd_priv *p = img->priv;
	size_t n = vd_count(p, req->offset, req->len), i, first;
	uint64_t pos = req->offset, end = req->offset + req->len;
	struct vd_req *r = vd_req_new(img, req, n);

	if (!r)
		return;
	first = vd_find(p, pos);
	for (i = 0; i < n; i++) {
		const struct vd_run *run = &p->runs[first + i];
		struct vd_sub *s = &r->subs[i];
		uint64_t len = run->off + run->len - pos;

		if (len > end - pos)
			len = end - pos;
		s->cb.op = TD_IO_FALLOCATE;
		s->cb.mode = mode;
		s->dev = run->dev;
		s->cb.fd = p->devs[run->dev].fd;
		s->cb.offset = run->dev_off + (pos - run->off);
		s->cb.len = len;
		s->cb.done = vd_zero_done;
		pos += len;
	}
	for (i = 0; i < n; i++)
		td_io_queue(img->io, &r->subs[i].cb);
}

static void vd_discard(struct td_image *img, struct td_request *req)
{
	vd_queue_fallocate(img, req,
			   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
}

static void vd_write_zeroes(struct td_image *img, struct td_request *req)
{
	int mode = FALLOC_FL_KEEP_SIZE;

	mode |= req->flags & TD_REQ_NO_HOLE ? FALLOC_FL_ZERO_RANGE :
					      FALLOC_FL_PUNCH_HOLE;
	vd_queue_fallocate(img, req, mode);
}

static void vd_block_status(struct td_image *img, struct td_request *req)
{
	/* the pool cannot tell what a disk's owner wrote: all of it is data */
	req->status.len = req->len;
	req->status.flags = 0;
	req->status.depth = img->depth;
	td_request_complete(img, req, 0);
}

/* What O_DIRECT needs on fd: the sector size, or the filesystem's say. */
static unsigned vd_dio_align(int fd, const struct stat *st, unsigned *ssz)
{
	struct statx stx;
	int bs = 0;

	*ssz = VDISK_SECTOR;
	if (S_ISBLK(st->st_mode)) {
		if (!ioctl(fd, BLKSSZGET, &bs) && bs > 0)
			*ssz = (unsigned)bs;
		return *ssz;
	}
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN) || !stx.stx_dio_offset_align)
		return VDISK_SECTOR;
	return stx.stx_dio_mem_align > stx.stx_dio_offset_align ?
		       stx.stx_dio_mem_align :
		       stx.stx_dio_offset_align;
}

static int vd_open_dev(struct td_image *img, struct vd_dev *d, unsigned flags)
{
	struct vd_priv *p = img->priv;
	int oflags = O_CLOEXEC, err;
	unsigned align, ssz;
	struct stat st;

	oflags |= flags & TD_OPEN_RDONLY ? O_RDONLY : O_RDWR;
	if (!(flags & TD_OPEN_BUFFERED))
		oflags |= O_DIRECT;
	d->fd = open(d->path, oflags);
	if (d->fd < 0) {
		err = -errno;
		td_err("%s: cannot open pool device %s: %s", img->name, d->path,
		       strerror(-err));
		return err;
	}
	if (fstat(d->fd, &st) < 0 ||
	    (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))) {
		td_err("%s: pool device %s is not a block device or file",
		       img->name, d->path);
		return -EINVAL;
	}
	align = vd_dio_align(d->fd, &st, &ssz);
	if (flags & TD_OPEN_BUFFERED)
		align = 1;
	if (align > p->align)
		p->align = align;
	if (ssz > p->sector_size)
		p->sector_size = ssz;
	return 0;
}

/* Runs in disk order, with each distinct device path opened once. */
static int vd_build(struct td_image *img, const struct vdisk_run *runs,
		    size_t n)
{
	struct vd_priv *p = img->priv;
	size_t i;
	int j;

	p->runs = calloc(n, sizeof(*p->runs));
	p->devs = calloc(n, sizeof(*p->devs));
	if (!p->runs || !p->devs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		for (j = 0; j < p->ndevs; j++)
			if (!strcmp(p->devs[j].path, runs[i].device))
				break;
		if (j == p->ndevs) {
			p->devs[j].path = strdup(runs[i].device);
			p->devs[j].fd = -1;
			if (!p->devs[j].path)
				return -ENOMEM;
			p->ndevs++;
		}
		p->runs[i].off = p->size;
		p->runs[i].len = runs[i].sectors * VDISK_SECTOR;
		p->runs[i].dev_off = runs[i].start * VDISK_SECTOR;
		p->runs[i].dev = j;
		p->size += p->runs[i].len;
	}
	p->nruns = n;
	return 0;
}

static void vd_close(struct td_image *img)
{
	struct vd_priv *p = img->priv;
	int i;

	for (i = 0; p->devs && i < p->ndevs; i++) {
		if (p->devs[i].fd >= 0)
			close(p->devs[i].fd);
		free(p->devs[i].path);
	}
	free(p->devs);
	free(p->runs);
	memset(p, 0, sizeof(*p));
}

/* ID or ID?db=PATH */
static int vd_parse(const char *path, int64_t *id, const char **db)
{
	char *end;

	errno = 0;
	*id = strtoll(path, &end, 10);
	*db = NULL;
	if (errno || end == path || *id <= 0)
		return -EINVAL;
	if (!*end)
		return 0;
	if (strncmp(end, "?db=", 4) || !end[4])
		return -EINVAL;
	*db = end + 4;
	return 0;
}

static int vd_open(struct td_image *img, const char *path, unsigned flags)
{
	struct vd_priv *p = img->priv;
	struct vdisk_run *runs = NULL;
	struct vdisk_db *db;
	const char *dbpath;
	size_t n = 0;
	int64_t id;
	int err, i;

	if (vd_parse(path, &id, &dbpath)) {
		td_err("%s: expected vd:ID or vd:ID?db=PATH", img->name);
		return -EINVAL;
	}
	db = vdisk_new();
	if (!db)
		return -ENOMEM;
	err = vdisk_open(db, dbpath, VDISK_OPEN_EXISTING);
	if (!err)
		err = vdisk_lookup(db, id, 0, &runs, &n);
	if (err)
		td_err("%s: %s", img->name, vdisk_errmsg(db));
	vdisk_free(db);
	if (err)
		return err;
	p->align = VDISK_SECTOR;
	p->sector_size = VDISK_SECTOR;
	err = vd_build(img, runs, n);
	vdisk_runs_free(runs, n);
	for (i = 0; !err && !(flags & TD_OPEN_PROBE) && i < p->ndevs; i++)
		err = vd_open_dev(img, &p->devs[i], flags);
	if (err) {
		if (err == -ENOMEM)
			td_err("%s: out of memory for the extent map",
			       img->name);
		vd_close(img);
		return err;
	}
	td_debug("%s: %llu bytes in %zu runs on %d devices", img->name,
		 (unsigned long long)p->size, p->nruns, p->ndevs);
	return 0;
}

static void vd_info(struct td_image *img, struct td_image_info *info)
{
	struct vd_priv *p = img->priv;

	info->size = p->size;
	info->sector_size = p->sector_size;
	info->align = p->align;
	info->can_discard = true;
	info->can_zero = true;
	info->rotational = false;
	info->parent = NULL;
}

const struct td_driver td_driver_vd = {
	.name = "vd",
	.priv_size = sizeof(struct vd_priv),
	.open = vd_open,
	.close = vd_close,
	.info = vd_info,
	.queue_read = vd_queue_read,
	.queue_write = vd_queue_write,
	.flush = vd_flush,
	.discard = vd_discard,
	.write_zeroes = vd_write_zeroes,
	.block_status = vd_block_status,
};

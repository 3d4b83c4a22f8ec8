// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 request plumbing: operation objects, the metadata lock, iovec
 * slicing, and the pieces of I/O a request is split into (data on the
 * image, compressed clusters, reads from the layers below).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

#define container_of(p, type, m) ((type *)((char *)(p)-offsetof(type, m)))

void qcow2_op_waiter(struct qcow2_waiter *w, int err)
{
	struct qcow2_op *op = container_of(w, struct qcow2_op, w);

	if (err) {
		if (!op->err)
			op->err = err;
		op->walking = false;
		if (!op->pending)
			op->io_done(op);
		return;
	}
	op->step(op);
}

struct qcow2_op *qcow2_op_new(struct td_image *img, struct td_request *req)
{
	struct qcow2_priv *p = img->priv;
	struct qcow2_op *op = p->free_ops;

	if (op)
		p->free_ops = op->lnext;
	else
		op = malloc(sizeof(*op));
	if (!op) {
		td_err("%s: no memory for a %s request", img->path,
		       req ? td_op_name(req->op) : "metadata writeback");
		if (req)
			td_request_complete(img, req, -ENOMEM);
		return NULL;
	}
	memset(op, 0, sizeof(*op));
	op->img = img;
	op->req = req;
	op->nclust = 1;
	op->w.fn = qcow2_op_waiter;
	if (req) {
		op->pos = req->offset;
		op->end = req->offset + req->len;
	}
	return op;
}

void qcow2_op_end(struct qcow2_op *op, int err)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;

	if (op->buf)
		td_buf_put(op->buf, op->buf_len);
	op->buf = NULL;
	if (op->locked)
		qcow2_unlock(op);
	if (op->req)
		td_request_complete(img, op->req, err);
	op->lnext = p->free_ops;
	p->free_ops = op;
}

void qcow2_ops_free(struct qcow2_priv *p)
{
	while (p->free_ops) {
		struct qcow2_op *op = p->free_ops;

		p->free_ops = op->lnext;
		free(op);
	}
}

void qcow2_op_wait(struct qcow2_op *op, void (*step)(struct qcow2_op *op))
{
	op->step = step;
}

static void op_deferred(struct td_loop *loop, void *data)
{
	struct qcow2_op *op = data;

	op->step(op);
}

void qcow2_op_defer(struct qcow2_op *op, void (*step)(struct qcow2_op *op))
{
	op->step = step;
	td_loop_defer(op->img->loop, &op->defer, op_deferred, op);
}

void qcow2_seg_finish(struct qcow2_op *op, int err)
{
	if (err && !op->err)
		op->err = err;
	if (--op->pending == 0 && !op->walking)
		op->io_done(op);
}

void qcow2_lock(struct qcow2_op *op, void (*step)(struct qcow2_op *op))
{
	struct qcow2_priv *p = op->img->priv;

	op->step = step;
	if (!p->locked) {
		p->locked = true;
		op->locked = true;
		step(op);
		return;
	}
	op->lnext = NULL;
	if (p->lockq_tail)
		p->lockq_tail->lnext = op;
	else
		p->lockq_head = op;
	p->lockq_tail = op;
}

void qcow2_unlock(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	struct qcow2_op *next = p->lockq_head;

	op->locked = false;
	if (!next) {
		p->locked = false;
		return;
	}
	p->lockq_head = next->lnext;
	if (!p->lockq_head)
		p->lockq_tail = NULL;
	next->locked = true;
	/* from the loop: a long queue must not recurse */
	qcow2_op_defer(next, next->step);
}

int qcow2_iov_slice(const struct iovec *iov, int cnt, uint64_t off,
		    uint64_t len, struct iovec **out, struct iovec *small,
		    int nsmall)
{
	struct iovec *v = small;
	int i, n = 0;

	for (i = 0; i < cnt && off >= iov[i].iov_len; i++)
		off -= iov[i].iov_len;
	if (cnt - i > nsmall) {
		v = malloc(sizeof(*v) * (cnt - i));
		if (!v)
			return -ENOMEM;
	}
	for (; i < cnt && len; i++) {
		uint64_t take = iov[i].iov_len - off;

		if (take > len)
			take = len;
		v[n].iov_base = (char *)iov[i].iov_base + off;
		v[n].iov_len = take;
		n++;
		len -= take;
		off = 0;
	}
	*out = v;
	return n;
}

static void iov_walk(const struct iovec *iov, int cnt, uint64_t off,
		     void *buf, uint64_t len, int mode)
{
	char *b = buf;
	int i;

	for (i = 0; i < cnt && len; i++) {
		uint64_t take;
		char *base;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		base = (char *)iov[i].iov_base + off;
		if (mode == 0)
			memcpy(base, b, take);
		else if (mode == 1)
			memcpy(b, base, take);
		else
			memset(base, 0, take);
		if (b)
			b += take;
		len -= take;
		off = 0;
	}
}

void qcow2_iov_from_buf(const struct iovec *iov, int cnt, uint64_t off,
			const void *src, uint64_t len)
{
	iov_walk(iov, cnt, off, (void *)src, len, 0);
}

void qcow2_iov_to_buf(const struct iovec *iov, int cnt, uint64_t off,
		      void *dst, uint64_t len)
{
	iov_walk(iov, cnt, off, dst, len, 1);
}

void qcow2_iov_memset(const struct iovec *iov, int cnt, uint64_t off,
		      uint64_t len)
{
	iov_walk(iov, cnt, off, NULL, len, 2);
}

static uint64_t iov_total(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

static struct qcow2_seg *seg_new(struct qcow2_op *op, const struct iovec *iov,
				 int iovcnt)
{
	struct qcow2_seg *s = calloc(1, sizeof(*s));
	int n;

	if (!s)
		return NULL;
	s->op = op;
	n = qcow2_iov_slice(iov, iovcnt, 0, iov_total(iov, iovcnt), &s->iov,
			    s->small, 4);
	if (n < 0) {
		free(s);
		return NULL;
	}
	s->iovcnt = n;
	return s;
}

static void seg_free(struct qcow2_seg *s)
{
	if (s->iov != s->small)
		free(s->iov);
	if (s->bounce)
		td_buf_put(s->bounce, s->blen);
	free(s);
}

static void seg_nomem(struct qcow2_op *op)
{
	td_err("%s: no memory for a %s request", op->img->path,
	       td_op_name(op->req ? op->req->op : TD_OP_WRITE));
	op->pending++;
	qcow2_seg_finish(op, -ENOMEM);
}

static void parent_done(struct td_request *sub, int err)
{
	struct qcow2_seg *s = sub->io_data;
	struct qcow2_op *op = s->op;

	if (!err && s->bounce)
		qcow2_iov_from_buf(s->iov, s->iovcnt, 0,
				   (char *)s->bounce + s->skip, s->want);
	seg_free(s);
	qcow2_seg_finish(op, err);
}

void qcow2_parent_read(struct qcow2_op *op, uint64_t goff, uint64_t len,
		       const struct iovec *iov, int iovcnt)
{
	struct td_image *img = op->img, *parent = img->parent;
	uint64_t psize = parent ? parent->info.size : 0, in, palign;
	struct qcow2_seg *s;
	int i;
	bool bounce;

	/* the parent may be shorter than this image: zeroes past its end */
	in = goff >= psize ? 0 : psize - goff < len ? psize - goff : len;
	if (in < len)
		qcow2_iov_memset(iov, iovcnt, in, len - in);
	if (!in)
		return;
	s = seg_new(op, iov, iovcnt);
	if (!s) {
		seg_nomem(op);
		return;
	}
	palign = parent->info.align ? parent->info.align : 1;
	bounce = goff % palign || in % palign;
	for (i = 0; i < s->iovcnt && !bounce; i++)
		bounce = (uintptr_t)s->iov[i].iov_base % palign ||
			 s->iov[i].iov_len % palign;
	s->sub.op = TD_OP_READ;
	if (bounce) {
		uint64_t lo = goff / palign * palign;
		uint64_t hi = qcow2_align_up(goff + in, palign);

		s->blen = hi - lo;
		s->bounce = td_buf_get(s->blen);
		if (!s->bounce) {
			seg_free(s);
			seg_nomem(op);
			return;
		}
		s->skip = goff - lo;
		s->want = in;
		s->biov.iov_base = s->bounce;
		s->biov.iov_len = s->blen;
		s->sub.offset = lo;
		s->sub.len = s->blen;
		s->sub.iov = &s->biov;
		s->sub.iovcnt = 1;
	} else {
		uint64_t n = 0;

		/* cut the slice down to what the parent holds */
		for (i = 0; i < s->iovcnt; i++) {
			if (n + s->iov[i].iov_len >= in) {
				s->iov[i].iov_len = in - n;
				s->iovcnt = i + 1;
				break;
			}
			n += s->iov[i].iov_len;
		}
		s->sub.offset = goff;
		s->sub.len = in;
		s->sub.iov = s->iov;
		s->sub.iovcnt = s->iovcnt;
	}
	s->sub.io_done = parent_done;
	s->sub.io_data = s;
	op->pending++;
	td_image_forward(img, &s->sub);
}

static void data_done(struct td_iocb *cb, long res)
{
	struct qcow2_seg *s = cb->data;
	struct qcow2_op *op = s->op;
	uint64_t len = iov_total(s->iov, s->iovcnt);
	int err = 0;

	if (res < 0) {
		err = (int)res;
	} else if ((uint64_t)res < len) {
		if (cb->op == TD_IO_READ)
			qcow2_iov_memset(s->iov, s->iovcnt, (uint64_t)res,
					 len - (uint64_t)res);
		else
			err = -EIO;
	}
	if (err)
		td_err("%s: %s of %llu bytes at host offset %llu: %s",
		       op->img->path, cb->op == TD_IO_READ ? "read" : "write",
		       (unsigned long long)len, (unsigned long long)cb->offset,
		       strerror(-err));
	seg_free(s);
	qcow2_seg_finish(op, err);
}

void qcow2_data_io(struct qcow2_op *op, bool write, uint64_t host,
		   const struct iovec *iov, int iovcnt, unsigned flags)
{
	struct qcow2_priv *p = op->img->priv;
	struct qcow2_seg *s = seg_new(op, iov, iovcnt);

	if (!s) {
		seg_nomem(op);
		return;
	}
	s->cb.op = write ? TD_IO_WRITE : TD_IO_READ;
	s->cb.fd = p->data_fd;
	s->cb.flags = flags;
	s->cb.offset = host;
	s->cb.iov = s->iov;
	s->cb.iovcnt = s->iovcnt;
	s->cb.done = data_done;
	s->cb.data = s;
	op->pending++;
	td_io_queue(op->img->io, &s->cb);
}

static void compressed_done(struct td_iocb *cb, long res)
{
	struct qcow2_seg *s = cb->data;
	struct qcow2_op *op = s->op;
	struct qcow2_priv *p = op->img->priv;
	void *out = NULL;
	int err = res < 0 ? (int)res : 0;

	if (!err && (uint64_t)res < s->skip + s->csize) {
		/* the tail past end of file: the last sector may be short */
		memset((char *)s->bounce + res, 0, s->blen - (uint64_t)res);
	}
	if (!err) {
		out = td_buf_get(p->cluster_size);
		err = out ? qcow2_decompress(p, (char *)s->bounce + s->skip,
					     s->csize, out, p->cluster_size) :
			    -ENOMEM;
	}
	if (err)
		td_err("%s: compressed cluster at host offset %llu: %s",
		       op->img->path,
		       (unsigned long long)(cb->offset + s->skip),
		       strerror(-err));
	else
		qcow2_iov_from_buf(s->iov, s->iovcnt, 0,
				   (char *)out + s->want, iov_total(s->iov,
								    s->iovcnt));
	if (out)
		td_buf_put(out, p->cluster_size);
	seg_free(s);
	qcow2_seg_finish(op, err);
}

void qcow2_compressed_read(struct qcow2_op *op, uint64_t entry,
			   uint64_t in_off, const struct iovec *iov,
			   int iovcnt)
{
	struct qcow2_priv *p = op->img->priv;
	uint32_t x = 62 - (p->cluster_bits - 8);
	uint64_t coff = entry & ((1ull << x) - 1);
	uint64_t nsec = ((entry & ~(QCOW2_OFLAG_COPIED | QCOW2_OFLAG_COMPRESSED)) >>
			 x) + 1;
	uint64_t csize = nsec * 512 - (coff & 511), lo, hi;
	uint64_t limit = p->alloc_next > p->file_size ? p->alloc_next :
							 p->file_size;
	struct qcow2_seg *s;

	if (coff < p->cluster_size || coff > limit ||
	    csize > limit - coff + 512) {
		td_err("%s: corrupt compressed cluster descriptor %#llx",
		       op->img->path, (unsigned long long)entry);
		op->pending++;
		qcow2_seg_finish(op, -EIO);
		return;
	}
	s = seg_new(op, iov, iovcnt);
	if (!s) {
		seg_nomem(op);
		return;
	}
	lo = coff / p->align * p->align;
	hi = qcow2_align_up(coff + csize, p->align);
	s->blen = hi - lo;
	s->bounce = td_buf_get(s->blen);
	if (!s->bounce) {
		seg_free(s);
		seg_nomem(op);
		return;
	}
	s->skip = coff - lo;
	s->csize = csize;
	s->want = in_off; /* where the wanted bytes start in the cluster */
	s->biov.iov_base = s->bounce;
	s->biov.iov_len = s->blen;
	s->cb.op = TD_IO_READ;
	s->cb.fd = p->fd;
	s->cb.offset = lo;
	s->cb.iov = &s->biov;
	s->cb.iovcnt = 1;
	s->cb.done = compressed_done;
	s->cb.data = s;
	op->pending++;
	td_io_queue(op->img->io, &s->cb);
}

int qcow2_check_offset(struct td_image *img, uint64_t off, const char *what,
		       uint64_t guest)
{
	struct qcow2_priv *p = img->priv;
	uint64_t limit = p->alloc_next > p->file_size ? p->alloc_next :
							 p->file_size;

	if (off % p->cluster_size || off < p->cluster_size ||
	    off > limit - p->cluster_size) {
		td_err("%s: corrupt image: %s for guest offset %llu at host "
		       "offset %llu is outside the file",
		       img->path, what, (unsigned long long)guest,
		       (unsigned long long)off);
		return -EIO;
	}
	return 0;
}

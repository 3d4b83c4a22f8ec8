// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 writes, write_zeroes, discard and flush. A write to allocated
 * clusters this image owns alone (the COPIED flag) goes straight to the
 * file, in parallel with everything else. Anything else takes the metadata
 * lock and goes cluster by cluster; clusters that need one get it from
 * qcow2-alloc.c, which gives the lock up while their data is written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

/* Can [in, in + n) of this cluster be written where it is? */
static bool in_place(const struct qcow2_priv *p, uint64_t entry,
		     uint64_t bitmap, uint64_t in, uint64_t n)
{
	if (entry & QCOW2_OFLAG_COMPRESSED || !(entry & QCOW2_OFLAG_COPIED))
		return false;
	if (!(entry & QCOW2_OFFSET_MASK) && p->data_fd == p->fd)
		return false;
	if (p->ext_l2) {
		uint64_t m = qcow2_unit_mask(p, in, n);

		return (bitmap & m) == m;
	}
	return !(p->h.version >= 3 && (entry & QCOW2_OFLAG_ZERO));
}

static void data_iov(struct qcow2_op *op, uint64_t off, uint64_t n,
		     struct iovec **iov, int *cnt, struct iovec *small)
{
	struct qcow2_priv *p = op->img->priv;

	if (op->zero_src) {
		small[0].iov_base = p->zbuf;
		small[0].iov_len = n;
		*iov = small;
		*cnt = 1;
		return;
	}
	*cnt = qcow2_iov_slice(op->req->iov, op->req->iovcnt,
			       off - op->req->offset, n, iov, small, 4);
}

void qcow2_write_data(struct qcow2_op *op, uint64_t off, uint64_t n,
		      uint64_t host, void (*done)(struct qcow2_op *op))
{
	struct iovec small[4], *iov;
	int cnt;

	data_iov(op, off, n, &iov, &cnt, small);
	if (cnt < 0) {
		qcow2_write_fail(op, cnt);
		return;
	}
	op->io_done = done;
	qcow2_data_io(op, true, host, iov, cnt, 0);
	if (iov != small)
		free(iov);
}

static void flush_locked(struct qcow2_op *op);

static void op_done_end(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	bool wb = p->wb_wanted && !p->wb_running && !op->err;
	struct qcow2_op *fl;

	qcow2_op_end(op, op->err);
	/* the cache ran over its bound with dirty tables: write them */
	if (wb) {
		fl = qcow2_op_new(img, NULL);
		if (fl) {
			p->wb_wanted = false;
			p->wb_running = true;
			qcow2_lock(fl, flush_locked);
		}
	}
}

void qcow2_write_finish(struct qcow2_op *op)
{
	if (!op->err && op->req && (op->req->flags & TD_REQ_FUA)) {
		op->io_done = op_done_end;
		if (op->locked)
			qcow2_meta_flush(op);
		else
			qcow2_lock(op, qcow2_meta_flush);
		return;
	}
	op_done_end(op);
}

/* ---- zeroes and discard, on one cluster ---- */

/* 1: handled in the L2 entry; 0: write zeroes as data; < 0 error */
static int zero_cluster(struct qcow2_op *op, struct qcow2_centry *e,
			uint64_t idx, uint64_t in, uint64_t n)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t entry = qcow2_l2_entry(p, e->buf, idx);
	uint64_t bitmap = qcow2_l2_bitmap(p, e->buf, idx), nentry, m;
	bool backing = img->parent != NULL;
	bool keep = !op->discard && op->req &&
		    (op->req->flags & TD_REQ_NO_HOLE);
	bool whole;

	/* past the disk's end nothing shows: the tail cluster counts whole */
	if (op->pos + n >= p->h.size)
		n = p->cluster_size - in;
	whole = in == 0 && n == p->cluster_size;

	if (p->data_raw && !op->discard)
		return 0;
	if (p->ext_l2) {
		uint64_t a0 = qcow2_align_up(in, 1ull << p->sc_bits);
		uint64_t a1 = (in + n) >> p->sc_bits << p->sc_bits;

		if (a0 != in || a1 != in + n)
			return op->discard ? 1 : 0;
		m = qcow2_unit_mask(p, in, n);
		if (entry & QCOW2_OFLAG_COMPRESSED) {
			if (m != 0xffffffffull)
				return op->discard ? 1 : 0;
			qcow2_free_entry(img, entry);
			qcow2_l2_set(p, e->buf, idx, 0,
				     op->discard && !backing ? 0 : m << 32);
			qcow2_cache_dirty(e);
			return 1;
		}
		if (keep && (bitmap & m) == m)
			return 0;
		bitmap &= ~m;
		if (!op->discard || backing)
			bitmap |= m << 32;
		else
			bitmap &= ~(m << 32);
		/*
		 * The L2 table is ours (qcow2_l2_writable), so its bitmap may
		 * change even when the data cluster is shared with a
		 * snapshot: the snapshot's own table still maps all of it,
		 * and a later write copies the cluster unit by unit from
		 * what this bitmap says.
		 */
		nentry = entry;
		if (!(bitmap & 0xffffffffull) && p->data_fd == p->fd &&
		    (entry & QCOW2_OFFSET_MASK)) {
			qcow2_free_entry(img, entry);
			nentry = 0;
		}
		qcow2_l2_set(p, e->buf, idx, nentry, bitmap);
		qcow2_cache_dirty(e);
		return 1;
	}
	if (!whole)
		return op->discard ? 1 : 0;
	if (p->h.version < 3) {
		if (backing)
			return op->discard ? 1 : 0;
		nentry = 0;
	} else if (keep && in_place(p, entry, 0, 0, n)) {
		nentry = entry | QCOW2_OFLAG_ZERO;
		entry = 0; /* nothing to free */
	} else {
		nentry = op->discard && !backing ? 0 : QCOW2_OFLAG_ZERO;
	}
	if (entry & (QCOW2_OFLAG_COMPRESSED | QCOW2_OFFSET_MASK) ||
	    (p->data_fd != p->fd && (entry & QCOW2_OFLAG_COPIED)))
		qcow2_free_entry(img, entry);
	qcow2_l2_set(p, e->buf, idx, nentry, 0);
	qcow2_cache_dirty(e);
	return 1;
}

/* ---- the locked walk ---- */

static void write_piece_done(struct qcow2_op *op)
{
	if (op->err || op->pos >= op->end) {
		qcow2_write_finish(op);
		return;
	}
	qcow2_lock(op, qcow2_write_step);
}

void qcow2_write_step(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	int rc;

	op->walking = false;
	while (op->pos < op->end) {
		uint64_t idx, entry, bitmap;
		uint64_t in = op->pos & (p->cluster_size - 1);
		uint64_t n = p->cluster_size - in;
		struct qcow2_centry *e;

		if (qcow2_wait_inflight(op, qcow2_write_step))
			return;
		if (n > op->end - op->pos)
			n = op->end - op->pos;
		rc = qcow2_l2_writable(op, qcow2_write_step, &e);
		if (rc == 1)
			return;
		if (rc < 0) {
			qcow2_write_fail(op, rc);
			return;
		}
		idx = qcow2_l2_index(p, op->pos);
		if (op->req && (op->req->op == TD_OP_DISCARD ||
				op->req->op == TD_OP_WRITE_ZEROES)) {
			rc = zero_cluster(op, e, idx, in, n);
			if (rc < 0) {
				qcow2_write_fail(op, rc);
				return;
			}
			if (rc == 1) {
				op->pos += n;
				continue;
			}
		}
		entry = qcow2_l2_entry(p, e->buf, idx);
		bitmap = qcow2_l2_bitmap(p, e->buf, idx);
		if (in_place(p, entry, bitmap, in, n)) {
			op->pos += n;
			/* allocated data needs no lock: let the others on */
			qcow2_unlock(op);
			qcow2_write_data(op, op->pos - n, n,
					 (entry & QCOW2_OFFSET_MASK) + in,
					 write_piece_done);
			return;
		}
		op->old_entry = entry;
		op->old_bitmap = bitmap;
		/* on a return from waiting, the clusters are already counted */
		if (!op->alloc_off)
			op->nclust = entry & (QCOW2_OFFSET_MASK |
					      QCOW2_OFLAG_COMPRESSED) ?
					     1 :
					     qcow2_alloc_run(op, e->buf, idx);
		qcow2_alloc_cluster(op);
		return;
	}
	if (!op->pending)
		qcow2_write_finish(op);
	else
		op->io_done = qcow2_write_finish;
}

/* ---- entry points ---- */

static void fast_done(struct qcow2_op *op)
{
	qcow2_op_end(op, op->err);
}

static void fast_whole_done(struct td_iocb *cb, long res)
{
	struct qcow2_op *op = cb->data;
	int err = res < 0 ? (int)res : (uint64_t)res < op->req->len ? -EIO : 0;

	if (err)
		td_err("%s: write of %llu bytes at host offset %llu: %s",
		       op->img->path, (unsigned long long)op->req->len,
		       (unsigned long long)cb->offset, strerror(-err));
	qcow2_seg_finish(op, err);
}

static void fast_issue(struct qcow2_op *op, uint64_t off, uint64_t len,
		       uint64_t host)
{
	struct td_request *req = op->req;
	struct qcow2_priv *p = op->img->priv;
	struct iovec small[4], *iov;
	int cnt;

	if (len == req->len) {
		/* the usual request: the request's own iovec, no segment */
		op->cb.op = TD_IO_WRITE;
		op->cb.fd = p->data_fd;
		op->cb.flags = req->flags & TD_REQ_FUA ? TD_IO_DSYNC : 0;
		op->cb.offset = host;
		op->cb.iov = req->iov;
		op->cb.iovcnt = req->iovcnt;
		op->cb.done = fast_whole_done;
		op->cb.data = op;
		op->pending++;
		td_io_queue(op->img->io, &op->cb);
		return;
	}
	cnt = qcow2_iov_slice(req->iov, req->iovcnt, off - req->offset, len,
			      &iov, small, 4);
	if (cnt < 0) {
		op->pending++;
		qcow2_seg_finish(op, cnt);
		return;
	}
	qcow2_data_io(op, true, host, iov, cnt,
		      req->flags & TD_REQ_FUA ? TD_IO_DSYNC : 0);
	if (iov != small)
		free(iov);
}

/*
 * Every cluster allocated, owned, its L2 table cached: write without the
 * lock, one I/O per host-contiguous run (one, for the usual request).
 */
static bool write_fast(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint32_t tbits = p->cluster_bits + p->l2_bits;
	uint64_t pos, run_host = 0, run_off = 0, run_len = 0;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (pos = op->pos; pos < op->end;) {
			uint64_t l1e = p->l1[pos >> tbits], in, n, entry, h;
			struct qcow2_centry *e;

			in = pos & (p->cluster_size - 1);
			n = p->cluster_size - in;
			if (n > op->end - pos)
				n = op->end - pos;
			if (!(l1e & QCOW2_OFLAG_COPIED))
				return false;
			e = qcow2_cache_peek(&p->l2c, l1e & QCOW2_OFFSET_MASK);
			if (!e)
				return false;
			entry = qcow2_l2_entry(p, e->buf, qcow2_l2_index(p, pos));
			if (!in_place(p, entry,
				      qcow2_l2_bitmap(p, e->buf,
						      qcow2_l2_index(p, pos)),
				      in, n))
				return false;
			h = (entry & QCOW2_OFFSET_MASK) + in;
			if (pass == 1 && run_len && run_host + run_len == h) {
				run_len += n;
			} else if (pass == 1) {
				if (run_len)
					fast_issue(op, run_off, run_len,
						   run_host);
				run_host = h;
				run_off = pos;
				run_len = n;
			}
			pos += n;
		}
		op->io_done = fast_done;
	}
	fast_issue(op, run_off, run_len, run_host);
	return true;
}

static bool refuse_ro(struct td_image *img, struct td_request *req)
{
	struct qcow2_priv *p = img->priv;

	if (!p->readonly)
		return false;
	td_err("%s: %s on an image opened read-only", img->path,
	       td_op_name(req->op));
	td_request_complete(img, req, -EROFS);
	return true;
}

void qcow2_queue_write(struct td_image *img, struct td_request *req)
{
	struct qcow2_op *op;

	if (refuse_ro(img, req))
		return;
	op = qcow2_op_new(img, req);
	if (!op || write_fast(op))
		return;
	qcow2_lock(op, qcow2_write_step);
}

static void zeroes_common(struct td_image *img, struct td_request *req,
			  bool discard)
{
	struct qcow2_op *op;

	if (refuse_ro(img, req))
		return;
	op = qcow2_op_new(img, req);
	if (!op)
		return;
	op->zero_src = true;
	op->discard = discard;
	qcow2_lock(op, qcow2_write_step);
}

/*
 * Zeroes are fast when the L2 entries alone say so: whole (sub)clusters,
 * with zero flags or bitmaps to set. Anything else is written as data.
 */
static bool zeroes_fast(struct td_image *img, const struct td_request *req)
{
	struct qcow2_priv *p = img->priv;
	uint64_t unit = 1ull << p->sc_bits;

	if (p->data_raw || (p->h.version < 3 && img->parent))
		return false;
	return req->offset % unit == 0 &&
	       (req->len % unit == 0 || req->offset + req->len == p->h.size);
}

void qcow2_write_zeroes(struct td_image *img, struct td_request *req)
{
	if ((req->flags & TD_REQ_FAST_ZERO) && !zeroes_fast(img, req)) {
		td_request_complete(img, req, -ENOTSUP);
		return;
	}
	zeroes_common(img, req, false);
}

void qcow2_discard(struct td_image *img, struct td_request *req)
{
	zeroes_common(img, req, true);
}

static void flush_end(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;

	if (!op->req)
		p->wb_running = false;
	qcow2_op_end(op, op->err);
}

static void flush_locked(struct qcow2_op *op)
{
	op->io_done = flush_end;
	qcow2_meta_flush(op);
}

void qcow2_flush(struct td_image *img, struct td_request *req)
{
	struct qcow2_op *op;

	if (((struct qcow2_priv *)img->priv)->readonly) {
		td_request_complete(img, req, 0);
		return;
	}
	op = qcow2_op_new(img, req);
	if (op)
		qcow2_lock(op, flush_locked);
}

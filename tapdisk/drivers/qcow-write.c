// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow version 1, writes. Allocated clusters are written in place, in
 * parallel. A write that needs new clusters holds the image's allocation
 * lock: it appends the clusters at the end of the file, fills in what it
 * does not cover (from the backing image, a compressed cluster, or
 * zeroes), writes them, makes them durable, and only then writes the L2
 * entries that point at them (for a new L2 table: the table, durable, then
 * its L1 entry). A crash at any point leaves every entry pointing at
 * written data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "file-util.h"
#include "io.h"
#include "log.h"
#include "qcow-priv.h"

/* ---- writing ---- */

static void qcow_data_write_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;
	int err = 0;

	if (res >= 0 && (uint64_t)res != s->len)
		res = -EIO;
	if (res < 0) {
		err = (int)res;
		td_err("%s: write of %llu bytes at %llu: %s", s->qr->img->name,
		       (unsigned long long)s->len,
		       (unsigned long long)cb->offset, strerror(-err));
	}
	s->done(s, err);
}

/* The request's bytes from qr->pos, len of them, to file offset off. */
static int qcow_issue_data_write(struct qcow_req *qr, uint64_t off,
				 uint64_t len)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_sub *s = qcow_sub_new(qr, qcow_sub_req_done);
	int rc;

	if (!s)
		return -ENOMEM;
	s->voff = qr->pos;
	s->len = len;
	rc = qcow_slice(s, qr->pos, len);
	if (!rc && p->enc) {
		rc = qcow_bounce(s, len);
		if (!rc) {
			qcow_iov_to_buf(s->buf, s->iov, s->iovcnt);
			rc = qcow_crypt(img, s->voff, s->buf, len, true);
		}
	}
	if (rc) {
		qcow_sub_free(s);
		return rc;
	}
	qcow_sub_queue(s, TD_IO_WRITE, off,
		       qr->req->flags & TD_REQ_FUA ? TD_IO_DSYNC : 0,
		       qcow_data_write_done);
	return 0;
}

/* Copy the request's data for [from, from + len) into dst. */
static void qcow_req_copy_in(struct qcow_req *qr, uint8_t *dst, uint64_t from,
			     uint64_t len)
{
	const struct td_request *req = qr->req;
	uint64_t rel = from - req->offset, l, c;
	int i;

	if (qr->zero) {
		memset(dst, 0, len);
		return;
	}
	for (i = 0; i < req->iovcnt && len; i++) {
		l = req->iov[i].iov_len;
		if (rel >= l) {
			rel -= l;
			continue;
		}
		c = qcow_min(l - rel, len);
		memcpy(dst, (const uint8_t *)req->iov[i].iov_base + rel, c);
		dst += c;
		len -= c;
		rel = 0;
	}
}

/* Room for n bytes at the end of the file. */
static uint64_t qcow_reserve(struct qcow_priv *p, uint64_t n)
{
	uint64_t off = p->eof;

	p->eof += qcow_align_up(n, p->g.cluster_size);
	if (p->eof > p->file_end)
		p->file_end = p->eof;
	return off;
}

static void qcow_alloc_end(struct qcow_req *qr, int err)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;

	if (a->buf)
		td_buf_put(a->buf, a->buflen);
	if (a->meta)
		td_buf_put(a->meta, a->metalen);
	if (a->fresh) {
		if (err) {
			/* its space stays unused: qcow v1 cannot free it */
			qcow_l2_free(p, a->l2);
		} else {
			p->l1[a->l1_index] = a->l2->off;
			qcow_l2_insert(p, a->l2);
		}
	} else if (a->l2) {
		qcow_l2_unpin(qr->img, a->l2);
	}
	if (err)
		qcow_fail(qr, err);
	else
		qr->pos = qcow_min(qr->end,
				   a->vstart +
					   (uint64_t)a->n * p->g.cluster_size);
	memset(a, 0, sizeof(*a));
	qr->allocating = false;
	qcow_walk(qr);
}

static void qcow_alloc_io_done(struct td_iocb *cb, long res);

static void qcow_alloc_io(struct qcow_req *qr, enum td_io_op op, uint64_t off,
			  void *buf, uint64_t len, bool fua)
{
	struct qcow_alloc *a = &qr->a;

	a->cb.op = op;
	a->cb.data = qr;
	a->cb.done = qcow_alloc_io_done;
	a->cb.fd = ((struct qcow_priv *)qr->img->priv)->fd;
	a->cb.flags = fua && (qr->req->flags & TD_REQ_FUA) ? TD_IO_DSYNC : 0;
	a->cb.offset = off;
	a->iov.iov_base = buf;
	a->iov.iov_len = len;
	a->cb.iov = &a->iov;
	a->cb.iovcnt = op == TD_IO_FSYNC ? 0 : 1;
	td_io_queue(qr->img->io, &a->cb);
}

/* The new entries into dst, which holds the table from byte lo on. */
static void qcow_alloc_set_entries(struct qcow_priv *p, struct qcow_alloc *a,
				   uint8_t *dst, uint64_t lo)
{
	unsigned i;

	for (i = 0; i < a->n; i++)
		td_be_put64(dst + (uint64_t)(a->l2_index + i) * 8 - lo,
			    a->off + (uint64_t)i * p->g.cluster_size);
}

static void qcow_alloc_write_l2(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t hi;

	a->stage = QCOW_A_L2;
	if (a->fresh) {
		/* nobody else sees this table yet: fill it in place */
		qcow_alloc_set_entries(p, a, (uint8_t *)a->l2->table, 0);
		qcow_alloc_io(qr, TD_IO_WRITE, a->l2->off, a->l2->table,
			      p->g.l2_bytes, false);
		return;
	}
	/*
	 * Readers follow the cached table: it changes only once the new
	 * entries are on disk, so until then they read what was there.
	 */
	a->meta_lo = qcow_align_down((uint64_t)a->l2_index * 8, p->align);
	hi = qcow_align_up((uint64_t)(a->l2_index + a->n) * 8, p->align);
	a->metalen = qcow_align_up(hi - a->meta_lo, TD_BUF_ALIGN);
	a->meta = td_buf_get(a->metalen);
	if (!a->meta) {
		qcow_alloc_end(qr, -ENOMEM);
		return;
	}
	memcpy(a->meta, (uint8_t *)a->l2->table + a->meta_lo, hi - a->meta_lo);
	qcow_alloc_set_entries(p, a, a->meta, a->meta_lo);
	qcow_alloc_io(qr, TD_IO_WRITE, a->l2->off + a->meta_lo, a->meta,
		      hi - a->meta_lo, true);
}

static void qcow_alloc_write_l1(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t pos = p->h.l1_offset + a->l1_index * 8;
	uint64_t lo = qcow_align_down(pos, p->align);
	uint64_t hi = qcow_align_up(pos + 8, p->align);

	a->stage = QCOW_A_L1;
	td_be_put64(p->l1_raw + (pos - p->l1_raw_off), a->l2->off);
	qcow_alloc_io(qr, TD_IO_WRITE, lo, p->l1_raw + (lo - p->l1_raw_off),
		      hi - lo, true);
}

static void qcow_alloc_io_done(struct td_iocb *cb, long res)
{
	struct qcow_req *qr = cb->data;
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;
	static const char *const what[] = {
		[QCOW_A_FILL] = "copy-on-write read",
		[QCOW_A_DATA] = "write of new clusters",
		[QCOW_A_SYNC] = "fdatasync before an L2 update",
		[QCOW_A_L2] = "L2 table update",
		[QCOW_A_L2_SYNC] = "fdatasync of a new L2 table",
		[QCOW_A_L1] = "L1 table update",
	};

	if (res >= 0 && cb->op == TD_IO_WRITE &&
	    (uint64_t)res != a->iov.iov_len)
		res = -EIO;
	if (res < 0) {
		td_err("%s: %s at %llu: %s", p->file, what[a->stage],
		       (unsigned long long)cb->offset, strerror((int)-res));
		if (a->stage == QCOW_A_L1)
			td_be_put64(p->l1_raw +
					    (p->h.l1_offset + a->l1_index * 8 -
					     p->l1_raw_off),
				    0);
		qcow_alloc_end(qr, (int)res);
		return;
	}
	switch (a->stage) {
	case QCOW_A_FILL:
		break;
	case QCOW_A_DATA:
		/* the data is durable before anything points at it */
		a->stage = QCOW_A_SYNC;
		qcow_alloc_io(qr, TD_IO_FSYNC, 0, NULL, 0, false);
		return;
	case QCOW_A_SYNC:
		qcow_alloc_write_l2(qr);
		return;
	case QCOW_A_L2:
		if (a->fresh) {
			a->stage = QCOW_A_L2_SYNC;
			qcow_alloc_io(qr, TD_IO_FSYNC, 0, NULL, 0, false);
			return;
		}
		memcpy((uint8_t *)a->l2->table + a->l2_index * 8,
		       a->meta + (a->l2_index * 8 - a->meta_lo),
		       (uint64_t)a->n * 8);
		break;
	case QCOW_A_L2_SYNC:
		qcow_alloc_write_l1(qr);
		return;
	case QCOW_A_L1:
		break;
	}
	qcow_alloc_end(qr, 0);
}

/* Everything the write does not cover is in the buffer: write it all. */
static void qcow_alloc_filled(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t from = qr->pos > a->vstart ? qr->pos : a->vstart;
	uint64_t to = qcow_min(qr->end, a->vstart + a->buflen);
	int err;

	if (a->err) {
		qcow_alloc_end(qr, a->err);
		return;
	}
	qcow_req_copy_in(qr, a->buf + (from - a->vstart), from, to - from);
	if (p->enc) {
		err = qcow_crypt(img, a->vstart, a->buf, a->buflen, true);
		if (err) {
			qcow_alloc_end(qr, err);
			return;
		}
	}
	a->stage = QCOW_A_DATA;
	qcow_alloc_io(qr, TD_IO_WRITE, a->off, a->buf, a->buflen, false);
}

static void qcow_fill_put(struct qcow_req *qr)
{
	if (!--qr->a.fills)
		qcow_alloc_filled(qr);
}

static void qcow_fill_done(struct qcow_sub *s, int err)
{
	struct qcow_req *qr = s->qr;

	if (err && !qr->a.err)
		qr->a.err = err;
	qcow_sub_free(s);
	qr->pending--;
	qcow_fill_put(qr);
}

/* Cluster k of the allocation as it reads now: the base the write goes on. */
static int qcow_fill(struct qcow_req *qr, unsigned k)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_alloc *a = &qr->a;
	uint8_t *dst = a->buf + (uint64_t)k * p->g.cluster_size;
	struct qcow_sub *s;
	int rc = 0;

	if (!(k == 0 && (a->entry0 & QCOW_COMPRESSED)) && !img->parent) {
		memset(dst, 0, p->g.cluster_size);
		return 0;
	}
	s = qcow_sub_new(qr, qcow_fill_done);
	if (!s)
		return -ENOMEM;
	s->one.iov_base = dst;
	s->one.iov_len = p->g.cluster_size;
	s->iov = &s->one;
	s->iovcnt = 1;
	a->fills++;
	if (k == 0 && (a->entry0 & QCOW_COMPRESSED))
		rc = qcow_issue_zipped(s, a->entry0, 0);
	else
		qcow_issue_parent_read(
			s, a->vstart + (uint64_t)k * p->g.cluster_size,
			p->g.cluster_size);
	if (rc) {
		a->fills--;
		qcow_sub_free(s);
	}
	return rc;
}

/*
 * Allocate the clusters from qr->pos on that need it (m maps qr->pos),
 * within one L2 table and at most QCOW_ALLOC_MAX bytes; the caller holds
 * the allocation lock.
 */
static int qcow_alloc_start(struct qcow_req *qr, const struct qcow_map *m)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t cs = p->g.cluster_size, max = QCOW_ALLOC_MAX / cs;
	unsigned shift = p->h.cluster_bits + p->h.l2_bits;
	bool head, tail;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	a->l1_index = qr->pos >> shift;
	a->l2_index = (uint32_t)((qr->pos >> p->h.cluster_bits) &
				 (p->g.l2_entries - 1));
	a->vstart = qcow_align_down(qr->pos, cs);
	a->entry0 = m->entry;
	if (m->l2) {
		a->l2 = m->l2;
		a->l2->pins++;
	} else {
		a->l2 = qcow_l2_alloc(img);
		if (!a->l2)
			return -ENOMEM;
		memset(a->l2->table, 0, p->g.l2_bytes);
		a->fresh = true;
	}
	a->n = 1;
	if (m->kind == QCOW_UNALLOC) {
		while (a->n < max && a->l2_index + a->n < p->g.l2_entries &&
		       a->vstart + a->n * cs < qr->end &&
		       !a->l2->table[a->l2_index + a->n])
			a->n++;
	}
	a->buflen = a->n * cs;
	a->buf = td_buf_get(a->buflen);
	if (!a->buf) {
		qcow_alloc_end(qr, -ENOMEM);
		return 0;
	}
	if (a->fresh)
		a->l2->off = qcow_reserve(p, p->g.l2_bytes);
	a->off = qcow_reserve(p, a->buflen);
	qr->allocating = true;
	a->stage = QCOW_A_FILL;
	a->fills = 1; /* held until every fill is issued */
	head = qr->pos > a->vstart;
	tail = qr->end < a->vstart + a->buflen;
	if (head || (a->n == 1 && tail))
		rc = qcow_fill(qr, 0);
	if (!rc && tail && a->n > 1)
		rc = qcow_fill(qr, a->n - 1);
	if (rc && !a->err)
		a->err = rc;
	qcow_fill_put(qr);
	return 0;
}

/* write_zeroes over a hole with nothing under it has nothing to do */
static bool qcow_zero_skips(const struct qcow_req *qr)
{
	return qr->zero && !qr->img->parent &&
	       !(qr->req->flags & TD_REQ_NO_HOLE);
}

static int qcow_write_step(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct qcow_map m;
	int rc;

	rc = qcow_map(img, qr->pos, qr, &m);
	if (rc)
		return rc;
	if (m.kind == QCOW_DATA) {
		qcow_extend(img, &m, qr->pos, qr->end, false);
		rc = qcow_issue_data_write(qr, m.off, m.len);
		if (!rc)
			qr->pos += m.len;
		return rc;
	}
	if (m.kind == QCOW_UNALLOC && qcow_zero_skips(qr)) {
		qcow_extend(img, &m, qr->pos, qr->end, false);
		qr->pos += m.len;
		return 0;
	}
	if (!qcow_alloc_lock(qr))
		return -EAGAIN;
	return qcow_alloc_start(qr, &m);
}

void qcow_queue_write(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, qcow_write_step);

	if (qr)
		qcow_walk(qr);
}

void qcow_write_zeroes(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr;

	/* zeroes are written like data, except over holes at the chain's end */
	if (req->flags & TD_REQ_FAST_ZERO) {
		td_request_complete(img, req, -ENOTSUP);
		return;
	}
	qr = qcow_req_new(img, req, qcow_write_step);
	if (qr) {
		qr->zero = true;
		qcow_walk(qr);
	}
}

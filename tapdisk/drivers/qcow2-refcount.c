// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 refcounts and the ordered metadata writeback. Clusters are taken
 * from the end of the file (never reused while open), their refcounts
 * raised in the cached refcount blocks, and a flush writes refcount blocks,
 * the refcount table, L2 tables and the L1 table in that order with an
 * fdatasync between the stages; decrements wait until the L2 tables that
 * dropped the references are on disk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

uint64_t qcow2_rb_get(const struct qcow2_priv *p, const void *rb, uint64_t i)
{
	const unsigned char *b = rb;
	uint32_t bits = p->rc_bits;

	switch (bits) {
	case 8:
		return b[i];
	case 16:
		return be16toh(((const uint16_t *)rb)[i]);
	case 32:
		return be32toh(((const uint32_t *)rb)[i]);
	case 64:
		return be64toh(((const uint64_t *)rb)[i]);
	default:
		return (b[i * bits / 8] >> (i * bits % 8)) & ((1u << bits) - 1);
	}
}

void qcow2_rb_set(const struct qcow2_priv *p, void *rb, uint64_t i,
		  uint64_t v)
{
	unsigned char *b = rb;
	uint32_t bits = p->rc_bits, sh;

	switch (bits) {
	case 8:
		b[i] = (unsigned char)v;
		break;
	case 16:
		((uint16_t *)rb)[i] = htobe16((uint16_t)v);
		break;
	case 32:
		((uint32_t *)rb)[i] = htobe32((uint32_t)v);
		break;
	case 64:
		((uint64_t *)rb)[i] = htobe64(v);
		break;
	default:
		sh = i * bits % 8;
		b[i * bits / 8] &= ~(((1u << bits) - 1) << sh);
		b[i * bits / 8] |= (v & ((1u << bits) - 1)) << sh;
		break;
	}
}

static int push_range(struct qcow2_free **arr, size_t *n, size_t *cap,
		      uint64_t off, uint64_t clusters)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct qcow2_free *a = realloc(*arr, nc * sizeof(*a));

		if (!a)
			return -ENOMEM;
		*arr = a;
		*cap = nc;
	}
	(*arr)[*n].offset = off;
	(*arr)[*n].clusters = clusters;
	(*n)++;
	return 0;
}

int qcow2_add_free(struct td_image *img, uint64_t offset, uint64_t clusters)
{
	struct qcow2_priv *p = img->priv;
	int rc = push_range(&p->frees, &p->nfrees, &p->frees_cap, offset,
			    clusters);

	/* losing a decrement leaks the cluster, which check repairs */
	if (rc)
		td_warn("%s: no memory to free %llu clusters at %llu: leaked",
			img->path, (unsigned long long)clusters,
			(unsigned long long)offset);
	return 0;
}

int qcow2_free_entry(struct td_image *img, uint64_t entry)
{
	struct qcow2_priv *p = img->priv;

	if (entry & QCOW2_OFLAG_COMPRESSED) {
		uint32_t x = 62 - (p->cluster_bits - 8);
		uint64_t coff = entry & ((1ull << x) - 1);
		uint64_t nsec = ((entry & ~(QCOW2_OFLAG_COPIED |
					    QCOW2_OFLAG_COMPRESSED)) >>
				 x) + 1;
		uint64_t last = coff + nsec * 512 - (coff & 511) - 1;
		uint64_t first = coff >> p->cluster_bits;

		return qcow2_add_free(img, first << p->cluster_bits,
				      (last >> p->cluster_bits) - first + 1);
	}
	if (p->data_fd != p->fd || !(entry & QCOW2_OFFSET_MASK))
		return 0;
	return qcow2_add_free(img, entry & QCOW2_OFFSET_MASK, 1);
}

/* A bigger refcount table after the end of the file. */
static int grow_rt(struct td_image *img, uint64_t need)
{
	struct qcow2_priv *p = img->priv;
	uint64_t per = p->cluster_size / 8, n = p->rt_entries * 2, clusters;
	uint64_t *rt;

	if (n < need + 1)
		n = need + 1;
	n = qcow2_align_up(n, per);
	clusters = n / per;
	if (clusters * p->cluster_size > QCOW2_MAX_RT_BYTES) {
		td_err("%s: the refcount table would exceed 8 MiB: image full",
		       img->path);
		return -ENOSPC;
	}
	rt = realloc(p->rt, n * 8);
	if (!rt)
		return -ENOMEM;
	memset(rt + p->rt_entries, 0, (n - p->rt_entries) * 8);
	p->rt = rt;
	p->rt_entries = n;
	qcow2_add_free(img, p->h.rt_offset, p->h.rt_clusters);
	p->h.rt_offset = p->alloc_next;
	p->h.rt_clusters = (uint32_t)clusters;
	p->alloc_next += clusters * p->cluster_size;
	p->rt_dirty = true;
	p->header_dirty = true;
	return push_range(&p->incq, &p->nincq, &p->incq_cap, p->h.rt_offset,
			  clusters);
}

/* Raise the refcounts queued in incq, creating refcount blocks as needed. */
static int drain_incq(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	int rc;

	while (p->nincq) {
		struct qcow2_free *r = &p->incq[p->nincq - 1];
		uint64_t c = r->offset >> p->cluster_bits;
		uint64_t rti = c >> p->rb_bits, rbo, v, idx;
		struct qcow2_centry *e;

		if (rti >= p->rt_entries) {
			rc = grow_rt(img, rti);
			if (rc)
				return rc;
			continue;
		}
		rbo = p->rt[rti] & QCOW2_OFFSET_MASK;
		if (!rbo) {
			rbo = p->alloc_next;
			p->alloc_next += p->cluster_size;
			if (!qcow2_cache_new(&p->rbc, rbo))
				return -ENOMEM;
			p->rt[rti] = rbo;
			p->rt_dirty = true;
			rc = push_range(&p->incq, &p->nincq, &p->incq_cap,
					rbo, 1);
			if (rc)
				return rc;
			continue;
		}
		rc = qcow2_check_offset(img, rbo, "refcount block",
					r->offset);
		if (!rc)
			rc = qcow2_cache_get(&p->rbc, rbo, &op->w, &e);
		if (rc)
			return rc;
		idx = c & ((1ull << p->rb_bits) - 1);
		v = qcow2_rb_get(p, e->buf, idx);
		if (v >= p->rc_max) {
			td_err("%s: refcount overflow at host offset %llu",
			       img->path, (unsigned long long)r->offset);
			p->nincq--;
			return -ERANGE;
		}
		qcow2_rb_set(p, e->buf, idx, v + 1);
		qcow2_cache_dirty(e);
		r->offset += p->cluster_size;
		if (--r->clusters == 0)
			p->nincq--;
	}
	return 0;
}

int qcow2_ref_queue(struct td_image *img, uint64_t offset, uint64_t n)
{
	struct qcow2_priv *p = img->priv;

	return push_range(&p->incq, &p->nincq, &p->incq_cap, offset, n);
}

int qcow2_ref_drain(struct qcow2_op *op, void (*step)(struct qcow2_op *op))
{
	int rc = drain_incq(op);

	if (rc == 1)
		qcow2_op_wait(op, step);
	else if (rc)
		td_err("%s: cannot raise refcounts: %s", op->img->path,
		       strerror(-rc));
	return rc;
}

int qcow2_alloc_clusters(struct qcow2_op *op, uint64_t n, uint64_t *out,
			 void (*step)(struct qcow2_op *op))
{
	struct qcow2_priv *p = op->img->priv;
	int rc;

	if (!op->alloc_off) {
		op->alloc_off = p->alloc_next;
		p->alloc_next += n << p->cluster_bits;
		rc = push_range(&p->incq, &p->nincq, &p->incq_cap,
				op->alloc_off, n);
		if (rc)
			return rc;
	}
	rc = drain_incq(op);
	if (rc == 1) {
		qcow2_op_wait(op, step);
		return 1;
	}
	if (rc) {
		td_err("%s: cannot allocate %llu clusters: %s", op->img->path,
		       (unsigned long long)n, strerror(-rc));
		op->alloc_off = 0;
		return rc;
	}
	*out = op->alloc_off;
	op->alloc_off = 0;
	return 0;
}

/* ---- the ordered flush ---- */

enum {
	FL_REFBLOCKS,
	FL_REFTABLE,
	FL_SYNC1,
	FL_L2,
	FL_SYNC2,
	FL_L1,
	FL_SYNC3,
	FL_FREES,
	FL_DONE,
};

static void flush_next(struct qcow2_op *op);

static void flush_wb_done(struct qcow2_waiter *w, int err)
{
	struct qcow2_op *op = (struct qcow2_op *)((char *)w -
						  offsetof(struct qcow2_op, w));

	if (err && !op->err)
		op->err = err;
	flush_next(op);
}

static void flush_io_done(struct td_iocb *cb, long res)
{
	struct qcow2_op *op = cb->data;

	if (op->buf) {
		td_buf_put(op->buf, op->buf_len);
		op->buf = NULL;
	}
	if (res < 0) {
		td_err("%s: metadata %s: %s", op->img->path,
		       cb->op == TD_IO_FSYNC ? "sync" : "write",
		       strerror((int)-res));
		if (!op->err)
			op->err = (int)res;
	}
	flush_next(op);
}

static void flush_fsync(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;

	memset(&op->cb, 0, sizeof(op->cb));
	op->cb.op = TD_IO_FSYNC;
	op->cb.fd = p->fd;
	op->cb.done = flush_io_done;
	op->cb.data = op;
	td_io_queue(op->img->io, &op->cb);
}

/* the dirty part of the L1 table, widened to the alignment */
static bool flush_l1(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t a = p->align / 8, lo, hi, i;
	uint64_t *b;

	if (p->l1_dirty_hi <= p->l1_dirty_lo)
		return false;
	lo = p->l1_dirty_lo / a * a;
	hi = qcow2_align_up(p->l1_dirty_hi, a);
	p->l1_dirty_lo = p->l1_dirty_hi = 0;
	op->buf_len = (hi - lo) * 8;
	op->buf = b = td_buf_get(op->buf_len);
	if (!b) {
		op->err = -ENOMEM;
		return false;
	}
	for (i = lo; i < hi; i++)
		b[i - lo] = htobe64(p->l1[i]);
	memset(&op->cb, 0, sizeof(op->cb));
	op->iov1.iov_base = b;
	op->iov1.iov_len = op->buf_len;
	op->cb.op = TD_IO_WRITE;
	op->cb.fd = p->fd;
	op->cb.offset = p->h.l1_offset + lo * 8;
	op->cb.iov = &op->iov1;
	op->cb.iovcnt = 1;
	op->cb.done = flush_io_done;
	op->cb.data = op;
	td_io_queue(op->img->io, &op->cb);
	return true;
}

static int write_rt_sync(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;
	uint64_t n = p->rt_entries, i;
	uint64_t *b = td_buf_get(n * 8);
	int rc;

	if (!b)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		b[i] = htobe64(p->rt[i]);
	rc = qcow2_pio(p->fd, true, b, n * 8, p->h.rt_offset);
	td_buf_put(b, n * 8);
	if (!rc && fdatasync(p->fd) < 0)
		rc = -errno;
	if (!rc && p->header_dirty) {
		rc = qcow2_header_write(img->path, p->fd, &p->h);
		if (!rc)
			p->header_dirty = false;
	}
	if (rc)
		td_err("%s: cannot write the refcount table: %s", img->path,
		       strerror(-rc));
	else
		p->rt_dirty = false;
	return rc;
}

/* one pending decrement; 1 when it waits for a refcount block */
static int apply_free(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	struct qcow2_free *f = &p->frees[op->free_i];

	while (f->clusters) {
		uint64_t c = f->offset >> p->cluster_bits, rti = c >> p->rb_bits;
		uint64_t idx = c & ((1ull << p->rb_bits) - 1), rbo, v;
		struct qcow2_centry *e;
		int rc;

		rbo = rti < p->rt_entries ? p->rt[rti] & QCOW2_OFFSET_MASK : 0;
		rc = rbo ? qcow2_check_offset(img, rbo, "refcount block", 0) :
			   -EIO;
		if (!rc)
			rc = qcow2_cache_get(&p->rbc, rbo, &op->w, &e);
		if (rc == 1)
			return 1;
		if (rc) {
			td_warn("%s: cannot free the cluster at %llu: leaked",
				img->path, (unsigned long long)f->offset);
		} else {
			v = qcow2_rb_get(p, e->buf, idx);
			if (v) {
				qcow2_rb_set(p, e->buf, idx, v - 1);
				qcow2_cache_dirty(e);
			} else {
				td_warn("%s: freeing the cluster at %llu "
					"which is already free",
					img->path,
					(unsigned long long)f->offset);
			}
		}
		f->offset += p->cluster_size;
		f->clusters--;
	}
	return 0;
}

static void flush_next(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;

	for (;;) {
		if (op->err && op->stage < FL_DONE)
			op->stage = FL_DONE;
		switch (op->stage++) {
		case FL_REFBLOCKS:
			if (p->lazy || !p->rbc.n_dirty)
				continue;
			op->w.fn = flush_wb_done;
			qcow2_cache_writeback(&p->rbc, &op->w);
			return;
		case FL_REFTABLE:
			/* rare (a new refcount block): done synchronously */
			if (!p->lazy && p->rt_dirty) {
				if (fdatasync(p->fd) < 0)
					op->err = -errno;
				else
					op->err = write_rt_sync(img);
			}
			continue;
		case FL_SYNC1:
			if (!p->l2c.n_dirty && p->l1_dirty_hi <= p->l1_dirty_lo)
				continue;
			flush_fsync(op);
			return;
		case FL_L2:
			if (!p->l2c.n_dirty)
				continue;
			op->w.fn = flush_wb_done;
			qcow2_cache_writeback(&p->l2c, &op->w);
			return;
		case FL_SYNC2:
			if (p->l1_dirty_hi <= p->l1_dirty_lo)
				continue;
			flush_fsync(op);
			return;
		case FL_L1:
			if (flush_l1(op))
				return;
			continue;
		case FL_SYNC3:
			flush_fsync(op);
			return;
		case FL_FREES:
			while (op->free_i < p->nfrees) {
				op->step = flush_next;
				op->w.fn = qcow2_op_waiter;
				if (apply_free(op) == 1) {
					op->stage--;
					return;
				}
				op->free_i++;
			}
			p->nfrees = 0;
			op->free_i = 0;
			continue;
		default:
			op->io_done(op);
			return;
		}
	}
}

void qcow2_meta_flush(struct qcow2_op *op)
{
	op->stage = FL_REFBLOCKS;
	op->free_i = 0;
	flush_next(op);
}

int qcow2_meta_flush_sync(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;
	size_t i;
	int rc, round;

	/* twice: the decrements applied in round one are written in two */
	for (round = 0; round < 2; round++) {
		rc = qcow2_cache_writeback_sync(&p->rbc);
		if (!rc && p->rt_dirty)
			rc = write_rt_sync(img);
		if (!rc && fdatasync(p->fd) < 0)
			rc = -errno;
		if (!rc)
			rc = qcow2_cache_writeback_sync(&p->l2c);
		if (!rc && fdatasync(p->fd) < 0)
			rc = -errno;
		if (!rc && p->l1_dirty_hi > p->l1_dirty_lo) {
			uint64_t n = p->l1_size, j;
			uint64_t *b = malloc(n * 8 + 8);

			rc = b ? 0 : -ENOMEM;
			for (j = 0; b && j < n; j++)
				b[j] = htobe64(p->l1[j]);
			if (b)
				rc = qcow2_pio(p->fd, true, b, n * 8,
					       p->h.l1_offset);
			free(b);
			p->l1_dirty_lo = p->l1_dirty_hi = 0;
		}
		if (!rc && fdatasync(p->fd) < 0)
			rc = -errno;
		if (rc) {
			td_err("%s: cannot write metadata: %s", img->path,
			       strerror(-rc));
			return rc;
		}
		for (i = 0; i < p->nfrees; i++) {
			struct qcow2_free *f = &p->frees[i];

			while (f->clusters) {
				uint64_t c = f->offset >> p->cluster_bits;
				uint64_t rti = c >> p->rb_bits, rbo, v, idx;
				struct qcow2_centry *e;

				idx = c & ((1ull << p->rb_bits) - 1);
				rbo = rti < p->rt_entries ?
					      p->rt[rti] & QCOW2_OFFSET_MASK :
					      0;
				if (rbo &&
				    !qcow2_cache_get_sync(&p->rbc, rbo, &e)) {
					v = qcow2_rb_get(p, e->buf, idx);
					if (v) {
						qcow2_rb_set(p, e->buf, idx,
							     v - 1);
						qcow2_cache_dirty(e);
					}
				}
				f->offset += p->cluster_size;
				f->clusters--;
			}
		}
		p->nfrees = 0;
	}
	return 0;
}

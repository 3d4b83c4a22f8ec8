// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 cluster allocation for writes. An allocating write holds the
 * metadata lock to take its cluster and, later, to point the L2 entry at
 * it, but not while its data is filled in and written, so allocations run
 * in parallel; requests for a guest cluster whose allocation is in flight
 * wait for it. New L2 tables (and copies of shared ones) come from here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

/* ---- allocations in flight ---- */

/*
 * An allocating write holds the metadata lock only to take its cluster and
 * to point the L2 entry at it; its data goes out unlocked, in parallel with
 * other requests. Until the entry changes, a request for the same guest
 * cluster must wait for it, or it would allocate a second cluster, or free
 * the old entry a second time.
 */
static struct qcow2_op *inflight_find(struct qcow2_priv *p, uint64_t pos)
{
	uint64_t c = pos >> p->cluster_bits;
	struct qcow2_op *o;

	for (o = p->inflight; o; o = o->inext)
		if (c >= o->pos >> p->cluster_bits &&
		    c - (o->pos >> p->cluster_bits) < o->nclust)
			return o;
	return NULL;
}

bool qcow2_wait_inflight(struct qcow2_op *op, void (*step)(struct qcow2_op *op))
{
	struct qcow2_priv *p = op->img->priv;
	struct qcow2_op *o = inflight_find(p, op->pos), **pp;

	if (!o)
		return false;
	/* inflight_release() queues op for the lock again, in arrival order */
	op->step = step;
	op->bnext = NULL;
	for (pp = &o->blocked; *pp; pp = &(*pp)->bnext)
		;
	*pp = op;
	qcow2_unlock(op);
	return true;
}

static void inflight_add(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;

	op->inext = p->inflight;
	p->inflight = op;
	op->in_flight = true;
}

static void inflight_release(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	struct qcow2_op **pp = &p->inflight, *b;

	if (!op->in_flight)
		return;
	while (*pp != op)
		pp = &(*pp)->inext;
	*pp = op->inext;
	op->in_flight = false;
	while ((b = op->blocked)) {
		op->blocked = b->bnext;
		qcow2_lock(b, b->step);
	}
}

void qcow2_write_fail(struct qcow2_op *op, int err)
{
	if (!op->err)
		op->err = err;
	op->walking = false;
	inflight_release(op);
	if (!op->pending)
		qcow2_write_finish(op);
}

/* ---- allocation of one cluster ---- */

enum { SRC_ZERO, SRC_DATA, SRC_BACKING };

/* Where the old entry keeps the unit at a (bytes into the cluster). */
static int unit_source(const struct qcow2_op *op, uint64_t a)
{
	struct qcow2_priv *p = op->img->priv;
	unsigned sc = (unsigned)(a >> p->sc_bits);
	uint64_t host = op->old_entry & QCOW2_OFFSET_MASK;

	if (p->ext_l2) {
		if (op->old_bitmap >> (32 + sc) & 1)
			return SRC_ZERO;
		return op->old_bitmap >> sc & 1 ? SRC_DATA : SRC_BACKING;
	}
	if (p->h.version >= 3 && (op->old_entry & QCOW2_OFLAG_ZERO))
		return SRC_ZERO;
	return host || p->data_fd != p->fd ? SRC_DATA : SRC_BACKING;
}

/* Does [a, b) of the cluster read as zeroes before this write? */
static bool source_zero(const struct qcow2_op *op, uint64_t a, uint64_t b)
{
	struct qcow2_priv *p = op->img->priv;
	struct td_image *parent = op->img->parent;
	uint64_t cstart = op->pos & ~(p->cluster_size - 1);
	uint64_t psize = parent ? parent->info.size : 0;

	if (a < b && (op->old_entry & QCOW2_OFLAG_COMPRESSED))
		return false;
	for (; a < b; a = ((a >> p->sc_bits) + 1) << p->sc_bits) {
		int src = unit_source(op, a);

		if (src == SRC_DATA ||
		    (src == SRC_BACKING && cstart + a < psize))
			return false;
	}
	return true;
}

/*
 * A fresh cluster written in part must still lie inside the file, or the
 * file would end inside it. Growing the file past alloc_next never cuts
 * anything off: nothing was ever written there.
 */
static bool cover_cluster(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t to = p->alloc_next + 32 * p->cluster_size;

	if (op->new_host + p->cluster_size <= p->file_end)
		return true;
	if (ftruncate(p->fd, (off_t)to) < 0) {
		td_warn("%s: cannot grow the file to %llu bytes: %s",
			op->img->path, (unsigned long long)to, strerror(errno));
		return false;
	}
	p->file_end = to;
	return true;
}

static void alloc_update(struct qcow2_op *op);

static void alloc_written(struct qcow2_op *op)
{
	if (op->err) {
		inflight_release(op);
		qcow2_write_finish(op);
		return;
	}
	qcow2_lock(op, alloc_update);
}

static void alloc_filled(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t in = op->pos & (p->cluster_size - 1);
	uint64_t n = op->end - op->pos;

	if (op->err) {
		inflight_release(op);
		qcow2_write_finish(op);
		return;
	}
	if (n > p->cluster_size - in)
		n = p->cluster_size - in;
	if (op->zero_src)
		memset((char *)op->buf + (in - op->w0), 0, n);
	else
		qcow2_iov_to_buf(op->req->iov, op->req->iovcnt,
				 op->pos - op->req->offset,
				 (char *)op->buf + (in - op->w0), n);
	op->iov1.iov_base = op->buf;
	op->iov1.iov_len = op->w1 - op->w0;
	op->io_done = alloc_written;
	qcow2_data_io(op, true, op->new_host + op->w0, &op->iov1, 1, 0);
}

/* Fill [a, b) of the new cluster from what the old entry says is there. */
static void alloc_source(struct qcow2_op *op, uint64_t a, uint64_t b)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t cstart = op->pos & ~(p->cluster_size - 1);
	uint64_t host = op->old_entry & QCOW2_OFFSET_MASK;

	if (op->old_entry & QCOW2_OFLAG_COMPRESSED) {
		struct iovec v = { (char *)op->buf + (a - op->w0), b - a };

		qcow2_compressed_read(op, op->old_entry, a, &v, 1);
		return;
	}
	while (a < b) {
		uint64_t e = ((a >> p->sc_bits) + 1) << p->sc_bits;
		uint64_t len = (e < b ? e : b) - a;
		struct iovec v = { (char *)op->buf + (a - op->w0), len };

		switch (unit_source(op, a)) {
		case SRC_ZERO:
			memset(v.iov_base, 0, len);
			break;
		case SRC_DATA:
			qcow2_data_io(op, false, host + a, &v, 1, 0);
			break;
		default:
			qcow2_parent_read(op, cstart + a, len, &v, 1);
			break;
		}
		a += len;
	}
}

static void alloc_fill(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t in = op->pos & (p->cluster_size - 1);
	uint64_t n = op->end - op->pos, host;
	bool replacing;

	if (n > p->cluster_size - in)
		n = p->cluster_size - in;
	host = op->old_entry & QCOW2_OFFSET_MASK;
	replacing = (op->old_entry & QCOW2_OFLAG_COMPRESSED) ||
		    (host && host != op->new_host);
	if (!p->ext_l2 || replacing) {
		op->w0 = 0;
		op->w1 = p->cluster_size;
	} else {
		op->w0 = in >> p->sc_bits << p->sc_bits;
		op->w1 = qcow2_align_up(in + n, 1ull << p->sc_bits);
	}
	/* a fresh cluster reads as zeroes: write only the new data */
	if (op->fresh && source_zero(op, op->w0, in) &&
	    source_zero(op, in + n, op->w1) && cover_cluster(op)) {
		op->w0 = in;
		op->w1 = in + n;
	}
	/*
	 * nothing of the old cluster to keep around the new bytes: they go
	 * to the file straight from the request, not through a bounce copy
	 */
	if (op->w0 == in && op->w1 == in + n) {
		qcow2_write_data(op, op->pos, n, op->new_host + in,
				 alloc_written);
		return;
	}
	op->buf_len = op->w1 - op->w0;
	op->buf = td_buf_get(op->buf_len);
	if (!op->buf) {
		qcow2_write_fail(op, -ENOMEM);
		return;
	}
	op->io_done = alloc_filled;
	op->pending++; /* hold completion until every source is queued */
	if (op->w0 < in)
		alloc_source(op, op->w0, in);
	if (in + n < op->w1)
		alloc_source(op, in + n, op->w1);
	qcow2_seg_finish(op, 0);
}

/*
 * Cap on one run, in bytes: the copy engine's requests (2 MiB) and more go
 * out whole, and one allocation never holds a large range for long.
 */
#define ALLOC_RUN_BYTES (4ull << 20)

uint64_t qcow2_alloc_run(struct qcow2_op *op, const void *l2, uint64_t idx)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t cs = p->cluster_size, c = op->pos >> p->cluster_bits;
	uint64_t max, k, start;
	struct qcow2_op *o;

	if ((op->pos & (cs - 1)) || op->zero_src || p->data_fd != p->fd ||
	    op->end - op->pos < cs)
		return 1;
	/* whole clusters of the request, in this L2 table, within the cap */
	max = (op->end - op->pos) >> p->cluster_bits;
	if (max > ALLOC_RUN_BYTES >> p->cluster_bits)
		max = ALLOC_RUN_BYTES >> p->cluster_bits;
	if (max > (1ull << p->l2_bits) - idx)
		max = (1ull << p->l2_bits) - idx;
	/* up to the first allocation in flight after pos (none covers pos) */
	for (o = p->inflight; o; o = o->inext) {
		start = o->pos >> p->cluster_bits;
		if (start > c && start - c < max)
			max = start - c;
	}
	/* a later cluster with data (or compressed) keeps its own path */
	for (k = 1; k < max; k++)
		if (qcow2_l2_entry(p, l2, idx + k) &
		    (QCOW2_OFFSET_MASK | QCOW2_OFLAG_COMPRESSED))
			break;
	return k;
}

/* Point the L2 entries of a whole run at its new clusters. */
static void alloc_update_run(struct qcow2_op *op, struct qcow2_centry *e)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t idx = qcow2_l2_index(p, op->pos), k;

	for (k = 0; k < op->nclust; k++)
		qcow2_l2_set(p, e->buf, idx + k,
			     (op->new_host + (k << p->cluster_bits)) |
				     QCOW2_OFLAG_COPIED,
			     p->ext_l2 ? 0xffffffffull : 0);
	qcow2_cache_dirty(e);
	inflight_release(op);
	op->pos += op->nclust << p->cluster_bits;
	op->nclust = 1;
	qcow2_write_step(op);
}

static void alloc_update(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t in = op->pos & (p->cluster_size - 1);
	uint64_t n = op->end - op->pos, entry, bitmap, host, idx;
	struct qcow2_centry *e;
	int rc;

	if (n > p->cluster_size - in)
		n = p->cluster_size - in;
	rc = qcow2_cache_get(&p->l2c, op->l2_off, &op->w, &e);
	if (rc == 1) {
		qcow2_op_wait(op, alloc_update);
		return;
	}
	if (rc < 0) {
		qcow2_write_fail(op, rc);
		return;
	}
	if (op->nclust > 1) {
		alloc_update_run(op, e);
		return;
	}
	idx = qcow2_l2_index(p, op->pos);
	host = op->old_entry & QCOW2_OFFSET_MASK;
	entry = op->new_host | QCOW2_OFLAG_COPIED;
	bitmap = 0;
	if (p->ext_l2) {
		uint64_t m =
			op->w0 == 0 && op->w1 == p->cluster_size ?
				0xffffffffull :
				qcow2_unit_mask(p, op->w0, op->w1 - op->w0);

		bitmap = qcow2_l2_bitmap(p, e->buf, idx);
		if ((op->old_entry & QCOW2_OFLAG_COMPRESSED) ||
		    (host && host != op->new_host))
			bitmap = 0xffffffffull;
		else
			bitmap |= m;
		bitmap &= ~(bitmap << 32) | 0xffffffffull;
		bitmap &= ~((bitmap & 0xffffffffull) << 32);
	}
	qcow2_l2_set(p, e->buf, idx, entry, bitmap);
	qcow2_cache_dirty(e);
	if ((op->old_entry & QCOW2_OFLAG_COMPRESSED) ||
	    (host && host != op->new_host))
		qcow2_free_entry(img, op->old_entry);
	if (op->buf)
		td_buf_put(op->buf, op->buf_len);
	op->buf = NULL;
	inflight_release(op);
	op->pos += n;
	qcow2_write_step(op);
}

void qcow2_alloc_cluster(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t host = op->old_entry & QCOW2_OFFSET_MASK;
	int rc;

	op->fresh = false;
	if (p->data_fd != p->fd) {
		/* an external data file maps guest offsets one to one */
		op->new_host = op->pos & ~(p->cluster_size - 1);
		op->nclust = 1;
	} else if (!(op->old_entry & QCOW2_OFLAG_COMPRESSED) && host &&
		   (op->old_entry & QCOW2_OFLAG_COPIED)) {
		op->new_host = host;
		op->nclust = 1;
	} else {
		/*
		 * A run of whole clusters is taken at once, contiguous, so its
		 * data goes out in one I/O (the run, counted under the lock,
		 * cannot change while this op holds it waiting here).
		 */
		rc = qcow2_alloc_clusters(op, op->nclust, &op->new_host,
					  qcow2_write_step);
		if (rc == 1)
			return;
		if (rc < 0) {
			qcow2_write_fail(op, rc);
			return;
		}
		/* taken past everything ever written (see qcow2-priv.h) */
		op->fresh = true;
	}
	inflight_add(op);
	qcow2_unlock(op);
	if (op->nclust > 1) {
		qcow2_write_data(op, op->pos, op->nclust << p->cluster_bits,
				 op->new_host, alloc_written);
		return;
	}
	alloc_fill(op);
}

/* A new L2 table for l1 index i, copied from a shared one if there is. */
static int new_l2(struct qcow2_op *op, uint64_t i, const void *old,
		  void (*step)(struct qcow2_op *op))
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t off, oldoff = p->l1[i] & QCOW2_OFFSET_MASK, k;
	struct qcow2_centry *e;
	int rc;

	rc = qcow2_alloc_clusters(op, 1, &off, step);
	if (rc)
		return rc;
	e = qcow2_cache_new(&p->l2c, off);
	if (!e)
		return -ENOMEM;
	if (old) {
		memcpy(e->buf, old, p->cluster_size);
		/* the data clusters are now shared by two tables */
		for (k = 0; k < (1ull << p->l2_bits); k++) {
			uint64_t ent = qcow2_l2_entry(p, e->buf, k);

			qcow2_l2_set(p, e->buf, k, ent & ~QCOW2_OFLAG_COPIED,
				     qcow2_l2_bitmap(p, e->buf, k));
		}
		qcow2_add_free(img, oldoff, 1);
	}
	p->l1[i] = off | QCOW2_OFLAG_COPIED;
	if (p->l1_dirty_hi <= p->l1_dirty_lo) {
		p->l1_dirty_lo = (uint32_t)i;
		p->l1_dirty_hi = (uint32_t)i + 1;
	} else {
		if (i < p->l1_dirty_lo)
			p->l1_dirty_lo = (uint32_t)i;
		if (i >= p->l1_dirty_hi)
			p->l1_dirty_hi = (uint32_t)i + 1;
	}
	return 0;
}

int qcow2_l2_writable(struct qcow2_op *op, void (*step)(struct qcow2_op *op),
		      struct qcow2_centry **out)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint32_t tbits = p->cluster_bits + p->l2_bits;
	int rc;

	for (;;) {
		uint64_t l1i = op->pos >> tbits, l1e = p->l1[l1i];
		uint64_t l2off = l1e & QCOW2_OFFSET_MASK;
		struct qcow2_centry *e = NULL;
		void *old = NULL;

		if (l2off) {
			rc = qcow2_check_offset(img, l2off, "L2 table",
						op->pos);
			if (!rc)
				rc = qcow2_cache_get(&p->l2c, l2off, &op->w,
						     &e);
			if (rc == 1)
				qcow2_op_wait(op, step);
			if (rc)
				return rc;
			if (l1e & QCOW2_OFLAG_COPIED) {
				op->l2_off = l2off;
				*out = e;
				return 0;
			}
			/* the cache may evict e while the new one is added */
			old = td_buf_get(p->cluster_size);
			if (!old)
				return -ENOMEM;
			memcpy(old, e->buf, p->cluster_size);
		}
		rc = new_l2(op, l1i, old, step);
		if (old)
			td_buf_put(old, p->cluster_size);
		if (rc)
			return rc;
	}
}

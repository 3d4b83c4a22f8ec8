// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 reads and block status. A read walks its range through the L1 and
 * L2 tables and merges neighbouring clusters into runs: host-contiguous data
 * goes to the file in one I/O, zero clusters are filled here, unallocated
 * ranges go to the layers below, compressed clusters are inflated. With an
 * L2 hit on allocated data, a read is one I/O on the file, as for raw.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qcow2-priv.h"

enum { RUN_NONE, RUN_DATA, RUN_ZERO, RUN_BACKING };

static void read_fast_done(struct td_iocb *cb, long res)
{
	struct qcow2_op *op = cb->data;
	struct td_request *req = op->req;
	int err = res < 0 ? (int)res : 0;

	if (!err && (uint64_t)res < req->len)
		qcow2_iov_memset(req->iov, req->iovcnt, (uint64_t)res,
				 req->len - (uint64_t)res);
	if (err)
		td_err("%s: read of %llu bytes at host offset %llu: %s",
		       op->img->path, (unsigned long long)req->len,
		       (unsigned long long)cb->offset, strerror(-err));
	qcow2_seg_finish(op, err);
}

static void read_emit(struct qcow2_op *op)
{
	struct td_request *req = op->req;
	struct qcow2_priv *p = op->img->priv;
	uint64_t off = op->run_off - req->offset;
	struct iovec small[4], *iov;
	int n;

	if (op->run == RUN_NONE)
		return;
	if (op->run == RUN_ZERO) {
		qcow2_iov_memset(req->iov, req->iovcnt, off, op->run_len);
		op->run = RUN_NONE;
		return;
	}
	if (op->run == RUN_DATA && off == 0 && op->run_len == req->len) {
		op->cb.op = TD_IO_READ;
		op->cb.fd = p->data_fd;
		op->cb.flags = 0;
		op->cb.offset = op->run_host;
		op->cb.iov = req->iov;
		op->cb.iovcnt = req->iovcnt;
		op->cb.done = read_fast_done;
		op->cb.data = op;
		op->pending++;
		op->run = RUN_NONE;
		td_io_queue(op->img->io, &op->cb);
		return;
	}
	n = qcow2_iov_slice(req->iov, req->iovcnt, off, op->run_len, &iov,
			    small, 4);
	if (n < 0) {
		op->pending++;
		qcow2_seg_finish(op, n);
	} else if (op->run == RUN_DATA) {
		qcow2_data_io(op, false, op->run_host, iov, n, 0);
	} else {
		qcow2_parent_read(op, op->run_off, op->run_len, iov, n);
	}
	if (n >= 0 && iov != small)
		free(iov);
	op->run = RUN_NONE;
}

static void read_add(struct qcow2_op *op, int type, uint64_t goff,
		     uint64_t len, uint64_t host)
{
	if (op->run == type && op->run_off + op->run_len == goff &&
	    (type != RUN_DATA || op->run_host + op->run_len == host)) {
		op->run_len += len;
		return;
	}
	read_emit(op);
	op->run = type;
	op->run_off = goff;
	op->run_len = len;
	op->run_host = host;
}

static void walk_fail(struct qcow2_op *op, int err)
{
	if (!op->err)
		op->err = err;
	op->walking = false;
	if (!op->pending)
		op->io_done(op);
}

/* The unit kind at one subcluster (or cluster) of an L2 entry. */
static int unit_kind(struct td_image *img, uint64_t entry, uint64_t bitmap,
		     unsigned sc, uint64_t guest)
{
	struct qcow2_priv *p = img->priv;
	uint64_t host = entry & QCOW2_OFFSET_MASK;

	if (p->ext_l2) {
		bool a = bitmap >> sc & 1, z = bitmap >> (32 + sc) & 1;

		if (a && z) {
			td_err("%s: corrupt image: subcluster %u of guest "
			       "offset %llu is both allocated and zero",
			       img->path, sc, (unsigned long long)guest);
			return -EIO;
		}
		if (z)
			return RUN_ZERO;
		if (!a)
			return RUN_BACKING;
	} else {
		if (p->h.version >= 3 && (entry & QCOW2_OFLAG_ZERO))
			return RUN_ZERO;
		if (!host && !(p->data_fd != p->fd &&
			       (entry & QCOW2_OFLAG_COPIED)))
			return RUN_BACKING;
	}
	if (p->data_fd == p->fd &&
	    qcow2_check_offset(img, host, "data cluster", guest))
		return -EIO;
	return RUN_DATA;
}

static int read_cluster(struct qcow2_op *op, const void *l2, uint64_t idx,
			uint64_t n)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t entry = qcow2_l2_entry(p, l2, idx);
	uint64_t bitmap = qcow2_l2_bitmap(p, l2, idx);
	uint64_t in = op->pos & (p->cluster_size - 1);
	uint64_t host = entry & QCOW2_OFFSET_MASK, done = 0;

	if (entry & QCOW2_OFLAG_COMPRESSED) {
		struct iovec small[4], *iov;
		int k;

		if (p->data_fd != p->fd) {
			td_err("%s: corrupt image: compressed cluster with an "
			       "external data file",
			       img->path);
			return -EIO;
		}
		read_emit(op);
		k = qcow2_iov_slice(op->req->iov, op->req->iovcnt,
				    op->pos - op->req->offset, n, &iov, small,
				    4);
		if (k < 0)
			return k;
		qcow2_compressed_read(op, entry, in, iov, k);
		if (iov != small)
			free(iov);
		return 0;
	}
	while (done < n) {
		unsigned sc = (unsigned)((in + done) >> p->sc_bits);
		uint64_t unit_end = (uint64_t)(sc + 1) << p->sc_bits;
		uint64_t len = unit_end - (in + done);
		int kind = unit_kind(img, entry, bitmap, sc, op->pos + done);

		if (kind < 0)
			return kind;
		if (len > n - done)
			len = n - done;
		read_add(op, kind, op->pos + done, len, host + in + done);
		done += len;
	}
	return 0;
}

static void read_step(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint32_t tbits = p->cluster_bits + p->l2_bits;
	int rc;

	op->walking = true;
	while (op->pos < op->end) {
		uint64_t l1i = op->pos >> tbits;
		uint64_t tend = (l1i + 1) << tbits;
		uint64_t l2off = p->l1[l1i] & QCOW2_OFFSET_MASK;
		struct qcow2_centry *e;

		if (tend > op->end)
			tend = op->end;
		if (!l2off) {
			read_add(op, RUN_BACKING, op->pos, tend - op->pos, 0);
			op->pos = tend;
			continue;
		}
		rc = qcow2_check_offset(img, l2off, "L2 table", op->pos);
		if (!rc)
			rc = qcow2_cache_get(&p->l2c, l2off, &op->w, &e);
		if (rc == 1) {
			qcow2_op_wait(op, read_step);
			return;
		}
		if (rc < 0) {
			read_emit(op);
			walk_fail(op, rc);
			return;
		}
		while (op->pos < tend) {
			uint64_t cend = (op->pos | (p->cluster_size - 1)) + 1;
			uint64_t n = (cend < tend ? cend : tend) - op->pos;

			rc = read_cluster(op, e->buf,
					  (op->pos >> p->cluster_bits) &
						  ((1ull << p->l2_bits) - 1),
					  n);
			if (rc) {
				read_emit(op);
				walk_fail(op, rc);
				return;
			}
			op->pos += n;
		}
	}
	read_emit(op);
	op->walking = false;
	if (!op->pending)
		op->io_done(op);
}

static void op_finish(struct qcow2_op *op)
{
	qcow2_op_end(op, op->err);
}

void qcow2_queue_read(struct td_image *img, struct td_request *req)
{
	struct qcow2_op *op = qcow2_op_new(img, req);

	if (!op)
		return;
	op->io_done = op_finish;
	read_step(op);
}

static void bs_sub_done(struct td_request *sub, int err)
{
	struct qcow2_op *op = sub->io_data;

	op->req->status = sub->status;
	qcow2_op_end(op, err);
}

static void bs_finish(struct qcow2_op *op, int kind, uint64_t len)
{
	struct td_image *img = op->img;
	struct td_request *req = op->req;
	uint64_t psize = img->parent ? img->parent->info.size : 0;

	if (kind == RUN_BACKING && op->pos < psize) {
		memset(&op->sub, 0, sizeof(op->sub));
		op->sub.op = TD_OP_BLOCK_STATUS;
		op->sub.offset = op->pos;
		op->sub.len = len < psize - op->pos ? len : psize - op->pos;
		op->sub.io_done = bs_sub_done;
		op->sub.io_data = op;
		td_image_forward(img, &op->sub);
		return;
	}
	req->status.len = len;
	req->status.flags = kind == RUN_DATA ? 0 : TD_BS_HOLE | TD_BS_ZERO;
	req->status.depth = kind == RUN_BACKING ? -1 : img->depth;
	qcow2_op_end(op, 0);
}

static void bs_step(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint32_t tbits = p->cluster_bits + p->l2_bits;
	uint64_t l1i = op->pos >> tbits, tend = (l1i + 1) << tbits;
	uint64_t l2off = p->l1[l1i] & QCOW2_OFFSET_MASK, pos = op->pos;
	struct qcow2_centry *e;
	int rc, kind = -1;

	if (tend > op->end)
		tend = op->end;
	if (!l2off) {
		bs_finish(op, RUN_BACKING, tend - pos);
		return;
	}
	rc = qcow2_check_offset(img, l2off, "L2 table", pos);
	if (!rc)
		rc = qcow2_cache_get(&p->l2c, l2off, &op->w, &e);
	if (rc == 1) {
		qcow2_op_wait(op, bs_step);
		return;
	}
	if (rc < 0) {
		qcow2_op_end(op, rc);
		return;
	}
	while (pos < tend) {
		uint64_t idx = (pos >> p->cluster_bits) &
			       ((1ull << p->l2_bits) - 1);
		uint64_t entry = qcow2_l2_entry(p, e->buf, idx);
		uint64_t bitmap = qcow2_l2_bitmap(p, e->buf, idx);
		uint64_t in = pos & (p->cluster_size - 1), len;
		int k;

		if (entry & QCOW2_OFLAG_COMPRESSED) {
			k = RUN_DATA;
			len = p->cluster_size - in;
		} else {
			unsigned sc = (unsigned)(in >> p->sc_bits);

			k = unit_kind(img, entry, bitmap, sc, pos);
			if (k < 0) {
				qcow2_op_end(op, k);
				return;
			}
			len = ((uint64_t)(sc + 1) << p->sc_bits) - in;
		}
		if (kind >= 0 && k != kind)
			break;
		kind = k;
		pos += len;
	}
	if (pos > tend)
		pos = tend;
	bs_finish(op, kind, pos - op->pos);
}

void qcow2_block_status(struct td_image *img, struct td_request *req)
{
	struct qcow2_op *op = qcow2_op_new(img, req);

	if (!op)
		return;
	op->io_done = op_finish;
	bs_step(op);
}

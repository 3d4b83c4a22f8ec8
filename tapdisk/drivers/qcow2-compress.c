// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compressed clusters: zlib as qemu writes it (raw deflate, 4 KiB window,
 * no header) and zstd frames. A compressed cluster always inflates to one
 * whole cluster; anything else is a corrupt image. Also the compressed
 * writes of qcow2.h, which run as an ordinary op under the metadata lock.
 */
#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "buf.h"
#include "drivers.h"
#include "log.h"
#include "loop.h"
#include "qcow2-priv.h"
#include "qcow2.h"

static int inflate_zlib(const void *src, size_t srclen, void *dst,
			size_t dstlen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)srclen;
	z.next_out = dst;
	z.avail_out = (uInt)dstlen;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	/* the input is padded to a sector: stopping early is the norm */
	if ((rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK) &&
	    z.avail_out == 0)
		return 0;
	return -EIO;
}

static int inflate_zstd(const void *src, size_t srclen, void *dst,
			size_t dstlen)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_inBuffer in = { src, srclen, 0 };
	ZSTD_outBuffer out = { dst, dstlen, 0 };
	int err = 0;

	if (!dc)
		return -ENOMEM;
	while (out.pos < out.size) {
		size_t before = out.pos, r;

		r = ZSTD_decompressStream(dc, &out, &in);
		/* one frame per cluster: ending short of it is corruption */
		if (ZSTD_isError(r) || (r == 0 && out.pos < out.size) ||
		    (in.pos >= in.size && out.pos == before)) {
			err = -EIO;
			break;
		}
	}
	ZSTD_freeDCtx(dc);
	return err;
}

int qcow2_decompress(const struct qcow2_priv *p, const void *src,
		     size_t srclen, void *dst, size_t dstlen)
{
	if (p->h.compression_type == QCOW2_COMP_ZSTD)
		return inflate_zstd(src, srclen, dst, dstlen);
	return inflate_zlib(src, srclen, dst, dstlen);
}

int qcow2_compress(const struct qcow2_priv *p, const void *src, size_t len,
		   void *dst, size_t dstlen, size_t *outlen)
{
	if (p->h.compression_type == QCOW2_COMP_ZSTD) {
		size_t r = ZSTD_compress(dst, dstlen, src, len, 3);

		if (ZSTD_isError(r))
			return -ENOSPC;
		*outlen = r;
		return 0;
	} else {
		z_stream z;
		int rc;

		memset(&z, 0, sizeof(z));
		if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		z.next_in = (Bytef *)src;
		z.avail_in = (uInt)len;
		z.next_out = dst;
		z.avail_out = (uInt)dstlen;
		rc = deflate(&z, Z_FINISH);
		*outlen = dstlen - z.avail_out;
		deflateEnd(&z);
		return rc == Z_STREAM_END ? 0 : -ENOSPC;
	}
}

/* ---- compressed cluster writes (qcow2.h) ---- */

enum { CW_L2, CW_ALLOC, CW_REF, CW_SET };

uint64_t qcow2_cluster_size(struct td_image *img)
{
	struct qcow2_priv *p;

	if (!img || img->drv != &td_driver_qcow2)
		return 0;
	p = img->priv;
	return p->cluster_size;
}

/* The compressed bytes travel as the op's request iovec. */
static uint64_t cw_csize(const struct qcow2_op *op)
{
	return op->req->iov[0].iov_len;
}

static void cw_end(struct qcow2_op *op)
{
	qcow2_op_end(op, op->err);
}

static void cw_fail(struct qcow2_op *op, int err)
{
	if (!op->err)
		op->err = err;
	cw_end(op);
}

/* Raise the host cluster that holds off by one: one more user. */
static int cw_share(struct qcow2_op *op, uint64_t off)
{
	struct qcow2_priv *p = op->img->priv;

	op->new_host = off;
	p->comp_refs++;
	return qcow2_ref_queue(op->img, off & ~(p->cluster_size - 1), 1);
}

static void cw_step(struct qcow2_op *op);

/* The L2 table, and where the data goes if the current cluster has room. */
static void cw_l2(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t cs = p->cluster_size, csize = cw_csize(op), idx, entry;
	uint64_t cend = qcow2_align_up(p->comp_next, cs);
	struct qcow2_centry *e;
	bool room;
	int rc;

	if (qcow2_wait_inflight(op, cw_step))
		return;
	rc = qcow2_l2_writable(op, cw_step, &e);
	if (rc == 1)
		return;
	if (rc < 0) {
		cw_fail(op, rc);
		return;
	}
	idx = (op->pos >> p->cluster_bits) & ((1ull << p->l2_bits) - 1);
	entry = qcow2_l2_entry(p, e->buf, idx);
	if ((entry & (QCOW2_OFLAG_COMPRESSED | QCOW2_OFFSET_MASK)) ||
	    (qcow2_l2_bitmap(p, e->buf, idx) & 0xffffffffull)) {
		td_err("%s: compressed write to guest offset %llu: the cluster "
		       "is already allocated",
		       img->path, (unsigned long long)op->pos);
		cw_fail(op, -EEXIST);
		return;
	}
	/* narrow refcounts (refcount_bits=1) cannot count another user */
	room = p->comp_next && p->comp_refs < p->rc_max;
	if (room && csize <= cend - p->comp_next) {
		rc = cw_share(op, p->comp_next);
		if (rc) {
			cw_fail(op, rc);
			return;
		}
		op->stage = CW_REF;
	} else {
		/* qemu's rule: spill into the next cluster if it is next */
		op->span = room && p->alloc_next == cend;
		op->stage = CW_ALLOC;
	}
	cw_step(op);
}

static void cw_alloc(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t cs = p->cluster_size, host;
	int rc;

	rc = qcow2_alloc_clusters(op, 1, &host, cw_step);
	if (rc == 1)
		return;
	if (rc < 0) {
		cw_fail(op, rc);
		return;
	}
	if (op->span && host == qcow2_align_up(p->comp_next, cs)) {
		rc = cw_share(op, p->comp_next);
		if (rc) {
			cw_fail(op, rc);
			return;
		}
	} else {
		op->new_host = host;
		p->comp_refs = 1;
		p->cbuf_host = host;
		memset(p->cbuf, 0, 2 * cs);
	}
	op->stage = CW_REF;
	cw_step(op);
}

/* Refcounts raised: copy the data into place and write its sectors. */
static void cw_write(struct qcow2_op *op)
{
	struct qcow2_priv *p = op->img->priv;
	uint64_t csize = cw_csize(op), at = op->new_host - p->cbuf_host;
	uint64_t lo = at / p->align * p->align;
	uint64_t hi = qcow2_align_up(at + csize, p->align);
	int rc;

	rc = qcow2_ref_drain(op, cw_step);
	if (rc == 1)
		return;
	if (rc < 0) {
		cw_fail(op, rc);
		return;
	}
	memcpy((char *)p->cbuf + at, op->req->iov[0].iov_base, csize);
	p->comp_next = op->new_host + csize;
	op->iov1.iov_base = (char *)p->cbuf + lo;
	op->iov1.iov_len = hi - lo;
	op->stage = CW_SET;
	op->io_done = cw_step;
	op->walking = false;
	qcow2_data_io(op, true, p->cbuf_host + lo, &op->iov1, 1, 0);
}

/* Written: point the L2 entry at it, and move cbuf on to a new cluster. */
static void cw_set(struct qcow2_op *op)
{
	struct td_image *img = op->img;
	struct qcow2_priv *p = img->priv;
	uint64_t cs = p->cluster_size, x = 62 - (p->cluster_bits - 8);
	uint64_t csize = cw_csize(op), idx, nsec, entry;
	struct qcow2_centry *e;
	int rc;

	if (p->comp_next - p->cbuf_host >= cs) {
		memmove(p->cbuf, (char *)p->cbuf + cs, cs);
		memset((char *)p->cbuf + cs, 0, cs);
		p->cbuf_host += cs;
		p->comp_refs = 1;
		/* ended on the boundary: the next cluster is not ours */
		if (p->comp_next == p->cbuf_host)
			p->comp_next = 0;
	}
	if (op->err) {
		cw_end(op);
		return;
	}
	rc = qcow2_cache_get(&p->l2c, op->l2_off, &op->w, &e);
	if (rc == 1) {
		qcow2_op_wait(op, cw_step);
		return;
	}
	if (rc < 0) {
		cw_fail(op, rc);
		return;
	}
	idx = (op->pos >> p->cluster_bits) & ((1ull << p->l2_bits) - 1);
	nsec = ((op->new_host + csize - 1) >> 9) - (op->new_host >> 9);
	entry = op->new_host | nsec << x | QCOW2_OFLAG_COMPRESSED;
	qcow2_l2_set(p, e->buf, idx, entry, 0);
	qcow2_cache_dirty(e);
	cw_end(op);
}

static void cw_step(struct qcow2_op *op)
{
	switch (op->stage) {
	case CW_L2:
		cw_l2(op);
		break;
	case CW_ALLOC:
		cw_alloc(op);
		break;
	case CW_REF:
		cw_write(op);
		break;
	default:
		cw_set(op);
		break;
	}
}

struct cw_wait {
	bool done;
	int err;
};

static void cw_done(struct td_request *req, int err)
{
	struct cw_wait *w = req->io_data;

	w->done = true;
	w->err = err;
}

/* Queue req (compressed: through cw_step under the lock) and wait. */
static int cw_run(struct td_image *img, struct td_request *req,
		  bool compressed)
{
	struct cw_wait w = { false, 0 };
	struct qcow2_op *op;
	int rc;

	req->io_done = cw_done;
	req->io_data = &w;
	if (!compressed) {
		td_image_queue(img, req);
	} else {
		op = qcow2_op_new(img, req);
		if (op) {
			op->io_done = cw_end;
			op->stage = CW_L2;
			qcow2_lock(op, cw_step);
		}
	}
	while (!w.done) {
		rc = td_loop_once(img->loop, -1);
		if (rc < 0)
			return rc;
	}
	return w.err;
}

static int cw_check(struct td_image *img, uint64_t off, size_t len)
{
	struct qcow2_priv *p = img->priv;
	uint64_t cs = p->cluster_size;

	if (p->readonly) {
		td_err("%s: compressed write on an image opened read-only",
		       img->path);
		return -EROFS;
	}
	if (p->data_fd != p->fd) {
		td_err("%s: qcow2 does not allow compressed clusters with an "
		       "external data file",
		       img->path);
		return -ENOTSUP;
	}
	if (off % cs || off >= p->h.size ||
	    len != (p->h.size - off < cs ? p->h.size - off : cs)) {
		td_err("%s: compressed write of %zu bytes at %llu: not one "
		       "whole cluster of %llu bytes",
		       img->path, len, (unsigned long long)off,
		       (unsigned long long)cs);
		return -EINVAL;
	}
	if (!p->cbuf) {
		p->cbuf = td_buf_get(2 * cs);
		if (!p->cbuf) {
			td_err("%s: no memory for compressed writes",
			       img->path);
			return -ENOMEM;
		}
	}
	return 0;
}

int qcow2_write_compressed(struct td_image *img, uint64_t guest_offset,
			   const void *data, size_t len)
{
	struct qcow2_priv *p;
	struct td_request req;
	struct iovec iov;
	size_t cs, clen = 0;
	void *in, *out;
	int rc;

	if (!img || img->drv != &td_driver_qcow2) {
		td_err("%s: compressed writes need a qcow2 image",
		       img ? img->path : "(none)");
		return -EINVAL;
	}
	rc = cw_check(img, guest_offset, len);
	if (rc)
		return rc;
	p = img->priv;
	cs = p->cluster_size;
	in = td_buf_get(cs);
	out = td_buf_get(cs);
	if (!in || !out) {
		td_err("%s: no memory to compress a cluster", img->path);
		rc = -ENOMEM;
		goto out;
	}
	/* a short final cluster inflates to a whole one all the same */
	memcpy(in, data, len);
	memset((char *)in + len, 0, cs - len);
	/* qemu's threshold: anything that does not save a byte is raw */
	rc = qcow2_compress(p, in, cs, out, cs - 1, &clen);
	memset(&req, 0, sizeof(req));
	req.op = TD_OP_WRITE;
	req.offset = guest_offset;
	req.len = cs;
	req.iov = &iov;
	req.iovcnt = 1;
	iov.iov_base = rc ? in : out;
	iov.iov_len = rc ? cs : clen;
	rc = cw_run(img, &req, rc == 0);
	if (rc)
		td_err("%s: compressed write at guest offset %llu: %s",
		       img->path, (unsigned long long)guest_offset,
		       strerror(-rc));
out:
	td_buf_put(in, cs);
	td_buf_put(out, cs);
	return rc;
}

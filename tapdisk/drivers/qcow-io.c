// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow version 1, the data path's core: requests walked cluster run by
 * cluster run, their parts in flight, the L2 table cache, reads, flushes
 * and block status. Writes are in qcow-write.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "buf.h"
#include "file-util.h"
#include "io.h"
#include "log.h"
#include "qcow-priv.h"

/* ---- buffers ---- */

/* s->iov = [from, from + len) of the request's data (from: disk offset) */
int qcow_slice(struct qcow_sub *s, uint64_t from, uint64_t len)
{
	const struct td_request *req = s->qr->req;
	uint64_t at = 0, left = len, l, b, e;
	struct iovec *v;
	int i, n = 0;

	from -= req->offset;
	if (s->qr->zero) {
		/* the source of write_zeroes: the shared zero page run */
		n = (int)((len + TD_ZERO_BUF_SIZE - 1) / TD_ZERO_BUF_SIZE);
		v = n == 1 ? &s->one : calloc(n, sizeof(*v));
		if (!v || !td_zero_buf())
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			v[i].iov_base = (void *)td_zero_buf();
			v[i].iov_len = qcow_min(left, TD_ZERO_BUF_SIZE);
			left -= v[i].iov_len;
		}
		s->iov = v;
		s->iovcnt = n;
		return 0;
	}
	for (i = 0; i < req->iovcnt; i++) {
		l = req->iov[i].iov_len;
		if (at + l > from && at < from + len)
			n++;
		at += l;
	}
	v = n == 1 ? &s->one : calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	at = 0;
	n = 0;
	for (i = 0; i < req->iovcnt && left; i++) {
		l = req->iov[i].iov_len;
		if (at + l <= from) {
			at += l;
			continue;
		}
		b = from > at ? from - at : 0;
		e = qcow_min(l, b + left);
		v[n].iov_base = (char *)req->iov[i].iov_base + b;
		v[n].iov_len = e - b;
		left -= e - b;
		n++;
		at += l;
	}
	s->iov = v;
	s->iovcnt = n;
	return 0;
}

void qcow_iov_from_buf(const struct iovec *iov, int cnt, const uint8_t *src)
{
	int i;

	for (i = 0; i < cnt; i++) {
		memcpy(iov[i].iov_base, src, iov[i].iov_len);
		src += iov[i].iov_len;
	}
}

void qcow_iov_to_buf(uint8_t *dst, const struct iovec *iov, int cnt)
{
	int i;

	for (i = 0; i < cnt; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

static bool qcow_iov_aligned(const struct iovec *iov, int cnt, unsigned a)
{
	int i;

	for (i = 0; i < cnt; i++)
		if ((uintptr_t)iov[i].iov_base % a || iov[i].iov_len % a)
			return false;
	return true;
}

int qcow_bounce(struct qcow_sub *s, size_t len)
{
	s->buflen = qcow_align_up(len ? len : 1, TD_BUF_ALIGN);
	s->buf = td_buf_get(s->buflen);
	return s->buf ? 0 : -ENOMEM;
}

/* ---- requests and their parts ---- */

struct qcow_req *qcow_req_new(struct td_image *img, struct td_request *req,
			      int (*step)(struct qcow_req *))
{
	struct qcow_req *qr = calloc(1, sizeof(*qr));

	if (!qr) {
		td_err("%s: no memory for a %s request", img->name,
		       td_op_name(req->op));
		td_request_complete(img, req, -ENOMEM);
		return NULL;
	}
	qr->img = img;
	qr->req = req;
	qr->step = step;
	qr->pos = req->offset;
	qr->end = req->offset + req->len;
	return qr;
}

struct qcow_sub *qcow_sub_new(struct qcow_req *qr,
			      void (*done)(struct qcow_sub *, int))
{
	struct qcow_sub *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->qr = qr;
	s->done = done;
	s->cb.data = s;
	s->cb.fd = ((struct qcow_priv *)qr->img->priv)->fd;
	return s;
}

void qcow_sub_free(struct qcow_sub *s)
{
	if (s->iov && s->iov != &s->one)
		free(s->iov);
	if (s->buf)
		td_buf_put(s->buf, s->buflen);
	free(s);
}

void qcow_fail(struct qcow_req *qr, int err)
{
	if (err && !qr->err)
		qr->err = err;
}

/* The end of a part of a request: count it and carry on walking. */
void qcow_sub_req_done(struct qcow_sub *s, int err)
{
	struct qcow_req *qr = s->qr;

	qcow_fail(qr, err);
	qcow_sub_free(s);
	qr->pending--;
	qcow_walk(qr);
}

static void qcow_alloc_grant(struct td_loop *loop, void *data)
{
	struct td_image *img = data;
	struct qcow_priv *p = img->priv;
	struct qcow_req *qr;

	if (p->alloc_owner || !p->alloc_head)
		return;
	qr = p->alloc_head;
	p->alloc_head = qr->next;
	if (!p->alloc_head)
		p->alloc_tail = NULL;
	qr->next = NULL;
	qr->waiting = false;
	p->alloc_owner = qr;
	qcow_walk(qr);
}

/* Take the allocation lock, or queue for it (false). */
bool qcow_alloc_lock(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;

	if (p->alloc_owner == qr)
		return true;
	if (!p->alloc_owner && !p->alloc_head) {
		p->alloc_owner = qr;
		return true;
	}
	qr->waiting = true;
	qr->next = NULL;
	if (p->alloc_tail)
		p->alloc_tail->next = qr;
	else
		p->alloc_head = qr;
	p->alloc_tail = qr;
	return false;
}

static void qcow_alloc_unlock(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;

	if (p->alloc_owner != qr)
		return;
	p->alloc_owner = NULL;
	/* the next one starts from the loop, not inside this request */
	if (p->alloc_head)
		td_loop_defer(qr->img->loop, &p->alloc_defer, qcow_alloc_grant,
			      qr->img);
}

void qcow_walk(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	int rc;

	if (qr->walking)
		return;
	qr->walking = true;
	while (!qr->err && qr->pos < qr->end && !qr->waiting &&
	       !qr->allocating && qr->pending < QCOW_SUBS_MAX) {
		rc = qr->step(qr);
		if (rc == -EAGAIN)
			break;
		qcow_fail(qr, rc);
	}
	qr->walking = false;
	if (qr->waiting || qr->allocating)
		return;
	if (qr->err || qr->pos >= qr->end)
		qcow_alloc_unlock(qr);
	if (qr->pending || (!qr->err && qr->pos < qr->end))
		return;
	td_request_complete(img, qr->req, qr->err);
	free(qr);
}

/* ---- the L2 cache ---- */

void qcow_l2_free(struct qcow_priv *p, struct qcow_l2 *l2)
{
	if (l2->table)
		td_buf_put(l2->table, p->g.l2_bytes);
	free(l2);
}

static void qcow_l2_unlink(struct qcow_priv *p, struct qcow_l2 *l2)
{
	struct qcow_l2 **pp;

	for (pp = &p->l2s; *pp; pp = &(*pp)->next) {
		if (*pp == l2) {
			*pp = l2->next;
			p->nl2--;
			return;
		}
	}
}

/* Over the bound because everything was busy: shrink back when we can. */
static void qcow_l2_trim(struct qcow_priv *p)
{
	struct qcow_l2 *l2, *lru;

	while (p->nl2 > QCOW_L2_CACHE) {
		lru = NULL;
		for (l2 = p->l2s; l2; l2 = l2->next)
			if (!l2->pins && !l2->loading &&
			    (!lru || l2->stamp < lru->stamp))
				lru = l2;
		if (!lru)
			return;
		qcow_l2_unlink(p, lru);
		qcow_l2_free(p, lru);
	}
}

void qcow_l2_insert(struct qcow_priv *p, struct qcow_l2 *l2)
{
	l2->stamp = ++p->stamp;
	l2->next = p->l2s;
	p->l2s = l2;
	p->nl2++;
	if (!l2->loading)
		qcow_l2_trim(p);
}

struct qcow_l2 *qcow_l2_alloc(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	struct qcow_l2 *l2 = calloc(1, sizeof(*l2));

	if (!l2)
		return NULL;
	l2->table = td_buf_get(p->g.l2_bytes);
	if (!l2->table) {
		free(l2);
		return NULL;
	}
	l2->img = img;
	l2->cb.data = l2;
	return l2;
}

/* A table to load into: the least recently used idle one, or a new one. */
static struct qcow_l2 *qcow_l2_victim(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	struct qcow_l2 *l2, *lru = NULL;

	if (p->nl2 >= QCOW_L2_CACHE) {
		for (l2 = p->l2s; l2; l2 = l2->next)
			if (!l2->pins && !l2->loading &&
			    (!lru || l2->stamp < lru->stamp))
				lru = l2;
	}
	if (lru) {
		qcow_l2_unlink(p, lru);
		return lru;
	}
	return qcow_l2_alloc(img);
}

void qcow_l2_unpin(struct td_image *img, struct qcow_l2 *l2)
{
	if (!--l2->pins)
		qcow_l2_trim(img->priv);
}

static void qcow_l2_loaded(struct td_iocb *cb, long res)
{
	struct qcow_l2 *l2 = cb->data;
	struct td_image *img = l2->img;
	struct qcow_priv *p = img->priv;
	struct qcow_req *qr, *next;
	int err = 0;

	if (res < 0 || (uint64_t)res != p->g.l2_bytes) {
		err = res < 0 ? (int)res : -EIO;
		td_err("%s: cannot read the L2 table at %llu: %s", p->file,
		       (unsigned long long)l2->off, strerror(-err));
	}
	l2->loading = false;
	qr = l2->waiters;
	l2->waiters = NULL;
	if (err) {
		qcow_l2_unlink(p, l2);
		qcow_l2_free(p, l2);
	}
	for (; qr; qr = next) {
		next = qr->next;
		qr->next = NULL;
		qr->waiting = false;
		if (err)
			qcow_fail(qr, -EIO);
		qcow_walk(qr);
	}
}

/*
 * The L2 table of L1 entry l1i. If it is not in memory: with qr, start
 * loading it, queue qr for it and return -EAGAIN; without, just -EAGAIN.
 */
static int qcow_l2_get(struct td_image *img, uint64_t l1i, struct qcow_req *qr,
		       struct qcow_l2 **out)
{
	struct qcow_priv *p = img->priv;
	uint64_t off = p->l1[l1i];
	struct qcow_l2 *l2;

	for (l2 = p->l2s; l2; l2 = l2->next)
		if (l2->off == off)
			break;
	if (l2 && !l2->loading) {
		l2->stamp = ++p->stamp;
		*out = l2;
		return 0;
	}
	if (!qr)
		return -EAGAIN;
	if (!l2) {
		if (off % p->align || off < QCOW_HEADER_SIZE ||
		    off > p->file_end || p->file_end - off < p->g.l2_bytes) {
			td_err("%s: L1 entry %llu points to an L2 table at %llu, outside the file (%llu bytes)%s",
			       p->file, (unsigned long long)l1i,
			       (unsigned long long)off,
			       (unsigned long long)p->file_end,
			       off % p->align ? " or unaligned" : "");
			return -EIO;
		}
		l2 = qcow_l2_victim(img);
		if (!l2)
			return -ENOMEM;
		l2->off = off;
		l2->loading = true;
		l2->waiters = NULL;
		qcow_l2_insert(p, l2);
		l2->iov.iov_base = l2->table;
		l2->iov.iov_len = p->g.l2_bytes;
		l2->cb.op = TD_IO_READ;
		l2->cb.fd = p->fd;
		l2->cb.flags = 0;
		l2->cb.offset = off;
		l2->cb.iov = &l2->iov;
		l2->cb.iovcnt = 1;
		l2->cb.done = qcow_l2_loaded;
		td_io_queue(img->io, &l2->cb);
	}
	qr->waiting = true;
	qr->next = l2->waiters;
	l2->waiters = qr;
	return -EAGAIN;
}

/*
 * What disk offset pos maps to. qr: wait for a table load if need be
 * (-EAGAIN, qr queued); NULL: only look (-EAGAIN if not in memory).
 */
int qcow_map(struct td_image *img, uint64_t pos, struct qcow_req *qr,
	     struct qcow_map *m)
{
	struct qcow_priv *p = img->priv;
	unsigned cbits = p->h.cluster_bits, shift = cbits + p->h.l2_bits;
	uint64_t l1i = pos >> shift, in = pos & (p->g.cluster_size - 1);
	uint64_t e, off, csize;
	int rc;

	memset(m, 0, sizeof(*m));
	m->kind = QCOW_UNALLOC;
	if (!p->l1[l1i]) {
		/* the whole span of a missing L2 table */
		m->len = ((l1i + 1) << shift) - pos;
		return 0;
	}
	m->len = p->g.cluster_size - in;
	rc = qcow_l2_get(img, l1i, qr, &m->l2);
	if (rc)
		return rc;
	m->l2_index = (uint32_t)((pos >> cbits) & (p->g.l2_entries - 1));
	e = td_be_get64((const uint8_t *)&m->l2->table[m->l2_index]);
	m->entry = e;
	if (!e)
		return 0;
	if (e & QCOW_COMPRESSED) {
		off = e & p->g.offset_mask;
		csize = (e >> (63 - cbits)) & (p->g.cluster_size - 1);
		if (!csize || off < QCOW_HEADER_SIZE || off > p->file_end ||
		    p->file_end - off < csize) {
			td_err("%s: L2 entry %u of the table at %llu: compressed cluster of %llu bytes at %llu is outside the file (%llu bytes)",
			       p->file, m->l2_index,
			       (unsigned long long)m->l2->off,
			       (unsigned long long)csize,
			       (unsigned long long)off,
			       (unsigned long long)p->file_end);
			return -EIO;
		}
		m->kind = QCOW_ZIPPED;
		return 0;
	}
	if (e % QCOW_SECTOR || e < QCOW_HEADER_SIZE || e > p->file_end ||
	    p->file_end - e < p->g.cluster_size) {
		td_err("%s: L2 entry %u of the table at %llu: cluster at %llu is unaligned or outside the file (%llu bytes)",
		       p->file, m->l2_index, (unsigned long long)m->l2->off,
		       (unsigned long long)e, (unsigned long long)p->file_end);
		return -EIO;
	}
	m->kind = QCOW_DATA;
	m->off = e + in;
	return 0;
}

/* Grow m's run over the following clusters that map the same way. */
void qcow_extend(struct td_image *img, struct qcow_map *m, uint64_t pos,
		 uint64_t end, bool any_alloc)
{
	struct qcow_map n;

	m->len = qcow_min(m->len, end - pos);
	/* data runs are bounded for the I/O; holes are not */
	while (pos + m->len < end &&
	       (m->kind == QCOW_UNALLOC || m->len < QCOW_RUN_MAX)) {
		if (qcow_map(img, pos + m->len, NULL, &n))
			break;
		if (any_alloc ? (n.kind == QCOW_UNALLOC) !=
					(m->kind == QCOW_UNALLOC) :
				n.kind != m->kind)
			break;
		if (!any_alloc && m->kind == QCOW_ZIPPED)
			break;
		if (!any_alloc && m->kind == QCOW_DATA &&
		    n.off != m->off + m->len)
			break;
		m->len = qcow_min(m->len + n.len, end - pos);
	}
	if (m->len > QCOW_RUN_MAX && m->kind != QCOW_UNALLOC)
		m->len = QCOW_RUN_MAX;
}

/* ---- reading ---- */

static void qcow_data_read_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;
	struct td_image *img = s->qr->img;
	int err = 0;

	if (res >= 0 && (uint64_t)res != s->len)
		res = -EIO;
	if (res < 0) {
		err = (int)res;
		td_err("%s: read of %llu bytes at %llu: %s", img->name,
		       (unsigned long long)s->len,
		       (unsigned long long)cb->offset, strerror(-err));
	} else if (s->buf) {
		err = qcow_crypt(img, s->voff, s->buf, s->len, false);
		if (!err)
			qcow_iov_from_buf(s->iov, s->iovcnt, s->buf);
	}
	s->done(s, err);
}

void qcow_sub_queue(struct qcow_sub *s, enum td_io_op op, uint64_t off,
		    unsigned flags, void (*done)(struct td_iocb *cb, long res))
{
	s->cb.op = op;
	s->cb.offset = off;
	s->cb.flags = flags;
	if (s->buf) {
		s->biov.iov_base = s->buf;
		s->biov.iov_len = s->len;
		s->cb.iov = &s->biov;
		s->cb.iovcnt = 1;
	} else {
		s->cb.iov = s->iov;
		s->cb.iovcnt = s->iovcnt;
	}
	s->cb.done = done;
	s->qr->pending++;
	td_io_queue(s->qr->img->io, &s->cb);
}

static int qcow_issue_data_read(struct qcow_req *qr, uint64_t off, uint64_t len)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_sub *s = qcow_sub_new(qr, qcow_sub_req_done);
	int rc;

	if (!s)
		return -ENOMEM;
	s->voff = qr->pos;
	s->len = len;
	rc = qcow_slice(s, qr->pos, len);
	if (!rc && p->enc)
		rc = qcow_bounce(s, len);
	if (rc) {
		qcow_sub_free(s);
		return rc;
	}
	qcow_sub_queue(s, TD_IO_READ, off, 0, qcow_data_read_done);
	return 0;
}

static int qcow_inflate(const uint8_t *in, size_t inlen, uint8_t *out,
			size_t outlen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	/* raw deflate, no zlib header, as qemu writes it */
	if (inflateInit2(&z, -15) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)inlen;
	z.next_out = out;
	z.avail_out = (uInt)outlen;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if ((rc != Z_STREAM_END && rc != Z_BUF_ERROR) || z.avail_out)
		return -EIO;
	return 0;
}

static void qcow_zipped_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;
	struct td_image *img = s->qr->img;
	struct qcow_priv *p = img->priv;
	uint64_t coff = s->entry & p->g.offset_mask;
	uint64_t csize = (s->entry >> (63 - p->h.cluster_bits)) &
			 (p->g.cluster_size - 1);
	uint8_t *cluster;
	int err = 0;

	if (res >= 0 && (uint64_t)res < s->skip + csize)
		res = -EIO;
	if (res < 0) {
		err = (int)res;
		td_err("%s: read of the compressed cluster at %llu: %s",
		       img->name, (unsigned long long)coff, strerror(-err));
		s->done(s, err);
		return;
	}
	cluster = td_buf_get(p->g.cluster_size);
	if (!cluster) {
		s->done(s, -ENOMEM);
		return;
	}
	err = qcow_inflate(s->buf + s->skip, csize, cluster, p->g.cluster_size);
	if (err)
		td_err("%s: the compressed cluster at %llu (%llu bytes) does not inflate to %u bytes",
		       img->name, (unsigned long long)coff,
		       (unsigned long long)csize, p->g.cluster_size);
	else
		qcow_iov_from_buf(s->iov, s->iovcnt, cluster + s->in);
	td_buf_put(cluster, p->g.cluster_size);
	s->done(s, err);
}

/* Inflate the compressed cluster entry; its bytes from in go to s->iov. */
int qcow_issue_zipped(struct qcow_sub *s, uint64_t entry, uint32_t in)
{
	struct td_image *img = s->qr->img;
	struct qcow_priv *p = img->priv;
	uint64_t coff = entry & p->g.offset_mask;
	uint64_t csize = (entry >> (63 - p->h.cluster_bits)) &
			 (p->g.cluster_size - 1);
	uint64_t lo = qcow_align_down(coff, p->align);
	uint64_t hi = qcow_align_up(coff + csize, p->align);
	int rc;

	rc = qcow_bounce(s, hi - lo);
	if (rc)
		return rc;
	s->entry = entry;
	s->in = in;
	s->skip = coff - lo;
	s->biov.iov_base = s->buf;
	s->biov.iov_len = hi - lo;
	s->cb.op = TD_IO_READ;
	s->cb.offset = lo;
	s->cb.iov = &s->biov;
	s->cb.iovcnt = 1;
	s->cb.done = qcow_zipped_done;
	s->qr->pending++;
	td_io_queue(img->io, &s->cb);
	return 0;
}

static void qcow_parent_done(struct td_request *preq, int err)
{
	struct qcow_sub *s = preq->io_data;

	if (!err && s->buf)
		qcow_iov_from_buf(s->iov, s->iovcnt, s->buf + s->skip);
	s->done(s, err);
}

/*
 * Read [voff, voff + len) of what is under this layer into s->iov: the
 * backing image up to its end (and ours), zeroes after it.
 */
void qcow_issue_parent_read(struct qcow_sub *s, uint64_t voff, uint64_t len)
{
	struct td_image *img = s->qr->img;
	struct qcow_priv *p = img->priv;
	struct td_image *parent = img->parent;
	uint64_t limit = p->g.size, lo, hi;
	unsigned a;

	s->voff = voff;
	s->len = len;
	if (parent)
		limit = qcow_min(limit, parent->info.size);
	if (voff + len > limit) {
		/* past the backing image's end the disk reads as zeroes */
		uint64_t keep = voff < limit ? limit - voff : 0, at = 0;
		int i;

		for (i = 0; i < s->iovcnt; i++) {
			struct iovec *v = &s->iov[i];
			uint64_t l = v->iov_len;

			if (at + l > keep) {
				uint64_t b = keep > at ? keep - at : 0;

				memset((char *)v->iov_base + b, 0, l - b);
				v->iov_len = b;
			}
			at += l;
		}
		len = keep;
	}
	s->qr->pending++;
	s->preq.op = TD_OP_READ;
	s->preq.io_done = qcow_parent_done;
	s->preq.io_data = s;
	if (!len) {
		/* nothing to read: complete through the loop all the same */
		s->preq.offset = voff;
		s->preq.len = 0;
		s->preq.iovcnt = 0;
		td_request_complete(img, &s->preq, 0);
		return;
	}
	a = parent ? parent->info.align : 1;
	lo = qcow_align_down(voff, a);
	hi = qcow_align_up(voff + len, a);
	if (lo == voff && hi == voff + len &&
	    qcow_iov_aligned(s->iov, s->iovcnt, a)) {
		s->preq.offset = voff;
		s->preq.len = len;
		s->preq.iov = s->iov;
		s->preq.iovcnt = s->iovcnt;
	} else {
		/* the backing image needs coarser alignment than ours */
		if (qcow_bounce(s, hi - lo)) {
			td_request_complete(img, &s->preq, -ENOMEM);
			return;
		}
		s->skip = voff - lo;
		s->biov.iov_base = s->buf;
		s->biov.iov_len = hi - lo;
		s->preq.offset = lo;
		s->preq.len = hi - lo;
		s->preq.iov = &s->biov;
		s->preq.iovcnt = 1;
	}
	td_image_forward(img, &s->preq);
}

static int qcow_read_step(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_sub *s;
	struct qcow_map m;
	int rc;

	rc = qcow_map(img, qr->pos, qr, &m);
	if (rc)
		return rc;
	qcow_extend(img, &m, qr->pos, qr->end, false);
	if (m.kind == QCOW_DATA) {
		rc = qcow_issue_data_read(qr, m.off, m.len);
	} else {
		s = qcow_sub_new(qr, qcow_sub_req_done);
		if (!s)
			return -ENOMEM;
		rc = qcow_slice(s, qr->pos, m.len);
		if (!rc && m.kind == QCOW_ZIPPED)
			rc = qcow_issue_zipped(
				s, m.entry,
				(uint32_t)(qr->pos & (p->g.cluster_size - 1)));
		else if (!rc)
			qcow_issue_parent_read(s, qr->pos, m.len);
		if (rc)
			qcow_sub_free(s);
	}
	if (rc)
		return rc;
	qr->pos += m.len;
	return 0;
}

void qcow_queue_read(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, qcow_read_step);

	if (qr)
		qcow_walk(qr);
}

static void qcow_sync_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;

	if (res < 0)
		td_err("%s: flush: %s", s->qr->img->name, strerror((int)-res));
	s->done(s, res < 0 ? (int)res : 0);
}

void qcow_flush(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, NULL);
	struct qcow_sub *s;

	if (!qr)
		return;
	qr->pos = qr->end;
	s = qcow_sub_new(qr, qcow_sub_req_done);
	if (!s) {
		qr->err = -ENOMEM;
		qcow_walk(qr);
		return;
	}
	s->cb.op = TD_IO_FSYNC;
	s->cb.done = qcow_sync_done;
	qr->pending++;
	td_io_queue(img->io, &s->cb);
}

/* ---- block status ---- */

static void qcow_bs_done(struct qcow_sub *s, int err)
{
	if (!err)
		s->qr->req->status = s->preq.status;
	qcow_sub_req_done(s, err);
}

static int qcow_bs_step(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct td_request *req = qr->req;
	struct qcow_sub *s;
	struct qcow_map m;
	int rc;

	rc = qcow_map(img, qr->pos, qr, &m);
	if (rc)
		return rc;
	qcow_extend(img, &m, qr->pos, qr->end, true);
	if (m.kind != QCOW_UNALLOC) {
		req->status.len = m.len;
		req->status.flags = 0;
		req->status.depth = img->depth;
		qr->pos = qr->end;
		return 0;
	}
	if (img->parent && qr->pos >= img->parent->info.size) {
		/* past the backing image's end: zeroes from nowhere */
		req->status.len = m.len;
		req->status.flags = TD_BS_HOLE | TD_BS_ZERO;
		req->status.depth = -1;
		qr->pos = qr->end;
		return 0;
	}
	if (img->parent)
		m.len = qcow_min(m.len, img->parent->info.size - qr->pos);
	s = qcow_sub_new(qr, qcow_bs_done);
	if (!s)
		return -ENOMEM;
	s->preq.op = TD_OP_BLOCK_STATUS;
	s->preq.offset = qr->pos;
	s->preq.len = m.len;
	s->preq.io_done = qcow_parent_done;
	s->preq.io_data = s;
	qr->pending++;
	qr->pos = qr->end;
	td_image_forward(img, &s->preq);
	return 0;
}

void qcow_block_status(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, qcow_bs_step);

	if (qr)
		qcow_walk(qr);
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The source and the destination each run their own event loop (one
 * syncio each). Both are kept moving: ready completions on either side are
 * handled without sleeping, and only when neither has anything ready does
 * the engine sleep, on the side whose oldest request was issued first.
 *
 * Compressed output is written by the engine itself, one cluster per turn
 * of the loop: qcow2_write_compressed() blocks, so the reads issued before
 * it keep going in the kernel and the next jobs start between clusters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "copy.h"
#include "drivers/qcow2.h"
#include "log.h"
#include "progress.h"
#include "tool.h"

/* one block_status query: long enough to cross a big hole in one step */
#define COPY_STATUS_MAX (1ull << 30)
/* write_zeroes ranges need no buffer: let them be large */
#define COPY_WZERO_MAX (256ull << 20)

enum copy_kind {
	COPY_SKIP, /* nothing to write */
	COPY_DATA, /* read from src, write to dst */
	COPY_ZERO_BUF, /* write zero bytes (-S 0: allocate everything) */
	COPY_WZERO, /* dst write_zeroes */
};

struct copy;

struct copy_slot {
	struct copy *c;
	void *buf;
	bool busy;
	bool reading;
	bool ready; /* compress: the job's bytes are in data, to be written */
	const char *data; /* compress: buf, or the shared zero buffer */
	uint64_t off, len; /* the job */
	uint64_t wpos; /* next byte of the job to write */
	uint64_t seq; /* issue order of the current request */
	struct td_request req;
	struct iovec iov;
};

struct copy {
	struct td_syncio *src, *dst;
	const struct tool_copy_opts *o;
	uint64_t size, pos, gran;
	uint64_t seq, events;
	unsigned src_pending, dst_pending;
	int err;
	/* the last block_status answer, reused while pos is inside it */
	uint64_t ext_off;
	struct td_extent ext;
	bool ext_valid;
	void *zero; /* TOOL_COPY_CHUNK zero bytes for COPY_ZERO_BUF */
	struct tool_progress prog;
	unsigned nslots;
	struct copy_slot *slots;
};

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int copy_extent_at(struct copy *c, uint64_t pos, struct td_extent *ext)
{
	int rc;

	if (!c->ext_valid || pos < c->ext_off ||
	    pos >= c->ext_off + c->ext.len) {
		rc = td_syncio_block_status(c->src, pos,
					    min_u64(c->size - pos,
						    COPY_STATUS_MAX),
					    &c->ext);
		if (rc)
			return rc;
		c->ext_off = pos;
		c->ext_valid = true;
	}
	*ext = c->ext;
	ext->len = c->ext_off + c->ext.len - pos;
	return 0;
}

static enum copy_kind copy_zero_kind(const struct copy *c)
{
	if (!c->o->dst_zeroed)
		return COPY_WZERO;
	return c->o->min_sparse ? COPY_SKIP : COPY_ZERO_BUF;
}

/*
 * What to do from pos (a multiple of gran) on, and for how many bytes.
 * Skipping and zeroing only take whole blocks of gran; a block that is
 * partly data is data.
 */
static int copy_classify(struct copy *c, uint64_t pos, enum copy_kind *kind,
			 uint64_t *n)
{
	struct td_extent ext;
	uint64_t end, cut;
	int rc = copy_extent_at(c, pos, &ext);

	if (rc)
		return rc;
	end = min_u64(pos + ext.len, c->size);
	if (c->o->top_only && ext.depth != 0)
		*kind = COPY_SKIP;
	else if (ext.flags & TD_BS_ZERO)
		*kind = copy_zero_kind(c);
	else
		*kind = COPY_DATA;
	if (*kind != COPY_DATA) {
		cut = end == c->size ? end : end / c->gran * c->gran;
		if (cut > pos) {
			*n = cut - pos;
			return 0;
		}
		*kind = COPY_DATA;
	}
	*n = min_u64(round_up(end, c->gran), c->size) - pos;
	return 0;
}

/* The next job from c->pos, skipping what needs no write. */
static int copy_next(struct copy *c, enum copy_kind *kind, uint64_t *off,
		     uint64_t *len)
{
	enum copy_kind k2;
	uint64_t n, n2;
	int rc;

	while (c->pos < c->size) {
		rc = copy_classify(c, c->pos, kind, &n);
		if (rc)
			return rc;
		if (*kind == COPY_SKIP) {
			c->pos += n;
			tool_progress_add(&c->prog, n);
			continue;
		}
		*off = c->pos;
		if (*kind == COPY_WZERO) {
			*len = min_u64(n, COPY_WZERO_MAX);
		} else {
			*len = min_u64(n, TOOL_COPY_CHUNK);
			/* merge following data extents into one request */
			while (*kind == COPY_DATA && *len < TOOL_COPY_CHUNK &&
			       *off + *len < c->size) {
				rc = copy_classify(c, *off + *len, &k2, &n2);
				if (rc)
					return rc;
				if (k2 != COPY_DATA)
					break;
				*len = min_u64(*len + n2, TOOL_COPY_CHUNK);
			}
		}
		c->pos += *len;
		return 1;
	}
	return 0;
}

static void copy_fail(struct copy *c, int err)
{
	if (!c->err)
		c->err = err;
}

static void copy_write_done(struct td_request *req, int err);

static void copy_submit_dst(struct copy_slot *s, enum td_op op, void *buf,
			    uint64_t off, uint64_t len)
{
	struct copy *c = s->c;

	memset(&s->req, 0, sizeof(s->req));
	s->req.op = op;
	s->req.offset = off;
	s->req.len = len;
	if (buf) {
		s->iov.iov_base = buf;
		s->iov.iov_len = len;
		s->req.iov = &s->iov;
		s->req.iovcnt = 1;
	}
	s->req.done = copy_write_done;
	s->req.data = s;
	s->reading = false;
	s->seq = ++c->seq;
	c->dst_pending++;
	td_syncio_submit(c->dst, &s->req);
}

/* Write the next run of the job's data, or finish the job. */
static void copy_write_next(struct copy_slot *s)
{
	struct copy *c = s->c;
	uint64_t end = s->off + s->len, a, b, g = c->gran;
	char *buf = s->buf;

	a = s->wpos;
	if (c->err || a >= end) {
		s->busy = false;
		return;
	}
	if (!(c->o->dst_zeroed && c->o->min_sparse)) {
		copy_submit_dst(s, TD_OP_WRITE, buf + (a - s->off), a,
				end - a);
		return;
	}
	/* zero blocks are skipped: the new image reads as zero there */
	while (a < end && td_buf_is_zero(buf + (a - s->off),
				       min_u64(g, end - a))) {
		tool_progress_add(&c->prog, min_u64(g, end - a));
		a = min_u64(a + g, end);
	}
	for (b = a; b < end && !td_buf_is_zero(buf + (b - s->off),
					     min_u64(g, end - b));)
		b = min_u64(b + g, end);
	s->wpos = a;
	if (a >= end) {
		s->busy = false;
		return;
	}
	copy_submit_dst(s, TD_OP_WRITE, buf + (a - s->off), a, b - a);
}

static void copy_write_done(struct td_request *req, int err)
{
	struct copy_slot *s = req->data;
	struct copy *c = s->c;

	c->dst_pending--;
	c->events++;
	if (err) {
		copy_fail(c, err);
		s->busy = false;
		return;
	}
	tool_progress_add(&c->prog, req->len);
	s->wpos = req->offset + req->len;
	copy_write_next(s);
}

static void copy_read_done(struct td_request *req, int err)
{
	struct copy_slot *s = req->data;
	struct copy *c = s->c;

	c->src_pending--;
	c->events++;
	if (err) {
		copy_fail(c, err);
		s->busy = false;
		return;
	}
	s->wpos = s->off;
	if (c->o->compress) {
		s->reading = false;
		s->ready = true;
		return;
	}
	copy_write_next(s);
}

static void copy_start(struct copy_slot *s, enum copy_kind kind, uint64_t off,
		       uint64_t len)
{
	struct copy *c = s->c;

	s->busy = true;
	s->off = off;
	s->len = len;
	s->wpos = off + len;
	if (kind == COPY_WZERO) {
		copy_submit_dst(s, TD_OP_WRITE_ZEROES, NULL, off, len);
		return;
	}
	if (kind == COPY_ZERO_BUF) {
		if (c->o->compress) {
			s->data = c->zero;
			s->wpos = off;
			s->ready = true;
			return;
		}
		copy_submit_dst(s, TD_OP_WRITE, c->zero, off, len);
		return;
	}
	s->data = s->buf;
	memset(&s->req, 0, sizeof(s->req));
	s->iov.iov_base = s->buf;
	s->iov.iov_len = len;
	s->req.op = TD_OP_READ;
	s->req.offset = off;
	s->req.len = len;
	s->req.iov = &s->iov;
	s->req.iovcnt = 1;
	s->req.done = copy_read_done;
	s->req.data = s;
	s->reading = true;
	s->seq = ++c->seq;
	c->src_pending++;
	td_syncio_submit(c->src, &s->req);
}

/* Sleep on the side whose oldest request went out first. */
static int copy_sleep(struct copy *c)
{
	uint64_t rseq = UINT64_MAX, wseq = UINT64_MAX;
	unsigned i;

	for (i = 0; i < c->nslots; i++) {
		struct copy_slot *s = &c->slots[i];

		if (!s->busy || s->ready)
			continue;
		if (s->reading && s->seq < rseq)
			rseq = s->seq;
		if (!s->reading && s->seq < wseq)
			wseq = s->seq;
	}
	if (c->src_pending && rseq < wseq)
		return td_syncio_wait(c->src, c->src_pending - 1);
	if (c->dst_pending)
		return td_syncio_wait(c->dst, c->dst_pending - 1);
	return 0;
}

/*
 * Compress and write one cluster of the job with the lowest offset, once
 * its bytes are in: the clusters are then packed in guest order, as
 * qemu-img packs them, and read back sequentially. False when that job is
 * still being read (or there is none).
 */
static bool copy_compress_one(struct copy *c)
{
	struct copy_slot *s = NULL, *t;
	uint64_t n;
	const char *p;
	unsigned i;
	int rc = 0;

	for (i = 0; i < c->nslots; i++) {
		t = &c->slots[i];
		if ((t->ready || (t->busy && t->reading)) &&
		    (!s || t->off < s->off))
			s = t;
	}
	if (!s || !s->ready)
		return false;
	n = min_u64(c->gran, s->off + s->len - s->wpos);
	p = s->data + (s->wpos - s->off);
	/* a new image reads as zero where no cluster is written */
	if (!c->err &&
	    !(c->o->dst_zeroed && c->o->min_sparse && td_buf_is_zero(p, n)))
		rc = qcow2_write_compressed(td_syncio_image(c->dst), s->wpos, p,
					    n);
	if (rc)
		copy_fail(c, rc);
	tool_progress_add(&c->prog, n);
	s->wpos += n;
	if (c->err || s->wpos >= s->off + s->len)
		s->ready = s->busy = false;
	return true;
}

static int copy_run(struct copy *c)
{
	struct td_loop *sl = td_syncio_image(c->src)->loop;
	struct td_loop *dl = td_syncio_image(c->dst)->loop;
	enum copy_kind kind;
	uint64_t off = 0, len = 0, seen;
	unsigned i, busy;
	bool wrote;
	int rc;

	for (;;) {
		busy = 0;
		for (i = 0; i < c->nslots; i++) {
			if (!c->slots[i].busy && !c->err) {
				rc = copy_next(c, &kind, &off, &len);
				if (rc < 0)
					copy_fail(c, rc);
				if (rc == 1)
					copy_start(&c->slots[i], kind, off, len);
			}
			busy += c->slots[i].busy;
		}
		if (!busy)
			return c->err;
		seen = c->events;
		/* hand both sides their new requests, take what is ready */
		if (td_loop_once(sl, 0) < 0 || td_loop_once(dl, 0) < 0)
			copy_fail(c, -EIO);
		wrote = c->o->compress && copy_compress_one(c);
		if (c->events != seen || wrote)
			continue;
		rc = copy_sleep(c);
		if (rc)
			copy_fail(c, rc);
	}
}

int tool_copy(struct td_syncio *src, struct td_syncio *dst, uint64_t size,
	      const struct tool_copy_opts *opts)
{
	struct copy c = {
		.src = src,
		.dst = dst,
		.o = opts,
		.size = size,
	};
	unsigned i;
	int rc = -ENOMEM;

	c.gran = opts->granularity ? opts->granularity : 512;
	/* compressed clusters are skipped or written whole, never split */
	if (opts->dst_zeroed && opts->min_sparse > c.gran && !opts->compress)
		c.gran = opts->min_sparse;
	c.nslots = opts->inflight ? opts->inflight : TOOL_COPY_INFLIGHT;
	if (c.nslots > TOOL_COPY_MAX_INFLIGHT)
		c.nslots = TOOL_COPY_MAX_INFLIGHT;
	c.slots = calloc(c.nslots, sizeof(*c.slots));
	if (!c.slots)
		goto out;
	for (i = 0; i < c.nslots; i++) {
		c.slots[i].c = &c;
		c.slots[i].buf = td_buf_get(TOOL_COPY_CHUNK);
		if (!c.slots[i].buf)
			goto out;
	}
	if (opts->dst_zeroed && !opts->min_sparse) {
		c.zero = td_buf_get(TOOL_COPY_CHUNK);
		if (!c.zero)
			goto out;
		memset(c.zero, 0, TOOL_COPY_CHUNK);
	}
	tool_progress_init(&c.prog, opts->progress, size);
	rc = copy_run(&c);
	if (!rc && !opts->no_flush)
		rc = td_syncio_flush(dst);
	if (!rc)
		tool_progress_end(&c.prog);
out:
	if (c.slots)
		for (i = 0; i < c.nslots; i++)
			if (c.slots[i].buf)
				td_buf_put(c.slots[i].buf, TOOL_COPY_CHUNK);
	if (c.zero)
		td_buf_put(c.zero, TOOL_COPY_CHUNK);
	free(c.slots);
	return rc;
}

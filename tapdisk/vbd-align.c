// SPDX-License-Identifier: GPL-2.0-only
/*
 * Requests that do not meet the driver's alignment (O_DIRECT needs offsets,
 * lengths and buffers aligned to the logical block size) go through an
 * aligned bounce buffer; unaligned writes read their edge blocks first.
 * Clients that negotiate NBD block sizes never come here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "vbd-priv.h"

struct vbd_bounce {
	struct td_vbd *vbd;
	struct td_request *orig;
	struct td_request sub; /* the aligned read or write */
	struct td_request edge[2]; /* RMW reads of the first and last block */
	struct iovec iov, edge_iov[2];
	uint8_t *buf;
	size_t buflen;
	uint64_t lo;
	int pending;
	int err;
};

struct vbd_split {
	struct td_vbd *vbd;
	struct td_request *orig;
	struct td_request child[3];
	struct iovec iov[3];
	void *zeroes;
	int pending;
	int err;
};

static unsigned vbd_align(const struct td_vbd *vbd)
{
	return vbd_info(vbd)->align;
}

void vbd_align_range(const struct td_vbd *vbd, const struct td_request *req,
		     uint64_t *lo, uint64_t *hi)
{
	unsigned a = vbd_align(vbd);

	*lo = req->offset - req->offset % a;
	*hi = req->offset + req->len + a - 1;
	*hi -= *hi % a;
}

static bool vbd_range_aligned(const struct td_vbd *vbd,
			      const struct td_request *req)
{
	unsigned a = vbd_align(vbd);

	return !(req->offset % a) && !(req->len % a);
}

bool vbd_align_needed(const struct td_vbd *vbd, const struct td_request *req)
{
	unsigned a = vbd_align(vbd);
	int i;

	if (a <= 1 || (req->op != TD_OP_READ && req->op != TD_OP_WRITE))
		return false;
	if (!vbd_range_aligned(vbd, req))
		return true;
	for (i = 0; i < req->iovcnt; i++)
		if ((uintptr_t)req->iov[i].iov_base % a ||
		    req->iov[i].iov_len % a)
			return true;
	return false;
}

bool vbd_align_is_rmw(const struct td_vbd *vbd, const struct td_request *req)
{
	return vbd_align(vbd) > 1 && req->op == TD_OP_WRITE &&
	       !vbd_range_aligned(vbd, req);
}

static void iov_copy_out(const struct td_request *req, const uint8_t *src)
{
	int i;

	for (i = 0; i < req->iovcnt; i++) {
		memcpy(req->iov[i].iov_base, src, req->iov[i].iov_len);
		src += req->iov[i].iov_len;
	}
}

static void iov_copy_in(uint8_t *dst, const struct td_request *req)
{
	int i;

	for (i = 0; i < req->iovcnt; i++) {
		memcpy(dst, req->iov[i].iov_base, req->iov[i].iov_len);
		dst += req->iov[i].iov_len;
	}
}

static void bounce_end(struct vbd_bounce *b)
{
	struct td_request *orig = b->orig;
	int err = b->err;

	if (!err && orig->op == TD_OP_READ)
		iov_copy_out(orig, b->buf + (orig->offset - b->lo));
	td_buf_put(b->buf, b->buflen);
	free(b);
	orig->align_ctx = NULL;
	vbd_io_done(orig, err);
}

static void bounce_sub_done(struct td_request *sub, int err)
{
	struct vbd_bounce *b = sub->io_data;

	if (err && !b->err)
		b->err = err;
	bounce_end(b);
}

static void bounce_submit(struct vbd_bounce *b)
{
	b->sub.io_done = bounce_sub_done;
	b->sub.io_data = b;
	td_image_queue(b->vbd->img, &b->sub);
}

static void bounce_edge_done(struct td_request *edge, int err)
{
	struct vbd_bounce *b = edge->io_data;

	if (err && !b->err)
		b->err = err;
	if (--b->pending)
		return;
	if (b->err) {
		bounce_end(b);
		return;
	}
	iov_copy_in(b->buf + (b->orig->offset - b->lo), b->orig);
	bounce_submit(b);
}

static void bounce_read_edge(struct vbd_bounce *b, int i, uint64_t off)
{
	struct td_request *e = &b->edge[i];
	unsigned a = vbd_align(b->vbd);

	e->op = TD_OP_READ;
	e->offset = off;
	e->len = a;
	b->edge_iov[i].iov_base = b->buf + (off - b->lo);
	b->edge_iov[i].iov_len = a;
	e->iov = &b->edge_iov[i];
	e->iovcnt = 1;
	e->io_done = bounce_edge_done;
	e->io_data = b;
	td_image_queue(b->vbd->img, e);
}

void vbd_align_dispatch(struct td_vbd *vbd, struct td_request *req)
{
	unsigned a = vbd_align(vbd);
	struct vbd_bounce *b;
	uint64_t lo, hi;
	bool head, tail;

	vbd_align_range(vbd, req, &lo, &hi);
	b = calloc(1, sizeof(*b));
	if (!b)
		goto nomem;
	b->buflen = hi - lo;
	b->buf = td_buf_get(b->buflen);
	if (!b->buf) {
		free(b);
		goto nomem;
	}
	b->vbd = vbd;
	b->orig = req;
	b->lo = lo;
	req->align_ctx = b;
	b->sub.op = req->op;
	b->sub.flags = req->flags;
	b->sub.offset = lo;
	b->sub.len = hi - lo;
	b->iov.iov_base = b->buf;
	b->iov.iov_len = hi - lo;
	b->sub.iov = &b->iov;
	b->sub.iovcnt = 1;
	if (req->op == TD_OP_READ) {
		bounce_submit(b);
		return;
	}
	head = req->offset != lo;
	tail = req->offset + req->len != hi;
	/* one block holds both edges: read it once */
	if (head && tail && hi - lo == a)
		tail = false;
	b->pending = head + tail;
	if (!b->pending) {
		iov_copy_in(b->buf, req);
		bounce_submit(b);
		return;
	}
	if (head)
		bounce_read_edge(b, 0, lo);
	if (tail)
		bounce_read_edge(b, 1, hi - a);
	return;

nomem:
	td_err("%s: no memory for a bounce buffer of %llu bytes",
	       vbd->name, (unsigned long long)(hi - lo));
	/* vbd_io_done must run from the loop, like any completion */
	req->io_done = vbd_io_done;
	req->io_data = vbd;
	td_request_complete(vbd->img, req, -ENOMEM);
}

static void split_child_done(struct td_request *child, int err)
{
	struct vbd_split *s = child->data;

	if (err && !s->err)
		s->err = err;
	if (--s->pending)
		return;
	free(s->zeroes);
	err = s->err;
	/* the parent's own slot in vbd->active ends here */
	vbd_finish(s->vbd, s->orig, err);
	free(s);
}

static void split_add(struct vbd_split *s, enum td_op op, uint64_t off,
		      uint64_t len)
{
	struct td_request *c = &s->child[s->pending];

	c->op = op;
	c->flags = s->orig->flags;
	c->offset = off;
	c->len = len;
	c->done = split_child_done;
	c->data = s;
	c->vbd_flags = VBD_CHILD;
	c->t_start = s->orig->t_start;
	if (op == TD_OP_WRITE) {
		s->iov[s->pending].iov_base = s->zeroes;
		s->iov[s->pending].iov_len = len;
		c->iov = &s->iov[s->pending];
		c->iovcnt = 1;
	}
	s->pending++;
}

bool vbd_align_split_zeroes(struct td_vbd *vbd, struct td_request *req)
{
	unsigned a = vbd_align(vbd);
	uint64_t end = req->offset + req->len, mid_lo, mid_hi;
	struct vbd_split *s;
	int i;

	if (a <= 1 || vbd_range_aligned(vbd, req))
		return false;
	mid_lo = req->offset + a - 1;
	mid_lo -= mid_lo % a;
	mid_hi = end - end % a;
	s = calloc(1, sizeof(*s));
	if (s)
		s->zeroes = calloc(1, a);
	if (!s || !s->zeroes) {
		free(s);
		td_err("%s: no memory to split a write_zeroes request",
		       vbd->name);
		vbd_finish_early(vbd, req, -ENOMEM);
		return true;
	}
	s->vbd = vbd;
	s->orig = req;
	if (mid_lo < mid_hi) {
		if (req->offset < mid_lo)
			split_add(s, TD_OP_WRITE, req->offset,
				  mid_lo - req->offset);
		split_add(s, TD_OP_WRITE_ZEROES, mid_lo, mid_hi - mid_lo);
		if (mid_hi < end)
			split_add(s, TD_OP_WRITE, mid_hi, end - mid_hi);
	} else if (mid_lo > req->offset && mid_lo < end) {
		/* straddles one block boundary: each side is under a block */
		split_add(s, TD_OP_WRITE, req->offset, mid_lo - req->offset);
		split_add(s, TD_OP_WRITE, mid_lo, end - mid_lo);
	} else {
		split_add(s, TD_OP_WRITE, req->offset, req->len);
	}
	/* each child holds a slot in vbd->active, as the parent does */
	vbd->active += s->pending;
	for (i = 0, a = s->pending; i < (int)a; i++)
		vbd_enqueue(vbd, &s->child[i]);
	return true;
}

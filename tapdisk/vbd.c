// SPDX-License-Identifier: GPL-2.0-only
/*
 * The vbd: request validation, the in-flight limit, flush ordering and
 * statistics for one virtual disk, shared by all of its frontends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vbd-priv.h"

#define VBD_DEFAULT_INFLIGHT 128

static void list_add_tail(struct vbd_list *l, struct td_request *req)
{
	req->qnext = NULL;
	req->qprev = l->tail;
	if (l->tail)
		l->tail->qnext = req;
	else
		l->head = req;
	l->tail = req;
	l->n++;
}

static void list_del(struct vbd_list *l, struct td_request *req)
{
	if (req->qprev)
		req->qprev->qnext = req->qnext;
	else
		l->head = req->qnext;
	if (req->qnext)
		req->qnext->qprev = req->qprev;
	else
		l->tail = req->qprev;
	req->qnext = req->qprev = NULL;
	l->n--;
}

static bool op_writes(enum td_op op)
{
	return op == TD_OP_WRITE || op == TD_OP_DISCARD ||
	       op == TD_OP_WRITE_ZEROES;
}

struct td_vbd *td_vbd_new(struct td_loop *loop, struct td_image *chain,
			  unsigned flags, unsigned max_inflight)
{
	struct td_vbd *vbd = calloc(1, sizeof(*vbd));

	if (!vbd)
		return NULL;
	vbd->loop = loop;
	vbd->img = chain;
	vbd->name = strdup(chain->name);
	if (!vbd->name) {
		free(vbd);
		return NULL;
	}
	vbd->flags = flags;
	if (chain->flags & TD_OPEN_RDONLY)
		vbd->flags |= TD_VBD_RDONLY;
	vbd->max_inflight = max_inflight ? max_inflight : VBD_DEFAULT_INFLIGHT;
	td_stats_init(&vbd->stats);
	return vbd;
}

void td_vbd_free(struct td_vbd *vbd)
{
	free(vbd->name);
	free(vbd);
}

uint64_t td_vbd_size(const struct td_vbd *vbd)
{
	return vbd_info(vbd)->size;
}

bool td_vbd_readonly(const struct td_vbd *vbd)
{
	return vbd->flags & TD_VBD_RDONLY;
}

const struct td_image_info *td_vbd_info(const struct td_vbd *vbd)
{
	return vbd_info(vbd);
}

const char *td_vbd_name(const struct td_vbd *vbd)
{
	return vbd->name;
}

struct td_stats *td_vbd_stats(struct td_vbd *vbd)
{
	vbd->stats.inflight = vbd->inflight;
	vbd->stats.queued = vbd->queue.n;
	return &vbd->stats;
}

unsigned td_vbd_inflight(const struct td_vbd *vbd)
{
	return vbd->active;
}

static void vbd_drain_cb(struct td_loop *loop, void *data)
{
	struct td_vbd *vbd = data;
	td_loop_fn fn = vbd->drain_fn;

	if (!fn || vbd->active)
		return;
	vbd->drain_fn = NULL;
	fn(loop, vbd->drain_data);
}

void td_vbd_drain(struct td_vbd *vbd, td_loop_fn fn, void *data)
{
	/* with no image, what waits would wait forever */
	td_vbd_abort_queued(vbd, -ESHUTDOWN);
	vbd->drain_fn = fn;
	vbd->drain_data = data;
	if (!vbd->active)
		td_loop_defer(vbd->loop, &vbd->drain_defer, vbd_drain_cb, vbd);
}

/* The end of every accepted request: stats, then the caller's callback. */
void vbd_finish(struct td_vbd *vbd, struct td_request *req, int err)
{
	if (!(req->vbd_flags & VBD_CHILD))
		/* the bytes a request moves or changes: a query moves none */
		td_stats_account(&vbd->stats, req->op,
				 req->op == TD_OP_BLOCK_STATUS ? 0 : req->len,
				 td_now_ns() - req->t_start, err);
	vbd->active--;
	req->done(req, err);
	if (!vbd->active && vbd->drain_fn)
		td_loop_defer(vbd->loop, &vbd->drain_defer, vbd_drain_cb, vbd);
}

static void vbd_early_cb(struct td_loop *loop, void *data)
{
	struct td_request *req = data;

	vbd_finish(req->io_data, req, req->err);
}

/* Complete a request that never reached the image (always deferred). */
void vbd_finish_early(struct td_vbd *vbd, struct td_request *req, int err)
{
	req->err = err;
	req->io_data = vbd;
	td_loop_defer(vbd->loop, &req->defer, vbd_early_cb, req);
}

static bool vbd_overlaps(const struct td_vbd *vbd, const struct td_request *a,
			 const struct td_request *b)
{
	uint64_t alo, ahi, blo, bhi;

	vbd_align_range(vbd, a, &alo, &ahi);
	vbd_align_range(vbd, b, &blo, &bhi);
	return alo < bhi && blo < ahi;
}

/*
 * A read-modify-write rewrites its edge blocks with what it read, so it
 * must not run beside any write to those blocks, in either order.
 */
static bool vbd_blocked(const struct td_vbd *vbd, const struct td_request *req)
{
	bool rmw = req->vbd_flags & VBD_RMW;
	const struct td_request *w;

	if (!op_writes(req->op) || (!rmw && !vbd->rmw_inflight))
		return false;
	for (w = vbd->writes.head; w; w = w->qnext)
		if ((rmw || (w->vbd_flags & VBD_RMW)) &&
		    vbd_overlaps(vbd, req, w))
			return true;
	return false;
}

static bool vbd_flush_ready(const struct td_vbd *vbd,
			    const struct td_request *flush)
{
	return !vbd->writes.head || vbd->writes.head->seq > flush->seq;
}

static void vbd_image_queue(struct td_vbd *vbd, struct td_request *req)
{
	req->io_done = vbd_io_done;
	req->io_data = vbd;
	if (vbd_align_needed(vbd, req))
		vbd_align_dispatch(vbd, req);
	else
		td_image_queue(vbd->img, req);
}

static void vbd_dispatch(struct td_vbd *vbd, struct td_request *req)
{
	vbd->inflight++;
	if (vbd->inflight > vbd->stats.max_inflight_seen)
		vbd->stats.max_inflight_seen = vbd->inflight;
	if (op_writes(req->op)) {
		req->seq = ++vbd->write_seq;
		list_add_tail(&vbd->writes, req);
		if (req->vbd_flags & VBD_RMW)
			vbd->rmw_inflight++;
	} else if (req->op == TD_OP_FLUSH) {
		/* covers every write dispatched, so every write completed */
		req->seq = vbd->write_seq;
		if (!vbd_flush_ready(vbd, req)) {
			list_add_tail(&vbd->flushes, req);
			return;
		}
	}
	vbd_image_queue(vbd, req);
}

static void vbd_kick(struct td_vbd *vbd)
{
	struct td_request *req;

	if (vbd->pause != VBD_RUNNING)
		return;
	while ((req = vbd->queue.head) && vbd->inflight < vbd->max_inflight) {
		if (vbd_blocked(vbd, req))
			break;
		list_del(&vbd->queue, req);
		vbd_dispatch(vbd, req);
	}
}

static void vbd_paused(struct td_vbd *vbd, int err)
{
	vbd->pause = VBD_PAUSED;
	vbd->info = vbd->img->info;
	/* the image owns its parent name, and is about to go */
	vbd->info.parent = NULL;
	vbd->img = NULL;
	if (err)
		td_err("%s: flush before pausing failed: %s", vbd->name,
		       strerror(-err));
	vbd->pause_fn(vbd, err, vbd->pause_data);
}

static void vbd_pause_flush_done(struct td_request *req, int err)
{
	vbd_paused(req->io_data, err);
}

static void vbd_pause_defer(struct td_loop *loop, void *data)
{
	vbd_paused(data, 0);
}

/* Nothing is in flight any more: make it all durable, then let go. */
static void vbd_pause_flush(struct td_vbd *vbd)
{
	struct td_request *f = &vbd->pause_flush;

	vbd->pause = VBD_FLUSHING;
	if (vbd->flags & TD_VBD_RDONLY) {
		td_loop_defer(vbd->loop, &f->defer, vbd_pause_defer, vbd);
		return;
	}
	memset(f, 0, sizeof(*f));
	f->op = TD_OP_FLUSH;
	f->io_done = vbd_pause_flush_done;
	f->io_data = vbd;
	td_image_queue(vbd->img, f);
}

int td_vbd_pause(struct td_vbd *vbd, td_vbd_pause_fn fn, void *data)
{
	if (vbd->pause != VBD_RUNNING)
		return -EALREADY;
	vbd->pause = VBD_PAUSING;
	vbd->pause_fn = fn;
	vbd->pause_data = data;
	if (!vbd->inflight)
		vbd_pause_flush(vbd);
	return 0;
}

int td_vbd_resume(struct td_vbd *vbd, struct td_image *chain)
{
	char *name;

	if (vbd->pause != VBD_PAUSED)
		return -EINVAL;
	if (chain->info.size != vbd->info.size)
		return -EMEDIUMTYPE;
	name = strdup(chain->name);
	if (!name)
		return -ENOMEM;
	free(vbd->name);
	vbd->name = name;
	vbd->img = chain;
	vbd->pause = VBD_RUNNING;
	vbd_kick(vbd);
	return 0;
}

bool td_vbd_paused(const struct td_vbd *vbd)
{
	return vbd->pause == VBD_PAUSED;
}

void td_vbd_abort_queued(struct td_vbd *vbd, int err)
{
	struct td_request *req;

	if (vbd->pause != VBD_PAUSED)
		return;
	while ((req = vbd->queue.head)) {
		list_del(&vbd->queue, req);
		vbd_finish_early(vbd, req, err);
	}
}

void vbd_io_done(struct td_request *req, int err)
{
	struct td_vbd *vbd = req->io_data;
	struct td_request *f;

	vbd->inflight--;
	if (op_writes(req->op)) {
		list_del(&vbd->writes, req);
		if (req->vbd_flags & VBD_RMW)
			vbd->rmw_inflight--;
		while ((f = vbd->flushes.head) && vbd_flush_ready(vbd, f)) {
			list_del(&vbd->flushes, f);
			vbd_image_queue(vbd, f);
		}
	}
	if (err && err != -ENOTSUP)
		td_err("%s: %s of %llu bytes at %llu failed: %s",
		       vbd->name, td_op_name(req->op),
		       (unsigned long long)req->len,
		       (unsigned long long)req->offset, strerror(-err));
	vbd_finish(vbd, req, err);
	if (vbd->pause == VBD_PAUSING && !vbd->inflight)
		vbd_pause_flush(vbd);
	vbd_kick(vbd);
}

void vbd_enqueue(struct td_vbd *vbd, struct td_request *req)
{
	if (vbd_align_is_rmw(vbd, req))
		req->vbd_flags |= VBD_RMW;
	list_add_tail(&vbd->queue, req);
	vbd_kick(vbd);
}

static int vbd_validate(const struct td_vbd *vbd, const struct td_request *req)
{
	uint64_t size = vbd_info(vbd)->size, total = 0;
	int i;

	if ((unsigned)req->op >= TD_OP_MAX)
		return -EINVAL;
	if (op_writes(req->op) && (vbd->flags & TD_VBD_RDONLY))
		return -EPERM;
	if (req->op == TD_OP_FLUSH)
		return 0;
	if (req->offset > size || req->len > size - req->offset)
		return op_writes(req->op) ? -ENOSPC : -EINVAL;
	if (req->op == TD_OP_BLOCK_STATUS && !req->len)
		return -EINVAL;
	if (req->op == TD_OP_READ || req->op == TD_OP_WRITE) {
		for (i = 0; i < req->iovcnt; i++)
			total += req->iov[i].iov_len;
		if (total != req->len)
			return -EINVAL;
	}
	return 0;
}

void td_vbd_submit(struct td_vbd *vbd, struct td_request *req)
{
	uint64_t lo, hi, align;
	int rc;

	req->t_start = td_now_ns();
	req->vbd_flags = 0;
	req->align_ctx = NULL;
	vbd->active++;
	rc = vbd_validate(vbd, req);
	if (rc || (!req->len && req->op != TD_OP_FLUSH)) {
		vbd_finish_early(vbd, req, rc);
		return;
	}
	align = vbd_info(vbd)->align;
	if (req->op == TD_OP_DISCARD && align > 1) {
		/* a discard is a hint: drop the unaligned edges */
		lo = req->offset + align - 1;
		lo -= lo % align;
		hi = req->offset + req->len;
		hi -= hi % align;
		if (hi <= lo) {
			vbd_finish_early(vbd, req, 0);
			return;
		}
		req->offset = lo;
		req->len = hi - lo;
	}
	if (req->op == TD_OP_WRITE_ZEROES && vbd_align_split_zeroes(vbd, req))
		return;
	vbd_enqueue(vbd, req);
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The blkif ring (xen/include/public/io/blkif.h): requests are copied out
 * of the shared ring before they are looked at (the guest may change them
 * under us), their data is moved by grant copy into and out of our own
 * buffers, and each one becomes one td_request to the vbd. A slot for
 * every ring entry: a frontend that keeps the protocol never waits on us.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>

/* the ring macros want the barriers of the latest interface */
#define __XEN_TOOLS__ 1
#define xen_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/grant_table.h>
#include <xen/io/blkif.h>

#include "buf.h"
#include "log.h"
#include "vbd.h"
#include "xenblk-int.h"

#define XENBLK_PAGE_SIZE 4096u
#define XENBLK_SECTOR 512u
#define XENBLK_SEGS_PER_PAGE \
	(XENBLK_PAGE_SIZE / sizeof(struct blkif_request_segment))
#define XENBLK_MAX_INDIRECT_PAGES                                \
	((XENBLK_MAX_INDIRECT_SEGS + XENBLK_SEGS_PER_PAGE - 1) / \
	 XENBLK_SEGS_PER_PAGE)

struct xenblk_req {
	struct td_request td;
	struct xenblk_ring *ring;
	struct xenblk_req *next_free;
	uint64_t id; /* the guest's, echoed in the response */
	uint8_t op; /* echoed in the response */
	bool write_after_flush; /* a flush carrying data: write it next */
	unsigned nseg;
	struct blkif_request_segment *seg; /* XENBLK_MAX_INDIRECT_SEGS */
	void *buf;
	size_t len;
	struct iovec iov;
};

struct xenblk_ring {
	struct td_loop *loop;
	struct td_vbd *vbd;
	xengnttab_handle *xgt;
	xenevtchn_handle *xce;
	char *name;
	uint32_t domid;
	evtchn_port_t port; /* ours */
	bool discard;

	void *sring;
	unsigned nr_pages;
	blkif_back_ring_t br;
	struct td_watch *watch;

	struct xenblk_req *reqs, *free;
	struct blkif_request_segment *segs;
	unsigned nreqs;
	unsigned inflight;
	/* one grant copy batch: every request's segments fit */
	xengnttab_grant_copy_segment_t copy[XENBLK_MAX_INDIRECT_SEGS];

	bool broken; /* the frontend broke the protocol: no more requests */
	bool closing;
	struct td_defer kick_defer, close_defer;
	struct td_request flush_req;
	td_loop_fn closed;
	void *closed_data;
};

static void xenblk_kick(struct xenblk_ring *ring);
static void xenblk_close_step(struct xenblk_ring *ring);

/* the ring's counters live with the disk's, in its stats reply */
static struct td_xen_stats *xenblk_stats(struct xenblk_ring *ring)
{
	return &td_vbd_stats(ring->vbd)->xen;
}

static int16_t xenblk_status(int err)
{
	if (!err)
		return BLKIF_RSP_OKAY;
	return err == -EOPNOTSUPP ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR;
}

static void xenblk_respond(struct xenblk_ring *ring, uint64_t id, uint8_t op,
			   int err)
{
	blkif_response_t *rsp;
	int notify;

	rsp = RING_GET_RESPONSE(&ring->br, ring->br.rsp_prod_pvt);
	rsp->id = id;
	rsp->operation = op;
	rsp->status = xenblk_status(err);
	ring->br.rsp_prod_pvt++;
	RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&ring->br, notify);
	if (notify && xenevtchn_notify(ring->xce, ring->port) < 0)
		td_warn("%s: cannot notify the frontend: %s", ring->name,
			strerror(errno));
}

/*
 * Copy between the request's buffer and the guest's segments; to_guest
 * for reads. Returns 0 or -EIO if the guest's grants do not allow it.
 */
static int xenblk_copy(struct xenblk_req *req, bool to_guest)
{
	struct xenblk_ring *ring = req->ring;
	size_t pos = 0;
	unsigned i;

	for (i = 0; i < req->nseg; i++) {
		xengnttab_grant_copy_segment_t *c = &ring->copy[i];
		const struct blkif_request_segment *s = &req->seg[i];
		union xengnttab_copy_ptr guest = {
			.foreign = {
				.ref = s->gref,
				.offset = s->first_sect * XENBLK_SECTOR,
				.domid = ring->domid,
			},
		};
		uint16_t len =
			(s->last_sect - s->first_sect + 1) * XENBLK_SECTOR;

		memset(c, 0, sizeof(*c));
		if (to_guest) {
			c->source.virt = (char *)req->buf + pos;
			c->dest = guest;
			c->flags = GNTCOPY_dest_gref;
		} else {
			c->source = guest;
			c->dest.virt = (char *)req->buf + pos;
			c->flags = GNTCOPY_source_gref;
		}
		c->len = len;
		pos += len;
	}
	if (xengnttab_grant_copy(ring->xgt, req->nseg, ring->copy)) {
		td_err("%s: grant copy: %s", ring->name, strerror(errno));
		return -EIO;
	}
	for (i = 0; i < req->nseg; i++) {
		if (ring->copy[i].status != GNTST_okay) {
			td_err("%s: grant copy of segment %u (gref %u): "
			       "status %d",
			       ring->name, i, req->seg[i].gref,
			       ring->copy[i].status);
			return -EIO;
		}
	}
	return 0;
}

static void xenblk_kick_later(struct td_loop *loop, void *data)
{
	xenblk_kick(data);
}

static void xenblk_req_put(struct xenblk_req *req, int err)
{
	struct xenblk_ring *ring = req->ring;

	if (req->buf)
		td_buf_put(req->buf, req->len);
	req->buf = NULL;
	xenblk_respond(ring, req->id, req->op, err);
	req->next_free = ring->free;
	ring->free = req;
	ring->inflight--;
	if (ring->closing)
		xenblk_close_step(ring);
	else
		/* requests may have waited for this slot */
		td_loop_defer(ring->loop, &ring->kick_defer, xenblk_kick_later,
			      ring);
}

static void xenblk_req_done(struct td_request *td, int err)
{
	struct xenblk_req *req = td->data;

	if (!err && req->write_after_flush) {
		/* the flush is done: the data goes down as a FUA write */
		req->write_after_flush = false;
		req->td.op = TD_OP_WRITE;
		req->td.flags = TD_REQ_FUA;
		td_vbd_submit(req->ring->vbd, &req->td);
		return;
	}
	if (!err && req->td.op == TD_OP_READ)
		err = xenblk_copy(req, true);
	if (err && err != -EOPNOTSUPP)
		td_warn("%s: %s of %llu bytes at %llu failed: %s",
			req->ring->name, td_op_name(req->td.op),
			(unsigned long long)req->td.len,
			(unsigned long long)req->td.offset, strerror(-err));
	xenblk_req_put(req, err);
}

/* Read the segment list of an indirect request from the guest's pages. */
static int xenblk_read_indirect(struct xenblk_ring *ring,
				struct xenblk_req *req,
				const struct blkif_request_indirect *ind)
{
	unsigned npages =
		(req->nseg + XENBLK_SEGS_PER_PAGE - 1) / XENBLK_SEGS_PER_PAGE;
	unsigned i, left = req->nseg;

	for (i = 0; i < npages; i++) {
		unsigned n = left < XENBLK_SEGS_PER_PAGE ? left :
							   XENBLK_SEGS_PER_PAGE;
		xengnttab_grant_copy_segment_t *c = &ring->copy[i];

		memset(c, 0, sizeof(*c));
		c->source.foreign.ref = ind->indirect_grefs[i];
		c->source.foreign.domid = ring->domid;
		c->dest.virt = req->seg + i * XENBLK_SEGS_PER_PAGE;
		c->len = n * sizeof(struct blkif_request_segment);
		c->flags = GNTCOPY_source_gref;
		left -= n;
	}
	if (xengnttab_grant_copy(ring->xgt, npages, ring->copy))
		return -EIO;
	for (i = 0; i < npages; i++)
		if (ring->copy[i].status != GNTST_okay)
			return -EIO;
	return 0;
}

/* Check the segments and size the data; 0 or -EINVAL. */
static int xenblk_check_segs(struct xenblk_req *req)
{
	unsigned i;

	req->len = 0;
	for (i = 0; i < req->nseg; i++) {
		const struct blkif_request_segment *s = &req->seg[i];

		if (s->last_sect < s->first_sect ||
		    s->last_sect >= XENBLK_PAGE_SIZE / XENBLK_SECTOR)
			return -EINVAL;
		req->len += (s->last_sect - s->first_sect + 1) * XENBLK_SECTOR;
	}
	return 0;
}

/* The largest request so far: shows whether large requests get through. */
static void xenblk_note_size(struct xenblk_ring *ring,
			     const struct xenblk_req *req)
{
	struct td_xen_stats *x = xenblk_stats(ring);

	if (req->len > x->max_request_bytes)
		x->max_request_bytes = req->len;
	if (req->nseg > x->max_segments)
		x->max_segments = req->nseg;
}

/*
 * Turn one request into a td_request; 0 once it is submitted, or the
 * -errno to answer it with at once.
 */
static int xenblk_start(struct xenblk_ring *ring, struct xenblk_req *req,
			const blkif_request_t *breq)
{
	const struct blkif_request_indirect *ind = (const void *)breq;
	const struct blkif_request_discard *dis = (const void *)breq;
	uint8_t rw = breq->operation;
	uint64_t sector = breq->sector_number;
	int rc;

	req->write_after_flush = false;
	req->nseg = 0;
	memset(&req->td, 0, sizeof(req->td));
	req->td.done = xenblk_req_done;
	req->td.data = req;

	switch (breq->operation) {
	case BLKIF_OP_DISCARD:
		if (!ring->discard)
			return -EOPNOTSUPP;
		if (dis->nr_sectors > UINT64_MAX / XENBLK_SECTOR ||
		    dis->sector_number > UINT64_MAX / XENBLK_SECTOR)
			return -EINVAL;
		req->td.op = TD_OP_DISCARD;
		req->td.offset = dis->sector_number * XENBLK_SECTOR;
		req->td.len = dis->nr_sectors * XENBLK_SECTOR;
		xenblk_stats(ring)->discards++;
		xenblk_stats(ring)->discard_bytes += req->td.len;
		td_vbd_submit(ring->vbd, &req->td);
		return 0;
	case BLKIF_OP_WRITE_BARRIER:
		/*
		 * Not offered: a barrier orders against the requests still
		 * in flight, which the vbd does not do; blkif says to answer
		 * EOPNOTSUPP.
		 */
		return -EOPNOTSUPP;
	case BLKIF_OP_INDIRECT:
		rw = ind->indirect_op;
		if (rw != BLKIF_OP_READ && rw != BLKIF_OP_WRITE)
			return -EINVAL;
		/* answered as the operation it carries, as blkback does */
		req->op = rw;
		req->nseg = ind->nr_segments;
		sector = ind->sector_number;
		if (!req->nseg || req->nseg > XENBLK_MAX_INDIRECT_SEGS)
			return -EINVAL;
		rc = xenblk_read_indirect(ring, req, ind);
		if (rc)
			return rc;
		xenblk_stats(ring)->indirect++;
		xenblk_stats(ring)->indirect_segments += req->nseg;
		break;
	case BLKIF_OP_READ:
	case BLKIF_OP_WRITE:
	case BLKIF_OP_FLUSH_DISKCACHE:
		req->nseg = breq->nr_segments;
		if (req->nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST ||
		    (!req->nseg && breq->operation != BLKIF_OP_FLUSH_DISKCACHE))
			return -EINVAL;
		memcpy(req->seg, breq->seg, req->nseg * sizeof(breq->seg[0]));
		break;
	default:
		return -EOPNOTSUPP;
	}

	if (rw == BLKIF_OP_FLUSH_DISKCACHE)
		xenblk_stats(ring)->flushes++;
	if (rw == BLKIF_OP_FLUSH_DISKCACHE && !req->nseg) {
		req->td.op = TD_OP_FLUSH;
		td_vbd_submit(ring->vbd, &req->td);
		return 0;
	}
	rc = xenblk_check_segs(req);
	if (rc)
		return rc;
	xenblk_note_size(ring, req);
	if (sector > (UINT64_MAX - req->len) / XENBLK_SECTOR)
		return -EINVAL;
	req->buf = td_buf_get(req->len);
	if (!req->buf)
		return -ENOMEM;
	req->iov.iov_base = req->buf;
	req->iov.iov_len = req->len;
	req->td.iov = &req->iov;
	req->td.iovcnt = 1;
	req->td.offset = sector * XENBLK_SECTOR;
	req->td.len = req->len;
	if (rw == BLKIF_OP_READ) {
		req->td.op = TD_OP_READ;
	} else {
		rc = xenblk_copy(req, false);
		if (rc)
			return rc;
		req->td.op = TD_OP_WRITE;
		if (rw == BLKIF_OP_FLUSH_DISKCACHE) {
			/* what was written before is durable before this */
			req->td.op = TD_OP_FLUSH;
			req->write_after_flush = true;
		}
	}
	td_vbd_submit(ring->vbd, &req->td);
	return 0;
}

static void xenblk_take(struct xenblk_ring *ring, const blkif_request_t *breq)
{
	struct xenblk_req *req = ring->free;
	int rc;

	ring->free = req->next_free;
	ring->inflight++;
	req->id = breq->id;
	req->op = breq->operation;
	xenblk_stats(ring)->requests++;
	rc = xenblk_start(ring, req, breq);
	if (rc) {
		xenblk_stats(ring)->refused++;
		if (rc != -EOPNOTSUPP)
			td_warn("%s: request %u refused: %s", ring->name,
				breq->operation, strerror(-rc));
		xenblk_req_put(req, rc);
	}
}

static void xenblk_kick(struct xenblk_ring *ring)
{
	RING_IDX rc, rp;
	int more;

	if (ring->broken || ring->closing)
		return;
	do {
		rp = ring->br.sring->req_prod;
		xen_rmb();
		rc = ring->br.req_cons;
		if (rp - rc > RING_SIZE(&ring->br)) {
			td_err("%s: the frontend produced %u requests on a "
			       "ring of %u: no longer serving it",
			       ring->name, rp - rc, RING_SIZE(&ring->br));
			ring->broken = true;
			return;
		}
		while (rc != rp) {
			blkif_request_t breq;

			/* a slot frees before its response is pushed */
			if (!ring->free)
				return;
			RING_COPY_REQUEST(&ring->br, rc, &breq);
			ring->br.req_cons = ++rc;
			xenblk_take(ring, &breq);
		}
		RING_FINAL_CHECK_FOR_REQUESTS(&ring->br, more);
	} while (more);
}

static void xenblk_evtchn(struct td_watch *w, int fd, uint32_t events,
			  void *data)
{
	struct xenblk_ring *ring = data;
	xenevtchn_port_or_error_t port;

	port = xenevtchn_pending(ring->xce);
	if (port < 0) {
		if (errno != EAGAIN)
			td_warn("%s: event channel: %s", ring->name,
				strerror(errno));
		return;
	}
	xenevtchn_unmask(ring->xce, port);
	xenblk_kick(ring);
}

static void xenblk_release(struct xenblk_ring *ring)
{
	unsigned i;

	if (ring->watch)
		td_watch_remove(ring->watch);
	if (ring->port)
		xenevtchn_unbind(ring->xce, ring->port);
	if (ring->sring)
		xengnttab_unmap(ring->xgt, ring->sring, ring->nr_pages);
	for (i = 0; ring->reqs && i < ring->nreqs; i++)
		if (ring->reqs[i].buf)
			td_buf_put(ring->reqs[i].buf, ring->reqs[i].len);
	free(ring->reqs);
	free(ring->segs);
	free(ring->name);
	free(ring);
}

void xenblk_ring_free(struct xenblk_ring *ring)
{
	if (ring)
		xenblk_release(ring);
}

struct xenblk_ring *xenblk_ring_connect(struct td_loop *loop,
					struct td_vbd *vbd,
					xengnttab_handle *xgt,
					xenevtchn_handle *xce,
					const struct xenblk_ring_params *p)
{
	struct xenblk_ring *ring = calloc(1, sizeof(*ring));
	xenevtchn_port_or_error_t port;
	unsigned i;
	int err;

	if (!ring)
		return NULL;
	ring->loop = loop;
	ring->vbd = vbd;
	ring->xgt = xgt;
	ring->xce = xce;
	ring->domid = p->domid;
	ring->discard = p->discard;
	ring->name = strdup(p->name);
	if (!ring->name)
		goto fail;
	ring->sring = xengnttab_map_domain_grant_refs(xgt, p->nr_refs, p->domid,
						      (uint32_t *)p->refs,
						      PROT_READ | PROT_WRITE);
	if (!ring->sring) {
		td_err("%s: cannot map the %u-page ring: %s", ring->name,
		       p->nr_refs, strerror(errno));
		goto fail;
	}
	ring->nr_pages = p->nr_refs;
	BACK_RING_INIT(&ring->br, (blkif_sring_t *)ring->sring,
		       XENBLK_PAGE_SIZE * p->nr_refs);

	ring->nreqs = RING_SIZE(&ring->br);
	ring->reqs = calloc(ring->nreqs, sizeof(*ring->reqs));
	ring->segs = calloc((size_t)ring->nreqs * XENBLK_MAX_INDIRECT_SEGS,
			    sizeof(*ring->segs));
	if (!ring->reqs || !ring->segs)
		goto fail;
	for (i = ring->nreqs; i-- > 0;) {
		struct xenblk_req *req = &ring->reqs[i];

		req->ring = ring;
		req->seg = ring->segs + (size_t)i * XENBLK_MAX_INDIRECT_SEGS;
		req->next_free = ring->free;
		ring->free = req;
	}

	port = xenevtchn_bind_interdomain(xce, p->domid, p->evtchn);
	if (port < 0) {
		td_err("%s: cannot bind event channel %u: %s", ring->name,
		       p->evtchn, strerror(errno));
		goto fail;
	}
	ring->port = port;
	ring->watch = td_watch_add(loop, xenevtchn_fd(xce), EPOLLIN,
				   xenblk_evtchn, ring);
	if (!ring->watch)
		goto fail;
	td_vbd_stats(vbd)->xen_on = true;
	xenblk_stats(ring)->ring_pages = ring->nr_pages;
	td_info("%s: connected: %u-page ring of %u requests, event channel "
		"%u",
		ring->name, ring->nr_pages, ring->nreqs, p->evtchn);
	/* the frontend may have queued requests before we bound */
	xenblk_kick(ring);
	return ring;
fail:
	err = errno ? errno : ENOMEM;
	xenblk_release(ring);
	errno = err;
	return NULL;
}

static void xenblk_closed(struct td_loop *loop, void *data)
{
	struct xenblk_ring *ring = data;
	td_loop_fn fn = ring->closed;
	void *fn_data = ring->closed_data;

	td_info("%s: disconnected", ring->name);
	xenblk_release(ring);
	fn(loop, fn_data);
}

static void xenblk_flushed(struct td_request *req, int err)
{
	struct xenblk_ring *ring = req->data;

	if (err)
		td_err("%s: flush on disconnect failed: %s", ring->name,
		       strerror(-err));
	td_loop_defer(ring->loop, &ring->close_defer, xenblk_closed, ring);
}

/* Called as requests finish while closing: once idle, flush and go. */
static void xenblk_close_step(struct xenblk_ring *ring)
{
	if (ring->inflight)
		return;
	/* deferred: a kick queued before runs first and finds us closing */
	if (td_vbd_readonly(ring->vbd)) {
		td_loop_defer(ring->loop, &ring->close_defer, xenblk_closed,
			      ring);
		return;
	}
	ring->flush_req.op = TD_OP_FLUSH;
	ring->flush_req.done = xenblk_flushed;
	ring->flush_req.data = ring;
	td_vbd_submit(ring->vbd, &ring->flush_req);
}

void xenblk_ring_disconnect(struct xenblk_ring *ring, td_loop_fn done,
			    void *data)
{
	ring->closing = true;
	ring->closed = done;
	ring->closed_data = data;
	if (ring->watch) {
		td_watch_remove(ring->watch);
		ring->watch = NULL;
	}
	xenblk_close_step(ring);
}

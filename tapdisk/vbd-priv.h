/* SPDX-License-Identifier: GPL-2.0-only */
/* Between vbd.c and vbd-align.c; nothing else includes this. */
#ifndef TD_VBD_PRIV_H
#define TD_VBD_PRIV_H

#include "vbd.h"

struct vbd_list {
	struct td_request *head, *tail;
	unsigned n;
};

enum vbd_pause_state {
	VBD_RUNNING,
	VBD_PAUSING, /* nothing new dispatched; waiting for in-flight I/O */
	VBD_FLUSHING, /* the last flush before the image is let go */
	VBD_PAUSED, /* no image: requests wait in the queue */
};

struct td_vbd {
	struct td_loop *loop;
	struct td_image *img; /* NULL while paused */
	/*
	 * The image's info as it was when paused, so that clients see the same
	 * disk while there is no image; vbd_info() is the one to read.
	 */
	struct td_image_info info;
	char *name;
	enum vbd_pause_state pause;
	td_vbd_pause_fn pause_fn;
	void *pause_data;
	struct td_request pause_flush;
	unsigned flags;
	unsigned max_inflight;
	unsigned inflight; /* dispatched to the image */
	unsigned active; /* accepted and not yet completed */
	unsigned rmw_inflight;
	uint64_t write_seq;
	struct vbd_list queue; /* accepted, waiting for a slot */
	struct vbd_list writes; /* dispatched writes, in dispatch order */
	struct vbd_list flushes; /* dispatched flushes waiting for writes */
	struct td_stats stats;
	td_loop_fn drain_fn;
	void *drain_data;
	struct td_defer drain_defer;
};

/* the disk as clients see it: the image's, live (tools resize it) */
static inline const struct td_image_info *vbd_info(const struct td_vbd *vbd)
{
	return vbd->img ? &vbd->img->info : &vbd->info;
}

/* req->vbd_flags */
#define VBD_RMW 0x1u /* a write that reads its edge blocks first */
#define VBD_CHILD 0x2u /* part of a split request: no stats of its own */

/* What the driver's alignment asks of req: 0 nothing, else a bounce. */
bool vbd_align_needed(const struct td_vbd *vbd, const struct td_request *req);
/* Does req rewrite bytes outside its own range (read-modify-write)? */
bool vbd_align_is_rmw(const struct td_vbd *vbd, const struct td_request *req);
void vbd_align_range(const struct td_vbd *vbd, const struct td_request *req,
		     uint64_t *lo, uint64_t *hi);
/* Issue req through an aligned bounce buffer; ends in vbd_io_done(). */
void vbd_align_dispatch(struct td_vbd *vbd, struct td_request *req);
/*
 * Split an unaligned WRITE_ZEROES into head and tail writes of zeroes and
 * an aligned middle; returns false if req needs no split.
 */
bool vbd_align_split_zeroes(struct td_vbd *vbd, struct td_request *req);

void vbd_io_done(struct td_request *req, int err);
void vbd_enqueue(struct td_vbd *vbd, struct td_request *req);
void vbd_finish(struct td_vbd *vbd, struct td_request *req, int err);
/* Complete a request that never reached the image (always deferred). */
void vbd_finish_early(struct td_vbd *vbd, struct td_request *req, int err);

#endif

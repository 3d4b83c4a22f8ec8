/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The virtual block device: what every frontend talks to. It validates
 * requests against the disk, keeps the in-flight limit, orders flushes
 * after the writes that completed before them, turns unaligned requests
 * into aligned ones for drivers that need it (O_DIRECT), and counts stats.
 */
#ifndef TD_VBD_H
#define TD_VBD_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"
#include "request.h"
#include "stats.h"

struct td_vbd;

#define TD_VBD_RDONLY 0x1u

struct td_vbd *td_vbd_new(struct td_loop *loop, struct td_image *chain,
			  unsigned flags, unsigned max_inflight);
/* Closes nothing: the chain belongs to the caller. */
void td_vbd_free(struct td_vbd *vbd);

/*
 * Queue a request. req->done is always called exactly once, from the loop
 * (never from inside this call), with 0 or -errno:
 * -EINVAL out-of-range read or bad arguments, -ENOSPC write past the end,
 * -EPERM write on a read-only disk, -ENOTSUP for FAST_ZERO that isn't fast.
 */
void td_vbd_submit(struct td_vbd *vbd, struct td_request *req);

uint64_t td_vbd_size(const struct td_vbd *vbd);
bool td_vbd_readonly(const struct td_vbd *vbd);
const struct td_image_info *td_vbd_info(const struct td_vbd *vbd);
const char *td_vbd_name(const struct td_vbd *vbd);
struct td_stats *td_vbd_stats(struct td_vbd *vbd);
unsigned td_vbd_inflight(const struct td_vbd *vbd);

/*
 * Call fn once nothing is queued or in flight (at once if idle). On a
 * paused vbd the queued requests fail with -ESHUTDOWN.
 */
void td_vbd_drain(struct td_vbd *vbd, td_loop_fn fn, void *data);

/*
 * Pause: stop sending requests to the image, let those in flight finish,
 * flush, then call fn (from the loop) with 0 or the flush's -errno; after
 * that the caller may close the chain. New requests wait in the queue.
 * Returns -EALREADY if not running.
 */
typedef void (*td_vbd_pause_fn)(struct td_vbd *vbd, int err, void *data);
int td_vbd_pause(struct td_vbd *vbd, td_vbd_pause_fn fn, void *data);
/*
 * Serve again from chain (the old one reopened, or another image of the
 * same size): -EINVAL if not paused, -EMEDIUMTYPE if the size differs.
 */
int td_vbd_resume(struct td_vbd *vbd, struct td_image *chain);
bool td_vbd_paused(const struct td_vbd *vbd);
/* Fail every request waiting on a paused vbd with err (shutdown). */
void td_vbd_abort_queued(struct td_vbd *vbd, int err);

#endif

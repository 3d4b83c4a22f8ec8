/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The image chain driven from ordinary code: tap-img and the classic qcow
 * tools use the same drivers as tapdisk, through a private event loop that
 * these calls run until their requests complete. For parallel work, submit
 * many requests and then wait for them.
 */
#ifndef TD_SYNCIO_H
#define TD_SYNCIO_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "request.h"

struct td_syncio;

/* flags: TD_OPEN_*. NULL with errno; the reason is logged. */
struct td_syncio *td_syncio_open(const char *name, unsigned flags);
void td_syncio_close(struct td_syncio *s);

uint64_t td_syncio_size(const struct td_syncio *s);
struct td_image *td_syncio_image(struct td_syncio *s);

/* 0 or -errno; any alignment (unaligned requests are bounced) */
int td_syncio_pread(struct td_syncio *s, void *buf, size_t len, uint64_t off);
int td_syncio_pwrite(struct td_syncio *s, const void *buf, size_t len,
		     uint64_t off, unsigned flags);
int td_syncio_flush(struct td_syncio *s);
int td_syncio_discard(struct td_syncio *s, uint64_t off, uint64_t len);
int td_syncio_write_zeroes(struct td_syncio *s, uint64_t off, uint64_t len,
			   unsigned flags);
/* the extent that starts at off (ext->len <= len) */
int td_syncio_block_status(struct td_syncio *s, uint64_t off, uint64_t len,
			   struct td_extent *ext);

/*
 * Queue req (its done() is called from inside a later wait); the caller
 * keeps req and its buffers alive until then.
 */
void td_syncio_submit(struct td_syncio *s, struct td_request *req);
/* Run the loop until at most max requests are still pending. */
int td_syncio_wait(struct td_syncio *s, unsigned max);

#endif

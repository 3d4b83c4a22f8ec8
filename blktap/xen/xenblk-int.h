/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Between the xenstore side of the backend (xs-backend.c) and its ring
 * (blkif-ring.c).
 */
#ifndef XENBLK_INT_H
#define XENBLK_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include "loop.h"

struct td_vbd;
struct xenblk_ring;

/* the largest ring we offer: 2^4 pages, 512 requests */
#define XENBLK_MAX_RING_ORDER 4
#define XENBLK_MAX_RING_PAGES (1u << XENBLK_MAX_RING_ORDER)
/* segments of an indirect request we accept: up to 1 MiB of data */
#define XENBLK_MAX_INDIRECT_SEGS 256

struct xenblk_ring_params {
	const char *name; /* for messages */
	uint32_t domid; /* the frontend's */
	const uint32_t *refs; /* the ring's grant references */
	unsigned nr_refs; /* a power of two, <= XENBLK_MAX_RING_PAGES */
	uint32_t evtchn; /* the frontend's port */
	bool discard; /* serve BLKIF_OP_DISCARD */
};

/*
 * Map the ring, bind the event channel and start taking requests.
 * Returns NULL with errno, having logged the reason.
 */
struct xenblk_ring *xenblk_ring_connect(struct td_loop *loop,
					struct td_vbd *vbd,
					xengnttab_handle *xgt,
					xenevtchn_handle *xce,
					const struct xenblk_ring_params *p);
/*
 * Stop taking requests, answer those in flight, flush the disk, unmap and
 * unbind, then call done (from the loop). The ring is freed after done.
 */
void xenblk_ring_disconnect(struct xenblk_ring *ring, td_loop_fn done,
			    void *data);
/* Frees at once (tapdisk exiting): nothing may be in flight. */
void xenblk_ring_free(struct xenblk_ring *ring);

#endif

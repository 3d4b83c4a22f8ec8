/* SPDX-License-Identifier: GPL-2.0-only */
/* Per-disk counters: requests, bytes, errors and a latency histogram. */
#ifndef TD_STATS_H
#define TD_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "request.h"

#define TD_STATS_BUCKETS 32 /* bucket i: latency < 2^i microseconds */

struct td_op_stats {
	uint64_t reqs;
	uint64_t bytes;
	uint64_t errors;
	uint64_t lat_hist[TD_STATS_BUCKETS];
	uint64_t lat_total_ns;
};

/*
 * How a Xen guest's requests arrived on the blkif ring (blktap/xen),
 * counted as they are taken off it. The ops above count what reached the
 * vbd; these say what the guest's blkfront used to get there: indirect
 * descriptors, cache flushes, discards, and the largest request.
 */
struct td_xen_stats {
	uint64_t requests; /* ring entries taken */
	uint64_t indirect; /* BLKIF_OP_INDIRECT */
	uint64_t indirect_segments;
	uint64_t flushes; /* BLKIF_OP_FLUSH_DISKCACHE, with or without data */
	uint64_t discards;
	uint64_t discard_bytes;
	uint64_t refused; /* answered with an error, never reaching the vbd */
	uint64_t max_request_bytes; /* the largest read or write */
	unsigned max_segments; /* in one request */
	unsigned ring_pages; /* of the ring last connected */
};

struct td_stats {
	struct td_op_stats op[TD_OP_MAX];
	uint64_t start_ns;
	unsigned inflight;
	unsigned queued;
	unsigned max_inflight_seen;
	bool xen_on; /* a blkif ring has been connected: report xen */
	struct td_xen_stats xen;
};

struct json_object;

void td_stats_init(struct td_stats *s);
void td_stats_account(struct td_stats *s, enum td_op op, uint64_t bytes,
		      uint64_t lat_ns, int err);
/* latency at percentile p (0..100) in microseconds, from the histogram */
uint64_t td_stats_percentile_us(const struct td_op_stats *o, double p);
struct json_object *td_stats_json(const struct td_stats *s);

#endif

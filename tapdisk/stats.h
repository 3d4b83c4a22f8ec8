/* SPDX-License-Identifier: GPL-2.0-only */
/* Per-disk counters: requests, bytes, errors and a latency histogram. */
#ifndef TD_STATS_H
#define TD_STATS_H

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

struct td_stats {
	struct td_op_stats op[TD_OP_MAX];
	uint64_t start_ns;
	unsigned inflight;
	unsigned queued;
	unsigned max_inflight_seen;
};

struct json_object;

void td_stats_init(struct td_stats *s);
void td_stats_account(struct td_stats *s, enum td_op op, uint64_t bytes,
		      uint64_t lat_ns, int err);
/* latency at percentile p (0..100) in microseconds, from the histogram */
uint64_t td_stats_percentile_us(const struct td_op_stats *o, double p);
struct json_object *td_stats_json(const struct td_stats *s);

#endif

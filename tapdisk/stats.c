// SPDX-License-Identifier: GPL-2.0-only
#include <string.h>

#include <json-c/json.h>

#include "loop.h"
#include "stats.h"

void td_stats_init(struct td_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->start_ns = td_now_ns();
}

static unsigned stats_bucket(uint64_t lat_ns)
{
	uint64_t us = lat_ns / 1000;
	unsigned b = 0;

	while (b < TD_STATS_BUCKETS - 1 && (1ull << b) <= us)
		b++;
	return b;
}

void td_stats_account(struct td_stats *s, enum td_op op, uint64_t bytes,
		      uint64_t lat_ns, int err)
{
	struct td_op_stats *o = &s->op[op];

	o->reqs++;
	if (err) {
		o->errors++;
		return;
	}
	o->bytes += bytes;
	o->lat_total_ns += lat_ns;
	o->lat_hist[stats_bucket(lat_ns)]++;
}

/* The upper bound of the bucket holding the p-th percentile. */
uint64_t td_stats_percentile_us(const struct td_op_stats *o, double p)
{
	uint64_t total = 0, seen = 0, want;
	unsigned b;

	for (b = 0; b < TD_STATS_BUCKETS; b++)
		total += o->lat_hist[b];
	if (!total)
		return 0;
	want = (uint64_t)((double)total * p / 100.0 + 0.5);
	if (want < 1)
		want = 1;
	for (b = 0; b < TD_STATS_BUCKETS; b++) {
		seen += o->lat_hist[b];
		if (seen >= want)
			return 1ull << b;
	}
	return 1ull << (TD_STATS_BUCKETS - 1);
}

static struct json_object *stats_op_json(const struct td_op_stats *o)
{
	struct json_object *j = json_object_new_object();
	uint64_t ok = o->reqs - o->errors;

	json_object_object_add(j, "requests", json_object_new_uint64(o->reqs));
	json_object_object_add(j, "bytes", json_object_new_uint64(o->bytes));
	json_object_object_add(j, "errors", json_object_new_uint64(o->errors));
	json_object_object_add(
		j, "latency_avg_us",
		json_object_new_uint64(ok ? o->lat_total_ns / ok / 1000 : 0));
	json_object_object_add(j, "latency_p50_us",
			       json_object_new_uint64(
				       td_stats_percentile_us(o, 50)));
	json_object_object_add(j, "latency_p99_us",
			       json_object_new_uint64(
				       td_stats_percentile_us(o, 99)));
	return j;
}

static void stats_add_u64(struct json_object *j, const char *key, uint64_t v)
{
	json_object_object_add(j, key, json_object_new_uint64(v));
}

static struct json_object *stats_xen_json(const struct td_xen_stats *x)
{
	struct json_object *j = json_object_new_object();

	stats_add_u64(j, "requests", x->requests);
	stats_add_u64(j, "indirect", x->indirect);
	stats_add_u64(j, "indirect_segments", x->indirect_segments);
	stats_add_u64(j, "flushes", x->flushes);
	stats_add_u64(j, "discards", x->discards);
	stats_add_u64(j, "discard_bytes", x->discard_bytes);
	stats_add_u64(j, "refused", x->refused);
	stats_add_u64(j, "max_request_bytes", x->max_request_bytes);
	stats_add_u64(j, "max_segments", x->max_segments);
	stats_add_u64(j, "ring_pages", x->ring_pages);
	return j;
}

struct json_object *td_stats_json(const struct td_stats *s)
{
	struct json_object *j = json_object_new_object();
	struct json_object *ops = json_object_new_object();
	int op;

	for (op = 0; op < TD_OP_MAX; op++)
		json_object_object_add(ops, td_op_name(op),
				       stats_op_json(&s->op[op]));
	json_object_object_add(j, "ops", ops);
	json_object_object_add(
		j, "uptime_s",
		json_object_new_uint64((td_now_ns() - s->start_ns) /
				       1000000000ull));
	json_object_object_add(j, "inflight",
			       json_object_new_uint64(s->inflight));
	json_object_object_add(j, "queued", json_object_new_uint64(s->queued));
	/* only a disk that served a Xen guest has these */
	if (s->xen_on)
		json_object_object_add(j, "xen", stats_xen_json(&s->xen));
	return j;
}

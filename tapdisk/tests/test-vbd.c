// SPDX-License-Identifier: GPL-2.0-only
/*
 * The vbd, driven through a driver that keeps the disk in memory and holds
 * every request until the test completes it, so ordering is observable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "image.h"
#include "log.h"
#include "loop.h"
#include "tap.h"
#include "vbd.h"

#define DISK_SIZE (1 << 20)
#define MAX_HELD 64

static unsigned char disk[DISK_SIZE];
static struct td_request *held[MAX_HELD];
static int nheld;
static struct td_loop *loop;
static struct td_image image;

static void hold(struct td_image *img, struct td_request *req)
{
	if (nheld == MAX_HELD)
		abort();
	held[nheld++] = req;
}

static const struct td_driver hold_driver = {
	.name = "hold",
	.queue_read = hold,
	.queue_write = hold,
	.flush = hold,
	.discard = hold,
	.write_zeroes = hold,
	.block_status = hold,
};

static void perform(struct td_request *req)
{
	uint64_t off = req->offset;
	int i;

	for (i = 0; i < req->iovcnt && req->op <= TD_OP_WRITE; i++) {
		if (req->op == TD_OP_READ)
			memcpy(req->iov[i].iov_base, disk + off,
			       req->iov[i].iov_len);
		else
			memcpy(disk + off, req->iov[i].iov_base,
			       req->iov[i].iov_len);
		off += req->iov[i].iov_len;
	}
	if (req->op == TD_OP_WRITE_ZEROES)
		memset(disk + req->offset, 0, req->len);
}

/* Complete the i-th held request (and run the loop so callbacks run). */
static void release(int i)
{
	struct td_request *req = held[i];

	memmove(held + i, held + i + 1, (nheld - i - 1) * sizeof(held[0]));
	nheld--;
	perform(req);
	td_request_complete(&image, req, 0);
	td_loop_once(loop, 0);
}

static void release_all(void)
{
	while (nheld)
		release(0);
	td_loop_once(loop, 0);
}

static int find_held(enum td_op op)
{
	int i;

	for (i = 0; i < nheld; i++)
		if (held[i]->op == op)
			return i;
	return -1;
}

struct done {
	int calls;
	int err;
};

static void on_done(struct td_request *req, int err)
{
	struct done *d = req->data;

	d->calls++;
	d->err = err;
}

static void prep(struct td_request *req, enum td_op op, uint64_t off,
		 uint64_t len, struct iovec *iov, void *buf, struct done *d)
{
	memset(req, 0, sizeof(*req));
	memset(d, 0, sizeof(*d));
	req->op = op;
	req->offset = off;
	req->len = len;
	if (iov) {
		iov->iov_base = buf;
		iov->iov_len = len;
		req->iov = iov;
		req->iovcnt = 1;
	}
	req->done = on_done;
	req->data = d;
}

static struct td_vbd *new_vbd(unsigned align, unsigned flags, unsigned max)
{
	image.drv = &hold_driver;
	image.name = "hold:test";
	image.loop = loop;
	image.info.size = DISK_SIZE;
	image.info.align = align;
	return td_vbd_new(loop, &image, flags, max);
}

static void drained(struct td_loop *l, void *data)
{
	(*(int *)data)++;
}

static void test_validation(void)
{
	struct td_vbd *vbd = new_vbd(1, 0, 0), *ro = new_vbd(1, TD_VBD_RDONLY,
							      0);
	struct td_request r[4];
	struct iovec iov[4];
	struct done d[4];
	static char buf[4096];

	prep(&r[0], TD_OP_READ, DISK_SIZE - 512, 1024, &iov[0], buf, &d[0]);
	td_vbd_submit(vbd, &r[0]);
	prep(&r[1], TD_OP_WRITE, DISK_SIZE, 512, &iov[1], buf, &d[1]);
	td_vbd_submit(vbd, &r[1]);
	prep(&r[2], TD_OP_WRITE, 0, 512, &iov[2], buf, &d[2]);
	td_vbd_submit(ro, &r[2]);
	prep(&r[3], TD_OP_BLOCK_STATUS, 0, 0, NULL, NULL, &d[3]);
	td_vbd_submit(vbd, &r[3]);
	is(d[0].calls + d[1].calls + d[2].calls + d[3].calls, 0,
	   "no completion from inside submit");
	td_loop_once(loop, 0);
	is(d[0].err, -EINVAL, "read past the end: EINVAL");
	is(d[1].err, -ENOSPC, "write past the end: ENOSPC");
	is(d[2].err, -EPERM, "write to a read-only vbd: EPERM");
	is(d[3].err, -EINVAL, "zero-length block status: EINVAL");
	is(nheld, 0, "nothing reached the driver");
	is(td_vbd_stats(vbd)->op[TD_OP_READ].errors, 1, "errors counted");
	td_vbd_free(vbd);
	td_vbd_free(ro);
}

static void test_flush_order(void)
{
	struct td_vbd *vbd = new_vbd(1, 0, 0);
	struct td_request w[3], f;
	struct iovec iov[3];
	struct done dw[3], df;
	static char buf[3][512];
	int i, drains = 0;

	prep(&w[0], TD_OP_WRITE, 0, 512, &iov[0], buf[0], &dw[0]);
	prep(&w[1], TD_OP_WRITE, 4096, 512, &iov[1], buf[1], &dw[1]);
	prep(&f, TD_OP_FLUSH, 0, 0, NULL, NULL, &df);
	prep(&w[2], TD_OP_WRITE, 8192, 512, &iov[2], buf[2], &dw[2]);
	td_vbd_submit(vbd, &w[0]);
	td_vbd_submit(vbd, &w[1]);
	td_vbd_submit(vbd, &f);
	td_vbd_submit(vbd, &w[2]);
	is(nheld, 3, "three writes reach the driver, the flush waits");
	is(find_held(TD_OP_FLUSH), -1, "flush held back");
	release(2); /* the write issued after the flush */
	is(find_held(TD_OP_FLUSH), -1, "a later write does not free the flush");
	release(0);
	is(find_held(TD_OP_FLUSH), -1, "flush waits for every earlier write");
	release(0);
	i = find_held(TD_OP_FLUSH);
	ok(i >= 0, "flush dispatched once the earlier writes completed");
	is(df.calls, 0, "flush not completed before the driver did it");
	td_vbd_drain(vbd, drained, &drains);
	td_loop_once(loop, 0);
	is(drains, 0, "drain waits for the flush");
	release_all();
	is(df.calls, 1, "flush completed");
	is(drains, 1, "drain callback after the last completion");
	td_vbd_free(vbd);
}

static void test_inflight_limit(void)
{
	struct td_vbd *vbd = new_vbd(1, 0, 2);
	struct td_request r[4];
	struct iovec iov[4];
	struct done d[4];
	static char buf[4][512];
	int i;

	for (i = 0; i < 4; i++) {
		prep(&r[i], TD_OP_READ, i * 512, 512, &iov[i], buf[i], &d[i]);
		td_vbd_submit(vbd, &r[i]);
	}
	is(nheld, 2, "only max_inflight requests reach the driver");
	is(td_vbd_stats(vbd)->queued, 2, "the rest wait in the queue");
	release(0);
	is(nheld, 2, "a completion lets the next one in");
	release_all();
	is(d[0].calls + d[1].calls + d[2].calls + d[3].calls, 4,
	   "all four completed");
	is(td_vbd_stats(vbd)->op[TD_OP_READ].reqs, 4, "reads counted");
	is(td_vbd_stats(vbd)->op[TD_OP_READ].bytes, 2048, "bytes counted");
	td_vbd_free(vbd);
}

/* Discards and zeroes count the bytes they cover; a block status query none. */
static void test_range_bytes(void)
{
	struct td_vbd *vbd = new_vbd(1, 0, 8);
	struct td_request r[3];
	struct done d[3];

	prep(&r[0], TD_OP_DISCARD, 0, 4096, NULL, NULL, &d[0]);
	prep(&r[1], TD_OP_WRITE_ZEROES, 4096, 8192, NULL, NULL, &d[1]);
	prep(&r[2], TD_OP_BLOCK_STATUS, 0, DISK_SIZE, NULL, NULL, &d[2]);
	td_vbd_submit(vbd, &r[0]);
	td_vbd_submit(vbd, &r[1]);
	td_vbd_submit(vbd, &r[2]);
	release_all();
	is(td_vbd_stats(vbd)->op[TD_OP_DISCARD].bytes, 4096,
	   "discard bytes counted");
	is(td_vbd_stats(vbd)->op[TD_OP_WRITE_ZEROES].bytes, 8192,
	   "write_zeroes bytes counted");
	is(td_vbd_stats(vbd)->op[TD_OP_BLOCK_STATUS].bytes, 0,
	   "block status moves no bytes");
	td_vbd_free(vbd);
}

/* The Xen ring's counters are in the stats reply once a guest connected. */
static void test_stats_json(void)
{
	struct td_stats s;
	struct json_object *j, *xen, *v;

	td_stats_init(&s);
	j = td_stats_json(&s);
	ok(!json_object_object_get_ex(j, "xen", &xen),
	   "no xen object without a guest");
	json_object_put(j);

	s.xen_on = true;
	s.xen.indirect = 7;
	s.xen.discard_bytes = 1ull << 40;
	s.xen.max_segments = 32;
	j = td_stats_json(&s);
	ok(json_object_object_get_ex(j, "xen", &xen), "xen object once on");
	ok(json_object_object_get_ex(xen, "indirect", &v) &&
		   json_object_get_uint64(v) == 7,
	   "indirect requests");
	ok(json_object_object_get_ex(xen, "discard_bytes", &v) &&
		   json_object_get_uint64(v) == 1ull << 40,
	   "discard bytes, 64-bit");
	ok(json_object_object_get_ex(xen, "max_segments", &v) &&
		   json_object_get_uint64(v) == 32,
	   "largest request's segments");
	ok(json_object_object_get_ex(xen, "refused", &v) &&
		   json_object_get_uint64(v) == 0,
	   "refused, zero");
	json_object_put(j);
}

static void test_unaligned(void)
{
	struct td_vbd *vbd = new_vbd(512, 0, 0);
	static unsigned char data[100], out[700], want[2048];
	struct td_request w, w2, r, z;
	struct iovec iov, iov2, iovr;
	struct done dw, dw2, dr, dz;
	static unsigned char *blk;
	int i;

	for (i = 0; i < DISK_SIZE; i++)
		disk[i] = i * 7;
	memset(data, 0xab, sizeof(data));
	prep(&w, TD_OP_WRITE, 600, sizeof(data), &iov, data, &dw);
	td_vbd_submit(vbd, &w);
	is(nheld, 1, "unaligned write inside one block reads it once");
	ok(held[0]->op == TD_OP_READ && held[0]->offset == 512 &&
		   held[0]->len == 512,
	   "edge read is the aligned block");
	/* an aligned write to the same block must wait for the RMW */
	blk = aligned_alloc(512, 512);
	memset(blk, 0xcd, 512);
	prep(&w2, TD_OP_WRITE, 512, 512, &iov2, blk, &dw2);
	td_vbd_submit(vbd, &w2);
	is(nheld, 1, "overlapping write waits for the read-modify-write");
	release(0);
	ok(nheld == 1 && held[0]->op == TD_OP_WRITE && held[0]->offset == 512,
	   "RMW write covers the aligned block");
	release(0);
	is(dw.err, 0, "unaligned write completed");
	ok(nheld == 1 && held[0] == &w2, "then the waiting write goes");
	release_all();
	ok(disk[600] == 0xcd && disk[699] == 0xcd &&
		   disk[511] == (unsigned char)(511 * 7),
	   "later write wins, neighbours kept");

	for (i = 0; i < DISK_SIZE; i++)
		disk[i] = i * 7;
	memcpy(want, disk, sizeof(want));
	memset(data, 0x11, sizeof(data));
	prep(&w, TD_OP_WRITE, 500, sizeof(data), &iov, data, &dw);
	td_vbd_submit(vbd, &w);
	is(nheld, 2, "a write straddling two blocks reads both edges");
	release_all();
	memset(want + 500, 0x11, sizeof(data));
	ok(!memcmp(disk, want, sizeof(want)), "straddling RMW result exact");

	prep(&r, TD_OP_READ, 300, sizeof(out), &iovr, out, &dr);
	td_vbd_submit(vbd, &r);
	ok(nheld == 1 && held[0]->offset == 0 && held[0]->len == 1024,
	   "unaligned read widened to aligned blocks");
	release_all();
	ok(dr.err == 0 && !memcmp(out, want + 300, sizeof(out)),
	   "unaligned read returns the right bytes");

	prep(&z, TD_OP_WRITE_ZEROES, 100, 1900, NULL, NULL, &dz);
	td_vbd_submit(vbd, &z);
	ok(find_held(TD_OP_WRITE_ZEROES) >= 0 &&
		   held[find_held(TD_OP_WRITE_ZEROES)]->offset == 512 &&
		   held[find_held(TD_OP_WRITE_ZEROES)]->len == 1024,
	   "unaligned write_zeroes: the aligned middle goes to the driver");
	release_all();
	release_all();
	memset(want + 100, 0, 1900);
	ok(dz.calls == 1 && dz.err == 0 && !memcmp(disk, want, sizeof(want)),
	   "unaligned write_zeroes zeroes exactly its range");
	free(blk);
	td_vbd_free(vbd);
}

static int pause_calls, pause_err = 1;

static void on_paused(struct td_vbd *vbd, int err, void *data)
{
	pause_calls++;
	pause_err = err;
}

static void test_pause_resume(void)
{
	struct td_vbd *vbd = new_vbd(1, 0, 0);
	struct td_image other = image;
	struct td_request r[3];
	struct iovec iov[3];
	struct done d[3];
	static char buf[3][512];
	int drains = 0;

	prep(&r[0], TD_OP_WRITE, 0, 512, &iov[0], buf[0], &d[0]);
	td_vbd_submit(vbd, &r[0]);
	is(td_vbd_pause(vbd, on_paused, NULL), 0, "pause accepted");
	is(td_vbd_pause(vbd, on_paused, NULL), -EALREADY, "pause twice: EALREADY");
	prep(&r[1], TD_OP_READ, 512, 512, &iov[1], buf[1], &d[1]);
	td_vbd_submit(vbd, &r[1]);
	is(nheld, 1, "a request after pause is not dispatched");
	td_loop_once(loop, 0);
	is(pause_calls, 0, "not paused while a write is in flight");
	release(0);
	ok(nheld == 1 && held[0]->op == TD_OP_FLUSH,
	   "in-flight write done: the pause flushes");
	release(0);
	ok(pause_calls == 1 && pause_err == 0, "paused after the flush");
	ok(td_vbd_paused(vbd), "td_vbd_paused");
	is(nheld, 0, "the queued read still waits");
	other.info.size = DISK_SIZE * 2;
	is(td_vbd_resume(vbd, &other), -EMEDIUMTYPE,
	   "resume onto another size refused");
	ok(td_vbd_paused(vbd), "still paused");
	other.info.size = DISK_SIZE;
	other.name = "hold:other";
	is(td_vbd_resume(vbd, &other), 0, "resume onto an image of that size");
	ok(!strcmp(td_vbd_name(vbd), "hold:other"), "name follows the image");
	ok(nheld == 1 && held[0] == &r[1], "the queued read goes now");
	release_all();
	is(d[1].calls, 1, "and completes");
	is(td_vbd_resume(vbd, &other), -EINVAL, "resume when running: EINVAL");

	/* shutting down while paused fails what waits */
	pause_calls = 0;
	td_vbd_pause(vbd, on_paused, NULL);
	release_all();
	is(pause_calls, 1, "paused again");
	prep(&r[2], TD_OP_READ, 0, 512, &iov[2], buf[2], &d[2]);
	td_vbd_submit(vbd, &r[2]);
	td_vbd_drain(vbd, drained, &drains);
	td_loop_once(loop, 0);
	td_loop_once(loop, 0);
	is(d[2].err, -ESHUTDOWN, "queued request fails with ESHUTDOWN");
	is(drains, 1, "and the drain completes");
	td_vbd_free(vbd);
}

int main(void)
{
	td_log_open("test-vbd", true, LOG_CRIT);
	loop = td_loop_new();
	test_validation();
	test_flush_order();
	test_inflight_limit();
	test_stats_json();
	test_range_bytes();
	test_unaligned();
	test_pause_resume();
	td_loop_free(loop);
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * One client connection: input parsing, requests to the vbd, and replies.
 *
 * Input is read with one recv per wake-up into a large buffer and parsed
 * for every request it holds; write payloads that did not fully arrive are
 * then read straight into their data buffer. Replies are queued as iovecs
 * in completion order and go out with one sendmsg per loop iteration, from
 * a deferred call that runs after the completions the I/O engine reaped
 * together (see nbd_server_kick). A connection never goes away while the vbd
 * holds one of its requests.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "nbd-int.h"
#include "vbd.h"

#define SEND_IOV_MAX (IOV_MAX < 1024 ? IOV_MAX : 1024)

static void conn_destroy(struct nbd_conn *c);
static void conn_parse(struct nbd_conn *c);

static void conn_update_events(struct nbd_conn *c)
{
	uint32_t ev = 0;

	if (!c->watch)
		return;
	if ((c->state != NBD_CONN_CLOSING) && !c->throttled)
		ev |= EPOLLIN;
	if (c->events & EPOLLOUT)
		ev |= EPOLLOUT;
	if (ev != td_watch_events(c->watch))
		td_watch_set_events(c->watch, ev);
}

static void set_want_out(struct nbd_conn *c, bool on)
{
	if (on)
		c->events |= EPOLLOUT;
	else
		c->events &= ~(uint32_t)EPOLLOUT;
	conn_update_events(c);
}

static void mark_dirty(struct nbd_conn *c)
{
	c->dirty = true;
	if (c->srv)
		nbd_server_kick(c->srv);
}

static bool output_pending(const struct nbd_conn *c)
{
	return c->hs_off < c->hs_len || c->out_head;
}

int nbd_conn_send_bytes(struct nbd_conn *c, const void *data, size_t len)
{
	if (c->hs_len + len > c->hs_cap) {
		size_t cap = c->hs_cap ? c->hs_cap : 1024;
		uint8_t *p;

		while (cap < c->hs_len + len)
			cap *= 2;
		p = realloc(c->hs_out, cap);
		if (!p)
			return -ENOMEM;
		c->hs_out = p;
		c->hs_cap = cap;
	}
	memcpy(c->hs_out + c->hs_len, data, len);
	c->hs_len += len;
	mark_dirty(c);
	return 0;
}

static void resume_cb(struct td_loop *loop, void *data);

static void update_throttle(struct nbd_conn *c)
{
	bool over = c->nios >= NBD_MAX_INFLIGHT ||
		    c->buf_bytes >= NBD_MAX_INFLIGHT_BYTES;

	if (over == c->throttled)
		return;
	c->throttled = over;
	conn_update_events(c);
	/* requests may already sit in the buffer; no wake-up for them */
	if (!over && c->srv && c->state == NBD_CONN_XMIT &&
	    c->in_end > c->in_start && !c->resume_queued) {
		c->resume_queued = true;
		td_loop_defer(c->srv->loop, &c->resume, resume_cb, c);
	}
}

static int io_buf_get(struct nbd_conn *c, struct nbd_io *io, size_t size)
{
	io->buf = td_buf_get(size);
	if (!io->buf)
		return -ENOMEM;
	io->buf_size = size;
	c->buf_bytes += size;
	update_throttle(c);
	return 0;
}

static void io_buf_put(struct nbd_conn *c, struct nbd_io *io)
{
	if (!io->buf)
		return;
	td_buf_put(io->buf, io->buf_size);
	io->buf = NULL;
	c->buf_bytes -= io->buf_size;
	update_throttle(c);
}

static struct nbd_io *io_get(struct nbd_conn *c)
{
	struct nbd_io *io = c->free_ios;

	if (io) {
		c->free_ios = io->next;
	} else {
		io = calloc(1, sizeof(*io));
		if (!io)
			return NULL;
		io->conn = c;
	}
	io->next = NULL;
	io->buf = NULL;
	io->out_idx = io->out_cnt = 0;
	c->nios++;
	update_throttle(c);
	return io;
}

static void resume_cb(struct td_loop *loop, void *data)
{
	struct nbd_conn *c = data;

	c->resume_queued = false;
	if (c->freed) {
		free(c);
		return;
	}
	conn_parse(c);
	nbd_conn_check(c);
}

static void io_put(struct nbd_conn *c, struct nbd_io *io)
{
	io->next = c->free_ios;
	c->free_ios = io;
	c->nios--;
	io_buf_put(c, io);
}

static void queue_reply(struct nbd_conn *c, struct nbd_io *io)
{
	if (c->out_tail)
		c->out_tail->next = io;
	else
		c->out_head = io;
	c->out_tail = io;
	io->next = NULL;
	mark_dirty(c);
}

/* An error reply, simple or structured as the command requires. */
static void reply_error(struct nbd_conn *c, struct nbd_io *io, uint32_t err)
{
	if (c->caps.structured &&
	    (io->type == NBD_CMD_READ || io->type == NBD_CMD_BLOCK_STATUS)) {
		nbd_enc_error_chunk(io->hdr, err, io->cookie);
		io->out[0].iov_len = NBD_ERROR_CHUNK_LEN;
	} else {
		nbd_enc_simple_reply(io->hdr, err, io->cookie);
		io->out[0].iov_len = NBD_SIMPLE_REPLY_LEN;
	}
	io->out[0].iov_base = io->hdr;
	io->out_cnt = 1;
	io_buf_put(c, io);
	queue_reply(c, io);
}

static void reply_ok(struct nbd_conn *c, struct nbd_io *io)
{
	io->out[0].iov_base = io->hdr;
	io->out_cnt = 1;
	if (io->type == NBD_CMD_READ && c->caps.structured) {
		if (io->len && td_buf_is_zero(io->buf, io->len)) {
			/*
			 * Zeroes cost neither side a copy: one hole chunk
			 * (allowed under DF too: it is the only content).
			 */
			nbd_enc_chunk_hdr(io->hdr, NBD_REPLY_FLAG_DONE,
					  NBD_REPLY_TYPE_OFFSET_HOLE,
					  io->cookie, 12);
			td_be_put64(io->hdr + NBD_CHUNK_HDR_LEN, io->offset);
			td_be_put32(io->hdr + NBD_CHUNK_HDR_LEN + 8, io->len);
			io->out[0].iov_len = NBD_CHUNK_HDR_LEN + 12;
			io_buf_put(c, io);
			queue_reply(c, io);
			return;
		} else if (io->len) {
			nbd_enc_chunk_hdr(io->hdr, NBD_REPLY_FLAG_DONE,
					  NBD_REPLY_TYPE_OFFSET_DATA,
					  io->cookie, io->len + 8);
			td_be_put64(io->hdr + NBD_CHUNK_HDR_LEN, io->offset);
			io->out[0].iov_len = NBD_CHUNK_HDR_LEN + 8;
		} else {
			/* OFFSET_DATA can't carry zero bytes */
			nbd_enc_chunk_hdr(io->hdr, NBD_REPLY_FLAG_DONE,
					  NBD_REPLY_TYPE_NONE, io->cookie, 0);
			io->out[0].iov_len = NBD_CHUNK_HDR_LEN;
		}
	} else if (io->type == NBD_CMD_BLOCK_STATUS) {
		uint32_t len = 4 + io->n_ext * NBD_EXTENT_LEN;

		nbd_enc_chunk_hdr(io->hdr, NBD_REPLY_FLAG_DONE,
				  NBD_REPLY_TYPE_BLOCK_STATUS, io->cookie, len);
		td_be_put32(io->ext, c->caps.meta_id);
		io->out[0].iov_len = NBD_CHUNK_HDR_LEN;
		io->out[1].iov_base = io->ext;
		io->out[1].iov_len = len;
		io->out_cnt = 2;
	} else {
		nbd_enc_simple_reply(io->hdr, 0, io->cookie);
		io->out[0].iov_len = NBD_SIMPLE_REPLY_LEN;
	}
	if (io->type == NBD_CMD_READ && io->len) {
		io->out[1].iov_base = io->buf;
		io->out[1].iov_len = io->len;
		io->out_cnt = 2;
	} else {
		io_buf_put(c, io);
	}
	queue_reply(c, io);
}

static void io_submit(struct nbd_conn *c, struct nbd_io *io, enum td_op op,
		      uint64_t offset, uint64_t len);

/* Add one extent; true if the reply is complete. */
static bool bs_add(struct nbd_io *io, const struct td_extent *e)
{
	bool one = io->flags & NBD_CMD_FLAG_REQ_ONE;
	uint32_t flags = nbd_state_flags(e->flags);
	uint64_t len = e->len;
	uint8_t *last =
		io->ext + 4 + (io->n_ext ? io->n_ext - 1 : 0) * NBD_EXTENT_LEN;

	if (one && len > io->len - io->covered)
		len = io->len - io->covered;
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	if (io->n_ext && flags == io->last_flags &&
	    td_be_get32(last) + len <= UINT32_MAX) {
		td_be_put32(last, (uint32_t)(td_be_get32(last) + len));
	} else {
		nbd_enc_extent(io->ext + 4 + io->n_ext * NBD_EXTENT_LEN,
			       (uint32_t)len, flags);
		io->n_ext++;
		io->last_flags = flags;
	}
	io->covered += len;
	return one || io->covered >= io->len || io->n_ext >= NBD_MAX_EXTENTS;
}

static void io_done(struct td_request *req, int err)
{
	struct nbd_io *io = req->data;
	struct nbd_conn *c = io->conn;

	c->vbd_held--;
	if (!c->srv) {
		/* orphaned by nbd_server_free: nobody to answer */
		io_put(c, io);
		if (!c->vbd_held)
			conn_destroy(c);
		return;
	}
	if (err) {
		if (err != -ENOTSUP || io->type != NBD_CMD_WRITE_ZEROES)
			td_debug("nbd %s: %s %#llx+%u failed: %s", c->peer,
				 nbd_cmd_name(io->type),
				 (unsigned long long)io->offset, io->len,
				 strerror(-err));
		reply_error(c, io, nbd_errno(err));
	} else if (io->type == NBD_CMD_BLOCK_STATUS) {
		if (!req->status.len) {
			reply_error(c, io, NBD_EIO);
		} else if (!bs_add(io, &req->status) &&
			   c->state != NBD_CONN_CLOSING) {
			io_submit(c, io, TD_OP_BLOCK_STATUS,
				  io->offset + io->covered,
				  io->len - io->covered);
			return;
		} else {
			reply_ok(c, io);
		}
	} else {
		reply_ok(c, io);
	}
	nbd_conn_check(c);
}

static void io_submit(struct nbd_conn *c, struct nbd_io *io, enum td_op op,
		      uint64_t offset, uint64_t len)
{
	struct td_request *req = &io->req;

	memset(req, 0, sizeof(*req));
	req->op = op;
	req->offset = offset;
	req->len = len;
	if (io->buf) {
		io->data_iov.iov_base = io->buf;
		io->data_iov.iov_len = len;
		req->iov = &io->data_iov;
		req->iovcnt = 1;
	}
	if (io->flags & NBD_CMD_FLAG_FUA)
		req->flags |= TD_REQ_FUA;
	if (io->flags & NBD_CMD_FLAG_NO_HOLE)
		req->flags |= TD_REQ_NO_HOLE;
	if (io->flags & NBD_CMD_FLAG_FAST_ZERO)
		req->flags |= TD_REQ_FAST_ZERO;
	req->done = io_done;
	req->data = io;
	c->vbd_held++;
	td_vbd_submit(c->srv->vbd, req);
}

static const enum td_op cmd_op[] = {
	[NBD_CMD_READ] = TD_OP_READ,
	[NBD_CMD_WRITE] = TD_OP_WRITE,
	[NBD_CMD_FLUSH] = TD_OP_FLUSH,
	[NBD_CMD_TRIM] = TD_OP_DISCARD,
	[NBD_CMD_CACHE] = TD_OP_CACHE,
	[NBD_CMD_WRITE_ZEROES] = TD_OP_WRITE_ZEROES,
	[NBD_CMD_BLOCK_STATUS] = TD_OP_BLOCK_STATUS,
};

static void io_start(struct nbd_conn *c, struct nbd_io *io)
{
	uint64_t len = io->type == NBD_CMD_FLUSH ? 0 : io->len;
	uint64_t off = io->type == NBD_CMD_FLUSH ? 0 : io->offset;

	/* zero-length data commands are no-ops; the vbd needn't see them */
	if (!len && io->type != NBD_CMD_FLUSH) {
		reply_ok(c, io);
		return;
	}
	io_submit(c, io, cmd_op[io->type], off, len);
}

/* Returns -EPROTO if the connection must close. */
static int handle_request(struct nbd_conn *c, const struct nbd_req_hdr *h)
{
	struct nbd_io *io;
	int verdict;

	if (h->type == NBD_CMD_DISC) {
		td_debug("nbd %s: disconnect requested", c->peer);
		c->state = NBD_CONN_CLOSING;
		c->drain_output = true;
		conn_update_events(c);
		return 0;
	}
	verdict = nbd_check_req(h, &c->caps);
	if (verdict < 0) {
		td_warn("nbd %s: %s of %u bytes exceeds the %u byte limit, closing",
			c->peer, nbd_cmd_name(h->type), h->len,
			NBD_MAX_PAYLOAD);
		return verdict;
	}
	io = io_get(c);
	if (!io)
		return -ENOMEM;
	io->cookie = h->cookie;
	io->offset = h->offset;
	io->len = h->len;
	io->type = h->type;
	io->flags = h->flags;
	if (verdict) {
		if (verdict == NBD_EINVAL && h->type > NBD_CMD_BLOCK_STATUS)
			td_warn("nbd %s: unknown command %u", c->peer, h->type);
		if (h->type == NBD_CMD_WRITE)
			c->skip = h->len;
		reply_error(c, io, verdict);
		return 0;
	}
	if ((h->type == NBD_CMD_READ || h->type == NBD_CMD_WRITE) && h->len) {
		if (io_buf_get(c, io, h->len)) {
			if (h->type == NBD_CMD_WRITE)
				c->skip = h->len;
			reply_error(c, io, NBD_ENOMEM);
			return 0;
		}
	}
	if (h->type == NBD_CMD_BLOCK_STATUS) {
		if (!io->ext) {
			io->ext = malloc(4 + NBD_MAX_EXTENTS * NBD_EXTENT_LEN);
			if (!io->ext) {
				reply_error(c, io, NBD_ENOMEM);
				return 0;
			}
		}
		io->n_ext = 0;
		io->covered = 0;
	}
	if (h->type == NBD_CMD_WRITE && h->len) {
		c->wr = io;
		c->wr_got = 0;
		return 0;
	}
	io_start(c, io);
	return 0;
}

static void drop_output(struct nbd_conn *c);

/* Hard disconnect: nothing more is read or sent. */
static void conn_fail(struct nbd_conn *c)
{
	c->state = NBD_CONN_CLOSING;
	c->drain_output = false;
	c->send_failed = true;
	if (c->watch)
		td_watch_remove(c->watch);
	c->watch = NULL;
	if (c->wr) {
		io_put(c, c->wr);
		c->wr = NULL;
	}
	drop_output(c);
}

/* Feed buffered input to the current write payload or skip count. */
static bool consume_payload(struct nbd_conn *c)
{
	size_t avail = c->in_end - c->in_start;

	if (c->wr) {
		size_t n = c->wr->len - c->wr_got;

		if (n > avail)
			n = avail;
		memcpy((uint8_t *)c->wr->buf + c->wr_got, c->in + c->in_start,
		       n);
		c->in_start += n;
		c->wr_got += (uint32_t)n;
		if (c->wr_got < c->wr->len)
			return false;
		io_start(c, c->wr);
		c->wr = NULL;
	} else if (c->skip) {
		size_t n = c->skip < avail ? (size_t)c->skip : avail;

		c->in_start += n;
		c->skip -= n;
		if (c->skip)
			return false;
	}
	return true;
}

static void conn_parse(struct nbd_conn *c)
{
	int err = 0;

	if (c->state == NBD_CONN_FLAGS || c->state == NBD_CONN_OPTS)
		err = nbd_hs_input(c);
	while (!err && c->state == NBD_CONN_XMIT && !c->throttled) {
		struct nbd_req_hdr h;

		if (!consume_payload(c))
			break;
		if (c->in_end - c->in_start < NBD_REQ_HDR_LEN)
			break;
		if (nbd_parse_req_hdr(c->in + c->in_start, &h)) {
			td_warn("nbd %s: bad request magic, closing", c->peer);
			err = -EPROTO;
			break;
		}
		c->in_start += NBD_REQ_HDR_LEN;
		err = handle_request(c, &h);
	}
	if (err)
		conn_fail(c);
	else
		conn_update_events(c); /* after ABORT, reading must stop */
	if (c->in_start == c->in_end) {
		c->in_start = c->in_end = 0;
	} else if (c->in_start) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
}

static void conn_read(struct nbd_conn *c)
{
	ssize_t n;

	if (c->in_end == NBD_IN_BUF_SIZE) {
		/* a resume is pending: make room before reading more */
		conn_parse(c);
		if (c->in_end == NBD_IN_BUF_SIZE || c->state != NBD_CONN_XMIT)
			return;
	}

	if (c->wr && c->in_start == c->in_end) {
		/* the rest of a large payload goes straight to its buffer */
		n = recv(c->fd, (uint8_t *)c->wr->buf + c->wr_got,
			 c->wr->len - c->wr_got, 0);
		if (n > 0) {
			c->wr_got += (uint32_t)n;
			if (c->wr_got == c->wr->len) {
				io_start(c, c->wr);
				c->wr = NULL;
				conn_parse(c);
			}
			return;
		}
	} else {
		n = recv(c->fd, c->in + c->in_end, NBD_IN_BUF_SIZE - c->in_end,
			 0);
		if (n > 0) {
			c->in_end += (size_t)n;
			conn_parse(c);
			return;
		}
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0) {
		if (c->state != NBD_CONN_XMIT || c->wr || c->skip ||
		    c->in_end > c->in_start)
			td_debug("nbd %s: client went away mid-message",
				 c->peer);
		else
			td_debug("nbd %s: client closed the connection",
				 c->peer);
	} else {
		td_debug("nbd %s: recv: %s", c->peer, strerror(errno));
	}
	conn_fail(c);
}

static void io_sent(struct nbd_conn *c, size_t n)
{
	size_t k = c->hs_len - c->hs_off;

	if (k) {
		k = k < n ? k : n;
		c->hs_off += k;
		n -= k;
		if (c->hs_off == c->hs_len)
			c->hs_off = c->hs_len = 0;
	}
	while (n) {
		struct nbd_io *io = c->out_head;
		struct iovec *v = &io->out[io->out_idx];

		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		if (++io->out_idx < io->out_cnt)
			continue;
		c->out_head = io->next;
		if (!c->out_head)
			c->out_tail = NULL;
		io_put(c, io);
	}
}

static int conn_send(struct nbd_conn *c)
{
	struct iovec iov[SEND_IOV_MAX];
	struct msghdr msg = { .msg_iov = iov };
	size_t total = 0;
	struct nbd_io *io;
	int n = 0;
	ssize_t r;

	if (c->hs_off < c->hs_len) {
		iov[n].iov_base = c->hs_out + c->hs_off;
		iov[n++].iov_len = c->hs_len - c->hs_off;
		total += c->hs_len - c->hs_off;
	}
	for (io = c->out_head; io && n + 2 <= SEND_IOV_MAX; io = io->next) {
		int i;

		for (i = io->out_idx; i < io->out_cnt; i++) {
			iov[n++] = io->out[i];
			total += io->out[i].iov_len;
		}
	}
	msg.msg_iovlen = (size_t)n;
	r = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return -EAGAIN;
		return -errno;
	}
	io_sent(c, (size_t)r);
	return (size_t)r < total ? -EAGAIN : 0;
}

/* Recycle queued replies that will never be sent. */
static void drop_output(struct nbd_conn *c)
{
	while (c->out_head) {
		struct nbd_io *io = c->out_head;

		c->out_head = io->next;
		io_put(c, io);
	}
	c->out_tail = NULL;
	c->hs_off = c->hs_len = 0;
}

void nbd_conn_flush(struct nbd_conn *c)
{
	int err = 0;

	c->dirty = false;
	if (c->send_failed) {
		drop_output(c);
		return;
	}
	while (output_pending(c) && !err)
		err = conn_send(c);
	if (err == -EAGAIN) {
		set_want_out(c, true);
		return;
	}
	if (err) {
		td_debug("nbd %s: send: %s", c->peer, strerror(-err));
		conn_fail(c);
		return;
	}
	if (c->events & EPOLLOUT)
		set_want_out(c, false);
}

static void conn_event(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct nbd_conn *c = data;

	if (events & EPOLLOUT)
		nbd_conn_flush(c);
	if (c->state == NBD_CONN_CLOSING || c->throttled) {
		/* hang-ups are reported even with EPOLLIN off: don't spin */
		if (events & (EPOLLHUP | EPOLLERR)) {
			td_debug("nbd %s: hung up", c->peer);
			conn_fail(c);
		}
	} else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		conn_read(c);
	}
	nbd_conn_check(c);
}

void nbd_conn_check(struct nbd_conn *c)
{
	if (c->state != NBD_CONN_CLOSING || c->vbd_held)
		return;
	/* the kick or EPOLLOUT sends the rest, then checks again */
	if (c->drain_output && !c->send_failed && output_pending(c))
		return;
	conn_destroy(c);
}

static void conn_destroy(struct nbd_conn *c)
{
	struct nbd_server *srv = c->srv;

	td_info("nbd %s: connection closed", c->peer);
	c->state = NBD_CONN_CLOSING;
	if (c->watch)
		td_watch_remove(c->watch);
	c->watch = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	drop_output(c);
	if (c->wr)
		io_put(c, c->wr);
	c->wr = NULL;
	while (c->free_ios) {
		struct nbd_io *io = c->free_ios;

		c->free_ios = io->next;
		free(io->ext);
		free(io);
	}
	free(c->in);
	free(c->hs_out);
	if (srv)
		nbd_server_conn_gone(srv, c);
	if (c->resume_queued)
		c->freed = true; /* resume_cb frees it */
	else
		free(c);
}

struct nbd_conn *nbd_conn_new(struct nbd_server *srv, int fd, const char *peer)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = srv;
	c->fd = fd;
	c->id = srv->next_id++;
	snprintf(c->peer, sizeof(c->peer), "%s#%u", peer, c->id);
	c->in = malloc(NBD_IN_BUF_SIZE);
	if (!c->in || nbd_hs_start(c))
		goto fail;
	c->watch = td_watch_add(srv->loop, fd, EPOLLIN, conn_event, c);
	if (!c->watch)
		goto fail;
	return c;
fail:
	free(c->in);
	free(c->hs_out);
	free(c);
	return NULL;
}

void nbd_conn_shutdown(struct nbd_conn *c)
{
	if (c->state != NBD_CONN_XMIT) {
		/* nothing in flight before transmission: just go */
		c->drain_output = false;
	} else {
		c->drain_output = true;
	}
	c->state = NBD_CONN_CLOSING;
	if (c->wr) {
		io_put(c, c->wr);
		c->wr = NULL;
	}
	conn_update_events(c);
	nbd_conn_check(c);
}

void nbd_conn_kill(struct nbd_conn *c)
{
	conn_fail(c);
	nbd_conn_check(c);
}

void nbd_conn_abandon(struct nbd_conn *c)
{
	if (!c->vbd_held) {
		conn_destroy(c);
		return;
	}
	td_warn("nbd %s: freed with %u requests in flight", c->peer,
		c->vbd_held);
	conn_fail(c);
	close(c->fd);
	c->fd = -1;
	nbd_server_conn_gone(c->srv, c);
	c->srv = NULL;
}

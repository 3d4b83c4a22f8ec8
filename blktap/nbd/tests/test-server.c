// SPDX-License-Identifier: GPL-2.0-only
/*
 * The NBD server in-process on a RAM disk, spoken to in raw bytes over a
 * Unix socket: the handshake, every command, and the malformed input a
 * server must survive. After each scenario the connection count, the
 * process's fds and the vbd's in-flight count must be back where they were.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "loop.h"
#include "nbd-proto.h"
#include "nbd-test.h"
#include "nbd.h"
#include "tap.h"
#include "test-util.h"
#include "vbd.h"

#define DISK_SIZE (16u << 20)
#define WAIT_MS 3000

static struct td_loop *loop;
static struct td_vbd *vbd;
static char dir[64], sock_path[128];
static const char *export = "disk";

/* Run the loop until cond(arg) holds or time runs out. */
static bool spin_until(bool (*cond)(void *), void *arg)
{
	uint64_t end = td_now_ns() + WAIT_MS * 1000000ull;

	while (!cond(arg)) {
		if (td_now_ns() > end)
			return false;
		td_loop_once(loop, 5);
	}
	return true;
}

static bool no_clients(void *srv)
{
	return nbd_server_clients(srv) == 0 && td_vbd_inflight(vbd) == 0;
}

static int cl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, sock_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Send everything, running the server whenever the socket is full. */
static bool cl_send(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t end = td_now_ns() + WAIT_MS * 1000000ull;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN) {
			return false;
		} else if (td_now_ns() > end) {
			return false;
		} else {
			td_loop_once(loop, 5);
		}
	}
	return true;
}

/* Receive exactly len bytes: 1, 0 on EOF, -1 on error or timeout. */
static int cl_recv(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t end = td_now_ns() + WAIT_MS * 1000000ull;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == 0) {
			return 0;
		} else if (errno != EAGAIN || td_now_ns() > end) {
			return -1;
		} else {
			td_loop_once(loop, 5);
		}
	}
	return 1;
}

/* True if the server closed the connection (EOF or reset). */
static bool cl_closed(int fd)
{
	uint8_t b[256];

	for (;;) {
		int r = cl_recv(fd, b, 1);

		if (r <= 0)
			return r == 0 || errno == ECONNRESET;
	}
}

static bool send_opt(int fd, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t h[NBD_OPT_HDR_LEN];

	td_be_put64(h, NBD_OPTS_MAGIC);
	td_be_put32(h + 8, opt);
	td_be_put32(h + 12, len);
	return cl_send(fd, h, sizeof(h)) && (!len || cl_send(fd, data, len));
}

/* Read one option reply; its payload goes to data (up to cap bytes). */
static uint32_t recv_opt_reply(int fd, uint32_t opt, void *data, size_t cap,
			       uint32_t *len)
{
	uint8_t h[NBD_OPT_REPLY_HDR_LEN], junk[4096];

	if (cl_recv(fd, h, sizeof(h)) != 1 || td_be_get64(h) != NBD_REP_MAGIC ||
	    td_be_get32(h + 8) != opt)
		return 0;
	*len = td_be_get32(h + 16);
	if (*len > cap || *len > sizeof(junk))
		return 0;
	if (*len && cl_recv(fd, data ? data : junk, *len) != 1)
		return 0;
	return td_be_get32(h + 12);
}

static int cl_greet(uint32_t flags)
{
	uint8_t g[NBD_GREETING_LEN], f[4];
	int fd = cl_connect();

	if (fd < 0 || cl_recv(fd, g, sizeof(g)) != 1 ||
	    td_be_get64(g) != NBD_MAGIC || td_be_get64(g + 8) != NBD_OPTS_MAGIC) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	td_be_put32(f, flags);
	cl_send(fd, f, 4);
	return fd;
}

static bool go(int fd, const char *name, uint32_t *reply)
{
	uint8_t b[64], r[256];
	uint32_t n = (uint32_t)strlen(name), len, type;

	td_be_put32(b, n);
	memcpy(b + 4, name, n);
	td_be_put16(b + 4 + n, 0);
	if (!send_opt(fd, NBD_OPT_GO, b, 6 + n))
		return false;
	while ((type = recv_opt_reply(fd, NBD_OPT_GO, r, sizeof(r), &len)) ==
	       NBD_REP_INFO)
		;
	*reply = type;
	return true;
}

/* A connection in transmission, structured and with base:allocation. */
static int cl_open(void)
{
	const char *q = NBD_META_BASE_ALLOCATION;
	uint8_t b[64], r[64];
	uint32_t len, type;
	int fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);

	if (fd < 0)
		return -1;
	send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	if (recv_opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, r, 0, &len) !=
	    NBD_REP_ACK)
		goto fail;
	len = (uint32_t)strlen(export);
	td_be_put32(b, len);
	memcpy(b + 4, export, len);
	td_be_put32(b + 4 + len, 1);
	td_be_put32(b + 8 + len, (uint32_t)strlen(q));
	memcpy(b + 12 + len, q, strlen(q));
	send_opt(fd, NBD_OPT_SET_META_CONTEXT, b,
		 12 + len + (uint32_t)strlen(q));
	if (recv_opt_reply(fd, NBD_OPT_SET_META_CONTEXT, r, sizeof(r), &len) !=
		    NBD_REP_META_CONTEXT ||
	    td_be_get32(r) != NBD_META_ID_ALLOCATION ||
	    recv_opt_reply(fd, NBD_OPT_SET_META_CONTEXT, r, 0, &len) !=
		    NBD_REP_ACK)
		goto fail;
	if (!go(fd, export, &type) || type != NBD_REP_ACK)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

static bool send_req(int fd, uint16_t flags, uint16_t type, uint64_t cookie,
		     uint64_t offset, uint32_t len)
{
	uint8_t b[NBD_REQ_HDR_LEN];

	nbd_test_req(b, NBD_REQUEST_MAGIC, flags, type, cookie, offset, len);
	return cl_send(fd, b, sizeof(b));
}

/* A simple reply: its error, or -1 if something else arrived. */
static long recv_simple(int fd, uint64_t cookie)
{
	uint8_t b[NBD_SIMPLE_REPLY_LEN];

	if (cl_recv(fd, b, sizeof(b)) != 1 ||
	    td_be_get32(b) != NBD_SIMPLE_REPLY_MAGIC ||
	    td_be_get64(b + 8) != cookie)
		return -1;
	return td_be_get32(b + 4);
}

/*
 * One structured chunk: returns its type (or -1), payload into data.
 * For READ's OFFSET_DATA the 8-byte offset is checked and stripped.
 */
static long recv_chunk(int fd, uint64_t cookie, void *data, size_t cap,
		       uint32_t *len)
{
	uint8_t h[NBD_CHUNK_HDR_LEN];

	if (cl_recv(fd, h, sizeof(h)) != 1 ||
	    td_be_get32(h) != NBD_STRUCTURED_REPLY_MAGIC ||
	    td_be_get64(h + 8) != cookie || !(td_be_get16(h + 4) & 1))
		return -1;
	*len = td_be_get32(h + 16);
	if (*len > cap || (*len && cl_recv(fd, data, *len) != 1))
		return -1;
	return td_be_get16(h + 6);
}

static long read_at(int fd, uint64_t cookie, uint64_t off, void *buf,
		    uint32_t len)
{
	uint8_t *tmp = malloc(len + 8);
	uint32_t got;
	long type;

	send_req(fd, 0, NBD_CMD_READ, cookie, off, len);
	type = recv_chunk(fd, cookie, tmp, len + 8, &got);
	if (type == NBD_REPLY_TYPE_OFFSET_DATA &&
	    (got != len + 8 || td_be_get64(tmp) != off))
		type = -1;
	else if (type == NBD_REPLY_TYPE_OFFSET_DATA)
		memcpy(buf, tmp + 8, len);
	else if (type == NBD_REPLY_TYPE_OFFSET_HOLE &&
		 (got != 12 || td_be_get64(tmp) != off ||
		  td_be_get32(tmp + 8) != len))
		type = -1;
	else if (type == NBD_REPLY_TYPE_OFFSET_HOLE) {
		/* zeroes come as one hole: the content is all there */
		memset(buf, 0, len);
		type = NBD_REPLY_TYPE_OFFSET_DATA;
	}
	else if (type == NBD_REPLY_TYPE_ERROR)
		type = -(long)td_be_get32(tmp);
	free(tmp);
	return type;
}

static void test_commands(struct nbd_server *srv)
{
	uint8_t wbuf[8192], rbuf[8192], st[64];
	uint32_t len;
	int fd = cl_open();
	long t;

	ok(fd >= 0, "handshake: structured, base:allocation, GO");
	is(nbd_server_clients(srv), 1, "one client");
	memset(wbuf, 0x5a, sizeof(wbuf));
	send_req(fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 1, 65536, sizeof(wbuf));
	cl_send(fd, wbuf, sizeof(wbuf));
	is(recv_simple(fd, 1), 0, "write with FUA");
	t = read_at(fd, 2, 65536, rbuf, sizeof(rbuf));
	ok(t == NBD_REPLY_TYPE_OFFSET_DATA && !memcmp(rbuf, wbuf, sizeof(rbuf)),
	   "read it back in one OFFSET_DATA chunk");
	is(read_at(fd, 3, DISK_SIZE - 512, rbuf, 1024), -(long)NBD_EINVAL,
	   "read past the end: error chunk EINVAL");
	send_req(fd, 0, NBD_CMD_WRITE, 4, DISK_SIZE, 512);
	cl_send(fd, wbuf, 512);
	is(recv_simple(fd, 4), NBD_ENOSPC, "write past the end: ENOSPC");
	send_req(fd, 0, NBD_CMD_FLUSH, 5, 0, 0);
	is(recv_simple(fd, 5), 0, "flush");
	send_req(fd, 0, NBD_CMD_WRITE_ZEROES, 6, 65536, 4096);
	is(recv_simple(fd, 6), 0, "write zeroes");
	t = read_at(fd, 7, 65536, rbuf, 8192);
	ok(t == 1 && rbuf[0] == 0 && rbuf[4095] == 0 && rbuf[4096] == 0x5a,
	   "zeroed range reads back as zeroes");
	send_req(fd, 0, NBD_CMD_TRIM, 8, 1 << 20, 1 << 20);
	is(recv_simple(fd, 8), 0, "trim");
	send_req(fd, 0, NBD_CMD_CACHE, 9, 0, 4096);
	is(recv_simple(fd, 9), 0, "cache");
	send_req(fd, 0, NBD_CMD_BLOCK_STATUS, 10, 0, DISK_SIZE);
	t = recv_chunk(fd, 10, st, sizeof(st), &len);
	ok(t == NBD_REPLY_TYPE_BLOCK_STATUS && len >= 12 && len % 8 == 4 &&
		   td_be_get32(st) == NBD_META_ID_ALLOCATION,
	   "block status chunk with our context id");
	send_req(fd, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 11, 65536,
		 4096);
	t = recv_chunk(fd, 11, st, sizeof(st), &len);
	ok(t == NBD_REPLY_TYPE_BLOCK_STATUS && len == 12 &&
		   td_be_get32(st + 4) == 4096,
	   "REQ_ONE: one extent, no longer than asked");
	send_req(fd, 0, 9, 12, 0, 0);
	is(recv_simple(fd, 12), NBD_EINVAL, "unknown command: EINVAL");
	send_req(fd, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_FLUSH, 13, 0, 0);
	is(recv_simple(fd, 13), NBD_EINVAL, "bad flag: EINVAL");
	is(read_at(fd, 14, 0, rbuf, 0), NBD_REPLY_TYPE_NONE,
	   "zero-length read: NONE chunk");
	is(read_at(fd, 15, 0, NULL, NBD_MAX_PAYLOAD + 1), -(long)NBD_EOVERFLOW,
	   "33 MiB read: EOVERFLOW");
	t = read_at(fd, 16, 65536 + 4096, rbuf, 4096);
	ok(t == 1 && rbuf[0] == 0x5a, "connection still serves after errors");
	/* DISC with a request in flight: the reply still comes, then EOF */
	send_req(fd, 0, NBD_CMD_FLUSH, 17, 0, 0);
	send_req(fd, 0, NBD_CMD_DISC, 18, 0, 0);
	is(recv_simple(fd, 17), 0, "request before DISC answered");
	ok(cl_closed(fd), "closed after DISC");
	close(fd);
	ok(spin_until(no_clients, srv), "no clients left");
}

static void test_big_and_pipelined(struct nbd_server *srv)
{
	size_t big = 3u << 20, i;
	uint8_t *w = malloc(big), *r = malloc(big);
	uint8_t *reqs = malloc(300 * NBD_REQ_HDR_LEN);
	uint8_t *whole = malloc(DISK_SIZE + 8);
	bool seen[300] = { false }, all = true;
	int fd = cl_open();

	for (i = 0; i < big; i++)
		w[i] = (uint8_t)(i * 7 + 3);
	/* larger than the input buffer: the rest goes straight to the data */
	send_req(fd, 0, NBD_CMD_WRITE, 1, 4096, (uint32_t)big);
	cl_send(fd, w, big);
	is(recv_simple(fd, 1), 0, "3 MiB write");
	ok(read_at(fd, 2, 4096, r, (uint32_t)big) == 1 && !memcmp(w, r, big),
	   "3 MiB read back intact");
	/* more than the in-flight limit in one send */
	for (i = 0; i < 300; i++) {
		uint8_t *b = reqs + i * NBD_REQ_HDR_LEN;

		td_be_put32(b, NBD_REQUEST_MAGIC);
		td_be_put16(b + 4, 0);
		td_be_put16(b + 6, NBD_CMD_READ);
		td_be_put64(b + 8, 1000 + i);
		td_be_put64(b + 16, 4096 * i);
		td_be_put32(b + 24, 4096);
	}
	cl_send(fd, reqs, 300 * NBD_REQ_HDR_LEN);
	for (i = 0; i < 300 && all; i++) {
		uint8_t h[NBD_CHUNK_HDR_LEN];
		uint64_t c;

		/* the unwritten first block is a hole chunk */
		all = cl_recv(fd, h, sizeof(h)) == 1 &&
		      (td_be_get32(h + 16) == 4096 + 8 ||
		       (td_be_get32(h + 16) == 12 &&
			td_be_get16(h + 6) == NBD_REPLY_TYPE_OFFSET_HOLE)) &&
		      cl_recv(fd, r, td_be_get32(h + 16)) == 1;
		c = td_be_get64(h + 8);
		if (all && c >= 1000 && c < 1300 && !seen[c - 1000])
			seen[c - 1000] = true;
		else
			all = false;
	}
	ok(all, "300 pipelined reads all answered, each once");
	/* 80 MiB of reads at once: over the buffer limit, so reading pauses */
	for (i = 0; i < 5; i++)
		send_req(fd, 0, NBD_CMD_READ, 2000 + i, 0, DISK_SIZE);
	for (i = 0, all = true; i < 5 && all; i++) {
		uint8_t h[NBD_CHUNK_HDR_LEN];

		all = cl_recv(fd, h, sizeof(h)) == 1 &&
		      td_be_get32(h + 16) == DISK_SIZE + 8 &&
		      cl_recv(fd, whole, DISK_SIZE + 8) == 1;
	}
	ok(all, "five 16 MiB reads pipelined, all answered");
	close(fd);
	free(whole);
	ok(spin_until(no_clients, srv), "client gone after close");
	free(w);
	free(r);
	free(reqs);
}

static void test_options(struct nbd_server *srv)
{
	uint8_t b[128], r[256];
	uint32_t len, type;
	int fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE);

	send_opt(fd, 42, NULL, 0);
	is(recv_opt_reply(fd, 42, r, sizeof(r), &len), NBD_REP_ERR_UNSUP,
	   "unknown option: ERR_UNSUP");
	send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);
	is(recv_opt_reply(fd, NBD_OPT_STARTTLS, r, sizeof(r), &len),
	   NBD_REP_ERR_UNSUP, "STARTTLS: ERR_UNSUP");
	send_opt(fd, NBD_OPT_LIST, NULL, 0);
	type = recv_opt_reply(fd, NBD_OPT_LIST, r, sizeof(r), &len);
	ok(type == NBD_REP_SERVER && len >= 4 + 4 && td_be_get32(r) == 4 &&
		   !memcmp(r + 4, "disk", 4) && !memcmp(r + 8, "test", 4),
	   "LIST: our export and its description");
	is(recv_opt_reply(fd, NBD_OPT_LIST, r, sizeof(r), &len), NBD_REP_ACK,
	   "LIST ends with ACK");
	send_opt(fd, NBD_OPT_LIST, "x", 1);
	is(recv_opt_reply(fd, NBD_OPT_LIST, r, sizeof(r), &len),
	   NBD_REP_ERR_INVALID, "LIST with data: ERR_INVALID");
	td_be_put32(b, 0);
	td_be_put32(b + 4, 0);
	send_opt(fd, NBD_OPT_SET_META_CONTEXT, b, 8);
	is(recv_opt_reply(fd, NBD_OPT_SET_META_CONTEXT, r, sizeof(r), &len),
	   NBD_REP_ERR_INVALID, "SET_META_CONTEXT before structured replies");
	send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	recv_opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, r, 0, &len);
	td_be_put32(b, 4);
	memcpy(b + 4, "nope", 4);
	td_be_put32(b + 8, 1);
	td_be_put32(b + 12, 5);
	memcpy(b + 16, "base:", 5);
	send_opt(fd, NBD_OPT_LIST_META_CONTEXT, b, 21);
	is(recv_opt_reply(fd, NBD_OPT_LIST_META_CONTEXT, r, sizeof(r), &len),
	   NBD_REP_ERR_UNKNOWN, "LIST_META_CONTEXT of another export");
	td_be_put32(b, 4);
	memcpy(b + 4, "disk", 4);
	td_be_put32(b + 8, 1);
	td_be_put32(b + 12, 5);
	memcpy(b + 16, "base:", 5);
	send_opt(fd, NBD_OPT_LIST_META_CONTEXT, b, 21);
	type = recv_opt_reply(fd, NBD_OPT_LIST_META_CONTEXT, r, sizeof(r),
			      &len);
	ok(type == NBD_REP_META_CONTEXT && len == 4 + 15 &&
		   !memcmp(r + 4, "base:allocation", 15),
	   "LIST_META_CONTEXT base: lists base:allocation");
	is(recv_opt_reply(fd, NBD_OPT_LIST_META_CONTEXT, r, sizeof(r), &len),
	   NBD_REP_ACK, "and ends with ACK");
	send_opt(fd, NBD_OPT_LIST_META_CONTEXT, b, 20);
	is(recv_opt_reply(fd, NBD_OPT_LIST_META_CONTEXT, r, sizeof(r), &len),
	   NBD_REP_ERR_INVALID, "truncated query: ERR_INVALID");
	td_be_put32(b, 0);
	send_opt(fd, NBD_OPT_GO, b, 5);
	is(recv_opt_reply(fd, NBD_OPT_GO, r, sizeof(r), &len),
	   NBD_REP_ERR_INVALID, "malformed GO: ERR_INVALID");
	ok(go(fd, "nope", &type) && type == NBD_REP_ERR_UNKNOWN,
	   "GO for another export: ERR_UNKNOWN");
	td_be_put32(b, 0);
	td_be_put16(b + 4, 0);
	send_opt(fd, NBD_OPT_INFO, b, 6);
	while ((type = recv_opt_reply(fd, NBD_OPT_INFO, r, sizeof(r), &len)) ==
	       NBD_REP_INFO)
		;
	is(type, NBD_REP_ACK, "INFO for the default export \"\" is ours");
	send_opt(fd, NBD_OPT_ABORT, NULL, 0);
	is(recv_opt_reply(fd, NBD_OPT_ABORT, r, sizeof(r), &len), NBD_REP_ACK,
	   "ABORT: ACK");
	ok(cl_closed(fd), "then closed");
	close(fd);

	fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_EXPORT_NAME, "disk", 4);
	ok(cl_recv(fd, r, 10 + 124) == 1 && td_be_get64(r) == DISK_SIZE &&
		   (td_be_get16(r + 8) & NBD_FLAG_HAS_FLAGS) &&
		   !(td_be_get16(r + 8) & NBD_FLAG_SEND_DF),
	   "EXPORT_NAME: size, flags, 124 zeroes, no DF without structured");
	send_req(fd, 0, NBD_CMD_READ, 1, 0, 256);
	ok(recv_simple(fd, 1) == 0 && cl_recv(fd, r, 256) == 1,
	   "simple reply to a read, then its data");
	send_req(fd, NBD_CMD_FLAG_DF, NBD_CMD_READ, 2, 0, 256);
	is(recv_simple(fd, 2), NBD_EINVAL, "DF without structured: EINVAL");
	close(fd);

	fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	send_opt(fd, NBD_OPT_EXPORT_NAME, "other", 5);
	ok(cl_closed(fd), "EXPORT_NAME of another export: closed");
	close(fd);
	ok(spin_until(no_clients, srv), "no clients left");
}

static void test_malformed(struct nbd_server *srv)
{
	uint8_t b[64];
	int fd;

	fd = cl_greet(0);
	ok(fd >= 0 && cl_closed(fd), "client without FIXED_NEWSTYLE: closed");
	close(fd);
	fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE | 0x100);
	ok(cl_closed(fd), "unknown client flag: closed");
	close(fd);
	fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE);
	send_opt(fd, NBD_OPT_GO, NULL, 0);
	td_be_put64(b, NBD_MAGIC);
	cl_send(fd, b, NBD_OPT_HDR_LEN);
	ok(cl_closed(fd), "bad option magic: closed");
	close(fd);
	fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE);
	td_be_put64(b, NBD_OPTS_MAGIC);
	td_be_put32(b + 8, NBD_OPT_LIST);
	td_be_put32(b + 12, 1u << 20);
	cl_send(fd, b, NBD_OPT_HDR_LEN);
	ok(cl_closed(fd), "1 MiB option: closed");
	close(fd);

	fd = cl_open();
	td_be_put32(b, 0xdeadbeef);
	cl_send(fd, b, NBD_REQ_HDR_LEN);
	ok(cl_closed(fd), "bad request magic: closed");
	close(fd);
	fd = cl_open();
	send_req(fd, 0, NBD_CMD_WRITE, 1, 0, NBD_MAX_PAYLOAD + 1);
	ok(cl_closed(fd), "33 MiB write: closed");
	close(fd);
	fd = cl_open();
	cl_send(fd, "\x25\x60\x95\x13\0\0\0", 7);
	td_loop_once(loop, 10);
	close(fd);
	ok(spin_until(no_clients, srv), "truncated header, then close");
	fd = cl_open();
	send_req(fd, 0, NBD_CMD_WRITE, 1, 0, 65536);
	cl_send(fd, b, 32);
	td_loop_once(loop, 10);
	close(fd);
	ok(spin_until(no_clients, srv), "truncated write payload, then close");
	fd = cl_open();
	send_req(fd, 0, NBD_CMD_READ, 1, 0, 1 << 20);
	send_req(fd, 0, NBD_CMD_READ, 2, 0, 1 << 20);
	close(fd);
	ok(spin_until(no_clients, srv), "close with reads in flight");
	fd = cl_greet(NBD_FLAG_C_FIXED_NEWSTYLE);
	cl_send(fd, "IHAVE", 5);
	close(fd);
	ok(spin_until(no_clients, srv), "truncated option, then close");
}

static void test_readonly(const char *path)
{
	struct nbd_server_opts o = { .export_name = "", .readonly = true };
	struct nbd_server *srv;
	uint8_t b[4096] = { 0 }, r[4096];
	int fd;

	export = "";
	srv = nbd_server_new(loop, vbd, path, &o);
	ok(srv != NULL, "read-only server");
	fd = cl_open();
	send_req(fd, 0, NBD_CMD_WRITE, 1, 0, sizeof(b));
	cl_send(fd, b, sizeof(b));
	is(recv_simple(fd, 1), NBD_EPERM, "write: EPERM");
	send_req(fd, 0, NBD_CMD_TRIM, 2, 0, 4096);
	is(recv_simple(fd, 2), NBD_EPERM, "trim: EPERM");
	ok(read_at(fd, 3, 0, r, sizeof(r)) == 1,
	   "refused payload skipped, reads go on");
	close(fd);
	ok(spin_until(no_clients, srv), "client gone");
	nbd_server_free(srv);
}

static bool flag_set(void *p)
{
	return *(bool *)p;
}

static void done_cb(struct td_loop *l, void *data)
{
	*(bool *)data = true;
}

static void test_shutdown(struct nbd_server *srv)
{
	int a = cl_open(), b = cl_open(), c = cl_greet(1);
	bool done = false;

	ok(a >= 0 && b >= 0 && c >= 0, "three clients");
	is(nbd_server_clients(srv), 3, "counted");
	send_req(a, 0, NBD_CMD_FLUSH, 1, 0, 0);
	td_loop_once(loop, 10);
	nbd_server_shutdown(srv, done_cb, &done);
	ok(spin_until(flag_set, &done), "shutdown completes");
	is(nbd_server_clients(srv), 0, "no clients");
	ok(cl_closed(a) && cl_closed(b) && cl_closed(c), "all closed");
	close(a);
	close(b);
	close(c);
	ok(cl_connect() < 0, "no longer accepting");
}

int main(void)
{
	struct nbd_server_opts o = { .export_name = "disk",
				     .description = "test" };
	struct nbd_server *srv;
	struct td_image *img;
	char addr[160];
	struct stat st;
	int fds;

	td_log_open("test-server", true, LOG_CRIT);
	snprintf(dir, sizeof(dir), "/tmp/test-nbd.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/nbd.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	loop = td_loop_new();
	if (td_image_open_chain("ram:?size=16M", 0, loop, NULL, &img))
		return 1;
	vbd = td_vbd_new(loop, img, 0, 64);
	fds = tu_count_fds();

	ok(!nbd_server_new(loop, vbd, "tcp:host:x", &o), "bad address");
	ok(!nbd_server_new(loop, vbd, "unix:/nonexistent/dir/s", &o),
	   "unbindable path");
	srv = nbd_server_new(loop, vbd, addr, &o);
	ok(srv != NULL, "server on %s", addr);
	ok(!strcmp(nbd_server_address(srv), addr), "address reported");
	ok(!stat(sock_path, &st) && S_ISSOCK(st.st_mode), "socket in place");
	test_commands(srv);
	test_big_and_pipelined(srv);
	test_options(srv);
	test_malformed(srv);
	test_shutdown(srv);
	nbd_server_free(srv);
	ok(stat(sock_path, &st) && errno == ENOENT, "socket file removed");
	test_readonly(addr);

	srv = nbd_server_new(loop, vbd, "tcp:127.0.0.1:0", &o);
	ok(srv && strncmp(nbd_server_address(srv), "tcp:127.0.0.1:", 14) == 0 &&
		   strcmp(nbd_server_address(srv), "tcp:127.0.0.1:0"),
	   "tcp port 0 reports the real port");
	nbd_server_free(srv);

	td_loop_once(loop, 0);
	is(tu_count_fds(), fds, "no fd leaked");
	is(td_vbd_inflight(vbd), 0, "nothing in flight");
	td_vbd_free(vbd);
	td_image_close_chain(img);
	td_loop_free(loop);
	rmdir(dir);
	return tap_done();
}

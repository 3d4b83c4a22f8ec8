/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Private to the NBD export: the server, its connections and their
 * requests, shared by nbd-server.c (listening, lifecycle), nbd-handshake.c
 * (option haggling) and nbd-conn.c (transmission).
 */
#ifndef NBD_INT_H
#define NBD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "nbd-proto.h"
#include "nbd.h"
#include "request.h"

/* one recv per wake-up fills this; a full QD of small requests fits */
#define NBD_IN_BUF_SIZE (256u * 1024)
/* requests a connection may have in the vbd or awaiting their reply */
#define NBD_MAX_INFLIGHT 256u
/* and the data buffers they may pin, so a client can't hoard memory */
#define NBD_MAX_INFLIGHT_BYTES (64u << 20)
/* extents gathered for one block status reply before it is sent */
#define NBD_MAX_EXTENTS 1024u

struct nbd_conn;
struct nbd_server;

/*
 * The deferred reply flush. It lives apart from the server because a
 * queued td_defer can't be withdrawn: a server freed meanwhile leaves it
 * behind with srv == NULL, and the callback frees it.
 */
struct nbd_kick {
	struct td_defer defer;
	struct nbd_server *srv;
};

struct nbd_server {
	struct td_loop *loop;
	struct td_vbd *vbd;
	int fd;
	struct td_watch *watch;
	char *address;
	char *unix_path; /* set while we own a socket file there */
	dev_t unix_dev;
	ino_t unix_ino;
	char *export_name;
	char *description;
	bool readonly;
	struct nbd_kick *kick;

	struct nbd_conn *conns;
	unsigned nconns;
	unsigned next_id;

	long accept_timer;
	long grace_timer;
	bool stopping;
	unsigned iterating; /* conns list walk in progress */
	td_loop_fn done;
	void *done_data;
};

struct nbd_io {
	struct td_request req;
	struct nbd_conn *conn;
	struct nbd_io *next; /* free list, or the reply queue */
	uint64_t cookie;
	uint64_t offset; /* as the client asked */
	uint32_t len;
	uint16_t type;
	uint16_t flags;

	void *buf; /* td_buf: READ / WRITE data */
	size_t buf_size;
	struct iovec data_iov;

	/* block status: NBD_EXTENT_LEN-byte descriptors after a 4-byte id */
	uint8_t *ext; /* NBD_MAX_EXTENTS of them, allocated on first use */
	uint32_t n_ext;
	uint64_t covered;
	uint32_t last_flags;

	/* the reply, as iovecs; advanced in place as it is sent */
	uint8_t hdr[NBD_CHUNK_HDR_LEN + 12]; /* room for a hole chunk */
	struct iovec out[2];
	int out_idx, out_cnt;
};

enum nbd_conn_state {
	NBD_CONN_FLAGS, /* greeting sent, waiting for client flags */
	NBD_CONN_OPTS, /* option haggling */
	NBD_CONN_XMIT, /* transmission */
	NBD_CONN_CLOSING, /* no more input; waiting for the vbd / replies */
};

struct nbd_conn {
	struct nbd_server *srv; /* NULL once orphaned by nbd_server_free */
	struct nbd_conn *next, *prev;
	int fd;
	unsigned id;
	char peer[80];
	struct td_watch *watch;
	uint32_t events;
	enum nbd_conn_state state;

	/* negotiated */
	bool no_zeroes;
	struct nbd_caps caps;
	uint16_t tflags;

	/* input */
	uint8_t *in;
	size_t in_start, in_end;
	struct nbd_io *wr; /* write whose payload is still arriving */
	uint32_t wr_got;
	uint64_t skip; /* payload bytes of a refused write to discard */

	/* output: handshake bytes first, then replies in completion order */
	uint8_t *hs_out;
	size_t hs_len, hs_off, hs_cap;
	struct nbd_io *out_head, *out_tail;
	bool dirty; /* output queued since the last flush */
	bool send_failed;
	bool drain_output; /* send queued replies before closing */

	/* requests */
	struct nbd_io *free_ios;
	unsigned nios; /* allocated and not yet recycled */
	size_t buf_bytes; /* data buffers those hold */
	unsigned vbd_held; /* submitted to the vbd, not completed */
	bool throttled;
	struct td_defer resume;
	bool resume_queued;
	bool freed; /* destroyed while resume was queued */
};

/* nbd-server.c */
uint16_t nbd_server_tflags(const struct nbd_server *srv, bool structured);
void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_conn *c);
/* Flush every connection's queued output once the current callbacks end. */
void nbd_server_kick(struct nbd_server *srv);

/* nbd-conn.c */
struct nbd_conn *nbd_conn_new(struct nbd_server *srv, int fd, const char *peer);
/* Send what is queued (from the server's kick, or on EPOLLOUT). */
void nbd_conn_flush(struct nbd_conn *c);
/* Stop reading; close once in-flight requests are answered. */
void nbd_conn_shutdown(struct nbd_conn *c);
/* Hard disconnect: drop queued replies, close once the vbd lets go. */
void nbd_conn_kill(struct nbd_conn *c);
/* For nbd_server_free: close now; free once the vbd lets go. */
void nbd_conn_abandon(struct nbd_conn *c);
/* Queue bytes for the client during the handshake. */
int nbd_conn_send_bytes(struct nbd_conn *c, const void *data, size_t len);
/* Look at the state and close the connection if it is done with. */
void nbd_conn_check(struct nbd_conn *c);

/* nbd-handshake.c */
int nbd_hs_start(struct nbd_conn *c);
/*
 * Consume handshake input from c->in. Returns 0 (more may follow, or the
 * connection moved to transmission), or -errno to close the connection.
 */
int nbd_hs_input(struct nbd_conn *c);

#endif

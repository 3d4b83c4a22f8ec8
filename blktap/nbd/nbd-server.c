// SPDX-License-Identifier: GPL-2.0-only
/*
 * The NBD export's server side: listening sockets, accepting clients, the
 * per-iteration reply flush, shutdown and teardown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "usock.h"
#include "nbd-int.h"
#include "vbd.h"

#define NBD_BACKLOG 128
/* accepts per wake-up, so one busy listener can't starve the loop */
#define NBD_ACCEPT_BATCH 16
/* back-off after running out of fds */
#define NBD_ACCEPT_RETRY_MS 100
/* how long shutdown waits for clients to take their last replies */
#define NBD_SHUTDOWN_GRACE_MS 10000

uint16_t nbd_server_tflags(const struct nbd_server *srv, bool structured)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		     NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE |
		     NBD_FLAG_CAN_MULTI_CONN;

	if (srv->readonly)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
		     NBD_FLAG_SEND_FAST_ZERO;
	if (td_vbd_info(srv->vbd)->rotational)
		f |= NBD_FLAG_ROTATIONAL;
	/* we always answer a read with one chunk, so DF costs nothing */
	if (structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

static void maybe_done(struct nbd_server *srv)
{
	td_loop_fn fn = srv->done;

	if (!srv->stopping || srv->nconns || !fn || srv->iterating)
		return;
	srv->done = NULL;
	if (srv->grace_timer > 0)
		td_timer_cancel(srv->loop, srv->grace_timer);
	srv->grace_timer = 0;
	fn(srv->loop, srv->done_data);
}

void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	srv->nconns--;
	maybe_done(srv);
}

static void kick_cb(struct td_loop *loop, void *data)
{
	struct nbd_kick *k = data;
	struct nbd_server *srv = k->srv;
	struct nbd_conn *c, *next;

	if (!srv) {
		free(k);
		return;
	}
	srv->iterating++;
	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (c->dirty)
			nbd_conn_flush(c);
		nbd_conn_check(c);
	}
	srv->iterating--;
	maybe_done(srv);
}

/*
 * Completions reaped together are each deferred, and a deferred call
 * queued by the first of them runs after the last: that is where all
 * their replies go out in one sendmsg per connection. (A prepare hook
 * would be too early: the I/O engine reaps in its own prepare hook.)
 */
void nbd_server_kick(struct nbd_server *srv)
{
	td_loop_defer(srv->loop, &srv->kick->defer, kick_cb, srv->kick);
}

static void peer_name(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, size, "unix");
	}
}

static void accept_retry(struct td_loop *loop, void *data)
{
	struct nbd_server *srv = data;

	srv->accept_timer = 0;
	if (srv->watch)
		td_watch_set_events(srv->watch, EPOLLIN);
}

static void accept_one(struct nbd_server *srv, int fd,
		       const struct sockaddr_storage *ss)
{
	struct nbd_conn *c;
	char peer[64];
	int one = 1;

	if (ss->ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_name(ss, peer, sizeof(peer));
	c = nbd_conn_new(srv, fd, peer);
	if (!c) {
		td_warn("nbd %s: can't set up a connection: %s", peer,
			strerror(errno ? errno : ENOMEM));
		close(fd);
		return;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	td_info("nbd %s: connected to %s", c->peer, srv->address);
}

static void accept_cb(struct td_watch *w, int lfd, uint32_t events, void *data)
{
	struct nbd_server *srv = data;
	int i;

	for (i = 0; i < NBD_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;

		memset(&ss, 0, sizeof(ss));
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(srv, fd, &ss);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN)
			return;
		td_warn("nbd %s: accept: %s", srv->address, strerror(errno));
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			long id = td_timer_add(srv->loop, NBD_ACCEPT_RETRY_MS,
					       accept_retry, srv);

			if (id > 0) {
				srv->accept_timer = id;
				td_watch_set_events(srv->watch, 0);
			}
		}
		return;
	}
}

static int listen_unix(struct nbd_server *srv, const char *path)
{
	char addr[PATH_MAX + 8];
	struct stat st;

	srv->fd = td_unix_listen(path, NBD_BACKLOG, 0666);
	if (srv->fd < 0) {
		int err = srv->fd;

		srv->fd = -1;
		if (err == -EADDRINUSE)
			td_err("nbd unix:%s: another server is listening there",
			       path);
		else if (err == -EEXIST)
			td_err("nbd unix:%s: exists and is not a socket; "
			       "refusing to replace it",
			       path);
		return err;
	}
	if (stat(path, &st))
		return -errno;
	srv->unix_path = strdup(path);
	if (!srv->unix_path) {
		unlink(path);
		return -ENOMEM;
	}
	srv->unix_dev = st.st_dev;
	srv->unix_ino = st.st_ino;
	snprintf(addr, sizeof(addr), "unix:%s", path);
	srv->address = strdup(addr);
	return srv->address ? 0 : -ENOMEM;
}

static int format_tcp_address(struct nbd_server *srv)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char buf[sizeof("tcp:[]:65535") + INET6_ADDRSTRLEN];

	if (getsockname(srv->fd, (struct sockaddr *)&ss, &len))
		return -errno;
	peer_name(&ss, buf + 4, sizeof(buf) - 4);
	memcpy(buf, "tcp:", 4);
	srv->address = strdup(buf);
	return srv->address ? 0 : -ENOMEM;
}

static int listen_tcp(struct nbd_server *srv, const struct nbd_addr *a)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	int err, one = 1;

	err = getaddrinfo(a->host, a->port, &hints, &res);
	if (err)
		return err == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	err = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family,
				ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);

		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) &&
		    !listen(fd, NBD_BACKLOG)) {
			srv->fd = fd;
			err = 0;
			break;
		}
		err = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return err ? err : format_tcp_address(srv);
}

struct nbd_server *nbd_server_new(struct td_loop *loop, struct td_vbd *vbd,
				  const char *addr,
				  const struct nbd_server_opts *opts)
{
	const char *name = opts && opts->export_name ? opts->export_name : "";
	const char *desc = opts ? opts->description : NULL;
	struct nbd_server *srv;
	struct nbd_addr a;
	int err;

	err = nbd_parse_addr(addr, &a);
	if (!err && (strlen(name) > NBD_MAX_STRING ||
		     (desc && strlen(desc) > NBD_MAX_STRING)))
		err = -ENAMETOOLONG;
	if (err) {
		td_err("nbd: bad listen address or export name '%s': %s",
		       addr ? addr : "(null)", strerror(-err));
		errno = -err;
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		td_err("nbd %s: %s", addr, strerror(ENOMEM));
		errno = ENOMEM;
		return NULL;
	}
	srv->loop = loop;
	srv->vbd = vbd;
	srv->fd = -1;
	srv->readonly = (opts && opts->readonly) || td_vbd_readonly(vbd);
	srv->export_name = strdup(name);
	srv->description = desc ? strdup(desc) : NULL;
	srv->kick = calloc(1, sizeof(*srv->kick));
	err = !srv->export_name || (desc && !srv->description) || !srv->kick ?
		      -ENOMEM :
		      0;
	if (!err)
		srv->kick->srv = srv;
	if (!err)
		err = a.kind == NBD_ADDR_UNIX ? listen_unix(srv, a.path) :
						listen_tcp(srv, &a);
	if (!err) {
		srv->watch =
			td_watch_add(loop, srv->fd, EPOLLIN, accept_cb, srv);
		if (!srv->watch)
			err = -errno;
	}
	if (err) {
		td_err("nbd %s: can't listen: %s", addr, strerror(-err));
		nbd_server_free(srv);
		errno = -err;
		return NULL;
	}
	td_info("nbd: serving %s%s on %s", td_vbd_name(vbd),
		srv->readonly ? " read-only" : "", srv->address);
	return srv;
}

const char *nbd_server_address(const struct nbd_server *srv)
{
	return srv->address;
}

unsigned nbd_server_clients(const struct nbd_server *srv)
{
	return srv->nconns;
}

static void stop_listening(struct nbd_server *srv)
{
	if (srv->watch)
		td_watch_remove(srv->watch);
	srv->watch = NULL;
	if (srv->accept_timer > 0)
		td_timer_cancel(srv->loop, srv->accept_timer);
	srv->accept_timer = 0;
	if (srv->fd >= 0)
		close(srv->fd);
	srv->fd = -1;
}

/* A client that stopped reading must not hold up the process's exit. */
static void grace_expired(struct td_loop *loop, void *data)
{
	struct nbd_server *srv = data;
	struct nbd_conn *c, *next;

	srv->grace_timer = 0;
	td_warn("nbd %s: %u clients still not done after %d ms, disconnecting",
		srv->address, srv->nconns, NBD_SHUTDOWN_GRACE_MS);
	srv->iterating++;
	for (c = srv->conns; c; c = next) {
		next = c->next;
		nbd_conn_kill(c);
	}
	srv->iterating--;
	maybe_done(srv);
}

void nbd_server_shutdown(struct nbd_server *srv, td_loop_fn done, void *data)
{
	struct nbd_conn *c, *next;

	td_info("nbd %s: shutting down, %u clients", srv->address, srv->nconns);
	srv->stopping = true;
	srv->done = done;
	srv->done_data = data;
	stop_listening(srv);
	srv->iterating++;
	for (c = srv->conns; c; c = next) {
		next = c->next;
		nbd_conn_shutdown(c);
	}
	srv->iterating--;
	if (srv->nconns && srv->grace_timer <= 0) {
		long id = td_timer_add(srv->loop, NBD_SHUTDOWN_GRACE_MS,
				       grace_expired, srv);

		srv->grace_timer = id > 0 ? id : 0;
	}
	maybe_done(srv);
}

void nbd_server_free(struct nbd_server *srv)
{
	struct stat st;

	if (!srv)
		return;
	stop_listening(srv);
	if (srv->grace_timer > 0)
		td_timer_cancel(srv->loop, srv->grace_timer);
	srv->done = NULL;
	srv->iterating++;
	while (srv->conns)
		nbd_conn_abandon(srv->conns);
	/* only remove the socket file if it is still ours */
	if (srv->unix_path && !stat(srv->unix_path, &st) &&
	    st.st_dev == srv->unix_dev && st.st_ino == srv->unix_ino)
		unlink(srv->unix_path);
	if (srv->kick && srv->kick->defer.queued)
		srv->kick->srv = NULL;
	else
		free(srv->kick);
	free(srv->unix_path);
	free(srv->address);
	free(srv->export_name);
	free(srv->description);
	free(srv);
}

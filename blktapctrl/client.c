// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "control.h"

static long long client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline; 0, -ETIMEDOUT or -errno. */
static int client_wait(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left;
	int n;

	for (;;) {
		left = deadline - client_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int client_send(int fd, const char *buf, size_t len, long long deadline)
{
	size_t off = 0;
	ssize_t n;
	int rc;

	while (off < len) {
		n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		rc = client_wait(fd, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

static int client_recv(int fd, char *buf, size_t len, long long deadline)
{
	size_t off = 0;
	ssize_t n;
	int rc;

	while (off < len) {
		n = recv(fd, buf + off, len - off, 0);
		if (n > 0) {
			off += n;
			continue;
		}
		if (n == 0)
			return -EPROTO; /* closed before a whole reply */
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		rc = client_wait(fd, POLLIN, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

static int client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a Unix socket connects at once or fails: no EINPROGRESS wait */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = errno == EAGAIN ? -ECONNREFUSED : -errno;

		close(fd);
		return err;
	}
	return fd;
}

int ctl_call(const char *path, struct json_object *request, int timeout_ms,
	     struct json_object **reply)
{
	long long deadline = client_now_ms() + timeout_ms;
	unsigned char hdr[4];
	char *buf = NULL, *msg = NULL;
	size_t len, n;
	int fd, rc;

	*reply = NULL;
	json_object_object_add(request, "version",
			       json_object_new_int(TD_CONTROL_VERSION));
	fd = client_connect(path);
	if (fd < 0) {
		json_object_put(request);
		return fd;
	}
	rc = td_control_frame(request, &buf, &len);
	if (rc)
		goto out;
	rc = client_send(fd, buf, len, deadline);
	if (rc)
		goto out;
	rc = client_recv(fd, (char *)hdr, 4, deadline);
	if (rc)
		goto out;
	n = (size_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
	if (n > TD_CONTROL_MAX_MSG) {
		rc = -EPROTO;
		goto out;
	}
	msg = malloc(n + 1);
	if (!msg) {
		rc = -ENOMEM;
		goto out;
	}
	rc = client_recv(fd, msg, n, deadline);
	if (rc)
		goto out;
	msg[n] = '\0';
	*reply = json_tokener_parse(msg);
	if (!*reply || !json_object_is_type(*reply, json_type_object)) {
		json_object_put(*reply);
		*reply = NULL;
		rc = -EPROTO;
	}
out:
	free(msg);
	free(buf);
	close(fd);
	json_object_put(request);
	return rc;
}

struct json_object *ctl_request(const char *command)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "command", json_object_new_string(command));
	return r;
}

const char *ctl_reply_error(struct json_object *reply)
{
	struct json_object *v;

	if (json_object_object_get_ex(reply, "error", &v))
		return json_object_get_string(v);
	return "failed (no error message in the reply)";
}

int ctl_reply_ok(struct json_object *reply)
{
	struct json_object *v;

	return json_object_object_get_ex(reply, "ok", &v) &&
	       json_object_get_boolean(v);
}

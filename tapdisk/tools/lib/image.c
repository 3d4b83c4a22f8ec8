// SPDX-License-Identifier: GPL-2.0-only
/* Format names, and opening and creating images through the drivers. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tool.h"

const char *tool_fmt_type(const char *fmt)
{
	return !strcmp(fmt, "raw") ? "aio" : fmt;
}

const char *tool_fmt_name(const char *type)
{
	return !strcmp(type, "aio") || !strcmp(type, "sync") ? "raw" : type;
}

int tool_fmt_resolve(const char *path, const char *fmt, const char **type)
{
	int rc;

	if (fmt) {
		*type = tool_fmt_type(fmt);
		if (!td_driver_find(*type)) {
			td_err("%s: unknown or unsupported format '%s' (known: raw %s)",
			       path, fmt, td_driver_list());
			return -ENOTSUP;
		}
		return 0;
	}
	rc = td_probe(path, type);
	if (rc)
		td_err("%s: cannot open: %s", path, strerror(-rc));
	return rc;
}

/* O_DIRECT is the default; tmpfs and some FUSE filesystems refuse it. */
static bool tool_direct_ok(const char *path, unsigned flags)
{
	int fd = open(path, (flags & TD_OPEN_RDONLY ? O_RDONLY : O_RDWR) |
				    O_DIRECT | O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	return errno != EINVAL;
}

/*
 * "vd:ID", "ram:NAME", "qcow2:/path?snapshot=s1": an image name, given
 * whole to the driver, unless a file has that very name.
 */
static bool tool_is_image_name(const char *path)
{
	struct td_name n;
	bool named;

	if (!access(path, F_OK) || td_name_parse(path, &n))
		return false;
	named = n.type[0] != '\0';
	td_name_free(&n);
	return named;
}

struct td_syncio *tool_open(const char *path, const char *fmt, unsigned flags)
{
	struct td_syncio *s;
	const char *type;
	char *name;
	int rc;

	if (!fmt && tool_is_image_name(path)) {
		name = strdup(path);
		if (!name)
			return NULL;
		goto have_name;
	}
	rc = tool_fmt_resolve(path, fmt, &type);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	if (asprintf(&name, "%s:%s", type, path) < 0) {
		errno = ENOMEM;
		return NULL;
	}
have_name:
	if (!tool_direct_ok(path, flags))
		flags |= TD_OPEN_BUFFERED;
	s = td_syncio_open(name, flags);
	/* a backing file on another filesystem may refuse O_DIRECT too */
	if (!s && errno == EINVAL && !(flags & TD_OPEN_BUFFERED)) {
		td_info("%s: retrying without O_DIRECT", path);
		s = td_syncio_open(name, flags | TD_OPEN_BUFFERED);
	}
	rc = errno;
	free(name);
	errno = rc;
	return s;
}

int tool_create(const char *path, const char *fmt,
		const struct td_create_opts *opts)
{
	const struct td_driver *drv = td_driver_find(tool_fmt_type(fmt));

	if (!drv) {
		td_err("%s: unknown or unsupported format '%s' (known: raw %s)",
		       path, fmt, td_driver_list());
		return -ENOTSUP;
	}
	if (!drv->create) {
		td_err("%s: creating %s images is not supported", path, fmt);
		return -ENOTSUP;
	}
	return drv->create(path, opts);
}

struct json_object *tool_describe(struct td_image *img)
{
	struct json_object *o;

	if (!img->drv->describe)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	img->drv->describe(img, o);
	if (!json_object_object_length(o)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

uint64_t tool_cluster_size(struct td_image *img)
{
	struct json_object *o = tool_describe(img), *v;
	uint64_t n = 0;

	if (!o)
		return 0;
	if (json_object_object_get_ex(o, "cluster-size", &v) ||
	    json_object_object_get_ex(o, "cluster_size", &v))
		n = (uint64_t)json_object_get_int64(v);
	json_object_put(o);
	return n;
}

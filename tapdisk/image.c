// SPDX-License-Identifier: GPL-2.0-only
/*
 * Image names, format probing, and the image chain: opening a leaf and
 * every backing image under it, and moving requests between layers.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "be.h"
#include "drivers/drivers.h"
#include "image.h"
#include "log.h"

/* qemu allows deeper chains, but nobody runs one this deep on purpose */
#define TD_CHAIN_MAX 64

static const struct td_driver *const image_drivers[] = {
	&td_driver_aio,
	&td_driver_sync,
	&td_driver_ram,
	&td_driver_qcow2,
	&td_driver_qcow,
	&td_driver_vd,
};

/* Every type name the image syntax knows, built here or not (yet). */
static const char *const image_types[] = {
	"aio", "sync", "ram", "qcow", "qcow2", "vhd", "vmdk", "vd", "nbd",
};

const char *td_op_name(enum td_op op)
{
	static const char *const names[TD_OP_MAX] = {
		[TD_OP_READ] = "read",
		[TD_OP_WRITE] = "write",
		[TD_OP_FLUSH] = "flush",
		[TD_OP_DISCARD] = "discard",
		[TD_OP_WRITE_ZEROES] = "write_zeroes",
		[TD_OP_BLOCK_STATUS] = "block_status",
		[TD_OP_CACHE] = "cache",
	};

	return op < TD_OP_MAX ? names[op] : "unknown";
}

const struct td_driver *td_driver_find(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(image_drivers) / sizeof(image_drivers[0]); i++)
		if (!strcmp(image_drivers[i]->name, type))
			return image_drivers[i];
	return NULL;
}

const char *td_driver_list(void)
{
	static char list[128];
	size_t i, n = 0;

	if (list[0])
		return list;
	for (i = 0; i < sizeof(image_drivers) / sizeof(image_drivers[0]); i++)
		n += snprintf(list + n, sizeof(list) - n, "%s%s", i ? " " : "",
			      image_drivers[i]->name);
	return list;
}

static bool image_type_known(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(image_types) / sizeof(image_types[0]); i++)
		if (strlen(image_types[i]) == len &&
		    !strncmp(image_types[i], s, len))
			return true;
	return false;
}

int td_name_parse(const char *name, struct td_name *out)
{
	const char *colon;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (!name || !*name)
		return -EINVAL;
	/* the original blktap's xm syntax: tap:aio:/path */
	if (!strncmp(name, "tap:", 4)) {
		colon = strchr(name + 4, ':');
		if (colon && image_type_known(name + 4, colon - name - 4))
			name += 4;
	}
	colon = strchr(name, ':');
	if (colon && image_type_known(name, colon - name)) {
		len = colon - name;
		memcpy(out->type, name, len);
		out->type[len] = '\0';
		name = colon + 1;
		if (!*name && strcmp(out->type, "ram"))
			return -EINVAL;
	}
	out->path = strdup(name);
	return out->path ? 0 : -ENOMEM;
}

void td_name_free(struct td_name *n)
{
	free(n->path);
	n->path = NULL;
}

static const char *probe_header(const unsigned char *h, size_t n)
{
	if (n >= 8 && !memcmp(h, "QFI\xfb", 4))
		return td_be_get32(h + 4) == 1 ? "qcow" : "qcow2";
	if (n >= 8 && !memcmp(h, "conectix", 8))
		return "vhd";
	if (n >= 4 && !memcmp(h, "KDMV", 4))
		return "vmdk";
	if (n >= 21 && !memcmp(h, "# Disk DescriptorFile", 21))
		return "vmdk";
	return NULL;
}

int td_probe(const char *path, const char **type)
{
	unsigned char h[512];
	struct stat st;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		err = -errno;
		goto out;
	}
	*type = probe_header(h, n);
	if (*type)
		goto out;
	/* a fixed VHD has its footer only at the end */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 512 &&
	    pread(fd, h, 512, st.st_size - 512) == 512 &&
	    !memcmp(h, "conectix", 8)) {
		*type = "vhd";
		goto out;
	}
	*type = "aio";
out:
	close(fd);
	return err;
}

/* A backing name relative to its child is relative to the child's folder. */
static char *image_resolve_parent(const struct td_image *child,
				  const char *parent)
{
	struct td_name pn;
	char *dir, *out = NULL;
	const char *ppath;
	int rc;

	if (td_name_parse(parent, &pn))
		return NULL;
	ppath = pn.path;
	if (ppath[0] == '/' || strchr(child->path, '/') == NULL ||
	    !strcmp(pn.type, "ram") || !strcmp(pn.type, "nbd") ||
	    !strcmp(pn.type, "vd")) {
		out = strdup(parent);
		goto done;
	}
	dir = strdup(child->path);
	if (!dir)
		goto done;
	rc = asprintf(&out, "%s%s%s/%s", pn.type, pn.type[0] ? ":" : "",
		      dirname(dir), ppath);
	if (rc < 0)
		out = NULL;
	free(dir);
done:
	td_name_free(&pn);
	return out;
}

static void image_free(struct td_image *img)
{
	if (!img)
		return;
	free(img->info.parent);
	free(img->priv);
	free(img->name);
	free(img->path);
	free(img);
}

static int image_open_one(const char *name, unsigned flags, int depth,
			  struct td_loop *loop, struct td_ioengine *io,
			  struct td_image **out)
{
	const struct td_driver *drv;
	struct td_image *img;
	struct td_name n;
	const char *type;
	int rc;

	rc = td_name_parse(name, &n);
	if (rc) {
		td_err("%s: not an image name (TYPE:PATH or a path)", name);
		return rc;
	}
	type = n.type;
	if (!type[0]) {
		rc = td_probe(n.path, &type);
		if (rc) {
			td_err("%s: cannot open: %s", n.path, strerror(-rc));
			goto fail;
		}
	}
	drv = td_driver_find(type);
	if (!drv) {
		td_err("%s: %s images are not supported by this tapdisk "
		       "(built-in drivers: %s)",
		       n.path, type, td_driver_list());
		rc = -ENOTSUP;
		goto fail;
	}
	img = calloc(1, sizeof(*img));
	if (!img) {
		rc = -ENOMEM;
		goto fail;
	}
	img->drv = drv;
	img->flags = flags;
	img->depth = depth;
	img->loop = loop;
	img->io = io;
	img->path = n.path;
	n.path = NULL;
	if (asprintf(&img->name, "%s:%s", drv->name, img->path) < 0) {
		img->name = NULL;
		rc = -ENOMEM;
		goto fail_img;
	}
	img->priv = drv->priv_size ? calloc(1, drv->priv_size) : NULL;
	if (drv->priv_size && !img->priv) {
		rc = -ENOMEM;
		goto fail_img;
	}
	rc = drv->open(img, img->path, flags);
	if (rc)
		goto fail_img;
	drv->info(img, &img->info);
	if (!img->info.align)
		img->info.align = 1;
	if (!img->info.sector_size)
		img->info.sector_size = 512;
	*out = img;
	return 0;

fail_img:
	image_free(img);
fail:
	td_name_free(&n);
	return rc;
}

/* Identity of a file layer, for loop detection; false for non-files. */
static bool image_file_id(const struct td_image *img, dev_t *dev, ino_t *ino)
{
	struct stat st;

	if (strcmp(img->drv->name, "aio") && strcmp(img->drv->name, "sync") &&
	    img->path[0] != '/')
		return false;
	if (stat(img->path, &st))
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return true;
}

int td_image_open_chain(const char *name, unsigned flags,
			struct td_loop *loop, struct td_ioengine *io,
			struct td_image **out)
{
	struct td_image *leaf = NULL, *img, **link = &leaf;
	dev_t devs[TD_CHAIN_MAX];
	ino_t inos[TD_CHAIN_MAX];
	char *cur = strdup(name), *next;
	int depth, i, rc = 0;

	if (!cur)
		return -ENOMEM;
	for (depth = 0;; depth++) {
		if (depth == TD_CHAIN_MAX) {
			td_err("%s: backing chain deeper than %d images",
			       name, TD_CHAIN_MAX);
			rc = -ELOOP;
			goto fail;
		}
		/* backing images are only ever read */
		rc = image_open_one(cur, depth ? flags | TD_OPEN_RDONLY : flags,
				    depth, loop, io, &img);
		if (rc)
			goto fail;
		*link = img;
		link = &img->parent;
		if (image_file_id(img, &devs[depth], &inos[depth])) {
			for (i = 0; i < depth; i++) {
				if (devs[i] == devs[depth] &&
				    inos[i] == inos[depth]) {
					td_err("%s: backing chain loop: %s is "
					       "its own ancestor",
					       name, img->name);
					rc = -ELOOP;
					goto fail;
				}
			}
		} else {
			devs[depth] = (dev_t)-1;
			inos[depth] = 0;
		}
		if (!img->info.parent || (flags & TD_OPEN_NO_BACKING))
			break;
		next = image_resolve_parent(img, img->info.parent);
		if (!next) {
			rc = -ENOMEM;
			goto fail;
		}
		free(cur);
		cur = next;
	}
	free(cur);
	*out = leaf;
	return 0;

fail:
	free(cur);
	td_image_close_chain(leaf);
	return rc;
}

void td_image_close_chain(struct td_image *leaf)
{
	while (leaf) {
		struct td_image *parent = leaf->parent;

		leaf->drv->close(leaf);
		image_free(leaf);
		leaf = parent;
	}
}

static void image_complete_cb(struct td_loop *loop, void *data)
{
	struct td_request *req = data;

	req->io_done(req, req->err);
}

void td_request_complete(struct td_image *img, struct td_request *req,
			 int err)
{
	req->err = err;
	td_loop_defer(img->loop, &req->defer, image_complete_cb, req);
}

static void image_zero_iov(struct td_request *req)
{
	int i;

	for (i = 0; i < req->iovcnt; i++)
		memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
}

void td_image_forward(struct td_image *img, struct td_request *req)
{
	if (img->parent) {
		td_image_queue(img->parent, req);
		return;
	}
	switch (req->op) {
	case TD_OP_READ:
		image_zero_iov(req);
		break;
	case TD_OP_BLOCK_STATUS:
		req->status.len = req->len;
		req->status.flags = TD_BS_HOLE | TD_BS_ZERO;
		req->status.depth = -1;
		break;
	case TD_OP_CACHE:
		break;
	default:
		td_err("%s: %s request forwarded past the end of the chain",
		       img->name, td_op_name(req->op));
		td_request_complete(img, req, -EIO);
		return;
	}
	td_request_complete(img, req, 0);
}

void td_image_queue(struct td_image *img, struct td_request *req)
{
	const struct td_driver *drv = img->drv;

	switch (req->op) {
	case TD_OP_READ:
		drv->queue_read(img, req);
		return;
	case TD_OP_WRITE:
		drv->queue_write(img, req);
		return;
	case TD_OP_FLUSH:
		drv->flush(img, req);
		return;
	case TD_OP_DISCARD:
		if (drv->discard) {
			drv->discard(img, req);
			return;
		}
		break; /* a hint: nothing to do */
	case TD_OP_WRITE_ZEROES:
		drv->write_zeroes(img, req);
		return;
	case TD_OP_BLOCK_STATUS:
		if (drv->block_status) {
			drv->block_status(img, req);
			return;
		}
		req->status.len = req->len;
		req->status.flags = 0;
		req->status.depth = img->depth;
		break;
	case TD_OP_CACHE:
		if (drv->cache) {
			drv->cache(img, req);
			return;
		}
		break;
	default:
		td_request_complete(img, req, -EINVAL);
		return;
	}
	td_request_complete(img, req, 0);
}

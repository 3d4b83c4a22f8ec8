// SPDX-License-Identifier: GPL-2.0-only
/*
 * The qcow2 driver: "qcow2:PATH[?l2-cache=SIZE][&snapshot=ID_OR_NAME]",
 * options in any order. This file opens and closes images and holds the
 * ops table; the format's pieces live in the other qcow2-*.c files (see
 * qcow2-priv.h for how writes stay crash safe).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "drivers.h"
#include "log.h"
#include "qcow2-priv.h"

/* covers 256 GiB of disk at 64 KiB clusters */
#define QCOW2_L2_CACHE_DEFAULT (32ull << 20)
#define QCOW2_RB_CACHE_MAX (4ull << 20)

static int qcow2_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * Split "PATH?OPT&OPT" into the file name and the options: l2-cache=SIZE,
 * snapshot=ID_OR_NAME (a snapshot name with '&' in it cannot be named).
 */
static int qcow2_parse_path(const char *path, char **file, uint64_t *l2cache,
			    char **snap)
{
	const char *q = strchr(path, '?'), *o, *end;
	size_t len;

	*l2cache = 0;
	*snap = NULL;
	*file = q ? strndup(path, q - path) : strdup(path);
	if (!*file)
		return -ENOMEM;
	for (o = q; o; o = *end ? end : NULL) {
		o++;
		end = strchrnul(o, '&');
		len = end - o;
		if (len > 9 && !strncmp(o, "l2-cache=", 9)) {
			char *v = strndup(o + 9, len - 9);

			if (v && !qcow2_parse_size(v, l2cache) && *l2cache) {
				free(v);
				continue;
			}
			free(v);
		} else if (len > 9 && !strncmp(o, "snapshot=", 9)) {
			free(*snap);
			*snap = strndup(o + 9, len - 9);
			if (*snap)
				continue;
		}
		td_err("%s: the options are l2-cache=SIZE (bytes, or with K, "
		       "M, G) and snapshot=ID_OR_NAME, joined by &",
		       path);
		free(*snap);
		free(*file);
		*snap = *file = NULL;
		return -EINVAL;
	}
	return 0;
}

static unsigned qcow2_dio_align(int fd)
{
	struct statx stx;
	unsigned a;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN) || !stx.stx_dio_offset_align)
		return 512;
	a = stx.stx_dio_offset_align;
	if (stx.stx_dio_mem_align > a)
		a = stx.stx_dio_mem_align;
	return a < 512 ? 512 : a;
}

static int qcow2_open_file(const char *path, bool rdonly, bool *direct)
{
	int fl = O_CLOEXEC | (rdonly ? O_RDONLY : O_RDWR), fd;

	if (*direct) {
		fd = open(path, fl | O_DIRECT);
		if (fd >= 0 || errno != EINVAL)
			return fd < 0 ? -errno : fd;
		td_warn("%s: the filesystem refuses O_DIRECT; using the page "
			"cache",
			path);
		*direct = false;
	}
	fd = open(path, fl);
	return fd < 0 ? -errno : fd;
}

static int qcow2_open_data_file(struct td_image *img, const char *file,
				bool rdonly)
{
	struct qcow2_priv *p = img->priv;
	char *dir = NULL, *name = p->h.data_file, *full = NULL;
	bool direct = p->direct;
	int fd;

	if (name[0] != '/' && strchr(file, '/')) {
		dir = strdup(file);
		if (!dir || asprintf(&full, "%s/%s", dirname(dir), name) < 0) {
			free(dir);
			return -ENOMEM;
		}
		name = full;
	}
	fd = qcow2_open_file(name, rdonly, &direct);
	if (fd < 0)
		td_err("%s: cannot open the external data file %s: %s",
		       img->path, name, strerror(-fd));
	else if (direct != p->direct)
		p->align = 512;
	free(full);
	free(dir);
	if (fd < 0)
		return fd;
	p->data_fd = fd;
	return 0;
}

static void qcow2_geometry(struct qcow2_priv *p)
{
	p->cluster_bits = p->h.cluster_bits;
	p->cluster_size = 1ull << p->cluster_bits;
	p->ext_l2 = !!(p->h.incompat & QCOW2_INCOMPAT_EXTL2);
	p->l2_entry_words = p->ext_l2 ? 2 : 1;
	p->l2_bits = p->cluster_bits - 3 - p->ext_l2;
	p->sc_bits = p->ext_l2 ? p->cluster_bits - 5 : p->cluster_bits;
	p->rc_bits = 1u << p->h.refcount_order;
	p->rb_bits = p->cluster_bits + 3 - p->h.refcount_order;
	p->rc_max = p->rc_bits == 64 ? UINT64_MAX : (1ull << p->rc_bits) - 1;
	p->data_raw = !!(p->h.autoclear & QCOW2_AUTOCLEAR_DATA_RAW);
}

/*
 * New clusters come from past everything in use, which is the end of the
 * file or the last cluster with a refcount, whichever is further.
 */
static int qcow2_find_alloc_start(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;
	uint64_t i, last = 0, n = 1ull << p->rb_bits, j;
	void *rb;
	int rc;

	p->alloc_next = qcow2_align_up(p->file_size, p->cluster_size);
	for (i = p->rt_entries; i-- > 0;)
		if (p->rt[i] & QCOW2_OFFSET_MASK)
			break;
	if (i == UINT64_MAX)
		return 0;
	rb = td_buf_get(p->cluster_size);
	if (!rb)
		return -ENOMEM;
	rc = qcow2_check_offset(img, p->rt[i] & QCOW2_OFFSET_MASK,
				"refcount block", 0);
	if (!rc)
		rc = qcow2_pio(p->fd, false, rb, p->cluster_size,
			       p->rt[i] & QCOW2_OFFSET_MASK);
	if (!rc) {
		for (j = n; j-- > 0;)
			if (qcow2_rb_get(p, rb, j))
				break;
		if (j != UINT64_MAX)
			last = ((i << p->rb_bits) + j + 1) << p->cluster_bits;
		if (last > p->alloc_next)
			p->alloc_next = last;
	}
	td_buf_put(rb, p->cluster_size);
	return rc;
}

static int qcow2_open_writable(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;
	struct td_check res;
	int rc;

	if (p->h.incompat & QCOW2_INCOMPAT_CORRUPT) {
		td_err("%s: the image is marked corrupt; open it read-only, "
		       "or repair it with tap-img check -r all",
		       img->path);
		return -EROFS;
	}
	if (p->h.incompat & QCOW2_INCOMPAT_DIRTY) {
		td_info("%s: the image was not closed cleanly; rebuilding "
			"its refcounts",
			img->path);
		memset(&res, 0, sizeof(res));
		rc = qcow2_check_repair(img, true, &res,
					TD_CHECK_FIX_LEAKS | TD_CHECK_FIX_ERRORS);
		if (rc)
			return rc;
		if (res.corruptions > res.corruptions_fixed) {
			td_err("%s: refcounts could not be repaired", img->path);
			return -EIO;
		}
		p->h.incompat &= ~QCOW2_INCOMPAT_DIRTY;
	}
	/* bitmaps we do not update are no longer consistent */
	p->h.autoclear &= QCOW2_AUTOCLEAR_DATA_RAW;
	if (p->h.version >= 3 && (p->h.compat & QCOW2_COMPAT_LAZY)) {
		p->h.incompat |= QCOW2_INCOMPAT_DIRTY;
		p->lazy = true;
	}
	if (p->h.version >= 3)
		return qcow2_header_write(img->path, p->fd, &p->h);
	return 0;
}

/* Everything open took; also what a failed open gives back. */
static void qcow2_release(struct qcow2_priv *p)
{
	qcow2_cache_destroy(&p->l2c);
	qcow2_cache_destroy(&p->rbc);
	qcow2_ops_free(p);
	if (p->zbuf)
		td_buf_put(p->zbuf, p->cluster_size);
	p->zbuf = NULL;
	if (p->cbuf)
		td_buf_put(p->cbuf, 2 * p->cluster_size);
	p->cbuf = NULL;
	free(p->frees);
	free(p->incq);
	free(p->l1);
	free(p->rt);
	p->frees = p->incq = NULL;
	p->l1 = p->rt = NULL;
	if (p->data_fd >= 0 && p->data_fd != p->fd)
		close(p->data_fd);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = p->data_fd = -1;
}

static int qcow2_open(struct td_image *img, const char *path, unsigned flags)
{
	struct qcow2_priv *p = img->priv;
	uint64_t l2cache, full;
	struct stat st;
	char *file, *snap;
	int rc;

	p->fd = p->data_fd = -1;
	rc = qcow2_parse_path(path, &file, &l2cache, &snap);
	if (rc)
		return rc;
	p->readonly = flags & (TD_OPEN_RDONLY | TD_OPEN_PROBE);
	/* a snapshot is a fixed point in time: writes go to the active layer */
	if (snap && !p->readonly) {
		td_err("%s: snapshot %s can only be opened read-only (tapdisk "
		       "-r; tools open it read-only)",
		       file, snap);
		rc = -EROFS;
		goto out;
	}
	p->direct = !(flags & (TD_OPEN_BUFFERED | TD_OPEN_PROBE));
	rc = qcow2_open_file(file, p->readonly, &p->direct);
	if (rc < 0) {
		td_err("%s: cannot open: %s", file, strerror(-rc));
		goto out;
	}
	p->fd = p->data_fd = rc;
	if (fstat(p->fd, &st) < 0) {
		rc = -errno;
		td_err("%s: cannot stat: %s", file, strerror(-rc));
		goto out;
	}
	p->file_size = p->file_end = (uint64_t)st.st_size;
	rc = qcow2_header_read(file, p->fd, p->file_size, &p->h);
	if (rc)
		goto out;
	qcow2_geometry(p);
	p->align = p->direct ? qcow2_dio_align(p->fd) : 512;
	if (p->align > p->cluster_size) {
		/* metadata clusters smaller than what O_DIRECT needs */
		close(p->fd);
		p->direct = false;
		rc = qcow2_open_file(file, p->readonly, &p->direct);
		if (rc < 0) {
			td_err("%s: cannot open: %s", file, strerror(-rc));
			goto out;
		}
		p->fd = p->data_fd = rc;
		p->align = 512;
	}
	if (flags & TD_OPEN_PROBE) {
		rc = 0;
		goto out;
	}
	if (p->h.incompat & QCOW2_INCOMPAT_DATA_FILE) {
		rc = qcow2_open_data_file(img, file, p->readonly);
		if (rc)
			goto out;
	}
	if (snap && (p->h.incompat & QCOW2_INCOMPAT_DATA_FILE)) {
		/* its data is not refcounted: only the current state exists */
		td_err("%s: snapshot %s cannot be read: the image keeps its "
		       "data in an external data file",
		       file, snap);
		rc = -ENOTSUP;
		goto out;
	}
	rc = qcow2_load_tables(img);
	if (!rc && snap)
		rc = qcow2_snapshot_select(img, file, snap);
	if (rc)
		goto out;
	rc = qcow2_find_alloc_start(img);
	if (rc) {
		td_err("%s: cannot read the refcounts: %s", file,
		       strerror(-rc));
		goto out;
	}
	full = (uint64_t)p->l1_size << p->cluster_bits;
	if (!l2cache)
		l2cache = full < QCOW2_L2_CACHE_DEFAULT ? full :
							  QCOW2_L2_CACHE_DEFAULT;
	rc = qcow2_cache_init(&p->l2c, img, "L2 table", l2cache);
	if (!rc)
		rc = qcow2_cache_init(&p->rbc, img, "refcount block",
				      l2cache / 4 < QCOW2_RB_CACHE_MAX ?
					      l2cache / 4 :
					      QCOW2_RB_CACHE_MAX);
	if (rc) {
		td_err("%s: no memory for the metadata caches", file);
		goto out;
	}
	p->zbuf = td_buf_get(p->cluster_size);
	if (!p->zbuf) {
		rc = -ENOMEM;
		goto out;
	}
	memset(p->zbuf, 0, p->cluster_size);
	if (!p->readonly)
		rc = qcow2_open_writable(img);
out:
	free(snap);
	free(file);
	/* the image layer frees priv but never calls close after a failure */
	if (rc)
		qcow2_release(p);
	return rc;
}

static void qcow2_close(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;

	if (!p->readonly && p->l1 && qcow2_meta_flush_sync(img) == 0) {
		/* the room grown ahead for partly written clusters */
		if (p->file_end > p->alloc_next &&
		    ftruncate(p->fd, (off_t)p->alloc_next) < 0)
			td_warn("%s: cannot trim the file to %llu bytes: %s",
				img->path, (unsigned long long)p->alloc_next,
				strerror(errno));
		if (p->lazy) {
			p->h.incompat &= ~QCOW2_INCOMPAT_DIRTY;
			qcow2_header_write(img->path, p->fd, &p->h);
		}
	}
	qcow2_release(p);
}

static void qcow2_info(struct td_image *img, struct td_image_info *info)
{
	struct qcow2_priv *p = img->priv;
	const char *type = NULL;

	info->size = p->h.size;
	info->sector_size = 512;
	info->align = p->align;
	info->can_discard = true;
	info->can_zero = true;
	info->rotational = false;
	info->parent = NULL;
	if (!p->h.backing[0])
		return;
	if (p->h.backing_fmt[0]) {
		type = qcow2_fmt_to_type(p->h.backing_fmt);
		if (!type)
			td_warn("%s: backing format %s is unknown here; "
				"probing %s",
				img->path, p->h.backing_fmt, p->h.backing);
	}
	if (type) {
		if (asprintf(&info->parent, "%s:%s", type, p->h.backing) < 0)
			info->parent = NULL;
	} else {
		info->parent = strdup(p->h.backing);
	}
}

const struct td_driver td_driver_qcow2 = {
	.name = "qcow2",
	.priv_size = sizeof(struct qcow2_priv),
	.open = qcow2_open,
	.close = qcow2_close,
	.info = qcow2_info,
	.queue_read = qcow2_queue_read,
	.queue_write = qcow2_queue_write,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.block_status = qcow2_block_status,
	.create = qcow2_create,
	.describe = qcow2_describe,
	.check = qcow2_check,
	.resize = qcow2_resize,
	.set_parent = qcow2_set_parent,
	.snapshot_list = qcow2_snapshot_list,
};

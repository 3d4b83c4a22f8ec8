// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 resize and backing-file rewrite (tap-img resize, rebase -u). Both
 * are synchronous and run on an image with no request in flight.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

static int admin_prepare(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;
	int rc;

	if (p->readonly) {
		td_err("%s: the image is open read-only", img->path);
		return -EROFS;
	}
	rc = qcow2_meta_flush_sync(img);
	qcow2_cache_drop_all(&p->l2c);
	qcow2_cache_drop_all(&p->rbc);
	return rc;
}

/* Is any guest cluster in [from, to) allocated or zero-flagged? */
static int tail_used(struct td_image *img, uint64_t from, uint64_t to,
		     bool *used)
{
	struct qcow2_priv *p = img->priv;
	uint32_t tbits = p->cluster_bits + p->l2_bits;
	uint64_t pos = from / p->cluster_size * p->cluster_size;
	void *l2 = td_buf_get(p->cluster_size);
	int rc = 0;

	if (!l2)
		return -ENOMEM;
	*used = false;
	while (pos < to && !*used && !rc) {
		uint64_t l2off = p->l1[pos >> tbits] & QCOW2_OFFSET_MASK;
		uint64_t tend = ((pos >> tbits) + 1) << tbits;

		if (l2off) {
			rc = qcow2_pio(p->fd, false, l2, p->cluster_size, l2off);
			for (; !rc && pos < tend && pos < to;
			     pos += p->cluster_size) {
				uint64_t k = (pos >> p->cluster_bits) &
					     ((1ull << p->l2_bits) - 1);

				if (qcow2_l2_entry(p, l2, k) ||
				    qcow2_l2_bitmap(p, l2, k))
					*used = true;
			}
		}
		pos = tend;
	}
	td_buf_put(l2, p->cluster_size);
	return rc;
}

int qcow2_resize(struct td_image *img, uint64_t size)
{
	struct qcow2_priv *p = img->priv;
	uint64_t per_l1 = p->cluster_size << p->l2_bits, cap, need, i;
	uint64_t *nl1, off;
	struct td_check res;
	bool used;
	int rc;

	rc = admin_prepare(img);
	if (rc)
		return rc;
	if (size % 512) {
		td_err("%s: the size must be a multiple of 512", img->path);
		return -EINVAL;
	}
	if (p->h.nb_snapshots) {
		td_err("%s: cannot resize an image with internal snapshots",
		       img->path);
		return -ENOTSUP;
	}
	need = (size + per_l1 - 1) / per_l1;
	if (size < p->h.size) {
		rc = tail_used(img, size, p->h.size, &used);
		if (rc)
			return rc;
		if (used) {
			td_err("%s: cannot shrink: data is allocated past %llu "
			       "bytes",
			       img->path, (unsigned long long)size);
			return -ENOTSUP;
		}
		p->h.size = size;
		return qcow2_header_write(img->path, p->fd, &p->h);
	}
	if (need * 8 > QCOW2_MAX_L1_BYTES) {
		td_err("%s: %llu bytes need an L1 table over 32 MiB",
		       img->path, (unsigned long long)size);
		return -EINVAL;
	}
	cap = qcow2_align_up((uint64_t)p->l1_size * 8, p->cluster_size) / 8;
	if (need <= cap && p->l1_size) {
		p->h.size = size;
		if (need > p->l1_size)
			p->h.l1_size = p->l1_size = (uint32_t)need;
		return qcow2_header_write(img->path, p->fd, &p->h);
	}
	/* a bigger L1 table at the end of the file, then new refcounts */
	cap = qcow2_align_up(need * 8, p->cluster_size);
	nl1 = td_buf_get(cap);
	if (!nl1)
		return -ENOMEM;
	memset(nl1, 0, cap);
	for (i = 0; i < p->l1_size; i++)
		nl1[i] = htobe64(p->l1[i]);
	off = qcow2_align_up(p->alloc_next > p->file_size ? p->alloc_next :
							    p->file_size,
			     p->cluster_size);
	rc = qcow2_pio(p->fd, true, nl1, cap, off);
	td_buf_put(nl1, cap);
	if (!rc && fdatasync(p->fd) < 0)
		rc = -errno;
	if (rc) {
		td_err("%s: cannot write the new L1 table: %s", img->path,
		       strerror(-rc));
		return rc;
	}
	p->h.l1_offset = off;
	p->h.l1_size = (uint32_t)need;
	p->h.size = size;
	rc = qcow2_header_write(img->path, p->fd, &p->h);
	if (rc)
		return rc;
	p->file_size = off + cap;
	p->alloc_next = off + cap;
	rc = qcow2_load_tables(img);
	if (rc)
		return rc;
	memset(&res, 0, sizeof(res));
	/* the old L1 table is a leak and the new one unreferenced */
	return qcow2_check_repair(img, true, &res,
				  TD_CHECK_FIX_LEAKS | TD_CHECK_FIX_ERRORS);
}

static const char *type_to_fmt(const char *t)
{
	if (!strcmp(t, "aio") || !strcmp(t, "sync"))
		return "raw";
	if (!strcmp(t, "vhd"))
		return "vpc";
	return t;
}

int qcow2_set_parent(struct td_image *img, const char *name, const char *fmt)
{
	struct qcow2_priv *p = img->priv;
	struct qcow2_header h;
	unsigned char *c;
	int rc;

	rc = admin_prepare(img);
	if (rc)
		return rc;
	if (name && strlen(name) > 1023) {
		td_err("%s: backing file name too long", img->path);
		return -ENAMETOOLONG;
	}
	if (p->data_raw && name) {
		td_err("%s: an image with a raw external data file cannot have "
		       "a backing file",
		       img->path);
		return -EINVAL;
	}
	h = p->h;
	h.autoclear &= ~QCOW2_AUTOCLEAR_BITMAPS;
	snprintf(h.backing, sizeof(h.backing), "%s", name ? name : "");
	snprintf(h.backing_fmt, sizeof(h.backing_fmt), "%s",
		 name && fmt ? type_to_fmt(fmt) : "");
	c = td_buf_get(p->cluster_size);
	if (!c)
		return -ENOMEM;
	/* the rewritten header keeps only the extensions we know */
	rc = qcow2_build_header(img->path, c, p->cluster_size, &h);
	if (!rc)
		rc = qcow2_pio(p->fd, true, c, p->cluster_size, 0);
	if (!rc && fdatasync(p->fd) < 0)
		rc = -errno;
	td_buf_put(c, p->cluster_size);
	if (rc) {
		td_err("%s: cannot rewrite the header: %s", img->path,
		       strerror(-rc));
		return rc;
	}
	p->h = h;
	return 0;
}

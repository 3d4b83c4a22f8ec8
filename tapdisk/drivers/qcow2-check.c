// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 consistency check and refcount rebuild (also used at open when
 * lazy refcounts left the image dirty), in qemu-img check's categories:
 * a refcount below the references is a corruption, above is a leak. The
 * rebuild writes a whole new refcount table and blocks past the end of the
 * file and switches the header to them last, so a crash during a repair
 * leaves the old, still usable, structures.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

struct chk {
	struct td_image *img;
	uint64_t *refs;
	uint64_t n; /* clusters tracked */
	uint64_t unfixable;
	uint64_t allocated;
	uint64_t copied_bad;
	bool quiet;
};

static void chk_inc(struct chk *c, uint64_t off, uint64_t len)
{
	struct qcow2_priv *p = c->img->priv;
	uint64_t i, first = off >> p->cluster_bits;
	uint64_t last = (off + len - 1) >> p->cluster_bits;

	if (!len)
		return;
	for (i = first; i <= last; i++) {
		if (i >= c->n) {
			if (!c->quiet)
				td_warn("%s: reference to host offset %llu "
					"beyond the end of the file",
					c->img->path,
					(unsigned long long)(i
							     << p->cluster_bits));
			c->unfixable++;
			return;
		}
		c->refs[i]++;
	}
}

static int chk_l2(struct chk *c, uint64_t l2off, void *l2, bool active)
{
	struct qcow2_priv *p = c->img->priv;
	uint64_t k;
	int rc;

	rc = qcow2_pio(p->fd, false, l2, p->cluster_size, l2off);
	if (rc)
		return rc;
	for (k = 0; k < (1ull << p->l2_bits); k++) {
		uint64_t e = qcow2_l2_entry(p, l2, k);
		uint64_t host = e & QCOW2_OFFSET_MASK;

		if (e & QCOW2_OFLAG_COMPRESSED) {
			uint32_t x = 62 - (p->cluster_bits - 8);
			uint64_t coff = e & ((1ull << x) - 1);
			uint64_t nsec = ((e & ~(QCOW2_OFLAG_COPIED |
						QCOW2_OFLAG_COMPRESSED)) >>
					 x) + 1;

			chk_inc(c, coff, nsec * 512 - (coff & 511));
			c->allocated += active;
			continue;
		}
		if (p->data_fd != p->fd) {
			c->allocated += active && (e & QCOW2_OFLAG_COPIED);
			continue;
		}
		if (!host)
			continue;
		if (host % p->cluster_size) {
			if (!c->quiet)
				td_warn("%s: L2 entry %#llx is not cluster "
					"aligned",
					c->img->path, (unsigned long long)e);
			c->unfixable++;
			continue;
		}
		c->allocated += active;
		chk_inc(c, host, p->cluster_size);
	}
	return 0;
}

static int chk_l1(struct chk *c, const uint64_t *l1, uint64_t n,
		  bool active)
{
	struct qcow2_priv *p = c->img->priv;
	void *l2 = td_buf_get(p->cluster_size);
	uint64_t i;
	int rc = 0;

	if (!l2)
		return -ENOMEM;
	for (i = 0; i < n && !rc; i++) {
		uint64_t off = l1[i] & QCOW2_OFFSET_MASK;

		if (!off)
			continue;
		if (off % p->cluster_size || off >= c->n << p->cluster_bits) {
			if (!c->quiet)
				td_warn("%s: L1 entry %llu points outside the "
					"file",
					c->img->path, (unsigned long long)i);
			c->unfixable++;
			continue;
		}
		chk_inc(c, off, p->cluster_size);
		rc = chk_l2(c, off, l2, active);
	}
	td_buf_put(l2, p->cluster_size);
	return rc;
}

static int chk_snapshot(void *ctx, const struct qcow2_snap *s)
{
	struct chk *c = ctx;
	struct qcow2_priv *p = c->img->priv;
	uint64_t l1off = s->l1_offset, i;
	uint32_t l1n = s->l1_size;
	uint64_t *l1;
	int rc;

	if (l1n > QCOW2_MAX_L1_BYTES / 8 || l1off % p->cluster_size ||
	    l1off > p->file_size || (uint64_t)l1n * 8 > p->file_size - l1off) {
		td_err("%s: snapshot %s (%s): L1 table out of range",
		       c->img->path, s->id, s->name);
		c->unfixable++;
		return 0;
	}
	l1 = malloc((uint64_t)l1n * 8 + 8);
	if (!l1)
		return -ENOMEM;
	rc = qcow2_pio(p->fd, false, l1, (uint64_t)l1n * 8, l1off);
	for (i = 0; !rc && i < l1n; i++)
		l1[i] = be64toh(l1[i]);
	if (!rc) {
		chk_inc(c, l1off, (uint64_t)l1n * 8);
		rc = chk_l1(c, l1, l1n, false);
	}
	free(l1);
	return rc;
}

/* Expected refcounts of everything but the refcount structures. */
static int chk_collect(struct chk *c)
{
	struct td_image *img = c->img;
	struct qcow2_priv *p = img->priv;
	uint64_t tlen = 0;
	int rc;

	chk_inc(c, 0, p->cluster_size);
	chk_inc(c, p->h.l1_offset, (uint64_t)p->l1_size * 8);
	rc = chk_l1(c, p->l1, p->l1_size, true);
	if (!rc && p->h.nb_snapshots) {
		rc = qcow2_snapshots_walk(img, false, chk_snapshot, c, &tlen);
		chk_inc(c, p->h.snapshots_offset, tlen);
	}
	return rc;
}

static uint64_t disk_ref(struct td_image *img, uint64_t i, void *rb,
			 uint64_t *rb_off)
{
	struct qcow2_priv *p = img->priv;
	uint64_t rti = i >> p->rb_bits, off;

	if (rti >= p->rt_entries)
		return 0;
	off = p->rt[rti] & QCOW2_OFFSET_MASK;
	if (!off || off % p->cluster_size || off >= p->file_size)
		return 0;
	if (*rb_off != off) {
		if (qcow2_pio(p->fd, false, rb, p->cluster_size, off))
			return 0;
		*rb_off = off;
	}
	return qcow2_rb_get(p, rb, i & ((1ull << p->rb_bits) - 1));
}

/* New refcount table and blocks after everything, from c->refs. */
static int rebuild(struct chk *c)
{
	struct td_image *img = c->img;
	struct qcow2_priv *p = img->priv;
	uint64_t per = 1ull << p->rb_bits, end = c->n, nb, rtc, i, total;
	uint64_t *rt = NULL, *refs;
	void *rb = NULL;
	struct stat st;
	int rc = 0;

	while (end && !c->refs[end - 1])
		end--;
	total = end;
	for (;;) {
		nb = (total + per - 1) / per;
		rtc = qcow2_align_up(nb * 8, p->cluster_size) / p->cluster_size;
		if ((end + rtc + nb + per - 1) / per <= nb)
			break;
		total = end + rtc + nb;
	}
	total = end + rtc + nb;
	refs = realloc(c->refs, (total > c->n ? total : c->n) * 8);
	if (!refs)
		return -ENOMEM;
	c->refs = refs;
	for (i = end; i < total; i++)
		refs[i] = 1;
	for (i = 0; i < total; i++)
		if (refs[i] > p->rc_max) {
			td_err("%s: cluster %llu has %llu references, more "
			       "than %u-bit refcounts hold",
			       img->path, (unsigned long long)i,
			       (unsigned long long)refs[i], p->rc_bits);
			return -ERANGE;
		}
	rt = calloc(rtc * p->cluster_size / 8, 8);
	rb = td_buf_get(p->cluster_size);
	if (!rt || !rb) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nb && !rc; i++) {
		uint64_t off = (end + rtc + i) << p->cluster_bits, j;

		memset(rb, 0, p->cluster_size);
		for (j = 0; j < per && i * per + j < total; j++)
			qcow2_rb_set(p, rb, j, refs[i * per + j]);
		rt[i] = htobe64(off);
		rc = qcow2_pio(p->fd, true, rb, p->cluster_size, off);
	}
	if (!rc)
		rc = qcow2_pio(p->fd, true, rt, rtc * p->cluster_size,
			       end << p->cluster_bits);
	if (!rc && fdatasync(p->fd) < 0)
		rc = -errno;
	if (rc)
		goto out;
	p->h.rt_offset = end << p->cluster_bits;
	p->h.rt_clusters = (uint32_t)rtc;
	rc = qcow2_header_write(img->path, p->fd, &p->h);
	if (rc)
		goto out;
	p->file_size = total << p->cluster_bits;
	free(p->rt);
	p->rt_entries = rtc * p->cluster_size / 8;
	for (i = 0; i < p->rt_entries; i++)
		rt[i] = be64toh(rt[i]);
	p->rt = rt;
	rt = NULL;
	p->rt_dirty = false;
	p->header_dirty = false;
	p->alloc_next = total << p->cluster_bits;
	/* new clusters are not zeroed: none may come from written space */
	if (!fstat(p->fd, &st) && (uint64_t)st.st_size > p->alloc_next)
		p->alloc_next = qcow2_align_up((uint64_t)st.st_size,
					       p->cluster_size);
	p->comp_next = 0;
	p->nfrees = 0;
	qcow2_cache_drop_all(&p->rbc);
out:
	free(rt);
	if (rb)
		td_buf_put(rb, p->cluster_size);
	if (rc)
		td_err("%s: cannot rebuild the refcounts: %s", img->path,
		       strerror(-rc));
	return rc;
}

int qcow2_check_repair(struct td_image *img, bool quiet,
		       struct td_check *res, unsigned fix)
{
	struct qcow2_priv *p = img->priv;
	struct chk c = { .img = img, .quiet = quiet };
	uint64_t i, rb_off = 0, maxn, end = 0;
	void *rb;
	int rc;

	c.n = qcow2_align_up(p->alloc_next > p->file_size ? p->alloc_next :
							    p->file_size,
			     p->cluster_size) >> p->cluster_bits;
	c.refs = calloc(c.n + 1, 8);
	rb = td_buf_get(p->cluster_size);
	if (!c.refs || !rb) {
		free(c.refs);
		if (rb)
			td_buf_put(rb, p->cluster_size);
		return -ENOMEM;
	}
	rc = chk_collect(&c);
	if (rc)
		goto out;
	/* the refcount structures, kept apart: a rebuild replaces them */
	{
		struct chk m = c;
		uint64_t *keep = c.refs;

		m.refs = calloc(c.n + 1, 8);
		if (!m.refs) {
			rc = -ENOMEM;
			goto out;
		}
		chk_inc(&m, p->h.rt_offset,
			(uint64_t)p->h.rt_clusters << p->cluster_bits);
		for (i = 0; i < p->rt_entries; i++)
			if (p->rt[i] & QCOW2_OFFSET_MASK)
				chk_inc(&m, p->rt[i] & QCOW2_OFFSET_MASK,
					p->cluster_size);
		c.unfixable += m.unfixable - c.unfixable;
		maxn = p->rt_entries << p->rb_bits;
		for (i = 0; i < c.n || i < maxn; i++) {
			uint64_t want = i < c.n ? keep[i] + m.refs[i] : 0;
			uint64_t have = disk_ref(img, i, rb, &rb_off);

			if (want || have)
				end = i + 1;
			if (have < want)
				res->corruptions++;
			else if (have > want)
				res->leaks++;
			if (i >= c.n && !have && i > c.n + (1ull << p->rb_bits))
				break;
		}
		free(m.refs);
	}
	res->corruptions += c.unfixable;
	res->allocated_clusters = c.allocated;
	res->total_clusters = (p->h.size + p->cluster_size - 1) >>
			      p->cluster_bits;
	res->image_end_offset = end << p->cluster_bits;
	if (((fix & TD_CHECK_FIX_ERRORS) && res->corruptions > c.unfixable) ||
	    ((fix & TD_CHECK_FIX_LEAKS) && res->leaks)) {
		rc = rebuild(&c);
		if (!rc) {
			res->corruptions_fixed = res->corruptions - c.unfixable;
			res->leaks_fixed = res->leaks;
		}
	}
out:
	free(c.refs);
	td_buf_put(rb, p->cluster_size);
	return rc;
}

int qcow2_check(struct td_image *img, struct td_check *res, unsigned fix)
{
	struct qcow2_priv *p = img->priv;
	int rc;

	memset(res, 0, sizeof(*res));
	if (fix && p->readonly) {
		td_err("%s: cannot repair an image opened read-only",
		       img->path);
		return -EROFS;
	}
	if (!p->readonly) {
		rc = qcow2_meta_flush_sync(img);
		if (rc)
			return rc;
	}
	qcow2_cache_drop_all(&p->l2c);
	qcow2_cache_drop_all(&p->rbc);
	rc = qcow2_check_repair(img, false, res, fix);
	if (!rc && fix && (p->h.incompat & QCOW2_INCOMPAT_CORRUPT) &&
	    res->corruptions == res->corruptions_fixed)
		rc = qcow2_header_set_incompat(img, 0, QCOW2_INCOMPAT_CORRUPT);
	return rc;
}

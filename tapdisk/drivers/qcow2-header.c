// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 header: parsing, validation of every field against the file size
 * and sane limits, header extensions, and the L1 and refcount tables read
 * at open. Everything here is synchronous: it runs before the image serves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

/*
 * Synchronous I/O for metadata outside the data path: the descriptor may be
 * O_DIRECT, so go through an aligned bounce buffer.
 */
int qcow2_pio(int fd, bool write, void *buf, size_t len, uint64_t off)
{
	const uint64_t a = 4096;
	uint64_t lo = off / a * a, hi = qcow2_align_up(off + len, a);
	size_t n = hi - lo, done = 0;
	unsigned char *b = td_buf_get(n);
	ssize_t r;
	int err = 0;

	if (!b)
		return -ENOMEM;
	if (write && (lo != off || hi != off + len)) {
		r = pread(fd, b, n, (off_t)lo);
		if (r < 0) {
			err = -errno;
			goto out;
		}
		memset(b + r, 0, n - r);
	}
	if (write) {
		memcpy(b + (off - lo), buf, len);
		while (done < n) {
			r = pwrite(fd, b + done, n - done, (off_t)(lo + done));
			if (r <= 0) {
				err = r < 0 ? -errno : -EIO;
				goto out;
			}
			done += r;
		}
	} else {
		while (done < n) {
			r = pread(fd, b + done, n - done, (off_t)(lo + done));
			if (r < 0) {
				err = -errno;
				goto out;
			}
			if (r == 0)
				break;
			done += r;
		}
		memset(b + done, 0, n - done);
		memcpy(buf, b + (off - lo), len);
	}
out:
	td_buf_put(b, n);
	return err;
}

static int hdr_fail(const char *path, const char *why)
{
	td_err("%s: not a valid qcow2 image: %s", path, why);
	return -EINVAL;
}

/* The feature name table names an incompatible bit we do not know. */
static void hdr_feature_name(const unsigned char *c, size_t cs, uint32_t pos,
			     int bit, char *name, size_t n)
{
	snprintf(name, n, "bit %d", bit);
	while (pos + 8 <= cs) {
		uint32_t type = td_be_get32(c + pos), len = td_be_get32(c + pos + 4);
		uint32_t i;

		if (type == QCOW2_EXT_END || pos + 8 + (uint64_t)len > cs)
			return;
		if (type == QCOW2_EXT_FEATURES) {
			for (i = 0; i + 48 <= len; i += 48) {
				const unsigned char *e = c + pos + 8 + i;

				if (e[0] == 0 && e[1] == bit) {
					snprintf(name, n, "bit %d (%.46s)", bit,
						 (const char *)e + 2);
					return;
				}
			}
		}
		pos += 8 + (uint32_t)qcow2_align_up(len, 8);
	}
}

static int hdr_string(const char *path, const unsigned char *src,
		      uint32_t len, char *dst, size_t dstlen, const char *what)
{
	if (len >= dstlen || memchr(src, 0, len)) {
		td_err("%s: not a valid qcow2 image: bad %s name", path, what);
		return -EINVAL;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

static int hdr_extensions(const char *path, const unsigned char *c,
			  size_t cs, struct qcow2_header *h)
{
	uint32_t pos = h->header_length;

	while (pos + 8 <= cs) {
		uint32_t type = td_be_get32(c + pos), len = td_be_get32(c + pos + 4);
		const unsigned char *d = c + pos + 8;
		int rc = 0;

		if (type == QCOW2_EXT_END)
			break;
		if (pos + 8 + (uint64_t)len > cs)
			return hdr_fail(path, "header extension past the "
					      "first cluster");
		switch (type) {
		case QCOW2_EXT_BACKING_FMT:
			rc = hdr_string(path, d, len, h->backing_fmt,
					sizeof(h->backing_fmt), "backing format");
			break;
		case QCOW2_EXT_DATA_FILE:
			rc = hdr_string(path, d, len, h->data_file,
					sizeof(h->data_file), "data file");
			break;
		case QCOW2_EXT_BITMAPS:
			h->has_bitmaps = true;
			break;
		default:
			break;
		}
		if (rc)
			return rc;
		pos += 8 + (uint32_t)qcow2_align_up(len, 8);
	}
	h->ext_end = pos;
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
			   uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static int hdr_validate_tables(const char *path, uint64_t file_size,
			       struct qcow2_header *h)
{
	uint64_t cs = 1ull << h->cluster_bits;
	uint32_t l2_bits = h->cluster_bits - 3 -
			   !!(h->incompat & QCOW2_INCOMPAT_EXTL2);
	uint64_t per_l1 = 1ull << (h->cluster_bits + l2_bits);
	uint64_t need = (h->size + per_l1 - 1) / per_l1;
	uint64_t l1_bytes = (uint64_t)h->l1_size * 8;
	uint64_t rt_bytes = (uint64_t)h->rt_clusters * cs;

	if (h->size > (1ull << 62))
		return hdr_fail(path, "virtual size too large");
	if (h->l1_size < need)
		return hdr_fail(path, "L1 table too small for the disk size");
	if (l1_bytes > QCOW2_MAX_L1_BYTES)
		return hdr_fail(path, "L1 table larger than 32 MiB");
	if (h->l1_size && (h->l1_offset % cs || h->l1_offset < cs))
		return hdr_fail(path, "L1 table offset misaligned or inside "
				      "the header");
	if (h->l1_size && (h->l1_offset > file_size ||
			   l1_bytes > file_size - h->l1_offset))
		return hdr_fail(path, "L1 table beyond the end of the file");
	if (!h->rt_clusters || rt_bytes > QCOW2_MAX_RT_BYTES)
		return hdr_fail(path, "refcount table size out of range");
	if (h->rt_offset % cs || h->rt_offset < cs)
		return hdr_fail(path, "refcount table offset misaligned or "
				      "overlapping the header");
	if (h->rt_offset > file_size || rt_bytes > file_size - h->rt_offset)
		return hdr_fail(path, "refcount table beyond the end of the "
				      "file");
	if (ranges_overlap(h->l1_offset, l1_bytes, h->rt_offset, rt_bytes))
		return hdr_fail(path, "L1 table overlaps the refcount table");
	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return hdr_fail(path, "too many snapshots");
	if (h->nb_snapshots &&
	    (h->snapshots_offset % cs || h->snapshots_offset < cs ||
	     h->snapshots_offset >= file_size))
		return hdr_fail(path, "snapshot table offset out of range");
	return 0;
}

int qcow2_header_read(const char *path, int fd, uint64_t file_size,
		      struct qcow2_header *h)
{
	unsigned char *c = NULL;
	size_t cs;
	int rc, bit;
	uint64_t unknown;

	memset(h, 0, sizeof(*h));
	if (file_size < 72)
		return hdr_fail(path, "file shorter than a qcow2 header");
	c = malloc(4096);
	if (!c)
		return -ENOMEM;
	rc = qcow2_pio(fd, false, c, 4096, 0);
	if (rc)
		goto out;
	rc = -EINVAL;
	if (td_be_get32(c) != QCOW2_MAGIC) {
		hdr_fail(path, "no qcow2 magic");
		goto out;
	}
	h->version = td_be_get32(c + 4);
	if (h->version != 2 && h->version != 3) {
		td_err("%s: qcow2 version %u is not supported (2 and 3 are)",
		       path, h->version);
		rc = -ENOTSUP;
		goto out;
	}
	h->backing_offset = td_be_get64(c + 8);
	h->backing_size = td_be_get32(c + 16);
	h->cluster_bits = td_be_get32(c + 20);
	h->size = td_be_get64(c + 24);
	h->crypt_method = td_be_get32(c + 32);
	h->l1_size = td_be_get32(c + 36);
	h->l1_offset = td_be_get64(c + 40);
	h->rt_offset = td_be_get64(c + 48);
	h->rt_clusters = td_be_get32(c + 56);
	h->nb_snapshots = td_be_get32(c + 60);
	h->snapshots_offset = td_be_get64(c + 64);
	h->refcount_order = 4;
	h->header_length = 72;
	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
	    h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
		td_err("%s: not a valid qcow2 image: cluster_bits %u out of "
		       "range 9..21",
		       path, h->cluster_bits);
		goto out;
	}
	cs = (size_t)1 << h->cluster_bits;
	if (h->version == 3) {
		if (file_size < 104) {
			hdr_fail(path, "file shorter than a v3 header");
			goto out;
		}
		h->incompat = td_be_get64(c + 72);
		h->compat = td_be_get64(c + 80);
		h->autoclear = td_be_get64(c + 88);
		h->refcount_order = td_be_get32(c + 96);
		h->header_length = td_be_get32(c + 100);
		if (h->header_length < 104 || h->header_length % 8 ||
		    h->header_length > cs || h->header_length > 4096) {
			hdr_fail(path, "bad header length");
			goto out;
		}
		if (h->header_length > 104)
			h->compression_type = c[104];
	}
	if (h->refcount_order > 6) {
		hdr_fail(path, "refcount_order above 6");
		goto out;
	}
	if (h->crypt_method) {
		td_err("%s: encrypted qcow2 images are not supported", path);
		rc = -ENOTSUP;
		goto out;
	}
	/* the extension area is the rest of the first cluster */
	free(c);
	c = calloc(1, cs);
	if (!c) {
		rc = -ENOMEM;
		goto out;
	}
	rc = qcow2_pio(fd, false, c, cs < file_size ? cs : file_size, 0);
	if (rc)
		goto out;
	unknown = h->incompat & ~QCOW2_INCOMPAT_KNOWN;
	if (unknown) {
		char name[80];

		bit = __builtin_ctzll(unknown);
		hdr_feature_name(c, cs, h->header_length, bit, name,
				 sizeof(name));
		td_err("%s: unknown incompatible qcow2 feature %s", path,
		       name);
		rc = -ENOTSUP;
		goto out;
	}
	rc = hdr_extensions(path, c, cs, h);
	if (rc)
		goto out;
	rc = -EINVAL;
	if (!!(h->incompat & QCOW2_INCOMPAT_COMPRESSION) !=
	    !!h->compression_type) {
		hdr_fail(path, "compression type field and feature bit "
			       "disagree");
		goto out;
	}
	if (h->compression_type > QCOW2_COMP_ZSTD) {
		td_err("%s: unknown qcow2 compression type %u", path,
		       h->compression_type);
		rc = -ENOTSUP;
		goto out;
	}
	if ((h->incompat & QCOW2_INCOMPAT_EXTL2) && h->cluster_bits < 14) {
		hdr_fail(path, "extended L2 entries need 16 KiB clusters");
		goto out;
	}
	if (h->backing_offset) {
		if (h->backing_size > 1023 || h->backing_offset > file_size ||
		    h->backing_size > file_size - h->backing_offset) {
			hdr_fail(path, "backing file name out of range");
			goto out;
		}
		if (h->backing_offset + h->backing_size <= cs) {
			memcpy(h->backing, c + h->backing_offset,
			       h->backing_size);
		} else {
			rc = qcow2_pio(fd, false, h->backing, h->backing_size,
				       h->backing_offset);
			if (rc)
				goto out;
			rc = -EINVAL;
		}
		h->backing[h->backing_size] = '\0';
		if (strlen(h->backing) != h->backing_size) {
			hdr_fail(path, "backing file name contains NUL");
			goto out;
		}
	}
	if ((h->incompat & QCOW2_INCOMPAT_DATA_FILE) && !h->data_file[0]) {
		td_err("%s: the image uses an external data file but does not "
		       "name it",
		       path);
		goto out;
	}
	rc = hdr_validate_tables(path, file_size, h);
out:
	free(c);
	return rc;
}

/* Rewrite the fixed header fields that the driver changes. */
int qcow2_header_write(const char *path, int fd, const struct qcow2_header *h)
{
	unsigned char b[104];
	int rc;
	size_t n = h->version == 3 ? 104 : 72;

	rc = qcow2_pio(fd, false, b, n, 0);
	if (rc)
		goto fail;
	td_be_put64(b + 24, h->size);
	td_be_put32(b + 36, h->l1_size);
	td_be_put64(b + 40, h->l1_offset);
	td_be_put64(b + 48, h->rt_offset);
	td_be_put32(b + 56, h->rt_clusters);
	if (h->version == 3) {
		td_be_put64(b + 72, h->incompat);
		td_be_put64(b + 80, h->compat);
		td_be_put64(b + 88, h->autoclear);
	}
	rc = qcow2_pio(fd, true, b, n, 0);
	if (!rc && fdatasync(fd) < 0)
		rc = -errno;
	if (!rc)
		return 0;
fail:
	td_err("%s: cannot update the qcow2 header: %s", path, strerror(-rc));
	return rc;
}

int qcow2_header_set_incompat(struct td_image *img, uint64_t set,
			      uint64_t clear)
{
	struct qcow2_priv *p = img->priv;

	p->h.incompat = (p->h.incompat | set) & ~clear;
	return qcow2_header_write(img->path, p->fd, &p->h);
}

int qcow2_load_table(struct td_image *img, const char *what, uint64_t off,
		     uint64_t n, uint64_t **out)
{
	struct qcow2_priv *p = img->priv;
	uint64_t *t, i;
	uint64_t cap = qcow2_align_up(n ? n : 1, p->cluster_size / 8);
	int rc;

	/* whole clusters, so that the table can be written in aligned pieces */
	t = calloc(cap, 8);
	if (!t) {
		td_err("%s: no memory for the %s", img->path, what);
		return -ENOMEM;
	}
	if (n) {
		rc = qcow2_pio(p->fd, false, t, n * 8, off);
		if (rc) {
			td_err("%s: cannot read the %s: %s", img->path, what,
			       strerror(-rc));
			free(t);
			return rc;
		}
	}
	for (i = 0; i < n; i++)
		t[i] = be64toh(t[i]);
	*out = t;
	return 0;
}

int qcow2_load_tables(struct td_image *img)
{
	struct qcow2_priv *p = img->priv;
	int rc;

	free(p->l1);
	free(p->rt);
	p->l1 = p->rt = NULL;
	p->l1_size = p->h.l1_size;
	rc = qcow2_load_table(img, "L1 table", p->h.l1_offset, p->l1_size, &p->l1);
	if (rc)
		return rc;
	p->rt_entries = (uint64_t)p->h.rt_clusters << (p->cluster_bits - 3);
	p->rt_disk_offset = p->h.rt_offset;
	p->rt_disk_clusters = p->h.rt_clusters;
	return qcow2_load_table(img, "refcount table", p->h.rt_offset,
				p->rt_entries, &p->rt);
}

/* qemu's format names, as found in the backing format extension */
const char *qcow2_fmt_to_type(const char *fmt)
{
	static const char *const map[][2] = {
		{ "raw", "aio" },   { "file", "aio" }, { "host_device", "aio" },
		{ "qcow2", "qcow2" }, { "qcow", "qcow" }, { "vpc", "vhd" },
		{ "vmdk", "vmdk" },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(fmt, map[i][0]))
			return map[i][1];
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Creating qcow2 images (tap-img create), describing them (tap-img info)
 * and listing their internal snapshots. Layout of a new image: the header
 * cluster, the refcount table, the refcount blocks, the L1 table.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "log.h"
#include "qcow2-priv.h"
#include "syncio.h"

struct create_cfg {
	uint32_t cluster_bits;
	uint32_t version;
	bool lazy, extl2, data_raw;
	uint32_t refcount_order;
	uint8_t comp;
	const char *data_file;
};

static int parse_opts(const char *path, const struct td_create_opts *o,
		      struct create_cfg *cfg)
{
	int i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->cluster_bits = 16;
	cfg->version = 3;
	cfg->refcount_order = 4;
	for (i = 0; i < o->nopts; i++) {
		const char *k = o->keys[i], *v = o->vals[i];
		char *end;
		unsigned long long n;

		if (!strcmp(k, "cluster_size") || !strcmp(k, "refcount_bits")) {
			n = strtoull(v, &end, 10);
			if (*end == 'k' || *end == 'K')
				n <<= 10, end++;
			else if (*end == 'm' || *end == 'M')
				n <<= 20, end++;
			if (*end || !n || (n & (n - 1)))
				goto bad;
			if (k[0] == 'c') {
				if (n < 512 || n > (2u << 20))
					goto bad;
				cfg->cluster_bits = __builtin_ctzll(n);
			} else {
				if (n > 64)
					goto bad;
				cfg->refcount_order = __builtin_ctzll(n);
			}
		} else if (!strcmp(k, "compat")) {
			if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
				cfg->version = 2;
			else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
				cfg->version = 3;
			else
				goto bad;
		} else if (!strcmp(k, "lazy_refcounts") ||
			   !strcmp(k, "extended_l2") ||
			   !strcmp(k, "data_file_raw")) {
			bool on = !strcmp(v, "on") || !strcmp(v, "true");

			if (!on && strcmp(v, "off") && strcmp(v, "false"))
				goto bad;
			if (k[0] == 'l')
				cfg->lazy = on;
			else if (k[0] == 'e')
				cfg->extl2 = on;
			else
				cfg->data_raw = on;
		} else if (!strcmp(k, "compression_type")) {
			if (!strcmp(v, "zlib"))
				cfg->comp = QCOW2_COMP_ZLIB;
			else if (!strcmp(v, "zstd"))
				cfg->comp = QCOW2_COMP_ZSTD;
			else
				goto bad;
		} else if (!strcmp(k, "data_file")) {
			cfg->data_file = v;
		} else if (!strcmp(k, "preallocation")) {
			if (strcmp(v, "off"))
				goto unsupported;
		} else {
			goto unsupported;
		}
		continue;
bad:
		td_err("%s: bad value for qcow2 option %s: %s", path, k, v);
		return -EINVAL;
unsupported:
		td_err("%s: qcow2 option %s=%s is not supported", path, k, v);
		return -ENOTSUP;
	}
	if (cfg->version == 2 && (cfg->lazy || cfg->extl2 || cfg->comp ||
				  cfg->refcount_order != 4 || cfg->data_file)) {
		td_err("%s: lazy_refcounts, extended_l2, compression_type, "
		       "refcount_bits and data_file need compat=1.1",
		       path);
		return -EINVAL;
	}
	if (cfg->extl2 && cfg->cluster_bits < 14) {
		td_err("%s: extended_l2 needs a cluster size of 16k or more",
		       path);
		return -EINVAL;
	}
	if (cfg->data_raw && !cfg->data_file) {
		td_err("%s: data_file_raw needs data_file", path);
		return -EINVAL;
	}
	if (cfg->data_file && o->backing && cfg->data_raw) {
		td_err("%s: data_file_raw cannot have a backing file", path);
		return -EINVAL;
	}
	return 0;
}

static size_t put_ext(unsigned char *b, uint32_t type, const void *d,
		      uint32_t len)
{
	td_be_put32(b, type);
	td_be_put32(b + 4, len);
	memcpy(b + 8, d, len);
	return 8 + qcow2_align_up(len, 8);
}

static const char *type_to_fmt(const char *t)
{
	if (!strcmp(t, "aio") || !strcmp(t, "sync"))
		return "raw";
	if (!strcmp(t, "vhd"))
		return "vpc";
	return t;
}

/* Header cluster contents: fields, extensions, backing name. */
int qcow2_build_header(const char *path, unsigned char *c, size_t cs,
		       const struct qcow2_header *h)
{
	size_t pos, blen = strlen(h->backing);
	static const struct {
		uint8_t type, bit;
		const char *name;
	} feats[] = {
		{ 0, 0, "dirty bit" },	      { 0, 1, "corrupt bit" },
		{ 0, 2, "external data file" }, { 0, 3, "compression type" },
		{ 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
		{ 2, 0, "bitmaps" },	      { 2, 1, "raw external data" },
	};
	unsigned char ft[sizeof(feats) / sizeof(feats[0]) * 48];
	size_t i;

	memset(c, 0, cs);
	td_be_put32(c, QCOW2_MAGIC);
	td_be_put32(c + 4, h->version);
	td_be_put32(c + 20, h->cluster_bits);
	td_be_put64(c + 24, h->size);
	td_be_put32(c + 36, h->l1_size);
	td_be_put64(c + 40, h->l1_offset);
	td_be_put64(c + 48, h->rt_offset);
	td_be_put32(c + 56, h->rt_clusters);
	td_be_put32(c + 60, h->nb_snapshots);
	td_be_put64(c + 64, h->snapshots_offset);
	pos = 72;
	if (h->version >= 3) {
		td_be_put64(c + 72, h->incompat);
		td_be_put64(c + 80, h->compat);
		td_be_put64(c + 88, h->autoclear);
		td_be_put32(c + 96, h->refcount_order);
		td_be_put32(c + 100, 112);
		c[104] = h->compression_type;
		pos = 112;
	}
	if (h->backing_fmt[0])
		pos += put_ext(c + pos, QCOW2_EXT_BACKING_FMT, h->backing_fmt,
			       (uint32_t)strlen(h->backing_fmt));
	if (h->data_file[0])
		pos += put_ext(c + pos, QCOW2_EXT_DATA_FILE, h->data_file,
			       (uint32_t)strlen(h->data_file));
	if (h->version >= 3) {
		memset(ft, 0, sizeof(ft));
		for (i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
			ft[i * 48] = feats[i].type;
			ft[i * 48 + 1] = feats[i].bit;
			strncpy((char *)ft + i * 48 + 2, feats[i].name, 46);
		}
		pos += put_ext(c + pos, QCOW2_EXT_FEATURES, ft, sizeof(ft));
	}
	pos += 8; /* end of extensions */
	if (blen) {
		if (pos + blen > cs) {
			td_err("%s: the backing file name does not fit in the "
			       "header cluster",
			       path);
			return -ENAMETOOLONG;
		}
		memcpy(c + pos, h->backing, blen);
		td_be_put64(c + 8, pos);
		td_be_put32(c + 16, (uint32_t)blen);
	}
	return 0;
}

static int backing_size(const char *path, const struct td_create_opts *o,
			uint64_t *size)
{
	char *name = NULL, *dir;
	struct td_syncio *s;
	const char *type = o->backing_fmt ? qcow2_fmt_to_type(o->backing_fmt) :
					    NULL;
	int rc;

	if (!type && o->backing_fmt)
		type = o->backing_fmt;
	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	rc = asprintf(&name, "%s%s%s%s%s", type ? type : "", type ? ":" : "",
		      o->backing[0] == '/' || !strchr(path, '/') ?
			      "" :
			      dirname(dir),
		      o->backing[0] == '/' || !strchr(path, '/') ? "" : "/",
		      o->backing);
	free(dir);
	if (rc < 0)
		return -ENOMEM;
	s = td_syncio_open(name, TD_OPEN_RDONLY | TD_OPEN_BUFFERED);
	if (!s) {
		rc = -errno;
		td_err("%s: cannot open the backing file %s: %s", path, name,
		       strerror(-rc));
		free(name);
		return rc ? rc : -EIO;
	}
	*size = td_syncio_size(s);
	td_syncio_close(s);
	free(name);
	return 0;
}

static int write_all(int fd, const void *b, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pwrite(fd, b, n, (off_t)off);

		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		b = (const char *)b + r;
		n -= r;
		off += r;
	}
	return 0;
}

int qcow2_create(const char *path, const struct td_create_opts *o)
{
	struct create_cfg cfg;
	struct qcow2_header h;
	struct qcow2_priv p;
	uint64_t cs, size = o->size, per_l1, l1c, nb, rtc, total, i, per;
	unsigned char *c = NULL, *rb = NULL;
	uint64_t *rt = NULL;
	int fd, rc;

	rc = parse_opts(path, o, &cfg);
	if (rc)
		return rc;
	if (!size && o->backing) {
		rc = backing_size(path, o, &size);
		if (rc)
			return rc;
	}
	if (!size && !o->backing) {
		td_err("%s: give a size", path);
		return -EINVAL;
	}
	cs = 1ull << cfg.cluster_bits;
	memset(&h, 0, sizeof(h));
	h.version = cfg.version;
	h.cluster_bits = cfg.cluster_bits;
	h.size = size;
	h.refcount_order = cfg.refcount_order;
	h.compression_type = cfg.comp;
	if (cfg.comp)
		h.incompat |= QCOW2_INCOMPAT_COMPRESSION;
	if (cfg.extl2)
		h.incompat |= QCOW2_INCOMPAT_EXTL2;
	if (cfg.data_file) {
		h.incompat |= QCOW2_INCOMPAT_DATA_FILE;
		snprintf(h.data_file, sizeof(h.data_file), "%s",
			 cfg.data_file);
	}
	if (cfg.data_raw)
		h.autoclear |= QCOW2_AUTOCLEAR_DATA_RAW;
	if (cfg.lazy)
		h.compat |= QCOW2_COMPAT_LAZY;
	if (o->backing) {
		if (strlen(o->backing) > 1023) {
			td_err("%s: backing file name too long", path);
			return -ENAMETOOLONG;
		}
		snprintf(h.backing, sizeof(h.backing), "%s", o->backing);
		if (o->backing_fmt)
			snprintf(h.backing_fmt, sizeof(h.backing_fmt), "%s",
				 type_to_fmt(o->backing_fmt));
	}
	per_l1 = cs << (cfg.cluster_bits - 3 - cfg.extl2);
	h.l1_size = (uint32_t)((size + per_l1 - 1) / per_l1);
	if ((uint64_t)h.l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		td_err("%s: %llu bytes need an L1 table over 32 MiB: use "
		       "bigger clusters",
		       path, (unsigned long long)size);
		return -EINVAL;
	}
	l1c = qcow2_align_up((uint64_t)h.l1_size * 8, cs) / cs;
	if (!l1c)
		l1c = 1;
	per = cs * 8 >> cfg.refcount_order;
	/* header, refcount table, refcount blocks, L1 */
	for (nb = 1;; nb++) {
		rtc = qcow2_align_up(nb * 8, cs) / cs;
		total = 1 + rtc + nb + l1c;
		if (total <= nb * per)
			break;
	}
	h.rt_offset = cs;
	h.rt_clusters = (uint32_t)rtc;
	h.l1_offset = (1 + rtc + nb) * cs;
	c = calloc(1, cs);
	rb = calloc(nb, cs);
	rt = calloc(rtc, cs);
	if (!c || !rb || !rt) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = qcow2_build_header(path, c, cs, &h);
	if (rc)
		goto out_free;
	memset(&p, 0, sizeof(p));
	p.rc_bits = 1u << cfg.refcount_order;
	for (i = 0; i < nb; i++)
		rt[i] = htobe64((1 + rtc + i) * cs);
	for (i = 0; i < total; i++)
		qcow2_rb_set(&p, rb + (i / per) * cs, i % per, 1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		td_err("%s: cannot create: %s", path, strerror(-rc));
		goto out_free;
	}
	rc = write_all(fd, c, cs, 0);
	if (!rc)
		rc = write_all(fd, rt, rtc * cs, cs);
	if (!rc)
		rc = write_all(fd, rb, nb * cs, (1 + rtc) * cs);
	if (!rc && ftruncate(fd, (off_t)(total * cs)) < 0)
		rc = -errno;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (!rc && cfg.data_file) {
		char *dpath = NULL, *dir = strdup(path);

		if (dir && asprintf(&dpath, "%s/%s",
				    cfg.data_file[0] == '/' ? "" : dirname(dir),
				    cfg.data_file) >= 0) {
			fd = open(cfg.data_file[0] == '/' ? cfg.data_file :
							    dpath,
				  O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
				rc = -errno;
			if (fd >= 0)
				close(fd);
		} else {
			rc = -ENOMEM;
		}
		free(dpath);
		free(dir);
	}
	if (rc)
		td_err("%s: cannot write the new image: %s", path,
		       strerror(-rc));
out_free:
	free(c);
	free(rb);
	free(rt);
	return rc;
}

void qcow2_describe(struct td_image *img, struct json_object *out)
{
	struct qcow2_priv *p = img->priv;
	static const char *const comp[] = { "zlib", "zstd" };

	json_object_object_add(out, "cluster_size",
			       json_object_new_int64((int64_t)p->cluster_size));
	json_object_object_add(out, "compat",
			       json_object_new_string(p->h.version == 2 ?
							      "0.10" :
							      "1.1"));
	json_object_object_add(out, "refcount_bits",
			       json_object_new_int((int)p->rc_bits));
	json_object_object_add(
		out, "lazy_refcounts",
		json_object_new_boolean(!!(p->h.compat & QCOW2_COMPAT_LAZY)));
	json_object_object_add(out, "extended_l2",
			       json_object_new_boolean(p->ext_l2));
	json_object_object_add(
		out, "compression_type",
		json_object_new_string(comp[p->h.compression_type & 1]));
	json_object_object_add(
		out, "corrupt",
		json_object_new_boolean(
			!!(p->h.incompat & QCOW2_INCOMPAT_CORRUPT)));
	if (p->h.data_file[0]) {
		json_object_object_add(out, "data_file",
				       json_object_new_string(p->h.data_file));
		json_object_object_add(out, "data_file_raw",
				       json_object_new_boolean(p->data_raw));
	}
	if (p->h.backing_fmt[0])
		json_object_object_add(
			out, "backing_format",
			json_object_new_string(p->h.backing_fmt));
	json_object_object_add(out, "snapshots",
			       json_object_new_int((int)p->h.nb_snapshots));
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow version 1: the header (decoding and validating every field before
 * the data path trusts it) and the administrative ops: create, describe,
 * check, resize and set_parent. These are synchronous; they run in tools,
 * never in a serving tapdisk's data path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "drivers.h"
#include "log.h"
#include "qcow-priv.h"

void qcow_header_decode(const uint8_t *b, struct qcow_header *h)
{
	h->magic = td_be_get32(b);
	h->version = td_be_get32(b + 4);
	h->backing_offset = td_be_get64(b + 8);
	h->backing_size = td_be_get32(b + 16);
	h->mtime = td_be_get32(b + 20);
	h->size = td_be_get64(b + 24);
	h->cluster_bits = b[32];
	h->l2_bits = b[33];
	h->crypt_method = td_be_get32(b + 36);
	h->l1_offset = td_be_get64(b + 40);
}

void qcow_header_encode(const struct qcow_header *h, uint8_t *b)
{
	memset(b, 0, QCOW_HEADER_SIZE);
	td_be_put32(b, h->magic);
	td_be_put32(b + 4, h->version);
	td_be_put64(b + 8, h->backing_offset);
	td_be_put32(b + 16, h->backing_size);
	td_be_put32(b + 20, h->mtime);
	td_be_put64(b + 24, h->size);
	b[32] = h->cluster_bits;
	b[33] = h->l2_bits;
	td_be_put32(b + 36, h->crypt_method);
	td_be_put64(b + 40, h->l1_offset);
}

/* L1 entries for a disk of size bytes; 0 if the table would be too big. */
static uint64_t qcow_l1_entries(uint64_t size, unsigned cluster_bits,
				unsigned l2_bits)
{
	unsigned shift = cluster_bits + l2_bits;
	uint64_t n = size ? ((size - 1) >> shift) + 1 : 0;

	return n > QCOW_L1_BYTES_MAX / 8 ? 0 : n;
}

int qcow_header_check(const char *path, const struct qcow_header *h,
		      uint64_t file_size, struct qcow_geom *g)
{
	uint64_t end;

	if (h->magic != QCOW_MAGIC) {
		td_err("%s: not a qcow image (magic %#x)", path, h->magic);
		return -EINVAL;
	}
	if (h->version != QCOW_VERSION) {
		td_err("%s: version %u is not qcow version 1 (versions 2 and 3 are qcow2)",
		       path, h->version);
		return -EINVAL;
	}
	if (h->cluster_bits < QCOW_CLUSTER_BITS_MIN ||
	    h->cluster_bits > QCOW_CLUSTER_BITS_MAX) {
		td_err("%s: cluster_bits %u is out of range (%d to %d)", path,
		       h->cluster_bits, QCOW_CLUSTER_BITS_MIN,
		       QCOW_CLUSTER_BITS_MAX);
		return -EINVAL;
	}
	if (h->l2_bits < QCOW_L2_BITS_MIN || h->l2_bits > QCOW_L2_BITS_MAX) {
		td_err("%s: l2_bits %u is out of range (%d to %d)", path,
		       h->l2_bits, QCOW_L2_BITS_MIN, QCOW_L2_BITS_MAX);
		return -EINVAL;
	}
	if (h->crypt_method > QCOW_CRYPT_AES) {
		td_err("%s: crypt_method %u is unknown (0 none, 1 AES)", path,
		       h->crypt_method);
		return -EINVAL;
	}
	if (h->size < QCOW_SECTOR || h->size > (uint64_t)INT64_MAX) {
		td_err("%s: size %llu is out of range (one sector to 2^63 bytes)",
		       path, (unsigned long long)h->size);
		return -EINVAL;
	}
	g->l1_entries = qcow_l1_entries(h->size, h->cluster_bits, h->l2_bits);
	if (!g->l1_entries) {
		td_err("%s: size %llu needs an L1 table larger than %u bytes",
		       path, (unsigned long long)h->size, QCOW_L1_BYTES_MAX);
		return -EINVAL;
	}
	g->l1_bytes = g->l1_entries * 8;
	if (h->l1_offset < QCOW_HEADER_SIZE) {
		td_err("%s: l1_table_offset %llu overlaps the header", path,
		       (unsigned long long)h->l1_offset);
		return -EINVAL;
	}
	if (h->l1_offset > file_size ||
	    file_size - h->l1_offset < g->l1_bytes) {
		td_err("%s: l1_table_offset %llu: the L1 table (%llu bytes) runs past the end of the file (%llu bytes)",
		       path, (unsigned long long)h->l1_offset,
		       (unsigned long long)g->l1_bytes,
		       (unsigned long long)file_size);
		return -EINVAL;
	}
	if (h->backing_offset && h->backing_size) {
		if (h->backing_size > QCOW_BACKING_MAX) {
			td_err("%s: backing_file_size %u is over %d bytes",
			       path, h->backing_size, QCOW_BACKING_MAX);
			return -EINVAL;
		}
		end = h->backing_offset + h->backing_size;
		if (h->backing_offset < QCOW_HEADER_SIZE || end > file_size) {
			td_err("%s: backing_file_offset %llu: the backing file name (%u bytes) is outside the file (%llu bytes)",
			       path, (unsigned long long)h->backing_offset,
			       h->backing_size, (unsigned long long)file_size);
			return -EINVAL;
		}
	}
	g->size = h->size & ~(uint64_t)(QCOW_SECTOR - 1);
	g->cluster_size = 1u << h->cluster_bits;
	g->l2_entries = 1u << h->l2_bits;
	g->l2_bytes = g->l2_entries * 8;
	g->offset_mask = (1ull << (63 - h->cluster_bits)) - 1;
	return 0;
}

int qcow_read_header(const char *path, int fd, struct qcow_header *h,
		     struct qcow_geom *g, char **backing)
{
	uint8_t b[QCOW_HEADER_SIZE];
	struct stat st;
	ssize_t n;
	int err;

	*backing = NULL;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		td_err("%s: cannot stat: %s", path, strerror(-err));
		return err;
	}
	n = pread(fd, b, sizeof(b), 0);
	if (n < 0) {
		err = -errno;
		td_err("%s: cannot read the header: %s", path, strerror(-err));
		return err;
	}
	if (n < QCOW_HEADER_SIZE) {
		td_err("%s: truncated header: the file has %zd bytes, a qcow header %d",
		       path, n, QCOW_HEADER_SIZE);
		return -EINVAL;
	}
	qcow_header_decode(b, h);
	err = qcow_header_check(path, h, (uint64_t)st.st_size, g);
	if (err || !h->backing_offset || !h->backing_size)
		return err;
	*backing = calloc(1, h->backing_size + 1);
	if (!*backing)
		return -ENOMEM;
	n = pread(fd, *backing, h->backing_size, (off_t)h->backing_offset);
	if (n != (ssize_t)h->backing_size) {
		err = n < 0 ? -errno : -EIO;
		td_err("%s: cannot read the backing file name: %s", path,
		       strerror(-err));
		goto fail;
	}
	if (strlen(*backing) != h->backing_size) {
		td_err("%s: the backing file name at backing_file_offset %llu has a NUL byte inside",
		       path, (unsigned long long)h->backing_offset);
		err = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	free(*backing);
	*backing = NULL;
	return err;
}

/* ---- create ---- */

static int qcow_parse_bool(const char *path, const char *key, const char *v,
			   bool *out)
{
	if (!strcasecmp(v, "on") || !strcasecmp(v, "true") ||
	    !strcasecmp(v, "yes") || !strcmp(v, "1")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(v, "off") || !strcasecmp(v, "false") ||
	    !strcasecmp(v, "no") || !strcmp(v, "0")) {
		*out = false;
		return 0;
	}
	td_err("%s: %s=%s: give on or off", path, key, v);
	return -EINVAL;
}

static int qcow_parse_cluster_size(const char *path, const char *v,
				   unsigned *bits)
{
	unsigned long long n;
	char *end;
	unsigned b;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (!errno && (*end == 'k' || *end == 'K') && !end[1]) {
		n <<= 10;
		end++;
	}
	for (b = QCOW_CLUSTER_BITS_MIN; b <= QCOW_CLUSTER_BITS_MAX; b++) {
		if (!errno && !*end && n == 1ull << b) {
			*bits = b;
			return 0;
		}
	}
	td_err("%s: cluster_size=%s: give a power of two from 512 to 65536",
	       path, v);
	return -EINVAL;
}

/* The size of the backing image, named relative to the new image's folder. */
static int qcow_backing_size(const char *path, const char *backing,
			     uint64_t *size)
{
	struct td_image *img = NULL;
	struct td_name n;
	char *name = NULL, *dir = NULL;
	const char *slash = strrchr(path, '/');
	int rc;

	rc = td_name_parse(backing, &n);
	if (rc) {
		td_err("%s: %s is not an image name", path, backing);
		return rc;
	}
	if (n.path[0] != '/' && slash && strcmp(n.type, "ram") &&
	    strcmp(n.type, "nbd") && strcmp(n.type, "vd")) {
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
		if (!dir || asprintf(&name, "%s%s%s/%s", n.type,
				     n.type[0] ? ":" : "", dir, n.path) < 0)
			name = NULL;
	} else {
		name = strdup(backing);
	}
	free(dir);
	td_name_free(&n);
	if (!name)
		return -ENOMEM;
	rc = td_image_open_chain(name,
				 TD_OPEN_RDONLY | TD_OPEN_PROBE |
					 TD_OPEN_NO_BACKING | TD_OPEN_BUFFERED,
				 NULL, NULL, &img);
	if (rc)
		td_err("%s: cannot open the backing image %s to learn its size",
		       path, name);
	else
		*size = img->info.size;
	td_image_close_chain(img);
	free(name);
	return rc;
}

int qcow_create(const char *path, const struct td_create_opts *opts)
{
	unsigned cluster_bits = opts->backing ? 9 : 12, l2_bits;
	uint8_t hdr[QCOW_HEADER_SIZE];
	struct qcow_header h = { 0 };
	size_t blen = opts->backing ? strlen(opts->backing) : 0;
	uint64_t size = opts->size, l1_entries;
	bool encrypt = false;
	int fd, i, err;

	for (i = 0; i < opts->nopts; i++) {
		const char *k = opts->keys[i], *v = opts->vals[i];

		if (!strcmp(k, "cluster_size"))
			err = qcow_parse_cluster_size(path, v, &cluster_bits);
		else if (!strcmp(k, "encryption") || !strcmp(k, "encrypt"))
			err = qcow_parse_bool(path, k, v, &encrypt);
		else {
			td_err("%s: qcow has no option %s (it knows cluster_size and encryption)",
			       path, k);
			err = -EINVAL;
		}
		if (err)
			return err;
	}
	if (blen > QCOW_BACKING_MAX) {
		td_err("%s: the backing file name is %zu bytes; qcow allows %d",
		       path, blen, QCOW_BACKING_MAX);
		return -ENAMETOOLONG;
	}
	if (opts->backing_fmt)
		td_info("%s: qcow version 1 cannot record the backing format %s; the backing file's format will be probed",
			path, opts->backing_fmt);
	if (!size && opts->backing) {
		err = qcow_backing_size(path, opts->backing, &size);
		if (err)
			return err;
	}
	if (size < QCOW_SECTOR || size % QCOW_SECTOR ||
	    size > (uint64_t)INT64_MAX) {
		td_err("%s: size %llu: give a non-zero multiple of 512 bytes",
		       path, (unsigned long long)size);
		return -EINVAL;
	}
	/* qemu's layouts: 512-byte clusters take 32 KiB L2 tables */
	l2_bits = cluster_bits == 9 ? 12 : cluster_bits - 3;
	l1_entries = qcow_l1_entries(size, cluster_bits, l2_bits);
	if (!l1_entries) {
		td_err("%s: size %llu is too large for cluster_size %u", path,
		       (unsigned long long)size, 1u << cluster_bits);
		return -EINVAL;
	}
	h.magic = QCOW_MAGIC;
	h.version = QCOW_VERSION;
	h.size = size;
	h.cluster_bits = (uint8_t)cluster_bits;
	h.l2_bits = (uint8_t)l2_bits;
	h.crypt_method = encrypt ? QCOW_CRYPT_AES : QCOW_CRYPT_NONE;
	if (blen) {
		h.backing_offset = QCOW_HEADER_SIZE;
		h.backing_size = (uint32_t)blen;
	}
	h.l1_offset = (QCOW_HEADER_SIZE + blen + 7) & ~7ull;
	qcow_header_encode(&h, hdr);

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		td_err("%s: cannot create: %s", path, strerror(-err));
		return err;
	}
	/* the L1 table is all zeroes: the file's extension provides them */
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    (blen && pwrite(fd, opts->backing, blen, QCOW_HEADER_SIZE) !=
			     (ssize_t)blen) ||
	    ftruncate(fd, (off_t)(h.l1_offset + l1_entries * 8)) < 0 ||
	    fsync(fd) < 0) {
		err = errno ? -errno : -EIO;
		td_err("%s: cannot write the new image: %s", path,
		       strerror(-err));
		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

/* ---- describe ---- */

void qcow_describe(struct td_image *img, struct json_object *out)
{
	struct qcow_admin a;

	qcow_admin_get(img, &a);
	json_object_object_add(out, "cluster_size",
			       json_object_new_int64(a.g->cluster_size));
	json_object_object_add(out, "l2_entries",
			       json_object_new_int64(a.g->l2_entries));
	json_object_object_add(out, "encrypted",
			       json_object_new_boolean(a.h->crypt_method ==
						       QCOW_CRYPT_AES));
	json_object_object_add(
		out, "encryption",
		json_object_new_string(a.h->crypt_method ? "aes" : "none"));
	json_object_object_add(out, "backing",
			       *a.backing ? json_object_new_string(*a.backing) :
					    NULL);
}

/* ---- walking the tables (check, resize) ---- */

struct qcow_scan {
	uint64_t allocated; /* clusters */
	uint64_t compressed;
	uint64_t bad; /* entries pointing outside the file */
	uint64_t first_used; /* lowest offset after the L1 table in use */
	uint64_t end_used; /* highest end of anything in use */
};

static void qcow_scan_use(struct qcow_scan *sc, uint64_t off, uint64_t len)
{
	if (off < sc->first_used)
		sc->first_used = off;
	if (off + len > sc->end_used)
		sc->end_used = off + len;
}

/* Read every L2 table through fd (buffered) and account for its entries. */
static int qcow_scan(const struct qcow_admin *a, int fd, uint64_t file_size,
		     struct qcow_scan *sc)
{
	const struct qcow_geom *g = a->g;
	uint64_t i, j, e, off, len;
	uint8_t *t = malloc(g->l2_bytes);

	if (!t)
		return -ENOMEM;
	memset(sc, 0, sizeof(*sc));
	sc->first_used = UINT64_MAX;
	sc->end_used = a->h->l1_offset + g->l1_bytes;
	for (i = 0; i < g->l1_entries; i++) {
		off = a->l1[i];
		if (!off)
			continue;
		if (off < QCOW_HEADER_SIZE || off > file_size ||
		    file_size - off < g->l2_bytes ||
		    pread(fd, t, g->l2_bytes, (off_t)off) !=
			    (ssize_t)g->l2_bytes) {
			td_err("%s: L1 entry %llu: the L2 table at %llu is outside the file or unreadable",
			       a->path, (unsigned long long)i,
			       (unsigned long long)off);
			sc->bad++;
			continue;
		}
		qcow_scan_use(sc, off, g->l2_bytes);
		for (j = 0; j < g->l2_entries; j++) {
			e = td_be_get64(t + j * 8);
			if (!e)
				continue;
			if (e & QCOW_COMPRESSED) {
				off = e & g->offset_mask;
				len = (e >> (63 - a->h->cluster_bits)) &
				      (g->cluster_size - 1);
				sc->compressed++;
			} else {
				off = e;
				len = g->cluster_size;
			}
			if (!len || off < QCOW_HEADER_SIZE || off > file_size ||
			    file_size - off < len ||
			    (!(e & QCOW_COMPRESSED) && off % QCOW_SECTOR)) {
				td_err("%s: L2 entry %llu of the table at %llu points to %llu (%llu bytes), outside the file or unaligned",
				       a->path, (unsigned long long)j,
				       (unsigned long long)a->l1[i],
				       (unsigned long long)off,
				       (unsigned long long)len);
				sc->bad++;
				continue;
			}
			sc->allocated++;
			qcow_scan_use(sc, off, len);
		}
	}
	free(t);
	return 0;
}

static int qcow_admin_fd(const struct qcow_admin *a, int flags, uint64_t *size)
{
	struct stat st;
	int fd, err;

	/* the image's own fd may be O_DIRECT; these small I/Os are not */
	fd = open(a->path, flags | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err = -errno;
		td_err("%s: cannot open: %s", a->path, strerror(-err));
		if (fd >= 0)
			close(fd);
		return err;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int qcow_check(struct td_image *img, struct td_check *res, unsigned fix)
{
	struct qcow_admin a;
	struct qcow_scan sc;
	uint64_t fsize;
	int fd, err;

	qcow_admin_get(img, &a);
	if (!a.l1) {
		td_err("%s: opened for probing only; cannot check", a.path);
		return -EINVAL;
	}
	memset(res, 0, sizeof(*res));
	fd = qcow_admin_fd(&a, O_RDONLY, &fsize);
	if (fd < 0)
		return fd;
	err = qcow_scan(&a, fd, fsize, &sc);
	close(fd);
	if (err)
		return err;
	/* no reference counts: nothing can leak, only point astray */
	res->corruptions = sc.bad;
	res->allocated_clusters = sc.allocated;
	res->total_clusters =
		(a.g->size + a.g->cluster_size - 1) / a.g->cluster_size;
	res->image_end_offset = sc.end_used;
	if (sc.bad && (fix & TD_CHECK_FIX_ERRORS)) {
		td_err("%s: repairing qcow version 1 images is not supported; convert what reads back instead",
		       a.path);
		return -ENOTSUP;
	}
	return 0;
}

/* ---- resize ---- */

int qcow_resize(struct td_image *img, uint64_t size)
{
	uint8_t hdr[QCOW_HEADER_SIZE], zero[4096] = { 0 };
	struct qcow_header h;
	struct qcow_admin a;
	struct qcow_scan sc;
	uint64_t entries, fsize, from, to, n;
	int fd, err = 0;

	qcow_admin_get(img, &a);
	if (!a.l1) {
		td_err("%s: opened for probing only; cannot resize", a.path);
		return -EINVAL;
	}
	if (size % QCOW_SECTOR || !size || size > (uint64_t)INT64_MAX) {
		td_err("%s: new size %llu: give a non-zero multiple of 512 bytes",
		       a.path, (unsigned long long)size);
		return -EINVAL;
	}
	if (size < a.g->size) {
		td_err("%s: shrinking a qcow image is not supported", a.path);
		return -ENOTSUP;
	}
	entries = qcow_l1_entries(size, a.h->cluster_bits, a.h->l2_bits);
	if (!entries) {
		td_err("%s: size %llu needs an L1 table larger than %u bytes",
		       a.path, (unsigned long long)size, QCOW_L1_BYTES_MAX);
		return -EINVAL;
	}
	fd = qcow_admin_fd(&a, O_RDWR, &fsize);
	if (fd < 0)
		return fd;
	if (entries > a.g->l1_entries) {
		/*
		 * qcow v1 cannot move its L1 table: it may only grow into
		 * space nothing uses yet.
		 */
		err = qcow_scan(&a, fd, fsize, &sc);
		if (err)
			goto out;
		from = a.h->l1_offset + a.g->l1_bytes;
		to = a.h->l1_offset + entries * 8;
		if (sc.bad || sc.first_used < to ||
		    (a.h->backing_offset > a.h->l1_offset &&
		     a.h->backing_offset < to)) {
			td_err("%s: growing to %llu bytes needs a larger L1 table, and clusters follow the table; qcow version 1 cannot move it (convert the image to grow it)",
			       a.path, (unsigned long long)size);
			err = -ENOTSUP;
			goto out;
		}
		for (; from < to && from < fsize; from += n) {
			n = (to < fsize ? to : fsize) - from;
			if (n > sizeof(zero))
				n = sizeof(zero);
			if (pwrite(fd, zero, n, (off_t)from) != (ssize_t)n) {
				err = -errno;
				goto io_fail;
			}
		}
		if (to > fsize && ftruncate(fd, (off_t)to) < 0) {
			err = -errno;
			goto io_fail;
		}
		/* the new table is zero on disk before the header grows */
		if (fdatasync(fd) < 0) {
			err = -errno;
			goto io_fail;
		}
	}
	h = *a.h;
	h.size = size;
	qcow_header_encode(&h, hdr);
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fdatasync(fd) < 0) {
		err = errno ? -errno : -EIO;
		goto io_fail;
	}
	err = qcow_admin_reload(img);
	if (!err)
		img->info.size = size & ~(uint64_t)(QCOW_SECTOR - 1);
	goto out;
io_fail:
	td_err("%s: resize: %s", a.path, strerror(-err));
out:
	close(fd);
	return err;
}

/* ---- set_parent ---- */

int qcow_set_parent(struct td_image *img, const char *name, const char *fmt)
{
	uint8_t hdr[QCOW_HEADER_SIZE];
	struct qcow_header h;
	struct qcow_admin a;
	size_t nlen = name ? strlen(name) : 0;
	uint64_t start, room, fsize;
	char *zeros = NULL, *copy = NULL;
	int fd, err = 0;

	qcow_admin_get(img, &a);
	h = *a.h;
	if (h.backing_offset && h.backing_size) {
		start = h.backing_offset;
		room = h.l1_offset > start ? h.l1_offset - start :
					     h.backing_size;
	} else {
		/* qemu puts the name between the header and the L1 table */
		start = QCOW_HEADER_SIZE;
		room = h.l1_offset > start ? h.l1_offset - start : 0;
	}
	if (nlen > QCOW_BACKING_MAX || nlen > room) {
		td_err("%s: the backing name %s (%zu bytes) does not fit in the %llu bytes this image has for it; qcow version 1 cannot move its L1 table",
		       a.path, name, nlen, (unsigned long long)room);
		return -ENOSPC;
	}
	if (fmt)
		td_info("%s: qcow version 1 cannot record the backing format %s; it will be probed",
			a.path, fmt);
	if (name) {
		copy = strdup(name);
		if (!copy)
			return -ENOMEM;
	}
	fd = qcow_admin_fd(&a, O_RDWR, &fsize);
	if (fd < 0) {
		free(copy);
		return fd;
	}
	/* the old name's bytes go; a shorter name leaves no trace of it */
	if (h.backing_size > nlen) {
		zeros = calloc(1, h.backing_size - nlen);
		if (!zeros) {
			err = -ENOMEM;
			goto out;
		}
	}
	h.backing_offset = nlen ? start : 0;
	h.backing_size = (uint32_t)nlen;
	qcow_header_encode(&h, hdr);
	errno = EIO;
	if ((nlen && pwrite(fd, name, nlen, (off_t)start) != (ssize_t)nlen) ||
	    (zeros && pwrite(fd, zeros, a.h->backing_size - nlen,
			     (off_t)(a.h->backing_offset + nlen)) !=
			      (ssize_t)(a.h->backing_size - nlen)) ||
	    fdatasync(fd) < 0 ||
	    pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fdatasync(fd) < 0) {
		err = -errno;
		td_err("%s: cannot rewrite the backing name: %s", a.path,
		       strerror(-err));
		goto out;
	}
	err = qcow_admin_reload(img);
	if (!err) {
		free(img->info.parent);
		img->info.parent = copy;
		copy = NULL;
	}
out:
	free(zeros);
	free(copy);
	close(fd);
	return err;
}

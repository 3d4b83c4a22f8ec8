// SPDX-License-Identifier: GPL-2.0-only
/*
 * QEMU qcow version 1 images: standalone sparse images and copy-on-write
 * images over a backing file of any format, zlib-compressed clusters, and
 * AES-encrypted images given the password.
 *
 * The data path never waits on the event loop's thread: the L1 table is
 * read at open, L2 tables are read through the I/O engine into a small
 * cache, and a request that needs a table that is not there waits for its
 * load. Writes to allocated clusters go straight to the file, in parallel.
 * Writes that need new clusters take the image's allocation lock in turn:
 * the new clusters are appended at the end of the file and filled
 * (copy-on-write from the backing image or the compressed cluster for the
 * parts of a cluster the write does not cover), made durable, and only then
 * do the L2 (and for a new table, the L1) entries point at them.
 *
 * Key files: an encrypted image needs its password, given as a file
 * named by a "?key-file=PATH" suffix on the image path or by the
 * environment variable TD_QCOW_KEY_FILE. The file holds the password; one
 * trailing newline is ignored; as in qemu, its first 16 bytes, zero
 * padded, are the AES-128 key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "buf.h"
#include "drivers.h"
#include "file-util.h"
#include "io.h"
#include "log.h"
#include "qcow-priv.h"

#define QCOW_KEY_SUFFIX "?key-file="
#define QCOW_KEY_ENV "TD_QCOW_KEY_FILE"
#define QCOW_KEY_FILE_MAX 4096
/* L2 tables kept in memory (more only while all of them are busy) */
#define QCOW_L2_CACHE 64
/* the most one read or write to the file covers */
#define QCOW_RUN_MAX (4u << 20)
/* the most one allocation appends */
#define QCOW_ALLOC_MAX (1u << 20)
/* sub-operations in flight for one request */
#define QCOW_SUBS_MAX 32

struct qcow_req;

struct qcow_l2 {
	struct qcow_l2 *next;
	uint64_t off; /* in the file */
	uint64_t *table; /* big-endian, as on disk */
	uint64_t stamp; /* last use, for LRU */
	int pins;
	bool loading;
	struct qcow_req *waiters;
	struct td_image *img;
	struct td_iocb cb;
	struct iovec iov;
};

enum qcow_kind {
	QCOW_UNALLOC,
	QCOW_DATA,
	QCOW_ZIPPED,
};

struct qcow_map {
	enum qcow_kind kind;
	uint64_t len; /* from the position to the end of what this says */
	uint64_t off; /* QCOW_DATA: file offset of the position */
	uint64_t entry; /* the L2 entry */
	struct qcow_l2 *l2; /* NULL when the L1 entry is empty */
	uint32_t l2_index;
};

enum qcow_alloc_stage {
	QCOW_A_FILL, /* reading what the write does not cover */
	QCOW_A_DATA, /* writing the new clusters */
	QCOW_A_SYNC, /* making them durable before anything points at them */
	QCOW_A_L2, /* writing the L2 entries (or a whole new table) */
	QCOW_A_L2_SYNC, /* a new table: durable before the L1 points at it */
	QCOW_A_L1, /* writing the L1 entry of a new table */
};

struct qcow_alloc {
	enum qcow_alloc_stage stage;
	struct qcow_l2 *l2; /* pinned cache entry, or a new private table */
	bool fresh; /* l2 is new: not in the cache, not yet on disk */
	uint64_t l1_index;
	uint32_t l2_index;
	unsigned n; /* clusters */
	uint64_t vstart; /* disk offset of the first one */
	uint64_t off; /* file offset of the first one */
	uint64_t entry0; /* the first cluster's old L2 entry */
	uint8_t *buf;
	size_t buflen;
	uint8_t *meta; /* bounce for the L2 entries' sectors */
	size_t metalen;
	uint64_t meta_lo; /* byte in the table where meta starts */
	int fills;
	int err;
	struct td_iocb cb;
	struct iovec iov;
};

struct qcow_req {
	struct td_image *img;
	struct td_request *req;
	int (*step)(struct qcow_req *qr);
	struct qcow_req *next; /* on a wait list */
	uint64_t pos, end;
	int pending;
	int err;
	bool waiting;
	bool walking;
	bool allocating;
	bool zero; /* write_zeroes: the data is zeroes */
	struct qcow_alloc a;
};

struct qcow_sub {
	struct qcow_req *qr;
	void (*done)(struct qcow_sub *s, int err);
	struct td_iocb cb;
	struct td_request preq;
	struct iovec one; /* iov when it is a single buffer */
	struct iovec *iov; /* the request's buffers for this part */
	int iovcnt;
	uint8_t *buf; /* bounce */
	size_t buflen;
	struct iovec biov; /* the bounce buffer's I/O */
	uint64_t voff; /* disk offset */
	uint64_t len;
	uint64_t skip; /* where in buf the wanted bytes start */
	uint64_t entry; /* compressed cluster */
	uint32_t in; /* offset in the compressed cluster */
};

struct qcow_priv {
	int fd;
	char *file;
	char *backing;
	struct qcow_header h;
	struct qcow_geom g;
	bool direct;
	unsigned align; /* metadata I/O granule: 512 with O_DIRECT, else 1 */
	uint64_t *l1; /* host order, what the data path follows */
	uint8_t *l1_raw; /* the file's bytes around the L1 table */
	uint64_t l1_raw_off;
	size_t l1_raw_len;
	uint64_t eof; /* where the next cluster goes */
	uint64_t file_end; /* bytes the file holds (or will, once written) */
	struct qcow_l2 *l2s;
	unsigned nl2;
	uint64_t stamp;
	EVP_CIPHER_CTX *enc, *dec;
	struct qcow_req *alloc_owner;
	struct qcow_req *alloc_head, *alloc_tail;
	struct td_defer alloc_defer;
};

static void qcow_walk(struct qcow_req *qr);

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v - v % a;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return align_down(v + a - 1, a);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- encryption ---- */

/*
 * qemu's scheme: AES-128-CBC per 512-byte sector, the IV being the disk
 * sector number, little-endian, in the first 8 of its 16 bytes.
 */
static int qcow_crypt(struct td_image *img, uint64_t voff, uint8_t *buf,
		      uint64_t len, bool enc)
{
	struct qcow_priv *p = img->priv;
	EVP_CIPHER_CTX *ctx = enc ? p->enc : p->dec;
	uint64_t sector = voff / QCOW_SECTOR, done;
	unsigned char iv[16];
	int outl, i;

	for (done = 0; done < len; done += QCOW_SECTOR, sector++) {
		memset(iv, 0, sizeof(iv));
		for (i = 0; i < 8; i++)
			iv[i] = (unsigned char)(sector >> (8 * i));
		if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) ||
		    !EVP_CipherUpdate(ctx, buf + done, &outl, buf + done,
				      QCOW_SECTOR) ||
		    outl != QCOW_SECTOR) {
			td_err("%s: AES %s of sector %llu failed", img->name,
			       enc ? "encryption" : "decryption",
			       (unsigned long long)sector);
			return -EIO;
		}
	}
	return 0;
}

static int qcow_read_key(const char *image, const char *keyfile,
			 unsigned char key[16])
{
	char buf[QCOW_KEY_FILE_MAX + 1];
	ssize_t n;
	int fd, err;

	fd = open(keyfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		td_err("%s: cannot open the key file %s: %s", image, keyfile,
		       strerror(-err));
		return err;
	}
	n = read(fd, buf, sizeof(buf));
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err) {
		td_err("%s: cannot read the key file %s: %s", image, keyfile,
		       strerror(-err));
		return err;
	}
	if (n > QCOW_KEY_FILE_MAX) {
		td_err("%s: the key file %s is longer than %d bytes; it should hold only the password",
		       image, keyfile, QCOW_KEY_FILE_MAX);
		return -EINVAL;
	}
	/* `echo password > file` leaves a newline that is no part of it */
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n == 0) {
		td_err("%s: the key file %s is empty", image, keyfile);
		return -EINVAL;
	}
	memset(key, 0, 16);
	memcpy(key, buf, n < 16 ? (size_t)n : 16);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static int qcow_setup_crypto(struct td_image *img, const char *keyfile)
{
	struct qcow_priv *p = img->priv;
	unsigned char key[16];
	int err;

	if (!keyfile)
		keyfile = getenv(QCOW_KEY_ENV);
	if (!keyfile || !*keyfile) {
		td_err("%s: the image is AES-encrypted (crypt_method 1) and no key was given; name a file holding the password as qcow:%s" QCOW_KEY_SUFFIX
		       "PATH or in " QCOW_KEY_ENV,
		       p->file, p->file);
		return -ENOKEY;
	}
	err = qcow_read_key(p->file, keyfile, key);
	if (err)
		return err;
	p->enc = EVP_CIPHER_CTX_new();
	p->dec = EVP_CIPHER_CTX_new();
	if (!p->enc || !p->dec ||
	    !EVP_CipherInit_ex(p->enc, EVP_aes_128_cbc(), NULL, key, NULL, 1) ||
	    !EVP_CipherInit_ex(p->dec, EVP_aes_128_cbc(), NULL, key, NULL, 0) ||
	    !EVP_CIPHER_CTX_set_padding(p->enc, 0) ||
	    !EVP_CIPHER_CTX_set_padding(p->dec, 0)) {
		td_err("%s: cannot set up AES-128-CBC", p->file);
		err = -EIO;
	}
	explicit_bzero(key, sizeof(key));
	return err;
}

/* ---- buffers ---- */

/* s->iov = [from, from + len) of the request's data (from: disk offset) */
static int qcow_slice(struct qcow_sub *s, uint64_t from, uint64_t len)
{
	const struct td_request *req = s->qr->req;
	uint64_t at = 0, left = len, l, b, e;
	struct iovec *v;
	int i, n = 0;

	from -= req->offset;
	if (s->qr->zero) {
		/* the source of write_zeroes: the shared zero page run */
		n = (int)((len + TD_ZERO_BUF_SIZE - 1) / TD_ZERO_BUF_SIZE);
		v = n == 1 ? &s->one : calloc(n, sizeof(*v));
		if (!v || !td_zero_buf())
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			v[i].iov_base = (void *)td_zero_buf();
			v[i].iov_len = min_u64(left, TD_ZERO_BUF_SIZE);
			left -= v[i].iov_len;
		}
		s->iov = v;
		s->iovcnt = n;
		return 0;
	}
	for (i = 0; i < req->iovcnt; i++) {
		l = req->iov[i].iov_len;
		if (at + l > from && at < from + len)
			n++;
		at += l;
	}
	v = n == 1 ? &s->one : calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	at = 0;
	n = 0;
	for (i = 0; i < req->iovcnt && left; i++) {
		l = req->iov[i].iov_len;
		if (at + l <= from) {
			at += l;
			continue;
		}
		b = from > at ? from - at : 0;
		e = min_u64(l, b + left);
		v[n].iov_base = (char *)req->iov[i].iov_base + b;
		v[n].iov_len = e - b;
		left -= e - b;
		n++;
		at += l;
	}
	s->iov = v;
	s->iovcnt = n;
	return 0;
}

static void iov_from_buf(const struct iovec *iov, int cnt, const uint8_t *src)
{
	int i;

	for (i = 0; i < cnt; i++) {
		memcpy(iov[i].iov_base, src, iov[i].iov_len);
		src += iov[i].iov_len;
	}
}

static void iov_to_buf(uint8_t *dst, const struct iovec *iov, int cnt)
{
	int i;

	for (i = 0; i < cnt; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

static bool iov_aligned(const struct iovec *iov, int cnt, unsigned a)
{
	int i;

	for (i = 0; i < cnt; i++)
		if ((uintptr_t)iov[i].iov_base % a || iov[i].iov_len % a)
			return false;
	return true;
}

static int qcow_bounce(struct qcow_sub *s, size_t len)
{
	s->buflen = align_up(len ? len : 1, TD_BUF_ALIGN);
	s->buf = td_buf_get(s->buflen);
	return s->buf ? 0 : -ENOMEM;
}

/* ---- requests and their parts ---- */

static struct qcow_req *qcow_req_new(struct td_image *img,
				     struct td_request *req,
				     int (*step)(struct qcow_req *))
{
	struct qcow_req *qr = calloc(1, sizeof(*qr));

	if (!qr) {
		td_err("%s: no memory for a %s request", img->name,
		       td_op_name(req->op));
		td_request_complete(img, req, -ENOMEM);
		return NULL;
	}
	qr->img = img;
	qr->req = req;
	qr->step = step;
	qr->pos = req->offset;
	qr->end = req->offset + req->len;
	return qr;
}

static struct qcow_sub *qcow_sub_new(struct qcow_req *qr,
				     void (*done)(struct qcow_sub *, int))
{
	struct qcow_sub *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->qr = qr;
	s->done = done;
	s->cb.data = s;
	s->cb.fd = ((struct qcow_priv *)qr->img->priv)->fd;
	return s;
}

static void qcow_sub_free(struct qcow_sub *s)
{
	if (s->iov && s->iov != &s->one)
		free(s->iov);
	if (s->buf)
		td_buf_put(s->buf, s->buflen);
	free(s);
}

static void qcow_fail(struct qcow_req *qr, int err)
{
	if (err && !qr->err)
		qr->err = err;
}

/* The end of a part of a request: count it and carry on walking. */
static void qcow_sub_req_done(struct qcow_sub *s, int err)
{
	struct qcow_req *qr = s->qr;

	qcow_fail(qr, err);
	qcow_sub_free(s);
	qr->pending--;
	qcow_walk(qr);
}

static void qcow_alloc_grant(struct td_loop *loop, void *data)
{
	struct td_image *img = data;
	struct qcow_priv *p = img->priv;
	struct qcow_req *qr;

	if (p->alloc_owner || !p->alloc_head)
		return;
	qr = p->alloc_head;
	p->alloc_head = qr->next;
	if (!p->alloc_head)
		p->alloc_tail = NULL;
	qr->next = NULL;
	qr->waiting = false;
	p->alloc_owner = qr;
	qcow_walk(qr);
}

/* Take the allocation lock, or queue for it (false). */
static bool qcow_alloc_lock(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;

	if (p->alloc_owner == qr)
		return true;
	if (!p->alloc_owner && !p->alloc_head) {
		p->alloc_owner = qr;
		return true;
	}
	qr->waiting = true;
	qr->next = NULL;
	if (p->alloc_tail)
		p->alloc_tail->next = qr;
	else
		p->alloc_head = qr;
	p->alloc_tail = qr;
	return false;
}

static void qcow_alloc_unlock(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;

	if (p->alloc_owner != qr)
		return;
	p->alloc_owner = NULL;
	/* the next one starts from the loop, not inside this request */
	if (p->alloc_head)
		td_loop_defer(qr->img->loop, &p->alloc_defer, qcow_alloc_grant,
			      qr->img);
}

static void qcow_walk(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	int rc;

	if (qr->walking)
		return;
	qr->walking = true;
	while (!qr->err && qr->pos < qr->end && !qr->waiting &&
	       !qr->allocating && qr->pending < QCOW_SUBS_MAX) {
		rc = qr->step(qr);
		if (rc == -EAGAIN)
			break;
		qcow_fail(qr, rc);
	}
	qr->walking = false;
	if (qr->waiting || qr->allocating)
		return;
	if (qr->err || qr->pos >= qr->end)
		qcow_alloc_unlock(qr);
	if (qr->pending || (!qr->err && qr->pos < qr->end))
		return;
	td_request_complete(img, qr->req, qr->err);
	free(qr);
}

/* ---- the L2 cache ---- */

static void qcow_l2_free(struct qcow_priv *p, struct qcow_l2 *l2)
{
	if (l2->table)
		td_buf_put(l2->table, p->g.l2_bytes);
	free(l2);
}

static void qcow_l2_unlink(struct qcow_priv *p, struct qcow_l2 *l2)
{
	struct qcow_l2 **pp;

	for (pp = &p->l2s; *pp; pp = &(*pp)->next) {
		if (*pp == l2) {
			*pp = l2->next;
			p->nl2--;
			return;
		}
	}
}

static void qcow_l2_insert(struct qcow_priv *p, struct qcow_l2 *l2)
{
	l2->stamp = ++p->stamp;
	l2->next = p->l2s;
	p->l2s = l2;
	p->nl2++;
}

static struct qcow_l2 *qcow_l2_alloc(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	struct qcow_l2 *l2 = calloc(1, sizeof(*l2));

	if (!l2)
		return NULL;
	l2->table = td_buf_get(p->g.l2_bytes);
	if (!l2->table) {
		free(l2);
		return NULL;
	}
	l2->img = img;
	l2->cb.data = l2;
	return l2;
}

/* A table to load into: the least recently used idle one, or a new one. */
static struct qcow_l2 *qcow_l2_victim(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	struct qcow_l2 *l2, *lru = NULL;

	if (p->nl2 >= QCOW_L2_CACHE) {
		for (l2 = p->l2s; l2; l2 = l2->next)
			if (!l2->pins && !l2->loading &&
			    (!lru || l2->stamp < lru->stamp))
				lru = l2;
	}
	if (lru) {
		qcow_l2_unlink(p, lru);
		return lru;
	}
	return qcow_l2_alloc(img);
}

static void qcow_l2_unpin(struct td_image *img, struct qcow_l2 *l2)
{
	struct qcow_priv *p = img->priv;

	/* over the bound because everything was busy: shrink back now */
	if (!--l2->pins && p->nl2 > QCOW_L2_CACHE) {
		qcow_l2_unlink(p, l2);
		qcow_l2_free(p, l2);
	}
}

static void qcow_l2_loaded(struct td_iocb *cb, long res)
{
	struct qcow_l2 *l2 = cb->data;
	struct td_image *img = l2->img;
	struct qcow_priv *p = img->priv;
	struct qcow_req *qr, *next;
	int err = 0;

	if (res < 0 || (uint64_t)res != p->g.l2_bytes) {
		err = res < 0 ? (int)res : -EIO;
		td_err("%s: cannot read the L2 table at %llu: %s", p->file,
		       (unsigned long long)l2->off, strerror(-err));
	}
	l2->loading = false;
	qr = l2->waiters;
	l2->waiters = NULL;
	if (err) {
		qcow_l2_unlink(p, l2);
		qcow_l2_free(p, l2);
	}
	for (; qr; qr = next) {
		next = qr->next;
		qr->next = NULL;
		qr->waiting = false;
		if (err)
			qcow_fail(qr, -EIO);
		qcow_walk(qr);
	}
}

/*
 * The L2 table of L1 entry l1i. If it is not in memory: with qr, start
 * loading it, queue qr for it and return -EAGAIN; without, just -EAGAIN.
 */
static int qcow_l2_get(struct td_image *img, uint64_t l1i,
		       struct qcow_req *qr, struct qcow_l2 **out)
{
	struct qcow_priv *p = img->priv;
	uint64_t off = p->l1[l1i];
	struct qcow_l2 *l2;

	for (l2 = p->l2s; l2; l2 = l2->next)
		if (l2->off == off)
			break;
	if (l2 && !l2->loading) {
		l2->stamp = ++p->stamp;
		*out = l2;
		return 0;
	}
	if (!qr)
		return -EAGAIN;
	if (!l2) {
		if (off % p->align || off < QCOW_HEADER_SIZE ||
		    off > p->file_end || p->file_end - off < p->g.l2_bytes) {
			td_err("%s: L1 entry %llu points to an L2 table at %llu, outside the file (%llu bytes)%s",
			       p->file, (unsigned long long)l1i,
			       (unsigned long long)off,
			       (unsigned long long)p->file_end,
			       off % p->align ? " or unaligned" : "");
			return -EIO;
		}
		l2 = qcow_l2_victim(img);
		if (!l2)
			return -ENOMEM;
		l2->off = off;
		l2->loading = true;
		l2->waiters = NULL;
		qcow_l2_insert(p, l2);
		l2->iov.iov_base = l2->table;
		l2->iov.iov_len = p->g.l2_bytes;
		l2->cb.op = TD_IO_READ;
		l2->cb.fd = p->fd;
		l2->cb.flags = 0;
		l2->cb.offset = off;
		l2->cb.iov = &l2->iov;
		l2->cb.iovcnt = 1;
		l2->cb.done = qcow_l2_loaded;
		td_io_queue(img->io, &l2->cb);
	}
	qr->waiting = true;
	qr->next = l2->waiters;
	l2->waiters = qr;
	return -EAGAIN;
}

/*
 * What disk offset pos maps to. qr: wait for a table load if need be
 * (-EAGAIN, qr queued); NULL: only look (-EAGAIN if not in memory).
 */
static int qcow_map(struct td_image *img, uint64_t pos, struct qcow_req *qr,
		    struct qcow_map *m)
{
	struct qcow_priv *p = img->priv;
	unsigned cbits = p->h.cluster_bits, shift = cbits + p->h.l2_bits;
	uint64_t l1i = pos >> shift, in = pos & (p->g.cluster_size - 1);
	uint64_t e, off, csize;
	int rc;

	memset(m, 0, sizeof(*m));
	m->kind = QCOW_UNALLOC;
	if (!p->l1[l1i]) {
		/* the whole span of a missing L2 table */
		m->len = ((l1i + 1) << shift) - pos;
		return 0;
	}
	m->len = p->g.cluster_size - in;
	rc = qcow_l2_get(img, l1i, qr, &m->l2);
	if (rc)
		return rc;
	m->l2_index = (uint32_t)((pos >> cbits) & (p->g.l2_entries - 1));
	e = qcow_be64((const uint8_t *)&m->l2->table[m->l2_index]);
	m->entry = e;
	if (!e)
		return 0;
	if (e & QCOW_COMPRESSED) {
		off = e & p->g.offset_mask;
		csize = (e >> (63 - cbits)) & (p->g.cluster_size - 1);
		if (!csize || off < QCOW_HEADER_SIZE || off > p->file_end ||
		    p->file_end - off < csize) {
			td_err("%s: L2 entry %u of the table at %llu: compressed cluster of %llu bytes at %llu is outside the file (%llu bytes)",
			       p->file, m->l2_index,
			       (unsigned long long)m->l2->off,
			       (unsigned long long)csize,
			       (unsigned long long)off,
			       (unsigned long long)p->file_end);
			return -EIO;
		}
		m->kind = QCOW_ZIPPED;
		return 0;
	}
	if (e % QCOW_SECTOR || e < QCOW_HEADER_SIZE || e > p->file_end ||
	    p->file_end - e < p->g.cluster_size) {
		td_err("%s: L2 entry %u of the table at %llu: cluster at %llu is unaligned or outside the file (%llu bytes)",
		       p->file, m->l2_index, (unsigned long long)m->l2->off,
		       (unsigned long long)e, (unsigned long long)p->file_end);
		return -EIO;
	}
	m->kind = QCOW_DATA;
	m->off = e + in;
	return 0;
}

/* Grow m's run over the following clusters that map the same way. */
static void qcow_extend(struct td_image *img, struct qcow_map *m,
			uint64_t pos, uint64_t end, bool any_alloc)
{
	struct qcow_map n;

	m->len = min_u64(m->len, end - pos);
	/* data runs are bounded for the I/O; holes are not */
	while (pos + m->len < end &&
	       (m->kind == QCOW_UNALLOC || m->len < QCOW_RUN_MAX)) {
		if (qcow_map(img, pos + m->len, NULL, &n))
			break;
		if (any_alloc ? (n.kind == QCOW_UNALLOC) !=
					(m->kind == QCOW_UNALLOC) :
				n.kind != m->kind)
			break;
		if (!any_alloc && m->kind == QCOW_ZIPPED)
			break;
		if (!any_alloc && m->kind == QCOW_DATA &&
		    n.off != m->off + m->len)
			break;
		m->len = min_u64(m->len + n.len, end - pos);
	}
	if (m->len > QCOW_RUN_MAX && m->kind != QCOW_UNALLOC)
		m->len = QCOW_RUN_MAX;
}

/* ---- reading ---- */

static void qcow_data_read_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;
	struct td_image *img = s->qr->img;
	int err = 0;

	if (res >= 0 && (uint64_t)res != s->len)
		res = -EIO;
	if (res < 0) {
		err = (int)res;
		td_err("%s: read of %llu bytes at %llu: %s", img->name,
		       (unsigned long long)s->len,
		       (unsigned long long)cb->offset, strerror(-err));
	} else if (s->buf) {
		err = qcow_crypt(img, s->voff, s->buf, s->len, false);
		if (!err)
			iov_from_buf(s->iov, s->iovcnt, s->buf);
	}
	s->done(s, err);
}

static int qcow_issue_data_read(struct qcow_req *qr, uint64_t off,
				uint64_t len)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_sub *s = qcow_sub_new(qr, qcow_sub_req_done);
	int rc;

	if (!s)
		return -ENOMEM;
	s->voff = qr->pos;
	s->len = len;
	rc = qcow_slice(s, qr->pos, len);
	if (!rc && p->enc)
		rc = qcow_bounce(s, len);
	if (rc) {
		qcow_sub_free(s);
		return rc;
	}
	s->cb.op = TD_IO_READ;
	s->cb.offset = off;
	if (s->buf) {
		s->biov.iov_base = s->buf;
		s->biov.iov_len = len;
		s->cb.iov = &s->biov;
		s->cb.iovcnt = 1;
	} else {
		s->cb.iov = s->iov;
		s->cb.iovcnt = s->iovcnt;
	}
	s->cb.done = qcow_data_read_done;
	qr->pending++;
	td_io_queue(qr->img->io, &s->cb);
	return 0;
}

static int qcow_inflate(const uint8_t *in, size_t inlen, uint8_t *out,
			size_t outlen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	/* raw deflate, no zlib header, as qemu writes it */
	if (inflateInit2(&z, -15) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)inlen;
	z.next_out = out;
	z.avail_out = (uInt)outlen;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if ((rc != Z_STREAM_END && rc != Z_BUF_ERROR) || z.avail_out)
		return -EIO;
	return 0;
}

static void qcow_zipped_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;
	struct td_image *img = s->qr->img;
	struct qcow_priv *p = img->priv;
	uint64_t coff = s->entry & p->g.offset_mask;
	uint64_t csize = (s->entry >> (63 - p->h.cluster_bits)) &
			 (p->g.cluster_size - 1);
	uint8_t *cluster;
	int err = 0;

	if (res >= 0 && (uint64_t)res < s->skip + csize)
		res = -EIO;
	if (res < 0) {
		err = (int)res;
		td_err("%s: read of the compressed cluster at %llu: %s",
		       img->name, (unsigned long long)coff, strerror(-err));
		s->done(s, err);
		return;
	}
	cluster = td_buf_get(p->g.cluster_size);
	if (!cluster) {
		s->done(s, -ENOMEM);
		return;
	}
	err = qcow_inflate(s->buf + s->skip, csize, cluster,
			   p->g.cluster_size);
	if (err)
		td_err("%s: the compressed cluster at %llu (%llu bytes) does not inflate to %u bytes",
		       img->name, (unsigned long long)coff,
		       (unsigned long long)csize, p->g.cluster_size);
	else
		iov_from_buf(s->iov, s->iovcnt, cluster + s->in);
	td_buf_put(cluster, p->g.cluster_size);
	s->done(s, err);
}

/* Inflate the compressed cluster entry; its bytes from in go to s->iov. */
static int qcow_issue_zipped(struct qcow_sub *s, uint64_t entry, uint32_t in)
{
	struct td_image *img = s->qr->img;
	struct qcow_priv *p = img->priv;
	uint64_t coff = entry & p->g.offset_mask;
	uint64_t csize = (entry >> (63 - p->h.cluster_bits)) &
			 (p->g.cluster_size - 1);
	uint64_t lo = align_down(coff, p->align);
	uint64_t hi = align_up(coff + csize, p->align);
	int rc;

	rc = qcow_bounce(s, hi - lo);
	if (rc)
		return rc;
	s->entry = entry;
	s->in = in;
	s->skip = coff - lo;
	s->biov.iov_base = s->buf;
	s->biov.iov_len = hi - lo;
	s->cb.op = TD_IO_READ;
	s->cb.offset = lo;
	s->cb.iov = &s->biov;
	s->cb.iovcnt = 1;
	s->cb.done = qcow_zipped_done;
	s->qr->pending++;
	td_io_queue(img->io, &s->cb);
	return 0;
}

static void qcow_parent_done(struct td_request *preq, int err)
{
	struct qcow_sub *s = preq->io_data;

	if (!err && s->buf)
		iov_from_buf(s->iov, s->iovcnt, s->buf + s->skip);
	s->done(s, err);
}

/*
 * Read [voff, voff + len) of what is under this layer into s->iov: the
 * backing image up to its end (and ours), zeroes after it.
 */
static void qcow_issue_parent_read(struct qcow_sub *s, uint64_t voff,
				   uint64_t len)
{
	struct td_image *img = s->qr->img;
	struct qcow_priv *p = img->priv;
	struct td_image *parent = img->parent;
	uint64_t limit = p->g.size, lo, hi;
	unsigned a;

	s->voff = voff;
	s->len = len;
	if (parent)
		limit = min_u64(limit, parent->info.size);
	if (voff + len > limit) {
		/* past the backing image's end the disk reads as zeroes */
		uint64_t keep = voff < limit ? limit - voff : 0, at = 0;
		int i;

		for (i = 0; i < s->iovcnt; i++) {
			struct iovec *v = &s->iov[i];
			uint64_t l = v->iov_len;

			if (at + l > keep) {
				uint64_t b = keep > at ? keep - at : 0;

				memset((char *)v->iov_base + b, 0, l - b);
				v->iov_len = b;
			}
			at += l;
		}
		len = keep;
	}
	s->qr->pending++;
	s->preq.op = TD_OP_READ;
	s->preq.io_done = qcow_parent_done;
	s->preq.io_data = s;
	if (!len) {
		/* nothing to read: complete through the loop all the same */
		s->preq.offset = voff;
		s->preq.len = 0;
		s->preq.iovcnt = 0;
		td_request_complete(img, &s->preq, 0);
		return;
	}
	a = parent ? parent->info.align : 1;
	lo = align_down(voff, a);
	hi = align_up(voff + len, a);
	if (lo == voff && hi == voff + len && iov_aligned(s->iov, s->iovcnt, a)) {
		s->preq.offset = voff;
		s->preq.len = len;
		s->preq.iov = s->iov;
		s->preq.iovcnt = s->iovcnt;
	} else {
		/* the backing image needs coarser alignment than ours */
		if (qcow_bounce(s, hi - lo)) {
			td_request_complete(img, &s->preq, -ENOMEM);
			return;
		}
		s->skip = voff - lo;
		s->biov.iov_base = s->buf;
		s->biov.iov_len = hi - lo;
		s->preq.offset = lo;
		s->preq.len = hi - lo;
		s->preq.iov = &s->biov;
		s->preq.iovcnt = 1;
	}
	td_image_forward(img, &s->preq);
}

static int qcow_read_step(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct qcow_sub *s;
	struct qcow_map m;
	int rc;

	rc = qcow_map(img, qr->pos, qr, &m);
	if (rc)
		return rc;
	qcow_extend(img, &m, qr->pos, qr->end, false);
	if (m.kind == QCOW_DATA) {
		rc = qcow_issue_data_read(qr, m.off, m.len);
	} else {
		s = qcow_sub_new(qr, qcow_sub_req_done);
		if (!s)
			return -ENOMEM;
		rc = qcow_slice(s, qr->pos, m.len);
		if (!rc && m.kind == QCOW_ZIPPED)
			rc = qcow_issue_zipped(
				s, m.entry,
				(uint32_t)(qr->pos &
					   (((struct qcow_priv *)img->priv)
						    ->g.cluster_size -
					    1)));
		else if (!rc)
			qcow_issue_parent_read(s, qr->pos, m.len);
		if (rc)
			qcow_sub_free(s);
	}
	if (rc)
		return rc;
	qr->pos += m.len;
	return 0;
}

static void qcow_queue_read(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, qcow_read_step);

	if (qr)
		qcow_walk(qr);
}

/* ---- writing ---- */

static void qcow_data_write_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;
	int err = 0;

	if (res >= 0 && (uint64_t)res != s->len)
		res = -EIO;
	if (res < 0) {
		err = (int)res;
		td_err("%s: write of %llu bytes at %llu: %s", s->qr->img->name,
		       (unsigned long long)s->len,
		       (unsigned long long)cb->offset, strerror(-err));
	}
	s->done(s, err);
}

/* The request's bytes from qr->pos, len of them, to file offset off. */
static int qcow_issue_data_write(struct qcow_req *qr, uint64_t off,
				 uint64_t len)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_sub *s = qcow_sub_new(qr, qcow_sub_req_done);
	int rc;

	if (!s)
		return -ENOMEM;
	s->voff = qr->pos;
	s->len = len;
	rc = qcow_slice(s, qr->pos, len);
	if (!rc && p->enc) {
		rc = qcow_bounce(s, len);
		if (!rc) {
			iov_to_buf(s->buf, s->iov, s->iovcnt);
			rc = qcow_crypt(img, s->voff, s->buf, len, true);
		}
	}
	if (rc) {
		qcow_sub_free(s);
		return rc;
	}
	s->cb.op = TD_IO_WRITE;
	s->cb.offset = off;
	if (qr->req->flags & TD_REQ_FUA)
		s->cb.flags = TD_IO_DSYNC;
	if (s->buf) {
		s->biov.iov_base = s->buf;
		s->biov.iov_len = len;
		s->cb.iov = &s->biov;
		s->cb.iovcnt = 1;
	} else {
		s->cb.iov = s->iov;
		s->cb.iovcnt = s->iovcnt;
	}
	s->cb.done = qcow_data_write_done;
	qr->pending++;
	td_io_queue(img->io, &s->cb);
	return 0;
}

/* Copy the request's data for [from, from + len) into dst. */
static void qcow_req_copy_in(struct qcow_req *qr, uint8_t *dst, uint64_t from,
			     uint64_t len)
{
	const struct td_request *req = qr->req;
	uint64_t rel = from - req->offset, l, c;
	int i;

	if (qr->zero) {
		memset(dst, 0, len);
		return;
	}
	for (i = 0; i < req->iovcnt && len; i++) {
		l = req->iov[i].iov_len;
		if (rel >= l) {
			rel -= l;
			continue;
		}
		c = min_u64(l - rel, len);
		memcpy(dst, (const uint8_t *)req->iov[i].iov_base + rel, c);
		dst += c;
		len -= c;
		rel = 0;
	}
}

/* Room for n bytes at the end of the file. */
static uint64_t qcow_reserve(struct qcow_priv *p, uint64_t n)
{
	uint64_t off = p->eof;

	p->eof += align_up(n, p->g.cluster_size);
	if (p->eof > p->file_end)
		p->file_end = p->eof;
	return off;
}

static void qcow_alloc_end(struct qcow_req *qr, int err)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;

	if (a->buf)
		td_buf_put(a->buf, a->buflen);
	if (a->meta)
		td_buf_put(a->meta, a->metalen);
	if (a->fresh) {
		if (err) {
			/* its space stays unused: qcow v1 cannot free it */
			qcow_l2_free(p, a->l2);
		} else {
			p->l1[a->l1_index] = a->l2->off;
			qcow_l2_insert(p, a->l2);
		}
	} else if (a->l2) {
		qcow_l2_unpin(qr->img, a->l2);
	}
	if (err)
		qcow_fail(qr, err);
	else
		qr->pos = min_u64(qr->end,
				  a->vstart + (uint64_t)a->n * p->g.cluster_size);
	memset(a, 0, sizeof(*a));
	qr->allocating = false;
	qcow_walk(qr);
}

static void qcow_alloc_io_done(struct td_iocb *cb, long res);

static void qcow_alloc_io(struct qcow_req *qr, enum td_io_op op, uint64_t off,
			  void *buf, uint64_t len, bool fua)
{
	struct qcow_alloc *a = &qr->a;

	a->cb.op = op;
	a->cb.data = qr;
	a->cb.done = qcow_alloc_io_done;
	a->cb.fd = ((struct qcow_priv *)qr->img->priv)->fd;
	a->cb.flags = fua && (qr->req->flags & TD_REQ_FUA) ? TD_IO_DSYNC : 0;
	a->cb.offset = off;
	a->iov.iov_base = buf;
	a->iov.iov_len = len;
	a->cb.iov = &a->iov;
	a->cb.iovcnt = op == TD_IO_FSYNC ? 0 : 1;
	td_io_queue(qr->img->io, &a->cb);
}

/* The new entries into dst, which holds the table from byte lo on. */
static void qcow_alloc_set_entries(struct qcow_priv *p, struct qcow_alloc *a,
				   uint8_t *dst, uint64_t lo)
{
	unsigned i;

	for (i = 0; i < a->n; i++)
		qcow_put_be64(dst + (uint64_t)(a->l2_index + i) * 8 - lo,
			      a->off + (uint64_t)i * p->g.cluster_size);
}

static void qcow_alloc_write_l2(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t hi;

	a->stage = QCOW_A_L2;
	if (a->fresh) {
		/* nobody else sees this table yet: fill it in place */
		qcow_alloc_set_entries(p, a, (uint8_t *)a->l2->table, 0);
		qcow_alloc_io(qr, TD_IO_WRITE, a->l2->off, a->l2->table,
			      p->g.l2_bytes, false);
		return;
	}
	/*
	 * Readers follow the cached table: it changes only once the new
	 * entries are on disk, so until then they read what was there.
	 */
	a->meta_lo = align_down((uint64_t)a->l2_index * 8, p->align);
	hi = align_up((uint64_t)(a->l2_index + a->n) * 8, p->align);
	a->metalen = align_up(hi - a->meta_lo, TD_BUF_ALIGN);
	a->meta = td_buf_get(a->metalen);
	if (!a->meta) {
		qcow_alloc_end(qr, -ENOMEM);
		return;
	}
	memcpy(a->meta, (uint8_t *)a->l2->table + a->meta_lo, hi - a->meta_lo);
	qcow_alloc_set_entries(p, a, a->meta, a->meta_lo);
	qcow_alloc_io(qr, TD_IO_WRITE, a->l2->off + a->meta_lo, a->meta,
		      hi - a->meta_lo, true);
}

static void qcow_alloc_write_l1(struct qcow_req *qr)
{
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t pos = p->h.l1_offset + a->l1_index * 8;
	uint64_t lo = align_down(pos, p->align);
	uint64_t hi = align_up(pos + 8, p->align);

	a->stage = QCOW_A_L1;
	qcow_put_be64(p->l1_raw + (pos - p->l1_raw_off), a->l2->off);
	qcow_alloc_io(qr, TD_IO_WRITE, lo, p->l1_raw + (lo - p->l1_raw_off),
		      hi - lo, true);
}

static void qcow_alloc_io_done(struct td_iocb *cb, long res)
{
	struct qcow_req *qr = cb->data;
	struct qcow_priv *p = qr->img->priv;
	struct qcow_alloc *a = &qr->a;
	static const char *const what[] = {
		[QCOW_A_FILL] = "copy-on-write read",
		[QCOW_A_DATA] = "write of new clusters",
		[QCOW_A_SYNC] = "fdatasync before an L2 update",
		[QCOW_A_L2] = "L2 table update",
		[QCOW_A_L2_SYNC] = "fdatasync of a new L2 table",
		[QCOW_A_L1] = "L1 table update",
	};

	if (res >= 0 && cb->op == TD_IO_WRITE && (uint64_t)res != a->iov.iov_len)
		res = -EIO;
	if (res < 0) {
		td_err("%s: %s at %llu: %s", p->file, what[a->stage],
		       (unsigned long long)cb->offset, strerror((int)-res));
		if (a->stage == QCOW_A_L1)
			qcow_put_be64(p->l1_raw + (p->h.l1_offset +
						   a->l1_index * 8 -
						   p->l1_raw_off),
				      0);
		qcow_alloc_end(qr, (int)res);
		return;
	}
	switch (a->stage) {
	case QCOW_A_FILL:
		break;
	case QCOW_A_DATA:
		/* the data is durable before anything points at it */
		a->stage = QCOW_A_SYNC;
		qcow_alloc_io(qr, TD_IO_FSYNC, 0, NULL, 0, false);
		return;
	case QCOW_A_SYNC:
		qcow_alloc_write_l2(qr);
		return;
	case QCOW_A_L2:
		if (a->fresh) {
			a->stage = QCOW_A_L2_SYNC;
			qcow_alloc_io(qr, TD_IO_FSYNC, 0, NULL, 0, false);
			return;
		}
		memcpy((uint8_t *)a->l2->table + a->l2_index * 8,
		       a->meta + (a->l2_index * 8 - a->meta_lo),
		       (uint64_t)a->n * 8);
		break;
	case QCOW_A_L2_SYNC:
		qcow_alloc_write_l1(qr);
		return;
	case QCOW_A_L1:
		break;
	}
	qcow_alloc_end(qr, 0);
}

/* Everything the write does not cover is in the buffer: write it all. */
static void qcow_alloc_filled(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t from = qr->pos > a->vstart ? qr->pos : a->vstart;
	uint64_t to = min_u64(qr->end, a->vstart + a->buflen);
	int err;

	if (a->err) {
		qcow_alloc_end(qr, a->err);
		return;
	}
	qcow_req_copy_in(qr, a->buf + (from - a->vstart), from, to - from);
	if (p->enc) {
		err = qcow_crypt(img, a->vstart, a->buf, a->buflen, true);
		if (err) {
			qcow_alloc_end(qr, err);
			return;
		}
	}
	a->stage = QCOW_A_DATA;
	qcow_alloc_io(qr, TD_IO_WRITE, a->off, a->buf, a->buflen, false);
}

static void qcow_fill_put(struct qcow_req *qr)
{
	if (!--qr->a.fills)
		qcow_alloc_filled(qr);
}

static void qcow_fill_done(struct qcow_sub *s, int err)
{
	struct qcow_req *qr = s->qr;

	if (err && !qr->a.err)
		qr->a.err = err;
	qcow_sub_free(s);
	qr->pending--;
	qcow_fill_put(qr);
}

/* Cluster k of the allocation as it reads now: the base the write goes on. */
static int qcow_fill(struct qcow_req *qr, unsigned k)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_alloc *a = &qr->a;
	uint8_t *dst = a->buf + (uint64_t)k * p->g.cluster_size;
	struct qcow_sub *s;
	int rc = 0;

	if (!(k == 0 && (a->entry0 & QCOW_COMPRESSED)) && !img->parent) {
		memset(dst, 0, p->g.cluster_size);
		return 0;
	}
	s = qcow_sub_new(qr, qcow_fill_done);
	if (!s)
		return -ENOMEM;
	s->one.iov_base = dst;
	s->one.iov_len = p->g.cluster_size;
	s->iov = &s->one;
	s->iovcnt = 1;
	a->fills++;
	if (k == 0 && (a->entry0 & QCOW_COMPRESSED))
		rc = qcow_issue_zipped(s, a->entry0, 0);
	else
		qcow_issue_parent_read(s, a->vstart + (uint64_t)k *
						      p->g.cluster_size,
				       p->g.cluster_size);
	if (rc) {
		a->fills--;
		qcow_sub_free(s);
	}
	return rc;
}

/*
 * Allocate the clusters from qr->pos on that need it (m maps qr->pos),
 * within one L2 table and at most QCOW_ALLOC_MAX bytes; the caller holds
 * the allocation lock.
 */
static int qcow_alloc_start(struct qcow_req *qr, const struct qcow_map *m)
{
	struct td_image *img = qr->img;
	struct qcow_priv *p = img->priv;
	struct qcow_alloc *a = &qr->a;
	uint64_t cs = p->g.cluster_size, max = QCOW_ALLOC_MAX / cs;
	unsigned shift = p->h.cluster_bits + p->h.l2_bits;
	bool head, tail;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	a->l1_index = qr->pos >> shift;
	a->l2_index = (uint32_t)((qr->pos >> p->h.cluster_bits) &
				 (p->g.l2_entries - 1));
	a->vstart = align_down(qr->pos, cs);
	a->entry0 = m->entry;
	if (m->l2) {
		a->l2 = m->l2;
		a->l2->pins++;
	} else {
		a->l2 = qcow_l2_alloc(img);
		if (!a->l2)
			return -ENOMEM;
		memset(a->l2->table, 0, p->g.l2_bytes);
		a->fresh = true;
	}
	a->n = 1;
	if (m->kind == QCOW_UNALLOC) {
		while (a->n < max && a->l2_index + a->n < p->g.l2_entries &&
		       a->vstart + a->n * cs < qr->end &&
		       !a->l2->table[a->l2_index + a->n])
			a->n++;
	}
	a->buflen = a->n * cs;
	a->buf = td_buf_get(a->buflen);
	if (!a->buf) {
		qcow_alloc_end(qr, -ENOMEM);
		return 0;
	}
	if (a->fresh)
		a->l2->off = qcow_reserve(p, p->g.l2_bytes);
	a->off = qcow_reserve(p, a->buflen);
	qr->allocating = true;
	a->stage = QCOW_A_FILL;
	a->fills = 1; /* held until every fill is issued */
	head = qr->pos > a->vstart;
	tail = qr->end < a->vstart + a->buflen;
	if (head || (a->n == 1 && tail))
		rc = qcow_fill(qr, 0);
	if (!rc && tail && a->n > 1)
		rc = qcow_fill(qr, a->n - 1);
	if (rc && !a->err)
		a->err = rc;
	qcow_fill_put(qr);
	return 0;
}

/* write_zeroes over a hole with nothing under it has nothing to do */
static bool qcow_zero_skips(const struct qcow_req *qr)
{
	return qr->zero && !qr->img->parent &&
	       !(qr->req->flags & TD_REQ_NO_HOLE);
}

static int qcow_write_step(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct qcow_map m;
	int rc;

	rc = qcow_map(img, qr->pos, qr, &m);
	if (rc)
		return rc;
	if (m.kind == QCOW_DATA) {
		qcow_extend(img, &m, qr->pos, qr->end, false);
		rc = qcow_issue_data_write(qr, m.off, m.len);
		if (!rc)
			qr->pos += m.len;
		return rc;
	}
	if (m.kind == QCOW_UNALLOC && qcow_zero_skips(qr)) {
		qcow_extend(img, &m, qr->pos, qr->end, false);
		qr->pos += m.len;
		return 0;
	}
	if (!qcow_alloc_lock(qr))
		return -EAGAIN;
	return qcow_alloc_start(qr, &m);
}

static void qcow_queue_write(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, qcow_write_step);

	if (qr)
		qcow_walk(qr);
}

static void qcow_write_zeroes(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr;

	/* zeroes are written like data, except over holes at the chain's end */
	if (req->flags & TD_REQ_FAST_ZERO) {
		td_request_complete(img, req, -ENOTSUP);
		return;
	}
	qr = qcow_req_new(img, req, qcow_write_step);
	if (qr) {
		qr->zero = true;
		qcow_walk(qr);
	}
}

static void qcow_sync_done(struct td_iocb *cb, long res)
{
	struct qcow_sub *s = cb->data;

	if (res < 0)
		td_err("%s: flush: %s", s->qr->img->name, strerror((int)-res));
	s->done(s, res < 0 ? (int)res : 0);
}

static void qcow_flush(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, NULL);
	struct qcow_sub *s;

	if (!qr)
		return;
	qr->pos = qr->end;
	s = qcow_sub_new(qr, qcow_sub_req_done);
	if (!s) {
		qr->err = -ENOMEM;
		qcow_walk(qr);
		return;
	}
	s->cb.op = TD_IO_FSYNC;
	s->cb.done = qcow_sync_done;
	qr->pending++;
	td_io_queue(img->io, &s->cb);
}

/* ---- block status ---- */

static void qcow_bs_done(struct qcow_sub *s, int err)
{
	if (!err)
		s->qr->req->status = s->preq.status;
	qcow_sub_req_done(s, err);
}

static int qcow_bs_step(struct qcow_req *qr)
{
	struct td_image *img = qr->img;
	struct td_request *req = qr->req;
	struct qcow_sub *s;
	struct qcow_map m;
	int rc;

	rc = qcow_map(img, qr->pos, qr, &m);
	if (rc)
		return rc;
	qcow_extend(img, &m, qr->pos, qr->end, true);
	if (m.kind != QCOW_UNALLOC) {
		req->status.len = m.len;
		req->status.flags = 0;
		req->status.depth = img->depth;
		qr->pos = qr->end;
		return 0;
	}
	if (img->parent && qr->pos >= img->parent->info.size) {
		/* past the backing image's end: zeroes from nowhere */
		req->status.len = m.len;
		req->status.flags = TD_BS_HOLE | TD_BS_ZERO;
		req->status.depth = -1;
		qr->pos = qr->end;
		return 0;
	}
	if (img->parent)
		m.len = min_u64(m.len, img->parent->info.size - qr->pos);
	s = qcow_sub_new(qr, qcow_bs_done);
	if (!s)
		return -ENOMEM;
	s->preq.op = TD_OP_BLOCK_STATUS;
	s->preq.offset = qr->pos;
	s->preq.len = m.len;
	s->preq.io_done = qcow_parent_done;
	s->preq.io_data = s;
	qr->pending++;
	qr->pos = qr->end;
	td_image_forward(img, &s->preq);
	return 0;
}

static void qcow_block_status(struct td_image *img, struct td_request *req)
{
	struct qcow_req *qr = qcow_req_new(img, req, qcow_bs_step);

	if (qr)
		qcow_walk(qr);
}

/* ---- open and close ---- */

/* Header, backing name and L1 table, read through a buffered fd. */
static int qcow_load_meta(struct td_image *img, int fd, bool l1)
{
	struct qcow_priv *p = img->priv;
	uint64_t lo, hi, i;
	struct stat st;
	ssize_t n;
	int err;

	free(p->backing);
	p->backing = NULL;
	err = qcow_read_header(p->file, fd, &p->h, &p->g, &p->backing);
	if (err)
		return err;
	if (fstat(fd, &st) < 0)
		return -errno;
	p->file_end = (uint64_t)st.st_size;
	if (align_up(p->file_end, p->g.cluster_size) > p->eof)
		p->eof = align_up(p->file_end, p->g.cluster_size);
	if (p->eof > p->file_end)
		p->file_end = p->eof;
	if (!l1)
		return 0;
	/*
	 * The sectors around the L1 table, kept as the file has them: with
	 * O_DIRECT an L1 entry goes to disk as its whole sector.
	 */
	lo = align_down(p->h.l1_offset, QCOW_SECTOR);
	hi = align_up(p->h.l1_offset + p->g.l1_bytes, QCOW_SECTOR);
	if (p->l1_raw)
		td_buf_put(p->l1_raw, p->l1_raw_len);
	free(p->l1);
	p->l1_raw_len = align_up(hi - lo, TD_BUF_ALIGN);
	p->l1_raw_off = lo;
	p->l1_raw = td_buf_get(p->l1_raw_len);
	p->l1 = calloc(p->g.l1_entries, sizeof(*p->l1));
	if (!p->l1_raw || !p->l1)
		return -ENOMEM;
	memset(p->l1_raw, 0, p->l1_raw_len);
	n = pread(fd, p->l1_raw, hi - lo, (off_t)lo);
	if (n < 0 || (uint64_t)n < p->h.l1_offset + p->g.l1_bytes - lo) {
		err = n < 0 ? -errno : -EIO;
		td_err("%s: cannot read the L1 table: %s", p->file,
		       strerror(-err));
		return err;
	}
	for (i = 0; i < p->g.l1_entries; i++)
		p->l1[i] = qcow_be64(p->l1_raw + (p->h.l1_offset - lo) + i * 8);
	return 0;
}

/* O_DIRECT when every access the format makes can be sector aligned. */
static bool qcow_can_direct(struct qcow_priv *p)
{
	struct statx stx;
	uint64_t i;

	if (statx(p->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) &&
	    (stx.stx_dio_offset_align > QCOW_SECTOR ||
	     stx.stx_dio_mem_align > QCOW_SECTOR ||
	     !stx.stx_dio_offset_align))
		return false;
	for (i = 0; i < p->g.l1_entries; i++)
		if (p->l1[i] % QCOW_SECTOR)
			return false;
	return true;
}

static int qcow_open_file(struct td_image *img, const char *path, unsigned flags)
{
	struct qcow_priv *p = img->priv;
	const char *q = strstr(path, QCOW_KEY_SUFFIX), *keyfile = NULL;
	struct stat st;
	int err;

	p->fd = -1;
	p->align = 1;
	p->file = q ? strndup(path, (size_t)(q - path)) : strdup(path);
	if (!p->file)
		return -ENOMEM;
	if (q) {
		keyfile = q + strlen(QCOW_KEY_SUFFIX);
		if (!*keyfile) {
			td_err("%s: " QCOW_KEY_SUFFIX " needs a file name",
			       p->file);
			return -EINVAL;
		}
	}
	p->fd = open(p->file, O_CLOEXEC |
				      (flags & TD_OPEN_RDONLY ? O_RDONLY : O_RDWR));
	if (p->fd < 0) {
		err = -errno;
		td_err("%s: cannot open: %s", p->file, strerror(-err));
		return err;
	}
	if (fstat(p->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		td_err("%s: qcow images must be regular files", p->file);
		return -EINVAL;
	}
	err = qcow_load_meta(img, p->fd, !(flags & TD_OPEN_PROBE));
	if (err || (flags & TD_OPEN_PROBE))
		return err;
	if (p->h.crypt_method == QCOW_CRYPT_AES) {
		err = qcow_setup_crypto(img, keyfile);
		if (err)
			return err;
	} else if (keyfile) {
		td_warn("%s: not encrypted; the key file is not used", p->file);
	}
	if (!(flags & TD_OPEN_BUFFERED) && qcow_can_direct(p)) {
		if (fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_DIRECT) == 0) {
			p->direct = true;
			p->align = QCOW_SECTOR;
		} else {
			td_info("%s: the filesystem refuses O_DIRECT; going through the page cache",
				p->file);
		}
	}
	return 0;
}

static void qcow_close(struct td_image *img)
{
	struct qcow_priv *p = img->priv;

	while (p->l2s) {
		struct qcow_l2 *l2 = p->l2s;

		p->l2s = l2->next;
		qcow_l2_free(p, l2);
	}
	p->nl2 = 0;
	if (p->l1_raw)
		td_buf_put(p->l1_raw, p->l1_raw_len);
	p->l1_raw = NULL;
	free(p->l1);
	p->l1 = NULL;
	EVP_CIPHER_CTX_free(p->enc);
	EVP_CIPHER_CTX_free(p->dec);
	p->enc = p->dec = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->backing);
	p->backing = NULL;
	free(p->file);
	p->file = NULL;
}

static int qcow_open(struct td_image *img, const char *path, unsigned flags)
{
	int err = qcow_open_file(img, path, flags);

	/* the chain code does not close what failed to open */
	if (err)
		qcow_close(img);
	return err;
}

/*
 * The backing name as stored. With a ?key-file= suffix on our path the
 * chain code cannot take our folder from it, so a relative backing file
 * is made absolute here.
 */
static char *qcow_parent_name(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	struct td_name n;
	char *out = NULL, *dir;
	const char *slash;

	if (!strstr(img->path, QCOW_KEY_SUFFIX) || !strchr(p->file, '/'))
		return strdup(p->backing);
	if (td_name_parse(p->backing, &n))
		return NULL;
	if (n.path[0] == '/' || !strcmp(n.type, "ram") ||
	    !strcmp(n.type, "nbd") || !strcmp(n.type, "vd")) {
		td_name_free(&n);
		return strdup(p->backing);
	}
	slash = strrchr(p->file, '/');
	dir = strndup(p->file, slash == p->file ? 1 : (size_t)(slash - p->file));
	if (dir && asprintf(&out, "%s%s%s/%s", n.type, n.type[0] ? ":" : "",
			    dir, n.path) < 0)
		out = NULL;
	free(dir);
	td_name_free(&n);
	return out;
}

static void qcow_info(struct td_image *img, struct td_image_info *info)
{
	struct qcow_priv *p = img->priv;

	info->size = p->g.size;
	info->sector_size = QCOW_SECTOR;
	/* clusters, and encryption, work in whole sectors */
	info->align = QCOW_SECTOR;
	info->can_discard = false;
	info->can_zero = false;
	info->rotational = false;
	info->parent = p->backing ? qcow_parent_name(img) : NULL;
}

void qcow_admin_get(struct td_image *img, struct qcow_admin *a)
{
	struct qcow_priv *p = img->priv;

	a->fd = p->fd;
	a->path = p->file;
	a->h = &p->h;
	a->g = &p->g;
	a->l1 = p->l1;
	a->backing = &p->backing;
}

int qcow_admin_reload(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	int fd, err;

	/* our own fd may be O_DIRECT, which small header reads cannot use */
	fd = open(p->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = qcow_load_meta(img, fd, p->l1 != NULL);
	close(fd);
	return err;
}

const struct td_driver td_driver_qcow = {
	.name = "qcow",
	.priv_size = sizeof(struct qcow_priv),
	.open = qcow_open,
	.close = qcow_close,
	.info = qcow_info,
	.queue_read = qcow_queue_read,
	.queue_write = qcow_queue_write,
	.flush = qcow_flush,
	.write_zeroes = qcow_write_zeroes,
	.block_status = qcow_block_status,
	.create = qcow_create,
	.describe = qcow_describe,
	.check = qcow_check,
	.resize = qcow_resize,
	.set_parent = qcow_set_parent,
};

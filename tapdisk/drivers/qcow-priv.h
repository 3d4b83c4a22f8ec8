/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * QEMU qcow version 1, shared between the driver's files: qcow.c (open,
 * close, keys), qcow-io.c (requests, L2 cache, reads), qcow-write.c
 * (writes and allocation) and qcow-meta.c (the header, admin ops).
 *
 * On disk, all big-endian: a 48-byte header, the backing file name, the
 * L1 table (64-bit file offsets of L2 tables) and then clusters and L2
 * tables (1 << l2_bits 64-bit entries each) appended as they are needed.
 * An L2 entry is the file offset of a cluster, 0 when unallocated; with
 * bit 63 set the cluster is zlib (raw deflate) compressed, its byte length
 * in the bits above the offset. There are no reference counts: clusters
 * are never freed, only appended.
 */
#ifndef TD_QCOW_PRIV_H
#define TD_QCOW_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <nettle/aes.h>

#include "be.h"
#include "image.h"
#include "io.h"
#include "loop.h"
#include "request.h"

#define QCOW_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW_VERSION 1
#define QCOW_HEADER_SIZE 48
#define QCOW_CRYPT_NONE 0
#define QCOW_CRYPT_AES 1
#define QCOW_COMPRESSED (1ull << 63)
#define QCOW_CLUSTER_BITS_MIN 9
#define QCOW_CLUSTER_BITS_MAX 16
#define QCOW_L2_BITS_MIN 6 /* L2 tables of 512 bytes ... */
#define QCOW_L2_BITS_MAX 13 /* ... to 64 KiB, as qemu accepts */
/* qemu refuses longer backing names */
#define QCOW_BACKING_MAX 1023
/*
 * A bound on the L1 table we hold in memory: 32 Mi entries cover 64 TiB
 * with the smallest L2 span qemu makes (4 KiB clusters, 512 entries).
 */
#define QCOW_L1_BYTES_MAX (256u << 20)
#define QCOW_SECTOR 512

struct qcow_header {
	uint32_t magic;
	uint32_t version;
	uint64_t backing_offset;
	uint32_t backing_size;
	uint32_t mtime;
	uint64_t size;
	uint8_t cluster_bits;
	uint8_t l2_bits;
	uint32_t crypt_method;
	uint64_t l1_offset;
};

/* What a valid header says, derived once. */
struct qcow_geom {
	uint64_t size; /* the disk, whole sectors */
	uint32_t cluster_size;
	uint32_t l2_entries;
	uint32_t l2_bytes;
	uint64_t l1_entries;
	uint64_t l1_bytes;
	uint64_t offset_mask; /* the offset bits of an L2 entry */
};

void qcow_header_decode(const uint8_t *b, struct qcow_header *h);
void qcow_header_encode(const struct qcow_header *h, uint8_t *b);

/*
 * Validate a header against the file's size; on success fill *g. Every
 * refusal is logged naming the file and the field. 0 or -errno.
 */
int qcow_header_check(const char *path, const struct qcow_header *h,
		      uint64_t file_size, struct qcow_geom *g);

/*
 * Read and check the header and the backing name of an open file.
 * *backing is malloc'd, NULL when there is none.
 */
int qcow_read_header(const char *path, int fd, struct qcow_header *h,
		     struct qcow_geom *g, char **backing);

/* The administrative ops (qcow-meta.c). */
int qcow_create(const char *path, const struct td_create_opts *opts);
void qcow_describe(struct td_image *img, struct json_object *out);
int qcow_set_parent(struct td_image *img, const char *name, const char *fmt);
int qcow_resize(struct td_image *img, uint64_t size);
int qcow_check(struct td_image *img, struct td_check *res, unsigned fix);

/* What the administrative ops need of an open image (qcow.c). */
struct qcow_admin {
	int fd;
	const char *path; /* the file, without ?key-file= */
	struct qcow_header *h;
	struct qcow_geom *g;
	uint64_t *l1; /* host order, g->l1_entries */
	char **backing;
};
void qcow_admin_get(struct td_image *img, struct qcow_admin *a);
/* After the header or L1 changed on disk: reload what the data path keeps. */
int qcow_admin_reload(struct td_image *img);

/* ---- the data path (qcow.c, qcow-io.c, qcow-write.c) ---- */

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
	struct aes128_ctx *enc, *dec; /* NULL unless encrypted */
	struct qcow_req *alloc_owner;
	struct qcow_req *alloc_head, *alloc_tail;
	struct td_defer alloc_defer;
};

static inline uint64_t qcow_align_down(uint64_t v, uint64_t a)
{
	return v - v % a;
}

static inline uint64_t qcow_align_up(uint64_t v, uint64_t a)
{
	return qcow_align_down(v + a - 1, a);
}

static inline uint64_t qcow_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* qcow.c */
/* AES-CBC over whole sectors of disk offset voff, in place */
int qcow_crypt(struct td_image *img, uint64_t voff, uint8_t *buf, uint64_t len,
	       bool enc);

/* qcow-io.c: requests, their parts, the L2 cache, reads */
int qcow_slice(struct qcow_sub *s, uint64_t from, uint64_t len);
void qcow_iov_from_buf(const struct iovec *iov, int cnt, const uint8_t *src);
void qcow_iov_to_buf(uint8_t *dst, const struct iovec *iov, int cnt);
int qcow_bounce(struct qcow_sub *s, size_t len);
struct qcow_req *qcow_req_new(struct td_image *img, struct td_request *req,
			      int (*step)(struct qcow_req *));
struct qcow_sub *qcow_sub_new(struct qcow_req *qr,
			      void (*done)(struct qcow_sub *, int));
void qcow_sub_free(struct qcow_sub *s);
/* Send s's bytes (its bounce buffer, else its slice of the request) to
 * the file at off; done() runs when the engine is through. */
void qcow_sub_queue(struct qcow_sub *s, enum td_io_op op, uint64_t off,
		    unsigned flags, void (*done)(struct td_iocb *cb, long res));
void qcow_fail(struct qcow_req *qr, int err);
void qcow_sub_req_done(struct qcow_sub *s, int err);
bool qcow_alloc_lock(struct qcow_req *qr);
/* run a request on as far as it can go; completes it at the end */
void qcow_walk(struct qcow_req *qr);
struct qcow_l2 *qcow_l2_alloc(struct td_image *img);
void qcow_l2_free(struct qcow_priv *p, struct qcow_l2 *l2);
void qcow_l2_insert(struct qcow_priv *p, struct qcow_l2 *l2);
void qcow_l2_unpin(struct td_image *img, struct qcow_l2 *l2);
int qcow_map(struct td_image *img, uint64_t pos, struct qcow_req *qr,
	     struct qcow_map *m);
void qcow_extend(struct td_image *img, struct qcow_map *m, uint64_t pos,
		 uint64_t end, bool any_alloc);
int qcow_issue_zipped(struct qcow_sub *s, uint64_t entry, uint32_t in);
void qcow_issue_parent_read(struct qcow_sub *s, uint64_t voff, uint64_t len);
void qcow_queue_read(struct td_image *img, struct td_request *req);
void qcow_flush(struct td_image *img, struct td_request *req);
void qcow_block_status(struct td_image *img, struct td_request *req);

/* qcow-write.c */
void qcow_queue_write(struct td_image *img, struct td_request *req);
void qcow_write_zeroes(struct td_image *img, struct td_request *req);

#endif

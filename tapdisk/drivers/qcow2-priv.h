/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The qcow2 driver's private state, shared by its source files.
 *
 * Write ordering (crash safety): data clusters are written before the L2
 * entry that points to them is changed in the cache; dirty metadata only
 * reaches the file through qcow2_meta_flush(), which writes refcount
 * blocks, then the refcount table, then L2 tables, then the L1 table, with
 * an fdatasync between the stages. Refcount decrements are held back until
 * the L2 tables that dropped the references are durable, and clusters are
 * only ever allocated from the end of the file, so a freed cluster is never
 * reused while an old reference to it may still be on disk. For the same
 * reason a newly allocated cluster was never written and reads as zeroes,
 * so an allocating write need not write zeroes around its data; alloc_next
 * is kept past everything the file ever held to make that true.
 *
 * Concurrency: allocating writes hold the metadata lock to take a cluster
 * and to change its L2 entry, but not while their data goes out; requests
 * for a guest cluster whose allocation is in flight wait for it.
 */
#ifndef TD_QCOW2_PRIV_H
#define TD_QCOW2_PRIV_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "io.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_RT_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW (1ull << 1)

#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_RESERVED 0x3f000000000001feull

#define QCOW2_SUBCLUSTERS 32
#define QCOW2_COMP_ZLIB 0
#define QCOW2_COMP_ZSTD 1

/* The header, in host byte order. */
struct qcow2_header {
	uint32_t version;
	uint64_t backing_offset;
	uint32_t backing_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompat;
	uint64_t compat;
	uint64_t autoclear;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
	/* where header extensions end, for rewriting the first cluster */
	uint32_t ext_end;
	bool has_bitmaps;
	char backing[1024];
	char backing_fmt[64];
	char data_file[1024];
};

/* A cached metadata cluster (L2 table or refcount block). */
struct qcow2_waiter {
	struct qcow2_waiter *next;
	void (*fn)(struct qcow2_waiter *w, int err);
};

struct qcow2_centry {
	uint64_t offset; /* host offset of the cluster */
	void *buf; /* cluster_size bytes, aligned, big-endian as on disk */
	bool loading;
	bool dirty;
	bool writing;
	struct qcow2_centry *hnext; /* hash chain */
	struct qcow2_centry *lru_prev, *lru_next; /* most recent at head */
	struct qcow2_waiter *waiters;
	struct td_iocb cb;
	struct iovec cb_iov;
	struct cache_wb *wb;
	struct qcow2_cache *cache;
};

struct qcow2_cache {
	struct td_image *img;
	const char *what; /* "L2 table", "refcount block" */
	size_t max_entries;
	size_t n_entries;
	size_t n_dirty;
	size_t hash_size;
	struct qcow2_centry **hash;
	struct qcow2_centry lru; /* list head */
};

/* A refcount decrement waiting for the L2 change that dropped it. */
struct qcow2_free {
	uint64_t offset;
	uint64_t clusters;
};

/*
 * One request in flight through the driver. It walks its range cluster by
 * cluster; a cache miss or a busy metadata lock parks it and `step` resumes
 * it. I/O it starts is counted in `pending`; when nothing is pending and
 * the walk has stopped, `io_done` decides what happens next.
 */
struct qcow2_op {
	struct td_image *img;
	struct td_request *req;
	struct qcow2_waiter w;
	void (*step)(struct qcow2_op *op);
	void (*io_done)(struct qcow2_op *op);
	struct qcow2_op *lnext;
	uint64_t pos, end;
	unsigned pending;
	int err;
	bool walking;
	bool locked;
	struct td_defer defer;
	/* reads: the run being merged */
	int run;
	uint64_t run_off, run_len, run_host;
	struct td_iocb cb;
	struct iovec iov1;
	struct td_request sub; /* block status below this layer */
	/* writes: the cluster being allocated */
	uint64_t l2_off; /* L2 table of pos */
	uint64_t old_entry, old_bitmap;
	uint64_t new_host;
	/*
	 * clusters from pos on that this allocation takes: more than one
	 * only for whole fresh clusters, written in one I/O
	 */
	uint64_t nclust;
	bool fresh; /* new_host was just taken: it reads as zeroes */
	bool span; /* compressed: may spill into the next cluster */
	bool in_flight; /* in qcow2_priv.inflight */
	struct qcow2_op *inext; /* qcow2_priv.inflight */
	struct qcow2_op *blocked, *bnext; /* waiting for this allocation */
	void *buf;
	size_t buf_len;
	bool zero_src; /* write zeroes: data from p->zbuf, not req */
	bool discard;
	uint64_t w0, w1; /* bytes of the cluster the allocation writes */
	/* allocation in progress */
	uint64_t alloc_off;
	/* flush */
	int stage;
	size_t free_i;
	struct qcow2_op *flush_next; /* flush requests joined to this one */
};

/* A piece of a request's I/O: file data, compressed data, or the parent. */
struct qcow2_seg {
	struct qcow2_op *op;
	struct td_iocb cb;
	struct td_request sub;
	struct iovec *iov;
	int iovcnt;
	struct iovec small[4];
	struct iovec biov;
	void *bounce;
	size_t blen;
	uint64_t skip; /* where the wanted bytes start in the bounce */
	uint64_t want; /* how many */
	size_t csize; /* compressed bytes at bounce + skip */
	struct iovec *dst; /* where a bounce's bytes go */
	int dstcnt;
};

struct qcow2_priv {
	struct qcow2_header h;
	int fd;
	int data_fd; /* == fd without an external data file */
	bool data_raw;
	bool readonly;
	bool direct;
	bool lazy; /* lazy refcounts in use: the dirty bit is set */
	unsigned align;
	uint64_t file_size; /* as of open, for validation */
	uint64_t file_end; /* the file's size as of open or as grown here */

	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint32_t l2_bits; /* log2 of entries per L2 table */
	uint32_t l2_entry_words; /* 1, or 2 with extended L2 entries */
	bool ext_l2;
	uint32_t sc_bits; /* log2 of the allocation unit (subcluster) */
	uint32_t rc_bits; /* refcount width */
	uint32_t rb_bits; /* log2 of entries per refcount block */
	uint64_t rc_max;

	uint64_t *l1; /* host order */
	uint32_t l1_size;
	uint32_t l1_dirty_lo, l1_dirty_hi; /* [lo, hi) to write */
	uint64_t *rt; /* host order, rt_entries */
	uint64_t rt_entries;
	bool rt_dirty;
	uint64_t rt_disk_offset; /* where the table lives on disk */
	uint32_t rt_disk_clusters;
	bool header_dirty; /* rt/l1 location changed */

	struct qcow2_cache l2c, rbc;
	uint64_t alloc_next; /* next host offset to try allocating */
	struct qcow2_op *inflight; /* allocations writing their data */

	struct qcow2_free *frees; /* pending decrements */
	size_t nfrees, frees_cap;
	struct qcow2_free *incq; /* clusters waiting for their +1 */
	size_t nincq, incq_cap;
	bool wb_running;

	/* the metadata lock: allocations and flushes, one at a time */
	bool locked;
	struct qcow2_op *lockq_head, *lockq_tail;
	bool wb_wanted; /* background writeback when the cache is full */

	struct qcow2_op *free_ops;
	void *zbuf; /* one aligned cluster of zeroes */

	/*
	 * Compressed writes pack their data back to back: comp_next is the
	 * next free byte (0: no host cluster is being filled), cbuf a copy
	 * of that host cluster and the next, at cbuf_host, so that sectors
	 * shared with the previous compressed cluster are rewritten whole.
	 */
	void *cbuf;
	uint64_t cbuf_host;
	uint64_t comp_next;
	uint64_t comp_refs; /* compressed clusters in comp_next's cluster */
};

/* qcow2-header.c */
/* synchronous metadata I/O at any alignment, for open and admin ops */
int qcow2_pio(int fd, bool write, void *buf, size_t len, uint64_t off);
int qcow2_header_read(const char *path, int fd, uint64_t file_size,
		      struct qcow2_header *h);
int qcow2_header_write(const char *path, int fd, const struct qcow2_header *h);
int qcow2_header_set_incompat(struct td_image *img, uint64_t set,
			      uint64_t clear);
int qcow2_load_tables(struct td_image *img);
/* n big-endian entries at off, into a new host-order table of whole clusters */
int qcow2_load_table(struct td_image *img, const char *what, uint64_t off,
		     uint64_t n, uint64_t **out);
const char *qcow2_fmt_to_type(const char *fmt);

/* qcow2-cache.c */
int qcow2_cache_init(struct qcow2_cache *c, struct td_image *img,
		     const char *what, size_t bytes);
void qcow2_cache_destroy(struct qcow2_cache *c);
/* 0 with *out (valid, unpinned), or 1: w->fn is called when loaded */
int qcow2_cache_get(struct qcow2_cache *c, uint64_t offset,
		    struct qcow2_waiter *w, struct qcow2_centry **out);
/* a freshly allocated cluster: zeroed, dirty, no read */
struct qcow2_centry *qcow2_cache_new(struct qcow2_cache *c, uint64_t offset);
/* the entry if cached and loaded, else NULL; no I/O */
struct qcow2_centry *qcow2_cache_peek(struct qcow2_cache *c, uint64_t offset);
void qcow2_cache_dirty(struct qcow2_centry *e);
/* write every dirty entry; fn is called once all are on disk */
void qcow2_cache_writeback(struct qcow2_cache *c, struct qcow2_waiter *w);
int qcow2_cache_writeback_sync(struct qcow2_cache *c);
/* for the synchronous admin paths: load with pread if missing */
int qcow2_cache_get_sync(struct qcow2_cache *c, uint64_t offset,
			 struct qcow2_centry **out);
void qcow2_cache_drop_all(struct qcow2_cache *c);

/* qcow2-refcount.c */
uint64_t qcow2_rb_get(const struct qcow2_priv *p, const void *rb, uint64_t i);
void qcow2_rb_set(const struct qcow2_priv *p, void *rb, uint64_t i,
		  uint64_t v);
int qcow2_add_free(struct td_image *img, uint64_t offset, uint64_t clusters);
/* free the clusters an L2 entry holds (after the entry is gone from disk) */
int qcow2_free_entry(struct td_image *img, uint64_t entry);
/*
 * n new contiguous clusters with refcount 1 at *out. 1: the op waits and
 * `step` runs again later, and must call this again; 0 done; < 0 error.
 */
int qcow2_alloc_clusters(struct qcow2_op *op, uint64_t n, uint64_t *out,
			 void (*step)(struct qcow2_op *op));
/* +1 on n clusters at offset, queued; qcow2_ref_drain() applies it */
int qcow2_ref_queue(struct td_image *img, uint64_t offset, uint64_t n);
/* apply the queued increments: 1 when op waits (step runs again), 0, < 0 */
int qcow2_ref_drain(struct qcow2_op *op, void (*step)(struct qcow2_op *op));
/* run a flush of metadata for op (under the lock); op->io_done at end */
void qcow2_meta_flush(struct qcow2_op *op);

/* qcow2-io.c: request plumbing */
struct qcow2_op *qcow2_op_new(struct td_image *img, struct td_request *req);
void qcow2_op_end(struct qcow2_op *op, int err);
/* the waiter every op uses: resumes op->step, or ends it on error */
void qcow2_op_waiter(struct qcow2_waiter *w, int err);
void qcow2_op_wait(struct qcow2_op *op, void (*step)(struct qcow2_op *op));
void qcow2_op_defer(struct qcow2_op *op, void (*step)(struct qcow2_op *op));
void qcow2_seg_finish(struct qcow2_op *op, int err);
void qcow2_lock(struct qcow2_op *op, void (*step)(struct qcow2_op *op));
void qcow2_unlock(struct qcow2_op *op);
/*
 * Write the bytes [off, off + n) of op's write (the request's data, or
 * zeroes) to host in the data file; done runs when they are written.
 */
void qcow2_write_data(struct qcow2_op *op, uint64_t off, uint64_t n,
		      uint64_t host, void (*done)(struct qcow2_op *op));
int qcow2_iov_slice(const struct iovec *iov, int cnt, uint64_t off,
		    uint64_t len, struct iovec **out, struct iovec *small,
		    int nsmall);
void qcow2_iov_from_buf(const struct iovec *iov, int cnt, uint64_t off,
			const void *src, uint64_t len);
void qcow2_iov_to_buf(const struct iovec *iov, int cnt, uint64_t off,
		      void *dst, uint64_t len);
void qcow2_iov_memset(const struct iovec *iov, int cnt, uint64_t off,
		      uint64_t len);
/* read guest [goff, goff + len) of the layers below into iov */
void qcow2_parent_read(struct qcow2_op *op, uint64_t goff, uint64_t len,
		       const struct iovec *iov, int iovcnt);
/* data I/O on the image (or its data file) at host offset */
void qcow2_data_io(struct qcow2_op *op, bool write, uint64_t host,
		   const struct iovec *iov, int iovcnt, unsigned flags);
void qcow2_compressed_read(struct qcow2_op *op, uint64_t entry,
			   uint64_t in_off, const struct iovec *iov,
			   int iovcnt);
/* check an L2 table or data cluster offset read from the file */
int qcow2_check_offset(struct td_image *img, uint64_t off, const char *what,
		       uint64_t guest);

/* qcow2-read.c, qcow2-write.c: requests */
void qcow2_queue_read(struct td_image *img, struct td_request *req);
void qcow2_block_status(struct td_image *img, struct td_request *req);
void qcow2_queue_write(struct td_image *img, struct td_request *req);
void qcow2_flush(struct td_image *img, struct td_request *req);
void qcow2_discard(struct td_image *img, struct td_request *req);
void qcow2_write_zeroes(struct td_image *img, struct td_request *req);
int qcow2_meta_flush_sync(struct td_image *img);
void qcow2_ops_free(struct qcow2_priv *p);
/* the locked walk of a write, zeroes or discard, resumed at op->pos */
void qcow2_write_step(struct qcow2_op *op);
/* the end of a write: a FUA flush if asked, then completion */
void qcow2_write_finish(struct qcow2_op *op);
/* stop the walk with err; finish once no I/O is pending */
void qcow2_write_fail(struct qcow2_op *op, int err);

/* qcow2-alloc.c */
/*
 * Under the lock, for op->pos whose entry (op->old_entry, op->old_bitmap)
 * cannot be written in place: take a cluster, write the data and what it
 * must keep, point the L2 entry at it, then go on with qcow2_write_step().
 */
void qcow2_alloc_cluster(struct qcow2_op *op);
/*
 * How many clusters from op->pos (entry idx of the L2 table buf) a write
 * can allocate at once: whole clusters, none allocated or in flight.
 */
uint64_t qcow2_alloc_run(struct qcow2_op *op, const void *l2, uint64_t idx);
/*
 * Under the lock: if an allocation of op->pos's cluster is in flight, op
 * gives up the lock and step runs under it again once that is done (true).
 */
bool qcow2_wait_inflight(struct qcow2_op *op,
			 void (*step)(struct qcow2_op *op));
/*
 * Under the lock: the L2 table of op->pos, owned by this image (a shared or
 * missing one is replaced). 0 with *out and op->l2_off set; 1 when op waits
 * and step runs again; < 0 error.
 */
int qcow2_l2_writable(struct qcow2_op *op, void (*step)(struct qcow2_op *op),
		      struct qcow2_centry **out);

/* qcow2-check.c */
int qcow2_check(struct td_image *img, struct td_check *res, unsigned fix);
int qcow2_check_repair(struct td_image *img, bool quiet,
		       struct td_check *res, unsigned fix);
int qcow2_resize(struct td_image *img, uint64_t size);
int qcow2_set_parent(struct td_image *img, const char *name,
		     const char *fmt);

/* qcow2-snapshot.c */
/* One snapshot table entry, in host order; id and name live for fn only. */
struct qcow2_snap {
	uint32_t index; /* in the table */
	uint64_t l1_offset;
	uint32_t l1_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t disk_size; /* the header's size when the entry has none */
	const char *id, *name;
};

/*
 * Walk the snapshot table, refusing (-EINVAL, logged) an entry outside the
 * file or the table's limits, and with check_l1 also a snapshot whose L1
 * table cannot be read; fn returning non-zero stops the walk with that.
 */
int qcow2_snapshots_walk(struct td_image *img, bool check_l1,
			 int (*fn)(void *ctx, const struct qcow2_snap *s),
			 void *ctx, uint64_t *table_len);
int qcow2_snapshot_list(struct td_image *img, struct td_snapshot **list,
			int *n);
/* At open: read through the L1 table and size of snapshot want (ID/name). */
int qcow2_snapshot_select(struct td_image *img, const char *file,
			  const char *want);

/* qcow2-create.c */
int qcow2_build_header(const char *path, unsigned char *c, size_t cs,
		       const struct qcow2_header *h);
int qcow2_create(const char *path, const struct td_create_opts *opts);
void qcow2_describe(struct td_image *img, struct json_object *out);

/* qcow2-compress.c */
int qcow2_decompress(const struct qcow2_priv *p, const void *src,
		     size_t srclen, void *dst, size_t dstlen);
/* -ENOSPC when the result would not fit in dstlen */
int qcow2_compress(const struct qcow2_priv *p, const void *src, size_t len,
		   void *dst, size_t dstlen, size_t *outlen);

/* helpers */
static inline uint64_t qcow2_l2_entry(const struct qcow2_priv *p,
				      const void *l2, uint64_t i)
{
	const uint64_t *t = l2;

	return be64toh(t[i * p->l2_entry_words]);
}

static inline uint64_t qcow2_l2_bitmap(const struct qcow2_priv *p,
				       const void *l2, uint64_t i)
{
	const uint64_t *t = l2;

	return p->ext_l2 ? be64toh(t[i * 2 + 1]) : 0;
}

static inline void qcow2_l2_set(const struct qcow2_priv *p, void *l2,
				uint64_t i, uint64_t entry, uint64_t bitmap)
{
	uint64_t *t = l2;

	t[i * p->l2_entry_words] = htobe64(entry);
	if (p->ext_l2)
		t[i * 2 + 1] = htobe64(bitmap);
}

static inline uint64_t qcow2_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static inline uint64_t qcow2_l2_index(const struct qcow2_priv *p,
				      uint64_t pos)
{
	return (pos >> p->cluster_bits) & ((1ull << p->l2_bits) - 1);
}

/* the subclusters that [in, in + n) of a cluster touches, as a bitmap */
static inline uint64_t qcow2_unit_mask(const struct qcow2_priv *p,
				       uint64_t in, uint64_t n)
{
	unsigned u0 = (unsigned)(in >> p->sc_bits);
	unsigned u1 = (unsigned)((in + n - 1) >> p->sc_bits) + 1;

	return (u1 - u0 >= 32 ? 0xffffffffull : ((1ull << (u1 - u0)) - 1))
	       << u0;
}

#endif

// SPDX-License-Identifier: GPL-2.0-only
/*
 * A bounded LRU cache of metadata clusters (L2 tables, refcount blocks),
 * loaded through the asynchronous engine. A request that misses waits on
 * the load already in flight instead of reading again. Only clean entries
 * are evicted: dirty ones leave the cache through a writeback, which the
 * caller orders (see qcow2-priv.h), so the cache may run over its bound
 * until the next writeback and asks for one early when it does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qcow2-priv.h"

static size_t cache_hash(const struct qcow2_cache *c, uint64_t off)
{
	return (size_t)((off >> 9) * 0x9e3779b97f4a7c15ull >> 20) &
	       (c->hash_size - 1);
}

int qcow2_cache_init(struct qcow2_cache *c, struct td_image *img,
		     const char *what, size_t bytes)
{
	struct qcow2_priv *p = img->priv;

	memset(c, 0, sizeof(*c));
	c->img = img;
	c->what = what;
	c->max_entries = bytes / p->cluster_size;
	if (c->max_entries < 8)
		c->max_entries = 8;
	c->hash_size = 64;
	while (c->hash_size < c->max_entries && c->hash_size < (1u << 20))
		c->hash_size <<= 1;
	c->hash = calloc(c->hash_size, sizeof(*c->hash));
	if (!c->hash)
		return -ENOMEM;
	c->lru.lru_next = c->lru.lru_prev = &c->lru;
	return 0;
}

static void lru_unlink(struct qcow2_centry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push(struct qcow2_cache *c, struct qcow2_centry *e)
{
	e->lru_next = c->lru.lru_next;
	e->lru_prev = &c->lru;
	c->lru.lru_next->lru_prev = e;
	c->lru.lru_next = e;
}

static struct qcow2_centry *cache_find(struct qcow2_cache *c, uint64_t off)
{
	struct qcow2_centry *e = c->hash[cache_hash(c, off)];

	while (e && e->offset != off)
		e = e->hnext;
	return e;
}

static void cache_remove(struct qcow2_cache *c, struct qcow2_centry *e)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry **pp = &c->hash[cache_hash(c, e->offset)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	c->n_entries--;
	td_buf_put(e->buf, p->cluster_size);
	free(e);
}

static void cache_evict(struct qcow2_cache *c)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e = c->lru.lru_prev;

	while (c->n_entries >= c->max_entries && e != &c->lru) {
		struct qcow2_centry *prev = e->lru_prev;

		if (!e->dirty && !e->loading && !e->writing)
			cache_remove(c, e);
		e = prev;
	}
	if (c->n_entries >= c->max_entries)
		p->wb_wanted = true;
}

static struct qcow2_centry *cache_add(struct qcow2_cache *c, uint64_t off)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e;
	size_t h;

	cache_evict(c);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->buf = td_buf_get(p->cluster_size);
	if (!e->buf) {
		free(e);
		return NULL;
	}
	e->offset = off;
	e->cache = c;
	h = cache_hash(c, off);
	e->hnext = c->hash[h];
	c->hash[h] = e;
	lru_push(c, e);
	c->n_entries++;
	return e;
}

static void cache_load_done(struct td_iocb *cb, long res)
{
	struct qcow2_centry *e = cb->data;
	struct qcow2_cache *c = e->cache;
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_waiter *w = e->waiters;
	int err = 0;

	e->waiters = NULL;
	e->loading = false;
	if (res < 0 || (uint64_t)res != p->cluster_size) {
		err = res < 0 ? (int)res : -EIO;
		td_err("%s: cannot read the %s at %llu: %s", c->img->path,
		       c->what, (unsigned long long)e->offset,
		       res < 0 ? strerror(-err) : "beyond the end of the file");
		cache_remove(c, e);
	}
	while (w) {
		struct qcow2_waiter *next = w->next;

		w->fn(w, err);
		w = next;
	}
}

int qcow2_cache_get(struct qcow2_cache *c, uint64_t offset,
		    struct qcow2_waiter *w, struct qcow2_centry **out)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e = cache_find(c, offset);

	if (e && !e->loading) {
		if (c->lru.lru_next != e) {
			lru_unlink(e);
			lru_push(c, e);
		}
		*out = e;
		return 0;
	}
	if (!e) {
		e = cache_add(c, offset);
		if (!e) {
			td_err("%s: no memory for a %s", c->img->path,
			       c->what);
			return -ENOMEM;
		}
		e->loading = true;
		e->cb.op = TD_IO_READ;
		e->cb.fd = p->fd;
		e->cb.offset = offset;
		e->cb.iov = &e->cb_iov;
		e->cb.iovcnt = 1;
		e->cb_iov.iov_base = e->buf;
		e->cb_iov.iov_len = p->cluster_size;
		e->cb.done = cache_load_done;
		e->cb.data = e;
		td_io_queue(c->img->io, &e->cb);
	}
	w->next = e->waiters;
	e->waiters = w;
	return 1;
}

struct qcow2_centry *qcow2_cache_peek(struct qcow2_cache *c, uint64_t offset)
{
	struct qcow2_centry *e = cache_find(c, offset);

	return e && !e->loading ? e : NULL;
}

struct qcow2_centry *qcow2_cache_new(struct qcow2_cache *c, uint64_t offset)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e = cache_find(c, offset);

	/* a stale clean copy of a cluster that was freed and taken again */
	if (e && !e->loading && !e->writing && !e->dirty)
		cache_remove(c, e);
	else if (e)
		return NULL;
	e = cache_add(c, offset);
	if (!e)
		return NULL;
	memset(e->buf, 0, p->cluster_size);
	qcow2_cache_dirty(e);
	return e;
}

void qcow2_cache_dirty(struct qcow2_centry *e)
{
	if (!e->dirty) {
		e->dirty = true;
		e->cache->n_dirty++;
	}
}

struct cache_wb {
	struct qcow2_waiter *w;
	unsigned pending;
	int err;
};

static void cache_wb_done(struct td_iocb *cb, long res)
{
	struct qcow2_centry *e = cb->data;
	struct qcow2_cache *c = e->cache;
	struct qcow2_priv *p = c->img->priv;
	struct cache_wb *wb = e->wb;

	e->writing = false;
	e->wb = NULL;
	if (res < 0 || (uint64_t)res != p->cluster_size) {
		int err = res < 0 ? (int)res : -EIO;

		td_err("%s: cannot write the %s at %llu: %s", c->img->path,
		       c->what, (unsigned long long)e->offset, strerror(-err));
		qcow2_cache_dirty(e);
		wb->err = err;
	}
	if (--wb->pending == 0) {
		struct qcow2_waiter *w = wb->w;
		int err = wb->err;

		free(wb);
		w->fn(w, err);
	}
}

void qcow2_cache_writeback(struct qcow2_cache *c, struct qcow2_waiter *w)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e;
	struct cache_wb *wb = calloc(1, sizeof(*wb));

	if (!wb) {
		td_err("%s: no memory to write back %ss", c->img->path,
		       c->what);
		w->fn(w, -ENOMEM);
		return;
	}
	wb->w = w;
	/* one extra count so that the waiter runs once, after the loop */
	wb->pending = 1;
	for (e = c->lru.lru_next; e != &c->lru; e = e->lru_next) {
		if (!e->dirty || e->writing)
			continue;
		e->dirty = false;
		c->n_dirty--;
		e->writing = true;
		e->wb = wb;
		e->cb.op = TD_IO_WRITE;
		e->cb.fd = p->fd;
		e->cb.offset = e->offset;
		e->cb.iov = &e->cb_iov;
		e->cb.iovcnt = 1;
		e->cb_iov.iov_base = e->buf;
		e->cb_iov.iov_len = p->cluster_size;
		e->cb.done = cache_wb_done;
		e->cb.data = e;
		wb->pending++;
		td_io_queue(c->img->io, &e->cb);
	}
	if (--wb->pending == 0) {
		free(wb);
		w->fn(w, 0);
	}
}

int qcow2_cache_writeback_sync(struct qcow2_cache *c)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e;
	int rc;

	for (e = c->lru.lru_next; e != &c->lru; e = e->lru_next) {
		if (!e->dirty)
			continue;
		rc = qcow2_pio(p->fd, true, e->buf, p->cluster_size,
			       e->offset);
		if (rc) {
			td_err("%s: cannot write the %s at %llu: %s",
			       c->img->path, c->what,
			       (unsigned long long)e->offset, strerror(-rc));
			return rc;
		}
		e->dirty = false;
		c->n_dirty--;
	}
	return 0;
}

int qcow2_cache_get_sync(struct qcow2_cache *c, uint64_t offset,
			 struct qcow2_centry **out)
{
	struct qcow2_priv *p = c->img->priv;
	struct qcow2_centry *e = cache_find(c, offset);
	int rc;

	if (e && !e->loading) {
		*out = e;
		return 0;
	}
	if (e)
		return -EBUSY;
	e = cache_add(c, offset);
	if (!e)
		return -ENOMEM;
	rc = qcow2_pio(p->fd, false, e->buf, p->cluster_size, offset);
	if (rc) {
		td_err("%s: cannot read the %s at %llu: %s", c->img->path,
		       c->what, (unsigned long long)offset, strerror(-rc));
		cache_remove(c, e);
		return rc;
	}
	*out = e;
	return 0;
}

/* Forget every clean entry (after the admin ops rewrote metadata). */
void qcow2_cache_drop_all(struct qcow2_cache *c)
{
	struct qcow2_centry *e = c->lru.lru_next;

	while (e != &c->lru) {
		struct qcow2_centry *next = e->lru_next;

		if (!e->loading && !e->writing) {
			if (e->dirty)
				c->n_dirty--;
			cache_remove(c, e);
		}
		e = next;
	}
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
	if (!c->hash)
		return;
	qcow2_cache_drop_all(c);
	free(c->hash);
	c->hash = NULL;
}

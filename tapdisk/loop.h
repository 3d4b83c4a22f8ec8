/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The event loop: one per tapdisk process, single-threaded, epoll based.
 * Watches call back on fd readiness, timers on expiry; prepare hooks run
 * before every wait, which is where I/O engines submit their batch, so that
 * everything queued during one loop iteration goes down in one syscall.
 */
#ifndef TD_LOOP_H
#define TD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct td_loop;
struct td_watch;

typedef void (*td_watch_fn)(struct td_watch *w, int fd, uint32_t events,
			    void *data);
typedef void (*td_loop_fn)(struct td_loop *loop, void *data);

/* A deferred call: embedded in the caller's object, no allocation. */
struct td_defer {
	struct td_defer *next;
	td_loop_fn fn;
	void *data;
	bool queued;
};

struct td_loop *td_loop_new(void);
void td_loop_free(struct td_loop *loop);

/* Run until td_loop_stop(); returns 0 or -errno from epoll_wait. */
int td_loop_run(struct td_loop *loop);
/* Run one iteration, waiting at most timeout_ms (-1: until an event). */
int td_loop_once(struct td_loop *loop, int timeout_ms);
void td_loop_stop(struct td_loop *loop);
bool td_loop_stopped(const struct td_loop *loop);

/* events: EPOLLIN / EPOLLOUT. Returns NULL with errno on failure. */
struct td_watch *td_watch_add(struct td_loop *loop, int fd, uint32_t events,
			      td_watch_fn fn, void *data);
int td_watch_set_events(struct td_watch *w, uint32_t events);
uint32_t td_watch_events(const struct td_watch *w);
/* Safe from inside any callback; the fd itself is not closed. */
void td_watch_remove(struct td_watch *w);

/* One-shot timer in milliseconds. Returns an id > 0, or -errno. */
long td_timer_add(struct td_loop *loop, uint64_t ms, td_loop_fn fn,
		  void *data);
void td_timer_cancel(struct td_loop *loop, long id);

/* Run fn before each wait (and before timers are computed). */
int td_loop_add_prepare(struct td_loop *loop, td_loop_fn fn, void *data);
void td_loop_del_prepare(struct td_loop *loop, td_loop_fn fn, void *data);

/*
 * Call d->fn once from the loop, after the current callback returns.
 * Completions that are ready at once (memory drivers, errors found before
 * any I/O) go through here so that no caller is re-entered.
 */
void td_loop_defer(struct td_loop *loop, struct td_defer *d, td_loop_fn fn,
		   void *data);

/*
 * Busy-poll for up to ns before sleeping, while events keep coming
 * (0, the default, never polls).
 */
void td_loop_set_poll(struct td_loop *loop, uint64_t ns);

/* Monotonic clock in nanoseconds. */
uint64_t td_now_ns(void);

#endif

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tapdisk event loop. Single-threaded by design: every disk is its own
 * process, so there is nothing to lock, and the loop's only job is to keep
 * the I/O engine's batch full and the sockets drained.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

#define LOOP_MAX_EVENTS 64
/* how recently something happened for the loop to count as busy */
#define LOOP_POLL_ACTIVE_NS 1000000ull

struct td_watch {
	struct td_loop *loop;
	int fd;
	uint32_t events;
	td_watch_fn fn;
	void *data;
	bool dead;
	struct td_watch *next_dead;
};

struct td_timer {
	long id;
	uint64_t due_ns;
	td_loop_fn fn;
	void *data;
	struct td_timer *next; /* sorted by due_ns */
};

struct td_prepare {
	td_loop_fn fn;
	void *data;
	struct td_prepare *next;
};

struct td_loop {
	int epfd;
	bool stop;
	bool running; /* inside td_loop_run() */
	long next_timer_id;
	struct td_timer *timers;
	struct td_prepare *prepare;
	struct td_watch *dead; /* removed during dispatch, freed after */
	struct td_defer *defer_head, *defer_tail;
	uint64_t poll_ns; /* busy-poll this long before sleeping */
	uint64_t last_event_ns;
};

uint64_t td_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct td_loop *td_loop_new(void)
{
	struct td_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = errno;

		free(loop);
		errno = err;
		return NULL;
	}
	loop->next_timer_id = 1;
	return loop;
}

static void loop_reap_dead(struct td_loop *loop)
{
	while (loop->dead) {
		struct td_watch *w = loop->dead;

		loop->dead = w->next_dead;
		free(w);
	}
}

void td_loop_free(struct td_loop *loop)
{
	if (!loop)
		return;
	while (loop->timers) {
		struct td_timer *t = loop->timers;

		loop->timers = t->next;
		free(t);
	}
	while (loop->prepare) {
		struct td_prepare *p = loop->prepare;

		loop->prepare = p->next;
		free(p);
	}
	loop_reap_dead(loop);
	close(loop->epfd);
	free(loop);
}

struct td_watch *td_watch_add(struct td_loop *loop, int fd, uint32_t events,
			      td_watch_fn fn, void *data)
{
	struct epoll_event ev = { .events = events };
	struct td_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->loop = loop;
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->data = data;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;

		free(w);
		errno = err;
		return NULL;
	}
	return w;
}

int td_watch_set_events(struct td_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->events == events)
		return 0;
	if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

uint32_t td_watch_events(const struct td_watch *w)
{
	return w->events;
}

void td_watch_remove(struct td_watch *w)
{
	if (!w || w->dead)
		return;
	epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	/* events for w may already sit in this iteration's batch */
	w->dead = true;
	w->next_dead = w->loop->dead;
	w->loop->dead = w;
}

long td_timer_add(struct td_loop *loop, uint64_t ms, td_loop_fn fn,
		  void *data)
{
	struct td_timer *t = calloc(1, sizeof(*t)), **pp;

	if (!t)
		return -ENOMEM;
	t->id = loop->next_timer_id++;
	t->due_ns = td_now_ns() + ms * 1000000ull;
	t->fn = fn;
	t->data = data;
	for (pp = &loop->timers; *pp && (*pp)->due_ns <= t->due_ns;
	     pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	return t->id;
}

void td_timer_cancel(struct td_loop *loop, long id)
{
	struct td_timer **pp;

	for (pp = &loop->timers; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct td_timer *t = *pp;

			*pp = t->next;
			free(t);
			return;
		}
	}
}

int td_loop_add_prepare(struct td_loop *loop, td_loop_fn fn, void *data)
{
	struct td_prepare *p = calloc(1, sizeof(*p)), **pp;

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->data = data;
	for (pp = &loop->prepare; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	return 0;
}

void td_loop_del_prepare(struct td_loop *loop, td_loop_fn fn, void *data)
{
	struct td_prepare **pp;

	for (pp = &loop->prepare; *pp; pp = &(*pp)->next) {
		if ((*pp)->fn == fn && (*pp)->data == data) {
			struct td_prepare *p = *pp;

			*pp = p->next;
			free(p);
			return;
		}
	}
}

void td_loop_defer(struct td_loop *loop, struct td_defer *d, td_loop_fn fn,
		   void *data)
{
	if (d->queued)
		return;
	d->fn = fn;
	d->data = data;
	d->next = NULL;
	d->queued = true;
	if (loop->defer_tail)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
}

/* Deferred calls may defer more; run until none are left. */
static unsigned loop_run_deferred(struct td_loop *loop)
{
	unsigned ran = 0;

	while (loop->defer_head) {
		struct td_defer *d = loop->defer_head;

		loop->defer_head = d->next;
		if (!loop->defer_head)
			loop->defer_tail = NULL;
		d->queued = false;
		d->fn(loop, d->data);
		ran++;
	}
	return ran;
}

static void loop_run_timers(struct td_loop *loop)
{
	uint64_t now = td_now_ns();

	while (loop->timers && loop->timers->due_ns <= now) {
		struct td_timer *t = loop->timers;

		loop->timers = t->next;
		t->fn(loop, t->data);
		free(t);
		loop_run_deferred(loop);
	}
}

static void loop_run_prepare(struct td_loop *loop)
{
	struct td_prepare *p, *next;

	for (p = loop->prepare; p; p = next) {
		next = p->next;
		p->fn(loop, p->data);
	}
}

static int loop_timeout(struct td_loop *loop, int timeout_ms)
{
	uint64_t now, ms;

	if (loop->defer_head || (loop->stop && loop->running))
		return 0;
	if (!loop->timers)
		return timeout_ms;
	now = td_now_ns();
	if (loop->timers->due_ns <= now)
		return 0;
	ms = (loop->timers->due_ns - now + 999999) / 1000000;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < ms)
		return timeout_ms;
	return ms > 1000000 ? 1000000 : (int)ms;
}

void td_loop_set_poll(struct td_loop *loop, uint64_t ns)
{
	loop->poll_ns = ns;
}

/*
 * On a virtual machine a sleeping vCPU is slow to wake, and every request
 * pays that twice (socket in, I/O completion). While the disk is busy,
 * spin a little before sleeping; an idle disk never spins.
 */
static int loop_poll(struct td_loop *loop, struct epoll_event *ev,
		     int timeout)
{
	uint64_t now, until;
	int n;

	if (!loop->poll_ns || !timeout)
		return 0;
	now = td_now_ns();
	if (now - loop->last_event_ns > LOOP_POLL_ACTIVE_NS)
		return 0;
	until = now + loop->poll_ns;
	do {
		n = epoll_wait(loop->epfd, ev, LOOP_MAX_EVENTS, 0);
		if (n)
			return n;
		/* completions that arrive without an fd event (io_uring) */
		loop_run_prepare(loop);
		if (loop->defer_head)
			return 0;
	} while (td_now_ns() < until);
	return 0;
}

int td_loop_once(struct td_loop *loop, int timeout_ms)
{
	struct epoll_event ev[LOOP_MAX_EVENTS];
	int i, n, timeout;

	unsigned ran;

	ran = loop_run_deferred(loop);
	/* prepare hooks may complete requests, which defers more work */
	loop_run_prepare(loop);
	ran += loop_run_deferred(loop);
	/* work done here counts as this iteration's: don't sleep after it */
	timeout = ran ? 0 : loop_timeout(loop, timeout_ms);
	n = loop_poll(loop, ev, timeout);
	if (!n && !loop->defer_head)
		n = epoll_wait(loop->epfd, ev, LOOP_MAX_EVENTS, timeout);
	if (n > 0)
		loop->last_event_ns = td_now_ns();
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	for (i = 0; i < n; i++) {
		struct td_watch *w = ev[i].data.ptr;

		if (w->dead)
			continue;
		w->fn(w, w->fd, ev[i].events, w->data);
		loop_run_deferred(loop);
	}
	loop_run_timers(loop);
	loop_reap_dead(loop);
	return n;
}

int td_loop_run(struct td_loop *loop)
{
	int rc = 0;

	loop->stop = false;
	loop->running = true;
	while (!loop->stop) {
		rc = td_loop_once(loop, -1);
		if (rc < 0)
			break;
	}
	loop->running = false;
	if (rc < 0)
		return rc;
	/* let what the last callbacks queued run before returning */
	loop_run_deferred(loop);
	return 0;
}

void td_loop_stop(struct td_loop *loop)
{
	loop->stop = true;
}

bool td_loop_stopped(const struct td_loop *loop)
{
	return loop->stop;
}

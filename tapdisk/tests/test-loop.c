// SPDX-License-Identifier: GPL-2.0-only
/* The event loop: fd watches, timers, prepare hooks, deferred calls. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loop.h"
#include "tap.h"

static int fired[8];

static void on_timer(struct td_loop *loop, void *data)
{
	fired[(intptr_t)data]++;
	if ((intptr_t)data == 3)
		td_loop_stop(loop);
}

static void on_fd(struct td_watch *w, int fd, uint32_t events, void *data)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) == sizeof(v))
		fired[4] += (int)v;
	/* removing yourself from inside the callback must be safe */
	td_watch_remove(w);
}

static void on_prepare(struct td_loop *loop, void *data)
{
	fired[5]++;
}

static void on_defer2(struct td_loop *loop, void *data)
{
	fired[7]++;
}

static struct td_defer d1, d2;

static void on_defer1(struct td_loop *loop, void *data)
{
	fired[6]++;
	/* a deferred call may defer another, which runs in the same pass */
	td_loop_defer(loop, &d2, on_defer2, NULL);
}

static void *late_writer(void *arg)
{
	uint64_t one = 1;

	usleep(2000);
	if (write(*(int *)arg, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec * 1000000ull + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_sec * 1000000ull + ru.ru_stime.tv_usec;
}

/* Polling delivers events that arrive while spinning; idle never spins. */
static void test_poll(struct td_loop *loop)
{
	pthread_t th;
	uint64_t c0;
	int efd = eventfd(0, EFD_NONBLOCK);

	td_loop_set_poll(loop, 50000000ull);
	fired[4] = 0;
	ok(td_watch_add(loop, efd, EPOLLIN, on_fd, NULL) != NULL,
	   "watch for polling added");
	pthread_create(&th, NULL, late_writer, &efd);
	td_loop_once(loop, 1000);
	pthread_join(th, NULL);
	is(fired[4], 1, "event delivered while polling");
	/* long after the last event the loop counts as idle */
	usleep(5000);
	c0 = cpu_us();
	td_loop_once(loop, 100);
	ok(cpu_us() - c0 < 50000, "an idle loop sleeps instead of polling");
	td_loop_set_poll(loop, 0);
	close(efd);
}

int main(void)
{
	struct td_loop *loop = td_loop_new();
	uint64_t one = 5, t0;
	long id;
	int efd;

	ok(loop != NULL, "loop created");

	/* timers fire in due order, cancelled ones never */
	td_timer_add(loop, 30, on_timer, (void *)3);
	td_timer_add(loop, 10, on_timer, (void *)1);
	id = td_timer_add(loop, 20, on_timer, (void *)2);
	ok(id > 0, "timer id positive");
	td_timer_cancel(loop, id);
	t0 = td_now_ns();
	is(td_loop_run(loop), 0, "loop runs until stopped");
	ok(td_now_ns() - t0 >= 29000000ull, "stopped no earlier than 30 ms");
	is(fired[1], 1, "10 ms timer fired");
	is(fired[2], 0, "cancelled timer did not fire");
	is(fired[3], 1, "30 ms timer fired");

	/* fd watch */
	efd = eventfd(0, EFD_NONBLOCK);
	ok(td_watch_add(loop, efd, EPOLLIN, on_fd, NULL) != NULL,
	   "watch added");
	is(write(efd, &one, sizeof(one)), 8, "eventfd written");
	td_loop_once(loop, 1000);
	is(fired[4], 5, "watch callback read the value");
	is(write(efd, &one, sizeof(one)), 8, "eventfd written again");
	td_loop_once(loop, 50);
	is(fired[4], 5, "removed watch is not called");
	errno = 0;
	ok(td_watch_add(loop, -1, EPOLLIN, on_fd, NULL) == NULL && errno,
	   "bad fd refused with errno");

	/* prepare hooks run every iteration; deferred calls chain */
	ok(td_loop_add_prepare(loop, on_prepare, NULL) == 0, "prepare added");
	td_loop_defer(loop, &d1, on_defer1, NULL);
	td_loop_defer(loop, &d1, on_defer1, NULL);
	td_loop_once(loop, 0);
	ok(fired[5] >= 1, "prepare hook ran");
	is(fired[6], 1, "deferred call ran once although queued twice");
	is(fired[7], 1, "deferred call queued from a deferred call ran");
	td_loop_del_prepare(loop, on_prepare, NULL);
	fired[5] = 0;
	td_loop_once(loop, 0);
	is(fired[5], 0, "removed prepare hook does not run");

	close(efd);
	test_poll(loop);
	td_loop_free(loop);
	return tap_done();
}

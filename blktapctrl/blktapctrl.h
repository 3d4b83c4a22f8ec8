/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * blktapctrl: the control daemon. It keeps a table of disks, each served
 * by one tapdisk process it spawned (or re-adopted after its own restart),
 * watches those processes, restarts the ones that ask for it, and answers
 * tap-ctl on a Unix socket in the control protocol of DESIGN.md.
 */
#ifndef BLKTAPCTRL_H
#define BLKTAPCTRL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "loop.h"

struct json_object;

#define DISK_MAX_MINORS 1024
#define DISK_MAX_EXPORTS 16
/* a disk that needs more restarts than this within the window stays down */
#define DISK_RESTART_BURST 5
#define DISK_RESTART_WINDOW_NS (60ull * 1000000000ull)
/* how long a tapdisk may take to answer after exec, and to shut down */
#define DISK_START_MS 30000
/*
 * A tapdisk taking over a ublk device waits first for the kernel to notice
 * that the old one died (Linux checks every 5 s; tapdisk waits up to 30 s)
 */
#define DISK_RECOVER_MS 60000
#define DISK_STOP_MS 30000
/* pause drains every in-flight request first */
#define DISK_PAUSE_MS 60000
#define DISK_CALL_MS 10000

enum disk_state {
	DISK_RUNNING,
	DISK_PAUSED,
	DISK_RESTARTING, /* died; a restart is scheduled */
	DISK_FAILED, /* down and left down: see reason */
	DISK_EXITED, /* exited with status 0, not through destroy */
	DISK_STARTING, /* created; its tapdisk has not answered yet */
};

enum disk_restart {
	DISK_RESTART_NO,
	DISK_RESTART_ON_FAILURE,
};

/* What a disk is doing in the background, one thing at a time. */
enum disk_op {
	DISK_OP_NONE,
	DISK_OP_STARTING, /* its tapdisk is coming up */
	DISK_OP_STOPPING, /* SIGTERM sent; SIGKILL when it takes too long */
};

struct ctl_daemon;
struct disk;
struct ctl_acall;
struct disk_call;

/*
 * The end of something a disk did in the background: rc 0 or -errno with
 * a message, and for a request to its tapdisk the reply (borrowed). It is
 * the last thing the disk code does with the disk: done may free it.
 */
typedef void (*disk_done_fn)(struct disk *disk, int rc,
			     struct json_object *reply, const char *err,
			     void *data);

struct disk {
	struct ctl_daemon *d;
	int minor;
	char *image; /* as created, or as last resumed onto */
	char *opened; /* the name tapdisk reports for it (info "image") */
	char *nbd[DISK_MAX_EXPORTS];
	int n_nbd;
	char *fuse;
	char *xen; /* the Xen backend directory it serves, or NULL */
	bool ublk; /* exported as a ublk block device */
	int ublk_want; /* the device number asked for; -1: any */
	/*
	 * The device it serves, once its tapdisk said so; -1 before. A
	 * tapdisk started while it is known takes that device over
	 * (--ublk-recover): the kernel kept it, holding its requests.
	 */
	int ublk_id;
	bool readonly;
	enum disk_restart restart;
	enum disk_state state;
	bool paused; /* survives a crash: the restarted tapdisk is paused too */
	char reason[1024];
	time_t started;
	unsigned restarts;
	uint64_t restart_ns[DISK_RESTART_BURST]; /* ring of recent restarts */

	pid_t pid; /* 0 when no tapdisk runs */
	unsigned long long pid_start; /* /proc start time: pid reuse guard */
	bool child; /* ours to reap; re-adopted tapdisks are not */
	int pidfd;
	struct td_watch *pid_watch;
	long restart_timer;

	enum disk_op op;
	disk_done_fn op_done;
	void *op_data;
	long op_timer; /* STARTING: the next poll; STOPPING: SIGKILL */
	uint64_t op_deadline;
	int op_poll_ms;
	bool op_killed; /* STOPPING: it had to be killed */
	struct ctl_acall *op_call; /* STARTING: info, or pause again */
	struct disk_call *calls; /* requests from clients in flight */

	/* tapdisk's stderr, through the FIFO RUNDIR/tapdisk-N.log */
	int log_fd;
	struct td_watch *log_watch;
	char log_buf[1024];
	size_t log_len;
	char last_error[512];
};

struct ctl_daemon {
	struct td_loop *loop;
	struct xsw *xsw; /* NULL: not watching xenstore */
	const char *run_dir;
	const char *tapdisk;
	bool stop_disks;
	struct disk *disks[DISK_MAX_MINORS];
};

/* disklog.c: the FIFO that is its tapdisk's stderr */
int disk_log_open(struct disk *disk);
void disk_log_drain(struct disk *disk);
void disk_log_close(struct disk *disk);

/* disks.c: the table and the state files */
struct disk *disk_new(struct ctl_daemon *d, const char *image);
void disk_free(struct disk *disk);
/* Remove its state file and log FIFO, then free it: it is gone for good. */
void disk_forget(struct disk *disk);
struct disk *disk_get(struct ctl_daemon *d, int minor);
int disk_add_export(struct disk *disk, const char *addr);
int disk_path(const struct disk *disk, const char *fmt, char *buf, size_t len);
int disk_save(struct disk *disk);
void disk_remove_state(struct disk *disk);
/* Fill the table from RUNDIR/disk-*.json; the disks are not checked yet. */
int disk_load_all(struct ctl_daemon *d);
struct json_object *disk_to_json(const struct disk *disk);
const char *disk_state_name(enum disk_state s);
const char *disk_exports_str(const struct disk *disk, char *buf, size_t len);

/*
 * spawn.c: the tapdisk processes. Every wait happens on the loop: done
 * is called once, later, or before the function returns.
 */
/* Start its tapdisk; done when it answers (paused again if it was). */
void disk_start(struct disk *disk, disk_done_fn done, void *data);
/*
 * SIGTERM (a clean shutdown flushes), then SIGKILL if it hangs; whatever
 * the disk was doing is cancelled (-ECANCELED).
 */
void disk_stop(struct disk *disk, disk_done_fn done, void *data);
void disk_adopt(struct disk *disk);
/* Let go of the tapdisk without stopping it: the daemon is exiting. */
void disk_release(struct disk *disk);
/* One request to its tapdisk; the reply is passed on if it says ok. */
void disk_call(struct disk *disk, struct json_object *req, int timeout_ms,
	       disk_done_fn done, void *data);
unsigned long long disk_proc_start(pid_t pid);

/*
 * xenstore.c: a disk for each block-tap device in this domain's
 * backend/vbd, destroyed when the device goes. NULL with errno when
 * xenstore cannot be reached.
 */
struct xsw *xsw_open(struct ctl_daemon *d);
void xsw_free(struct xsw *x);

/* proto.c: the control socket (td_control_free() closes it) */
struct td_control *ctl_server_new(struct ctl_daemon *d, const char *path);

#endif

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
};

enum disk_restart {
	DISK_RESTART_NO,
	DISK_RESTART_ON_FAILURE,
};

struct ctl_daemon;

struct disk {
	struct ctl_daemon *d;
	int minor;
	char *image; /* as created, or as last resumed onto */
	char *opened; /* the name tapdisk reports for it (info "image") */
	char *nbd[DISK_MAX_EXPORTS];
	int n_nbd;
	char *fuse;
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

	/* tapdisk's stderr, through the FIFO RUNDIR/tapdisk-N.log */
	int log_fd;
	struct td_watch *log_watch;
	char log_buf[1024];
	size_t log_len;
	char last_error[512];
};

struct ctl_daemon {
	struct td_loop *loop;
	const char *run_dir;
	const char *tapdisk;
	bool stop_disks;
	struct disk *disks[DISK_MAX_MINORS];
};

/* disks.c: the table and the state files */
struct disk *disk_new(struct ctl_daemon *d, const char *image);
void disk_free(struct disk *disk);
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

/* spawn.c: the tapdisk processes */
int disk_spawn(struct disk *disk, char *err, size_t errlen);
int disk_stop(struct disk *disk);
void disk_adopt(struct disk *disk);
void disk_release(struct disk *disk);
int disk_call(struct disk *disk, struct json_object *req, int timeout_ms,
	      struct json_object **reply, char *err, size_t errlen);
unsigned long long disk_proc_start(pid_t pid);

/* proto.c: the control socket */
struct ctl_server;
struct ctl_server *ctl_server_new(struct ctl_daemon *d, const char *path);
void ctl_server_free(struct ctl_server *s);

#endif

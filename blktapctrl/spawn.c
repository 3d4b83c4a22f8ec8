// SPDX-License-Identifier: GPL-2.0-only
/*
 * Starting, watching and stopping the tapdisk processes.
 *
 * Each tapdisk is exec'd from the configured path (by default
 * LIBEXECDIR/blktap/tapdisk, which an admin may replace by a wrapper that
 * runs it under valgrind) in its own session, so that neither a terminal's
 * signals nor the daemon's own exit take it down. A pidfd tells the loop
 * the moment it exits; pidfds work for tapdisks re-adopted after a daemon
 * restart too, which are not our children.
 *
 * A tapdisk's stderr goes through a FIFO that disklog.c relays.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blktapctrl.h"
#include "client.h"
#include "log.h"
#include "ublk.h"

/* Field 22 of /proc/PID/stat: tells a pid from a later one of that number. */
unsigned long long disk_proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: skip past it */
	p = strrchr(buf, ')');
	for (i = 2; p && i < 22; i++)
		p = strchr(p + 1, ' ');
	if (p)
		sscanf(p + 1, "%llu", &start);
	return start;
}

static void disk_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
			 WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/*
 * The tapdisk is gone (its pidfd is readable): collect what there is to
 * know. *clean is true for exit status 0, which only a deliberate SIGTERM
 * brings about. An adopted tapdisk's status belongs to init: unknown.
 */
static void disk_reap(struct disk *disk, char *why, size_t len, bool *clean)
{
	int status;

	*clean = false;
	if (disk->child && waitpid(disk->pid, &status, 0) == disk->pid) {
		disk_describe_status(status, why, len);
		*clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	} else {
		snprintf(why, len,
			 "exited (adopted from an earlier blktapctrl, so its "
			 "exit status is unknown)");
	}
	if (disk->pid_watch)
		td_watch_remove(disk->pid_watch);
	disk->pid_watch = NULL;
	close(disk->pidfd);
	disk->pidfd = -1;
	disk->pid = 0;
	disk->pid_start = 0;
	disk_log_close(disk);
}

static void disk_restart_timer(struct td_loop *loop, void *data);

/* The tapdisk is down: restart it, or record why it stays down. */
static void disk_down(struct disk *disk, const char *why, bool clean)
{
	uint64_t now = td_now_ns();
	uint64_t oldest = disk->restart_ns[disk->restarts % DISK_RESTART_BURST];
	uint64_t last = disk->restarts ? disk->restart_ns[(disk->restarts - 1) %
							  DISK_RESTART_BURST] :
					 0;
	long t;

	if (clean || disk->restart != DISK_RESTART_ON_FAILURE) {
		disk->state = clean ? DISK_EXITED : DISK_FAILED;
		snprintf(disk->reason, sizeof(disk->reason), "%s", why);
	} else if (disk->restarts >= DISK_RESTART_BURST && oldest &&
		   now - oldest < DISK_RESTART_WINDOW_NS) {
		disk->state = DISK_FAILED;
		snprintf(disk->reason, sizeof(disk->reason),
			 "left down after %d restarts within %llu s; last: %s",
			 DISK_RESTART_BURST,
			 DISK_RESTART_WINDOW_NS / 1000000000ull, why);
		td_err("disk %d (%s): %s", disk->minor, disk->image,
		       disk->reason);
	} else {
		/*
		 * At once the first time; a disk that failed again within a
		 * second waits a second, so a hopeless one does not spin.
		 */
		t = td_timer_add(disk->d->loop,
				 last && now - last < 1000000000ull ? 1000 : 0,
				 disk_restart_timer, disk);
		if (t < 0) {
			disk->state = DISK_FAILED;
			snprintf(disk->reason, sizeof(disk->reason),
				 "%s; cannot schedule a restart: %s", why,
				 strerror((int)-t));
		} else {
			disk->restart_timer = t;
			disk->state = DISK_RESTARTING;
			snprintf(disk->reason, sizeof(disk->reason), "%s", why);
		}
	}
	disk_save(disk);
}

static void disk_restarted(struct disk *disk, int rc, struct json_object *reply,
			   const char *err, void *data)
{
	/* cancelled: whoever cancelled it (destroy, exit) takes over */
	if (!rc || rc == -ECANCELED)
		return;
	td_err("disk %d (%s): restart failed: %s", disk->minor, disk->image,
	       err);
	disk_down(disk, err, false);
}

static void disk_restart_timer(struct td_loop *loop, void *data)
{
	struct disk *disk = data;

	disk->restart_timer = 0;
	disk->restart_ns[disk->restarts % DISK_RESTART_BURST] = td_now_ns();
	disk->restarts++;
	td_info("disk %d (%s): restarting its tapdisk (restart %u)",
		disk->minor, disk->image, disk->restarts);
	disk_start(disk, disk_restarted, NULL);
}

/* Answer every request in flight: the tapdisk or the disk is going. */
static void disk_cancel_calls(struct disk *disk, int rc, const char *why);
static void disk_start_failed(struct disk *disk, int rc, const char *err);
static void disk_stopped(struct disk *disk);

static void disk_pid_event(struct td_watch *w, int fd, uint32_t events,
			   void *data)
{
	struct disk *disk = data;
	pid_t pid = disk->pid;
	char why[256], err[1024];
	bool clean;

	if (disk->op == DISK_OP_STOPPING) {
		disk_stopped(disk);
		return;
	}
	disk_reap(disk, why, sizeof(why), &clean);
	if (disk->op == DISK_OP_STARTING) {
		snprintf(err, sizeof(err), "tapdisk %s before serving%s%s", why,
			 disk->last_error[0] ? ": " : "", disk->last_error);
		disk_start_failed(disk, -EIO, err);
		return;
	}
	if (clean)
		td_info("disk %d (%s): tapdisk %d %s", disk->minor, disk->image,
			(int)pid, why);
	else
		td_err("disk %d (%s): tapdisk %d %s", disk->minor, disk->image,
		       (int)pid, why);
	snprintf(err, sizeof(err), "disk %d (%s): tapdisk %d %s", disk->minor,
		 disk->image, (int)pid, why);
	disk_cancel_calls(disk, -ESRCH, err);
	disk_down(disk, why, clean);
}

static int disk_watch_pid(struct disk *disk)
{
	disk->pid_watch = td_watch_add(disk->d->loop, disk->pidfd, EPOLLIN,
				       disk_pid_event, disk);
	return disk->pid_watch ? 0 : -errno;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void disk_exec(const char *log_path, const char *tapdisk,
		      char *const argv[])
{
	static const char msg[] = "blktapctrl: cannot exec tapdisk\n";
	sigset_t none;
	int fd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	fd = open(log_path, O_WRONLY | O_NONBLOCK);
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	execv(tapdisk, argv);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(127);
	_exit(127);
}

/* Kill a tapdisk that failed to come up and forget it. */
static void disk_abort_start(struct disk *disk)
{
	bool clean;
	char why[256];

	if (!disk->pid)
		return;
	pidfd_send_signal(disk->pidfd, SIGKILL, NULL, 0);
	disk_reap(disk, why, sizeof(why), &clean);
}

/* The background operation is over: done is the last thing we do. */
static void disk_op_end(struct disk *disk, int rc, const char *err)
{
	disk_done_fn done = disk->op_done;
	void *data = disk->op_data;

	if (disk->op_timer)
		td_timer_cancel(disk->d->loop, disk->op_timer);
	if (disk->op_call)
		ctl_call_cancel(disk->op_call);
	disk->op_timer = 0;
	disk->op_call = NULL;
	disk->op = DISK_OP_NONE;
	disk->op_done = NULL;
	done(disk, rc, NULL, err, data);
}

static void disk_start_failed(struct disk *disk, int rc, const char *err)
{
	disk_abort_start(disk);
	disk_op_end(disk, rc, err);
}

static void disk_serving(struct disk *disk)
{
	disk->started = time(NULL);
	disk->state = disk->paused ? DISK_PAUSED : DISK_RUNNING;
	disk->reason[0] = '\0';
	disk_save(disk);
	disk_op_end(disk, 0, NULL);
}

static void disk_paused_again(int rc, struct json_object *reply, void *data)
{
	struct disk *disk = data;

	disk->op_call = NULL;
	if (rc || !ctl_reply_ok(reply)) {
		td_err("disk %d (%s): cannot pause it again: %s", disk->minor,
		       disk->image,
		       rc ? strerror(-rc) : ctl_reply_error(reply));
		disk->paused = false;
	}
	json_object_put(reply);
	disk_serving(disk);
}

static void disk_ready(int rc, struct json_object *reply, void *data);
static void disk_poll_timer(struct td_loop *loop, void *data);

/* Ask for info until its control socket answers, it dies, or time out. */
static void disk_poll(struct disk *disk)
{
	char ctl[4096], err[4096 + 64];
	int rc = -ENAMETOOLONG;
	long t;

	disk_log_drain(disk);
	if (!disk_path(disk, "tapdisk-%d.sock", ctl, sizeof(ctl))) {
		disk->op_call = ctl_call_async(disk->d->loop, ctl,
					       ctl_request("info"),
					       DISK_CALL_MS, disk_ready, disk);
		if (disk->op_call)
			return;
		rc = -errno;
	}
	if ((rc == -ENOENT || rc == -ECONNREFUSED) &&
	    td_now_ns() < disk->op_deadline) {
		t = td_timer_add(disk->d->loop, disk->op_poll_ms,
				 disk_poll_timer, disk);
		if (disk->op_poll_ms < 20)
			disk->op_poll_ms *= 2;
		if (t > 0) {
			disk->op_timer = t;
			return;
		}
		rc = (int)t;
	}
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		snprintf(err, sizeof(err),
			 "tapdisk did not answer on %s within %d s", ctl,
			 DISK_START_MS / 1000);
		rc = -ETIMEDOUT;
	} else {
		snprintf(err, sizeof(err), "tapdisk control socket %s: %s", ctl,
			 strerror(-rc));
	}
	disk_start_failed(disk, rc, err);
}

static void disk_poll_timer(struct td_loop *loop, void *data)
{
	struct disk *disk = data;

	disk->op_timer = 0;
	disk_poll(disk);
}

static void disk_ready(int rc, struct json_object *reply, void *data)
{
	struct disk *disk = data;
	char err[1024], exports[4096];
	struct json_object *v;
	int id;

	disk->op_call = NULL;
	if (rc || !ctl_reply_ok(reply)) {
		snprintf(err, sizeof(err), "tapdisk info: %s",
			 rc ? strerror(-rc) : ctl_reply_error(reply));
		json_object_put(reply);
		disk_start_failed(disk, rc ? rc : -EPROTO, err);
		return;
	}
	if (json_object_object_get_ex(reply, "image", &v)) {
		free(disk->opened);
		disk->opened = strdup(json_object_get_string(v));
	}
	/* the device it serves; it answers only once the device exists */
	if (json_object_object_get_ex(reply, "ublk", &v) && v &&
	    sscanf(json_object_get_string(v), "/dev/ublkb%d", &id) == 1)
		disk->ublk_id = id;
	json_object_put(reply);
	td_info("disk %d (%s): tapdisk %d serving, exports %s", disk->minor,
		disk->image, (int)disk->pid,
		disk_exports_str(disk, exports, sizeof(exports)));
	/* a disk that crashed while paused comes back paused */
	if (disk->paused) {
		if (!disk_path(disk, "tapdisk-%d.sock", err, sizeof(err)))
			disk->op_call = ctl_call_async(disk->d->loop, err,
						       ctl_request("pause"),
						       DISK_PAUSE_MS,
						       disk_paused_again, disk);
		if (disk->op_call)
			return;
		td_err("disk %d (%s): cannot pause it again: %s", disk->minor,
		       disk->image, strerror(errno));
		disk->paused = false;
	}
	disk_serving(disk);
}

void disk_start(struct disk *disk, disk_done_fn done, void *data)
{
	char ctl[4096], log_path[4096], err[4096 + 64], ublk[16];
	char *argv[14 + 2 * DISK_MAX_EXPORTS];
	int argc = 0, i, rc, start_ms;
	pid_t pid;

	disk->op = DISK_OP_STARTING;
	disk->op_done = done;
	disk->op_data = data;
	if (disk_path(disk, "tapdisk-%d.sock", ctl, sizeof(ctl)) ||
	    disk_path(disk, "tapdisk-%d.log", log_path, sizeof(log_path))) {
		disk_op_end(disk, -ENAMETOOLONG, "run directory path too long");
		return;
	}
	argv[argc++] = (char *)disk->d->tapdisk;
	argv[argc++] = "--control";
	argv[argc++] = ctl;
	for (i = 0; i < disk->n_nbd; i++) {
		argv[argc++] = "--nbd";
		argv[argc++] = disk->nbd[i];
	}
	if (disk->fuse) {
		argv[argc++] = "--fuse";
		argv[argc++] = disk->fuse;
	}
	/* a Xen device of our own domain is a ublk device: no blkif ring */
	if (disk->xen && !disk->ublk) {
		argv[argc++] = "--xen-backend";
		argv[argc++] = disk->xen;
	}
	if (disk->ublk && disk->ublk_id >= 0) {
		/* a tapdisk served it before: take the device over */
		snprintf(ublk, sizeof(ublk), "%d", disk->ublk_id);
		argv[argc++] = "--ublk-recover";
		argv[argc++] = ublk;
	} else if (disk->ublk && disk->ublk_want >= 0) {
		snprintf(ublk, sizeof(ublk), "%d", disk->ublk_want);
		argv[argc++] = "--ublk-id";
		argv[argc++] = ublk;
	} else if (disk->ublk) {
		argv[argc++] = "--ublk";
	}
	if (disk->readonly)
		argv[argc++] = "--readonly";
	argv[argc++] = "--";
	argv[argc++] = disk->image;
	argv[argc] = NULL;

	rc = disk_log_open(disk);
	if (rc) {
		snprintf(err, sizeof(err), "%s: %s", log_path, strerror(-rc));
		disk_op_end(disk, rc, err);
		return;
	}
	disk->last_error[0] = '\0';
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		snprintf(err, sizeof(err), "fork: %s", strerror(-rc));
		disk_op_end(disk, rc, err);
		return;
	}
	if (pid == 0)
		disk_exec(log_path, disk->d->tapdisk, argv);
	disk->pid = pid;
	disk->child = true;
	disk->pid_start = disk_proc_start(pid);
	disk->pidfd = pidfd_open(pid, 0);
	if (disk->pidfd < 0) {
		rc = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		disk->pid = 0;
		snprintf(err, sizeof(err), "pidfd_open: %s", strerror(-rc));
		disk_op_end(disk, rc, err);
		return;
	}
	/* from now on its death ends the start at once */
	rc = disk_watch_pid(disk);
	if (rc) {
		snprintf(err, sizeof(err), "cannot watch tapdisk: %s",
			 strerror(-rc));
		disk_start_failed(disk, rc, err);
		return;
	}
	start_ms = disk->ublk && disk->ublk_id >= 0 ? DISK_RECOVER_MS :
						      DISK_START_MS;
	disk->op_deadline = td_now_ns() + start_ms * 1000000ull;
	disk->op_poll_ms = 1;
	disk_poll(disk);
}

static void disk_stop_timer(struct td_loop *loop, void *data)
{
	struct disk *disk = data;

	disk->op_timer = 0;
	td_err("disk %d (%s): tapdisk %d still running %d s after SIGTERM: "
	       "killing it",
	       disk->minor, disk->image, (int)disk->pid, DISK_STOP_MS / 1000);
	pidfd_send_signal(disk->pidfd, SIGKILL, NULL, 0);
	disk->op_killed = true;
}

/*
 * The disk is going and no tapdisk serves its ublk device any more: one
 * killed, or dead and not restarted. The kernel would hold the device's
 * requests forever waiting for a recovery; deleting it fails them and
 * frees the device number. A tapdisk that stopped cleanly deleted its own.
 */
static void disk_ublk_orphaned(struct disk *disk)
{
	int rc;

	if (disk->ublk_id < 0)
		return;
	rc = ublk_device_delete(disk->ublk_id);
	if (rc && rc != -ENODEV)
		td_err("disk %d (%s): cannot delete /dev/ublkb%d: %s",
		       disk->minor, disk->image, disk->ublk_id, strerror(-rc));
	disk->ublk_id = -1;
}

/* Its pidfd says it is gone: tidy up after it. */
static void disk_stopped(struct disk *disk)
{
	bool clean, killed = disk->op_killed;
	char why[256], path[4096];
	pid_t pid = disk->pid;
	int i;

	disk_reap(disk, why, sizeof(why), &clean);
	td_info("disk %d (%s): tapdisk %d %s", disk->minor, disk->image,
		(int)pid, why);
	/* a killed tapdisk leaves its sockets behind */
	if (killed || !clean) {
		if (!disk_path(disk, "tapdisk-%d.sock", path, sizeof(path)))
			unlink(path);
		for (i = 0; i < disk->n_nbd; i++)
			if (!strncmp(disk->nbd[i], "unix:", 5))
				unlink(disk->nbd[i] + 5);
		disk_ublk_orphaned(disk);
	}
	disk_op_end(disk, clean ? 0 : -EIO, clean ? NULL : why);
}

void disk_stop(struct disk *disk, disk_done_fn done, void *data)
{
	char why[512];
	long t;

	snprintf(why, sizeof(why), "disk %d (%s) was destroyed meanwhile",
		 disk->minor, disk->image);
	disk_cancel_calls(disk, -ECANCELED, why);
	if (disk->op == DISK_OP_STARTING)
		disk_start_failed(disk, -ECANCELED, why);
	if (disk->restart_timer)
		td_timer_cancel(disk->d->loop, disk->restart_timer);
	disk->restart_timer = 0;
	disk->op = DISK_OP_STOPPING;
	disk->op_done = done;
	disk->op_data = data;
	disk->op_killed = false;
	if (!disk->pid || disk->pidfd < 0) {
		disk_ublk_orphaned(disk);
		disk_op_end(disk, 0, NULL);
		return;
	}
	pidfd_send_signal(disk->pidfd, SIGTERM, NULL, 0);
	t = td_timer_add(disk->d->loop, DISK_STOP_MS, disk_stop_timer, disk);
	if (t > 0)
		disk->op_timer = t;
	else
		disk_stop_timer(disk->d->loop, disk);
}

static int disk_call_result(struct disk *disk, int rc,
			    struct json_object *reply, char *err,
			    size_t errlen);

/*
 * A disk from a state file: take its tapdisk back if it is the same
 * process (pid, start time) still serving the same image, restart it if
 * it died and asked for that, and otherwise leave a reason in the table.
 */
void disk_adopt(struct disk *disk)
{
	struct json_object *reply = NULL, *v;
	char why[1024], err[512], path[4096];
	pid_t pid = disk->pid;
	int rc;

	if (disk->state == DISK_FAILED || disk->state == DISK_EXITED) {
		disk->pid = 0;
		return;
	}
	disk->pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
	/* a readable pidfd: exited, a zombie its new parent has not reaped */
	if (disk->pidfd < 0 || disk_proc_start(pid) != disk->pid_start ||
	    poll(&(struct pollfd){ .fd = disk->pidfd, .events = POLLIN }, 1,
		 0) > 0) {
		snprintf(why, sizeof(why),
			 "tapdisk %d died while blktapctrl was not running",
			 (int)pid);
		goto dead;
	}
	rc = disk_path(disk, "tapdisk-%d.sock", path, sizeof(path));
	if (!rc)
		rc = ctl_call(path, ctl_request("info"), DISK_CALL_MS, &reply);
	rc = disk_call_result(disk, rc, reply, err, sizeof(err));
	if (rc) {
		snprintf(why, sizeof(why),
			 "tapdisk %d is running but not answering (%s): left "
			 "alone",
			 (int)pid, err);
		goto foreign;
	}
	if (!json_object_object_get_ex(reply, "image", &v) || !disk->opened ||
	    strcmp(json_object_get_string(v), disk->opened)) {
		snprintf(why, sizeof(why),
			 "tapdisk %d serves %s, not %s: left alone", (int)pid,
			 v ? json_object_get_string(v) : "no image",
			 disk->opened ? disk->opened : disk->image);
		goto foreign;
	}
	disk->child = false;
	disk->paused = json_object_object_get_ex(reply, "paused", &v) &&
		       json_object_get_boolean(v);
	json_object_put(reply);
	disk->state = disk->paused ? DISK_PAUSED : DISK_RUNNING;
	rc = disk_log_open(disk);
	if (rc)
		td_warn("disk %d (%s): its messages are lost: %s", disk->minor,
			disk->image, strerror(-rc));
	rc = disk_watch_pid(disk);
	if (rc) {
		snprintf(why, sizeof(why), "cannot watch tapdisk %d: %s",
			 (int)pid, strerror(-rc));
		goto foreign;
	}
	td_info("disk %d (%s): re-adopted tapdisk %d (%s)", disk->minor,
		disk->image, (int)pid, disk_state_name(disk->state));
	disk_save(disk);
	return;
foreign:
	json_object_put(reply);
	disk_log_close(disk);
	close(disk->pidfd);
	disk->pidfd = -1;
	disk->pid = 0;
	disk->state = DISK_FAILED;
	snprintf(disk->reason, sizeof(disk->reason), "%s", why);
	td_err("disk %d (%s): %s", disk->minor, disk->image, why);
	disk_save(disk);
	return;
dead:
	if (disk->pidfd >= 0)
		close(disk->pidfd);
	disk->pidfd = -1;
	disk->pid = 0;
	td_err("disk %d (%s): %s", disk->minor, disk->image, why);
	disk_down(disk, why, false);
}

/* What a request to its tapdisk came to: 0, or -errno and a message. */
static int disk_call_result(struct disk *disk, int rc,
			    struct json_object *reply, char *err, size_t errlen)
{
	struct json_object *v;

	if (rc) {
		snprintf(err, errlen, "disk %d (%s): tapdisk %d: %s",
			 disk->minor, disk->image, (int)disk->pid,
			 strerror(-rc));
		return rc;
	}
	if (!ctl_reply_ok(reply)) {
		snprintf(err, errlen, "disk %d (%s): tapdisk: %s", disk->minor,
			 disk->image, ctl_reply_error(reply));
		rc = json_object_object_get_ex(reply, "errno", &v) ?
			     -json_object_get_int(v) :
			     -EIO;
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

struct disk_call {
	struct disk *disk;
	struct ctl_acall *a;
	disk_done_fn done;
	void *data;
	struct disk_call *next;
};

static void disk_call_reply(int rc, struct json_object *reply, void *data)
{
	struct disk_call *c = data, **pp;
	struct disk *disk = c->disk;
	char err[1024];

	for (pp = &disk->calls; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	rc = disk_call_result(disk, rc, reply, err, sizeof(err));
	c->done(disk, rc, rc ? NULL : reply, err, c->data);
	json_object_put(reply);
	free(c);
}

static void disk_cancel_calls(struct disk *disk, int rc, const char *why)
{
	struct disk_call *c;

	while ((c = disk->calls)) {
		disk->calls = c->next;
		ctl_call_cancel(c->a);
		c->done(disk, rc, NULL, why, c->data);
		free(c);
	}
}

void disk_call(struct disk *disk, struct json_object *req, int timeout_ms,
	       disk_done_fn done, void *data)
{
	struct disk_call *c = NULL;
	char path[4096], err[2048];
	int rc;

	if (!disk->pid) {
		json_object_put(req);
		snprintf(err, sizeof(err), "disk %d (%s) is %s: %s",
			 disk->minor, disk->image, disk_state_name(disk->state),
			 disk->reason[0] ? disk->reason : "no tapdisk");
		done(disk, -ESRCH, NULL, err, data);
		return;
	}
	if (disk->op != DISK_OP_NONE) {
		json_object_put(req);
		snprintf(err, sizeof(err), "disk %d (%s) is busy: %s",
			 disk->minor, disk->image,
			 disk->op == DISK_OP_STARTING ?
				 "its tapdisk is starting" :
				 "it is being destroyed");
		done(disk, -EBUSY, NULL, err, data);
		return;
	}
	rc = disk_path(disk, "tapdisk-%d.sock", path, sizeof(path));
	if (!rc)
		c = calloc(1, sizeof(*c));
	if (!c) {
		json_object_put(req);
		rc = rc ? rc : -ENOMEM;
		goto fail;
	}
	c->a = ctl_call_async(disk->d->loop, path, req, timeout_ms,
			      disk_call_reply, c);
	if (!c->a) {
		rc = -errno;
		free(c);
		goto fail;
	}
	c->disk = disk;
	c->done = done;
	c->data = data;
	c->next = disk->calls;
	disk->calls = c;
	return;
fail:
	disk_call_result(disk, rc, NULL, err, sizeof(err));
	done(disk, rc, NULL, err, data);
}

void disk_release(struct disk *disk)
{
	disk_cancel_calls(disk, -ECANCELED, "blktapctrl is exiting");
	if (disk->restart_timer)
		td_timer_cancel(disk->d->loop, disk->restart_timer);
	disk->restart_timer = 0;
	/* half started: kill it rather than leave one nobody knows of */
	if (disk->op == DISK_OP_STARTING) {
		disk_start_failed(disk, -ECANCELED, "blktapctrl is exiting");
		return;
	}
	if (disk->pid_watch)
		td_watch_remove(disk->pid_watch);
	disk->pid_watch = NULL;
	if (disk->pidfd >= 0)
		close(disk->pidfd);
	disk->pidfd = -1;
	disk_log_close(disk);
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * blktapctrl: start, supervise and stop tapdisks on request.
 *
 * The daemon holds no state a restart would lose: every disk has a state
 * file in the run directory, and a new daemon re-adopts the tapdisks the
 * old one left. That is also why SIGTERM leaves the tapdisks running: a
 * daemon upgrade must not take the guests' disks away.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blktapctrl.h"
#include "control.h"
#include "daemon.h"
#include "log.h"

#define CTL_VERSION "0.1.0"
#define CTL_RUN_DIR "/run/blktap"
#define CTL_TAPDISK TD_LIBEXECDIR "/blktap/tapdisk"

enum ctl_xenstore {
	CTL_XS_AUTO, /* when this is a Xen domain with xenstore */
	CTL_XS_ON,
	CTL_XS_OFF,
};

struct ctl_opts {
	bool foreground;
	int log_level;
	enum ctl_xenstore xenstore;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: blktapctrl [OPTIONS]\n"
		"Start, supervise and stop tapdisks on request of tap-ctl.\n"
		"\n"
		"Options:\n"
		"  -F, --foreground    stay in the foreground, log to stderr\n"
		"  -r, --run-dir DIR   sockets and state files (default "
		"%s)\n"
		"  -t, --tapdisk PATH  the tapdisk to run (default %s)\n"
		"  -s, --stop-disks    on SIGTERM, stop every tapdisk too\n"
		"                      (by default they keep serving)\n"
		"  -x, --xenstore      serve the Xen devices with script "
		"block-tap\n"
		"                      (default: when xenstore is there)\n"
		"  -X, --no-xenstore   leave xenstore alone\n"
		"  -v, --verbose       debug messages\n"
		"  -h, --help          this help\n"
		"  -V, --version       print the version\n"
		"\n"
		"The control socket is RUN-DIR/ctl.sock. See blktapctrl(8).\n",
		CTL_RUN_DIR, CTL_TAPDISK);
}

static int parse_args(struct ctl_daemon *d, struct ctl_opts *o, int argc,
		      char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'F' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "tapdisk", required_argument, NULL, 't' },
		{ "stop-disks", no_argument, NULL, 's' },
		{ "xenstore", no_argument, NULL, 'x' },
		{ "no-xenstore", no_argument, NULL, 'X' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "Fr:t:sxXvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'F':
			o->foreground = true;
			break;
		case 'r':
			d->run_dir = optarg;
			break;
		case 't':
			d->tapdisk = optarg;
			break;
		case 's':
			d->stop_disks = true;
			break;
		case 'x':
			o->xenstore = CTL_XS_ON;
			break;
		case 'X':
			o->xenstore = CTL_XS_OFF;
			break;
		case 'v':
			o->log_level = LOG_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("blktapctrl %s\n", CTL_VERSION);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "blktapctrl: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	return 0;
}

/*
 * Watch xenstore if asked to, or by default when this is a Xen domain
 * whose xenstore is reachable: a host without Xen runs as before.
 */
static int ctl_xenstore(struct ctl_daemon *d, enum ctl_xenstore mode)
{
	static const char *const paths[] = { "/dev/xen/xenbus",
					     "/run/xenstored/socket",
					     "/var/run/xenstored/socket" };
	bool found = false;
	size_t i;
	int rc;

	if (mode == CTL_XS_OFF)
		return 0;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		found |= !access(paths[i], F_OK);
	if (!found && mode == CTL_XS_AUTO)
		return 0;
	d->xsw = xsw_open(d);
	if (d->xsw)
		return 0;
	if (mode == CTL_XS_AUTO) {
		td_warn("xenstore: %s: Xen devices with script block-tap are "
			"not served",
			strerror(errno));
		return 0;
	}
	rc = -errno;
	td_err("xenstore: %s", strerror(-rc));
	return rc;
}

static void ctl_signal(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct ctl_daemon *d = data;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		td_info("%s: stopping", strsignal(si.ssi_signo));
		td_loop_stop(d->loop);
	}
}

static void ctl_stopped(struct disk *disk, int rc, struct json_object *reply,
			const char *err, void *data)
{
	disk_forget(disk);
}

static bool ctl_stopping(struct ctl_daemon *d)
{
	int minor;

	for (minor = 0; minor < DISK_MAX_MINORS; minor++)
		if (d->disks[minor] && d->disks[minor]->op == DISK_OP_STOPPING)
			return true;
	return false;
}

static void ctl_shutdown(struct ctl_daemon *d)
{
	struct disk *disk;
	int minor, left = 0;

	for (minor = 0; minor < DISK_MAX_MINORS; minor++) {
		disk = d->disks[minor];
		if (disk && d->stop_disks && disk->op != DISK_OP_STOPPING)
			disk_stop(disk, ctl_stopped, NULL);
	}
	/* a destroy under way is finished too: the client asked for it */
	while (ctl_stopping(d) && td_loop_once(d->loop, -1) >= 0)
		;
	for (minor = 0; minor < DISK_MAX_MINORS; minor++) {
		disk = d->disks[minor];
		if (!disk)
			continue;
		left += disk->pid != 0;
		disk_release(disk);
		/* (a disk still being created is gone with its tapdisk) */
		if (d->disks[minor])
			disk_free(disk);
	}
	if (left)
		td_info("exiting; %d tapdisk%s left serving for the next "
			"blktapctrl to adopt",
			left, left == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
	struct ctl_daemon d = {
		.run_dir = CTL_RUN_DIR,
		.tapdisk = CTL_TAPDISK,
	};
	struct ctl_opts o = { .log_level = LOG_INFO };
	struct td_control *server = NULL;
	struct td_watch *sigwatch = NULL;
	int rc, ready = -1, sigfd = -1, minor, status = 1;
	char path[4096];

	rc = parse_args(&d, &o, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	td_log_open("blktapctrl", o.foreground, o.log_level);
	if (access(d.tapdisk, X_OK))
		td_warn("%s: %s: creating disks will fail", d.tapdisk,
			strerror(errno));
	if (mkdir(d.run_dir, 0700) && errno != EEXIST) {
		td_err("%s: %s", d.run_dir, strerror(errno));
		return 1;
	}
	if (snprintf(path, sizeof(path), "%s/ctl.sock", d.run_dir) >=
	    (int)sizeof(path)) {
		td_err("%s: path too long", d.run_dir);
		return 1;
	}
	if (!o.foreground) {
		ready = td_daemonize();
		if (ready < 0) {
			td_err("cannot detach: %s", strerror(-ready));
			return 1;
		}
	}
	d.loop = td_loop_new();
	if (!d.loop) {
		td_err("event loop: %s", strerror(errno));
		goto out;
	}
	sigfd = td_daemon_signals(d.loop, ctl_signal, &d, &sigwatch);
	if (sigfd < 0) {
		td_err("signals: %s", strerror(-sigfd));
		goto out;
	}
	/* listen first: a second daemon must fail before it adopts anything */
	server = ctl_server_new(&d, path);
	if (!server)
		goto out;
	rc = disk_load_all(&d);
	if (rc) {
		td_err("%s: %s", d.run_dir, strerror(-rc));
		goto out;
	}
	for (minor = 0; minor < DISK_MAX_MINORS; minor++)
		if (d.disks[minor])
			disk_adopt(d.disks[minor]);
	/* after adopting: the disks already serving devices are known */
	if (ctl_xenstore(&d, o.xenstore))
		goto out;
	td_info("listening on %s, tapdisk %s", path, d.tapdisk);
	td_daemon_ready(ready, 0);
	ready = -1;
	rc = td_loop_run(d.loop);
	if (rc)
		td_err("event loop failed: %s", strerror(-rc));
	else
		status = 0;
out:
	td_daemon_ready(ready, 1);
	/* stop accepting before letting the disks go */
	td_control_free(server);
	/* a device coming or going now is for the next daemon to see */
	xsw_free(d.xsw);
	d.xsw = NULL;
	if (d.loop)
		ctl_shutdown(&d);
	if (sigwatch)
		td_watch_remove(sigwatch);
	if (sigfd >= 0)
		close(sigfd);
	if (d.loop)
		td_loop_free(d.loop);
	return status;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * tapdisk: serve one virtual disk until told to stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "buf.h"
#include "control.h"
#include "daemon.h"
#include "fuse-export.h"
#include "image.h"
#include "io.h"
#include "log.h"
#include "loop.h"
#include "nbd.h"
#include "ublk.h"
#include "vbd.h"
#include "xenblk.h"

#define TD_VERSION "0.1.0"
#define TD_MAX_EXPORTS 16
#define TD_IO_DEPTH 256
/*
 * Measured on 2-vCPU guests: spinning this long between events while the
 * disk is busy raises 4k QD32 random I/O by 30-60%, because a vCPU that
 * sleeps is slow to wake. An idle disk never spins.
 */
#define TD_POLL_US_DEFAULT 250

struct tapdisk {
	const char *image_name;
	char *serving; /* the image name given, or the last resumed onto */
	struct td_control_call *pause_call;
	const char *nbd_addrs[TD_MAX_EXPORTS];
	int n_nbd;
	const char *fuse_path;
	bool ublk_on;
	int ublk_id; /* -1: the first free */
	int ublk_recover; /* -1: add a device */
	const char *xen_path; /* the backend directory in xenstore */
	const char *export_name;
	const char *control_path;
	bool readonly;
	bool daemonize;
	bool use_syslog;
	int log_level;
	unsigned max_inflight;
	unsigned poll_us;
	enum td_io_kind io_kind;

	struct td_loop *loop;
	struct td_ioengine *io;
	struct td_image *chain;
	struct td_vbd *vbd;
	struct nbd_server *nbd[TD_MAX_EXPORTS];
	struct fuse_export *fuse;
	struct ublk_export *ublk;
	struct xenblk_backend *xen;
	struct td_control *control;
	struct td_watch *sigwatch;
	int sigfd;
	int servers_open;
	bool stopping;
	bool signalled; /* a SIGTERM/SIGINT came: a second one exits now */
	int exit_code;
	struct td_request flush_req;
	int ready_fd;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tapdisk [OPTIONS] IMAGE\n"
		"Serve one virtual disk until SIGTERM or SIGINT.\n"
		"\n"
		"IMAGE is TYPE:PATH or a path whose format is probed:\n"
		"  aio:/path         raw file or block device, O_DIRECT\n"
		"  sync:/path        raw file, buffered (no O_DIRECT)\n"
		"  ram:NAME?size=1G  RAM disk shared by name between tapdisks\n"
		"  ram:?size=64M     private RAM disk\n"
		"\n"
		"Options:\n"
		"  -n, --nbd ADDR          NBD export: unix:PATH or "
		"tcp:[HOST]:PORT\n"
		"                          (HOST defaults to 127.0.0.1; "
		"repeatable)\n"
		"  -e, --export-name NAME  NBD export name (default \"\")\n"
		"  -f, --fuse FILE         the disk as FILE, a regular file "
		"(FUSE;\n"
		"                          created if missing; for losetup)\n"
		"  -u, --ublk              the disk as the block device "
		"/dev/ublkbN\n"
		"      --ublk-id N         ask for /dev/ublkbN (default: the "
		"first free)\n"
		"      --ublk-recover N    take over /dev/ublkbN, whose tapdisk "
		"died\n"
		"      --xen-backend PATH  serve the Xen guest disk whose "
		"backend is PATH\n"
		"                          (/local/domain/0/backend/vbd/DOMID/"
		"DEVID)\n"
		"  -r, --readonly          refuse writes\n"
		"  -i, --io-engine ENGINE  io_uring, libaio or auto (default)\n"
		"  -c, --control PATH      control socket (JSON requests)\n"
		"  -q, --max-inflight N    requests in flight to the image "
		"(default 128)\n"
		"  -p, --poll-us N         while busy, busy-poll N microseconds "
		"before\n"
		"                          sleeping (default 250; 0 never "
		"polls)\n"
		"  -d, --daemon            detach once serving; log to syslog\n"
		"      --log=stderr|syslog where messages go "
		"(default: stderr)\n"
		"  -v, --verbose           debug messages\n"
		"  -h, --help              this help\n"
		"  -V, --version           print the version\n"
		"\n"
		"Exit status: 0 after a clean shutdown, 1 on a runtime error,\n"
		"2 on a usage error. See tapdisk(8).\n");
}

static int parse_args(struct tapdisk *td, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nbd", required_argument, NULL, 'n' },
		{ "export-name", required_argument, NULL, 'e' },
		{ "fuse", required_argument, NULL, 'f' },
		{ "ublk", no_argument, NULL, 'u' },
		{ "ublk-id", required_argument, NULL, 'U' },
		{ "ublk-recover", required_argument, NULL, 'R' },
		{ "xen-backend", required_argument, NULL, 'X' },
		{ "readonly", no_argument, NULL, 'r' },
		{ "io-engine", required_argument, NULL, 'i' },
		{ "control", required_argument, NULL, 'c' },
		{ "max-inflight", required_argument, NULL, 'q' },
		{ "poll-us", required_argument, NULL, 'p' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long n;
	int c;

	while ((c = getopt_long(argc, argv, "n:e:f:uri:c:q:p:dvhV", opts,
				NULL)) != -1) {
		switch (c) {
		case 'n':
			if (td->n_nbd == TD_MAX_EXPORTS) {
				fprintf(stderr, "tapdisk: at most %d --nbd\n",
					TD_MAX_EXPORTS);
				return 2;
			}
			td->nbd_addrs[td->n_nbd++] = optarg;
			break;
		case 'e':
			td->export_name = optarg;
			break;
		case 'f':
			if (td->fuse_path) {
				fprintf(stderr,
					"tapdisk: at most one --fuse\n");
				return 2;
			}
			td->fuse_path = optarg;
			break;
		case 'u':
			td->ublk_on = true;
			break;
		case 'U':
		case 'R':
			n = strtol(optarg, &end, 10);
			if (*end || n < 0 || n > 65535) {
				fprintf(stderr,
					"tapdisk: --%s: '%s' is not a device "
					"number from 0 to 65535\n",
					c == 'U' ? "ublk-id" : "ublk-recover",
					optarg);
				return 2;
			}
			td->ublk_on = true;
			if (c == 'U')
				td->ublk_id = n;
			else
				td->ublk_recover = n;
			break;
		case 'X':
			if (td->xen_path) {
				fprintf(stderr,
					"tapdisk: at most one --xen-backend\n");
				return 2;
			}
			td->xen_path = optarg;
			break;
		case 'r':
			td->readonly = true;
			break;
		case 'i':
			if (td_io_kind_parse(optarg, &td->io_kind)) {
				fprintf(stderr,
					"tapdisk: --io-engine: '%s' is not "
					"io_uring, libaio or auto\n",
					optarg);
				return 2;
			}
			break;
		case 'c':
			td->control_path = optarg;
			break;
		case 'q':
			n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 4096) {
				fprintf(stderr,
					"tapdisk: --max-inflight: '%s' is not "
					"a number from 1 to 4096\n",
					optarg);
				return 2;
			}
			td->max_inflight = n;
			break;
		case 'p':
			n = strtol(optarg, &end, 10);
			if (*end || n < 0 || n > 100000) {
				fprintf(stderr,
					"tapdisk: --poll-us: '%s' is not a "
					"number from 0 to 100000\n",
					optarg);
				return 2;
			}
			td->poll_us = n;
			break;
		case 'd':
			td->daemonize = true;
			td->use_syslog = true;
			break;
		case 'L':
			if (strcmp(optarg, "stderr") &&
			    strcmp(optarg, "syslog")) {
				fprintf(stderr,
					"tapdisk: --log: '%s' is not stderr "
					"or syslog\n",
					optarg);
				return 2;
			}
			td->use_syslog = !strcmp(optarg, "syslog");
			break;
		case 'v':
			td->log_level = LOG_DEBUG;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("tapdisk %s\n", TD_VERSION);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "tapdisk: %s\n",
			optind == argc ? "no IMAGE given" :
					 "only one IMAGE per tapdisk");
		usage(stderr);
		return 2;
	}
	td->image_name = argv[optind];
	return 0;
}

static void td_shutdown_done(struct tapdisk *td)
{
	td_loop_stop(td->loop);
}

static void td_flush_done(struct td_request *req, int err)
{
	struct tapdisk *td = req->data;

	if (err) {
		td_err("final flush failed: %s", strerror(-err));
		td->exit_code = 1;
	}
	td_shutdown_done(td);
}

/* Every client is gone and nothing is in flight: make the data durable. */
static void td_drained(struct td_loop *loop, void *data)
{
	struct tapdisk *td = data;

	/* paused: the image was flushed and closed already */
	if (td_vbd_readonly(td->vbd) || !td->chain) {
		td_shutdown_done(td);
		return;
	}
	td->flush_req.op = TD_OP_FLUSH;
	td->flush_req.done = td_flush_done;
	td->flush_req.data = td;
	td_vbd_submit(td->vbd, &td->flush_req);
}

static void td_server_closed(struct td_loop *loop, void *data)
{
	struct tapdisk *td = data;

	if (--td->servers_open == 0)
		td_vbd_drain(td->vbd, td_drained, td);
}

static void td_begin_shutdown(struct tapdisk *td, const char *why)
{
	int i;

	if (td->stopping)
		return;
	td->stopping = true;
	td_info("%s: finishing in-flight requests and shutting down", why);
	/* paused, nothing can complete what waits: the clients get errors */
	td_vbd_abort_queued(td->vbd, -ESHUTDOWN);
	td->servers_open = td->n_nbd + 1 + (td->fuse != NULL) +
			   (td->ublk != NULL) + (td->xen != NULL);
	for (i = 0; i < td->n_nbd; i++)
		nbd_server_shutdown(td->nbd[i], td_server_closed, td);
	if (td->fuse)
		fuse_export_shutdown(td->fuse, td_server_closed, td);
	if (td->ublk)
		ublk_export_shutdown(td->ublk, td_server_closed, td);
	if (td->xen)
		xenblk_backend_shutdown(td->xen, td_server_closed, td);
	td_server_closed(td->loop, td);
}

/* The toolstack deleted the guest's device: nobody is left to serve. */
static void td_xen_removed(struct td_loop *loop, void *data)
{
	td_begin_shutdown(data, "the Xen device was removed");
}

static void td_signal(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct tapdisk *td = data;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		/*
		 * Only a second signal is impatience: a shutdown the Xen
		 * toolstack started (device removed) is followed by
		 * blktapctrl's SIGTERM, which must still wait for the flush.
		 */
		if (td->signalled) {
			td_warn("%s again: exiting without waiting",
				strsignal(si.ssi_signo));
			td->exit_code = 1;
			td_loop_stop(td->loop);
			return;
		}
		td->signalled = true;
		td_begin_shutdown(td, strsignal(si.ssi_signo));
	}
}

static int td_setup_signals(struct tapdisk *td)
{
	td->sigfd = td_daemon_signals(td->loop, td_signal, td, &td->sigwatch);
	return td->sigfd < 0 ? td->sigfd : 0;
}

static int ctl_info(struct json_object *req, struct json_object *reply,
		    const char **error, void *data)
{
	struct tapdisk *td = data;
	struct json_object *chain = json_object_new_array();
	struct json_object *exports = json_object_new_array();
	struct td_image *img;
	int i;

	for (img = td->chain; img; img = img->parent)
		json_object_array_add(chain, json_object_new_string(img->name));
	for (i = 0; i < td->n_nbd; i++)
		json_object_array_add(exports,
				      json_object_new_string(
					      nbd_server_address(td->nbd[i])));
	json_object_object_add(reply, "image",
			       json_object_new_string(td_vbd_name(td->vbd)));
	json_object_object_add(reply, "paused",
			       json_object_new_boolean(td_vbd_paused(td->vbd)));
	json_object_object_add(reply, "size",
			       json_object_new_uint64(td_vbd_size(td->vbd)));
	json_object_object_add(reply, "readonly",
			       json_object_new_boolean(
				       td_vbd_readonly(td->vbd)));
	json_object_object_add(reply, "io_engine",
			       json_object_new_string(td_io_name(td->io)));
	json_object_object_add(reply, "pid", json_object_new_int(getpid()));
	json_object_object_add(reply, "chain", chain);
	json_object_object_add(reply, "nbd", exports);
	json_object_object_add(
		reply, "fuse",
		td->fuse ? json_object_new_string(fuse_export_path(td->fuse)) :
			   NULL);
	json_object_object_add(
		reply, "ublk",
		td->ublk ? json_object_new_string(ublk_export_path(td->ublk)) :
			   NULL);
	return 0;
}

static int ctl_stats(struct json_object *req, struct json_object *reply,
		     const char **error, void *data)
{
	struct tapdisk *td = data;

	json_object_object_add(reply, "image",
			       json_object_new_string(td_vbd_name(td->vbd)));
	json_object_object_add(reply, "stats",
			       td_stats_json(td_vbd_stats(td->vbd)));
	return 0;
}

static void td_paused(struct td_vbd *vbd, int err, void *data)
{
	struct tapdisk *td = data;
	struct td_control_call *call = td->pause_call;

	/* the image is let go even if the flush failed: it was asked for */
	td_image_close_chain(td->chain);
	td->chain = NULL;
	td_info("paused: image closed");
	td_control_call_reply(call, NULL, err, err ? "flush failed" : NULL);
}

static void ctl_pause(struct json_object *req, struct td_control_call *call,
		      void *data)
{
	struct tapdisk *td = data;
	int rc;

	if (td->stopping) {
		td_control_call_reply(call, NULL, -ESHUTDOWN,
				      "tapdisk is shutting down");
		return;
	}
	rc = td_vbd_pause(td->vbd, td_paused, td);
	if (rc)
		td_control_call_reply(call, NULL, rc, "not running");
	else
		td->pause_call = call;
}

static int ctl_resume(struct json_object *req, struct json_object *reply,
		      const char **error, void *data)
{
	struct tapdisk *td = data;
	struct td_image *chain;
	struct json_object *v;
	const char *name = td->serving;
	char *copy;
	int rc;

	if (!td_vbd_paused(td->vbd)) {
		*error = "not paused";
		return -EINVAL;
	}
	if (json_object_object_get_ex(req, "image", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			*error = "\"image\" must be a string";
			return -EINVAL;
		}
		name = json_object_get_string(v);
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	rc = td_image_open_chain(name, td->readonly ? TD_OPEN_RDONLY : 0,
				 td->loop, td->io, &chain);
	if (rc) {
		free(copy);
		*error = "cannot open the image (see tapdisk's log)";
		return rc;
	}
	rc = td_vbd_resume(td->vbd, chain);
	if (rc) {
		td_err("%s: cannot resume onto it: %s", chain->name,
		       rc == -EMEDIUMTYPE ? "its size differs" :
					    strerror(-rc));
		td_image_close_chain(chain);
		free(copy);
		*error = rc == -EMEDIUMTYPE ? "the image's size differs" :
					      "cannot resume";
		return rc;
	}
	td->chain = chain;
	free(td->serving);
	td->serving = copy;
	td_info("resumed on %s", chain->name);
	json_object_object_add(reply, "image",
			       json_object_new_string(chain->name));
	return 0;
}

/*
 * Every export serves: open the control socket and report readiness. Both
 * mean "the disk is there" to whoever started this tapdisk (blktapctrl
 * polls the control socket, --daemon's parent waits for the status), so
 * with ublk they wait until /dev/ublkbN exists.
 */
static int td_serving(struct tapdisk *td)
{
	if (td->control_path) {
		td->control = td_control_new(td->loop, td->control_path);
		if (!td->control)
			return -errno;
		td_control_register(td->control, "info", ctl_info, td);
		td_control_register(td->control, "stats", ctl_stats, td);
		td_control_register_async(td->control, "pause", ctl_pause, td);
		td_control_register(td->control, "resume", ctl_resume, td);
	}
	td_daemon_ready(td->ready_fd, 0);
	td->ready_fd = -1;
	return 0;
}

static void td_ublk_started(struct ublk_export *exp, int err, void *data)
{
	struct tapdisk *td = data;

	if (!err && !td->stopping)
		err = td_serving(td);
	if (!err)
		return;
	/* a disk without its device is no use to anyone: fail the start */
	td_err("%s: not serving: %s", ublk_export_path(exp), strerror(-err));
	td->exit_code = 1;
	td_loop_stop(td->loop);
}

static int td_start(struct tapdisk *td)
{
	struct nbd_server_opts nopts = {
		.export_name = td->export_name,
		.readonly = td->readonly,
	};
	char ident[512];
	int rc, i;

	td->loop = td_loop_new();
	if (!td->loop)
		return -errno;
	td_loop_set_poll(td->loop, td->poll_us * 1000ull);
	rc = td_setup_signals(td);
	if (rc)
		return rc;
	td->io = td_io_new(td->loop, td->io_kind, TD_IO_DEPTH);
	if (!td->io) {
		td_err("%s: no I/O engine: %s", td->image_name,
		       strerror(errno));
		return -errno;
	}
	td->serving = strdup(td->image_name);
	if (!td->serving)
		return -ENOMEM;
	rc = td_image_open_chain(td->image_name,
				 td->readonly ? TD_OPEN_RDONLY : 0, td->loop,
				 td->io, &td->chain);
	if (rc)
		return rc;
	snprintf(ident, sizeof(ident), "tapdisk[%s]", td->chain->name);
	td_log_set_ident(ident);
	td->vbd = td_vbd_new(td->loop, td->chain,
			     td->readonly ? TD_VBD_RDONLY : 0,
			     td->max_inflight);
	if (!td->vbd)
		return -errno;
	for (i = 0; i < td->n_nbd; i++) {
		td->nbd[i] = nbd_server_new(td->loop, td->vbd, td->nbd_addrs[i],
					    &nopts);
		if (!td->nbd[i])
			return -errno;
	}
	if (td->fuse_path) {
		struct fuse_export_opts fopts = { .readonly = td->readonly };

		td->fuse = fuse_export_new(td->loop, td->vbd, td->fuse_path,
					   &fopts);
		if (!td->fuse)
			return -errno;
	}
	if (td->ublk_on) {
		struct ublk_export_opts uopts = {
			.dev_id = td->ublk_id,
			.recover_id = td->ublk_recover,
			.readonly = td->readonly,
			.started = td_ublk_started,
			.started_data = td,
		};

		td->ublk = ublk_export_new(td->loop, td->vbd, &uopts);
		if (!td->ublk)
			return -errno;
	}
	if (td->xen_path) {
		td->xen = xenblk_backend_new(td->loop, td->vbd, td->xen_path,
					     td_xen_removed, td);
		if (!td->xen)
			return -errno;
	}
	/* with ublk, serving begins once the kernel has started the device */
	if (!td->ublk) {
		rc = td_serving(td);
		if (rc)
			return rc;
	}
	td_info("serving %llu bytes%s with %s I/O on %d NBD export%s",
		(unsigned long long)td_vbd_size(td->vbd),
		td_vbd_readonly(td->vbd) ? " read-only" : "",
		td_io_name(td->io), td->n_nbd, td->n_nbd == 1 ? "" : "s");
	for (i = 0; i < td->n_nbd; i++)
		td_info("NBD export on %s", nbd_server_address(td->nbd[i]));
	return 0;
}

static void td_cleanup(struct tapdisk *td)
{
	int i;

	td_control_free(td->control);
	for (i = 0; i < td->n_nbd; i++)
		if (td->nbd[i])
			nbd_server_free(td->nbd[i]);
	fuse_export_free(td->fuse);
	ublk_export_free(td->ublk);
	xenblk_backend_free(td->xen);
	if (td->vbd)
		td_vbd_free(td->vbd);
	td_image_close_chain(td->chain);
	free(td->serving);
	if (td->io)
		td_io_free(td->io);
	if (td->sigwatch)
		td_watch_remove(td->sigwatch);
	if (td->sigfd >= 0)
		close(td->sigfd);
	if (td->loop)
		td_loop_free(td->loop);
	td_buf_trim();
}

int main(int argc, char **argv)
{
	struct tapdisk td = {
		.io_kind = TD_IO_AUTO,
		.log_level = LOG_INFO,
		.sigfd = -1,
		.ready_fd = -1,
		.poll_us = TD_POLL_US_DEFAULT,
		.ublk_id = -1,
		.ublk_recover = -1,
	};
	int rc;

	rc = parse_args(&td, argc, argv);
	if (rc)
		return rc;
	td_log_open("tapdisk", !td.use_syslog, td.log_level);
	if (td.n_nbd == 0 && !td.fuse_path && !td.ublk_on && !td.xen_path &&
	    !td.control_path)
		td_warn("%s: no --nbd, --fuse or --ublk export and no --control "
			"socket: "
			"nothing can reach this disk",
			td.image_name);
	if (td.daemonize) {
		td.ready_fd = td_daemonize();
		if (td.ready_fd < 0) {
			td_err("cannot detach: %s", strerror(-td.ready_fd));
			return 1;
		}
	}
	rc = td_start(&td);
	if (rc) {
		td_daemon_ready(td.ready_fd, 1);
		td_cleanup(&td);
		return 1;
	}
	rc = td_loop_run(td.loop);
	if (rc) {
		td_err("event loop failed: %s", strerror(-rc));
		td.exit_code = 1;
	}
	/* stopped before it ever served (its ublk device never started) */
	td_daemon_ready(td.ready_fd, 1);
	td_cleanup(&td);
	if (!td.exit_code)
		td_info("clean shutdown");
	return td.exit_code;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-ctl: the command-line client of blktapctrl. Each command is one
 * request on the daemon's control socket; --json prints the reply as it
 * came, for scripts, and the default output is columns for people.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "client.h"

#define TAPCTL_SOCKET "/run/blktap/ctl.sock"
/* create waits for tapdisk to start, pause for in-flight I/O to drain */
#define TAPCTL_TIMEOUT_MS 120000

struct tapctl {
	const char *socket;
	bool json;
	int minor;
	const char *image;
	const char *nbd[16];
	int n_nbd;
	const char *fuse;
	bool ublk;
	int ublk_id; /* -1: any */
	bool readonly;
	const char *restart;
};

struct tapctl_cmd {
	const char *name;
	const char *args; /* for the usage line */
	const char *help;
	int (*fn)(struct tapctl *t);
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tap-ctl [--socket PATH] COMMAND [OPTIONS]\n"
		"Control the tapdisks of blktapctrl.\n"
		"\n"
		"Commands:\n"
		"  create [-R] [--nbd ADDR]... [--fuse FILE] [--ublk] "
		"[--restart on-failure] TYPE:PATH\n"
		"                         start a tapdisk; prints its minor "
		"and exports\n"
		"  list [--json]          every disk: minor, pid, state, image, "
		"exports\n"
		"  destroy -m N           stop disk N and forget it\n"
		"  pause -m N             drain disk N's I/O and close its "
		"image\n"
		"  unpause -m N [-a TYPE:PATH]\n"
		"                         reopen it (or another image of the "
		"same size)\n"
		"  stats -m N [--json]    disk N's I/O counters and latencies\n"
		"  info -m N [--json]     disk N's image, size, engine, "
		"exports\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH  blktapctrl's socket (default "
		"$BLKTAPCTRL_SOCKET or %s)\n"
		"  -j, --json         print the daemon's reply as JSON\n"
		"  -h, --help         this help (tap-ctl COMMAND --help: the "
		"command's)\n"
		"\n"
		"ADDR is unix:PATH or tcp:HOST:PORT. Exit status: 0 on success, "
		"1 when\n"
		"the request fails, 2 on a usage error. See tap-ctl(8).\n",
		TAPCTL_SOCKET);
}

static int tapctl_request(struct tapctl *t, struct json_object *req,
			  struct json_object **reply)
{
	int rc = ctl_call(t->socket, req, TAPCTL_TIMEOUT_MS, reply);

	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		fprintf(stderr,
			"tap-ctl: cannot reach blktapctrl at %s: is it "
			"running?\n",
			t->socket);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tap-ctl: cannot reach blktapctrl at %s: %s\n",
			t->socket,
			rc == -EACCES ? "permission denied (root only)" :
					strerror(-rc));
		return 1;
	}
	if (!ctl_reply_ok(*reply)) {
		if (t->json)
			printf("%s\n",
			       json_object_to_json_string_ext(
				       *reply,
				       JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
		fprintf(stderr, "tap-ctl: %s\n", ctl_reply_error(*reply));
		json_object_put(*reply);
		*reply = NULL;
		return 1;
	}
	if (t->json)
		printf("%s\n",
		       json_object_to_json_string_ext(
			       *reply, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
	return 0;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return "-";
	return json_object_get_string(v);
}

/* present and not null (tapdisk says "ublk":null when it has none) */
static bool jhas(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && v;
}

static long long jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ?
		       json_object_get_int64(v) :
		       0;
}

/* "a,b,c" of a JSON array of strings, "-" for none. */
static void jjoin(struct json_object *o, const char *key, char *buf, size_t len)
{
	struct json_object *a;
	size_t i, off = 0;

	buf[0] = '\0';
	if (json_object_object_get_ex(o, key, &a) &&
	    json_object_is_type(a, json_type_array))
		for (i = 0; i < json_object_array_length(a) && off < len; i++)
			off += snprintf(
				buf + off, len - off, "%s%s", off ? "," : "",
				json_object_get_string(
					json_object_array_get_idx(a, i)));
	if (!buf[0])
		snprintf(buf, len, "-");
}

static int tapctl_minor_req(struct tapctl *t, const char *command,
			    struct json_object **reply)
{
	struct json_object *req = ctl_request(command);

	json_object_object_add(req, "minor", json_object_new_int(t->minor));
	if (t->image)
		json_object_object_add(req, "image",
				       json_object_new_string(t->image));
	return tapctl_request(t, req, reply);
}

static int cmd_create(struct tapctl *t)
{
	struct json_object *req = ctl_request("create"), *reply, *nbd;
	char exports[4096];
	int i, rc;

	nbd = json_object_new_array();
	for (i = 0; i < t->n_nbd; i++)
		json_object_array_add(nbd, json_object_new_string(t->nbd[i]));
	json_object_object_add(req, "image", json_object_new_string(t->image));
	json_object_object_add(req, "nbd", nbd);
	if (t->fuse)
		json_object_object_add(req, "fuse",
				       json_object_new_string(t->fuse));
	if (t->ublk)
		json_object_object_add(req, "ublk", json_object_new_boolean(1));
	if (t->ublk_id >= 0)
		json_object_object_add(req, "ublk_id",
				       json_object_new_int(t->ublk_id));
	json_object_object_add(req, "readonly",
			       json_object_new_boolean(t->readonly));
	json_object_object_add(req, "restart",
			       json_object_new_string(t->restart ? t->restart :
								   "no"));
	rc = tapctl_request(t, req, &reply);
	if (rc || t->json)
		goto out;
	jjoin(reply, "exports", exports, sizeof(exports));
	printf("minor    %lld\npid      %lld\nimage    %s\nexports  %s\n",
	       jint(reply, "minor"), jint(reply, "pid"), jstr(reply, "image"),
	       exports);
	if (json_object_object_get_ex(reply, "fuse", NULL))
		printf("fuse     %s\n", jstr(reply, "fuse"));
	if (jhas(reply, "ublk"))
		printf("ublk     %s\n", jstr(reply, "ublk"));
out:
	json_object_put(reply);
	return rc;
}

/* Its ublk block device, as one more export: "/dev/ublkbN". */
static void ublk_export(struct json_object *d, char *buf, size_t len)
{
	struct json_object *v;
	size_t off = strcmp(buf, "-") ? strlen(buf) : 0;

	if (!json_object_object_get_ex(d, "ublk", &v) || !v || off >= len)
		return;
	snprintf(buf + off, len - off, "%s%s", off ? "," : "",
		 json_object_get_string(v));
}

/*
 * A Xen device it serves, as one more export: "xen:vbd/DOMID/DEVID", the
 * backend directory past the serving domain's "backend/".
 */
static void xen_export(struct json_object *d, char *buf, size_t len)
{
	struct json_object *v;
	const char *xen, *be;
	size_t off = strcmp(buf, "-") ? strlen(buf) : 0;

	if (!json_object_object_get_ex(d, "xen", &v) || off >= len)
		return;
	xen = json_object_get_string(v);
	be = strstr(xen, "/backend/");
	snprintf(buf + off, len - off, "%sxen:%s", off ? "," : "",
		 be ? be + 9 : xen);
}

static int cmd_list(struct tapctl *t)
{
	static const char *const head[] = { "MINOR",	"PID",	 "STATE",
					    "RESTARTS", "IMAGE", "EXPORTS" };
	struct json_object *reply, *disks, *d;
	char cell[6][4096];
	size_t w[6], i, n;
	int rc, c, pass;

	rc = tapctl_request(t, ctl_request("list"), &reply);
	if (rc || t->json)
		goto out;
	if (!json_object_object_get_ex(reply, "disks", &disks)) {
		fprintf(stderr, "tap-ctl: list: reply without \"disks\"\n");
		rc = 1;
		goto out;
	}
	n = json_object_array_length(disks);
	for (c = 0; c < 6; c++)
		w[c] = strlen(head[c]);
	/* two passes: measure the columns, then print */
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0],
			       head[0], (int)w[1], head[1], (int)w[2], head[2],
			       (int)w[3], head[3], (int)w[4], head[4], head[5]);
		for (i = 0; i < n; i++) {
			d = json_object_array_get_idx(disks, i);
			snprintf(cell[0], sizeof(cell[0]), "%lld",
				 jint(d, "minor"));
			if (jint(d, "pid"))
				snprintf(cell[1], sizeof(cell[1]), "%lld",
					 jint(d, "pid"));
			else
				snprintf(cell[1], sizeof(cell[1]), "-");
			snprintf(cell[2], sizeof(cell[2]), "%s",
				 jstr(d, "state"));
			snprintf(cell[3], sizeof(cell[3]), "%lld",
				 jint(d, "restarts"));
			snprintf(cell[4], sizeof(cell[4]), "%s",
				 jstr(d, "image"));
			jjoin(d, "exports", cell[5], sizeof(cell[5]));
			ublk_export(d, cell[5], sizeof(cell[5]));
			xen_export(d, cell[5], sizeof(cell[5]));
			if (!pass) {
				for (c = 0; c < 6; c++)
					if (strlen(cell[c]) > w[c])
						w[c] = strlen(cell[c]);
				continue;
			}
			printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0],
			       cell[0], (int)w[1], cell[1], (int)w[2], cell[2],
			       (int)w[3], cell[3], (int)w[4], cell[4], cell[5]);
			if (*jstr(d, "reason") &&
			    strcmp(jstr(d, "state"), "running") &&
			    strcmp(jstr(d, "state"), "paused"))
				printf("%*s  reason: %s\n", (int)w[0], "",
				       jstr(d, "reason"));
		}
	}
out:
	json_object_put(reply);
	return rc;
}

static int cmd_simple(struct tapctl *t, const char *command, const char *done)
{
	struct json_object *reply;
	int rc = tapctl_minor_req(t, command, &reply);

	if (!rc && !t->json)
		printf("disk %d %s\n", t->minor, done);
	json_object_put(reply);
	return rc;
}

static int cmd_destroy(struct tapctl *t)
{
	return cmd_simple(t, "destroy", "destroyed");
}

static int cmd_pause(struct tapctl *t)
{
	return cmd_simple(t, "pause", "paused");
}

static int cmd_unpause(struct tapctl *t)
{
	return cmd_simple(t, "resume", "resumed");
}

static int cmd_stats(struct tapctl *t)
{
	struct json_object *reply, *stats, *ops;
	int rc = tapctl_minor_req(t, "stats", &reply);

	if (rc || t->json)
		goto out;
	if (!json_object_object_get_ex(reply, "stats", &stats) ||
	    !json_object_object_get_ex(stats, "ops", &ops)) {
		fprintf(stderr, "tap-ctl: stats: reply without \"stats\"\n");
		rc = 1;
		goto out;
	}
	printf("disk %d  %s  uptime %llds  inflight %lld  queued %lld\n",
	       t->minor, jstr(reply, "image"), jint(stats, "uptime_s"),
	       jint(stats, "inflight"), jint(stats, "queued"));
	printf("%-13s %12s %16s %8s %10s %10s %10s\n", "OP", "REQUESTS",
	       "BYTES", "ERRORS", "AVG_US", "P50_US", "P99_US");
	json_object_object_foreach(ops, name, op)
	{
		printf("%-13s %12lld %16lld %8lld %10lld %10lld %10lld\n", name,
		       jint(op, "requests"), jint(op, "bytes"),
		       jint(op, "errors"), jint(op, "latency_avg_us"),
		       jint(op, "latency_p50_us"), jint(op, "latency_p99_us"));
	}
out:
	json_object_put(reply);
	return rc;
}

static int cmd_info(struct tapctl *t)
{
	struct json_object *reply;
	char buf[4096];
	int rc = tapctl_minor_req(t, "info", &reply);

	if (rc || t->json)
		goto out;
	printf("minor      %d\n", t->minor);
	printf("state      %s\n", jstr(reply, "state"));
	printf("pid        %lld\n", jint(reply, "pid"));
	printf("image      %s\n", jstr(reply, "image"));
	printf("size       %lld\n", jint(reply, "size"));
	printf("readonly   %s\n", jstr(reply, "readonly"));
	printf("io_engine  %s\n", jstr(reply, "io_engine"));
	jjoin(reply, "chain", buf, sizeof(buf));
	printf("chain      %s\n", buf);
	jjoin(reply, "nbd", buf, sizeof(buf));
	printf("nbd        %s\n", buf);
	if (jhas(reply, "ublk"))
		printf("ublk       %s\n", jstr(reply, "ublk"));
out:
	json_object_put(reply);
	return rc;
}

static const struct tapctl_cmd tapctl_cmds[] = {
	{ "create",
	  "[-R|--readonly] [-n|--nbd ADDR]... [-f|--fuse FILE] "
	  "[-u|--ublk] [--ublk-id N] [-r|--restart no|on-failure] TYPE:PATH",
	  "Start a tapdisk serving TYPE:PATH; print its minor and exports.\n"
	  "--ublk also makes it the block device /dev/ublkbN (--ublk-id: "
	  "that N);\nwith --restart on-failure a restarted tapdisk takes the "
	  "device over.",
	  cmd_create },
	{ "list", "[-j|--json]", "List every disk blktapctrl knows.",
	  cmd_list },
	{ "destroy", "-m N", "Stop disk N's tapdisk and forget the disk.",
	  cmd_destroy },
	{ "pause", "-m N",
	  "Finish disk N's in-flight I/O and close its image; clients stay "
	  "connected.",
	  cmd_pause },
	{ "unpause", "-m N [-a TYPE:PATH]",
	  "Reopen disk N's image, or TYPE:PATH (same size) instead.",
	  cmd_unpause },
	{ "stats", "-m N [-j|--json]", "Disk N's I/O statistics.", cmd_stats },
	{ "info", "-m N [-j|--json]", "Disk N's image, size and exports.",
	  cmd_info },
};

static const struct tapctl_cmd *tapctl_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(tapctl_cmds) / sizeof(*tapctl_cmds); i++)
		if (!strcmp(tapctl_cmds[i].name, name))
			return &tapctl_cmds[i];
	return NULL;
}

static void cmd_usage(FILE *f, const struct tapctl_cmd *cmd)
{
	fprintf(f, "Usage: tap-ctl %s %s\n%s\n", cmd->name, cmd->args,
		cmd->help);
}

static int parse_minor(const char *s, int *minor)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || *end || end == s || n < 0 || n > 1 << 20)
		return -EINVAL;
	*minor = n;
	return 0;
}

/* Parse one command's options; 0 to run it, else the exit status. */
static int parse_cmd(struct tapctl *t, const struct tapctl_cmd *cmd, int argc,
		     char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "minor", required_argument, NULL, 'm' },
		{ "image", required_argument, NULL, 'a' },
		{ "readonly", no_argument, NULL, 'R' },
		{ "nbd", required_argument, NULL, 'n' },
		{ "fuse", required_argument, NULL, 'f' },
		{ "restart", required_argument, NULL, 'r' },
		{ "ublk", no_argument, NULL, 'u' },
		{ "ublk-id", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool is_create = cmd->fn == cmd_create;
	bool has_minor = !is_create && cmd->fn != cmd_list;
	bool minor_set = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:jm:a:Rn:f:r:uh", opts, NULL)) !=
	       -1) {
		/* options that belong to another command are usage errors */
		if ((strchr("RnfruU", c) && !is_create) ||
		    (c == 'm' && !has_minor) ||
		    (c == 'a' && cmd->fn != cmd_unpause))
			c = '?';
		switch (c) {
		case 's':
			t->socket = optarg;
			break;
		case 'j':
			t->json = true;
			break;
		case 'm':
			if (parse_minor(optarg, &t->minor)) {
				fprintf(stderr,
					"tap-ctl %s: -m: '%s' is not a "
					"minor number\n",
					cmd->name, optarg);
				return 2;
			}
			minor_set = true;
			break;
		case 'a':
			t->image = optarg;
			break;
		case 'R':
			t->readonly = true;
			break;
		case 'n':
			if (t->n_nbd == 16) {
				fprintf(stderr, "tap-ctl: at most 16 --nbd\n");
				return 2;
			}
			t->nbd[t->n_nbd++] = optarg;
			break;
		case 'f':
			t->fuse = optarg;
			break;
		case 'u':
			t->ublk = true;
			break;
		case 'U':
			if (parse_minor(optarg, &t->ublk_id)) {
				fprintf(stderr,
					"tap-ctl create: --ublk-id: '%s' is "
					"not a device number\n",
					optarg);
				return 2;
			}
			t->ublk = true;
			break;
		case 'r':
			if (strcmp(optarg, "no") &&
			    strcmp(optarg, "on-failure")) {
				fprintf(stderr,
					"tap-ctl create: --restart: '%s' is "
					"neither no nor on-failure\n",
					optarg);
				return 2;
			}
			t->restart = optarg;
			break;
		case 'h':
			cmd_usage(stdout, cmd);
			return -1;
		default:
			cmd_usage(stderr, cmd);
			return 2;
		}
	}
	if (is_create && optind == argc - 1) {
		t->image = argv[optind++];
	} else if (is_create) {
		fprintf(stderr, "tap-ctl create: %s\n",
			optind == argc ? "no image (TYPE:PATH) given" :
					 "one image per disk");
		cmd_usage(stderr, cmd);
		return 2;
	}
	if (optind != argc) {
		fprintf(stderr, "tap-ctl %s: unexpected argument '%s'\n",
			cmd->name, argv[optind]);
		cmd_usage(stderr, cmd);
		return 2;
	}
	if (has_minor && !minor_set) {
		fprintf(stderr, "tap-ctl %s: which disk? (-m N)\n", cmd->name);
		cmd_usage(stderr, cmd);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct tapctl t = { .socket = getenv("BLKTAPCTRL_SOCKET"),
			    .ublk_id = -1 };
	const struct tapctl_cmd *cmd;
	int i = 1, rc;

	if (!t.socket || !*t.socket)
		t.socket = TAPCTL_SOCKET;
	/* options before the command: --socket, --json, --help */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-j") ||
			   !strcmp(argv[i], "--json")) {
			t.json = true;
		} else if ((!strcmp(argv[i], "-s") ||
			    !strcmp(argv[i], "--socket")) &&
			   i + 1 < argc) {
			t.socket = argv[++i];
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			t.socket = argv[i] + 9;
		} else {
			fprintf(stderr, "tap-ctl: unknown option %s\n",
				argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i == argc) {
		fprintf(stderr, "tap-ctl: no command given\n");
		usage(stderr);
		return 2;
	}
	cmd = tapctl_find(argv[i]);
	if (!cmd) {
		fprintf(stderr, "tap-ctl: unknown command '%s'\n", argv[i]);
		usage(stderr);
		return 2;
	}
	rc = parse_cmd(&t, cmd, argc - i, argv + i);
	if (rc)
		return rc < 0 ? 0 : rc;
	return cmd->fn(&t);
}

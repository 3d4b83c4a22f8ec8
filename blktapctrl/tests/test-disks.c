// SPDX-License-Identifier: GPL-2.0-only
/*
 * The disk table and its state files: minors handed out lowest first, and
 * a state file read back into the same disk, as a restarted daemon does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blktapctrl.h"
#include "log.h"
#include "tap.h"

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_minors(struct ctl_daemon *d)
{
	struct disk *a = disk_new(d, "ram:a"), *b = disk_new(d, "ram:b");
	struct disk *c = disk_new(d, "ram:c"), *e;

	is(a->minor, 0, "first disk gets minor 0");
	is(c->minor, 2, "third disk gets minor 2");
	disk_free(b);
	e = disk_new(d, "ram:e");
	is(e->minor, 1, "a freed minor is handed out again first");
	ok(disk_get(d, 1) == e && !disk_get(d, 3) && !disk_get(d, -1) &&
		   !disk_get(d, DISK_MAX_MINORS),
	   "disk_get finds by minor, NULL outside the table");
	disk_free(a);
	disk_free(c);
	disk_free(e);
}

static void test_roundtrip(struct ctl_daemon *d)
{
	struct disk *a = disk_new(d, "aio:/srv/a b.raw"), *r;
	char path[4096], buf[256];

	disk_add_export(a, "unix:/run/a.sock");
	disk_add_export(a, "tcp:127.0.0.1:10809");
	a->fuse = strdup("/mnt/a");
	a->opened = strdup("aio:/srv/a b.raw");
	a->readonly = true;
	a->restart = DISK_RESTART_ON_FAILURE;
	a->state = DISK_PAUSED;
	a->paused = true;
	a->pid = 4242;
	a->pid_start = 123456789012ull;
	a->restarts = 3;
	a->started = 1700000000;
	snprintf(a->reason, sizeof(a->reason), "killed by \"signal\" 9");
	is(disk_save(a), 0, "state file written");
	snprintf(path, sizeof(path), "%s/disk-0.json.tmp", d->run_dir);
	ok(access(path, F_OK) != 0, "no temporary file left behind");
	disk_free(a);

	is(disk_load_all(d), 0, "state files read");
	r = disk_get(d, 0);
	ok(r != NULL, "the disk is back under its minor");
	if (!r)
		return;
	ok(!strcmp(r->image, "aio:/srv/a b.raw"), "image");
	is(r->n_nbd, 2, "both exports");
	ok(!strcmp(disk_exports_str(r, buf, sizeof(buf)),
		   "unix:/run/a.sock,tcp:127.0.0.1:10809,fuse:/mnt/a"),
	   "exports in order, with the FUSE file: %s", buf);
	ok(r->readonly && r->paused && r->restart == DISK_RESTART_ON_FAILURE,
	   "readonly, paused, restart policy");
	is(r->state, DISK_PAUSED, "state");
	is(r->pid, 4242, "pid");
	ok(r->pid_start == 123456789012ull, "pid start time");
	is(r->restarts, 3, "restart count");
	is(r->started, 1700000000, "start time");
	ok(!strcmp(r->reason, "killed by \"signal\" 9"), "reason");
	ok(r->opened && !strcmp(r->opened, "aio:/srv/a b.raw"),
	   "the name tapdisk reported");
	ok(!disk_get(d, 5) && !disk_get(d, 6) && !disk_get(d, 7),
	   "broken, mismatched and imageless state files are skipped");
	disk_remove_state(r);
	ok(access(path, F_OK) != 0 &&
		   (snprintf(path, sizeof(path), "%s/disk-0.json", d->run_dir),
		    access(path, F_OK) != 0),
	   "disk_remove_state removes the file");
	disk_free(r);
}

static void test_json(struct ctl_daemon *d)
{
	struct disk *a = disk_new(d, "ram:?size=1M");
	struct json_object *o = disk_to_json(a), *v;

	ok(json_object_object_get_ex(o, "state", &v) &&
		   !strcmp(json_object_get_string(v), "running"),
	   "a new disk lists as running");
	ok(json_object_object_get_ex(o, "restart", &v) &&
		   !strcmp(json_object_get_string(v), "no"),
	   "restart policy defaults to no");
	ok(!json_object_object_get_ex(o, "pid_start", NULL) &&
		   !json_object_object_get_ex(o, "opened", NULL),
	   "list does not show the state file's internals");
	json_object_put(o);
	disk_free(a);
}

int main(void)
{
	char dir[] = "/tmp/blktapctrl-test.XXXXXX";
	struct ctl_daemon d = { 0 };
	char cmd[256];

	td_log_open("test-disks", true, LOG_ERR);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	d.run_dir = dir;
	test_minors(&d);
	write_file(dir, "disk-5.json", "{ not json");
	write_file(dir, "disk-6.json", "{\"minor\":7,\"image\":\"ram:x\"}");
	write_file(dir, "disk-7.json", "{\"minor\":7}");
	write_file(dir, "disk-8.json.tmp", "{\"minor\":8,\"image\":\"ram:x\"}");
	test_roundtrip(&d);
	ok(!disk_get(&d, 8), "a temporary file is not a state file");
	test_json(&d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		diag("cannot remove %s", dir);
	return tap_done();
}

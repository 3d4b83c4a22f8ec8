// SPDX-License-Identifier: GPL-2.0-only
/*
 * The FUSE export in-process on a RAM disk. A forked child is the client:
 * it makes ordinary system calls on the file, which this process serves
 * from its event loop, and reports its TAP counts back through a pipe.
 * Needs root and /dev/fuse; skipped without them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "fuse-export.h"
#include "image.h"
#include "log.h"
#include "loop.h"
#include "tap.h"
#include "test-util.h"
#include "vbd.h"

#define DISK_SIZE (16u << 20)
#define WAIT_MS 20000
#define READERS 16

static struct td_loop *loop;
static struct td_vbd *vbd;
static char dir[64], path[128];

struct child_result {
	int n, failed;
};

/* Run fn in a child while this process serves the file. */
static void run_client(void (*fn)(void))
{
	struct child_result r = { 0, 0 };
	uint64_t end = td_now_ns() + WAIT_MS * 1000000ull;
	int p[2], status;
	pid_t pid;

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) || (pid = fork()) < 0) {
		ok(0, "fork a client");
		return;
	}
	if (!pid) {
		close(p[0]);
		fn();
		r.n = tap_n;
		r.failed = tap_failed;
		if (write(p[1], &r, sizeof(r)) != sizeof(r))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	while (read(p[0], &r, sizeof(r)) != sizeof(r) && td_now_ns() < end)
		td_loop_once(loop, 5);
	close(p[0]);
	waitpid(pid, &status, 0);
	if (!r.n) {
		ok(0, "the client reported back");
		return;
	}
	tap_n = r.n;
	tap_failed = r.failed;
}

static bool all_zero(const unsigned char *b, size_t n)
{
	while (n--)
		if (*b++)
			return false;
	return true;
}

static void client_rw(void)
{
	unsigned char *buf, *got;
	struct stat st;
	int fd, dfd;

	ok(!stat(path, &st), "stat the file");
	is(st.st_size, DISK_SIZE, "size is the disk's");
	is(st.st_mode, S_IFREG | 0600, "a regular file, mode 0600");
	ok(st.st_uid == 0 && st.st_gid == 0, "owned by root");

	buf = td_buf_get(1 << 20);
	got = td_buf_get(1 << 20);
	for (int i = 0; i < 1 << 20; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	dfd = open(path, O_RDWR | O_DIRECT);
	fd = open(path, O_RDWR);
	ok(dfd >= 0 && fd >= 0, "open O_RDWR and O_RDWR|O_DIRECT");
	is(pwrite(dfd, buf, 1 << 20, 1 << 20), 1 << 20, "1 MiB O_DIRECT write");
	is(pread(dfd, got, 1 << 20, 1 << 20), 1 << 20, "1 MiB O_DIRECT read");
	ok(!memcmp(buf, got, 1 << 20), "read back what was written");
	is(pwrite(fd, buf, 1000, 513), 1000, "unaligned write");
	is(pread(fd, got, 1002, 512), 1002, "unaligned read");
	ok(got[0] == 0 && !memcmp(got + 1, buf, 1000) && got[1001] == 0,
	   "unaligned data in place, neighbours untouched");

	is(pread(fd, got, 4096, DISK_SIZE), 0, "read at the end: nothing");
	is(pread(fd, got, 8192, DISK_SIZE - 4096), 4096,
	   "read across the end is short");
	errno = 0;
	is(pwrite(fd, buf, 4096, DISK_SIZE), -1, "write at the end fails");
	is(errno, ENOSPC, "with ENOSPC");
	is(pwrite(fd, buf, 8192, DISK_SIZE - 4096), 4096,
	   "write across the end is short");
	is(fsync(fd), 0, "fsync");
	is(fdatasync(dfd), 0, "fdatasync");

	memset(buf, 0xaa, 1 << 20);
	is(pwrite(dfd, buf, 1 << 20, 0), 1 << 20, "fill the first MiB");
	is(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096,
		     65536),
	   0, "punch a hole");
	is(fallocate(fd, FALLOC_FL_ZERO_RANGE, 100001, 5000), 0,
	   "zero an unaligned range");
	is(pread(dfd, got, 1 << 20, 0), 1 << 20, "read the first MiB");
	ok(all_zero(got + 4096, 65536) && got[4095] == 0xaa &&
		   got[4096 + 65536] == 0xaa,
	   "the hole reads zeroes, its edges are kept");
	ok(all_zero(got + 100001, 5000) && got[100000] == 0xaa &&
		   got[105001] == 0xaa,
	   "the zeroed range reads zeroes, its edges are kept");
	errno = 0;
	ok(fallocate(fd, 0, DISK_SIZE - 4096, 8192) && errno == EFBIG,
	   "allocating past the end: EFBIG");
	errno = 0;
	ok(fallocate(fd, FALLOC_FL_ZERO_RANGE, DISK_SIZE - 4096, 8192) &&
		   errno == EFBIG,
	   "zeroing past the end without KEEP_SIZE: EFBIG");
	is(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		     DISK_SIZE - 4096, 8192),
	   0, "zeroing past the end with KEEP_SIZE is clipped");
	is(fallocate(fd, 0, 0, 4096), 0, "allocating inside the disk");
	errno = 0;
	ok(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 1 << 20) &&
		   errno == EOPNOTSUPP,
	   "collapse range: EOPNOTSUPP");

	is(truncate(path, DISK_SIZE), 0, "truncate to the same size");
	errno = 0;
	ok(truncate(path, 0) && errno == EPERM, "truncate to 0: EPERM");
	errno = 0;
	ok(ftruncate(fd, DISK_SIZE * 2) && errno == EPERM, "extending: EPERM");
	errno = 0;
	ok(chmod(path, 0644) && errno == EPERM, "chmod: EPERM");
	ok(!stat(path, &st) && st.st_size == DISK_SIZE, "size unchanged");
	close(fd);
	close(dfd);
	td_buf_put(buf, 1 << 20);
	td_buf_put(got, 1 << 20);
}

static void *reader(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	void *b = td_buf_get(65536);
	int fd = open(path, O_RDONLY | O_DIRECT);
	long bad = 0;

	for (int k = 0; k < 32; k++)
		bad += pread(fd, b, 65536,
			     (off_t)((i * 32 + k) % 256) * 65536) != 65536;
	close(fd);
	td_buf_put(b, 65536);
	return (void *)bad;
}

static void client_parallel(void)
{
	pthread_t t[READERS];
	long bad = 0;

	for (uintptr_t i = 0; i < READERS; i++)
		pthread_create(&t[i], NULL, reader, (void *)i);
	for (int i = 0; i < READERS; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad += (long)r;
	}
	is(bad, 0, "%d threads reading at once", READERS);
}

static void client_ro(void)
{
	struct stat st;
	char b[512];
	int fd;

	ok(!stat(path, &st) && st.st_mode == (S_IFREG | 0400),
	   "read-only: mode 0400");
	errno = 0;
	ok(open(path, O_RDWR) < 0 && errno == EROFS,
	   "read-only: opening for writing fails with EROFS");
	fd = open(path, O_RDONLY);
	is(pread(fd, b, sizeof(b), 0), sizeof(b), "read-only: reads work");
	close(fd);
}

static void client_stat(void)
{
	struct stat st;

	ok(!stat(path, &st) && st.st_size == DISK_SIZE,
	   "served again after the stale mount was detached");
}

static void set_flag(struct td_loop *l, void *data)
{
	*(bool *)data = true;
}

/* From the mount table: a stat of the file would wait for this process. */
static bool is_mounted(const char *p)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024], mnt[512];
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1 &&
			!strcmp(mnt, p);
	if (f)
		fclose(f);
	return found;
}

static void client_busy(void)
{
	struct td_loop *l = td_loop_new();

	errno = 0;
	ok(!fuse_export_new(l, vbd, path, NULL) && errno == EBUSY,
	   "a second export on a live mount: EBUSY");
}

/* A killed tapdisk: a child mounts the file and exits without unmounting. */
static void make_stale_mount(void)
{
	pid_t pid = fork();

	if (!pid) {
		struct td_loop *l = td_loop_new();

		_exit(l && fuse_export_new(l, vbd, path, NULL) ? 0 : 1);
	}
	waitpid(pid, NULL, 0);
}

int main(void)
{
	struct fuse_export_opts ro = { .readonly = true };
	struct fuse_export *exp, *exp2;
	struct td_image *img;
	struct stat st;
	bool done = false;
	unsigned max;
	int fds;

	if (geteuid() || access("/dev/fuse", R_OK | W_OK)) {
		printf("1..0 # SKIP needs root and /dev/fuse\n");
		return 0;
	}
	td_log_open("test-fuse", true, LOG_CRIT);
	snprintf(dir, sizeof(dir), "/var/tmp/test-fuse.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/disk", dir);
	loop = td_loop_new();
	if (td_image_open_chain("ram:?size=16M", 0, loop, NULL, &img))
		return 1;
	vbd = td_vbd_new(loop, img, 0, 64);
	fds = tu_count_fds();

	exp = fuse_export_new(loop, vbd, path, NULL);
	ok(exp != NULL, "export on a missing file");
	ok(is_mounted(path), "mounted over the file");
	run_client(client_rw);
	ok(td_vbd_stats(vbd)->op[TD_OP_FLUSH].reqs >= 2,
	   "fsync and fdatasync reached the vbd");
	run_client(client_parallel);
	max = td_vbd_stats(vbd)->max_inflight_seen;
	ok(max >= 2, "requests in flight at once (up to %u)", max);

	run_client(client_busy);
	fuse_export_shutdown(exp, set_flag, &done);
	ok(done, "an idle shutdown is done at once");
	ok(!is_mounted(path), "unmounted");
	ok(!stat(path, &st) && S_ISREG(st.st_mode) && st.st_size == 0,
	   "an empty regular file again");
	fuse_export_free(exp);

	exp = fuse_export_new(loop, vbd, path, &ro);
	ok(exp != NULL, "read-only export");
	run_client(client_ro);
	fuse_export_free(exp);
	ok(!is_mounted(path), "free unmounts");

	make_stale_mount();
	errno = 0;
	ok(stat(path, &st) && errno == ENOTCONN, "a stale mount: ENOTCONN");
	exp = fuse_export_new(loop, vbd, path, NULL);
	ok(exp != NULL, "an export over a stale mount");
	run_client(client_stat);
	fuse_export_free(exp);
	ok(!is_mounted(path), "nothing left mounted");

	ok(!unlink(path) && !mkdir(path, 0700), "a directory in its place");
	errno = 0;
	exp2 = fuse_export_new(loop, vbd, path, NULL);
	ok(!exp2 && errno == EINVAL, "a directory is refused");
	rmdir(path);

	td_loop_once(loop, 0);
	is(tu_count_fds(), fds, "no fd leaked");
	is(td_vbd_inflight(vbd), 0, "nothing in flight");
	td_vbd_free(vbd);
	td_image_close_chain(img);
	td_loop_free(loop);
	rmdir(dir);
	return tap_done();
}

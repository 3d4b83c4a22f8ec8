// SPDX-License-Identifier: GPL-2.0-only
/*
 * add_vbd_to_dom and remove_vbd_from_dom, as in Xen 1.2, one program that
 * acts by the name it is run as.
 *
 * The VBD is recorded in the pool database first, under the sharing rules
 * (vdisk_vbd_add), then attached. For domain 0 a tapdisk is started by
 * blktapctrl: where the kernel has ublk, as the block device /dev/ublkbN
 * (tap-ctl create --ublk, restarted on failure onto the same device);
 * elsewhere the FUSE file it exports (tap-ctl create --fuse FILE) is put
 * on a direct-I/O loop device. DEVNODE is a symlink to the block device.
 * For other domains xl block-attach does the work. Whatever fails is
 * undone, the record included, so a failed attach leaves nothing behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "vdisk.h"

#define EXIT_USAGE 2
#define VBD_DIR "/run/blktap/vbd"

static const char *prog;

/* Run argv, stdout into out (if given); its exit status, or -1. */
static int vbd_run(char *const argv[], char *out, size_t outlen)
{
	int pfd[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (!pid) {
		dup2(pfd[1], STDOUT_FILENO);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[0],
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	while (out && n + 1 < outlen &&
	       (r = read(pfd[0], out + n, outlen - n - 1)) > 0)
		n += (size_t)r;
	if (out)
		out[n] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* tap-ctl beside this program (the build tree, /usr/sbin), else on PATH. */
static void vbd_tapctl(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	snprintf(buf, len, "tap-ctl");
	if (n <= 0)
		return;
	self[n] = '\0';
	snprintf(buf, len, "%s/tap-ctl", dirname(self));
	if (access(buf, X_OK))
		snprintf(buf, len, "tap-ctl");
}

static bool vbd_have(const char *tool)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* The image tapdisk opens for a target. */
static void vbd_image(struct vdisk_db *db, const char *target, char *buf,
		      size_t len)
{
	if (!strncmp(target, "vd:", 3) && !strchr(target, '?'))
		/* the tapdisk must read the pool this command used */
		snprintf(buf, len, "%s?db=%s", target, vdisk_path(db));
	else if (!strncmp(target, "phy:", 4))
		snprintf(buf, len, "aio:%s", target + 4);
	else
		snprintf(buf, len, "%s", target);
}

struct vbd_dom0 {
	long minor;
	char ublk[32];
	char loop[64];
	char fuse[PATH_MAX];
};

/*
 * ublk when the kernel has it: /dev/ublk-control, or once ublk_drv loads.
 * BLKTAP_DOM0_EXPORT=fuse (or ublk) chooses instead.
 */
static bool vbd_have_ublk(void)
{
	const char *want = getenv("BLKTAP_DOM0_EXPORT");
	char *argv[] = { "modprobe", "-q", "ublk_drv", NULL };
	int i;

	if (want && !strcmp(want, "fuse"))
		return false;
	if (want && !strcmp(want, "ublk"))
		return true;
	if (!access("/dev/ublk-control", F_OK))
		return true;
	if (!vbd_have("modprobe") || vbd_run(argv, NULL, 0))
		return false;
	/* devtmpfs makes the node as the module registers it */
	for (i = 0; i < 40; i++) {
		if (!access("/dev/ublk-control", F_OK))
			return true;
		usleep(50000);
	}
	return false;
}

static void vbd_dom0_undo(const struct vbd_dom0 *d, const char *devnode)
{
	char tapctl[PATH_MAX], minor[24];
	struct stat st;

	if (devnode && !lstat(devnode, &st) && S_ISLNK(st.st_mode))
		unlink(devnode);
	if (d->loop[0]) {
		char *argv[] = { "losetup", "-d", (char *)d->loop, NULL };

		vbd_run(argv, NULL, 0);
	}
	if (d->minor >= 0) {
		char *argv[] = { tapctl, "destroy", "-m", minor, NULL };

		vbd_tapctl(tapctl, sizeof(tapctl));
		snprintf(minor, sizeof(minor), "%ld", d->minor);
		vbd_run(argv, NULL, 0);
	}
	if (d->fuse[0])
		unlink(d->fuse);
}

/*
 * tap-ctl create answers once /dev/ublkbN exists; a tapdisk that dies is
 * restarted onto the same device, which holds the I/O meanwhile.
 */
static int vbd_dom0_ublk(const struct vdisk_vbd *v, const char *image,
			 struct vbd_dom0 *d)
{
	char tapctl[PATH_MAX], out[4096], *p;
	char *argv[] = { tapctl,
			 "create",
			 "--ublk",
			 "--restart",
			 "on-failure",
			 v->writable ? (char *)image : "-R",
			 v->writable ? NULL : (char *)image,
			 NULL };

	vbd_tapctl(tapctl, sizeof(tapctl));
	if (vbd_run(argv, out, sizeof(out))) {
		td_err("%s: tap-ctl create --ublk %s failed (is blktapctrl running?)",
		       v->target, image);
		return -EIO;
	}
	p = strstr(out, "minor");
	if (!p || sscanf(p, "minor %ld", &d->minor) != 1) {
		td_err("%s: no minor in tap-ctl's answer: %s", v->target, out);
		return -EPROTO;
	}
	p = strstr(out, "\nublk");
	if (!p || sscanf(p, "\nublk %31s", d->ublk) != 1 ||
	    strncmp(d->ublk, "/dev/ublkb", 10)) {
		d->ublk[0] = '\0';
		td_err("%s: no ublk device in tap-ctl's answer: %s", v->target,
		       out);
		return -EPROTO;
	}
	if (symlink(d->ublk, v->devnode) < 0) {
		td_err("%s: cannot link %s to %s: %s", v->target, v->devnode,
		       d->ublk, strerror(errno));
		return -errno;
	}
	return 0;
}

static int vbd_dom0_attach(struct vdisk_db *db, const struct vdisk_vbd *v,
			   struct vbd_dom0 *d)
{
	char image[PATH_MAX + 64], tapctl[PATH_MAX], out[4096], *p;
	const char *dir = getenv("BLKTAP_VBD_DIR");
	char *name;
	int i;

	if (!dir || !*dir)
		dir = VBD_DIR;
	vbd_image(db, v->target, image, sizeof(image));
	if (vbd_have_ublk())
		return vbd_dom0_ublk(v, image, d);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		td_err("%s: cannot create: %s", dir, strerror(errno));
		return -errno;
	}
	name = strdup(v->devnode);
	if (!name)
		return -ENOMEM;
	snprintf(d->fuse, sizeof(d->fuse), "%s/dom0-%s", dir, basename(name));
	free(name);
	vbd_tapctl(tapctl, sizeof(tapctl));
	{
		char *argv[] = { tapctl,
				 "create",
				 "--fuse",
				 d->fuse,
				 v->writable ? image : "-R",
				 v->writable ? NULL : image,
				 NULL };

		if (vbd_run(argv, out, sizeof(out))) {
			td_err("%s: tap-ctl create --fuse %s %s failed (is blktapctrl running?)",
			       v->target, d->fuse, image);
			d->fuse[0] = '\0';
			return -EIO;
		}
	}
	p = strstr(out, "minor");
	if (!p || sscanf(p, "minor %ld", &d->minor) != 1) {
		td_err("%s: no minor in tap-ctl's answer: %s", v->target, out);
		return -EPROTO;
	}
	/* the FUSE mount may still be settling when create answers */
	for (i = 0; i < 50; i++) {
		char *argv[] = { "losetup",
				 "--find",
				 "--show",
				 "--direct-io=on",
				 v->writable ? d->fuse : "-r",
				 v->writable ? NULL : d->fuse,
				 NULL };

		if (!vbd_run(argv, out, sizeof(out)))
			break;
		usleep(100000);
	}
	if (sscanf(out, "%63s", d->loop) != 1 || strncmp(d->loop, "/dev/", 5)) {
		d->loop[0] = '\0';
		td_err("%s: losetup could not attach %s", v->target, d->fuse);
		return -EIO;
	}
	if (symlink(d->loop, v->devnode) < 0) {
		td_err("%s: cannot link %s to %s: %s", v->target, v->devnode,
		       d->loop, strerror(errno));
		return -errno;
	}
	return 0;
}

static void vbd_xl_spec(struct vdisk_db *db, const struct vdisk_vbd *v,
			char *buf, size_t len)
{
	char *name = strdup(v->devnode);
	const char *vdev = name ? basename(name) : v->devnode;
	const char *access = v->writable ? "rw" : "ro";

	if (!strncmp(v->target, "phy:", 4))
		snprintf(buf, len, "format=raw,vdev=%s,access=%s,target=%s",
			 vdev, access, v->target + 4);
	else if (!strncmp(v->target, "vd:", 3))
		snprintf(
			buf, len,
			"format=raw,vdev=%s,access=%s,script=block-vd,target=%s",
			vdev, access, v->target);
	else
		snprintf(
			buf, len,
			"format=raw,vdev=%s,access=%s,script=block-tap,target=%s",
			vdev, access, v->target);
	free(name);
}

static int vbd_add(struct vdisk_db *db, struct vdisk_vbd *v)
{
	struct vbd_dom0 d = { .minor = -1 };
	char backend[PATH_MAX + 128], domid[24], spec[PATH_MAX + 128];
	int err;

	if (v->domid && !vbd_have("xl")) {
		td_err("%s: attaching to domain %lld needs xl (the Xen toolstack), which is not installed",
		       v->target, (long long)v->domid);
		return -ENOENT;
	}
	if (!v->domid && !access(v->devnode, F_OK)) {
		td_err("%s: %s exists already", v->target, v->devnode);
		return -EEXIST;
	}
	err = vdisk_vbd_add(db, v);
	if (err) {
		td_err("%s", vdisk_errmsg(db));
		return err;
	}
	if (v->domid) {
		char *argv[] = { "xl", "block-attach", domid, spec, NULL };

		snprintf(domid, sizeof(domid), "%lld", (long long)v->domid);
		vbd_xl_spec(db, v, spec, sizeof(spec));
		err = vbd_run(argv, NULL, 0) ? -EIO : 0;
		if (err)
			td_err("%s: xl block-attach %s %s failed", v->target,
			       domid, spec);
		snprintf(backend, sizeof(backend), "xl");
	} else {
		err = vbd_dom0_attach(db, v, &d);
		if (d.ublk[0])
			snprintf(backend, sizeof(backend), "minor=%ld ublk=%s",
				 d.minor, d.ublk);
		else
			snprintf(backend, sizeof(backend),
				 "minor=%ld loop=%s fuse=%s", d.minor, d.loop,
				 d.fuse);
	}
	if (!err)
		err = vdisk_vbd_set_backend(db, v->domid, v->devnode, backend);
	if (!err)
		return 0;
	if (!v->domid)
		vbd_dom0_undo(&d, NULL);
	if (vdisk_vbd_remove(db, v->domid, v->devnode))
		td_err("%s", vdisk_errmsg(db));
	return err;
}

/*
 * The kernel refuses an exclusive open of a block device that is mounted
 * or held by another exclusive user: that one must stay.
 */
static int vbd_ublk_idle(const char *devnode, const char *dev)
{
	int fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);

	if (fd < 0 && errno == EBUSY) {
		td_err("%s: cannot detach %s (still mounted or open?)", devnode,
		       dev);
		return -EBUSY;
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

static int vbd_remove(struct vdisk_db *db, int64_t domid, const char *devnode)
{
	struct vdisk_vbd v;
	int err;

	err = vdisk_vbd_get(db, domid, devnode, &v);
	if (err) {
		td_err("%s", vdisk_errmsg(db));
		return err;
	}
	if (domid) {
		char id[24], *name = strdup(devnode);
		char *argv[] = { "xl", "block-detach", id,
				 name ? basename(name) : (char *)devnode,
				 NULL };

		snprintf(id, sizeof(id), "%lld", (long long)domid);
		err = vbd_have("xl") && !vbd_run(argv, NULL, 0) ? 0 : -EIO;
		if (err)
			td_err("%s: xl block-detach %s failed", devnode, id);
		free(name);
	} else {
		struct vbd_dom0 d = { .minor = -1 };
		const char *b = v.backend ? v.backend : "";
		char loop[64] = "", ublk[32] = "";

		if (sscanf(b, "minor=%ld loop=%63s fuse=%4095s", &d.minor, loop,
			   d.fuse) == 3)
			snprintf(d.loop, sizeof(d.loop), "%s", loop);
		else if (sscanf(b, "minor=%ld ublk=%31s", &d.minor, ublk) == 2)
			snprintf(d.ublk, sizeof(d.ublk), "%s", ublk);
		if (d.ublk[0])
			err = vbd_ublk_idle(devnode, d.ublk);
		if (d.loop[0]) {
			/* a loop device still mounted must stay: refuse */
			char *argv[] = { "losetup", "-d", d.loop, NULL };

			if (vbd_run(argv, NULL, 0)) {
				td_err("%s: cannot detach %s (still mounted or open?)",
				       devnode, d.loop);
				err = -EBUSY;
			}
			d.loop[0] = '\0';
		}
		if (!err)
			vbd_dom0_undo(&d, devnode);
	}
	vdisk_vbd_clear(&v);
	if (!err)
		err = vdisk_vbd_remove(db, domid, devnode);
	if (err && err != -EIO && err != -EBUSY)
		td_err("%s", vdisk_errmsg(db));
	return err;
}

static void vbd_usage(bool add, FILE *f)
{
	if (add)
		fprintf(f,
			"Usage: add_vbd_to_dom [--db PATH] [--expert LEVEL] vd:ID|phy:DEVICE|TYPE:PATH DEVNODE DOMID rw|ro\n"
			"Give domain DOMID a virtual block device: for domain 0, DEVNODE\n"
			"becomes a link to the ublk device /dev/ublkbN of a tapdisk started\n"
			"through blktapctrl (where the kernel has ublk; else to a loop\n"
			"device over the disk's FUSE file; BLKTAP_DOM0_EXPORT=fuse|ublk\n"
			"chooses); for others, xl block-attach.\n"
			"Writable sharing is refused unless --expert 1 (one writer among\n"
			"readers) or 2 (anything).\n");
	else
		fprintf(f,
			"Usage: remove_vbd_from_dom [--db PATH] DEVNODE DOMID\n"
			"Take back a VBD given by add_vbd_to_dom.\n");
	fprintf(f,
		"\n  --db PATH   the pool database (default $VDISK_DB, else %s)\n"
		"  -h, --help  this help\n\n"
		"Exit status: 0 done, 1 error, 2 usage error.\n",
		VDISK_DEFAULT_DB);
}

static int vbd_domid(const char *s, int64_t *id)
{
	char *end;

	errno = 0;
	*id = strtoll(s, &end, 10);
	return errno || end == s || *end || *id < 0 ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "db", required_argument, NULL, 'D' },
		{ "expert", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vdisk_vbd v = { 0 };
	const char *dbpath = NULL;
	struct vdisk_db *db;
	bool add;
	int ch, err;

	prog = basename(argv[0]);
	add = !strcmp(prog, "add_vbd_to_dom");
	td_log_open(prog, true, LOG_INFO);
	if (!add && strcmp(prog, "remove_vbd_from_dom")) {
		td_err("run as add_vbd_to_dom or remove_vbd_from_dom");
		return EXIT_USAGE;
	}
	while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			dbpath = optarg;
			break;
		case 'x':
			if (!add || strlen(optarg) != 1 || optarg[0] < '0' ||
			    optarg[0] > '2') {
				vbd_usage(add, stderr);
				return EXIT_USAGE;
			}
			v.expert = optarg[0] - '0';
			break;
		case 'h':
			vbd_usage(add, stdout);
			return 0;
		default:
			vbd_usage(add, stderr);
			return EXIT_USAGE;
		}
	}
	argv += optind;
	argc -= optind;
	if (argc != (add ? 4 : 2) || vbd_domid(argv[add ? 2 : 1], &v.domid) ||
	    (add && strcmp(argv[3], "rw") && strcmp(argv[3], "w") &&
	     strcmp(argv[3], "ro") && strcmp(argv[3], "r"))) {
		vbd_usage(add, stderr);
		return EXIT_USAGE;
	}
	db = vdisk_new();
	if (!db)
		return 1;
	err = vdisk_open(db, dbpath, 0);
	if (err) {
		td_err("%s", vdisk_errmsg(db));
	} else if (add) {
		v.target = argv[0];
		v.devnode = argv[1];
		v.writable = strchr(argv[3], 'w') != NULL;
		err = vbd_add(db, &v);
	} else {
		err = vbd_remove(db, v.domid, argv[0]);
	}
	vdisk_free(db);
	return err ? 1 : 0;
}

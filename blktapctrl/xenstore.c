// SPDX-License-Identifier: GPL-2.0-only
/*
 * The xenstore watcher: a disk for every Xen block device the toolstack
 * hands to the block-tap hotplug script (params: a tapdisk image name) or
 * to block-vd (params: a pool disk, "vd:ID" or the bare ID), destroyed
 * when the device goes.
 *
 * xl writes a device's backend directory, waits for the backend to reach
 * InitWait and only then runs the hotplug script; so the device must be
 * served before any script of ours runs, and only a watcher of xenstore
 * can start its tapdisk. libxl writes the directory (script, params, mode)
 * in one transaction: the first event for a device sees all of it.
 *
 * An event only says where to look again: a device, a domain's devices,
 * or all of them. What xenstore holds is compared with the disk table,
 * never with the event. That is also how a restarted daemon catches up:
 * the watch fires once when set, the disks it re-adopted are found in the
 * table, and the ones whose device went away meanwhile are destroyed.
 *
 * A device whose frontend is our own domain ("xl block-attach 0 ...")
 * cannot be a blkif ring to ourselves: its tapdisk serves it as a ublk
 * block device (/dev/ublkbN), and blktapctrl plays the backend's part in
 * xenstore. xl waits for the backend to reach InitWait before it runs the
 * hotplug script, so once the device serves, blktapctrl records it
 * (physical-device, physical-device-path) and writes InitWait, where the
 * backend stays: a blkfront of this domain, if one is loaded, waits for
 * Connected and never makes an xvd disk of its own. On detach xl writes
 * Closing and waits for Closed: blktapctrl stops the tapdisk (which
 * deletes the ublk device), then writes Closed, and xl removes the
 * directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <xenstore.h>

#include "blktapctrl.h"
#include "log.h"

#define XSW_TOKEN "blktapctrl"
#define XSW_SCRIPT "block-tap"
#define XSW_SCRIPT_VD "block-vd"
#define XSW_PATH_MAX 256
/* xenbus states (xen/io/xenbus.h) */
#define XSW_INIT_WAIT "2"
#define XSW_CLOSING 5
#define XSW_CLOSED "6"

struct xsw {
	struct ctl_daemon *d;
	struct xs_handle *xs;
	struct td_watch *watch;
	char root[XSW_PATH_MAX]; /* /local/domain/SELF/backend/vbd */
	unsigned int self; /* our domain's id */
};

static char *xsw_read(struct xsw *x, const char *dir, const char *key)
{
	char path[XSW_PATH_MAX * 2];
	unsigned int len;

	snprintf(path, sizeof(path), "%s%s%s", dir, key ? "/" : "",
		 key ? key : "");
	return xs_read(x->xs, XBT_NULL, path, &len);
}

/* A device at ROOT/FRONTEND-DOMID/DEVID whose frontend is our domain. */
static bool xsw_is_local(struct xsw *x, const char *path)
{
	size_t len = strlen(x->root);
	unsigned int dom;

	return !strncmp(path, x->root, len) &&
	       sscanf(path + len, "/%u/", &dom) == 1 && dom == x->self;
}

/* The backend state xl (or we) wrote; 0 when there is none. */
static int xsw_state(struct xsw *x, const char *path)
{
	char *state = xsw_read(x, path, "state");
	int n = state ? atoi(state) : 0;

	free(state);
	return n;
}

static int xsw_write(struct xsw *x, const char *dir, const char *key,
		     const char *val)
{
	char path[XSW_PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return xs_write(x->xs, XBT_NULL, path, val, strlen(val)) ? 0 : -errno;
}

static struct disk *xsw_disk(struct ctl_daemon *d, const char *path)
{
	int minor;

	for (minor = 0; minor < DISK_MAX_MINORS; minor++)
		if (d->disks[minor] && d->disks[minor]->xen &&
		    !strcmp(d->disks[minor]->xen, path))
			return d->disks[minor];
	return NULL;
}

/* xl passes script= on as written: "block-tap" or a path ending in it. */
static bool xsw_script_is(const char *script, const char *name)
{
	size_t n = strlen(script), m = strlen(name);

	return n >= m && !strcmp(script + n - m, name) &&
	       (n == m || script[n - m - 1] == '/');
}

/*
 * The image a device's params name, malloc'd; NULL with errno. block-vd
 * takes what add_vbd_to_dom writes (vd:ID) and the bare ID of the pool's
 * own commands; nothing else, so a path cannot pass for a pool disk.
 */
static char *xsw_image(const char *script, const char *params)
{
	const char *id = params;
	char *image;

	if (!xsw_script_is(script, XSW_SCRIPT_VD))
		return strdup(params);
	if (!strncmp(id, "vd:", 3))
		id += 3;
	if (!*id || strspn(id, "0123456789") != strlen(id)) {
		errno = EINVAL;
		return NULL;
	}
	if (asprintf(&image, "vd:%s", id) < 0)
		return NULL;
	return image;
}

/*
 * A device of our own domain serves as /dev/ublkbN: record it where the
 * toolstack and the admin look (physical-device as blkback writes it,
 * MAJOR:MINOR in hex) and let xl go on to the hotplug script. The state
 * goes last: xl acts on it.
 */
static int xsw_local_ready(struct xsw *x, struct disk *disk)
{
	char dev[32], num[32];
	struct stat st;
	int rc;

	if (disk->ublk_id < 0)
		return -ENODEV;
	snprintf(dev, sizeof(dev), "/dev/ublkb%d", disk->ublk_id);
	if (stat(dev, &st) < 0)
		return -errno;
	snprintf(num, sizeof(num), "%x:%x", major(st.st_rdev),
		 minor(st.st_rdev));
	rc = xsw_write(x, disk->xen, "physical-device", num);
	if (!rc)
		rc = xsw_write(x, disk->xen, "physical-device-path", dev);
	if (!rc)
		rc = xsw_write(x, disk->xen, "state", XSW_INIT_WAIT);
	if (!rc)
		td_info("%s: disk %d (%s) is %s in this domain", disk->xen,
			disk->minor, disk->image, dev);
	return rc;
}

static void xsw_created(struct disk *disk, int rc, struct json_object *reply,
			const char *err, void *data)
{
	struct xsw *x = data;

	if (!rc && disk->ublk) {
		rc = xsw_local_ready(x, disk);
		/* xl gives up waiting and removes the device: destroyed then */
		if (rc)
			td_err("%s: disk %d (%s): cannot hand /dev/ublkb%d to "
			       "the toolstack: %s",
			       disk->xen, disk->minor, disk->image,
			       disk->ublk_id, strerror(-rc));
		return;
	}
	if (!rc) {
		td_info("%s: disk %d (%s) serves the device", disk->xen,
			disk->minor, disk->image);
		return;
	}
	/* the device went away meanwhile: its destroy has taken over */
	if (rc == -ECANCELED)
		return;
	td_err("%s: disk %d (%s): cannot serve the device: %s", disk->xen,
	       disk->minor, disk->image, err);
	/*
	 * Kept, failed, until the device goes: forgotten, the next event
	 * for the device (xl times out and writes to it) would start one
	 * more tapdisk bound to fail the same way.
	 */
	disk->state = DISK_FAILED;
	snprintf(disk->reason, sizeof(disk->reason), "%s", err);
	disk_save(disk);
}

static void xsw_create(struct xsw *x, const char *path)
{
	char *script = xsw_read(x, path, "script"), *params = NULL;
	char *mode = NULL, *image = NULL;
	bool local = xsw_is_local(x, path);
	const char *kind;
	struct disk *disk;

	if (!script)
		goto out;
	/*
	 * Our own device, stopped on Closing, waits for xl to remove its
	 * directory: not one to serve again.
	 */
	if (local && xsw_state(x, path) >= XSW_CLOSING)
		goto out;
	if (xsw_script_is(script, XSW_SCRIPT))
		kind = XSW_SCRIPT;
	else if (xsw_script_is(script, XSW_SCRIPT_VD))
		kind = XSW_SCRIPT_VD;
	else
		goto out;
	params = xsw_read(x, path, "params");
	if (!params || !*params) {
		td_err("%s: a %s device without params (the image): "
		       "not served",
		       path, kind);
		goto out;
	}
	image = xsw_image(script, params);
	if (!image) {
		td_err("%s: %s: %s", path, params,
		       errno == EINVAL ? "not a pool disk (vd:ID or ID)" :
					 strerror(errno));
		goto out;
	}
	mode = xsw_read(x, path, "mode");
	disk = disk_new(x->d, image);
	if (!disk) {
		td_err("%s: %s: no disk for the device: %s", path, params,
		       strerror(errno));
		goto out;
	}
	disk->xen = strdup(path);
	if (!disk->xen) {
		td_err("%s: %s: %s", path, params, strerror(ENOMEM));
		disk_forget(disk);
		goto out;
	}
	/* tapdisk refuses a read-only device it would be writing to */
	disk->readonly = mode && !strchr(mode, 'w');
	/* the guest's disk is gone for good only when its device is */
	disk->restart = DISK_RESTART_ON_FAILURE;
	disk->state = DISK_STARTING;
	/* no ring to ourselves: this domain gets a block device */
	disk->ublk = local;
	td_info("%s: new %s device: disk %d (%s)%s%s", path, kind, disk->minor,
		disk->image, disk->readonly ? ", read-only" : "",
		local ? ", for this domain: served as a ublk device" : "");
	disk_start(disk, xsw_created, x);
out:
	free(image);
	free(mode);
	free(params);
	free(script);
}

static void xsw_check(struct xsw *x, const char *path);

static void xsw_stopped(struct disk *disk, int rc, struct json_object *reply,
			const char *err, void *data)
{
	struct ctl_daemon *d = data;
	char path[XSW_PATH_MAX];
	bool local = disk->ublk && d->xsw;
	int ret;

	snprintf(path, sizeof(path), "%s", disk->xen);
	/* our own device: its ublk device is gone, xl may remove it now */
	if (local && xsw_state(d->xsw, path) >= XSW_CLOSING) {
		ret = xsw_write(d->xsw, path, "state", XSW_CLOSED);
		if (ret)
			td_err("%s: disk %d (%s): cannot tell the toolstack "
			       "the device is closed: %s",
			       path, disk->minor, disk->image, strerror(-ret));
	}
	disk_forget(disk);
	/* block-detach and block-attach again: a new device at that path */
	if (d->xsw)
		xsw_check(d->xsw, path);
}

/* Compare the device at path with the table: serve it, or let it go. */
static void xsw_check(struct xsw *x, const char *path)
{
	struct disk *disk = xsw_disk(x->d, path);
	char *dir = xsw_read(x, path, NULL);
	bool gone = !dir && errno == ENOENT;

	free(dir);
	if (!disk) {
		if (!gone)
			xsw_create(x, path);
		return;
	}
	if (disk->op == DISK_OP_STOPPING)
		return;
	if (!gone && disk->ublk && xsw_state(x, path) >= XSW_CLOSING) {
		td_info("%s: the toolstack closes the device: destroying disk "
			"%d (%s) and its /dev/ublkb%d",
			path, disk->minor, disk->image, disk->ublk_id);
		disk_stop(disk, xsw_stopped, x->d);
		return;
	}
	if (!gone)
		return;
	td_info("%s: the device was removed: destroying disk %d (%s)", path,
		disk->minor, disk->image);
	disk_stop(disk, xsw_stopped, x->d);
}

/* Every device under dir (depth 2: the domains under it) and every disk. */
static void xsw_scan(struct xsw *x, const char *dir, int depth)
{
	char path[XSW_PATH_MAX];
	unsigned int i, n = 0;
	size_t len = strlen(dir);
	char **ents = xs_directory(x->xs, XBT_NULL, dir, &n);
	struct disk *disk;
	int minor;

	for (i = 0; ents && i < n; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, ents[i]) >=
		    (int)sizeof(path))
			continue;
		if (depth > 1)
			xsw_scan(x, path, depth - 1);
		else
			xsw_check(x, path);
	}
	free(ents);
	/* the disks whose device went away with its domain's directory */
	for (minor = 0; minor < DISK_MAX_MINORS; minor++) {
		disk = x->d->disks[minor];
		if (disk && disk->xen && !strncmp(disk->xen, dir, len) &&
		    disk->xen[len] == '/') {
			snprintf(path, sizeof(path), "%s", disk->xen);
			xsw_check(x, path);
		}
	}
}

/* Where to look again after an event for path. */
static void xsw_changed(struct xsw *x, const char *path)
{
	size_t len = strlen(x->root);
	char dir[XSW_PATH_MAX];
	unsigned int dom, dev;
	int n = 0;

	if (strncmp(path, x->root, len) || (path[len] && path[len] != '/'))
		return;
	if (sscanf(path + len, "/%u/%u%n", &dom, &dev, &n) == 2) {
		snprintf(dir, sizeof(dir), "%.*s", (int)len + n, path);
		xsw_check(x, dir);
	} else if (sscanf(path + len, "/%u%n", &dom, &n) == 1) {
		snprintf(dir, sizeof(dir), "%.*s", (int)len + n, path);
		xsw_scan(x, dir, 1);
	} else {
		xsw_scan(x, x->root, 2);
	}
}

static void xsw_event(struct td_watch *w, int fd, uint32_t events, void *data)
{
	struct xsw *x = data;
	char **ev;

	while ((ev = xs_check_watch(x->xs))) {
		xsw_changed(x, ev[XS_WATCH_PATH]);
		free(ev);
	}
	if (errno != EAGAIN)
		td_warn("%s: xenstore watch: %s", x->root, strerror(errno));
}

void xsw_free(struct xsw *x)
{
	if (!x)
		return;
	if (x->watch)
		td_watch_remove(x->watch);
	if (x->xs) {
		xs_unwatch(x->xs, x->root, XSW_TOKEN);
		xs_close(x->xs);
	}
	free(x);
}

struct xsw *xsw_open(struct ctl_daemon *d)
{
	struct xsw *x = calloc(1, sizeof(*x));
	unsigned int len;
	char *domid;
	int rc;

	if (!x)
		return NULL;
	x->d = d;
	x->xs = xs_open(0);
	if (!x->xs)
		goto fail;
	/* relative to our own domain: dom0, or a driver domain */
	domid = xs_read(x->xs, XBT_NULL, "domid", &len);
	if (domid)
		sscanf(domid, "%u", &x->self);
	free(domid);
	snprintf(x->root, sizeof(x->root), "/local/domain/%u/backend/vbd",
		 x->self);
	if (!xs_watch(x->xs, x->root, XSW_TOKEN))
		goto fail;
	x->watch =
		td_watch_add(d->loop, xs_fileno(x->xs), EPOLLIN, xsw_event, x);
	if (!x->watch)
		goto fail;
	td_info("watching %s for devices with script %s or %s", x->root,
		XSW_SCRIPT, XSW_SCRIPT_VD);
	return x;
fail:
	rc = errno;
	xsw_free(x);
	errno = rc;
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The xenstore side of the blkif backend (xen/include/public/io/blkif.h,
 * "Backend/frontend state machine"): offer the features and go to
 * InitWait; when the frontend is Initialised or Connected, read its ring
 * and event channel, map them and go Connected; when either side closes,
 * disconnect (requests in flight answered, the disk flushed) and go
 * Closed. The toolstack closes a device by writing online=0 and
 * state=Closing to our directory, and deletes the directory once we are
 * Closed: then this tapdisk's job is done.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/io/blkif.h>
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#include "log.h"
#include "vbd.h"
#include "xenblk-int.h"
#include "xenblk.h"

#define XENBLK_WATCH_BE "be"
#define XENBLK_WATCH_FE "fe"

struct xenblk_backend {
	struct td_loop *loop;
	struct td_vbd *vbd;
	struct xs_handle *xs;
	xengnttab_handle *xgt;
	xenevtchn_handle *xce;
	struct td_watch *xs_watch;
	char *be; /* our directory */
	char *fe; /* the frontend's */
	char *fe_state; /* fe + "/state", watched */
	uint32_t domid, devid;
	char name[48];
	bool discard;

	enum xenbus_state state; /* as we last wrote it */
	struct xenblk_ring *ring;
	bool disconnecting;
	bool removed;
	td_loop_fn removed_fn;
	void *removed_data;
	td_loop_fn shutdown_fn;
	void *shutdown_data;
	struct td_defer defer;
};

const char *xenblk_backend_name(const struct xenblk_backend *be)
{
	return be->name;
}

/* The value of dir/key, malloc'd, or NULL with errno (ENOENT if absent). */
static char *xenblk_read(struct xenblk_backend *be, const char *dir,
			 const char *key)
{
	char path[256];
	unsigned len;

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return xs_read(be->xs, XBT_NULL, path, &len);
}

/* dir/key as an unsigned number; -ENOENT if absent, -EINVAL if not one. */
static int xenblk_read_uint(struct xenblk_backend *be, const char *dir,
			    const char *key, unsigned long *v)
{
	char *s = xenblk_read(be, dir, key), *end;
	int rc = 0;

	if (!s)
		return -ENOENT;
	errno = 0;
	*v = strtoul(s, &end, 10);
	if (errno || end == s || *end)
		rc = -EINVAL;
	free(s);
	return rc;
}

static int xenblk_write(struct xenblk_backend *be, const char *key,
			const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int xenblk_write(struct xenblk_backend *be, const char *key,
			const char *fmt, ...)
{
	char path[256], val[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", be->be, key);
	if (!xs_write(be->xs, XBT_NULL, path, val, strlen(val))) {
		td_err("%s: cannot write %s: %s", be->name, path,
		       strerror(errno));
		return -errno;
	}
	return 0;
}

static void xenblk_set_state(struct xenblk_backend *be, enum xenbus_state s)
{
	/* a write would bring back the directory the toolstack deleted */
	if (be->state == s || be->removed)
		return;
	td_debug("%s: backend state %d -> %d", be->name, be->state, s);
	be->state = s;
	xenblk_write(be, "state", "%d", s);
}

/* What we offer; written before InitWait, as the frontend reads it then. */
static int xenblk_write_features(struct xenblk_backend *be)
{
	const struct td_image_info *info = td_vbd_info(be->vbd);
	int rc;

	rc = xenblk_write(be, "feature-flush-cache", "1");
	rc = rc	   ?:
		     xenblk_write(be, "feature-max-indirect-segments", "%u",
				  XENBLK_MAX_INDIRECT_SEGS);
	rc = rc	   ?:
		     xenblk_write(be, "max-ring-page-order", "%u",
				  XENBLK_MAX_RING_ORDER);
	if (!rc && be->discard) {
		rc = xenblk_write(be, "feature-discard", "1");
		rc = rc	   ?:
			     xenblk_write(be, "discard-granularity", "%u",
					  info->sector_size);
		rc = rc ?: xenblk_write(be, "discard-alignment", "0");
		rc = rc ?: xenblk_write(be, "discard-secure", "0");
	}
	return rc;
}

/* The disk itself; written as we connect, as blkback does. */
static int xenblk_write_disk(struct xenblk_backend *be)
{
	const struct td_image_info *info = td_vbd_info(be->vbd);
	int rc;

	/* "sectors" counts 512-byte units whatever the sector size */
	rc = xenblk_write(be, "sectors", "%" PRIu64,
			  td_vbd_size(be->vbd) / 512);
	rc = rc ?: xenblk_write(be, "sector-size", "%u", info->sector_size);
	rc = rc	   ?:
		     xenblk_write(be, "physical-sector-size", "%u",
				  info->sector_size);
	rc = rc	   ?:
		     xenblk_write(be, "info", "%u",
				  td_vbd_readonly(be->vbd) ? VDISK_READONLY :
							     0);
	return rc;
}

/* Read the frontend's ring and event channel and connect to them. */
static int xenblk_connect(struct xenblk_backend *be)
{
	uint32_t refs[XENBLK_MAX_RING_PAGES];
	struct xenblk_ring_params p = {
		.name = be->name,
		.domid = be->domid,
		.refs = refs,
		.nr_refs = 1,
		.discard = be->discard,
	};
	unsigned long v, order = 0;
	char key[32], *proto;
	unsigned i;
	int rc;

	proto = xenblk_read(be, be->fe, "protocol");
	if (proto && strcmp(proto, XEN_IO_PROTO_ABI_NATIVE)) {
		/* the 32-bit layouts differ; only the native one is spoken */
		td_err("%s: the frontend speaks protocol %s; only %s is "
		       "supported",
		       be->name, proto, XEN_IO_PROTO_ABI_NATIVE);
		free(proto);
		return -EPROTONOSUPPORT;
	}
	free(proto);

	rc = xenblk_read_uint(be, be->fe, "ring-page-order", &order);
	if (rc == -ENOENT)
		order = 0;
	else if (rc || order > XENBLK_MAX_RING_ORDER)
		goto bad;
	p.nr_refs = 1u << order;
	for (i = 0; i < p.nr_refs; i++) {
		if (order)
			snprintf(key, sizeof(key), "ring-ref%u", i);
		else
			snprintf(key, sizeof(key), "ring-ref");
		rc = xenblk_read_uint(be, be->fe, key, &v);
		if (rc || v > UINT32_MAX)
			goto bad;
		refs[i] = v;
	}
	rc = xenblk_read_uint(be, be->fe, "event-channel", &v);
	if (rc || v > UINT32_MAX)
		goto bad;
	p.evtchn = v;

	rc = xenblk_write_disk(be);
	if (rc)
		return rc;
	be->ring = xenblk_ring_connect(be->loop, be->vbd, be->xgt, be->xce, &p);
	if (!be->ring)
		return -errno;
	return 0;
bad:
	td_err("%s: the frontend's ring-page-order, ring-ref or "
	       "event-channel is missing or invalid",
	       be->name);
	return -EINVAL;
}

static void xenblk_update(struct xenblk_backend *be);

static void xenblk_disconnected(struct td_loop *loop, void *data)
{
	struct xenblk_backend *be = data;

	be->ring = NULL;
	be->disconnecting = false;
	if (be->shutdown_fn) {
		xenblk_set_state(be, XenbusStateClosed);
		be->shutdown_fn(loop, be->shutdown_data);
		return;
	}
	xenblk_update(be);
}

static void xenblk_disconnect(struct xenblk_backend *be)
{
	if (be->disconnecting)
		return;
	be->disconnecting = true;
	xenblk_ring_disconnect(be->ring, xenblk_disconnected, be);
}

static void xenblk_removed(struct td_loop *loop, void *data)
{
	struct xenblk_backend *be = data;

	be->removed_fn(loop, be->removed_data);
}

/*
 * Look at both sides and take the next step. Called on every watch event
 * and whenever a disconnect finishes, so every step is taken from the
 * current state, never from the event that woke us.
 */
static void xenblk_update(struct xenblk_backend *be)
{
	unsigned long fe_state = XenbusStateUnknown, be_state, online = 1;
	int rc;

	if (be->disconnecting || be->removed || be->shutdown_fn)
		return;
	rc = xenblk_read_uint(be, be->be, "state", &be_state);
	if (rc == -ENOENT) {
		/* the toolstack deleted the device; we said Closed first */
		if (be->ring) {
			xenblk_disconnect(be);
			return;
		}
		td_info("%s: the toolstack removed the device", be->name);
		be->removed = true;
		td_loop_defer(be->loop, &be->defer, xenblk_removed, be);
		return;
	}
	xenblk_read_uint(be, be->be, "online", &online);
	xenblk_read_uint(be, be->fe, "state", &fe_state);

	/* the toolstack writes Closing into our state to close the device */
	if (be_state == XenbusStateClosing && be->state != XenbusStateClosing)
		be->state = XenbusStateClosing;

	switch (fe_state) {
	case XenbusStateInitialised:
	case XenbusStateConnected:
		if (be->state == XenbusStateInitWait) {
			if (xenblk_connect(be)) {
				xenblk_set_state(be, XenbusStateClosing);
				return;
			}
			xenblk_set_state(be, XenbusStateConnected);
			return;
		}
		break;
	case XenbusStateClosing:
	case XenbusStateClosed:
	case XenbusStateUnknown:
		/* the frontend went away (or its domain did) */
		if (be->ring) {
			xenblk_set_state(be, XenbusStateClosing);
			xenblk_disconnect(be);
			return;
		}
		if (be->state != XenbusStateInitWait || !online)
			xenblk_set_state(be, XenbusStateClosed);
		break;
	case XenbusStateInitialising:
	case XenbusStateInitWait:
		/* a frontend starting (again: after a reboot of its kernel) */
		if (be->state == XenbusStateClosed && online)
			xenblk_set_state(be, XenbusStateInitWait);
		break;
	default:
		break;
	}
	if (be->state == XenbusStateClosing) {
		if (be->ring)
			xenblk_disconnect(be);
		else
			xenblk_set_state(be, XenbusStateClosed);
	}
}

static void xenblk_xs_event(struct td_watch *w, int fd, uint32_t events,
			    void *data)
{
	struct xenblk_backend *be = data;
	char **ev;

	/* every event means "look again"; which one does not matter */
	while ((ev = xs_check_watch(be->xs)))
		free(ev);
	if (errno != EAGAIN)
		td_warn("%s: xenstore watch: %s", be->name, strerror(errno));
	xenblk_update(be);
}

/* Why the Xen devices cannot be used, in words for the operator. */
static int xenblk_check_xen(const char *path)
{
	static const char *const devs[] = { "/dev/xen/gntdev",
					    "/dev/xen/evtchn" };
	unsigned i;

	if (access("/dev/xen", F_OK)) {
		td_err("%s: no /dev/xen: this is not a Xen domain (or xenfs "
		       "is not mounted): cannot serve a Xen guest",
		       path);
		return -ENOENT;
	}
	for (i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		if (access(devs[i], R_OK | W_OK)) {
			int err = errno;

			td_err("%s: %s: %s (load xen-gntdev and xen-evtchn)",
			       path, devs[i], strerror(err));
			return -err;
		}
	}
	return 0;
}

void xenblk_backend_free(struct xenblk_backend *be)
{
	if (!be)
		return;
	xenblk_ring_free(be->ring);
	if (be->xs_watch)
		td_watch_remove(be->xs_watch);
	if (be->xs) {
		if (be->fe_state)
			xs_unwatch(be->xs, be->fe_state, XENBLK_WATCH_FE);
		xs_unwatch(be->xs, be->be, XENBLK_WATCH_BE);
		xs_close(be->xs);
	}
	if (be->xce)
		xenevtchn_close(be->xce);
	if (be->xgt)
		xengnttab_close(be->xgt);
	free(be->fe_state);
	free(be->fe);
	free(be->be);
	free(be);
}

struct xenblk_backend *xenblk_backend_new(struct td_loop *loop,
					  struct td_vbd *vbd, const char *path,
					  td_loop_fn removed, void *data)
{
	struct xenblk_backend *be;
	unsigned long v;
	char *mode;
	int rc, n = 0;
	uint32_t self;

	rc = xenblk_check_xen(path);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
	be->loop = loop;
	be->vbd = vbd;
	be->removed_fn = removed;
	be->removed_data = data;
	be->state = XenbusStateUnknown;
	be->be = strdup(path);
	if (!be->be)
		goto fail_errno;
	if (sscanf(path,
		   "/local/domain/%" SCNu32 "/backend/vbd/%" SCNu32 "/%" SCNu32
		   "%n",
		   &self, &be->domid, &be->devid, &n) != 3 ||
	    path[n]) {
		td_err("%s: not a backend path "
		       "/local/domain/N/backend/vbd/DOMID/DEVID",
		       path);
		rc = -EINVAL;
		goto fail;
	}
	snprintf(be->name, sizeof(be->name), "dom%" PRIu32 "/%" PRIu32,
		 be->domid, be->devid);

	be->xgt = xengnttab_open(NULL, 0);
	be->xce = xenevtchn_open(NULL, 0);
	if (!be->xgt || !be->xce) {
		rc = -errno;
		td_err("%s: cannot open %s: %s", be->name,
		       be->xgt ? "the event channel device" :
				 "the grant device",
		       strerror(-rc));
		goto fail;
	}
	be->xs = xs_open(0);
	if (!be->xs) {
		rc = -errno;
		td_err("%s: cannot connect to xenstore: %s", be->name,
		       strerror(-rc));
		goto fail;
	}
	be->fe = xenblk_read(be, be->be, "frontend");
	if (!be->fe) {
		rc = -errno;
		td_err("%s: cannot read %s/frontend: %s", be->name, be->be,
		       strerror(-rc));
		goto fail;
	}
	if (asprintf(&be->fe_state, "%s/state", be->fe) < 0) {
		be->fe_state = NULL;
		goto fail_errno;
	}
	mode = xenblk_read(be, be->be, "mode");
	if (mode && strchr(mode, 'w') == NULL && !td_vbd_readonly(vbd)) {
		/* the guest would see a read-only disk we write to */
		td_err("%s: the device's mode is \"%s\": start tapdisk "
		       "--readonly",
		       be->name, mode);
		free(mode);
		rc = -EROFS;
		goto fail;
	}
	free(mode);
	be->discard = td_vbd_info(vbd)->can_discard;
	if (!xenblk_read_uint(be, be->be, "discard-enable", &v) && !v)
		be->discard = false;

	rc = xenblk_write_features(be);
	if (rc)
		goto fail;
	xenblk_set_state(be, XenbusStateInitWait);
	if (!xs_watch(be->xs, be->be, XENBLK_WATCH_BE) ||
	    !xs_watch(be->xs, be->fe_state, XENBLK_WATCH_FE)) {
		rc = -errno;
		td_err("%s: cannot watch xenstore: %s", be->name,
		       strerror(-rc));
		goto fail;
	}
	be->xs_watch = td_watch_add(loop, xs_fileno(be->xs), EPOLLIN,
				    xenblk_xs_event, be);
	if (!be->xs_watch)
		goto fail_errno;
	td_info("%s: backend %s waiting for frontend %s", be->name, be->be,
		be->fe);
	/* a watch fires once when set: the first look comes from the loop */
	return be;
fail_errno:
	rc = -errno;
fail:
	xenblk_backend_free(be);
	errno = -rc;
	return NULL;
}

void xenblk_backend_shutdown(struct xenblk_backend *be, td_loop_fn done,
			     void *data)
{
	be->shutdown_fn = done;
	be->shutdown_data = data;
	if (be->ring) {
		xenblk_set_state(be, XenbusStateClosing);
		if (!be->disconnecting)
			xenblk_disconnect(be);
		return;
	}
	if (be->disconnecting)
		return;
	if (!be->removed)
		xenblk_set_state(be, XenbusStateClosed);
	td_loop_defer(be->loop, &be->defer, done, data);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The Xen blkif backend: tapdisk serves a guest's blkfront directly, as
 * the kernel's xen-blkback would, from userspace: the shared ring is
 * mapped with xen-gntdev, the guest is notified through xen-evtchn, data
 * moves by grant copy. The xenstore side (the backend's state machine and
 * the features it offers) is driven from the backend directory the
 * toolstack wrote: /local/domain/0/backend/vbd/DOMID/DEVID.
 */
#ifndef XENBLK_H
#define XENBLK_H

#include "loop.h"

struct td_vbd;
struct xenblk_backend;

/*
 * Start serving the device whose backend directory is path: offer the
 * features, go to InitWait and connect once the frontend is ready.
 * removed is called (from the loop) once the toolstack has deleted the
 * backend directory, the device being closed and its data flushed.
 * Returns NULL with errno, having logged the reason: ENOENT when there is
 * no /dev/xen (not a Xen domain, or xenfs and the gntdev and evtchn
 * drivers are not loaded).
 */
struct xenblk_backend *xenblk_backend_new(struct td_loop *loop,
					  struct td_vbd *vbd, const char *path,
					  td_loop_fn removed, void *data);
/* "dom1/51712": the frontend domain and device, for messages */
const char *xenblk_backend_name(const struct xenblk_backend *be);
/*
 * Disconnect the frontend (requests in flight are answered, the disk is
 * flushed), mark the backend Closed, then call done (from the loop).
 */
void xenblk_backend_shutdown(struct xenblk_backend *be, td_loop_fn done,
			     void *data);
void xenblk_backend_free(struct xenblk_backend *be);

#endif

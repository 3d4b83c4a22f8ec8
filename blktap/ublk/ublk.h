/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The ublk export: the virtual disk as a real block device /dev/ublkbN in
 * dom0 (or any Linux host), served inside the tapdisk event loop through
 * the kernel's ublk driver (include/uapi/linux/ublk_cmd.h): control
 * commands on /dev/ublk-control, and one queue whose requests arrive and
 * are answered as io_uring commands on /dev/ublkcN.
 *
 * Devices are created with user recovery: if the tapdisk dies, the kernel
 * holds the device's requests until a new tapdisk takes it over
 * (recover_id) and then sends them again.
 */
#ifndef UBLK_H
#define UBLK_H

#include <stdbool.h>

#include "loop.h"

struct td_vbd;
struct ublk_export;

/* err is 0 once the block device exists, else -errno from the kernel */
typedef void (*ublk_started_fn)(struct ublk_export *exp, int err, void *data);

struct ublk_export_opts {
	int dev_id; /* the device number to ask for; -1: the kernel picks */
	int recover_id; /* -1: add a device; N: take over /dev/ublkbN */
	bool readonly; /* export read-only even if the vbd is writable */
	/*
	 * Called once from the loop when the kernel has started the device
	 * (or taken it back after recovery): only then does /dev/ublkbN
	 * serve, so readiness is reported from here. May be NULL.
	 */
	ublk_started_fn started;
	void *started_data;
};

/*
 * Add (or take over) the device and start serving it. The block device
 * appears once the kernel has started it, shortly after this returns.
 * Returns NULL with errno, having logged the reason: ENOENT when there is
 * no /dev/ublk-control (the ublk_drv module is not loaded).
 */
struct ublk_export *ublk_export_new(struct td_loop *loop, struct td_vbd *vbd,
				    const struct ublk_export_opts *opts);
/* "/dev/ublkbN" */
const char *ublk_export_path(const struct ublk_export *exp);
int ublk_export_id(const struct ublk_export *exp);
/* Requests handed to the vbd and not yet answered. */
unsigned ublk_export_inflight(const struct ublk_export *exp);
/*
 * Stop the device (the kernel writes back what it caches and waits for
 * the requests in flight), delete it, then call done (from the loop).
 */
void ublk_export_shutdown(struct ublk_export *exp, td_loop_fn done, void *data);
/* Deletes the device if it was not shut down. */
void ublk_export_free(struct ublk_export *exp);

/*
 * Delete device N, whose server is gone (a tapdisk that died and will not
 * be restarted): the requests the kernel holds for it fail instead of
 * waiting forever. 0, -ENODEV when there is no such device, or -errno.
 */
int ublk_device_delete(int dev_id);

#endif

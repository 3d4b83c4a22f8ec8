/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Inside the ublk export: the state shared by the control side
 * (ublk-ctrl.c: the device's life on /dev/ublk-control) and the queue side
 * (ublk-export.c: requests on /dev/ublkcN).
 */
#ifndef UBLK_INT_H
#define UBLK_INT_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "request.h"
#include "ublk-uapi.h"
#include "ublk.h"

#define UBLK_QUEUE_DEPTH 128
#define UBLK_IO_BYTES (512u * 1024)

struct ublk_io {
	struct ublk_export *exp;
	struct td_request req;
	struct iovec iov;
	void *buf;
	uint16_t tag;
};

struct ublk_export {
	struct td_loop *loop;
	struct td_vbd *vbd;
	bool readonly;
	int dev_id;
	char path[32];

	/* control: /dev/ublk-control and a ring of 128-byte SQEs */
	int ctrl_fd;
	struct io_uring ctrl;
	bool ctrl_ring;

	/* the one queue: /dev/ublkcN, its descriptors, our data buffers */
	int cdev_fd;
	struct io_uring q;
	bool q_ring;
	const struct ublksrv_io_desc *iod;
	size_t iod_size;
	char *bufs;
	size_t bufs_size;
	unsigned depth;
	unsigned max_io;
	struct ublk_io *ios;
	unsigned serving;

	/* both rings signal this eventfd, watched by the loop */
	int efd;
	struct td_watch *watch;
	bool prepare;

	ublk_started_fn started;
	void *started_data;

	bool added; /* ours to delete */
	bool stopping, stopped, deleted;
	td_loop_fn done;
	void *done_data;
	struct td_defer defer;
};

/* ublk-ctrl.c */
int ublk_ctrl_open(struct ublk_export *exp);
void ublk_ctrl_close(struct ublk_export *exp);
int ublk_ctrl_add(struct ublk_export *exp, int dev_id);
int ublk_ctrl_set_params(struct ublk_export *exp);
int ublk_ctrl_begin_recovery(struct ublk_export *exp, int dev_id);
/* asynchronous: the answer comes to ublk_ctrl_reap() */
int ublk_ctrl_start(struct ublk_export *exp, bool recovery);
int ublk_ctrl_stop(struct ublk_export *exp);
int ublk_ctrl_del(struct ublk_export *exp);
/* synchronous delete, for a device that was never shut down */
void ublk_ctrl_del_now(struct ublk_export *exp);
void ublk_ctrl_reap(struct ublk_export *exp);

/* ublk-export.c: called by the control side */
void ublk_started(struct ublk_export *exp, int res);
void ublk_stopped(struct ublk_export *exp, int res);
void ublk_deleted(struct ublk_export *exp, int res);

#endif

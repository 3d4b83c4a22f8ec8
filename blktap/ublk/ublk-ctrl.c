// SPDX-License-Identifier: GPL-2.0-only
/*
 * The ublk device's life on /dev/ublk-control: add, set parameters, start,
 * stop, delete, and the two halves of user recovery. Control commands are
 * io_uring URING_CMDs carrying a struct ublksrv_ctrl_cmd in a 128-byte SQE.
 *
 * Add, parameters and the start of a recovery are asked and answered
 * before the device serves anything, so they wait for their answer here.
 * Start, stop and delete cannot: the kernel answers them only after I/O
 * on the device (the partition scan, the final write-back) that this
 * process has to serve from its loop, so their answers are reaped there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ublk-int.h"
#include "vbd.h"

#define UBLK_CTRL_DEV "/dev/ublk-control"
#define UBLK_CTRL_DEPTH 4
/* synchronous commands; the kernel answers them in microseconds */
#define UBLK_CTRL_WAIT_S 30
/*
 * A killed tapdisk's device becomes recoverable only once the kernel has
 * noticed the death (Linux 6.12 checks every 5 s), so keep asking.
 */
#define UBLK_RECOVER_WAIT_MS 30000
#define UBLK_RECOVER_RETRY_MS 200
#define UBLK_SYNC_TAG 0xffffffffull

/* Current ublk params: basic and discard, as every kernel knows them. */
struct ublk_params_v1 {
	__u32 len;
	__u32 types;
	struct ublk_param_basic basic;
	struct ublk_param_discard discard;
};

static const char *ublk_cmd_name(unsigned op)
{
	switch (_IOC_NR(op)) {
	case UBLK_CMD_GET_DEV_INFO:
		return "GET_DEV_INFO";
	case UBLK_CMD_ADD_DEV:
		return "ADD_DEV";
	case UBLK_CMD_DEL_DEV:
		return "DEL_DEV";
	case UBLK_CMD_START_DEV:
		return "START_DEV";
	case UBLK_CMD_STOP_DEV:
		return "STOP_DEV";
	case UBLK_CMD_SET_PARAMS:
		return "SET_PARAMS";
	case UBLK_CMD_GET_PARAMS:
		return "GET_PARAMS";
	case UBLK_CMD_START_USER_RECOVERY:
		return "START_USER_RECOVERY";
	case UBLK_CMD_END_USER_RECOVERY:
		return "END_USER_RECOVERY";
	default:
		return "?";
	}
}

int ublk_ctrl_open(struct ublk_export *exp)
{
	int rc;

	exp->ctrl_fd = open(UBLK_CTRL_DEV, O_RDWR | O_CLOEXEC);
	if (exp->ctrl_fd < 0) {
		rc = -errno;
		td_err("ublk: cannot open %s: %s%s", UBLK_CTRL_DEV,
		       strerror(-rc),
		       rc == -ENOENT ? " (is the ublk_drv module loaded?)" :
				       "");
		return rc;
	}
	rc = io_uring_queue_init(UBLK_CTRL_DEPTH, &exp->ctrl,
				 IORING_SETUP_SQE128);
	if (rc) {
		td_err("ublk: no io_uring with 128-byte entries: %s",
		       strerror(-rc));
		return rc;
	}
	exp->ctrl_ring = true;
	/* without an eventfd only synchronous commands are sent */
	if (exp->efd < 0)
		return 0;
	rc = io_uring_register_eventfd(&exp->ctrl, exp->efd);
	if (rc)
		td_err("ublk: io_uring_register_eventfd: %s", strerror(-rc));
	return rc;
}

void ublk_ctrl_close(struct ublk_export *exp)
{
	if (exp->ctrl_ring)
		io_uring_queue_exit(&exp->ctrl);
	exp->ctrl_ring = false;
	if (exp->ctrl_fd >= 0)
		close(exp->ctrl_fd);
	exp->ctrl_fd = -1;
}

static int ublk_ctrl_queue(struct ublk_export *exp, unsigned op,
			   const struct ublksrv_ctrl_cmd *cmd, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&exp->ctrl);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, exp->ctrl_fd, NULL, 0, 0);
	sqe->cmd_op = op;
	memcpy(sqe->cmd, cmd, sizeof(*cmd));
	io_uring_sqe_set_data64(sqe, tag);
	return io_uring_submit(&exp->ctrl) == 1 ? 0 : -EIO;
}

/* One command, waiting for its answer: 0 or -errno. */
static int ublk_ctrl_sync(struct ublk_export *exp, unsigned op,
			  struct ublksrv_ctrl_cmd *cmd)
{
	struct __kernel_timespec ts = { .tv_sec = UBLK_CTRL_WAIT_S };
	struct io_uring_cqe *cqe;
	int rc, res;

	rc = ublk_ctrl_queue(exp, op, cmd, UBLK_SYNC_TAG);
	if (rc)
		return rc;
	for (;;) {
		rc = io_uring_wait_cqe_timeout(&exp->ctrl, &cqe, &ts);
		if (rc == -EINTR)
			continue;
		if (rc) {
			td_err("ublk: %s: no answer: %s", ublk_cmd_name(op),
			       strerror(-rc));
			return rc == -ETIME ? -ETIMEDOUT : rc;
		}
		res = cqe->res;
		if (cqe->user_data == UBLK_SYNC_TAG) {
			io_uring_cqe_seen(&exp->ctrl, cqe);
			return res < 0 ? res : 0;
		}
		/* an asynchronous command's late answer: not ours to wait for */
		io_uring_cqe_seen(&exp->ctrl, cqe);
	}
}

static struct ublksrv_ctrl_cmd ublk_cmd(const struct ublk_export *exp,
					void *buf, size_t len)
{
	return (struct ublksrv_ctrl_cmd){
		.dev_id = exp->dev_id,
		.queue_id = (__u16)-1,
		.addr = (__u64)(uintptr_t)buf,
		.len = len,
	};
}

int ublk_ctrl_add(struct ublk_export *exp, int dev_id)
{
	struct ublksrv_ctrl_dev_info info = {
		.nr_hw_queues = 1,
		.queue_depth = UBLK_QUEUE_DEPTH,
		.max_io_buf_bytes = UBLK_IO_BYTES,
		.dev_id = (__u32)dev_id,
		/*
		 * Recovery: a restarted tapdisk takes the device over, and
		 * the requests the dead one held are sent again (a block
		 * write is idempotent) rather than failed.
		 */
		.flags = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE |
			 UBLK_F_CMD_IOCTL_ENCODE,
	};
	struct ublksrv_ctrl_cmd cmd;
	int rc;

	exp->dev_id = dev_id;
	cmd = ublk_cmd(exp, &info, sizeof(info));
	rc = ublk_ctrl_sync(exp, UBLK_U_CMD_ADD_DEV, &cmd);
	if (rc) {
		if (dev_id >= 0)
			td_err("ublk: cannot add device %d: %s", dev_id,
			       rc == -EEXIST ? "it exists already" :
					       strerror(-rc));
		else
			td_err("ublk: cannot add a device: %s", strerror(-rc));
		return rc;
	}
	exp->added = true;
	exp->dev_id = info.dev_id;
	exp->depth = info.queue_depth;
	exp->max_io = info.max_io_buf_bytes;
	return 0;
}

int ublk_ctrl_set_params(struct ublk_export *exp)
{
	const struct td_image_info *ii = td_vbd_info(exp->vbd);
	unsigned lbs_shift =
		__builtin_ctz(ii->sector_size ? ii->sector_size : 512);
	struct ublk_params_v1 p = {
		.len = sizeof(p),
		.types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD,
		.basic = {
			/* the vbd honours flush and FUA */
			.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA,
			.logical_bs_shift = lbs_shift,
			.physical_bs_shift = lbs_shift > 12 ? lbs_shift : 12,
			.io_opt_shift = 12,
			.io_min_shift = lbs_shift,
			.max_sectors = exp->max_io >> 9,
			.dev_sectors = td_vbd_size(exp->vbd) >> 9,
		},
		.discard = {
			.discard_granularity = 4096,
			.max_write_zeroes_sectors = exp->max_io >> 9,
		},
	};
	struct ublksrv_ctrl_cmd cmd = ublk_cmd(exp, &p, sizeof(p));
	int rc;

	if (exp->readonly)
		p.basic.attrs |= UBLK_ATTR_READ_ONLY;
	if (ii->rotational)
		p.basic.attrs |= UBLK_ATTR_ROTATIONAL;
	/* the vbd drops a discard's unaligned edges, so any size will do */
	if (ii->can_discard && !exp->readonly) {
		p.discard.max_discard_sectors = 1u << 21;
		p.discard.max_discard_segments = 1;
	}
	rc = ublk_ctrl_sync(exp, UBLK_U_CMD_SET_PARAMS, &cmd);
	if (rc)
		td_err("%s: cannot set its parameters: %s", exp->path,
		       strerror(-rc));
	return rc;
}

int ublk_ctrl_begin_recovery(struct ublk_export *exp, int dev_id)
{
	struct ublksrv_ctrl_dev_info info = { 0 };
	struct ublk_params_v1 p = { .len = sizeof(p) };
	struct ublksrv_ctrl_cmd cmd;
	struct timespec pause = { 0, UBLK_RECOVER_RETRY_MS * 1000000L };
	unsigned waited = 0;
	int rc;

	exp->dev_id = dev_id;
	cmd = ublk_cmd(exp, &info, sizeof(info));
	rc = ublk_ctrl_sync(exp, UBLK_U_CMD_GET_DEV_INFO, &cmd);
	if (rc) {
		td_err("%s: cannot recover: no such device (%s)", exp->path,
		       strerror(-rc));
		return rc;
	}
	if (!(info.flags & UBLK_F_USER_RECOVERY) || info.nr_hw_queues != 1) {
		td_err("%s: cannot recover: not a tapdisk device made for "
		       "recovery",
		       exp->path);
		return -EINVAL;
	}
	cmd = ublk_cmd(exp, &p, sizeof(p));
	rc = ublk_ctrl_sync(exp, UBLK_U_CMD_GET_PARAMS, &cmd);
	if (rc) {
		td_err("%s: cannot read its parameters: %s", exp->path,
		       strerror(-rc));
		return rc;
	}
	if (p.basic.dev_sectors != td_vbd_size(exp->vbd) >> 9) {
		td_err("%s: cannot recover: it has %llu sectors, the image %llu",
		       exp->path, (unsigned long long)p.basic.dev_sectors,
		       (unsigned long long)(td_vbd_size(exp->vbd) >> 9));
		return -EMEDIUMTYPE;
	}
	exp->depth = info.queue_depth;
	exp->max_io = info.max_io_buf_bytes;
	cmd = ublk_cmd(exp, NULL, 0);
	while ((rc = ublk_ctrl_sync(exp, UBLK_U_CMD_START_USER_RECOVERY,
				    &cmd)) == -EBUSY &&
	       waited < UBLK_RECOVER_WAIT_MS) {
		nanosleep(&pause, NULL);
		waited += UBLK_RECOVER_RETRY_MS;
	}
	if (rc) {
		td_err("%s: cannot recover: %s", exp->path,
		       rc == -EBUSY ? "its server still runs" : strerror(-rc));
		return rc;
	}
	td_info("%s: taking over the device (state %u, waited %u ms)",
		exp->path, info.state, waited);
	return 0;
}

int ublk_ctrl_start(struct ublk_export *exp, bool recovery)
{
	struct ublksrv_ctrl_cmd cmd = ublk_cmd(exp, NULL, 0);
	unsigned op = recovery ? UBLK_U_CMD_END_USER_RECOVERY :
				 UBLK_U_CMD_START_DEV;

	cmd.data[0] = getpid();
	return ublk_ctrl_queue(exp, op, &cmd, op);
}

static int ublk_ctrl_async(struct ublk_export *exp, unsigned op)
{
	struct ublksrv_ctrl_cmd cmd = ublk_cmd(exp, NULL, 0);
	int rc = ublk_ctrl_queue(exp, op, &cmd, op);

	if (rc)
		td_err("%s: %s: %s", exp->path, ublk_cmd_name(op),
		       strerror(-rc));
	return rc;
}

int ublk_ctrl_stop(struct ublk_export *exp)
{
	return ublk_ctrl_async(exp, UBLK_U_CMD_STOP_DEV);
}

int ublk_ctrl_del(struct ublk_export *exp)
{
	return ublk_ctrl_async(exp, UBLK_U_CMD_DEL_DEV);
}

void ublk_ctrl_del_now(struct ublk_export *exp)
{
	struct ublksrv_ctrl_cmd cmd = ublk_cmd(exp, NULL, 0);
	int rc = ublk_ctrl_sync(exp, UBLK_U_CMD_DEL_DEV, &cmd);

	if (rc)
		td_err("%s: cannot delete: %s", exp->path, strerror(-rc));
	else
		td_info("%s: deleted", exp->path);
	exp->deleted = true;
}

void ublk_ctrl_reap(struct ublk_export *exp)
{
	struct io_uring_cqe *cqe;
	unsigned op;
	int res;

	while (exp->ctrl_ring && io_uring_peek_cqe(&exp->ctrl, &cqe) == 0) {
		op = cqe->user_data;
		res = cqe->res;
		io_uring_cqe_seen(&exp->ctrl, cqe);
		switch (_IOC_NR(op)) {
		case UBLK_CMD_START_DEV:
		case UBLK_CMD_END_USER_RECOVERY:
			ublk_started(exp, res);
			break;
		case UBLK_CMD_STOP_DEV:
			ublk_stopped(exp, res);
			break;
		case UBLK_CMD_DEL_DEV:
			ublk_deleted(exp, res);
			break;
		}
	}
}

int ublk_device_delete(int dev_id)
{
	struct ublk_export exp = {
		.ctrl_fd = -1,
		.cdev_fd = -1,
		.efd = -1,
		.dev_id = dev_id,
	};
	struct ublksrv_ctrl_dev_info info = { 0 };
	struct ublksrv_ctrl_cmd cmd;
	int rc;

	snprintf(exp.path, sizeof(exp.path), "/dev/ublkb%d", dev_id);
	rc = ublk_ctrl_open(&exp);
	if (rc)
		goto out;
	cmd = ublk_cmd(&exp, &info, sizeof(info));
	rc = ublk_ctrl_sync(&exp, UBLK_U_CMD_GET_DEV_INFO, &cmd);
	if (rc)
		goto out;
	cmd = ublk_cmd(&exp, NULL, 0);
	rc = ublk_ctrl_sync(&exp, UBLK_U_CMD_DEL_DEV, &cmd);
	if (rc)
		td_err("%s: cannot delete: %s", exp.path, strerror(-rc));
	else
		td_info("%s: deleted (its server was gone)", exp.path);
out:
	ublk_ctrl_close(&exp);
	return rc;
}

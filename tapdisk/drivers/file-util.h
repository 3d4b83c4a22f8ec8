/* SPDX-License-Identifier: GPL-2.0-only */
/* Helpers the file-backed drivers (aio, sync, ram) share. */
#ifndef TD_FILE_UTIL_H
#define TD_FILE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* The size of td_zero_buf(); a multiple of every alignment we serve. */
#define TD_ZERO_BUF_SIZE (1u << 20)

/*
 * Allocation of [offset, offset + len) of a file from SEEK_DATA/SEEK_HOLE:
 * sets ext->len and ext->flags (TD_BS_HOLE | TD_BS_ZERO for a hole, 0 for
 * data). Where the filesystem cannot tell, the range is reported as data.
 */
void td_file_block_status(int fd, uint64_t offset, uint64_t len,
			  struct td_extent *ext);

/* TD_ZERO_BUF_SIZE read-only zero bytes, page aligned; NULL with errno. */
const void *td_zero_buf(void);

#endif

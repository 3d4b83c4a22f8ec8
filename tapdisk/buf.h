/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Aligned data buffers, recycled by size class so that the data path does
 * not go to mmap/munmap for every large request.
 */
#ifndef TD_BUF_H
#define TD_BUF_H

#include <stddef.h>

#define TD_BUF_ALIGN 4096

/* NULL with errno on failure; the memory is TD_BUF_ALIGN aligned. */
void *td_buf_get(size_t size);
void td_buf_put(void *buf, size_t size);
/* Give cached buffers back to the system. */
void td_buf_trim(void);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Aligned data buffers, recycled by size class so that the data path does
 * not go to mmap/munmap for every large request.
 */
#ifndef TD_BUF_H
#define TD_BUF_H

#include <stdbool.h>
#include <stddef.h>

#define TD_BUF_ALIGN 4096

/* NULL with errno on failure; the memory is TD_BUF_ALIGN aligned. */
void *td_buf_get(size_t size);
void td_buf_put(void *buf, size_t size);
/* True if all len bytes of buf are zero; buf 8-byte aligned. */
bool td_buf_is_zero(const void *buf, size_t len);
/* Give cached buffers back to the system. */
void td_buf_trim(void);

#endif

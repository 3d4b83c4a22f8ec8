/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the NBD tests send as a client. The server only ever parses
 * requests, so their encoder lives here, not in the library.
 */
#ifndef NBD_TEST_H
#define NBD_TEST_H

#include <stdint.h>

#include "be.h"
#include "nbd-proto.h"

/* A transmission request header: NBD_REQ_HDR_LEN bytes at b. */
static inline void nbd_test_req(uint8_t *b, uint32_t magic, uint16_t flags,
				uint16_t type, uint64_t cookie, uint64_t offset,
				uint32_t len)
{
	td_be_put32(b, magic);
	td_be_put16(b + 4, flags);
	td_be_put16(b + 6, type);
	td_be_put64(b + 8, cookie);
	td_be_put64(b + 16, offset);
	td_be_put32(b + 24, len);
}

#endif

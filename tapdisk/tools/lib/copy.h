/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The copy engine under convert, commit, img2qcow and qcow2raw: walks the
 * source's extents (block_status), skips what need not be written, and
 * keeps many large reads and writes in flight on both images at once.
 */
#ifndef TOOL_COPY_H
#define TOOL_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "syncio.h"

#define TOOL_COPY_CHUNK (2u << 20)
#define TOOL_COPY_INFLIGHT 16
#define TOOL_COPY_MAX_INFLIGHT 64

struct tool_copy_opts {
	/*
	 * dst reads as zeroes wherever it is not written (a new image):
	 * zero source ranges need no write at all. Otherwise they are written
	 * with write_zeroes.
	 */
	bool dst_zeroed;
	/*
	 * With dst_zeroed: also skip runs of zero bytes inside data of at
	 * least this many bytes (-S); 0 writes every byte, zeroes included,
	 * so that the output is fully allocated.
	 */
	uint64_t min_sparse;
	/* only what the source's top layer holds (block_status depth 0) */
	bool top_only;
	/* blocks of dst never split between requests (its cluster size) */
	uint64_t granularity;
	/*
	 * dst is qcow2 and granularity its cluster size: write every cluster
	 * of data compressed (qcow2_write_compressed), in guest order. With
	 * dst_zeroed and min_sparse, all-zero clusters are skipped whatever
	 * min_sparse is, since a compressed cluster is written whole.
	 */
	bool compress;
	unsigned inflight; /* requests in flight; 0: TOOL_COPY_INFLIGHT */
	bool progress; /* -p */
	bool no_flush; /* qemu-img's cache=unsafe: leave dst to the page cache */
};

/* Copy [0, size) of src into dst. 0 or -errno; the reason is logged. */
int tool_copy(struct td_syncio *src, struct td_syncio *dst, uint64_t size,
	      const struct tool_copy_opts *opts);

#endif

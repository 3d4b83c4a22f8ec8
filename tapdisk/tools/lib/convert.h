/* SPDX-License-Identifier: GPL-2.0-only */
/* Convert one image into a new one: tap-img convert, img2qcow, qcow2raw. */
#ifndef TOOL_CONVERT_H
#define TOOL_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "tool.h"

#define TOOL_DEFAULT_MIN_SPARSE 4096

struct tool_convert_opts {
	const char *src, *src_fmt; /* src_fmt NULL: probe */
	const char *dst, *dst_fmt;
	const struct tool_opts *create; /* -o for the new image, or NULL */
	uint64_t min_sparse; /* -S */
	unsigned inflight; /* -m; 0: the default */
	bool progress;
	bool compress; /* -c */
};

/* Creates dst (replacing a file of that name). 0 or -errno, logged. */
int tool_convert(const struct tool_convert_opts *o);

#endif

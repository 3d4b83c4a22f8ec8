/* SPDX-License-Identifier: GPL-2.0-only */
/* Convert one image into a new one: tap-img convert, img2qcow, qcow2raw. */
#ifndef TOOL_CONVERT_H
#define TOOL_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "tool.h"

#define TOOL_DEFAULT_MIN_SPARSE 4096

/* qemu-img's cache modes (-t, -T) */
enum tool_cache {
	TOOL_CACHE_UNSAFE, /* page cache, never flushed */
	TOOL_CACHE_WRITEBACK, /* page cache, flushed at the end */
	TOOL_CACHE_NONE, /* O_DIRECT, flushed at the end */
};

/* "none", "writeback", "unsafe"; -EINVAL for anything else */
int tool_cache_parse(const char *s, enum tool_cache *out);

struct tool_convert_opts {
	const char *src, *src_fmt; /* src_fmt NULL: probe */
	const char *dst, *dst_fmt;
	const struct tool_opts *create; /* -o for the new image, or NULL */
	uint64_t min_sparse; /* -S */
	unsigned inflight; /* -m; 0: the default */
	bool progress;
	bool compress; /* -c */
	/*
	 * The source through the page cache, as qemu-img reads it. The output
	 * is written O_DIRECT (the callers' default), unlike qemu-img's
	 * unflushed page cache: a dom0 converting a big image should not fill
	 * its page cache with dirty pages, and copying every byte into the
	 * cache cost 3-10x the CPU of the direct writes (measured here).
	 */
	enum tool_cache src_cache, dst_cache;
};

/* Creates dst (replacing a file of that name). 0 or -errno, logged. */
int tool_convert(const struct tool_convert_opts *o);

#endif

// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "convert.h"
#include "copy.h"
#include "drivers/qcow2.h"
#include "log.h"

int tool_cache_parse(const char *s, enum tool_cache *out)
{
	if (!strcmp(s, "none"))
		*out = TOOL_CACHE_NONE;
	else if (!strcmp(s, "writeback"))
		*out = TOOL_CACHE_WRITEBACK;
	else if (!strcmp(s, "unsafe"))
		*out = TOOL_CACHE_UNSAFE;
	else
		return -EINVAL;
	return 0;
}

static unsigned convert_cache_flags(enum tool_cache c)
{
	return c == TOOL_CACHE_NONE ? 0 : TD_OPEN_BUFFERED;
}

int tool_convert(const struct tool_convert_opts *o)
{
	struct tool_copy_opts co = { 0 };
	struct td_create_opts cr = { 0 };
	struct td_syncio *src, *dst;
	struct stat st;
	int rc;

	/* qcow (v1) has compressed clusters, but no writer for them */
	if (o->compress && strcmp(tool_fmt_type(o->dst_fmt), "qcow2")) {
		td_err("%s: compressed output (-c) is only supported for qcow2, not %s",
		       o->dst, o->dst_fmt);
		return -ENOTSUP;
	}
	src = tool_open(o->src, o->src_fmt,
			TD_OPEN_RDONLY | convert_cache_flags(o->src_cache));
	if (!src) {
		rc = -errno;
		td_err("%s: cannot open: %s", o->src, strerror(-rc));
		return rc;
	}
	cr.size = td_syncio_size(src);
	if (o->create) {
		cr.nopts = o->create->n;
		cr.keys = (const char *const *)o->create->keys;
		cr.vals = (const char *const *)o->create->vals;
	}
	rc = tool_create(o->dst, o->dst_fmt, &cr);
	if (rc) {
		td_err("%s: cannot create the %s image: %s", o->dst,
		       o->dst_fmt, strerror(-rc));
		goto out_src;
	}
	dst = tool_open(o->dst, o->dst_fmt,
			TD_OPEN_NO_BACKING | convert_cache_flags(o->dst_cache));
	if (!dst) {
		rc = -errno;
		td_err("%s: cannot open the new image: %s", o->dst,
		       strerror(-rc));
		goto out_src;
	}
	/* a new file reads as zeroes; a device keeps what it held */
	co.dst_zeroed = stat(o->dst, &st) || !S_ISBLK(st.st_mode);
	co.min_sparse = co.dst_zeroed ? o->min_sparse : 0;
	/* compressed writes take exactly one cluster of the qcow2 layer */
	co.granularity = o->compress ?
				 qcow2_cluster_size(td_syncio_image(dst)) :
				 tool_cluster_size(td_syncio_image(dst));
	co.compress = o->compress;
	co.inflight = o->inflight;
	co.progress = o->progress;
	co.no_flush = o->dst_cache == TOOL_CACHE_UNSAFE;
	rc = tool_copy(src, dst, cr.size, &co);
	if (rc)
		td_err("%s: conversion from %s failed: %s", o->dst, o->src,
		       strerror(-rc));
	td_syncio_close(dst);
out_src:
	td_syncio_close(src);
	return rc;
}

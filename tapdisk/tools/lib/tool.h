/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What tap-img and the classic qcow tools share: sizes and -o options as
 * qemu-img writes them, format names, and opening or creating images
 * through the same drivers tapdisk serves them with.
 */
#ifndef TOOL_H
#define TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "syncio.h"

/* "1G", "512M", "10240", "1.5G": binary suffixes K M G T P E, like qemu-img */
int tool_parse_size(const char *s, uint64_t *out);
/* "64 MiB", "1.5 GiB", "512 B" */
void tool_human_size(uint64_t n, char *buf, size_t len);

/* -o key=value,key=value (repeatable); qemu-img's ",," escapes a comma */
struct tool_opts {
	int n;
	char **keys;
	char **vals;
};

int tool_opts_add(struct tool_opts *o, const char *arg);
/* Remove key and return its value (the caller frees it), or NULL. */
char *tool_opts_take(struct tool_opts *o, const char *key);
void tool_opts_free(struct tool_opts *o);

/* The tapdisk driver type for a format name: "raw" is the aio driver. */
const char *tool_fmt_type(const char *fmt);
/* What users call a driver type: aio and sync images are "raw". */
const char *tool_fmt_name(const char *type);
/*
 * The driver a file is opened with: fmt if given, else probed from its
 * magic. 0 or -errno with the reason logged.
 */
int tool_fmt_resolve(const char *path, const char *fmt, const char **type);

/*
 * Open PATH (with its backing chain unless TD_OPEN_NO_BACKING) as fmt, or
 * probed. A filesystem that refuses O_DIRECT (tmpfs) gets buffered I/O.
 * NULL with errno; the reason is logged.
 */
struct td_syncio *tool_open(const char *path, const char *fmt,
			    unsigned flags);

/* Create PATH as fmt through its driver's create op; 0 or -errno. */
int tool_create(const char *path, const char *fmt,
		const struct td_create_opts *opts);

/* describe() of one layer, or NULL when the driver has nothing to say. */
struct json_object *tool_describe(struct td_image *img);
/* The layer's cluster size from describe(), or 0 for unclustered formats. */
uint64_t tool_cluster_size(struct td_image *img);

#endif

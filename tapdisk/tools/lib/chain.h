/* SPDX-License-Identifier: GPL-2.0-only */
/* Opening one layer of a chain on its own, for commit and rebase. */
#ifndef TOOL_CHAIN_H
#define TOOL_CHAIN_H

#include "tool.h"

/*
 * Open an image the way a chain names it (TYPE:PATH as in td_image->name,
 * or a bare path to probe). NULL with errno; the reason is logged.
 */
struct td_syncio *tool_open_name(const char *name, unsigned flags);

/*
 * A backing name as given on the command line is relative to the image's
 * folder, as qemu-img takes it. Returns a malloc'd path.
 */
char *tool_backing_path(const char *image, const char *backing);

#endif

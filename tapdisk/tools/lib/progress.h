/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Progress on stderr, as qemu-img -p prints it: "    (12.34/100%)" redrawn
 * in place on a terminal, one line per whole percent step otherwise.
 */
#ifndef TOOL_PROGRESS_H
#define TOOL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct tool_progress {
	bool enabled;
	bool tty;
	uint64_t total;
	uint64_t done;
	int last; /* hundredths of a percent last printed */
	uint64_t last_ns;
};

void tool_progress_init(struct tool_progress *p, bool enabled,
			uint64_t total);
void tool_progress_add(struct tool_progress *p, uint64_t bytes);
void tool_progress_end(struct tool_progress *p);

#endif

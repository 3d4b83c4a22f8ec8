// SPDX-License-Identifier: GPL-2.0-only
#include <stdio.h>
#include <unistd.h>

#include "loop.h"
#include "progress.h"

/* a log file fills slowly: one line per 10% or 5 seconds at most */
#define PROGRESS_PIPE_STEP 1000
#define PROGRESS_PIPE_NS 5000000000ull

static void progress_print(struct tool_progress *p, int pct)
{
	if (p->tty)
		fprintf(stderr, "\r    (%d.%02d/100%%)", pct / 100, pct % 100);
	else
		fprintf(stderr, "    (%d.%02d/100%%)\n", pct / 100, pct % 100);
	fflush(stderr);
	p->last = pct;
	p->last_ns = td_now_ns();
}

void tool_progress_init(struct tool_progress *p, bool enabled, uint64_t total)
{
	p->enabled = enabled;
	p->tty = isatty(STDERR_FILENO);
	p->total = total;
	p->done = 0;
	p->last = -1;
	p->last_ns = 0;
	if (enabled)
		progress_print(p, 0);
}

void tool_progress_add(struct tool_progress *p, uint64_t bytes)
{
	int pct;

	p->done += bytes;
	if (!p->enabled)
		return;
	pct = p->total ? (int)(p->done * 10000 / p->total) : 10000;
	if (pct > 10000)
		pct = 10000;
	if (p->tty ? pct - p->last >= 1 :
		     pct - p->last >= PROGRESS_PIPE_STEP ||
			     td_now_ns() - p->last_ns >= PROGRESS_PIPE_NS)
		progress_print(p, pct);
}

void tool_progress_end(struct tool_progress *p)
{
	if (!p->enabled)
		return;
	if (p->last != 10000)
		progress_print(p, 10000);
	if (p->tty)
		fputc('\n', stderr);
}

// SPDX-License-Identifier: GPL-2.0-only
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static char log_ident[256] = "tapdisk";
/* syslog keeps the pointer it is given: the program name lives here */
static char log_prog[64] = "tapdisk";
static bool log_stderr = true;
static int log_level = LOG_INFO;

void td_log_open(const char *ident, bool to_stderr, int max_level)
{
	td_log_set_ident(ident);
	snprintf(log_prog, sizeof(log_prog), "%s", ident);
	log_stderr = to_stderr;
	log_level = max_level;
	if (!to_stderr)
		openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void td_log_set_ident(const char *ident)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
}

static const char *log_level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_DEBUG:
		return "debug";
	default:
		return "info";
	}
}

void td_log(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_stderr)
		fprintf(stderr, "%s: %s: %s\n", log_ident, log_level_name(level),
			msg);
	else
		syslog(level, "%s: %s", log_ident, msg);
}

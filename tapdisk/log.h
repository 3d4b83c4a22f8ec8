/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one logging API of blktap. Every line carries the process identity
 * set with td_log_open() (for tapdisk: the disk's image name), so a message
 * in the journal always says which disk it is about.
 */
#ifndef TD_LOG_H
#define TD_LOG_H

#include <stdbool.h>
#include <syslog.h>

/*
 * to_stderr: foreground use; otherwise syslog(3) with LOG_DAEMON, under
 * ident as the program name.
 */
void td_log_open(const char *ident, bool to_stderr, int max_level);
/* Change the identity (for instance once the image is known). */
void td_log_set_ident(const char *ident);
void td_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define td_err(...) td_log(LOG_ERR, __VA_ARGS__)
#define td_warn(...) td_log(LOG_WARNING, __VA_ARGS__)
#define td_info(...) td_log(LOG_INFO, __VA_ARGS__)
#define td_debug(...) td_log(LOG_DEBUG, __VA_ARGS__)

#endif

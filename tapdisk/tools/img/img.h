/* SPDX-License-Identifier: GPL-2.0-only */
/* tap-img: one file per subcommand, each an int NAME(argc, argv) main. */
#ifndef IMG_H
#define IMG_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "tool.h"

struct img_cmd {
	const char *name;
	const char *usage; /* the arguments after "tap-img NAME" */
	const char *summary;
	const char *help; /* the options, one per line */
	int (*run)(const struct img_cmd *cmd, int argc, char **argv);
};

extern const struct img_cmd img_cmds[];

/* Usage errors: the message and the usage line on stderr; returns 1. */
int img_usage_error(const struct img_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* --help: usage and options on stdout; returns 0. */
int img_help(const struct img_cmd *cmd);
/*
 * getopt_long with the shared conventions: --help prints the help (*done
 * set, returns the exit code), an unknown option is a usage error.
 * Returns the option character, -1 at the end of options, or '?' with
 * *rc set when the subcommand must exit with *rc.
 */
int img_getopt(const struct img_cmd *cmd, int argc, char **argv,
	       const char *shortopts, const struct option *longopts,
	       int *rc);

/* --output=json|human (qemu-img's spelling): 0, or the usage error's 1 */
int img_parse_output(const struct img_cmd *cmd, const char *arg, bool *json);

int img_parse_size_arg(const struct img_cmd *cmd, const char *what,
		       const char *arg, uint64_t *out, int *rc);

/* 1 for a -o argument refused by syntax, after a message; 0 when added */
int img_add_opts(const struct img_cmd *cmd, struct tool_opts *o,
		 const char *arg);

int img_create(const struct img_cmd *cmd, int argc, char **argv);
int img_info(const struct img_cmd *cmd, int argc, char **argv);
int img_check(const struct img_cmd *cmd, int argc, char **argv);
int img_convert(const struct img_cmd *cmd, int argc, char **argv);
int img_compare(const struct img_cmd *cmd, int argc, char **argv);
int img_map(const struct img_cmd *cmd, int argc, char **argv);
int img_commit(const struct img_cmd *cmd, int argc, char **argv);
int img_rebase(const struct img_cmd *cmd, int argc, char **argv);
int img_resize(const struct img_cmd *cmd, int argc, char **argv);
int img_snapshot(const struct img_cmd *cmd, int argc, char **argv);

struct td_snapshot;
/* the qemu-img style table of snapshots, on stdout */
void img_snapshot_table(const struct td_snapshot *list, int n);

#endif

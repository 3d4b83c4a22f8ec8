// SPDX-License-Identifier: GPL-2.0-only
/*
 * tap-img: create, inspect, check, convert and edit disk images with the
 * same drivers tapdisk serves them with. Subcommands and their options
 * follow qemu-img's, so that scripts written for one work with the other.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"
#include "log.h"

const struct img_cmd img_cmds[] = {
	{ "create", "-f FMT [-b BACKING [-F BFMT]] [-o OPTIONS] FILE [SIZE]",
	  "create a new image",
	  "  -f FMT         the image format (raw, qcow2, qcow, ...)\n"
	  "  -b BACKING     a copy-on-write image over BACKING\n"
	  "  -F BFMT        the backing file's format (probed if absent)\n"
	  "  -o OPTIONS     format options key=value[,key=value...]\n"
	  "  SIZE           bytes, or with a K, M, G, T suffix (binary)\n",
	  img_create },
	{ "info", "[-f FMT] [--json] [--backing-chain] FILE",
	  "show an image's format, sizes and backing file",
	  "  -f FMT           the image format (probed if absent)\n"
	  "  --json           a JSON object (an array with --backing-chain)\n"
	  "  --backing-chain  every image of the backing chain\n",
	  img_info },
	{ "check", "[-f FMT] [-r leaks|all] [--json] FILE",
	  "check an image's metadata; exit 0 clean, 2 corrupt, 3 leaks",
	  "  -f FMT          the image format (probed if absent)\n"
	  "  -r leaks|all    repair leaked clusters, or everything\n"
	  "  --json          the result as a JSON object\n",
	  img_check },
	{ "convert",
	  "[-f FMT] -O FMT [-c] [-p] [-S SIZE] [-o OPTIONS] [-m N] [-t CACHE] "
	  "[-T CACHE] [-l SNAPSHOT] SRC DST",
	  "copy an image into a new one, of any format",
	  "  -f FMT         the source format (probed if absent)\n"
	  "  -O FMT         the output format\n"
	  "  -l SNAPSHOT    copy the source's internal snapshot (qcow2):\n"
	  "                 snapshot.name=NAME, snapshot.id=ID or ID_OR_NAME;\n"
	  "                 -s ID_OR_NAME is the same\n"
	  "  -c             compress the output (qcow2)\n"
	  "  -p             show progress on stderr\n"
	  "  -S SIZE        skip runs of zeroes of at least SIZE (default 4k;\n"
	  "                 0 writes every byte)\n"
	  "  -o OPTIONS     output format options key=value[,...]\n"
	  "  -m N           requests in flight (default 16)\n"
	  "  -t CACHE       output cache mode: none (default: O_DIRECT where the\n"
	  "                 filesystem allows it), writeback (page cache, flushed\n"
	  "                 at the end), unsafe (page cache, never flushed)\n"
	  "  -T CACHE       source cache mode (default writeback)\n",
	  img_convert },
	{ "compare", "[-s] [-f FMT] [-F FMT] [-p] A B",
	  "compare two images' contents; exit 0 same, 1 different, 2 error",
	  "  -f FMT   the first image's format\n"
	  "  -F FMT   the second image's format\n"
	  "  -s       strict: images of different sizes differ\n"
	  "  -p       show progress on stderr\n",
	  img_compare },
	{ "map", "[-f FMT] [--json] FILE",
	  "show which ranges hold data or zeroes, and in which layer",
	  "  -f FMT   the image format (probed if absent)\n"
	  "  --json   a JSON array, like qemu-img map --output=json\n",
	  img_map },
	{ "commit", "[-f FMT] [-d] [-p] FILE",
	  "merge an image into its backing file",
	  "  -f FMT   the image format (probed if absent)\n"
	  "  -d       leave the image as it is (don't empty it)\n"
	  "  -p       show progress on stderr\n",
	  img_commit },
	{ "rebase", "[-f FMT] [-u] -b NEW [-F FMT] [-p] FILE",
	  "change an image's backing file",
	  "  -f FMT   the image format (probed if absent)\n"
	  "  -b NEW   the new backing file (\"\" for none)\n"
	  "  -F FMT   the new backing file's format\n"
	  "  -u       unsafe: only rewrite the reference, copy nothing\n"
	  "  -p       show progress on stderr\n",
	  img_rebase },
	{ "resize", "[-f FMT] [--shrink] FILE [+|-]SIZE",
	  "change an image's virtual size",
	  "  -f FMT     the image format (probed if absent)\n"
	  "  --shrink   allow making the image smaller (data past the end is lost)\n",
	  img_resize },
	{ "snapshot", "-l [-f FMT] FILE", "list an image's internal snapshots",
	  "  -l       list the snapshots\n"
	  "  -f FMT   the image format (probed if absent)\n",
	  img_snapshot },
	{ NULL, NULL, NULL, NULL, NULL },
};

int img_usage_error(const struct img_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("tap-img: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: tap-img %s %s\n(tap-img %s --help for more)\n",
		cmd->name, cmd->usage, cmd->name);
	return 1;
}

int img_parse_output(const struct img_cmd *cmd, const char *arg, bool *json)
{
	if (strcmp(arg, "json") && strcmp(arg, "human"))
		return img_usage_error(cmd, "--output is json or human");
	*json = !strcmp(arg, "json");
	return 0;
}

int img_help(const struct img_cmd *cmd)
{
	printf("usage: tap-img %s %s\n\n%s.\n\n%s", cmd->name, cmd->usage,
	       cmd->summary, cmd->help);
	printf("  -h, --help     this help\n");
	return 0;
}

int img_getopt(const struct img_cmd *cmd, int argc, char **argv,
	       const char *shortopts, const struct option *longopts,
	       int *rc)
{
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);

	if (c == 'h') {
		*rc = img_help(cmd);
		return '?';
	}
	if (c == '?' || c == ':') {
		*rc = img_usage_error(cmd, "bad option or missing argument");
		return '?';
	}
	return c;
}

int img_parse_size_arg(const struct img_cmd *cmd, const char *what,
		       const char *arg, uint64_t *out, int *rc)
{
	if (tool_parse_size(arg, out)) {
		*rc = img_usage_error(cmd, "invalid %s '%s' (bytes, or with a K, M, G, T, P or E suffix)",
				      what, arg);
		return -1;
	}
	return 0;
}

int img_add_opts(const struct img_cmd *cmd, struct tool_opts *o,
		 const char *arg)
{
	if (tool_opts_add(o, arg))
		return img_usage_error(cmd, "invalid option list '%s' (key=value[,key=value...])",
				       arg);
	return 0;
}

static void img_list(FILE *f)
{
	const struct img_cmd *c;

	fprintf(f, "usage: tap-img COMMAND [OPTIONS] ...\n\n"
		   "Create, inspect and convert disk images with blktap's own drivers.\n\n"
		   "Commands:\n");
	for (c = img_cmds; c->name; c++)
		fprintf(f, "  %-9s %s\n", c->name, c->summary);
	fprintf(f, "\nFormats: raw %s (probed when no -f is given)\n"
		   "tap-img COMMAND --help shows a command's options.\n",
		td_driver_list());
}

int main(int argc, char **argv)
{
	const struct img_cmd *c;

	/* the io engine's start-up notes are noise for a command-line tool */
	td_log_open("tap-img", true, LOG_WARNING);
	if (argc < 2) {
		img_list(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		img_list(stdout);
		return 0;
	}
	for (c = img_cmds; c->name; c++)
		if (!strcmp(c->name, argv[1]))
			return c->run(c, argc - 1, argv + 1);
	fprintf(stderr, "tap-img: unknown command '%s'\n", argv[1]);
	img_list(stderr);
	return 1;
}

// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "log.h"

struct td_syncio *tool_open_name(const char *name, unsigned flags)
{
	struct td_syncio *s;
	struct td_name n;
	int rc = td_name_parse(name, &n);

	if (rc) {
		td_err("%s: not an image name", name);
		errno = -rc;
		return NULL;
	}
	s = tool_open(n.path, n.type[0] ? n.type : NULL, flags);
	rc = errno;
	td_name_free(&n);
	errno = rc;
	return s;
}

char *tool_backing_path(const char *image, const char *backing)
{
	char *dir, *out;

	if (backing[0] == '/' || !strchr(image, '/'))
		return strdup(backing);
	dir = strdup(image);
	if (!dir)
		return NULL;
	if (asprintf(&out, "%s/%s", dirname(dir), backing) < 0)
		out = NULL;
	free(dir);
	return out;
}

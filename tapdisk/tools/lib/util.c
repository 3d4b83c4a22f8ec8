// SPDX-License-Identifier: GPL-2.0-only
/* Sizes, -o option lists and zero detection, as qemu-img users know them. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

int tool_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "BKMGTPE";
	uint64_t whole, frac = 0, scale = 1, mult = 1, r;
	const char *u;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	whole = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == '.') {
		/* "1.5G": kept exact in integers, no floating point */
		for (end++; isdigit((unsigned char)*end); end++) {
			if (scale > UINT64_MAX / 100)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*end - '0');
			scale *= 10;
		}
	}
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u || end[1])
			return -EINVAL;
		mult = 1ull << ((u - units) * 10);
	}
	if (__builtin_mul_overflow(whole, mult, &r))
		return -EINVAL;
	/* a fraction must come out to whole bytes: "1.5" bytes is not */
	if (frac) {
		if (frac > UINT64_MAX / mult || (frac * mult) % scale ||
		    __builtin_add_overflow(r, frac * mult / scale, &r))
			return -EINVAL;
	}
	*out = r;
	return 0;
}

void tool_human_size(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "B",   "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	double v = (double)n;
	int i = 0;

	while (v >= 1024 && i < 6) {
		v /= 1024;
		i++;
	}
	/* qemu-img style: "64 MiB", "1.5 GiB" (up to 3 significant digits) */
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else if (v >= 999.5)
		snprintf(buf, len, "%.0f %s", v, units[i]);
	else
		snprintf(buf, len, "%.3g %s", v, units[i]);
}

static int opts_push(struct tool_opts *o, char *key, char *val)
{
	char **k = realloc(o->keys, (o->n + 1) * sizeof(*k));
	char **v;

	if (!k)
		return -ENOMEM;
	o->keys = k;
	v = realloc(o->vals, (o->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	o->vals = v;
	o->keys[o->n] = key;
	o->vals[o->n] = val;
	o->n++;
	return 0;
}

int tool_opts_add(struct tool_opts *o, const char *arg)
{
	char *item = malloc(strlen(arg) + 1), *eq, *key, *val;
	const char *p = arg;
	size_t n;
	int rc = 0;

	if (!item)
		return -ENOMEM;
	while (*p && !rc) {
		for (n = 0; *p; p++) {
			if (*p == ',' && p[1] == ',') {
				item[n++] = *p++;
				continue;
			}
			if (*p == ',')
				break;
			item[n++] = *p;
		}
		if (*p == ',')
			p++;
		item[n] = '\0';
		if (!n)
			continue;
		eq = strchr(item, '=');
		if (!eq || eq == item) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		key = strdup(item);
		val = strdup(eq + 1);
		if (!key || !val) {
			free(key);
			free(val);
			rc = -ENOMEM;
			break;
		}
		rc = opts_push(o, key, val);
		if (rc) {
			free(key);
			free(val);
		}
	}
	free(item);
	return rc;
}

char *tool_opts_take(struct tool_opts *o, const char *key)
{
	char *val = NULL;
	int i, j;

	for (i = 0; i < o->n; i++) {
		if (strcmp(o->keys[i], key))
			continue;
		/* the last one given wins, as on qemu-img's command line */
		free(val);
		val = o->vals[i];
		free(o->keys[i]);
		for (j = i + 1; j < o->n; j++) {
			o->keys[j - 1] = o->keys[j];
			o->vals[j - 1] = o->vals[j];
		}
		o->n--;
		i--;
	}
	return val;
}

void tool_opts_free(struct tool_opts *o)
{
	int i;

	for (i = 0; i < o->n; i++) {
		free(o->keys[i]);
		free(o->vals[i]);
	}
	free(o->keys);
	free(o->vals);
	memset(o, 0, sizeof(*o));
}

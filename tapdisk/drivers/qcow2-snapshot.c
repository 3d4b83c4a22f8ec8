// SPDX-License-Identifier: GPL-2.0-only
/*
 * qcow2 internal snapshots: the snapshot table, listing it, and opening an
 * image read-only at one snapshot ("qcow2:PATH?snapshot=ID_OR_NAME"). The
 * table comes from the file and is checked before anything in it is used:
 * every entry must lie inside the file and inside the table's size limit,
 * and a snapshot's L1 table must be aligned, inside the file and large
 * enough for the snapshot's disk size, or reads through it would index
 * past its end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "log.h"
#include "qcow2-priv.h"

/* the fixed part of an entry; the extra data, ID and name follow */
#define SNAP_FIXED 40
/* the extra data an entry may carry (qemu's limit too) */
#define SNAP_MAX_EXTRA 1024
/* the whole table: bounds what a malformed header makes us read */
#define SNAP_MAX_TABLE (64ull << 20)

/* Is the snapshot's L1 table one we can read at its disk size? */
static int snap_l1_check(struct td_image *img, const struct qcow2_snap *s)
{
	struct qcow2_priv *p = img->priv;
	uint64_t bytes = (uint64_t)s->l1_size * 8;
	uint64_t per_l1 = 1ull << (p->cluster_bits + p->l2_bits);
	const char *why = NULL;

	if (s->disk_size > (1ull << 62))
		why = "its virtual disk size is too large";
	else if (bytes > QCOW2_MAX_L1_BYTES)
		why = "its L1 table is larger than 32 MiB";
	else if (s->l1_offset % p->cluster_size)
		why = "its L1 table offset is not cluster aligned";
	else if (bytes && s->l1_offset < p->cluster_size)
		why = "its L1 table overlaps the header";
	else if (s->l1_offset > p->file_size ||
		 bytes > p->file_size - s->l1_offset)
		why = "its L1 table lies beyond the end of the file";
	else if (s->l1_size < (s->disk_size + per_l1 - 1) / per_l1)
		why = "its L1 table is too small for its disk size";
	if (!why)
		return 0;
	td_err("%s: snapshot %s (%s): %s", img->path, s->id, s->name, why);
	return -EINVAL;
}

/* Parse one entry at e (len bytes of it available) into s. */
static void snap_parse(const struct qcow2_priv *p, const unsigned char *e,
		       uint32_t extra, struct qcow2_snap *s)
{
	s->l1_offset = td_be_get64(e);
	s->l1_size = td_be_get32(e + 8);
	s->date_sec = td_be_get32(e + 16);
	s->date_nsec = td_be_get32(e + 20);
	s->vm_clock_nsec = td_be_get64(e + 24);
	s->vm_state_size = td_be_get32(e + 32);
	/* the extra data's fields replace the fixed ones when present */
	if (extra >= 8)
		s->vm_state_size = td_be_get64(e + SNAP_FIXED);
	s->disk_size = extra >= 16 ? td_be_get64(e + SNAP_FIXED + 8) : p->h.size;
}

int qcow2_snapshots_walk(struct td_image *img, bool check_l1,
			 int (*fn)(void *ctx, const struct qcow2_snap *s),
			 void *ctx, uint64_t *table_len)
{
	struct qcow2_priv *p = img->priv;
	uint64_t start = p->h.snapshots_offset, off = start, i, len;
	unsigned char *e;
	struct qcow2_snap s;
	int rc = 0;

	/* the largest entry: fixed part, extra data, ID, name, NULs */
	e = malloc(SNAP_FIXED + SNAP_MAX_EXTRA + 2 * 65536 + 8);
	if (!e)
		return -ENOMEM;
	for (i = 0; i < p->h.nb_snapshots; i++) {
		uint32_t idl, nl, extra;

		if (off > p->file_size || p->file_size - off < SNAP_FIXED) {
			td_err("%s: snapshot table entry %llu lies beyond the "
			       "end of the file",
			       img->path, (unsigned long long)i);
			rc = -EINVAL;
			break;
		}
		rc = qcow2_pio(p->fd, false, e, SNAP_FIXED, off);
		if (rc)
			break;
		idl = (uint32_t)e[12] << 8 | e[13];
		nl = (uint32_t)e[14] << 8 | e[15];
		extra = td_be_get32(e + 36);
		if (extra > SNAP_MAX_EXTRA) {
			td_err("%s: snapshot table entry %llu: %u bytes of "
			       "extra data (at most %u)",
			       img->path, (unsigned long long)i, extra,
			       SNAP_MAX_EXTRA);
			rc = -EINVAL;
			break;
		}
		len = SNAP_FIXED + extra + idl + nl;
		if (len > p->file_size - off) {
			td_err("%s: snapshot table entry %llu (ID and name "
			       "%u and %u bytes) lies beyond the end of the "
			       "file",
			       img->path, (unsigned long long)i, idl, nl);
			rc = -EINVAL;
			break;
		}
		if (off - start + len > SNAP_MAX_TABLE) {
			td_err("%s: snapshot table larger than %llu MiB",
			       img->path,
			       (unsigned long long)(SNAP_MAX_TABLE >> 20));
			rc = -EINVAL;
			break;
		}
		rc = qcow2_pio(p->fd, false, e + SNAP_FIXED, len - SNAP_FIXED,
			       off + SNAP_FIXED);
		if (rc)
			break;
		/* NUL-terminate the ID and the name in place, moved apart */
		memmove(e + len + 1 - nl, e + len - nl, nl);
		e[len + 1] = '\0';
		e[len - nl] = '\0';
		snap_parse(p, e, extra, &s);
		s.index = (uint32_t)i;
		s.id = (const char *)e + SNAP_FIXED + extra;
		s.name = (const char *)e + len + 1 - nl;
		if (strlen(s.id) != idl || strlen(s.name) != nl) {
			td_err("%s: snapshot table entry %llu: NUL in its ID "
			       "or name",
			       img->path, (unsigned long long)i);
			rc = -EINVAL;
			break;
		}
		if (check_l1) {
			rc = snap_l1_check(img, &s);
			if (rc)
				break;
		}
		rc = fn(ctx, &s);
		if (rc)
			break;
		off += qcow2_align_up(len, 8);
	}
	free(e);
	if (!rc && table_len)
		*table_len = off - start;
	return rc;
}

struct snap_list {
	struct td_snapshot *v;
	int n;
};

static int snap_one(void *ctx, const struct qcow2_snap *s)
{
	struct snap_list *l = ctx;
	struct td_snapshot *t = &l->v[l->n++];

	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", s->id);
	snprintf(t->name, sizeof(t->name), "%s", s->name);
	t->date_sec = s->date_sec;
	t->vm_clock_nsec = s->vm_clock_nsec;
	t->vm_state_size = s->vm_state_size;
	t->disk_size = s->disk_size;
	return 0;
}

int qcow2_snapshot_list(struct td_image *img, struct td_snapshot **list, int *n)
{
	struct qcow2_priv *p = img->priv;
	struct snap_list l = { NULL, 0 };
	int rc;

	l.v = calloc(p->h.nb_snapshots + 1, sizeof(*l.v));
	if (!l.v)
		return -ENOMEM;
	rc = qcow2_snapshots_walk(img, true, snap_one, &l, NULL);
	if (rc) {
		free(l.v);
		return rc;
	}
	*list = l.v;
	*n = l.n;
	return 0;
}

/* The lookup: an ID match wins over a name match, as in qemu-img -s. */
struct snap_find {
	const char *want;
	struct qcow2_snap by_id, by_name;
	bool have_id, have_name;
};

static int snap_match(void *ctx, const struct qcow2_snap *s)
{
	struct snap_find *f = ctx;

	/* the strings live only during the walk: keep the numbers */
	if (!f->have_id && !strcmp(s->id, f->want)) {
		f->by_id = *s;
		f->have_id = true;
	} else if (!f->have_name && !strcmp(s->name, f->want)) {
		f->by_name = *s;
		f->have_name = true;
	}
	return 0;
}

int qcow2_snapshot_select(struct td_image *img, const char *file,
			  const char *want)
{
	struct qcow2_priv *p = img->priv;
	struct snap_find f = { .want = want };
	const struct qcow2_snap *s;
	uint64_t *l1;
	int rc;

	rc = qcow2_snapshots_walk(img, true, snap_match, &f, NULL);
	if (rc) {
		td_err("%s: cannot read the snapshot table to open snapshot "
		       "%s",
		       file, want);
		return rc;
	}
	if (!f.have_id && !f.have_name) {
		td_err("%s: no snapshot with the ID or name '%s' (tap-img "
		       "snapshot -l lists them)",
		       file, want);
		return -ENOENT;
	}
	s = f.have_id ? &f.by_id : &f.by_name;
	rc = qcow2_load_table(img, "snapshot's L1 table", s->l1_offset,
			      s->l1_size, &l1);
	if (rc)
		return rc;
	/* reads go through this L1 table; the image is never written */
	free(p->l1);
	p->l1 = l1;
	p->l1_size = s->l1_size;
	p->h.size = s->disk_size;
	td_info("%s: opened at snapshot %s (entry %u), %llu bytes", file, want,
		s->index, (unsigned long long)s->disk_size);
	return 0;
}

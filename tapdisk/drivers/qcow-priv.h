/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * QEMU qcow version 1, shared between the data path (qcow.c) and the
 * header handling and administration (qcow-meta.c).
 *
 * On disk, all big-endian: a 48-byte header, the backing file name, the
 * L1 table (64-bit file offsets of L2 tables) and then clusters and L2
 * tables (1 << l2_bits 64-bit entries each) appended as they are needed.
 * An L2 entry is the file offset of a cluster, 0 when unallocated; with
 * bit 63 set the cluster is zlib (raw deflate) compressed, its byte length
 * in the bits above the offset. There are no reference counts: clusters
 * are never freed, only appended.
 */
#ifndef TD_QCOW_PRIV_H
#define TD_QCOW_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

#define QCOW_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW_VERSION 1
#define QCOW_HEADER_SIZE 48
#define QCOW_CRYPT_NONE 0
#define QCOW_CRYPT_AES 1
#define QCOW_COMPRESSED (1ull << 63)
#define QCOW_CLUSTER_BITS_MIN 9
#define QCOW_CLUSTER_BITS_MAX 16
#define QCOW_L2_BITS_MIN 6 /* L2 tables of 512 bytes ... */
#define QCOW_L2_BITS_MAX 13 /* ... to 64 KiB, as qemu accepts */
/* qemu refuses longer backing names */
#define QCOW_BACKING_MAX 1023
/*
 * A bound on the L1 table we hold in memory: 32 Mi entries cover 64 TiB
 * with the smallest L2 span qemu makes (4 KiB clusters, 512 entries).
 */
#define QCOW_L1_BYTES_MAX (256u << 20)
#define QCOW_SECTOR 512

struct qcow_header {
	uint32_t magic;
	uint32_t version;
	uint64_t backing_offset;
	uint32_t backing_size;
	uint32_t mtime;
	uint64_t size;
	uint8_t cluster_bits;
	uint8_t l2_bits;
	uint32_t crypt_method;
	uint64_t l1_offset;
};

/* What a valid header says, derived once. */
struct qcow_geom {
	uint64_t size; /* the disk, whole sectors */
	uint32_t cluster_size;
	uint32_t l2_entries;
	uint32_t l2_bytes;
	uint64_t l1_entries;
	uint64_t l1_bytes;
	uint64_t offset_mask; /* the offset bits of an L2 entry */
};

static inline uint64_t qcow_be64(const uint8_t *p)
{
	return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 |
	       (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
	       (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
	       (uint64_t)p[6] << 8 | p[7];
}

static inline void qcow_put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t qcow_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline void qcow_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void qcow_header_decode(const uint8_t *b, struct qcow_header *h);
void qcow_header_encode(const struct qcow_header *h, uint8_t *b);

/*
 * Validate a header against the file's size; on success fill *g. Every
 * refusal is logged naming the file and the field. 0 or -errno.
 */
int qcow_header_check(const char *path, const struct qcow_header *h,
		      uint64_t file_size, struct qcow_geom *g);

/*
 * Read and check the header and the backing name of an open file.
 * *backing is malloc'd, NULL when there is none.
 */
int qcow_read_header(const char *path, int fd, struct qcow_header *h,
		     struct qcow_geom *g, char **backing);

/* The administrative ops (qcow-meta.c). */
int qcow_create(const char *path, const struct td_create_opts *opts);
void qcow_describe(struct td_image *img, struct json_object *out);
int qcow_set_parent(struct td_image *img, const char *name, const char *fmt);
int qcow_resize(struct td_image *img, uint64_t size);
int qcow_check(struct td_image *img, struct td_check *res, unsigned fix);

/* What the administrative ops need of an open image (qcow.c). */
struct qcow_admin {
	int fd;
	const char *path; /* the file, without ?key-file= */
	struct qcow_header *h;
	struct qcow_geom *g;
	uint64_t *l1; /* host order, g->l1_entries */
	char **backing;
};
void qcow_admin_get(struct td_image *img, struct qcow_admin *a);
/* After the header or L1 changed on disk: reload what the data path keeps. */
int qcow_admin_reload(struct td_image *img);

#endif

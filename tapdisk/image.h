/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Images and their drivers. An image is one layer of a chain (leaf ->
 * parent -> ...), served by one driver through its ops table. A request a
 * layer does not hold is forwarded to its parent with td_image_forward().
 */
#ifndef TD_IMAGE_H
#define TD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"

struct td_loop;
struct td_ioengine;
struct td_image;

#define TD_OPEN_RDONLY 0x1u
#define TD_OPEN_PROBE 0x2u /* header only: info() but no I/O */
#define TD_OPEN_NO_BACKING 0x4u /* this layer only: don't open the chain */
#define TD_OPEN_BUFFERED 0x8u /* no O_DIRECT (tools on tmpfs, tests) */

/* What `tap-img create` (and convert's output) asks of a driver. */
struct td_create_opts {
	uint64_t size; /* bytes; 0 with a backing file: the backing's size */
	const char *backing; /* backing image name, or NULL */
	const char *backing_fmt; /* its type, or NULL to probe */
	/* -o key=value options; a driver refuses keys it does not know */
	int nopts;
	const char *const *keys;
	const char *const *vals;
};

/* What `tap-img check` reports (qemu-img check's categories). */
struct td_check {
	uint64_t corruptions;
	uint64_t leaks;
	uint64_t corruptions_fixed;
	uint64_t leaks_fixed;
	uint64_t allocated_clusters;
	uint64_t total_clusters;
	uint64_t image_end_offset;
};

#define TD_CHECK_FIX_LEAKS 0x1u
#define TD_CHECK_FIX_ERRORS 0x2u

struct td_snapshot {
	char id[32];
	char name[256];
	uint64_t vm_state_size;
	uint64_t date_sec;
	uint64_t vm_clock_nsec;
	uint64_t disk_size;
};

struct json_object;

struct td_image_info {
	uint64_t size; /* bytes */
	unsigned sector_size; /* logical block size advertised to clients */
	/* offsets, lengths and buffer addresses the driver needs aligned */
	unsigned align;
	bool can_discard;
	bool can_zero; /* write_zeroes faster than writing zeroes */
	bool rotational;
	char *parent; /* backing image name (TYPE:PATH or path), or NULL */
};

struct td_driver {
	const char *name;
	size_t priv_size;
	int (*open)(struct td_image *img, const char *path, unsigned flags);
	void (*close)(struct td_image *img);
	/* Fills size, sector_size, align, capabilities, parent. */
	void (*info)(struct td_image *img, struct td_image_info *info);
	/* Requests arrive validated (in range, aligned to info.align). */
	void (*queue_read)(struct td_image *img, struct td_request *req);
	void (*queue_write)(struct td_image *img, struct td_request *req);
	void (*flush)(struct td_image *img, struct td_request *req);
	void (*discard)(struct td_image *img, struct td_request *req);
	void (*write_zeroes)(struct td_image *img, struct td_request *req);
	void (*block_status)(struct td_image *img, struct td_request *req);
	/* optional prefetch hint */
	void (*cache)(struct td_image *img, struct td_request *req);

	/*
	 * Administration, for tap-img and the classic tools. All optional,
	 * all synchronous (they may block: never called from a serving
	 * tapdisk's data path), all return 0 or -errno with the reason
	 * logged.
	 */
	int (*create)(const char *path, const struct td_create_opts *opts);
	/* format details for `tap-img info --json` */
	void (*describe)(struct td_image *img, struct json_object *out);
	int (*check)(struct td_image *img, struct td_check *res,
		     unsigned fix);
	int (*resize)(struct td_image *img, uint64_t size);
	/* rewrite the backing reference only (rebase -u); name NULL: none */
	int (*set_parent)(struct td_image *img, const char *name,
			  const char *fmt);
	/* *list is malloc'd, *n entries */
	int (*snapshot_list)(struct td_image *img, struct td_snapshot **list,
			     int *n);
};

struct td_image {
	const struct td_driver *drv;
	void *priv;
	char *name; /* TYPE:PATH as opened */
	char *path; /* the part after TYPE: */
	unsigned flags;
	int depth; /* 0 for the leaf */
	struct td_image_info info;
	struct td_image *parent;
	struct td_loop *loop;
	struct td_ioengine *io;
};

/* Image names: TYPE:PATH, legacy tap:TYPE:PATH, or a bare path to probe. */
struct td_name {
	char type[16];
	char *path; /* malloc'd */
};

int td_name_parse(const char *name, struct td_name *out);
void td_name_free(struct td_name *n);
/* Guess a format from the file's magic: "aio", "qcow", "qcow2", "vhd",... */
int td_probe(const char *path, const char **type);

const struct td_driver *td_driver_find(const char *type);
const char *td_driver_list(void); /* "aio sync ram" */

/*
 * Open an image and its whole backing chain. Loops and over-deep chains are
 * refused. Returns 0 or -errno with the reason logged.
 */
int td_image_open_chain(const char *name, unsigned flags,
			struct td_loop *loop, struct td_ioengine *io,
			struct td_image **out);
void td_image_close_chain(struct td_image *leaf);

/* Complete a request from a driver (deferred through the loop). */
void td_request_complete(struct td_image *img, struct td_request *req,
			 int err);
/*
 * Hand a request for a range this layer does not hold to the parent; with
 * no parent, reads return zeroes and block status reports a hole.
 */
void td_image_forward(struct td_image *img, struct td_request *req);

/* dispatch one request to img's driver (the vbd and forwarding use it) */
void td_image_queue(struct td_image *img, struct td_request *req);

#endif

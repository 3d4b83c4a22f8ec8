/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * qcow2 calls for the image tools (tap-img convert -c) beyond the generic
 * driver ops. They work on an image opened with td_syncio_open() and use
 * the same metadata cache, refcounts and lock as the asynchronous paths, so
 * they can be mixed freely with td_syncio_* requests on the same image.
 */
#ifndef TD_QCOW2_H
#define TD_QCOW2_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* The image's cluster size in bytes; 0 if img is not a qcow2 image. */
uint64_t qcow2_cluster_size(struct td_image *img);

/*
 * Write one guest cluster compressed, as qemu-img convert -c does.
 *
 * img: td_syncio_image() of a qcow2 image opened read-write. The call runs
 * img's event loop until it is done, so it blocks: tools only, never from
 * a serving tapdisk nor from inside a request's callback. Requests
 * submitted before keep progressing meanwhile.
 *
 * guest_offset: a multiple of the cluster size. len: the cluster size, or
 * for the final cluster of a disk whose size is not a multiple of it,
 * exactly size - guest_offset (the rest is compressed as zeroes). data: len
 * bytes, any alignment. The cluster must not be allocated in img (no host
 * cluster, not compressed); a zero or unallocated cluster is replaced, and
 * whatever the backing file holds there is hidden from then on.
 *
 * The cluster is compressed with the image's compression type (zlib raw
 * deflate with a 4 KiB window, as qemu writes it, or zstd) and packed after
 * the previous compressed cluster, sharing host clusters the way qemu does:
 * every host cluster a compressed cluster touches holds one reference for
 * it. If the result does not fit in cluster_size - 1 bytes, the cluster is
 * written uncompressed through the ordinary write path, as qemu does.
 *
 * Ordering and durability are those of an ordinary write: the data reaches
 * the file before the L2 entry changes in the cache, and both are durable
 * after the next flush (td_syncio_flush(), or closing the image).
 *
 * Returns 0 or -errno, with the reason logged naming the file: -EINVAL
 * (not qcow2, misaligned offset, wrong length), -EROFS (read-only),
 * -ENOTSUP (external data file: qcow2 forbids compression there), -EEXIST
 * (the cluster is already allocated), or an I/O or memory error.
 */
int qcow2_write_compressed(struct td_image *img, uint64_t guest_offset,
			   const void *data, size_t len);

#endif

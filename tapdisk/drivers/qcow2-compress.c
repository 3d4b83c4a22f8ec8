// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compressed clusters: zlib as qemu writes it (raw deflate, 4 KiB window,
 * no header) and zstd frames. A compressed cluster always inflates to one
 * whole cluster; anything else is a corrupt image.
 */
#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "qcow2-priv.h"

static int inflate_zlib(const void *src, size_t srclen, void *dst,
			size_t dstlen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)srclen;
	z.next_out = dst;
	z.avail_out = (uInt)dstlen;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	/* the input is padded to a sector: stopping early is the norm */
	if ((rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK) &&
	    z.avail_out == 0)
		return 0;
	return -EIO;
}

static int inflate_zstd(const void *src, size_t srclen, void *dst,
			size_t dstlen)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_inBuffer in = { src, srclen, 0 };
	ZSTD_outBuffer out = { dst, dstlen, 0 };
	int err = 0;

	if (!dc)
		return -ENOMEM;
	while (out.pos < out.size) {
		size_t before = out.pos, r;

		r = ZSTD_decompressStream(dc, &out, &in);
		/* one frame per cluster: ending short of it is corruption */
		if (ZSTD_isError(r) || (r == 0 && out.pos < out.size) ||
		    (in.pos >= in.size && out.pos == before)) {
			err = -EIO;
			break;
		}
	}
	ZSTD_freeDCtx(dc);
	return err;
}

int qcow2_decompress(const struct qcow2_priv *p, const void *src,
		     size_t srclen, void *dst, size_t dstlen)
{
	if (p->h.compression_type == QCOW2_COMP_ZSTD)
		return inflate_zstd(src, srclen, dst, dstlen);
	return inflate_zlib(src, srclen, dst, dstlen);
}

int qcow2_compress(const struct qcow2_priv *p, const void *src, size_t len,
		   void *dst, size_t dstlen, size_t *outlen)
{
	if (p->h.compression_type == QCOW2_COMP_ZSTD) {
		size_t r = ZSTD_compress(dst, dstlen, src, len, 3);

		if (ZSTD_isError(r))
			return -ENOSPC;
		*outlen = r;
		return 0;
	} else {
		z_stream z;
		int rc;

		memset(&z, 0, sizeof(z));
		if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		z.next_in = (Bytef *)src;
		z.avail_in = (uInt)len;
		z.next_out = dst;
		z.avail_out = (uInt)dstlen;
		rc = deflate(&z, Z_FINISH);
		*outlen = dstlen - z.avail_out;
		deflateEnd(&z);
		return rc == Z_STREAM_END ? 0 : -ENOSPC;
	}
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * The NBD codec: bytes in, decoded and validated structures out, and the
 * reverse for replies. No I/O here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd-proto.h"
#include "request.h"

static int copy_str(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return -ENAMETOOLONG;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

static int parse_port(const char *p, struct nbd_addr *out)
{
	char *end;
	unsigned long v;

	if (!*p || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno || v > 65535)
		return -EINVAL;
	snprintf(out->port, sizeof(out->port), "%lu", v);
	return 0;
}

int nbd_parse_addr(const char *addr, struct nbd_addr *out)
{
	const char *hp, *colon;

	memset(out, 0, sizeof(*out));
	if (!addr)
		return -EINVAL;
	if (!strncmp(addr, "unix:", 5)) {
		out->kind = NBD_ADDR_UNIX;
		if (!addr[5])
			return -EINVAL;
		return copy_str(out->path, sizeof(out->path), addr + 5,
				strlen(addr + 5));
	}
	if (strncmp(addr, "tcp:", 4))
		return -EINVAL;
	out->kind = NBD_ADDR_TCP;
	hp = addr + 4;
	if (*hp == '[') {
		const char *close = strchr(hp, ']');
		int err;

		if (!close || close == hp + 1 || close[1] != ':')
			return -EINVAL;
		err = copy_str(out->host, sizeof(out->host), hp + 1,
			       (size_t)(close - hp - 1));
		if (err)
			return err;
		return parse_port(close + 2, out);
	}
	colon = strrchr(hp, ':');
	if (!colon) {
		strcpy(out->host, "127.0.0.1");
		return parse_port(hp, out);
	}
	if (memchr(hp, ':', (size_t)(colon - hp)))
		return -EINVAL; /* bare IPv6 must be bracketed */
	if (colon == hp)
		strcpy(out->host, "127.0.0.1");
	else if (copy_str(out->host, sizeof(out->host), hp,
			  (size_t)(colon - hp)))
		return -ENAMETOOLONG;
	return parse_port(colon + 1, out);
}

int nbd_parse_opt_hdr(const uint8_t buf[NBD_OPT_HDR_LEN],
		      struct nbd_opt_hdr *out)
{
	if (td_be_get64(buf) != NBD_OPTS_MAGIC)
		return -EPROTO;
	out->opt = td_be_get32(buf + 8);
	out->len = td_be_get32(buf + 12);
	if (out->len > NBD_MAX_OPT_LEN)
		return -E2BIG;
	return 0;
}

int nbd_parse_info_req(const uint8_t *data, uint32_t len,
		       struct nbd_info_req *out)
{
	uint32_t nlen, n, i;
	const uint8_t *p;

	memset(out, 0, sizeof(*out));
	if (len < 6)
		return -EINVAL;
	nlen = td_be_get32(data);
	if (nlen > len - 6 || nlen > NBD_MAX_STRING)
		return -EINVAL;
	out->name = (const char *)data + 4;
	out->name_len = nlen;
	p = data + 4 + nlen;
	n = td_be_get16(p);
	if ((uint64_t)len != 4ull + nlen + 2 + 2ull * n)
		return -EINVAL;
	for (i = 0, p += 2; i < n; i++, p += 2) {
		switch (td_be_get16(p)) {
		case NBD_INFO_NAME:
			out->want_name = true;
			break;
		case NBD_INFO_DESCRIPTION:
			out->want_description = true;
			break;
		case NBD_INFO_BLOCK_SIZE:
			out->want_block_size = true;
			break;
		default:
			break; /* unknown requests must be ignored */
		}
	}
	return 0;
}

static bool query_is(const uint8_t *q, uint32_t qlen, const char *s)
{
	return qlen == strlen(s) && !memcmp(q, s, qlen);
}

int nbd_parse_meta_req(const uint8_t *data, uint32_t len,
		       struct nbd_meta_req *out)
{
	uint32_t nlen, i, off;

	memset(out, 0, sizeof(*out));
	if (len < 8)
		return -EINVAL;
	nlen = td_be_get32(data);
	if (nlen > len - 8 || nlen > NBD_MAX_STRING)
		return -EINVAL;
	out->name = (const char *)data + 4;
	out->name_len = nlen;
	off = 4 + nlen;
	out->nqueries = td_be_get32(data + off);
	off += 4;
	for (i = 0; i < out->nqueries; i++) {
		uint32_t qlen;

		if (len - off < 4)
			return -EINVAL;
		qlen = td_be_get32(data + off);
		off += 4;
		if (qlen > len - off || qlen > NBD_MAX_STRING)
			return -EINVAL;
		/* other namespaces must be ignored, not refused */
		if (query_is(data + off, qlen, NBD_META_BASE_ALLOCATION))
			out->allocation = true;
		else if (query_is(data + off, qlen, "base:"))
			out->base_wildcard = true;
		off += qlen;
	}
	return off == len ? 0 : -EINVAL;
}

int nbd_parse_req_hdr(const uint8_t buf[NBD_REQ_HDR_LEN],
		      struct nbd_req_hdr *out)
{
	if (td_be_get32(buf) != NBD_REQUEST_MAGIC)
		return -EPROTO;
	out->flags = td_be_get16(buf + 4);
	out->type = td_be_get16(buf + 6);
	out->cookie = td_be_get64(buf + 8);
	out->offset = td_be_get64(buf + 16);
	out->len = td_be_get32(buf + 24);
	return 0;
}

static uint16_t allowed_flags(uint16_t type)
{
	/* FUA is valid on every command once SEND_FUA is advertised */
	switch (type) {
	case NBD_CMD_READ:
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
	case NBD_CMD_WRITE_ZEROES:
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
		       NBD_CMD_FLAG_FAST_ZERO;
	case NBD_CMD_BLOCK_STATUS:
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
	default:
		return NBD_CMD_FLAG_FUA;
	}
}

static bool writes_data(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_WRITE_ZEROES;
}

int nbd_check_req(const struct nbd_req_hdr *r, const struct nbd_caps *caps)
{
	if (r->type == NBD_CMD_WRITE && r->len > NBD_MAX_PAYLOAD)
		return -EPROTO;
	if (r->type > NBD_CMD_BLOCK_STATUS)
		return NBD_EINVAL;
	if (r->flags & ~allowed_flags(r->type))
		return NBD_EINVAL;
	if ((r->flags & NBD_CMD_FLAG_DF) && !caps->structured)
		return NBD_EINVAL;
	if (caps->readonly && writes_data(r->type))
		return NBD_EPERM;
	if (r->offset + r->len < r->offset)
		return writes_data(r->type) ? NBD_ENOSPC : NBD_EINVAL;
	switch (r->type) {
	case NBD_CMD_READ:
		if (r->len > NBD_MAX_PAYLOAD)
			return caps->structured ? NBD_EOVERFLOW : NBD_EINVAL;
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!caps->structured || !caps->meta_id || !r->len)
			return NBD_EINVAL;
		break;
	default:
		break;
	}
	return 0;
}

uint32_t nbd_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

uint32_t nbd_state_flags(unsigned td_flags)
{
	return (td_flags & TD_BS_HOLE ? NBD_STATE_HOLE : 0) |
	       (td_flags & TD_BS_ZERO ? NBD_STATE_ZERO : 0);
}

void nbd_enc_greeting(uint8_t out[NBD_GREETING_LEN])
{
	td_be_put64(out, NBD_MAGIC);
	td_be_put64(out + 8, NBD_OPTS_MAGIC);
	td_be_put16(out + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

void nbd_enc_opt_reply(uint8_t out[NBD_OPT_REPLY_HDR_LEN], uint32_t opt,
		       uint32_t type, uint32_t len)
{
	td_be_put64(out, NBD_REP_MAGIC);
	td_be_put32(out + 8, opt);
	td_be_put32(out + 12, type);
	td_be_put32(out + 16, len);
}

void nbd_enc_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t err,
			  uint64_t cookie)
{
	td_be_put32(out, NBD_SIMPLE_REPLY_MAGIC);
	td_be_put32(out + 4, err);
	td_be_put64(out + 8, cookie);
}

void nbd_enc_chunk_hdr(uint8_t out[NBD_CHUNK_HDR_LEN], uint16_t flags,
		       uint16_t type, uint64_t cookie, uint32_t len)
{
	td_be_put32(out, NBD_STRUCTURED_REPLY_MAGIC);
	td_be_put16(out + 4, flags);
	td_be_put16(out + 6, type);
	td_be_put64(out + 8, cookie);
	td_be_put32(out + 16, len);
}

void nbd_enc_error_chunk(uint8_t out[NBD_ERROR_CHUNK_LEN], uint32_t err,
			 uint64_t cookie)
{
	nbd_enc_chunk_hdr(out, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
			  cookie, 6);
	td_be_put32(out + NBD_CHUNK_HDR_LEN, err);
	td_be_put16(out + NBD_CHUNK_HDR_LEN + 4, 0);
}

void nbd_enc_extent(uint8_t out[NBD_EXTENT_LEN], uint32_t len, uint32_t flags)
{
	td_be_put32(out, len);
	td_be_put32(out + 4, flags);
}

const char *nbd_opt_name(uint32_t opt)
{
	static const char *const names[] = {
		[NBD_OPT_EXPORT_NAME] = "EXPORT_NAME",
		[NBD_OPT_ABORT] = "ABORT",
		[NBD_OPT_LIST] = "LIST",
		[NBD_OPT_STARTTLS] = "STARTTLS",
		[NBD_OPT_INFO] = "INFO",
		[NBD_OPT_GO] = "GO",
		[NBD_OPT_STRUCTURED_REPLY] = "STRUCTURED_REPLY",
		[NBD_OPT_LIST_META_CONTEXT] = "LIST_META_CONTEXT",
		[NBD_OPT_SET_META_CONTEXT] = "SET_META_CONTEXT",
	};

	if (opt < sizeof(names) / sizeof(names[0]) && names[opt])
		return names[opt];
	return "unknown";
}

const char *nbd_cmd_name(uint16_t type)
{
	static const char *const names[] = {
		[NBD_CMD_READ] = "READ",
		[NBD_CMD_WRITE] = "WRITE",
		[NBD_CMD_DISC] = "DISC",
		[NBD_CMD_FLUSH] = "FLUSH",
		[NBD_CMD_TRIM] = "TRIM",
		[NBD_CMD_CACHE] = "CACHE",
		[NBD_CMD_WRITE_ZEROES] = "WRITE_ZEROES",
		[NBD_CMD_BLOCK_STATUS] = "BLOCK_STATUS",
	};

	if (type < sizeof(names) / sizeof(names[0]))
		return names[type];
	return "unknown";
}

// SPDX-License-Identifier: GPL-2.0-only
/* The NBD codec, fed bytes: addresses, options, requests, replies. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "nbd-proto.h"
#include "nbd-test.h"
#include "request.h"
#include "tap.h"

static void test_addr(void)
{
	struct nbd_addr a;
	char longpath[200];

	is(nbd_parse_addr("unix:/run/x.sock", &a), 0, "unix address");
	ok(a.kind == NBD_ADDR_UNIX && !strcmp(a.path, "/run/x.sock"),
	   "unix path kept");
	is(nbd_parse_addr("tcp:10809", &a), 0, "tcp:PORT");
	ok(!strcmp(a.host, "127.0.0.1") && !strcmp(a.port, "10809"),
	   "tcp:PORT defaults to loopback");
	is(nbd_parse_addr("tcp::0", &a), 0, "tcp::0");
	ok(!strcmp(a.host, "127.0.0.1") && !strcmp(a.port, "0"),
	   "tcp::0 is loopback, any port");
	is(nbd_parse_addr("tcp:0.0.0.0:99", &a), 0, "tcp:HOST:PORT");
	ok(!strcmp(a.host, "0.0.0.0") && !strcmp(a.port, "99"), "host kept");
	is(nbd_parse_addr("tcp:[::1]:10809", &a), 0, "bracketed IPv6");
	ok(!strcmp(a.host, "::1") && !strcmp(a.port, "10809"),
	   "IPv6 host without brackets");
	is(nbd_parse_addr("tcp:::1:5", &a), -EINVAL, "bare IPv6 refused");
	is(nbd_parse_addr("tcp:[::1]5", &a), -EINVAL, "missing colon");
	is(nbd_parse_addr("tcp:[]:5", &a), -EINVAL, "empty brackets");
	is(nbd_parse_addr("tcp:host:65536", &a), -EINVAL, "port too big");
	is(nbd_parse_addr("tcp:host:", &a), -EINVAL, "empty port");
	is(nbd_parse_addr("tcp:host:1x", &a), -EINVAL, "port not numeric");
	is(nbd_parse_addr("unix:", &a), -EINVAL, "empty unix path");
	is(nbd_parse_addr("udp:1", &a), -EINVAL, "unknown scheme");
	is(nbd_parse_addr(NULL, &a), -EINVAL, "NULL address");
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "unix:", 5);
	longpath[sizeof(longpath) - 1] = '\0';
	is(nbd_parse_addr(longpath, &a), -ENAMETOOLONG, "unix path too long");
}

static void opt_hdr(uint8_t *b, uint64_t magic, uint32_t opt, uint32_t len)
{
	td_be_put64(b, magic);
	td_be_put32(b + 8, opt);
	td_be_put32(b + 12, len);
}

static void test_opt_hdr(void)
{
	struct nbd_opt_hdr oh;
	uint8_t b[NBD_OPT_HDR_LEN];

	opt_hdr(b, NBD_OPTS_MAGIC, NBD_OPT_GO, 12);
	is(nbd_parse_opt_hdr(b, &oh), 0, "option header");
	ok(oh.opt == NBD_OPT_GO && oh.len == 12, "option and length decoded");
	opt_hdr(b, NBD_MAGIC, NBD_OPT_GO, 12);
	is(nbd_parse_opt_hdr(b, &oh), -EPROTO, "bad option magic");
	opt_hdr(b, NBD_OPTS_MAGIC, NBD_OPT_LIST, NBD_MAX_OPT_LEN);
	is(nbd_parse_opt_hdr(b, &oh), 0, "option at the length limit");
	opt_hdr(b, NBD_OPTS_MAGIC, NBD_OPT_LIST, NBD_MAX_OPT_LEN + 1);
	is(nbd_parse_opt_hdr(b, &oh), -E2BIG, "option over the length limit");
	opt_hdr(b, NBD_OPTS_MAGIC, 99, 0xffffffffu);
	is(nbd_parse_opt_hdr(b, &oh), -E2BIG, "option of 4 GiB");
}

static uint32_t info_req(uint8_t *b, const char *name, uint32_t name_len,
			 const uint16_t *reqs, uint16_t n)
{
	uint32_t off = 4 + name_len, i;

	td_be_put32(b, name_len);
	memcpy(b + 4, name, strlen(name));
	td_be_put16(b + off, n);
	off += 2;
	for (i = 0; i < n; i++, off += 2)
		td_be_put16(b + off, reqs[i]);
	return off;
}

static void test_info_req(void)
{
	static const uint16_t reqs[] = { NBD_INFO_NAME, 77,
					 NBD_INFO_BLOCK_SIZE };
	struct nbd_info_req r;
	uint8_t b[64];
	uint32_t len;

	len = info_req(b, "disk", 4, reqs, 3);
	is(nbd_parse_info_req(b, len, &r), 0, "GO with three requests");
	ok(r.name_len == 4 && !memcmp(r.name, "disk", 4), "export name");
	ok(r.want_name && r.want_block_size && !r.want_description,
	   "known info requests seen, unknown ignored");
	len = info_req(b, "", 0, NULL, 0);
	is(len, 6, "empty GO is 6 bytes");
	is(nbd_parse_info_req(b, len, &r), 0, "default export, no requests");
	is(nbd_parse_info_req(b, 5, &r), -EINVAL, "GO shorter than 6 bytes");
	len = info_req(b, "disk", 40, NULL, 0);
	is(nbd_parse_info_req(b, 10, &r), -EINVAL, "name longer than option");
	len = info_req(b, "disk", 4, reqs, 3);
	is(nbd_parse_info_req(b, len - 2, &r), -EINVAL,
	   "request count beyond the data");
	is(nbd_parse_info_req(b, len + 2, &r), -EINVAL, "trailing bytes");
}

static uint32_t meta_req(uint8_t *b, const char *name, const char **q,
			 uint32_t n)
{
	uint32_t off, i;

	td_be_put32(b, (uint32_t)strlen(name));
	memcpy(b + 4, name, strlen(name));
	off = 4 + (uint32_t)strlen(name);
	td_be_put32(b + off, n);
	off += 4;
	for (i = 0; i < n; i++) {
		td_be_put32(b + off, (uint32_t)strlen(q[i]));
		memcpy(b + off + 4, q[i], strlen(q[i]));
		off += 4 + (uint32_t)strlen(q[i]);
	}
	return off;
}

static void test_meta_req(void)
{
	const char *q1[] = { "qemu:dirty-bitmap:x", "base:allocation" };
	const char *q2[] = { "base:" };
	const char *q3[] = { "base:allocationX", "nocolon" };
	struct nbd_meta_req r;
	uint8_t b[128];
	uint32_t len;

	len = meta_req(b, "", NULL, 0);
	is(nbd_parse_meta_req(b, len, &r), 0, "no queries");
	ok(r.nqueries == 0 && !r.allocation, "nothing selected");
	len = meta_req(b, "disk", q1, 2);
	is(nbd_parse_meta_req(b, len, &r), 0, "two queries");
	ok(r.allocation && !r.base_wildcard && r.name_len == 4,
	   "base:allocation found, other namespace ignored");
	len = meta_req(b, "", q2, 1);
	is(nbd_parse_meta_req(b, len, &r), 0, "base: wildcard");
	ok(r.base_wildcard && !r.allocation, "wildcard seen");
	len = meta_req(b, "", q3, 2);
	is(nbd_parse_meta_req(b, len, &r), 0, "unknown queries parse");
	ok(!r.base_wildcard && !r.allocation, "and select nothing");
	len = meta_req(b, "disk", q1, 2);
	is(nbd_parse_meta_req(b, len - 1, &r), -EINVAL, "truncated query");
	is(nbd_parse_meta_req(b, len + 1, &r), -EINVAL, "trailing byte");
	td_be_put32(b + 8, 3);
	is(nbd_parse_meta_req(b, len, &r), -EINVAL, "query count too high");
	is(nbd_parse_meta_req(b, 7, &r), -EINVAL, "shorter than 8 bytes");
	td_be_put32(b, 0xffffffffu);
	is(nbd_parse_meta_req(b, len, &r), -EINVAL, "huge name length");
}

static int check(uint16_t flags, uint16_t type, uint64_t offset, uint32_t len,
		 const struct nbd_caps *caps)
{
	struct nbd_req_hdr h = {
		.flags = flags, .type = type, .offset = offset, .len = len
	};

	return nbd_check_req(&h, caps);
}

static void test_requests(void)
{
	const struct nbd_caps sr = { .structured = true,
				     .meta_id = NBD_META_ID_ALLOCATION };
	const struct nbd_caps simple = { 0 };
	const struct nbd_caps ro = { .readonly = true, .structured = true };
	struct nbd_req_hdr h;
	uint8_t b[NBD_REQ_HDR_LEN];

	nbd_test_req(b, NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE,
		     0x0102030405060708ull, 1ull << 40, 4096);
	is(nbd_parse_req_hdr(b, &h), 0, "request header");
	ok(h.flags == NBD_CMD_FLAG_FUA && h.type == NBD_CMD_WRITE &&
		   h.cookie == 0x0102030405060708ull &&
		   h.offset == 1ull << 40 && h.len == 4096,
	   "fields decoded big-endian");
	nbd_test_req(b, NBD_SIMPLE_REPLY_MAGIC, 0, NBD_CMD_READ, 1, 0, 512);
	is(nbd_parse_req_hdr(b, &h), -EPROTO, "bad request magic");
	nbd_test_req(b, 0x21e41c71u, 0, NBD_CMD_READ, 1, 0, 512);
	is(nbd_parse_req_hdr(b, &h), -EPROTO, "extended header refused");

	is(check(0, NBD_CMD_READ, 0, 4096, &sr), 0, "read");
	is(check(NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 4096, &sr), 0,
	   "read with DF");
	is(check(NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 4096, &simple), NBD_EINVAL,
	   "DF without structured replies");
	is(check(0, NBD_CMD_READ, 0, NBD_MAX_PAYLOAD, &sr), 0,
	   "read of 32 MiB");
	is(check(0, NBD_CMD_READ, 0, NBD_MAX_PAYLOAD + 1, &sr), NBD_EOVERFLOW,
	   "huge read, structured: EOVERFLOW");
	is(check(0, NBD_CMD_READ, 0, 0xffffffffu, &simple), NBD_EINVAL,
	   "huge read, simple: EINVAL");
	is(check(0, NBD_CMD_WRITE, 0, NBD_MAX_PAYLOAD, &sr), 0,
	   "write of 32 MiB");
	is(check(0, NBD_CMD_WRITE, 0, NBD_MAX_PAYLOAD + 1, &sr), -EPROTO,
	   "huge write closes the connection");
	is(check(0, NBD_CMD_WRITE, 0, NBD_MAX_PAYLOAD + 1, &ro), -EPROTO,
	   "even on a read-only export");
	is(check(0, NBD_CMD_WRITE, 0, 512, &ro), NBD_EPERM,
	   "write on read-only");
	is(check(0, NBD_CMD_TRIM, 0, 512, &ro), NBD_EPERM, "trim on read-only");
	is(check(0, NBD_CMD_WRITE_ZEROES, 0, 512, &ro), NBD_EPERM,
	   "zero on read-only");
	is(check(0, NBD_CMD_FLUSH, 0, 0, &ro), 0, "flush on read-only");
	is(check(0, NBD_CMD_CACHE, 0, 0xffffffffu, &ro), 0, "big cache");
	is(check(0, 8, 0, 0, &sr), NBD_EINVAL, "unknown command 8");
	is(check(0, 0xffff, 0, 0, &sr), NBD_EINVAL, "unknown command 65535");
	is(check(NBD_CMD_FLAG_NO_HOLE, NBD_CMD_READ, 0, 512, &sr), NBD_EINVAL,
	   "NO_HOLE on read");
	is(check(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_WRITE, 0, 512, &sr), NBD_EINVAL,
	   "REQ_ONE on write");
	is(check(1u << 5, NBD_CMD_READ, 0, 512, &sr), NBD_EINVAL,
	   "PAYLOAD_LEN flag refused");
	is(check(0x8000, NBD_CMD_FLUSH, 0, 0, &sr), NBD_EINVAL,
	   "unknown flag bit");
	is(check(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
			 NBD_CMD_FLAG_FAST_ZERO,
		 NBD_CMD_WRITE_ZEROES, 0, 512, &sr),
	   0, "zero flags");
	is(check(NBD_CMD_FLAG_FUA, NBD_CMD_READ, 0, 512, &sr), 0,
	   "FUA accepted on read");
	is(check(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 0, 512, &sr), 0,
	   "block status");
	is(check(0, NBD_CMD_BLOCK_STATUS, 0, 0, &sr), NBD_EINVAL,
	   "block status of 0 bytes");
	is(check(0, NBD_CMD_BLOCK_STATUS, 0, 512, &ro), NBD_EINVAL,
	   "block status without a context");
	is(check(0, NBD_CMD_READ, UINT64_MAX - 10, 512, &sr), NBD_EINVAL,
	   "read wrapping around");
	is(check(0, NBD_CMD_WRITE, UINT64_MAX - 10, 512, &sr), NBD_ENOSPC,
	   "write wrapping around");
}

static void test_errno(void)
{
	is(nbd_errno(0), 0, "success");
	is(nbd_errno(-EPERM), NBD_EPERM, "EPERM");
	is(nbd_errno(-EROFS), NBD_EPERM, "EROFS as EPERM");
	is(nbd_errno(-EIO), NBD_EIO, "EIO");
	is(nbd_errno(-ENOMEM), NBD_ENOMEM, "ENOMEM");
	is(nbd_errno(-EINVAL), NBD_EINVAL, "EINVAL");
	is(nbd_errno(-ENOSPC), NBD_ENOSPC, "ENOSPC");
	is(nbd_errno(-EDQUOT), NBD_ENOSPC, "EDQUOT as ENOSPC");
	is(nbd_errno(-EFBIG), NBD_ENOSPC, "EFBIG as ENOSPC");
	is(nbd_errno(-EOVERFLOW), NBD_EOVERFLOW, "EOVERFLOW");
	is(nbd_errno(-ENOTSUP), NBD_ENOTSUP, "ENOTSUP");
	is(nbd_errno(-EOPNOTSUPP), NBD_ENOTSUP, "EOPNOTSUPP");
	is(nbd_errno(-ESHUTDOWN), NBD_ESHUTDOWN, "ESHUTDOWN");
	is(nbd_errno(-ENOENT), NBD_EIO, "others as EIO");
	is(nbd_errno(-EBADF), NBD_EIO, "EBADF as EIO");
}

static void test_encode(void)
{
	static const uint8_t greeting[] = "NBDMAGICIHAVEOPT\x00\x03";
	static const uint8_t extent[] = { 0, 0, 0x10, 0, 0, 0, 0, 3 };
	static const uint8_t simple[] = { 0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22,
					  0,	0,    0,    0,	  0, 0, 0, 7 };
	static const uint8_t err_chunk[] = { 0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80,
					     1,	   0,	 0,    0,    0, 0, 0,
					     0,	   9,	 0,    0,    0, 6, 0,
					     0,	   0,	 5,    0,    0 };
	uint8_t b[64];

	nbd_enc_greeting(b);
	ok(!memcmp(b, greeting, NBD_GREETING_LEN), "greeting");
	is(nbd_state_flags(0), 0, "allocated data");
	is(nbd_state_flags(TD_BS_HOLE), NBD_STATE_HOLE, "hole");
	is(nbd_state_flags(TD_BS_ZERO), NBD_STATE_ZERO, "zero");
	is(nbd_state_flags(TD_BS_HOLE | TD_BS_ZERO | 0x100),
	   NBD_STATE_HOLE | NBD_STATE_ZERO, "hole and zero, extras dropped");
	nbd_enc_extent(b, 4096, nbd_state_flags(TD_BS_HOLE | TD_BS_ZERO));
	ok(!memcmp(b, extent, sizeof(extent)), "block status descriptor");
	nbd_enc_simple_reply(b, NBD_EINVAL, 7);
	ok(!memcmp(b, simple, sizeof(simple)), "simple reply");
	nbd_enc_error_chunk(b, NBD_EIO, 9);
	ok(!memcmp(b, err_chunk, sizeof(err_chunk)), "error chunk");
	nbd_enc_chunk_hdr(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
			  1, 12);
	ok(td_be_get32(b) == NBD_STRUCTURED_REPLY_MAGIC &&
		   td_be_get16(b + 4) == 1 && td_be_get16(b + 6) == 5 &&
		   td_be_get64(b + 8) == 1 && td_be_get32(b + 16) == 12,
	   "block status chunk header");
	nbd_enc_opt_reply(b, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 3);
	ok(td_be_get64(b) == NBD_REP_MAGIC && td_be_get32(b + 8) == NBD_OPT_GO &&
		   td_be_get32(b + 12) == 0x80000006u && td_be_get32(b + 16) == 3,
	   "option reply header");
	ok(!strcmp(nbd_opt_name(NBD_OPT_GO), "GO") &&
		   !strcmp(nbd_opt_name(4), "unknown") &&
		   !strcmp(nbd_opt_name(12345), "unknown"),
	   "option names");
	ok(!strcmp(nbd_cmd_name(NBD_CMD_BLOCK_STATUS), "BLOCK_STATUS") &&
		   !strcmp(nbd_cmd_name(9), "unknown"),
	   "command names");
}

int main(void)
{
	test_addr();
	test_opt_hdr();
	test_info_req();
	test_meta_req();
	test_requests();
	test_errno();
	test_encode();
	return tap_done();
}

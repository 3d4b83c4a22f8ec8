/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * NBD wire constants and the pure codec of the export: decoding and
 * validating what clients send, encoding what the server replies. Nothing
 * here touches a socket, so tests can feed it bytes.
 */
#ifndef NBD_PROTO_H
#define NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "be.h"

#define NBD_MAGIC 0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC 0x49484156454f5054ull /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x3e889045565a9ull
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* handshake flags (server) and client flags */
#define NBD_FLAG_FIXED_NEWSTYLE 0x1u
#define NBD_FLAG_NO_ZEROES 0x2u
#define NBD_FLAG_C_FIXED_NEWSTYLE 0x1u
#define NBD_FLAG_C_NO_ZEROES 0x2u

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)

/* options */
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_STRUCTURED_REPLY 8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT 10u

/* option replies */
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_META_CONTEXT 4u
#define NBD_REP_ERR_UNSUP 0x80000001u
#define NBD_REP_ERR_POLICY 0x80000002u
#define NBD_REP_ERR_INVALID 0x80000003u
#define NBD_REP_ERR_UNKNOWN 0x80000006u
#define NBD_REP_ERR_SHUTDOWN 0x80000007u
#define NBD_REP_ERR_TOO_BIG 0x80000009u

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT 0u
#define NBD_INFO_NAME 1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE 3u

/* commands */
#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_CACHE 5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_BLOCK_STATUS 7u

/* command flags */
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* structured replies */
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0u
#define NBD_REPLY_TYPE_OFFSET_DATA 1u
#define NBD_REPLY_TYPE_OFFSET_HOLE 2u
#define NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define NBD_REPLY_TYPE_ERROR 0x8001u

/* base:allocation */
#define NBD_STATE_HOLE 0x1u
#define NBD_STATE_ZERO 0x2u
#define NBD_META_BASE_ALLOCATION "base:allocation"

/* error values */
#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

/* sizes on the wire */
#define NBD_GREETING_LEN 18 /* NBDMAGIC, IHAVEOPT, 16-bit flags */
#define NBD_OPT_HDR_LEN 16
#define NBD_OPT_REPLY_HDR_LEN 20
#define NBD_REQ_HDR_LEN 28
#define NBD_SIMPLE_REPLY_LEN 16
#define NBD_CHUNK_HDR_LEN 20
#define NBD_EXTENT_LEN 8
#define NBD_ERROR_CHUNK_LEN (NBD_CHUNK_HDR_LEN + 6)

/*
 * Our limits. A payload of up to 32 MiB must never be treated as abuse
 * (proto.md, size constraints), so that is what we accept; option payloads
 * are tiny in practice, 64 KiB leaves room for any sane export name list.
 */
#define NBD_MAX_PAYLOAD (32u << 20)
#define NBD_PREF_BLOCK 4096u
#define NBD_MAX_OPT_LEN (64u * 1024)
#define NBD_MAX_STRING 4096u
/* the id we hand out for base:allocation (any nonzero value would do) */
#define NBD_META_ID_ALLOCATION 1u

struct nbd_opt_hdr {
	uint32_t opt;
	uint32_t len;
};

struct nbd_req_hdr {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t len;
};

/* What a connection negotiated; the request validator needs it. */
struct nbd_caps {
	bool readonly;
	bool structured;
	uint32_t meta_id; /* 0: no metadata context selected */
};

/* NBD_OPT_INFO / NBD_OPT_GO payload */
struct nbd_info_req {
	const char *name; /* not NUL-terminated */
	uint32_t name_len;
	bool want_name;
	bool want_description;
	bool want_block_size;
};

/* NBD_OPT_{LIST,SET}_META_CONTEXT payload, as far as base: is concerned */
struct nbd_meta_req {
	const char *name;
	uint32_t name_len;
	uint32_t nqueries;
	bool allocation; /* "base:allocation" was asked for */
	bool base_wildcard; /* "base:" was asked for */
};

enum nbd_addr_kind { NBD_ADDR_UNIX, NBD_ADDR_TCP };

struct nbd_addr {
	enum nbd_addr_kind kind;
	char path[108]; /* sun_path */
	char host[256];
	char port[8];
};

/* "unix:PATH" or "tcp:[HOST]:PORT"; 0 or -EINVAL / -ENAMETOOLONG. */
int nbd_parse_addr(const char *addr, struct nbd_addr *out);

/* -EPROTO on bad magic, -E2BIG on a payload over NBD_MAX_OPT_LEN. */
int nbd_parse_opt_hdr(const uint8_t buf[NBD_OPT_HDR_LEN],
		      struct nbd_opt_hdr *out);
/* -EINVAL if the payload is malformed; the result points into data. */
int nbd_parse_info_req(const uint8_t *data, uint32_t len,
		       struct nbd_info_req *out);
int nbd_parse_meta_req(const uint8_t *data, uint32_t len,
		       struct nbd_meta_req *out);

/* -EPROTO on bad magic. */
int nbd_parse_req_hdr(const uint8_t buf[NBD_REQ_HDR_LEN],
		      struct nbd_req_hdr *out);
/*
 * Check a decoded request against what was negotiated: 0 if it may be
 * served, an NBD_E* error to reply with, or -EPROTO if the connection
 * can't continue (a write payload too large to skip).
 */
int nbd_check_req(const struct nbd_req_hdr *r, const struct nbd_caps *caps);

/* -errno (or 0) to an NBD_E* value */
uint32_t nbd_errno(int err);
/* TD_BS_* flags to NBD_STATE_* flags */
uint32_t nbd_state_flags(unsigned td_flags);

void nbd_enc_greeting(uint8_t out[NBD_GREETING_LEN]);
void nbd_enc_opt_reply(uint8_t out[NBD_OPT_REPLY_HDR_LEN], uint32_t opt,
		       uint32_t type, uint32_t len);
void nbd_enc_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t err,
			  uint64_t cookie);
void nbd_enc_chunk_hdr(uint8_t out[NBD_CHUNK_HDR_LEN], uint16_t flags,
		       uint16_t type, uint64_t cookie, uint32_t len);
/* A final NBD_REPLY_TYPE_ERROR chunk without a message. */
void nbd_enc_error_chunk(uint8_t out[NBD_ERROR_CHUNK_LEN], uint32_t err,
			 uint64_t cookie);
void nbd_enc_extent(uint8_t out[NBD_EXTENT_LEN], uint32_t len, uint32_t flags);

const char *nbd_opt_name(uint32_t opt);
const char *nbd_cmd_name(uint16_t type);

#endif

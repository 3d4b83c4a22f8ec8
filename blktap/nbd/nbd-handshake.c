// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fixed-newstyle option haggling: from the greeting to NBD_OPT_GO (or
 * NBD_OPT_EXPORT_NAME), one option at a time, each answered before the
 * next is read.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "nbd-int.h"
#include "vbd.h"

static int opt_reply(struct nbd_conn *c, uint32_t opt, uint32_t type,
		     const void *data, uint32_t len)
{
	uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
	int err;

	nbd_enc_opt_reply(hdr, opt, type, len);
	err = nbd_conn_send_bytes(c, hdr, sizeof(hdr));
	if (!err && len)
		err = nbd_conn_send_bytes(c, data, len);
	return err;
}

static int opt_error(struct nbd_conn *c, uint32_t opt, uint32_t type,
		     const char *msg)
{
	td_debug("nbd %s: option %s refused: %s", c->peer, nbd_opt_name(opt),
		 msg);
	return opt_reply(c, opt, type, msg, (uint32_t)strlen(msg));
}

/* "" names the default export, and our one export is the default. */
static bool name_matches(const struct nbd_conn *c, const char *name,
			 uint32_t len)
{
	const char *ours = c->srv->export_name;

	return !len || (len == strlen(ours) && !memcmp(name, ours, len));
}

static void enter_transmission(struct nbd_conn *c)
{
	c->tflags = nbd_server_tflags(c->srv, c->caps.structured);
	c->caps.readonly = !!(c->tflags & NBD_FLAG_READ_ONLY);
	c->state = NBD_CONN_XMIT;
	td_debug("nbd %s: transmission (structured %d, block status %d)",
		 c->peer, c->caps.structured, c->caps.meta_id != 0);
}

static int opt_export_name(struct nbd_conn *c, const uint8_t *data,
			   uint32_t len)
{
	static const uint8_t zeroes[124];
	uint8_t buf[10];
	int err;

	if (!name_matches(c, (const char *)data, len)) {
		/* this option has no way to report an error */
		td_warn("nbd %s: unknown export requested, closing", c->peer);
		return -ENOENT;
	}
	enter_transmission(c);
	td_be_put64(buf, td_vbd_size(c->srv->vbd));
	td_be_put16(buf + 8, c->tflags);
	err = nbd_conn_send_bytes(c, buf, sizeof(buf));
	if (!err && !c->no_zeroes)
		err = nbd_conn_send_bytes(c, zeroes, sizeof(zeroes));
	return err;
}

static int opt_list(struct nbd_conn *c, uint32_t len)
{
	const char *name = c->srv->export_name;
	const char *desc = c->srv->description ? c->srv->description : "";
	size_t nlen = strlen(name), dlen = strlen(desc);
	uint8_t buf[4 + 2 * NBD_MAX_STRING];
	int err;

	if (len)
		return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
				 "LIST takes no data");
	td_be_put32(buf, (uint32_t)nlen);
	memcpy(buf + 4, name, nlen);
	memcpy(buf + 4 + nlen, desc, dlen);
	err = opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER, buf,
			(uint32_t)(4 + nlen + dlen));
	if (!err)
		err = opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
	return err;
}

static int info_string(struct nbd_conn *c, uint32_t opt, uint16_t type,
		       const char *s)
{
	uint8_t buf[2 + NBD_MAX_STRING];
	size_t len = strlen(s);

	td_be_put16(buf, type);
	memcpy(buf + 2, s, len);
	return opt_reply(c, opt, NBD_REP_INFO, buf, (uint32_t)(2 + len));
}

static int opt_info_go(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
		       uint32_t len)
{
	const struct td_image_info *info = td_vbd_info(c->srv->vbd);
	struct nbd_info_req req;
	uint32_t pref_block;
	uint8_t buf[14];
	int err;

	if (nbd_parse_info_req(data, len, &req))
		return opt_error(c, opt, NBD_REP_ERR_INVALID,
				 "malformed INFO/GO request");
	if (!name_matches(c, req.name, req.name_len))
		return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");

	td_be_put16(buf, NBD_INFO_EXPORT);
	td_be_put64(buf + 2, td_vbd_size(c->srv->vbd));
	td_be_put16(buf + 10, nbd_server_tflags(c->srv, c->caps.structured));
	err = opt_reply(c, opt, NBD_REP_INFO, buf, 12);

	/*
	 * Sent unasked too: clients ignore it, and it tells them our limits.
	 * The vbd does read-modify-write for drivers that need alignment, so
	 * any byte is addressable; the driver's alignment is what is fast.
	 */
	pref_block = info->align > NBD_PREF_BLOCK ? info->align :
						    NBD_PREF_BLOCK;
	td_be_put16(buf, NBD_INFO_BLOCK_SIZE);
	td_be_put32(buf + 2, 1);
	td_be_put32(buf + 6, pref_block);
	td_be_put32(buf + 10, NBD_MAX_PAYLOAD);
	if (!err)
		err = opt_reply(c, opt, NBD_REP_INFO, buf, 14);
	if (!err && req.want_name)
		err = info_string(c, opt, NBD_INFO_NAME, c->srv->export_name);
	if (!err && req.want_description && c->srv->description)
		err = info_string(c, opt, NBD_INFO_DESCRIPTION,
				  c->srv->description);
	if (!err)
		err = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	if (!err && opt == NBD_OPT_GO)
		enter_transmission(c);
	return err;
}

static int opt_meta(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
		    uint32_t len)
{
	static const char ctx[] = NBD_META_BASE_ALLOCATION;
	uint8_t buf[4 + sizeof(ctx)];
	struct nbd_meta_req req;
	bool set = opt == NBD_OPT_SET_META_CONTEXT;
	bool reply;
	int err;

	/* a SET replaces the earlier selection even when it fails */
	if (set)
		c->caps.meta_id = 0;
	if (!c->caps.structured)
		return opt_error(c, opt, NBD_REP_ERR_INVALID,
				 "structured replies not negotiated");
	if (nbd_parse_meta_req(data, len, &req))
		return opt_error(c, opt, NBD_REP_ERR_INVALID,
				 "malformed meta context request");
	if (!name_matches(c, req.name, req.name_len))
		return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");

	if (set)
		reply = req.allocation;
	else
		reply = !req.nqueries || req.allocation || req.base_wildcard;
	if (reply) {
		uint32_t id = set ? NBD_META_ID_ALLOCATION : 0;

		td_be_put32(buf, id);
		memcpy(buf + 4, ctx, sizeof(ctx) - 1);
		err = opt_reply(c, opt, NBD_REP_META_CONTEXT, buf,
				(uint32_t)(4 + sizeof(ctx) - 1));
		if (err)
			return err;
		if (set)
			c->caps.meta_id = id;
	}
	return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

static int handle_option(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
			 uint32_t len)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(c, data, len);
	case NBD_OPT_ABORT:
		c->state = NBD_CONN_CLOSING;
		c->drain_output = true;
		td_debug("nbd %s: client aborted the handshake", c->peer);
		return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST:
		return opt_list(c, len);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(c, opt, data, len);
	case NBD_OPT_STRUCTURED_REPLY:
		if (len)
			return opt_error(c, opt, NBD_REP_ERR_INVALID,
					 "STRUCTURED_REPLY takes no data");
		c->caps.structured = true;
		return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(c, opt, data, len);
	case NBD_OPT_STARTTLS:
		return opt_error(c, opt, NBD_REP_ERR_UNSUP,
				 "TLS is not supported by this server");
	default:
		return opt_error(c, opt, NBD_REP_ERR_UNSUP, "unknown option");
	}
}

static int client_flags(struct nbd_conn *c, uint32_t flags)
{
	if (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE) ||
	    (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))) {
		td_warn("nbd %s: unsupported client flags %#x, closing",
			c->peer, flags);
		return -EPROTO;
	}
	c->no_zeroes = !!(flags & NBD_FLAG_C_NO_ZEROES);
	c->state = NBD_CONN_OPTS;
	return 0;
}

int nbd_hs_start(struct nbd_conn *c)
{
	uint8_t buf[NBD_GREETING_LEN];

	nbd_enc_greeting(buf);
	c->state = NBD_CONN_FLAGS;
	return nbd_conn_send_bytes(c, buf, sizeof(buf));
}

int nbd_hs_input(struct nbd_conn *c)
{
	while (c->state == NBD_CONN_FLAGS || c->state == NBD_CONN_OPTS) {
		const uint8_t *p = c->in + c->in_start;
		size_t avail = c->in_end - c->in_start;
		struct nbd_opt_hdr oh;
		int err;

		if (c->state == NBD_CONN_FLAGS) {
			if (avail < 4)
				return 0;
			c->in_start += 4;
			err = client_flags(c, td_be_get32(p));
			if (err)
				return err;
			continue;
		}
		if (avail < NBD_OPT_HDR_LEN)
			return 0;
		err = nbd_parse_opt_hdr(p, &oh);
		if (err == -EPROTO) {
			td_warn("nbd %s: bad option magic, closing", c->peer);
			return err;
		}
		if (err) {
			td_warn("nbd %s: option %s with %u bytes of data, closing",
				c->peer, nbd_opt_name(oh.opt), oh.len);
			return err;
		}
		if (avail < NBD_OPT_HDR_LEN + oh.len)
			return 0;
		c->in_start += NBD_OPT_HDR_LEN + oh.len;
		td_debug("nbd %s: option %s (%u bytes)", c->peer,
			 nbd_opt_name(oh.opt), oh.len);
		err = handle_option(c, oh.opt, p + NBD_OPT_HDR_LEN, oh.len);
		if (err)
			return err;
	}
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * QEMU qcow version 1 images: standalone sparse images and copy-on-write
 * images over a backing file of any format, zlib-compressed clusters, and
 * AES-encrypted images given the password.
 *
 * The data path never waits on the event loop's thread: the L1 table is
 * read at open, L2 tables are read through the I/O engine into a small
 * cache, and a request that needs a table that is not there waits for its
 * load. Writes to allocated clusters go straight to the file, in parallel.
 * Writes that need new clusters take the image's allocation lock in turn:
 * the new clusters are appended at the end of the file and filled
 * (copy-on-write from the backing image or the compressed cluster for the
 * parts of a cluster the write does not cover), made durable, and only then
 * do the L2 (and for a new table, the L1) entries point at them.
 *
 * Key files: an encrypted image needs its password, given as a file
 * named by a "?key-file=PATH" suffix on the image path or by the
 * environment variable TD_QCOW_KEY_FILE. The file holds the password; one
 * trailing newline is ignored; as in qemu, its first 16 bytes, zero
 * padded, are the AES-128 key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/aes.h>
#include <nettle/cbc.h>

#include "buf.h"
#include "drivers.h"
#include "io.h"
#include "log.h"
#include "qcow-priv.h"

#define QCOW_KEY_SUFFIX "?key-file="
#define QCOW_KEY_ENV "TD_QCOW_KEY_FILE"
#define QCOW_KEY_FILE_MAX 4096

/* ---- encryption ---- */

/*
 * qemu's scheme: AES-128-CBC per 512-byte sector, the IV being the disk
 * sector number, little-endian, in the first 8 of its 16 bytes.
 */
int qcow_crypt(struct td_image *img, uint64_t voff, uint8_t *buf, uint64_t len,
	       bool enc)
{
	struct qcow_priv *p = img->priv;
	uint64_t sector = voff / QCOW_SECTOR, done;
	uint8_t iv[AES_BLOCK_SIZE];
	int i;

	for (done = 0; done < len; done += QCOW_SECTOR, sector++) {
		memset(iv, 0, sizeof(iv));
		for (i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sector >> (8 * i));
		/* nettle's CBC works in place */
		if (enc)
			cbc_encrypt(p->enc, (nettle_cipher_func *)aes128_encrypt,
				    AES_BLOCK_SIZE, iv, QCOW_SECTOR, buf + done,
				    buf + done);
		else
			cbc_decrypt(p->dec, (nettle_cipher_func *)aes128_decrypt,
				    AES_BLOCK_SIZE, iv, QCOW_SECTOR, buf + done,
				    buf + done);
	}
	return 0;
}

static int qcow_read_key(const char *image, const char *keyfile,
			 unsigned char key[16])
{
	char buf[QCOW_KEY_FILE_MAX + 1];
	ssize_t n;
	int fd, err;

	fd = open(keyfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		td_err("%s: cannot open the key file %s: %s", image, keyfile,
		       strerror(-err));
		return err;
	}
	n = read(fd, buf, sizeof(buf));
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err) {
		td_err("%s: cannot read the key file %s: %s", image, keyfile,
		       strerror(-err));
		return err;
	}
	if (n > QCOW_KEY_FILE_MAX) {
		td_err("%s: the key file %s is longer than %d bytes; it should hold only the password",
		       image, keyfile, QCOW_KEY_FILE_MAX);
		return -EINVAL;
	}
	/* `echo password > file` leaves a newline that is no part of it */
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n == 0) {
		td_err("%s: the key file %s is empty", image, keyfile);
		return -EINVAL;
	}
	memset(key, 0, 16);
	memcpy(key, buf, n < 16 ? (size_t)n : 16);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static int qcow_setup_crypto(struct td_image *img, const char *keyfile)
{
	struct qcow_priv *p = img->priv;
	unsigned char key[16];
	int err;

	if (!keyfile)
		keyfile = getenv(QCOW_KEY_ENV);
	if (!keyfile || !*keyfile) {
		td_err("%s: the image is AES-encrypted (crypt_method 1) and no key was given; name a file holding the password as qcow:%s" QCOW_KEY_SUFFIX
		       "PATH or in " QCOW_KEY_ENV,
		       p->file, p->file);
		return -ENOKEY;
	}
	err = qcow_read_key(p->file, keyfile, key);
	if (err)
		return err;
	p->enc = malloc(sizeof(*p->enc));
	p->dec = malloc(sizeof(*p->dec));
	if (!p->enc || !p->dec) {
		td_err("%s: no memory for the AES keys", p->file);
		err = -ENOMEM;
	} else {
		aes128_set_encrypt_key(p->enc, key);
		aes128_set_decrypt_key(p->dec, key);
	}
	explicit_bzero(key, sizeof(key));
	return err;
}

/* ---- open and close ---- */

/* Header, backing name and L1 table, read through a buffered fd. */
static int qcow_load_meta(struct td_image *img, int fd, bool l1)
{
	struct qcow_priv *p = img->priv;
	uint64_t lo, hi, i;
	struct stat st;
	ssize_t n;
	int err;

	free(p->backing);
	p->backing = NULL;
	err = qcow_read_header(p->file, fd, &p->h, &p->g, &p->backing);
	if (err)
		return err;
	if (fstat(fd, &st) < 0)
		return -errno;
	p->file_end = (uint64_t)st.st_size;
	if (qcow_align_up(p->file_end, p->g.cluster_size) > p->eof)
		p->eof = qcow_align_up(p->file_end, p->g.cluster_size);
	if (p->eof > p->file_end)
		p->file_end = p->eof;
	if (!l1)
		return 0;
	/*
	 * The sectors around the L1 table, kept as the file has them: with
	 * O_DIRECT an L1 entry goes to disk as its whole sector.
	 */
	lo = qcow_align_down(p->h.l1_offset, QCOW_SECTOR);
	hi = qcow_align_up(p->h.l1_offset + p->g.l1_bytes, QCOW_SECTOR);
	if (p->l1_raw)
		td_buf_put(p->l1_raw, p->l1_raw_len);
	free(p->l1);
	p->l1_raw_len = qcow_align_up(hi - lo, TD_BUF_ALIGN);
	p->l1_raw_off = lo;
	p->l1_raw = td_buf_get(p->l1_raw_len);
	p->l1 = calloc(p->g.l1_entries, sizeof(*p->l1));
	if (!p->l1_raw || !p->l1)
		return -ENOMEM;
	memset(p->l1_raw, 0, p->l1_raw_len);
	n = pread(fd, p->l1_raw, hi - lo, (off_t)lo);
	if (n < 0 || (uint64_t)n < p->h.l1_offset + p->g.l1_bytes - lo) {
		err = n < 0 ? -errno : -EIO;
		td_err("%s: cannot read the L1 table: %s", p->file,
		       strerror(-err));
		return err;
	}
	for (i = 0; i < p->g.l1_entries; i++)
		p->l1[i] =
			td_be_get64(p->l1_raw + (p->h.l1_offset - lo) + i * 8);
	return 0;
}

/* O_DIRECT when every access the format makes can be sector aligned. */
static bool qcow_can_direct(struct qcow_priv *p)
{
	struct statx stx;
	uint64_t i;

	if (statx(p->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) &&
	    (stx.stx_dio_offset_align > QCOW_SECTOR ||
	     stx.stx_dio_mem_align > QCOW_SECTOR || !stx.stx_dio_offset_align))
		return false;
	for (i = 0; i < p->g.l1_entries; i++)
		if (p->l1[i] % QCOW_SECTOR)
			return false;
	return true;
}

static int qcow_open_file(struct td_image *img, const char *path,
			  unsigned flags)
{
	struct qcow_priv *p = img->priv;
	const char *q = strstr(path, QCOW_KEY_SUFFIX), *keyfile = NULL;
	struct stat st;
	int err;

	p->fd = -1;
	p->align = 1;
	p->file = q ? strndup(path, (size_t)(q - path)) : strdup(path);
	if (!p->file)
		return -ENOMEM;
	if (q) {
		keyfile = q + strlen(QCOW_KEY_SUFFIX);
		if (!*keyfile) {
			td_err("%s: " QCOW_KEY_SUFFIX " needs a file name",
			       p->file);
			return -EINVAL;
		}
	}
	p->fd = open(p->file,
		     O_CLOEXEC | (flags & TD_OPEN_RDONLY ? O_RDONLY : O_RDWR));
	if (p->fd < 0) {
		err = -errno;
		td_err("%s: cannot open: %s", p->file, strerror(-err));
		return err;
	}
	if (fstat(p->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		td_err("%s: qcow images must be regular files", p->file);
		return -EINVAL;
	}
	err = qcow_load_meta(img, p->fd, !(flags & TD_OPEN_PROBE));
	if (err || (flags & TD_OPEN_PROBE))
		return err;
	if (p->h.crypt_method == QCOW_CRYPT_AES) {
		err = qcow_setup_crypto(img, keyfile);
		if (err)
			return err;
	} else if (keyfile) {
		td_warn("%s: not encrypted; the key file is not used", p->file);
	}
	if (!(flags & TD_OPEN_BUFFERED) && qcow_can_direct(p)) {
		if (fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_DIRECT) ==
		    0) {
			p->direct = true;
			p->align = QCOW_SECTOR;
		} else {
			td_info("%s: the filesystem refuses O_DIRECT; going through the page cache",
				p->file);
		}
	}
	return 0;
}

static void qcow_close(struct td_image *img)
{
	struct qcow_priv *p = img->priv;

	while (p->l2s) {
		struct qcow_l2 *l2 = p->l2s;

		p->l2s = l2->next;
		qcow_l2_free(p, l2);
	}
	p->nl2 = 0;
	if (p->l1_raw)
		td_buf_put(p->l1_raw, p->l1_raw_len);
	p->l1_raw = NULL;
	free(p->l1);
	p->l1 = NULL;
	/* the expanded keys are the password's equivalent */
	if (p->enc)
		explicit_bzero(p->enc, sizeof(*p->enc));
	if (p->dec)
		explicit_bzero(p->dec, sizeof(*p->dec));
	free(p->enc);
	free(p->dec);
	p->enc = p->dec = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->backing);
	p->backing = NULL;
	free(p->file);
	p->file = NULL;
}

static int qcow_open(struct td_image *img, const char *path, unsigned flags)
{
	int err = qcow_open_file(img, path, flags);

	/* the chain code does not close what failed to open */
	if (err)
		qcow_close(img);
	return err;
}

/*
 * The backing name as stored. With a ?key-file= suffix on our path the
 * chain code cannot take our folder from it, so a relative backing file
 * is made absolute here.
 */
static char *qcow_parent_name(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	struct td_name n;
	char *out = NULL, *dir;
	const char *slash;

	if (!strstr(img->path, QCOW_KEY_SUFFIX) || !strchr(p->file, '/'))
		return strdup(p->backing);
	if (td_name_parse(p->backing, &n))
		return NULL;
	if (n.path[0] == '/' || !strcmp(n.type, "ram") ||
	    !strcmp(n.type, "nbd") || !strcmp(n.type, "vd")) {
		td_name_free(&n);
		return strdup(p->backing);
	}
	slash = strrchr(p->file, '/');
	dir = strndup(p->file,
		      slash == p->file ? 1 : (size_t)(slash - p->file));
	if (dir && asprintf(&out, "%s%s%s/%s", n.type, n.type[0] ? ":" : "",
			    dir, n.path) < 0)
		out = NULL;
	free(dir);
	td_name_free(&n);
	return out;
}

static void qcow_info(struct td_image *img, struct td_image_info *info)
{
	struct qcow_priv *p = img->priv;

	info->size = p->g.size;
	info->sector_size = QCOW_SECTOR;
	/* clusters, and encryption, work in whole sectors */
	info->align = QCOW_SECTOR;
	info->can_discard = false;
	info->can_zero = false;
	info->rotational = false;
	info->parent = p->backing ? qcow_parent_name(img) : NULL;
}

void qcow_admin_get(struct td_image *img, struct qcow_admin *a)
{
	struct qcow_priv *p = img->priv;

	a->fd = p->fd;
	a->path = p->file;
	a->h = &p->h;
	a->g = &p->g;
	a->l1 = p->l1;
	a->backing = &p->backing;
}

int qcow_admin_reload(struct td_image *img)
{
	struct qcow_priv *p = img->priv;
	int fd, err;

	/* our own fd may be O_DIRECT, which small header reads cannot use */
	fd = open(p->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = qcow_load_meta(img, fd, p->l1 != NULL);
	close(fd);
	return err;
}

const struct td_driver td_driver_qcow = {
	.name = "qcow",
	.priv_size = sizeof(struct qcow_priv),
	.open = qcow_open,
	.close = qcow_close,
	.info = qcow_info,
	.queue_read = qcow_queue_read,
	.queue_write = qcow_queue_write,
	.flush = qcow_flush,
	.write_zeroes = qcow_write_zeroes,
	.block_status = qcow_block_status,
	.create = qcow_create,
	.describe = qcow_describe,
	.check = qcow_check,
	.resize = qcow_resize,
	.set_parent = qcow_set_parent,
};

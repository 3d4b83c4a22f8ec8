// SPDX-License-Identifier: GPL-2.0-only
/*
 * The qcow (version 1) driver on hand-made images: malformed headers are
 * refused without reading outside the file, and AES-encrypted images,
 * encrypted here with OpenSSL as an implementation independent of the
 * driver's, read back with the key and are refused without it.
 */
#include <openssl/evp.h>

#include "qcow-test.h"

static void test_malformed(void)
{
	const char *f = path("bad.qcow");
	uint8_t ent[8], blk[4096];
	struct hdr h;
	struct td_syncio *s;
	char name[600];
	int rc;

	craft(f, &good, 20, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "truncated header refused");
	h = good;
	h.magic = 0x514649fa;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "bad magic refused");
	h = good;
	h.version = 2;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "version 2 refused");
	h = good;
	h.cbits = 8;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "cluster_bits 8 refused");
	h.cbits = 17;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "cluster_bits 17 refused");
	h = good;
	h.l2bits = 5;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "l2_bits 5 refused");
	h.l2bits = 14;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "l2_bits 14 refused");
	h = good;
	h.crypt = 2;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "crypt_method 2 refused");
	h = good;
	h.size = 0;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "size 0 refused");
	h = good;
	h.size = UINT64_MAX - 100;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "size near 2^64 refused");
	h = good;
	h.size = 1ull << 62;
	h.cbits = 9;
	h.l2bits = 6;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL,
	   "size whose L1 table would be huge refused");
	h = good;
	h.size = 4096ull * MiB; /* 2048 L1 entries: 16 KiB */
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "L1 table beyond EOF refused");
	h = good;
	h.l1off = UINT64_MAX - 4;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "L1 offset near 2^64 refused");
	h = good;
	h.l1off = 8;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "L1 table overlapping the header refused");
	h = good;
	h.boff = 4000;
	h.bsize = 200;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "backing name beyond EOF refused");
	h.boff = 100;
	h.bsize = 2000;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "backing name over 1023 bytes refused");
	h.boff = 100;
	h.bsize = 8;
	craft(f, &h, 4096, (const uint8_t *)"ab\0cdefg", 8, 100);
	is(open_err(f, 0), -EINVAL, "backing name with a NUL refused");
	h.boff = UINT64_MAX - 2;
	h.bsize = 8;
	craft(f, &h, 4096, NULL, 0, 0);
	is(open_err(f, 0), -EINVAL, "backing offset near 2^64 refused");

	/* metadata pointing outside the file: open works, reads fail */
	snprintf(name, sizeof(name), "qcow:%s", f);
	be64(ent, 1ull << 40);
	craft(f, &good, 8192, ent, 8, 48);
	s = td_syncio_open(name, 0);
	ok(s != NULL, "an L1 entry beyond EOF does not stop the open");
	if (s) {
		is(td_syncio_pread(s, blk, 4096, 0), -EIO,
		   "reading under an L1 entry beyond EOF is -EIO");
		td_syncio_close(s);
	}
	be64(ent, 4096);
	craft(f, &good, 8192, ent, 8, 48);
	memset(blk, 0, sizeof(blk));
	be64(blk, 1ull << 40); /* cluster 0 far past EOF */
	be64(blk + 8, 4096 + 7); /* cluster 1 unaligned */
	/* cluster 2 compressed, 100 bytes past the end */
	be64(blk + 16, (1ull << 63) | (100ull << (63 - 12)) | 8150);
	/* cluster 3 compressed, 50 bytes of garbage inside the file */
	be64(blk + 24, (1ull << 63) | (50ull << (63 - 12)) | 100);
	{
		int fd = open(f, O_WRONLY);

		if (fd < 0 || pwrite(fd, blk, sizeof(blk), 4096) != 4096)
			abort();
		close(fd);
	}
	s = td_syncio_open(name, 0);
	ok(s != NULL, "opened the image with bad L2 entries");
	if (s) {
		is(td_syncio_pread(s, blk, 4096, 0), -EIO,
		   "an L2 entry beyond EOF reads as -EIO");
		is(td_syncio_pread(s, blk, 4096, 4096), -EIO,
		   "an unaligned L2 entry reads as -EIO");
		is(td_syncio_pread(s, blk, 4096, 8192), -EIO,
		   "a compressed cluster past EOF reads as -EIO");
		is(td_syncio_pread(s, blk, 4096, 12288), -EIO,
		   "a compressed cluster that does not inflate reads as -EIO");
		rc = td_syncio_pread(s, blk, 4096, 16384);
		ok(rc == 0 && blk[0] == 0 && blk[4095] == 0,
		   "an unallocated cluster beside them reads as zeroes");
		td_syncio_close(s);
	}
	/* probing finds qcow for version 1 */
	{
		const char *type = NULL;

		craft(f, &good, 8192, NULL, 0, 0);
		ok(td_probe(f, &type) == 0 && type && !strcmp(type, "qcow"),
		   "a version 1 image probes as qcow");
	}
}

/* Read the whole image through the driver and compare with want. */
/* qemu's encryption, done independently here: AES-128-CBC per sector. */
static void encrypt_sectors(const char *pw, uint64_t sector, uint8_t *buf,
			    size_t len)
{
	unsigned char key[16] = { 0 }, iv[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	size_t i;
	int n, b;

	memcpy(key, pw, strlen(pw) < 16 ? strlen(pw) : 16);
	for (i = 0; i < len; i += 512, sector++) {
		memset(iv, 0, sizeof(iv));
		for (b = 0; b < 8; b++)
			iv[b] = (unsigned char)(sector >> (8 * b));
		EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv);
		EVP_CIPHER_CTX_set_padding(ctx, 0);
		EVP_EncryptUpdate(ctx, buf + i, &n, buf + i, 512);
	}
	EVP_CIPHER_CTX_free(ctx);
}

static void test_encrypted(void)
{
	uint8_t *want = calloc(1, MiB), *buf = td_buf_get(64 * KiB);
	const char *img = path("e.qcow");
	char name[1200];
	int fd;

	put_file(path("key"), "sesame\n", 7);
	/* an image made by hand: one L2 table, one encrypted cluster */
	{
		uint8_t *f = calloc(1, 3 * 4096), ent[8];
		struct hdr h = good;

		h.crypt = 1;
		put_hdr(f, &h);
		be64(f + 48, 4096);
		be64(ent, 8192);
		memcpy(f + 4096 + 8 * 2, ent, 8); /* cluster 2 at 8192 */
		fill_random(want + 2 * 4096, 4096, 7);
		memcpy(f + 8192, want + 2 * 4096, 4096);
		encrypt_sectors("sesame", 2 * 4096 / 512, f + 8192, 4096);
		put_file(img, f, 3 * 4096);
		free(f);
	}
	snprintf(name, sizeof(name), "qcow:%s", img);
	is(open_err(img, 0), -ENOKEY,
	   "an encrypted image without a key is refused");
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", img, path("key"));
	ok(same_as(name, want, MiB, 0),
	   "decrypts an image encrypted by qemu's scheme (key-file=)");
	setenv("TD_QCOW_KEY_FILE", path("key"), 1);
	snprintf(name, sizeof(name), "qcow:%s", img);
	ok(same_as(name, want, MiB, 0), "and with TD_QCOW_KEY_FILE");
	unsetenv("TD_QCOW_KEY_FILE");
	if (have_qemu)
		is(sh("qemu-io --object secret,id=s0,data=sesame --image-opts "
		      "driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
		      "-c 'read -P 0 0 8k' >/dev/null",
		      img),
		   0, "qemu-io reads the hand-made encrypted image");

	/* qemu's own encrypted image, and our writes to it read by qemu */
	unlink(path("qe.qcow"));
	if (sh("qemu-img create -q -f qcow --object secret,id=s0,data=sesame "
	       "-o encrypt.format=aes,encrypt.key-secret=s0 %s 1M && "
	       "qemu-io --object secret,id=s0,data=sesame --image-opts "
	       "driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
	       "-c 'write -P 0x5a 4k 8k' >/dev/null",
	       path("qe.qcow"), path("qe.qcow"))) {
		ok(0, "qemu made an encrypted image");
		goto out;
	}
	memset(want, 0, MiB);
	memset(want + 4096, 0x5a, 8192);
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", path("qe.qcow"),
		 path("key"));
	ok(same_as(name, want, MiB, 0), "reads qemu's encrypted image");
	{
		struct td_syncio *s = td_syncio_open(name, 0);

		memset(buf, 0xa5, 64 * KiB);
		ok(s && !td_syncio_pwrite(s, buf, 3000, 6000, 0) &&
			   !td_syncio_pwrite(s, buf, 64 * KiB, 512 * KiB, 0),
		   "writes to the encrypted image");
		memset(want + 6000, 0xa5, 3000);
		memset(want + 512 * KiB, 0xa5, 64 * KiB);
		td_syncio_close(s);
	}
	ok(same_as(name, want, MiB, 0), "and reads them back");
	is(sh("qemu-io --object secret,id=s0,data=sesame --image-opts "
	      "driver=qcow,file.filename=%s,encrypt.key-secret=s0 "
	      "-c 'read -P 0x5a 4k 1904' -c 'read -P 0xa5 6000 3000' "
	      "-c 'read -P 0x5a 9000 3288' -c 'read -P 0xa5 512k 64k' "
	      "-c 'read -P 0 12k 500k' >/dev/null",
	      path("qe.qcow")),
	   0, "qemu-io decrypts what the driver wrote");
	put_file(path("badkey"), "wrong", 5);
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", path("qe.qcow"),
		 path("badkey"));
	ok(!same_as(name, want, MiB, 0), "a wrong key reads garbage, not data");
	fd = open(path("nokey"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	close(fd);
	snprintf(name, sizeof(name), "qcow:%s?key-file=%s", path("qe.qcow"),
		 path("nokey"));
	ok(td_syncio_open(name, 0) == NULL && errno == EINVAL,
	   "an empty key file is refused");
out:
	free(want);
	td_buf_put(buf, 64 * KiB);
}

int main(void)
{
	td_log_open("test-qcow-crafted", true,
		    getenv("TD_TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT);
	snprintf(dir, sizeof(dir), "/var/tmp/td-test-qcow-crafted.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	have_qemu = system("qemu-img --version >/dev/null 2>&1 && "
			   "qemu-io --version >/dev/null 2>&1") == 0;

	test_malformed();
	if (have_qemu)
		test_encrypted();
	else
		skip("qemu-img and qemu-io are not installed",
		     "the encrypted images");
	sh("rm -rf %s", dir);
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * RAM disks. "ram:NAME?size=SIZE" is a POSIX shared memory object that
 * every tapdisk opening the same NAME shares (the original blktap's fast
 * RAM disk shared between VMs); it lives while any of them has it open.
 * "ram:?size=SIZE" is private to this process. Both are a tmpfs file, so
 * discard frees memory by punching holes and block status sees them.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "drivers.h"
#include "file-util.h"
#include "log.h"

#define RAM_NAME_MAX 64
#define RAM_SHM_PREFIX "/blktap-ram-"
/* how often to look again at an object another opener is still sizing */
#define RAM_OPEN_TRIES 100

struct ram_priv {
	int fd;
	char *shm; /* shm_open name, NULL when anonymous */
	unsigned char *map;
	uint64_t size;
};

static bool ram_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n < 1 || n > RAM_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

/* bytes with an optional binary K/M/G/T suffix; 0 on anything else */
static uint64_t ram_parse_size(const char *s)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift;

	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return 0;
	if (!*end)
		return v;
	u = strchr(units, toupper((unsigned char)*end));
	if (!u || end[1])
		return 0;
	shift = 10 * (int)(u - units + 1);
	if (v > (~0ull >> shift))
		return 0;
	return v << shift;
}

/* NAME?size=SIZE, NAME, or ?size=SIZE; *name is "" for anonymous */
static int ram_parse(const char *path, char *name, uint64_t *size)
{
	const char *q = strchr(path, '?');
	size_t n = q ? (size_t)(q - path) : strlen(path);

	*size = 0;
	if (n > RAM_NAME_MAX) {
		td_err("ram:%s: names are at most %d characters", path,
		       RAM_NAME_MAX);
		return -EINVAL;
	}
	memcpy(name, path, n);
	name[n] = '\0';
	if (n && !ram_name_ok(name)) {
		td_err("ram:%s: a name may only have letters, digits, '.', '_' and '-'",
		       path);
		return -EINVAL;
	}
	if (!q) {
		if (n)
			return 0;
		td_err("ram:: give a NAME, ?size=SIZE or both");
		return -EINVAL;
	}
	if (strncmp(q + 1, "size=", 5)) {
		td_err("ram:%s: the only option is size=SIZE", path);
		return -EINVAL;
	}
	*size = ram_parse_size(q + 6);
	if (!*size || *size % 512) {
		td_err("ram:%s: size must be a non-zero multiple of 512 bytes, with an optional K, M, G or T",
		       path);
		return -EINVAL;
	}
	return 0;
}

/* Is fd still the object the name points at, not one a last user unlinked? */
static bool ram_still_linked(const char *shm, int fd)
{
	struct stat a, b;
	int fd2 = shm_open(shm, O_RDONLY | O_CLOEXEC, 0);
	bool same;

	if (fd2 < 0)
		return false;
	same = !fstat(fd, &a) && !fstat(fd2, &b) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
	close(fd2);
	return same;
}

static int ram_create(struct ram_priv *p, const char *path, uint64_t size)
{
	int err;

	/*
	 * Every opener holds a shared lock (see ram_close()); the creator
	 * takes it before sizing, so a sized disk nobody locks is a dead
	 * tapdisk's leftover (see ram_join()).
	 */
	flock(p->fd, LOCK_SH);
	if (ftruncate(p->fd, (off_t)size) < 0) {
		err = -errno;
		td_err("ram:%s: cannot size it to %llu bytes: %s", path,
		       (unsigned long long)size, strerror(-err));
		shm_unlink(p->shm);
		close(p->fd);
		p->fd = -1;
		return err;
	}
	p->size = size;
	return 0;
}

/*
 * Open an existing object. Returns 1 to try again: another opener has just
 * created it and not sized it yet, or the last user unlinked it meanwhile.
 */
static int ram_join(struct ram_priv *p, const char *path, uint64_t want)
{
	struct stat st;
	int err;

	/*
	 * Nobody holds it: a creator that has not locked it yet (it is still
	 * empty), or the leftover of a tapdisk killed without closing it,
	 * which goes as it would have had it closed.
	 */
	if (!flock(p->fd, LOCK_EX | LOCK_NB)) {
		if (!fstat(p->fd, &st) && st.st_size &&
		    ram_still_linked(p->shm, p->fd)) {
			td_warn("ram:%s: discarding %s, left by a tapdisk that "
				"died",
				path, p->shm);
			shm_unlink(p->shm);
		}
		flock(p->fd, LOCK_UN);
		return 1;
	}
	if (flock(p->fd, LOCK_SH) < 0 || fstat(p->fd, &st) < 0) {
		err = -errno;
		td_err("ram:%s: %s", path, strerror(-err));
		return err;
	}
	if (!st.st_size || !ram_still_linked(p->shm, p->fd))
		return 1;
	if (want && want != (uint64_t)st.st_size) {
		td_err("ram:%s: this RAM disk exists with size %llu, not %llu; leave out ?size= to use it",
		       path, (unsigned long long)st.st_size,
		       (unsigned long long)want);
		return -EINVAL;
	}
	p->size = (uint64_t)st.st_size;
	return 0;
}

static int ram_open_shared(struct ram_priv *p, const char *path,
			   const char *name, uint64_t size)
{
	const struct timespec pause = { 0, 1000000 };
	int tries, err;

	if (asprintf(&p->shm, RAM_SHM_PREFIX "%s", name) < 0) {
		p->shm = NULL;
		return -ENOMEM;
	}
	for (tries = 0; tries < RAM_OPEN_TRIES; tries++) {
		if (size) {
			p->fd = shm_open(p->shm,
					 O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
					 0600);
			if (p->fd >= 0)
				return ram_create(p, path, size);
			if (errno != EEXIST)
				goto fail_errno;
		}
		p->fd = shm_open(p->shm, O_RDWR | O_CLOEXEC, 0);
		if (p->fd < 0) {
			if (errno == ENOENT && size)
				continue;
			if (errno == ENOENT) {
				td_err("ram:%s: no such RAM disk; give ?size=",
				       path);
				return -ENOENT;
			}
			goto fail_errno;
		}
		err = ram_join(p, path, size);
		if (err <= 0)
			return err;
		close(p->fd);
		p->fd = -1;
		nanosleep(&pause, NULL);
	}
	td_err("ram:%s: %s stays empty; is a creator stuck or dead? (remove /dev/shm%s)",
	       path, p->shm, p->shm);
	return -EBUSY;

fail_errno:
	err = -errno;
	td_err("ram:%s: shm_open %s: %s", path, p->shm, strerror(-err));
	return err;
}

static int ram_open_anon(struct ram_priv *p, const char *path, uint64_t size)
{
	int err;

	p->fd = memfd_create("blktap-ram", MFD_CLOEXEC);
	if (p->fd < 0 || ftruncate(p->fd, (off_t)size) < 0) {
		err = -errno;
		td_err("ram:%s: cannot get %llu bytes of memory: %s", path,
		       (unsigned long long)size, strerror(-err));
		return err;
	}
	p->size = size;
	return 0;
}

/* last: whether to remove a named disk if nobody else has it open */
static void ram_release(struct ram_priv *p, bool last)
{
	if (p->map)
		munmap(p->map, p->size);
	p->map = NULL;
	if (p->fd >= 0) {
		/* the one who gets the lock alone is the last user */
		if (last && p->shm && !flock(p->fd, LOCK_EX | LOCK_NB))
			shm_unlink(p->shm);
		close(p->fd);
	}
	p->fd = -1;
	free(p->shm);
	p->shm = NULL;
}

static int ram_open(struct td_image *img, const char *path, unsigned flags)
{
	struct ram_priv *p = img->priv;
	char name[RAM_NAME_MAX + 1];
	uint64_t size;
	int prot = PROT_READ, err;

	p->fd = -1;
	err = ram_parse(path, name, &size);
	if (err)
		return err;
	if (name[0])
		err = ram_open_shared(p, path, name, size);
	else
		err = ram_open_anon(p, path, size);
	if (err)
		goto fail;
	if (!(flags & TD_OPEN_RDONLY))
		prot |= PROT_WRITE;
	p->map = mmap(NULL, p->size, prot, MAP_SHARED, p->fd, 0);
	if (p->map == MAP_FAILED) {
		p->map = NULL;
		err = -errno;
		td_err("ram:%s: cannot map %llu bytes: %s", path,
		       (unsigned long long)p->size, strerror(-err));
		goto fail;
	}
	return 0;

fail:
	/* a failed open leaves a disk it found or made as it was */
	ram_release(p, false);
	return err;
}

static void ram_close(struct td_image *img)
{
	ram_release(img->priv, true);
}

static void ram_info(struct td_image *img, struct td_image_info *info)
{
	struct ram_priv *p = img->priv;

	info->size = p->size;
	info->sector_size = 512;
	info->align = 1;
	info->can_discard = true;
	info->can_zero = true;
	info->rotational = false;
	info->parent = NULL;
}

/*
 * Reads go through the file, not the mapping: a read fault on a tmpfs hole
 * would allocate the page, so reading a fresh or discarded disk through
 * the mapping would fill RAM with zeroes and turn holes into data.
 */
static void ram_queue_read(struct td_image *img, struct td_request *req)
{
	struct ram_priv *p = img->priv;
	uint64_t off = req->offset;
	int i, err = 0;

	for (i = 0; i < req->iovcnt && !err; i++) {
		char *buf = req->iov[i].iov_base;
		size_t len = req->iov[i].iov_len;

		while (len) {
			ssize_t n = pread(p->fd, buf, len, (off_t)off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				err = n < 0 ? -errno : -EIO;
				td_err("%s: read of %llu bytes at %llu: %s",
				       img->name, (unsigned long long)req->len,
				       (unsigned long long)req->offset,
				       strerror(-err));
				break;
			}
			buf += n;
			len -= (size_t)n;
			off += (uint64_t)n;
		}
	}
	td_request_complete(img, req, err);
}

static void ram_queue_write(struct td_image *img, struct td_request *req)
{
	struct ram_priv *p = img->priv;
	uint64_t off = req->offset;
	int i;

	for (i = 0; i < req->iovcnt; i++) {
		memcpy(p->map + off, req->iov[i].iov_base, req->iov[i].iov_len);
		off += req->iov[i].iov_len;
	}
	td_request_complete(img, req, 0);
}

/* Memory has nothing to make durable. */
static void ram_flush(struct td_image *img, struct td_request *req)
{
	td_request_complete(img, req, 0);
}

static void ram_zero(struct td_image *img, struct td_request *req, bool hint)
{
	struct ram_priv *p = img->priv;

	if (!(req->flags & TD_REQ_NO_HOLE) &&
	    !fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)req->offset, (off_t)req->len)) {
		td_request_complete(img, req, 0);
		return;
	}
	/* keeping the range allocated, or punching failed: store zeroes */
	if (!hint)
		memset(p->map + req->offset, 0, req->len);
	td_request_complete(img, req, 0);
}

static void ram_discard(struct td_image *img, struct td_request *req)
{
	ram_zero(img, req, true);
}

static void ram_write_zeroes(struct td_image *img, struct td_request *req)
{
	ram_zero(img, req, false);
}

static void ram_block_status(struct td_image *img, struct td_request *req)
{
	struct ram_priv *p = img->priv;

	td_file_block_status(p->fd, req->offset, req->len, &req->status);
	req->status.depth = img->depth;
	td_request_complete(img, req, 0);
}

const struct td_driver td_driver_ram = {
	.name = "ram",
	.priv_size = sizeof(struct ram_priv),
	.open = ram_open,
	.close = ram_close,
	.info = ram_info,
	.queue_read = ram_queue_read,
	.queue_write = ram_queue_write,
	.flush = ram_flush,
	.discard = ram_discard,
	.write_zeroes = ram_write_zeroes,
	.block_status = ram_block_status,
};

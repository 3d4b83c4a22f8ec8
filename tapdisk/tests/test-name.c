// SPDX-License-Identifier: GPL-2.0-only
/* Image names, format probing and chain opening. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "io.h"
#include "log.h"
#include "loop.h"
#include "tap.h"

static void check_name(const char *name, const char *type, const char *path)
{
	struct td_name n;
	int rc = td_name_parse(name, &n);

	ok(rc == 0 && !strcmp(n.type, type) && !strcmp(n.path, path),
	   "'%s' -> type '%s' path '%s'", name, type, path);
	td_name_free(&n);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
}

static void check_probe(const char *dir, const char *label,
			const void *hdr, size_t len, const char *want)
{
	char path[4096];
	const char *type = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, label);
	write_file(path, hdr, len);
	ok(td_probe(path, &type) == 0 && type && !strcmp(type, want),
	   "probe %s -> %s (got %s)", label, want, type ? type : "?");
	unlink(path);
}

int main(void)
{
	char dir[] = "/var/tmp/td-test-name.XXXXXX", path[4096];
	unsigned char qcow1[512] = "QFI\xfb\0\0\0\1", qcow2[512] =
							     "QFI\xfb\0\0\0\3";
	unsigned char raw[4096] = { 0 };
	struct td_image *img = NULL;
	struct td_ioengine *io;
	struct td_loop *loop;
	struct td_name n;
	const char *type;

	td_log_open("test-name", true, LOG_ERR);
	check_name("aio:/img", "aio", "/img");
	check_name("tap:aio:/img", "aio", "/img");
	check_name("tap:qcow2:/a:b", "qcow2", "/a:b");
	check_name("/plain/path", "", "/plain/path");
	check_name("nbd:unix:/run/x.sock", "nbd", "unix:/run/x.sock");
	check_name("ram:disk1?size=1G", "ram", "disk1?size=1G");
	check_name("ram:", "ram", "");
	check_name("weird:thing", "", "weird:thing");
	check_name("tap:weird", "", "tap:weird");
	is(td_name_parse("", &n), -EINVAL, "empty name refused");
	is(td_name_parse("aio:", &n), -EINVAL, "aio: without a path refused");

	if (!mkdtemp(dir))
		abort();
	check_probe(dir, "qcow1", qcow1, sizeof(qcow1), "qcow");
	check_probe(dir, "qcow2", qcow2, sizeof(qcow2), "qcow2");
	check_probe(dir, "vhd-dynamic", "conectix", 8, "vhd");
	check_probe(dir, "vmdk", "KDMV", 4, "vmdk");
	check_probe(dir, "vmdk-desc", "# Disk DescriptorFile\n", 22, "vmdk");
	check_probe(dir, "raw", raw, sizeof(raw), "aio");
	check_probe(dir, "empty", "", 0, "aio");
	memcpy(raw + sizeof(raw) - 512, "conectix", 8);
	check_probe(dir, "vhd-fixed", raw, sizeof(raw), "vhd");
	is(td_probe("/nonexistent/image", &type), -ENOENT,
	   "probe of a missing file is -ENOENT");

	loop = td_loop_new();
	io = td_io_new(loop, TD_IO_AUTO, 64);
	snprintf(path, sizeof(path), "%s/d.vmdk", dir);
	write_file(path, "KDMV", 4);
	is(td_image_open_chain(path, 0, loop, io, &img), -ENOTSUP,
	   "a format without a driver is refused");
	unlink(path);
	is(td_image_open_chain("bogus:/x", 0, loop, io, &img), -ENOENT,
	   "unknown TYPE is taken as a missing path");
	snprintf(path, sizeof(path), "%s/raw.img", dir);
	memset(raw, 0, sizeof(raw));
	write_file(path, raw, sizeof(raw));
	ok(td_image_open_chain(path, 0, loop, io, &img) == 0 && img,
	   "bare raw path opens");
	if (img) {
		ok(!strcmp(img->drv->name, "aio"), "probed as aio");
		is(img->info.size, sizeof(raw), "size from the file");
		ok(img->parent == NULL && img->depth == 0, "a chain of one");
		td_image_close_chain(img);
	}
	unlink(path);
	rmdir(dir);
	td_io_free(io);
	td_loop_free(loop);
	return tap_done();
}

// SPDX-License-Identifier: GPL-2.0-only
/* Listening sockets: live ones are never stolen, stale ones are replaced. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "usock.h"

int main(void)
{
	char dir[] = "/tmp/td-test-usock.XXXXXX", path[256], file[256];
	struct stat st;
	int fd, fd2;

	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	snprintf(file, sizeof(file), "%s/plain", dir);

	fd = td_unix_listen(path, 4, 0700);
	ok(fd >= 0, "listening");
	ok(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		   (st.st_mode & 0777) == 0700,
	   "socket file in place with mode 0700");
	is(td_unix_listen(path, 4, 0700), -EADDRINUSE,
	   "a live socket is refused");
	close(fd);
	fd2 = td_unix_listen(path, 4, 0666);
	ok(fd2 >= 0, "a stale socket file is replaced");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0666, "new mode");
	close(fd2);
	unlink(path);

	fd = open(file, O_CREAT | O_WRONLY, 0600);
	close(fd);
	is(td_unix_listen(file, 4, 0700), -EEXIST,
	   "a regular file is never replaced");
	ok(stat(file, &st) == 0 && S_ISREG(st.st_mode), "and is still there");
	unlink(file);
	is(td_unix_listen("/tmp/a-very-long-path-"
			  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock",
			  4, 0700),
	   -ENAMETOOLONG, "too long a path");
	rmdir(dir);
	return tap_done();
}

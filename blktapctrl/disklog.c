// SPDX-License-Identifier: GPL-2.0-only
/*
 * A tapdisk's messages. Its stderr is a FIFO in the run directory rather
 * than a pipe: a restarted daemon opens the FIFO again and goes on
 * relaying its messages, where a pipe would have died with the old
 * daemon. The write end is non-blocking, so a daemon that is slow to read
 * costs tapdisk a log line, never a stall.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blktapctrl.h"
#include "log.h"

static void disk_log_line(struct disk *disk, char *line)
{
	const char *e;

	if (!*line)
		return;
	td_info("disk %d (%s): %s", disk->minor, disk->image, line);
	/* what tapdisk said last as an error is what a failed create shows */
	e = strstr(line, ": error: ");
	if (e)
		snprintf(disk->last_error, sizeof(disk->last_error), "%s",
			 e + 9);
}

void disk_log_drain(struct disk *disk)
{
	char *nl;
	ssize_t n;

	while (disk->log_fd >= 0) {
		n = read(disk->log_fd, disk->log_buf + disk->log_len,
			 sizeof(disk->log_buf) - 1 - disk->log_len);
		if (n <= 0)
			return;
		disk->log_len += n;
		disk->log_buf[disk->log_len] = '\0';
		while ((nl = strchr(disk->log_buf, '\n'))) {
			*nl = '\0';
			disk_log_line(disk, disk->log_buf);
			disk->log_len -= nl + 1 - disk->log_buf;
			memmove(disk->log_buf, nl + 1, disk->log_len + 1);
		}
		/* a line longer than the buffer goes out in pieces */
		if (disk->log_len == sizeof(disk->log_buf) - 1) {
			disk_log_line(disk, disk->log_buf);
			disk->log_len = 0;
		}
	}
}

void disk_log_close(struct disk *disk)
{
	disk_log_drain(disk);
	if (disk->log_len) {
		disk->log_buf[disk->log_len] = '\0';
		disk_log_line(disk, disk->log_buf);
		disk->log_len = 0;
	}
	if (disk->log_watch)
		td_watch_remove(disk->log_watch);
	disk->log_watch = NULL;
	if (disk->log_fd >= 0)
		close(disk->log_fd);
	disk->log_fd = -1;
}

static void disk_log_event(struct td_watch *w, int fd, uint32_t events,
			   void *data)
{
	struct disk *disk = data;

	disk_log_drain(disk);
	/* the writer is gone: stop watching, or the hangup would spin */
	if (events & EPOLLHUP)
		disk_log_close(disk);
}

int disk_log_open(struct disk *disk)
{
	char path[4096];
	int rc;

	if (disk->log_fd >= 0)
		return 0;
	rc = disk_path(disk, "tapdisk-%d.log", path, sizeof(path));
	if (rc)
		return rc;
	if (mkfifo(path, 0600) && errno != EEXIST)
		return -errno;
	disk->log_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (disk->log_fd < 0)
		return -errno;
	disk->log_watch = td_watch_add(disk->d->loop, disk->log_fd, EPOLLIN,
				       disk_log_event, disk);
	if (!disk->log_watch) {
		rc = -errno;
		close(disk->log_fd);
		disk->log_fd = -1;
		return rc;
	}
	return 0;
}

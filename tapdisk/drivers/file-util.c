// SPDX-License-Identifier: GPL-2.0-only
/* Helpers the file-backed drivers (aio, sync, ram) share. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "file-util.h"

void td_file_block_status(int fd, uint64_t offset, uint64_t len,
			  struct td_extent *ext)
{
	off_t data, hole;

	ext->len = len;
	ext->flags = 0;
	data = lseek(fd, (off_t)offset, SEEK_DATA);
	if (data < 0) {
		/* ENXIO: no data from offset to the end of the file */
		if (errno == ENXIO)
			ext->flags = TD_BS_HOLE | TD_BS_ZERO;
		return;
	}
	if ((uint64_t)data > offset) {
		ext->flags = TD_BS_HOLE | TD_BS_ZERO;
		if ((uint64_t)data - offset < len)
			ext->len = (uint64_t)data - offset;
		return;
	}
	hole = lseek(fd, (off_t)offset, SEEK_HOLE);
	if (hole > data && (uint64_t)hole - offset < len)
		ext->len = (uint64_t)hole - offset;
}

const void *td_zero_buf(void)
{
	static void *zero;
	void *p;

	/* untouched anonymous memory: reads as zero and costs no RAM */
	if (!zero) {
		p = mmap(NULL, TD_ZERO_BUF_SIZE, PROT_READ,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		zero = p;
	}
	return zero;
}

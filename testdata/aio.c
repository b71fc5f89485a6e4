/*
 * aio FILE TEXT: writes TEXT over the start of FILE with Linux AIO
 * (io_submit(2), IOCB_CMD_PWRITE), which sends inotify and fanotify no
 * event, for the tests of famids's writers. It keeps FILE open for
 * writing, prints "written", and lives until its standard input ends.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: aio FILE TEXT\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	aio_context_t ctx = 0;
	if (syscall(SYS_io_setup, 1, &ctx) != 0) {
		perror("io_setup");
		return 1;
	}
	struct iocb cb;
	memset(&cb, 0, sizeof cb);
	cb.aio_fildes = fd;
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_buf = (uint64_t)(uintptr_t)argv[2];
	cb.aio_nbytes = strlen(argv[2]);
	cb.aio_offset = 0;
	struct iocb *cbs[1] = {&cb};
	if (syscall(SYS_io_submit, ctx, 1, cbs) != 1) {
		perror("io_submit");
		return 1;
	}
	struct io_event ev;
	if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1 || ev.res != (int64_t)strlen(argv[2])) {
		perror("io_getevents");
		return 1;
	}
	printf("written\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}

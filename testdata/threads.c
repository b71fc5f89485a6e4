/*
 * threads FILE MODE: a process whose threads are not alike, for the
 * tests of famids's By: lines. A second thread appends a line to FILE,
 * prints "written", and the process lives on until its standard input
 * ends.
 *
 *   setuid        the first thread takes uid 65534 for itself alone (the
 *                 raw system call, not libc's, which changes every thread)
 *                 before the second, still root, writes.
 *   leader-exits  the first thread exits before the second writes: the
 *                 process is not gone.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *file;
static pthread_barrier_t changed;

static void *writer(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&changed);
	usleep(100 * 1000); /* the first thread's exit is done */
	FILE *f = fopen(file, "a");
	if (f == NULL || fputs("written by a thread\n", f) < 0 || fclose(f) != 0) {
		perror(file);
		exit(1);
	}
	puts("written");
	fflush(stdout);
	char buf[64];
	while (fread(buf, 1, sizeof buf, stdin) > 0)
		;
	exit(0);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: threads FILE setuid|leader-exits\n");
		return 2;
	}
	file = argv[1];
	pthread_t t;
	pthread_barrier_init(&changed, NULL, 2);
	if (pthread_create(&t, NULL, writer, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	if (strcmp(argv[2], "setuid") == 0) {
		if (syscall(SYS_setresuid, 65534, 65534, 65534) != 0) {
			perror("setresuid");
			return 1;
		}
		pthread_barrier_wait(&changed);
		pthread_join(t, NULL);
		return 0;
	}
	pthread_barrier_wait(&changed);
	pthread_exit(NULL);
}

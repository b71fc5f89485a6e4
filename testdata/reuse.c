/*
 * reuse FILE: two processes, one pid, one burst, for the tests of
 * famids's By: lines. A child named "first" appends to FILE and exits;
 * once it is reaped, clone3(2) starts another child with the same pid
 * (set_tid, which needs CAP_SYS_ADMIN), named "second", which appends to
 * FILE too and lives until this program's standard input ends. It prints
 * the pid.
 */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void append(const char *file, const char *name)
{
	prctl(PR_SET_NAME, name);
	FILE *f = fopen(file, "a");
	if (f == NULL || fprintf(f, "%s\n", name) < 0 || fclose(f) != 0) {
		perror(file);
		_exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: reuse FILE\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid == 0) {
		append(argv[1], "first");
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
		perror("fork");
		return 1;
	}
	pid_t tid = pid;
	struct clone_args args;
	memset(&args, 0, sizeof args);
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&tid;
	args.set_tid_size = 1;
	pid_t again = syscall(SYS_clone3, &args, sizeof args);
	if (again == 0) {
		append(argv[1], "second");
		char buf[64];
		while (fread(buf, 1, sizeof buf, stdin) > 0)
			;
		_exit(0);
	}
	if (again != pid) {
		perror("clone3 with the same pid");
		return 1;
	}
	printf("%d\n", pid);
	fflush(stdout);
	waitpid(again, NULL, 0);
	return 0;
}

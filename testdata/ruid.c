/*
 * ruid FILE: a process whose real uid is nobody's and effective uid root's,
 * as a setuid-root program run by nobody is, for the tests of famids's By:
 * lines. It appends to FILE, prints its pid, and lives until its standard
 * input ends.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ruid FILE\n");
		return 2;
	}
	if (setresuid(65534, 0, 0) != 0) {
		perror("setresuid");
		return 1;
	}
	FILE *f = fopen(argv[1], "a");
	if (f == NULL || fprintf(f, "set-uid\n") < 0 || fclose(f) != 0) {
		perror(argv[1]);
		return 1;
	}
	printf("%d\n", getpid());
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}

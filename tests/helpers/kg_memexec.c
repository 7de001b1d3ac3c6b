// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kg_memexec - run a program from memory, as an attacker inside a job
 * would to get around an exec rule on its path.
 *
 *   kg_memexec memfd PROGRAM [ARG]    copy PROGRAM into a memfd, execve
 *                                     /proc/self/fd/N
 *   kg_memexec fexecve PROGRAM [ARG]  the same with execveat(AT_EMPTY_PATH)
 *   kg_memexec sealed                 memfd_create(MFD_NOEXEC_SEAL): write,
 *                                     read back (what must keep working)
 *
 * Prints "<what> ret=<r> errno=<e>" for the step that failed and exits with
 * that errno; on success the copied program runs (its output is the proof).
 * Standalone: no libkgate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

extern char **environ;

static int fail(const char *what)
{
	int e = errno;

	printf("%s ret=-1 errno=%d\n", what, e);
	fflush(stdout);
	return e ? e : 1;
}

static int copy_into(int to, const char *path)
{
	char buf[65536];
	ssize_t n;
	int from = open(path, O_RDONLY | O_CLOEXEC);

	if (from < 0)
		return -1;
	while ((n = read(from, buf, sizeof(buf))) > 0)
		if (write(to, buf, (size_t)n) != n)
			return close(from), -1;
	close(from);
	return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	char *args[3] = { NULL, NULL, NULL };
	char proc[64], back[8];
	int fd;

	if (argc >= 2 && !strcmp(argv[1], "sealed")) {
		fd = (int)syscall(SYS_memfd_create, "kg-sealed", MFD_CLOEXEC | MFD_NOEXEC_SEAL);
		if (fd < 0)
			return fail("memfd_create-sealed");
		if (write(fd, "data", 4) != 4 || pread(fd, back, 4, 0) != 4 || memcmp(back, "data", 4))
			return fail("sealed-io");
		printf("sealed ret=0 errno=0\n");
		return 0;
	}
	if (argc < 3)
		return fprintf(stderr, "usage: kg_memexec memfd|fexecve PROGRAM [ARG] | sealed\n"), 2;
	fd = (int)syscall(SYS_memfd_create, "kg-copy", 0);
	if (fd < 0)
		return fail("memfd_create");
	if (copy_into(fd, argv[2]) < 0)
		return fail("copy");
	args[0] = argv[2];
	args[1] = argc > 3 ? argv[3] : NULL;
	if (!strcmp(argv[1], "fexecve")) {
		syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
		return fail("execveat");
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	execve(proc, args, environ);
	return fail("execve");
}

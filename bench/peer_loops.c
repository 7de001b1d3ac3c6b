// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * peer_loops.c - the per-operation loops, as a standalone program that can
 * run inside any sandbox (bwrap, firejail, srt, `kgate run`).  peers.sh
 * compiles it with cc at run time; it is not a bench_* binary (those link
 * libkgate and are run by bench/run.sh themselves).
 *
 * Usage: peer_loops DIR SCALE
 *   DIR   a tree made by peers.sh: DIR/f, DIR/a/b/c/d/f, DIR/l1/.../l19/f
 *         (depth 1, 5, 20) and DIR/true (a copy of true(1))
 *   SCALE iteration multiplier (1 = full, 0.1 = quick)
 *
 * Prints one JSON object: the p50 in ns of each operation, or null when
 * the operation failed inside this sandbox (then "errors" says why).  The
 * timed window is the single syscall (fork+execve+wait: the whole spawn),
 * as in bench/loops.h.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

enum { OP_OPEN1, OP_OPEN5, OP_OPEN20, OP_FORKEXEC, OP_CONNECT, OP_GETPID, NOPS };
static const char *const op_keys[NOPS] = {
	"openat_depth1", "openat_depth5", "openat_depth20", "fork_execve", "tcp_connect", "getpid",
};
static const long op_iters[NOPS] = { 20000, 20000, 20000, 300, 2000, 100000 };
static const char *const open_rel[3] = {
	"f", "a/b/c/d/f", "l1/l2/l3/l4/l5/l6/l7/l8/l9/l10/l11/l12/l13/l14/l15/l16/l17/l18/l19/f",
};

struct env {
	int dirfd, listen_fd;
	struct sockaddr_in dst;
	char exe[4096];
};

/* One timed call; returns ns, or 0 when the call failed (*err set). */
static uint64_t once(struct env *e, int op, int *err)
{
	static char *const targv[] = { "true", NULL };
	static char *const tenvp[] = { NULL };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t t0, t1;
	int fd, r, st = 0;
	pid_t pid;

	switch (op) {
	case OP_OPEN1:
	case OP_OPEN5:
	case OP_OPEN20:
		t0 = now_ns();
		fd = openat(e->dirfd, open_rel[op - OP_OPEN1], O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		t1 = now_ns();
		r = fd >= 0 ? 0 : errno;
		break;
	case OP_FORKEXEC:
		t0 = now_ns();
		pid = fork();
		if (pid == 0) {
			execve(e->exe, targv, tenvp);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, &st, 0);
		t1 = now_ns();
		r = pid < 0 ? errno : WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : ENOEXEC;
		break;
	case OP_CONNECT:
		if (e->listen_fd < 0) {
			*err = ENETDOWN;
			return 0;
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			*err = errno;
			return 0;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));	/* RST: no TIME_WAIT */
		t0 = now_ns();
		r = connect(fd, (struct sockaddr *)&e->dst, sizeof(e->dst)) ? errno : 0;
		t1 = now_ns();
		close(fd);
		if (!r) {
			struct pollfd p = { .fd = e->listen_fd, .events = POLLIN };
			int a;

			poll(&p, 1, 1000);
			a = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (a >= 0)
				close(a);
		}
		break;
	default:
		t0 = now_ns();
		syscall(SYS_getpid);
		t1 = now_ns();
		r = 0;
		break;
	}
	if (r) {
		*err = r;
		return 0;
	}
	return t1 - t0 ? t1 - t0 : 1;
}

static void open_listener(struct env *e)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	e->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (e->listen_fd < 0)
		return;
	if (bind(e->listen_fd, (struct sockaddr *)&a, sizeof(a)) || listen(e->listen_fd, 128) ||
	    getsockname(e->listen_fd, (struct sockaddr *)&e->dst, &len)) {
		close(e->listen_fd);
		e->listen_fd = -1;
	}
}

int main(int argc, char **argv)
{
	struct env e = { .listen_fd = -1 };
	double scale;
	int op, first = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR SCALE\n", argv[0]);
		return 2;
	}
	scale = atof(argv[2]);
	e.dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e.dirfd < 0) {
		perror(argv[1]);
		return 1;
	}
	snprintf(e.exe, sizeof(e.exe), "%s/true", argv[1]);
	open_listener(&e);
	printf("{");
	for (op = 0; op < NOPS; op++) {
		long n = (long)(op_iters[op] * scale), i, k = 0;
		uint64_t *v;
		int err = 0;

		if (n < 10)
			n = 10;
		v = calloc(n, sizeof(*v));
		if (!v)
			return 1;
		for (i = 0; i < n / 10 + 1 && !err; i++)	/* warm-up */
			once(&e, op, &err);
		for (i = 0; i < n && !err; i++) {
			uint64_t d = once(&e, op, &err);

			if (d)
				v[k++] = d;
		}
		printf("%s\"%s\":", first ? "" : ",", op_keys[op]);
		first = 0;
		if (err) {
			printf("{\"p50_ns\":null,\"error\":\"%s\"}", strerror(err));
		} else {
			qsort(v, k, sizeof(*v), cmp_u64);
			printf("{\"p50_ns\":%llu}", (unsigned long long)v[k / 2]);
		}
		free(v);
	}
	printf("}\n");
	return 0;
}

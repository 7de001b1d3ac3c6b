/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loops.h - the timed operations shared by bench_ops and bench_scale.
 *
 * Each operation is timed one call at a time (CLOCK_MONOTONIC around the
 * syscall, setup and clean-up outside the window) so p50/p99 can be
 * reported.  "Denied" variants aim at targets the bench policy refuses:
 * <tmp>/deny/... (file rule) and 127.0.0.2 (net rule).
 */
#ifndef KGATE_BENCH_LOOPS_H
#define KGATE_BENCH_LOOPS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include "bench.h"

enum op_id {
	OP_OPEN1, OP_OPEN5, OP_OPEN20, OP_FORKEXEC, OP_TCP, OP_UDP, OP_GETPID, OP_MAX,
};

struct op_desc {
	const char *name;
	long full_iters;	/* per worker per round, before KGATE_BENCH_QUICK */
	bool has_deny;
	double target;		/* governed/ungoverned target ratio, 0 = none */
};

static const struct op_desc op_descs[OP_MAX] = {
	[OP_OPEN1] = { "openat+close depth 1", 20000, true, 1.10 },
	[OP_OPEN5] = { "openat+close depth 5", 20000, true, 1.10 },
	[OP_OPEN20] = { "openat+close depth 20", 20000, true, 1.10 },
	[OP_FORKEXEC] = { "fork+execve+wait", 300, true, 1.02 },
	[OP_TCP] = { "tcp connect (loopback)", 3000, true, 1.05 },
	[OP_UDP] = { "udp sendto (loopback)", 20000, true, 0 },
	[OP_GETPID] = { "getpid", 100000, false, 0 },
};

/* The relative paths opened by the depth variants, from <tmp>/allow or
 * <tmp>/deny: depth = path components walked by openat. */
static const char *const op_open_rel[3] = {
	"f",
	"a/b/c/d/f",
	"l1/l2/l3/l4/l5/l6/l7/l8/l9/l10/l11/l12/l13/l14/l15/l16/l17/l18/l19/f",
};

static inline int loops_mkfile(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static inline int loops_copy(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;
	int err = 0;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			err = -EIO;
			break;
		}
	if (n < 0)
		err = -errno;
	close(in);
	close(out);
	return err;
}

/* <tmp>/{allow,deny}/ with files at depth 1, 5, 20 and a copy of true(1). */
static inline int loops_make_tree(const char *tmp)
{
	static const char *const sides[2] = { "allow", "deny" };
	char path[4096], *p;
	int s, d, err;

	for (s = 0; s < 2; s++) {
		for (d = 0; d < 3; d++) {
			snprintf(path, sizeof(path), "%s/%s/%s", tmp, sides[s], op_open_rel[d]);
			/* every directory on the way */
			for (p = path + strlen(tmp) + 1; (p = strchr(p, '/')); p++) {
				*p = '\0';
				if (mkdir(path, 0755) && errno != EEXIST)
					return -errno;
				*p = '/';
			}
			err = loops_mkfile(path, 0644);
			if (err)
				return err;
		}
		snprintf(path, sizeof(path), "%s/%s/true", tmp, sides[s]);
		err = loops_copy("/bin/true", path);
		if (err)
			return err;
	}
	return 0;
}

/* What a worker needs: its own sockets, made inside its arm. */
struct loops_env {
	const char *tmp;
	int dirfd[2];		/* allow, deny */
	int tcp_listen;
	int udp_rx, udp_tx;
	struct sockaddr_in tcp_dst[2], udp_dst[2];	/* 127.0.0.1 / 127.0.0.2 */
	char exe[2][4096];
	uint64_t ok, refused;	/* outcome counts of the last loop */
};

static inline void loops_env_close(struct loops_env *e)
{
	int i;

	for (i = 0; i < 2; i++)
		if (e->dirfd[i] >= 0)
			close(e->dirfd[i]);
	if (e->tcp_listen >= 0)
		close(e->tcp_listen);
	if (e->udp_rx >= 0)
		close(e->udp_rx);
	if (e->udp_tx >= 0)
		close(e->udp_tx);
}

static inline int loops_env_open(struct loops_env *e, const char *tmp)
{
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof(any);
	struct sockaddr_in tcp, udp;
	char path[3072];
	int i;

	memset(e, 0, sizeof(*e));
	e->tmp = tmp;
	e->dirfd[0] = e->dirfd[1] = e->tcp_listen = e->udp_rx = e->udp_tx = -1;
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, i ? "deny" : "allow");
		/* O_PATH: a governed worker may not open <tmp>/deny for reading
		 * (Landlock, or the LSM's read rule on the directory); a plain
		 * open would leave -1 and the denied openat would time EBADF
		 * instead of a refusal by the hook on the file */
		e->dirfd[i] = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		snprintf(e->exe[i], sizeof(e->exe[i]), "%s/true", path);
	}
	/* listen on every address so 127.0.0.2 would be reachable if allowed */
	e->tcp_listen = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	e->udp_rx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	e->udp_tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (e->dirfd[0] < 0 || e->tcp_listen < 0 || e->udp_rx < 0 || e->udp_tx < 0)
		return -errno;
	if (bind(e->tcp_listen, (struct sockaddr *)&any, sizeof(any)) ||
	    listen(e->tcp_listen, 128) ||
	    getsockname(e->tcp_listen, (struct sockaddr *)&tcp, &len))
		return -errno;
	len = sizeof(udp);
	if (bind(e->udp_rx, (struct sockaddr *)&any, sizeof(any)) ||
	    getsockname(e->udp_rx, (struct sockaddr *)&udp, &len))
		return -errno;
	for (i = 0; i < 2; i++) {
		e->tcp_dst[i] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = tcp.sin_port };
		e->udp_dst[i] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = udp.sin_port };
		inet_pton(AF_INET, i ? "127.0.0.2" : "127.0.0.1", &e->tcp_dst[i].sin_addr);
		e->udp_dst[i].sin_addr = e->tcp_dst[i].sin_addr;
	}
	return 0;
}

/* One timed call of `op` on the allowed (deny=0) or denied (1) target;
 * returns its duration in ns. */
static inline uint64_t loops_once(struct loops_env *e, enum op_id op, int deny)
{
	static char *const targv[] = { "true", NULL };
	static char *const tenvp[] = { NULL };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t t0, t1;
	char buf[64] = "kgate-bench";
	int fd, r, st;
	pid_t pid;

	switch (op) {
	case OP_OPEN1:
	case OP_OPEN5:
	case OP_OPEN20:
		t0 = bench_now();
		fd = openat(e->dirfd[deny], op_open_rel[op - OP_OPEN1], O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		t1 = bench_now();
		r = fd >= 0 ? 0 : -1;
		break;
	case OP_FORKEXEC:
		t0 = bench_now();
		pid = fork();
		if (pid == 0) {
			execve(e->exe[deny], targv, tenvp);
			_exit(127);
		}
		st = 0;
		if (pid > 0)
			waitpid(pid, &st, 0);
		t1 = bench_now();
		r = pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
		break;
	case OP_TCP:
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));	/* RST: no TIME_WAIT */
		t0 = bench_now();
		r = connect(fd, (struct sockaddr *)&e->tcp_dst[deny], sizeof(e->tcp_dst[deny]));
		t1 = bench_now();
		close(fd);
		if (r == 0) {
			struct pollfd p = { .fd = e->tcp_listen, .events = POLLIN };
			int a;

			poll(&p, 1, 1000);
			a = accept4(e->tcp_listen, NULL, NULL, SOCK_CLOEXEC);
			if (a >= 0)
				close(a);
		}
		break;
	case OP_UDP:
		t0 = bench_now();
		r = sendto(e->udp_tx, buf, 16, 0, (struct sockaddr *)&e->udp_dst[deny],
			   sizeof(e->udp_dst[deny])) == 16 ? 0 : -1;
		t1 = bench_now();
		while (recv(e->udp_rx, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
		break;
	case OP_GETPID:
	default:
		t0 = bench_now();
		syscall(SYS_getpid);
		t1 = bench_now();
		r = 0;
		break;
	}
	if (r == 0)
		e->ok++;
	else
		e->refused++;
	return t1 - t0;
}

/* n timed calls into out[] (after n/10 untimed warm-up calls). */
static inline void loops_run(struct loops_env *e, enum op_id op, int deny, uint32_t *out, long n)
{
	long i, warm = n / 10 + 1;

	for (i = 0; i < warm; i++)
		loops_once(e, op, deny);
	e->ok = e->refused = 0;
	for (i = 0; i < n; i++) {
		uint64_t d = loops_once(e, op, deny);

		out[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	}
}

/* ---- per-program cost, min over batches ------------------------------------
 * The mean of run_time_ns over a whole loop is dominated by the odd run that
 * an interrupt or preemption stretched; so a governed worker runs short
 * batches on the parent's signal and the parent reads the statistics around
 * each: the figure is the smallest batch average.  Batch: `per` denied
 * connects (kg_connect4, with its ring buffer event) and `per` allowed UDP
 * sends (kg_sendmsg4, a lookup that finds an allow rule).
 */
struct loops_batch_shm {
	volatile int go, done;
	long per;
};

struct loops_batch_arg {
	struct bench *b;
	struct loops_batch_shm *shm;
};

static inline int loops_batch_worker(void *p)
{
	struct loops_batch_arg *a = p;
	struct loops_env e;
	int seen = 0;
	long i;

	if (loops_env_open(&e, a->b->tmp))
		return 10;
	for (;;) {
		while (a->shm->go == seen)
			sched_yield();
		seen = a->shm->go;
		if (seen < 0)
			break;
		for (i = 0; i < a->shm->per; i++) {
			loops_once(&e, OP_TCP, 1);
			loops_once(&e, OP_UDP, 0);
		}
		a->shm->done = seen;
	}
	loops_env_close(&e);
	return 0;
}

#define LOOPS_NPROGS 2
static const char *const loops_progs[LOOPS_NPROGS] = { "kg_connect4", "kg_sendmsg4" };

/* ns per run of each of loops_progs (0 = unknown).  Needs statistics on
 * (bpf_enable_stats held by the caller). */
static inline void loops_prog_cost(struct bench *b, int batches, long per, double out[LOOPS_NPROGS])
{
	struct loops_batch_shm *shm = bench_shm(sizeof(*shm));
	struct loops_batch_arg a = { .b = b, .shm = shm };
	struct bench_prog_stat s0[LOOPS_NPROGS], s1[LOOPS_NPROGS];
	int i, k;
	pid_t pid;

	memset(out, 0, LOOPS_NPROGS * sizeof(double));
	if (!shm)
		return;
	shm->per = per;
	pid = bench_spawn(b, ARM_GOV, loops_batch_worker, &a);
	for (i = 1; pid > 0 && i <= batches; i++) {
		uint64_t deadline = bench_now() + 30000000000ull;

		for (k = 0; k < LOOPS_NPROGS; k++)
			if (bench_prog_stat(b, loops_progs[k], &s0[k]))
				memset(&s0[k], 0, sizeof(s0[k]));
		shm->go = i;
		while (shm->done != i && bench_now() < deadline) {
			if (b->ev)
				kg_events_poll(b->ev, 0);
			sched_yield();
		}
		for (k = 0; k < LOOPS_NPROGS; k++) {
			uint64_t cnt;
			double avg;

			if (bench_prog_stat(b, loops_progs[k], &s1[k]))
				continue;
			cnt = s1[k].run_cnt - s0[k].run_cnt;
			avg = cnt ? (double)(s1[k].run_time_ns - s0[k].run_time_ns) / cnt : 0;
			if (avg > 0 && (!out[k] || avg < out[k]))
				out[k] = avg;
		}
	}
	shm->go = -1;
	bench_wait(b, pid);
	munmap(shm, sizeof(*shm));
}

#endif

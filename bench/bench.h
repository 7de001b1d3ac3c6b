/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bench.h - shared scaffolding of kgate's benchmarks (header only: the
 * Makefile builds one binary per bench/bench_*.c).
 *
 * A benchmark sets up a governed cgroup in-process, the way `kgate run`
 * does, but without exec'ing a command:
 *
 *   bench_setup()          private pin dir (KGATE_BPFFS), temp dir, two
 *                          cgroups: "job" (governed) and "free" (not)
 *   bench_policy()         parse a policy, kg_maps_install, attach the
 *                          cgroup programs to "job", register it in kg_jobs
 *   bench_spawn(ARM_GOV)   fork a worker into "job"; it applies the policy's
 *                          mounts, Landlock and seccomp exactly as a degraded
 *                          `kgate run` child does, then runs the timed loop
 *   bench_wait()           consume the ring buffer while the worker runs
 *   bench_teardown()       kill/remove cgroups, unpin everything, rmdir
 *
 * Results: every bench writes a Markdown section and a JSON object to
 * $KGATE_BENCH_OUT/<name>.md|.json (bench/run.sh merges them); without
 * KGATE_BENCH_OUT the Markdown goes to stdout.
 *
 * Never a test: nothing here fails on a slow figure.  A bench exits 0 when
 * it measured something, 2 when it could not run at all (no root...).
 */
#ifndef KGATE_BENCH_H
#define KGATE_BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "job/cgroup.h"
#include "common.h"
#include "record/events.h"
#include "kernel/landlock.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "kernel/mntns.h"
#include "policy/policy.h"
#include "kernel/seccomp.h"
#include "testenv.h"

#define BENCH_EXIT_CANNOT_RUN 2

enum bench_arm {
	ARM_NONE = 0,	/* no kgate programs attached anywhere (by us) */
	ARM_FREE,	/* kgate loaded, a job attached, this process not in it */
	ARM_GOV,	/* inside the governed job: cgroup-BPF + Landlock + seccomp */
	ARM_MAX,
};

static const char *const bench_arm_names[ARM_MAX] = { "none", "ungoverned", "governed" };

struct bench {
	const char *name;		/* "ops", "scale", ... */
	char tmp[256];			/* mkdtemp, removed at the end */
	char pin[256];			/* private bpffs pin dir */
	struct kg_loader *l;
	bool full;			/* BPF LSM active */
	struct kg_cgroup job, free_cg;
	bool have_tmp, have_job, have_free, attached, registered;
	char cg_parent[4096];
	struct kg_policy_doc *doc;
	struct kg_landlock_plan *ll;
	uint32_t policy_id;
	struct kg_events *ev;
	struct kg_event_sink sink;	/* counts; commit NULL: nothing to make durable */
	uint64_t ev_received;		/* events of our job delivered by the ring buffer */
	uint64_t ev_received_deny;
	uint64_t ev_received_count;	/* the decisions they stand for (sum of counts) */
	bool quick;
};

/* ---- small utilities --------------------------------------------------- */

static inline uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline bool bench_quick(void)
{
	const char *q = getenv("KGATE_BENCH_QUICK");

	return q && *q && strcmp(q, "0");
}

/* Iterations scaled for quick runs (never below `floor`). */
static inline long bench_iters(long full, long floor)
{
	long n = bench_quick() ? full / 10 : full;
	const char *s = getenv("KGATE_BENCH_SCALE");	/* extra multiplier, e.g. 0.5 or 3 */

	if (s && *s)
		n = (long)(n * atof(s));
	return n < floor ? floor : n;
}

static inline void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void bench_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int bench_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentile (0..100) of n samples; sorts in place. */
static inline uint64_t bench_pct(uint64_t *v, size_t n, double pct)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_u64_cmp);
	i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static inline double bench_median_d(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Shared memory for worker results (survives fork, MAP_SHARED). */
static inline void *bench_shm(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline int bench_write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(s);
	int ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, s, len) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -EIO;
}

/* ---- report output ------------------------------------------------------ */

/* Markdown text of the section, grown with bench_md(). */
static char *bench_md_buf;
static size_t bench_md_len, bench_md_cap;

static inline void bench_md(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void bench_md(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (bench_md_len + n + 1 > bench_md_cap) {
		size_t cap = (bench_md_len + n + 1) * 2;
		char *p = realloc(bench_md_buf, cap);

		if (!p)
			return;
		bench_md_buf = p;
		bench_md_cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(bench_md_buf + bench_md_len, bench_md_cap - bench_md_len, fmt, ap);
	va_end(ap);
	bench_md_len += n;
}

/* Write <out>/<name>.md and <name>.json (or the Markdown to stdout). */
static inline void bench_emit(const char *name, json_t *j)
{
	const char *out = getenv("KGATE_BENCH_OUT");
	char path[4096];
	char *s;

	if (!out || !*out) {
		fputs(bench_md_buf ? bench_md_buf : "", stdout);
		s = json_dumps(j, JSON_INDENT(2));
		if (s && getenv("KGATE_BENCH_JSON"))
			puts(s);
		free(s);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s.md", out, name);
	if (bench_write_str(path, bench_md_buf ? bench_md_buf : ""))
		bench_log("cannot write %s", path);
	snprintf(path, sizeof(path), "%s/%s.json", out, name);
	if (json_dump_file(j, path, JSON_INDENT(2)))
		bench_log("cannot write %s", path);
	fputs(bench_md_buf ? bench_md_buf : "", stdout);
}

static inline void bench_md_free(void)
{
	free(bench_md_buf);
	bench_md_buf = NULL;
	bench_md_len = bench_md_cap = 0;
}

/* "1.03x" or "n/a" */
static inline const char *bench_ratio_str(double r, char *buf, size_t len)
{
	if (r <= 0)
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%.3fx", r);
	return buf;
}

/* ---- setup / teardown ---------------------------------------------------- */

static inline int bench_event(void *ctx, const struct kg_event *e, uint64_t pos)
{
	struct bench *b = ctx;

	(void)pos;
	if (b->have_job && e->job_cgid == b->job.id) {
		b->ev_received++;
		b->ev_received_count += e->count;
		if (e->kind == KG_EV_DECISION && e->decision == KG_DEC_DENY)
			b->ev_received_deny++;
	}
	return 0;
}

static inline int bench_setup(struct bench *b, const char *name)
{
	struct kg_loader_opts lo = { .want_lsm = true };
	char parent[64];
	int err;

	memset(b, 0, sizeof(*b));
	b->name = name;
	b->quick = bench_quick();
	b->job.fd = b->free_cg.fd = -1;
	if (geteuid() != 0) {
		bench_log("%s: needs root (BPF, cgroups)", name);
		return -EPERM;
	}
	snprintf(b->tmp, sizeof(b->tmp), "%s/kgate-bench-%s.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
	if (!mkdtemp(b->tmp))
		return -errno;
	b->have_tmp = true;
	snprintf(b->pin, sizeof(b->pin), "/sys/fs/bpf/kgate-bench-%s-%d", name, (int)getpid());
	setenv("KGATE_BPFFS", b->pin, 1);
	/* kgate's own state/audit must not land in system dirs */
	setenv("KGATE_STATE_DIR", b->tmp, 1);
	setenv("KGATE_AUDIT_DIR", b->tmp, 1);
	b->l = kg_loader_open(&lo);
	if (!b->l) {
		bench_log("%s: cannot load kgate's BPF objects", name);
		return -EIO;
	}
	b->full = kg_loader_lsm_active(b->l);
	snprintf(parent, sizeof(parent), "kgate-bench-%s-%d", name, (int)getpid());
	err = kg_cgroup_create_job(parent, "job", &b->job);
	if (err)
		return err;
	b->have_job = true;
	err = kg_cgroup_create_job(parent, "free", &b->free_cg);
	if (err)
		return err;
	b->have_free = true;
	snprintf(b->cg_parent, sizeof(b->cg_parent), "%s", b->job.path);
	dirname(b->cg_parent);
	b->sink.event = bench_event;
	b->sink.ctx = b;
	b->ev = kg_events_open(b->l, &b->sink);
	if (!b->ev)
		bench_log("%s: no ring buffer consumer: events will be counted lost", name);
	return 0;
}

/* Attach/detach the cgroup programs of the job (the "none" arm detaches). */
static inline int bench_set_attached(struct bench *b, bool on)
{
	int err;

	if (on == b->attached)
		return 0;
	if (on) {
		err = kg_loader_attach_cgroup(b->l, b->job.fd, b->job.id);
		if (err)
			return err;
	} else {
		err = kg_loader_detach_cgroup(b->job.id);
		if (err)
			return err;
	}
	b->attached = on;
	return 0;
}

/* Parse `json`, install it under a new generation and make the job run it
 * (first call registers the job, later calls switch it).  Returns 0 and
 * the time of install + switch in *push_ns (may be NULL). */
static inline int bench_policy(struct bench *b, const char *json, uint64_t *push_ns,
			       uint64_t *remove_ns)
{
	struct kg_policy_error perr = {};
	struct kg_policy_doc *doc;
	struct kg_landlock_plan *ll = NULL;
	uint32_t id, old = 0;
	uint64_t t0, t1;
	char msg[1024];
	int err;

	doc = kg_policy_load_buffer(json, strlen(json), "bench", NULL, &perr);
	if (!doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		bench_log("policy: %s", msg);
		return -EINVAL;
	}
	if (!b->full && kg_landlock_plan(doc, &ll)) {
		kg_policy_free(doc);
		return -EINVAL;
	}
	t0 = bench_now();
	err = kg_maps_install(b->l, doc, &id, NULL);
	if (!err)
		err = b->registered ? kg_maps_switch_job(b->l, b->job.id, id, &old)
				    : kg_maps_add_job(b->l, b->job.id, 1, id,
						      b->full ? 0 : KG_JOB_F_DEGRADED);
	t1 = bench_now();
	if (err) {
		kg_landlock_plan_free(ll);
		kg_policy_free(doc);
		bench_log("policy: cannot install (%d)", err);
		return err;
	}
	if (push_ns)
		*push_ns = t1 - t0;
	if (b->registered && old) {
		t0 = bench_now();
		kg_maps_remove_policy(b->l, old);
		if (remove_ns)
			*remove_ns = bench_now() - t0;
	}
	b->registered = true;
	b->policy_id = id;
	kg_landlock_plan_free(b->ll);
	kg_policy_free(b->doc);
	b->ll = ll;
	b->doc = doc;
	return bench_set_attached(b, true);
}

/* Fork a worker into `arm`; it runs fn(arg) and exits with its return. */
static inline pid_t bench_spawn(struct bench *b, enum bench_arm arm, int (*fn)(void *), void *arg)
{
	struct kg_seccomp_opts so = { .degraded = !b->full };
	pid_t pid;
	int err;

	if (bench_set_attached(b, arm != ARM_NONE))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	err = kg_cgroup_add_pid(arm == ARM_GOV ? &b->job : &b->free_cg, getpid());
	if (err)
		_exit(120);
	if (arm == ARM_GOV) {
		/* deny rules a mount expresses (kernel/mntrules.h), in a mount
		 * namespace of the worker's own, as a degraded kgate run child */
		if (b->ll && b->ll->mounts.n &&
		    (unshare(CLONE_NEWNS) < 0 || kg_mntns_make_slave() < 0 ||
		     kg_mnt_apply(&b->ll->mounts) < 0))
			_exit(124);
		if (b->ll && kg_landlock_apply(b->ll))
			_exit(121);
		if (kg_seccomp_load(b->doc, &so, NULL))
			_exit(122);
	}
	_exit(fn(arg));
}

/* Wait for a worker, delivering ring buffer events meanwhile (as the
 * controller of a `kgate run` does).  Returns its exit code or -1. */
static inline int bench_wait(struct bench *b, pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
	struct pollfd pfd[2] = {
		{ .fd = pidfd, .events = POLLIN },
		{ .fd = b->ev ? kg_events_epoll_fd(b->ev) : -1, .events = POLLIN },
	};

	if (pid <= 0)
		return -1;
	while (pidfd >= 0) {
		poll(pfd, 2, b->ev ? kg_events_timeout_ms(b->ev, 100) : 100);
		if (b->ev)
			kg_events_poll(b->ev, 0);
		if (pfd[0].revents)
			break;
	}
	if (pidfd >= 0)
		close(pidfd);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	if (b->ev)
		kg_events_drain(b->ev);
	if (!WIFEXITED(status)) {
		bench_log("worker killed by signal %d", WTERMSIG(status));
		return -1;
	}
	if (WEXITSTATUS(status))
		bench_log("worker exited with %d", WEXITSTATUS(status));
	return WEXITSTATUS(status);
}

static inline void bench_teardown(struct bench *b)
{
	if (b->ev)
		kg_events_close(b->ev);
	if (b->have_job) {
		kg_cgroup_kill(&b->job);
		kg_loader_detach_cgroup(b->job.id);
		if (b->registered && b->l)
			kg_maps_remove_job(b->l, b->job.id);
		kg_cgroup_destroy(&b->job);
	}
	if (b->have_free)
		kg_cgroup_destroy(&b->free_cg);
	if (b->cg_parent[0])
		rmdir(b->cg_parent);
	kg_landlock_plan_free(b->ll);
	kg_policy_free(b->doc);
	kg_loader_close(b->l);
	if (b->pin[0]) {
		kg_loader_unpin_all();
		rmdir(b->pin);
	}
	/* only the directory mkdtemp made for us */
	if (b->have_tmp)
		kt_rm_tree(b->tmp);
	bench_md_free();
}

/* ---- per-program cost from the kernel (bpf_stats) ------------------------ */

struct bench_prog_stat {
	uint64_t run_cnt, run_time_ns;
};

/* Stats of the job's attached program `prog` ("kg_connect4"), read through
 * its pinned link.  0 or -errno. */
static inline int bench_prog_stat(struct bench *b, const char *prog, struct bench_prog_stat *st)
{
	struct bpf_link_info li = {};
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(li);
	char path[4400];
	int lfd, pfd, err;

	snprintf(path, sizeof(path), "%s/jobs/%llu/%s", b->pin, (unsigned long long)b->job.id, prog);
	lfd = bpf_obj_get(path);
	if (lfd < 0)
		return -errno;
	err = bpf_obj_get_info_by_fd(lfd, &li, &len);
	close(lfd);
	if (err)
		return err;
	pfd = bpf_prog_get_fd_by_id(li.prog_id);
	if (pfd < 0)
		return -errno;
	len = sizeof(pi);
	err = bpf_obj_get_info_by_fd(pfd, &pi, &len);
	close(pfd);
	if (err)
		return err;
	st->run_cnt = pi.run_cnt;
	st->run_time_ns = pi.run_time_ns;
	return 0;
}

/* ---- policy text ---------------------------------------------------------- */

struct bench_str {
	char *s;
	size_t len, cap;
};

static inline void bench_str_add(struct bench_str *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void bench_str_add(struct bench_str *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = (s->len + n + 1) * 2;
		char *p = realloc(s->s, cap);

		if (!p)
			return;
		s->s = p;
		s->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(s->s + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	s->len += n;
}

/* Machine-independent part of every bench policy: allow loopback 127.0.0.1,
 * deny 127.0.0.2, deny files under <tmp>/deny.  `extra` (may be "") is
 * spliced into the runtime array (must start with ',' when not empty). */
static inline char *bench_base_policy(const struct bench *b, const char *extra)
{
	struct bench_str s = {};

	bench_str_add(&s,
		"{\"version\":1,\"name\":\"bench-%s\",\"default\":\"allow\","
		"\"runtime_defaults\":{\"file\":\"allow\",\"exec\":\"allow\",\"net\":\"allow\"},"
		"\"runtime\":["
		"{\"id\":\"lo-allow\",\"net\":{\"cidr\":\"127.0.0.1/32\"},\"decision\":\"allow\"},"
		"{\"id\":\"lo2-deny\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"},"
		/* the loops' listeners bind the wildcard (loops_env_open) */
		"{\"id\":\"bench-bind\",\"net\":{\"cidr\":\"0.0.0.0/0\",\"ops\":[\"bind\"]},"
		"\"decision\":\"allow\"},"
		"{\"id\":\"files-deny\",\"file\":{\"prefix\":\"%s/deny\",\"ops\":[\"read\",\"write\",\"exec\"]},"
		"\"decision\":\"deny\"}%s]}", b->name, b->tmp, extra ? extra : "");
	return s.s;
}

#endif

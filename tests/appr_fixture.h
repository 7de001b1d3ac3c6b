/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * appr_fixture.h - a governed job on this host for the approval, hold and
 * throttle tests: the real loader, maps, job cgroup and cgroup-BPF network
 * programs, with an "agent" (a forked child in the job cgroup) that performs
 * connects on command, so every test drives the kernel path for real.
 *
 *   fx_setup(&f, policy_json);          // dirs, loader, policy into maps, queue
 *   j = fx_job(&f);                     // agent in its own job cgroup
 *   r = fx_do(&f, j, FX_TCP, "127.0.0.1", port);   // 0 or errno
 *   fx_teardown(&f);
 *
 * Escalation events are fed to kg_approvals_on_escalation (as the recorder
 * does); every event is kept in f->evs for assertions.
 */
#ifndef KGATE_APPR_FIXTURE_H
#define KGATE_APPR_FIXTURE_H

/* each test binary uses a different part of the fixture */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#ifdef FX_STANDALONE	/* benches: no test runner, SKIP = cannot run (exit 2) */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#define SKIP(...) do {							\
		fprintf(stderr, "cannot run: ");			\
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
		exit(2);						\
	} while (0)
#else
#include "testlib.h"
#endif
#include "approve/approvals.h"
#include "job/cgroup.h"
#include "common.h"
#include "record/events.h"
#include "approve/hold.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "record/recorder.h"
#include "kernel/seccomp.h"

enum fx_kind {
	FX_TCP = 1,		/* connect(2) TCP */
	FX_UDP_SEND,		/* sendto(2) UDP without connect */
	FX_UDP_CONNECT,		/* connect(2) UDP */
	FX_SENDMSG,		/* sendmsg(2) UDP with msg_name */
	FX_HOLD_ON,		/* load the hold filter; reply: listener fd number */
	FX_SWAP_CONNECT,	/* thread connects to addr; main swaps to addr2 on FX_SWAP_NOW */
	FX_SWAP_NOW,
	FX_TCP_BURST,		/* connect in a tight loop for port2 ms; reply: successes */
	FX_TCP_SPRAY,		/* port2 connects, to port, port+1, ...: distinct targets,
				 * so none is folded (bpf/kgate.h, kg_fold); reply: successes */
	FX_EXIT,
};

struct fx_cmd {
	int kind;
	char addr[64], addr2[64];
	int port, port2;
};

struct fx_job {
	struct kg_cgroup cg;
	pid_t pid;
	int cmd_w, res_r;
	int notify_fd;
	uint64_t job_id;
	char trace[32];
	struct kg_hold *hold;
};

#define FX_MAX_JOBS 4
#define FX_MAX_EVENTS 256

struct fx {
	char tmp[256], pin[256], parent_cg[64];
	struct kg_policy_doc *doc;
	struct kg_loader *l;
	uint32_t policy_id;
	struct kg_approvals *q;
	struct kg_events *ev;
	struct kg_event_sink sink;
	struct fx_job jobs[FX_MAX_JOBS];
	int njobs;
	struct kg_event evs[FX_MAX_EVENTS];
	int nevs;
	int escalations_queued, escalations_full;
};

/* ---- the agent (runs in the job cgroup) -------------------------------------------- */

static struct sockaddr_storage fx_swap_ss;
static socklen_t fx_swap_len;
static int fx_swap_result;

static socklen_t fx_sockaddr(const char *addr, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &in6->sin6_addr);
		return sizeof(*in6);
	}
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, addr, &in->sin_addr);
	return sizeof(*in);
}

static int fx_net(int kind, const struct sockaddr_storage *ss, socklen_t len)
{
	int type = kind == FX_TCP || kind == FX_SWAP_CONNECT ? SOCK_STREAM : SOCK_DGRAM;
	int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0), r = 0;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr m = { .msg_name = (void *)ss, .msg_namelen = len, .msg_iov = &iov,
			    .msg_iovlen = 1 };

	if (fd < 0)
		return errno;
	if (kind == FX_TCP || kind == FX_UDP_CONNECT || kind == FX_SWAP_CONNECT)
		r = connect(fd, (const struct sockaddr *)ss, len);
	else if (kind == FX_UDP_SEND)
		r = (int)sendto(fd, "x", 1, 0, (const struct sockaddr *)ss, len) < 0 ? -1 : 0;
	else
		r = (int)sendmsg(fd, &m, 0) < 0 ? -1 : 0;
	r = r ? errno : 0;
	close(fd);
	return r;
}

static void *fx_swap_thread(void *arg)
{
	(void)arg;
	fx_swap_result = fx_net(FX_SWAP_CONNECT, &fx_swap_ss, fx_swap_len);
	return NULL;
}

static void fx_agent(int cmd_r, int res_w, const struct kg_policy_doc *doc)
{
	struct fx_cmd c;
	struct sockaddr_storage ss;
	pthread_t th;
	int r;

	while (read(cmd_r, &c, sizeof(c)) == sizeof(c)) {
		switch (c.kind) {
		case FX_HOLD_ON: {
			struct kg_seccomp_opts o = { .hold_syscalls = true };
			int nfd = -1;

			r = kg_seccomp_load(doc, &o, &nfd);
			r = r ? -1 : nfd;
			break;
		}
		case FX_SWAP_CONNECT:
			fx_swap_len = fx_sockaddr(c.addr, c.port, &fx_swap_ss);
			if (pthread_create(&th, NULL, fx_swap_thread, NULL)) {
				r = EAGAIN;
				break;
			}
			/* the next command is the swap: the thread is blocked in connect */
			if (read(cmd_r, &c, sizeof(c)) != sizeof(c))
				_exit(1);
			fx_sockaddr(c.addr2, c.port2, &ss);
			memcpy(&fx_swap_ss, &ss, sizeof(ss));
			r = 0;
			if (write(res_w, &r, sizeof(r)) != sizeof(r))
				_exit(1);
			pthread_join(th, NULL);
			r = fx_swap_result;
			break;
		case FX_TCP_BURST: {
			uint64_t end = kg_now_mono_ns() + (uint64_t)c.port2 * 1000000ull;
			socklen_t len = fx_sockaddr(c.addr, c.port, &ss);

			r = 0;
			while (kg_now_mono_ns() < end)
				if (fx_net(FX_TCP, &ss, len) == 0)
					r++;
			break;
		}
		case FX_TCP_SPRAY: {
			int i;

			r = 0;
			for (i = 0; i < c.port2; i++) {
				socklen_t len = fx_sockaddr(c.addr, (c.port + i) & 0xffff, &ss);

				if (fx_net(FX_TCP, &ss, len) == 0)
					r++;
			}
			break;
		}
		case FX_EXIT:
			_exit(0);
		default:
			r = fx_net(c.kind, &ss, fx_sockaddr(c.addr, c.port, &ss));
			break;
		}
		if (write(res_w, &r, sizeof(r)) != sizeof(r))
			_exit(1);
	}
	_exit(0);
}

/* ---- controller side ------------------------------------------------------------------ */

static int fx_on_event(void *ctx, const struct kg_event *e, uint64_t pos)
{
	struct fx *f = ctx;
	const struct kg_rule *r = kg_policy_rule_by_num(f->doc, e->rule_id);
	char trace[32];
	int err;

	(void)pos;
	if (f->nevs < FX_MAX_EVENTS)
		f->evs[f->nevs++] = *e;
	if (e->kind != KG_EV_ESCALATION)
		return 0;
	kg_trace_id(e->job_id, trace, sizeof(trace));
	err = kg_approvals_on_escalation(f->q, e, trace, f->doc->hash, r ? r->id : "default", NULL);
	if (err == -ENOSPC)
		f->escalations_full++;
	else if (!err)
		f->escalations_queued++;
	return 0;
}

static void fx_setup(struct fx *f, const char *policy_json)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	struct kg_approvals_cfg cfg = {};
	struct kg_policy_error perr = {};
	char path[512];

	memset(f, 0, sizeof(*f));
	if (getuid() != 0)
		SKIP("needs root");
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/kgate-test-appr.XXXXXX");
	if (!mkdtemp(f->tmp))
		SKIP("mkdtemp failed");
	snprintf(path, sizeof(path), "%s/audit", f->tmp);
	setenv("KGATE_AUDIT_DIR", path, 1);
	snprintf(path, sizeof(path), "%s/state", f->tmp);
	setenv("KGATE_STATE_DIR", path, 1);
	snprintf(f->pin, sizeof(f->pin), "/sys/fs/bpf/kgate-test-appr-%d", getpid());
	setenv("KGATE_BPFFS", f->pin, 1);
	snprintf(f->parent_cg, sizeof(f->parent_cg), "kgate-test-appr-%d", getpid());
	if (!kg_cgroup2_mount())
		SKIP("no cgroup2 mount");
	f->doc = kg_policy_load_buffer(policy_json, strlen(policy_json), "test", NULL, &perr);
	if (!f->doc) {
		kg_policy_error_format(&perr, path, sizeof(path));
		printf("  policy: %s\n", path);
		SKIP("test policy invalid");
	}
	f->l = kg_loader_open(&lo);
	if (!f->l)
		SKIP("cannot load kgate's BPF objects here");
	if (kg_maps_install(f->l, f->doc, &f->policy_id, NULL))
		SKIP("cannot install the policy");
	kg_snapshot_save(f->policy_id, f->doc);
	kg_approvals_cfg_from_doc(&cfg, f->doc);
	cfg.loader = f->l;
	f->q = kg_approvals_open(&cfg);
	f->sink.event = fx_on_event;
	f->sink.ctx = f;
	f->ev = kg_events_open(f->l, &f->sink);
	if (!f->q || !f->ev)
		SKIP("cannot open the queue or the ring buffer");
}

static struct fx_job *fx_job(struct fx *f)
{
	struct fx_job *j = &f->jobs[f->njobs];
	int cmd[2], res[2];
	char name[32];

	if (f->njobs >= FX_MAX_JOBS)
		return NULL;
	snprintf(name, sizeof(name), "job-%d", f->njobs);
	memset(j, 0, sizeof(*j));
	j->notify_fd = -1;
	if (kg_cgroup_create_job(f->parent_cg, name, &j->cg))
		SKIP("cannot create a job cgroup");
	if (pipe2(cmd, O_CLOEXEC) || pipe2(res, O_CLOEXEC))
		SKIP("pipe");
	fflush(stdout);
	j->pid = fork();
	if (j->pid == 0) {
		close(cmd[1]);
		close(res[0]);
		fx_agent(cmd[0], res[1], f->doc);
	}
	close(cmd[0]);
	close(res[1]);
	j->cmd_w = cmd[1];
	j->res_r = res[0];
	f->njobs++;
	j->job_id = 0x5eed0000ull + (uint64_t)f->njobs;
	kg_trace_id(j->job_id, j->trace, sizeof(j->trace));
	if (kg_cgroup_add_pid(&j->cg, j->pid) ||
	    kg_loader_attach_cgroup(f->l, j->cg.fd, j->cg.id) ||
	    kg_maps_add_job(f->l, j->cg.id, j->job_id, f->policy_id, KG_JOB_F_DEGRADED))
		SKIP("cannot govern the job cgroup");
	return j;
}

static void fx_send2(struct fx_job *j, int kind, const char *addr, int port, int port2)
{
	struct fx_cmd c = { .kind = kind, .port = port, .port2 = port2 };

	snprintf(c.addr, sizeof(c.addr), "%s", addr ? addr : "");
	if (write(j->cmd_w, &c, sizeof(c)) != sizeof(c))
		printf("  fixture: cannot talk to the agent\n");
}

static void fx_send(struct fx_job *j, int kind, const char *addr, int port)
{
	struct fx_cmd c = { .kind = kind, .port = port };

	snprintf(c.addr, sizeof(c.addr), "%s", addr ? addr : "");
	if (write(j->cmd_w, &c, sizeof(c)) != sizeof(c))
		printf("  fixture: cannot talk to the agent\n");
}

/* Serve events and held calls until the agent answers; -ETIMEDOUT after
 * timeout_ms.  tick = also run kg_hold_tick (off: a held call stays held). */
static int fx_wait_tick(struct fx *f, struct fx_job *j, int timeout_ms, bool tick, int *result)
{
	uint64_t deadline = kg_now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = j->res_r, .events = POLLIN },
			{ .fd = j->hold ? kg_hold_fd(j->hold) : -1, .events = POLLIN },
		};
		uint64_t now = kg_now_mono_ns();

		if (now >= deadline)
			return -ETIMEDOUT;
		poll(p, 2, 20);
		kg_events_poll(f->ev, 0);
		if (p[1].revents & POLLIN)
			kg_hold_handle(j->hold);
		if (j->hold && tick)
			kg_hold_tick(j->hold, 0);
		if (p[0].revents & (POLLIN | POLLHUP)) {
			if (read(j->res_r, result, sizeof(*result)) != sizeof(*result))
				return -EPIPE;
			kg_events_poll(f->ev, 0);
			kg_events_poll(f->ev, 10);	/* the event of this very call */
			return 0;
		}
	}
}

static int fx_wait(struct fx *f, struct fx_job *j, int *result)
{
	return fx_wait_tick(f, j, 10000, true, result);
}

/* One action by the agent; returns 0 or the errno it got (-1 = no answer). */
static int fx_do(struct fx *f, struct fx_job *j, int kind, const char *addr, int port)
{
	int r;

	fx_send(j, kind, addr, port);
	return fx_wait(f, j, &r) ? -1 : r;
}

/* Put the agent under the hold filter and start a kg_hold for it. */
static int fx_hold_on(struct fx *f, struct fx_job *j)
{
	int child_fd, pidfd;

	fx_send(j, FX_HOLD_ON, NULL, 0);
	if (fx_wait(f, j, &child_fd) || child_fd < 0)
		return -1;
	pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
	if (pidfd < 0)
		return -1;
	j->notify_fd = (int)syscall(SYS_pidfd_getfd, pidfd, child_fd, 0);
	close(pidfd);
	if (j->notify_fd < 0)
		return -1;
	j->hold = kg_hold_new(j->notify_fd, f->doc, f->q, j->cg.id, f->policy_id, j->trace, f->l);
	return j->hold ? 0 : -1;
}

/* The pending request of a job (the newest), or -ENOENT. */
static int fx_pending(struct fx *f, const struct fx_job *j, struct kg_approval *out)
{
	struct kg_approval *v;
	size_t n, i;
	int found = -ENOENT;

	if (kg_approvals_list(f->q, false, &v, &n))
		return -EIO;
	for (i = 0; i < n; i++)
		if (v[i].key.cgid == j->cg.id) {
			*out = v[i];
			found = 0;
		}
	free(v);
	return found;
}

static int fx_count_events(const struct fx *f, int kind, uint64_t cgid)
{
	int i, n = 0;

	for (i = 0; i < f->nevs; i++)
		if (f->evs[i].kind == kind && (!cgid || f->evs[i].job_cgid == cgid))
			n++;
	return n;
}

static struct kg_approver fx_root(void)
{
	struct kg_approver who = { .uid = 0, .ngids = 1 };

	return who;
}

static int fx_listen(const char *addr, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = fx_sockaddr(addr, 0, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 512))
		return -1;
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* Connections accepted so far on a non-blocking listener. */
static int fx_accept_all(int lfd)
{
	int n = 0, c;

	while ((c = accept(lfd, NULL, NULL)) >= 0) {
		close(c);
		n++;
	}
	return n;
}

static int fx_audit_count_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	(void)rec; (void)line; (void)len;
	(*(int *)ctx)++;
	return 0;
}

/* Audit records of type "approval" with this decision. */
static int fx_audit_count(const char *decision)
{
	struct kg_audit_filter flt = { .type = "approval", .decision = decision };
	int n = 0;

	if (kg_audit_query(NULL, &flt, fx_audit_count_cb, &n, true, NULL))
		return -1;
	return n;
}

static void fx_teardown(struct fx *f)
{
	char cmd[600];
	int i;

	for (i = 0; i < f->njobs; i++) {
		struct fx_job *j = &f->jobs[i];

		kg_hold_free(j->hold);
		if (j->notify_fd >= 0)
			close(j->notify_fd);
		kill(j->pid, SIGKILL);
		waitpid(j->pid, NULL, 0);
		close(j->cmd_w);
		close(j->res_r);
		kg_loader_detach_cgroup(j->cg.id);
		kg_maps_remove_job(f->l, j->cg.id);
		kg_cgroup_destroy(&j->cg);
	}
	if (f->njobs) {
		snprintf(cmd, sizeof(cmd), "%s/%s", kg_cgroup2_mount(), f->parent_cg);
		rmdir(cmd);
	}
	kg_events_close(f->ev);
	kg_approvals_close(f->q);
	kg_loader_close(f->l);
	kg_loader_unpin_all();
	rmdir(f->pin);
	kg_policy_free(f->doc);
	/* only the directory this fixture created */
	if (f->tmp[0] && !strncmp(f->tmp, "/tmp/kgate-test-appr.", 21)) {
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", f->tmp);
		if (system(cmd))
			printf("  fixture: could not remove %s\n", f->tmp);
	}
}

#endif

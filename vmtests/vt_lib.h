/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * vt_lib.h - the harness of the BPF LSM VM tests (vt_file, vt_exec,
 * vt_protect, vt_unix).  Include after testlib.h.
 *
 *   struct vt v;
 *   if (vt_setup(&v, "{ ...policy JSON, ~ = a fresh mkdtemp tree... }"))
 *           return;                      // failed (reported) or SKIPped
 *   ... create files under v.home (outside the job) ...
 *   vt_install(&v);                      // compile the policy, register the job
 *   rc = vt_run(&v, fn, arg);            // fn runs in a child inside the job
 *   ASSERT_TRUE(vt_event(&v, KG_OP_READ, KG_DEC_DENY, "rule-id"), "event");
 *   vt_teardown(&v);
 *
 * Each binary loads every object once through the real loader (before its
 * first selected test; not at all when a filter selects none), under a
 * private pin directory on a bpffs it mounts (KGATE_BPFFS), and unpins it
 * all at exit (the links go, the programs detach).  Each test compiles its
 * own policy, registers its own job cgroup and removes both again; events
 * are read straight from the kg_events ring buffer and filtered by job.
 * Outside the "full" VM configuration the tests SKIP; in it, a loader that
 * fell back to degraded mode (BPF LSM not active) fails every test.  What
 * every suite shares (files, helpers, the private bpffs) is testenv.h's.
 */
#ifndef KGATE_VT_LIB_H
#define KGATE_VT_LIB_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job/cgroup.h"
#include "common.h"
#include <bpf/libbpf.h>

#include "record/events.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "testenv.h"

#define VT_MAX_EVENTS 512
#ifndef VT_VERBOSE
#define VT_VERBOSE false	/* true: libbpf and verifier logs */
#endif

struct vt {
	char home[64];			/* mkdtemp: "~" of the policy */
	struct kg_loader *l;
	struct kg_policy_doc *doc;
	struct kg_cgroup cg;
	struct ring_buffer *ev;		/* kg_events, read directly */
	uint32_t policy_id;
	struct kg_event events[VT_MAX_EVENTS];
	int nevents;
	int *shared;			/* result slot shared with the job child */
};

/* Run only where BPF LSM is active (the VM's "full" boot). */
static inline void vt_require_full(void)
{
	if (!kt_vm_full())
		SKIP("needs the VM with BPF LSM (KGATE_VM_CONFIG=full), have %s",
		     kt_vm_config()[0] ? kt_vm_config() : "no VM");
	if (geteuid() != 0)
		SKIP("needs root");
}

/* One loader per test binary: loading and attaching every object costs
 * seconds under TCG, so the parent does it once (constructor) and each
 * test (a forked child) installs its own policy and job into the shared
 * maps, and removes them again. */
static struct {
	bool tried;
	char bpffs[64];			/* mkdtemp + a private bpffs mount */
	char pin[128];			/* KGATE_BPFFS, inside it */
	struct kg_loader *l;
	char error[256];
} vt_g;

__attribute__((destructor)) static void vt_global_fini(void)
{
	if (!vt_g.l)
		return;
	kg_loader_close(vt_g.l);
	vt_g.l = NULL;
	kt_bpffs_unmount(vt_g.bpffs, vt_g.pin);	/* links go: the programs detach */
	rmdir(vt_g.bpffs);
}

/* Load and attach (kt_before_tests: once, before the first selected test,
 * so a filter that selects none of a binary's tests loads nothing). */
static void vt_global_load(void)
{
	struct kg_loader_opts lo = { .want_lsm = true };
	int err;

	vt_g.tried = true;
	kg_env.verbose = VT_VERBOSE;
	snprintf(vt_g.bpffs, sizeof(vt_g.bpffs), "/tmp/kgvt-bpf.XXXXXX");
	err = kt_bpffs_mount(vt_g.bpffs, vt_g.pin, sizeof(vt_g.pin));
	if (err) {
		snprintf(vt_g.error, sizeof(vt_g.error), "private bpffs: %s", strerror(-err));
		return;
	}
	vt_g.l = kg_loader_open(&lo);
	if (!vt_g.l)
		snprintf(vt_g.error, sizeof(vt_g.error), "kg_loader_open failed");
	else if (!kg_loader_lsm_active(vt_g.l))
		snprintf(vt_g.error, sizeof(vt_g.error),
			 "the loader fell back to degraded mode in the full configuration: "
			 "BPF LSM not active: %s", kg_loader_lsm_error(vt_g.l));
}

__attribute__((constructor)) static void vt_global_init(void)
{
	if (!kt_vm_full() || geteuid() != 0)
		return;
	kt_before_tests = vt_global_load;
}

static inline int vt_on_event(void *ctx, void *data, size_t len)
{
	struct vt *v = ctx;
	const struct kg_event *e = data;

	if (len >= sizeof(*e) && v->nevents < VT_MAX_EVENTS)
		v->events[v->nevents++] = *e;
	return 0;
}

static inline void vt_teardown(struct vt *v)
{
	if (v->ev)
		ring_buffer__free(v->ev);
	v->ev = NULL;
	if (v->l && v->cg.id)
		kg_maps_remove_job(v->l, v->cg.id);
	if (v->cg.path[0])
		kg_cgroup_destroy(&v->cg);
	v->cg.path[0] = '\0';
	if (v->l && v->policy_id)
		kg_maps_remove_policy(v->l, v->policy_id);
	v->policy_id = 0;
	v->l = NULL;	/* the binary's loader stays for the next test */
	if (v->doc)
		kg_policy_free(v->doc);
	v->doc = NULL;
	if (v->home[0]) {
		umount2(v->home, MNT_DETACH);	/* harmless when nothing is mounted */
		kt_rm_tree(v->home);
	}
	v->home[0] = '\0';
	if (v->shared)
		munmap(v->shared, 4096);
	v->shared = NULL;
}

/* Create the test's home tree and job cgroup, parse the policy ("~" =
 * v->home).  0, or -1 after reporting the failure. */
static inline int vt_setup(struct vt *v, const char *policy_json)
{
	struct kg_policy_error perr;
	char name[64], msg[1024];

	vt_require_full();
	memset(v, 0, sizeof(*v));
	v->cg.fd = -1;
	/* in "full" a loader that fell back to degraded mode is a failure,
	 * never a silent run of the tests without BPF LSM */
	if (!vt_g.l || vt_g.error[0]) {
		ASSERT_TRUE(false, vt_g.error[0] ? vt_g.error : "the loader did not run");
		return -1;
	}
	v->l = vt_g.l;
	snprintf(v->home, sizeof(v->home), "/tmp/kgvt.XXXXXX");
	if (!ASSERT_TRUE(mkdtemp(v->home), "mkdtemp home"))
		return v->home[0] = '\0', -1;
	v->shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!ASSERT_TRUE(v->shared != MAP_FAILED, "mmap shared"))
		return v->shared = NULL, vt_teardown(v), -1;
	v->ev = ring_buffer__new(kg_loader_map_fd(v->l, "kg_events"), vt_on_event, v, NULL);
	if (!ASSERT_TRUE(v->ev != NULL, "ring buffer"))
		return vt_teardown(v), -1;
	snprintf(name, sizeof(name), "job-%d", (int)getpid());
	if (!ASSERT_OK(kg_cgroup_create_job("kgvt", name, &v->cg), "create job cgroup"))
		return v->cg.path[0] = '\0', vt_teardown(v), -1;
	v->doc = kg_policy_load_buffer(policy_json, strlen(policy_json), "vt-policy", v->home,
				       &perr);
	if (!v->doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		ASSERT_TRUE(v->doc != NULL, msg);
		return vt_teardown(v), -1;
	}
	return 0;
}

/* Compile the policy into the maps (after the test made its files: rules
 * are identities resolved now) and make the cgroup a governed job. */
static inline int vt_install(struct vt *v)
{
	struct kg_compile_report rep = { 0 };

	if (!ASSERT_OK(kg_maps_install(v->l, v->doc, &v->policy_id, &rep), "kg_maps_install"))
		return -1;
	kg_compile_report_free(&rep);
	if (!ASSERT_OK(kg_maps_add_job(v->l, v->cg.id, 4242, v->policy_id, 0), "kg_maps_add_job"))
		return -1;
	return 0;
}

typedef int (*vt_fn)(struct vt *v, void *arg);

/* Run fn in a child that first joins the job; returns fn's value (by
 * convention 0 = the action succeeded, else the errno it failed with), or
 * -1000 - signal when the child died. */
static inline int vt_run(struct vt *v, vt_fn fn, void *arg)
{
	int status = 0;
	pid_t pid;

	*v->shared = -999;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -998;
	if (pid == 0) {
		if (kg_cgroup_add_pid(&v->cg, getpid()))
			_exit(3);
		*v->shared = fn(v, arg);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		return -1000 - WTERMSIG(status);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		return -997;	/* could not join the job */
	return *v->shared;
}

/* Same, but fn runs outside the job (for comparisons: ungoverned). */
static inline int vt_run_outside(struct vt *v, vt_fn fn, void *arg)
{
	int status = 0;
	pid_t pid;

	*v->shared = -999;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -998;
	if (pid == 0) {
		*v->shared = fn(v, arg);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		return -1000 - WTERMSIG(status);
	return *v->shared;
}

/* errno of a failed call, 0 on success: the value fn returns */
#define VT_RC(call) ((call) < 0 ? errno : 0)

static inline bool vt_refused(int rc)
{
	return rc == EPERM || rc == EACCES;
}

/* Pick up everything the ring buffer holds. */
static inline void vt_drain(struct vt *v)
{
	if (v->ev)
		ring_buffer__consume(v->ev);
}

static inline uint32_t vt_rule_num(struct vt *v, const char *rule_id)
{
	size_t i;

	if (!rule_id)
		return 0;
	for (i = 0; i < v->doc->nrules; i++)
		if (!strcmp(v->doc->rules[i].id, rule_id))
			return v->doc->rules[i].num;
	return UINT32_MAX;
}

/* The first event with this op and decision (and rule id, when given; ""
 * = a class default or self-protection: rule 0), NULL if none. */
static inline const struct kg_event *vt_event(struct vt *v, enum kg_op op,
					      enum kg_decision dec, const char *rule_id)
{
	uint32_t num = rule_id && rule_id[0] ? vt_rule_num(v, rule_id) : 0;
	int i;

	vt_drain(v);
	for (i = 0; i < v->nevents; i++) {
		const struct kg_event *e = &v->events[i];

		if (e->job_cgid != v->cg.id || e->op != op || e->decision != dec)
			continue;
		if (rule_id && e->rule_id != num)
			continue;
		return e;
	}
	return NULL;
}

static inline void vt_dump_events(struct vt *v)
{
	int i;

	vt_drain(v);
	for (i = 0; i < v->nevents; i++) {
		const struct kg_event *e = &v->events[i];

		printf("  event %d: kind %u op %s decision %s rule %u flags %#x pid %u path '%s'\n",
		       i, e->kind, kg_op_name(e->op), kg_decision_name(e->decision), e->rule_id,
		       e->flags, e->pid, e->path);
	}
}

/* Forget the events seen so far (between phases of one test). */
static inline void vt_clear_events(struct vt *v)
{
	vt_drain(v);
	v->nevents = 0;
}

/* Paths under the test's home. */
static inline char *vt_path(struct vt *v, const char *rel, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", v->home, rel);
	return buf;
}

static inline int vt_write_file(const char *path, const char *text, mode_t mode)
{
	return kt_write_file(path, text, mode);
}

static inline int vt_mkdirs(struct vt *v, const char *rel)
{
	char p[512];

	vt_path(v, rel, p, sizeof(p));
	return kg_mkdir_p(p, 0755);
}

/* Copy a file (helpers into test trees); 0 or -1. */
static inline int vt_copy(const char *from, const char *to, mode_t mode)
{
	return kt_copy_file(from, to, mode);
}

/* Where the standalone helpers (tests/helpers) are. */
static inline const char *vt_helper(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s", kt_helper(name));
	return buf;
}

/* Fork + exec inside the job from fn context: the exit status of the
 * program, or errno of the failed exec (as 1000 + errno). */
static inline int vt_spawn_wait(char *const argv[])
{
	int status = 0, pfd[2], err = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(pfd[0]);
		execv(argv[0], argv);
		err = errno;
		if (write(pfd[1], &err, sizeof(err)) < 0)
			_exit(126);
		_exit(127);
	}
	close(pfd[1]);
	if (read(pfd[0], &err, sizeof(err)) != sizeof(err))
		err = 0;
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err)
		return 1000 + err;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 2000 + WTERMSIG(status);
}

#endif

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
 * Each test gets a private pin directory on bpffs (KGATE_BPFFS), so it loads
 * its own instance of every object, attaches the LSM programs through the
 * real loader and tears everything down again (unpinning the links detaches
 * the programs).  Outside the "full" VM configuration the tests SKIP.
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

#include "cgroup.h"
#include "common.h"
#include "events.h"
#include "loader.h"
#include "maps.h"
#include "policy.h"

#define VT_MAX_EVENTS 512
#ifndef VT_VERBOSE
#define VT_VERBOSE false	/* true: libbpf and verifier logs */
#endif

struct vt {
	char home[64];			/* mkdtemp: "~" of the policy */
	char bpffs[64];			/* mkdtemp + a private bpffs mount */
	char pin[128];			/* KGATE_BPFFS, inside it */
	struct kg_loader *l;
	struct kg_policy_doc *doc;
	struct kg_cgroup cg;
	struct kg_events *ev;
	uint32_t policy_id;
	struct kg_event events[VT_MAX_EVENTS];
	int nevents;
	int *shared;			/* result slot shared with the job child */
};

/* Run only where BPF LSM is active (the VM's "full" boot). */
static inline void vt_require_full(void)
{
	const char *cfg = getenv("KGATE_VM_CONFIG");

	if (!cfg || strcmp(cfg, "full"))
		SKIP("needs the VM with BPF LSM (KGATE_VM_CONFIG=full), have %s",
		     cfg ? cfg : "no VM");
	if (geteuid() != 0)
		SKIP("needs root");
}

static inline int vt_on_event(void *ctx, const struct kg_event *e)
{
	struct vt *v = ctx;

	if (v->nevents < VT_MAX_EVENTS)
		v->events[v->nevents++] = *e;
	return 0;
}

static inline int vt_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

static inline void vt_teardown(struct vt *v)
{
	if (v->ev)
		kg_events_close(v->ev);
	v->ev = NULL;
	if (v->cg.path[0])
		kg_cgroup_destroy(&v->cg);
	v->cg.path[0] = '\0';
	if (v->l) {
		kg_loader_unpin_all();	/* links go: the programs detach */
		kg_loader_close(v->l);
	}
	v->l = NULL;
	if (v->pin[0])
		rmdir(v->pin);
	v->pin[0] = '\0';
	if (v->bpffs[0]) {
		umount2(v->bpffs, MNT_DETACH);
		rmdir(v->bpffs);
	}
	v->bpffs[0] = '\0';
	if (v->doc)
		kg_policy_free(v->doc);
	v->doc = NULL;
	if (v->home[0]) {
		umount2(v->home, MNT_DETACH);	/* harmless when nothing is mounted */
		nftw(v->home, vt_rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	}
	v->home[0] = '\0';
	if (v->shared)
		munmap(v->shared, 4096);
	v->shared = NULL;
}

/* Load the objects under a private pin dir, create the job cgroup, parse
 * the policy ("~" = v->home).  0, or -1 after reporting the failure. */
static inline int vt_setup(struct vt *v, const char *policy_json)
{
	struct kg_loader_opts lo = { .want_lsm = true };
	struct kg_policy_error perr;
	char name[64], msg[1024];

	vt_require_full();
	kg_env.verbose = VT_VERBOSE;
	memset(v, 0, sizeof(*v));
	v->cg.fd = -1;
	snprintf(v->home, sizeof(v->home), "/tmp/kgvt.XXXXXX");
	if (!ASSERT_TRUE(mkdtemp(v->home), "mkdtemp home"))
		return v->home[0] = '\0', -1;
	/* a bpffs of our own: pins that nothing else sees or leaves behind */
	snprintf(v->bpffs, sizeof(v->bpffs), "/tmp/kgvt-bpf.XXXXXX");
	if (!ASSERT_TRUE(mkdtemp(v->bpffs), "mkdtemp bpffs"))
		return v->bpffs[0] = '\0', vt_teardown(v), -1;
	if (!ASSERT_OK(mount("bpf", v->bpffs, "bpf", 0, "mode=0700"), "mount bpffs")) {
		rmdir(v->bpffs);
		return v->bpffs[0] = '\0', vt_teardown(v), -1;
	}
	snprintf(v->pin, sizeof(v->pin), "%s/kgate", v->bpffs);
	setenv("KGATE_BPFFS", v->pin, 1);
	v->shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!ASSERT_TRUE(v->shared != MAP_FAILED, "mmap shared"))
		return v->shared = NULL, vt_teardown(v), -1;
	v->l = kg_loader_open(&lo);
	if (!ASSERT_TRUE(v->l != NULL, "kg_loader_open"))
		return vt_teardown(v), -1;
	if (!ASSERT_TRUE(kg_loader_lsm_active(v->l), "BPF LSM active")) {
		printf("  lsm error: %s\n", kg_loader_lsm_error(v->l));
		return vt_teardown(v), -1;
	}
	v->ev = kg_events_open(v->l, vt_on_event, v);
	if (!ASSERT_TRUE(v->ev != NULL, "kg_events_open"))
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
		kg_events_drain(v->ev);
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

		if (e->op != op || e->decision != dec)
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
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
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
	char buf[65536];
	int in, out, ok = 0;
	ssize_t n;

	in = open(from, O_RDONLY);
	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			ok = -1;
			break;
		}
	if (n < 0)
		ok = -1;
	close(in);
	close(out);
	return ok;
}

/* Where the standalone helpers (tests/helpers) are. */
static inline const char *vt_helper(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("KGATE_TEST_HELPERS");

	snprintf(buf, len, "%s/%s", dir ? dir : "build/tests/helpers", name);
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

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* govern.c - a cgroup kgate did not create, put under a policy in place. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "record/audit.h"
#include "job/cgroup.h"
#include "cli/cmds.h"
#include "common.h"
#include "daemon/control.h"
#include "job/job.h"
#include "job/govern.h"
#include "kernel/generation.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "kernel/push.h"
#include "record/recorder.h"
#include "job/registry.h"
#include "kernel/seccomp.h"
#include "kernel/selfprotect.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* ---- checks -------------------------------------------------------------- */

int kg_govern_depth(const char *rel)
{
	int depth = 0;
	const char *p;

	for (p = rel; *p; p++)
		if (*p != '/' && (p == rel || p[-1] == '/'))
			depth++;
	return depth;
}

/* Can a uid other than root write this cgroup.procs? */
static bool procs_writable_by_others(const char *path, char *why, size_t len)
{
	struct stat st;

	if (stat(path, &st))
		return false;	/* no such file: nothing to write */
	if (st.st_uid != 0 && (st.st_mode & S_IWUSR)) {
		snprintf(why, len, "%s is owned by uid %u (delegated): that user's processes "
			 "outside the job can move the job's processes out of it", path,
			 (unsigned)st.st_uid);
		return true;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "%s is writable by %s (mode %04o): processes outside the job "
			 "can move the job's processes out of it", path,
			 st.st_mode & S_IWOTH ? "everyone" : "its group", st.st_mode & 07777);
		return true;
	}
	return false;
}

bool kg_govern_delegated(const char *mnt, const char *rel, char *why, size_t len)
{
	char dir[PATH_MAX], file[PATH_MAX + 16];
	char *slash;

	/* moving a process out needs write access to cgroup.procs of the
	 * common ancestor of where it is and where it goes: every strict
	 * ancestor, the mount's root included */
	if (kg_snprintf(dir, sizeof(dir), "%s%s", mnt, rel))
		return snprintf(why, len, "path too long"), true;
	while ((slash = strrchr(dir, '/')) && (size_t)(slash - dir) >= strlen(mnt)) {
		*slash = '\0';
		if (strlen(dir) < strlen(mnt))
			break;
		snprintf(file, sizeof(file), "%s/cgroup.procs", dir);
		if (procs_writable_by_others(file, why, len))
			return true;
		if (strlen(dir) == strlen(mnt))
			break;
	}
	return false;
}

static void add(json_t *arr, const char *k1, const char *v1, const char *reason)
{
	json_array_append_new(arr, json_pack("{s:s,s:s}", k1, v1, "reason", reason));
}

void kg_govern_plan(const struct kg_policy_doc *doc, bool full, json_t *unenforced,
		    json_t *not_applied)
{
	bool holds = false;
	size_t i;

	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		switch (r->kind) {
		case KG_RULE_SYSCALL:
			add(unenforced, "rule", r->id, "syscall rules need a seccomp filter, which "
			    "only a process kgate starts can be given: not enforced in a governed "
			    "cgroup");
			break;
		case KG_RULE_FILE:
		case KG_RULE_EXEC:
			if (!full)
				add(unenforced, "rule", r->id, "needs BPF LSM (Landlock, the degraded "
				    "mode's mechanism, must be applied by the process itself)");
			break;
		case KG_RULE_UNIX:
			if (!full)
				add(unenforced, "rule", r->id, "AF_UNIX peer rules need BPF LSM");
			break;
		case KG_RULE_SOCKET:
			if (!full)
				add(unenforced, "rule", r->id, "families other than inet and inet6 "
				    "need BPF LSM (or seccomp, which a governed cgroup does not get)");
			break;
		case KG_RULE_NET:
			if (r->decision == KG_DEC_REQUIRE_APPROVAL)
				holds = true;
			break;
		case KG_RULE_HOST:
			add(unenforced, "rule", r->id, "host rules need a resolver of the job's own, "
			    "which only kgate run starts: a governed cgroup's DNS is not redirected, "
			    "so no address is learnt and the rule opens nothing (CIDR rules and the "
			    "net default decide)");
			break;
		}
	}
	if (holds)
		add(not_applied, "what", "held calls", "connections needing approval are refused "
		    "at once instead of held (holding needs seccomp user notification); an "
		    "approval lets a later attempt through");
	add(not_applied, "what", "syscall baseline", full ?
	    "the syscalls every kgate run job is refused by seccomp (reboot, swapon, "
	    "settimeofday, keyctl, perf_event_open, open_by_handle_at, userfaultfd, "
	    "io_uring, namespaces...) are not refused; bpf, mount, modules, user namespaces, "
	    "ptrace and signals outside the job, leaving the cgroup and kgate's own state "
	    "stay refused by the BPF LSM" :
	    "nothing refuses bpf, mount, modules, ptrace, leaving the cgroup or kgate's own "
	    "state: the job is not protected from undoing its governance");
	if (!full)
		add(not_applied, "what", "capabilities and kernel settings", "a running process's "
		    "capabilities cannot be taken from outside and nothing refuses them here: root "
		    "processes in the cgroup keep what a kgate run job loses (sys_module, "
		    "sys_admin, sys_rawio, mknod, net_admin...; `kgate policy show`) and can "
		    "write kernel settings such as kernel.core_pattern (full mode refuses both in "
		    "the BPF LSM)");
	add(not_applied, "what", "no_new_privs", "setuid and file-capability programs still "
	    "gain privileges (file and exec rules still decide which programs run)");
	if (!full) {
		add(not_applied, "what", "mount namespace", "kgate's pins, state and trail are not "
		    "hidden from the job (degraded kgate run jobs get their own mount namespace)");
		add(not_applied, "what", "landlock", "file and exec rules are not enforced");
	}
	if (doc->constraints.present || doc->nadmission)
		add(not_applied, "what", "launch constraints and admission", "the cgroup and its "
		    "processes exist already: admission rules are not evaluated, and max_runtime, "
		    "max_procs and memory_max are not applied (the cgroup's owner sets its limits)");
	add(not_applied, "what", "before govern", "what the processes opened before govern "
	    "stays open: reads and writes on files are decided again (full mode), established "
	    "connections and memory mappings stay");
}

/* ---- the cgroup ----------------------------------------------------------- */

struct target {
	char abs[PATH_MAX];	/* real path of the cgroup directory */
	char rel[PATH_MAX];	/* below the mount: "/a/b", "" for the root */
	uint64_t id;
};

static bool on_cgroup2(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static int resolve_cgroup(const char *arg, struct target *t)
{
	const char *mnt = kg_cgroup2_mount();
	char mnt_real[PATH_MAX], joined[PATH_MAX];
	size_t n;

	if (!mnt)
		return kg_err("govern: no cgroup2 mount is visible"), -ENOENT;
	if (!realpath(mnt, mnt_real))
		return kg_err("govern: %s: %s", mnt, strerror(errno)), -errno;
	/* a directory as given, else a path below the mount */
	if (!realpath(arg, t->abs) || !on_cgroup2(t->abs)) {
		if (kg_snprintf(joined, sizeof(joined), "%s/%s", mnt_real, arg) ||
		    !realpath(joined, t->abs))
			return kg_err("govern: %s: no such cgroup (neither a directory on cgroup2 "
				      "nor one below %s)", arg, mnt_real), -ENOENT;
	}
	n = strlen(mnt_real);
	if (strncmp(t->abs, mnt_real, n) || (t->abs[n] && t->abs[n] != '/') ||
	    !on_cgroup2(t->abs))
		return kg_err("govern: %s is not a cgroup below the cgroup2 mount %s", t->abs,
			      mnt_real), -EINVAL;
	kg_strlcpy(t->rel, t->abs + n, sizeof(t->rel));
	return kg_cgroup_id_of_path(t->abs, &t->id);
}

static bool rel_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	return !strncmp(inner, outer, n) && (inner[n] == '\0' || inner[n] == '/');
}

/* Refusals nothing overrides. */
static int check_always(struct kg_loader *l, const struct target *t, char *why, size_t len)
{
	struct kg_job_record *jobs = NULL;
	char self[PATH_MAX], dir[PATH_MAX];
	size_t n = 0, i;
	char *slash;

	if (!t->rel[0] || !strcmp(t->rel, "/"))
		return snprintf(why, len, "%s is the root cgroup: every process on the machine, "
				"kgate included, would be governed", t->abs), -1;
	if (kg_govern_depth(t->rel) > KG_MAX_CGROUP_LEVELS - 1)
		return snprintf(why, len, "%s is %d levels deep: the hooks look for jobs at most "
				"%d levels below the root", t->abs, kg_govern_depth(t->rel),
				KG_MAX_CGROUP_LEVELS - 1), -1;
	if (!kg_cgroup_of_pid(0, self, sizeof(self)) && rel_within(self, t->rel))
		return snprintf(why, len, "kgate itself runs in %s (its cgroup is %s): it could "
				"not release what it governs", t->abs, self), -1;
	if (rel_within(t->rel, "/kgate"))
		return snprintf(why, len, "%s is where kgate run's own jobs live (use kgate policy "
				"push for them)", t->abs), -1;
	/* this cgroup or an ancestor already governed */
	kg_strlcpy(dir, t->abs, sizeof(dir));
	for (;;) {
		struct kg_job kj;
		uint64_t id;

		if (!kg_cgroup_id_of_path(dir, &id) && !kg_maps_get_job(l, id, &kj))
			return snprintf(why, len, "%s is already governed (job %016llx): kgate "
					"policy push changes its policy, kgate release ends it", dir,
					(unsigned long long)kj.job_id), -1;
		slash = strrchr(dir, '/');
		if (!slash || !on_cgroup2(dir) || slash == dir)
			break;
		*slash = '\0';
		if (!on_cgroup2(dir))
			break;
	}
	/* a governed job inside it */
	if (!kg_registry_list(&jobs, &n)) {
		for (i = 0; i < n; i++) {
			if (rel_within(jobs[i].cgroup_path, t->abs)) {
				snprintf(why, len, "%s holds a governed job (%s in %s)", t->abs,
					 jobs[i].trace, jobs[i].cgroup_path);
				free(jobs);
				return -1;
			}
		}
		free(jobs);
	}
	return 0;
}

/* ---- root slots ------------------------------------------------------------ */

static int roots_lock(void)
{
	char path[PATH_MAX];
	int fd;

	if (kg_snprintf(path, sizeof(path), "%s/roots.lock", kg_state_dir()))
		return -ENAMETOOLONG;
	kg_mkdir_p(kg_state_dir(), 0700);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX)) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* The slots governed jobs hold (registry), except `skip`'s. */
static void slots_in_use(bool used[KG_MAX_ROOTS], const char *skip)
{
	struct kg_job_record *jobs = NULL;
	size_t n = 0, i;

	memset(used, 0, KG_MAX_ROOTS * sizeof(bool));
	used[0] = true;
	if (kg_registry_list(&jobs, &n))
		return;
	for (i = 0; i < n; i++)
		if (jobs[i].governed && jobs[i].root_slot < KG_MAX_ROOTS &&
		    (!skip || strcmp(jobs[i].trace, skip)))
			used[jobs[i].root_slot] = true;
	free(jobs);
}

static uint32_t slots_high(const bool used[KG_MAX_ROOTS])
{
	uint32_t i, high = 1;

	for (i = 1; i < KG_MAX_ROOTS; i++)
		if (used[i])
			high = i + 1;
	return high;
}

/* ---- govern ---------------------------------------------------------------- */

struct gov {
	const struct kg_govern_spec *s;
	struct kg_policy_doc *doc;
	struct kg_audit *audit;
	struct kg_loader *loader;
	struct target t;
	struct kg_job_record rec;
	bool full;
	int cg_fd, lock;
	json_t *unenforced, *not_applied, *forced;
	/* what has been done, for the unwinding */
	bool slot_set, attached, job_added;
};

static void say(const struct gov *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct gov *g, const char *fmt, ...)
{
	va_list ap;

	if (!g->s->out)
		return;
	va_start(ap, fmt);
	fputs("kgate: ", g->s->out);
	vfprintf(g->s->out, fmt, ap);
	fputc('\n', g->s->out);
	va_end(ap);
}

/* Refusals --force may override: collected in g->forced when forced. */
static int check_forceable(struct gov *g)
{
	char why[3 * PATH_MAX];
	json_t *found = json_array();
	size_t i;
	int rc = 0;

	if (!g->full)
		json_array_append_new(found, json_string("degraded mode (BPF LSM unavailable): "
			"nothing in the kernel enforces file and exec rules for processes kgate did "
			"not start, and they can leave the cgroup"));
	if (kg_govern_delegated(kg_cgroup2_mount(), g->t.rel, why, sizeof(why)))
		json_array_append_new(found, json_string(why));
	if (g->doc->fail_mode == KG_FAIL_OPEN && !kg_control_daemon_running())
		json_array_append_new(found, json_string("the policy fails open when no controller "
			"keeps the heartbeat, and no kgate daemon runs: the job would soon be "
			"unenforced"));
	for (i = 0; i < json_array_size(found); i++) {
		const char *w = json_string_value(json_array_get(found, i));

		if (g->s->force) {
			say(g, "govern: FORCED past a refusal: %s", w);
			json_array_append(g->forced, json_array_get(found, i));
		} else {
			kg_err("govern: refused: %s (--force overrides this, and is audited)", w);
			rc = -1;
		}
	}
	json_decref(found);
	return rc;
}

static void audit_refusal(struct gov *g, const char *why)
{
	char trace[32];
	uint64_t id = 0;
	struct kg_rec rec;
	json_t *extra;

	if (!g->audit)
		return;
	if (getrandom(&id, sizeof(id), 0) != sizeof(id))
		id = kg_now_real_ns();
	kg_trace_id(id, trace, sizeof(trace));
	extra = json_pack("{s:s,s:I}", "cgroup", g->t.abs, "cgroup_id", (json_int_t)g->t.id);
	kg_rec_controller(&rec, "admission", g->doc);
	kg_rec_str(&rec, "trace", trace);
	kg_rec_str(&rec, "op", "govern");
	kg_rec_str(&rec, "target", g->t.abs);
	kg_rec_str(&rec, "decision", "deny");
	kg_rec_str(&rec, "reason", why);
	kg_rec_extra(&rec, extra);
	if (kg_rec_append(g->audit, &rec))
		kg_warn("govern: the refusal to govern %s could not be audited", g->t.abs);
	json_decref(extra);
	kg_audit_flush(g->audit);
}

static int alloc_slot(struct gov *g)
{
	bool used[KG_MAX_ROOTS];
	uint32_t i;
	int err;

	slots_in_use(used, NULL);
	for (i = 1; i < KG_MAX_ROOTS && used[i]; i++)
		;
	if (i == KG_MAX_ROOTS)
		return kg_err("govern: %d cgroups are governed in place already (the most the "
			      "hooks check): release one first", KG_MAX_ROOTS - 1), -ENOSPC;
	g->rec.root_slot = i;
	used[i] = true;
	err = kg_maps_set_root_slot(g->loader, i, g->cg_fd);
	if (err)
		return err;
	g->slot_set = true;
	return kg_maps_set_roots_used(g->loader, slots_high(used));
}

static json_t *start_extra(struct gov *g)
{
	return json_pack("{s:s,s:s,s:I,s:I,s:O,s:s,s:{s:b,s:s,s:I,s:O,s:O}}",
			 "mode", g->full ? "full" : "degraded", "cgroup", g->t.abs,
			 "cgroup_id", (json_int_t)g->t.id, "policy_id", (json_int_t)g->rec.policy_id,
			 "unenforced_rules", g->unenforced,
			 "file_mechanism", g->full ? "bpf-lsm" : "none",
			 "governed", "in_place", 1, "cgroup", g->t.abs,
			 "root_slot", (json_int_t)g->rec.root_slot, "not_applied", g->not_applied,
			 "forced", g->forced);
}

static int install(struct gov *g)
{
	struct kg_generation gen;
	struct kg_sp_dirs sp;
	struct kg_rec rec;
	json_t *extra;
	int err;

	if (g->full && (kg_selfprotect_dirs(&sp) || kg_selfprotect_register(g->loader, &sp)))
		return kg_err("govern: cannot register kgate's own directories"), -1;
	err = kg_generation_install(g->loader, g->doc, &gen);
	kg_generation_free(&gen);
	if (err && gen.failed == KG_GEN_SNAPSHOT)
		return -1;	/* said by the recorder */
	if (err)
		return kg_err("govern: cannot install the policy in the kernel"), -1;
	g->rec.policy_id = gen.policy_id;
	g->lock = roots_lock();
	if (g->lock < 0)
		return kg_err("govern: roots lock: %s", strerror(-g->lock)), -1;
	/* slot first: once kg_jobs has the cgroup, the hooks must find it */
	if (alloc_slot(g))
		return -1;
	err = kg_loader_attach_cgroup(g->loader, g->cg_fd, g->t.id);
	if (err)
		return -1;
	g->attached = true;
	err = kg_maps_add_job(g->loader, g->t.id, g->rec.job_id, g->rec.policy_id,
			      g->full ? 0 : KG_JOB_F_DEGRADED);
	if (err)
		return -1;
	g->job_added = true;
	kg_maps_heartbeat(g->loader);
	extra = start_extra(g);
	kg_rec_controller(&rec, "job_start", g->doc);
	kg_rec_str(&rec, "trace", g->rec.trace);
	kg_rec_str(&rec, "op", "govern");
	kg_rec_str(&rec, "target", g->t.abs);
	kg_rec_str(&rec, "decision", "allow");
	kg_rec_str(&rec, "reason", json_array_size(g->forced) ? "governed in place, FORCED"
							       : "governed in place");
	kg_rec_extra(&rec, extra);
	err = g->audit ? kg_rec_append(g->audit, &rec) : 0;
	json_decref(extra);
	if (kg_audit_flush(g->audit) || err)
		kg_warn("govern: the job_start record of %s could not be written", g->rec.trace);
	err = kg_registry_save(&g->rec);
	if (err)
		return kg_err("govern: cannot record job %s in %s/jobs: %s", g->rec.trace,
			      kg_state_dir(), strerror(-err)), -1;
	return 0;
}

static void unwind(struct gov *g)
{
	bool used[KG_MAX_ROOTS];

	if (g->job_added)
		kg_maps_remove_job(g->loader, g->t.id);
	if (g->attached)
		kg_loader_detach_cgroup(g->t.id);
	if (g->slot_set) {
		kg_maps_set_root_slot(g->loader, g->rec.root_slot, -1);
		slots_in_use(used, g->rec.trace);
		kg_maps_set_roots_used(g->loader, slots_high(used));
	}
	if (g->rec.policy_id)
		kg_push_release_generations(g->loader, g->rec.trace, g->rec.policy_id);
}

static void report(struct gov *g)
{
	size_t i;

	say(g, "governing %s as job %s (%s mode, policy %s sha256 %.12s)", g->t.abs, g->rec.trace,
	    g->full ? "full" : "degraded", g->doc->name, g->doc->hash);
	for (i = 0; i < json_array_size(g->unenforced); i++) {
		json_t *u = json_array_get(g->unenforced, i);

		say(g, "rule '%s' is NOT enforced here: %s",
		    json_string_value(json_object_get(u, "rule")),
		    json_string_value(json_object_get(u, "reason")));
	}
	for (i = 0; i < json_array_size(g->not_applied); i++) {
		json_t *u = json_array_get(g->not_applied, i);

		say(g, "not applied to a governed cgroup: %s: %s",
		    json_string_value(json_object_get(u, "what")),
		    json_string_value(json_object_get(u, "reason")));
	}
	if (!kg_control_daemon_running())
		say(g, "no kgate daemon runs: the kernel enforces the policy, but the job's events "
		    "wait in the ring buffer (and are counted as lost when it is full) until a "
		    "daemon or a kgate run records them; start `kgate daemon`");
	say(g, "kgate release %s ends it", g->rec.trace);
	if (g->s->result) {
		json_object_set_new(g->s->result, "trace", json_string(g->rec.trace));
		json_object_set_new(g->s->result, "cgroup", json_string(g->t.abs));
		json_object_set_new(g->s->result, "cgroup_id", json_integer((json_int_t)g->t.id));
		json_object_set_new(g->s->result, "mode", json_string(g->full ? "full" : "degraded"));
		json_object_set(g->s->result, "unenforced_rules", g->unenforced);
		json_object_set(g->s->result, "not_applied", g->not_applied);
		json_object_set(g->s->result, "forced", g->forced);
	}
}

int kg_govern(const struct kg_govern_spec *s)
{
	struct kg_loader_opts lo = { .want_lsm = !s->no_lsm };
	struct kg_policy_error perr = {};
	char pathbuf[PATH_MAX], msg[1024], why[3 * PATH_MAX];
	const char *policy = s->policy_path;
	struct gov g = { .s = s, .cg_fd = -1, .lock = -1 };
	int rc = KG_EXIT_FAIL;

	if (!policy)
		policy = kg_default_policy_path(pathbuf, sizeof(pathbuf));
	if (!policy)
		return kg_err("govern: no policy given and no default policy found (use --policy)"),
		       KG_EXIT_USAGE;
	g.doc = kg_policy_load_file(policy, NULL, &perr);
	if (!g.doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		kg_err("%s", msg);
		return KG_EXIT_POLICY;
	}
	if (access("/proc/self/mountinfo", R_OK) || !kg_cgroup2_mount()) {
		kg_err("govern: /proc and a cgroup2 mount must be visible (see kgate doctor)");
		goto out;
	}
	if (resolve_cgroup(s->cgroup, &g.t))
		goto out;
	g.unenforced = json_array();
	g.not_applied = json_array();
	g.forced = json_array();
	g.audit = kg_audit_open(NULL, NULL);
	if (!g.audit) {
		kg_err("govern: cannot open the audit trail in %s", kg_audit_dir());
		goto out;
	}
	g.loader = kg_loader_open(&lo);
	if (!g.loader) {
		kg_err("govern: cannot load kgate's BPF programs (see above)");
		goto out;
	}
	g.full = kg_loader_lsm_active(g.loader);
	if (check_always(g.loader, &g.t, why, sizeof(why))) {
		kg_err("govern: refused: %s", why);
		audit_refusal(&g, why);
		rc = KG_EXIT_DENIED;
		goto out;
	}
	if (check_forceable(&g)) {
		audit_refusal(&g, "a cgroup kgate cannot protect (see the refusals printed)");
		rc = KG_EXIT_DENIED;
		goto out;
	}
	kg_govern_plan(g.doc, g.full, g.unenforced, g.not_applied);
	/* require_full: every rule enforced, which syscall rules never are here */
	if (g.doc->require_full && (!g.full || json_array_size(g.unenforced))) {
		kg_err("govern: the policy requires full enforcement, and %s",
		       !g.full ? "BPF LSM is not available" :
		       "some of its rules cannot be enforced in a governed cgroup (see kgate doctor)");
		rc = KG_EXIT_DEGRADED;
		goto out;
	}
	g.cg_fd = open(g.t.abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.cg_fd < 0) {
		kg_err("govern: %s: %s", g.t.abs, strerror(errno));
		goto out;
	}
	if (getrandom(&g.rec.job_id, sizeof(g.rec.job_id), 0) != sizeof(g.rec.job_id))
		g.rec.job_id = kg_now_real_ns() ^ ((uint64_t)getpid() << 32);
	kg_trace_id(g.rec.job_id, g.rec.trace, sizeof(g.rec.trace));
	g.rec.cgid = g.t.id;
	g.rec.governed = true;
	g.rec.full = g.full;
	g.rec.uid = g.rec.as_uid = g.rec.invoker_uid = getuid();
	g.rec.started_real_ns = kg_now_real_ns();
	kg_strlcpy(g.rec.cgroup_path, g.t.abs, sizeof(g.rec.cgroup_path));
	kg_strlcpy(g.rec.policy_name, g.doc->name ? g.doc->name : "", sizeof(g.rec.policy_name));
	kg_strlcpy(g.rec.policy_hash, g.doc->hash, sizeof(g.rec.policy_hash));
	if (g.doc->source)
		kg_strlcpy(g.rec.policy_path, g.doc->source, sizeof(g.rec.policy_path));
	snprintf(g.rec.command, sizeof(g.rec.command), "(governed cgroup %.480s)", g.t.rel);
	if (install(&g)) {
		unwind(&g);
		goto out;
	}
	report(&g);
	rc = KG_EXIT_OK;
out:
	if (g.lock >= 0)
		close(g.lock);
	if (g.cg_fd >= 0)
		close(g.cg_fd);
	json_decref(g.unenforced);
	json_decref(g.not_applied);
	json_decref(g.forced);
	kg_loader_close(g.loader);
	kg_audit_close(g.audit);
	kg_policy_free(g.doc);
	return rc;
}

/* ---- release ---------------------------------------------------------------- */

bool kg_govern_cgroup_alive(const struct kg_job_record *r)
{
	uint64_t id;

	return !kg_cgroup_id_of_path(r->cgroup_path, &id) && id == r->cgid;
}

void kg_govern_end(struct kg_loader *l, struct kg_audit *a, const struct kg_job_record *r,
		   const char *op, const char *reason)
{
	bool used[KG_MAX_ROOTS];
	int lock = roots_lock();
	struct kg_rec rec;
	json_t *extra;

	kg_maps_remove_job(l, r->cgid);
	kg_loader_detach_cgroup(r->cgid);
	if (r->root_slot > 0 && r->root_slot < KG_MAX_ROOTS)
		kg_maps_set_root_slot(l, r->root_slot, -1);
	slots_in_use(used, r->trace);
	kg_maps_set_roots_used(l, slots_high(used));
	kg_maps_sweep_grants(l, r->cgid);
	/* throttle refusals after the kernel's last once-a-second report, and
	 * decisions folded after their key's last event (no task of the job
	 * decides since kg_maps_remove_job) */
	kg_record_job_residues(a, l, r->cgid, r->job_id);
	kg_push_release_generations(l, r->trace, r->policy_id);
	extra = json_pack("{s:s,s:I,s:I,s:b}", "cgroup", r->cgroup_path,
			  "cgroup_id", (json_int_t)r->cgid, "policy_id", (json_int_t)r->policy_id,
			  "governed", 1);
	kg_rec_init(&rec, "job_exit");
	kg_rec_str(&rec, "trace", r->trace);
	kg_rec_int(&rec, "actor.uid", getuid());
	kg_rec_str(&rec, "op", op);
	kg_rec_str(&rec, "target", r->cgroup_path);
	kg_rec_str(&rec, "reason", reason);
	kg_rec_str(&rec, "policy.name", r->policy_name);
	kg_rec_str(&rec, "policy.hash", r->policy_hash);
	kg_rec_str(&rec, "mechanism", "controller");
	kg_rec_extra(&rec, extra);
	if (a && kg_rec_append(a, &rec))
		kg_warn("govern: the end of %s could not be audited", r->trace);
	json_decref(extra);
	if (a)
		kg_audit_flush(a);
	kg_registry_remove(r->trace);
	if (lock >= 0)
		close(lock);
}

static int find_job(const struct kg_release_spec *s, struct kg_job_record *out)
{
	struct kg_job_record *jobs = NULL;
	char real[PATH_MAX];
	size_t n = 0, i;
	int found = -1;

	if (s->trace)
		return kg_registry_load(s->trace, out) ? -1 : 0;
	if (kg_registry_list(&jobs, &n))
		return -1;
	if (!realpath(s->cgroup, real))
		kg_strlcpy(real, s->cgroup, sizeof(real));
	for (i = 0; i < n && found < 0; i++) {
		size_t len = strlen(jobs[i].cgroup_path), rl = strlen(real);

		/* the path as recorded, or given relative to the mount */
		if (!strcmp(jobs[i].cgroup_path, real) ||
		    (rl < len && !strcmp(jobs[i].cgroup_path + len - rl, real) &&
		     (real[0] == '/' || jobs[i].cgroup_path[len - rl - 1] == '/'))) {
			*out = jobs[i];
			found = 0;
		}
	}
	free(jobs);
	return found;
}

int kg_release(const struct kg_release_spec *s)
{
	struct kg_loader_opts lo = { .want_lsm = true };
	struct kg_job_record r;
	struct kg_loader *l;
	struct kg_audit *a;
	char reason[128];

	if (find_job(s, &r))
		return kg_err("release: no governed job %s %s", s->trace ? "with trace" : "in cgroup",
			      s->trace ? s->trace : s->cgroup), KG_EXIT_USAGE;
	if (!r.governed)
		return kg_err("release: %s was started by kgate run (%s): it ends with its command",
			      r.trace, r.command), KG_EXIT_USAGE;
	a = kg_audit_open(NULL, NULL);
	if (!a)
		return kg_err("release: cannot open the audit trail in %s", kg_audit_dir()),
		       KG_EXIT_FAIL;
	l = kg_loader_open(&lo);
	if (!l) {
		kg_audit_close(a);
		return kg_err("release: cannot load kgate's BPF programs"), KG_EXIT_FAIL;
	}
	snprintf(reason, sizeof(reason), "released by uid %u", (unsigned)getuid());
	kg_govern_end(l, a, &r, "release", reason);
	if (s->out)
		fprintf(s->out, "kgate: released %s (%s): it is no longer governed\n", r.trace,
			r.cgroup_path);
	kg_loader_close(l);
	kg_audit_close(a);
	return KG_EXIT_OK;
}

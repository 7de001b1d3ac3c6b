// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_reap.c - reap.c: finishing what a dead `kgate run` would have done
 * for its job (reap.h).  Each test has its own state dir, audit trail and
 * bpffs (a private mount), and its job cgroups under a cgroup of its own:
 *
 *   - kg_reap_controller_alive: no pid, a dead pid and a pid that started
 *     after the job (reused) are not the controller; a live one that
 *     started before it is;
 *   - an ended job whose controller is gone is reaped: its cgroup, its
 *     kg_jobs entry and its registry entry go, one job_exit record names
 *     it and the reaper; a job whose controller lives, and a job whose
 *     cgroup still has a process, are left exactly as they were (the
 *     latter is reaped once its last process is gone);
 *   - a cgroup already removed does not keep a dead job registered;
 *   - a registry path that is not a cgroup is never emptied or removed,
 *     and no process its "cgroup.procs" names is killed (kg_cgroup_open
 *     refuses a directory that is not on cgroup2);
 *   - one reaper at a time: with reap.lock held, nothing happens.
 *
 * Needs root (cgroups, BPF, a bpffs mount): skipped without it.
 */
#include <bpf/bpf.h>
#include <jansson.h>
#include <signal.h>

#include "testlib.h"
#include "testenv.h"
#include "record/audit.h"
#include "job/cgroup.h"
#include "kgate.h"
#include "common.h"
#include "kernel/loader.h"
#include "job/reap.h"
#include "job/registry.h"

static char dir[128], bpfdir[256], pin[300], cgparent[64], audit_dir[256];
static struct kg_loader *loader;
static struct kg_audit *audit;

static void setup(const char *name)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	struct kg_loader_opts lo = { .want_lsm = false };
	char ignored[256];

	if (getuid() != 0)
		SKIP("needs root (cgroups, BPF, a bpffs mount)");
	if (!kg_cgroup2_mount())
		SKIP("no cgroup2 mount");
	if (kt_state_tree(name, false, dir, sizeof(dir), ignored, sizeof(ignored)))
		SKIP("state tree: %s", strerror(errno));
	snprintf(bpfdir, sizeof(bpfdir), "%s/bpf", dir);
	if (mkdir(bpfdir, 0700) || kt_bpffs_mount(bpfdir, pin, sizeof(pin))) {
		kt_rm_tree(dir);
		SKIP("cannot mount a private bpffs: %s", strerror(errno));
	}
	loader = kg_loader_open(&lo);
	if (!loader) {
		umount2(bpfdir, MNT_DETACH);
		kt_rm_tree(dir);
		SKIP("cannot load kgate's BPF objects here: %s", strerror(errno));
	}
	snprintf(audit_dir, sizeof(audit_dir), "%s/audit", dir);
	audit = kg_audit_open(audit_dir, &o);
	snprintf(cgparent, sizeof(cgparent), "kgate-test-reap-%d", (int)getpid());
}

static void teardown(void)
{
	char path[4200];

	if (audit)
		kg_audit_close(audit);
	kg_loader_close(loader);
	kt_bpffs_unmount(bpfdir, pin);
	kt_rm_tree(dir);
	snprintf(path, sizeof(path), "%s/%s", kg_cgroup2_mount(), cgparent);
	rmdir(path);
}

/* A pid that no process has any more. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

/* A registered job with a cgroup of its own (empty) and a kg_jobs entry. */
static bool make_job(struct kg_job_record *r, struct kg_cgroup *cg, const char *trace,
		     pid_t controller)
{
	struct kg_job kj = { .job_id = 0x77, .policy_id = 0 };
	int err = kg_cgroup_create_job(cgparent, trace, cg);

	if (err)
		SKIP("cannot create a job cgroup: %s", strerror(-err));
	memset(r, 0, sizeof(*r));
	snprintf(r->trace, sizeof(r->trace), "%s", trace);
	r->job_id = 0x77;
	r->cgid = cg->id;
	snprintf(r->cgroup_path, sizeof(r->cgroup_path), "%s", cg->path);
	snprintf(r->policy_name, sizeof(r->policy_name), "reap-test");
	snprintf(r->policy_hash, sizeof(r->policy_hash), "%064x", 0xfeed);
	r->controller_pid = controller;
	r->pid = dead_pid();
	r->started_real_ns = kg_now_real_ns();
	snprintf(r->command, sizeof(r->command), "%s --long-task", trace);
	return ASSERT_OK(kg_registry_save(r), "registered") &&
	       ASSERT_OK(bpf_map_update_elem(kg_loader_map_fd(loader, "kg_jobs"), &r->cgid, &kj,
					     BPF_ANY), "in kg_jobs");
}

static bool registered(const char *trace)
{
	struct kg_job_record r;

	return kg_registry_load(trace, &r) == 0;
}

static bool in_kg_jobs(uint64_t cgid)
{
	struct kg_job kj;

	return bpf_map_lookup_elem(kg_loader_map_fd(loader, "kg_jobs"), &cgid, &kj) == 0;
}

/* The trail's job_exit records (a JSON array; caller decrefs). */
static json_t *job_exits(void)
{
	char path[300], *text, *line, *save = NULL;
	json_t *out = json_array();

	snprintf(path, sizeof(path), "%s/audit.jsonl", audit_dir);
	text = kg_read_file(path, 16u << 20, NULL);
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *r = json_loads(line, 0, NULL);
		const char *type = json_string_value(json_object_get(r, "type"));

		if (type && !strcmp(type, "job_exit"))
			json_array_append(out, r);
		json_decref(r);
	}
	free(text);
	return out;
}

TEST(controller_alive_only_for_a_live_pid_that_started_before_the_job)
{
	struct kg_job_record r = {};

	r.started_real_ns = kg_now_real_ns();
	r.controller_pid = 0;
	ASSERT_FALSE(kg_reap_controller_alive(&r), "no controller pid");
	r.controller_pid = -5;
	ASSERT_FALSE(kg_reap_controller_alive(&r), "a negative pid");
	r.controller_pid = dead_pid();
	ASSERT_FALSE(kg_reap_controller_alive(&r), "a pid nobody has");
	r.controller_pid = getpid();
	ASSERT_TRUE(kg_reap_controller_alive(&r), "this process, started before the job");
	/* the job started in 2001: this process (same pid) came long after */
	r.started_real_ns = 1000000000ull * 1000000000ull;
	ASSERT_FALSE(kg_reap_controller_alive(&r), "a reused pid is not the controller");
	r.started_real_ns = 0;
	ASSERT_TRUE(kg_reap_controller_alive(&r), "job start unknown: a live pid counts");
}

TEST(an_ended_orphan_is_reaped_and_a_job_with_a_live_controller_is_left_alone)
{
	struct kg_job_record orphan, live;
	struct kg_cgroup cg_o, cg_l;
	json_t *exits, *e;

	setup("reap-orphan");
	if (!make_job(&orphan, &cg_o, "job-00000000000000a1", dead_pid()) ||
	    !make_job(&live, &cg_l, "job-00000000000000a2", getpid()))
		goto out;
	kg_cgroup_close(&cg_o);

	ASSERT_EQ(kg_reap_orphans(loader, audit, "the daemon"), 1, "one job reaped");
	ASSERT_FALSE(registered("job-00000000000000a1"), "the orphan left the registry");
	ASSERT_ERRNO(access(orphan.cgroup_path, F_OK), ENOENT, "its cgroup was removed");
	ASSERT_FALSE(in_kg_jobs(orphan.cgid), "its kg_jobs entry was removed");
	ASSERT_TRUE(registered("job-00000000000000a2"), "the live job stays registered");
	ASSERT_OK(access(live.cgroup_path, F_OK), "its cgroup stays");
	ASSERT_TRUE(in_kg_jobs(live.cgid), "and stays enforced");

	exits = job_exits();
	if (ASSERT_EQ(json_array_size(exits), 1, "one job_exit record")) {
		e = json_array_get(exits, 0);
		ASSERT_STREQ(json_string_value(json_object_get(e, "trace")), "job-00000000000000a1",
			     "under the orphan's trace");
		ASSERT_STREQ(json_string_value(json_object_get(e, "target")),
			     "job-00000000000000a1 --long-task", "its command");
		ASSERT_STREQ(json_string_value(json_object_get(e, "reason")),
			     "ended while its controller was gone", "why");
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(e, "extra"), "note")),
			     "its kgate run had died; the daemon cleaned up", "who reaped");
		ASSERT_EQ(json_integer_value(json_object_get(json_object_get(e, "extra"), "cgroup_id")),
			  (long long)orphan.cgid, "its cgroup id");
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(e, "policy"), "name")),
			     "reap-test", "its policy");
	}
	json_decref(exits);

	ASSERT_EQ(kg_reap_orphans(loader, audit, "the daemon"), 0, "nothing more to reap");
	ASSERT_TRUE(registered("job-00000000000000a2"), "the live job is still there");
	kg_cgroup_destroy(&cg_l);
	kg_registry_remove("job-00000000000000a2");
out:
	teardown();
}

TEST(an_orphan_still_running_is_left_until_its_last_process_ends)
{
	struct kg_job_record r;
	struct kg_cgroup cg;
	pid_t worker;

	setup("reap-busy");
	if (!make_job(&r, &cg, "job-00000000000000b1", dead_pid()))
		goto out;
	worker = fork();
	if (worker == 0) {
		pause();
		_exit(0);
	}
	if (!ASSERT_OK(kg_cgroup_add_pid(&cg, worker), "a process in the job's cgroup")) {
		kill(worker, SIGKILL);
		waitpid(worker, NULL, 0);
		kg_cgroup_destroy(&cg);
		goto out;
	}
	ASSERT_EQ(kg_reap_orphans(loader, audit, "a later kgate run"), 0, "nothing reaped");
	ASSERT_EQ(kill(worker, 0), 0, "the job's process was not killed");
	ASSERT_TRUE(registered("job-00000000000000b1"), "still registered");
	ASSERT_OK(access(r.cgroup_path, F_OK), "its cgroup stays");
	ASSERT_TRUE(in_kg_jobs(r.cgid), "still enforced");

	kill(worker, SIGKILL);
	waitpid(worker, NULL, 0);
	kg_cgroup_close(&cg);
	ASSERT_EQ(kg_reap_orphans(loader, audit, "a later kgate run"), 1, "reaped once empty");
	ASSERT_FALSE(registered("job-00000000000000b1"), "gone from the registry");
	ASSERT_ERRNO(access(r.cgroup_path, F_OK), ENOENT, "cgroup removed");
out:
	teardown();
}

TEST(a_dead_job_whose_cgroup_is_already_gone_is_reaped)
{
	struct kg_job_record r;
	struct kg_cgroup cg;
	json_t *exits;

	setup("reap-nocg");
	if (!make_job(&r, &cg, "job-00000000000000c1", dead_pid()))
		goto out;
	ASSERT_OK(kg_cgroup_destroy(&cg), "someone removed its cgroup");
	ASSERT_EQ(kg_reap_orphans(loader, audit, "the daemon"), 1, "reaped");
	ASSERT_FALSE(registered("job-00000000000000c1"), "gone from the registry");
	ASSERT_FALSE(in_kg_jobs(r.cgid), "and from kg_jobs");
	exits = job_exits();
	ASSERT_EQ(json_array_size(exits), 1, "its end recorded");
	json_decref(exits);
out:
	teardown();
}

TEST(a_registry_path_that_is_not_a_cgroup_is_never_emptied_or_removed)
{
	struct kg_job_record r = {};
	char victim[300], file[400], sub[400], made[400], pidtext[32];
	struct kg_cgroup cg;
	pid_t bystander;
	json_t *exits;

	setup("reap-notcg");
	snprintf(victim, sizeof(victim), "%s/not-a-cgroup", dir);
	snprintf(file, sizeof(file), "%s/precious", victim);
	if (!ASSERT_OK(mkdir(victim, 0700), "a plain directory") ||
	    !ASSERT_OK(kt_write_file(file, "keep me\n", 0600), "with a file"))
		goto out;
	snprintf(sub, sizeof(sub), "%s/empty-sub", victim);
	ASSERT_OK(mkdir(sub, 0700), "and an empty directory");
	/* and a "cgroup.procs" naming a process that is not the job's */
	bystander = fork();
	if (bystander == 0) {
		pause();
		_exit(0);
	}
	snprintf(made, sizeof(made), "%s/cgroup.procs", victim);
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)bystander);
	ASSERT_OK(kt_write_file(made, pidtext, 0600), "a file that looks like cgroup.procs");
	snprintf(r.trace, sizeof(r.trace), "job-00000000000000d1");
	r.job_id = 0xd1;
	r.cgid = 999999;
	snprintf(r.cgroup_path, sizeof(r.cgroup_path), "%s", victim);
	r.controller_pid = dead_pid();
	r.started_real_ns = kg_now_real_ns();
	snprintf(r.command, sizeof(r.command), "x");
	ASSERT_OK(kg_registry_save(&r), "registered");
	kg_reap_orphans(loader, audit, "the daemon");
	ASSERT_OK(access(file, F_OK), "the file is still there");
	ASSERT_OK(access(victim, F_OK), "and its directory");
	ASSERT_OK(access(sub, F_OK), "an empty directory in it is not removed");
	ASSERT_EQ(waitpid(bystander, NULL, WNOHANG), 0, "the process it names is not killed");
	kill(bystander, SIGKILL);
	waitpid(bystander, NULL, 0);
	ASSERT_EQ(kg_cgroup_open(victim, &cg), -EMEDIUMTYPE, "not opened as a cgroup");
	/* either left registered (cannot tell it is empty) or dropped as a
	 * job whose cgroup is gone, with its end recorded */
	exits = job_exits();
	ASSERT_EQ(json_array_size(exits), registered("job-00000000000000d1") ? 0 : 1,
		  "a record exactly when it was dropped");
	json_decref(exits);
out:
	teardown();
}

TEST(one_reaper_at_a_time_nothing_happens_while_the_lock_is_held)
{
	struct kg_job_record r;
	struct kg_cgroup cg;
	int lock;

	setup("reap-lock");
	if (!make_job(&r, &cg, "job-00000000000000e1", dead_pid()))
		goto out;
	kg_cgroup_close(&cg);
	lock = kg_state_trylock("reap.lock");
	if (ASSERT_GE(lock, 0, "another reaper holds the lock")) {
		ASSERT_EQ(kg_reap_orphans(loader, audit, "the daemon"), 0, "nothing reaped");
		ASSERT_TRUE(registered("job-00000000000000e1"), "still registered");
		ASSERT_OK(access(r.cgroup_path, F_OK), "cgroup untouched");
		close(lock);
	}
	ASSERT_EQ(kg_reap_orphans(loader, audit, "the daemon"), 1, "reaped once the lock is free");
	ASSERT_FALSE(registered("job-00000000000000e1"), "gone");
out:
	teardown();
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * job/job_start.c - the job's first process (job/job_int.h): born in the
 * job's cgroup with its limits and a terminal of its own, governed before
 * it runs anything (links, the kg_jobs entry, the resolver), recorded as
 * job_start with who it runs as and how its rules are enforced, entered in
 * the registry, then let go; calls that need a human are held from then on.
 */
#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "record/events.h"
#include "kernel/caps.h"
#include "kernel/outside.h"
#include "job/job_int.h"
#include "kernel/maps.h"
#include "job/registry.h"

static struct kg_approvals *job_approvals(struct job *j)
{
	struct kg_approvals_cfg cfg;

	if (!j->approvals) {
		kg_approvals_cfg_from_doc(&cfg, j->doc);
		cfg.audit = j->audit;
		cfg.loader = j->loader;
		j->approvals = kg_approvals_open(&cfg);
	}
	return j->approvals;
}

static void register_job(struct job *j)
{
	struct kg_job_record r = {
		.job_id = j->job_id, .cgid = j->cg.id, .policy_id = j->policy_id,
		.pid = j->jp.pid, .controller_pid = getpid(), .uid = getuid(), .full = j->full,
		.as_uid = j->spec->have_as ? j->spec->as_uid : getuid(),
		.invoker_uid = j->spec->invoker_uid,
		.started_real_ns = kg_now_real_ns(),
	};
	char *cmd = kg_join_argv(j->spec->argv);

	kg_strlcpy(r.trace, j->trace, sizeof(r.trace));
	kg_strlcpy(r.cgroup_path, j->cg.path, sizeof(r.cgroup_path));
	kg_strlcpy(r.policy_name, j->doc->name ? j->doc->name : "", sizeof(r.policy_name));
	kg_strlcpy(r.policy_hash, j->doc->hash, sizeof(r.policy_hash));
	if (j->doc->source)
		kg_strlcpy(r.policy_path, j->doc->source, sizeof(r.policy_path));
	kg_strlcpy(r.command, cmd ? cmd : j->spec->argv[0], sizeof(r.command));
	free(cmd);
	if (kg_registry_save(&r))
		kg_warn("run: cannot record job %s in %s/jobs", j->trace, kg_state_dir());
	else
		j->in_registry = true;
}

static bool policy_holds_calls(const struct kg_policy_doc *doc)
{
	size_t i;

	for (i = 0; i < doc->nrules; i++)
		if (doc->rules[i].kind == KG_RULE_NET &&
		    doc->rules[i].decision == KG_DEC_REQUIRE_APPROVAL)
			return true;
	return false;
}

/* The uid, gid and name the agent runs as, and why. */
static void run_as(const struct job *j, uid_t *uid, gid_t *gid, const char **name,
		   const char **why)
{
	struct passwd *pw;

	if (j->spec->have_as) {
		*uid = j->spec->as_uid;
		*gid = j->spec->as_gid;
		*name = j->spec->as_name;
		*why = j->spec->as_source ? j->spec->as_source : "--as";
		return;
	}
	*uid = getuid();
	*gid = getgid();
	pw = getpwuid(*uid);
	*name = pw ? pw->pw_name : NULL;
	*why = "kgate's own user";
}

static void say_run_as(const struct job *j)
{
	const char *name, *why;
	uid_t uid;
	gid_t gid;

	if (!j->spec->live)
		return;
	run_as(j, &uid, &gid, &name, &why);
	if (!strcmp(why, "--as"))
		fprintf(j->spec->live, "kgate: the agent runs as %s (uid %u, gid %u: --as)\n",
			name ? name : "?", uid, gid);
	else if (strcmp(why, "kgate's own user"))
		fprintf(j->spec->live, "kgate: the agent runs as %s (uid %u, gid %u), the user who "
			"ran %s (from %s); --as root runs it as root\n", name ? name : "?", uid, gid,
			!strcmp(why, "SUDO_UID") ? "sudo" : !strcmp(why, "PKEXEC_UID") ? "pkexec"
								  : "doas", why);
	else if (uid == 0)
		fprintf(j->spec->live, "kgate: the agent runs as root (uid 0): --as USER runs it "
			"unprivileged\n");
	else
		fprintf(j->spec->live, "kgate: the agent runs as %s (uid %u, gid %u)\n",
			name ? name : "?", uid, gid);	if (j->home && j->set_home)
		fprintf(j->spec->live, "kgate: '~' in the policy and the agent's $HOME are %s (%s)\n",
			j->home, j->home_why);
}

/* Degraded mode: how each file/exec rule is enforced (or why not), and
 * what the job's mount namespace does. */
static json_t *file_rules_json(const struct kg_landlock_plan *ll)
{
	json_t *rules = json_array(), *mounts = json_array(), *notes = json_array();
	size_t i;

	for (i = 0; i < ll->nreports; i++) {
		json_t *o = json_pack("{s:s,s:s,s:s}", "rule", ll->reports[i].rule_id, "mechanism",
				      kg_mechanism_name(ll->reports[i].mechanism),
				      "how", ll->reports[i].reason);

		if (o && ll->reports[i].holes[0])
			json_object_set_new(o, "holes", json_string(ll->reports[i].holes));
		json_array_append_new(rules, o);
	}
	for (i = 0; i < ll->nnotes; i++)
		json_array_append_new(notes, json_string(ll->notes[i]));
	for (i = 0; i < ll->mounts.n; i++)
		json_array_append_new(mounts, json_pack("{s:s,s:s}", "path", ll->mounts.ops[i].path,
							"mount", kg_mnt_kind_name(ll->mounts.ops[i].kind)));
	return json_pack("{s:o,s:o,s:I,s:s,s:o}", "rules", rules, "mounts", mounts,
			 "landlock_grants", (json_int_t)ll->ngrants, "summary", ll->summary,
			 "notes", notes);
}

static json_t *job_start_extra(struct job *j, const struct kg_constraints *c,
			       const struct kg_limit_report *lim)
{
	json_t *argv = json_array(), *extra;
	const char *name, *why;
	uid_t uid;
	gid_t gid;
	size_t i;

	for (i = 0; j->spec->argv[i]; i++)
		json_array_append_new(argv, json_string(j->spec->argv[i]));
	run_as(j, &uid, &gid, &name, &why);
	extra = json_pack("{s:o,s:s,s:I,s:I,s:{s:I,s:I,s:I},s:{s:s,s:s},s:O,s:s,s:{s:I,s:I,s:s?,s:s}}",
			 "argv", argv, "mode", j->full ? "full" : "degraded",
			 "cgroup_id", (json_int_t)j->cg.id, "policy_id", (json_int_t)j->policy_id,
			 "constraints", "max_runtime_sec", (json_int_t)c->max_runtime_sec,
			 "max_procs", (json_int_t)c->max_procs, "memory_max", (json_int_t)c->memory_max,
			 "limits", "procs", lim->procs_reason, "memory", lim->memory_reason,
			 "unenforced_rules", j->unenforced,
			 "file_mechanism", j->full ? "bpf-lsm" : "mount-ns+landlock",
			 "run_as", "uid", (json_int_t)uid, "gid", (json_int_t)gid, "name", name,
			 "source", why);
	if (extra && j->spec->attempt > 1)	/* a dispatched job's retry (max_retries) */
		json_object_set_new(extra, "attempt", json_integer(j->spec->attempt));
	if (extra && c->max_retries)
		json_object_set_new(json_object_get(extra, "constraints"), "max_retries",
				    json_integer((json_int_t)c->max_retries));
	if (extra && j->home)
		json_object_set_new(json_object_get(extra, "run_as"), "home",
				    json_pack("{s:s,s:s}", "path", j->home, "source", j->home_why));
	if (extra && !j->full && j->ll)
		json_object_set_new(extra, "file_rules", file_rules_json(j->ll));
	if (extra) {
		json_t *sa = kg_caps_json(j->doc->system_access, j->full);

		/* the daemons' sockets and system files (kernel/outside.h) */
		if (sa)
			json_object_set_new(sa, "outside",
					    kg_outside_json(j->doc->outside_grant, j->full));
		json_object_set_new(extra, "system_access", sa);
	}
	return extra;
}

/* The job's first process is forked right after this: not while the
 * trail's sync thread is starting or working (a fork-time allocator lock
 * hung the child in test_daemon under ASan).  Called after the seccomp
 * filter is compiled: by then the sync of the admission record, written
 * after admission, is usually done. */
static void quiesce_trail(void *audit)
{
	kg_audit_quiesce(audit, 2000);
}

int kgj_start_child(struct job *j, const struct kg_constraints *c)
{
	struct kg_launch_opts o = {
		.argv = j->spec->argv, .doc = j->doc, .cg = &j->cg, .degraded = !j->full,
		.envp = j->spec->envp, .home = j->set_home ? j->home : NULL,
		.have_as = j->spec->have_as, .as_uid = j->spec->as_uid, .as_gid = j->spec->as_gid,
		.landlock = j->full ? NULL : j->ll,
		.hide = j->full ? NULL : &j->sp,
		.seccomp = { .degraded = !j->full, .hold_syscalls = policy_holds_calls(j->doc),
			     .log_refusals = j->ka != NULL },
		.caps_grant = j->doc->system_access,
		.outside_grant = j->doc->outside_grant,
		.audit_session = j->ka != NULL,
		.before_fork = quiesce_trail, .before_fork_ctx = j->audit,
	};
	struct kg_limit_report lim = {};
	struct kg_rec rec;
	json_t *extra;
	int err;

	err = kg_cgroup_create_job(KG_JOBS_CGROUP, j->trace, &j->cg);
	if (err)
		return kg_err("run: cannot create the job cgroup: %s", strerror(-err));
	j->have_cg = true;
	{
		/* <cgroup2>/kgate: the LSM hooks' fast "not governed" check */
		char root[sizeof(j->cg.path)];
		char *slash;

		kg_strlcpy(root, j->cg.path, sizeof(root));
		slash = strrchr(root, '/');
		if (slash)
			*slash = '\0';
		if (kg_maps_set_jobs_root(j->loader, root))
			return -1;
	}
	err = kg_cgroup_set_limits(&j->cg, c->max_procs, c->memory_max, &lim);
	if (err)
		return kg_err("run: cannot apply limits: %s", strerror(-err));
	o.limits = &lim;
	/* the job's session gets a terminal of its own, never the user's */
	err = kg_pty_open(&j->pty);
	if (err)
		return kg_err("run: cannot open a terminal for the job: %s", strerror(-err));
	if (j->pty.master >= 0) {
		o.have_tty = true;
		o.tty_fd = j->pty.slave;
		memcpy(o.tty_replace, j->pty.replace, sizeof(o.tty_replace));
	}
	say_run_as(j);
	if (j->spec->live && lim.procs_how != KG_LIMIT_UNSET && lim.procs_how != KG_LIMIT_CGROUP)
		fprintf(j->spec->live, "kgate: max_procs: %s\n", lim.procs_reason);
	if (j->spec->live && lim.memory_how != KG_LIMIT_UNSET && lim.memory_how != KG_LIMIT_CGROUP)
		fprintf(j->spec->live, "kgate: memory_max: %s\n", lim.memory_reason);
	/* the child is born in the cgroup and waits: nothing has run yet */
	err = kg_launch_start(&o, &j->jp);
	if (err)
		return kg_err("run: cannot start the command: %s", strerror(-err));
	j->started = true;
	kg_kaudit_watch(j->ka, j->jp.pid);
	/* the cgroup programs on <cgroup2>/kgate govern the job's cgroup (and
	 * any it creates below) from its creation; only a loader that could
	 * not put them there attaches a copy to the job itself */
	if (!kg_loader_governs_jobs_root(j->loader)) {
		err = kg_loader_attach_cgroup(j->loader, j->cg.fd, j->cg.id);
		if (err)
			return err;
		j->links_attached = true;
	}
	err = kg_maps_add_job(j->loader, j->cg.id, j->job_id, j->policy_id,
			      j->full ? 0 : KG_JOB_F_DEGRADED);
	if (err)
		return err;
	j->job_registered = true;
	err = kgj_start_resolver(j);
	if (err)
		return err;
	extra = job_start_extra(j, c, &lim);
	kgj_job_rec(j, &rec, "job_start");
	kg_rec_str(&rec, "op", "launch");
	kg_rec_str(&rec, "target", j->spec->argv[0]);
	kg_rec_str(&rec, "decision", "allow");
	kg_rec_extra(&rec, extra);
	kgj_job_record(j, &rec);
	json_decref(extra);
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: job %s started (%s mode, policy %s sha256 %.12s)\n",
			j->trace, j->full ? "full" : "degraded", j->doc->name, j->doc->hash);
	register_job(j);
	/* the live view starts at the current end of the trail; it only
	 * polls, so it holds no inotify watch (record/tail.h) */
	if (j->spec->live)
		j->follow = kg_follow_open(NULL, j->trace, j->spec->live);
	/* beat before the child runs anything: under fail_mode open a heartbeat
	 * older than the policy's timeout (none yet, or a machine where no
	 * controller ran for a while) would decide the command's own exec
	 * fail-open */
	err = kg_maps_heartbeat(j->loader);
	if (err)
		return kg_err("run: cannot write the controller heartbeat: %s", strerror(-err));
	err = kg_launch_go(&j->jp);
	j->launched_ns = kg_now_mono_ns();
	if (err) {
		kg_err("run: %s: %s (at %s)", j->spec->argv[0], strerror(j->jp.failed_errno),
		       kg_launch_stage_name(j->jp.failed_stage));
		return 127;
	}
	kgj_watch_seccomp(j);
	kg_pty_start(&j->pty);
	if (j->pty.master >= 0 && j->spec->live)
		fprintf(j->spec->live, "kgate: the job has a session and a terminal of its own, "
			"relayed by kgate (fds%s%s%s)\n", j->pty.replace[0] ? " 0" : "",
			j->pty.replace[1] ? " 1" : "", j->pty.replace[2] ? " 2" : "");
	/* connect/sendto/sendmsg to require_approval addresses wait for a human */
	if (j->jp.notify_fd >= 0 && job_approvals(j)) {
		j->hold = kg_hold_new(j->jp.notify_fd, j->doc, j->approvals, j->cg.id, j->policy_id,
				      j->trace, j->loader);
		if (!j->hold)
			return kg_err("run: cannot hold calls for approval: %s", strerror(errno));
		kg_hold_set_live(j->hold, j->spec->live);
		j->hold_policy_id = j->policy_id;
	}
	return 0;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* job.c - one governed job, from admission to clean-up. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "policy/admission.h"
#include "job/admit.h"
#include "approve/approvals.h"
#include "record/audit.h"
#include "job/cgroup.h"
#include "cli/cmds.h"
#include "common.h"
#include "dns/match.h"
#include "dns/resolver.h"
#include "record/events.h"
#include "record/follow.h"
#include "approve/hold.h"
#include "kernel/caps.h"
#include "kernel/outside.h"
#include "job/job.h"
#include "record/kaudit.h"
#include "kernel/generation.h"
#include "kernel/landlock.h"
#include "job/launch.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "kernel/push.h"
#include "job/pty.h"
#include "job/reap.h"
#include "record/recorder.h"
#include "job/registry.h"
#include "kernel/seccomp.h"
#include "kernel/selfprotect.h"

#define KG_TICK_MS 250

static volatile sig_atomic_t pending_signal;

static void on_signal(int sig)
{
	pending_signal = sig;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	size_t i;

	sigemptyset(&sa.sa_mask);
	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

const char *kg_default_policy_path(char *buf, size_t len)
{
	const char *env = getenv("KGATE_POLICY");
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	if (access("/etc/kgate/policy.json", R_OK) == 0)
		return "/etc/kgate/policy.json";
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	/* build/kgate in a checkout, or <prefix>/bin/kgate with share/kgate */
	if (!kg_snprintf(buf, len, "%s/../policies/default.json", exe) && access(buf, R_OK) == 0)
		return buf;
	if (!kg_snprintf(buf, len, "%s/../share/kgate/policies/default.json", exe) &&
	    access(buf, R_OK) == 0)
		return buf;
	return NULL;
}

/* Everything one job holds, released in reverse order by job_cleanup(). */
struct job {
	const struct kg_job_spec *spec;
	struct kg_policy_doc *doc;
	struct kg_audit *audit;
	struct kg_loader *loader;
	struct kg_consumer *consumer;	/* while we are the ring-buffer consumer */
	struct kg_landlock_plan *ll;
	struct kg_kaudit *ka;		/* degraded: Landlock refusals from the kernel log */
	struct kg_sp_dirs sp;		/* kgate's own directories */
	struct kg_cgroup cg;
	bool have_cg, job_registered, links_attached;
	uint32_t policy_id;
	uint64_t job_id;
	char trace[32];
	bool full;
	json_t *unenforced;	/* [{rule, reason}] */
	struct kg_job_proc jp;
	bool started;
	struct kg_follow *follow;	/* our live view of the trail */
	bool in_registry;
	struct kg_approvals *approvals;	/* this job's requests (launch, held calls) */
	struct kg_hold *hold;		/* held connect/sendto/sendmsg, if any */
	uint32_t hold_policy_id;	/* the generation the hold judges under */
	struct kg_policy_doc *pushed;	/* that generation's document after a push */
	struct kg_resolver *dns;	/* the job's resolver (policies with host rules) */
	uint32_t dns_policy_id;		/* the generation it decides under */
	struct kg_policy_doc *dns_doc;	/* that generation's document after a push */
	uint64_t dns_lost_said;		/* resolver records lost, already audited */
	uint64_t dns_dropped_said;	/* queries dropped + answers unsent, already audited */
	bool dns_upstream_said;		/* "the upstream does not answer", until it does */
	struct kg_pty pty;		/* the job's own terminal, when fds 0-2 had one */
	char *home;			/* what '~' means in the policy (NULL: no home known) */
	const char *home_why;		/* where it comes from */
	bool set_home;			/* and the job's $HOME is set to it */
	bool no_home;			/* the run-as user has none: '~' in the policy is refused */
	struct kg_retired sweep;	/* retired generations this job deletes (push.h) */
	uint64_t launched_ns;		/* when the command was exec'd */
};

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

/* Become the ring-buffer consumer if nobody else is (see registry.h). */
static void try_consume(struct job *j)
{
	if (!j->consumer)
		j->consumer = kg_consumer_try(j->loader, j->audit);
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

/* Starts a record of the controller's own about this job (kg_rec_controller
 * and its trace); job_record appends it. */
static void job_rec(struct job *j, struct kg_rec *r, const char *type)
{
	kg_rec_controller(r, type, j->doc);
	kg_rec_str(r, "trace", j->trace);
}

static void job_record(struct job *j, const struct kg_rec *r)
{
	if (j->audit && kg_rec_append(j->audit, r))
		kg_warn("audit append failed for a %s record", r->rec.type);
}

static void note_unenforced(struct job *j, const struct kg_rule *r, const char *why)
{
	json_array_append_new(j->unenforced, json_pack("{s:s,s:s}", "rule", r->id, "reason", why));
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: rule '%s' is NOT enforced here: %s\n", r->id, why);
}

/* Which mechanism enforces each rule in this mode; collect the ones that
 * nothing enforces (said at start, in the audit trail, and refused under
 * --require full). */
static void plan_enforcement(struct job *j)
{
	char why[256];
	size_t i;

	for (i = 0; i < j->doc->nrules; i++) {
		const struct kg_rule *r = &j->doc->rules[i];
		const struct kg_ll_report *ll;

		switch (r->kind) {
		case KG_RULE_FILE:
		case KG_RULE_EXEC:
			if (j->full)
				break;
			ll = j->ll ? kg_landlock_report(j->ll, r->num) : NULL;
			if (!ll || (ll->mechanism != KG_MECH_LANDLOCK && ll->mechanism != KG_MECH_MOUNT))
				note_unenforced(j, r, ll ? ll->reason : "needs BPF LSM or Landlock");
			break;
		case KG_RULE_UNIX:
			if (!j->full)
				note_unenforced(j, r, "AF_UNIX peer rules need BPF LSM");
			break;
		case KG_RULE_SYSCALL:
			if (kg_seccomp_rule_mechanism(r, why, sizeof(why)) != KG_MECH_SECCOMP)
				note_unenforced(j, r, why);
			break;
		default:	/* net and socket: cgroup-BPF, in both modes */
			break;
		}
	}
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

/* No governed task may reach kgate's pins, state dir or audit dir (see
 * selfprotect.h): the BPF LSM refuses them in full mode; in degraded mode
 * the job's mount namespace hides them, and a Landlock domain keeps the
 * job out of /proc/PID/root of the processes that still see them. */
static int protect_kgate_state(struct job *j)
{
	bool domain;

	if (kg_selfprotect_dirs(&j->sp))
		return -1;
	if (j->full)
		return kg_selfprotect_register(j->loader, &j->sp) ? -1 : 0;
	domain = kg_landlock_plan_ensure_domain(j->ll);
	if (!j->spec->live)
		return 0;
	if (domain)
		fprintf(j->spec->live, "kgate: kgate's pins, state and audit trail are hidden from "
			"the job (its own mount namespace; a Landlock domain keeps /proc/PID/root of "
			"processes outside the job closed)\n");
	else
		fprintf(j->spec->live, "kgate: kgate's pins, state and audit trail are hidden from "
			"the job's mount namespace only: without a Landlock domain (%s) a root job "
			"can still reach them through /proc/PID/root of a process outside the job\n",
			j->ll && j->ll->abi ? "Landlock ABI 1" : "Landlock unavailable");
	return 0;
}

/* Degraded mode: the plan's summary, and every rule's holes and the
 * policy-wide statements, so that nothing it leaves out is silent. */
static void say_file_holes(struct job *j)
{
	size_t i;

	fprintf(j->spec->live, "kgate: file rules: %s\n", j->ll->summary);
	for (i = 0; i < j->ll->nreports; i++)
		if (j->ll->reports[i].holes[0])
			fprintf(j->spec->live, "kgate: rule '%s': %s\n", j->ll->reports[i].rule_id,
				j->ll->reports[i].holes);
	for (i = 0; i < j->ll->nnotes; i++)
		fprintf(j->spec->live, "kgate: %s\n", j->ll->notes[i]);
}

/* Degraded mode: Landlock's refusals reach the trail through the kernel
 * audit log (kaudit.h), or it is said that they do not. */
static void open_kernel_log(struct job *j)
{
	char why[160], said[200];

	if (j->ll->abi < 7) {
		if (j->spec->live && j->ll->abi && j->ll->abi < 7)
			fprintf(j->spec->live, "kgate: Landlock refusals are not recorded (Landlock "
				"ABI %d: logging needs ABI 7)\n", j->ll->abi);
		return;
	}
	j->ka = kg_kaudit_open(why, sizeof(why), said, sizeof(said));
	if (!j->ka) {
		if (j->spec->live)
			fprintf(j->spec->live, "kgate: Landlock refusals are NOT recorded: %s\n", why);
		return;
	}
	j->ll->log_denials = true;
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: Landlock refusals are recorded one by one (kernel "
			"audit log)%s%s\n", said[0] ? "; " : "", said);
}

/* The job's seccomp refusals are named by its audit session, opened by
 * its first process before exec. */
static void watch_seccomp(struct job *j)
{
	unsigned int ses, own;

	if (!j->ka)
		return;
	ses = kg_kaudit_session_of(j->jp.pid);
	own = kg_kaudit_session_of(getpid());
	if (ses && ses != own) {
		kg_kaudit_watch_session(j->ka, ses);
		if (j->spec->live)
			fprintf(j->spec->live, "kgate: seccomp refusals are recorded one by one (kernel "
				"audit log, the job's audit session %u)\n", ses);
	} else if (j->spec->live) {
		fprintf(j->spec->live, "kgate: seccomp refusals are NOT recorded: the job has no "
			"audit session of its own (writing its loginuid needs CAP_AUDIT_CONTROL and "
			"a mutable loginuid)\n");
	}
}

#ifndef SCMP_ARCH_X86_64_AUDIT
#define SCMP_ARCH_X86_64_AUDIT 0xc000003eu
#endif

/* One seccomp refusal (or audit decision) of the job. */
static void record_seccomp(struct job *j, const struct kg_kaudit_denial *d)
{
	/* the kernel logs the action without its data (the errno) */
	uint32_t action = d->code & 0xffff0000u;
	const struct kg_rule *rule = NULL;
	const char *decision, *outcome = "refused", *rule_id = "kgate:seccomp-baseline";
	const char *reason = "refused in every job whatever the policy (the seccomp baseline: "
			     "kgate's own objects, mounts, namespaces, kernel state)";
	struct kg_rec rec;
	char *name = seccomp_syscall_resolve_num_arch(d->arch ? d->arch : SCMP_ARCH_X86_64_AUDIT,
						      d->syscall);
	char num[32];
	json_t *extra;
	size_t i, k;

	snprintf(num, sizeof(num), "syscall %d", d->syscall);
	for (i = 0; name && i < j->doc->nrules; i++) {
		const struct kg_rule *r = &j->doc->rules[i];

		if (r->kind != KG_RULE_SYSCALL)
			continue;
		for (k = 0; k < r->nsyscalls && strcmp(r->syscalls[k], name); k++)
			;
		if (k < r->nsyscalls && (r->decision != KG_DEC_ALLOW || !r->nargs)) {
			rule = r;
			break;
		}
	}
	if (action == 0x7ffc0000u) {		/* SECCOMP_RET_LOG: an audit decision */
		decision = "audit";
		outcome = "allowed";
	} else {
		decision = rule && rule->decision != KG_DEC_ALLOW && rule->decision != KG_DEC_AUDIT
			   ? kg_decision_name(rule->decision) : "deny";
	}
	/* a refusal the policy's rule did not make is the baseline's */
	if (rule && (action == 0x7ffc0000u) == (rule->decision == KG_DEC_AUDIT)) {
		rule_id = rule->id;
		reason = rule->reason;
	}
	extra = json_pack("{s:s,s:s,s:i,s:I}", "kind", "syscall", "outcome", outcome,
			  "syscall_nr", d->syscall, "cgroup_id", (json_int_t)j->cg.id);
	kg_rec_init(&rec, "decision");
	kg_rec_str(&rec, "trace", j->trace);
	if (d->pid >= 0)
		kg_rec_int(&rec, "subject.pid", d->pid);
	kg_rec_str(&rec, "subject.comm", d->comm[0] ? d->comm : NULL);
	kg_rec_str(&rec, "subject.exe", d->exe[0] ? d->exe : NULL);
	kg_rec_str(&rec, "op", "syscall");
	kg_rec_str(&rec, "target", name ? name : num);
	kg_rec_str(&rec, "decision", decision);
	kg_rec_str(&rec, "rule", rule_id);
	kg_rec_str(&rec, "reason", reason);
	kg_rec_policy(&rec, j->doc);
	kg_rec_str(&rec, "mechanism", "seccomp");
	kg_rec_extra(&rec, extra);
	if (j->audit && kg_rec_append(j->audit, &rec))
		kg_warn("audit append failed for a seccomp refusal");
	json_decref(extra);
	free(name);
}

/* One refusal of the job from the kernel audit log: Landlock's or seccomp's. */
static void record_landlock_denial(void *ctx, const struct kg_kaudit_denial *d)
{
	struct job *j = ctx;
	const char *op = kg_kaudit_op(d->blockers), *rule_id = NULL, *reason;
	const struct kg_rule *r = NULL;
	struct kg_rec rec;
	bool self = !strncmp(d->blockers, "scope.", 6);
	json_t *extra;

	if (d->seccomp) {
		record_seccomp(j, d);
		return;
	}

	if (!self && d->target[0] == '/') {
		enum kg_op kop = !strcmp(op, "read") ? KG_OP_READ : !strcmp(op, "write") ? KG_OP_WRITE
			: !strcmp(op, "create") ? KG_OP_CREATE : !strcmp(op, "unlink") ? KG_OP_UNLINK
			: !strcmp(op, "rename") ? KG_OP_RENAME : KG_OP_EXEC;

		r = kg_policy_match_path(j->doc, d->target, kop);
	}
	if (self) {
		rule_id = "self-protection";
		reason = "outside the job: Landlock scoping of the job's domain";
	} else if (r && r->decision != KG_DEC_ALLOW) {
		rule_id = r->id;
		reason = r->reason;
	} else {
		rule_id = r ? r->id : "default";
		reason = "refused by Landlock although the policy allows it here: deny rules are "
			 "expressed as an allow-list (see kgate doctor --policy)";
	}
	extra = json_pack("{s:s,s:s,s:s,s:s,s:I}", "kind", self ? "self" : "file", "outcome",
			  "refused", "blockers", d->blockers, "landlock_domain", d->domain,
			  "cgroup_id", (json_int_t)j->cg.id);
	kg_rec_init(&rec, "decision");
	kg_rec_str(&rec, "trace", j->trace);
	kg_rec_str(&rec, "op", op);
	kg_rec_str(&rec, "target", d->target);
	kg_rec_str(&rec, "decision", "deny");
	kg_rec_str(&rec, "rule", rule_id);
	kg_rec_str(&rec, "reason", reason);
	kg_rec_policy(&rec, j->doc);
	kg_rec_str(&rec, "mechanism", "landlock");
	kg_rec_extra(&rec, extra);
	if (j->audit && kg_rec_append(j->audit, &rec))
		kg_warn("audit append failed for a Landlock refusal");
	json_decref(extra);
}

/* The job has ended: the last refusals, and what the kernel counted that
 * did not reach us (its audit backlog was full), as a loss. */
static void finish_kernel_log(struct job *j)
{
	uint64_t reported;
	int64_t kernel;
	struct kg_rec rec;
	json_t *extra;

	if (!j->ka)
		return;
	kg_kaudit_finish(j->ka, 1000, record_landlock_denial, j);
	kg_kaudit_counts(j->ka, &reported, &kernel);
	if (kernel < 0 || (uint64_t)kernel <= reported)
		return;
	extra = json_pack("{s:s,s:I,s:I,s:I}", "source", "landlock", "lost",
			  (json_int_t)((uint64_t)kernel - reported), "kernel_denials",
			  (json_int_t)kernel, "recorded", (json_int_t)reported);
	job_rec(j, &rec, "events_lost");
	kg_rec_str(&rec, "op", "landlock");
	kg_rec_str(&rec, "target", j->spec->argv[0]);
	kg_rec_str(&rec, "reason", "Landlock refusals the kernel audit log dropped (backlog full)");
	kg_rec_extra(&rec, extra);
	job_record(j, &rec);
	json_decref(extra);
}

/* Delete every retired generation (push.h) now, after a grace period:
 * how many there were. */
static size_t sweep_now(struct job *j)
{
	struct kg_retired r;
	size_t n;

	kg_push_sweep_start(&r);
	n = r.n;
	kg_push_sweep_finish(j->loader, &r);
	return n;
}

static int prepare_kernel(struct job *j)
{
	struct kg_loader_opts lo = { .want_lsm = !j->spec->no_lsm,
				     .ring_bytes = j->spec->ring_bytes };
	struct kg_generation gen;
	size_t i;
	int err;

	j->loader = kg_loader_open(&lo);
	if (!j->loader)
		return kg_err("run: cannot load kgate's BPF programs (see above)");
	j->full = kg_loader_lsm_active(j->loader);
	if (!j->full) {
		if (j->spec->live)
			fprintf(j->spec->live, "kgate: degraded mode (BPF LSM unavailable: %s): "
				"files by the job's mount namespace (denied paths hidden or read-only) "
				"and Landlock (exec rules and the rest; it decides opens only, not "
				"chmod/chown/utimes/xattrs); refusals by a mount are not recorded, Landlock's "
				"are where the kernel audit log can be read (said below); descriptors "
				"opened before the job are not governed; network by "
				"cgroup-BPF, syscalls by seccomp\n", kg_loader_lsm_error(j->loader));
		err = kg_landlock_plan(j->doc, &j->ll);
		if (err)
			return kg_err("run: file rules plan: %s", strerror(-err));
		if (j->spec->live)
			say_file_holes(j);
		open_kernel_log(j);
	}
	err = protect_kgate_state(j);
	if (err)
		return err;
	plan_enforcement(j);
	if ((j->spec->require == KG_REQUIRE_FULL || j->doc->require_full) &&
	    (!j->full || json_array_size(j->unenforced)))
		return kg_err("run: full enforcement required but %s", !j->full ?
			      "BPF LSM is not available (see `kgate doctor`)" :
			      "some rules cannot be enforced here"), KG_EXIT_DEGRADED;
	err = kg_generation_install(j->loader, j->doc, &gen);
	if (err && gen.failed != KG_GEN_SNAPSHOT && sweep_now(j)) {
		/* the maps may have been full of retired generations */
		kg_generation_free(&gen);
		err = kg_generation_install(j->loader, j->doc, &gen);
		if (!err)
			kg_info("run: the policy fits once the retired generations are deleted");
	}
	if (err) {
		kg_generation_free(&gen);
		if (gen.failed == KG_GEN_SNAPSHOT)
			return -1;	/* said by the recorder */
		return kg_err("run: cannot install the policy in the kernel");
	}
	j->policy_id = gen.policy_id;
	/* name rules and hardlink notes concern the BPF LSM: say them in full mode */
	for (i = 0; j->full && i < gen.report.nnotes && j->spec->live; i++) {
		const struct kg_rule *r = kg_policy_rule_by_num(j->doc, gen.report.notes[i].rule_num);

		fprintf(j->spec->live, "kgate: rule '%s': %s\n", r ? r->id : "?",
			gen.report.notes[i].message);
	}
	kg_generation_free(&gen);
	return 0;
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

/* Host rules: the job's DNS goes to a resolver of its own, started before
 * the command runs anything (without it, nothing could resolve). */
static int start_resolver(struct job *j)
{
	struct kg_resolver_cfg cfg = {
		.cgid = j->cg.id, .doc = j->doc, .policy_id = j->policy_id,
		.upstream = j->spec->dns_upstream ? j->spec->dns_upstream
						  : getenv("KGATE_DNS_UPSTREAM"),
	};
	const char *floor = getenv("KGATE_DNS_TTL_FLOOR_SEC");
	char where[96];

	if (!kg_dns_policy_has_hosts(j->doc))
		return 0;
	/* shorter than the default floor: for tests of expiry, never below 1 s */
	if (floor && atoi(floor) >= 1 && atoi(floor) < KG_DNS_TTL_FLOOR_SEC)
		cfg.ttl_floor_sec = (unsigned int)atoi(floor);
	if (cfg.upstream && !*cfg.upstream)
		cfg.upstream = NULL;
	j->dns = kg_resolver_start(&cfg);
	if (!j->dns)
		return kg_err("run: the policy has host rules but the job's resolver could not "
			      "start (see above)");
	j->dns_policy_id = j->policy_id;
	kg_resolver_addr(j->dns, where, sizeof(where));
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: the job's DNS (TCP and UDP port 53, any address) "
			"goes to kgate's resolver on %s, upstream %s\n", where,
			cfg.upstream ? cfg.upstream : "from /etc/resolv.conf");
	return 0;
}

static json_t *dns_extra(const struct kg_dns_record *d)
{
	json_t *extra = json_pack("{s:s,s:s,s:s,s:s}", "outcome",
				  d->decision == KG_DEC_ALLOW ? "allowed" : "refused",
				  "qtype", d->qtype, "proto", d->proto, "rcode", d->rcode);
	json_t *a;
	unsigned int i;

	if (!extra)
		return NULL;
	if (d->naddrs) {
		a = json_array();
		for (i = 0; i < d->naddrs && i < KG_DNS_REC_ADDRS; i++)
			json_array_append_new(a, json_string(d->addrs[i]));
		json_object_set_new(extra, "answers", a);
		if (d->naddrs > KG_DNS_REC_ADDRS)
			json_object_set_new(extra, "answers_total", json_integer(d->naddrs));
		if (d->decision == KG_DEC_ALLOW) {
			json_object_set_new(extra, "ttl", json_integer(d->ttl));
			json_object_set_new(extra, "kept_sec", json_integer(d->expires_sec));
		}
	}
	if (d->ncnames) {
		a = json_array();
		for (i = 0; i < d->ncnames; i++)
			json_array_append_new(a, json_string(d->cnames[i]));
		json_object_set_new(extra, "cnames", a);
	}
	return extra;
}

/* Resolution decisions into the audit trail, from the controller's thread
 * (the trail has one writer here); records the resolver could not queue are
 * counted and said. */
static void drain_dns(struct job *j)
{
	const struct kg_policy_doc *doc = j->dns_doc ? j->dns_doc : j->doc;
	struct kg_resolver_stats st;
	struct kg_dns_record d;
	struct kg_rec rec;

	if (!j->dns)
		return;
	while (kg_resolver_next(j->dns, &d)) {
		const struct kg_rule *r = d.rule_num ? kg_policy_rule_by_num(doc, d.rule_num) : NULL;
		json_t *extra = dns_extra(&d);

		job_rec(j, &rec, "decision");
		kg_rec_str(&rec, "op", "dns_resolve");
		kg_rec_str(&rec, "target", d.name);
		kg_rec_str(&rec, "decision", kg_decision_name(d.decision));
		kg_rec_str(&rec, "rule", r ? r->id : NULL);
		kg_rec_str(&rec, "reason", d.reason[0] ? d.reason : NULL);
		kg_rec_extra(&rec, extra);
		job_record(j, &rec);
		json_decref(extra);
		/* a dead upstream fails every allowed name: said once, and again
		 * after it answered in between */
		if (d.decision == KG_DEC_ALLOW && !strcmp(d.rcode, "SERVFAIL") &&
		    !strncmp(d.reason, "upstream", 8) && !j->dns_upstream_said) {
			const char *up = j->spec->dns_upstream ? j->spec->dns_upstream
							       : getenv("KGATE_DNS_UPSTREAM");

			kg_warn("dns: the upstream resolver (%s) did not answer (%s): the job's "
				"allowed names get SERVFAIL until it does (--dns-upstream ADDR "
				"chooses another)", up && *up ? up : "from /etc/resolv.conf", d.reason);
			j->dns_upstream_said = true;
		} else if (d.decision == KG_DEC_ALLOW && strcmp(d.rcode, "SERVFAIL")) {
			j->dns_upstream_said = false;
		}
	}
	kg_resolver_stats(j->dns, &st);
	if (st.records_lost > j->dns_lost_said) {
		json_t *extra = json_pack("{s:I}", "records_lost",
					  (json_int_t)(st.records_lost - j->dns_lost_said));

		job_rec(j, &rec, "events_lost");
		kg_rec_str(&rec, "op", "dns_resolve");
		kg_rec_str(&rec, "reason", "resolution records the controller could not keep up with");
		kg_rec_extra(&rec, extra);
		job_record(j, &rec);
		json_decref(extra);
		j->dns_lost_said = st.records_lost;
	}
	if (st.dropped + st.unsent > j->dns_dropped_said) {
		json_t *extra = json_pack("{s:I,s:I}", "queries_dropped", (json_int_t)st.dropped,
					  "answers_unsent", (json_int_t)st.unsent);

		job_rec(j, &rec, "events_lost");
		kg_rec_str(&rec, "op", "dns_resolve");
		kg_rec_str(&rec, "reason", "the job's DNS queries the kernel dropped before kgate's "
			   "resolver read them (its receive queue was full), or answers it could "
			   "not send back (totals so far)");
		kg_rec_extra(&rec, extra);
		job_record(j, &rec);
		json_decref(extra);
		j->dns_dropped_said = st.dropped + st.unsent;
	}
}

/* A push flipped the job's generation: the resolver decides under it, and
 * rewrites what the job learnt with the new rules. */
static void follow_pushed_dns(struct job *j)
{
	struct kg_policy_doc *doc, *old = j->dns_doc;
	struct kg_job kj;

	if (!j->dns || kg_maps_get_job(j->loader, j->cg.id, &kj) || kj.policy_id == j->dns_policy_id)
		return;
	doc = kj.policy_id == j->policy_id ? NULL : kg_snapshot_load_doc(kj.policy_id);
	if (kj.policy_id != j->policy_id && !doc) {
		kg_warn("run: policy generation %u of job %s has no readable snapshot: the "
			"resolver refuses every name", kj.policy_id, j->trace);
		kg_resolver_set_policy(j->dns, NULL, kj.policy_id);
	} else {
		kg_resolver_set_policy(j->dns, doc ? doc : j->doc, kj.policy_id);
	}
	j->dns_doc = doc;
	kg_policy_free(old);
	j->dns_policy_id = kj.policy_id;
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

static int start_child(struct job *j, const struct kg_constraints *c)
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
	err = start_resolver(j);
	if (err)
		return err;
	extra = job_start_extra(j, c, &lim);
	job_rec(j, &rec, "job_start");
	kg_rec_str(&rec, "op", "launch");
	kg_rec_str(&rec, "target", j->spec->argv[0]);
	kg_rec_str(&rec, "decision", "allow");
	kg_rec_extra(&rec, extra);
	job_record(j, &rec);
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
	watch_seccomp(j);
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

/* `kgate policy push` flips the job's generation in the kernel; calls held
 * from then on must be judged, requested and granted under the new one (a
 * grant names its generation, and an approval of a request made under the
 * old one is refused as stale). */
static void follow_pushed_policy(struct job *j)
{
	struct kg_policy_doc *doc;
	struct kg_job kj;

	if (!j->hold || kg_maps_get_job(j->loader, j->cg.id, &kj) ||
	    kj.policy_id == j->hold_policy_id)
		return;
	doc = kj.policy_id == j->policy_id ? NULL : kg_snapshot_load_doc(kj.policy_id);
	if (kj.policy_id != j->policy_id && !doc) {
		kg_warn("run: policy generation %u of job %s has no readable snapshot: held "
			"calls stay judged under generation %u", kj.policy_id, j->trace,
			j->hold_policy_id);
		j->hold_policy_id = kj.policy_id;	/* said once */
		return;
	}
	kg_hold_set_policy(j->hold, doc ? doc : j->doc, kj.policy_id);
	if (j->approvals) {	/* approvers, timeout and queue size of the new policy */
		struct kg_approvals_cfg cfg;

		kg_approvals_cfg_from_doc(&cfg, doc ? doc : j->doc);
		cfg.audit = j->audit;
		cfg.loader = j->loader;
		kg_approvals_set_cfg(j->approvals, &cfg);
	}
	kg_policy_free(j->pushed);
	j->pushed = doc;
	j->hold_policy_id = kj.policy_id;
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: job %s now runs policy generation %u (%s sha256 "
			"%.12s)\n", j->trace, kj.policy_id, (doc ? doc : j->doc)->name,
			(doc ? doc : j->doc)->hash);
}

/* Record events while the main process runs; kill the job at max runtime;
 * forward SIGINT/SIGTERM/SIGHUP to it. */
static void supervise(struct job *j, uint64_t max_runtime_sec, bool *timed_out)
{
	uint64_t deadline = max_runtime_sec ? kg_now_mono_ns() + max_runtime_sec * 1000000000ull : 0;
	uint64_t next_tick = 0;
	struct pollfd pfd[7] = {
		{ .fd = j->jp.pidfd, .events = POLLIN },
		{ .fd = -1, .events = POLLIN },	/* the ring buffer, once we consume */
		{ .fd = j->hold ? kg_hold_fd(j->hold) : -1, .events = POLLIN },
		{ .fd = j->dns ? kg_resolver_fd(j->dns) : -1, .events = POLLIN },
		{ .fd = -1 }, { .fd = -1 },	/* the job's terminal: user input, pty master */
		{ .fd = kg_kaudit_fd(j->ka), .events = POLLIN },	/* Landlock refusals */
	};

	*timed_out = false;
	for (;;) {
		uint64_t now = kg_now_mono_ns();
		int timeout = KG_TICK_MS;

		if (deadline && !*timed_out && now >= deadline) {
			*timed_out = true;
			kg_cgroup_kill(&j->cg);
		}
		if (deadline && !*timed_out && (deadline - now) / 1000000 < (uint64_t)timeout)
			timeout = (deadline - now) / 1000000 + 1;
		if (now >= next_tick) {
			/* a job that runs on deletes what earlier ones retired,
			 * its grace period passing in the background (no fork
			 * follows: the command was exec'd) */
			if (!j->sweep.n && now - j->launched_ns >= KG_TICK_MS * 1000000ull)
				kg_push_sweep_start(&j->sweep);
			kg_maps_heartbeat(j->loader);
			try_consume(j);
			follow_pushed_policy(j);
			follow_pushed_dns(j);
			next_tick = now + KG_TICK_MS * 1000000ull;
		}
		pfd[1].fd = j->consumer ? kg_consumer_epoll_fd(j->consumer) : -1;
		if (pending_signal) {
			syscall(SYS_pidfd_send_signal, j->jp.pidfd, pending_signal, NULL, 0);
			pending_signal = 0;
		}
		if (j->hold && kg_hold_count(j->hold) && timeout > 100)
			timeout = 100;	/* answer released calls promptly */
		kg_pty_pollfds(&j->pty, &pfd[4].fd, &pfd[4].events, &pfd[5].fd, &pfd[5].events);
		pfd[4].revents = pfd[5].revents = 0;
		poll(pfd, 7, kg_consumer_timeout_ms(j->consumer, timeout));
		if (pfd[6].revents & POLLIN)
			kg_kaudit_poll(j->ka, record_landlock_denial, j);
		kg_pty_handle(&j->pty, pfd[4].fd >= 0 ? pfd[4].revents : 0,
			      pfd[5].fd >= 0 ? pfd[5].revents : 0);
		if (j->dns && kg_resolver_wanted_policy(j->dns))
			follow_pushed_dns(j);	/* a query waits for the pushed rules */
		drain_dns(j);
		if ((pfd[2].revents & POLLIN) && kg_hold_handle(j->hold) < 0)
			pfd[2].fd = -1;	/* listener gone with the process */
		if (j->hold) {
			kg_approvals_expire(j->approvals, 0);
			kg_hold_tick(j->hold, 0);
		}
		if (j->consumer)
			kg_consumer_poll(j->consumer);
		if (j->audit)
			kg_audit_flush_if_due(j->audit);
		if (j->follow)
			kg_follow_poll(j->follow);
		if (pfd[0].revents & (POLLIN | POLLHUP))
			break;
	}
}

/* Show the job's last decisions: ours are committed now; another
 * consumer (a daemon) commits its records of them to the trail before its
 * ring position passes them, so we wait for that, at most 150 ms. */
static void finish_live_view(struct job *j)
{
	if (j->audit)
		kg_audit_flush(j->audit);
	if (!j->follow)
		return;
	if (!j->consumer && j->loader) {
		int err = kg_events_wait_consumed(j->loader, 150);

		if (err && err != -ETIMEDOUT && err != -ENOENT)
			usleep(150 * 1000);	/* the ring cannot be seen: a fixed wait */
	}
	kg_follow_poll(j->follow);
}

static void job_cleanup(struct job *j)
{
	struct kg_readers_wait readers = {};
	int retired = -1;

	if (j->started && !j->jp.released)
		kg_launch_abort(&j->jp);
	kg_hold_free(j->hold);	/* anything still held is refused */
	kg_pty_close(&j->pty);	/* the user's terminal as it was */
	kg_policy_free(j->pushed);
	if (j->started && j->jp.notify_fd >= 0)
		close(j->jp.notify_fd);
	if (j->have_cg)
		kg_cgroup_kill(&j->cg);
	kg_resolver_halt(j->dns);	/* a query being answered finishes first */
	drain_dns(j);			/* so its record reaches the trail */
	kg_resolver_stop(j->dns);	/* its redirect and everything the job learnt */
	kg_policy_free(j->dns_doc);
	if (j->consumer)
		kg_consumer_drain(j->consumer);
	if (j->links_attached)
		kg_loader_detach_cgroup(j->cg.id);
	if (j->job_registered)
		kg_maps_remove_job(j->loader, j->cg.id);
	/* no hook can newly read the job's generations: they are retired
	 * (push.h), and deleted after a grace period by whoever sweeps next;
	 * the exit that finds enough of them retired sweeps them all, its
	 * grace period passing while the rest is closed.  When they cannot be
	 * retired, they go here after one. */
	if (j->policy_id && j->loader) {
		retired = kg_push_retire_generations(j->loader, j->trace, j->policy_id);
		if (retired < 0)
			kg_maps_wait_readers_start(&readers);
		if ((retired < 0 || retired >= KG_RETIRED_SWEEP) && !j->sweep.n)
			kg_push_sweep_start(&j->sweep);
	}
	if (j->have_cg)
		kg_cgroup_destroy(&j->cg);
	if (j->started)
		kg_launch_release(&j->jp);
	kg_consumer_close(j->consumer);
	kg_approvals_close(j->approvals);
	kg_follow_close(j->follow);
	kg_landlock_plan_free(j->ll);
	kg_kaudit_close(j->ka);
	kg_audit_close(j->audit);
	/* every generation the job ran under, pushed ones included */
	if (j->policy_id && j->loader && retired < 0)
		kg_push_release_generations_after(j->loader, j->trace, j->policy_id, &readers);
	kg_push_sweep_finish(j->loader, &j->sweep);
	if (j->in_registry)
		kg_registry_remove(j->trace);
	kg_loader_close(j->loader);
	json_decref(j->unenforced);
	kg_policy_free(j->doc);
	free(j->home);
}

static void report_exit(struct job *j, const struct kg_exit_info *xi)
{
	unsigned long refused = 0, audited = 0;
	struct kg_rec rec;
	char what[64];
	json_t *extra;

	if (xi->timed_out)
		snprintf(what, sizeof(what), "killed at max runtime");
	else if (xi->signal)
		snprintf(what, sizeof(what), "killed by signal %d", xi->signal);
	else
		snprintf(what, sizeof(what), "exited with %d", xi->code);
	extra = json_pack("{s:i,s:i,s:b,s:i}", "exit_code", xi->code, "signal", xi->signal,
			  "timed_out", xi->timed_out, "kgate_exit", xi->exit_code);
	if (extra && j->spec->attempt > 1)
		json_object_set_new(extra, "attempt", json_integer(j->spec->attempt));
	job_rec(j, &rec, "job_exit");
	kg_rec_str(&rec, "op", "exit");
	kg_rec_str(&rec, "target", j->spec->argv[0]);
	kg_rec_str(&rec, "reason", what);
	kg_rec_extra(&rec, extra);
	job_record(j, &rec);
	json_decref(extra);
	if (!j->spec->live)
		return;
	kg_follow_counts(j->follow, &refused, &audited);
	fprintf(j->spec->live, "kgate: job %s %s; %lu actions refused, %lu audited; "
		"timeline: kgate audit timeline %s\n", j->trace, what, refused, audited, j->trace);
}

/* What a job needs from the machine before anything starts, each missing
 * piece said in one line with its fix (chroots and containers often lack
 * them). */
static int preflight(void)
{
	if (access("/proc/self/mountinfo", R_OK))
		return kg_err("run: /proc is not mounted (no /proc/self/mountinfo): mount it "
			      "(mount -t proc proc /proc; in a chroot, bind the host's /proc)"),
		       KG_EXIT_FAIL;
	if (!kg_cgroup2_mount())
		return kg_err("run: no cgroup2 mount is visible in /proc/self/mountinfo: mount one "
			      "(mount -t cgroup2 none /sys/fs/cgroup), or in a chroot or container "
			      "bind the host's /sys with its submounts (mount --rbind /sys ROOT/sys)"),
		       KG_EXIT_FAIL;
	return 0;
}

/* '~' in the policy is the home of the user the job runs as: --home DIR,
 * else when the job runs as another user than kgate's (--as, sudo/pkexec/
 * doas, a dispatcher naming the user) that user's home from the password
 * database, never the controller's $HOME, else $HOME.  The job's $HOME follows, unless it is $HOME already. */
static int job_home(struct job *j)
{
	const char *h = NULL;
	struct passwd *pw;

	if (j->spec->home) {
		h = j->spec->home;
		j->home_why = "--home";
		j->set_home = true;
	} else if (j->spec->have_as && j->spec->as_uid != getuid()) {
		pw = getpwuid(j->spec->as_uid);
		if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/') {
			/* a policy without '~' runs; one using it is refused with
			 * its line (a dispatched job's uid may have no passwd entry) */
			j->no_home = true;
			return 0;
		}
		h = pw->pw_dir;
		j->home_why = "the run-as user's home";
		j->set_home = true;
	} else {
		h = getenv("HOME");
		j->home_why = "$HOME";
		if (!h || h[0] != '/')
			return 0;	/* a policy using '~' is then refused with its line */
	}
	j->home = strdup(h);
	return j->home ? 0 : KG_EXIT_FAIL;
}

int kg_job_run(const struct kg_job_spec *spec)
{
	struct kg_admission_result adm = {};
	struct kg_policy_error perr = {};
	struct kg_exit_info xi = {};
	char pathbuf[PATH_MAX], msg[1024];
	const char *policy = spec->policy_path;
	struct job j = { .spec = spec };
	bool timed_out = false;
	int rc;

	if (!policy)
		policy = kg_default_policy_path(pathbuf, sizeof(pathbuf));
	if (!policy)
		return kg_err("run: no policy given and no default policy found (use --policy)"),
		       KG_EXIT_USAGE;
	rc = job_home(&j);
	if (rc)
		return rc;
	j.doc = kg_policy_load_file(policy, j.home ? j.home : j.no_home ? "" : NULL, &perr);
	if (!j.doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		kg_err("%s", msg);
		free(j.home);
		return KG_EXIT_POLICY;
	}
	rc = preflight();
	if (rc) {
		kg_policy_free(j.doc);
		free(j.home);
		return rc;
	}
	j.unenforced = json_array();
	if (spec->job_id)
		j.job_id = spec->job_id;	/* the dispatcher named the trace in advance */
	else if (getrandom(&j.job_id, sizeof(j.job_id), 0) != sizeof(j.job_id))
		j.job_id = kg_now_real_ns() ^ ((uint64_t)getpid() << 32);
	kg_trace_id(j.job_id, j.trace, sizeof(j.trace));
	j.audit = kg_audit_open(NULL, NULL);
	if (!j.audit) {
		rc = KG_EXIT_FAIL;
		kg_err("run: cannot open the audit trail in %s", kg_audit_dir());
		goto out;
	}
	{
		struct kg_admit admit = {
			.doc = j.doc, .spec = spec, .audit = j.audit, .trace = j.trace,
			.interrupted = &pending_signal,
		};

		catch_signals();	/* Ctrl-C while waiting for an approval */
		rc = kg_admit(&admit, &adm);
		kg_approvals_close(admit.approvals);
		if (rc)
			goto out;
	}
	/* the admission record written now: the trail's sync thread starts
	 * and syncs it while the kernel side is prepared, and is idle again
	 * when the job's first process is forked (quiesce_trail) */
	kg_audit_flush(j.audit);
	rc = prepare_kernel(&j);
	if (rc)
		goto out_fail;
	/* without a daemon, nobody else finishes jobs whose kgate run died */
	kg_reap_orphans(j.loader, j.audit, "a later kgate run");
	try_consume(&j);
	rc = start_child(&j, &adm.constraints);
	if (rc)
		goto out_fail;
	supervise(&j, adm.constraints.max_runtime_sec, &timed_out);
	rc = kg_launch_wait(&j.jp, 0, &xi);
	if (rc) {
		rc = kg_err("run: waiting for the job failed: %s", strerror(-rc));
		goto out_fail;
	}
	xi.timed_out = timed_out;
	if (timed_out)
		xi.exit_code = 128 + SIGKILL;
	/* the job ends with its main process: stray children go too */
	kg_cgroup_kill(&j.cg);
	kg_pty_close(&j.pty);	/* its last output, then the user's terminal as it was */
	if (j.consumer)
		kg_consumer_drain(j.consumer);
	/* throttle refusals after the kernel's last once-a-second report */
	kg_record_throttle_residue(j.audit, j.loader, j.cg.id, j.job_id);
	finish_kernel_log(&j);
	finish_live_view(&j);
	report_exit(&j, &xi);
	rc = xi.exit_code;
	goto out;
out_fail:
	if (rc < 0 || rc == KG_EXIT_FAIL)
		rc = KG_EXIT_FAIL;
out:
	job_cleanup(&j);
	return rc;
}

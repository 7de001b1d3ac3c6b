// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * job/job_enforce.c - how a job is enforced here (job/job_int.h): which
 * mechanism enforces each rule in this mode (the rules nothing enforces are
 * said, recorded and refused under --require full), kgate's own state kept
 * from the job, and the policy installed in the kernel.
 */
#include <jansson.h>
#include <string.h>

#include "cli/cmds.h"
#include "common.h"
#include "job/job_int.h"
#include "kernel/generation.h"
#include "kernel/seccomp.h"

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

int kgj_prepare_kernel(struct job *j)
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
		kgj_open_kernel_log(j);
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

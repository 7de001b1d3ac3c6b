// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * job/job_kernlog.c - degraded mode's refusals from the kernel audit log
 * (job/job_int.h; record/kaudit.h reads it): Landlock's and the seccomp
 * filter's, matched to the policy's rules and recorded one by one, and at
 * the end what the kernel's backlog dropped, as a loss.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "job/job_int.h"
#include "kernel/seccomp.h"

/* Degraded mode: Landlock's refusals reach the trail through the kernel
 * audit log (kaudit.h), or it is said that they do not. */
void kgj_open_kernel_log(struct job *j)
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
void kgj_watch_seccomp(struct job *j)
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
void kgj_record_landlock_denial(void *ctx, const struct kg_kaudit_denial *d)
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
void kgj_finish_kernel_log(struct job *j)
{
	uint64_t reported;
	int64_t kernel;
	struct kg_rec rec;
	json_t *extra;

	if (!j->ka)
		return;
	kg_kaudit_finish(j->ka, 1000, kgj_record_landlock_denial, j);
	kg_kaudit_counts(j->ka, &reported, &kernel);
	if (kernel < 0 || (uint64_t)kernel <= reported)
		return;
	extra = json_pack("{s:s,s:I,s:I,s:I}", "source", "landlock", "lost",
			  (json_int_t)((uint64_t)kernel - reported), "kernel_denials",
			  (json_int_t)kernel, "recorded", (json_int_t)reported);
	kgj_job_rec(j, &rec, "events_lost");
	kg_rec_str(&rec, "op", "landlock");
	kg_rec_str(&rec, "target", j->spec->argv[0]);
	kg_rec_str(&rec, "reason", "Landlock refusals the kernel audit log dropped (backlog full)");
	kg_rec_extra(&rec, extra);
	kgj_job_record(j, &rec);
	json_decref(extra);
}

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * job/job_int.h - everything one job holds (struct job), private to the
 * files of `kgate run`'s job (the API is job/job.h):
 *   job.c          from admission to clean-up: kg_job_run, supervision,
 *                  the exit reported, everything released
 *   job_enforce.c  what enforces each rule in this mode; kgate's state kept
 *                  from the job; the policy installed in the kernel
 *   job_start.c    the first process started (cgroup, limits, terminal,
 *                  links, resolver) and the job_start record
 *   job_kernlog.c  degraded mode: Landlock's and seccomp's refusals read
 *                  from the kernel audit log into the trail
 *   job_dns.c      the job's resolver: started, its decisions drained into
 *                  the trail, a pushed generation handed to it
 */
#ifndef KGATE_JOB_JOB_INT_H
#define KGATE_JOB_JOB_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "approve/approvals.h"
#include "approve/hold.h"
#include "dns/resolver.h"
#include "job/cgroup.h"
#include "job/job.h"
#include "job/launch.h"
#include "job/pty.h"
#include "kernel/landlock.h"
#include "kernel/loader.h"
#include "kernel/push.h"
#include "kernel/selfprotect.h"
#include "policy/policy.h"
#include "record/audit.h"
#include "record/follow.h"
#include "record/kaudit.h"
#include "record/recorder.h"

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
	bool residues_recorded;		/* throttle and folded decisions at the end */
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

/* ---- job.c ----------------------------------------------------------------------- */

/* Starts a record of the controller's own about this job; kgj_job_record
 * appends it. */
void kgj_job_rec(struct job *j, struct kg_rec *r, const char *type);
void kgj_job_record(struct job *j, const struct kg_rec *r);

/* ---- job_enforce.c --------------------------------------------------------------- */

/* Load the programs, plan the enforcement of every rule in this mode, keep
 * kgate's state from the job, install the policy: 0, -1 (said), or an exit
 * code (KG_EXIT_DEGRADED under --require full). */
int kgj_prepare_kernel(struct job *j);

/* ---- job_start.c ----------------------------------------------------------------- */

/* Create the job's cgroup and start its first process in it, governed; the
 * job_start record: 0, -1 (said), or an exit code (127: exec failed). */
int kgj_start_child(struct job *j, const struct kg_constraints *c);

/* ---- job_kernlog.c --------------------------------------------------------------- */

void kgj_open_kernel_log(struct job *j);
void kgj_watch_seccomp(struct job *j);
/* kaudit's callback (ctx: the job): one refusal into the trail. */
void kgj_record_landlock_denial(void *ctx, const struct kg_kaudit_denial *d);
void kgj_finish_kernel_log(struct job *j);

/* ---- job_dns.c ------------------------------------------------------------------- */

int kgj_start_resolver(struct job *j);
void kgj_drain_dns(struct job *j);
void kgj_follow_pushed_dns(struct job *j);

#endif

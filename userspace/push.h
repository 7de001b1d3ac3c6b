/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * push.h - swap the policy of running jobs without restarting them.
 *
 * The new policy is validated and compiled into a fresh generation first;
 * only when that succeeded does each job flip to it with one map update
 * (bpf/common.bpf.h reads the job's policy id once per decision), so a job
 * never runs a mix of old and new rules, and on any error the running
 * policy stays.  Rules fixed at launch (seccomp; Landlock in degraded mode)
 * cannot change in a running process: the push says so and records it.
 */
#ifndef KGATE_PUSH_H
#define KGATE_PUSH_H

#include <stdio.h>
#include <sys/types.h>
#include "policy.h"

struct kg_audit;
struct kg_loader;
struct kg_readers_wait;

struct kg_push_result {
	unsigned int jobs_updated;
	unsigned int jobs_skipped;	/* registered but no longer governed */
};

/* Push doc to the job with trace id `trace` (NULL = every running job).
 * actor_uid is the caller's identity from the kernel.  0 or a KG_EXIT_*
 * code; out gets one line per job. */
int kg_push_policy(struct kg_loader *l, struct kg_audit *a, const struct kg_policy_doc *doc,
		   const char *trace, uid_t actor_uid, FILE *out, struct kg_push_result *res);

/* Drop every generation a finished job used (current and pushed-over),
 * after one grace period (kg_maps_wait_readers). */
void kg_push_release_generations(struct kg_loader *l, const char *trace, uint32_t current);
/* The same after the grace period `readers`, which the caller started once
 * the job was no longer in kg_jobs (kg_maps_remove_job); NULL = wait here. */
void kg_push_release_generations_after(struct kg_loader *l, const char *trace, uint32_t current,
				       struct kg_readers_wait *readers);

#endif

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
#include "kernel/maps.h"
#include "policy/policy.h"

struct kg_audit;
struct kg_loader;

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

/*
 * Most exits need not wait for the grace period at all (kgate run: it was
 * most of a short job's cost).  Once the job has left kg_jobs its
 * generations are *retired*: their ids appended to <state>/retired, their
 * snapshots removed.  A retired generation stays in the maps, unreachable
 * (no job entry names it), until a *sweep* deletes every retired one after
 * one grace period that began once they were retired: the exit that finds
 * KG_RETIRED_SWEEP or more retired ids (one exit in that many pays one
 * grace period for all), a job still running after its first tick (in the
 * background: free for it), or an install that failed (a map may be full
 * of them; then it is tried again).
 *
 * kg_push_retire_generations: how many ids are retired now, or -errno when
 * the list cannot take them (then release them: kg_push_release_*).
 * kg_push_sweep_start reads the list and begins the grace period in a
 * thread (no fork may follow it: see kg_launch_opts.before_fork);
 * kg_push_sweep_finish waits for it and deletes what it read.
 */
#define KG_RETIRED_SWEEP 8
#define KG_RETIRED_MAX 256
struct kg_retired {
	uint32_t ids[KG_RETIRED_MAX];
	size_t n;
	struct kg_readers_wait wait;
};
int kg_push_retire_generations(struct kg_loader *l, const char *trace, uint32_t current);
void kg_push_sweep_start(struct kg_retired *r);
void kg_push_sweep_finish(struct kg_loader *l, struct kg_retired *r);

#endif

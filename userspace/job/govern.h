/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * govern.h - put a cgroup kgate did not create under a policy, and release
 * it (`kgate govern`, `kgate release`).
 *
 * A systemd service, a container or a Kubernetes pod already lives in a
 * cgroup of its own.  Governing it in place registers that cgroup as a job:
 * the policy is compiled into a generation, the cgroup-BPF programs are
 * attached to the cgroup, the cgroup gets a slot in kg_jobs_root (the LSM
 * hooks' fast "might this task be governed?" check), and its id goes into
 * kg_jobs.  From then on the BPF LSM and cgroup-BPF programs decide for
 * every process in it, those already running included.
 *
 * What a launch gives a `kgate run` job and a running process cannot be
 * given from outside is not applied, and is said per rule (at govern time,
 * in the job_start record, in `kgate doctor`): a seccomp filter (syscall
 * rules, the syscall baseline, held calls), no_new_privs, Landlock and the
 * job's own mount namespace (degraded mode), rlimits and limits on a
 * cgroup that belongs to someone else, admission.
 *
 * Refused always: the cgroup2 root, a cgroup that holds kgate itself, kgate
 * run's own jobs, a cgroup that is (or is inside, or holds) a governed job,
 * one deeper than the hooks look.  Refused unless forced (--force, which
 * the job_start record names): degraded mode (nothing in the kernel
 * enforces files, and processes can leave the cgroup), a cgroup whose
 * processes could be moved out of it by an unprivileged user (an ancestor's
 * cgroup.procs writable by a uid other than root: delegation), a fail-open
 * policy with no daemon to keep the heartbeat.
 */
#ifndef KGATE_JOB_GOVERN_H
#define KGATE_JOB_GOVERN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "policy/policy.h"

struct kg_audit;
struct kg_loader;
struct kg_job_record;

struct kg_govern_spec {
	const char *cgroup;		/* a cgroup2 directory, or a path below the mount */
	const char *policy_path;	/* NULL = the default policy */
	bool force;			/* override the refusals that may be overridden */
	bool no_lsm;			/* degraded on purpose (tests) */
	FILE *out;			/* human-readable lines (NULL = quiet) */
	json_t *result;			/* when not NULL: filled with the outcome */
};

/* 0 governed, else a KG_EXIT_* code (4 = refused, 3 = bad policy). */
int kg_govern(const struct kg_govern_spec *s);

struct kg_release_spec {
	const char *trace;		/* the job's trace id, or */
	const char *cgroup;		/* its cgroup */
	FILE *out;
};

/* 0 released, else a KG_EXIT_* code. */
int kg_release(const struct kg_release_spec *s);

/* End a governed job: the cgroup leaves governance (kg_jobs, its programs,
 * its root slot, its generations, its registry entry) and a job_exit record
 * with op `op` says why.  Nothing happens to the cgroup or its processes.
 * Used by kgate release and by the reaper when the cgroup is gone. */
void kg_govern_end(struct kg_loader *l, struct kg_audit *a, const struct kg_job_record *r,
		   const char *op, const char *reason);

/* Is the governed job of r still in its cgroup (same path, same id)? */
bool kg_govern_cgroup_alive(const struct kg_job_record *r);

/* --- the checks, apart so that they can be tested on a fake tree --- */

/* The cgroup at `rel` (relative to the cgroup2 mount `mnt`, "/a/b"): can a
 * uid other than root write cgroup.procs of one of its ancestors (the
 * mount's root included), i.e. move the cgroup's processes out of it?
 * true with `why` naming the file and its owner. */
bool kg_govern_delegated(const char *mnt, const char *rel, char *why, size_t len);

/* Number of cgroup levels of `rel` below the root ("/" = 0, "/a/b" = 2). */
int kg_govern_depth(const char *rel);

/* What a governed cgroup does not get, for this policy and mode: appends
 * {rule, reason} to unenforced and {what, reason} to not_applied. */
void kg_govern_plan(const struct kg_policy_doc *doc, bool full, json_t *unenforced,
		    json_t *not_applied);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * landlock.h - degraded-mode file enforcement with Landlock.
 *
 * Landlock is an allow-list: a handled access right is refused everywhere
 * except beneath the inodes a rule grants it on. kg_landlock_plan() turns the
 * policy's file/exec rules into such grants (computed in the controller, with
 * allocations) and says per rule whether and how Landlock enforces it;
 * kg_landlock_apply() only makes syscalls, so it is safe in a forked child.
 */
#ifndef KGATE_LANDLOCK_H
#define KGATE_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/mntrules.h"
#include "policy/policy.h"

#define KG_LL_MAX_GRANTS	4096	/* beyond this the plan refuses to pretend */

struct kg_ll_grant {		/* one LANDLOCK_RULE_PATH_BENEATH */
	char *path;
	uint64_t access;
};

struct kg_ll_report {		/* one per file/exec rule of the policy */
	uint32_t rule_num;
	const char *rule_id;	/* points into the policy document */
	enum kg_mechanism mechanism;	/* KG_MECH_MOUNT, KG_MECH_LANDLOCK or KG_MECH_NONE */
	char reason[320];
	/* what this rule does not cover, or covers beyond what it says, in
	 * this mode (other names of its files, other mounts of its directory,
	 * an exact path applied to a subtree); empty if nothing */
	char holes[1200];
};

#define KG_LL_MAX_NOTES		4
#define KG_LL_MAX_ALIASES	8	/* other mounts of one denied path covered */

struct kg_landlock_plan {
	int abi;			/* 0 = Landlock unavailable */
	uint64_t handled_fs;		/* LANDLOCK_ACCESS_FS_* handled by the ruleset */
	uint64_t scoped;		/* LANDLOCK_SCOPE_* (ABI >= 6) */
	struct kg_ll_grant *grants;
	size_t ngrants, cap;
	struct kg_ll_report *reports;
	size_t nreports;
	struct kg_mnt_plan mounts;	/* deny rules a mount expresses (mntrules.h) */
	char summary[300];		/* one line for doctor / run */
	/* statements about the policy as a whole in this mode (runtime
	 * defaults Landlock cannot express, exec from memory) */
	char notes[KG_LL_MAX_NOTES][320];
	size_t nnotes;
	/* ABI >= 7: the domain logs its refusals after exec too
	 * (LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON), for kaudit.h */
	bool log_denials;
};

/* Landlock ABI version of the running kernel (0 if unavailable). */
int kg_landlock_abi(void);

/* Compute the plan for `doc` (NULL = scoping only): the mounts of the job's
 * namespace, and Landlock grants for what they do not express. 0 or -errno. */
int kg_landlock_plan(const struct kg_policy_doc *doc, struct kg_landlock_plan **out);

/* The same; KG_LL_PLAN_LANDLOCK_ONLY plans every rule with Landlock (the
 * plan before mounts, kept for the benchmarks' comparison). */
#define KG_LL_PLAN_LANDLOCK_ONLY 1u
int kg_landlock_plan_flags(const struct kg_policy_doc *doc, unsigned int flags,
			   struct kg_landlock_plan **out);
void kg_landlock_plan_free(struct kg_landlock_plan *plan);

/* Make applying plan put the job in a Landlock domain of its own, adding a
 * right that restricts nothing when the policy gives Landlock nothing to do.
 * In a domain, Landlock refuses the job ptrace-mode access to every process
 * outside it, so /proc/PID/root, cwd, fd/N, mem and map_files of processes
 * outside the job are out of reach (kgate's state, hidden in the job's
 * mount namespace, stays hidden; see selfprotect.h).  False when no domain
 * can be made here (no Landlock, or ABI 1): the caller says so. */
bool kg_landlock_plan_ensure_domain(struct kg_landlock_plan *plan);

/* Create the ruleset, add the grants, restrict the calling thread (no
 * allocations). Needs no_new_privs (set here) or CAP_SYS_ADMIN. A grant whose
 * path vanished since planning is skipped (its subtree stays refused).
 * 0 (also when the plan is empty or Landlock is absent) or -errno. */
int kg_landlock_apply(const struct kg_landlock_plan *plan);

/* Does the policy refuse some exec (an exec rule or op that refuses, or a
 * refusing exec runtime default)?  Then, in degraded mode, the seccomp
 * filter refuses executable memfds and execveat(AT_EMPTY_PATH): Landlock
 * does not see files outside the tree (a memfd), so a denied program
 * copied into one would run. */
bool kg_policy_restricts_exec(const struct kg_policy_doc *doc);

/* Report of one rule (by 1-based number), NULL if not a file/exec rule. */
const struct kg_ll_report *kg_landlock_report(const struct kg_landlock_plan *plan,
					      uint32_t rule_num);

#endif

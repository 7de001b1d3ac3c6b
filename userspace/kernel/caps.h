/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * caps.h - the capability bounding set of a governed job.
 *
 * A root agent must not get anything outside its job to act for it: the
 * kernel (modules, usermode helpers, system-wide settings), devices, other
 * processes' kernel state.  Most of that is reached through capabilities
 * that a job never needs inside its own work.  A job keeps the
 * capabilities that act on its own files and processes (kg_caps_kept) and
 * loses every other one, unknown future ones included: dropped from the
 * bounding set, the permitted, effective and inheritable sets and the
 * ambient set, before exec, so no exec (setuid-root or file capabilities
 * included) brings them back.  A policy grants one back, by name, in its
 * `system_access` list (visible in `kgate policy show` and in job_start).
 *
 * What capabilities alone do not cover (a uid-0 process writes
 * /proc/sys/kernel/core_pattern with no capability at all: procfs checks
 * the file mode only) is closed by the job's mount namespace in degraded
 * mode (kg_caps_ro_paths read-only) and by the BPF LSM in full mode.
 */
#ifndef KGATE_KERNEL_CAPS_H
#define KGATE_KERNEL_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kg_cap_info {
	int num;		/* CAP_* */
	const char *name;	/* "sys_admin": CAP_ removed, lower case */
	bool kept;		/* every job keeps it */
	const char *why;	/* kept: what for; dropped: what it reaches */
};

extern const struct kg_cap_info kg_caps[];
extern const size_t kg_caps_len;

/* The capabilities every job keeps (a bit per CAP_*). */
uint64_t kg_caps_kept(void);

/* CAP_* of a name ("sys_ptrace", also "CAP_SYS_PTRACE"), or -1. */
int kg_cap_by_name(const char *name);
const struct kg_cap_info *kg_cap_info(int num);

/* In the launched child, while still privileged (CAP_SETPCAP): drop every
 * capability not in `keep` from the bounding set, then from the permitted,
 * effective and inheritable sets, and clear the ambient set.  Syscalls
 * only.  A caller without CAP_SETPCAP that holds none of the dropped
 * capabilities and is not uid 0 cannot gain them back (no_new_privs): 0.
 * 0/-errno. */
int kg_caps_apply(uint64_t keep);

/* {"granted":[names],"dropped":[names],"kept":[names]}: what a job with
 * `grant` (the policy's system_access) keeps and loses; with full 0 or 1
 * (degraded, full mode; -1: not said) also how: "capabilities",
 * "settings", "block_devices". */
struct json_t;
struct json_t *kg_caps_json(uint64_t grant, int full);


/* Paths the job's mount namespace makes read-only in degraded mode (the
 * system-wide settings: /proc/sys with binfmt_misc, /sys, sysrq-trigger);
 * NULL-terminated. */
extern const char *const kg_caps_ro_paths[];

#endif

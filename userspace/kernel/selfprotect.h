/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * selfprotect.h - keeping governed tasks away from kgate's own state.
 *
 * A root agent could otherwise take kgate apart: unlink its pinned links
 * (which detaches the programs), forge approvals in the queue, read the
 * audit key and rewrite the trail, or push itself a permissive policy
 * through the daemon.  kgate's own directories are the pin root, the state
 * dir (registry, approval queue, control socket) and the audit dir (trail
 * and key) and the data dir (the HTTP API's tokens); whatever a job's
 * policy says:
 *
 *   full mode      the BPF LSM refuses every open, create, unlink, rename,
 *                  link, truncate, chmod and chown beneath them and every
 *                  connect to a socket there (bpf/protect.bpf.c, op
 *                  kgate_state, audited), and renaming or removing the
 *                  directories on the way to them;
 *   degraded mode  the job's mount namespace has each of them over-mounted
 *                  with an empty read-only tmpfs (so its paths show
 *                  nothing) and every directory leading to them made a
 *                  mount point (so none can be renamed away); the job is
 *                  in a Landlock domain (kg_landlock_plan_ensure_domain),
 *                  so the processes outside it that still see the real
 *                  directories are out of its reach (/proc/PID/root...);
 *                  aliases an administrator made before (bind mounts,
 *                  hard links elsewhere) are not covered;
 *   both modes     the daemon decides nothing for a peer inside a job: it
 *                  reads the peer's cgroup from the kernel (SO_PEERPIDFD, or
 *                  pidfd_open of SO_PEERCRED's pid, checked alive after the
 *                  read) and refuses it, audited.
 */
#ifndef KGATE_SELFPROTECT_H
#define KGATE_SELFPROTECT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/loader.h"

#define KG_SP_MAX_DIRS 5

struct kg_sp_dirs {
	char path[KG_SP_MAX_DIRS][PATH_MAX];	/* canonical (realpath) */
	size_t n;
};

/* kgate's own directories as this process sees them: the pin root (the
 * parent of every ABI's pin dir, or KGATE_BPFFS), the state dir, the audit
 * dir and the data dir.  The last three are created when missing. 0/-errno. */
int kg_selfprotect_dirs(struct kg_sp_dirs *out);

/* Full mode: put their identities, those of the directories leading to
 * them and their devices into kg_protected.  Idempotent. 0/-errno. */
int kg_selfprotect_register(struct kg_loader *l, const struct kg_sp_dirs *dirs);

/* Degraded mode, in the launched child before exec (syscalls only): cover
 * each directory with an empty read-only tmpfs.  The caller has given the
 * child its own mount namespace with private propagation. 0/-errno. */
int kg_selfprotect_hide(const struct kg_sp_dirs *dirs);

/* Is the task whose cgroup is `cgroup_rel` (relative to the cgroup2 mount,
 * as in /proc/PID/cgroup) inside a governed job?  True when the cgroup or
 * an ancestor is in kg_jobs, or it lies under the jobs' root cgroup; its
 * job's cgroup id in *job_cgid (0 if unknown). */
bool kg_selfprotect_cgroup_governed(struct kg_loader *l, const char *cgroup_rel,
				    uint64_t *job_cgid);

#endif

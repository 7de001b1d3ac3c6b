/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * mntrules.h - degraded-mode file rules expressed by the job's own mount
 * namespace (as bubblewrap does), planned in the controller and applied in
 * the launched child.
 *
 * Landlock is an allow-list bound to inodes: to deny a subtree S it must
 * grant everything else, so nothing can be created directly in an ancestor
 * of S (HOME when S is ~/.ssh).  A mount says the same thing about S alone:
 *
 *   hide       S is covered by an empty read-only tmpfs (mode 000) or, for a
 *              file, by /dev/null on a nodev read-only bind: nothing of S
 *              can be read, written, created, removed, renamed or linked
 *              through that name (used when a rule refuses read);
 *   read-only  S is bind-mounted on itself and made read-only, submounts
 *              included: no write, truncate, create, remove, rename, link,
 *              chmod/chown/utimes/xattr beneath S (used when a rule
 *              refuses write or create but not read);
 *   pin        every directory on the way to a hidden or read-only S is
 *              made a mount point (a bind on itself): the kernel refuses to
 *              rename or remove a mount point (EBUSY), so HOME cannot be
 *              moved away and recreated without S; a rename or link between
 *              such a directory and its parent answers EXDEV (mv copies).
 *
 * What a mount guarantees: a *name* is covered in the job's namespace.
 * Other names of the same objects are a different matter: hard links of a
 * file of S made outside S before the job are not covered (landlock.c says
 * so per rule; the full mode's inode rules cover them); bind mounts of S or
 * of its ancestors elsewhere, found in the mount table at planning, get the
 * same mount (landlock.c: mount_aliases).  The job cannot undo the mounts: mount, umount2, move_mount,
 * open_tree, fsopen, mount_setattr, setns and namespace-creating unshare/
 * clone are refused by the seccomp baseline in every job, and its Landlock
 * domain keeps /proc/PID/root of processes outside the job (which still see
 * the real S) out of reach; so a mount is only counted as enforcing when the
 * job gets a Landlock domain.  The child re-enters its working directory
 * after the mounts, so a job started inside S does not keep S's old view.
 */
#ifndef KGATE_KERNEL_MNTRULES_H
#define KGATE_KERNEL_MNTRULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

enum kg_mnt_kind {
	KG_MNT_PIN = 0,		/* bind on itself: cannot be renamed or removed */
	KG_MNT_READONLY,	/* bind on itself, read-only (recursive) */
	KG_MNT_HIDE_DIR,	/* empty read-only tmpfs, mode 000 */
	KG_MNT_HIDE_FILE,	/* /dev/null, nodev + read-only: every open refused */
};

struct kg_mnt_op {
	enum kg_mnt_kind kind;
	char *path;		/* canonical, absolute, never "/" */
	uint32_t rule_num;	/* the rule it expresses (0 for a pin) */
	dev_t dev;		/* the object planned for (not for pins): what */
	ino_t ino;		/* is found at apply time must be the same */
};

struct kg_mnt_plan {
	struct kg_mnt_op *ops;	/* after kg_mnt_plan_finish: in apply order */
	size_t n, cap;
	size_t nmarks;		/* ops that express a rule (not pins) */
};

/* Add the mount that expresses a rule on `path` (canonical), which is the
 * object `st` (stat at planning).  0/-errno. */
int kg_mnt_plan_add(struct kg_mnt_plan *p, enum kg_mnt_kind kind, const char *path,
		    const struct stat *st, uint32_t rule_num);

/* Order the plan for applying: marks beneath a hidden directory dropped
 * (the hiding covers them), pins for every directory leading to a mark,
 * shallowest first, then the marks shallowest first.  0/-errno. */
int kg_mnt_plan_finish(struct kg_mnt_plan *p);

void kg_mnt_plan_release(struct kg_mnt_plan *p);

/* In the launched child, in its own mount namespace with slave propagation
 * (kg_mntns_make_slave), before privileges are dropped: syscalls only.
 * Each mark is mounted on the object opened with O_PATH|O_NOFOLLOW, after
 * checking it is the one planned for: a path that vanished or was replaced
 * (by a symlink, another directory) since planning fails the launch
 * (-ENOENT, -ESTALE) rather than protect something else. 0/-errno. */
int kg_mnt_apply(const struct kg_mnt_plan *p);

/* Re-resolve the working directory through the mounts made since it was
 * entered (a directory that is now covered is left for what covers it).
 * Syscalls only. 0/-errno. */
int kg_mnt_reenter_cwd(void);

/* path (and everything mounted beneath it) bind-mounted on itself and
 * made read-only, in the child's own mount namespace.  0/-errno. */
int kg_mnt_read_only(const char *path);

/* The same, but only the top mount is made read-only: what is mounted
 * beneath path (before this call) keeps its flags.  0/-errno. */
int kg_mnt_read_only_top(const char *path);

/* "hidden", "read-only", "pinned" */
const char *kg_mnt_kind_name(enum kg_mnt_kind kind);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * launch.h - start the governed command.
 *
 *   kg_cgroup_create_job -> kg_cgroup_set_limits -> kg_launch_start (child is
 *   born in the job cgroup and waits) -> caller attaches BPF to the cgroup and
 *   writes maps -> kg_launch_go (child drops privileges, applies Landlock and
 *   seccomp, execs; returns once exec succeeded or failed) -> kg_launch_wait ->
 *   kg_cgroup_destroy.
 *
 * Nothing of the command runs ungoverned: the child is in the cgroup before
 * the parent releases it, and Landlock + seccomp are in place before exec.
 * kg_launch_start forks, possibly from a controller with threads (the
 * audit syncer, the API): what takes memory (the seccomp programs, the
 * environment) is made before the fork, and the child only makes system
 * calls until exec.
 *
 * No PR_SET_PDEATHSIG: in fail_closed mode the job must outlive a crashed
 * controller, still enforced by the pinned BPF objects, its cgroup, Landlock
 * and seccomp (which stay with the process whatever happens to us).
 */
#ifndef KGATE_LAUNCH_H
#define KGATE_LAUNCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "job/cgroup.h"
#include "kernel/landlock.h"
#include "policy/policy.h"
#include "kernel/seccomp.h"
#include "kernel/selfprotect.h"

struct kg_launch_opts {
	char *const *argv;			/* argv[0] is looked up in PATH */
	char *const *envp;			/* the command's environment; NULL = ours */
	const char *home;			/* set as $HOME in it (NULL: as is) */
	const struct kg_policy_doc *doc;	/* syscall rules (may be NULL) */
	const struct kg_cgroup *cg;		/* job cgroup (required) */
	bool degraded;				/* no BPF LSM: Landlock + stricter seccomp */
	bool have_as;				/* --as: drop to as_uid/as_gid */
	uid_t as_uid;
	gid_t as_gid;
	const struct kg_landlock_plan *landlock; /* NULL = no Landlock */
	/* degraded mode: kgate's own directories, hidden in the job's mount
	 * namespace (may be NULL) */
	const struct kg_sp_dirs *hide;
	struct kg_seccomp_opts seccomp;
	/* the job gets an audit session of its own (kaudit.h), by which the
	 * kernel's seccomp records name it */
	bool audit_session;
	bool no_seccomp;			/* tests only: skip the filter */
	const struct kg_limit_report *limits;	/* rlimit fallbacks (may be NULL) */
	/* The job always gets a session of its own (setsid).  With have_tty,
	 * tty_fd (the slave of a pty kgate relays, see pty.h) becomes its
	 * controlling terminal and replaces the fds 0-2 marked in
	 * tty_replace. */
	bool have_tty;
	int tty_fd;
	bool tty_replace[3];
	/* capabilities kept beyond kg_caps_kept() (the policy's system_access,
	 * kernel/caps.h); every other one leaves the bounding set */
	uint64_t caps_grant;
	/* members of kernel/outside.h the policy's system_access grants back;
	 * degraded mode covers the others in the job's mount namespace */
	uint32_t outside_grant;
	/* called once everything the child needs is made, just before the
	 * fork (NULL: nothing): the child of a process with threads must not
	 * inherit a lock one of them holds (kgate run lets the audit trail's
	 * sync thread go idle here, while the filter compiled it had time to) */
	void (*before_fork)(void *ctx);
	void *before_fork_ctx;
};

/* Where the child failed, for the error message. */
enum kg_launch_stage {
	KG_STAGE_NONE = 0,
	KG_STAGE_CGROUP,
	KG_STAGE_SESSION,	/* setsid and the job's own terminal */
	KG_STAGE_HIDE,		/* kgate's directories in the job's mount namespace */
	KG_STAGE_FILE_MOUNTS,	/* file rules expressed by mounts (mntrules.h) */
	KG_STAGE_CWD,		/* re-entering the working directory after the mounts */
	KG_STAGE_FDS,
	KG_STAGE_SIGNALS,
	KG_STAGE_RLIMITS,
	KG_STAGE_CAPS,		/* the capability bounding set */
	KG_STAGE_SYSTEM_RO,	/* system settings read-only in the job's namespace */
	KG_STAGE_OUTSIDE,	/* daemons' sockets and files run outside the job */
	KG_STAGE_CREDS,
	KG_STAGE_NO_NEW_PRIVS,
	KG_STAGE_LANDLOCK,
	KG_STAGE_SECCOMP,
	KG_STAGE_NOTIFY_FD,	/* not a failure: the listener fd is ready */
	KG_STAGE_EXEC,
};

struct kg_job_proc {
	pid_t pid;
	int pidfd;
	int go_fd;		/* parent -> child */
	int status_fd;		/* child -> parent, CLOEXEC in the child: EOF = exec'd */
	int notify_fd;		/* seccomp listener (hold_syscalls), else -1 */
	bool into_cgroup_at_birth;	/* clone3(CLONE_INTO_CGROUP) was used */
	bool released;
	bool reaped;
	int wait_status;
	enum kg_launch_stage failed_stage;
	int failed_errno;
	const struct kg_cgroup *cg;
};

struct kg_exit_info {
	bool exited;		/* WIFEXITED */
	int code;		/* exit status if exited */
	int signal;		/* terminating signal, else 0 */
	bool timed_out;		/* max runtime expired: the cgroup was killed */
	bool launch_failed;	/* the command never ran */
	enum kg_launch_stage stage;
	int launch_errno;
	int exit_code;		/* what `kgate run` exits with: code, 128+signal, 127 */
};

/* Fork the child into o->cg and leave it waiting. 0 or -errno. */
int kg_launch_start(const struct kg_launch_opts *o, struct kg_job_proc *jp);

/* Release the child; returns 0 once the command was exec'd, or -errno (and
 * jp->failed_stage) if setup or exec failed (the child then exits 127). */
int kg_launch_go(struct kg_job_proc *jp);

/* Abort a started, not yet released child (kills it and reaps it). */
void kg_launch_abort(struct kg_job_proc *jp);

/* Wait for the main process; max_runtime_sec 0 = no limit. On expiry the
 * whole cgroup is killed (out->timed_out). 0 or -errno. */
int kg_launch_wait(struct kg_job_proc *jp, uint64_t max_runtime_sec, struct kg_exit_info *out);

/* Close the descriptors of jp (not notify_fd, which the caller owns). */
void kg_launch_release(struct kg_job_proc *jp);

const char *kg_launch_stage_name(enum kg_launch_stage s);

#endif

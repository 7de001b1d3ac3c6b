// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * launch.c - fork the governed command into its cgroup, govern it, exec it.
 *
 * Parent and child talk over two pipes:
 *   go     (parent -> child): 'g' = go, 'a' = listener fd taken, EOF = abort;
 *   status (child -> parent, CLOEXEC): struct child_msg records; EOF after the
 *          last one means exec succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "kernel/caps.h"
#include "kernel/mntrules.h"
#include "kernel/outside.h"
#include "record/kaudit.h"
#include "job/launch.h"
#include "kernel/mntns.h"

struct child_msg {
	int32_t stage;		/* enum kg_launch_stage */
	int32_t err;		/* errno, or the listener fd number for NOTIFY_FD */
};

const char *kg_launch_stage_name(enum kg_launch_stage s)
{
	static const char *const names[] = {
		[KG_STAGE_NONE] = "none",		[KG_STAGE_CGROUP] = "cgroup",
		[KG_STAGE_SESSION] = "session and terminal",
		[KG_STAGE_HIDE] = "hide kgate's state",
		[KG_STAGE_FILE_MOUNTS] = "file rules (mounts)",
		[KG_STAGE_CWD] = "working directory",
		[KG_STAGE_FDS] = "close descriptors",	[KG_STAGE_SIGNALS] = "signals",
		[KG_STAGE_RLIMITS] = "rlimits",		[KG_STAGE_CREDS] = "credentials",
		[KG_STAGE_CAPS] = "capability bounding set",
		[KG_STAGE_SYSTEM_RO] = "system settings read-only (mounts)",
		[KG_STAGE_OUTSIDE] = "daemons' sockets and system files (mounts)",
		[KG_STAGE_NO_NEW_PRIVS] = "no_new_privs", [KG_STAGE_LANDLOCK] = "landlock",
		[KG_STAGE_SECCOMP] = "seccomp",		[KG_STAGE_NOTIFY_FD] = "notify fd",
		[KG_STAGE_EXEC] = "exec",
	};

	return (unsigned int)s < ARRAY_SIZE(names) && names[s] ? names[s] : "?";
}

/* ---- the child ------------------------------------------------------------------- */

static void child_report(int fd, enum kg_launch_stage stage, int err)
{
	struct child_msg m = { .stage = stage, .err = err };

	while (write(fd, &m, sizeof(m)) < 0 && errno == EINTR)
		;
}

static __attribute__((noreturn)) void child_fail(int fd, enum kg_launch_stage stage, int err)
{
	child_report(fd, stage, err < 0 ? -err : err);
	_exit(127);
}

static int read_byte(int fd, char *c)
{
	ssize_t n;

	do
		n = read(fd, c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* Is this process in cg (its cgroup2 path relative to the mount)? */
static int verify_in_cgroup(const struct kg_cgroup *cg)
{
	const char *mnt = kg_cgroup2_mount();
	char mine[4096];
	int ret = kg_cgroup_of_pid(0, mine, sizeof(mine));

	if (ret < 0)
		return ret;
	if (!mnt || strncmp(cg->path, mnt, strlen(mnt)) || strcmp(cg->path + strlen(mnt), mine))
		return -EXDEV;
	return 0;
}

/* Close everything but 0-2 and the two pipes (which are CLOEXEC). */
static int close_inherited(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3 && close_range(3, (unsigned int)lo - 1, 0) < 0)
		return -errno;
	if (hi > lo + 1 && close_range((unsigned int)lo + 1, (unsigned int)hi - 1, 0) < 0)
		return -errno;
	if (close_range((unsigned int)hi + 1, ~0U, 0) < 0)
		return -errno;
	return 0;
}

static int reset_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t all;
	int sig;

	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);	/* EINVAL for libc-reserved ones */
	sigemptyset(&all);
	return sigprocmask(SIG_SETMASK, &all, NULL) < 0 ? -errno : 0;
}

static int drop_privileges(uid_t uid, gid_t gid)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return -errno;
	if (r != uid || e != uid || s != uid || rg != gid || eg != gid || sg != gid)
		return -EPERM;
	/* and there is no way back */
	if (uid != 0 && setresuid(0, 0, 0) == 0)
		return -EPERM;
	return 0;
}

static void pass_notify_fd(int status_fd, int go_fd, int notify_fd)
{
	char c;

	/* the parent copies it with pidfd_getfd: sending it over a socket
	 * would need sendmsg, which the filter now holds */
	child_report(status_fd, KG_STAGE_NOTIFY_FD, notify_fd);
	if (read_byte(go_fd, &c) < 0 || c != 'a')
		_exit(127);
	close(notify_fd);
}

/* Degraded mode has no BPF LSM to refuse writes to cgroup.procs outside the
 * job, so a root agent could move itself out of the governed cgroup.  Give
 * the job a mount namespace of its own in which the cgroup2 mount is
 * read-only; seccomp then refuses mount/umount, so it stays that way.  (The
 * cost: the job cannot create child cgroups in degraded mode.) */
static int protect_cgroupfs(void)
{
	const char *cg2 = kg_cgroup2_mount();
	int ret;

	if (!cg2)
		return -ENOENT;
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	ret = kg_mntns_make_slave();
	if (ret < 0)
		return ret;
	if (mount(cg2, cg2, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, cg2, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
		  MS_NOEXEC, NULL) < 0)
		return -errno;
	return 0;
}

/* A session of its own: the job cannot make itself the foreground process
 * group of the user's terminal (tcsetpgrp wants the caller's controlling
 * terminal), and with a pty that pty is its controlling terminal and
 * /dev/tty. */
static int own_session(const struct kg_launch_opts *o)
{
	int i;

	if (setsid() < 0)
		return -errno;
	if (!o->have_tty)
		return 0;
	if (ioctl(o->tty_fd, TIOCSCTTY, 0) < 0)
		return -errno;
	for (i = 0; i < 3; i++)
		if (o->tty_replace[i] && dup2(o->tty_fd, i) < 0)
			return -errno;
	return 0;
}

/* Degraded mode: a uid-0 process writes kernel.core_pattern, kernel.modprobe,
 * kernel.hotplug, binfmt_misc's register, /sys/kernel/uevent_helper or
 * sysrq-trigger with no capability at all (procfs and sysfs check the file
 * mode), and the kernel then runs a program as root outside every cgroup.
 * In the job's namespace they are read-only (seccomp keeps it that way);
 * full mode refuses the same writes in the BPF LSM (protect.bpf.c). */
static int protect_system_settings(void)
{
	size_t i;
	int ret;

	for (i = 0; kg_caps_ro_paths[i]; i++) {
		ret = kg_mnt_read_only(kg_caps_ro_paths[i]);
		if (ret < 0 && ret != -ENOENT)
			return ret;
	}
	return 0;
}

/* What the child needs that takes memory, made before the fork: the child
 * of a controller with threads (the audit syncer, the API) must not
 * allocate (another thread may have held the allocator's lock at fork). */
struct child_prep {
	struct kg_seccomp_prog seccomp;
	char **envp;		/* with $HOME set, when o->home; else NULL */
	char *home_var;
};

static void child_prep_free(struct child_prep *cp)
{
	kg_seccomp_prog_free(&cp->seccomp);
	free(cp->envp);
	free(cp->home_var);
}

/* the environment given, or ours, with $HOME = the run-as user's home
 * (what '~' in the policy meant) */
static int prep_env(const struct kg_launch_opts *o, struct child_prep *cp)
{
	char *const *src = o->envp ? o->envp : environ;
	size_t n = 0, i, k = 0;

	if (!o->home)
		return 0;
	if (asprintf(&cp->home_var, "HOME=%s", o->home) < 0) {
		cp->home_var = NULL;
		return -ENOMEM;
	}
	while (src && src[n])
		n++;
	cp->envp = calloc(n + 2, sizeof(*cp->envp));
	if (!cp->envp)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (strncmp(src[i], "HOME=", 5))
			cp->envp[k++] = src[i];
	cp->envp[k++] = cp->home_var;
	cp->envp[k] = NULL;
	return 0;
}

static int child_prep(const struct kg_launch_opts *o, struct child_prep *cp)
{
	int ret;

	memset(cp, 0, sizeof(*cp));
	cp->seccomp.notify_filter = -1;
	if (!o->no_seccomp) {
		struct kg_seccomp_opts so = o->seccomp;

		so.degraded = so.degraded || o->degraded;
		ret = kg_seccomp_compile(o->doc, &so, &cp->seccomp);
		if (ret < 0)
			return ret;
	}
	ret = prep_env(o, cp);
	if (ret < 0)
		child_prep_free(cp);
	return ret;
}

static __attribute__((noreturn)) void child_main(const struct kg_launch_opts *o,
						  const struct child_prep *cp, int go_fd,
						  int status_fd, bool born_in_cgroup)
{
	int ret, notify_fd = -1;
	char c;

	if (!born_in_cgroup && (ret = kg_cgroup_add_pid(o->cg, getpid())) < 0)
		child_fail(status_fd, KG_STAGE_CGROUP, ret);
	if ((ret = verify_in_cgroup(o->cg)) < 0)
		child_fail(status_fd, KG_STAGE_CGROUP, ret);
	if (read_byte(go_fd, &c) < 0 || c != 'g')
		_exit(127);	/* aborted: nothing ran */
	if ((ret = own_session(o)) < 0)
		child_fail(status_fd, KG_STAGE_SESSION, ret);
	if ((ret = close_inherited(go_fd, status_fd)) < 0)
		child_fail(status_fd, KG_STAGE_FDS, ret);
	if ((ret = reset_signals()) < 0)
		child_fail(status_fd, KG_STAGE_SIGNALS, ret);
	if (o->limits && (ret = kg_limits_apply_rlimits(o->limits)) < 0)
		child_fail(status_fd, KG_STAGE_RLIMITS, ret);
	if (o->degraded && (ret = protect_cgroupfs()) < 0)
		child_fail(status_fd, KG_STAGE_CGROUP, ret);
	if (o->degraded && (ret = protect_system_settings()) < 0)
		child_fail(status_fd, KG_STAGE_SYSTEM_RO, ret);
	/* in that namespace, the paths the policy denies are hidden or
	 * read-only (seccomp keeps the job from changing them) ... */
	if (o->degraded && o->landlock && (ret = kg_mnt_apply(&o->landlock->mounts)) < 0)
		child_fail(status_fd, KG_STAGE_FILE_MOUNTS, ret);
	/* ... and kgate's own directories show nothing */
	if (o->degraded && o->hide && (ret = kg_selfprotect_hide(o->hide)) < 0)
		child_fail(status_fd, KG_STAGE_HIDE, ret);
	/* daemons that act for their clients and files that something outside
	 * the job runs or obeys: covered or read-only (full mode: outside.bpf.c) */
	if (o->degraded && (ret = kg_outside_hide(o->outside_grant)) < 0)
		child_fail(status_fd, KG_STAGE_OUTSIDE, ret);
	/* a working directory entered before the mounts would still be the
	 * uncovered one: enter it again through them */
	if (o->degraded && (ret = kg_mnt_reenter_cwd()) < 0)
		child_fail(status_fd, KG_STAGE_CWD, ret);
	/* degraded mode: what only reaches outside the job goes, for good
	 * (CAP_SETUID and CAP_SETGID stay for drop_privileges and for the job
	 * itself).  Full mode leaves the sets alone: lsm/capable refuses the
	 * same capabilities and records each refusal (a capability missing
	 * from the bounding set would be refused before any LSM saw it). */
	if (o->degraded && (ret = kg_caps_apply(kg_caps_kept() | o->caps_grant)) < 0)
		child_fail(status_fd, KG_STAGE_CAPS, ret);
	/* best effort: without it the job's seccomp refusals are not recorded
	 * (kgate run sees no session of the job's own and says so) */
	if (o->audit_session)
		kg_kaudit_new_session(o->have_as ? o->as_uid : getuid());
	if (o->have_as && (ret = drop_privileges(o->as_uid, o->as_gid)) < 0)
		child_fail(status_fd, KG_STAGE_CREDS, ret);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(status_fd, KG_STAGE_NO_NEW_PRIVS, errno);
	if (o->landlock && (ret = kg_landlock_apply(o->landlock)) < 0)
		child_fail(status_fd, KG_STAGE_LANDLOCK, ret);
	if (!o->no_seccomp) {
		if ((ret = kg_seccomp_install(&cp->seccomp, &notify_fd)) < 0)
			child_fail(status_fd, KG_STAGE_SECCOMP, ret);
		if (notify_fd >= 0)
			pass_notify_fd(status_fd, go_fd, notify_fd);
	}
	if (cp->envp)
		execvpe(o->argv[0], o->argv, cp->envp);
	else if (o->envp)
		execvpe(o->argv[0], o->argv, o->envp);
	else
		execvp(o->argv[0], o->argv);
	child_fail(status_fd, KG_STAGE_EXEC, errno);
}

/* ---- the parent ------------------------------------------------------------------ */

/* clone3 straight into the cgroup; -ENOSYS/-EINVAL etc. mean "use fork". */
static pid_t clone_into_cgroup(const struct kg_cgroup *cg, int *pidfd)
{
	struct clone_args args;
	long ret;

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP | CLONE_PIDFD;
	args.pidfd = (uint64_t)(uintptr_t)pidfd;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)cg->fd;
	ret = syscall(SYS_clone3, &args, sizeof(args));
	return ret < 0 ? -errno : (pid_t)ret;
}

static void jp_init(struct kg_job_proc *jp, const struct kg_cgroup *cg)
{
	memset(jp, 0, sizeof(*jp));
	jp->pid = -1;
	jp->pidfd = jp->go_fd = jp->status_fd = jp->notify_fd = -1;
	jp->cg = cg;
}

int kg_launch_start(const struct kg_launch_opts *o, struct kg_job_proc *jp)
{
	int go[2], st[2], ret;
	pid_t pid = -ENOSYS;
	struct child_prep cp;

	jp_init(jp, o->cg);
	if (!o->argv || !o->argv[0] || !o->cg || !o->cg->path[0])
		return -EINVAL;
	ret = child_prep(o, &cp);
	if (ret < 0)
		return ret;
	if (pipe2(go, O_CLOEXEC) < 0) {
		ret = -errno;
		child_prep_free(&cp);
		return ret;
	}
	if (pipe2(st, O_CLOEXEC) < 0) {
		ret = -errno;
		close(go[0]);
		close(go[1]);
		child_prep_free(&cp);
		return ret;
	}
	if (o->before_fork)
		o->before_fork(o->before_fork_ctx);
	fflush(NULL);	/* no duplicated stdio buffers in the child */
	if (o->cg->fd >= 0)
		pid = clone_into_cgroup(o->cg, &jp->pidfd);
	if (pid < 0) {
		kg_debug("launch: clone3(CLONE_INTO_CGROUP): %s, falling back to fork",
			 strerror((int)-pid));
		jp->pidfd = -1;
		pid = fork();
		if (pid < 0)
			pid = -errno;
	} else {
		jp->into_cgroup_at_birth = true;
	}
	if (pid == 0) {
		close(go[1]);
		close(st[0]);
		child_main(o, &cp, go[0], st[1], jp->into_cgroup_at_birth);
	}
	child_prep_free(&cp);
	close(go[0]);
	close(st[1]);
	if (pid < 0) {
		close(go[1]);
		close(st[0]);
		return kg_err("launch: fork: %s", strerror((int)-pid)), (int)pid;
	}
	jp->pid = pid;
	jp->go_fd = go[1];
	jp->status_fd = st[0];
	if (jp->pidfd < 0)
		jp->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

static int take_notify_fd(struct kg_job_proc *jp, int child_fd)
{
	if (jp->pidfd < 0)
		return -ENOSYS;
	jp->notify_fd = (int)syscall(SYS_pidfd_getfd, jp->pidfd, child_fd, 0);
	if (jp->notify_fd < 0)
		return -errno;
	return write(jp->go_fd, "a", 1) == 1 ? 0 : -errno;
}

int kg_launch_go(struct kg_job_proc *jp)
{
	struct child_msg m;
	ssize_t n;
	int ret;

	if (jp->pid <= 0 || jp->released)
		return -EINVAL;
	jp->released = true;
	if (write(jp->go_fd, "g", 1) != 1)
		return -errno;
	for (;;) {
		n = read(jp->status_fd, &m, sizeof(m));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return 0;	/* exec closed the pipe: the command runs */
		if (n != (ssize_t)sizeof(m))
			return -EIO;
		if (m.stage == KG_STAGE_NOTIFY_FD) {
			ret = take_notify_fd(jp, m.err);
			if (ret < 0) {
				kg_launch_abort(jp);
				return kg_err("launch: cannot take the seccomp listener: %s",
					      strerror(-ret)), ret;
			}
			continue;
		}
		jp->failed_stage = (enum kg_launch_stage)m.stage;
		jp->failed_errno = m.err;
		return kg_err("launch: %s: %s: %s", jp->failed_stage == KG_STAGE_EXEC ?
			      "cannot run the command" : "setup failed",
			      kg_launch_stage_name(jp->failed_stage), strerror(m.err)), -m.err;
	}
}

static int reap(struct kg_job_proc *jp, int flags)
{
	pid_t r;

	if (jp->reaped)
		return 1;
	do
		r = waitpid(jp->pid, &jp->wait_status, flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == jp->pid)
		jp->reaped = true;
	return jp->reaped;
}

void kg_launch_abort(struct kg_job_proc *jp)
{
	if (jp->pid <= 0 || jp->reaped)
		return;
	kill(jp->pid, SIGKILL);
	(void)reap(jp, 0);
}

static uint64_t now_ms(void)
{
	return kg_now_mono_ns() / 1000000u;
}

static void fill_exit(const struct kg_job_proc *jp, struct kg_exit_info *out)
{
	int st = jp->wait_status;

	if (jp->failed_stage != KG_STAGE_NONE) {
		out->launch_failed = true;
		out->stage = jp->failed_stage;
		out->launch_errno = jp->failed_errno;
	}
	if (WIFEXITED(st)) {
		out->exited = true;
		out->code = WEXITSTATUS(st);
		out->exit_code = out->launch_failed ? 127 : out->code;
	} else if (WIFSIGNALED(st)) {
		out->signal = WTERMSIG(st);
		out->exit_code = 128 + out->signal;
	}
}

int kg_launch_wait(struct kg_job_proc *jp, uint64_t max_runtime_sec, struct kg_exit_info *out)
{
	uint64_t deadline = max_runtime_sec ? now_ms() + max_runtime_sec * 1000 : 0;
	struct pollfd pfd = { .fd = jp->pidfd, .events = POLLIN };
	int ret;

	memset(out, 0, sizeof(*out));
	if (jp->pid <= 0)
		return -EINVAL;
	while (!jp->reaped) {
		int timeout = -1;

		if (deadline) {
			uint64_t now = now_ms();

			timeout = now >= deadline ? 0 : (int)(deadline - now > 60000 ? 60000
										: deadline - now);
			if (now >= deadline && !out->timed_out) {
				out->timed_out = true;
				kg_info("launch: max runtime %llus reached, killing the job",
					(unsigned long long)max_runtime_sec);
				ret = kg_cgroup_kill(jp->cg);
				if (ret < 0)
					kg_warn("launch: cgroup kill: %s", strerror(-ret));
				kill(jp->pid, SIGKILL);
				timeout = -1;
			}
		}
		if (jp->pidfd >= 0) {
			ret = poll(&pfd, 1, timeout);
			if (ret < 0 && errno != EINTR)
				return -errno;
			if (ret <= 0)
				continue;
			ret = reap(jp, 0);
		} else {
			/* no pidfd (very old kernel): poll waitpid */
			struct timespec ts = { 0, 20 * 1000 * 1000 };

			ret = reap(jp, WNOHANG);
			if (ret == 0)
				nanosleep(&ts, NULL);
		}
		if (ret < 0)
			return ret;
	}
	fill_exit(jp, out);
	return 0;
}

void kg_launch_release(struct kg_job_proc *jp)
{
	int *fds[] = { &jp->pidfd, &jp->go_fd, &jp->status_fd };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

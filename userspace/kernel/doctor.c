// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * doctor.c - probe what this kernel can enforce, by trying each mechanism.
 *
 * Reading CONFIG_* or the LSM list is not enough: a kernel can list "bpf"
 * among its LSMs and still refuse LSM programs (the 6.18 development hosts
 * do, with EPERM), and a kernel can load and attach an LSM program whose hook
 * never runs because "bpf" is not in lsm=.  So the LSM probe goes all the
 * way: load, attach, make the program deny an open of a file created here,
 * and see the event arrive through the ring buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <jansson.h>

#include "job/cgroup.h"
#include "cli/cmds.h"
#include "common.h"
#include "kernel/doctor.h"
#include "kernel/outside.h"
#include "probe.skel.h"

#define DOCTOR_RINGBUF_WAIT_MS	200

static const char *errno_name(int e)
{
	const char *n = e ? strerrorname_np(e) : NULL;

	return n ? n : "unknown error";
}

/* libbpf explains its failures on stderr; doctor reports them itself. */
static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!kg_env.verbose || level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- kernel, BTF -------------------------------------------------------- */

static void probe_kernel(struct kg_doctor_report *r)
{
	struct utsname u;

	if (uname(&u) == 0) {
		kg_strlcpy(r->kernel_release, u.release, sizeof(r->kernel_release));
		kg_strlcpy(r->kernel_version, u.version, sizeof(r->kernel_version));
	}
	r->btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
}

/* ---- the active LSM list ------------------------------------------------ */

static void probe_lsm_list(struct kg_doctor_report *r)
{
	struct kg_lsm_sources src = { .mount_private = true };

	r->bpf_in_lsm_list = kg_bpf_lsm_listed(&src, r->lsm_list, sizeof(r->lsm_list), NULL, 0);
}

/* ---- BPF LSM: load, attach, deny, report --------------------------------- */

struct lsm_event_ctx {
	uint32_t pid;
	uint64_t ino;
	bool seen;
};

static int on_probe_event(void *ctx, void *data, size_t len)
{
	struct lsm_event_ctx *c = ctx;
	const struct kg_probe_event *e = data;

	if (len >= sizeof(*e) && e->pid == c->pid && e->ino == c->ino)
		c->seen = true;
	return 0;
}

static int own_cgroup_id(uint64_t *id)
{
	const char *mnt = kg_cgroup2_mount();
	char rel[4096], path[8192];
	int err;

	if (!mnt)
		return -ENOENT;
	err = kg_cgroup_of_pid(0, rel, sizeof(rel));
	if (err)
		return err;
	if (kg_snprintf(path, sizeof(path), "%s%s", mnt, rel))
		return -ENAMETOOLONG;
	return kg_cgroup_id_of_path(path, id);
}

/* With the program attached, open a file of our own that the program was
 * told to deny for our cgroup: EPERM plus a matching event is the proof. */
static void lsm_try_deny(struct probe_bpf *skel, struct kg_doctor_report *r)
{
	char dir[] = "/tmp/kgate-doctor.XXXXXX", file[64];
	struct lsm_event_ctx ev = { .pid = (uint32_t)getpid() };
	struct ring_buffer *rb = NULL;
	struct bpf_link *link = NULL;
	uint64_t cgid = 0;
	struct stat st;
	int fd, err, open_errno = 0;

	if (own_cgroup_id(&cgid)) {
		snprintf(r->lsm_detail, sizeof(r->lsm_detail), "no cgroup2: cannot test a denial");
		return;
	}
	if (!mkdtemp(dir)) {
		snprintf(r->lsm_detail, sizeof(r->lsm_detail), "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(file, sizeof(file), "%s/probe", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(r->lsm_detail, sizeof(r->lsm_detail), "probe file: %s", strerror(errno));
		goto out;
	}
	close(fd);
	ev.ino = st.st_ino;
	skel->bss->target_dev = kg_kernel_dev(st.st_dev);
	skel->bss->target_ino = st.st_ino;
	skel->bss->target_cgid = cgid;

	link = bpf_program__attach_lsm(skel->progs.probe_file_open);
	if (!link) {
		r->lsm_attach_errno = errno;
		goto out;
	}
	r->lsm_prog_attaches = true;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	else
		open_errno = errno;
	bpf_link__destroy(link);
	skel->bss->target_cgid = 0;

	r->lsm_denies = fd < 0 && open_errno == EPERM;
	rb = ring_buffer__new(bpf_map__fd(skel->maps.probe_events), on_probe_event, &ev, NULL);
	if (rb) {
		err = ring_buffer__poll(rb, r->lsm_denies ? DOCTOR_RINGBUF_WAIT_MS : 0);
		r->lsm_event_seen = err >= 0 && ev.seen;
		ring_buffer__free(rb);
	}
	if (!r->lsm_denies)
		snprintf(r->lsm_detail, sizeof(r->lsm_detail),
			 "loads and attaches, but its hook never ran (the open %s)",
			 fd >= 0 ? "succeeded" : errno_name(open_errno));
	else if (!r->lsm_event_seen)
		snprintf(r->lsm_detail, sizeof(r->lsm_detail), "denied, but no ring buffer event arrived");
	else
		snprintf(r->lsm_detail, sizeof(r->lsm_detail), "denied an open and reported it");
out:
	unlink(file);
	rmdir(dir);
}

static void probe_lsm_prog(struct kg_doctor_report *r)
{
	struct probe_bpf *skel = probe_bpf__open();
	int err;

	if (!skel) {
		r->lsm_load_errno = errno;
		return;
	}
	bpf_program__set_autoload(skel->progs.probe_connect4, false);
	err = probe_bpf__load(skel);
	if (err) {
		r->lsm_load_errno = err < 0 ? -err : EINVAL;
	} else {
		r->lsm_prog_loads = true;
		lsm_try_deny(skel, r);
	}
	probe_bpf__destroy(skel);
}

/* ---- cgroup2, cgroup-BPF -------------------------------------------------- */

/* A uniquely named child cgroup: under the mount root, or (delegated setups)
 * under our own cgroup. */
static int make_probe_cgroup(char *path, size_t len)
{
	const char *mnt = kg_cgroup2_mount();
	char rel[4096];

	if (!mnt)
		return -ENOENT;
	if (kg_snprintf(path, len, "%s/kgate-doctor.XXXXXX", mnt) == 0 && mkdtemp(path))
		return 0;
	if (kg_cgroup_of_pid(0, rel, sizeof(rel)) == 0 &&
	    kg_snprintf(path, len, "%s%s/kgate-doctor.XXXXXX", mnt, strcmp(rel, "/") ? rel : "") == 0 &&
	    mkdtemp(path))
		return 0;
	return -errno;
}

static void probe_cgroup_bpf(struct kg_doctor_report *r)
{
	struct probe_bpf *skel = NULL;
	struct bpf_link *link;
	char path[4200];
	int fd = -1, err;

	err = make_probe_cgroup(path, sizeof(path));
	if (err) {
		r->cgroup_bpf_errno = -err;
		snprintf(r->cgroup_bpf_detail, sizeof(r->cgroup_bpf_detail),
			 "cannot create a probe cgroup: %s", strerror(-err));
		return;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r->cgroup_bpf_errno = errno;
		goto out;
	}
	skel = probe_bpf__open();
	if (!skel) {
		r->cgroup_bpf_errno = errno;
		goto out;
	}
	bpf_program__set_autoload(skel->progs.probe_file_open, false);
	err = probe_bpf__load(skel);
	if (err) {
		r->cgroup_bpf_errno = err < 0 ? -err : EINVAL;
		snprintf(r->cgroup_bpf_detail, sizeof(r->cgroup_bpf_detail),
			 "connect4 program does not load: %s", errno_name(r->cgroup_bpf_errno));
		goto out;
	}
	link = bpf_program__attach_cgroup(skel->progs.probe_connect4, fd);
	if (!link) {
		r->cgroup_bpf_errno = errno;
		snprintf(r->cgroup_bpf_detail, sizeof(r->cgroup_bpf_detail),
			 "connect4 attach refused: %s", errno_name(errno));
		goto out;
	}
	bpf_link__destroy(link);
	r->cgroup_bpf = true;
	snprintf(r->cgroup_bpf_detail, sizeof(r->cgroup_bpf_detail),
		 "connect4 attached to a probe cgroup and detached");
out:
	probe_bpf__destroy(skel);
	if (fd >= 0)
		close(fd);
	if (rmdir(path) < 0)
		kg_warn("doctor: cannot remove probe cgroup %s: %s", path, strerror(errno));
}

/* ---- bpffs, Landlock, seccomp, fanotify ---------------------------------- */

static void probe_bpffs(struct kg_doctor_report *r)
{
	const char *pin = kg_pin_dir();
	struct statfs sf;
	char *slash;

	/* the pin directory itself if it exists, else the directory it goes in */
	kg_strlcpy(r->bpffs_path, pin, sizeof(r->bpffs_path));
	if (access(r->bpffs_path, F_OK) < 0) {
		slash = strrchr(r->bpffs_path, '/');
		if (slash && slash != r->bpffs_path)
			*slash = '\0';
	}
	r->bpffs = statfs(r->bpffs_path, &sf) == 0 && (unsigned long)sf.f_type == BPF_FS_MAGIC;
}

static void probe_landlock(struct kg_doctor_report *r)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	r->landlock_abi = abi > 0 ? (int)abi : 0;
	r->landlock_errno = abi > 0 ? 0 : errno;
}

/* In a child, install an allow-everything filter, then one with a user
 * notification listener; report the errno of each (0 = worked). */
static void seccomp_child(int wfd)
{
	struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_fprog prog = { .len = 1, .filter = allow };
	int res[2] = { 0, 0 };
	long fd;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		res[0] = res[1] = errno;
	else if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		res[0] = res[1] = errno;
	else if ((fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			       SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog)) < 0)
		res[1] = errno;
	if (write(wfd, res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(1);
	_exit(0);
}

static void probe_seccomp(struct kg_doctor_report *r)
{
	uint32_t action = SECCOMP_RET_USER_NOTIF;
	int pfd[2], res[2] = { ENOSYS, ENOSYS }, status;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		r->seccomp_errno = errno;
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		seccomp_child(pfd[1]);
	}
	close(pfd[1]);
	if (pid > 0) {
		if (read(pfd[0], res, sizeof(res)) != (ssize_t)sizeof(res))
			res[0] = res[1] = ECHILD;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	} else {
		res[0] = res[1] = errno;
	}
	close(pfd[0]);
	r->seccomp_filter = res[0] == 0;
	/* the listener worked, and the kernel also says the action exists */
	r->seccomp_user_notif = res[1] == 0 &&
		syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
	r->seccomp_errno = res[0] ? res[0] : res[1];
}

static void probe_fanotify(struct kg_doctor_report *r)
{
	char dir[] = "/tmp/kgate-doctor-fan.XXXXXX";
	int fd;

	fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r->fanotify_errno = errno;
		return;
	}
	if (!mkdtemp(dir)) {
		r->fanotify_errno = errno;
		close(fd);
		return;
	}
	/* a permission mark proves CONFIG_FANOTIFY_ACCESS_PERMISSIONS */
	if (fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, dir) == 0)
		r->fanotify_perm = true;
	else
		r->fanotify_errno = errno;
	close(fd);
	rmdir(dir);
}

/* ---- conclusions: the enforcement matrix ------------------------------- */

static void row(struct kg_doctor_report *r, enum kg_rule_type t, enum kg_enf_level level,
		const char *mechanism, const char *missing)
{
	r->matrix[t].level = level;
	kg_strlcpy(r->matrix[t].mechanism, mechanism, sizeof(r->matrix[t].mechanism));
	kg_strlcpy(r->matrix[t].missing, missing, sizeof(r->matrix[t].missing));
}

/* What kgate holds today: network calls, through seccomp user notification.
 * File, exec and AF_UNIX approvals are refuse-then-retry (docs/approvals.md);
 * fanotify is probed because it is the way to hold those, not yet used. */
static void matrix_hold(struct kg_doctor_report *r)
{
	if (!r->seccomp_user_notif) {
		row(r, KG_RT_ESCALATION_HOLD, KG_ENF_PARTIAL, "refused instead of held",
		    "no seccomp user notification: require_approval actions are denied, not held");
		return;
	}
	row(r, KG_RT_ESCALATION_HOLD, KG_ENF_PARTIAL,
	    "seccomp user notification (connect, sendto, sendmsg, sendmmsg)",
	    "file, exec and AF_UNIX approvals are refused, then retried after approval");
}

static void matrix_common(struct kg_doctor_report *r)
{
	if (r->cgroup_bpf)
		row(r, KG_RT_NET, KG_ENF_FULL, "cgroup-BPF (connect4/6, sendmsg4/6, bind4/6)",
		    r->full ? "" : "listen() without bind() and per-message source routes are "
		    "decided on their packets (cgroup_skb), not at the call");
	else if (r->landlock_abi >= 4)
		row(r, KG_RT_NET, KG_ENF_PARTIAL, "Landlock (TCP bind/connect ports)",
		    "no address/CIDR rules, no UDP");
	else
		row(r, KG_RT_NET, KG_ENF_NONE, "none", "network rules are not enforced");

	/* the note is not a gap in enforcement: which refusals reach the trail */
	if (r->seccomp_filter)
		row(r, KG_RT_SYSCALL, KG_ENF_FULL, "seccomp (filter checks the architecture)",
		    r->full ? "refusals are not recorded one by one in full mode"
			    : "refusals recorded one by one from the kernel audit log (kgate run "
			      "turns audit on; says at start when it cannot)");
	else
		row(r, KG_RT_SYSCALL, KG_ENF_NONE, "none", "syscall rules are not enforced");
	matrix_hold(r);
}

static void grow(struct kg_doctor_report *r, enum kg_rule_type t, enum kg_enf_level level,
		 const char *mechanism, const char *missing)
{
	r->govern[t].level = level;
	kg_strlcpy(r->govern[t].mechanism, mechanism, sizeof(r->govern[t].mechanism));
	kg_strlcpy(r->govern[t].missing, missing, sizeof(r->govern[t].missing));
}

/* A cgroup governed in place (job/govern.h): the BPF LSM and cgroup-BPF
 * programs reach processes kgate did not start; seccomp, Landlock,
 * no_new_privs and a mount namespace must be applied by a process to
 * itself, so they are not. */
static void matrix_govern(struct kg_doctor_report *r)
{
	size_t t;

	for (t = 0; t < KG_RT_MAX; t++)
		r->govern[t] = r->matrix[t];
	grow(r, KG_RT_SYSCALL, KG_ENF_NONE, "none",
	     "syscall rules need a seccomp filter, which only a process kgate starts can be given");
	grow(r, KG_RT_ESCALATION_HOLD, KG_ENF_PARTIAL, "refused instead of held",
	     "holding needs seccomp user notification: approval lets a later attempt through");
	r->govern_needs_force = !r->full;
	if (r->full) {
		grow(r, KG_RT_SELF_PROTECTION, KG_ENF_PARTIAL,
		     "BPF LSM (bpf, ptrace, task_kill, mounts, userns, cgroupfs incl. descriptors "
		     "held from before, clone3 into a cgroup, kgate's pins/state/trail)",
		     "no seccomp baseline (reboot, keyctl, perf_event_open... not refused), no "
		     "no_new_privs");
		grow(r, KG_RT_OUTSIDE, KG_ENF_PARTIAL,
		     "BPF LSM (capable, kernel settings incl. descriptors held from before, "
		     "daemons' sockets, system files, module autoload) + cgroup-BPF (block devices)",
		     "keyrings (request_key helpers) not refused (no seccomp); system files "
		     "through descriptors opened before kgate govern");
		return;
	}
	grow(r, KG_RT_FILE, KG_ENF_NONE, "none", "needs BPF LSM (Landlock must be applied by "
	     "the process itself)");
	grow(r, KG_RT_EXEC, KG_ENF_NONE, "none", "needs BPF LSM");
	grow(r, KG_RT_UNIX, KG_ENF_NONE, "none", "needs BPF LSM");
	grow(r, KG_RT_SOCKET, r->cgroup_bpf ? KG_ENF_PARTIAL : KG_ENF_NONE,
	     r->cgroup_bpf ? "cgroup-BPF (sock_create: inet, raw)" : "none",
	     "other families need BPF LSM or seccomp");
	grow(r, KG_RT_SELF_PROTECTION, KG_ENF_NONE, "none",
	     "nothing keeps the processes in their cgroup or away from kgate's state: "
	     "kgate govern refuses unless --force");
	grow(r, KG_RT_OUTSIDE, KG_ENF_PARTIAL, "cgroup-BPF (block devices)",
	     "running processes keep their capabilities, can write kernel settings "
	     "(core_pattern...) and system files, reach daemons: kgate govern refuses unless "
	     "--force");
}

static void matrix_full(struct kg_doctor_report *r)
{
	row(r, KG_RT_FILE, KG_ENF_FULL, "BPF LSM (file_open, path_*/inode_* hooks, by inode identity)", "");
	row(r, KG_RT_EXEC, KG_ENF_FULL, "BPF LSM (bprm_check_security, mmap_file)", "");
	row(r, KG_RT_UNIX, KG_ENF_FULL, "BPF LSM (unix_stream_connect, unix_may_send)", "");
	row(r, KG_RT_SOCKET, KG_ENF_FULL, r->cgroup_bpf ? "BPF LSM socket_create + cgroup-BPF sock_create"
					   : "BPF LSM socket_create", "");
	row(r, KG_RT_SELF_PROTECTION, KG_ENF_FULL,
	    "BPF LSM (bpf, ptrace, task_kill, mounts, userns, cgroupfs, kgate's pins/state/trail) "
	    "+ seccomp", "");
	row(r, KG_RT_OUTSIDE, KG_ENF_PARTIAL,
	    "BPF LSM (capable; /proc/sys, /sys... writes; /proc/PID files of processes "
	    "outside the job; daemons' sockets, root's abstract sockets outside the job; files "
	    "run outside the job; module autoload) + cgroup-BPF (block devices) + seccomp",
	    "hard links to system files made before the job; block devices unrecorded");
}

static void matrix_degraded(struct kg_doctor_report *r)
{
	char mech[160];

	if (r->landlock_abi >= 2) {
		snprintf(mech, sizeof(mech), "the job's mount namespace (read denied: hidden; write/"
			 "create denied: read-only) + Landlock ABI %d (the rest)", r->landlock_abi);
		row(r, KG_RT_FILE, KG_ENF_PARTIAL, mech,
		    "by name (hard links made before the job not covered, said per rule by doctor "
		    "--policy; bind mounts of denied paths covered too); read-only "
		    "refuses all changes; paths missing at launch not enforced; refusals by a "
		    "mount not recorded; Landlock's recorded one by one from the kernel audit log "
		    "only with Landlock ABI 7 (kgate run turns audit on if it is off)");
		row(r, KG_RT_EXEC, KG_ENF_PARTIAL, "Landlock (execute right on allowed paths) + "
		    "seccomp (executable memfds, fexecve)",
		    "ld.so FILE and mmap(PROT_EXEC) of a denied file are not covered");
	} else if (r->landlock_abi >= 1) {
		snprintf(mech, sizeof(mech), "Landlock ABI %d (deny rules expressed as allow-lists)",
			 r->landlock_abi);
		row(r, KG_RT_FILE, KG_ENF_PARTIAL, mech,
		    "no per-inode deny; creation next to a denied path refused too; audit-only "
		    "rules not reported; opens only: chmod/chown/utimes/xattrs and earlier "
		    "descriptors not governed");
		row(r, KG_RT_EXEC, KG_ENF_PARTIAL, "Landlock (execute right on allowed paths)",
		    "mmap(PROT_EXEC) of a denied file is not covered");
	} else {
		row(r, KG_RT_FILE, KG_ENF_NONE, "none", "file rules are not enforced");
		row(r, KG_RT_EXEC, KG_ENF_NONE, "none", "exec rules are not enforced");
	}
	if (r->landlock_abi >= 6)
		row(r, KG_RT_UNIX, KG_ENF_PARTIAL, "Landlock scoping (abstract sockets outside the job)",
		    "AF_UNIX path rules are not enforced");
	else
		row(r, KG_RT_UNIX, KG_ENF_NONE, "none", "AF_UNIX path rules are not enforced");
	if (r->cgroup_bpf && r->seccomp_filter)
		row(r, KG_RT_SOCKET, KG_ENF_FULL,
		    "cgroup-BPF (sock_create: inet, raw) + seccomp (socket family allow-list)", "");
	else if (r->cgroup_bpf)
		row(r, KG_RT_SOCKET, KG_ENF_PARTIAL, "cgroup-BPF (sock_create)",
		    "families other than inet/inet6 are not checked");
	else if (r->seccomp_filter)
		row(r, KG_RT_SOCKET, KG_ENF_PARTIAL, "seccomp (socket family and type)", "");
	else
		row(r, KG_RT_SOCKET, KG_ENF_NONE, "none", "socket creation rules are not enforced");
	/* kgate's own state: hidden in the job's mount namespace; a Landlock
	 * domain keeps /proc/PID/root of the processes outside closed */
	if (r->seccomp_filter && r->landlock_abi >= 6)
		row(r, KG_RT_SELF_PROTECTION, KG_ENF_PARTIAL,
		    "seccomp (bpf, ptrace, mount, ns...), read-only cgroupfs, kgate's state hidden "
		    "(mount ns), Landlock domain + signal scoping",
		    "ptrace refused wholesale (not scoped to the job); no child cgroups; refusals "
		    "of kgate's state by the mount namespace are not recorded; seccomp and "
		    "Landlock refusals are (kernel audit log, Landlock ABI 7)");
	else if (r->seccomp_filter && r->landlock_abi >= 2)
		row(r, KG_RT_SELF_PROTECTION, KG_ENF_PARTIAL,
		    "seccomp (bpf, ptrace, mount, ns...), read-only cgroupfs, kgate's state hidden "
		    "(mount ns), Landlock domain",
		    "ptrace refused wholesale; signals outside the job not refused (Landlock ABI 6); "
		    "refusals of kgate's state are not recorded");
	else if (r->seccomp_filter)
		row(r, KG_RT_SELF_PROTECTION, KG_ENF_PARTIAL,
		    "seccomp (bpf, ptrace, mount, ns...), read-only cgroupfs, kgate's state hidden "
		    "(mount ns)",
		    "no Landlock domain (ABI 0 or 1): a root job reaches kgate's state and "
		    "cgroupfs through /proc/PID/root; signals outside the job not refused");
	else
		row(r, KG_RT_SELF_PROTECTION, KG_ENF_NONE, "none", "self-protection is not enforced");
	row(r, KG_RT_OUTSIDE, r->seccomp_filter ? KG_ENF_PARTIAL : KG_ENF_NONE,
	    r->seccomp_filter ? "capability bounding set; /proc/sys, /sys read-only, daemons' "
	    "sockets covered, system files read-only (mount ns); seccomp; cgroup-BPF (block "
	    "devices)" : "none",
	    "refusals not recorded; sockets and files made after launch not covered (/etc: "
	    "only if a member there is granted); netlink module autoload not refused; /proc/PID "
	    "files of processes outside the job (oom_score_adj...) writable");
}

static void add_fix(struct kg_doctor_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_fix(struct kg_doctor_report *r, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(r->fix); i++) {
		if (r->fix[i][0])
			continue;
		va_start(ap, fmt);
		vsnprintf(r->fix[i], sizeof(r->fix[i]), fmt, ap);
		va_end(ap);
		return;
	}
}

static void suggest_fixes(struct kg_doctor_report *r)
{
	if (geteuid() != 0)
		add_fix(r, "run kgate doctor as root (or with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): "
			"unprivileged probes fail whatever the kernel supports");
	if (!r->lsm_denies) {
		if (r->bpf_in_lsm_list == KG_NO)
			add_fix(r, "add bpf to the lsm= boot parameter: lsm=%s,bpf (then reboot)",
				r->lsm_list);
		else if (!r->btf)
			add_fix(r, "use a kernel built with CONFIG_DEBUG_INFO_BTF=y and CONFIG_BPF_LSM=y");
		else if (!r->lsm_prog_loads && r->lsm_load_errno == EPERM)
			add_fix(r, "this kernel refuses BPF LSM programs (EPERM): check lockdown and "
				"that kgate has CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN");
		else if (!r->lsm_prog_loads)
			add_fix(r, "use a kernel built with CONFIG_BPF_LSM=y (load failed: %s)",
				errno_name(r->lsm_load_errno));
		else if (r->bpf_in_lsm_list == KG_UNKNOWN)
			add_fix(r, "mount securityfs (mount -t securityfs securityfs /sys/kernel/security) "
				"and make sure bpf is in its lsm list");
	}
	if (!r->cgroup2_mount[0])
		add_fix(r, "mount cgroup v2 (mount -t cgroup2 cgroup2 /sys/fs/cgroup) or boot with "
			"systemd.unified_cgroup_hierarchy=1");
	if (!r->bpffs)
		add_fix(r, "mount -t bpf bpf %s (pinned programs keep enforcing if the controller stops)",
			r->bpffs_path);
}

static void conclude(struct kg_doctor_report *r)
{
	r->degraded_possible = r->cgroup2_mount[0] && r->seccomp_filter;
	r->full = r->degraded_possible && r->cgroup_bpf && r->lsm_denies;
	if (r->full)
		matrix_full(r);
	else
		matrix_degraded(r);
	matrix_common(r);
	matrix_govern(r);
	suggest_fixes(r);
}

int kg_doctor_probe(struct kg_doctor_report *out)
{
	libbpf_print_fn_t old = libbpf_set_print(quiet_libbpf);
	const char *mnt;

	memset(out, 0, sizeof(*out));
	probe_kernel(out);
	probe_lsm_list(out);
	mnt = kg_cgroup2_mount();
	if (mnt)
		kg_strlcpy(out->cgroup2_mount, mnt, sizeof(out->cgroup2_mount));
	probe_lsm_prog(out);
	probe_cgroup_bpf(out);
	probe_bpffs(out);
	probe_landlock(out);
	probe_seccomp(out);
	probe_fanotify(out);
	conclude(out);
	libbpf_set_print(old);
	return 0;
}

int kg_doctor_exit_code(const struct kg_doctor_report *r)
{
	if (r->full)
		return KG_EXIT_OK;
	return r->degraded_possible ? KG_EXIT_DEGRADED : KG_EXIT_FAIL;
}

bool kg_bpf_lsm_available(void)
{
	static int cached = -1;
	struct kg_doctor_report *r;
	libbpf_print_fn_t old;

	if (cached >= 0)
		return cached;
	r = calloc(1, sizeof(*r));
	if (!r)
		return false;
	old = libbpf_set_print(quiet_libbpf);
	probe_lsm_prog(r);
	libbpf_set_print(old);
	cached = r->lsm_denies;
	free(r);
	return cached;
}

/* ---- output ------------------------------------------------------------- */

const char *kg_rule_type_name(enum kg_rule_type t)
{
	static const char *const names[KG_RT_MAX] = {
		[KG_RT_FILE] = "file",
		[KG_RT_EXEC] = "exec",
		[KG_RT_NET] = "net",
		[KG_RT_UNIX] = "unix",
		[KG_RT_SOCKET] = "socket",
		[KG_RT_SYSCALL] = "syscall",
		[KG_RT_SELF_PROTECTION] = "self-protection",
		[KG_RT_ESCALATION_HOLD] = "escalation-hold",
		[KG_RT_OUTSIDE] = "outside-the-job",
	};

	return (unsigned int)t < KG_RT_MAX ? names[t] : "?";
}

const char *kg_enf_level_name(enum kg_enf_level l)
{
	switch (l) {
	case KG_ENF_FULL: return "enforced";
	case KG_ENF_PARTIAL: return "partial";
	case KG_ENF_NONE: return "missing";
	}
	return "?";
}

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

static const char *mode_name(const struct kg_doctor_report *r)
{
	if (r->full)
		return "full";
	return r->degraded_possible ? "degraded" : "none";
}

static void print_lsm(const struct kg_doctor_report *r)
{
	if (r->bpf_in_lsm_list == KG_UNKNOWN)
		printf("  %-14s unknown (securityfs not readable)\n", "LSM list");
	else
		printf("  %-14s %s (bpf %s)\n", "LSM list", r->lsm_list,
		       r->bpf_in_lsm_list == KG_YES ? "listed" : "NOT listed");
	if (!r->lsm_prog_loads)
		printf("  %-14s not loadable: %s (%s)\n", "BPF LSM", errno_name(r->lsm_load_errno),
		       strerror(r->lsm_load_errno));
	else if (!r->lsm_prog_attaches)
		printf("  %-14s loads, attach refused: %s (%s)\n", "BPF LSM",
		       errno_name(r->lsm_attach_errno), strerror(r->lsm_attach_errno));
	else
		printf("  %-14s %s: %s\n", "BPF LSM", r->lsm_denies ? "active" : "not active",
		       r->lsm_detail);
}

void kg_doctor_print(const struct kg_doctor_report *r)
{
	size_t i;

	printf("kgate doctor\n\n");
	printf("  %-14s %s %s\n", "kernel", r->kernel_release, r->kernel_version);
	printf("  %-14s %s\n", "BTF", yes_no(r->btf));
	print_lsm(r);
	printf("  %-14s %s\n", "cgroup2", r->cgroup2_mount[0] ? r->cgroup2_mount : "not mounted");
	printf("  %-14s %s (%s)\n", "cgroup-BPF", yes_no(r->cgroup_bpf), r->cgroup_bpf_detail);
	printf("  %-14s %s at %s\n", "bpffs", r->bpffs ? "mounted" : "not mounted", r->bpffs_path);
	if (r->landlock_abi)
		printf("  %-14s ABI %d\n", "Landlock", r->landlock_abi);
	else
		printf("  %-14s unavailable: %s\n", "Landlock", errno_name(r->landlock_errno));
	printf("  %-14s filter %s, user notification %s\n", "seccomp",
	       yes_no(r->seccomp_filter), yes_no(r->seccomp_user_notif));
	printf("  %-14s permission events %s\n", "fanotify", yes_no(r->fanotify_perm));

	printf("\nenforcement: %s\n", mode_name(r));
	for (i = 0; i < KG_RT_MAX; i++) {
		printf("  %-16s %-9s %s\n", kg_rule_type_name(i), kg_enf_level_name(r->matrix[i].level),
		       r->matrix[i].mechanism);
		if (r->matrix[i].missing[0])
			printf("  %-16s %-9s missing: %s\n", "", "", r->matrix[i].missing);
	}
	printf("\noutside the job (escapes by proxy): what no job gets done for it unless its "
	       "policy's system_access names it\n");
	for (i = 0; i < kg_out_members_len; i++)
		printf("  %-16s %s\n  %-16s %s\n", kg_out_members[i].name, kg_out_members[i].what,
		       "", kg_out_how(&kg_out_members[i], r->full));
	printf("\nkgate govern (a cgroup kgate did not start)%s\n", r->govern_needs_force ?
	       ": refused unless --force in this mode" : "");
	for (i = 0; i < KG_RT_MAX; i++) {
		printf("  %-16s %-9s %s\n", kg_rule_type_name(i), kg_enf_level_name(r->govern[i].level),
		       r->govern[i].mechanism);
		if (r->govern[i].missing[0])
			printf("  %-16s %-9s missing: %s\n", "", "", r->govern[i].missing);
	}
	for (i = 0; i < ARRAY_SIZE(r->fix); i++)
		if (r->fix[i][0])
			printf("%s %s\n", i ? "    " : "\nfix:", r->fix[i]);
}

static json_t *errno_json(int e)
{
	return e ? json_string(errno_name(e)) : json_null();
}

static json_t *tristate_json(enum kg_tristate t)
{
	return t == KG_UNKNOWN ? json_null() : json_boolean(t == KG_YES);
}

static json_t *report_checks_json(const struct kg_doctor_report *r)
{
	return json_pack("{s:{s:s, s:s, s:b}, s:{s:o, s:s?, s:b, s:o, s:b, s:o, s:b, s:b, s:s},"
			 " s:{s:s?}, s:{s:b, s:o, s:s}, s:{s:b, s:s}, s:{s:i, s:o},"
			 " s:{s:b, s:b, s:o}, s:{s:b, s:o}}",
		"kernel", "release", r->kernel_release, "version", r->kernel_version, "btf", r->btf,
		"bpf_lsm", "in_lsm_list", tristate_json(r->bpf_in_lsm_list),
			"lsm_list", r->lsm_list[0] ? r->lsm_list : NULL,
			"loads", r->lsm_prog_loads, "load_errno", errno_json(r->lsm_load_errno),
			"attaches", r->lsm_prog_attaches, "attach_errno", errno_json(r->lsm_attach_errno),
			"denies", r->lsm_denies, "event_seen", r->lsm_event_seen,
			"detail", r->lsm_detail,
		"cgroup2", "mount", r->cgroup2_mount[0] ? r->cgroup2_mount : NULL,
		"cgroup_bpf", "attaches", r->cgroup_bpf, "errno", errno_json(r->cgroup_bpf_errno),
			"detail", r->cgroup_bpf_detail,
		"bpffs", "mounted", r->bpffs, "path", r->bpffs_path,
		"landlock", "abi", r->landlock_abi, "errno", errno_json(r->landlock_errno),
		"seccomp", "filter", r->seccomp_filter, "user_notif", r->seccomp_user_notif,
			"errno", errno_json(r->seccomp_errno),
		"fanotify", "permission_events", r->fanotify_perm, "errno", errno_json(r->fanotify_errno));
}

int kg_doctor_print_json(const struct kg_doctor_report *r)
{
	json_t *root, *matrix, *fixes, *govern;
	size_t i;
	int ret = -1;

	matrix = json_array();
	fixes = json_array();
	govern = json_array();
	root = json_pack("{s:s, s:i, s:o, s:o, s:{s:b, s:o}, s:o}", "enforcement", mode_name(r),
			 "exit_code", kg_doctor_exit_code(r), "checks", report_checks_json(r),
			 "matrix", matrix, "govern", "needs_force", r->govern_needs_force,
			 "matrix", govern, "fixes", fixes);
	if (!root)
		return kg_err("doctor: cannot build json");
	{	/* the members of the escapes by proxy, and how this mode closes each */
		json_t *out = json_array();

		for (i = 0; out && i < kg_out_members_len; i++)
			json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:b}",
				"member", kg_out_members[i].name, "what", kg_out_members[i].what,
				"how", kg_out_how(&kg_out_members[i], r->full),
				"sockets", kg_out_members[i].sockets));
		json_object_set_new(root, "outside", out);
	}
	for (i = 0; i < KG_RT_MAX; i++)
		if (json_array_append_new(matrix, json_pack("{s:s, s:s, s:s, s:s?}",
				"rule", kg_rule_type_name(i), "level", kg_enf_level_name(r->matrix[i].level),
				"mechanism", r->matrix[i].mechanism,
				"missing", r->matrix[i].missing[0] ? r->matrix[i].missing : NULL)))
			goto out;
	for (i = 0; i < KG_RT_MAX; i++)
		if (json_array_append_new(govern, json_pack("{s:s, s:s, s:s, s:s?}",
				"rule", kg_rule_type_name(i), "level", kg_enf_level_name(r->govern[i].level),
				"mechanism", r->govern[i].mechanism,
				"missing", r->govern[i].missing[0] ? r->govern[i].missing : NULL)))
			goto out;
	for (i = 0; i < ARRAY_SIZE(r->fix); i++)
		if (r->fix[i][0] && json_array_append_new(fixes, json_string(r->fix[i])))
			goto out;
	if (json_dumpf(root, stdout, JSON_INDENT(2)) == 0) {
		putchar('\n');
		ret = 0;
	}
out:
	json_decref(root);
	return ret ? kg_err("doctor: cannot print json") : 0;
}

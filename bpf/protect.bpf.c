// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * protect.bpf.c - self-protection: what no governed task may do, whatever
 * its policy says (full mode only).  Each refusal is a deny reported with
 * its own op:
 *
 *   bpf                    KG_OP_BPF     any bpf(2) call (so kgate's maps,
 *                                        programs and links cannot be found,
 *                                        read, changed or detached)
 *   ptrace_access_check    KG_OP_PTRACE  a target outside the caller's job;
 *                                        PTRACE_MODE_READ covers
 *                                        /proc/PID/mem, process_vm_readv
 *                                        and /proc/PID/root
 *   task_kill              KG_OP_SIGNAL  a target outside the job (the
 *                                        controller included; signal 0
 *                                        probes too)
 *   sb_mount, move_mount,  KG_OP_MOUNT
 *   sb_umount
 *   userns_create          KG_OP_USERNS  (clone/unshare CLONE_NEWUSER)
 *   kernel_module_request, KG_OP_MODULE  module autoload, init_module,
 *   kernel_load_data,                    finit_module, kexec (firmware
 *   kernel_read_file                     loads are left alone)
 *   file_open on cgroupfs  KG_OP_CGROUP_ESCAPE  opened for writing in a
 *                                        cgroup that is not the job's or a
 *                                        descendant of it; in the job's own
 *                                        cgroup only cgroup.procs,
 *                                        cgroup.threads and
 *                                        cgroup.subtree_control (so the job
 *                                        can make and enter children but not
 *                                        lift its own limits)
 *   file_permission on     KG_OP_CGROUP_ESCAPE  the same, for each write on a
 *   cgroupfs                             descriptor opened before the task
 *                                        was governed (kgate govern)
 *   task_alloc             KG_OP_CGROUP_ESCAPE  clone3(CLONE_INTO_CGROUP)
 *   file_open,             KG_OP_SYSTEM  opened for writing (and, through a
 *   file_permission                      descriptor opened before the task
 *                                        was governed, each write) on a
 *                                        kernel-settings filesystem: procfs
 *                                        outside /proc/PID (/proc/sys with
 *                                        kernel.core_pattern, modprobe,
 *                                        hotplug; sysrq-trigger), sysfs
 *                                        (uevent_helper), binfmt_misc,
 *                                        cgroup v1 (release_agent), debugfs,
 *                                        tracefs, securityfs, configfs,
 *                                        efivarfs, pstore: the kernel would
 *                                        run a program, or change for every
 *                                        process, what the job wrote.
 *                                        aux = KG_SYS_SETTING; and /proc/PID of
 *                                        a process outside the job
 *                                        (oom_score_adj...), aux =
 *                                        KG_SYS_PROCESS
 *   capable                KG_OP_SYSTEM  a capability that neither every job
 *                                        keeps nor the policy's
 *                                        system_access grants (kg_policy
 *                                        caps_allow); quiet probes
 *                                        (CAP_OPT_NOAUDIT) are refused
 *                                        unreported.  aux = KG_SYS_CAP_BASE +
 *                                        the capability
 *
 *   file_open, path_*,     KG_OP_KGATE_STATE  anything beneath kgate's own
 *   unix_stream_connect,                 directories (pins, state dir with
 *   unix_may_send                        the approval queue and the control
 *                                        socket, audit dir with the trail and
 *                                        its key): open, create, unlink,
 *                                        rename, link, truncate, chmod, chown,
 *                                        connect; and renaming or removing
 *                                        those directories or any directory
 *                                        leading to them (kg_protected).
 *                                        aux = the op tried.
 *
 * clone3(CLONE_INTO_CGROUP) and cgroup namespaces are refused by the
 * seccomp baseline in userspace (a cgroup fd passed to clone3 is checked by
 * no LSM hook on 6.1).
 *
 * Within the job, tasks may ptrace and signal each other.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "walk.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_PTRACE_MODE_NOAUDIT	0x04
#define KG_CGROUP2_SUPER_MAGIC	0x63677270
#define KG_FMODE_WRITE		0x2
#define KG_MAY_WRITE		0x2
#define KG_CLONE_INTO_CGROUP	0x200000000ULL
#define KG_CAP_OPT_NOAUDIT	0x2	/* include/linux/security.h: CAP_OPT_NOAUDIT */

/* Filesystems whose files are kernel settings (include/uapi/linux/magic.h) */
#define KG_PROC_SUPER_MAGIC	0x9fa0
#define KG_SYSFS_MAGIC		0x62656572
#define KG_BINFMTFS_MAGIC	0x42494e4d
#define KG_CGROUP_SUPER_MAGIC	0x27e0eb
#define KG_DEBUGFS_MAGIC	0x64626720
#define KG_TRACEFS_MAGIC	0x74726163
#define KG_SECURITYFS_MAGIC	0x73636673
#define KG_CONFIGFS_MAGIC	0x62656570
#define KG_EFIVARFS_MAGIC	0xde5e81e4
#define KG_PSTOREFS_MAGIC	0x6165676c
#define KG_FUSECTL_MAGIC	0x65735543

/* A refusal that no policy can turn into an allow.  Even a fail-open policy
 * whose controller is gone keeps these: they protect kgate itself. */
static __always_inline int kg_protect_deny(struct kg_ctx *c, __u32 aux)
{
	struct kg_event *e;

	kg_decide_refusal(c);
	c->aux = aux;
	e = kg_event_begin(c);
	if (e)
		kg_event_submit(e);
	return -EPERM;
}

static __always_inline int kg_protect(__u8 op, __u32 aux)
{
	struct kg_ctx c;

	if (kg_ctx_init(&c, op, KG_MECH_BPF_LSM))
		return 0;
	return kg_protect_deny(&c, aux);
}

static __always_inline int kg_cross_job(struct task_struct *target, __u8 op, __u32 aux)
{
	struct kg_ctx c;

	if (kg_ctx_init(&c, op, KG_MECH_BPF_LSM))
		return 0;
	if (target && kg_task_in_job(target, c.cgid))
		return 0;
	c.target.raw[0] = 0;
	if (target)
		c.target.file.ino = BPF_CORE_READ(target, tgid);	/* the target pid */
	return kg_protect_deny(&c, aux);
}

/* bpf(2)'s signature gained an argument in 6.9, so `ret` is not at a fixed
 * position: this program does not pass an earlier verdict on.  It only ever
 * refuses, and only for governed tasks, so for them nothing is lost, and
 * for everyone else it returns 0 as the default would. */
SEC("lsm/bpf")
int BPF_PROG(kg_bpf, int cmd)
{
	return kg_protect(KG_OP_BPF, (__u32)cmd);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(kg_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	struct kg_ctx c;

	if (ret)
		return ret;
	if (mode & KG_PTRACE_MODE_NOAUDIT) {
		/* a quiet probe (/proc/PID/stat fields): refuse, report nothing */
		if (kg_ctx_init(&c, KG_OP_PTRACE, KG_MECH_BPF_LSM))
			return 0;
		return kg_task_in_job(child, c.cgid) ? 0 : -EPERM;
	}
	return kg_cross_job(child, KG_OP_PTRACE, mode);
}

SEC("lsm/task_kill")
int BPF_PROG(kg_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred, int ret)
{
	if (ret)
		return ret;
	return kg_cross_job(p, KG_OP_SIGNAL, (__u32)sig);
}

SEC("lsm/sb_mount")
int BPF_PROG(kg_sb_mount, const char *dev_name, const struct path *path, const char *type,
	     unsigned long flags, void *data, int ret)
{
	if (ret)
		return ret;
	return kg_protect(KG_OP_MOUNT, (__u32)flags);
}

SEC("lsm/move_mount")
int BPF_PROG(kg_move_mount, const struct path *from_path, const struct path *to_path, int ret)
{
	if (ret)
		return ret;
	return kg_protect(KG_OP_MOUNT, 0);
}

SEC("lsm/sb_umount")
int BPF_PROG(kg_sb_umount, struct vfsmount *mnt, int flags, int ret)
{
	if (ret)
		return ret;
	return kg_protect(KG_OP_MOUNT, (__u32)flags);
}

SEC("lsm/userns_create")
int BPF_PROG(kg_userns_create, const struct cred *cred, int ret)
{
	if (ret)
		return ret;
	return kg_protect(KG_OP_USERNS, 0);
}

SEC("lsm/kernel_module_request")
int BPF_PROG(kg_kernel_module_request, char *kmod_name, int ret)
{
	if (ret)
		return ret;
	return kg_protect(KG_OP_MODULE, 0);
}

SEC("lsm/kernel_load_data")
int BPF_PROG(kg_kernel_load_data, enum kernel_load_data_id id, bool contents, int ret)
{
	if (ret)
		return ret;
	if (id == LOADING_FIRMWARE)
		return 0;
	return kg_protect(KG_OP_MODULE, (__u32)id);
}

SEC("lsm/kernel_read_file")
int BPF_PROG(kg_kernel_read_file, struct file *file, enum kernel_read_file_id id,
	     bool contents, int ret)
{
	if (ret)
		return ret;
	if (id == READING_FIRMWARE)
		return 0;
	return kg_protect(KG_OP_MODULE, (__u32)id);
}

/* ---- cgroup escape ---------------------------------------------------------- */

/* Control files a job may write in its own cgroup: enough to create child
 * cgroups and move its tasks between them, not to change its own limits. */
static __always_inline bool kg_str_eq(const char *a, const char *b, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static __always_inline bool kg_cgroup_file_ok_at_job_root(struct dentry *d)
{
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	char s[24] = {};

	if (bpf_probe_read_kernel_str(s, sizeof(s), name) <= 0)
		return false;
	return kg_str_eq(s, "cgroup.procs", 13) || kg_str_eq(s, "cgroup.threads", 15) ||
	       kg_str_eq(s, "cgroup.subtree_control", 23);
}

/* On cgroup2 a directory's inode number is its cgroup id (kernfs node id).
 * 1: dir is the job's cgroup, 2: a descendant of it, 0: elsewhere. */
static __always_inline int kg_cgroup_dir_relation(struct dentry *dir, __u64 cgid)
{
	struct dentry *d = dir, *parent;
	int i;

	for (i = 0; i < KG_MAX_DEPTH; i++) {
		struct inode *inode = BPF_CORE_READ(d, d_inode);

		if (inode && BPF_CORE_READ(inode, i_ino) == cgid)
			return i == 0 ? 1 : 2;
		parent = BPF_CORE_READ(d, d_parent);
		if (!parent || parent == d)
			return 0;
		d = parent;
	}
	return 0;
}

/* A write to a cgroupfs file by a governed task: refused unless it stays
 * within the job (see kg_cgroup_file_ok_at_job_root). */
static __always_inline int kg_cgroup_write_check(struct file *file)
{
	struct dentry *d, *dir;
	struct kg_ctx c;
	struct kg_event *e;
	int rel;

	if (BPF_CORE_READ(file, f_path.dentry, d_sb, s_magic) != KG_CGROUP2_SUPER_MAGIC)
		return 0;
	if (kg_ctx_init(&c, KG_OP_CGROUP_ESCAPE, KG_MECH_BPF_LSM))
		return 0;
	d = BPF_CORE_READ(file, f_path.dentry);
	dir = BPF_CORE_READ(d, d_parent);
	rel = kg_cgroup_dir_relation(dir, c.cgid);
	if (rel == 2 || (rel == 1 && kg_cgroup_file_ok_at_job_root(d)))
		return 0;
	kg_target_of(&c.target, d);
	kg_decide_refusal(&c);
	e = kg_event_begin(&c);
	if (e) {
		kg_fill_path_mnt(e, d, BPF_CORE_READ(file, f_path.mnt));
		kg_event_submit(e);
	}
	return -EPERM;
}

/* clone3(CLONE_INTO_CGROUP) places the child in the cgroup of a directory
 * fd without opening any cgroupfs file for writing, and no LSM hook sees
 * that cgroup on 6.1: refused to every governed task.  (kgate run's jobs
 * cannot call clone3 at all, their seccomp baseline answers ENOSYS; a
 * cgroup put under a policy by `kgate govern` has no seccomp filter of
 * kgate's.)  security_task_alloc() runs in the parent, before the child is
 * placed, with clone3's 64-bit flags. */
SEC("lsm/task_alloc")
int BPF_PROG(kg_clone_into_cgroup, struct task_struct *task, unsigned long clone_flags, int ret)
{
	if (ret)
		return ret;
	if (!(clone_flags & KG_CLONE_INTO_CGROUP))
		return 0;
	return kg_protect(KG_OP_CGROUP_ESCAPE, 0);
}

/* ---- kgate's own state ------------------------------------------------------- */

/* kg_protected flags of (dev, ino), 0 when absent. */
static __always_inline __u32 kg_prot_flags(__u64 dev, __u64 ino)
{
	struct kg_prot_key key = { .dev = dev, .ino = ino };
	__u32 *f = bpf_map_lookup_elem(&kg_protected, &key);

	return f ? *f : 0;
}

struct kg_prot_walk {
	struct dentry *d;
	__u64 dev;
	__u8 found;
};

static long kg_prot_step(__u32 i, void *arg)
{
	struct kg_prot_walk *w = arg;
	struct dentry *d = w->d, *parent;
	struct inode *inode;

	if (!d)
		return 1;
	inode = BPF_CORE_READ(d, d_inode);
	if (inode && (kg_prot_flags(w->dev, BPF_CORE_READ(inode, i_ino)) & KG_PROT_F_TREE)) {
		w->found = 1;
		return 1;
	}
	parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d)
		return 1;	/* the superblock's root: kgate's directories sit on it or not */
	w->d = parent;
	return 0;
}

/* Is d one of kgate's directories or beneath one?  The walk stays on d's
 * superblock: a protected directory's contents live on its superblock, and
 * the identities do not depend on the mount or the name used to reach them
 * (bind mounts, /proc/PID/root, symlinks, renamed ancestors).  Deeper than
 * KG_MAX_DEPTH is not kgate's (its files are shallow). */
static __always_inline bool kg_in_kgate_state(struct dentry *d)
{
	struct kg_prot_walk w = {};
	struct inode *inode;

	if (!d)
		return false;
	inode = BPF_CORE_READ(d, d_inode);
	if (!inode)
		inode = BPF_CORE_READ(d, d_parent, d_inode);	/* a negative dentry */
	if (!inode)
		return false;
	w.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	if (!(kg_prot_flags(w.dev, 0) & KG_PROT_F_DEV))
		return false;	/* one lookup for every file elsewhere */
	w.d = d;
	bpf_loop(KG_MAX_DEPTH, kg_prot_step, &w, 0);
	return w.found;
}

/* Is d itself one of kgate's directories or one that leads to them (which
 * must not be renamed or removed, or the pins and files would move away
 * from where kgate finds them)? */
static __always_inline bool kg_leads_to_kgate_state(struct dentry *d)
{
	struct inode *inode = d ? BPF_CORE_READ(d, d_inode) : NULL;

	if (!inode)
		return false;
	return kg_prot_flags(BPF_CORE_READ(inode, i_sb, s_dev), BPF_CORE_READ(inode, i_ino)) &
	       (KG_PROT_F_TREE | KG_PROT_F_PATH);
}

/* Refuse, whatever the policy (never fail-open), and report op
 * KG_OP_KGATE_STATE with the op tried in aux and the object's path. */
static __always_inline int kg_state_deny(struct kg_ctx *c, __u8 tried, struct dentry *d,
					 struct vfsmount *mnt)
{
	struct kg_event *e;

	kg_target_of(&c->target, d);
	kg_decide_refusal(c);
	c->aux = tried;
	e = kg_event_begin(c);
	if (e) {
		kg_fill_path_mnt(e, d, mnt);
		kg_event_submit(e);
	}
	return -EPERM;
}

/* The common shape: a governed task doing `tried` on d. */
static __always_inline int kg_state_check(struct dentry *d, struct vfsmount *mnt, __u8 tried)
{
	struct kg_ctx c;

	if (!d || kg_ctx_init(&c, KG_OP_KGATE_STATE, KG_MECH_BPF_LSM))
		return 0;
	if (!kg_in_kgate_state(d))
		return 0;
	return kg_state_deny(&c, tried, d, mnt);
}

/* Removing or renaming d: refused beneath kgate's directories and for the
 * directories themselves and those leading to them. */
static __always_inline int kg_state_check_move(struct dentry *d, struct vfsmount *mnt, __u8 tried)
{
	struct kg_ctx c;

	if (!d || kg_ctx_init(&c, KG_OP_KGATE_STATE, KG_MECH_BPF_LSM))
		return 0;
	if (!kg_leads_to_kgate_state(d) && !kg_in_kgate_state(d))
		return 0;
	return kg_state_deny(&c, tried, d, mnt);
}

SEC("lsm/path_truncate")
int BPF_PROG(kg_state_path_truncate, const struct path *path, int ret)
{
	if (ret)
		return ret;
	return kg_state_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), KG_OP_WRITE);
}

SEC("lsm/path_unlink")
int BPF_PROG(kg_state_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return kg_state_check_move(dentry, BPF_CORE_READ(dir, mnt), KG_OP_UNLINK);
}

SEC("lsm/path_rmdir")
int BPF_PROG(kg_state_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return kg_state_check_move(dentry, BPF_CORE_READ(dir, mnt), KG_OP_UNLINK);
}

/* A new name in a directory beneath kgate's (create, mkdir, mknod -- also
 * open(O_CREAT) --, symlink): decided on the directory. */
static __always_inline int kg_state_create(const struct path *dir, __u8 tried)
{
	return kg_state_check(BPF_CORE_READ(dir, dentry), BPF_CORE_READ(dir, mnt), tried);
}

SEC("lsm/path_mkdir")
int BPF_PROG(kg_state_path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode,
	     int ret)
{
	if (ret)
		return ret;
	return kg_state_create(dir, KG_OP_CREATE);
}

SEC("lsm/path_mknod")
int BPF_PROG(kg_state_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode,
	     unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return kg_state_create(dir, KG_OP_CREATE);
}

SEC("lsm/path_symlink")
int BPF_PROG(kg_state_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name, int ret)
{
	if (ret)
		return ret;
	return kg_state_create(dir, KG_OP_CREATE);
}

/* A hard link to kgate's file made elsewhere would be a second name that
 * reads it; one made in kgate's directory would plant a file there. */
SEC("lsm/path_link")
int BPF_PROG(kg_state_path_link, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, int ret)
{
	struct vfsmount *mnt = BPF_CORE_READ(new_dir, mnt);
	int err;

	if (ret)
		return ret;
	err = kg_state_check(old_dentry, mnt, KG_OP_LINK);
	if (err)
		return err;
	return kg_state_check(BPF_CORE_READ(new_dir, dentry), mnt, KG_OP_LINK);
}

SEC("lsm/path_rename")
int BPF_PROG(kg_state_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	struct vfsmount *new_mnt = BPF_CORE_READ(new_dir, mnt);
	int err;

	if (ret)
		return ret;
	err = kg_state_check_move(old_dentry, BPF_CORE_READ(old_dir, mnt), KG_OP_RENAME);
	if (err)
		return err;
	err = kg_state_check(BPF_CORE_READ(new_dir, dentry), new_mnt, KG_OP_RENAME);
	if (err)
		return err;
	/* a destination that exists is replaced (or, RENAME_EXCHANGE, moved) */
	return kg_state_check_move(new_dentry, new_mnt, KG_OP_RENAME);
}

/* chmod/chown of kgate's files and directories (not of the directories
 * leading to them: /tmp or /var/log stay the job's to change) */
SEC("lsm/path_chmod")
int BPF_PROG(kg_state_path_chmod, const struct path *path, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return kg_state_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), KG_OP_WRITE);
}

/* (kuid_t and kgid_t come by value, one u64 slot each) */
SEC("lsm/path_chown")
int BPF_PROG(kg_state_path_chown, const struct path *path, __u64 uid, __u64 gid, int ret)
{
	if (ret)
		return ret;
	return kg_state_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), KG_OP_WRITE);
}

/* The daemon's control socket (and any socket kgate binds in its state
 * dir): a governed task may not be its client.  The daemon checks its
 * peers' cgroups as well; this refuses before a byte is sent. */
static __always_inline int kg_state_unix_peer(struct sock *peer)
{
	struct unix_sock *u = (struct unix_sock *)peer;

	if (!peer)
		return 0;
	return kg_state_check(BPF_CORE_READ(u, path.dentry), BPF_CORE_READ(u, path.mnt),
			      KG_OP_UNIX_CONNECT);
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(kg_state_unix_stream_connect, struct sock *sock, struct sock *other,
	     struct sock *newsk, int ret)
{
	if (ret)
		return ret;
	return kg_state_unix_peer(other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(kg_state_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	if (ret)
		return ret;
	return kg_state_unix_peer(other ? BPF_CORE_READ(other, sk) : NULL);
}

/* ---- escapes by proxy: the kernel acting for the job -------------------------- */

static __always_inline bool kg_settings_fs(unsigned long magic)
{
	switch (magic) {
	case KG_PROC_SUPER_MAGIC:
	case KG_SYSFS_MAGIC:
	case KG_BINFMTFS_MAGIC:
	case KG_CGROUP_SUPER_MAGIC:
	case KG_DEBUGFS_MAGIC:
	case KG_TRACEFS_MAGIC:
	case KG_SECURITYFS_MAGIC:
	case KG_CONFIGFS_MAGIC:
	case KG_EFIVARFS_MAGIC:
	case KG_PSTOREFS_MAGIC:
	case KG_FUSECTL_MAGIC:
		return true;
	}
	return false;
}

/* procfs: the /proc/PID directory d is beneath (a process's own files:
 * oom_score_adj, coredump_filter, comm, attr...), NULL elsewhere.  The
 * name of the directory just below the procfs root is all digits there;
 * /proc/self and /proc/thread-self resolve to it. */
static __always_inline struct dentry *kg_proc_process_dir(struct dentry *d)
{
	struct dentry *top = d, *parent;
	const unsigned char *name;
	char s[4] = {};
	int i;

	for (i = 0; i < 16; i++) {
		parent = BPF_CORE_READ(top, d_parent);
		if (!parent || parent == top)
			return NULL;	/* d is the root itself */
		if (BPF_CORE_READ(parent, d_parent) == parent)
			break;		/* parent is the root: top is /proc/<top> */
		top = parent;
	}
	if (i == 16)
		return NULL;
	name = BPF_CORE_READ(top, d_name.name);
	if (bpf_probe_read_kernel(s, 1, name) < 0)
		return NULL;
	return s[0] >= '0' && s[0] <= '9' ? top : NULL;
}

/* The process a /proc/PID directory stands for: the task of the struct pid
 * its proc_inode holds (NULL once it has exited). */
static __always_inline struct task_struct *kg_proc_task(struct dentry *piddir)
{
	struct inode *inode = BPF_CORE_READ(piddir, d_inode);
	struct proc_inode *pi;
	struct hlist_node *first;

	if (!inode)
		return NULL;
	pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);
	first = BPF_CORE_READ(pi, pid, tasks[0].first);	/* PIDTYPE_PID */
	if (!first)
		return NULL;
	return (void *)first - bpf_core_field_offset(struct task_struct, pid_links);
}

/* A governed task writing a kernel setting, or a /proc/PID file of a
 * process outside its job (oom_score_adj would make the kernel's OOM killer
 * pick kgate's controller first, coredump_filter changes what another
 * process's crash hands over): refused, whatever its policy and its
 * system_access say.  Its own processes' files stay writable. */
static __always_inline int kg_settings_write_check(struct file *file)
{
	unsigned long magic = BPF_CORE_READ(file, f_path.dentry, d_sb, s_magic);
	struct dentry *d, *piddir = NULL;
	struct task_struct *task;
	__u32 aux = KG_SYS_SETTING;
	struct kg_ctx c;
	struct kg_event *e;

	if (!kg_settings_fs(magic))
		return 0;
	if (kg_ctx_init(&c, KG_OP_SYSTEM, KG_MECH_BPF_LSM))
		return 0;
	d = BPF_CORE_READ(file, f_path.dentry);
	if (magic == KG_PROC_SUPER_MAGIC)
		piddir = kg_proc_process_dir(d);
	if (piddir) {
		task = kg_proc_task(piddir);
		if (task && kg_task_in_job(task, c.cgid))
			return 0;
		aux = KG_SYS_PROCESS;
	}
	kg_target_of(&c.target, d);
	kg_decide_refusal(&c);
	c.aux = aux;
	e = kg_event_begin(&c);
	if (e) {
		kg_fill_path_mnt(e, d, BPF_CORE_READ(file, f_path.mnt));
		kg_event_submit(e);
	}
	return -EPERM;
}

/* ---- the file hooks: one program each for all of the above --------------------
 * Every open and every read or write on the machine runs each program
 * attached to file_open and file_permission: one program per hook checks
 * kgate's state, cgroup escapes and kernel settings (the last two are told
 * apart by the file system, so at most one of them looks further). */

SEC("lsm/file_open")
int BPF_PROG(kg_protect_file_open, struct file *file, int ret)
{
	unsigned int mode = BPF_CORE_READ(file, f_mode);

	if (ret)
		return ret;
	ret = kg_state_check(BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			     (mode & KG_FMODE_WRITE) ? KG_OP_WRITE : KG_OP_READ);
	if (ret || !(mode & KG_FMODE_WRITE))
		return ret;
	ret = kg_cgroup_write_check(file);
	if (ret)
		return ret;
	return kg_settings_write_check(file);
}

/* A descriptor opened for writing before the task was governed (`kgate
 * govern` puts running processes under a policy: one may already hold an
 * ancestor's cgroup.procs or a /proc/sys file open): each write is checked
 * as an open would be.  vfs_write() asks security_file_permission() before
 * every write. */
SEC("lsm/file_permission")
int BPF_PROG(kg_protect_file_write, struct file *file, int mask, int ret)
{
	if (ret)
		return ret;
	if (!(mask & KG_MAY_WRITE))
		return 0;
	ret = kg_cgroup_write_check(file);
	if (ret)
		return ret;
	return kg_settings_write_check(file);
}

/* Capabilities.  A kgate run job in degraded mode has lost these from its
 * bounding set already; in full mode (and for cgroups kgate govern put
 * under a policy, whose running processes keep their capabilities) this
 * hook refuses them, each refusal recorded.  The capability module runs
 * first: a capability the task does not have never gets here.  Only the
 * task's own credentials are judged: a check against a file opener's
 * (file_ns_capable) or overridden credentials is not the job's privilege. */
SEC("lsm/capable")
int BPF_PROG(kg_capable, const struct cred *cred, struct user_namespace *ns, int cap,
	     unsigned int opts, int ret)
{
	struct kg_ctx c;

	if (ret)
		return ret;
	if (cap < 0 || cap > 63 || (KG_CAPS_KEPT & (1ULL << cap)))
		return 0;
	/* credentials the kernel put in place of the task's own for a moment
	 * (override_creds: overlayfs copying up with its mounter's, nfsd...)
	 * are someone else's privilege, not the job's */
	if (cred != BPF_CORE_READ(bpf_get_current_task_btf(), real_cred))
		return 0;
	if (kg_ctx_init(&c, KG_OP_SYSTEM, KG_MECH_BPF_LSM))
		return 0;
	if (c.pol && (c.pol->caps_allow & (1ULL << cap)))
		return 0;
	if (opts & KG_CAP_OPT_NOAUDIT)
		return -EPERM;	/* a quiet probe: refuse, report nothing */
	return kg_protect_deny(&c, KG_SYS_CAP_BASE + (__u32)cap);
}

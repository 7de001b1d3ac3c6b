// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * file.bpf.c - file rules through BPF LSM (full mode only).
 *
 *   file_open        read (FMODE_READ), write (FMODE_WRITE or O_TRUNC); an
 *                    open for both checks write first, then read.
 *                    fallocate(2), write(2), pwrite, copy_file_range and
 *                    friends all need an fd opened for writing, so this
 *                    check covers them: they need no hook of their own.
 *   path_truncate    truncate(2), O_TRUNC (handle_truncate) and, on 6.1,
 *                    ftruncate(2)
 *   file_truncate    ftruncate(2) on 6.2+ (skipped by the loader on 6.1)
 *   mmap_file        MAP_SHARED + PROT_WRITE of a file (write)
 *   file_mprotect    adding PROT_WRITE to a shared file mapping (write)
 *   path_unlink/rmdir            unlink
 *   path_rename      the source (rename), the destination name (create +
 *                    name rules) and a replaced destination (rename, write)
 *   path_link        the source inode (link; a hardlink to anything a
 *                    non-allow rule covers is refused, so a subtree rule
 *                    cannot be escaped through a new name) and the new name
 *   path_mkdir/mknod/symlink     create (mknod also covers open(O_CREAT))
 *   path_chmod, path_chown       write: a file's metadata is part of it
 *   inode_setattr    write: utimes/utimensat/futimens (times only: mode,
 *                    owner and size have the path hooks above); no
 *                    vfsmount here, so the walk stops at its file system
 *   inode_setxattr, inode_removexattr   write (on 6.1 also setfacl, which
 *                    is an xattr there)
 *   inode_set_acl, inode_remove_acl     write (6.2+: ACLs left the xattr
 *                    path; skipped by the loader on 6.1)
 *   file_permission  every read(2)/write(2)-family call on a descriptor the
 *                    job did not open itself under its current policy
 *                    (inherited from before the job, opened before a push,
 *                    received over SCM_RIGHTS): decided like an open for
 *                    that op, then cached per open file (kg_fd_ok), so it
 *                    costs one lookup afterwards; a policy with no rule for
 *                    the op and an allowing class default skips it outright
 *
 * Every hook passes on an earlier program's non-zero verdict (`ret`): BPF LSM
 * programs on one hook run in a chain and the last return value wins.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "walk.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_FMODE_READ		0x1
#define KG_FMODE_WRITE		0x2
#define KG_FMODE_EXEC		0x20
#define KG_O_TRUNC		01000
#define KG_FMODE_EXEC_FLAG	040	/* __FMODE_EXEC in f_flags (exec opens) */
#define KG_PROT_WRITE		0x2
#define KG_MAP_SHARED		0x1	/* MAP_SHARED and MAP_SHARED_VALIDATE */
#define KG_VM_WRITE		0x2
#define KG_VM_SHARED		0x8
#define KG_MAY_WRITE		0x2
#define KG_MAY_READ		0x4
#define KG_ATTR_MODE		(1u << 0)
#define KG_ATTR_UID		(1u << 1)
#define KG_ATTR_GID		(1u << 2)
#define KG_ATTR_SIZE		(1u << 3)
#define KG_ATTR_ATIME		(1u << 4)
#define KG_ATTR_MTIME		(1u << 5)
#define KG_S_IFMT		0170000
#define KG_S_IFREG		0100000
#define KG_S_IFDIR		0040000

/* Open files whose reads or writes this job may do without a new decision:
 * it opened them itself, or a recheck allowed the op, under this policy
 * generation.  Keyed by the struct file; the value names the job, the
 * generation and the inode, so a recycled struct file or another job never
 * matches.  LRU: an evicted entry only costs one more decision. */
struct kg_fd_ok {
	__u64 cgid;
	__u64 dev;
	__u64 ino;
	__u32 policy_id;
	__u32 ops;		/* KG_OP_BIT(READ) | KG_OP_BIT(WRITE) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct kg_fd_ok);
} kg_fd_ok SEC(".maps");

/* Can anything refuse op for this job?  Not when no rule mentions it and
 * the class default lets everything through. */
static __always_inline bool kg_op_may_refuse(struct kg_ctx *c, __u8 op)
{
	if (!c->pol)
		return true;	/* missing generation: fail closed */
	if (c->pol->file_ops_ruled & KG_OP_BIT(op))
		return true;
	return c->pol->default_decision[KG_CLASS_FILE] != KG_DEC_ALLOW &&
	       c->pol->default_decision[KG_CLASS_FILE] != KG_DEC_NONE;
}

static __always_inline void kg_fd_remember(struct kg_ctx *c, struct file *file, __u32 ops)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct kg_fd_ok v = {}, *old;
	__u64 key = (__u64)file;

	if (!inode)
		return;
	v.cgid = c->cgid;
	v.policy_id = c->policy_id;
	v.dev = kg_inode_dev(inode);
	v.ino = BPF_CORE_READ(inode, i_ino);
	old = bpf_map_lookup_elem(&kg_fd_ok, &key);
	if (old && old->cgid == v.cgid && old->policy_id == v.policy_id && old->dev == v.dev &&
	    old->ino == v.ino)
		ops |= old->ops;
	v.ops = ops;
	bpf_map_update_elem(&kg_fd_ok, &key, &v, BPF_ANY);
}

SEC("lsm/file_open")
int BPF_PROG(kg_file_open, struct file *file, int ret)
{
	struct dentry *d = file->f_path.dentry;	/* typed: the cache needs it */
	struct vfsmount *mnt = BPF_CORE_READ(file, f_path.mnt);
	unsigned int mode = BPF_CORE_READ(file, f_mode);
	unsigned int flags = BPF_CORE_READ(file, f_flags);
	int err;

	if (ret)
		return ret;
	/* exec opens are decided by bprm_check_security (op exec) */
	if ((mode & KG_FMODE_EXEC) || (flags & KG_FMODE_EXEC_FLAG))
		return 0;
	if ((mode & KG_FMODE_WRITE) || (flags & KG_O_TRUNC)) {
		err = kg_file_check(d, mnt, KG_OP_WRITE);
		if (err)
			return err;
	}
	if (mode & KG_FMODE_READ) {
		err = kg_file_check(d, mnt, KG_OP_READ);
		if (err)
			return err;
	}
	/* decided now: its reads and writes need no new decision (file_permission) */
	if (mode & (KG_FMODE_READ | KG_FMODE_WRITE)) {
		struct kg_ctx c;

		if (!kg_ctx_init(&c, KG_OP_READ, KG_MECH_BPF_LSM) &&
		    (kg_op_may_refuse(&c, KG_OP_READ) || kg_op_may_refuse(&c, KG_OP_WRITE)))
			kg_fd_remember(&c, file, (mode & KG_FMODE_READ ? KG_OP_BIT(KG_OP_READ) : 0) |
					      (mode & KG_FMODE_WRITE ? KG_OP_BIT(KG_OP_WRITE) : 0));
	}
	return 0;
}

/* A read or write on a descriptor: the job opened it itself under this
 * generation (cached), or it is decided now like an open for that op. */
SEC("lsm/file_permission")
int BPF_PROG(kg_file_permission, struct file *file, int mask, int ret)
{
	struct dentry *d;
	struct vfsmount *mnt;
	struct inode *inode;
	struct kg_fd_ok *v;
	__u64 key = (__u64)file;
	__u32 rule_id;
	__u8 op, decision;
	struct kg_ctx c;
	umode_t imode;

	if (ret)
		return ret;
	if (!(mask & (KG_MAY_READ | KG_MAY_WRITE)))
		return 0;
	/* the kernel reading a binary or interpreter being executed */
	if ((BPF_CORE_READ(file, f_mode) & KG_FMODE_EXEC) ||
	    (BPF_CORE_READ(file, f_flags) & KG_FMODE_EXEC_FLAG))
		return 0;
	op = (mask & KG_MAY_WRITE) ? KG_OP_WRITE : KG_OP_READ;
	if (kg_ctx_init(&c, op, KG_MECH_BPF_LSM) || !kg_op_may_refuse(&c, op))
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	if (!inode)
		return 0;
	v = bpf_map_lookup_elem(&kg_fd_ok, &key);
	if (v && v->cgid == c.cgid && v->policy_id == c.policy_id && (v->ops & KG_OP_BIT(op)) &&
	    v->ino == BPF_CORE_READ(inode, i_ino) && v->dev == kg_inode_dev(inode))
		return 0;
	d = file->f_path.dentry;	/* typed: the cache needs it */
	mnt = BPF_CORE_READ(file, f_path.mnt);
	if (!d)
		return 0;
	kg_file_decide_cached(&c, d, mnt, KG_OP_BIT(op), &decision, &rule_id);
	imode = BPF_CORE_READ(inode, i_mode) & KG_S_IFMT;
	/* a pipe, socket, terminal or device handed to the job: only a rule
	 * that names it applies, not the class default (files opened by the
	 * job got that at open) */
	if (decision == KG_DEC_NONE && imode != KG_S_IFREG && imode != KG_S_IFDIR)
		decision = KG_DEC_ALLOW;
	if (decision == KG_DEC_NONE)
		kg_default_for(&c, &decision, &rule_id);
	/* a plain allow is not a new action: it is remembered, not decided
	 * (no cooldown here: a job in cooldown can still write to its pipes) */
	if (decision == KG_DEC_ALLOW) {
		kg_fd_remember(&c, file, KG_OP_BIT(op));
		return 0;
	}
	kg_decide(&c, decision, rule_id);
	if (c.allow)
		kg_fd_remember(&c, file, KG_OP_BIT(op));
	return kg_verdict(&c, d, mnt);
}

/* ---- metadata: chmod, chown, utimes, xattrs, ACLs are writes --------------- */

SEC("lsm/path_chmod")
int BPF_PROG(kg_path_chmod, const struct path *path, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(path->dentry, BPF_CORE_READ(path, mnt), KG_OP_WRITE);
}

SEC("lsm/path_chown")
int BPF_PROG(kg_path_chown, const struct path *path, __u32 uid, __u32 gid, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(path->dentry, BPF_CORE_READ(path, mnt), KG_OP_WRITE);
}

/* times only (utimes and friends): mode, owner and size are decided by
 * path_chmod/chown/truncate, which know the mount */
static __always_inline int kg_setattr_check(struct dentry *dentry, struct iattr *attr)
{
	unsigned int valid = BPF_CORE_READ(attr, ia_valid);

	if (!(valid & (KG_ATTR_ATIME | KG_ATTR_MTIME)) ||
	    (valid & (KG_ATTR_MODE | KG_ATTR_UID | KG_ATTR_GID | KG_ATTR_SIZE)))
		return 0;
	return kg_file_check(dentry, NULL, KG_OP_WRITE);
}

/* inode_setattr gained an idmap first argument in 6.3: one program per
 * signature; the loader loads the one whose "__argsN" suffix matches the
 * running kernel's hook (see loader.c) */
SEC("lsm/inode_setattr")
int BPF_PROG(kg_inode_setattr__args2, struct dentry *dentry, struct iattr *attr, int ret)
{
	if (ret)
		return ret;
	return kg_setattr_check(dentry, attr);
}

SEC("lsm/inode_setattr")
int BPF_PROG(kg_inode_setattr__args3, void *idmap, struct dentry *dentry, struct iattr *attr,
	     int ret)
{
	if (ret)
		return ret;
	return kg_setattr_check(dentry, attr);
}

/* (idmap or user namespace, dentry, ...): the dentry is second on 6.1 and later */
SEC("lsm/inode_setxattr")
int BPF_PROG(kg_inode_setxattr, void *idmap, struct dentry *dentry, const char *name,
	     const void *value, size_t size, int flags, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(dentry, NULL, KG_OP_WRITE);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(kg_inode_removexattr, void *idmap, struct dentry *dentry, const char *name, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(dentry, NULL, KG_OP_WRITE);
}

SEC("lsm/inode_set_acl")
int BPF_PROG(kg_inode_set_acl, void *idmap, struct dentry *dentry, const char *acl_name,
	     void *kacl, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(dentry, NULL, KG_OP_WRITE);
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(kg_inode_remove_acl, void *idmap, struct dentry *dentry, const char *acl_name,
	     int ret)
{
	if (ret)
		return ret;
	return kg_file_check(dentry, NULL, KG_OP_WRITE);
}

SEC("lsm/path_truncate")
int BPF_PROG(kg_path_truncate, const struct path *path, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(path->dentry, BPF_CORE_READ(path, mnt),
			     KG_OP_WRITE);
}

SEC("lsm/file_truncate")
int BPF_PROG(kg_file_truncate, struct file *file, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(file->f_path.dentry,
			     BPF_CORE_READ(file, f_path.mnt), KG_OP_WRITE);
}

SEC("lsm/mmap_file")
int BPF_PROG(kg_mmap_file_write, struct file *file, unsigned long reqprot,
	     unsigned long prot, unsigned long flags, int ret)
{
	if (ret)
		return ret;
	if (!file || !(prot & KG_PROT_WRITE) || !(flags & KG_MAP_SHARED))
		return 0;
	return kg_file_check(file->f_path.dentry,
			     BPF_CORE_READ(file, f_path.mnt), KG_OP_WRITE);
}

SEC("lsm/file_mprotect")
int BPF_PROG(kg_mprotect_write, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot, int ret)
{
	struct file *file = vma->vm_file;	/* typed: see kg_file_check */
	unsigned long vm_flags = BPF_CORE_READ(vma, vm_flags);

	if (ret)
		return ret;
	if (!file || !(prot & KG_PROT_WRITE) || !(vm_flags & KG_VM_SHARED) ||
	    (vm_flags & KG_VM_WRITE))
		return 0;
	return kg_file_check(file->f_path.dentry,
			     BPF_CORE_READ(file, f_path.mnt), KG_OP_WRITE);
}

SEC("lsm/path_unlink")
int BPF_PROG(kg_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_UNLINK);
}

SEC("lsm/path_rmdir")
int BPF_PROG(kg_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_UNLINK);
}

SEC("lsm/path_mkdir")
int BPF_PROG(kg_path_mkdir, const struct path *dir, struct dentry *dentry,
	     umode_t mode, int ret)
{
	if (ret)
		return ret;
	return kg_create_check(dir->dentry, BPF_CORE_READ(dir, mnt),
			       dentry, KG_OP_CREATE, KG_OP_BIT(KG_OP_CREATE));
}

/* also reached from open(O_CREAT) through may_o_create() */
SEC("lsm/path_mknod")
int BPF_PROG(kg_path_mknod, const struct path *dir, struct dentry *dentry,
	     umode_t mode, unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return kg_create_check(dir->dentry, BPF_CORE_READ(dir, mnt),
			       dentry, KG_OP_CREATE, KG_OP_BIT(KG_OP_CREATE));
}

SEC("lsm/path_symlink")
int BPF_PROG(kg_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name, int ret)
{
	if (ret)
		return ret;
	return kg_create_check(dir->dentry, BPF_CORE_READ(dir, mnt),
			       dentry, KG_OP_CREATE, KG_OP_BIT(KG_OP_CREATE));
}

/* The source of a link: its own link rule when one matches; otherwise any
 * non-allow rule that covers the inode (for any op) refuses the link, since
 * the new name would sit outside the subtree that rule protects. */
static __always_inline int kg_link_source_check(struct dentry *old, struct vfsmount *mnt)
{
	__u8 decision;
	__u32 rule_id;
	struct kg_ctx c;

	if (!old || kg_ctx_init(&c, KG_OP_LINK, KG_MECH_BPF_LSM))
		return 0;
	kg_file_decide_cached(&c, old, mnt, KG_OP_BIT(KG_OP_LINK), &decision, &rule_id);
	if (decision == KG_DEC_NONE) {
		kg_file_decide(&c, old, mnt, KG_FILE_OPS_MASK, &decision, &rule_id);
		if (decision == KG_DEC_ALLOW || decision == KG_DEC_AUDIT)
			decision = KG_DEC_NONE;	/* the class default decides */
		else if (decision != KG_DEC_NONE)
			decision = KG_DEC_DENY;
	}
	kg_decide(&c, decision, rule_id);
	return kg_verdict(&c, old, mnt);
}

SEC("lsm/path_link")
int BPF_PROG(kg_path_link, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, int ret)
{
	struct vfsmount *mnt = BPF_CORE_READ(new_dir, mnt);	/* link(2) never crosses mounts */
	int err;

	if (ret)
		return ret;
	err = kg_link_source_check(old_dentry, mnt);
	if (err)
		return err;
	return kg_create_check(new_dir->dentry, mnt, new_dentry, KG_OP_LINK,
			       KG_OP_BIT(KG_OP_LINK) | KG_OP_BIT(KG_OP_CREATE));
}

SEC("lsm/path_rename")
int BPF_PROG(kg_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags,
	     int ret)
{
	struct vfsmount *old_mnt = BPF_CORE_READ(old_dir, mnt);
	struct vfsmount *new_mnt = BPF_CORE_READ(new_dir, mnt);
	int err;

	if (ret)
		return ret;
	err = kg_file_check(old_dentry, old_mnt, KG_OP_RENAME);
	if (err)
		return err;
	err = kg_create_check(new_dir->dentry, new_mnt, new_dentry,
			      KG_OP_RENAME, KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_CREATE));
	if (err)
		return err;
	/* a destination that exists is replaced (or exchanged) */
	if (BPF_CORE_READ(new_dentry, d_inode)) {
		err = kg_file_check(new_dentry, new_mnt, KG_OP_RENAME);
		if (err)
			return err;
		err = kg_file_check(new_dentry, new_mnt, KG_OP_WRITE);
	}
	return err;
}

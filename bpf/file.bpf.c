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

SEC("lsm/file_open")
int BPF_PROG(kg_file_open, struct file *file, int ret)
{
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
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
	if (mode & KG_FMODE_READ)
		return kg_file_check(d, mnt, KG_OP_READ);
	return 0;
}

SEC("lsm/path_truncate")
int BPF_PROG(kg_path_truncate, const struct path *path, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt),
			     KG_OP_WRITE);
}

SEC("lsm/file_truncate")
int BPF_PROG(kg_file_truncate, struct file *file, int ret)
{
	if (ret)
		return ret;
	return kg_file_check(BPF_CORE_READ(file, f_path.dentry),
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
	return kg_file_check(BPF_CORE_READ(file, f_path.dentry),
			     BPF_CORE_READ(file, f_path.mnt), KG_OP_WRITE);
}

SEC("lsm/file_mprotect")
int BPF_PROG(kg_mprotect_write, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot, int ret)
{
	struct file *file = BPF_CORE_READ(vma, vm_file);
	unsigned long vm_flags = BPF_CORE_READ(vma, vm_flags);

	if (ret)
		return ret;
	if (!file || !(prot & KG_PROT_WRITE) || !(vm_flags & KG_VM_SHARED) ||
	    (vm_flags & KG_VM_WRITE))
		return 0;
	return kg_file_check(BPF_CORE_READ(file, f_path.dentry),
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
	return kg_create_check(BPF_CORE_READ(dir, dentry), BPF_CORE_READ(dir, mnt),
			       dentry, KG_OP_CREATE, KG_OP_BIT(KG_OP_CREATE));
}

/* also reached from open(O_CREAT) through may_o_create() */
SEC("lsm/path_mknod")
int BPF_PROG(kg_path_mknod, const struct path *dir, struct dentry *dentry,
	     umode_t mode, unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return kg_create_check(BPF_CORE_READ(dir, dentry), BPF_CORE_READ(dir, mnt),
			       dentry, KG_OP_CREATE, KG_OP_BIT(KG_OP_CREATE));
}

SEC("lsm/path_symlink")
int BPF_PROG(kg_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name, int ret)
{
	if (ret)
		return ret;
	return kg_create_check(BPF_CORE_READ(dir, dentry), BPF_CORE_READ(dir, mnt),
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
	kg_file_decide(&c, old, mnt, KG_OP_BIT(KG_OP_LINK), &decision, &rule_id);
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
	return kg_create_check(BPF_CORE_READ(new_dir, dentry), mnt, new_dentry, KG_OP_LINK,
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
	err = kg_create_check(BPF_CORE_READ(new_dir, dentry), new_mnt, new_dentry,
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

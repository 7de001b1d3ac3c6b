// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * exec.bpf.c - exec rules through BPF LSM (full mode only).
 *
 *   bprm_check_security  op exec on bprm->file: execve, execveat (also
 *                        AT_EMPTY_PATH on an fd), and the interpreter of a
 *                        script, which the kernel checks as a second bprm.
 *                        A file with no link left (memfd_create, O_TMPFILE,
 *                        deleted after open) is refused when the policy has
 *                        KG_POL_F_EXEC_NO_FILELESS.  /dev/shm files are
 *                        ordinary files: the exec rules and default apply.
 *   mmap_file            PROT_EXEC mapping of a file: a denied binary that
 *                        ld.so (`ld.so /denied/prog`) or an interpreter maps
 *                        is refused here, as is a denied library
 *   file_mprotect        adding PROT_EXEC to a file mapping, likewise
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "walk.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_PROT_EXEC	0x4
#define KG_VM_EXEC	0x4

/* An executable that has no name in any directory any more. */
static __always_inline bool kg_fileless(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);

	return inode && BPF_CORE_READ(inode, i_nlink) == 0;
}

static __always_inline int kg_exec_check(struct file *file)
{
	struct dentry *d = file->f_path.dentry;	/* typed: the cache needs it */
	struct vfsmount *mnt = BPF_CORE_READ(file, f_path.mnt);
	__u8 decision;
	__u32 rule_id;
	struct kg_ctx c;

	if (!d || kg_ctx_init(&c, KG_OP_EXEC, KG_MECH_BPF_LSM))
		return 0;
	kg_file_decide_cached(&c, d, mnt, KG_OP_BIT(KG_OP_EXEC), &decision, &rule_id);
	if (c.pol && (c.pol->flags & KG_POL_F_EXEC_NO_FILELESS) && kg_fileless(file) &&
	    decision != KG_DEC_DENY) {
		/* no rule can name an unlinked file: the policy's knob decides */
		decision = KG_DEC_DENY;
		rule_id = c.pol->default_rule_id[KG_CLASS_EXEC];
	}
	kg_decide(&c, decision, rule_id);
	return kg_verdict(&c, d, mnt);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(kg_bprm_check, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	return kg_exec_check(bprm->file);	/* typed: see kg_file_check */
}

SEC("lsm/mmap_file")
int BPF_PROG(kg_mmap_file_exec, struct file *file, unsigned long reqprot,
	     unsigned long prot, unsigned long flags, int ret)
{
	if (ret)
		return ret;
	if (!file || !(prot & KG_PROT_EXEC))
		return 0;
	return kg_exec_check(file);
}

SEC("lsm/file_mprotect")
int BPF_PROG(kg_mprotect_exec, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot, int ret)
{
	struct file *file = vma->vm_file;	/* typed: see kg_file_check */
	unsigned long vm_flags = BPF_CORE_READ(vma, vm_flags);

	if (ret)
		return ret;
	if (!file || !(prot & KG_PROT_EXEC) || (vm_flags & KG_VM_EXEC))
		return 0;
	return kg_exec_check(file);
}

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * outside.bpf.c - escapes by proxy through names (full mode only): a
 * governed task may not leave work for something outside its job, whatever
 * its policy's file and unix rules say, unless its policy's system_access
 * grants the member back (kg_policy.outside_allow):
 *
 *   file_open (for writing), path_truncate,   a file something outside the
 *   path_chmod, path_chown                     job runs or obeys as root
 *                                              (cron, systemd units,
 *                                              sudoers, ld.so.preload...)
 *   path_mkdir, path_mknod (also O_CREAT),     a name there, existing or not
 *   path_symlink, path_link, path_rename,      yet (/etc/ld.so.preload), or
 *   path_unlink, path_rmdir                    a directory leading to one
 *                                              (renamed or removed)
 *   unix_stream_connect, unix_may_send         a socket of a daemon that acts
 *                                              for its clients (systemd, the
 *                                              D-Bus system bus, docker,
 *                                              containerd, podman, snapd)
 *
 * The names are in kg_outside (kgate.h): each is (directory identity, hash
 * of the name), so a socket its daemon re-creates, or a file not there yet,
 * is still the same name.  The walk goes from the object up its superblock:
 * a bind mount, a symlink, /proc/PID/root or a renamed ancestor reaches the
 * same names.  Each refusal is reported as op KG_OP_SYSTEM, aux =
 * KG_SYS_OUTSIDE_BASE | member << 8 | the op tried, with the path.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "walk.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_FMODE_WRITE		0x2

struct kg_out_walk {
	struct dentry *d;
	__u64 dev;
	__u32 val;		/* written by the step that matched, read after the loop */
	__u8 found;
	__u8 want_path;		/* the op moves the object itself: KG_OUT_F_PATH counts */
};

static long kg_out_step(__u32 i, void *arg)
{
	struct kg_out_walk *w = arg;
	struct dentry *d = w->d, *parent;
	struct kg_out_key key = {};
	struct inode *pi;
	__u32 *v, f;
	__u64 h = 0;

	if (!d)
		return 1;
	parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d) {
		/* the superblock's root: a protected tree that is a mount point */
		pi = BPF_CORE_READ(d, d_inode);
		if (!pi)
			return 1;
		key.dev = w->dev;
		key.ino = BPF_CORE_READ(pi, i_ino);
		key.name_hash = KG_OUT_HASH_SELF;
		v = bpf_map_lookup_elem(&kg_outside, &key);
		if (v) {
			w->val = *v;
			w->found = 1;
		}
		return 1;
	}
	pi = BPF_CORE_READ(parent, d_inode);
	if (!pi)
		return 1;
	key.dev = w->dev;
	key.ino = BPF_CORE_READ(pi, i_ino);
	key.name_hash = KG_OUT_HASH_DIR;
	if (bpf_map_lookup_elem(&kg_outside, &key)) {
		if (!kg_dentry_name_hash(d, &h))
			return 1;
		key.name_hash = h;
		v = bpf_map_lookup_elem(&kg_outside, &key);
		if (v) {
			f = *v;
			if ((f & (KG_OUT_F_TREE | KG_OUT_F_EXEMPT)) ||
			    (i == 0 && (f & KG_OUT_F_ENTRY)) ||
			    (i == 0 && w->want_path && (f & KG_OUT_F_PATH))) {
				w->val = f;
				w->found = 1;
				return 1;
			}
		}
	}
	w->d = parent;
	return 0;
}

/* A governed task doing `tried` on d (a name that may not exist yet):
 * refused when d is, or lies beneath, a name of kg_outside that its
 * policy does not grant. */
static __always_inline int kg_out_check(struct dentry *d, struct vfsmount *mnt, __u8 tried,
					bool move)
{
	struct kg_out_walk w = {};
	struct inode *inode;
	struct kg_event *e;
	struct kg_ctx c;
	__u32 member;

	if (!d || kg_ctx_init(&c, KG_OP_SYSTEM, KG_MECH_BPF_LSM))
		return 0;
	inode = BPF_CORE_READ(d, d_inode);
	if (!inode)
		inode = BPF_CORE_READ(d, d_parent, d_inode);	/* a name being created */
	if (!inode)
		return 0;
	w.dev = kg_inode_dev(inode);
	w.d = d;
	w.want_path = move;
	bpf_loop(KG_MAX_DEPTH, kg_out_step, &w, 0);
	if (!w.found || (w.val & KG_OUT_F_EXEMPT))
		return 0;
	member = w.val & KG_OUT_MEMBER_MASK;
	/* a grant lifts a member's names; a directory leading to names stays */
	if ((w.val & (KG_OUT_F_ENTRY | KG_OUT_F_TREE)) && member < 32 && c.pol &&
	    (c.pol->outside_allow & (1u << member)))
		return 0;
	kg_target_of(&c.target, d);
	kg_decide_refusal(&c);
	c.aux = KG_SYS_OUTSIDE_BASE | (member << 8) | tried;
	e = kg_event_begin(&c);
	if (e) {
		kg_fill_path_mnt(e, d, mnt);
		kg_event_submit(e);
	}
	return -EPERM;
}

SEC("lsm/file_open")
int BPF_PROG(kg_out_file_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	if (!(BPF_CORE_READ(file, f_mode) & KG_FMODE_WRITE))
		return 0;
	return kg_out_check(BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			    KG_OP_WRITE, false);
}

SEC("lsm/path_truncate")
int BPF_PROG(kg_out_path_truncate, const struct path *path, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), KG_OP_WRITE,
			    false);
}

SEC("lsm/path_chmod")
int BPF_PROG(kg_out_path_chmod, const struct path *path, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), KG_OP_WRITE,
			    false);
}

SEC("lsm/path_chown")
int BPF_PROG(kg_out_path_chown, const struct path *path, __u64 uid, __u64 gid, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), KG_OP_WRITE,
			    false);
}

SEC("lsm/path_unlink")
int BPF_PROG(kg_out_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_UNLINK, true);
}

SEC("lsm/path_rmdir")
int BPF_PROG(kg_out_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_UNLINK, true);
}

SEC("lsm/path_mkdir")
int BPF_PROG(kg_out_path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode,
	     int ret)
{
	if (ret)
		return ret;
	return kg_out_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_CREATE, false);
}

/* also open(O_CREAT) of a regular file */
SEC("lsm/path_mknod")
int BPF_PROG(kg_out_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode,
	     unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_CREATE, false);
}

SEC("lsm/path_symlink")
int BPF_PROG(kg_out_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name, int ret)
{
	if (ret)
		return ret;
	return kg_out_check(dentry, BPF_CORE_READ(dir, mnt), KG_OP_CREATE, false);
}

/* A hard link of a protected file elsewhere would be a name the walk does
 * not know; one made among the names would plant a file there. */
SEC("lsm/path_link")
int BPF_PROG(kg_out_path_link, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, int ret)
{
	struct vfsmount *mnt = BPF_CORE_READ(new_dir, mnt);
	int err;

	if (ret)
		return ret;
	err = kg_out_check(old_dentry, mnt, KG_OP_LINK, false);
	if (err)
		return err;
	return kg_out_check(new_dentry, mnt, KG_OP_LINK, false);
}

SEC("lsm/path_rename")
int BPF_PROG(kg_out_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	int err;

	if (ret)
		return ret;
	err = kg_out_check(old_dentry, BPF_CORE_READ(old_dir, mnt), KG_OP_RENAME, true);
	if (err)
		return err;
	return kg_out_check(new_dentry, BPF_CORE_READ(new_dir, mnt), KG_OP_RENAME, true);
}

static __always_inline int kg_out_unix_peer(struct sock *peer)
{
	struct unix_sock *u = (struct unix_sock *)peer;

	if (!peer)
		return 0;
	return kg_out_check(BPF_CORE_READ(u, path.dentry), BPF_CORE_READ(u, path.mnt),
			    KG_OP_UNIX_CONNECT, false);
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(kg_out_unix_stream_connect, struct sock *sock, struct sock *other,
	     struct sock *newsk, int ret)
{
	if (ret)
		return ret;
	return kg_out_unix_peer(other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(kg_out_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	if (ret)
		return ret;
	return kg_out_unix_peer(other ? BPF_CORE_READ(other, sk) : NULL);
}

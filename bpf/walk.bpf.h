/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * walk.bpf.h - identity matching of file rules for the LSM hooks.
 *
 * A file rule names an inode (dev, ino) that the controller resolved when it
 * compiled the policy, so matching never looks at a path string: the object
 * of a hook is matched by what it *is*, then its ancestors by what they are.
 * That is what makes rules immune to symlinks, bind mounts, mount
 * namespaces, relative paths and dirfds, /proc/self/fd/N and /proc/PID/root
 * re-opens, openat2, O_PATH re-opens and renaming an ancestor after the
 * policy was loaded: all of those only change the *name* used to reach an
 * inode, never the inode or the chain of dentries above it.
 *
 *   kg_file_decide()  object: EXACT or SUBTREE entries; every ancestor up to
 *                     the superblock root: SUBTREE entries; then across to
 *                     the parent mount (when the hook has a vfsmount) and on.
 *                     The first matching entry wins (deepest = most specific).
 *                     A walk longer than KG_MAX_DEPTH is a deny, never an allow.
 *   kg_name_decide()  creating a name that a rule covers before it existed
 *                     (kg_name_rules: parent inode + FNV-1a of the name).
 *   kg_fill_path()    leaf-first path text for the event (display only).
 *
 * The decision cache (kg_dir_cache, see kgate.h): a walk that decides one
 * file op consults, at each directory it reaches past the object, what an
 * earlier walk learnt there under the same policy generation and the same
 * rename_lock sequence, and stops at the first such directory; afterwards
 * it records what it learnt on the directories it walked on the object's
 * own superblock.  So a walk runs once per directory, op and generation,
 * and a file in a known directory costs its own rule lookup plus one inode
 * storage lookup.  The object itself is never cached (its EXACT entries
 * and its names - hardlinks - are looked up live), nor are mounts (crossed
 * live: a bind mount or mount namespace changes nothing cached).  Any
 * d_move anywhere bumps rename_lock's sequence and so empties the cache
 * at once; a walk that saw the sequence change, or odd, records nothing.
 *
 * Walks run in bpf_loop() callbacks so the verifier checks one step, not
 * KG_MAX_DEPTH copies of it.  Every kernel pointer is read with CO-RE
 * (BPF_CORE_READ), so the same object relocates on 6.1 and 6.12.
 */
#ifndef KGATE_WALK_BPF_H
#define KGATE_WALK_BPF_H

#include "common.bpf.h"

#define KG_NAME_BUF	256	/* NAME_MAX + 1 */

/* Per-CPU scratch: a path being assembled (twice KG_PATH_MAX so a masked
 * offset plus a bounded length always stays inside) and a name to hash. */
struct kg_walk_buf {
	char path[2 * KG_PATH_MAX];
	unsigned char name[KG_NAME_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kg_walk_buf);
} kg_walk_buf SEC(".maps");

static __always_inline struct kg_walk_buf *kg_walk_buf_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kg_walk_buf, &zero);
}

/* The decision cache: shared (pinned) by every object that walks. */
struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct kg_dir_cache);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_dir_cache SEC(".maps");

/* The dcache's rename_lock: every d_move (rename, exchange, a directory
 * alias spliced into a new place) runs under its write side, which bumps
 * its sequence (odd while it runs).  Its address, from kallsyms, is set
 * here by the loader before the object's LSM programs load (read-only
 * data: frozen at load, nothing changes it afterwards); 0 - a kernel
 * without data symbols in kallsyms - loads with the cache off.  Not a
 * __ksym extern: libbpf would read all of /proc/kallsyms at every load
 * of every object that walks, LSM programs loaded or not. */
const volatile __u64 kg_rename_lock_addr = 0;

/* rename_lock's sequence (the first word of a seqlock_t); odd = unusable. */
static __always_inline __u32 kg_rename_seq(void)
{
	__u32 seq = 1;

	if (!kg_rename_lock_addr)
		return 1;
	if (bpf_probe_read_kernel(&seq, sizeof(seq), (const void *)kg_rename_lock_addr))
		return 1;
	return seq;
}

/* FNV-1a 64, byte for byte the same as userspace kg_hash_bytes(). */
static __always_inline __u64 kg_hash_buf(const unsigned char *buf, __u32 len)
{
	__u64 h = KG_FNV_OFFSET;
	__u32 i;

#pragma clang loop unroll(disable)
	for (i = 0; i < KG_NAME_BUF; i++) {
		if (i >= len)
			break;
		h ^= buf[i];
		h *= KG_FNV_PRIME;
	}
	return h;
}

/* struct mount that embeds a vfsmount (container_of, with CO-RE offsets). */
static __always_inline struct mount *kg_real_mount(struct vfsmount *mnt)
{
	if (!mnt)
		return NULL;
	return (struct mount *)((char *)mnt - bpf_core_field_offset(struct mount, mnt));
}

/* btrfs: each subvolume numbers its inodes from 256 and stat(2) reports the
 * subvolume's anonymous device (BTRFS_I(inode)->root->anon_dev), not the
 * superblock's.  Local "flavours" of the btrfs types: CO-RE resolves them
 * in vmlinux or in the btrfs module's BTF at load time; where btrfs is
 * unknown the branch is dead code and s_dev is used (the loader records
 * which in kg_control.fs_flags, and maps.c refuses rules on btrfs then). */
#define KG_BTRFS_SUPER_MAGIC	0x9123683E

struct btrfs_root___kg {
	dev_t anon_dev;
} __attribute__((preserve_access_index));

struct btrfs_inode___kg {
	struct btrfs_root___kg *root;
	struct inode vfs_inode;
} __attribute__((preserve_access_index));

/* The device of an inode as rules key it: stat(2)'s st_dev where that
 * differs from the superblock's (btrfs subvolumes), else s_dev. */
static __always_inline __u64 kg_inode_dev(struct inode *inode)
{
	struct super_block *sb = BPF_CORE_READ(inode, i_sb);
	__u64 dev = BPF_CORE_READ(sb, s_dev);

	if (bpf_core_type_exists(struct btrfs_inode___kg) &&
	    BPF_CORE_READ(sb, s_magic) == KG_BTRFS_SUPER_MAGIC) {
		struct btrfs_inode___kg *bi = (void *)((char *)inode -
				bpf_core_field_offset(struct btrfs_inode___kg, vfs_inode));
		struct btrfs_root___kg *root = BPF_CORE_READ(bi, root);
		__u32 anon = root ? BPF_CORE_READ(root, anon_dev) : 0;

		if (anon)
			dev = anon;
	}
	return dev;
}

static __always_inline void kg_target_of(struct kg_target *t, struct dentry *d)
{
	struct inode *inode = BPF_CORE_READ(d, d_inode);

	if (!inode)
		return;
	t->file.dev = kg_inode_dev(inode);
	t->file.ino = BPF_CORE_READ(inode, i_ino);
}

/* ---- the identity walk ---------------------------------------------------- */

struct kg_walk {
	struct dentry *d;
	/* d again, as a pointer the verifier knows the type of (read directly,
	 * not with bpf_probe_read), which bpf_inode_storage_get needs; NULL
	 * when the hook had none, and once the walk leaves the object's
	 * superblock (a mount point is read with bpf_probe_read): no cache */
	struct dentry *td;
	struct mount *mnt;	/* NULL: stop at the superblock root */
	struct mount *mnt0;	/* the object's mount: still on its superblock */
	__u64 serial;		/* the generation's, for the cache */
	__u32 policy_id;
	__u32 opbit;
	__u32 rule_id;
	__u32 seq;		/* rename_lock's sequence when the walk began */
	__u8 decision;
	__u8 dir_walk;		/* the walk starts at a directory whose contents are meant:
				 * SUBTREE entries only, from the first step */
	__u8 done;		/* matched, or reached the root */
	__u8 cache_op;		/* op + 1 when the cache may be used, else 0 */
	/* written by the steps, read after the loop only (a 6.1 verifier
	 * checks a callback once, with *w as the caller left it: a field the
	 * steps both write and read would be taken as its initial value) */
	__u8 settled;		/* the object's superblock segment is decided */
	__u8 nocache;		/* record nothing (a disconnected top) */
	__u8 seg_dec;		/* its outcome: decision, rule (0: none up to the top) */
	__u32 seg_rule;
	__u32 seg_step;		/* the step that decided it */
};

static __always_inline bool kg_rule_match(struct kg_walk *w, struct kg_file_rule *r,
					  bool subtree_only)
{
	int k;

	for (k = 0; k < KG_FILE_ENTS; k++) {
		struct kg_rule_ent *e = &r->ent[k];

		if (!e->rule_id)
			break;
		if (!(e->ops & w->opbit))
			continue;
		if (subtree_only && !(e->flags & KG_FILE_F_SUBTREE))
			continue;
		w->decision = e->decision;
		w->rule_id = e->rule_id;
		return true;
	}
	return false;
}

/* The object's superblock segment got its outcome at step i (on this
 * superblock: the walk has not crossed a mount yet). */
static __always_inline void kg_walk_settle(struct kg_walk *w, __u32 i, __u8 dec, __u32 rule)
{
	if (w->mnt != w->mnt0)
		return;
	w->settled = 1;
	w->seg_dec = dec;
	w->seg_rule = rule;
	w->seg_step = i;
}

static long kg_walk_step(__u32 i, void *arg)
{
	struct kg_walk *w = arg;
	struct dentry *d = w->d, *parent;
	struct kg_file_key key = {};
	struct kg_file_rule *r;
	struct inode *inode;
	struct mount *m, *mp;
	/* past the object only SUBTREE entries match.  Derived from the
	 * step index, not from state stored in *w: a 6.1 verifier checks
	 * a bpf_loop callback once, with *w as the first call leaves it,
	 * and drops branches that state makes look dead (a "subtree
	 * only" flag written by the first step was taken as constant 0,
	 * so every ancestor's exact entry matched) */
	bool subtree = w->dir_walk || i > 0;
	struct dentry *td = w->td;

	if (!d) {
		w->done = 1;
		return 1;
	}
	inode = BPF_CORE_READ(d, d_inode);
	if (inode) {
		struct inode *ti = td ? td->d_inode : NULL;

		if (ti && subtree && w->cache_op && w->cache_op <= KG_DC_OPS) {
			/* masked: KG_DC_OPS is a power of two, and the verifier
			 * wants the slot index bounded where it is used */
			__u32 op = (w->cache_op - 1) & (KG_DC_OPS - 1);
			struct kg_dir_cache *dc = bpf_inode_storage_get(&kg_dir_cache, ti, 0, 0);

			if (dc && dc->seq == w->seq && dc->policy_id == w->policy_id &&
			    dc->serial == w->serial && (dc->known & KG_OP_BIT(op))) {
				__u32 rid = dc->slot[op].rule_id;
				__u8 dec = dc->slot[op].decision;

				kg_walk_settle(w, i, dec, rid);
				if (rid) {
					w->decision = dec;
					w->rule_id = rid;
					w->done = 1;
					return 1;
				}
				goto top;	/* nothing up to this superblock's top */
			}
		}
		key.policy_id = w->policy_id;
		key.dev = kg_inode_dev(inode);
		key.ino = BPF_CORE_READ(inode, i_ino);
		r = bpf_map_lookup_elem(&kg_file_rules, &key);
		if (r && kg_rule_match(w, r, subtree)) {
			kg_walk_settle(w, i, w->decision, w->rule_id);
			w->done = 1;
			return 1;
		}
	}
	parent = BPF_CORE_READ(d, d_parent);
	if (parent && parent != d) {
		w->d = parent;
		w->td = td ? td->d_parent : NULL;
		return 0;
	}
	/* the top of this superblock's tree: its root, unless the dentry is
	 * disconnected (a file handle's), whose place may still change */
	if (d != BPF_CORE_READ(d, d_sb, s_root))
		w->nocache = 1;
	kg_walk_settle(w, i, KG_DEC_NONE, 0);
top:
	/* superblock root: continue above the mount point, if we know it */
	w->td = NULL;
	m = w->mnt;	/* (a local: CO-RE must not relocate w itself) */
	if (!m) {
		w->done = 1;
		return 1;
	}
	mp = BPF_CORE_READ(m, mnt_parent);
	if (!mp || mp == m) {
		w->done = 1;	/* root of the mount tree (or a detached mount) */
		return 1;
	}
	w->d = BPF_CORE_READ(m, mnt_mountpoint);
	w->mnt = mp;
	return 0;
}

/* ---- recording what a walk learnt ------------------------------------------ */

struct kg_fill {
	struct dentry *d;	/* typed (see kg_walk.td) */
	__u64 serial;
	__u32 policy_id;
	__u32 seq;
	__u32 n;		/* directories to record, from d up */
	__u32 op;
	struct kg_dc_slot slot;
};

static long kg_fill_step(__u32 i, void *arg)
{
	struct kg_fill *f = arg;
	struct dentry *d = f->d;
	struct kg_dir_cache *old, nv = {};
	struct inode *inode;
	__u32 op = f->op & (KG_DC_OPS - 1);	/* (f->op < KG_DC_OPS already) */

	if (i >= f->n || !d)
		return 1;
	inode = d->d_inode;
	if (!inode)
		return 1;
	old = bpf_inode_storage_get(&kg_dir_cache, inode, 0, 0);
	if (old && old->seq == f->seq && old->policy_id == f->policy_id &&
	    old->serial == f->serial) {
		if (old->known & KG_OP_BIT(op))
			goto next;	/* known already (the same, by construction) */
		nv = *old;
	} else {
		nv.serial = f->serial;
		nv.policy_id = f->policy_id;
		nv.seq = f->seq;
	}
	nv.known |= KG_OP_BIT(op);
	nv.slot[op] = f->slot;
	/* never in place: delete, then create whole (creation publishes a
	 * complete value; another CPU creating first wins, which is fine) */
	if (old)
		bpf_inode_storage_delete(&kg_dir_cache, inode);
	bpf_inode_storage_get(&kg_dir_cache, inode, &nv, BPF_LOCAL_STORAGE_GET_F_CREATE);
next:
	f->d = d->d_parent;
	return 0;
}

/* After a complete walk: record the outcome of the object's superblock
 * segment on each directory from the first one past the object up to the
 * step that decided it, unless a rename ran meanwhile. */
static __always_inline void kg_walk_record(struct kg_walk *w, struct dentry *start)
{
	struct kg_fill f = {};
	__u32 first = w->dir_walk ? 0 : 1;

	if (!start || !w->cache_op || w->cache_op > KG_DC_OPS || !w->settled || w->nocache ||
	    w->seg_step < first || (w->seq & 1) || kg_rename_seq() != w->seq)
		return;
	f.d = first ? start->d_parent : start;
	if (!f.d || (first && f.d == start))
		return;
	f.serial = w->serial;
	f.policy_id = w->policy_id;
	f.seq = w->seq;
	f.n = w->seg_step - first + 1;
	f.op = w->cache_op - 1;
	f.slot.rule_id = w->seg_rule;
	f.slot.decision = w->seg_dec;
	bpf_loop(KG_MAX_DEPTH, kg_fill_step, &f, 0);
}

static __always_inline void kg_walk_incomplete(struct kg_ctx *c, __u8 *decision,
					       __u32 *rule_id)
{
	struct kg_counters *cnt = kg_counters_get();

	if (cnt)
		__sync_fetch_and_add(&cnt->walk_incomplete, 1);
	c->flags |= KG_EVF_WALK_INCOMPLETE;
	*decision = KG_DEC_DENY;
	*rule_id = 0;
}

static __always_inline void kg_walk_run(struct kg_ctx *c, struct dentry *d,
					struct dentry *td, struct vfsmount *mnt, __u32 opbit,
					bool subtree_only, __u8 *decision, __u32 *rule_id)
{
	struct kg_walk w = {};

	w.d = d;
	w.td = td;
	w.mnt = kg_real_mount(mnt);
	w.mnt0 = w.mnt;
	w.policy_id = c->policy_id;
	w.opbit = opbit;
	w.dir_walk = subtree_only;
	*decision = KG_DEC_NONE;
	*rule_id = 0;
	if (c->pol && !(c->pol->file_ops_ruled & opbit))
		return;		/* no rule mentions this op: nothing to find */
	/* the cache: one op (not a mask), a generation to name */
	if (td && c->pol && c->op < KG_DC_OPS && opbit == KG_OP_BIT(c->op)) {
		w.seq = kg_rename_seq();
		if (!(w.seq & 1)) {
			w.cache_op = c->op + 1;
			w.serial = c->pol->serial;
		}
	}
	bpf_loop(KG_MAX_DEPTH, kg_walk_step, &w, 0);
	if (!w.done) {
		kg_walk_incomplete(c, decision, rule_id);
		return;
	}
	*decision = w.decision;
	*rule_id = w.rule_id;
	kg_walk_record(&w, td);
}

/* The rule for an existing object: the object itself (EXACT or SUBTREE
 * entries), then its ancestors (SUBTREE).  mnt may be NULL (no crossing).
 * Also fills c->target.file so a grant keys on this exact inode. */
static __always_inline void kg_file_decide(struct kg_ctx *c, struct dentry *d,
					   struct vfsmount *mnt, __u32 opbit,
					   __u8 *decision, __u32 *rule_id)
{
	kg_target_of(&c->target, d);
	kg_walk_run(c, d, NULL, mnt, opbit, false, decision, rule_id);
}

/* The same with the decision cache: d must be a typed pointer, read
 * directly (d = file->f_path.dentry, a hook's dentry argument), never with
 * BPF_CORE_READ: the verifier refuses a cache lookup on anything else. */
static __always_inline void kg_file_decide_cached(struct kg_ctx *c, struct dentry *d,
						  struct vfsmount *mnt, __u32 opbit,
						  __u8 *decision, __u32 *rule_id)
{
	kg_target_of(&c->target, d);
	kg_walk_run(c, d, d, mnt, opbit, false, decision, rule_id);
}

/* The rule covering a directory's contents: SUBTREE entries only, from the
 * directory up (used for creations inside it).  dir: typed, as above. */
static __always_inline void kg_dir_decide(struct kg_ctx *c, struct dentry *dir,
					  struct vfsmount *mnt, __u32 opbit,
					  __u8 *decision, __u32 *rule_id)
{
	kg_walk_run(c, dir, dir, mnt, opbit, true, decision, rule_id);
}

/* FNV-1a of the last component of newd (the name being created); false
 * when it cannot be read. */
static __always_inline bool kg_dentry_name_hash(struct dentry *newd, __u64 *hash)
{
	struct kg_walk_buf *buf = kg_walk_buf_get();
	const unsigned char *name;
	__u32 len;

	if (!buf)
		return false;
	len = BPF_CORE_READ(newd, d_name.len);
	name = BPF_CORE_READ(newd, d_name.name);
	if (len >= KG_NAME_BUF)
		len = KG_NAME_BUF - 1;
	if (bpf_probe_read_kernel(buf->name, len & (KG_NAME_BUF - 1), name))
		return false;
	*hash = kg_hash_buf(buf->name, len);
	return true;
}

/* A rule on a name that did not exist when the policy was compiled:
 * (policy, parent dev, parent ino, FNV-1a of the new name). */
static __always_inline bool kg_name_decide(struct kg_ctx *c, struct dentry *dir,
					   __u64 name_hash, __u8 *decision, __u32 *rule_id)
{
	struct kg_name_key key = {};
	struct kg_rule_ent *ent;
	struct inode *inode;

	inode = BPF_CORE_READ(dir, d_inode);
	if (!inode)
		return false;
	key.policy_id = c->policy_id;
	key.dev = kg_inode_dev(inode);
	key.ino = BPF_CORE_READ(inode, i_ino);
	key.name_hash = name_hash;
	ent = bpf_map_lookup_elem(&kg_name_rules, &key);
	if (!ent || !ent->rule_id)
		return false;
	*decision = ent->decision;
	*rule_id = ent->rule_id;
	return true;
}

/* ---- path text for events ------------------------------------------------- */

struct kg_path_walk {
	struct dentry *d;
	struct mount *mnt;
	__u32 off;
	__u8 truncated;
};

static long kg_path_step(__u32 i, void *arg)
{
	struct kg_path_walk *w = arg;
	struct dentry *d = w->d, *parent, *mnt_root;
	const unsigned char *name;
	struct kg_walk_buf *buf;
	struct mount *m = w->mnt, *mp;
	__u32 off, room;
	long n;

	if (!d)
		return 1;
	parent = BPF_CORE_READ(d, d_parent);
	mnt_root = m ? BPF_CORE_READ(m, mnt.mnt_root) : NULL;
	if (d == mnt_root || !parent || parent == d) {
		/* a mount's root: the name continues at its mount point */
		if (!m)
			return 1;
		mp = BPF_CORE_READ(m, mnt_parent);
		if (!mp || mp == m)
			return 1;
		w->d = BPF_CORE_READ(m, mnt_mountpoint);
		w->mnt = mp;
		return 0;
	}
	buf = kg_walk_buf_get();
	if (!buf)
		return 1;
	off = w->off;
	if (off >= KG_PATH_MAX - 1) {
		w->truncated = 1;
		return 1;
	}
	off &= KG_PATH_MAX - 1;
	room = KG_PATH_MAX - off;
	name = BPF_CORE_READ(d, d_name.name);
	n = bpf_probe_read_kernel_str(&buf->path[off], room, name);
	if (n <= 0)
		return 1;
	off += n - 1;
	if (off >= KG_PATH_MAX - 1) {
		w->off = KG_PATH_MAX - 1;
		w->truncated = 1;
		return 1;
	}
	buf->path[off & (2 * KG_PATH_MAX - 1)] = '/';
	w->off = off + 1;
	w->d = parent;
	return 0;
}

/* Leaf-first component names ("id_rsa/.ssh/root/"), crossing mounts when
 * mnt is known; KG_EVF_PATH_TRUNCATED when they do not fit. */
static __always_inline void kg_fill_path_mnt(struct kg_event *e, struct dentry *d,
					     struct vfsmount *mnt)
{
	struct kg_path_walk w = {};
	struct kg_walk_buf *buf = kg_walk_buf_get();
	long n;

	if (!buf || !d)
		return;
	w.d = d;
	w.mnt = kg_real_mount(mnt);
	n = bpf_loop(KG_MAX_DEPTH, kg_path_step, &w, 0);
	if (n >= KG_MAX_DEPTH && w.d)
		w.truncated = 1;	/* deeper than we walk */
	buf->path[w.off & (KG_PATH_MAX - 1)] = '\0';
	bpf_probe_read_kernel(e->path, KG_PATH_MAX, buf->path);
	e->path[KG_PATH_MAX - 1] = '\0';
	e->flags |= KG_EVF_PATH_REVERSED;
	if (w.truncated)
		e->flags |= KG_EVF_PATH_TRUNCATED;
}

static __always_inline void kg_fill_path(struct kg_event *e, struct dentry *d)
{
	kg_fill_path_mnt(e, d, NULL);
}

/* ---- the common shape of a file hook -------------------------------------- */

static __always_inline int kg_verdict(struct kg_ctx *c, struct dentry *d,
				      struct vfsmount *mnt)
{
	struct kg_event *e;

	if (c->emit) {
		e = kg_event_begin(c);
		if (e) {
			kg_fill_path_mnt(e, d, mnt);
			kg_event_submit(e);
		}
	}
	return c->allow ? 0 : -EPERM;
}

/* Decide op on an existing object, report, return 0 or -EPERM.  d: typed
 * (read directly from the hook's arguments; see kg_file_decide_cached). */
static __always_inline int kg_file_check(struct dentry *d, struct vfsmount *mnt, __u8 op)
{
	__u8 decision;
	__u32 rule_id;
	struct kg_ctx c;

	if (!d || kg_ctx_init(&c, op, KG_MECH_BPF_LSM))
		return 0;
	kg_file_decide_cached(&c, d, mnt, KG_OP_BIT(op), &decision, &rule_id);
	kg_decide(&c, decision, rule_id);
	return kg_verdict(&c, d, mnt);
}

/* Decide the creation of `newd` in `dir` (typed: see kg_file_check) (op
 * create, or the target side of
 * link/rename, reported as `op`, matched against rules carrying any op of
 * `opbit`): a name rule first (most specific), then the directory's subtree
 * rules.  The target (grant key) is the directory and the new name. */
static __always_inline int kg_create_check(struct dentry *dir, struct vfsmount *mnt,
					   struct dentry *newd, __u8 op, __u32 opbit)
{
	__u8 decision = KG_DEC_NONE;
	__u32 rule_id = 0;
	__u64 name_hash;
	struct kg_ctx c;

	if (!dir || !newd || kg_ctx_init(&c, op, KG_MECH_BPF_LSM))
		return 0;
	kg_target_of(&c.target, dir);
	if (!kg_dentry_name_hash(newd, &name_hash)) {
		/* an unreadable name matches no name rule and no grant */
		name_hash = 0;
		kg_dir_decide(&c, dir, mnt, opbit, &decision, &rule_id);
	} else if (!kg_name_decide(&c, dir, name_hash, &decision, &rule_id)) {
		kg_dir_decide(&c, dir, mnt, opbit, &decision, &rule_id);
	}
	c.target.file.name_hash = name_hash;
	kg_decide(&c, decision, rule_id);
	return kg_verdict(&c, newd, mnt);
}

#endif

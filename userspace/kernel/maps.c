// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * maps.c - compile a policy document into the BPF maps, atomically.
 *
 * File rules are compiled to inode identities (device, inode) resolved now;
 * the kernel walks a file's dentry chain and looks each ancestor up, so a
 * rule follows its object through symlinks, bind mounts, mount namespaces,
 * renames of ancestors and /proc/self/fd re-opens.  Two gaps of identity
 * rules are closed here: existing hardlinks of files inside a protected
 * subtree get an exact entry of their own (a link elsewhere still names the
 * same inode), and a path that does not exist yet becomes a name rule that
 * refuses its creation under the deepest existing ancestor.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common.h"
#include "kernel/caps.h"
#include "kernel/netent.h"
#include "kernel/maps.h"

#define KG_HARDLINK_SCAN_MAX	20000	/* entries visited per prefix rule */

static int map_fd(struct kg_loader *l, const char *name)
{
	int fd = kg_loader_map_fd(l, name);

	if (fd < 0)
		kg_err("maps: map %s is not loaded", name);
	return fd;
}

/* ---- accumulation of file entries ------------------------------------- */

struct file_acc {
	struct kg_file_key key;
	struct kg_rule_ent ent;
};

struct file_list {
	struct file_acc *v;
	size_t n, cap;
};

static int file_list_add(struct file_list *fl, const struct kg_file_key *key,
			 const struct kg_rule_ent *ent)
{
	struct file_acc *v = kg_grow(fl->v, &fl->cap, fl->n, sizeof(*v), 64);

	if (!v)
		return -ENOMEM;
	fl->v = v;
	fl->v[fl->n].key = *key;
	fl->v[fl->n].ent = *ent;
	fl->n++;
	return 0;
}

/* Same inode together; on one inode an ancestor guard first, then an exact
 * rule (more specific than a subtree rule); then policy order. */
static int file_acc_cmp(const void *a, const void *b)
{
	const struct file_acc *x = a, *y = b;
	int c = memcmp(&x->key, &y->key, sizeof(x->key));

	if (c)
		return c;
	/* an ancestor guard first: it protects what a rule below means */
	if ((x->ent.flags & KG_FILE_F_GUARD) != (y->ent.flags & KG_FILE_F_GUARD))
		return (x->ent.flags & KG_FILE_F_GUARD) ? -1 : 1;
	if ((x->ent.flags & KG_FILE_F_SUBTREE) != (y->ent.flags & KG_FILE_F_SUBTREE))
		return (x->ent.flags & KG_FILE_F_SUBTREE) ? 1 : -1;
	return x->ent.rule_id < y->ent.rule_id ? -1 : x->ent.rule_id > y->ent.rule_id;
}

static void note(struct kg_compile_report *rep, uint32_t num, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct kg_compile_report *rep, uint32_t num, const char *fmt, ...)
{
	struct kg_compile_note *n;
	va_list ap;

	if (!rep)
		return;
	n = realloc(rep->notes, (rep->nnotes + 1) * sizeof(*n));
	if (!n)
		return;
	rep->notes = n;
	n = &rep->notes[rep->nnotes++];
	n->rule_num = num;
	va_start(ap, fmt);
	vsnprintf(n->message, sizeof(n->message), fmt, ap);
	va_end(ap);
}

void kg_compile_report_free(struct kg_compile_report *rep)
{
	if (!rep)
		return;
	free(rep->notes);
	rep->notes = NULL;
	rep->nnotes = 0;
}

/* ---- identities as the hooks see them ------------------------------------
 * A hook keys an inode by (device, inode number) read from the kernel
 * (kg_inode_dev in bpf/walk.bpf.h): the superblock's device, except on
 * btrfs, where it is the subvolume's (what stat(2) reports).  stat(2)'s
 * st_dev is not always the superblock's: on a btrfs subvolume it is the
 * subvolume's, and on overlayfs a file reports the underlying file's
 * device.  So the superblock's device comes from the mount: statx's mount
 * id, looked up in /proc/self/mountinfo, whose major:minor is the
 * superblock's s_dev.  On overlayfs both identities are keyed: the overlay
 * inode (what the hooks see through the overlay) and the underlying file
 * (reached directly, or through a mapping's backing file).
 */
#define KG_BTRFS_MAGIC		0x9123683EUL
#define KG_OVERLAYFS_MAGIC	0x794c7630UL

#define KG_IDENT_MAX	8

struct ident {
	struct { uint64_t dev, ino; } k[KG_IDENT_MAX];	/* every key of the object */
	int n;
	mode_t mode;
	nlink_t nlink;
};

/* One compile at a time (single-threaded): mountinfo read once per compile,
 * and whether the loaded hooks resolve btrfs subvolumes. */
struct mnt_ent {
	int id;
	uint64_t dev;		/* the superblock's (major:minor) */
	char *point, *root;	/* mount point; the file system's directory mounted there */
	char *layers;		/* overlayfs: "upper\nlower1\nlower2..." (malloc'd), else NULL */
};

static struct {
	struct mnt_ent *mnt;
	size_t nmnt;
	bool mnt_loaded;
	int btrfs_ok;		/* -1: not asked yet */
	struct kg_loader *l;
} ident_state = { .btrfs_ok = -1 };

static void ident_begin(struct kg_loader *l)
{
	size_t i;

	for (i = 0; i < ident_state.nmnt; i++) {
		free(ident_state.mnt[i].point);
		free(ident_state.mnt[i].root);
		free(ident_state.mnt[i].layers);
	}
	free(ident_state.mnt);
	memset(&ident_state, 0, sizeof(ident_state));
	ident_state.btrfs_ok = -1;
	ident_state.l = l;
}

/* a copy of a mountinfo field, unescaped (kg_mountinfo_unescape) */
static char *unescape_dup(const char *in, size_t len)
{
	char *out = strndup(in, len);

	if (out)
		kg_mountinfo_unescape(out);
	return out;
}

/* "upperdir=U,lowerdir=A:B,..." -> "U\nA\nB" (upper first: it hides the
 * lowers).  Paths holding ',' or ':' are not split correctly: such a layer
 * is simply not found (the overlay identity is keyed regardless). */
static char *overlay_layers(const char *opts)
{
	const char *keys[] = { "upperdir=", "lowerdir=" };
	char *out = calloc(1, strlen(opts) + 2), *o = out;
	int k;

	if (!out)
		return NULL;
	for (k = 0; k < 2; k++) {
		const char *p = strstr(opts, keys[k]);
		size_t len;

		if (!p || (p != opts && p[-1] != ','))
			continue;
		p += strlen(keys[k]);
		len = strcspn(p, ",");
		for (; len; p++, len--)
			*o++ = *p == ':' ? '\n' : *p;
		*o++ = '\n';
	}
	*o = '\0';
	return out;
}

static void mounts_load(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];

	ident_state.mnt_loaded = true;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char root[4096], point[4096], fstype[64], opts[4096], *dash;
		unsigned int maj, min;
		int id, parent;
		struct mnt_ent *e;
		void *nv;

		if (sscanf(line, "%d %d %u:%u %4095s %4095s", &id, &parent, &maj, &min, root,
			   point) != 6)
			continue;
		nv = realloc(ident_state.mnt, (ident_state.nmnt + 1) * sizeof(*ident_state.mnt));
		if (!nv)
			break;
		ident_state.mnt = nv;
		e = &ident_state.mnt[ident_state.nmnt++];
		memset(e, 0, sizeof(*e));
		e->id = id;
		e->dev = ((uint64_t)maj << 20) | min;
		e->root = unescape_dup(root, strlen(root));
		e->point = unescape_dup(point, strlen(point));
		dash = strstr(line, " - ");
		if (dash && sscanf(dash + 3, "%63s %*s %4095s", fstype, opts) == 2 &&
		    !strcmp(fstype, "overlay")) {
			char *u = unescape_dup(opts, strlen(opts));

			e->layers = u ? overlay_layers(u) : NULL;
			free(u);
		}
	}
	fclose(f);
}

static struct mnt_ent *mount_by_id(int id)
{
	size_t i;

	if (!ident_state.mnt_loaded)
		mounts_load();
	for (i = 0; i < ident_state.nmnt; i++)
		if (ident_state.mnt[i].id == id)
			return &ident_state.mnt[i];
	return NULL;
}

static bool btrfs_hooks_ok(void)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd;

	if (ident_state.btrfs_ok >= 0)
		return ident_state.btrfs_ok;
	ident_state.btrfs_ok = 1;
	/* only the BPF LSM hooks key inodes (Landlock works on paths) */
	if (!ident_state.l || !kg_loader_lsm_active(ident_state.l))
		return true;
	fd = kg_loader_map_fd(ident_state.l, "kg_control");
	if (fd >= 0 && bpf_map_lookup_elem(fd, &zero, &ctl) == 0)
		ident_state.btrfs_ok = !!(ctl.fs_flags & KG_CTL_FS_BTRFS);
	return ident_state.btrfs_ok;
}

static int ident_of(const char *path, bool follow, struct ident *id);
static void overlay_layer_idents_at(const char *path, bool follow, const struct mnt_ent *m,
				    struct ident *id);

static void ident_add(struct ident *id, uint64_t dev, uint64_t ino)
{
	int i;

	for (i = 0; i < id->n; i++)
		if (id->k[i].dev == dev && id->k[i].ino == ino)
			return;
	if (id->n < KG_IDENT_MAX) {
		id->k[id->n].dev = dev;
		id->k[id->n].ino = ino;
		id->n++;
	}
}

/*
 * How deep overlay_layer_idents may follow a layer that is itself under an
 * overlay.  The kernel stacks overlays at most 2 deep
 * (FILESYSTEM_MAX_STACK_DEPTH); a deeper chain is a layer path that names
 * the mount covering it (lowerdir=/etc mounted on /etc): from the mount
 * namespace it is the overlay again, without end.
 */
#define KG_OVERLAY_MAX_DEPTH 4

/* The same object in the layers of the overlay mount m: the topmost copy
 * of a file (the one the overlay shows), every copy of a directory (the
 * overlay merges them).  Keyed too, so the object is matched when reached
 * in its layer directly or through a mapping's backing file. */
static void overlay_layer_idents(const char *path, bool follow, const struct mnt_ent *m,
				 struct ident *id)
{
	static __thread int depth;

	if (depth >= KG_OVERLAY_MAX_DEPTH)
		return;
	depth++;
	overlay_layer_idents_at(path, follow, m, id);
	depth--;
}

static void overlay_layer_idents_at(const char *path, bool follow, const struct mnt_ent *m,
				    struct ident *id)
{
	char real[PATH_MAX], cand[PATH_MAX * 2], dir[PATH_MAX], *slash;
	const char *rel, *layer, *end;
	size_t plen = strlen(m->point);
	struct ident lid;
	int k;

	if (follow) {
		if (!realpath(path, real))
			return;
	} else {
		/* the last component itself, in its resolved directory */
		if (kg_strlcpy(dir, path, sizeof(dir)))
			return;
		slash = strrchr(dir, '/');
		if (!slash)
			return;
		*slash = '\0';
		if (!realpath(dir[0] ? dir : "/", real) ||
		    strlen(real) + strlen(slash + 1) + 2 >= sizeof(real))
			return;
		strcat(real, "/");
		strcat(real, slash + 1);
	}
	if (strncmp(real, m->point, plen) || (real[plen] && real[plen] != '/' && plen > 1))
		return;
	rel = plen > 1 ? real + plen : real;
	for (layer = m->layers; layer && *layer; layer = *end ? end + 1 : end) {
		end = strchr(layer, '\n');
		if (!end)
			end = layer + strlen(layer);
		if (snprintf(cand, sizeof(cand), "%.*s%s%s", (int)(end - layer), layer,
			     strcmp(m->root, "/") ? m->root : "", rel) >= (int)sizeof(cand))
			continue;
		if (ident_of(cand, false, &lid))
			continue;
		for (k = 0; k < lid.n; k++)
			ident_add(id, lid.k[k].dev, lid.k[k].ino);
		if (!S_ISDIR(lid.mode))
			break;	/* a file: the topmost copy is the one shown */
	}
}

/* The identity of path (following a last symlink or not) as the hooks
 * key it.  0 or -errno (-EOPNOTSUPP: on btrfs, but the loaded hooks cannot
 * tell its subvolumes apart). */
static int ident_of(const char *path, bool follow, struct ident *id)
{
	struct statx stx;
	struct statfs sfs;
	struct mnt_ent *m = NULL;
	uint64_t st_dev, sb_dev;
	int fd, err = 0;

	memset(id, 0, sizeof(*id));
	fd = open(path, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return -errno;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_INO | STATX_NLINK | STATX_MNT_ID,
		  &stx) || fstatfs(fd, &sfs))
		err = -errno;
	close(fd);
	if (err)
		return err;
	id->mode = stx.stx_mode;
	id->nlink = stx.stx_nlink;
	st_dev = ((uint64_t)stx.stx_dev_major << 20) | stx.stx_dev_minor;
	if ((unsigned long)sfs.f_type == KG_BTRFS_MAGIC) {
		/* the hooks read the subvolume's device: what stat says */
		if (!btrfs_hooks_ok())
			return -EOPNOTSUPP;
		ident_add(id, st_dev, stx.stx_ino);
		return 0;
	}
	if (stx.stx_mask & STATX_MNT_ID)
		m = mount_by_id((int)stx.stx_mnt_id);
	sb_dev = m ? m->dev : st_dev;
	ident_add(id, sb_dev, stx.stx_ino);
	if ((unsigned long)sfs.f_type == KG_OVERLAYFS_MAGIC && m && m->layers)
		overlay_layer_idents(path, follow, m, id);
	return 0;
}

/* nftw has no user pointer: the scan state lives here (single-threaded). */
static struct {
	struct file_list *fl;
	struct kg_file_key key;
	struct kg_rule_ent ent;
	size_t visited;
	int err;
} hl_scan;

static int hardlink_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (++hl_scan.visited > KG_HARDLINK_SCAN_MAX)
		return 1;
	if (type == FTW_F && S_ISREG(st->st_mode) && st->st_nlink > 1) {
		struct ident id;
		int k;

		if (ident_of(path, false, &id))
			return 0;	/* gone meanwhile */
		for (k = 0; k < id.n; k++) {
			hl_scan.key.dev = id.k[k].dev;
			hl_scan.key.ino = id.k[k].ino;
			hl_scan.err = file_list_add(hl_scan.fl, &hl_scan.key, &hl_scan.ent);
			if (hl_scan.err)
				return 1;
		}
	}
	return 0;
}

/* Existing hardlinks inside a protected subtree: give each such inode an
 * exact entry so that its other names (outside the subtree) match too. */
static int add_hardlinked_files(struct file_list *fl, const char *dir, uint32_t policy_id,
				const struct kg_rule_ent *ent, struct kg_compile_report *rep)
{
	memset(&hl_scan, 0, sizeof(hl_scan));
	hl_scan.fl = fl;
	hl_scan.key.policy_id = policy_id;
	hl_scan.ent = *ent;
	hl_scan.ent.flags &= ~KG_FILE_F_SUBTREE;
	nftw(dir, hardlink_visit, 16, FTW_PHYS | FTW_MOUNT);
	if (hl_scan.visited > KG_HARDLINK_SCAN_MAX)
		note(rep, ent->rule_id, "more than %d entries under %s: hardlinks beyond them "
		     "are only covered when created later (path_link is refused)",
		     KG_HARDLINK_SCAN_MAX, dir);
	return hl_scan.err;
}

/* A rule on a path that does not exist: refuse creating its first missing
 * component under the deepest existing ancestor. */
static int add_name_rule(int fd, const char *path, uint32_t policy_id,
			 const struct kg_rule_ent *ent, struct kg_compile_report *rep)
{
	char buf[PATH_MAX], *slash, *missing = NULL;
	struct kg_name_key key = { .policy_id = policy_id };
	struct kg_rule_ent v = *ent;
	struct ident id;
	int err = -ENOENT, k;

	if (kg_strlcpy(buf, path, sizeof(buf)))
		return -ENAMETOOLONG;
	while ((slash = strrchr(buf, '/'))) {
		if (slash[1])
			missing = slash + 1;
		if (slash == buf) {
			err = ident_of("/", true, &id);
			break;
		}
		*slash = '\0';
		err = ident_of(buf, true, &id);
		if (err != -ENOENT && err != -ENOTDIR)
			break;
	}
	if (err)
		return err;
	if (!missing)
		return -ENOENT;
	key.name_hash = kg_hash_bytes(missing, strcspn(missing, "/"));
	v.ops = KG_OP_BIT(KG_OP_CREATE) | KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_LINK);
	for (k = 0; k < id.n; k++) {
		key.dev = id.k[k].dev;
		key.ino = id.k[k].ino;
		if (bpf_map_update_elem(fd, &key, &v, BPF_ANY))
			return -errno;
	}
	note(rep, ent->rule_id, "%s does not exist: creating it is refused (decision %s)",
	     path, kg_decision_name(ent->decision));
	return 0;
}

/* The identity of path itself (lstat: a symlink is its own object), added
 * as an ancestor guard when it exists. */
static int add_guard(struct file_list *fl, const char *path, uint32_t policy_id,
		     uint32_t rule_id)
{
	struct kg_file_key key = { .policy_id = policy_id };
	struct kg_rule_ent ent = {
		.rule_id = rule_id,
		.ops = KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_UNLINK),
		.decision = KG_DEC_DENY,
		.flags = KG_FILE_F_GUARD,
	};
	struct ident id;
	int err = ident_of(path, false, &id), k;

	if (err)
		return err == -ENOENT || err == -ENOTDIR || err == -EACCES ? 0 : err;
	for (k = 0; k < id.n; k++) {
		key.dev = id.k[k].dev;
		key.ino = id.k[k].ino;
		if (file_list_add(fl, &key, &ent))
			return -ENOMEM;
	}
	return 0;
}

/* Guard every proper prefix of buf ("/a/b/c": /a/b and /a); buf is cut. */
static int guard_prefixes(struct file_list *fl, char *buf, uint32_t policy_id, uint32_t rule_id)
{
	char *slash;
	int err = 0;

	while (!err && (slash = strrchr(buf, '/')) && slash != buf) {
		*slash = '\0';
		err = add_guard(fl, buf, policy_id, rule_id);
	}
	return err;
}

/* Every directory above what a deny/require_approval rule names, as
 * written (symlinks in the path, and the path itself when it is one,
 * included) and as resolved: renaming one of them, or removing and
 * recreating it, would leave the protected object where it is under another
 * name and let the rule's path name something new ("mv .git .g0; cp -r .g0
 * .git"; "mv ~/.config ~/.c; mkdir -p ~/.config/autostart"). */
static int add_ancestor_guards(struct file_list *fl, const char *path, uint32_t policy_id,
			       uint32_t rule_id)
{
	char buf[PATH_MAX], real[PATH_MAX], *slash;
	struct stat st;
	int err;

	if (kg_strlcpy(buf, path, sizeof(buf)))
		return -ENAMETOOLONG;
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		err = add_guard(fl, path, policy_id, rule_id);
		if (err)
			return err;
	}
	err = guard_prefixes(fl, buf, policy_id, rule_id);
	if (err)
		return err;
	/* the deepest existing ancestor, resolved, and everything above it */
	if (kg_strlcpy(buf, path, sizeof(buf)))
		return -ENAMETOOLONG;
	while ((slash = strrchr(buf, '/')) && slash != buf) {
		*slash = '\0';
		if (realpath(buf, real)) {
			err = add_guard(fl, real, policy_id, rule_id);
			return err ? err : guard_prefixes(fl, real, policy_id, rule_id);
		}
	}
	return 0;
}

static bool restricts(enum kg_decision d)
{
	return d == KG_DEC_DENY || d == KG_DEC_REQUIRE_APPROVAL || d == KG_DEC_AUDIT ||
	       d == KG_DEC_THROTTLE;
}

/* the decisions that protect their object's identity (policy/rules.c adds
 * rename, link and unlink to their ops) also protect its place */
static bool guards_ancestors(enum kg_decision d)
{
	return d == KG_DEC_DENY || d == KG_DEC_REQUIRE_APPROVAL;
}

static int compile_file_rule(struct kg_loader *l, struct file_list *fl, const struct kg_rule *r,
			     uint32_t policy_id, struct kg_compile_report *rep)
{
	struct kg_file_key key = { .policy_id = policy_id };
	struct kg_rule_ent ent = {
		.rule_id = r->num,
		.ops = r->kind == KG_RULE_UNIX ? KG_OP_BIT(KG_OP_UNIX_CONNECT) : r->ops,
		.decision = r->decision,
		.flags = r->prefix ? KG_FILE_F_SUBTREE : 0,
	};
	struct ident id;
	int fd, err, k;

	if (guards_ancestors(r->decision)) {
		int err = add_ancestor_guards(fl, r->path, policy_id, r->num);

		if (err)
			return kg_err("maps: rule '%s': cannot resolve the directories above %s: %s",
				      r->id, r->path, strerror(-err));
	}
	err = ident_of(r->path, true, &id);
	if (err == -EOPNOTSUPP)
		return kg_err("maps: rule '%s': %s is on btrfs, but kgate's file hooks were loaded "
			      "without btrfs's type information (the btrfs module was not loaded "
			      "then) and cannot tell its subvolumes apart: stop every kgate job "
			      "and the daemon, remove the pins (%s), and start again", r->id,
			      r->path, kg_pin_dir());
	if (err) {
		if (err != -ENOENT && err != -ENOTDIR)
			return kg_err("maps: rule '%s': cannot resolve %s: %s", r->id, r->path,
				      strerror(-err));
		if (!restricts(r->decision)) {
			note(rep, r->num, "%s does not exist: rule has no effect until it does",
			     r->path);
			return 0;
		}
		fd = map_fd(l, "kg_name_rules");
		if (fd < 0)
			return -ENOENT;
		if (rep)
			rep->name_entries++;
		return add_name_rule(fd, r->path, policy_id, &ent, rep);
	}
	for (k = 0; k < id.n; k++) {
		key.dev = id.k[k].dev;
		key.ino = id.k[k].ino;
		if (file_list_add(fl, &key, &ent))
			return -ENOMEM;
	}
	if (r->prefix && S_ISDIR(id.mode) && restricts(r->decision))
		return add_hardlinked_files(fl, r->path, policy_id, &ent, rep);
	return 0;
}

static int flush_file_rules(struct kg_loader *l, struct file_list *fl,
			    struct kg_compile_report *rep)
{
	int fd = map_fd(l, "kg_file_rules");
	size_t i = 0;

	if (fd < 0)
		return -ENOENT;
	if (fl->n)
		qsort(fl->v, fl->n, sizeof(*fl->v), file_acc_cmp);
	while (i < fl->n) {
		struct kg_file_rule val = {};
		size_t j = i;
		int k = 0;

		for (; j < fl->n && !memcmp(&fl->v[j].key, &fl->v[i].key, sizeof(fl->v[i].key)); j++) {
			if (k > 0 && val.ent[k - 1].rule_id == fl->v[j].ent.rule_id &&
			    val.ent[k - 1].flags == fl->v[j].ent.flags)
				continue;	/* same rule reached twice (hardlink scan) */
			if (k > 0 && (fl->v[j].ent.flags & KG_FILE_F_GUARD))
				continue;	/* one guard per directory is enough */
			if (k == KG_FILE_ENTS)
				return kg_err("maps: more than %d rules on one file (rule '%u' and "
					      "earlier): merge them", KG_FILE_ENTS,
					      fl->v[j].ent.rule_id);
			val.ent[k++] = fl->v[j].ent;
		}
		if (bpf_map_update_elem(fd, &fl->v[i].key, &val, BPF_ANY))
			return kg_err("maps: kg_file_rules update: %s", strerror(errno));
		if (rep)
			rep->file_entries++;
		i = j;
	}
	return 0;
}

/* ---- network ------------------------------------------------------------ */

struct net_acc {
	unsigned int plen;		/* 0..128 */
	uint8_t addr[16];		/* masked */
	struct kg_net_ent own[KG_NET_ENTS];
	int nown;
	uint32_t first_rule;
};

static void mask_addr(uint8_t *a, unsigned int plen)
{
	unsigned int i;

	for (i = 0; i < 16; i++) {
		unsigned int bits = plen > i * 8 ? plen - i * 8 : 0;

		if (bits >= 8)
			continue;
		a[i] &= (uint8_t)(0xff00 >> bits);
	}
}

static int net_acc_cmp(const void *a, const void *b)
{
	const struct net_acc *x = a, *y = b;

	if (x->plen != y->plen)
		return x->plen < y->plen ? -1 : 1;
	return memcmp(x->addr, y->addr, 16);
}

static int net_ent_cmp(const void *a, const void *b)
{
	const struct kg_net_ent *x = a, *y = b;
	unsigned int wx = x->port_hi - x->port_lo, wy = y->port_hi - y->port_lo;

	if (wx != wy)
		return wx < wy ? -1 : 1;	/* narrower port range first */
	if (!x->proto != !y->proto)
		return x->proto ? -1 : 1;	/* a specific protocol first */
	return x->rule_id < y->rule_id ? -1 : x->rule_id > y->rule_id;
}

static struct net_acc *net_find(struct net_acc *v, size_t n, unsigned int plen, const uint8_t *addr)
{
	struct net_acc k = { .plen = plen };

	memcpy(k.addr, addr, 16);
	mask_addr(k.addr, plen);
	return bsearch(&k, v, n, sizeof(*v), net_acc_cmp);
}

static int compile_net_rules(struct kg_loader *l, const struct kg_policy_doc *doc,
			     uint32_t policy_id, struct kg_compile_report *rep)
{
	struct net_acc *v = NULL;
	size_t n = 0, i, w;
	int fd, err = 0;

	fd = map_fd(l, "kg_net_rules");
	if (fd < 0)
		return -ENOENT;
	v = calloc(doc->nrules ? doc->nrules : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (r->kind != KG_RULE_NET)
			continue;
		v[n].plen = r->prefixlen;
		memcpy(v[n].addr, r->addr, 16);
		mask_addr(v[n].addr, r->prefixlen);
		v[n].first_rule = r->num;
		n++;
	}
	qsort(v, n, sizeof(*v), net_acc_cmp);
	/* merge duplicates of one prefix */
	for (i = 0, w = 0; i < n; i++) {
		if (w && !net_acc_cmp(&v[w - 1], &v[i]))
			continue;
		v[w++] = v[i];
	}
	n = w;
	/* own entries */
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];
		struct net_acc *a;
		size_t p, np;

		if (r->kind != KG_RULE_NET)
			continue;
		a = net_find(v, n, r->prefixlen, r->addr);
		np = r->nports ? r->nports : 1;
		for (p = 0; p < np; p++) {
			if (!a || a->nown == KG_NET_ENTS) {
				err = kg_err("maps: rule '%s': more than %d port/protocol entries on "
					     "one prefix", r->id, KG_NET_ENTS);
				goto out;
			}
			a->own[a->nown++] = kg_net_ent_of(r, p);
		}
	}
	/* each prefix: its own entries, then those of every covering prefix */
	for (i = 0; i < n; i++) {
		struct kg_net_key key = { .prefixlen = 32 + v[i].plen, .policy_id = htonl(policy_id) };
		struct kg_net_rule val = {};
		int k = 0, len;

		qsort(v[i].own, v[i].nown, sizeof(v[i].own[0]), net_ent_cmp);
		for (len = v[i].plen; len >= 0; len--) {
			struct net_acc *c = len == (int)v[i].plen ? &v[i] :
					    net_find(v, n, len, v[i].addr);
			int j;

			if (!c)
				continue;
			for (j = 0; j < c->nown; j++) {
				if (k == KG_NET_ENTS) {
					const struct kg_rule *r = kg_policy_rule_by_num(doc, v[i].first_rule);

					err = kg_err("maps: rule '%s': with the rules of wider prefixes it "
						     "needs more than %d entries", r ? r->id : "?",
						     KG_NET_ENTS);
					goto out;
				}
				val.ent[k++] = c->own[j];
			}
		}
		memcpy(key.addr, v[i].addr, 16);
		if (bpf_map_update_elem(fd, &key, &val, BPF_ANY)) {
			err = kg_err("maps: kg_net_rules update: %s", strerror(errno));
			goto out;
		}
		if (rep)
			rep->net_entries++;
	}
out:
	free(v);
	return err;
}

static int compile_unix_abstract(struct kg_loader *l, const struct kg_rule *r, uint32_t policy_id,
				 struct kg_compile_report *rep)
{
	struct kg_unix_key key = { .policy_id = policy_id };
	struct kg_rule_ent ent = {
		.rule_id = r->num, .ops = KG_OP_BIT(KG_OP_UNIX_CONNECT), .decision = r->decision,
	};
	int fd = map_fd(l, "kg_unix_abstract");

	if (fd < 0)
		return -ENOENT;
	key.name_hash = kg_hash_bytes(r->unix_abstract, strlen(r->unix_abstract));
	if (bpf_map_update_elem(fd, &key, &ent, BPF_ANY))
		return kg_err("maps: kg_unix_abstract update: %s", strerror(errno));
	if (rep)
		rep->unix_entries++;
	return 0;
}

static int compile_throttle(struct kg_loader *l, const struct kg_rule *r, uint32_t policy_id)
{
	struct kg_rule_key key = { .policy_id = policy_id, .rule_id = r->num };
	struct kg_rule_params p = { .rate_per_sec = r->rate_per_sec, .burst = r->burst };
	int fd = map_fd(l, "kg_rule_params");

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_update_elem(fd, &key, &p, BPF_ANY))
		return kg_err("maps: kg_rule_params update: %s", strerror(errno));
	return 0;
}

static bool net_restricts(enum kg_decision d)
{
	return d != KG_DEC_NONE && d != KG_DEC_ALLOW && d != KG_DEC_AUDIT;
}

/* ICMP datagram ("ping") sockets, and raw inet sockets when no socket rule
 * decides them: what they send reaches no cgroup hook (only connect()
 * does), so they are decided when created.  A socket rule's allow_icmp
 * says; else they are allowed only when the policy restricts no network
 * destination (net default allow/audit, no net rule that refuses, holds
 * or throttles anything), and refused with that rule otherwise. */
static void fill_icmp(const struct kg_policy_doc *doc, struct kg_policy *p)
{
	size_t i;

	p->icmp_allow = 1;
	p->icmp_decision = KG_DEC_DENY;
	p->icmp_rule_id = 0;
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (r->kind == KG_RULE_SOCKET && r->allow_icmp_set) {
			p->icmp_allow = r->allow_icmp;
			p->icmp_decision = r->decision;
			p->icmp_rule_id = r->num;
			return;
		}
	}
	if (net_restricts(doc->class_default[KG_CLASS_NET]))
		p->icmp_allow = 0;
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (r->kind == KG_RULE_NET && net_restricts(r->decision)) {
			p->icmp_allow = 0;
			p->icmp_rule_id = p->icmp_rule_id ? p->icmp_rule_id : r->num;
		}
	}
	if (!p->icmp_allow && net_restricts(doc->class_default[KG_CLASS_NET]))
		p->icmp_rule_id = 0;	/* the net default refuses: reported as such */
}

static void fill_policy_entry(const struct kg_policy_doc *doc, struct kg_policy *p)
{
	size_t i;
	int c;

	memset(p, 0, sizeof(*p));
	/* names this generation in the file hooks' decision cache; a failed
	 * getrandom leaves a clock value, still unique enough per install */
	if (getrandom(&p->serial, sizeof(p->serial), 0) != sizeof(p->serial))
		p->serial = kg_now_mono_ns() ^ ((uint64_t)getpid() << 40);
	for (c = 0; c < KG_CLASS_MAX; c++)
		p->default_decision[c] = doc->class_default[c];
	/* fileless exec (memfd, O_TMPFILE, deleted files) is never governed by a
	 * path rule, so it is refused outright for governed jobs */
	p->flags = KG_POL_F_EXEC_NO_FILELESS;
	/* lsm/capable refuses the rest (and KG_CAPS_KEPT must say the same) */
	p->caps_allow = kg_caps_kept() | doc->system_access;
	/* outside.bpf.c refuses the other members' names */
	p->outside_allow = doc->outside_grant;
	if (doc->fail_mode == KG_FAIL_OPEN) {
		p->flags |= KG_POL_F_FAIL_OPEN;
		p->heartbeat_timeout_ns = 10ull * 1000000000ull;
	}
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (r->kind == KG_RULE_FILE || r->kind == KG_RULE_EXEC)
			p->file_ops_ruled |= r->ops;
		if (r->kind == KG_RULE_UNIX && !r->unix_abstract)
			p->file_ops_ruled |= KG_OP_BIT(KG_OP_UNIX_CONNECT);
		if (r->kind != KG_RULE_SOCKET)
			continue;
		p->socket_family_allow |= r->families;
		p->allow_raw_sockets = r->allow_raw;
		p->socket_decision = r->decision;
		p->socket_rule_id = r->num;
	}
	fill_icmp(doc, p);
	if (doc->cooldown_threshold) {
		p->cooldown_threshold = doc->cooldown_threshold;
		p->cooldown_window_ns = doc->cooldown_window_sec * 1000000000ull;
		p->cooldown_ns = doc->cooldown_sec * 1000000000ull;
	}
}

static int new_policy_id(int pol_fd, uint32_t *out)
{
	struct kg_policy p;
	int tries;

	for (tries = 0; tries < 64; tries++) {
		uint32_t id;

		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			return -errno;
		id &= 0x7fffffff;
		if (!id || bpf_map_lookup_elem(pol_fd, &id, &p) == 0)
			continue;
		*out = id;
		return 0;
	}
	return -EEXIST;
}

int kg_maps_install(struct kg_loader *l, const struct kg_policy_doc *doc,
		    uint32_t *policy_id_out, struct kg_compile_report *rep)
{
	struct file_list fl = {};
	struct kg_policy pol;
	uint32_t id;
	size_t i;
	int pol_fd, err;

	pol_fd = map_fd(l, "kg_policies");
	if (pol_fd < 0)
		return -ENOENT;
	err = new_policy_id(pol_fd, &id);
	if (err)
		return kg_err("maps: cannot allocate a policy id: %s", strerror(-err));
	ident_begin(l);
	for (i = 0; i < doc->nrules && !err; i++) {
		const struct kg_rule *r = &doc->rules[i];

		switch (r->kind) {
		case KG_RULE_FILE:
		case KG_RULE_EXEC:
			err = compile_file_rule(l, &fl, r, id, rep);
			break;
		case KG_RULE_UNIX:
			err = r->unix_abstract ? compile_unix_abstract(l, r, id, rep)
					       : compile_file_rule(l, &fl, r, id, rep);
			break;
		default:
			break;
		}
		if (!err && r->decision == KG_DEC_THROTTLE && r->kind != KG_RULE_SYSCALL)
			err = compile_throttle(l, r, id);
	}
	if (!err)
		err = flush_file_rules(l, &fl, rep);
	if (!err)
		err = compile_net_rules(l, doc, id, rep);
	free(fl.v);
	ident_begin(NULL);	/* (frees the mount table) */
	if (!err) {
		/* last: the generation becomes usable only once it is complete */
		fill_policy_entry(doc, &pol);
		if (bpf_map_update_elem(pol_fd, &id, &pol, BPF_NOEXIST))
			err = kg_err("maps: kg_policies update: %s", strerror(errno));
	}
	if (err) {
		kg_maps_remove_policy(l, id);
		return err < 0 ? err : -EINVAL;
	}
	*policy_id_out = id;
	return 0;
}

/* Delete every key of one map whose field at id_off equals id (id_len bytes). */
static void delete_matching(struct kg_loader *l, const char *name, size_t key_size,
			    size_t id_off, const void *id, size_t id_len)
{
	int fd = kg_loader_map_fd(l, name);
	unsigned char *keys = NULL, *prev = NULL, cur[64], next[64];
	size_t n = 0, cap = 0, i;

	if (fd < 0 || key_size > sizeof(cur))
		return;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (!memcmp(next + id_off, id, id_len)) {
			if (n == cap) {
				unsigned char *nk;

				cap = cap ? cap * 2 : 256;
				nk = realloc(keys, cap * key_size);
				if (!nk)
					break;
				keys = nk;
			}
			memcpy(keys + n * key_size, next, key_size);
			n++;
		}
		memcpy(cur, next, key_size);
		prev = cur;
	}
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(fd, keys + i * key_size);
	free(keys);
}

int kg_maps_add_job(struct kg_loader *l, uint64_t cgid, uint64_t job_id,
		    uint32_t policy_id, uint32_t flags)
{
	struct kg_job job = { .job_id = job_id, .policy_id = policy_id, .flags = flags };
	struct kg_job_state st = {};
	int fd = map_fd(l, "kg_jobs"), sfd = map_fd(l, "kg_job_state");

	if (fd < 0 || sfd < 0)
		return -ENOENT;
	bpf_map_update_elem(sfd, &cgid, &st, BPF_ANY);
	if (bpf_map_update_elem(fd, &cgid, &job, BPF_NOEXIST))
		return kg_err("maps: cannot register job cgroup %llu: %s",
			      (unsigned long long)cgid, strerror(errno));
	return 0;
}

int kg_maps_get_job(struct kg_loader *l, uint64_t cgid, struct kg_job *out)
{
	int fd = map_fd(l, "kg_jobs");

	if (fd < 0)
		return -ENOENT;
	return bpf_map_lookup_elem(fd, &cgid, out) ? -errno : 0;
}

int kg_maps_switch_job(struct kg_loader *l, uint64_t cgid, uint32_t new_policy_id,
		       uint32_t *old_policy_id)
{
	struct kg_job job;
	int fd = map_fd(l, "kg_jobs");

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(fd, &cgid, &job))
		return kg_err("maps: job cgroup %llu is not governed", (unsigned long long)cgid);
	if (old_policy_id)
		*old_policy_id = job.policy_id;
	job.policy_id = new_policy_id;
	/* one element update: hooks see the old id or the new one, never a mix */
	if (bpf_map_update_elem(fd, &cgid, &job, BPF_EXIST))
		return kg_err("maps: switch job %llu: %s", (unsigned long long)cgid, strerror(errno));
	return 0;
}

int kg_maps_remove_job(struct kg_loader *l, uint64_t cgid)
{
	int fd = map_fd(l, "kg_jobs"), sfd = map_fd(l, "kg_job_state");

	if (fd < 0)
		return -ENOENT;
	if (sfd >= 0)
		bpf_map_delete_elem(sfd, &cgid);
	if (bpf_map_delete_elem(fd, &cgid) && errno != ENOENT)
		return -errno;
	/* its grants can never be used again: they must not fill the map */
	kg_maps_sweep_grants(l, cgid);
	delete_matching(l, "kg_throttle", sizeof(struct kg_throttle_key),
			offsetof(struct kg_throttle_key, cgid), &cgid, sizeof(cgid));
	return 0;
}

int kg_maps_policy_in_use(struct kg_loader *l, uint32_t policy_id)
{
	uint64_t key, next;
	struct kg_job job;
	int fd = map_fd(l, "kg_jobs");
	void *prev = NULL;

	if (fd < 0)
		return -ENOENT;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &job) == 0 && job.policy_id == policy_id)
			return 1;
		key = next;
		prev = &key;
	}
	return 0;
}

int kg_maps_wait_readers(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, o);
	int inner, outer, err = 0;
	uint32_t zero = 0;

	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kg_rcu_inner", 4, 4, 1, NULL);
	o.inner_map_fd = inner;
	outer = inner < 0 ? -1 : bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "kg_rcu_sync", 4, 4,
						  1, &o);
	/* the kernel answers an update of a map-in-map only after
	 * synchronize_rcu() (maybe_wait_bpf_programs): every BPF program that
	 * was running when we asked has returned */
	if (outer < 0 || bpf_map_update_elem(outer, &zero, &inner, BPF_ANY))
		err = -errno;
	if (outer >= 0)
		close(outer);
	if (inner >= 0)
		close(inner);
	if (err) {
		/* no map-in-map here: a hook runs for microseconds; wait far longer */
		usleep(200 * 1000);
	}
	return err;
}

static void *wait_readers_thread(void *arg)
{
	(void)arg;
	kg_maps_wait_readers();
	return NULL;
}

void kg_maps_wait_readers_start(struct kg_readers_wait *w)
{
	w->started = pthread_create(&w->thread, NULL, wait_readers_thread, NULL) == 0;
}

void kg_maps_wait_readers_finish(struct kg_readers_wait *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	else
		kg_maps_wait_readers();
	w->started = false;
}

int kg_maps_remove_policy(struct kg_loader *l, uint32_t policy_id)
{
	/* a hook that read this id from a job entry before the job was
	 * switched may still be matching against it: let every running
	 * program finish first, or it could find its rules half deleted and
	 * fall back to the class default */
	kg_maps_wait_readers();
	return kg_maps_delete_policy(l, policy_id);
}

int kg_maps_delete_policy(struct kg_loader *l, uint32_t policy_id)
{
	int pol_fd = kg_loader_map_fd(l, "kg_policies");
	uint32_t be_id = htonl(policy_id);

	/* the policy entry first: a job still pointing here now fails closed */
	if (pol_fd >= 0)
		bpf_map_delete_elem(pol_fd, &policy_id);
	delete_matching(l, "kg_file_rules", sizeof(struct kg_file_key),
			offsetof(struct kg_file_key, policy_id), &policy_id, sizeof(policy_id));
	delete_matching(l, "kg_name_rules", sizeof(struct kg_name_key),
			offsetof(struct kg_name_key, policy_id), &policy_id, sizeof(policy_id));
	delete_matching(l, "kg_net_rules", sizeof(struct kg_net_key),
			offsetof(struct kg_net_key, policy_id), &be_id, sizeof(be_id));
	delete_matching(l, "kg_unix_abstract", sizeof(struct kg_unix_key),
			offsetof(struct kg_unix_key, policy_id), &policy_id, sizeof(policy_id));
	delete_matching(l, "kg_rule_params", sizeof(struct kg_rule_key),
			offsetof(struct kg_rule_key, policy_id), &policy_id, sizeof(policy_id));
	return 0;
}

int kg_maps_set_jobs_root(struct kg_loader *l, const char *cgroup_dir)
{
	uint32_t zero = 0;
	int fd = map_fd(l, "kg_jobs_root"), cg, err = 0;

	if (fd < 0)
		return -ENOENT;
	cg = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return kg_err("maps: cannot open %s: %s", cgroup_dir, strerror(errno));
	if (bpf_map_update_elem(fd, &zero, &cg, BPF_ANY))
		err = kg_err("maps: kg_jobs_root update: %s", strerror(errno));
	close(cg);
	return err;
}

int kg_maps_set_root_slot(struct kg_loader *l, uint32_t slot, int cgroup_fd)
{
	int fd = map_fd(l, "kg_jobs_root");

	if (fd < 0)
		return -ENOENT;
	if (slot == 0 || slot >= KG_MAX_ROOTS)
		return -EINVAL;
	if (cgroup_fd >= 0 ? bpf_map_update_elem(fd, &slot, &cgroup_fd, BPF_ANY) :
			     bpf_map_delete_elem(fd, &slot) && errno != ENOENT)
		return kg_err("maps: kg_jobs_root slot %u: %s", slot, strerror(errno)), -errno;
	return 0;
}

int kg_maps_set_roots_used(struct kg_loader *l, uint32_t used)
{
	int fd = map_fd(l, "kg_roots_used");
	uint32_t zero = 0;

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_update_elem(fd, &zero, &used, BPF_ANY))
		return kg_err("maps: kg_roots_used: %s", strerror(errno)), -errno;
	return 0;
}

int kg_grants_put_fd(int grants_fd, int jobs_fd, const struct kg_grant_key *key,
		     const struct kg_grant *g)
{
	if (bpf_map_update_elem(grants_fd, key, g, BPF_ANY) == 0)
		return 0;
	if (errno != E2BIG && errno != ENOMEM)
		return -errno;
	/* full: make room from grants nobody can use any more, then retry */
	if (kg_grants_sweep_fd(grants_fd, jobs_fd, 0) <= 0)
		return -E2BIG;
	return bpf_map_update_elem(grants_fd, key, g, BPF_ANY) ? -errno : 0;
}

int kg_maps_put_grant(struct kg_loader *l, const struct kg_grant_key *key, const struct kg_grant *g)
{
	int fd = map_fd(l, "kg_grants");

	if (fd < 0)
		return -ENOENT;
	return kg_grants_put_fd(fd, kg_loader_map_fd(l, "kg_jobs"), key, g);
}

static bool grant_dead(int jobs_fd, const struct kg_grant_key *k, const struct kg_grant *g,
		       uint64_t now, uint64_t only_cgid)
{
	struct kg_job job;

	if (only_cgid)
		return k->cgid == only_cgid;
	if (!g->uses_left || (g->expires_ns && g->expires_ns < now))
		return true;
	if (jobs_fd < 0)
		return false;
	if (bpf_map_lookup_elem(jobs_fd, &k->cgid, &job))
		return errno == ENOENT;		/* the job is gone */
	return job.policy_id != g->policy_id;	/* a grant never outlives its generation */
}

int kg_grants_sweep_fd(int grants_fd, int jobs_fd, uint64_t only_cgid)
{
	struct kg_grant_key cur, next, *dead = NULL;
	uint64_t now = kg_now_mono_ns();
	size_t n = 0, cap = 0, i;
	struct kg_grant g;
	bool first = true;
	int deleted = 0;

	if (grants_fd < 0)
		return -EBADF;
	/* collect first: deleting while iterating a hash map restarts the walk */
	while (bpf_map_get_next_key(grants_fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (bpf_map_lookup_elem(grants_fd, &cur, &g) ||
		    !grant_dead(jobs_fd, &cur, &g, now, only_cgid))
			continue;
		if (n == cap) {
			struct kg_grant_key *nd;

			cap = cap ? cap * 2 : 64;
			nd = realloc(dead, cap * sizeof(*nd));
			if (!nd)
				break;
			dead = nd;
		}
		dead[n++] = cur;
	}
	for (i = 0; i < n; i++)
		if (bpf_map_delete_elem(grants_fd, &dead[i]) == 0)
			deleted++;
	free(dead);
	return deleted;
}

int kg_maps_sweep_grants(struct kg_loader *l, uint64_t only_cgid)
{
	int fd = map_fd(l, "kg_grants");

	if (fd < 0)
		return -ENOENT;
	return kg_grants_sweep_fd(fd, kg_loader_map_fd(l, "kg_jobs"), only_cgid);
}

int kg_maps_heartbeat(struct kg_loader *l)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd = map_fd(l, "kg_control");

	if (fd < 0)
		return -ENOENT;
	bpf_map_lookup_elem(fd, &zero, &ctl);
	ctl.heartbeat_ns = kg_now_mono_ns();
	ctl.lsm_active = kg_loader_lsm_active(l);
	return bpf_map_update_elem(fd, &zero, &ctl, BPF_ANY) ? -errno : 0;
}

struct kg_heartbeat {
	struct kg_loader *l;
	unsigned int period_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* CLOCK_MONOTONIC */
	bool stop;
};

static void *heartbeat_main(void *arg)
{
	struct kg_heartbeat *h = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		kg_maps_heartbeat(h->l);	/* a map update: no loader state changes */
		next.tv_nsec += (long)(h->period_ms % 1000) * 1000000L;
		next.tv_sec += h->period_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		while (!h->stop && pthread_cond_timedwait(&h->cond, &h->lock, &next) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct kg_heartbeat *kg_heartbeat_start(struct kg_loader *l, unsigned int period_ms)
{
	struct kg_heartbeat *h = calloc(1, sizeof(*h));
	pthread_condattr_t ca;
	int err;

	if (!h)
		return NULL;
	h->l = l;
	h->period_ms = period_ms ? period_ms : 250;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	err = pthread_create(&h->thread, NULL, heartbeat_main, h);
	if (err) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		errno = err;
		return NULL;
	}
	return h;
}

void kg_heartbeat_stop(struct kg_heartbeat *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int kg_maps_read_counters(struct kg_loader *l, struct kg_counters *sum)
{
	return kg_maps_read_counters_fd(map_fd(l, "kg_counters"), sum);
}

int kg_maps_read_counters_fd(int fd, struct kg_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	struct kg_counters *per;
	uint32_t zero = 0;
	size_t k;

	memset(sum, 0, sizeof(*sum));
	if (fd < 0 || ncpu <= 0)
		return -ENOENT;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		free(per);
		return -errno;
	}
	for (c = 0; c < ncpu; c++) {
		const uint64_t *src = (const uint64_t *)&per[c];
		uint64_t *dst = (uint64_t *)sum;

		for (k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++)
			dst[k] += src[k];
	}
	free(per);
	return 0;
}

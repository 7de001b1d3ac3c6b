// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * image.c - compile a policy document into the entries of the maps (an
 * image), without a BPF call: see image.h.
 *
 * File rules are compiled to inode identities (device, inode) resolved now;
 * the kernel walks a file's dentry chain and looks each ancestor up, so a
 * rule follows its object through symlinks, bind mounts, mount namespaces,
 * renames of ancestors and /proc/self/fd re-opens.  Two gaps of identity
 * rules are closed here: existing hardlinks of files inside a protected
 * subtree get an exact entry of their own (a link elsewhere still names the
 * same inode), and a path that does not exist yet becomes a name rule that
 * refuses its creation under the deepest existing ancestor.
 *
 * Errors follow the convention of docs/design.md "Errors": -errno, logged
 * here (where the rule and the path are known), not again by the callers.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common.h"
#include "kernel/caps.h"
#include "kernel/image.h"
#include "kernel/netent.h"

#define KG_HARDLINK_SCAN_MAX	20000	/* entries visited per prefix rule */

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

/* ---- the image's entries, in the order they are made ------------------------ */

static int image_add_file(struct kg_image *img, const struct kg_file_key *key,
			  const struct kg_file_rule *val)
{
	struct kg_image_file *v = kg_grow(img->file, &img->cap_file, img->nfile, sizeof(*v), 64);

	if (!v)
		return -ENOMEM;
	img->file = v;
	v[img->nfile++] = (struct kg_image_file){ .key = *key, .val = *val };
	return 0;
}

static int image_add_name(struct kg_image *img, const struct kg_name_key *key,
			  const struct kg_rule_ent *val)
{
	struct kg_image_name *v = kg_grow(img->name, &img->cap_name, img->nname, sizeof(*v), 8);

	if (!v)
		return -ENOMEM;
	img->name = v;
	v[img->nname++] = (struct kg_image_name){ .key = *key, .val = *val };
	return 0;
}

static int image_add_net(struct kg_image *img, const struct kg_net_key *key,
			 const struct kg_net_rule *val)
{
	struct kg_image_net *v = kg_grow(img->net, &img->cap_net, img->nnet, sizeof(*v), 16);

	if (!v)
		return -ENOMEM;
	img->net = v;
	v[img->nnet++] = (struct kg_image_net){ .key = *key, .val = *val };
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

static void note(struct kg_image *img, uint32_t num, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct kg_image *img, uint32_t num, const char *fmt, ...)
{
	struct kg_compile_note *n;
	va_list ap;

	n = realloc(img->notes, (img->nnotes + 1) * sizeof(*n));
	if (!n)
		return;
	img->notes = n;
	n = &img->notes[img->nnotes++];
	n->rule_num = num;
	va_start(ap, fmt);
	vsnprintf(n->message, sizeof(n->message), fmt, ap);
	va_end(ap);
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
 * and whether the loaded hooks resolve btrfs subvolumes (the options). */
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
	bool btrfs_blind;	/* kg_image_opts.btrfs_blind */
} ident_state;

/* Start a compile with opts (NULL: none); ident_begin(NULL) at its end
 * frees the mount table. */
static void ident_begin(const struct kg_image_opts *opts)
{
	size_t i;

	for (i = 0; i < ident_state.nmnt; i++) {
		free(ident_state.mnt[i].point);
		free(ident_state.mnt[i].root);
		free(ident_state.mnt[i].layers);
	}
	free(ident_state.mnt);
	memset(&ident_state, 0, sizeof(ident_state));
	ident_state.btrfs_blind = opts && opts->btrfs_blind;
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
		if (ident_state.btrfs_blind)
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
static int add_hardlinked_files(struct kg_image *img, struct file_list *fl, const char *dir,
				const struct kg_rule_ent *ent)
{
	memset(&hl_scan, 0, sizeof(hl_scan));
	hl_scan.fl = fl;
	hl_scan.ent = *ent;
	hl_scan.ent.flags &= ~KG_FILE_F_SUBTREE;
	nftw(dir, hardlink_visit, 16, FTW_PHYS | FTW_MOUNT);
	if (hl_scan.visited > KG_HARDLINK_SCAN_MAX)
		note(img, ent->rule_id, "more than %d entries under %s: hardlinks beyond them "
		     "are only covered when created later (path_link is refused)",
		     KG_HARDLINK_SCAN_MAX, dir);
	return hl_scan.err;
}

/* A rule on a path that does not exist: refuse creating its first missing
 * component under the deepest existing ancestor. */
static int add_name_rule(struct kg_image *img, const char *path, const struct kg_rule_ent *ent)
{
	char buf[PATH_MAX], *slash, *missing = NULL;
	struct kg_name_key key = {};
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
		if (image_add_name(img, &key, &v))
			return -ENOMEM;
	}
	note(img, ent->rule_id, "%s does not exist: creating it is refused (decision %s)",
	     path, kg_decision_name(ent->decision));
	return 0;
}

/* The identity of path itself (lstat: a symlink is its own object), added
 * as an ancestor guard when it exists. */
static int add_guard(struct file_list *fl, const char *path, uint32_t rule_id)
{
	struct kg_file_key key = {};
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
static int guard_prefixes(struct file_list *fl, char *buf, uint32_t rule_id)
{
	char *slash;
	int err = 0;

	while (!err && (slash = strrchr(buf, '/')) && slash != buf) {
		*slash = '\0';
		err = add_guard(fl, buf, rule_id);
	}
	return err;
}

/* Every directory above what a deny/require_approval rule names, as
 * written (symlinks in the path, and the path itself when it is one,
 * included) and as resolved: renaming one of them, or removing and
 * recreating it, would leave the protected object where it is under another
 * name and let the rule's path name something new ("mv .git .g0; cp -r .g0
 * .git"; "mv ~/.config ~/.c; mkdir -p ~/.config/autostart"). */
static int add_ancestor_guards(struct file_list *fl, const char *path, uint32_t rule_id)
{
	char buf[PATH_MAX], real[PATH_MAX], *slash;
	struct stat st;
	int err;

	if (kg_strlcpy(buf, path, sizeof(buf)))
		return -ENAMETOOLONG;
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		err = add_guard(fl, path, rule_id);
		if (err)
			return err;
	}
	err = guard_prefixes(fl, buf, rule_id);
	if (err)
		return err;
	/* the deepest existing ancestor, resolved, and everything above it */
	if (kg_strlcpy(buf, path, sizeof(buf)))
		return -ENAMETOOLONG;
	while ((slash = strrchr(buf, '/')) && slash != buf) {
		*slash = '\0';
		if (realpath(buf, real)) {
			err = add_guard(fl, real, rule_id);
			return err ? err : guard_prefixes(fl, real, rule_id);
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

static int compile_file_rule(struct kg_image *img, struct file_list *fl, const struct kg_rule *r)
{
	struct kg_file_key key = {};
	struct kg_rule_ent ent = {
		.rule_id = r->num,
		.ops = r->kind == KG_RULE_UNIX ? KG_OP_BIT(KG_OP_UNIX_CONNECT) : r->ops,
		.decision = r->decision,
		.flags = r->prefix ? KG_FILE_F_SUBTREE : 0,
	};
	struct ident id;
	int err, k;

	if (guards_ancestors(r->decision)) {
		err = add_ancestor_guards(fl, r->path, r->num);
		if (err)
			return kg_err("maps: rule '%s': cannot resolve the directories above %s: %s",
				      r->id, r->path, strerror(-err)), err;
	}
	err = ident_of(r->path, true, &id);
	if (err == -EOPNOTSUPP)
		return kg_err("maps: rule '%s': %s is on btrfs, but kgate's file hooks were loaded "
			      "without btrfs's type information (the btrfs module was not loaded "
			      "then) and cannot tell its subvolumes apart: stop every kgate job "
			      "and the daemon, remove the pins (%s), and start again", r->id,
			      r->path, kg_pin_dir()), err;
	if (err) {
		if (err != -ENOENT && err != -ENOTDIR)
			return kg_err("maps: rule '%s': cannot resolve %s: %s", r->id, r->path,
				      strerror(-err)), err;
		if (!restricts(r->decision)) {
			note(img, r->num, "%s does not exist: rule has no effect until it does",
			     r->path);
			return 0;
		}
		img->name_rules++;
		err = add_name_rule(img, r->path, &ent);
		if (err == -ENOMEM)
			return err;	/* said once, by kg_image_compile */
		if (err)
			return kg_err("maps: rule '%s': %s does not exist, and its creation cannot be "
				      "keyed: %s", r->id, r->path, strerror(-err)), err;
		return 0;
	}
	for (k = 0; k < id.n; k++) {
		key.dev = id.k[k].dev;
		key.ino = id.k[k].ino;
		if (file_list_add(fl, &key, &ent))
			return -ENOMEM;
	}
	if (r->prefix && S_ISDIR(id.mode) && restricts(r->decision))
		return add_hardlinked_files(img, fl, r->path, &ent);
	return 0;
}

/* The entries gathered for each identity, merged into one map entry. */
static int flush_file_rules(struct kg_image *img, struct file_list *fl)
{
	size_t i = 0;

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
					      fl->v[j].ent.rule_id), -E2BIG;
			val.ent[k++] = fl->v[j].ent;
		}
		if (image_add_file(img, &fl->v[i].key, &val))
			return -ENOMEM;
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

static int compile_net_rules(struct kg_image *img, const struct kg_policy_doc *doc)
{
	struct net_acc *v = NULL;
	size_t n = 0, i, w;
	int err = 0;

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
				kg_err("maps: rule '%s': more than %d port/protocol entries on one "
				       "prefix", r->id, KG_NET_ENTS);
				err = -E2BIG;
				goto out;
			}
			a->own[a->nown++] = kg_net_ent_of(r, p);
		}
	}
	/* each prefix: its own entries, then those of every covering prefix */
	for (i = 0; i < n; i++) {
		struct kg_net_key key = { .prefixlen = 32 + v[i].plen };
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

					kg_err("maps: rule '%s': with the rules of wider prefixes it "
					       "needs more than %d entries", r ? r->id : "?", KG_NET_ENTS);
					err = -E2BIG;
					goto out;
				}
				val.ent[k++] = c->own[j];
			}
		}
		memcpy(key.addr, v[i].addr, 16);
		if (image_add_net(img, &key, &val)) {
			err = -ENOMEM;
			goto out;
		}
	}
out:
	free(v);
	return err;
}

static int compile_unix_abstract(struct kg_image *img, const struct kg_rule *r)
{
	struct kg_image_unix *u = kg_grow(img->unix_abstract, &img->cap_unix, img->nunix,
					  sizeof(*u), 4);

	if (!u)
		return -ENOMEM;
	img->unix_abstract = u;
	u[img->nunix++] = (struct kg_image_unix){
		.key.name_hash = kg_hash_bytes(r->unix_abstract, strlen(r->unix_abstract)),
		.val = { .rule_id = r->num, .ops = KG_OP_BIT(KG_OP_UNIX_CONNECT),
			 .decision = r->decision },
	};
	return 0;
}

static int compile_throttle(struct kg_image *img, const struct kg_rule *r)
{
	struct kg_image_param *p = kg_grow(img->param, &img->cap_param, img->nparam, sizeof(*p), 4);

	if (!p)
		return -ENOMEM;
	img->param = p;
	p[img->nparam++] = (struct kg_image_param){
		.key = { .rule_id = r->num },
		.val = { .rate_per_sec = r->rate_per_sec, .burst = r->burst },
	};
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

	/* serial stays 0: each install gives its generation a fresh one */
	memset(p, 0, sizeof(*p));
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

void kg_image_free(struct kg_image *img)
{
	if (!img)
		return;
	free(img->file);
	free(img->name);
	free(img->net);
	free(img->unix_abstract);
	free(img->param);
	free(img->notes);
	memset(img, 0, sizeof(*img));
}

void kg_image_take_report(struct kg_image *img, struct kg_compile_report *rep)
{
	rep->file_entries = img->nfile;
	rep->name_entries = img->name_rules;
	rep->net_entries = img->nnet;
	rep->unix_entries = img->nunix;
	rep->notes = img->notes;
	rep->nnotes = img->nnotes;
	img->notes = NULL;
	img->nnotes = 0;
}

void kg_compile_report_free(struct kg_compile_report *rep)
{
	if (!rep)
		return;
	free(rep->notes);
	rep->notes = NULL;
	rep->nnotes = 0;
}

/* The entries of one rule: file identities gathered in fl (merged per
 * identity at the end), the rest straight into img. */
static int compile_rule(struct kg_image *img, struct file_list *fl, const struct kg_rule *r)
{
	int err = 0;

	switch (r->kind) {
	case KG_RULE_FILE:
	case KG_RULE_EXEC:
		err = compile_file_rule(img, fl, r);
		break;
	case KG_RULE_UNIX:
		err = r->unix_abstract ? compile_unix_abstract(img, r)
				       : compile_file_rule(img, fl, r);
		break;
	default:
		break;
	}
	if (!err && r->decision == KG_DEC_THROTTLE && r->kind != KG_RULE_SYSCALL)
		err = compile_throttle(img, r);
	return err;
}

int kg_image_compile(const struct kg_policy_doc *doc, const struct kg_image_opts *opts,
		     struct kg_image *img)
{
	struct file_list fl = {};
	size_t i;
	int err = 0;

	memset(img, 0, sizeof(*img));
	ident_begin(opts);
	for (i = 0; i < doc->nrules && !err; i++)
		err = compile_rule(img, &fl, &doc->rules[i]);
	if (!err)
		err = flush_file_rules(img, &fl);
	if (!err)
		err = compile_net_rules(img, doc);
	free(fl.v);
	ident_begin(NULL);	/* (frees the mount table) */
	if (err) {
		if (err == -ENOMEM)
			kg_err("maps: out of memory compiling the policy");
		kg_image_free(img);
		return err;
	}
	fill_policy_entry(doc, &img->policy);
	return 0;
}

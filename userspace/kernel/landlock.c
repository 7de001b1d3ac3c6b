// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * landlock.c - "deny X beneath S" in degraded mode: the job's mount
 * namespace where a mount says it (kernel/mntrules.h), an allow-list LSM
 * for the rest.
 *
 * A deny rule on an existing S that refuses read (S hidden) or write or
 * create (S read-only), with no allow rule at or beneath S and no exec op,
 * becomes a mount: creation in the ancestors of S keeps working, and opens
 * pay nothing for it.  Exec rules (an allow-list, or a deny that must
 * cover the binary's other hard links), rules refusing only unlink/rename/
 * link, and deny rules with allows nested inside stay with Landlock:
 *
 * Landlock refuses a handled right unless a rule grants it on the object or
 * one of its ancestors, and a grant cannot be taken back lower down. So for
 * each deny mark S we grant its rights on every sibling of every directory
 * on the way from / to S, never on those directories themselves, and again
 * beneath allow rules nested inside S (most specific wins). The walk is
 * generic: visit(dir, R) grants on dir whatever of R no mark below it
 * restricts, and hands the rest to its entries one by one.
 *
 * Known limitations (also in every rule's report line):
 *  - grants are bound to the inodes that existed at planning time: an entry
 *    created later directly in an ancestor of S has none, so the handled
 *    rights are refused there too (fails closed, may surprise);
 *  - make/remove rights on the ancestors themselves are never granted, so
 *    when create/unlink is denied nothing can be created or removed directly
 *    in an ancestor of S; when read is denied, ancestors cannot be listed;
 *  - a hardlink to a file of S that exists outside S before the policy
 *    applies is reachable through its own path (Landlock checks the path
 *    used, not the inode's other names); new hardlinks and moves out of S
 *    are refused (REFER is always handled);
 *  - exec deny covers execve only: "ld.so <file>" maps it with read rights;
 *  - rules on paths that do not exist cannot deny their creation;
 *  - more than KG_LL_MAX_GRANTS grants: the file rules are reported as not
 *    enforced rather than applied half.
 */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common.h"
#include "kernel/mntrules.h"
#include "kernel/landlock.h"

/* uapi names, defined here because build hosts may have older headers */
#define LL_CREATE_RULESET_VERSION	(1U << 0)
#define LL_RULE_PATH_BENEATH		1

#define LL_FS_EXECUTE		(1ULL << 0)
#define LL_FS_WRITE_FILE	(1ULL << 1)
#define LL_FS_READ_FILE		(1ULL << 2)
#define LL_FS_READ_DIR		(1ULL << 3)
#define LL_FS_REMOVE_DIR	(1ULL << 4)
#define LL_FS_REMOVE_FILE	(1ULL << 5)
#define LL_FS_MAKE_CHAR		(1ULL << 6)
#define LL_FS_MAKE_DIR		(1ULL << 7)
#define LL_FS_MAKE_REG		(1ULL << 8)
#define LL_FS_MAKE_SOCK		(1ULL << 9)
#define LL_FS_MAKE_FIFO		(1ULL << 10)
#define LL_FS_MAKE_BLOCK	(1ULL << 11)
#define LL_FS_MAKE_SYM		(1ULL << 12)
#define LL_FS_REFER		(1ULL << 13)	/* ABI 2 */
#define LL_FS_TRUNCATE		(1ULL << 14)	/* ABI 3 */

#define LL_RESTRICT_LOG_NEW_EXEC_ON (1U << 1)	/* ABI 7 */

#define LL_SCOPE_ABSTRACT_UNIX	(1ULL << 0)	/* ABI 6 */
#define LL_SCOPE_SIGNAL		(1ULL << 1)	/* ABI 6 */

#define LL_FS_MAKE_ALL	(LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR | LL_FS_MAKE_REG | \
			 LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | \
			 LL_FS_MAKE_SYM)
#define LL_FS_REMOVE_ALL (LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE)
/* rights that may be granted on a non-directory */
#define LL_FS_FILE_ONLY	(LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;	/* ABI 4 */
	uint64_t scoped;		/* ABI 6 */
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

static long ll_create_ruleset(const struct ll_ruleset_attr *attr, size_t size, uint32_t flags)
{
	return syscall(__NR_landlock_create_ruleset, attr, size, flags);
}

int kg_landlock_abi(void)
{
	long abi = ll_create_ruleset(NULL, 0, LL_CREATE_RULESET_VERSION);

	return abi < 0 ? 0 : (int)abi;
}

static uint64_t fs_rights_of_abi(int abi)
{
	uint64_t r = 0;

	if (abi >= 1)
		r |= (1ULL << 13) - 1;
	if (abi >= 2)
		r |= LL_FS_REFER;
	if (abi >= 3)
		r |= LL_FS_TRUNCATE;
	return r;	/* IOCTL_DEV (ABI 5) is not used by any kgate op */
}

/* Policy ops -> Landlock rights (before masking with the ABI). */
static uint64_t rights_of_ops(uint32_t ops)
{
	uint64_t r = 0;

	if (ops & KG_OP_BIT(KG_OP_READ))
		r |= LL_FS_READ_FILE | LL_FS_READ_DIR;
	if (ops & KG_OP_BIT(KG_OP_WRITE))
		r |= LL_FS_WRITE_FILE | LL_FS_TRUNCATE;
	if (ops & KG_OP_BIT(KG_OP_CREATE))
		r |= LL_FS_MAKE_ALL;
	if (ops & KG_OP_BIT(KG_OP_UNLINK))
		r |= LL_FS_REMOVE_ALL;
	if (ops & (KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_LINK)))
		r |= LL_FS_REFER | LL_FS_MAKE_ALL | LL_FS_REMOVE_ALL;
	if (ops & KG_OP_BIT(KG_OP_EXEC))
		r |= LL_FS_EXECUTE;
	return r;
}

/* ---- marks: where rights are taken away or given back ----------------------- */

struct mark {
	char path[PATH_MAX];	/* canonical, no trailing slash ("/" for root) */
	uint64_t deny, allow;
	bool is_dir;
	dev_t dev;		/* identity: Landlock attaches grants to inodes */
	ino_t ino;
};

struct planner {
	struct kg_landlock_plan *plan;
	struct mark *marks;
	size_t nmarks;
	bool overflow;
	int err;
	bool landlock_only;	/* KG_LL_PLAN_LANDLOCK_ONLY */
	char **allows;		/* canonical paths of the allow rules */
	size_t nallows;
};

/* A sibling that is another name (hardlink) of a denied file: a grant on
 * it would be a grant on the denied inode itself. */
static bool is_denied_inode(const struct planner *pl, const struct stat *st)
{
	size_t i;

	for (i = 0; i < pl->nmarks; i++)
		if (pl->marks[i].deny && !pl->marks[i].is_dir &&
		    pl->marks[i].dev == st->st_dev && pl->marks[i].ino == st->st_ino)
			return true;
	return false;
}

/* true if `p` is strictly beneath directory `dir` */
static bool beneath(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return p[0] == '/' && p[1] != '\0';
	return strncmp(p, dir, n) == 0 && p[n] == '/';
}

static int add_grant(struct planner *pl, const char *path, uint64_t access)
{
	struct kg_landlock_plan *plan = pl->plan;
	struct kg_ll_grant *g;

	if (!access)
		return 0;
	if (plan->ngrants >= KG_LL_MAX_GRANTS) {
		pl->overflow = true;
		return -E2BIG;
	}
	g = kg_grow(plan->grants, &plan->cap, plan->ngrants, sizeof(*g), 64);
	if (!g)
		return -ENOMEM;
	plan->grants = g;
	g = &plan->grants[plan->ngrants];
	g->path = strdup(path);
	if (!g->path)
		return -ENOMEM;
	g->access = access;
	plan->ngrants++;
	return 0;
}

static int join(char *out, const char *dir, const char *name)
{
	if (dir[0] == '/' && dir[1] == '\0')
		return kg_snprintf(out, PATH_MAX, "/%s", name) ? -ENAMETOOLONG : 0;
	return kg_snprintf(out, PATH_MAX, "%s/%s", dir, name) ? -ENAMETOOLONG : 0;
}

/* Name of the entry of `dir` that leads to `p` (p strictly beneath dir). */
static void next_component(const char *p, const char *dir, char *name, size_t len)
{
	const char *s = p + (strcmp(dir, "/") ? strlen(dir) + 1 : 1);
	size_t n = strcspn(s, "/");

	if (n >= len)
		n = len - 1;
	memcpy(name, s, n);
	name[n] = '\0';
}

static int visit(struct planner *pl, const char *path, bool is_dir, uint64_t rights, int depth);

/* Hand `rights` to every entry of `dir` except those on the way to a mark. */
static int grant_siblings(struct planner *pl, const char *dir, uint64_t rights)
{
	char child[PATH_MAX], lead[NAME_MAX + 1];
	struct dirent *de;
	struct stat st;
	size_t i;
	bool on_way;
	int ret = 0;
	DIR *d = opendir(dir);

	if (!d)
		return errno == EACCES || errno == ENOENT ? 0 : -errno;
	while (!ret && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		for (i = 0, on_way = false; i < pl->nmarks && !on_way; i++) {
			if (!beneath(pl->marks[i].path, dir))
				continue;
			next_component(pl->marks[i].path, dir, lead, sizeof(lead));
			on_way = !strcmp(lead, de->d_name);
		}
		if (on_way || join(child, dir, de->d_name))
			continue;
		if (lstat(child, &st) < 0 || S_ISLNK(st.st_mode))
			continue;	/* a symlink's target is checked, not the link */
		if (!S_ISDIR(st.st_mode) && is_denied_inode(pl, &st))
			continue;
		ret = add_grant(pl, child, S_ISDIR(st.st_mode) ? rights : rights & LL_FS_FILE_ONLY);
	}
	closedir(d);
	return ret;
}

/* Visit each entry of `dir` that leads to a mark, once. */
static int visit_marked_children(struct planner *pl, const char *dir, uint64_t rights, int depth)
{
	char child[PATH_MAX], lead[NAME_MAX + 1], prev[NAME_MAX + 1];
	struct stat st;
	size_t i, j;
	int ret;

	for (i = 0; i < pl->nmarks; i++) {
		bool seen = false;

		if (!beneath(pl->marks[i].path, dir))
			continue;
		next_component(pl->marks[i].path, dir, lead, sizeof(lead));
		for (j = 0; j < i && !seen; j++) {
			if (!beneath(pl->marks[j].path, dir))
				continue;
			next_component(pl->marks[j].path, dir, prev, sizeof(prev));
			seen = !strcmp(prev, lead);
		}
		if (seen || join(child, dir, lead))
			continue;
		if (lstat(child, &st) < 0)
			continue;
		ret = visit(pl, child, S_ISDIR(st.st_mode), rights, depth + 1);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int visit(struct planner *pl, const char *path, bool is_dir, uint64_t rights, int depth)
{
	uint64_t below_deny = 0, direct, rest;
	bool has_below = false;
	size_t i;
	int ret;

	if (depth > KG_MAX_DEPTH)
		return -ELOOP;
	for (i = 0; i < pl->nmarks; i++) {
		const struct mark *m = &pl->marks[i];

		if (!strcmp(m->path, path))
			rights = (rights & ~m->deny) | m->allow;
		else if (beneath(m->path, path)) {
			below_deny |= m->deny;
			has_below = true;
		}
	}
	direct = rights & ~below_deny;
	ret = add_grant(pl, path, is_dir ? direct : direct & LL_FS_FILE_ONLY);
	if (ret < 0 || !has_below || !is_dir)
		return ret;
	rest = rights & below_deny;
	ret = visit_marked_children(pl, path, rest, depth);
	if (ret < 0 || !rest)
		return ret;
	return grant_siblings(pl, path, rest);
}

/* ---- per-rule decisions ---------------------------------------------------------- */

static bool is_file_rule(const struct kg_rule *r)
{
	return r->kind == KG_RULE_FILE || r->kind == KG_RULE_EXEC;
}

static uint32_t rule_ops(const struct kg_rule *r)
{
	return r->kind == KG_RULE_EXEC ? KG_OP_BIT(KG_OP_EXEC) | (r->ops & KG_FILE_OPS_MASK)
				       : r->ops & KG_FILE_OPS_MASK;
}

static bool decision_refuses(enum kg_decision d)
{
	return d == KG_DEC_DENY || d == KG_DEC_REQUIRE_APPROVAL || d == KG_DEC_COOLDOWN;
}

__attribute__((format(printf, 4, 0)))
static void report(struct kg_landlock_plan *plan, const struct kg_rule *r,
		   enum kg_mechanism mech, const char *fmt, const char *arg)
{
	struct kg_ll_report *rep = &plan->reports[plan->nreports++];

	rep->rule_num = r->num;
	rep->rule_id = r->id;
	rep->mechanism = mech;
	/* a long path is cut: the rule id names the rule */
	if (snprintf(rep->reason, sizeof(rep->reason), fmt, arg ? arg : "") >=
	    (int)sizeof(rep->reason))
		rep->reason[sizeof(rep->reason) - 2] = '~';
}

/* true if `p` is `dir` or beneath it */
static bool at_or_beneath(const char *p, const char *dir)
{
	return !strcmp(p, dir) || beneath(p, dir);
}

/* Which mount expresses deny rule r on `real`, or -1 for Landlock. */
static int mount_kind(const struct planner *pl, const struct kg_rule *r, const char *real,
		      const struct stat *st)
{
	uint32_t ops = rule_ops(r);
	size_t i;

	if (pl->landlock_only || pl->plan->abi < 2 || r->kind != KG_RULE_FILE ||
	    (ops & KG_OP_BIT(KG_OP_EXEC)) || !strcmp(real, "/"))
		return -1;
	/* a hidden or read-only S would take an allow inside it away */
	for (i = 0; i < pl->nallows; i++)
		if (at_or_beneath(pl->allows[i], real))
			return -1;
	if (ops & KG_OP_BIT(KG_OP_READ))
		return S_ISDIR(st->st_mode) ? KG_MNT_HIDE_DIR : KG_MNT_HIDE_FILE;
	if (ops & (KG_OP_BIT(KG_OP_WRITE) | KG_OP_BIT(KG_OP_CREATE)))
		return KG_MNT_READONLY;
	return -1;	/* unlink/rename/link only: a read-only S would refuse writes */
}

static void report_mount(struct kg_landlock_plan *plan, const struct kg_rule *r, int kind)
{
	const char *approval = r->decision == KG_DEC_REQUIRE_APPROVAL ?
			       " (approval needs BPF LSM)" : "";

	if (kind == KG_MNT_READONLY)
		report(plan, r, KG_MECH_MOUNT, "refused: read-only in the job's mount namespace "
		       "(all changes beneath it refused, also those not denied; other names made "
		       "before the job not covered)%s", approval);
	else
		report(plan, r, KG_MECH_MOUNT, "refused: hidden in the job's mount namespace "
		       "(nothing beneath it can be read or changed; other names made before the "
		       "job not covered)%s", approval);
}

/* ---- other names of a denied path ------------------------------------------------ */

struct alias {
	char path[PATH_MAX];
	struct stat st;
};

struct mnt_line {
	int id;
	dev_t dev;
	char root[PATH_MAX], point[PATH_MAX];
};

static bool parse_mnt_line(const char *line, struct mnt_line *m)
{
	unsigned int maj, min;

	if (sscanf(line, "%d %*d %u:%u %4095s %4095s", &m->id, &maj, &min, m->root, m->point) != 5)
		return false;
	kg_mountinfo_unescape(m->root);
	kg_mountinfo_unescape(m->point);
	m->dev = makedev(maj, min);
	return m->root[0] == '/' && m->point[0] == '/';
}

/* "a" + "/b/c" with "/" as the empty path on either side */
static int path_cat(char *out, const char *a, const char *rest)
{
	if (!rest[0])
		return kg_snprintf(out, PATH_MAX, "%s", a) ? -ENAMETOOLONG : 0;
	if (!strcmp(a, "/"))
		return kg_snprintf(out, PATH_MAX, "%s", rest) ? -ENAMETOOLONG : 0;
	return kg_snprintf(out, PATH_MAX, "%s%s", a, rest) ? -ENAMETOOLONG : 0;
}

/* What follows `dir` in `p` (p at or beneath dir): "" or "/x/y". */
static const char *rest_of(const char *p, const char *dir)
{
	return !strcmp(dir, "/") ? (strcmp(p, "/") ? p : "") : p + strlen(dir);
}

/*
 * The other places where the mount table shows `real` or a part of it: a
 * bind mount of S (or of something beneath it) elsewhere, or a bind mount
 * of one of its ancestors.  Found through /proc/self/mountinfo: the mount
 * that holds `real` gives its path inside the filesystem, and every other
 * mount of the same filesystem whose root is at, beneath or above that
 * path shows it too.  Each alias is checked to be the same live object.
 * Returns the number found (at most max, *more set beyond), or -1 when the
 * mount table says nothing usable (the filesystem's device differs from
 * st_dev, as on btrfs subvolumes).
 */
static int mount_aliases(const char *real, const struct stat *st, struct alias *out, size_t max,
			 bool *more)
{
	struct mnt_line *m = malloc(sizeof(*m)), *home = malloc(sizeof(*home));
	char *fsrel = malloc(PATH_MAX), *cand = malloc(PATH_MAX), *line = NULL;
	size_t cap = 0, n = 0, i, best = 0;
	bool found = false;
	FILE *f = NULL;
	int ret = -1;

	*more = false;
	if (!m || !home || !fsrel || !cand)
		goto out;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		goto out;
	/* the mount that holds real: longest mount point, the last one wins */
	while (getline(&line, &cap, f) > 0) {
		if (!parse_mnt_line(line, m) || !at_or_beneath(real, m->point))
			continue;
		if (!found || strlen(m->point) >= best) {
			*home = *m;
			best = strlen(m->point);
			found = true;
		}
	}
	if (!found || home->dev != st->st_dev || strstr(home->root, "//deleted"))
		goto out;
	if (path_cat(fsrel, home->root, rest_of(real, home->point)))
		goto out;
	ret = 0;
	rewind(f);
	while (getline(&line, &cap, f) > 0) {
		struct stat ast;
		bool superset;

		if (!parse_mnt_line(line, m) || m->id == home->id || m->dev != st->st_dev)
			continue;
		if (at_or_beneath(m->root, fsrel))
			superset = false, kg_strlcpy(cand, m->point, PATH_MAX);
		else if (beneath(fsrel, m->root) && !path_cat(cand, m->point, rest_of(fsrel, m->root)))
			superset = true;
		else
			continue;
		/* beneath S itself: S's own covering covers it */
		if (at_or_beneath(cand, real) || lstat(cand, &ast) < 0 || ast.st_dev != st->st_dev)
			continue;
		if (superset && ast.st_ino != st->st_ino)
			continue;	/* covered by another mount: not a view of S */
		for (i = 0; i < n && strcmp(out[i].path, cand); i++)
			;
		if (i < n)
			continue;
		if (n == max) {
			*more = true;
			break;
		}
		kg_strlcpy(out[n].path, cand, PATH_MAX);
		out[n].st = ast;
		n++;
	}
	ret = (int)n;
out:
	if (f)
		fclose(f);
	free(line);
	free(m);
	free(home);
	free(fsrel);
	free(cand);
	return ret;
}

#define KG_LL_LINK_WALK_MAX 10000	/* entries looked at beneath a denied directory */

struct link_count {
	size_t files;		/* regular files with other names */
	size_t seen;
	bool truncated;
};

/* Files beneath dir (same filesystem, symlinks not followed) that have
 * other names: hard links, possibly made outside dir before the job. */
static void count_linked(const char *dir, dev_t dev, struct link_count *lc, int depth)
{
	char child[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (depth > KG_MAX_DEPTH || lc->truncated || !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (++lc->seen > KG_LL_LINK_WALK_MAX) {
			lc->truncated = true;
			break;
		}
		if (join(child, dir, de->d_name) || lstat(child, &st) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode))
			count_linked(child, dev, lc, depth + 1);
		else if (S_ISREG(st.st_mode) && st.st_nlink > 1)
			lc->files++;
	}
	closedir(d);
}

static void add_hole(struct kg_ll_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_hole(struct kg_ll_report *rep, const char *fmt, ...)
{
	size_t len = strlen(rep->holes);
	va_list ap;

	if (len && len + 2 < sizeof(rep->holes)) {
		memcpy(rep->holes + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	if (vsnprintf(rep->holes + len, sizeof(rep->holes) - len, fmt, ap) >=
	    (int)(sizeof(rep->holes) - len))
		rep->holes[sizeof(rep->holes) - 2] = '~';
	va_end(ap);
}

/* What the rule on `real` leaves out, or takes in beyond its word, said in
 * its report: other names (hard links) of its files, and an exact path on
 * a directory, which a mount or Landlock applies to the whole subtree. */
static void state_holes(struct kg_ll_report *rep, const struct kg_rule *r, const char *real,
			const struct stat *st)
{
	(void)real;
	if (!r->prefix && S_ISDIR(st->st_mode))
		add_hole(rep, "an exact path on a directory: applied to everything beneath it too "
			 "(a mount and Landlock cover subtrees; BPF LSM applies it exactly)");
	if (!decision_refuses(r->decision))
		return;
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		add_hole(rep, "NOT covered: %lu other name(s) of this file (hard links made before "
			 "the job) stay reachable through their own paths",
			 (unsigned long)st->st_nlink - 1);
	} else if (S_ISDIR(st->st_mode)) {
		struct link_count lc = { 0 };

		count_linked(real, st->st_dev, &lc, 0);
		if (lc.files)
			add_hole(rep, "NOT covered: %zu file(s) beneath it have other names (hard links "
				 "made before the job), reachable through their own paths", lc.files);
		if (lc.truncated)
			add_hole(rep, "hard links beneath it not checked past %d entries",
				 KG_LL_LINK_WALK_MAX);
	}
}

/* Other mounts of the denied `real` get the same treatment: the same
 * mount over each of them (kind >= 0), or the same Landlock deny mark. */
static int cover_aliases(struct planner *pl, const struct kg_rule *r, const char *real,
			 const struct stat *st, int kind, uint64_t deny)
{
	struct kg_landlock_plan *plan = pl->plan;
	struct kg_ll_report *rep = &plan->reports[plan->nreports - 1];
	struct alias *al = calloc(KG_LL_MAX_ALIASES, sizeof(*al));
	bool more = false;
	int n, i, err = 0;

	if (!al)
		return -ENOMEM;
	n = mount_aliases(real, st, al, KG_LL_MAX_ALIASES, &more);
	if (n < 0)
		add_hole(rep, "NOT checked: other mounts of it (the mount table does not name its "
			 "filesystem); a bind mount of it made before the job is not covered");
	for (i = 0; i < n && !err; i++) {
		if (kind >= 0) {
			enum kg_mnt_kind k = (enum kg_mnt_kind)kind;

			if (k != KG_MNT_READONLY)
				k = S_ISDIR(al[i].st.st_mode) ? KG_MNT_HIDE_DIR : KG_MNT_HIDE_FILE;
			err = kg_mnt_plan_add(&plan->mounts, k, al[i].path, &al[i].st, r->num);
		} else {
			struct mark *m = &pl->marks[pl->nmarks++];

			memset(m, 0, sizeof(*m));
			kg_strlcpy(m->path, al[i].path, sizeof(m->path));
			m->is_dir = S_ISDIR(al[i].st.st_mode);
			m->dev = al[i].st.st_dev;
			m->ino = al[i].st.st_ino;
			m->deny = deny;
		}
		if (!err)
			add_hole(rep, "also covered at %s (another mount of it)", al[i].path);
	}
	if (more)
		add_hole(rep, "NOT covered: more than %d other mounts of it", KG_LL_MAX_ALIASES);
	free(al);
	return err;
}

/* Turn one rule into a mark (or a report saying why not). */
static int plan_rule(struct planner *pl, const struct kg_rule *r, uint64_t avail)
{
	struct kg_landlock_plan *plan = pl->plan;
	uint64_t rights = rights_of_ops(rule_ops(r)) & avail;
	char real[PATH_MAX];
	struct stat st;
	struct mark *m;

	if (!plan->abi)
		return report(plan, r, KG_MECH_NONE, "not enforced: Landlock unavailable%s", NULL), 0;
	if (r->decision == KG_DEC_AUDIT || r->decision == KG_DEC_THROTTLE)
		return report(plan, r, KG_MECH_NONE, "not enforced: Landlock can only allow or "
			      "refuse, not %s (needs BPF LSM); the access is allowed",
			      r->decision == KG_DEC_AUDIT ? "record" : "rate-limit"), 0;
	if (!r->path || !realpath(r->path, real) || stat(real, &st) < 0)
		return report(plan, r, KG_MECH_NONE, "not enforced: %s does not exist at launch "
			      "(neither a mount nor Landlock can refuse creating one name without "
			      "refusing creation in its parent)", r->path), 0;
	if (!rights)
		return report(plan, r, KG_MECH_NONE, "not enforced: no Landlock right for these "
			      "ops at this ABI%s", NULL), 0;
	if (decision_refuses(r->decision)) {
		int kind = mount_kind(pl, r, real, &st);

		if (kind >= 0) {
			int err = kg_mnt_plan_add(&plan->mounts, (enum kg_mnt_kind)kind, real, &st,
						  r->num);

			if (err)
				return err;
			report_mount(plan, r, kind);
			state_holes(&plan->reports[plan->nreports - 1], r, real, &st);
			return cover_aliases(pl, r, real, &st, kind, 0);
		}
		/* REFER too: nothing may be moved or linked out of S into a
		 * granted directory, where it would become readable */
		rights |= LL_FS_REFER & avail;
	} else if (r->decision != KG_DEC_ALLOW) {
		return report(plan, r, KG_MECH_NONE, "not enforced: decision not meaningful for "
			      "files%s", NULL), 0;
	}
	m = &pl->marks[pl->nmarks++];
	memset(m, 0, sizeof(*m));
	memcpy(m->path, real, sizeof(m->path));
	m->is_dir = S_ISDIR(st.st_mode);
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	if (decision_refuses(r->decision))
		m->deny = rights;
	else
		m->allow = rights;
	plan->handled_fs |= m->deny;
	if (r->decision == KG_DEC_REQUIRE_APPROVAL)
		report(plan, r, KG_MECH_LANDLOCK, "refused by Landlock; approval needs BPF LSM%s", NULL);
	else if (r->decision == KG_DEC_ALLOW)
		report(plan, r, KG_MECH_LANDLOCK, "allowed (grant beneath %s)", real);
	else
		report(plan, r, KG_MECH_LANDLOCK, "refused by Landlock (grants on siblings of its "
		       "ancestors: entries created there later are refused too; hardlinks made "
		       "outside before launch are not covered)%s", NULL);
	state_holes(&plan->reports[plan->nreports - 1], r, real, &st);
	return decision_refuses(r->decision) ? cover_aliases(pl, r, real, &st, -1, m->deny) : 0;
}

/* Rights that the class defaults leave allowed at the root. */
static uint64_t default_rights(const struct kg_policy_doc *doc, uint64_t avail, uint64_t *handled)
{
	uint64_t file = avail & ~LL_FS_EXECUTE, exec = avail & LL_FS_EXECUTE, root = 0;

	if (decision_refuses(doc->class_default[KG_CLASS_FILE]))
		*handled |= file;
	else
		root |= file;
	if (decision_refuses(doc->class_default[KG_CLASS_EXEC]))
		*handled |= exec;
	else
		root |= exec;
	return root;
}

static void downgrade_reports(struct kg_landlock_plan *plan, const char *why)
{
	size_t i;

	for (i = 0; i < plan->nreports; i++) {
		if (plan->reports[i].mechanism != KG_MECH_LANDLOCK)
			continue;
		plan->reports[i].mechanism = KG_MECH_NONE;
		snprintf(plan->reports[i].reason, sizeof(plan->reports[i].reason),
			 "not enforced: %s", why);
	}
}

static void free_grants(struct kg_landlock_plan *plan)
{
	size_t i;

	for (i = 0; i < plan->ngrants; i++)
		free(plan->grants[i].path);
	plan->ngrants = 0;
}

/* The canonical paths of the policy's existing allow rules. */
static int collect_allows(struct planner *pl, const struct kg_policy_doc *doc)
{
	char real[PATH_MAX];
	size_t i;

	pl->allows = calloc(doc->nrules ? doc->nrules : 1, sizeof(*pl->allows));
	if (!pl->allows)
		return -ENOMEM;
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (!is_file_rule(r) || r->decision != KG_DEC_ALLOW || !r->path ||
		    !realpath(r->path, real))
			continue;
		pl->allows[pl->nallows] = strdup(real);
		if (!pl->allows[pl->nallows])
			return -ENOMEM;
		pl->nallows++;
	}
	return 0;
}

static int plan_files(struct planner *pl, const struct kg_policy_doc *doc)
{
	struct kg_landlock_plan *plan = pl->plan;
	uint64_t avail = fs_rights_of_abi(plan->abi), root;
	size_t i, nfile = 0;
	int ret;

	for (i = 0; i < doc->nrules; i++)
		nfile += is_file_rule(&doc->rules[i]);
	plan->reports = calloc(nfile ? nfile : 1, sizeof(*plan->reports));
	/* one mark per rule, and one per other mount of its path */
	pl->marks = calloc((nfile ? nfile : 1) * (1 + KG_LL_MAX_ALIASES), sizeof(*pl->marks));
	if (!plan->reports || !pl->marks)
		return -ENOMEM;
	ret = collect_allows(pl, doc);
	for (i = 0; !ret && i < doc->nrules; i++)
		if (is_file_rule(&doc->rules[i]))
			ret = plan_rule(pl, &doc->rules[i], avail);
	if (!ret)
		ret = kg_mnt_plan_finish(&plan->mounts);
	if (ret)
		return ret;
	if (!plan->abi)
		return 0;
	root = default_rights(doc, avail, &plan->handled_fs);
	if (!plan->handled_fs)
		return 0;
	plan->handled_fs |= LL_FS_REFER & avail;	/* reparenting is checked then anyway */
	ret = visit(pl, "/", true, root & plan->handled_fs, 0);
	if (ret == -E2BIG || ret == -ELOOP) {
		free_grants(plan);
		plan->handled_fs = 0;
		downgrade_reports(plan, ret == -E2BIG ? "more than 4096 Landlock grants needed"
						      : "path too deep for Landlock planning");
		return 0;
	}
	return ret;
}

bool kg_policy_restricts_exec(const struct kg_policy_doc *doc)
{
	size_t i;

	if (!doc)
		return false;
	if (decision_refuses(doc->class_default[KG_CLASS_EXEC]))
		return true;
	for (i = 0; i < doc->nrules; i++)
		if (is_file_rule(&doc->rules[i]) && decision_refuses(doc->rules[i].decision) &&
		    (rule_ops(&doc->rules[i]) & KG_OP_BIT(KG_OP_EXEC)))
			return true;
	return false;
}

__attribute__((format(printf, 2, 3)))
static void add_note(struct kg_landlock_plan *plan, const char *fmt, ...)
{
	va_list ap;

	if (plan->nnotes >= KG_LL_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(plan->notes[plan->nnotes++], sizeof(plan->notes[0]), fmt, ap);
	va_end(ap);
}

/* What the policy as a whole gets in degraded mode, beyond its rules. */
static void plan_notes(struct kg_landlock_plan *plan, const struct kg_policy_doc *doc)
{
	static const enum kg_class classes[] = { KG_CLASS_FILE, KG_CLASS_EXEC };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(classes); i++) {
		enum kg_decision d = doc->class_default[classes[i]];

		if (d == KG_DEC_ALLOW || decision_refuses(d))
			continue;
		add_note(plan, "runtime_defaults %s: %s is NOT done here: Landlock and mounts can "
			 "only allow or refuse, so what no rule decides is allowed and not recorded "
			 "(needs BPF LSM)", kg_class_name(classes[i]), kg_decision_name(d));
	}
	if (kg_policy_restricts_exec(doc))
		add_note(plan, "exec from memory: seccomp refuses memfd_create without "
			 "MFD_NOEXEC_SEAL and execveat(AT_EMPTY_PATH) (fexecve) with EPERM, because "
			 "Landlock does not see memfds; \"ld.so FILE\" and mmap(PROT_EXEC) of a denied "
			 "file are NOT covered");
}

int kg_landlock_plan(const struct kg_policy_doc *doc, struct kg_landlock_plan **out)
{
	return kg_landlock_plan_flags(doc, 0, out);
}

int kg_landlock_plan_flags(const struct kg_policy_doc *doc, unsigned int flags,
			   struct kg_landlock_plan **out)
{
	struct planner pl = { .landlock_only = flags & KG_LL_PLAN_LANDLOCK_ONLY };
	struct kg_landlock_plan *plan;
	size_t i, hidden = 0, ro = 0;
	int ret = 0;

	*out = NULL;
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	pl.plan = plan;
	plan->abi = kg_landlock_abi();
	if (plan->abi >= 6)
		plan->scoped = LL_SCOPE_SIGNAL | LL_SCOPE_ABSTRACT_UNIX;
	if (doc)
		ret = plan_files(&pl, doc);
	if (doc && !ret)
		plan_notes(plan, doc);
	/* a mount holds only while the job cannot reach the namespace of a
	 * process outside it: the Landlock domain sees to /proc/PID/root */
	if (!ret && plan->mounts.nmarks && !kg_landlock_plan_ensure_domain(plan))
		ret = -ENOMEM;
	free(pl.marks);
	for (i = 0; i < pl.nallows; i++)
		free(pl.allows[i]);
	free(pl.allows);
	if (ret < 0) {
		kg_landlock_plan_free(plan);
		return ret;
	}
	for (i = 0; i < plan->mounts.n; i++) {
		hidden += plan->mounts.ops[i].kind == KG_MNT_HIDE_DIR ||
			  plan->mounts.ops[i].kind == KG_MNT_HIDE_FILE;
		ro += plan->mounts.ops[i].kind == KG_MNT_READONLY;
	}
	snprintf(plan->summary, sizeof(plan->summary),
		 "mount namespace: %zu hidden, %zu read-only, %zu directories pinned; "
		 "landlock abi %d: %zu grants, fs rights 0x%llx handled, %s", hidden, ro,
		 plan->mounts.n - plan->mounts.nmarks, plan->abi,
		 plan->ngrants, (unsigned long long)plan->handled_fs,
		 plan->scoped ? "signals and abstract unix sockets scoped to the job"
			      : "no signal/abstract socket scoping (needs ABI 6)");
	*out = plan;
	return 0;
}

void kg_landlock_plan_free(struct kg_landlock_plan *plan)
{
	if (!plan)
		return;
	free_grants(plan);
	free(plan->grants);
	free(plan->reports);
	kg_mnt_plan_release(&plan->mounts);
	free(plan);
}

const struct kg_ll_report *kg_landlock_report(const struct kg_landlock_plan *plan,
					      uint32_t rule_num)
{
	size_t i;

	for (i = 0; plan && i < plan->nreports; i++)
		if (plan->reports[i].rule_num == rule_num)
			return &plan->reports[i];
	return NULL;
}

/* ---- apply (in the child: syscalls only) --------------------------------------- */

int kg_landlock_apply(const struct kg_landlock_plan *plan)
{
	struct ll_ruleset_attr attr = { 0 };
	size_t size, i;
	int fd, ret = 0;

	if (!plan || !plan->abi || (!plan->handled_fs && !plan->scoped))
		return 0;
	attr.handled_access_fs = plan->handled_fs;
	attr.scoped = plan->scoped;
	size = plan->abi >= 6 ? sizeof(attr) : plan->abi >= 4 ? 16 : 8;
	fd = (int)ll_create_ruleset(&attr, size, 0);
	if (fd < 0)
		return -errno;
	for (i = 0; i < plan->ngrants && !ret; i++) {
		struct ll_path_beneath_attr pb;

		pb.allowed_access = plan->grants[i].access & plan->handled_fs;
		pb.parent_fd = open(plan->grants[i].path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (pb.parent_fd < 0)
			continue;	/* gone since planning: stays refused */
		if (pb.allowed_access &&
		    syscall(__NR_landlock_add_rule, fd, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
			ret = -errno;
		close(pb.parent_fd);
	}
	if (!ret && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		ret = -errno;
	if (!ret && syscall(__NR_landlock_restrict_self, fd,
			    plan->log_denials && plan->abi >= 7 ? LL_RESTRICT_LOG_NEW_EXEC_ON : 0) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* ---- a domain of its own ------------------------------------------------------ */

bool kg_landlock_plan_ensure_domain(struct kg_landlock_plan *plan)
{
	if (!plan || !plan->abi)
		return false;
	if (plan->handled_fs || plan->scoped)
		return true;	/* the plan makes a ruleset: the job gets a domain */
	if (plan->abi < 2)
		return false;
	/* a ruleset must handle something to exist.  REFER, granted on the
	 * whole tree, changes nothing: a layer that handles file rights but
	 * not REFER would refuse every rename and link across directories
	 * (EXDEV, Landlock's compatibility with ABI 1) */
	if (add_grant(&(struct planner){ .plan = plan }, "/", LL_FS_REFER))
		return false;
	plan->handled_fs = LL_FS_REFER;
	return true;
}

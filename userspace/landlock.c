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
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "kernel/mntrules.h"
#include "landlock.h"

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
	if (plan->ngrants == plan->cap) {
		size_t cap = plan->cap ? plan->cap * 2 : 64;

		g = realloc(plan->grants, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		plan->grants = g;
		plan->cap = cap;
	}
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

			if (!err)
				report_mount(plan, r, kind);
			return err;
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
	return 0;
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
	pl->marks = calloc(nfile ? nfile : 1, sizeof(*pl->marks));
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
	if (!ret && syscall(__NR_landlock_restrict_self, fd, 0) < 0)
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

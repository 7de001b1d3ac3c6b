// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* mntrules.c - file rules expressed by the job's mount namespace (see the header). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "kernel/mntrules.h"

/* uapi names, defined here because build hosts may have older headers
 * (and <linux/mount.h> clashes with <sys/mount.h> on some glibc) */
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#define KG_MOUNT_ATTR_RDONLY	0x00000001
#define KG_AT_RECURSIVE		0x8000

struct kg_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

const char *kg_mnt_kind_name(enum kg_mnt_kind kind)
{
	switch (kind) {
	case KG_MNT_PIN:	return "pinned";
	case KG_MNT_READONLY:	return "read-only";
	case KG_MNT_HIDE_DIR:
	case KG_MNT_HIDE_FILE:	return "hidden";
	}
	return "?";
}

/* ---- planning (in the controller) ---------------------------------------- */

static int push_op(struct kg_mnt_plan *p, enum kg_mnt_kind kind, const char *path,
		   const struct stat *st, uint32_t rule_num)
{
	struct kg_mnt_op *ops;

	ops = kg_grow(p->ops, &p->cap, p->n, sizeof(*ops), 16);
	if (!ops)
		return -ENOMEM;
	p->ops = ops;
	p->ops[p->n].path = strdup(path);
	if (!p->ops[p->n].path)
		return -ENOMEM;
	p->ops[p->n].kind = kind;
	p->ops[p->n].rule_num = rule_num;
	p->ops[p->n].dev = st ? st->st_dev : 0;
	p->ops[p->n].ino = st ? st->st_ino : 0;
	p->n++;
	return 0;
}

int kg_mnt_plan_add(struct kg_mnt_plan *p, enum kg_mnt_kind kind, const char *path,
		    const struct stat *st, uint32_t rule_num)
{
	if (kind == KG_MNT_PIN || !st || path[0] != '/' || !path[1])
		return -EINVAL;
	return push_op(p, kind, path, st, rule_num);
}

static size_t depth_of(const char *path)
{
	size_t d = 0;

	for (; *path; path++)
		d += *path == '/';
	return d;
}

static bool hides(enum kg_mnt_kind k)
{
	return k == KG_MNT_HIDE_DIR || k == KG_MNT_HIDE_FILE;
}

/* shallowest first; on one path the hiding before the read-only bind */
static int op_cmp(const void *a, const void *b)
{
	const struct kg_mnt_op *x = a, *y = b;
	size_t dx = depth_of(x->path), dy = depth_of(y->path);
	int c;

	if (x->kind == KG_MNT_PIN && y->kind != KG_MNT_PIN)
		return -1;
	if (y->kind == KG_MNT_PIN && x->kind != KG_MNT_PIN)
		return 1;
	if (dx != dy)
		return dx < dy ? -1 : 1;
	c = strcmp(x->path, y->path);
	if (c)
		return c;
	return (int)hides(y->kind) - (int)hides(x->kind);
}

/* true if `p` is `dir` or beneath it */
static bool at_or_beneath(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(p, dir, n) && (p[n] == '\0' || p[n] == '/');
}

static bool has_path(const struct kg_mnt_plan *p, size_t upto, const char *path)
{
	size_t i;

	for (i = 0; i < upto; i++)
		if (!strcmp(p->ops[i].path, path))
			return true;
	return false;
}

int kg_mnt_plan_finish(struct kg_mnt_plan *p)
{
	char anc[PATH_MAX], *slash;
	size_t i, j, kept = 0, nmarks;
	int err;

	if (!p->n)
		return 0;
	qsort(p->ops, p->n, sizeof(*p->ops), op_cmp);
	/* drop what a shallower hiding already covers, and repeats of a path */
	for (i = 0; i < p->n; i++) {
		bool covered = false;

		for (j = 0; j < kept && !covered; j++)
			covered = !strcmp(p->ops[j].path, p->ops[i].path) ||
				  (p->ops[j].kind == KG_MNT_HIDE_DIR &&
				   at_or_beneath(p->ops[i].path, p->ops[j].path));
		if (covered) {
			free(p->ops[i].path);
			continue;
		}
		p->ops[kept++] = p->ops[i];
	}
	p->n = nmarks = kept;
	/* every directory on the way to a mark that is not a mark itself */
	for (i = 0; i < nmarks; i++) {
		if (kg_strlcpy(anc, p->ops[i].path, sizeof(anc)))
			return -ENAMETOOLONG;
		while ((slash = strrchr(anc, '/')) && slash != anc) {
			*slash = '\0';
			if (has_path(p, p->n, anc))
				continue;
			err = push_op(p, KG_MNT_PIN, anc, NULL, 0);
			if (err)
				return err;
		}
	}
	p->nmarks = nmarks;
	qsort(p->ops, p->n, sizeof(*p->ops), op_cmp);
	return 0;
}

void kg_mnt_plan_release(struct kg_mnt_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->ops[i].path);
	free(p->ops);
	memset(p, 0, sizeof(*p));
}

/* ---- applying (in the child: syscalls only) ---------------------------------- */

static int sys(int ret)
{
	return ret < 0 ? -errno : 0;
}

/* Nothing the machine mounts later propagates onto or beneath our mounts. */
static int make_private(const char *path, bool rec)
{
	return sys(mount(NULL, path, NULL, MS_PRIVATE | (rec ? MS_REC : 0), NULL));
}

/* A mount point already (another device than its parent) stays as it is. */
static int pin(const char *path)
{
	char parent[PATH_MAX], *slash;
	struct stat st, pst;

	if (kg_strlcpy(parent, path, sizeof(parent)) || !(slash = strrchr(parent, '/')))
		return -ENAMETOOLONG;
	slash[slash == parent] = '\0';
	if (stat(path, &st) < 0 || stat(parent, &pst) < 0)
		return -errno;
	if (st.st_dev != pst.st_dev)
		return 0;
	return sys(mount(path, path, NULL, MS_BIND | MS_REC, NULL));
}

/* The flags a remount must keep (a bind remount sets them all at once). */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return MS_NOSUID | MS_NODEV;	/* the safe side */
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static int read_only(const char *path, const char *at)
{
	struct kg_mount_attr attr = { .attr_set = KG_MOUNT_ATTR_RDONLY };
	int err = sys(mount(at, at, NULL, MS_BIND | MS_REC, NULL));

	if (err)
		return err;
	/* the whole tree beneath, submounts included, other flags kept */
	if (syscall(__NR_mount_setattr, AT_FDCWD, path, KG_AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
		if (errno != ENOSYS)
			return -errno;
		/* before 5.12: the top mount only (its submounts stay as they are) */
		err = sys(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(path),
				NULL));
		if (err)
			return err;
	}
	return make_private(path, true);
}

int kg_mnt_read_only(const char *path)
{
	return read_only(path, path);
}

int kg_mnt_read_only_top(const char *path)
{
	int err = sys(mount(path, path, NULL, MS_BIND | MS_REC, NULL));

	if (!err)
		err = sys(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(path),
				NULL));
	return err ? err : make_private(path, true);
}

static int hide_dir(const char *path, const char *at)
{
	int err = sys(mount("kgate-hidden", at, "tmpfs",
			    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000"));

	return err ? err : make_private(path, false);
}

/* /dev/null on a nodev mount: every open of the name fails (EACCES, root
 * included); read-only, so nothing is written through it either */
static int hide_file(const char *path, const char *at)
{
	int err = sys(mount("/dev/null", at, NULL, MS_BIND, NULL));

	if (!err)
		err = sys(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
				MS_NODEV | MS_NOEXEC, NULL));
	return err ? err : make_private(path, false);
}

/* The planned object, without following a symlink: "/proc/self/fd/N" in
 * `at` (mounting there mounts on that very object), its fd returned. */
static int open_planned(const struct kg_mnt_op *op, char *at, size_t len)
{
	struct stat st;
	int fd = open(op->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_dev != op->dev || st.st_ino != op->ino) {
		close(fd);
		return -ESTALE;
	}
	snprintf(at, len, "/proc/self/fd/%d", fd);
	return fd;
}

static int apply_mark(const struct kg_mnt_op *op)
{
	char at[64];
	int fd = open_planned(op, at, sizeof(at)), err = -EINVAL;

	if (fd < 0)
		return fd;
	switch (op->kind) {
	case KG_MNT_READONLY:
		err = read_only(op->path, at);
		break;
	case KG_MNT_HIDE_DIR:
		err = hide_dir(op->path, at);
		break;
	case KG_MNT_HIDE_FILE:
		err = hide_file(op->path, at);
		break;
	case KG_MNT_PIN:
		break;
	}
	close(fd);
	return err;
}

int kg_mnt_apply(const struct kg_mnt_plan *p)
{
	size_t i;
	int err = 0;

	for (i = 0; p && i < p->n && !err; i++)
		err = p->ops[i].kind == KG_MNT_PIN ? pin(p->ops[i].path) : apply_mark(&p->ops[i]);
	return err;
}

int kg_mnt_reenter_cwd(void)
{
	static char cwd[PATH_MAX];	/* the child is single-threaded */

	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	return sys(chdir(cwd));
}

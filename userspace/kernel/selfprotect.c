// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* selfprotect.c - keeping governed tasks away from kgate's own state. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <bpf/bpf.h>
#include <linux/types.h>

#include "job/cgroup.h"
#include "common.h"
#include "kgate.h"
#include "kernel/outside.h"
#include "kernel/selfprotect.h"


static int add_dir(struct kg_sp_dirs *out, const char *path)
{
	char real[PATH_MAX];
	size_t i;

	if (!realpath(path, real))
		return -errno;
	for (i = 0; i < out->n; i++)
		if (!strcmp(out->path[i], real))
			return 0;
	if (out->n == KG_SP_MAX_DIRS)
		return -E2BIG;
	memcpy(out->path[out->n++], real, sizeof(real));
	return 0;
}

int kg_selfprotect_dirs(struct kg_sp_dirs *out)
{
	const char *bpffs = getenv("KGATE_BPFFS");
	int err;

	memset(out, 0, sizeof(*out));
	/* the pin root: every build's pins (an older build's may still be
	 * enforcing its jobs), or the one dir tests and custom setups name */
	err = add_dir(out, bpffs && *bpffs ? kg_pin_dir() : KG_PIN_DEFAULT);
	if (err && err != -ENOENT)
		return err;
	err = kg_mkdir_p(kg_state_dir(), 0755);
	if (!err)
		err = add_dir(out, kg_state_dir());
	if (err)
		return kg_err("selfprotect: state dir %s: %s", kg_state_dir(), strerror(-err)), err;
	err = kg_mkdir_p(kg_audit_dir(), 0700);
	if (!err)
		err = add_dir(out, kg_audit_dir());
	if (err)
		return kg_err("selfprotect: audit dir %s: %s", kg_audit_dir(), strerror(-err)), err;
	/* the HTTP API's tokens: created here too, so that no job can make
	 * the directory first and fill it with tokens of its own */
	err = kg_mkdir_p(kg_data_dir(), 0700);
	if (!err)
		err = add_dir(out, kg_data_dir());
	if (err)
		return kg_err("selfprotect: data dir %s: %s", kg_data_dir(), strerror(-err)), err;
	return 0;
}

/* OR flags into the entry of (dev, ino). */
static int mark(int fd, uint64_t dev, uint64_t ino, uint32_t flags)
{
	struct kg_prot_key key = { .dev = dev, .ino = ino };
	uint32_t old = 0;

	bpf_map_lookup_elem(fd, &key, &old);
	if ((old | flags) == old)
		return 0;
	old |= flags;
	return bpf_map_update_elem(fd, &key, &old, BPF_ANY) ? -errno : 0;
}

/* The directory itself (its contents), its device, and every directory on
 * the way to it (renaming one would move kgate's files away). */
static int register_dir(int fd, const char *path)
{
	char buf[PATH_MAX], *slash;
	struct stat st;
	int err;

	if (stat(path, &st) < 0)
		return -errno;
	err = mark(fd, kg_kernel_dev(st.st_dev), st.st_ino, KG_PROT_F_TREE);
	if (!err)
		err = mark(fd, kg_kernel_dev(st.st_dev), 0, KG_PROT_F_DEV);
	kg_strlcpy(buf, path, sizeof(buf));
	while (!err && (slash = strrchr(buf, '/')) && slash != buf) {
		*slash = '\0';
		if (stat(buf, &st) < 0)
			return -errno;
		err = mark(fd, kg_kernel_dev(st.st_dev), st.st_ino, KG_PROT_F_PATH);
	}
	return err;
}

int kg_selfprotect_register(struct kg_loader *l, const struct kg_sp_dirs *dirs)
{
	int fd = kg_loader_map_fd(l, "kg_protected"), err;
	size_t i;

	if (fd < 0)
		return kg_err("selfprotect: no kg_protected map"), -ENOENT;
	for (i = 0; i < dirs->n; i++) {
		err = register_dir(fd, dirs->path[i]);
		if (err)
			return kg_err("selfprotect: cannot protect %s: %s", dirs->path[i],
				      strerror(-err)), err;
	}
	/* and what only reaches outside the job (kernel/outside.h) */
	fd = kg_loader_map_fd(l, "kg_outside");
	if (fd < 0)
		return kg_err("selfprotect: no kg_outside map"), -ENOENT;
	return kg_outside_register(fd);
}

/* Make dir a mount point in this mount namespace (a recursive bind onto
 * itself): the kernel refuses to rename or remove a mount point (EBUSY),
 * so the directories leading to kgate's stay where kgate finds them.  One
 * that already is a mount point (another device than its parent) is left. */
static int pin_in_place(const char *dir)
{
	char parent[PATH_MAX], *slash;
	struct stat st, pst;

	if (kg_strlcpy(parent, dir, sizeof(parent)) || !(slash = strrchr(parent, '/')))
		return -ENAMETOOLONG;
	slash[slash == parent] = '\0';
	if (stat(dir, &st) < 0 || stat(parent, &pst) < 0)
		return -errno;
	if (st.st_dev != pst.st_dev)
		return 0;
	return mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;
}

/* Is path one of the first n paths of v?  (dedup without allocating) */
static bool seen(char v[][PATH_MAX], size_t n, const char *path)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(v[i], path))
			return true;
	return false;
}

int kg_selfprotect_hide(const struct kg_sp_dirs *dirs)
{
	static char anc[KG_SP_MAX_DIRS * 16][PATH_MAX];	/* the child is single-threaded */
	size_t nanc = 0, i, depth;
	bool done[KG_SP_MAX_DIRS] = { false };
	size_t k, best;
	int err;

	/* the directories leading to kgate's, shallowest first */
	for (i = 0; i < dirs->n; i++) {
		const char *p = dirs->path[i];

		for (depth = 1; nanc < ARRAY_SIZE(anc); depth++) {
			const char *end = p;
			size_t d;

			for (d = 0; d < depth && end; d++)
				end = strchr(end + 1, '/');
			if (!end)
				break;	/* reached the directory itself */
			if ((size_t)(end - p) >= PATH_MAX)
				return -ENAMETOOLONG;
			memcpy(anc[nanc], p, end - p);
			anc[nanc][end - p] = '\0';
			if (!seen(anc, nanc, anc[nanc]))
				nanc++;
		}
	}
	for (depth = 1; depth < PATH_MAX; depth++) {
		bool any = false;

		for (i = 0; i < nanc; i++) {
			const char *c;
			size_t slashes = 0;

			for (c = anc[i]; *c; c++)
				slashes += *c == '/';
			if (slashes > depth)
				any = true;
			if (slashes != depth)
				continue;
			err = pin_in_place(anc[i]);
			if (err)
				return err;
		}
		if (!any)
			break;
	}
	/* then cover each of kgate's directories, deepest first (one may sit
	 * inside another); a covered one is a mount point too */
	for (k = 0; k < dirs->n; k++) {
		for (i = 0, best = dirs->n; i < dirs->n; i++)
			if (!done[i] && (best == dirs->n ||
					 strlen(dirs->path[i]) > strlen(dirs->path[best])))
				best = i;
		done[best] = true;
		if (mount("kgate", dirs->path[best], "tmpfs",
			  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0)
			return -errno;
	}
	return 0;
}

bool kg_selfprotect_cgroup_governed(struct kg_loader *l, const char *cgroup_rel,
				    uint64_t *job_cgid)
{
	const char *mnt = kg_cgroup2_mount();
	int fd = kg_loader_map_fd(l, "kg_jobs");
	char path[PATH_MAX], *slash;
	bool under_root;
	struct kg_job job;
	uint64_t id;
	size_t mlen;

	*job_cgid = 0;
	under_root = !strncmp(cgroup_rel, "/" KG_JOBS_CGROUP "/", strlen("/" KG_JOBS_CGROUP "/"));
	if (!mnt || fd < 0 || kg_snprintf(path, sizeof(path), "%s%s", mnt, cgroup_rel))
		return under_root;
	/* the cgroup, then each ancestor, as the hooks look them up */
	mlen = strlen(mnt);
	for (;;) {
		if (!kg_cgroup_id_of_path(path, &id) && !bpf_map_lookup_elem(fd, &id, &job)) {
			*job_cgid = id;
			return true;
		}
		slash = strrchr(path, '/');
		if (!slash || (size_t)(slash - path) < mlen)
			break;
		*slash = '\0';
	}
	return under_root;
}

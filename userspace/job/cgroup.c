// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroup.c - job cgroups on cgroup v2.
 *
 * Hybrid hosts (cgroup v1 controllers + a cgroup2 mount for systemd) often
 * have no pids/memory controller on cgroup2: every limit is then reported as
 * not enforced (or approximated by an rlimit), never silently dropped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "job/cgroup.h"
#include "common.h"

#define KG_CG_DESTROY_WAIT_MS	5000
#define KG_CG_MAX_DEPTH		32

/* ---- the cgroup2 mount ---------------------------------------------------- */

/* One mountinfo line: "id parent maj:min root mountpoint opts... - fstype src sopts" */
static bool mountinfo_line_is_cgroup2(char *line, char *mnt, size_t len)
{
	char *sep = strstr(line, " - ");
	char *save = NULL, *tok;
	int field = 0;

	if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
		return false;
	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (++field == 5) {
			kg_mountinfo_unescape(tok);
			return kg_strlcpy(mnt, tok, len) == 0;
		}
	}
	return false;
}

const char *kg_cgroup2_mount(void)
{
	static char mnt[4096];
	char line[8192];
	FILE *f;

	if (mnt[0])
		return mnt;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (mountinfo_line_is_cgroup2(line, mnt, sizeof(mnt)))
			break;
		mnt[0] = '\0';
	}
	fclose(f);
	return mnt[0] ? mnt : NULL;
}

/* Is `word` one of the space-separated words of the file at `path`? */
static bool file_has_word(const char *path, const char *word)
{
	char *buf = kg_read_file(path, 4096, NULL);
	char *save = NULL, *tok;
	bool found = false;

	if (!buf)
		return false;
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (!strcmp(tok, word))
			found = true;
	free(buf);
	return found;
}

bool kg_cgroup2_has_controller(const char *ctrl)
{
	const char *mnt = kg_cgroup2_mount();
	char path[4200];

	if (!mnt || kg_snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt))
		return false;
	return file_has_word(path, ctrl);
}

/* ---- ids and membership ----------------------------------------------------- */

int kg_cgroup_id_of_path(const char *path, uint64_t *id)
{
	struct {
		struct file_handle fh;
		uint64_t cgid;
	} h;
	struct stat st;
	int mount_id;

	if (stat(path, &st) < 0)
		return -errno;
	/* cgroup2 (kernfs) file handles carry the 64-bit cgroup id: prefer it,
	 * and check that it is the inode number we would otherwise use. */
	h.fh.handle_bytes = sizeof(h.cgid);
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) == 0 &&
	    h.fh.handle_bytes == sizeof(uint64_t)) {
		memcpy(id, h.fh.f_handle, sizeof(*id));
		if (*id != (uint64_t)st.st_ino)
			kg_debug("cgroup: handle id %llu != inode %llu for %s",
				 (unsigned long long)*id, (unsigned long long)st.st_ino, path);
		return 0;
	}
	*id = st.st_ino;
	return 0;
}

int kg_cgroup_of_pid(pid_t pid, char *buf, size_t len)
{
	char path[64], *data, *line, *save = NULL;
	int ret = -ENOENT;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/cgroup");
	data = kg_read_file(path, 1 << 16, NULL);
	if (!data)
		return -errno;
	for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "0::", 3) == 0) {
			ret = kg_strlcpy(buf, line + 3, len) ? -ENAMETOOLONG : 0;
			break;
		}
	}
	free(data);
	return ret;
}

/* ---- create ------------------------------------------------------------------- */

static int cg_file(const struct kg_cgroup *cg, const char *name, char *buf, size_t len)
{
	return kg_snprintf(buf, len, "%s/%s", cg->path, name) ? -ENAMETOOLONG : 0;
}

/* Enable `ctrl` in subtree_control of every directory from the mount down to
 * `dir` (a controller must be enabled in each ancestor to reach a child). */
static int enable_controller_down_to(const char *mnt, const char *dir, const char *ctrl)
{
	char cur[4096], file[4200], plus[32];
	size_t mlen = strlen(mnt);
	const char *p = dir + mlen;
	int ret;

	snprintf(plus, sizeof(plus), "+%s", ctrl);
	if (kg_strlcpy(cur, mnt, sizeof(cur)))
		return -ENAMETOOLONG;
	for (;;) {
		if (kg_snprintf(file, sizeof(file), "%s/cgroup.subtree_control", cur))
			return -ENAMETOOLONG;
		ret = kg_write_file(file, plus);
		if (ret < 0)
			return ret;
		while (*p == '/')
			p++;
		if (!*p)
			return 0;
		p = strchrnul(p, '/');
		if ((size_t)(p - dir) >= sizeof(cur))
			return -ENAMETOOLONG;
		memcpy(cur, dir, (size_t)(p - dir));
		cur[p - dir] = '\0';
	}
}

int kg_cgroup_open(const char *path, struct kg_cgroup *out)
{
	struct statfs sf;
	int ret;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (kg_strlcpy(out->path, path, sizeof(out->path)))
		return -ENAMETOOLONG;
	out->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (out->fd < 0)
		return -errno;
	/* only a cgroup2 directory: destroying anything else (a registry
	 * record naming a plain directory) would rmdir its empty
	 * subdirectories and kill the pids listed in its "cgroup.procs" */
	if (fstatfs(out->fd, &sf))
		ret = -errno;
	else if ((unsigned long)sf.f_type != CGROUP2_SUPER_MAGIC)
		ret = -EMEDIUMTYPE;
	else
		ret = kg_cgroup_id_of_path(path, &out->id);
	if (ret < 0) {
		close(out->fd);
		out->fd = -1;
	}
	return ret;
}

int kg_cgroup_create_job(const char *parent_name, const char *job_name,
			 struct kg_cgroup *out)
{
	static const char *const ctrls[] = { "pids", "memory" };
	const char *mnt = kg_cgroup2_mount();
	char parent[4096], job[4096];
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (!mnt)
		return kg_err("cgroup: no cgroup2 mount in /proc/self/mountinfo"), -ENOENT;
	if (!job_name[0] || strchr(job_name, '/') || !strcmp(job_name, ".") ||
	    !strcmp(job_name, "..") || strstr(parent_name, ".."))
		return kg_err("cgroup: invalid job name '%s'", job_name), -EINVAL;
	if (kg_snprintf(parent, sizeof(parent), "%s/%s", mnt, parent_name) ||
	    kg_snprintf(job, sizeof(job), "%s/%s", parent, job_name))
		return -ENAMETOOLONG;
	ret = kg_mkdir_p(parent, 0755);
	if (ret < 0)
		return kg_err("cgroup: mkdir %s: %s", parent, strerror(-ret)), ret;
	for (i = 0; i < ARRAY_SIZE(ctrls); i++) {
		if (!kg_cgroup2_has_controller(ctrls[i])) {
			kg_debug("cgroup: controller %s not available on cgroup2", ctrls[i]);
			continue;
		}
		ret = enable_controller_down_to(mnt, parent, ctrls[i]);
		if (ret < 0)
			kg_warn("cgroup: cannot enable %s under %s: %s", ctrls[i], parent,
				strerror(-ret));
	}
	if (mkdir(job, 0755) < 0) {
		ret = -errno;
		if (ret != -EEXIST)
			kg_err("cgroup: mkdir %s: %s", job, strerror(-ret));
		return ret;
	}
	ret = kg_cgroup_open(job, out);
	if (ret < 0) {
		rmdir(job);
		return kg_err("cgroup: open %s: %s", job, strerror(-ret)), ret;
	}
	return 0;
}

/* ---- limits --------------------------------------------------------------------- */

static bool cg_has_file(const struct kg_cgroup *cg, const char *name)
{
	char path[4200];

	return !cg_file(cg, name, path, sizeof(path)) && access(path, F_OK) == 0;
}

static int cg_write_u64(const struct kg_cgroup *cg, const char *name, uint64_t v)
{
	char path[4200], val[32];

	if (cg_file(cg, name, path, sizeof(path)))
		return -ENAMETOOLONG;
	snprintf(val, sizeof(val), "%llu", (unsigned long long)v);
	return kg_write_file(path, val);
}

static int limit_procs(const struct kg_cgroup *cg, uint64_t max_procs,
		       struct kg_limit_report *rep)
{
	int ret;

	rep->max_procs = max_procs;
	if (!max_procs) {
		rep->procs_how = KG_LIMIT_UNSET;
		return 0;
	}
	if (cg_has_file(cg, "pids.max")) {
		ret = cg_write_u64(cg, "pids.max", max_procs);
		if (ret < 0)
			return kg_err("cgroup: pids.max: %s", strerror(-ret)), ret;
		rep->procs_how = KG_LIMIT_CGROUP;
		snprintf(rep->procs_reason, sizeof(rep->procs_reason),
			 "pids.max=%llu on the job cgroup", (unsigned long long)max_procs);
		return 0;
	}
	/* RLIMIT_NPROC counts every process of the real uid, not the job, and is
	 * ignored for root (CAP_SYS_ADMIN): only meaningful with --as <user>. */
	rep->procs_how = KG_LIMIT_RLIMIT;
	rep->rlimit_nproc = max_procs;
	snprintf(rep->procs_reason, sizeof(rep->procs_reason),
		 "no pids controller on cgroup2: approximated by RLIMIT_NPROC "
		 "(per uid, not per job; no effect for root)");
	return 0;
}

static int limit_memory(const struct kg_cgroup *cg, uint64_t memory_max,
			struct kg_limit_report *rep)
{
	int ret;

	rep->memory_max = memory_max;
	if (!memory_max) {
		rep->memory_how = KG_LIMIT_UNSET;
		return 0;
	}
	if (cg_has_file(cg, "memory.max")) {
		ret = cg_write_u64(cg, "memory.max", memory_max);
		if (ret < 0)
			return kg_err("cgroup: memory.max: %s", strerror(-ret)), ret;
		/* no swap either, or memory.max only moves pages to swap */
		if (cg_has_file(cg, "memory.swap.max"))
			(void)cg_write_u64(cg, "memory.swap.max", 0);
		rep->memory_how = KG_LIMIT_CGROUP;
		snprintf(rep->memory_reason, sizeof(rep->memory_reason),
			 "memory.max=%llu on the job cgroup", (unsigned long long)memory_max);
		return 0;
	}
	/* No stand-in: RLIMIT_AS caps each process's virtual address space,
	 * not the job's memory, and breaks runtimes that reserve large address
	 * ranges up front (V8, the JVM, Go, sanitizers) long before they use
	 * the memory.  Say it is not enforced instead. */
	rep->memory_how = KG_LIMIT_NONE;
	snprintf(rep->memory_reason, sizeof(rep->memory_reason),
		 "not enforced: no memory controller on cgroup2 (enable it to get memory.max)");
	return 0;
}

int kg_cgroup_set_limits(const struct kg_cgroup *cg, uint64_t max_procs,
			 uint64_t memory_max, struct kg_limit_report *rep)
{
	int ret;

	memset(rep, 0, sizeof(*rep));
	ret = limit_procs(cg, max_procs, rep);
	if (ret < 0)
		return ret;
	return limit_memory(cg, memory_max, rep);
}

int kg_limits_apply_rlimits(const struct kg_limit_report *rep)
{
	struct rlimit rl;

	if (rep->rlimit_nproc) {
		rl.rlim_cur = rl.rlim_max = rep->rlimit_nproc;
		if (setrlimit(RLIMIT_NPROC, &rl) < 0)
			return -errno;
	}
	if (rep->rlimit_as) {
		rl.rlim_cur = rl.rlim_max = rep->rlimit_as;
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			return -errno;
	}
	return 0;
}

/* ---- kill and destroy ----------------------------------------------------------- */

int kg_cgroup_add_pid(const struct kg_cgroup *cg, pid_t pid)
{
	char path[4200], val[32];

	if (cg_file(cg, "cgroup.procs", path, sizeof(path)))
		return -ENAMETOOLONG;
	snprintf(val, sizeof(val), "%d", (int)pid);
	return kg_write_file(path, val);
}

/* SIGKILL every pid in dir/cgroup.procs and below; returns the count. */
static int kill_procs_recursive(const char *dir, int depth)
{
	char path[4200], *procs, *save = NULL, *tok;
	struct dirent *de;
	int n = 0;
	DIR *d;

	if (depth > KG_CG_MAX_DEPTH || kg_snprintf(path, sizeof(path), "%s/cgroup.procs", dir))
		return 0;
	procs = kg_read_file(path, 1 << 20, NULL);
	if (procs) {
		for (tok = strtok_r(procs, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
			if (kill((pid_t)atoi(tok), SIGKILL) == 0)
				n++;
		free(procs);
	}
	d = opendir(dir);
	if (!d)
		return n;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (!kg_snprintf(path, sizeof(path), "%s/%s", dir, de->d_name))
			n += kill_procs_recursive(path, depth + 1);
	}
	closedir(d);
	return n;
}

int kg_cgroup_kill(const struct kg_cgroup *cg)
{
	char path[4200];
	int ret, round;

	if (cg_file(cg, "cgroup.kill", path, sizeof(path)))
		return -ENAMETOOLONG;
	ret = kg_write_file(path, "1");
	if (ret != -ENOENT)
		return ret;
	/* Before 5.14: freeze so nothing forks while we walk, kill, thaw (a
	 * frozen task still dies of SIGKILL once thawed). Several rounds in case
	 * freezing is unsupported too and a fork raced the walk. */
	if (!cg_file(cg, "cgroup.freeze", path, sizeof(path)))
		(void)kg_write_file(path, "1");
	for (round = 0; round < 10; round++)
		if (kill_procs_recursive(cg->path, 0) == 0)
			break;
	if (!cg_file(cg, "cgroup.freeze", path, sizeof(path)))
		(void)kg_write_file(path, "0");
	return 0;
}

bool kg_cgroup_populated(const struct kg_cgroup *cg)
{
	char path[4200], *ev, *p;
	bool populated = true;

	if (cg_file(cg, "cgroup.events", path, sizeof(path)))
		return true;
	ev = kg_read_file(path, 4096, NULL);
	if (!ev)
		return errno != ENOENT;
	p = strstr(ev, "populated ");
	if (p)
		populated = p[10] != '0';
	free(ev);
	return populated;
}

static int rmdir_children_bottom_up(const char *dir, int depth)
{
	char path[4200];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	if (depth > KG_CG_MAX_DEPTH)
		return -ELOOP;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (kg_snprintf(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		(void)rmdir_children_bottom_up(path, depth + 1);
		if (rmdir(path) < 0 && errno != ENOENT)
			ret = -errno;
	}
	closedir(d);
	return ret;
}

void kg_cgroup_close(struct kg_cgroup *cg)
{
	if (cg->fd >= 0)
		close(cg->fd);
	cg->fd = -1;
}

int kg_cgroup_destroy(struct kg_cgroup *cg)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int waited, ret;

	if (!cg->path[0])
		return 0;
	ret = kg_cgroup_kill(cg);
	if (ret < 0 && ret != -ENOENT)
		kg_warn("cgroup: kill %s: %s", cg->path, strerror(-ret));
	for (waited = 0; kg_cgroup_populated(cg); waited += 10) {
		if (waited >= KG_CG_DESTROY_WAIT_MS) {
			kg_cgroup_close(cg);
			return kg_err("cgroup: %s still populated after %d ms", cg->path,
				      waited), -EBUSY;
		}
		if (waited && waited % 500 == 0)
			(void)kg_cgroup_kill(cg);
		nanosleep(&ts, NULL);
	}
	ret = rmdir_children_bottom_up(cg->path, 0);
	if (rmdir(cg->path) < 0 && errno != ENOENT)
		ret = -errno;
	kg_cgroup_close(cg);
	if (ret < 0)
		return kg_err("cgroup: rmdir %s: %s", cg->path, strerror(-ret)), ret;
	cg->path[0] = '\0';
	return 0;
}

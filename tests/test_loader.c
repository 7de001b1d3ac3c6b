// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_loader.c - loader.c on this host (degraded or full, whichever the
 * kernel gives): the objects load into a private pin dir, the shared maps
 * are found by name, cgroup programs attach to a real cgroup and their
 * links are pinned and removed; every failure is a negative errno (never a
 * bare -1) that names what went wrong.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "job/cgroup.h"
#include "common.h"
#include "kernel/loader.h"
#include "testlib.h"

static char pindir[256];

static struct kg_loader *open_private(void)
{
	struct kg_loader_opts lo = { .want_lsm = true };

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	snprintf(pindir, sizeof(pindir), "/sys/fs/bpf/kgate-test-loader-%d", getpid());
	setenv("KGATE_BPFFS", pindir, 1);
	return kg_loader_open(&lo);
}

static void close_private(struct kg_loader *l)
{
	kg_loader_close(l);
	kg_loader_unpin_all();
	rmdir(pindir);
}

TEST(maps_found_by_name_unknown_is_enoent)
{
	struct kg_loader *l = open_private();
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[512];
	int fd;

	if (!ASSERT_TRUE(l != NULL, "objects load into a private pin dir"))
		return;
	fd = kg_loader_map_fd(l, "kg_jobs");
	ASSERT_GE(fd, 0, "kg_jobs");
	if (fd >= 0 && ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &len), "info"))
		ASSERT_STREQ(info.name, "kg_jobs", "the fd is that map");
	ASSERT_EQ(kg_loader_map_fd(l, "kg_no_such_map"), -ENOENT, "unknown map: -ENOENT");
	/* the maps are pinned where the pin dir says, and open from the pin */
	snprintf(path, sizeof(path), "%s/kg_jobs", pindir);
	ASSERT_OK(access(path, F_OK), "kg_jobs pinned under the pin dir");
	fd = kg_open_pinned_map("kg_jobs");
	ASSERT_GE(fd, 0, "opened from its pin");
	if (fd >= 0)
		close(fd);
	ASSERT_EQ(kg_open_pinned_map("kg_no_such_map"), -ENOENT, "no pin: -ENOENT");
	close_private(l);
}

TEST(attach_pins_links_detach_removes_them)
{
	struct kg_loader *l = open_private();
	struct kg_cgroup cg = {};
	char name[64], dir[512];
	struct stat st;

	if (!ASSERT_TRUE(l != NULL, "loader"))
		return;
	snprintf(name, sizeof(name), "kgate-test-loader-%d", getpid());
	if (kg_cgroup_create_job("kgate-test", name, &cg)) {
		close_private(l);
		SKIP("cannot create a cgroup here");
	}
	ASSERT_OK(kg_loader_attach_cgroup(l, cg.fd, cg.id), "attach to a real cgroup");
	snprintf(dir, sizeof(dir), "%s/jobs/%llu", pindir, (unsigned long long)cg.id);
	ASSERT_TRUE(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the job's link dir");
	ASSERT_OK(kg_loader_detach_cgroup(cg.id), "detach");
	ASSERT_TRUE(stat(dir, &st) != 0 && errno == ENOENT, "links gone");
	ASSERT_OK(kg_loader_detach_cgroup(cg.id), "detach again: nothing to do");
	/* a bad cgroup fd: the kernel's errno, not -1 */
	ASSERT_EQ(kg_loader_attach_cgroup(l, -1, 424242), -EBADF, "bad fd: -EBADF");
	kg_loader_detach_cgroup(424242);
	kg_cgroup_destroy(&cg);
	close_private(l);
}

/* How many loaded programs are called `name` (the kernel's 15-char name). */
static int progs_named(const char *name)
{
	__u32 id = 0;
	int n = 0;

	while (!bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && !strcmp(info.name, name))
			n++;
		close(fd);
	}
	return n;
}

/* The programs effective on a cgroup for connect4: does it include id? */
static bool effective_has(int cgfd, __u32 prog_id)
{
	__u32 ids[64], cnt = 64, i;

	if (bpf_prog_query(cgfd, BPF_CGROUP_INET4_CONNECT, BPF_F_QUERY_EFFECTIVE, NULL, ids, &cnt))
		return false;
	for (i = 0; i < cnt; i++)
		if (ids[i] == prog_id)
			return true;
	return false;
}

/* The root link of kg_connect4: its path, program and target cgroup. */
static int root_connect4(char *path, size_t len, struct bpf_link_info *info)
{
	char dir[512];
	struct dirent *de;
	__u32 ilen = sizeof(*info);
	DIR *d;
	int fd, found = -1;

	snprintf(dir, sizeof(dir), "%s/root", pindir);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strstr(de->d_name, "-net-kg_connect4")) {
			found = kg_snprintf(path, len, "%s/%s", dir, de->d_name) ? -1 : 0;
		}
	closedir(d);
	if (found)
		return -1;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	memset(info, 0, sizeof(*info));
	found = bpf_obj_get_info_by_fd(fd, info, &ilen);
	close(fd);
	return found;
}

/* The first kgate of a boot attaches the cgroup programs to <cgroup2>/kgate
 * once; a later one loads nothing (no program verified again), and a job
 * cgroup, and a cgroup the job creates below its own, have the programs
 * from their creation.  A root link that no longer targets <cgroup2>/kgate
 * (the cgroup re-created, say) is never trusted: the next loader loads and
 * attaches again.  A cgroup elsewhere (kgate govern) gets the same
 * programs from the root links. */
TEST(programs_attached_once_to_the_jobs_root)
{
	struct kg_loader_opts lo = { .want_lsm = true };
	struct kg_loader *l = open_private(), *warm, *again;
	struct kg_cgroup job = {}, other = {};
	struct bpf_link_info info, info2;
	char name[64], path[600], sub[4200], root[4200];
	uint64_t root_id = 0;
	int before, fd, sfd, lfd, pfd;

	if (!ASSERT_TRUE(l != NULL, "cold load"))
		return;
	if (!kg_loader_governs_jobs_root(l)) {
		close_private(l);
		SKIP("no cgroup2 here: jobs get their own links");
	}
	snprintf(root, sizeof(root), "%s/%s", kg_cgroup2_mount(), KG_JOBS_CGROUP);
	ASSERT_OK(kg_cgroup_id_of_path(root, &root_id), "id of the jobs' root");
	if (!ASSERT_OK(root_connect4(path, sizeof(path), &info), "kg_connect4's root link"))
		goto out;
	ASSERT_EQ(info.cgroup.cgroup_id, root_id, "attached to <cgroup2>/kgate");

	before = progs_named("kg_connect4");
	warm = kg_loader_open(&lo);
	if (!ASSERT_TRUE(warm != NULL, "warm open"))
		goto out;
	ASSERT_EQ(progs_named("kg_connect4"), before, "warm start loads no program");
	ASSERT_TRUE(kg_loader_governs_jobs_root(warm), "warm: the root governs");
	ASSERT_GE(kg_loader_map_fd(warm, "kg_jobs"), 0, "maps from their pins");
	ASSERT_GE(kg_loader_map_fd(warm, "kg_events"), 0, "the ring buffer from its pin");
	ASSERT_EQ(kg_loader_map_fd(warm, "kg_no_such_map"), -ENOENT, "unknown: -ENOENT");

	/* a job cgroup and a cgroup below it: governed from birth */
	snprintf(name, sizeof(name), "kgate-test-loader-%d", getpid());
	if (!ASSERT_OK(kg_cgroup_create_job(KG_JOBS_CGROUP, name, &job), "job cgroup"))
		goto out_warm;
	ASSERT_TRUE(effective_has(job.fd, info.prog_id), "job cgroup inherits kg_connect4");
	snprintf(sub, sizeof(sub), "%s/sub", job.path);
	ASSERT_OK(mkdir(sub, 0755), "the job makes a cgroup of its own");
	sfd = open(sub, O_RDONLY | O_DIRECTORY);
	ASSERT_TRUE(sfd >= 0 && effective_has(sfd, info.prog_id), "and it inherits too");
	if (sfd >= 0)
		close(sfd);
	rmdir(sub);

	/* kgate govern's path after a warm start: the same program, linked */
	if (ASSERT_OK(kg_cgroup_create_job("kgate-test", name, &other), "a cgroup elsewhere")) {
		ASSERT_FALSE(effective_has(other.fd, info.prog_id), "not governed before");
		ASSERT_OK(kg_loader_attach_cgroup(warm, other.fd, other.id), "attach from root links");
		ASSERT_TRUE(effective_has(other.fd, info.prog_id), "governed by the same program");
		ASSERT_OK(kg_loader_detach_cgroup(other.id), "detach");
	}

	/* a root link that targets another cgroup is not trusted */
	fd = bpf_obj_get(path);
	pfd = fd >= 0 ? bpf_prog_get_fd_by_id(info.prog_id) : -1;
	lfd = pfd >= 0 && other.fd >= 0 ?
		bpf_link_create(pfd, other.fd, BPF_CGROUP_INET4_CONNECT, NULL) : -1;
	if (ASSERT_GE(lfd, 0, "a link to another cgroup")) {
		unlink(path);
		ASSERT_OK(bpf_obj_pin(lfd, path), "pinned where the root link was");
		close(lfd);
	}
	if (pfd >= 0)
		close(pfd);
	if (fd >= 0)
		close(fd);
	before = progs_named("kg_connect4");
	again = kg_loader_open(&lo);
	if (ASSERT_TRUE(again != NULL, "open after the root link went astray")) {
		ASSERT_TRUE(progs_named("kg_connect4") > before, "loaded and verified again");
		ASSERT_TRUE(kg_loader_governs_jobs_root(again), "the root governs again");
		ASSERT_OK(root_connect4(path, sizeof(path), &info2), "root link re-pinned");
		ASSERT_EQ(info2.cgroup.cgroup_id, root_id, "targeting <cgroup2>/kgate");
		ASSERT_TRUE(effective_has(job.fd, info2.prog_id), "the job cgroup has it");
		kg_loader_close(again);
	}
	kg_cgroup_destroy(&job);
	if (other.fd > 0)
		kg_cgroup_destroy(&other);
out_warm:
	kg_loader_close(warm);
out:
	close_private(l);
}

TEST(pin_dir_not_on_bpffs_fails_with_errno)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	char tmpl[] = "/tmp/kgate-test-loader.XXXXXX", pin[600];
	struct kg_loader *l;

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	if (!ASSERT_TRUE(mkdtemp(tmpl) != NULL, "mkdtemp"))
		return;
	snprintf(pin, sizeof(pin), "%s/pins", tmpl);
	setenv("KGATE_BPFFS", pin, 1);
	errno = 0;
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l == NULL, "refused");
	ASSERT_EQ(errno, ENOTSUP, "errno says why (not on a bpf filesystem)");
	kg_loader_close(l);
	rmdir(pin);
	rmdir(tmpl);
}

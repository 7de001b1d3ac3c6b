// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_cgroup.c - job cgroups on this host's cgroup2 mount. */
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "job/cgroup.h"
#include "common.h"
#include "testlib.h"

static void make_job(struct kg_cgroup *cg, const char *tag)
{
	char name[64];
	int ret;

	if (geteuid() != 0)
		SKIP("needs root to create cgroups");
	if (!kg_cgroup2_mount())
		SKIP("no cgroup2 mount");
	snprintf(name, sizeof(name), "t-%s-%d", tag, (int)getpid());
	ret = kg_cgroup_create_job("kgate-test", name, cg);
	if (ret < 0)
		SKIP("cannot create a job cgroup: %s", strerror(-ret));
}

TEST(cgroup2_mount_is_discovered)
{
	const char *mnt = kg_cgroup2_mount();
	struct statfs sf;

	if (!mnt)
		SKIP("no cgroup2 mount on this host");
	ASSERT_OK(statfs(mnt, &sf), "statfs");
	ASSERT_EQ(sf.f_type, CGROUP2_SUPER_MAGIC, "it is a cgroup2 filesystem");
}

TEST(create_id_membership_destroy)
{
	struct kg_cgroup cg, again;
	char rel[4096], saved[4096];
	struct stat st;
	uint64_t id;
	pid_t pid;
	int status;

	make_job(&cg, "basic");
	ASSERT_OK(stat(cg.path, &st), "stat job dir");
	ASSERT_EQ(cg.id, st.st_ino, "cgroup id is the directory inode");
	ASSERT_OK(kg_cgroup_id_of_path(cg.path, &id), "id of path");
	ASSERT_EQ(id, cg.id, "same id");
	ASSERT_EQ(kg_cgroup_create_job("kgate-test", strrchr(cg.path, '/') + 1, &again), -EEXIST,
		  "no silent reuse of a job cgroup");
	ASSERT_EQ(kg_cgroup_create_job("kgate-test", "../escape", &again), -EINVAL, "bad name");
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	ASSERT_OK(kg_cgroup_add_pid(&cg, pid), "move pid in");
	ASSERT_OK(kg_cgroup_of_pid(pid, rel, sizeof(rel)), "cgroup of pid");
	ASSERT_STREQ(rel, cg.path + strlen(kg_cgroup2_mount()), "pid is in the job");
	ASSERT_TRUE(kg_cgroup_populated(&cg), "populated");
	snprintf(saved, sizeof(saved), "%s", cg.path);
	ASSERT_OK(kg_cgroup_destroy(&cg), "destroy kills and removes");
	waitpid(pid, &status, 0);
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "member killed");
	ASSERT_ERRNO(access(saved, F_OK), ENOENT, "directory removed");
}

TEST(limits_are_reported_honestly)
{
	struct kg_limit_report rep;
	struct kg_cgroup cg;
	char file[4200], *v;

	make_job(&cg, "limits");
	ASSERT_OK(kg_cgroup_set_limits(&cg, 16, 64 << 20, &rep), "set limits");
	snprintf(file, sizeof(file), "%s/pids.max", cg.path);
	if (access(file, F_OK) == 0) {
		ASSERT_EQ(rep.procs_how, KG_LIMIT_CGROUP, "pids controller used");
		v = kg_read_file(file, 64, NULL);
		ASSERT_STREQ(v, "16\n", "pids.max written");
		free(v);
	} else {
		ASSERT_EQ(rep.procs_how, KG_LIMIT_RLIMIT, "no pids controller: approximation");
		ASSERT_HAS_SUBSTR(rep.procs_reason, "not per job", "says why it is weaker");
		ASSERT_EQ(rep.rlimit_nproc, 16, "rlimit to apply");
	}
	snprintf(file, sizeof(file), "%s/memory.max", cg.path);
	if (access(file, F_OK) == 0) {
		ASSERT_EQ(rep.memory_how, KG_LIMIT_CGROUP, "memory controller used");
	} else {
		ASSERT_EQ(rep.memory_how, KG_LIMIT_NONE, "no memory controller: not enforced, said so");
		ASSERT_HAS_SUBSTR(rep.memory_reason, "not enforced", "the report says so");
	}
	ASSERT_OK(kg_cgroup_set_limits(&cg, 0, 0, &rep), "no limits");
	ASSERT_EQ(rep.procs_how, KG_LIMIT_UNSET, "unset");
	ASSERT_OK(kg_cgroup_destroy(&cg), "destroy");
}

TEST(kill_reaches_grandchildren)
{
	struct kg_cgroup cg;
	pid_t pid;
	int i, status;

	make_job(&cg, "kill");
	pid = fork();
	if (pid == 0) {
		if (kg_cgroup_add_pid(&cg, getpid()) < 0)
			_exit(3);
		for (i = 0; i < 3; i++)
			if (fork() == 0) {
				setsid();
				if (fork() == 0)
					for (;;)
						pause();
				for (;;)
					pause();
			}
		for (;;)
			pause();
	}
	usleep(200000);
	ASSERT_TRUE(kg_cgroup_populated(&cg), "tree running in the job");
	ASSERT_OK(kg_cgroup_kill(&cg), "kill");
	waitpid(pid, &status, 0);
	for (i = 0; i < 200 && kg_cgroup_populated(&cg); i++)
		usleep(10000);
	ASSERT_FALSE(kg_cgroup_populated(&cg), "nothing survives");
	ASSERT_OK(kg_cgroup_destroy(&cg), "destroy");
}

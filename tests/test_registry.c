// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_registry.c - registry.c: the jobs kept in the state dir and the one
 * ring-buffer consumer.  A record survives a save/load round trip field by
 * field; a trace that could leave the jobs dir is refused; unreadable or
 * incomplete records are left out of the list; remove takes the tally with
 * it; the consumer lock is held by one process at a time.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "testenv.h"
#include "common.h"
#include "job/registry.h"

static char dir[64];

static void state_dir(void)
{
	strcpy(dir, "/tmp/kgate-registry-test-XXXXXX");
	if (!mkdtemp(dir))
		SKIP("mkdtemp failed");
	setenv("KGATE_STATE_DIR", dir, 1);
}

static void cleanup(void)
{
	kt_rm_tree(dir);
}

static void sample(struct kg_job_record *r, const char *trace, uint64_t cgid)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->trace, sizeof(r->trace), "%s", trace);
	r->job_id = 0x1234567890abcdefULL;
	r->cgid = cgid;
	snprintf(r->cgroup_path, sizeof(r->cgroup_path), "/sys/fs/cgroup/kgate/%s", trace);
	r->policy_id = 77;
	r->old_policy_ids[0] = 75;
	r->old_policy_ids[1] = 76;
	r->nold = 2;
	snprintf(r->policy_name, sizeof(r->policy_name), "ci \"quoted\" name");
	snprintf(r->policy_hash, sizeof(r->policy_hash), "%064x", 0xabc);
	snprintf(r->policy_path, sizeof(r->policy_path), "/etc/kgate/ci.json");
	r->pid = 4242;
	r->controller_pid = 4241;
	r->uid = 0;
	r->as_uid = 1000;
	r->invoker_uid = 1001;
	r->full = true;
	r->governed = true;
	r->root_slot = 3;
	r->started_real_ns = 1700000000123456789ULL;
	snprintf(r->command, sizeof(r->command), "sh -c 'echo hi'");
}

TEST(save_load_round_trip_every_field)
{
	struct kg_job_record r, back;

	state_dir();
	sample(&r, "job-00000000deadbeef", 9001);
	ASSERT_OK(kg_registry_save(&r), "save");
	ASSERT_OK(kg_registry_load("job-00000000deadbeef", &back), "load");
	ASSERT_STREQ(back.trace, r.trace, "trace");
	ASSERT_TRUE(back.job_id == r.job_id, "job_id (64 bits)");
	ASSERT_TRUE(back.cgid == 9001, "cgid");
	ASSERT_STREQ(back.cgroup_path, r.cgroup_path, "cgroup_path");
	ASSERT_EQ(back.policy_id, 77u, "policy_id");
	ASSERT_TRUE(back.nold == 2 && back.old_policy_ids[0] == 75 && back.old_policy_ids[1] == 76,
		    "old generations in order");
	ASSERT_STREQ(back.policy_name, r.policy_name, "policy_name with quotes");
	ASSERT_STREQ(back.policy_hash, r.policy_hash, "policy_hash");
	ASSERT_STREQ(back.policy_path, r.policy_path, "policy_path");
	ASSERT_EQ(back.pid, 4242, "pid");
	ASSERT_EQ(back.controller_pid, 4241, "controller_pid");
	ASSERT_EQ(back.as_uid, 1000u, "as_uid");
	ASSERT_EQ(back.invoker_uid, 1001u, "invoker_uid");
	ASSERT_TRUE(back.full && back.governed, "full, governed");
	ASSERT_EQ(back.root_slot, 3u, "root_slot");
	ASSERT_TRUE(back.started_real_ns == r.started_real_ns, "started_real_ns");
	ASSERT_STREQ(back.command, r.command, "command");
	/* saved again (a push): replaced, not duplicated, no temporary left */
	r.policy_id = 78;
	ASSERT_OK(kg_registry_save(&r), "save again");
	ASSERT_OK(kg_registry_load(r.trace, &back), "load again");
	ASSERT_EQ(back.policy_id, 78u, "the new generation");
	{
		struct kg_job_record *v;
		size_t n;

		ASSERT_OK(kg_registry_list(&v, &n), "list");
		ASSERT_EQ(n, 1u, "one job");
		free(v);
	}
	cleanup();
}

TEST(record_of_an_older_build_defaults_its_users)
{
	char path[256];
	struct kg_job_record back;
	FILE *f;

	state_dir();
	snprintf(path, sizeof(path), "%s/jobs", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/jobs/job-1.json", dir);
	f = fopen(path, "w");
	fputs("{\"trace\":\"job-1\",\"cgroup_id\":5,\"uid\":1234}", f);
	fclose(f);
	ASSERT_OK(kg_registry_load("job-1", &back), "load");
	ASSERT_EQ(back.as_uid, 1234u, "as_uid = uid");
	ASSERT_EQ(back.invoker_uid, 1234u, "invoker_uid = uid");
	ASSERT_TRUE(!back.governed && !back.full && back.nold == 0, "absent flags are false");
	cleanup();
}

TEST(traces_that_leave_the_jobs_dir_are_refused)
{
	static const char *const bad[] = { "../escape", "job-1/x", "job.1", ".." };
	struct kg_job_record r;
	char path[256];
	size_t i;

	state_dir();
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		sample(&r, bad[i], 1);
		ASSERT_EQ(kg_registry_save(&r), -EINVAL, bad[i]);
		ASSERT_EQ(kg_registry_load(bad[i], &r), -EINVAL, bad[i]);
	}
	snprintf(path, sizeof(path), "%s/escape.json", dir);
	ASSERT_TRUE(access(path, F_OK) != 0, "nothing written beside the jobs dir");
	ASSERT_EQ(kg_registry_load("job-none", &r), -ENOENT, "no such job: -ENOENT");
	cleanup();
}

TEST(list_skips_what_is_not_a_complete_record)
{
	struct kg_job_record r, *v = NULL;
	char path[256];
	size_t n = 0, i;
	bool a = false, b = false;
	FILE *f;

	state_dir();
	ASSERT_OK(kg_registry_list(&v, &n), "no jobs dir yet");
	ASSERT_TRUE(n == 0 && !v, "empty");
	sample(&r, "job-a", 11);
	ASSERT_OK(kg_registry_save(&r), "a");
	sample(&r, "job-b", 12);
	ASSERT_OK(kg_registry_save(&r), "b");
	snprintf(path, sizeof(path), "%s/jobs/job-torn.json", dir);
	f = fopen(path, "w");
	fputs("{\"trace\":\"job-torn\",\"cgroup_id\":", f);	/* torn */
	fclose(f);
	snprintf(path, sizeof(path), "%s/jobs/job-nocg.json", dir);
	f = fopen(path, "w");
	fputs("{\"trace\":\"job-nocg\"}", f);			/* no cgroup id */
	fclose(f);
	snprintf(path, sizeof(path), "%s/jobs/job-c.tally", dir);
	f = fopen(path, "w");
	fputs("{\"trace\":\"job-c\",\"cgroup_id\":13}", f);	/* not a .json */
	fclose(f);
	ASSERT_OK(kg_registry_list(&v, &n), "list");
	ASSERT_EQ(n, 2u, "only the two complete records");
	for (i = 0; i < n; i++) {
		a |= !strcmp(v[i].trace, "job-a") && v[i].cgid == 11;
		b |= !strcmp(v[i].trace, "job-b") && v[i].cgid == 12;
	}
	ASSERT_TRUE(a && b, "both, with their own fields");
	free(v);
	ASSERT_EQ(kg_registry_load("job-nocg", &r), -EINVAL, "incomplete record: -EINVAL");
	cleanup();
}

TEST(tally_read_and_removed_with_the_job)
{
	struct kg_job_record r;
	struct kg_job_tally t;
	char path[256];
	FILE *f;

	state_dir();
	sample(&r, "job-t", 21);
	ASSERT_OK(kg_registry_save(&r), "save");
	ASSERT_EQ(kg_registry_tally("job-t", &t), -ENOENT, "no tally yet");
	ASSERT_TRUE(!t.refused && !t.audited && !t.escalations, "zero when none");
	snprintf(path, sizeof(path), "%s/jobs/job-t.tally", dir);
	f = fopen(path, "w");
	fputs("refused 7 audited 3 escalations 2\n", f);
	fclose(f);
	ASSERT_OK(kg_registry_tally("job-t", &t), "tally");
	ASSERT_TRUE(t.refused == 7 && t.audited == 3 && t.escalations == 2, "the three counts");
	f = fopen(path, "w");
	fputs("refused seven\n", f);
	fclose(f);
	ASSERT_EQ(kg_registry_tally("job-t", &t), -EINVAL, "garbage: -EINVAL");
	kg_registry_remove("job-t");
	ASSERT_EQ(kg_registry_load("job-t", &r), -ENOENT, "record gone");
	ASSERT_TRUE(access(path, F_OK) != 0, "tally gone");
	ASSERT_EQ(kg_registry_tally("job/../x", &t), -EINVAL, "bad trace");
	cleanup();
}

TEST(stale_only_when_controller_and_job_are_gone)
{
	struct kg_job_record r;
	pid_t dead;

	sample(&r, "job-s", 1);
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	r.controller_pid = getpid();
	r.pid = dead;
	ASSERT_FALSE(kg_registry_stale(&r), "controller alive");
	r.controller_pid = dead;
	r.pid = getpid();
	ASSERT_FALSE(kg_registry_stale(&r), "job alive");
	r.pid = dead;
	ASSERT_TRUE(kg_registry_stale(&r), "both gone");
	r.controller_pid = 0;
	r.pid = 0;
	ASSERT_TRUE(kg_registry_stale(&r), "governed job: no pids");
}

TEST(one_consumer_at_a_time)
{
	int fd, fd2, status;
	pid_t pid;

	state_dir();
	fd = kg_consumer_try_lock();
	ASSERT_GE(fd, 0, "first takes the lock");
	pid = fork();
	if (pid == 0)
		_exit(kg_consumer_try_lock() >= 0 ? 1 : 0);
	waitpid(pid, &status, 0);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "another process is refused while it is held");
	fd2 = kg_consumer_try_lock();
	ASSERT_EQ(fd2, -1, "a second open in this process too");
	close(fd);
	pid = fork();
	if (pid == 0)
		_exit(kg_consumer_try_lock() >= 0 ? 0 : 1);
	waitpid(pid, &status, 0);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "taken once let go");
	cleanup();
}

TEST(state_locks_are_independent)
{
	int consumer, reap;

	state_dir();
	consumer = kg_consumer_try_lock();
	reap = kg_state_trylock("reap.lock");
	ASSERT_TRUE(consumer >= 0 && reap >= 0, "two locks, both held at once");
	ASSERT_EQ(kg_state_trylock("reap.lock"), -1, "the reap lock is exclusive too");
	close(reap);
	reap = kg_state_trylock("reap.lock");
	ASSERT_GE(reap, 0, "free once let go");
	close(reap);
	close(consumer);
	cleanup();
}

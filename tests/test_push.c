// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_push.c - push.c on this host's kernel: running jobs (registered in
 * a private state dir, their cgroups in a private pin dir's kg_jobs) flip
 * to a new policy generation in one update each; the registry, the
 * snapshots and the trail follow; a job that is gone is skipped; a policy
 * that cannot be compiled, or an unknown job, changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "record/audit.h"
#include "cli/cmds.h"
#include "common.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "kernel/push.h"
#include "record/recorder.h"
#include "job/registry.h"
#include "testlib.h"
#include "testenv.h"

#define POLICY_A "{\"version\":1,\"name\":\"a\",\"runtime\":[" \
	"{\"id\":\"net-a\",\"net\":{\"cidr\":\"10.1.0.0/16\"},\"decision\":\"deny\"}]}"
#define POLICY_B "{\"version\":1,\"name\":\"b\",\"runtime\":[" \
	"{\"id\":\"net-b\",\"net\":{\"cidr\":\"10.2.0.0/16\"},\"decision\":\"deny\"}," \
	"{\"id\":\"no-ptrace\",\"syscall\":{\"names\":[\"ptrace\"]},\"decision\":\"deny\"}]}"
/* cannot be compiled: the /16 needs more than KG_NET_ENTS entries */
#define POLICY_BAD "{\"version\":1,\"name\":\"bad\",\"runtime\":[" \
	"{\"id\":\"wide\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[1,2,3,4,5,6,7,8]}," \
	"\"decision\":\"deny\"}," \
	"{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[9]},\"decision\":\"deny\"}]}"

struct env {
	char dir[64], pindir[128];
	struct kg_loader *l;
	struct kg_audit *a;
	struct kg_policy_doc *da;
	uint32_t ida;
};

static struct kg_policy_doc *doc_of(const char *text)
{
	struct kg_policy_error err;

	return kg_policy_load_buffer(text, strlen(text), "test", "/nonexistent", &err);
}

/* three registered jobs on generation A: two governed, one whose cgroup
 * is gone (registered, not in kg_jobs) */
static void setup(struct env *e)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	struct kg_audit_opts ao = { .sync = KG_AUDIT_SYNC_RECORD };
	char path[256];
	int i;

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	strcpy(e->dir, "/tmp/kgate-test-push.XXXXXX");
	if (!mkdtemp(e->dir))
		SKIP("mkdtemp");
	snprintf(path, sizeof(path), "%s/state", e->dir);
	setenv("KGATE_STATE_DIR", path, 1);
	snprintf(path, sizeof(path), "%s/audit", e->dir);
	setenv("KGATE_AUDIT_DIR", path, 1);
	snprintf(e->pindir, sizeof(e->pindir), "/sys/fs/bpf/kgate-test-push-%d", getpid());
	setenv("KGATE_BPFFS", e->pindir, 1);
	e->l = kg_loader_open(&lo);
	if (!e->l)
		SKIP("cannot load kgate's BPF objects here: %s", strerror(errno));
	e->a = kg_audit_open(NULL, &ao);
	e->da = doc_of(POLICY_A);
	if (!e->a || !e->da)
		SKIP("trail or policy");
	if (kg_maps_install(e->l, e->da, &e->ida, NULL) || kg_snapshot_save(e->ida, e->da))
		SKIP("cannot install policy A");
	for (i = 1; i <= 3; i++) {
		struct kg_job_record r = {};

		snprintf(r.trace, sizeof(r.trace), "job-%016x", i);
		r.job_id = i;
		r.cgid = 0x70000 + i;
		r.policy_id = e->ida;
		snprintf(r.policy_name, sizeof(r.policy_name), "a");
		snprintf(r.policy_hash, sizeof(r.policy_hash), "%s", e->da->hash);
		if (kg_registry_save(&r) || (i < 3 && kg_maps_add_job(e->l, r.cgid, i, e->ida, 0)))
			SKIP("cannot register job %d", i);
	}
}

static void teardown(struct env *e)
{
	kg_audit_close(e->a);
	kg_policy_free(e->da);
	kg_loader_close(e->l);
	kg_loader_unpin_all();
	rmdir(e->pindir);
	kt_rm_tree(e->dir);
}

static uint32_t job_policy(struct env *e, uint64_t cgid)
{
	struct kg_job j;

	return kg_maps_get_job(e->l, cgid, &j) ? 0 : j.policy_id;
}

static int count_policies(struct env *e)
{
	int fd = kg_loader_map_fd(e->l, "kg_policies"), n = 0;
	uint32_t cur, next;
	bool first = true;

	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		n++;
	}
	return n;
}

struct changes {
	int n;
	json_int_t old_id[8], new_id[8];
	char new_hash[8][65];
	size_t fixed[8];
};

static int collect(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct changes *c = ctx;
	json_t *x = json_object_get(rec, "extra");

	(void)line;
	(void)len;
	if (c->n < 8) {
		c->old_id[c->n] = json_integer_value(json_object_get(json_object_get(x, "old"),
								     "policy_id"));
		c->new_id[c->n] = json_integer_value(json_object_get(json_object_get(x, "new"),
								     "policy_id"));
		snprintf(c->new_hash[c->n], sizeof(c->new_hash[0]), "%s",
			 json_string_value(json_object_get(json_object_get(x, "new"), "hash")) ?: "");
		c->fixed[c->n] = json_array_size(json_object_get(x, "not_applied_until_relaunch"));
	}
	c->n++;
	return 0;
}

static struct changes policy_changes(void)
{
	struct kg_audit_filter f = { .type = "policy_change" };
	struct kg_audit_qstats st;
	struct changes c = {};

	kg_audit_query(NULL, &f, collect, &c, true, &st);
	return c;
}

TEST(every_running_job_flips_and_everything_follows)
{
	struct kg_policy_doc *db = doc_of(POLICY_B), *snap;
	struct kg_readers_wait readers = {};
	struct kg_push_result res;
	struct kg_job_record r;
	struct changes c;
	uint32_t p1, p2;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	struct env e;

	setup(&e);
	if (!ASSERT_TRUE(db != NULL, "policy B"))
		return;
	ASSERT_OK(kg_push_policy(e.l, e.a, db, NULL, 0, f, &res), "push");
	fclose(f);
	ASSERT_EQ(res.jobs_updated, 2u, "the two governed jobs");
	ASSERT_EQ(res.jobs_skipped, 1u, "the one that is gone");
	p1 = job_policy(&e, 0x70001);
	p2 = job_policy(&e, 0x70002);
	ASSERT_TRUE(p1 && p1 != e.ida && p2 && p2 != e.ida, "both on a new generation");
	ASSERT_NEQ(p1, p2, "each its own");
	ASSERT_EQ(count_policies(&e), 2, "generation A removed: nothing runs it");
	if (ASSERT_OK(kg_registry_load("job-0000000000000001", &r), "registry")) {
		ASSERT_EQ(r.policy_id, p1, "registry: the new id");
		ASSERT_STREQ(r.policy_name, "b", "registry: the new name");
		ASSERT_STREQ(r.policy_hash, db->hash, "registry: the new hash");
		ASSERT_TRUE(r.nold == 1 && r.old_policy_ids[0] == e.ida, "registry: A to clean up");
	}
	snap = kg_snapshot_load_doc(p1);
	ASSERT_TRUE(snap && !strcmp(snap->hash, db->hash), "snapshot of the new generation");
	kg_policy_free(snap);
	snap = kg_snapshot_load_doc(e.ida);
	ASSERT_TRUE(snap != NULL, "A's snapshot kept for events still in flight");
	kg_policy_free(snap);
	c = policy_changes();
	ASSERT_EQ(c.n, 2, "one policy_change record per job");
	ASSERT_TRUE(c.old_id[0] == e.ida && (c.new_id[0] == p1 || c.new_id[0] == p2),
		    "old and new ids recorded");
	ASSERT_STREQ(c.new_hash[0], db->hash, "new hash recorded");
	ASSERT_EQ(c.fixed[0], 1u, "the syscall rule applies from the next launch, said so");
	ASSERT_HAS_SUBSTR(out, "job-0000000000000001: policy a (sha256", "one line per job");
	ASSERT_HAS_SUBSTR(out, "1 rule(s) are fixed at launch (seccomp, Landlock)", "degraded job");
	free(out);

	/* the job ends: every generation it used goes with its snapshot */
	kg_maps_remove_job(e.l, 0x70001);
	kg_push_release_generations(e.l, "job-0000000000000001", 0);
	ASSERT_TRUE(kg_snapshot_load_doc(p1) == NULL, "its snapshot gone");
	ASSERT_TRUE(kg_snapshot_load_doc(e.ida) == NULL, "and A's");
	ASSERT_EQ(count_policies(&e), 1, "only job 2's generation left");

	/* job 2 ends the way kgate run ends a job: the grace period passes in
	 * the background while the rest is closed, then its generation goes */
	kg_maps_remove_job(e.l, 0x70002);
	kg_maps_wait_readers_start(&readers);
	kg_push_release_generations_after(e.l, "job-0000000000000002", 0, &readers);
	ASSERT_FALSE(readers.started, "the background wait was joined");
	ASSERT_TRUE(kg_snapshot_load_doc(p2) == NULL, "job 2's snapshot gone");
	ASSERT_EQ(count_policies(&e), 0, "no generation left");
	kg_policy_free(db);
	teardown(&e);
}

TEST(retired_generations_go_with_the_next_sweep)
{
	struct kg_retired r;
	struct env e;

	setup(&e);
	kg_maps_remove_job(e.l, 0x70001);
	kg_maps_remove_job(e.l, 0x70002);
	ASSERT_EQ(kg_push_retire_generations(e.l, "job-0000000000000001", 0), 1, "one retired");
	ASSERT_EQ(kg_push_retire_generations(e.l, "job-0000000000000002", 0), 2,
		  "the same generation again: two ids listed");
	ASSERT_EQ(count_policies(&e), 1, "still in the maps, named by no job");
	ASSERT_TRUE(kg_snapshot_load_doc(e.ida) == NULL, "its snapshot gone at once");
	kg_push_sweep_start(&r);
	ASSERT_EQ(r.n, 2u, "the sweep read both");
	ASSERT_TRUE(r.wait.started, "its grace period runs in the background");
	kg_push_sweep_finish(e.l, &r);
	ASSERT_EQ(count_policies(&e), 0, "deleted after it");
	kg_push_sweep_start(&r);
	ASSERT_EQ(r.n, 0u, "the list is empty again");
	kg_push_sweep_finish(e.l, &r);
	teardown(&e);
}

TEST(one_job_by_trace)
{
	struct kg_policy_doc *db = doc_of(POLICY_B);
	struct kg_push_result res;
	struct env e;

	setup(&e);
	ASSERT_OK(kg_push_policy(e.l, e.a, db, "job-0000000000000002", 0, NULL, &res), "push");
	ASSERT_EQ(res.jobs_updated, 1u, "one");
	ASSERT_EQ(job_policy(&e, 0x70001), e.ida, "job 1 untouched");
	ASSERT_NEQ(job_policy(&e, 0x70002), e.ida, "job 2 flipped");
	ASSERT_EQ(count_policies(&e), 2, "A stays: job 1 runs it");
	kg_policy_free(db);
	teardown(&e);
}

TEST(nothing_changes_on_error)
{
	struct kg_policy_doc *db = doc_of(POLICY_B), *bad = doc_of(POLICY_BAD);
	struct kg_push_result res;
	struct kg_job_record r;
	struct env e;

	setup(&e);
	if (!ASSERT_TRUE(bad != NULL, "the bad policy parses (the kernel cannot hold it)"))
		return;
	ASSERT_EQ(kg_push_policy(e.l, e.a, bad, NULL, 0, NULL, &res), KG_EXIT_POLICY,
		  "cannot compile: exit 3");
	ASSERT_EQ(res.jobs_updated, 0u, "no job updated");
	ASSERT_EQ(job_policy(&e, 0x70001), e.ida, "job 1 still on A");
	ASSERT_EQ(job_policy(&e, 0x70002), e.ida, "job 2 still on A");
	ASSERT_EQ(count_policies(&e), 1, "no generation left behind");
	ASSERT_TRUE(!kg_registry_load("job-0000000000000001", &r) && r.policy_id == e.ida &&
		    r.nold == 0, "registry unchanged");
	ASSERT_EQ(kg_push_policy(e.l, e.a, db, "job-ffffffffffffffff", 0, NULL, &res),
		  KG_EXIT_USAGE, "unknown trace: exit 2");
	ASSERT_EQ(count_policies(&e), 1, "nothing installed for it");
	ASSERT_EQ(policy_changes().n, 0, "no policy_change recorded");
	kg_policy_free(db);
	kg_policy_free(bad);
	teardown(&e);
}

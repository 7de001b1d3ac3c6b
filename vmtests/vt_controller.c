// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_controller.c - the controller's life under BPF LSM (black box).
 *
 *   - kill -9 of `kgate run` while its job floods denied file opens: the
 *     pinned LSM programs keep refusing every open; a `kgate daemon`
 *     started afterwards drains the ring buffer, audits what was lost and
 *     adopts the ended job; the kernel's deny count equals the audited
 *     denials plus the audited losses.
 *   - `kgate policy push` to a running job swaps two file decisions without
 *     a restart; an invalid push changes nothing; pushes during a flood of
 *     denied opens never let one through (old generations are deleted only
 *     after the hooks reading them are done).
 *   - identical denied opens fold (bpf/kgate.h, kg_fold): two files refused
 *     3,000 times each are a few records per file whose counts are exactly
 *     3,000 each (the file hooks' path; the host's test_losses does it for
 *     connects), nothing lost, the two files never in one record.
 * The host runs the same scenarios through cgroup-BPF (tests/test_daemon.c);
 * here the file path is the LSM's.  Everything SKIPs outside "full".
 */
#include "testlib.h"
#include "vt_bb.h"
#include "kernel/loader.h"
#include "kernel/maps.h"

/* Sum of the losses that events_lost records account for. */
static long audited_losses(void)
{
	json_t *recs = bb_audit_query(NULL, "events_lost"), *r;
	long lost = 0;
	size_t i;

	json_array_foreach(recs, i, r) {
		json_t *extra = json_object_get(r, "extra");
		json_t *l = json_object_get(json_object_get(extra, "counts"), "lost");

		if (!l)
			l = json_object_get(extra, "lost");
		lost += (long)json_integer_value(l);
	}
	json_decref(recs);
	return lost;
}

#define DENY_SECRET_POLICY \
	"{\"version\":1,\"name\":\"vt-flood\",\"default\":\"allow\",\"runtime\":[" \
	"{\"id\":\"no-secret\",\"file\":{\"prefix\":\"~/secret/\",\"ops\":[\"read\",\"write\"]}," \
	"\"decision\":\"deny\"}]}"

TEST(controller_kill9_during_file_flood_loses_nothing)
{
	struct kg_loader_opts lo = { 0 };
	struct kg_counters c = { 0 };
	struct kg_loader *l;
	char policy[512], flood[640];
	json_t *recs;
	long audited, lost;
	pid_t run, d;
	int rc;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("secret"), 0700), "secret dir");
	ASSERT_OK(bb_write(bb_home("secret/key"), "KEY\n", 0600), "secret");
	bb_policy("p.json", DENY_SECRET_POLICY, policy, sizeof(policy));
	snprintf(flood, sizeof(flood), "flood=flood:%s:6000", bb_home("secret/key"));
	{
		char *argv[] = { (char *)bb_kgate(), "run", "-q", "--policy", policy, "--",
				 (char *)bb_helper("vt_agent"), "go=sleep:0", flood, NULL };

		run = bb_spawn("run.out", argv);
	}
	if (!ASSERT_TRUE(wait_for_output("run.out", "go errno=0", BB_START_MS), "the agent started")) {
		char *out = bb_slurp("run.out");

		bb_show("kgate run", out);
		free(out);
	}
	bb_sleep_ms(1000);		/* flooding, with kgate run consuming */
	kill(run, SIGKILL);		/* the controller, not the job */
	ASSERT_EQ(bb_wait(run), 128 + SIGKILL, "kgate run killed");
	/* the orphaned job keeps flooding, refused by the pinned programs */
	ASSERT_TRUE(wait_for_output("run.out", "flood ok=", BB_START_MS), "the flood ran to its end");
	ASSERT_EQ(bb_result("run.out", "flood", "ok"), 0, "no open of the secret ever succeeded");
	ASSERT_GE(bb_result("run.out", "flood", "refused"), 20, "a real flood, every open refused");
	ASSERT_EQ(bb_result("run.out", "flood", "other"), 0, "no other error");

	{
		char *argv[] = { (char *)bb_kgate(), "daemon", NULL };

		d = bb_spawn("daemon.out", argv);
	}
	ASSERT_TRUE(wait_for_output("daemon.out", "ready", BB_START_MS), "the daemon started");
	/* it adopts the ended job once it sees the job's cgroup empty */
	{
		long long end = bb_now_ms() + 20000;
		int exits = 0;

		while (!exits && bb_now_ms() < end) {
			recs = bb_audit_query(NULL, "job_exit");
			exits = (int)json_array_size(recs);
			json_decref(recs);
			if (!exits)
				bb_sleep_ms(300);
		}
		ASSERT_EQ(exits, 1, "the daemon recorded the orphaned job's end");
	}
	kill(d, SIGTERM);
	rc = bb_wait(d);
	ASSERT_EQ(rc, 0, "the daemon stops cleanly");
	{
		char *out = bb_slurp("daemon.out");

		bb_show("kgate daemon", out);
		free(out);
	}

	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "the maps are still pinned");
	if (l) {
		ASSERT_OK(kg_maps_read_counters(l, &c), "read the kernel's counters");
		kg_loader_close(l);
	}
	recs = bb_audit_query(NULL, "decision");
	audited = bb_count(recs, "decision", NULL, "deny", NULL, NULL);
	ASSERT_EQ(bb_count(recs, "decision", "read", "deny", "no-secret", "bpf-lsm"), audited,
		  "every audited denial is the flood's (read, no-secret, bpf-lsm)");
	json_decref(recs);
	lost = audited_losses();
	printf("  kernel denials %llu, audited %ld, lost and audited %ld, agent saw %ld refusals\n",
	       (unsigned long long)c.decisions[KG_DEC_DENY], audited, lost,
	       bb_result("run.out", "flood", "refused"));
	ASSERT_GE((long)c.decisions[KG_DEC_DENY], bb_result("run.out", "flood", "refused"),
		  "the kernel counted each refusal the agent saw");
	ASSERT_EQ(audited + lost, (long)c.decisions[KG_DEC_DENY],
		  "every kernel denial is audited or counted lost");
	bb_teardown();
}

/* Decision records (not what they count) whose target holds target_sub. */
static int records_for(json_t *recs, const char *decision, const char *target_sub)
{
	const char *t;
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(recs, i, r) {
		t = json_string_value(json_object_get(r, "target"));
		if (bb_field_is(r, "type", "decision") && bb_field_is(r, "decision", decision) &&
		    t && strstr(t, target_sub))
			n++;
	}
	return n;
}

TEST(identical_denied_opens_fold_into_a_few_records_per_file)
{
	struct kg_loader_opts lo = { 0 };
	struct kg_counters c = { 0 };
	struct kg_loader *l;
	char policy[512], a[640], b[640];
	json_t *recs;
	int ra, rb;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("secret"), 0700), "secret dir");
	ASSERT_OK(bb_write(bb_home("secret/a"), "A\n", 0600), "secret a");
	ASSERT_OK(bb_write(bb_home("secret/b"), "B\n", 0600), "secret b");
	bb_policy("p.json", DENY_SECRET_POLICY, policy, sizeof(policy));
	snprintf(a, sizeof(a), "a=burst:%s:3000", bb_home("secret/a"));
	snprintf(b, sizeof(b), "b=burst:%s:3000", bb_home("secret/b"));
	{
		char *argv[] = { (char *)bb_kgate(), "run", "-q", "--policy", policy, "--",
				 (char *)bb_helper("vt_agent"), a, b, NULL };

		bb_wait(bb_spawn("run.out", argv));	/* its status: the last errno */
	}
	if (bb_result("run.out", "a", "refused") != 3000) {
		char *out = bb_slurp("run.out");

		bb_show("kgate run", out);
		free(out);
	}
	ASSERT_EQ(bb_result("run.out", "a", "refused"), 3000, "every open of a refused");
	ASSERT_EQ(bb_result("run.out", "b", "refused"), 3000, "every open of b refused");
	recs = bb_audit_query(NULL, "decision");
	ra = records_for(recs, "deny", "secret/a");
	rb = records_for(recs, "deny", "secret/b");
	printf("  secret/a: %d records counting %d; secret/b: %d records counting %d; "
	       "%d deny records in all\n", ra,
	       bb_count_target(recs, "decision", "read", "deny", "no-secret", "bpf-lsm", "secret/a"),
	       rb,
	       bb_count_target(recs, "decision", "read", "deny", "no-secret", "bpf-lsm", "secret/b"),
	       records_for(recs, "deny", ""));
	ASSERT_EQ(bb_count_target(recs, "decision", "read", "deny", "no-secret", "bpf-lsm",
				  "secret/a"), 3000, "a's records count exactly its 3000 refusals");
	ASSERT_EQ(bb_count_target(recs, "decision", "read", "deny", "no-secret", "bpf-lsm",
				  "secret/b"), 3000, "b's records count exactly its 3000 refusals");
	ASSERT_TRUE(ra >= 1 && ra <= 60, "a's 3000 refusals are a few records (one a second)");
	ASSERT_TRUE(rb >= 1 && rb <= 60, "and b's");
	ASSERT_EQ(records_for(recs, "deny", ""), ra + rb, "no deny record of anything else");
	json_decref(recs);
	ASSERT_EQ(audited_losses(), 0, "nothing lost");
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "the maps are still pinned");
	if (l) {
		ASSERT_OK(kg_maps_read_counters(l, &c), "read the kernel's counters");
		kg_loader_close(l);
	}
	ASSERT_EQ((long)c.decisions[KG_DEC_DENY], 6000, "the kernel refused 6000");
	bb_teardown();
}

#define SWAP_POLICY(deny) \
	"{\"version\":1,\"name\":\"vt-no-" deny "\",\"default\":\"allow\",\"runtime\":[" \
	"{\"id\":\"no-" deny "\",\"file\":{\"path\":\"~/" deny ".txt\",\"ops\":[\"read\"]}," \
	"\"decision\":\"deny\"}]}"

struct rounds {
	int n;
	int a[2048], b[2048];	/* errno of each round's reads */
};

/* The agent's "round N a=E b=E" lines. */
static void parse_rounds(const char *out, struct rounds *r)
{
	char *text = bb_slurp(out), *p = text;
	int n, a, b;

	r->n = 0;
	while ((p = strstr(p, "round "))) {
		if ((p == text || p[-1] == '\n') && sscanf(p, "round %d a=%d b=%d", &n, &a, &b) == 3 &&
		    n == r->n + 1 && r->n < 2048) {
			r->a[r->n] = a;
			r->b[r->n] = b;
			r->n++;
		}
		p++;
	}
	free(text);
}

static int rounds_now(const char *out)
{
	static struct rounds r;

	parse_rounds(out, &r);
	return r.n;
}

static bool wait_rounds(const char *out, int n, long ms)
{
	long long end = bb_now_ms() + ms;

	while (rounds_now(out) < n) {
		if (bb_now_ms() >= end)
			return false;
		bb_sleep_ms(100);
	}
	return true;
}

/* Start the watcher job under "no-b" (a readable, b refused). */
static pid_t start_watcher(char *policy, size_t len)
{
	static char watch[1200];

	ASSERT_OK(bb_write(bb_home("a.txt"), "A\n", 0644), "a.txt");
	ASSERT_OK(bb_write(bb_home("b.txt"), "B\n", 0644), "b.txt");
	bb_policy("p1.json", SWAP_POLICY("b"), policy, len);
	snprintf(watch, sizeof(watch), "w=watch:%s:%s:%s", bb_home("a.txt"), bb_home("b.txt"),
		 bb_path("stop"));
	{
		char *argv[] = { (char *)bb_kgate(), "run", "--policy", policy, "--",
				 (char *)bb_helper("vt_agent"), watch, NULL };

		return bb_spawn("run.out", argv);
	}
}

static int stop_watcher(pid_t run)
{
	int rc;

	bb_write(bb_path("stop"), "", 0644);
	rc = bb_wait(run);
	{
		char *out = bb_slurp("run.out");

		bb_show("kgate run (watcher)", out);
		free(out);
	}
	return rc;
}

TEST(policy_push_swaps_file_decisions_without_restart)
{
	static struct rounds r;
	char p1[512], p2[512];
	int before, after, i, rc;
	json_t *recs;
	pid_t run;

	bb_setup(true);
	run = start_watcher(p1, sizeof(p1));
	bb_policy("p2.json", SWAP_POLICY("a"), p2, sizeof(p2));
	ASSERT_TRUE(wait_rounds("run.out", 3, BB_START_MS), "the job is reading");
	before = rounds_now("run.out");
	rc = BB_KGATE("push.out", "policy", "push", p2);
	after = rounds_now("run.out");
	ASSERT_EQ(rc, 0, "push succeeds");
	{
		char *out = bb_slurp("push.out");

		ASSERT_HAS_SUBSTR(out, "vt-no-a", "names the new policy");
		free(out);
	}
	ASSERT_TRUE(wait_rounds("run.out", after + 4, BB_START_MS), "the job keeps reading");
	ASSERT_EQ(stop_watcher(run), 0, "the job was never restarted and ends normally");

	parse_rounds("run.out", &r);
	printf("  %d rounds; push between rounds %d and %d\n", r.n, before, after + 1);
	for (i = 0; i < before; i++) {
		ASSERT_EQ(r.a[i], 0, "before the push: a readable");
		ASSERT_TRUE(bb_refused(r.b[i]), "before the push: b refused");
	}
	/* the switch is one step: old rounds, at most one round that read a
	 * under the old rules and b under the new ones, then new rounds only */
	{
		int phase = 0, bad = 0;

		for (i = 0; i < r.n; i++) {
			bool old = r.a[i] == 0 && bb_refused(r.b[i]);
			bool new = bb_refused(r.a[i]) && r.b[i] == 0;
			bool mixed = r.a[i] == 0 && r.b[i] == 0;

			if (phase == 0 && old)
				continue;
			if (phase == 0 && mixed) {
				phase = 1;
				continue;
			}
			if (new) {
				phase = 2;
				continue;
			}
			bad++;
			printf("  round %d: a=%d b=%d out of order\n", i + 1, r.a[i], r.b[i]);
		}
		ASSERT_EQ(bad, 0, "never back to the old rules, never a half-applied round");
		ASSERT_EQ(phase, 2, "the job ended under the new rules");
	}
	for (i = after + 1; i < r.n; i++) {
		ASSERT_TRUE(bb_refused(r.a[i]), "after the push: a refused");
		ASSERT_EQ(r.b[i], 0, "after the push: b readable");
	}
	recs = bb_audit(NULL);
	ASSERT_EQ(bb_count(recs, "policy_change", NULL, NULL, NULL, NULL), 1,
		  "one policy_change record");
	ASSERT_GE(bb_count_target(recs, "decision", "read", "deny", "no-b", "bpf-lsm", "b.txt"),
		  before, "b's refusals audited under the old rule");
	ASSERT_GE(bb_count_target(recs, "decision", "read", "deny", "no-a", "bpf-lsm", "a.txt"),
		  r.n - after - 1, "a's refusals audited under the new rule");
	ASSERT_EQ(bb_count_target(recs, "decision", "read", "deny", "no-a", NULL, "b.txt") +
		  bb_count_target(recs, "decision", "read", "deny", "no-b", NULL, "a.txt"), 0,
		  "no rule refused the other file");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

/* Two generations of the same rule under different names and ids: every
 * push makes a new generation, flips the job to it and deletes the old
 * one after the BPF programs that may be reading it have finished (issue
 * 18: a generation deleted under a running hook would let its reads fall
 * through to the default, allow). */
#define GEN_POLICY(n) \
	"{\"version\":1,\"name\":\"vt-gen-" n "\",\"default\":\"allow\",\"runtime\":[" \
	"{\"id\":\"no-secret-" n "\",\"file\":{\"prefix\":\"~/secret/\",\"ops\":[\"read\"]}," \
	"\"decision\":\"deny\"}]}"

TEST(pushes_during_a_flood_never_let_a_denied_open_through)
{
	char p1[512], p2[512], flood[600];
	int pushes = 0, failed = 0;
	json_t *recs;
	pid_t run;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("secret"), 0700), "secret dir");
	ASSERT_OK(bb_write(bb_home("secret/key"), "KEY\n", 0600), "secret");
	bb_policy("g1.json", GEN_POLICY("1"), p1, sizeof(p1));
	bb_policy("g2.json", GEN_POLICY("2"), p2, sizeof(p2));
	snprintf(flood, sizeof(flood), "flood=flood:%s:20000", bb_home("secret/key"));
	{
		char *argv[] = { (char *)bb_kgate(), "run", "-q", "--policy", p1, "--",
				 (char *)bb_helper("vt_agent"), "go=sleep:0", flood, NULL };

		run = bb_spawn("run.out", argv);
	}
	ASSERT_TRUE(wait_for_output("run.out", "go errno=0", 60000), "the agent started");
	/* push g2, g1, g2... while the job opens the secret as fast as it can */
	while (pushes < 40 && !wait_for_output("run.out", "flood ok=", 0)) {
		if (BB_KGATE("push.out", "policy", "push", pushes % 2 ? p1 : p2))
			failed++;
		pushes++;
	}
	printf("  %d pushes during the flood (%d failed)\n", pushes, failed);
	ASSERT_TRUE(wait_for_output("run.out", "flood ok=", 60000), "the flood ran to its end");
	bb_wait(run);	/* the agent's status is its last errno: EPERM */
	ASSERT_GE(pushes, 4, "several generations came and went during the flood");
	ASSERT_EQ(failed, 0, "every push succeeded");
	ASSERT_EQ(bb_result("run.out", "flood", "ok"), 0, "no open of the secret ever succeeded");
	ASSERT_GE(bb_result("run.out", "flood", "refused"), 20, "a real flood, every open refused");
	ASSERT_EQ(bb_result("run.out", "flood", "other"), 0, "no other error");
	/* (the flood's own records are too many to read back whole) */
	recs = bb_audit_query(NULL, "policy_change");
	ASSERT_EQ(bb_count(recs, "policy_change", NULL, NULL, NULL, NULL), pushes,
		  "one policy_change record per push");
	{
		struct stat st;

		ASSERT_EQ(BB_KGATE("q2.out", "audit", "query", "--type", "decision", "--rule",
				   "no-secret-2"), 0, "audit query");
		ASSERT_TRUE(stat(bb_path("q2.out"), &st) == 0 && st.st_size > 0,
			    "refusals recorded under the second generation's rule");
	}
	if (kt_failed_here) {
		char *out = bb_slurp("run.out");

		bb_show("kgate run (flood)", out);
		free(out);
	}
	json_decref(recs);
	bb_teardown();
}

TEST(invalid_push_changes_nothing)
{
	static struct rounds r;
	char p1[512], bad[512];
	int after, i, rc;
	json_t *recs;
	pid_t run;

	bb_setup(true);
	run = start_watcher(p1, sizeof(p1));
	/* valid JSON, a contradiction: the same file allowed and denied */
	bb_policy("bad.json",
		  "{\"version\":1,\"name\":\"bad\",\"default\":\"allow\",\"runtime\":["
		  "{\"id\":\"no-a\",\"file\":{\"path\":\"~/a.txt\",\"ops\":[\"read\"]},\"decision\":\"deny\"},"
		  "{\"id\":\"yes-a\",\"file\":{\"path\":\"~/a.txt\",\"ops\":[\"read\"]},\"decision\":\"allow\"}]}",
		  bad, sizeof(bad));
	ASSERT_TRUE(wait_rounds("run.out", 3, BB_START_MS), "the job is reading");
	rc = BB_KGATE("push.out", "policy", "push", bad);
	after = rounds_now("run.out");
	ASSERT_EQ(rc, 3, "invalid policy: exit 3");
	{
		char *out = bb_slurp("push.out");

		ASSERT_HAS_SUBSTR(out, "bad.json:1:", "the error names file and position");
		ASSERT_HAS_SUBSTR(out, "yes-a", "and the rule");
		free(out);
	}
	ASSERT_TRUE(wait_rounds("run.out", after + 4, BB_START_MS), "the job keeps reading");
	ASSERT_EQ(stop_watcher(run), 0, "the job ends normally");
	parse_rounds("run.out", &r);
	for (i = 0; i < r.n; i++) {
		ASSERT_EQ(r.a[i], 0, "a stays readable");
		ASSERT_TRUE(bb_refused(r.b[i]), "b stays refused");
	}
	recs = bb_audit(NULL);
	ASSERT_EQ(bb_count(recs, "policy_change", NULL, NULL, NULL, NULL), 0,
		  "no policy change recorded");
	ASSERT_GE(bb_count_target(recs, "decision", "read", "deny", "no-b", "bpf-lsm", "b.txt"),
		  r.n, "every refusal of b audited under the running rule");
	json_decref(recs);
	bb_teardown();
}

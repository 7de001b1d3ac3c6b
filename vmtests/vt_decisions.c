// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_decisions.c - the decisions beyond allow/deny on the BPF LSM path,
 * end to end through `kgate run`, `kgate approvals` and the audit trail:
 *
 *   require_approval  an open is refused with an escalation; approving it
 *                     --once lets exactly the next open of that file through
 *                     (not another file's); then it is refused again
 *   audit             the open proceeds and is recorded
 *   throttle          file opens at the rule's burst, then its rate
 *   cooldown          after N denials every governed action is refused for
 *                     the configured time, then the job works again
 *
 * The host tests these through cgroup-BPF only; here the file hooks decide.
 * Everything SKIPs outside the "full" VM configuration.
 */
#include "testlib.h"
#include "vt_bb.h"

/* The id of the pending approval request whose target contains target_sub
 * ("" if none shows up within ms). */
static const char *pending_request(const char *target_sub, long ms)
{
	static char id[64];
	long long end = bb_now_ms() + ms;

	id[0] = '\0';
	while (!id[0]) {
		char *argv[] = { (char *)bb_kgate(), "approvals", "list", "--json", NULL };
		json_t *arr, *a;
		char *text;
		size_t i;

		bb_wait(bb_spawn("list.json", argv));
		text = bb_slurp("list.json");
		arr = json_loads(text, 0, NULL);
		json_array_foreach(arr, i, a) {
			const char *t = json_string_value(json_object_get(a, "target"));
			const char *st = json_string_value(json_object_get(a, "state"));

			if (t && strstr(t, target_sub) && st && !strcmp(st, "pending")) {
				snprintf(id, sizeof(id), "%s",
					 json_string_value(json_object_get(a, "id")) ?: "");
				break;
			}
		}
		json_decref(arr);
		if (!id[0]) {
			if (bb_now_ms() >= end) {
				bb_show("approvals list --json", text);
				free(text);
				break;
			}
			bb_sleep_ms(200);
		}
		free(text);
	}
	return id;
}

/* Decision records for target_sub whose extra has key == true. */
static int count_extra_true(json_t *recs, const char *decision, const char *target_sub,
			    const char *key)
{
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(recs, i, r) {
		const char *t = json_string_value(json_object_get(r, "target"));

		if (bb_field_is(r, "type", "decision") && bb_field_is(r, "decision", decision) &&
		    t && strstr(t, target_sub) &&
		    json_is_true(json_object_get(json_object_get(r, "extra"), key)))
			n++;
	}
	return n;
}

#define APPROVAL_POLICY \
	"{\"version\":1,\"name\":\"vt-approval\",\"default\":\"allow\"," \
	"\"approvals\":{\"timeout_sec\":120,\"approvers\":{\"uids\":[0]},\"allow_self_approval\":true}," \
	"\"runtime\":[{\"id\":\"gated\",\"file\":{\"prefix\":\"~/gated/\",\"ops\":[\"read\"]}," \
	"\"decision\":\"require_approval\",\"reason\":\"needs a human\"}]}"

TEST(require_approval_file_open_granted_once)
{
	char policy[512], s1[640], s2[640], s3[640], s4[640], go[640];
	const char *id, *trace;
	json_t *recs;
	pid_t run;
	int rc;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("gated"), 0755), "gated dir");
	ASSERT_OK(bb_write(bb_home("gated/f.txt"), "F\n", 0644), "f");
	ASSERT_OK(bb_write(bb_home("gated/g.txt"), "G\n", 0644), "g");
	bb_policy("p.json", APPROVAL_POLICY, policy, sizeof(policy));
	snprintf(s1, sizeof(s1), "first=read:%s", bb_home("gated/f.txt"));
	snprintf(go, sizeof(go), "go=wait:%s:60000", bb_path("go"));
	snprintf(s2, sizeof(s2), "second=read:%s", bb_home("gated/f.txt"));
	snprintf(s3, sizeof(s3), "third=read:%s", bb_home("gated/f.txt"));
	snprintf(s4, sizeof(s4), "other=read:%s", bb_home("gated/g.txt"));
	{
		char *argv[] = { (char *)bb_kgate(), "run", "--policy", policy, "--",
				 (char *)bb_helper("vt_agent"), s1, go, s2, s3, s4, NULL };

		run = bb_spawn("run.out", argv);
	}
	ASSERT_TRUE(wait_for_output("run.out", "first errno=", BB_START_MS), "the agent tried");
	id = pending_request("f.txt", 20000);
	ASSERT_TRUE(id[0], "the refusal became a pending approval request");
	if (id[0]) {
		char idbuf[64];

		snprintf(idbuf, sizeof(idbuf), "%s", id);
		ASSERT_EQ(BB_KGATE("approve.out", "approvals", "approve", idbuf, "--once"), 0,
			  "approve it once");
	}
	bb_write(bb_path("go"), "", 0644);
	rc = bb_wait(run);
	{
		char *out = bb_slurp("run.out");

		bb_show("kgate run", out);
		free(out);
	}
	ASSERT_TRUE(bb_refused(rc), "the job ended with its last (refused) step");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "first", "errno")), "refused before approval");
	ASSERT_EQ(bb_result("run.out", "second", "errno"), 0, "the approved open went through");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "third", "errno")), "once means once");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "other", "errno")),
		    "the grant is for that file only");

	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count_target(recs, "decision", "read", "require_approval", "gated", "bpf-lsm",
				  "f.txt"), 3, "each open of f audited under the rule");
	ASSERT_EQ(count_extra_true(recs, "require_approval", "f.txt", "grant"), 1,
		  "exactly one open used the grant");
	ASSERT_EQ(count_extra_true(recs, "require_approval", "g.txt", "grant"), 0,
		  "g never used it");
	ASSERT_GE(bb_count(recs, "approval", NULL, "requested", NULL, NULL), 1,
		  "the request is in the trail");
	ASSERT_EQ(bb_count(recs, "approval", NULL, "approved", NULL, NULL), 1,
		  "the approval is in the trail");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

TEST(audit_rule_lets_the_open_through_and_records_it)
{
	char policy[512], s1[640], s2[640];
	const char *trace;
	json_t *recs;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("trial"), 0755), "trial dir");
	ASSERT_OK(bb_write(bb_home("trial/t.txt"), "T\n", 0644), "t");
	ASSERT_OK(bb_write(bb_home("plain.txt"), "P\n", 0644), "plain");
	bb_policy("p.json",
		  "{\"version\":1,\"name\":\"vt-audit\",\"default\":\"allow\",\"runtime\":["
		  "{\"id\":\"trial\",\"file\":{\"prefix\":\"~/trial/\",\"ops\":[\"read\",\"write\"]},"
		  "\"decision\":\"audit\",\"reason\":\"trial mode\"}]}", policy, sizeof(policy));
	snprintf(s1, sizeof(s1), "trial=read:%s", bb_home("trial/t.txt"));
	snprintf(s2, sizeof(s2), "plain=read:%s", bb_home("plain.txt"));
	ASSERT_EQ(BB_KGATE("run.out", "run", "--policy", policy, "--", (char *)bb_helper("vt_agent"),
			   s1, s2), 0, "the job ran");
	ASSERT_EQ(bb_result("run.out", "trial", "errno"), 0, "the audited open proceeded");
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_EQ(bb_count_target(recs, "decision", "read", "audit", "trial", "bpf-lsm", "t.txt"), 1,
		  "and was recorded under its rule");
	ASSERT_EQ(bb_count_target(recs, "decision", NULL, NULL, NULL, NULL, "plain.txt"), 0,
		  "an allowed open is not recorded");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

/* burst 3, then 5 per second */
TEST(throttle_file_opens_at_burst_then_rate)
{
	char policy[512], s1[640], s2[640];
	const char *trace;
	long burst_ok, rate_ok, rate_refused;
	json_t *recs;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("t"), 0755), "t dir");
	ASSERT_OK(bb_write(bb_home("t/x.txt"), "X\n", 0644), "x");
	bb_policy("p.json",
		  "{\"version\":1,\"name\":\"vt-throttle\",\"default\":\"allow\",\"runtime\":["
		  "{\"id\":\"t-rate\",\"file\":{\"prefix\":\"~/t/\",\"ops\":[\"read\"]},"
		  "\"decision\":\"throttle\",\"throttle\":{\"rate_per_sec\":5,\"burst\":3}}]}",
		  policy, sizeof(policy));
	snprintf(s1, sizeof(s1), "burst=burst:%s:10", bb_home("t/x.txt"));
	snprintf(s2, sizeof(s2), "rate=rate:%s:3000", bb_home("t/x.txt"));
	ASSERT_EQ(BB_KGATE("run.out", "run", "--policy", policy, "--", (char *)bb_helper("vt_agent"),
			   s1, s2), 0, "the job ran");
	burst_ok = bb_result("run.out", "burst", "ok");
	rate_ok = bb_result("run.out", "rate", "ok");
	rate_refused = bb_result("run.out", "rate", "refused");
	printf("  burst: %ld of 10 allowed; 3 s tight loop: %ld allowed, %ld refused\n", burst_ok,
	       rate_ok, rate_refused);
	ASSERT_TRUE(burst_ok >= 3 && burst_ok <= 4, "the burst (3, a slow guest may refill one)");
	ASSERT_EQ(bb_result("run.out", "burst", "refused"), 10 - burst_ok, "the rest refused");
	/* 3 s at 5/s from an empty bucket: 15 (the loop's own pace adds jitter) */
	ASSERT_TRUE(rate_ok >= 12 && rate_ok <= 18, "about 5 per second");
	ASSERT_GE(rate_refused, 10, "a tight loop is refused beyond the rate");
	ASSERT_EQ(bb_result("run.out", "rate", "other"), 0, "no other error");
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count(recs, "decision", "read", "throttle", "t-rate", "bpf-lsm"), 1,
		  "refusals audited (aggregated per second)");
	{
		long reported = bb_sum_count(recs, "read", "throttle", "t-rate");

		ASSERT_TRUE(reported >= 1 && reported <= 10 - burst_ok + rate_refused,
			    "the aggregated counts never exceed the refusals");
	}
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

/* 3 denials within 10 s: every governed action refused for 2 s */
TEST(cooldown_refuses_everything_then_expires)
{
	char policy[512], d1[640], d2[640], d3[640], pre[640], during[640], ex[640], after[640];
	const char *trace;
	json_t *recs;
	int rc;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("secret"), 0700), "secret dir");
	ASSERT_OK(bb_write(bb_home("secret/key"), "K\n", 0600), "key");
	ASSERT_OK(bb_write(bb_home("free.txt"), "F\n", 0644), "free");
	bb_policy("p.json",
		  "{\"version\":1,\"name\":\"vt-cooldown\",\"default\":\"allow\","
		  "\"cooldown\":{\"threshold\":3,\"window_sec\":10,\"duration_sec\":2},\"runtime\":["
		  "{\"id\":\"no-secret\",\"file\":{\"prefix\":\"~/secret/\",\"ops\":[\"read\"]},"
		  "\"decision\":\"deny\"}]}", policy, sizeof(policy));
	snprintf(d1, sizeof(d1), "d1=read:%s", bb_home("secret/key"));
	snprintf(d2, sizeof(d2), "d2=read:%s", bb_home("secret/key"));
	snprintf(pre, sizeof(pre), "pre=read:%s", bb_home("free.txt"));
	snprintf(d3, sizeof(d3), "d3=read:%s", bb_home("secret/key"));
	snprintf(during, sizeof(during), "during=read:%s", bb_home("free.txt"));
	snprintf(ex, sizeof(ex), "exec=exec:/bin/true");
	snprintf(after, sizeof(after), "after=read:%s", bb_home("free.txt"));
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", (char *)bb_helper("vt_agent"),
		      d1, d2, pre, d3, during, ex, "wait=sleep:2500", after);
	ASSERT_EQ(rc, 0, "the job ran; its last step worked");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "d1", "errno")), "denial 1");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "d2", "errno")), "denial 2");
	ASSERT_EQ(bb_result("run.out", "pre", "errno"), 0, "below the threshold: still working");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "d3", "errno")), "denial 3 opens the breaker");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "during", "errno")),
		    "in cooldown an allowed file is refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "exec", "errno")),
		    "in cooldown an allowed exec is refused");
	ASSERT_EQ(bb_result("run.out", "after", "errno"), 0, "after 2 s the job works again");
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_EQ(bb_count(recs, "decision", "read", "deny", "no-secret", "bpf-lsm"), 3,
		  "the three denials");
	ASSERT_GE(bb_count_target(recs, "decision", "read", "cooldown", NULL, "bpf-lsm", "free.txt"),
		  1, "the cooldown refusal of free.txt recorded");
	ASSERT_GE(bb_count(recs, "decision", "exec", "cooldown", NULL, "bpf-lsm"), 1,
		  "the cooldown refusal of the exec recorded");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

/* A fail-open policy is enforced from the first instruction: the launched
 * command's own exec is decided while the controller is alive, never in
 * the fail-open state of a heartbeat nobody has written yet (a fresh pin
 * directory has none; neither has a machine where no kgate ran for 10 s). */
TEST(fail_open_policy_enforces_the_command_itself)
{
	char json[1024], policy[512];
	struct timespec ts;
	int rc;

	bb_setup(true);
	/* the kernel compares the heartbeat with CLOCK_MONOTONIC: make sure an
	 * unwritten one (0) is older than the policy's 10 s */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec < 12)
		bb_sleep_ms((12 - ts.tv_sec) * 1000);
	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"vt-failopen\",\"default\":\"allow\",\"fail_mode\":\"open\","
		 "\"runtime\":[{\"id\":\"no-exit42\",\"exec\":{\"path\":\"%s\"},\"decision\":\"deny\"}]}",
		 bb_helper("lsm_exit42"));
	bb_policy("p.json", json, policy, sizeof(policy));
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", (char *)bb_helper("lsm_exit42"));
	{
		char *out = bb_slurp("run.out");

		/* the BPF LSM decides here, not Landlock */
		ASSERT_HAS_SUBSTR(out, "(full mode", "kgate runs in full mode");
		free(out);
	}
	ASSERT_TRUE(rc == 126 || rc == 127, "the denied command is refused, not run (42)");
	rc = BB_KGATE("run2.out", "run", "--policy", policy, "--", "/bin/true");
	ASSERT_EQ(rc, 0, "an allowed command runs");
	bb_teardown();
}

/* Approving "create ~/out/a.txt" lets the job create a.txt, not any name
 * in ~/out: the grant is for the directory and the name asked. */
TEST(create_grant_is_for_the_name_asked)
{
	char policy[512], s1[640], s2[640], s3[640], go[640];
	const char *id;
	pid_t run;
	int rc;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("out"), 0755), "out dir");
	bb_policy("p.json",
		  "{\"version\":1,\"name\":\"vt-create\",\"default\":\"allow\","
		  "\"approvals\":{\"timeout_sec\":120,\"approvers\":{\"uids\":[0]},"
		  "\"allow_self_approval\":true},\"runtime\":["
		  "{\"id\":\"gated-out\",\"file\":{\"prefix\":\"~/out/\",\"ops\":[\"create\"]},"
		  "\"decision\":\"require_approval\"}]}", policy, sizeof(policy));
	snprintf(s1, sizeof(s1), "first=create:%s", bb_home("out/a.txt"));
	snprintf(go, sizeof(go), "go=wait:%s:60000", bb_path("go"));
	snprintf(s2, sizeof(s2), "asked=create:%s", bb_home("out/a.txt"));
	snprintf(s3, sizeof(s3), "other=create:%s", bb_home("out/b.txt"));
	{
		char *argv[] = { (char *)bb_kgate(), "run", "--policy", policy, "--",
				 (char *)bb_helper("vt_agent"), s1, go, s2, s3, NULL };

		run = bb_spawn("run.out", argv);
	}
	ASSERT_TRUE(wait_for_output("run.out", "first errno=", BB_START_MS), "the agent tried");
	id = pending_request("a.txt", 20000);
	ASSERT_TRUE(id[0], "the refused create became a pending request for out/a.txt");
	if (id[0]) {
		char idbuf[64];

		snprintf(idbuf, sizeof(idbuf), "%s", id);
		ASSERT_EQ(BB_KGATE("approve.out", "approvals", "approve", idbuf, "--ttl", "60"), 0,
			  "approve it (not one-shot: the name stays creatable for 60 s)");
	}
	bb_write(bb_path("go"), "", 0644);
	rc = bb_wait(run);
	{
		char *out = bb_slurp("run.out");

		bb_show("kgate run", out);
		free(out);
	}
	ASSERT_TRUE(bb_refused(bb_result("run.out", "first", "errno")), "refused before approval");
	ASSERT_EQ(bb_result("run.out", "asked", "errno"), 0, "the approved name is created");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "other", "errno")),
		    "another name in the same directory is still refused");
	ASSERT_TRUE(bb_refused(rc), "the job ended with the refused step");
	ASSERT_TRUE(access(bb_home("out/b.txt"), F_OK) < 0, "out/b.txt does not exist");
	bb_teardown();
}

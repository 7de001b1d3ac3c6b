// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_dispatch.c - POST /api/v1/jobs against a real `kgate daemon --http
 * --dispatch-policy`: the canonical session (submit a high-risk job, see it
 * in the approval queue and its age in /metrics and `kgate approvals list`,
 * approve it with a note, watch it run and exit, read its timeline:
 * admission, approval by whom, launch, the kernel's decision, exit), an
 * allowed job that starts at once, launch approvals bound to the labels
 * (admission matches them), DELETE, bounded and rotated output, states,
 * max_retries, 200 concurrent submits, and the
 * refusals (a non-launcher, malformed bodies, an environment variable that
 * is not allowed, another user to run as, a retried submit with the same
 * idempotency key).
 */
#include <math.h>
#include <pthread.h>

#include "api_fixture.h"
#include "job/registry.h"

#define REVIEWER_UID	"4242"
#define LAUNCHER_UID	"4343"

static const char policy[] =
	"{\"version\":1,\"name\":\"dispatch\",\"default\":\"allow\","
	"\"launchers\":{\"uids\":[4343]},"
	"\"approvals\":{\"timeout_sec\":120,\"approvers\":{\"uids\":[4242]}},"
	"\"runtime\":[{\"id\":\"no-discard\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[9]},"
	"\"decision\":\"deny\",\"reason\":\"not there\"}],"
	"\"admission\":[{\"id\":\"prod-needs-a-human\",\"match\":{\"risk_tags\":[\"prod\"],"
	"\"labels\":{\"mcp.action\":[\"write\",\"delete*\"]}},"
	"\"decision\":\"require_approval\",\"reason\":\"production changes need a human\"},"
	"{\"id\":\"flaky\",\"match\":{\"topics\":[\"job.flaky\"]},\"decision\":\"allow_with_constraints\","
	"\"constraints\":{\"max_retries\":2}}]}";

/* every launch waits for a human; a failed job is relaunched once */
static const char retry_policy[] =
	"{\"version\":1,\"name\":\"retry\",\"default\":\"require_approval\","
	"\"launchers\":{\"uids\":[4343]},\"constraints\":{\"max_retries\":1},"
	"\"approvals\":{\"timeout_sec\":120,\"approvers\":{\"uids\":[4242]}}}";

/* every launch waits for a human, who has 2 s */
static const char quick_policy[] =
	"{\"version\":1,\"name\":\"quick\",\"default\":\"require_approval\","
	"\"launchers\":{\"uids\":[4343]},"
	"\"approvals\":{\"timeout_sec\":2,\"approvers\":{\"uids\":[4242]}}}";

struct scene {
	struct af_daemon d;
	const char *reviewer, *launcher, *stranger;
};

static bool scene_start(struct scene *s)
{
	char path[512], quick[512], retry[512];

	memset(s, 0, sizeof(*s));
	af_setup();
	af_write("dispatch.json", policy, path, sizeof(path));
	af_write("quick.json", quick_policy, quick, sizeof(quick));
	af_write("retry.json", retry_policy, retry, sizeof(retry));
	s->reviewer = af_token("reviewer", REVIEWER_UID, "");
	s->launcher = af_token("agent", LAUNCHER_UID, "");
	s->stranger = af_token("stranger", "65534", "");
	if (!ASSERT_TRUE(s->reviewer && s->launcher && s->stranger, "kgate token create"))
		return false;
	if (!ASSERT_OK(af_daemon_start(&s->d, "--dispatch-policy", path, "--dispatch-policy", quick,
				       "--dispatch-policy", retry, NULL),
		       "the daemon serves HTTP and dispatches")) {
		char *out = af_slurp("daemon.out");

		free(out);
		return false;
	}
	return true;
}

static void scene_stop(struct scene *s)
{
	ASSERT_EQ(af_daemon_stop(&s->d), 0, "the daemon stops cleanly");
	af_teardown();
}

/* GET the job until its state is `want` (or 15 s); its JSON (decref). */
static json_t *wait_state(struct scene *s, const char *token, const char *trace, const char *want)
{
	char path[128];
	int i;

	snprintf(path, sizeof(path), "/api/v1/jobs/%s", trace);
	for (i = 0; i < 300; i++) {
		struct af_res r;
		json_t *o;

		af_http(&s->d, "GET", path, token, NULL, &r);
		o = json_incref(r.json);
		af_res_free(&r);
		/* the dispatch side's state (a running job's "job" is the registry's) */
		if (!strcmp(json_string_value(json_object_get(json_object_get(json_object_get(o, "job"),
									       "dispatch"), "state")) ?:
			    json_string_value(json_object_get(json_object_get(o, "job"), "state")) ?: "",
			    want))
			return o;
		json_decref(o);
		af_sleep_ms(50);
	}
	return NULL;
}

/* Whether a job's timeline holds the kernel's deny of rule RULE. */
static bool timeline_has_kernel_deny(json_t *o, const char *rule)
{
	json_t *rec;
	size_t i;

	json_array_foreach(json_object_get(o, "timeline"), i, rec)
		if (!strcmp(json_string_value(json_object_get(rec, "type")) ?: "", "decision") &&
		    !strcmp(json_string_value(json_object_get(rec, "decision")) ?: "", "deny") &&
		    !strcmp(json_string_value(json_object_get(rec, "rule")) ?: "", rule))
			return true;
	return false;
}

/*
 * The job as GET /api/v1/jobs/{trace} gives it once its timeline holds the
 * kernel's deny of RULE.  The job's exit and the kernel's events reach the
 * trail by different roads (the launcher's wait, the ring-buffer consumer),
 * so under load the exit can be committed first: wait for the event,
 * bounded (15 s), rather than read the timeline once.  O is consumed.
 */
static json_t *wait_kernel_deny(struct scene *s, const char *token, const char *trace,
				json_t *o, const char *rule)
{
	char path[128];
	int i;

	snprintf(path, sizeof(path), "/api/v1/jobs/%s", trace);
	for (i = 0; i < 300 && !timeline_has_kernel_deny(o, rule); i++) {
		struct af_res r;

		af_sleep_ms(50);
		af_http(&s->d, "GET", path, token, NULL, &r);
		if (r.json) {
			json_decref(o);
			o = json_incref(r.json);
		}
		af_res_free(&r);
	}
	return o;
}

/* One sample of /metrics (NAN when absent). */
static double metric(struct scene *s, const char *token, const char *name)
{
	struct af_res r;
	double v = NAN;
	const char *p;
	size_t n = strlen(name);

	if (af_http(&s->d, "GET", "/metrics", token, NULL, &r) == 200 && r.body)
		for (p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
			if (!strncmp(p, name, n) && p[n] == ' ') {
				v = strtod(p + n + 1, NULL);
				break;
			}
	af_res_free(&r);
	return v;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
	return json_string_value(json_object_get(json_object_get(o, a), b)) ?: "";
}

TEST(canonical_session_submit_approve_run_timeline)
{
	struct scene s;
	struct af_res r;
	char trace[48] = "", id[32] = "", path[160], body[1200];
	json_t *o, *rec, *recs;
	bool admission = false, approval = false, start = false, exited = false, kernel = false;
	size_t i;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	snprintf(body, sizeof(body),
		 "{\"policy\":\"dispatch\",\"topic\":\"job.agent.mcp.write\","
		 "\"tenant_id\":\"acme\",\"risk_tags\":[\"prod\"],"
		 "\"labels\":{\"mcp.action\":\"write\"},"
		 "\"argv\":[\"/bin/sh\",\"-c\",\"echo hello from the job; %s connect 127.0.0.1 9; exit 3\"],"
		 "\"idempotency_key\":\"submit-1\"}", af_helper("net_probe"));
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, body, &r),
		  202, "a prod job waits for a human: 202");
	snprintf(trace, sizeof(trace), "%s", jstr(r.json, "job", "trace"));
	snprintf(id, sizeof(id), "%s", jstr(r.json, "job", "approval_id"));
	ASSERT_STREQ(jstr(r.json, "job", "state"), "pending_approval", "state pending_approval");
	af_res_free(&r);
	ASSERT_TRUE(trace[0] && id[0], "a trace and the approval request");
	/* the queue's age: in /metrics and in `kgate approvals list` */
	af_sleep_ms(1500);
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_approvals_pending"), 1, "/metrics: one pending");
	{
		double age = metric(&s, s.reviewer, "kgate_approvals_pending_oldest_age_seconds");

		ASSERT_TRUE(age >= 1.5 && age < 60, "/metrics: the oldest has waited >= 1.5 s");
	}
	{
		char *argv[] = { (char *)af_kgate(), "approvals", "list", NULL }, *out, want[128];

		ASSERT_EQ(af_wait(af_spawn(argv, "list.out")), 0, "kgate approvals list");
		out = af_slurp("list.out");
		snprintf(want, sizeof(want), "1 pending; the oldest, %s, has waited ", id);
		ASSERT_HAS_SUBSTR(out, want, "kgate approvals list: the oldest request's age");
		ASSERT_TRUE(out && strstr(out, want) && atoi(strstr(out, want) + strlen(want)) >= 1,
			    "at least 1 s");
		free(out);
	}
	/* the reviewer sees it in the queue */
	af_http(&s.d, "GET", "/api/v1/approvals?state=pending", s.reviewer, NULL, &r);
	{
		bool seen = false;

		json_array_foreach(json_object_get(r.json, "requests"), i, rec)
			seen = seen || (!strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) &&
					!strcmp(json_string_value(json_object_get(rec, "trace_id")) ?: "",
						trace));
		ASSERT_TRUE(seen, "the launch is in the reviewer's queue");
	}
	af_res_free(&r);
	/* the launcher may not approve its own launch (no self-approval) */
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", id);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.launcher, "{\"once\":true}", &r), 403,
		  "the launcher cannot approve it");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer,
			  "{\"once\":true,\"note\":\"reviewed the change\"}", &r),
		  200, "the reviewer approves it with a note");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, trace, "exited");
	ASSERT_TRUE(o != NULL, "the job runs and exits");
	o = wait_kernel_deny(&s, s.launcher, trace, o, "no-discard");
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_approvals_pending"), 0, "/metrics: none pending");
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_approvals_pending_oldest_age_seconds"), 0,
		  "/metrics: no age when none waits");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(o, "job"), "exit_status")), 3,
		  "with its own exit status");
	json_array_foreach(json_object_get(o, "timeline"), i, rec) {
		const char *type = json_string_value(json_object_get(rec, "type")) ?: "";
		const char *dec = json_string_value(json_object_get(rec, "decision")) ?: "";

		admission = admission || (!strcmp(type, "admission") && !strcmp(dec, "require_approval"));
		approval = approval || (!strcmp(type, "approval") && !strcmp(dec, "approved") &&
					!strcmp(jstr(rec, "actor", "role"), "token:reviewer") &&
					json_integer_value(json_object_get(json_object_get(rec, "actor"),
									   "uid")) == atoi(REVIEWER_UID) &&
					!strcmp(jstr(rec, "extra", "note"), "reviewed the change"));
		/* the kernel's decision on the job's connect, under its trace */
		kernel = kernel || (!strcmp(type, "decision") && !strcmp(dec, "deny") &&
				    !strcmp(json_string_value(json_object_get(rec, "rule")) ?: "",
					    "no-discard"));
		start = start || !strcmp(type, "job_start");
		exited = exited || !strcmp(type, "job_exit");
	}
	ASSERT_TRUE(admission, "timeline: admission require_approval");
	ASSERT_TRUE(approval, "timeline: approved by the reviewer (uid, token, note)");
	ASSERT_TRUE(kernel, "timeline: the kernel refused the job's connect (rule no-discard)");
	ASSERT_TRUE(start && exited, "timeline: the job started and exited");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_object_get(
		json_object_get(json_object_get(o, "job"), "dispatch"), "submitted"), "labels"),
		"mcp.action")) ?: "", "write", "the labels are kept with the job");
	json_decref(o);
	/* the admission record names the launcher and the labels */
	recs = af_audit("admission", "require_approval");
	ASSERT_EQ(json_array_size(recs), 1, "one admission record");
	rec = json_array_get(recs, 0);
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_object_get(rec, "extra"),
						"labels"), "mcp.action")) ?: "", "write",
		     "the admission record has the labels");
	json_decref(recs);
	/* its output */
	snprintf(path, sizeof(path), "/api/v1/jobs/%s/output", trace);
	ASSERT_EQ(af_http(&s.d, "GET", path, s.launcher, NULL, &r), 200, "its output");
	ASSERT_HAS_SUBSTR(json_string_value(json_object_get(r.json, "output")),
			  "hello from the job", "the job's stdout");
	af_res_free(&r);
	/* a stranger sees neither the job nor its output */
	ASSERT_EQ(af_http(&s.d, "GET", path, s.stranger, NULL, &r), 404, "not a stranger's");
	af_res_free(&r);
	/* the retried submit is the same job, not a second launch */
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"risk_tags\":[\"prod\"],"
			  "\"argv\":[\"/bin/sh\",\"-c\",\"echo hello from the job; exit 3\"],"
			  "\"idempotency_key\":\"submit-1\"}", &r),
		  200, "a retry with the same idempotency key: 200");
	ASSERT_STREQ(jstr(r.json, "job", "trace"), trace, "the same job");
	ASSERT_TRUE(json_is_true(json_object_get(r.json, "duplicate")), "marked duplicate");
	af_res_free(&r);
	recs = af_audit("job_start", NULL);
	ASSERT_EQ(json_array_size(recs), 1, "launched once");
	json_decref(recs);
	scene_stop(&s);
}

TEST(allowed_job_starts_at_once_as_its_launcher)
{
	struct scene s;
	struct af_res r;
	char trace[48];
	json_t *o, *recs, *rec;
	size_t i;
	bool as_launcher = false;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"topic\":\"job.agent.read\","
			  "\"argv\":[\"/bin/sh\",\"-c\",\"sleep 0.5; id -u; echo $KG_JOB_X $LD_PRELOAD\"],"
			  "\"env\":{\"KG_JOB_X\":\"fine\",\"PATH\":\"/usr/bin:/bin\"}}", &r),
		  201, "no approval needed: 201");
	snprintf(trace, sizeof(trace), "%s", jstr(r.json, "job", "trace"));
	ASSERT_STREQ(jstr(r.json, "job", "state"), "running", "running");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, trace, "exited");
	ASSERT_TRUE(o != NULL, "it exits");
	json_decref(o);
	{
		char path[160];

		snprintf(path, sizeof(path), "/api/v1/jobs/%s/output", trace);
		af_http(&s.d, "GET", path, s.launcher, NULL, &r);
		ASSERT_HAS_SUBSTR(json_string_value(json_object_get(r.json, "output")),
				  LAUNCHER_UID "\nfine", "ran as the launcher's uid, with its env");
		af_res_free(&r);
	}
	recs = af_audit("job_start", NULL);
	json_array_foreach(recs, i, rec)
		as_launcher = as_launcher ||
			json_integer_value(json_object_get(json_object_get(json_object_get(rec, "extra"),
									   "run_as"), "uid")) ==
			atoi(LAUNCHER_UID);
	ASSERT_TRUE(as_launcher, "job_start: run_as is the launcher's uid");
	json_decref(recs);
	scene_stop(&s);
}

/* The admission rule matches labels; an approval is bound to them: the
 * same command labelled "write" and "delete" are two requests, approving
 * one does not start the other; labelled "read" it needs no approval. */
TEST(launch_approvals_are_bound_to_the_labels)
{
	static const char body[] =
		"{\"policy\":\"dispatch\",\"risk_tags\":[\"prod\"],\"labels\":{\"mcp.action\":\"%s\"},"
		"\"argv\":[\"/bin/sh\",\"-c\",\"exit 0\"]}";
	struct scene s;
	struct af_res r;
	char b[512], tw[48], td[48], iw[32], id[32], path[160];
	json_t *o;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	snprintf(b, sizeof(b), body, "write");
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, b, &r), 202, "write: 202");
	snprintf(tw, sizeof(tw), "%s", jstr(r.json, "job", "trace"));
	snprintf(iw, sizeof(iw), "%s", jstr(r.json, "job", "approval_id"));
	af_res_free(&r);
	snprintf(b, sizeof(b), body, "delete-all");
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, b, &r), 202,
		  "delete-all (glob delete*): 202");
	snprintf(td, sizeof(td), "%s", jstr(r.json, "job", "trace"));
	snprintf(id, sizeof(id), "%s", jstr(r.json, "job", "approval_id"));
	af_res_free(&r);
	ASSERT_TRUE(iw[0] && id[0] && strcmp(iw, id), "two approval requests, not one");
	snprintf(b, sizeof(b), body, "read");
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, b, &r), 201,
		  "read: no rule matches, the default allows: 201");
	af_res_free(&r);
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", iw);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer, "{\"once\":true}", &r), 200,
		  "approve the write");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, tw, "exited");
	ASSERT_TRUE(o != NULL, "the write runs and exits");
	json_decref(o);
	o = wait_state(&s, s.launcher, td, "pending_approval");
	ASSERT_TRUE(o != NULL, "the delete still waits");
	json_decref(o);
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/deny", id);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer, "{\"note\":\"no\"}", &r), 200,
		  "deny the delete");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, td, "denied");
	ASSERT_TRUE(o != NULL, "the denied job is 'denied'");
	json_decref(o);
	scene_stop(&s);
}

/* A timeline record of `type` (and `op` when given), or NULL (borrowed). */
static json_t *timeline_rec(json_t *o, const char *type, const char *op)
{
	json_t *rec;
	size_t i;

	json_array_foreach(json_object_get(o, "timeline"), i, rec)
		if (!strcmp(json_string_value(json_object_get(rec, "type")) ?: "", type) &&
		    (!op || !strcmp(json_string_value(json_object_get(rec, "op")) ?: "", op)))
			return rec;
	return NULL;
}

/* DELETE /api/v1/jobs/{id}: a running job that ignores SIGTERM is stopped
 * all the same (its cgroup is killed), a waiting one leaves the queue;
 * both audited with who stopped them; nobody else may stop them. */
TEST(delete_stops_running_and_waiting_jobs_audited)
{
	struct scene s;
	struct af_res r;
	char run[48], wait_[48], reqid[32], path[160];
	struct timespec t0, t1;
	json_t *o, *rec, *recs;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"argv\":[\"/bin/sh\",\"-c\","
			  "\"trap '' TERM; echo up; while :; do sleep 0.2; done\"]}", &r),
		  201, "a long job starts");
	snprintf(run, sizeof(run), "%s", jstr(r.json, "job", "trace"));
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"risk_tags\":[\"prod\"],"
			  "\"labels\":{\"mcp.action\":\"write\"},\"argv\":[\"/bin/true\"]}", &r),
		  202, "a prod write waits");
	snprintf(wait_, sizeof(wait_), "%s", jstr(r.json, "job", "trace"));
	snprintf(reqid, sizeof(reqid), "%s", jstr(r.json, "job", "approval_id"));
	af_res_free(&r);
	/* nobody but its launcher (or root) */
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", run);
	ASSERT_EQ(af_http(&s.d, "DELETE", path, s.stranger, NULL, &r), 404, "a stranger: 404");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "DELETE", path, s.reviewer, NULL, &r), 404, "a reviewer: 404");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "DELETE", path, NULL, NULL, &r), 401, "no token: 401");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, run, "running");
	ASSERT_TRUE(o != NULL, "still running");
	json_decref(o);
	/* its launcher stops it: SIGTERM is ignored, the cgroup is killed */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(af_http(&s.d, "DELETE", path, s.launcher, NULL, &r), 200, "the launcher stops it");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_STREQ(jstr(r.json, "job", "state"), "stopped", "state stopped");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(r.json, "job"),
								    "stopped_by"), "uid")),
		  atoi(LAUNCHER_UID), "stopped_by: the launcher's uid");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_object_get(r.json, "job"),
								      "stopped_by"), "via")) ?: "",
		     "token:agent", "stopped_by: its token");
	ASSERT_TRUE(t1.tv_sec - t0.tv_sec < 14, "within the grace period and the kill");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "DELETE", path, s.launcher, NULL, &r), 409, "again: 409");
	ASSERT_STREQ(af_error_code(&r), "already_ended", "already_ended");
	af_res_free(&r);
	af_http(&s.d, "GET", path, s.launcher, NULL, &r);
	rec = timeline_rec(r.json, "job_stop", "stop");
	ASSERT_TRUE(rec != NULL, "timeline: job_stop");
	ASSERT_STREQ(jstr(rec, "actor", "role"), "token:agent", "job_stop: who stopped it");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(rec, "actor"), "uid")),
		  atoi(LAUNCHER_UID), "job_stop: the stopper's uid");
	ASSERT_TRUE(timeline_rec(r.json, "job_exit", NULL) != NULL, "timeline: then job_exit");
	af_res_free(&r);
	{
		struct kg_job_record jr;

		ASSERT_TRUE(kg_registry_load(run, &jr) != 0, "the job is gone from the registry");
	}
	/* the waiting one: stopped, its request leaves the queue */
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", wait_);
	ASSERT_EQ(af_http(&s.d, "DELETE", path, s.launcher, NULL, &r), 200, "stop the waiting job");
	ASSERT_STREQ(jstr(r.json, "job", "state"), "stopped", "stopped");
	af_res_free(&r);
	snprintf(path, sizeof(path), "/api/v1/approvals/%s", reqid);
	af_http(&s.d, "GET", path, s.reviewer, NULL, &r);
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(r.json, "request"), "state")) ?:
		     json_string_value(json_object_get(r.json, "state")) ?: "", "expired",
		     "its approval request expired (the job is gone)");
	af_res_free(&r);
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", reqid);
	ASSERT_NEQ(af_http(&s.d, "POST", path, s.reviewer, "{}", &r), 200,
		  "approving it afterwards starts nothing");
	af_res_free(&r);
	recs = af_audit("job_start", NULL);
	ASSERT_EQ(json_array_size(recs), 1, "only the first job ever started");
	json_decref(recs);
	recs = af_audit("job_stop", NULL);
	ASSERT_EQ(json_array_size(recs), 2, "two stops audited");
	json_decref(recs);
	scene_stop(&s);
}

/* GET .../output is bounded (the newest 64 KiB) and rotated (the daemon
 * keeps at most 2 x 256 KiB of a job's output on disk). */
TEST(output_is_bounded_and_rotated)
{
	struct scene s;
	struct af_res r;
	char trace[48], path[600];
	const char *out;
	struct stat st;
	long long kept = 0;
	json_t *o;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"argv\":[\"/bin/sh\",\"-c\","
			  "\"echo FIRST-LINE; head -c 1200000 /dev/zero | tr '\\\\0' x; echo; echo LAST-LINE\"]}",
			  &r), 201, "a chatty job");
	snprintf(trace, sizeof(trace), "%s", jstr(r.json, "job", "trace"));
	af_res_free(&r);
	o = wait_state(&s, s.launcher, trace, "exited");
	ASSERT_TRUE(o != NULL, "it exits");
	json_decref(o);
	snprintf(path, sizeof(path), "/api/v1/jobs/%s/output", trace);
	ASSERT_EQ(af_http(&s.d, "GET", path, s.launcher, NULL, &r), 200, "its output");
	out = json_string_value(json_object_get(r.json, "output")) ?: "";
	ASSERT_TRUE(strlen(out) <= 65536 && strlen(out) > 60000, "the newest 64 KiB");
	ASSERT_HAS_SUBSTR(out, "xxxx\nLAST-LINE\n", "the job's last line is in it");
	ASSERT_TRUE(!strstr(out, "FIRST-LINE"), "the start is not in it");
	ASSERT_TRUE(json_is_true(json_object_get(r.json, "truncated")), "truncated");
	ASSERT_GE(json_integer_value(json_object_get(r.json, "bytes_total")), 1200000,
		  "every byte counted");
	ASSERT_GE(json_integer_value(json_object_get(r.json, "bytes_rotated_away")), 1200000 - 2 * 262144,
		  "what was rotated away is counted");
	af_res_free(&r);
	snprintf(path, sizeof(path), "%s/state/dispatch/%s.log", af_tmp, trace);
	if (!stat(path, &st))
		kept += st.st_size;
	strcat(path, ".1");
	ASSERT_OK(stat(path, &st), "a rotated segment");
	kept += st.st_size;
	ASSERT_TRUE(kept <= 2 * 262144 && kept > 262144, "at most 2 x 256 KiB kept on disk");
	scene_stop(&s);
}

/* The states a submitted job goes through and ends in. */
TEST(states_pending_expired_denied)
{
	struct scene s;
	struct af_res r;
	char trace[48];
	json_t *o;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"quick\",\"argv\":[\"/bin/true\"]}", &r), 202,
		  "quick: every launch waits");
	snprintf(trace, sizeof(trace), "%s", jstr(r.json, "job", "trace"));
	ASSERT_STREQ(jstr(r.json, "job", "state"), "pending_approval", "pending_approval");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, trace, "expired");
	ASSERT_TRUE(o != NULL, "nobody decided within 2 s: expired");
	ASSERT_TRUE(timeline_rec(o, "job_start", NULL) == NULL, "never started");
	json_decref(o);
	scene_stop(&s);
}

#define CONCURRENT 200

struct submitter {
	struct scene *s;
	int n;
	long status;
	char code[32], trace[48], approval[32];
	pthread_barrier_t *go;
};

static void *submit_one(void *arg)
{
	struct submitter *x = arg;
	char body[512];
	struct af_req q = { .method = "POST", .path = "/api/v1/jobs", .token = x->s->launcher,
			    .body = body, .timeout_ms = 120000 };
	struct af_res r;

	snprintf(body, sizeof(body),
		 "{\"policy\":\"dispatch\",\"risk_tags\":[\"prod\"],\"labels\":{\"mcp.action\":\"write\"},"
		 "\"argv\":[\"/bin/sh\",\"-c\",\"exit 0\",\"%d\"],\"idempotency_key\":\"c-%d\"}",
		 x->n, x->n);
	pthread_barrier_wait(x->go);
	af_request(&x->s->d, &q, &r);
	x->status = r.status;
	snprintf(x->code, sizeof(x->code), "%s", af_error_code(&r) ?: "");
	snprintf(x->trace, sizeof(x->trace), "%s", jstr(r.json, "job", "trace"));
	snprintf(x->approval, sizeof(x->approval), "%s", jstr(r.json, "job", "approval_id"));
	af_res_free(&r);
	return NULL;
}

/* 200 submits at once: every one is answered, either queued (202, with its
 * approval request) or refused with 503 (too many jobs not ended: the bound
 * of 32), and the daemon counts both; nothing is lost or launched. */
TEST(concurrent_submits_are_each_answered_queued_or_refused_and_counted)
{
	static struct submitter x[CONCURRENT];
	static pthread_t t[CONCURRENT];
	pthread_barrier_t go;
	struct scene s;
	struct af_res r;
	int i, queued = 0, refused = 0, other = 0, started = 0;
	size_t k;
	json_t *rec, *recs;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	pthread_barrier_init(&go, NULL, CONCURRENT);
	for (i = 0; i < CONCURRENT; i++) {
		x[i] = (struct submitter){ .s = &s, .n = i, .go = &go };
		if (pthread_create(&t[i], NULL, submit_one, &x[i])) {
			ASSERT_TRUE(false, "pthread_create");
			return;
		}
	}
	for (i = 0; i < CONCURRENT; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < CONCURRENT; i++) {
		if (x[i].status == 202 && x[i].trace[0] && x[i].approval[0])
			queued++;
		else if ((x[i].status == 503 && !strcmp(x[i].code, "queue_full")) || x[i].status == 429)
			refused++;
		else {
			other++;
			printf("  submit %d: %ld %s\n", i, x[i].status, x[i].code);
		}
	}
	printf("  %d queued, %d refused, %d other\n", queued, refused, other);
	ASSERT_EQ(queued + refused, CONCURRENT, "every submit answered: queued or refused");
	ASSERT_EQ(other, 0, "no other answer (no lost connection, no error)");
	ASSERT_EQ(queued, 32, "the bound: 32 jobs not ended, all queued");
	/* counted */
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_dispatch_submits_total{code=\"202\"}"), queued,
		  "/metrics counts the queued");
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_dispatch_submits_total{code=\"503\"}"), refused,
		  "/metrics counts the refused");
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_dispatch_jobs_active"), 32, "32 active");
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_approvals_pending"), queued,
		  "one approval request per queued job, none merged");
	/* each queued job waits in the reviewer's queue under its own trace */
	af_http(&s.d, "GET", "/api/v1/approvals?state=pending&limit=1000", s.reviewer, NULL, &r);
	ASSERT_EQ(json_array_size(json_object_get(r.json, "requests")), (size_t)queued,
		  "the reviewer sees every queued job");
	json_array_foreach(json_object_get(r.json, "requests"), k, rec) {
		bool mine = false;

		for (i = 0; i < CONCURRENT && !mine; i++)
			mine = x[i].status == 202 &&
			       !strcmp(x[i].approval, json_string_value(json_object_get(rec, "id")) ?: "") &&
			       !strcmp(x[i].trace, json_string_value(json_object_get(rec, "trace_id")) ?: "");
		started += !mine;
	}
	ASSERT_EQ(started, 0, "each request is the one its submit was answered with");
	af_res_free(&r);
	/* a refused submit retried with its key is a new submit, not a duplicate */
	for (i = 0; i < CONCURRENT && x[i].status != 503; i++)
		;
	if (i < CONCURRENT) {
		char body[256];

		snprintf(body, sizeof(body), "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"],"
			 "\"idempotency_key\":\"c-%d\"}", i);
		ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, body, &r), 503,
			  "still full: 503 again, not 200 duplicate");
		af_res_free(&r);
	}
	recs = af_audit("job_start", NULL);
	ASSERT_EQ(json_array_size(recs), 0, "nothing launched without approval");
	json_decref(recs);
	scene_stop(&s);
}

/* Records of the job's timeline of `type`, and how many carry extra.attempt == n. */
static size_t timeline_count(json_t *o, const char *type, int attempt, size_t *with_attempt)
{
	json_t *rec;
	size_t i, n = 0;

	*with_attempt = 0;
	json_array_foreach(json_object_get(o, "timeline"), i, rec)
		if (!strcmp(json_string_value(json_object_get(rec, "type")) ?: "", type)) {
			n++;
			if (json_integer_value(json_object_get(json_object_get(rec, "extra"),
								"attempt")) == attempt)
				(*with_attempt)++;
		}
	return n;
}

/* max_retries: a failed job is relaunched at most N times under its trace,
 * each attempt admitted and recorded (admission, job_start, job_exit with
 * extra.attempt); one that succeeds is not relaunched; an approval covers
 * the job's retries. */
TEST(max_retries_relaunches_a_failed_job_under_the_same_trace)
{
	struct scene s;
	struct af_res r;
	char trace[48], ok[48], appr[48], id[32], path[600], body[1600];
	size_t with;
	json_t *o;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	/* always fails: 1 + 2 attempts */
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"topic\":\"job.flaky\","
			  "\"argv\":[\"/bin/sh\",\"-c\",\"echo attempt-ran; exit 7\"]}", &r),
		  201, "a failing job starts");
	snprintf(trace, sizeof(trace), "%s", jstr(r.json, "job", "trace"));
	af_res_free(&r);
	/* fails once, then succeeds: 2 attempts */
	snprintf(path, sizeof(path), "%s/flaky", af_tmp);
	mkdir(path, 0777);
	chmod(path, 0777);
	snprintf(body, sizeof(body),
		 "{\"policy\":\"dispatch\",\"topic\":\"job.flaky\",\"argv\":[\"/bin/sh\",\"-c\","
		 "\"test -e %s/once && exit 0; touch %s/once; exit 1\"]}", path, path);
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, body, &r), 201,
		  "a flaky job starts");
	snprintf(ok, sizeof(ok), "%s", jstr(r.json, "job", "trace"));
	af_res_free(&r);
	o = wait_state(&s, s.launcher, trace, "exited");
	ASSERT_TRUE(o != NULL, "the failing job ends");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(o, "job"),
								    "dispatch"), "attempt")), 3,
		  "after 3 attempts (max_retries 2)");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(o, "job"), "exit_status")), 7,
		  "with the last attempt's exit status");
	ASSERT_EQ(timeline_count(o, "job_start", 3, &with), 3, "3 job_start under the one trace");
	ASSERT_EQ(with, 1, "the third says attempt 3");
	ASSERT_EQ(timeline_count(o, "admission", 2, &with), 3, "each attempt admitted");
	ASSERT_EQ(with, 1, "the second admission says attempt 2");
	ASSERT_EQ(timeline_count(o, "job_exit", 3, &with), 3, "3 job_exit");
	ASSERT_EQ(with, 1, "the last says attempt 3");
	json_decref(o);
	o = wait_state(&s, s.launcher, ok, "exited");
	ASSERT_TRUE(o != NULL, "the flaky job ends");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(o, "job"),
								    "dispatch"), "attempt")), 2,
		  "a success ends the retries: 2 attempts");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(o, "job"), "exit_status")), 0,
		  "exit 0");
	ASSERT_EQ(timeline_count(o, "job_start", 0, &with), 2, "2 job_start");
	json_decref(o);
	/* a job that needs approval: approved once, its retry is not asked again */
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"retry\",\"argv\":[\"/bin/sh\",\"-c\",\"exit 5\"]}", &r),
		  202, "retry policy: waits");
	snprintf(appr, sizeof(appr), "%s", jstr(r.json, "job", "trace"));
	snprintf(id, sizeof(id), "%s", jstr(r.json, "job", "approval_id"));
	af_res_free(&r);
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", id);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer, "{\"once\":true}", &r), 200, "approved");
	af_res_free(&r);
	o = wait_state(&s, s.launcher, appr, "exited");
	ASSERT_TRUE(o != NULL, "it runs twice and ends");
	ASSERT_EQ(timeline_count(o, "job_start", 2, &with), 2, "2 attempts (max_retries 1)");
	ASSERT_EQ(with, 1, "the second is attempt 2");
	ASSERT_EQ(timeline_count(o, "approval", 0, &with), 2, "one request, requested + approved");
	json_decref(o);
	ASSERT_EQ(metric(&s, s.reviewer, "kgate_approvals_pending"), 0, "nothing asked again");
	scene_stop(&s);
}

/* Stopping the daemon ends its jobs and does not relaunch them (max_retries). */
TEST(daemon_stop_ends_jobs_without_retrying_them)
{
	struct scene s;
	struct af_res r;
	char trace[48];
	json_t *o, *recs, *rec;
	size_t i, n = 0;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher,
			  "{\"policy\":\"dispatch\",\"topic\":\"job.flaky\","
			  "\"argv\":[\"/bin/sh\",\"-c\",\"sleep 60; exit 1\"]}", &r),
		  201, "a long flaky job starts");
	snprintf(trace, sizeof(trace), "%s", jstr(r.json, "job", "trace"));
	af_res_free(&r);
	o = wait_state(&s, s.launcher, trace, "running");
	ASSERT_TRUE(o != NULL, "running");
	json_decref(o);
	ASSERT_EQ(af_daemon_stop(&s.d), 0, "the daemon stops cleanly, its job ended");
	recs = af_audit("job_start", NULL);
	json_array_foreach(recs, i, rec)
		n += !strcmp(json_string_value(json_object_get(rec, "trace")) ?: "", trace);
	ASSERT_EQ(n, 1, "started once: not relaunched while the daemon stops");
	json_decref(recs);
	recs = af_audit("job_exit", NULL);
	ASSERT_EQ(json_array_size(recs), 1, "and it ended");
	json_decref(recs);
	af_teardown();
}

TEST(refused_submits_launch_nothing)
{
	static const struct {
		const char *body;
		long status;
		const char *code;
	} bad[] = {
		{ "{\"policy\":\"dispatch\"", 400, "malformed_json" },
		{ "[]", 400, "malformed_json" },
		{ "{\"policy\":\"dispatch\"}", 400, "bad_field" },
		{ "{\"policy\":\"dispatch\",\"argv\":[]}", 400, "bad_field" },
		{ "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"],\"cwd\":\"relative\"}", 400, "bad_field" },
		{ "{\"policy\":\"nope\",\"argv\":[\"/bin/true\"]}", 400, "unknown_policy" },
		{ "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"],\"colour\":1}", 400, "unknown_field" },
		{ "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"],\"env\":{\"LD_PRELOAD\":\"/x.so\"}}",
		  400, "env_not_allowed" },
		{ "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"],\"labels\":{\"a\":1}}", 400, "bad_field" },
		{ "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"],\"as_user\":\"root\"}", 403, "forbidden" },
	};
	struct scene s;
	struct af_res r;
	json_t *recs;
	size_t i;

	if (!scene_start(&s)) {
		scene_stop(&s);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		char what[300];

		snprintf(what, sizeof(what), "%s -> %ld", bad[i].body, bad[i].status);
		ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.launcher, bad[i].body, &r),
			  bad[i].status, what);
		ASSERT_STREQ(af_error_code(&r), bad[i].code, what);
		af_res_free(&r);
	}
	/* no token; a token that is not a launcher's */
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", NULL,
			  "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"]}", &r), 401, "no token: 401");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "POST", "/api/v1/jobs", s.stranger,
			  "{\"policy\":\"dispatch\",\"argv\":[\"/bin/true\"]}", &r), 403,
		  "not a launcher: 403");
	ASSERT_STREQ(af_error_code(&r), "not_launcher", "not_launcher");
	af_res_free(&r);
	recs = af_audit("admission", "deny");
	ASSERT_EQ(json_array_size(recs), 1, "the refused launcher is audited");
	ASSERT_STREQ(json_string_value(json_object_get(json_array_get(recs, 0), "rule")) ?: "",
		     "kgate:launchers", "under rule kgate:launchers");
	json_decref(recs);
	recs = af_audit("job_start", NULL);
	ASSERT_EQ(json_array_size(recs), 0, "nothing was launched");
	json_decref(recs);
	scene_stop(&s);
}

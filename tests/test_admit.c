// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_admit.c - the admission step of `kgate run` (admit.c), above the
 * pure decision that test_admission.c covers:
 *
 *   - the policy's launchers: an outsider is refused (KG_EXIT_DENIED,
 *     rule "kgate:launchers") before any admission rule, whatever the
 *     rules say; empty launchers = anyone; a uid or a group admits;
 *   - every outcome is one "admission" record under the job's trace, with
 *     the command, decision, rule, reason and the submitter's topic,
 *     tenant, labels and retry attempt; the live stream says it too;
 *   - throttle: a token bucket per (policy, rule) in a file of the state
 *     dir, shared by every launch: the burst passes, the next is refused
 *     with a second record; a bucket file that is garbage or from the
 *     future is taken as full; a state dir that cannot hold it refuses;
 *   - require_approval: the launch is queued and waited for, an approval
 *     lets it start, a denial or an interruption refuses it; a retry of
 *     the same job (attempt > 1) is admitted by that approval, another
 *     command is not;
 *   - hostile commands (newlines, quotes, a forged record) stay one
 *     escaped record and the trail verifies.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sys/stat.h>

#include "testlib.h"
#include "testenv.h"
#include "job/admit.h"
#include "approve/approvals.h"
#include "record/audit.h"
#include "cli/cmds.h"
#include "common.h"
#include "policy/policy.h"

static struct kg_policy_doc *load_policy(const char *json)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc;

	doc = kg_policy_load_buffer(json, strlen(json), "admit.json", "/home/t", &err);
	if (!doc) {
		char buf[1024];

		kg_policy_error_format(&err, buf, sizeof(buf));
		printf("  policy: %s\n", buf);
	}
	return doc;
}

/* A test's own audit/ and state/ (KGATE_*_DIR) and an open trail. */
struct env {
	char dir[128];
	char audit_dir[256];
	struct kg_audit *audit;
};

static bool env_setup(struct env *e, const char *name)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	char pin[256];

	if (!ASSERT_OK(kt_state_tree(name, false, e->dir, sizeof(e->dir), pin, sizeof(pin)),
		       "state tree"))
		return false;
	snprintf(e->audit_dir, sizeof(e->audit_dir), "%s/audit", e->dir);
	e->audit = kg_audit_open(e->audit_dir, &o);
	return ASSERT_TRUE(e->audit, "audit trail opened");
}

static void env_teardown(struct env *e)
{
	if (e->audit)
		kg_audit_close(e->audit);
	kt_rm_tree(e->dir);
}

/* The trail's records of a type, in order (a JSON array; caller decrefs). */
static json_t *records_of(const struct env *e, const char *type)
{
	char path[300];
	size_t len;
	char *text, *line, *save = NULL;
	json_t *out = json_array();

	snprintf(path, sizeof(path), "%s/audit.jsonl", e->audit_dir);
	text = kg_read_file(path, 16u << 20, &len);
	if (!text)
		return out;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *r = json_loads(line, 0, NULL);

		if (!r) {
			printf("  not JSON: %s\n", line);
			json_array_append_new(out, json_string("<not JSON>"));
			continue;
		}
		if (json_is_string(json_object_get(r, "type")) &&
		    !strcmp(json_string_value(json_object_get(r, "type")), type))
			json_array_append(out, r);
		json_decref(r);
	}
	free(text);
	return out;
}

static const char *member(json_t *rec, const char *a, const char *b)
{
	json_t *v = json_object_get(rec, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static char *argv_sleep[] = { "sleep", "1", NULL };

/* A launcher that is not this process (and so not its approver either). */
static const struct kg_actor outsider = { .uid = 4242, .user = "agent", .role = "agents" };

static int admit(struct env *e, const struct kg_policy_doc *doc, struct kg_job_spec *spec,
		 const char *trace, volatile sig_atomic_t *stop, struct kg_admission_result *res,
		 struct kg_approvals **approvals)
{
	static volatile sig_atomic_t never;
	struct kg_admit a = { .doc = doc, .spec = spec, .audit = e->audit, .trace = trace,
			      .interrupted = stop ? stop : &never };
	int rc = kg_admit(&a, res);

	if (approvals)
		*approvals = a.approvals;
	else if (a.approvals)
		kg_approvals_close(a.approvals);
	return rc;
}

TEST(may_launch_empty_launchers_is_anyone_else_a_uid_or_a_group)
{
	uint32_t gids[] = { 100, 27 };
	uint32_t uids_1000[] = { 1000 }, gids_27[] = { 27 };
	struct kg_principals none = {};
	struct kg_principals by_uid = { .uids = uids_1000, .nuids = 1 };
	struct kg_principals by_gid = { .gids = gids_27, .ngids = 1 };
	struct kg_actor in_27 = { .uid = 5, .gids = gids, .ngids = 2 };
	struct kg_actor uid_1000 = { .uid = 1000 };
	struct kg_actor stranger = { .uid = 1001, .gids = gids, .ngids = 1 };

	ASSERT_TRUE(kg_may_launch(&none, &stranger), "no launchers listed: anyone");
	ASSERT_TRUE(kg_may_launch(&by_uid, &uid_1000), "listed uid");
	ASSERT_FALSE(kg_may_launch(&by_uid, &stranger), "unlisted uid");
	ASSERT_FALSE(kg_may_launch(&by_uid, &in_27), "a group does not stand for a uid list");
	ASSERT_TRUE(kg_may_launch(&by_gid, &in_27), "member of a listed group (second of its groups)");
	ASSERT_FALSE(kg_may_launch(&by_gid, &stranger), "only group 100 (ngids 1): not 27");
	ASSERT_FALSE(kg_may_launch(&by_gid, &uid_1000), "no groups at all");
}

TEST(an_outsider_is_refused_before_any_rule_and_the_refusal_is_recorded)
{
	struct kg_policy_doc *doc = load_policy(
		"{\"version\":1,\"name\":\"adm\",\"default\":\"allow\","
		" \"launchers\":{\"uids\":[1000],\"gids\":[]},"
		" \"admission\":[{\"id\":\"all\",\"match\":{},\"decision\":\"allow\"}]}");
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	char *live = NULL;
	size_t livelen = 0;
	json_t *recs, *r;
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-launchers"))
		return;
	spec.live = open_memstream(&live, &livelen);
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000a01", NULL, &res, NULL), KG_EXIT_DENIED,
		  "refused with the admission exit code");
	fclose(spec.live);
	ASSERT_EQ(res.decision, KG_DEC_DENY, "decision deny");
	ASSERT_STREQ(res.rule_id, "kgate:launchers", "the launchers, not rule \"all\", decided");
	ASSERT_TRUE(res.rule == NULL, "no admission rule");
	ASSERT_HAS_SUBSTR(live, "admission deny (rule kgate:launchers: the caller is not among",
			  "the live stream says why");

	recs = records_of(&e, "admission");
	if (ASSERT_EQ(json_array_size(recs), 1, "one admission record")) {
		r = json_array_get(recs, 0);
		ASSERT_STREQ(member(r, "trace", NULL), "job-0000000000000a01", "under the job's trace");
		ASSERT_STREQ(member(r, "decision", NULL), "deny", "decision");
		ASSERT_STREQ(member(r, "rule", NULL), "kgate:launchers", "rule");
		ASSERT_STREQ(member(r, "target", NULL), "sleep 1", "the command");
		ASSERT_STREQ(member(r, "op", NULL), "admission", "op");
		ASSERT_STREQ(member(r, "extra", "role"), "agents", "the launcher's role");
		ASSERT_STREQ(member(r, "policy", "name"), "adm", "the policy");
	}
	json_decref(recs);
	free(live);
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(a_listed_launcher_is_admitted_with_its_labels_topic_tenant_and_attempt_recorded)
{
	struct kg_policy_doc *doc = load_policy(
		"{\"version\":1,\"name\":\"adm\",\"default\":\"deny\","
		" \"launchers\":{\"uids\":[4242],\"gids\":[]},"
		" \"admission\":[{\"id\":\"writes\",\"match\":{\"labels\":{\"mcp.action\":\"write\"}},"
		"   \"decision\":\"deny\",\"reason\":\"no writes\"},"
		"  {\"id\":\"agents\",\"match\":{\"topics\":[\"job.agent.*\"]},\"decision\":\"allow\"}]}");
	json_t *labels = json_pack("{s:s,s:i}", "mcp.action", "read", "n", 7);
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider, .labels = labels,
				    .topic = "job.agent.exec", .tenant = "acme", .attempt = 3 };
	struct kg_admission_result res;
	json_t *recs, *r;
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-allow"))
		return;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000a02", NULL, &res, NULL), 0, "admitted");
	ASSERT_STREQ(res.rule_id, "agents", "the topic rule");
	/* the same launch labelled "write" meets the label rule first */
	json_object_set_new(labels, "mcp.action", json_string("write"));
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000a03", NULL, &res, NULL), KG_EXIT_DENIED,
		  "labels reach the rules");
	ASSERT_STREQ(res.rule_id, "writes", "the label rule");

	recs = records_of(&e, "admission");
	if (ASSERT_EQ(json_array_size(recs), 2, "one record per launch")) {
		r = json_array_get(recs, 0);
		ASSERT_STREQ(member(r, "decision", NULL), "allow", "first allowed");
		ASSERT_STREQ(member(r, "extra", "topic"), "job.agent.exec", "topic");
		ASSERT_STREQ(member(r, "extra", "tenant"), "acme", "tenant");
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(
				json_object_get(r, "extra"), "labels"), "mcp.action")), "read",
			     "labels as submitted");
		ASSERT_EQ(json_integer_value(json_object_get(json_object_get(
				json_object_get(r, "extra"), "labels"), "n")), 7,
			  "a non-string label is recorded too");
		ASSERT_EQ(json_integer_value(json_object_get(json_object_get(r, "extra"), "attempt")),
			  3, "the retry's attempt");
		r = json_array_get(recs, 1);
		ASSERT_STREQ(member(r, "decision", NULL), "deny", "second denied");
		ASSERT_STREQ(member(r, "reason", NULL), "no writes", "the rule's reason");
		ASSERT_STREQ(member(r, "trace", NULL), "job-0000000000000a03", "its own trace");
	}
	json_decref(recs);
	json_decref(labels);
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(a_first_attempt_records_no_attempt_member)
{
	struct kg_policy_doc *doc = load_policy("{\"version\":1,\"name\":\"adm\",\"default\":\"audit\"}");
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider, .attempt = 1 };
	struct kg_admission_result res;
	json_t *recs;
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-audit"))
		return;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000a04", NULL, &res, NULL), 0,
		  "default audit admits");
	ASSERT_STREQ(res.rule_id, "default", "the default decided");
	recs = records_of(&e, "admission");
	if (ASSERT_EQ(json_array_size(recs), 1, "one record")) {
		json_t *r = json_array_get(recs, 0);

		ASSERT_STREQ(member(r, "decision", NULL), "audit", "decision audit");
		ASSERT_TRUE(!json_object_get(json_object_get(r, "extra"), "attempt"),
			    "no attempt member on a first launch");
		ASSERT_FALSE(json_is_string(json_object_get(json_object_get(r, "extra"), "topic")),
			     "no topic when none was given");
	}
	json_decref(recs);
	env_teardown(&e);
	kg_policy_free(doc);
}

static const char throttle_policy[] =
	"{\"version\":1,\"name\":\"thr\",\"default\":\"allow\","
	" \"admission\":[{\"id\":\"builds\",\"match\":{},\"decision\":\"throttle\","
	"   \"throttle\":{\"rate_per_sec\":1,\"burst\":2}}]}";

/* <state>/throttle/<16 of the policy hash>-<rule> */
static void bucket_path(const struct env *e, const struct kg_policy_doc *doc, char *buf,
			size_t len)
{
	snprintf(buf, len, "%s/state/throttle/%.16s-builds", e->dir, doc->hash);
}

TEST(throttle_passes_the_burst_then_refuses_and_records_the_refusal)
{
	struct kg_policy_doc *doc = load_policy(throttle_policy);
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	char path[512];
	json_t *recs, *r;
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-throttle"))
		return;
	/* rate 1/s: the three launches take far less than the second that
	 * would refill one token */
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000b01", NULL, &res, NULL), 0, "1 of burst 2");
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000b02", NULL, &res, NULL), 0, "2 of burst 2");
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000b03", NULL, &res, NULL), KG_EXIT_DENIED,
		  "third refused");
	bucket_path(&e, doc, path, sizeof(path));
	ASSERT_OK(access(path, F_OK), "the bucket is a file of the state dir");

	recs = records_of(&e, "admission");
	if (ASSERT_EQ(json_array_size(recs), 4, "three decisions and one refusal")) {
		r = json_array_get(recs, 3);
		ASSERT_STREQ(member(r, "trace", NULL), "job-0000000000000b03", "the refused job");
		ASSERT_STREQ(member(r, "decision", NULL), "throttle", "decision");
		ASSERT_STREQ(member(r, "rule", NULL), "builds", "rule");
		ASSERT_STREQ(member(r, "reason", NULL), "over the launch rate: refused", "reason");
		ASSERT_STREQ(member(r, "target", NULL), "sleep", "the program refused");
	}
	json_decref(recs);
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(throttle_bucket_is_the_file_garbage_or_a_future_stamp_counts_as_full)
{
	struct kg_policy_doc *doc = load_policy(throttle_policy);
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	char path[512], text[96];
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-bucket"))
		return;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000c01", NULL, &res, NULL), 0, "first");
	bucket_path(&e, doc, path, sizeof(path));
	/* another launcher emptied the bucket just now: this one waits its turn */
	snprintf(text, sizeof(text), "0.000000 %" PRIu64 "\n", kg_now_mono_ns());
	ASSERT_OK(kt_write_file(path, text, 0600), "empty bucket");
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000c02", NULL, &res, NULL), KG_EXIT_DENIED,
		  "an empty bucket in the file refuses");
	/* a bucket that is not one: full, not a refusal and not a crash */
	ASSERT_OK(kt_write_file(path, "\x01garbage\xff 12 34 56", 0600), "garbage bucket");
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000c03", NULL, &res, NULL), 0,
		  "garbage = a full bucket");
	/* a stamp from the future (another boot's clock) cannot mint tokens
	 * or hold launches back: full again */
	snprintf(text, sizeof(text), "0.000000 %" PRIu64 "\n", kg_now_mono_ns() + (uint64_t)3600000000000);
	ASSERT_OK(kt_write_file(path, text, 0600), "future bucket");
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000c04", NULL, &res, NULL), 0,
		  "a future stamp = a full bucket");
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(throttle_refuses_when_the_state_dir_cannot_hold_the_bucket)
{
	struct kg_policy_doc *doc = load_policy(throttle_policy);
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	char state[300];
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-nostate"))
		return;
	/* the state dir is a regular file: no throttle/ below it */
	snprintf(state, sizeof(state), "%s/state", e.dir);
	ASSERT_OK(kt_write_file(state, "not a directory\n", 0600), "state is a file");
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000c05", NULL, &res, NULL), KG_EXIT_DENIED,
		  "no bucket: refused, never admitted unmetered");
	env_teardown(&e);
	kg_policy_free(doc);
}

static struct kg_policy_doc *approval_policy(void)
{
	char json[512];

	/* this process approves; the launcher (uid 4242) is someone else */
	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"appr\",\"default\":\"allow\","
		 " \"approvals\":{\"timeout_sec\":60,\"approvers\":{\"uids\":[%u],\"gids\":[]}},"
		 " \"admission\":[{\"id\":\"ask\",\"match\":{},\"decision\":\"require_approval\","
		 "   \"reason\":\"a human decides\"}]}", (unsigned)getuid());
	return load_policy(json);
}

/* The pending admission request of a trace in the queue of the state dir
 * (0 when found within ~10 s). */
static int find_pending(const char *trace, struct kg_approval *out)
{
	int tries;

	for (tries = 0; tries < 200; tries++) {
		struct kg_approvals *q = kg_approvals_open(NULL);
		struct kg_approval *v = NULL;
		size_t n = 0, i;
		int found = -1;

		if (q && !kg_approvals_list(q, false, &v, &n))
			for (i = 0; i < n && found < 0; i++)
				if (!strcmp(v[i].trace_id, trace) && v[i].key.op == KG_OP_ADMISSION) {
					*out = v[i];
					found = 0;
				}
		free(v);
		if (q)
			kg_approvals_close(q);
		if (!found)
			return 0;
		kt_sleep_ms(50);
	}
	return -1;
}

/* A child decides the request of trace once it is queued: approve or deny. */
static pid_t decide_in_child(const char *trace, bool approve)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct kg_approval *a = calloc(1, sizeof(*a));
		struct kg_approvals *q;
		struct kg_approver who;
		struct kg_grant_opts o = { .note = "looks fine" };
		int err = -1;

		kg_approver_self(&who);
		if (a && !find_pending(trace, a) && (q = kg_approvals_open(NULL))) {
			err = approve ? kg_approvals_approve(q, a->id, &who, &o, NULL) :
					kg_approvals_deny(q, a->id, &who, "not today", NULL);
			kg_approvals_close(q);
		}
		free(a);
		_exit(err ? 1 : 0);
	}
	return pid;
}

static bool child_ok(pid_t pid)
{
	int status;

	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

TEST(require_approval_waits_for_the_approver_and_then_admits)
{
	struct kg_policy_doc *doc = approval_policy();
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	struct env e;
	pid_t pid;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-approve"))
		return;
	pid = decide_in_child("job-0000000000000d01", true);
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d01", NULL, &res, NULL), 0,
		  "approved: admitted");
	ASSERT_TRUE(child_ok(pid), "the approver found the queued launch and approved it");
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(require_approval_denied_refuses_the_launch)
{
	struct kg_policy_doc *doc = approval_policy();
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	struct env e;
	pid_t pid;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-deny"))
		return;
	pid = decide_in_child("job-0000000000000d02", false);
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d02", NULL, &res, NULL), KG_EXIT_DENIED,
		  "denied: refused");
	ASSERT_TRUE(child_ok(pid), "the approver denied it");
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(require_approval_interrupted_refuses_and_leaves_the_request_named)
{
	struct kg_policy_doc *doc = approval_policy();
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider };
	struct kg_admission_result res;
	static volatile sig_atomic_t stop = 1;
	struct kg_approval *a = calloc(1, sizeof(*a));
	struct env e;

	if (!ASSERT_TRUE(doc && a, "policy") || !env_setup(&e, "admit-intr"))
		return;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d03", &stop, &res, NULL), KG_EXIT_DENIED,
		  "interrupted: refused");
	if (ASSERT_OK(find_pending("job-0000000000000d03", a), "the launch was queued")) {
		ASSERT_STREQ(a->target, "sleep 1", "the request names the command");
		ASSERT_STREQ(a->rule_id, "ask", "and the rule");
		ASSERT_STREQ(a->policy_hash, doc->hash, "and the policy");
		ASSERT_EQ(a->requester_uid, 4242, "the launcher asks, not this process");
	}
	free(a);
	env_teardown(&e);
	kg_policy_free(doc);
}

/* attempt > 1: the daemon relaunches a failed dispatched job under the same
 * trace; its first launch's approval covers it, and nothing else. */
TEST(a_retry_of_an_approved_launch_is_admitted_another_command_is_not)
{
	struct kg_policy_doc *doc = approval_policy();
	struct kg_job_spec spec = { .argv = argv_sleep, .launcher = &outsider, .attempt = 1 };
	char *other_argv[] = { "sleep", "2", NULL };
	struct kg_admission_result res;
	static volatile sig_atomic_t stop = 1;
	struct env e;
	pid_t pid;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-retry"))
		return;
	pid = decide_in_child("job-0000000000000d04", true);
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d04", NULL, &res, NULL), 0,
		  "first attempt approved");
	ASSERT_TRUE(child_ok(pid), "approved");
	/* an interrupted wait refuses: so admission below means no wait */
	spec.attempt = 2;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d04", &stop, &res, NULL), 0,
		  "the retry is admitted by the approval, without waiting");
	spec.argv = other_argv;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d04", &stop, &res, NULL), KG_EXIT_DENIED,
		  "another command under the same trace is another request");
	spec.argv = argv_sleep;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d05", &stop, &res, NULL), KG_EXIT_DENIED,
		  "the same command under another trace is another request");
	spec.attempt = 1;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000d04", &stop, &res, NULL), KG_EXIT_DENIED,
		  "a first attempt always asks");
	env_teardown(&e);
	kg_policy_free(doc);
}

TEST(a_hostile_command_stays_one_escaped_record_and_the_trail_verifies)
{
	struct kg_policy_doc *doc = load_policy("{\"version\":1,\"name\":\"adm\",\"default\":\"deny\"}");
	char *argv[] = { "sh", "-c", "x\n{\"type\":\"admission\",\"decision\":\"allow\"}\"\\\x01", NULL };
	json_t *labels = json_pack("{s:s}", "k\n\"", "v\t\x02");
	struct kg_job_spec spec = { .argv = argv, .launcher = &outsider, .labels = labels };
	struct kg_audit_verify_result vr;
	struct kg_admission_result res;
	json_t *recs;
	struct env e;

	if (!ASSERT_TRUE(doc, "policy") || !env_setup(&e, "admit-hostile"))
		return;
	ASSERT_EQ(admit(&e, doc, &spec, "job-0000000000000e01", NULL, &res, NULL), KG_EXIT_DENIED,
		  "default deny");
	recs = records_of(&e, "admission");
	if (ASSERT_EQ(json_array_size(recs), 1, "one record, no forged second one")) {
		json_t *r = json_array_get(recs, 0);

		ASSERT_STREQ(member(r, "decision", NULL), "deny", "its decision");
		/* control bytes and backslashes escaped reversibly (kg_audit_escape) */
		ASSERT_STREQ(member(r, "target", NULL),
			     "sh -c x\\x0a{\"type\":\"admission\",\"decision\":\"allow\"}\"\\\\\\x01",
			     "the command, as one escaped string");
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(
				json_object_get(r, "extra"), "labels"), "k\n\"")), "v\t\x02",
			     "the hostile label");
	}
	json_decref(recs);
	kg_audit_close(e.audit);
	e.audit = NULL;
	memset(&vr, 0, sizeof(vr));
	ASSERT_OK(kg_audit_verify_dir(e.audit_dir, NULL, &vr), "verify ran");
	ASSERT_TRUE(vr.ok, "the trail verifies");
	json_decref(labels);
	env_teardown(&e);
	kg_policy_free(doc);
}

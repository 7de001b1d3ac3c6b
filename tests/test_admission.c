// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_admission.c - first-match admission: globs, risk tags, constraints, default. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "policy/admission.h"
#include "policy/policy.h"

static const char *policy_json =
	"{\"version\":1,\"name\":\"adm\",\"default\":\"deny\",\n"
	" \"constraints\":{\"max_runtime_sec\":600,\"max_procs\":100},\n"
	" \"admission\":[\n"
	"  {\"id\":\"deny-destructive\",\"match\":{\"risk_tags\":[\"destructive\"]},\"decision\":\"deny\",\"reason\":\"never\"},\n"
	"  {\"id\":\"constrain-medium\",\"match\":{\"topics\":[\"job.agent.exec.*\"],\"risk_tags\":[\"medium\",\"net\"]},\n"
	"   \"decision\":\"allow_with_constraints\",\"constraints\":{\"max_runtime_sec\":45,\"max_procs\":500,\"memory_max\":\"256M\"}},\n"
	"  {\"id\":\"ops-team\",\"match\":{\"roles\":[\"ops\"],\"tenants\":[\"acme\",\"globex\"]},\"decision\":\"require_approval\"},\n"
	"  {\"id\":\"root-any\",\"match\":{\"uids\":[0]},\"decision\":\"allow\"},\n"
	"  {\"id\":\"builds\",\"match\":{\"topics\":[\"job.build.?\",\"job.ci.[ab]*\"]},\"decision\":\"throttle\",\n"
	"   \"throttle\":{\"rate_per_sec\":2,\"burst\":4}},\n"
	"  {\"id\":\"agents\",\"match\":{\"topics\":[\"job.agent.*\"]},\"decision\":\"allow\"}\n"
	" ]}\n";

static struct kg_policy_doc *load_policy(void)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc;

	doc = kg_policy_load_buffer(policy_json, strlen(policy_json), "adm.json", "/home/t", &err);
	if (!doc) {
		char buf[1024];

		kg_policy_error_format(&err, buf, sizeof(buf));
		printf("  %s\n", buf);
	}
	return doc;
}

static struct kg_admission_result decide(const struct kg_policy_doc *doc, uint32_t uid,
					 const char *role, const char *topic, const char *tenant,
					 const char *const *tags, size_t ntags)
{
	struct kg_actor actor = { .uid = uid, .role = role, .user = "u" };
	struct kg_launch_req req = { .topic = topic, .tenant = tenant, .risk_tags = tags,
				     .nrisk_tags = ntags };
	struct kg_admission_result res;

	if (kg_admission_decide(doc, &actor, &req, &res))
		memset(&res, 0, sizeof(res));
	return res;
}

TEST(first_match_wins)
{
	struct kg_policy_doc *doc = load_policy();
	const char *tags[] = { "medium", "destructive", "net" };
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	/* destructive comes first even though constrain-medium also matches */
	r = decide(doc, 1000, NULL, "job.agent.exec.build", NULL, tags, 3);
	ASSERT_EQ(r.decision, KG_DEC_DENY, "destructive denied");
	ASSERT_STREQ(r.rule_id, "deny-destructive", "rule");
	ASSERT_STREQ(r.reason, "never", "reason");
	ASSERT_TRUE(r.rule == &doc->admission[0], "rule pointer");
	/* root would be allowed by root-any, but an earlier rule matches first */
	r = decide(doc, 0, NULL, "job.agent.exec.x", NULL, tags, 3);
	ASSERT_STREQ(r.rule_id, "deny-destructive", "root is not special before its rule");
	r = decide(doc, 0, NULL, "anything", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "root-any", "uid match");
	ASSERT_EQ(r.decision, KG_DEC_ALLOW, "root allowed");
	kg_policy_free(doc);
}

TEST(default_when_nothing_matches)
{
	struct kg_policy_doc *doc = load_policy();
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	r = decide(doc, 1000, NULL, "job.other", NULL, NULL, 0);
	ASSERT_EQ(r.decision, KG_DEC_DENY, "default deny");
	ASSERT_TRUE(r.rule == NULL, "no rule");
	ASSERT_STREQ(r.rule_id, "default", "rule id");
	ASSERT_TRUE(r.reason != NULL, "reason");
	ASSERT_EQ(r.constraints.max_runtime_sec, 600, "policy constraints still apply");
	r = decide(doc, 1000, NULL, NULL, NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "no topic matches no topic rule");
	kg_policy_free(doc);
}

TEST(topic_globs)
{
	struct kg_policy_doc *doc = load_policy();
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	r = decide(doc, 1000, NULL, "job.agent.exec.build.deep", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "agents", "'*' crosses dots; medium rule needs tags");
	r = decide(doc, 1000, NULL, "job.build.1", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "builds", "'?' one char");
	ASSERT_EQ(r.decision, KG_DEC_THROTTLE, "throttle");
	ASSERT_EQ(r.rate_per_sec, 2, "rate");
	ASSERT_EQ(r.burst, 4, "burst");
	r = decide(doc, 1000, NULL, "job.build.12", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "'?' is exactly one char");
	r = decide(doc, 1000, NULL, "job.ci.beta", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "builds", "bracket class");
	r = decide(doc, 1000, NULL, "job.ci.cat", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "bracket class miss");
	r = decide(doc, 1000, NULL, "job.agentX", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "literal dot in the glob");
	kg_policy_free(doc);
}

TEST(risk_tags_all_required)
{
	struct kg_policy_doc *doc = load_policy();
	const char *medium_only[] = { "medium" };
	const char *both[] = { "net", "low", "medium" };
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	r = decide(doc, 1000, NULL, "job.agent.exec.test", NULL, medium_only, 1);
	ASSERT_STREQ(r.rule_id, "agents", "one of two tags is not enough");
	r = decide(doc, 1000, NULL, "job.agent.exec.test", NULL, both, 3);
	ASSERT_STREQ(r.rule_id, "constrain-medium", "all tags present, order irrelevant");
	ASSERT_EQ(r.decision, KG_DEC_ALLOW_WITH_CONSTRAINTS, "decision");
	kg_policy_free(doc);
}

TEST(constraints_are_narrowed_not_widened)
{
	struct kg_policy_doc *doc = load_policy();
	const char *tags[] = { "medium", "net" };
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	r = decide(doc, 1000, NULL, "job.agent.exec.test", NULL, tags, 2);
	ASSERT_TRUE(r.constraints.present, "present");
	ASSERT_EQ(r.constraints.max_runtime_sec, 45, "rule narrower than policy (600)");
	ASSERT_EQ(r.constraints.max_procs, 100, "policy narrower than rule (500)");
	ASSERT_EQ(r.constraints.memory_max, 256ull << 20, "only the rule sets memory");
	kg_policy_free(doc);
}

TEST(roles_and_tenants)
{
	struct kg_policy_doc *doc = load_policy();
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	r = decide(doc, 1000, "ops", "job.deploy", "globex", NULL, 0);
	ASSERT_STREQ(r.rule_id, "ops-team", "role and tenant");
	ASSERT_EQ(r.decision, KG_DEC_REQUIRE_APPROVAL, "approval");
	r = decide(doc, 1000, "ops", "job.deploy", "initech", NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "tenant mismatch");
	r = decide(doc, 1000, NULL, "job.deploy", "acme", NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "no role never matches a role rule");
	r = decide(doc, 1000, "dev", "job.deploy", "acme", NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "role mismatch");
	r = decide(doc, 1000, "ops", "job.deploy", NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "no tenant never matches a tenant rule");
	kg_policy_free(doc);
}

TEST(empty_match_matches_everything)
{
	const char *json = "{\"version\":1,\"name\":\"e\",\"default\":\"deny\","
			   "\"admission\":[{\"id\":\"all\",\"decision\":\"audit\"}]}";
	struct kg_policy_error err;
	struct kg_policy_doc *doc = kg_policy_load_buffer(json, strlen(json), "e.json", "/h", &err);
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	r = decide(doc, 42, NULL, NULL, NULL, NULL, 0);
	ASSERT_STREQ(r.rule_id, "all", "no match object = any launch");
	ASSERT_EQ(r.decision, KG_DEC_AUDIT, "audit");
	ASSERT_FALSE(r.constraints.present, "no constraints anywhere");
	kg_policy_free(doc);
}

/* match.labels: exact values and globs, every named label required */
static const char *labels_json =
	"{\"version\":1,\"name\":\"lab\",\"default\":\"allow\",\n"
	" \"admission\":[\n"
	"  {\"id\":\"prod-write\",\"match\":{\"risk_tags\":[\"prod\"],\"labels\":{\"mcp.action\":\"write\"}},\n"
	"   \"decision\":\"require_approval\"},\n"
	"  {\"id\":\"fs-tools\",\"match\":{\"labels\":{\"mcp.tool\":[\"fs.*\",\"git.pu?h\"],\"mcp.server\":\"local\"}},\n"
	"   \"decision\":\"deny\"},\n"
	"  {\"id\":\"any-delete\",\"match\":{\"labels\":{\"mcp.action\":\"del*\"}},\"decision\":\"audit\"}\n"
	" ]}\n";

static struct kg_admission_result decide_labels(const struct kg_policy_doc *doc,
						const struct kg_label *labels, size_t nlabels,
						const char *const *tags, size_t ntags)
{
	struct kg_actor actor = { .uid = 1000, .user = "u" };
	struct kg_launch_req req = { .topic = "job.mcp", .risk_tags = tags, .nrisk_tags = ntags,
				     .labels = labels, .nlabels = nlabels };
	struct kg_admission_result res;

	if (kg_admission_decide(doc, &actor, &req, &res))
		memset(&res, 0, sizeof(res));
	return res;
}

TEST(labels_exact_and_globs)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = kg_policy_load_buffer(labels_json, strlen(labels_json),
							  "lab.json", "/h", &err);
	const char *prod[] = { "prod" };
	const struct kg_label write[] = { { "mcp.action", "write" } };
	const struct kg_label writer[] = { { "mcp.action", "writer" } };
	const struct kg_label Write[] = { { "mcp.action", "Write" } };
	const struct kg_label other_key[] = { { "mcp.verb", "write" } };
	const struct kg_label fs[] = { { "mcp.server", "local" }, { "mcp.tool", "fs.read" } };
	const struct kg_label push[] = { { "mcp.tool", "git.push" }, { "mcp.server", "local" } };
	const struct kg_label fs_remote[] = { { "mcp.tool", "fs.read" }, { "mcp.server", "remote" } };
	const struct kg_label fs_only[] = { { "mcp.tool", "fs.read" } };
	const struct kg_label del[] = { { "x", "y" }, { "mcp.action", "delete" } };
	struct kg_admission_result r;

	if (!ASSERT_TRUE(doc != NULL, "load")) {
		printf("  %s\n", err.message);
		return;
	}
	ASSERT_EQ(doc->admission[1].nlabels, 2, "two labels parsed");
	ASSERT_EQ(doc->admission[1].labels[0].nglobs, 2, "an array of globs");
	/* exact value, together with a risk tag */
	r = decide_labels(doc, write, 1, prod, 1);
	ASSERT_STREQ(r.rule_id, "prod-write", "exact label + tag");
	ASSERT_EQ(r.decision, KG_DEC_REQUIRE_APPROVAL, "approval");
	r = decide_labels(doc, write, 1, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "label without the tag");
	r = decide_labels(doc, NULL, 0, prod, 1);
	ASSERT_STREQ(r.rule_id, "default", "tag without the label");
	r = decide_labels(doc, writer, 1, prod, 1);
	ASSERT_STREQ(r.rule_id, "default", "exact means exact: 'writer' is not 'write'");
	r = decide_labels(doc, Write, 1, prod, 1);
	ASSERT_STREQ(r.rule_id, "default", "values are case-sensitive");
	r = decide_labels(doc, other_key, 1, prod, 1);
	ASSERT_STREQ(r.rule_id, "default", "the value under another key does not count");
	/* globs; all named labels must match, in any order */
	r = decide_labels(doc, fs, 2, NULL, 0);
	ASSERT_STREQ(r.rule_id, "fs-tools", "glob fs.* and exact server");
	ASSERT_EQ(r.decision, KG_DEC_DENY, "deny");
	r = decide_labels(doc, push, 2, NULL, 0);
	ASSERT_STREQ(r.rule_id, "fs-tools", "second glob of the list, '?'");
	r = decide_labels(doc, fs_remote, 2, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "one of two labels mismatches");
	r = decide_labels(doc, fs_only, 1, NULL, 0);
	ASSERT_STREQ(r.rule_id, "default", "one of two labels missing");
	r = decide_labels(doc, del, 2, NULL, 0);
	ASSERT_STREQ(r.rule_id, "any-delete", "prefix glob, extra labels ignored");
	ASSERT_EQ(r.decision, KG_DEC_AUDIT, "audit");
	kg_policy_free(doc);
}

TEST(null_arguments)
{
	struct kg_admission_result r;
	struct kg_actor a = { 0 };
	struct kg_launch_req q = { 0 };

	errno = 0;
	ASSERT_ERRNO(kg_admission_decide(NULL, &a, &q, &r), EINVAL, "NULL doc");
}

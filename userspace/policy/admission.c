// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* admission.c - first-match admission decisions (see admission.h). */
#include "policy/admission.h"

#include <errno.h>
#include <fnmatch.h>
#include <string.h>

static bool uid_listed(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (uids[i] == uid)
			return true;
	return false;
}

/* exact string membership; a NULL value never matches a non-empty list */
static bool str_listed(char *const *list, size_t n, const char *value)
{
	size_t i;

	if (!value)
		return false;
	for (i = 0; i < n; i++)
		if (!strcmp(list[i], value))
			return true;
	return false;
}

/* topics are fnmatch(3) globs; '*' also matches '.' (no FNM_PATHNAME) */
static bool topic_matches(char *const *globs, size_t n, const char *topic)
{
	size_t i;

	if (!topic)
		return false;
	for (i = 0; i < n; i++)
		if (fnmatch(globs[i], topic, 0) == 0)
			return true;
	return false;
}

/* every tag the rule lists must be among the request's tags */
static bool tags_present(char *const *need, size_t nneed, const struct kg_launch_req *req)
{
	size_t i, j;

	for (i = 0; i < nneed; i++) {
		bool found = false;

		for (j = 0; j < req->nrisk_tags && !found; j++)
			found = req->risk_tags[j] && !strcmp(req->risk_tags[j], need[i]);
		if (!found)
			return false;
	}
	return true;
}

/* every label the rule names must be in the request, its value matching
 * one of the rule's globs for it */
static bool labels_match(const struct kg_label_match *need, size_t nneed,
			 const struct kg_launch_req *req)
{
	size_t i, j, g;

	for (i = 0; i < nneed; i++) {
		const char *value = NULL;
		bool ok = false;

		for (j = 0; j < req->nlabels && !value; j++)
			if (req->labels[j].key && !strcmp(req->labels[j].key, need[i].key))
				value = req->labels[j].value;
		for (g = 0; value && g < need[i].nglobs && !ok; g++)
			ok = fnmatch(need[i].globs[g], value, 0) == 0;
		if (!ok)
			return false;
	}
	return true;
}

bool kg_admission_rule_matches(const struct kg_admission_rule *rule,
			       const struct kg_actor *actor,
			       const struct kg_launch_req *req)
{
	if (rule->nuids && !uid_listed(rule->uids, rule->nuids, actor->uid))
		return false;
	if (rule->nroles && !str_listed(rule->roles, rule->nroles, actor->role))
		return false;
	if (rule->ntenants && !str_listed(rule->tenants, rule->ntenants, req->tenant))
		return false;
	if (rule->ntopics && !topic_matches(rule->topics, rule->ntopics, req->topic))
		return false;
	if (!labels_match(rule->labels, rule->nlabels, req))
		return false;
	return tags_present(rule->risk_tags, rule->nrisk_tags, req);
}

/* the stricter of two limits, 0 meaning "no limit" */
static uint64_t min_limit(uint64_t a, uint64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

static struct kg_constraints merge_constraints(const struct kg_constraints *policy,
					       const struct kg_constraints *rule)
{
	struct kg_constraints out = *policy;

	if (!rule || !rule->present)
		return out;
	out.present = true;
	out.max_runtime_sec = min_limit(policy->max_runtime_sec, rule->max_runtime_sec);
	out.max_procs = min_limit(policy->max_procs, rule->max_procs);
	out.memory_max = min_limit(policy->memory_max, rule->memory_max);
	out.max_retries = min_limit(policy->max_retries, rule->max_retries);
	return out;
}

int kg_admission_decide(const struct kg_policy_doc *doc, const struct kg_actor *actor,
			const struct kg_launch_req *req, struct kg_admission_result *out)
{
	size_t i;

	if (!doc || !actor || !req || !out) {
		errno = EINVAL;
		return -1;
	}
	memset(out, 0, sizeof(*out));
	for (i = 0; i < doc->nadmission; i++) {
		const struct kg_admission_rule *r = &doc->admission[i];

		if (!kg_admission_rule_matches(r, actor, req))
			continue;
		out->decision = r->decision;
		out->rule = r;
		out->rule_id = r->id;
		out->reason = r->reason ? r->reason : "matched admission rule";
		out->constraints = merge_constraints(&doc->constraints, &r->constraints);
		out->rate_per_sec = r->rate_per_sec;
		out->burst = r->burst;
		return 0;
	}
	out->decision = doc->default_decision;
	out->rule_id = "default";
	out->reason = "no admission rule matched: policy default";
	out->constraints = merge_constraints(&doc->constraints, NULL);
	return 0;
}

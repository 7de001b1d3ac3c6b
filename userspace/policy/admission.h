/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * admission.h - decide whether a launch may proceed (before dispatch).
 *
 * Admission rules are tried in file order and the first whose every present
 * match field matches decides; when none does, the policy's "default" does.
 * The caller fills the actor from kernel-provided credentials (SO_PEERCRED
 * or getuid()), never from what a client claims.
 */
#ifndef KGATE_ADMISSION_H
#define KGATE_ADMISSION_H

#include <stddef.h>
#include <stdint.h>
#include "policy/policy.h"

struct kg_actor {
	uint32_t uid;
	const uint32_t *gids;		/* supplementary + primary; may be NULL */
	size_t ngids;
	const char *user;		/* user name, informational; may be NULL */
	const char *role;		/* may be NULL: then rules with roles never match */
};

#define KG_MAX_LABELS	32	/* a request's labels */

struct kg_label {		/* one of a request's labels, e.g. "mcp.action": "write" */
	const char *key, *value;
};

struct kg_launch_req {
	const char *topic;		/* e.g. "job.agent.exec.build"; may be NULL */
	const char *tenant;		/* may be NULL */
	const char *const *risk_tags;	/* may be NULL when nrisk_tags == 0 */
	size_t nrisk_tags;
	const struct kg_label *labels;	/* may be NULL when nlabels == 0 */
	size_t nlabels;
};

struct kg_admission_result {
	enum kg_decision decision;
	const struct kg_admission_rule *rule;	/* NULL: the policy default decided */
	const char *rule_id;			/* rule->id or "default" */
	const char *reason;			/* never NULL; points into the document */
	/* policy-wide constraints narrowed by the rule's (minimum of each limit;
	 * 0 = no limit); present when either had any */
	struct kg_constraints constraints;
	uint64_t rate_per_sec, burst;		/* for decision throttle */
};

/* 0 on success (out filled), -1 with errno EINVAL on NULL arguments. */
int kg_admission_decide(const struct kg_policy_doc *doc, const struct kg_actor *actor,
			const struct kg_launch_req *req, struct kg_admission_result *out);

/* True when the rule's match fields all match (exposed for tests/tools). */
bool kg_admission_rule_matches(const struct kg_admission_rule *rule,
			       const struct kg_actor *actor,
			       const struct kg_launch_req *req);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/rules.h - one rule of the policy (private to userspace/policy/).
 *
 * Owns: what a runtime rule (file, exec, net with cidr, host or unix,
 * socket, syscall) and an admission rule (match, constraints, throttle)
 * may say, which decisions each kind accepts, and the operations a rule
 * implies (deny and require_approval on a path also cover rename, link and
 * unlink).  The rule's number and position are set by the caller
 * (parse.c); cross-rule checks are in checks.c.
 */
#ifndef KGATE_POLICY_RULES_H
#define KGATE_POLICY_RULES_H

#include <stdbool.h>
#include <jansson.h>

#include "policy/context.h"

int kgp_parse_runtime_rule(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule);
int kgp_parse_admission_rule(struct kgp_ctx *c, json_t *obj, struct kg_admission_rule *a);

/* deny and require_approval on an object also refuse moving or unlinking it */
bool kgp_protects_identity(enum kg_decision d);

#endif

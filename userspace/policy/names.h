/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/names.h - names of decisions, operations, classes and rule kinds,
 * and a rule from the number the kernel reports (public: included by
 * policy.h).
 *
 * Owns: the spelling of every name the policy language, the audit trail
 * and the CLI share, and the contract "rule number = index + 1".
 */
#ifndef KGATE_POLICY_NAMES_H
#define KGATE_POLICY_NAMES_H

#include <stdint.h>
#include "policy/policy.h"

const char *kg_decision_name(enum kg_decision d);
int kg_decision_parse(const char *s, enum kg_decision *out);	/* 0, or -1 if unknown */
const char *kg_op_name(enum kg_op op);
const char *kg_class_name(enum kg_class c);
const char *kg_rule_kind_name(enum kg_rule_kind k);	/* "file", "net", ... */

/* rules[num - 1], or NULL when num is not a rule of doc */
const struct kg_rule *kg_policy_rule_by_num(const struct kg_policy_doc *doc, uint32_t num);

#endif

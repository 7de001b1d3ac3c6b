/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/match.h - the reference matcher (public: included by policy.h).
 *
 * Owns: the semantics of runtime precedence (policies/README.md) as plain
 * code, for tests and userspace enforcers: the rule that decides `op` on
 * `path` (canonical, absolute) or on a connection, or NULL when the class
 * default applies.
 * Paths: deepest rule path wins, exact beats prefix at equal depth, then
 * file order.  Net (addr IPv4-mapped, proto 6/17, net_op KG_NET_OP_*):
 * longest prefix, then narrowest matching port range, then file order.
 */
#ifndef KGATE_POLICY_MATCH_H
#define KGATE_POLICY_MATCH_H

#include <stdint.h>
#include "policy/policy.h"

const struct kg_rule *kg_policy_match_path(const struct kg_policy_doc *doc,
					   const char *path, enum kg_op op);
const struct kg_rule *kg_policy_match_net(const struct kg_policy_doc *doc,
					  const uint8_t addr[16], uint16_t port,
					  uint8_t proto, uint32_t net_op);

#endif

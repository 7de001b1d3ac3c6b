/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/checks.h - checks across the rules of a parsed document (private
 * to userspace/policy/).
 *
 * Owns: the rules that no single rule can break alone: ids unique across
 * both lists, no two runtime rules deciding the same target and operation
 * differently, host rules that fit the kernel's entries per address.  The
 * error names the later rule of the first offending pair in file order.
 */
#ifndef KGATE_POLICY_CHECKS_H
#define KGATE_POLICY_CHECKS_H

#include "policy/context.h"

int kgp_check_duplicate_ids(struct kgp_ctx *c);
int kgp_check_contradictions(struct kgp_ctx *c);
int kgp_check_host_entries(struct kgp_ctx *c);

#endif

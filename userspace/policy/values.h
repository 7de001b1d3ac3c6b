/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/values.h - the policy language's small values and objects
 * (private to userspace/policy/).
 *
 * Owns: what an id, a path (~ expanded, canonical), a list of names
 * mapped to bits, a CIDR, a port or port range and a byte size look like;
 * and the small objects more than one place uses: constraints, throttle,
 * lists of ids and of strings.  Each records its error at the value.
 */
#ifndef KGATE_POLICY_VALUES_H
#define KGATE_POLICY_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "policy/context.h"

/* a list of names mapped to bits (a NULL name ends the table) */
struct kgp_name_bits {
	const char *name;
	uint64_t bits;
};

/* letters, digits, '.', '_', '-'; 1..KG_ID_MAX; out has KG_ID_MAX + 1 bytes */
int kgp_value_id(struct kgp_ctx *c, json_t *v, char *out, const char *what);
/* "~/x" -> home + "/x"; validates absoluteness and canonical form. */
int kgp_value_path(struct kgp_ctx *c, json_t *v, char **out);
int kgp_value_name_bits(struct kgp_ctx *c, json_t *arr, const struct kgp_name_bits *table,
			const char *what, uint64_t *out);
/* the array member `key` as names of `table` */
int kgp_parse_ops(struct kgp_ctx *c, json_t *obj, const char *key,
		  const struct kgp_name_bits *table, bool required, uint32_t *out);
/* "a.b.c.d/len", "x::y/len", or a bare address: rule's addr, prefixlen, family */
int kgp_value_cidr(struct kgp_ctx *c, json_t *v, struct kg_rule *rule);
/* 443 or "8000-8080" (or "443"); port 0 is never valid */
int kgp_value_port(struct kgp_ctx *c, json_t *v, uint16_t *lo, uint16_t *hi);

int kgp_parse_constraints(struct kgp_ctx *c, json_t *obj, struct kg_constraints *out);
int kgp_parse_throttle(struct kgp_ctx *c, json_t *obj, uint64_t *rate, uint64_t *burst);
/* principals lists may be empty ("nobody by group"); match lists may not */
int kgp_parse_id_list(struct kgp_ctx *c, json_t *obj, const char *key, uint32_t **out,
		      size_t *nout, bool allow_empty);
int kgp_parse_str_list(struct kgp_ctx *c, json_t *obj, const char *key, char ***out,
		       size_t *nout);

#endif

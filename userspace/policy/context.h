/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/context.h - reading a policy document: where the reader is, what
 * went wrong there, and typed access to members (private to
 * userspace/policy/).
 *
 * Owns: struct kgp_ctx (the source text, the JSON path being read, the
 * rule being parsed), the error recorded at that path (kgp_perr: file,
 * line, column, rule id, field, message with control characters shown
 * escaped), kg_policy_error_format, the typed getters (each pushes the
 * member's name, so an error points at the value) and the sets of
 * decisions each place accepts.
 *
 * Every kgp_* function that can fail records the error and returns -1.
 */
#ifndef KGATE_POLICY_CONTEXT_H
#define KGATE_POLICY_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "policy/policy.h"
#include "policy/locate.h"

#define PATH_DEPTH_MAX 12

struct kgp_ctx {
	const char *src;
	size_t len;
	const char *home;		/* for ~ expansion, may be NULL */
	struct kg_policy_error *err;
	struct kg_policy_doc *doc;
	struct kgp_comp path[PATH_DEPTH_MAX];
	int depth;			/* may exceed PATH_DEPTH_MAX: then not recorded */
	int field_base;			/* path[field_base..] names the field */
	const char *rule_id;		/* id of the rule being parsed, if known */
	const struct kg_rule *socket_rule;
};

void kgp_push_key(struct kgp_ctx *c, const char *key);
void kgp_push_index(struct kgp_ctx *c, size_t index);
void kgp_pop(struct kgp_ctx *c);

/* Record an error at the current path; always returns -1. */
int kgp_perr(struct kgp_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kgp_oom(struct kgp_ctx *c);

/* "an object", "a string", ... for "expected X, got Y" */
const char *kgp_json_type_name(const json_t *v);
/* t == JSON_TRUE accepts either boolean */
int kgp_expect_type(struct kgp_ctx *c, const json_t *v, json_type t, const char *what);
/* obj has no member outside the NULL-terminated `allowed` */
int kgp_check_keys(struct kgp_ctx *c, json_t *obj, const char *const *allowed);
int kgp_require(struct kgp_ctx *c, json_t *obj, const char *key, json_t **out);

/* Control characters (C0, DEL, C1) are refused in every string. */
bool kgp_has_control(const char *s);
/* "<what> a control character (U+0085): ..." */
int kgp_perr_control(struct kgp_ctx *c, const char *what, const char *s);

/* optional members: absent leaves *out NULL (strings, objects, arrays) or
 * untouched (integers, booleans) */
int kgp_get_string(struct kgp_ctx *c, json_t *obj, const char *key, const char **out,
		   size_t maxlen);
int kgp_value_uint(struct kgp_ctx *c, json_t *v, uint64_t min, uint64_t max, uint64_t *out);
int kgp_get_uint(struct kgp_ctx *c, json_t *obj, const char *key, uint64_t min,
		 uint64_t max, uint64_t *out);
int kgp_get_bool(struct kgp_ctx *c, json_t *obj, const char *key, bool *out);
int kgp_get_object(struct kgp_ctx *c, json_t *obj, const char *key, json_t **out);
/* non-empty, at most max entries */
int kgp_get_array(struct kgp_ctx *c, json_t *obj, const char *key, json_t **out, size_t max);

/* decision named by a string value, restricted to `allowed` (DEC_BIT mask) */
int kgp_value_decision(struct kgp_ctx *c, json_t *v, uint32_t allowed, const char *what,
		       enum kg_decision *out);

#define DEC_BIT(d) (1u << (d))
#define DECS_RUNTIME_DEFAULT (DEC_BIT(KG_DEC_ALLOW) | DEC_BIT(KG_DEC_AUDIT) | DEC_BIT(KG_DEC_DENY))
#define DECS_ADMISSION_DEFAULT (DECS_RUNTIME_DEFAULT | DEC_BIT(KG_DEC_REQUIRE_APPROVAL))
#define DECS_ADMISSION (DECS_ADMISSION_DEFAULT | DEC_BIT(KG_DEC_THROTTLE) | \
			DEC_BIT(KG_DEC_ALLOW_WITH_CONSTRAINTS))
#define DECS_OBJECT (DECS_ADMISSION_DEFAULT | DEC_BIT(KG_DEC_THROTTLE))
#define DECS_SOCKET (DEC_BIT(KG_DEC_AUDIT) | DEC_BIT(KG_DEC_DENY))
#define DECS_SYSCALL (DECS_RUNTIME_DEFAULT | DEC_BIT(KG_DEC_NO_OP))

#endif

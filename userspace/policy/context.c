// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/context.c - the reader's context: the JSON path being read, an
 * error recorded at it (and formatted for the user), typed getters.
 */
#include "policy/context.h"
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void kgp_push_key(struct kgp_ctx *c, const char *key)
{
	if (c->depth < PATH_DEPTH_MAX)
		c->path[c->depth] = (struct kgp_comp){ .key = key };
	c->depth++;
}

void kgp_push_index(struct kgp_ctx *c, size_t index)
{
	if (c->depth < PATH_DEPTH_MAX)
		c->path[c->depth] = (struct kgp_comp){ .key = NULL, .index = index };
	c->depth++;
}

void kgp_pop(struct kgp_ctx *c)
{
	c->depth--;
}

static void format_field(const struct kgp_ctx *c, int base, char *buf, size_t len)
{
	size_t used = 0;
	int k, depth = c->depth < PATH_DEPTH_MAX ? c->depth : PATH_DEPTH_MAX;

	buf[0] = '\0';
	for (k = base; k < depth && used < len; k++) {
		int w;

		if (c->path[k].key)
			w = snprintf(buf + used, len - used, "%s%s",
				     used ? "." : "", c->path[k].key);
		else
			w = snprintf(buf + used, len - used, "[%zu]", c->path[k].index);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* Record an error at the current path; always returns -1. */
/* Messages quote what the policy said ("unknown decision 'X'"): control
 * characters in it (C0, DEL, C1) are shown as \xNN / \uNNNN, never sent
 * to a terminal as they are. */
static void defuse_controls(char *msg, size_t size)
{
	char out[sizeof(((struct kg_policy_error *)0)->message)];
	const unsigned char *p = (const unsigned char *)msg;
	size_t n = 0;

	while (*p && n + 8 < sizeof(out)) {
		if (*p < 0x20 || *p == 0x7f) {
			n += snprintf(out + n, sizeof(out) - n, "\\x%02x", *p);
			p++;
		} else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			n += snprintf(out + n, sizeof(out) - n, "\\u%04x", p[1]);
			p += 2;
		} else {
			out[n++] = (char)*p++;
		}
	}
	out[n] = '\0';
	kg_strlcpy(msg, out, size);
}

int kgp_perr(struct kgp_ctx *c, const char *fmt, ...)
{
	struct kg_policy_error *e = c->err;
	int depth = c->depth < PATH_DEPTH_MAX ? c->depth : PATH_DEPTH_MAX;
	va_list ap;
	size_t off;

	if (!e)
		return -1;
	off = kgp_locate(c->src, c->len, c->path, depth);
	kgp_offset_to_linecol(c->src, c->len, off, &e->line, &e->column);
	e->rule_id[0] = '\0';
	if (c->rule_id)
		kg_strlcpy(e->rule_id, c->rule_id, sizeof(e->rule_id));
	format_field(c, c->rule_id ? c->field_base : 0, e->field, sizeof(e->field));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	defuse_controls(e->message, sizeof(e->message));
	return -1;
}

int kgp_oom(struct kgp_ctx *c)
{
	return kgp_perr(c, "out of memory");
}

void kg_policy_error_format(const struct kg_policy_error *err, char *buf, size_t len)
{
	char pos[64] = "", rule[KG_ID_MAX + 16] = "", field[96] = "";

	if (!buf || !len)
		return;
	if (err->line > 0)
		snprintf(pos, sizeof(pos), ":%d:%d", err->line, err->column);
	if (err->rule_id[0])
		snprintf(rule, sizeof(rule), " rule '%s':", err->rule_id);
	if (err->field[0])
		snprintf(field, sizeof(field), " field '%s':", err->field);
	snprintf(buf, len, "%s%s:%s%s %s", err->file[0] ? err->file : "<policy>",
		 pos, rule, field, err->message);
}

/* ---- typed getters --------------------------------------------------------
 * Each pushes the member name, so errors point at the value.
 */

const char *kgp_json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

int kgp_expect_type(struct kgp_ctx *c, const json_t *v, json_type t, const char *what)
{
	if (json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v)))
		return 0;
	return kgp_perr(c, "expected %s, got %s", what, kgp_json_type_name(v));
}

int kgp_check_keys(struct kgp_ctx *c, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const char *const *a;
		bool known = false;

		for (a = allowed; *a; a++)
			if (!strcmp(*a, key))
				known = true;
		if (!known) {
			int r;

			kgp_push_key(c, key);
			r = kgp_perr(c, "unknown field '%s'", key);
			kgp_pop(c);
			return r;
		}
	}
	return 0;
}

int kgp_require(struct kgp_ctx *c, json_t *obj, const char *key, json_t **out)
{
	*out = json_object_get(obj, key);
	if (*out)
		return 0;
	kgp_push_key(c, key);
	kgp_perr(c, "missing required field '%s'", key);
	kgp_pop(c);
	return -1;
}

/* The first control character of s as a code point (C0, DEL, or C1
 * U+0080..U+009F, which terminals act on just like C0), 0 when none.
 * Strings come from jansson, so they are valid UTF-8: a C1 control is the
 * two bytes 0xc2 0x80..0x9f. */
static unsigned int control_char(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return *p;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return p[1];
	}
	return 0;
}

bool kgp_has_control(const char *s)
{
	return control_char(s) != 0;
}

/* "contains a control character (U+0085)" */
int kgp_perr_control(struct kgp_ctx *c, const char *what, const char *s)
{
	return kgp_perr(c, "%s a control character (U+%04X): control characters are not allowed",
			what, control_char(s));
}

/* optional string member; *out = NULL when absent */
int kgp_get_string(struct kgp_ctx *c, json_t *obj, const char *key, const char **out,
		   size_t maxlen)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	*out = NULL;
	if (!v)
		return 0;
	kgp_push_key(c, key);
	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		r = -1;
	else if (json_string_length(v) > maxlen)
		r = kgp_perr(c, "longer than %zu bytes", maxlen);
	else if (kgp_has_control(json_string_value(v)))
		r = kgp_perr_control(c, "contains", json_string_value(v));
	else
		*out = json_string_value(v);
	kgp_pop(c);
	return r;
}

/* an integer value in [min, max] */
int kgp_value_uint(struct kgp_ctx *c, json_t *v, uint64_t min, uint64_t max, uint64_t *out)
{
	json_int_t i;

	if (kgp_expect_type(c, v, JSON_INTEGER, "an integer"))
		return -1;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return kgp_perr(c, "%lld out of range (%llu-%llu)", (long long)i,
				(unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)i;
	return 0;
}

/* optional integer member; *out untouched when absent */
int kgp_get_uint(struct kgp_ctx *c, json_t *obj, const char *key, uint64_t min,
		 uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	int r;

	if (!v)
		return 0;
	kgp_push_key(c, key);
	r = kgp_value_uint(c, v, min, max, out);
	kgp_pop(c);
	return r;
}

int kgp_get_bool(struct kgp_ctx *c, json_t *obj, const char *key, bool *out)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	if (!v)
		return 0;
	kgp_push_key(c, key);
	if (kgp_expect_type(c, v, JSON_TRUE, "true or false"))
		r = -1;
	else
		*out = json_is_true(v);
	kgp_pop(c);
	return r;
}

/* an optional object member, type checked */
int kgp_get_object(struct kgp_ctx *c, json_t *obj, const char *key, json_t **out)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	*out = NULL;
	if (!v)
		return 0;
	kgp_push_key(c, key);
	if (kgp_expect_type(c, v, JSON_OBJECT, "an object"))
		r = -1;
	else
		*out = v;
	kgp_pop(c);
	return r;
}

/* an optional non-empty array member, type checked (current path: the array) */
int kgp_get_array(struct kgp_ctx *c, json_t *obj, const char *key, json_t **out, size_t max)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	*out = NULL;
	if (!v)
		return 0;
	kgp_push_key(c, key);
	if (kgp_expect_type(c, v, JSON_ARRAY, "an array"))
		r = -1;
	else if (json_array_size(v) == 0)
		r = kgp_perr(c, "empty list (omit '%s' instead)", key);
	else if (json_array_size(v) > max)
		r = kgp_perr(c, "too many entries (%zu > %zu)", json_array_size(v), max);
	else
		*out = v;
	kgp_pop(c);
	return r;
}

/* decision named by a string value, restricted to `allowed` (bit mask) */
int kgp_value_decision(struct kgp_ctx *c, json_t *v, uint32_t allowed, const char *what,
		       enum kg_decision *out)
{
	enum kg_decision d;
	char list[256] = "";
	int k;

	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	for (k = KG_DEC_ALLOW; k < KG_DEC_MAX; k++) {
		if (!(allowed & (1u << k)))
			continue;
		if (list[0])
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, kg_decision_name(k), sizeof(list) - strlen(list) - 1);
	}
	if (kg_decision_parse(json_string_value(v), &d))
		return kgp_perr(c, "unknown decision '%s' (expected one of %s)",
				json_string_value(v), list);
	if (!(allowed & (1u << d))) {
		if (d == KG_DEC_COOLDOWN)
			return kgp_perr(c, "decision 'cooldown' cannot be used in a rule "
					   "(configure the top-level 'cooldown' object)");
		return kgp_perr(c, "decision '%s' is not valid for %s (expected one of %s)",
				kg_decision_name(d), what, list);
	}
	*out = d;
	return 0;
}

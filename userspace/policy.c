// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy.c - parse and validate a kgate policy (JSON, version 1) into
 * struct kg_policy_doc.  The language is documented in policies/README.md
 * and policies/schema.json; this file is the authority on what is accepted.
 *
 * jansson does the parsing (duplicate keys rejected, invalid UTF-8 rejected,
 * syntax errors with line/column).  jansson keeps no positions for values,
 * so semantic errors are located by walking the (already validated) source
 * text along the JSON path of the offending value: see locate() below.  That
 * walker never interprets values, it only skips over them.
 */
#include "policy.h"
#include "common.h"
#include "dns/match.h"
#include "dns/names.h"
#include "kernel/caps.h"
#include "kernel/outside.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- names ------------------------------------------------------------- */

static const char *const decision_names[KG_DEC_MAX] = {
	[KG_DEC_NONE] = "none",
	[KG_DEC_ALLOW] = "allow",
	[KG_DEC_AUDIT] = "audit",
	[KG_DEC_DENY] = "deny",
	[KG_DEC_REQUIRE_APPROVAL] = "require_approval",
	[KG_DEC_THROTTLE] = "throttle",
	[KG_DEC_COOLDOWN] = "cooldown",
	[KG_DEC_ALLOW_WITH_CONSTRAINTS] = "allow_with_constraints",
	[KG_DEC_NO_OP] = "no_op",
};

const char *kg_decision_name(enum kg_decision d)
{
	if ((unsigned int)d < KG_DEC_MAX && decision_names[d])
		return decision_names[d];
	return "unknown";
}

int kg_decision_parse(const char *s, enum kg_decision *out)
{
	int d;

	if (!s)
		return -1;
	for (d = KG_DEC_ALLOW; d < KG_DEC_MAX; d++) {
		if (!strcmp(s, decision_names[d])) {
			*out = d;
			return 0;
		}
	}
	return -1;
}

static const char *const op_names[KG_OP_MAX] = {
	[KG_OP_READ] = "read",
	[KG_OP_WRITE] = "write",
	[KG_OP_CREATE] = "create",
	[KG_OP_UNLINK] = "unlink",
	[KG_OP_RENAME] = "rename",
	[KG_OP_LINK] = "link",
	[KG_OP_EXEC] = "exec",
	[KG_OP_UNIX_CONNECT] = "unix_connect",
	[KG_OP_NET_CONNECT] = "net_connect",
	[KG_OP_NET_SEND] = "net_send",
	[KG_OP_SOCKET_CREATE] = "socket_create",
	[KG_OP_BPF] = "bpf",
	[KG_OP_PTRACE] = "ptrace",
	[KG_OP_SIGNAL] = "signal",
	[KG_OP_MOUNT] = "mount",
	[KG_OP_USERNS] = "userns",
	[KG_OP_MODULE] = "module",
	[KG_OP_CGROUP_ESCAPE] = "cgroup_escape",
	[KG_OP_SYSCALL] = "syscall",
	[KG_OP_ADMISSION] = "admission",
	[KG_OP_KGATE_STATE] = "kgate_state",
	[KG_OP_NET_BIND] = "net_bind",
	[KG_OP_SYSTEM] = "system",
};

const char *kg_op_name(enum kg_op op)
{
	if ((unsigned int)op < KG_OP_MAX && op_names[op])
		return op_names[op];
	return "unknown";
}

const char *kg_class_name(enum kg_class c)
{
	static const char *const names[KG_CLASS_MAX] = {
		[KG_CLASS_FILE] = "file",
		[KG_CLASS_EXEC] = "exec",
		[KG_CLASS_NET] = "net",
		[KG_CLASS_UNIX] = "unix",
	};

	if ((unsigned int)c < KG_CLASS_MAX)
		return names[c];
	return "unknown";
}

const char *kg_rule_kind_name(enum kg_rule_kind k)
{
	switch (k) {
	case KG_RULE_FILE: return "file";
	case KG_RULE_EXEC: return "exec";
	case KG_RULE_NET: return "net";
	case KG_RULE_HOST: return "net";
	case KG_RULE_UNIX: return "unix";
	case KG_RULE_SOCKET: return "socket";
	case KG_RULE_SYSCALL: return "syscall";
	}
	return "unknown";
}

const struct kg_rule *kg_policy_rule_by_num(const struct kg_policy_doc *doc, uint32_t num)
{
	if (!doc || num == 0 || num > doc->nrules)
		return NULL;
	return &doc->rules[num - 1];
}

/* ---- source positions ----------------------------------------------------
 * The text has been accepted by jansson, so it is valid JSON; these helpers
 * still bound every access by the length.
 */

struct comp {			/* one step of a JSON path */
	const char *key;	/* object member, or NULL for an array index */
	size_t index;
};

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* i at the opening quote; returns the index after the closing quote */
static size_t skip_string(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n;
}

/* i at the start of a value; returns the index just after it */
static size_t skip_value(const char *s, size_t n, size_t i)
{
	size_t depth = 0;

	while (i < n) {
		char ch = s[i];

		if (ch == '"') {
			i = skip_string(s, n, i);
			if (!depth)
				return i;
			continue;
		}
		if (ch == '{' || ch == '[') {
			depth++;
		} else if (ch == '}' || ch == ']') {
			if (!depth)
				return i;	/* end of the enclosing container */
			if (--depth == 0)
				return i + 1;
		} else if (!depth && (ch == ',' || ch == ' ' || ch == '\t' ||
				      ch == '\n' || ch == '\r')) {
			return i;		/* end of a scalar */
		}
		i++;
	}
	return n;
}

static bool raw_key_is(const char *s, size_t start, size_t end, const char *key)
{
	size_t klen = strlen(key);

	/* start..end spans the quotes; escaped keys never match (rare) */
	return end - start == klen + 2 && !memcmp(s + start + 1, key, klen);
}

/* Step into the member `key` of the object at i; 0 if absent. */
static bool step_key(const char *s, size_t n, size_t *pi, const char *key)
{
	size_t i = *pi;

	if (i >= n || s[i] != '{')
		return false;
	i = skip_ws(s, n, i + 1);
	while (i < n && s[i] == '"') {
		size_t kstart = i, kend = skip_string(s, n, i);

		i = skip_ws(s, n, kend);
		if (i >= n || s[i] != ':')
			return false;
		i = skip_ws(s, n, i + 1);
		if (raw_key_is(s, kstart, kend, key)) {
			*pi = i;
			return true;
		}
		i = skip_ws(s, n, skip_value(s, n, i));
		if (i < n && s[i] == ',')
			i = skip_ws(s, n, i + 1);
	}
	return false;
}

static bool step_index(const char *s, size_t n, size_t *pi, size_t index)
{
	size_t i = *pi, k;

	if (i >= n || s[i] != '[')
		return false;
	i = skip_ws(s, n, i + 1);
	for (k = 0; i < n && s[i] != ']'; k++) {
		if (k == index) {
			*pi = i;
			return true;
		}
		i = skip_ws(s, n, skip_value(s, n, i));
		if (i < n && s[i] == ',')
			i = skip_ws(s, n, i + 1);
	}
	return false;
}

/* Offset of the value at `path`, or of the deepest part of it that exists. */
static size_t locate(const char *s, size_t n, const struct comp *path, int depth)
{
	size_t i = skip_ws(s, n, 0);
	int k;

	for (k = 0; k < depth; k++) {
		bool ok = path[k].key ? step_key(s, n, &i, path[k].key)
				      : step_index(s, n, &i, path[k].index);
		if (!ok)
			break;
	}
	return i;
}

/* 1-based line and character (not byte) column of an offset */
static void offset_to_linecol(const char *s, size_t n, size_t off, int *line, int *col)
{
	size_t i;
	int l = 1, c = 1;

	for (i = 0; i < off && i < n; i++) {
		if (s[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)s[i] & 0xc0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/* Incremental variant for increasing offsets (rule positions). */
struct linecol_cursor {
	size_t off;
	int line, col;
};

static void cursor_advance(const char *s, size_t n, struct linecol_cursor *cur, size_t off)
{
	for (; cur->off < off && cur->off < n; cur->off++) {
		if (s[cur->off] == '\n') {
			cur->line++;
			cur->col = 1;
		} else if (((unsigned char)s[cur->off] & 0xc0) != 0x80) {
			cur->col++;
		}
	}
}

/* ---- validation context -------------------------------------------------- */

#define PATH_DEPTH_MAX 12

struct ctx {
	const char *src;
	size_t len;
	const char *home;		/* for ~ expansion, may be NULL */
	struct kg_policy_error *err;
	struct kg_policy_doc *doc;
	struct comp path[PATH_DEPTH_MAX];
	int depth;			/* may exceed PATH_DEPTH_MAX: then not recorded */
	int field_base;			/* path[field_base..] names the field */
	const char *rule_id;		/* id of the rule being parsed, if known */
	const struct kg_rule *socket_rule;
};

static void push_key(struct ctx *c, const char *key)
{
	if (c->depth < PATH_DEPTH_MAX)
		c->path[c->depth] = (struct comp){ .key = key };
	c->depth++;
}

static void push_index(struct ctx *c, size_t index)
{
	if (c->depth < PATH_DEPTH_MAX)
		c->path[c->depth] = (struct comp){ .key = NULL, .index = index };
	c->depth++;
}

static void pop(struct ctx *c)
{
	c->depth--;
}

static void format_field(const struct ctx *c, int base, char *buf, size_t len)
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

static int perr(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct ctx *c, const char *fmt, ...)
{
	struct kg_policy_error *e = c->err;
	int depth = c->depth < PATH_DEPTH_MAX ? c->depth : PATH_DEPTH_MAX;
	va_list ap;
	size_t off;

	if (!e)
		return -1;
	off = locate(c->src, c->len, c->path, depth);
	offset_to_linecol(c->src, c->len, off, &e->line, &e->column);
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

static int oom(struct ctx *c)
{
	return perr(c, "out of memory");
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

static const char *json_type_name(const json_t *v)
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

static int expect_type(struct ctx *c, const json_t *v, json_type t, const char *what)
{
	if (json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v)))
		return 0;
	return perr(c, "expected %s, got %s", what, json_type_name(v));
}

static int check_keys(struct ctx *c, json_t *obj, const char *const *allowed)
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

			push_key(c, key);
			r = perr(c, "unknown field '%s'", key);
			pop(c);
			return r;
		}
	}
	return 0;
}

static int require(struct ctx *c, json_t *obj, const char *key, json_t **out)
{
	*out = json_object_get(obj, key);
	if (*out)
		return 0;
	push_key(c, key);
	perr(c, "missing required field '%s'", key);
	pop(c);
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

static bool has_control(const char *s)
{
	return control_char(s) != 0;
}

/* "contains a control character (U+0085)" */
static int perr_control(struct ctx *c, const char *what, const char *s)
{
	return perr(c, "%s a control character (U+%04X): control characters are not allowed",
		    what, control_char(s));
}

/* optional string member; *out = NULL when absent */
static int get_string(struct ctx *c, json_t *obj, const char *key, const char **out,
		      size_t maxlen)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	*out = NULL;
	if (!v)
		return 0;
	push_key(c, key);
	if (expect_type(c, v, JSON_STRING, "a string"))
		r = -1;
	else if (json_string_length(v) > maxlen)
		r = perr(c, "longer than %zu bytes", maxlen);
	else if (has_control(json_string_value(v)))
		r = perr_control(c, "contains", json_string_value(v));
	else
		*out = json_string_value(v);
	pop(c);
	return r;
}

/* an integer value in [min, max] */
static int value_uint(struct ctx *c, json_t *v, uint64_t min, uint64_t max, uint64_t *out)
{
	json_int_t i;

	if (expect_type(c, v, JSON_INTEGER, "an integer"))
		return -1;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return perr(c, "%lld out of range (%llu-%llu)", (long long)i,
			    (unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)i;
	return 0;
}

/* optional integer member; *out untouched when absent */
static int get_uint(struct ctx *c, json_t *obj, const char *key, uint64_t min,
		    uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	int r;

	if (!v)
		return 0;
	push_key(c, key);
	r = value_uint(c, v, min, max, out);
	pop(c);
	return r;
}

static int get_bool(struct ctx *c, json_t *obj, const char *key, bool *out)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	if (!v)
		return 0;
	push_key(c, key);
	if (expect_type(c, v, JSON_TRUE, "true or false"))
		r = -1;
	else
		*out = json_is_true(v);
	pop(c);
	return r;
}

/* an optional object member, type checked */
static int get_object(struct ctx *c, json_t *obj, const char *key, json_t **out)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	*out = NULL;
	if (!v)
		return 0;
	push_key(c, key);
	if (expect_type(c, v, JSON_OBJECT, "an object"))
		r = -1;
	else
		*out = v;
	pop(c);
	return r;
}

/* an optional non-empty array member, type checked (current path: the array) */
static int get_array(struct ctx *c, json_t *obj, const char *key, json_t **out, size_t max)
{
	json_t *v = json_object_get(obj, key);
	int r = 0;

	*out = NULL;
	if (!v)
		return 0;
	push_key(c, key);
	if (expect_type(c, v, JSON_ARRAY, "an array"))
		r = -1;
	else if (json_array_size(v) == 0)
		r = perr(c, "empty list (omit '%s' instead)", key);
	else if (json_array_size(v) > max)
		r = perr(c, "too many entries (%zu > %zu)", json_array_size(v), max);
	else
		*out = v;
	pop(c);
	return r;
}

/* decision named by a string value, restricted to `allowed` (bit mask) */
static int value_decision(struct ctx *c, json_t *v, uint32_t allowed, const char *what,
			  enum kg_decision *out)
{
	enum kg_decision d;
	char list[256] = "";
	int k;

	if (expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	for (k = KG_DEC_ALLOW; k < KG_DEC_MAX; k++) {
		if (!(allowed & (1u << k)))
			continue;
		if (list[0])
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, decision_names[k], sizeof(list) - strlen(list) - 1);
	}
	if (kg_decision_parse(json_string_value(v), &d))
		return perr(c, "unknown decision '%s' (expected one of %s)",
			    json_string_value(v), list);
	if (!(allowed & (1u << d))) {
		if (d == KG_DEC_COOLDOWN)
			return perr(c, "decision 'cooldown' cannot be used in a rule "
				       "(configure the top-level 'cooldown' object)");
		return perr(c, "decision '%s' is not valid for %s (expected one of %s)",
			    kg_decision_name(d), what, list);
	}
	*out = d;
	return 0;
}

#define DEC_BIT(d) (1u << (d))
#define DECS_RUNTIME_DEFAULT (DEC_BIT(KG_DEC_ALLOW) | DEC_BIT(KG_DEC_AUDIT) | DEC_BIT(KG_DEC_DENY))
#define DECS_ADMISSION_DEFAULT (DECS_RUNTIME_DEFAULT | DEC_BIT(KG_DEC_REQUIRE_APPROVAL))
#define DECS_ADMISSION (DECS_ADMISSION_DEFAULT | DEC_BIT(KG_DEC_THROTTLE) | \
			DEC_BIT(KG_DEC_ALLOW_WITH_CONSTRAINTS))
#define DECS_OBJECT (DECS_ADMISSION_DEFAULT | DEC_BIT(KG_DEC_THROTTLE))
#define DECS_SOCKET (DEC_BIT(KG_DEC_AUDIT) | DEC_BIT(KG_DEC_DENY))
#define DECS_SYSCALL (DECS_RUNTIME_DEFAULT | DEC_BIT(KG_DEC_NO_OP))

/* ---- small value parsers ----------------------------------------------- */

static int value_id(struct ctx *c, json_t *v, char *out, const char *what)
{
	const char *s;
	size_t i, n;

	if (expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > KG_ID_MAX)
		return perr(c, "%s must be 1-%d characters long", what, KG_ID_MAX);
	if (!isalnum((unsigned char)s[0]))
		return perr(c, "%s '%s' must start with a letter or digit", what, s);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x80 || !(isalnum(ch) || ch == '.' || ch == '_' || ch == '-'))
			return perr(c, "%s contains an invalid character at offset %zu "
				       "(allowed: letters, digits, '.', '_', '-')", what, i);
	}
	memcpy(out, s, n + 1);
	return 0;
}

/* "~/x" -> home + "/x"; validates absoluteness and canonical form. */
static int value_path(struct ctx *c, json_t *v, char **out)
{
	const char *s, *rel, *home = NULL;
	size_t n, i, homelen = 0;
	char *p;

	if (expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return perr(c, "empty path");
	if (strlen(s) != n)
		return perr(c, "path contains a NUL character");
	if (has_control(s))
		return perr_control(c, "path contains", s);
	if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
		return perr(c, "path has leading or trailing whitespace");
	if (s[0] == '~') {
		if (s[1] != '/')
			return perr(c, "'~' is only allowed as a leading '~/' (no ~user)");
		home = c->home ? c->home : getenv("HOME");
		if (!home || home[0] != '/')
			return perr(c, "path uses '~' but no absolute home directory is "
				       "known (set HOME or pass --home)");
		homelen = strlen(home);
		while (homelen > 1 && home[homelen - 1] == '/')
			homelen--;
		if (homelen == 1)
			homelen = 0;	/* home "/" */
		rel = s + 1;
	} else if (s[0] == '/') {
		rel = s;
	} else {
		return perr(c, "path must be absolute (start with '/' or '~/')");
	}
	/* canonical: no empty, "." or ".." components (a trailing '/' is fine) */
	for (i = 0; rel[i]; ) {
		size_t j = i + 1, clen;

		while (rel[j] && rel[j] != '/')
			j++;
		clen = j - i - 1;
		if (clen == 0 && rel[j])
			return perr(c, "path is not canonical: contains '//'");
		if (clen == 1 && rel[i + 1] == '.')
			return perr(c, "path is not canonical: contains a '.' component");
		if (clen == 2 && rel[i + 1] == '.' && rel[i + 2] == '.')
			return perr(c, "path is not canonical: contains a '..' component");
		i = j;
	}
	n = strlen(rel);
	while (n > 1 && rel[n - 1] == '/')
		n--;			/* "/a/b/" names the same object as "/a/b" */
	if (homelen && n == 1)
		n = 0;			/* "~/" is the home directory itself */
	if (homelen + n >= PATH_MAX)
		return perr(c, "path longer than PATH_MAX (%d)", PATH_MAX);
	p = malloc(homelen + n + 1);
	if (!p)
		return oom(c);
	memcpy(p, home ? home : "", homelen);
	memcpy(p + homelen, rel, n);
	p[homelen + n] = '\0';
	*out = p;
	return 0;
}

/* a list of names mapped to bits */
struct name_bits {
	const char *name;
	uint64_t bits;
};

static int value_name_bits(struct ctx *c, json_t *arr, const struct name_bits *table,
			   const char *what, uint64_t *out)
{
	json_t *v;
	size_t i;

	*out = 0;
	json_array_foreach(arr, i, v) {
		const struct name_bits *t;
		char list[256] = "";
		int r = 0;

		push_index(c, i);
		if (expect_type(c, v, JSON_STRING, "a string")) {
			r = -1;
		} else {
			for (t = table; t->name; t++) {
				if (!strcmp(t->name, json_string_value(v)))
					break;
				if (list[0])
					strncat(list, ", ", sizeof(list) - strlen(list) - 1);
				strncat(list, t->name, sizeof(list) - strlen(list) - 1);
			}
			if (t->name)
				*out |= t->bits;
			else
				r = perr(c, "unknown %s '%s' (expected one of %s)", what,
					 json_string_value(v), list);
		}
		pop(c);
		if (r)
			return r;
	}
	return 0;
}

static const struct name_bits file_ops[] = {
	{ "read", KG_OP_BIT(KG_OP_READ) },
	{ "write", KG_OP_BIT(KG_OP_WRITE) },
	{ "create", KG_OP_BIT(KG_OP_CREATE) },
	{ "unlink", KG_OP_BIT(KG_OP_UNLINK) },
	{ "rename", KG_OP_BIT(KG_OP_RENAME) },
	{ "link", KG_OP_BIT(KG_OP_LINK) },
	{ "exec", KG_OP_BIT(KG_OP_EXEC) },
	{ "mkdir", KG_OP_BIT(KG_OP_CREATE) },
	{ "rmdir", KG_OP_BIT(KG_OP_UNLINK) },
	{ "truncate", KG_OP_BIT(KG_OP_WRITE) },
	{ NULL, 0 },
};

static const struct name_bits net_ops[] = {
	{ "connect", KG_NET_OP_CONNECT },
	{ "send", KG_NET_OP_SEND },
	{ "bind", KG_NET_OP_BIND },
	{ NULL, 0 },
};

#define FAM(af) (1ull << (af))
static const struct name_bits socket_families[] = {
	{ "unix", FAM(AF_UNIX) },
	{ "inet", FAM(AF_INET) },
	{ "inet6", FAM(AF_INET6) },
	{ "netlink", FAM(AF_NETLINK) },
	{ "packet", FAM(AF_PACKET) },
	{ "vsock", FAM(AF_VSOCK) },
	{ "bluetooth", FAM(AF_BLUETOOTH) },
	{ "can", FAM(AF_CAN) },
	{ "alg", FAM(AF_ALG) },
	{ "key", FAM(AF_KEY) },
	{ "tipc", FAM(AF_TIPC) },
	{ "rds", FAM(AF_RDS) },
	{ "llc", FAM(AF_LLC) },
	{ "xdp", FAM(AF_XDP) },
	{ "appletalk", FAM(AF_APPLETALK) },
	{ "x25", FAM(AF_X25) },
	{ "ax25", FAM(AF_AX25) },
	{ "qipcrtr", FAM(AF_QIPCRTR) },
	{ "smc", FAM(AF_SMC) },
	{ "mctp", FAM(AF_MCTP) },
	{ NULL, 0 },
};

static int parse_ops(struct ctx *c, json_t *obj, const char *key,
		     const struct name_bits *table, bool required, uint32_t *out)
{
	json_t *arr;
	uint64_t bits;
	int r;

	if (required && !json_object_get(obj, key)) {
		push_key(c, key);
		r = perr(c, "missing required field '%s'", key);
		pop(c);
		return r;
	}
	if (get_array(c, obj, key, &arr, 64))
		return -1;
	if (!arr)
		return 0;
	push_key(c, key);
	r = value_name_bits(c, arr, table, "op", &bits);
	pop(c);
	if (!r)
		*out = (uint32_t)bits;
	return r;
}

/* "a.b.c.d/len", "x::y/len", or a bare address (host route) */
static int value_cidr(struct ctx *c, json_t *v, struct kg_rule *rule)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *s, *slash;
	unsigned int max, len = 0, i;
	uint8_t bytes[16] = { 0 };
	bool v6;

	if (expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	s = json_string_value(v);
	slash = strchr(s, '/');
	if ((size_t)((slash ? slash : s + strlen(s)) - s) >= sizeof(addr))
		return perr(c, "invalid CIDR '%s'", s);
	memcpy(addr, s, (size_t)((slash ? slash : s + strlen(s)) - s));
	addr[(slash ? slash : s + strlen(s)) - s] = '\0';
	v6 = strchr(addr, ':') != NULL;
	max = v6 ? 128 : 32;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, v6 ? bytes : bytes + 12) != 1)
		return perr(c, "invalid %s address '%s' in CIDR '%s'", v6 ? "IPv6" : "IPv4",
			    addr, s);
	if (slash) {
		const char *p = slash + 1;

		if (!*p || (p[0] == '0' && p[1]) || strspn(p, "0123456789") != strlen(p) ||
		    strlen(p) > 3)
			return perr(c, "invalid prefix length in CIDR '%s'", s);
		len = (unsigned int)atoi(p);
		if (len > max)
			return perr(c, "prefix length /%u too long for %s in CIDR '%s' (max %u)",
				    len, v6 ? "IPv6" : "IPv4", s, max);
	} else {
		len = max;
	}
	if (!v6) {
		bytes[10] = 0xff;	/* IPv4-mapped: ::ffff:a.b.c.d */
		bytes[11] = 0xff;
		len += 96;
	}
	for (i = len; i < 128; i++)
		if (bytes[i / 8] & (0x80 >> (i % 8)))
			return perr(c, "host bits set in CIDR '%s' (the network address "
				       "must have zeros after the prefix)", s);
	memcpy(rule->addr, bytes, 16);
	rule->prefixlen = len;
	rule->family = v6 ? AF_INET6 : AF_INET;
	return 0;
}

static int parse_port_number(const char *s, size_t n, unsigned long *out)
{
	size_t i;
	unsigned long v = 0;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* 443 or "8000-8080" (or "443"); port 0 is never valid */
static int value_port(struct ctx *c, json_t *v, uint16_t *lo, uint16_t *hi)
{
	unsigned long a, b;

	if (json_is_integer(v)) {
		json_int_t p = json_integer_value(v);

		if (p < 1 || p > 65535)
			return perr(c, "port %lld out of range (1-65535)", (long long)p);
		*lo = *hi = (uint16_t)p;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v), *dash = strchr(s, '-');

		if (dash ? parse_port_number(s, (size_t)(dash - s), &a) ||
			   parse_port_number(dash + 1, strlen(dash + 1), &b)
			 : parse_port_number(s, strlen(s), &a))
			return perr(c, "invalid port range '%s' (expected \"LO-HI\")", s);
		if (!dash)
			b = a;
		if (a < 1 || a > 65535 || b < 1 || b > 65535)
			return perr(c, "port range '%s' out of range (1-65535)", s);
		if (a > b)
			return perr(c, "reversed port range '%s'", s);
		*lo = (uint16_t)a;
		*hi = (uint16_t)b;
		return 0;
	}
	return perr(c, "expected a port number or a \"LO-HI\" string, got %s",
		    json_type_name(v));
}

/* integer or "512M"-style string; K/M/G/T are powers of 1024 */
static int value_bytes(struct ctx *c, json_t *v, uint64_t *out)
{
	const char *s;
	char *end;
	unsigned long long n;
	unsigned int shift = 0;

	if (json_is_integer(v))
		return value_uint(c, v, 1, UINT64_MAX >> 1, out);
	if (!json_is_string(v))
		return perr(c, "expected bytes as an integer or a string like \"512M\", got %s",
			    json_type_name(v));
	s = json_string_value(v);
	if (!isdigit((unsigned char)s[0]))
		return perr(c, "invalid size '%s' (expected digits with an optional K, M, G "
			       "or T suffix)", s);
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return perr(c, "size '%s' too large", s);
	switch (*end) {
	case '\0': shift = 0; break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default:
		return perr(c, "invalid size '%s' (expected digits with an optional K, M, G "
			       "or T suffix)", s);
	}
	if (*end && end[1])
		return perr(c, "invalid size '%s' (expected digits with an optional K, M, G "
			       "or T suffix)", s);
	if (n == 0)
		return perr(c, "size must be greater than zero");
	if (n > (UINT64_MAX >> 1) >> shift)
		return perr(c, "size '%s' too large", s);
	*out = (uint64_t)n << shift;
	return 0;
}

/* ---- objects ------------------------------------------------------------- */

#define MAX_SECONDS (10ull * 365 * 86400)

static int parse_constraints(struct ctx *c, json_t *obj, struct kg_constraints *out)
{
	static const char *const keys[] = { "max_runtime_sec", "max_procs", "memory_max",
					    "max_retries", NULL };
	json_t *v;

	if (check_keys(c, obj, keys))
		return -1;
	if (json_object_size(obj) == 0)
		return perr(c, "empty constraints (give at least one limit)");
	if (get_uint(c, obj, "max_runtime_sec", 1, MAX_SECONDS, &out->max_runtime_sec) ||
	    get_uint(c, obj, "max_procs", 1, 4194304, &out->max_procs) ||
	    get_uint(c, obj, "max_retries", 0, 100, &out->max_retries))
		return -1;
	v = json_object_get(obj, "memory_max");
	if (v) {
		int r;

		push_key(c, "memory_max");
		r = value_bytes(c, v, &out->memory_max);
		pop(c);
		if (r)
			return r;
	}
	out->present = true;
	return 0;
}

static int parse_throttle(struct ctx *c, json_t *obj, uint64_t *rate, uint64_t *burst)
{
	static const char *const keys[] = { "rate_per_sec", "burst", NULL };
	json_t *v;

	if (check_keys(c, obj, keys) || require(c, obj, "rate_per_sec", &v) ||
	    require(c, obj, "burst", &v) ||
	    get_uint(c, obj, "rate_per_sec", 1, 1000000000, rate) ||
	    get_uint(c, obj, "burst", 1, 1000000000, burst))
		return -1;
	return 0;
}

/* principals lists may be empty ("nobody by group"); match lists may not */
static int parse_id_list(struct ctx *c, json_t *obj, const char *key, uint32_t **out,
			 size_t *nout, bool allow_empty)
{
	json_t *arr, *v = json_object_get(obj, key);
	size_t i;

	if (allow_empty && json_is_array(v) && json_array_size(v) == 0)
		return 0;
	if (get_array(c, obj, key, &arr, 65536))
		return -1;
	if (!arr)
		return 0;
	*out = calloc(json_array_size(arr), sizeof(**out));
	if (!*out)
		return oom(c);
	push_key(c, key);
	json_array_foreach(arr, i, v) {
		uint64_t id;
		int r;

		push_index(c, i);
		r = value_uint(c, v, 0, UINT32_MAX - 1, &id);
		pop(c);
		if (r) {
			pop(c);
			return r;
		}
		(*out)[(*nout)++] = (uint32_t)id;
	}
	pop(c);
	return 0;
}

static int parse_str_list(struct ctx *c, json_t *obj, const char *key, char ***out,
			  size_t *nout)
{
	json_t *arr, *v;
	size_t i;

	if (get_array(c, obj, key, &arr, 65536))
		return -1;
	if (!arr)
		return 0;
	*out = calloc(json_array_size(arr), sizeof(**out));
	if (!*out)
		return oom(c);
	push_key(c, key);
	json_array_foreach(arr, i, v) {
		int r = 0;

		push_index(c, i);
		if (expect_type(c, v, JSON_STRING, "a string"))
			r = -1;
		else if (json_string_length(v) == 0 || json_string_length(v) > 255)
			r = perr(c, "must be 1-255 bytes long");
		else if (has_control(json_string_value(v)))
			r = perr_control(c, "contains", json_string_value(v));
		else if (!((*out)[*nout] = strdup(json_string_value(v))))
			r = oom(c);
		else
			(*nout)++;
		pop(c);
		if (r) {
			pop(c);
			return r;
		}
	}
	pop(c);
	return 0;
}

static int parse_principals(struct ctx *c, json_t *obj, struct kg_principals *out)
{
	static const char *const keys[] = { "uids", "gids", NULL };

	if (check_keys(c, obj, keys) ||
	    parse_id_list(c, obj, "uids", &out->uids, &out->nuids, true) ||
	    parse_id_list(c, obj, "gids", &out->gids, &out->ngids, true))
		return -1;
	return 0;
}

static int set_principals_root(struct ctx *c, struct kg_principals *p)
{
	p->uids = calloc(1, sizeof(*p->uids));
	if (!p->uids)
		return oom(c);
	p->nuids = 1;	/* uid 0 */
	return 0;
}

/* optional top-level principals object; absent = root only when root_default */
static int parse_principals_member(struct ctx *c, json_t *obj, const char *key,
				   struct kg_principals *out, bool root_default)
{
	json_t *o;
	int r;

	if (get_object(c, obj, key, &o))
		return -1;
	if (!o)
		return root_default ? set_principals_root(c, out) : 0;
	push_key(c, key);
	r = parse_principals(c, o, out);
	pop(c);
	return r;
}

static int parse_approvals(struct ctx *c, json_t *root)
{
	static const char *const keys[] = { "timeout_sec", "queue_max", "approvers",
					    "allow_self_approval", NULL };
	struct kg_policy_doc *doc = c->doc;
	json_t *o;
	int r;

	doc->approval_timeout_sec = 300;
	doc->approval_queue_max = 64;
	if (get_object(c, root, "approvals", &o))
		return -1;
	if (!o)
		return set_principals_root(c, &doc->approvers);
	push_key(c, "approvals");
	r = check_keys(c, o, keys) ||
	    get_uint(c, o, "timeout_sec", 1, 7 * 86400, &doc->approval_timeout_sec) ||
	    get_uint(c, o, "queue_max", 1, KG_MAX_GRANTS, &doc->approval_queue_max) ||
	    get_bool(c, o, "allow_self_approval", &doc->allow_self_approval) ||
	    parse_principals_member(c, o, "approvers", &doc->approvers, true) ? -1 : 0;
	pop(c);
	return r;
}

static int parse_cooldown(struct ctx *c, json_t *root)
{
	static const char *const keys[] = { "threshold", "window_sec", "duration_sec", NULL };
	struct kg_policy_doc *doc = c->doc;
	uint64_t threshold = 0;
	json_t *o, *v;
	int r;

	if (get_object(c, root, "cooldown", &o))
		return -1;
	if (!o)
		return 0;
	push_key(c, "cooldown");
	r = check_keys(c, o, keys) || require(c, o, "threshold", &v) ||
	    require(c, o, "window_sec", &v) || require(c, o, "duration_sec", &v) ||
	    get_uint(c, o, "threshold", 1, UINT32_MAX, &threshold) ||
	    get_uint(c, o, "window_sec", 1, 86400, &doc->cooldown_window_sec) ||
	    get_uint(c, o, "duration_sec", 1, 86400, &doc->cooldown_sec) ? -1 : 0;
	pop(c);
	doc->cooldown_threshold = (uint32_t)threshold;
	return r;
}

/* system_access: capabilities a job keeps beyond kg_caps_kept (caps.h), and
 * members of the escapes by proxy it may use (outside.h) */
static int parse_system_access(struct ctx *c, json_t *root)
{
	json_t *arr, *v;
	size_t i;
	int r = 0;

	if (get_array(c, root, "system_access", &arr, 64))
		return -1;
	if (!arr)
		return 0;
	push_key(c, "system_access");
	json_array_foreach(arr, i, v) {
		const struct kg_cap_info *ci;
		int cap, mb;

		push_index(c, i);
		if (expect_type(c, v, JSON_STRING, "a string (a capability or a member name)")) {
			r = -1;
		} else if ((mb = kg_out_by_name(json_string_value(v))) >= 0) {
			if (c->doc->outside_grant & (1u << mb))
				r = perr(c, "'%s' is listed twice", json_string_value(v));
			else
				c->doc->outside_grant |= 1u << mb;
		} else if ((cap = kg_cap_by_name(json_string_value(v))) < 0) {
			char list[1024] = "", mlist[512] = "";
			size_t k, off = 0;

			for (k = 0; k < kg_caps_len && off < sizeof(list); k++)
				if (!kg_caps[k].kept)
					off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
								off ? ", " : "", kg_caps[k].name);
			for (k = 0, off = 0; k < kg_out_members_len && off < sizeof(mlist); k++)
				off += (size_t)snprintf(mlist + off, sizeof(mlist) - off, "%s%s",
							off ? ", " : "", kg_out_members[k].name);
			r = has_control(json_string_value(v))
				? perr_control(c, "unknown capability", json_string_value(v))
				: perr(c, "unknown capability '%s' (system_access grants back one of "
				       "the capabilities a job loses: %s; or what only reaches "
				       "outside the job: %s)", json_string_value(v), list, mlist);
		} else if ((ci = kg_cap_info(cap)) && ci->kept) {
			r = perr(c, "'%s' is kept by every job (%s): nothing to grant",
				 json_string_value(v), ci->why);
		} else if (c->doc->system_access & (1ULL << cap)) {
			r = perr(c, "'%s' is listed twice", json_string_value(v));
		} else {
			c->doc->system_access |= 1ULL << cap;
		}
		pop(c);
		if (r)
			break;
	}
	pop(c);
	return r;
}

static int parse_runtime_defaults(struct ctx *c, json_t *root)
{
	static const char *const keys[] = { "file", "exec", "net", "unix", NULL };
	struct kg_policy_doc *doc = c->doc;
	json_t *o;
	int k, r = 0;

	doc->class_default[KG_CLASS_FILE] = KG_DEC_ALLOW;
	doc->class_default[KG_CLASS_EXEC] = KG_DEC_ALLOW;
	doc->class_default[KG_CLASS_NET] = KG_DEC_DENY;
	doc->class_default[KG_CLASS_UNIX] = KG_DEC_ALLOW;
	if (get_object(c, root, "runtime_defaults", &o))
		return -1;
	if (!o)
		return 0;
	push_key(c, "runtime_defaults");
	r = check_keys(c, o, keys);
	for (k = 0; !r && k < KG_CLASS_MAX; k++) {
		json_t *v = json_object_get(o, kg_class_name(k));

		if (!v)
			continue;
		push_key(c, kg_class_name(k));
		r = value_decision(c, v, DECS_RUNTIME_DEFAULT, "a runtime default",
				   &doc->class_default[k]);
		pop(c);
	}
	pop(c);
	return r;
}

/* ---- runtime rules ------------------------------------------------------ */

/* deny/require_approval on an object also refuses moving or unlinking it, so
 * a rule bound to an inode cannot be escaped by renaming or hard-linking it
 * elsewhere (see "Implicit protections" in policies/README.md). */
#define KG_IDENTITY_OPS (KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_LINK) | \
			 KG_OP_BIT(KG_OP_UNLINK))

static bool protects_identity(enum kg_decision d)
{
	return d == KG_DEC_DENY || d == KG_DEC_REQUIRE_APPROVAL;
}

/* path or prefix (exactly one) */
static int parse_path_selector(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	json_t *path = json_object_get(obj, "path"), *prefix = json_object_get(obj, "prefix");
	int r;

	if (path && prefix) {
		push_key(c, "prefix");
		r = perr(c, "give either 'path' or 'prefix', not both");
		pop(c);
		return r;
	}
	if (!path && !prefix)
		return perr(c, "missing required field 'path' or 'prefix'");
	push_key(c, path ? "path" : "prefix");
	r = value_path(c, path ? path : prefix, &rule->path);
	pop(c);
	rule->prefix = !path;
	return r;
}

static int parse_file(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "path", "prefix", "ops", NULL };

	if (check_keys(c, obj, keys) || parse_path_selector(c, obj, rule) ||
	    parse_ops(c, obj, "ops", file_ops, true, &rule->ops))
		return -1;
	return 0;
}

static int parse_exec(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "path", "prefix", NULL };

	if (check_keys(c, obj, keys) || parse_path_selector(c, obj, rule))
		return -1;
	rule->ops = KG_OP_BIT(KG_OP_EXEC);
	return 0;
}

static int parse_net_unix(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const inet_keys[] = { "cidr", "host", "allow_private", "ports",
						 "proto", "ops", NULL };
	json_t *unix_path = json_object_get(obj, "unix");
	json_t *abstract = json_object_get(obj, "unix_abstract");
	const char *const *k;
	const char *name;
	int r;

	for (k = inet_keys; *k; k++) {
		if (json_object_get(obj, *k) || (unix_path && abstract)) {
			push_key(c, unix_path && abstract ? "unix_abstract" : *k);
			r = perr(c, "'%s' cannot be combined with '%s'",
				 unix_path ? "unix" : "unix_abstract",
				 unix_path && abstract ? "unix_abstract" : *k);
			pop(c);
			return r;
		}
	}
	rule->kind = KG_RULE_UNIX;
	rule->ops = KG_OP_BIT(KG_OP_UNIX_CONNECT);
	if (unix_path) {
		push_key(c, "unix");
		r = value_path(c, unix_path, &rule->path);
		pop(c);
		return r;
	}
	push_key(c, "unix_abstract");
	if (expect_type(c, abstract, JSON_STRING, "a string"))
		r = -1;
	else if ((name = json_string_value(abstract))[0] == '\0' ||
		 json_string_length(abstract) >= KG_UNIX_NAME_MAX)
		r = perr(c, "abstract socket name must be 1-%d bytes", KG_UNIX_NAME_MAX - 1);
	else if (strlen(name) != json_string_length(abstract))
		r = perr(c, "abstract socket name contains a NUL character");
	else if (has_control(name))
		r = perr_control(c, "abstract socket name contains", name);
	else if (!(rule->unix_abstract = strdup(name)))
		r = oom(c);
	else
		r = 0;
	pop(c);
	return r;
}

/* ports, proto and ops of an inet rule (cidr or host) */
static int parse_net_ports_proto_ops(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	json_t *v, *ports;
	const char *proto;
	size_t i;
	int r = 0;

	if (get_array(c, obj, "ports", &ports, KG_NET_ENTS))
		return -1;
	if (ports) {
		rule->ports = calloc(json_array_size(ports), sizeof(*rule->ports));
		if (!rule->ports)
			return oom(c);
		push_key(c, "ports");
		json_array_foreach(ports, i, v) {
			push_index(c, i);
			r = value_port(c, v, &rule->ports[i].lo, &rule->ports[i].hi);
			pop(c);
			if (r)
				break;
			rule->nports++;
		}
		pop(c);
		if (r)
			return r;
	}
	if (get_string(c, obj, "proto", &proto, 16))
		return -1;
	if (!proto || !strcmp(proto, "any")) {
		rule->proto = 0;
	} else if (!strcmp(proto, "tcp")) {
		rule->proto = 6;
	} else if (!strcmp(proto, "udp")) {
		rule->proto = 17;
	} else {
		push_key(c, "proto");
		r = perr(c, "unknown proto '%s' (expected one of tcp, udp, any)", proto);
		pop(c);
		return r;
	}
	rule->ops = KG_NET_OP_CONNECT | KG_NET_OP_SEND;
	return parse_ops(c, obj, "ops", net_ops, false, &rule->ops);
}

/* "host": a name or "*.name" (dns/names.h); "allow_private": whether the
 * resolver may learn loopback, private or link-local answers for it */
static int parse_net_host(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	char norm[KG_HOST_MAX + 1], why[256];
	json_t *v = json_object_get(obj, "host"), *priv;
	int r;

	if (json_object_get(obj, "cidr")) {
		push_key(c, "cidr");
		r = perr(c, "'host' cannot be combined with 'cidr' (one selector per rule)");
		pop(c);
		return r;
	}
	rule->kind = KG_RULE_HOST;
	push_key(c, "host");
	if (expect_type(c, v, JSON_STRING, "a string"))
		r = -1;
	else if (strlen(json_string_value(v)) != json_string_length(v))
		r = perr(c, "host name contains a NUL character");
	else if (has_control(json_string_value(v)))
		r = perr_control(c, "host name contains", json_string_value(v));
	else if (kg_host_pattern_normalize(json_string_value(v), norm, why, sizeof(why)))
		r = perr(c, "host name '%s' %s", json_string_value(v), why);
	else if (!(rule->host = strdup(norm)))
		r = oom(c);
	else
		r = 0;
	pop(c);
	if (r)
		return r;
	priv = json_object_get(obj, "allow_private");
	if (priv) {
		push_key(c, "allow_private");
		r = expect_type(c, priv, JSON_TRUE, "true or false");
		pop(c);
		if (r)
			return -1;
		rule->allow_private = json_is_true(priv);
	}
	return parse_net_ports_proto_ops(c, obj, rule);
}

static int parse_net(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "cidr", "host", "allow_private", "ports", "proto",
					    "ops", "unix", "unix_abstract", NULL };
	json_t *v;
	int r;

	if (check_keys(c, obj, keys))
		return -1;
	if (json_object_get(obj, "unix") || json_object_get(obj, "unix_abstract"))
		return parse_net_unix(c, obj, rule);
	if (json_object_get(obj, "host"))
		return parse_net_host(c, obj, rule);
	if (json_object_get(obj, "allow_private")) {
		push_key(c, "allow_private");
		r = perr(c, "'allow_private' is only valid with 'host'");
		pop(c);
		return r;
	}
	if (require(c, obj, "cidr", &v))
		return -1;
	push_key(c, "cidr");
	r = value_cidr(c, v, rule);
	pop(c);
	if (r)
		return r;
	return parse_net_ports_proto_ops(c, obj, rule);
}

static int parse_socket(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "families", "allow_raw", "allow_icmp", NULL };
	json_t *arr;
	int r;

	if (c->socket_rule)
		return perr(c, "only one socket rule per policy (already given by rule '%s')",
			    c->socket_rule->id);
	if (check_keys(c, obj, keys) || require(c, obj, "families", &arr) ||
	    get_array(c, obj, "families", &arr, 64) ||
	    get_bool(c, obj, "allow_raw", &rule->allow_raw) ||
	    get_bool(c, obj, "allow_icmp", &rule->allow_icmp))
		return -1;
	rule->allow_icmp_set = json_object_get(obj, "allow_icmp") != NULL;
	push_key(c, "families");
	r = value_name_bits(c, arr, socket_families, "family", &rule->families);
	pop(c);
	c->socket_rule = rule;
	return r;
}

static const struct { const char *name; int value; } errno_names[] = {
	{ "EPERM", EPERM }, { "EACCES", EACCES }, { "ENOSYS", ENOSYS },
	{ "EINVAL", EINVAL }, { "ENOENT", ENOENT }, { "EOPNOTSUPP", EOPNOTSUPP },
	{ "ENOTSUP", ENOTSUP }, { "EAGAIN", EAGAIN }, { "EBUSY", EBUSY },
	{ "EROFS", EROFS }, { "ENOMEM", ENOMEM }, { "EEXIST", EEXIST },
	{ "EAFNOSUPPORT", EAFNOSUPPORT }, { "EPROTONOSUPPORT", EPROTONOSUPPORT },
};

static int value_errno(struct ctx *c, json_t *v, int *out)
{
	size_t i;

	if (json_is_integer(v)) {
		uint64_t e;

		if (value_uint(c, v, 1, 4095, &e))
			return -1;
		*out = (int)e;
		return 0;
	}
	if (expect_type(c, v, JSON_STRING, "an errno name or number"))
		return -1;
	for (i = 0; i < ARRAY_SIZE(errno_names); i++) {
		if (!strcmp(errno_names[i].name, json_string_value(v))) {
			*out = errno_names[i].value;
			return 0;
		}
	}
	return perr(c, "unknown errno '%s' (expected a name like EPERM, EACCES, ENOSYS, "
		       "or a number 1-4095)", json_string_value(v));
}

static int parse_syscall_arg(struct ctx *c, json_t *obj, struct kg_syscall_arg *arg)
{
	static const char *const keys[] = { "index", "op", "value", "mask", NULL };
	static const struct { const char *name; int op; } cmp[] = {
		{ "eq", SCMP_CMP_EQ }, { "ne", SCMP_CMP_NE }, { "lt", SCMP_CMP_LT },
		{ "le", SCMP_CMP_LE }, { "gt", SCMP_CMP_GT }, { "ge", SCMP_CMP_GE },
		{ "masked_eq", SCMP_CMP_MASKED_EQ },
	};
	uint64_t index = 0;
	const char *op;
	json_t *v;
	size_t i;
	int r;

	if (expect_type(c, obj, JSON_OBJECT, "an object") || check_keys(c, obj, keys) ||
	    require(c, obj, "index", &v) || require(c, obj, "op", &v) ||
	    require(c, obj, "value", &v) || get_uint(c, obj, "index", 0, 5, &index) ||
	    get_string(c, obj, "op", &op, 16) ||
	    get_uint(c, obj, "value", 0, INT64_MAX, &arg->value))
		return -1;
	arg->index = (unsigned int)index;
	arg->op = -1;
	for (i = 0; i < ARRAY_SIZE(cmp); i++)
		if (!strcmp(cmp[i].name, op))
			arg->op = cmp[i].op;
	push_key(c, "op");
	r = arg->op < 0 ? perr(c, "unknown comparison '%s' (expected one of eq, ne, lt, "
				  "le, gt, ge, masked_eq)", op) : 0;
	pop(c);
	if (r)
		return r;
	if (arg->op == SCMP_CMP_MASKED_EQ) {
		if (require(c, obj, "mask", &v) ||
		    get_uint(c, obj, "mask", 1, INT64_MAX, &arg->mask))
			return -1;
	} else if (json_object_get(obj, "mask")) {
		push_key(c, "mask");
		r = perr(c, "'mask' is only valid with op 'masked_eq'");
		pop(c);
		return r;
	}
	return 0;
}

static int parse_syscall(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "names", "args", "errno", NULL };
	json_t *names, *args, *v;
	size_t i;
	int r = 0;

	if (check_keys(c, obj, keys) || require(c, obj, "names", &names) ||
	    get_array(c, obj, "names", &names, 512) || get_array(c, obj, "args", &args, 6))
		return -1;
	rule->syscalls = calloc(json_array_size(names), sizeof(*rule->syscalls));
	if (!rule->syscalls)
		return oom(c);
	push_key(c, "names");
	json_array_foreach(names, i, v) {
		push_index(c, i);
		if (expect_type(c, v, JSON_STRING, "a string"))
			r = -1;
		else if (seccomp_syscall_resolve_name(json_string_value(v)) == __NR_SCMP_ERROR)
			r = perr(c, "unknown syscall '%s'", json_string_value(v));
		else if (!(rule->syscalls[i] = strdup(json_string_value(v))))
			r = oom(c);
		else
			rule->nsyscalls++;
		pop(c);
		if (r)
			break;
	}
	pop(c);
	if (r)
		return r;
	if (args) {
		rule->args = calloc(json_array_size(args), sizeof(*rule->args));
		if (!rule->args)
			return oom(c);
		push_key(c, "args");
		json_array_foreach(args, i, v) {
			push_index(c, i);
			r = parse_syscall_arg(c, v, &rule->args[i]);
			pop(c);
			if (r)
				break;
			rule->nargs++;
		}
		pop(c);
		if (r)
			return r;
	}
	rule->errno_value = EPERM;
	v = json_object_get(obj, "errno");
	if (v) {
		push_key(c, "errno");
		if (rule->decision != KG_DEC_DENY)
			r = perr(c, "'errno' is only valid with decision 'deny'");
		else
			r = value_errno(c, v, &rule->errno_value);
		pop(c);
	}
	return r;
}

static const struct {
	const char *key;
	enum kg_rule_kind kind;
	uint32_t decisions;
	int (*parse)(struct ctx *c, json_t *obj, struct kg_rule *rule);
} selectors[] = {
	{ "file", KG_RULE_FILE, DECS_OBJECT, parse_file },
	{ "exec", KG_RULE_EXEC, DECS_OBJECT, parse_exec },
	{ "net", KG_RULE_NET, DECS_OBJECT, parse_net },
	{ "socket", KG_RULE_SOCKET, DECS_SOCKET, parse_socket },
	{ "syscall", KG_RULE_SYSCALL, DECS_SYSCALL, parse_syscall },
};

static int parse_rule_common(struct ctx *c, json_t *obj, char *id, char **reason)
{
	const char *s;
	json_t *v;
	int r;

	if (require(c, obj, "id", &v))
		return -1;
	push_key(c, "id");
	r = value_id(c, v, id, "rule id");
	pop(c);
	if (r)
		return r;
	c->rule_id = id;
	if (get_string(c, obj, "reason", &s, 1024))
		return -1;
	if (s && !(*reason = strdup(s)))
		return oom(c);
	return 0;
}

/* throttle object present iff decision is throttle */
static int parse_rule_throttle(struct ctx *c, json_t *obj, enum kg_decision d,
			       uint64_t *rate, uint64_t *burst)
{
	json_t *t;
	int r;

	if (get_object(c, obj, "throttle", &t))
		return -1;
	if (d == KG_DEC_THROTTLE && !t) {
		push_key(c, "throttle");
		r = perr(c, "decision 'throttle' needs a 'throttle' object "
			    "{\"rate_per_sec\": N, \"burst\": N}");
		pop(c);
		return r;
	}
	if (!t)
		return 0;
	push_key(c, "throttle");
	r = d != KG_DEC_THROTTLE
		? perr(c, "'throttle' is only valid with decision 'throttle'")
		: parse_throttle(c, t, rate, burst);
	pop(c);
	return r;
}

static int parse_runtime_rule(struct ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "id", "decision", "reason", "throttle", "file",
					    "exec", "net", "socket", "syscall", NULL };
	size_t k, found = ARRAY_SIZE(selectors);
	json_t *sel = NULL, *v;
	char what[32];
	int r;

	if (expect_type(c, obj, JSON_OBJECT, "a rule object") ||
	    parse_rule_common(c, obj, rule->id, &rule->reason) ||
	    check_keys(c, obj, keys))
		return -1;
	for (k = 0; k < ARRAY_SIZE(selectors); k++) {
		json_t *s = json_object_get(obj, selectors[k].key);

		if (!s)
			continue;
		if (sel) {
			push_key(c, selectors[k].key);
			r = perr(c, "a rule has exactly one of file, exec, net, socket, "
				    "syscall (found '%s' and '%s')",
				 selectors[found].key, selectors[k].key);
			pop(c);
			return r;
		}
		sel = s;
		found = k;
	}
	if (!sel)
		return perr(c, "a rule needs one of file, exec, net, socket, syscall");
	rule->kind = selectors[found].kind;
	if (require(c, obj, "decision", &v))
		return -1;
	snprintf(what, sizeof(what), "%s rules", selectors[found].key);
	push_key(c, "decision");
	r = value_decision(c, v, selectors[found].decisions, what, &rule->decision);
	pop(c);
	if (r)
		return r;
	push_key(c, selectors[found].key);
	r = expect_type(c, sel, JSON_OBJECT, "an object") ||
	    selectors[found].parse(c, sel, rule) ? -1 : 0;
	pop(c);
	if (r)
		return r;
	if (parse_rule_throttle(c, obj, rule->decision, &rule->rate_per_sec, &rule->burst))
		return -1;
	if (rule->path && protects_identity(rule->decision))
		rule->ops |= KG_IDENTITY_OPS;
	return 0;
}

/* ---- admission rules ----------------------------------------------------- */

#define MAX_MATCH_LABELS	32

/* one label glob (current path: the value) */
static int value_label_glob(struct ctx *c, json_t *v, struct kg_label_match *m)
{
	if (expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	if (json_string_length(v) == 0 || json_string_length(v) > 255)
		return perr(c, "must be 1-255 bytes long");
	if (has_control(json_string_value(v)))
		return perr_control(c, "contains", json_string_value(v));
	if (!(m->globs[m->nglobs] = strdup(json_string_value(v))))
		return oom(c);
	m->nglobs++;
	return 0;
}

/* One label's globs: a string, or a non-empty array of strings (current
 * path: labels). */
static int parse_label_globs(struct ctx *c, json_t *labels, const char *key,
			     struct kg_label_match *m)
{
	json_t *v = json_object_get(labels, key), *arr, *g;
	size_t i;
	int r = 0;

	if (!json_is_array(v)) {
		push_key(c, key);
		if (!json_is_string(v))
			r = perr(c, "expected a string or an array of strings, got %s",
				 json_type_name(v));
		else if (!(m->globs = calloc(1, sizeof(*m->globs))))
			r = oom(c);
		else
			r = value_label_glob(c, v, m);
		pop(c);
		return r;
	}
	if (get_array(c, labels, key, &arr, 256))
		return -1;
	if (!(m->globs = calloc(json_array_size(arr), sizeof(*m->globs))))
		return oom(c);
	push_key(c, key);
	json_array_foreach(arr, i, g) {
		push_index(c, i);
		r = value_label_glob(c, g, m);
		pop(c);
		if (r)
			break;
	}
	pop(c);
	return r;
}

/* match.labels: {"KEY": "GLOB" | ["GLOB", ...], ...}; every KEY must be
 * among the request's labels with a value matching one of its globs. */
static int parse_match_labels(struct ctx *c, json_t *obj, struct kg_admission_rule *a)
{
	const char *key;
	json_t *labels, *v;
	int r = 0;

	if (get_object(c, obj, "labels", &labels))
		return -1;
	if (!labels)
		return 0;
	push_key(c, "labels");
	if (json_object_size(labels) == 0)
		r = perr(c, "empty labels (omit 'labels' instead)");
	else if (json_object_size(labels) > MAX_MATCH_LABELS)
		r = perr(c, "too many labels (%zu > %d)", json_object_size(labels),
			 MAX_MATCH_LABELS);
	else if (!(a->labels = calloc(json_object_size(labels), sizeof(*a->labels))))
		r = oom(c);
	json_object_foreach(labels, key, v) {
		struct kg_label_match *m;

		if (r)
			break;
		/* errors about a name point at the labels object: the name
		 * itself would put control characters into the field */
		if (strlen(key) == 0 || strlen(key) > 128) {
			r = perr(c, "a label name must be 1-128 bytes long");
			break;
		}
		if (has_control(key)) {
			r = perr_control(c, "the label name contains", key);
			break;
		}
		m = &a->labels[a->nlabels];
		if (!(m->key = strdup(key))) {
			r = oom(c);
			break;
		}
		a->nlabels++;
		r = parse_label_globs(c, labels, key, m);
	}
	pop(c);
	return r;
}

static int parse_match(struct ctx *c, json_t *obj, struct kg_admission_rule *a)
{
	static const char *const keys[] = { "uids", "roles", "tenants", "topics",
					    "risk_tags", "labels", NULL };

	if (check_keys(c, obj, keys) ||
	    parse_id_list(c, obj, "uids", &a->uids, &a->nuids, false) ||
	    parse_str_list(c, obj, "roles", &a->roles, &a->nroles) ||
	    parse_str_list(c, obj, "tenants", &a->tenants, &a->ntenants) ||
	    parse_str_list(c, obj, "topics", &a->topics, &a->ntopics) ||
	    parse_str_list(c, obj, "risk_tags", &a->risk_tags, &a->nrisk_tags) ||
	    parse_match_labels(c, obj, a))
		return -1;
	return 0;
}

static int parse_admission_rule(struct ctx *c, json_t *obj, struct kg_admission_rule *a)
{
	static const char *const keys[] = { "id", "match", "decision", "reason",
					    "constraints", "throttle", NULL };
	json_t *m, *v, *cons;
	int r;

	if (expect_type(c, obj, JSON_OBJECT, "a rule object") ||
	    parse_rule_common(c, obj, a->id, &a->reason) ||
	    check_keys(c, obj, keys) || require(c, obj, "decision", &v))
		return -1;
	push_key(c, "decision");
	r = value_decision(c, v, DECS_ADMISSION, "admission rules", &a->decision);
	pop(c);
	if (r || get_object(c, obj, "match", &m))
		return -1;
	if (m) {
		push_key(c, "match");
		r = parse_match(c, m, a);
		pop(c);
		if (r)
			return r;
	}
	if (get_object(c, obj, "constraints", &cons))
		return -1;
	if (!cons && a->decision == KG_DEC_ALLOW_WITH_CONSTRAINTS) {
		push_key(c, "constraints");
		r = perr(c, "decision 'allow_with_constraints' needs a 'constraints' object");
		pop(c);
		return r;
	}
	if (cons) {
		push_key(c, "constraints");
		r = a->decision != KG_DEC_ALLOW_WITH_CONSTRAINTS
			? perr(c, "'constraints' is only valid with decision "
				  "'allow_with_constraints'")
			: parse_constraints(c, cons, &a->constraints);
		pop(c);
		if (r)
			return r;
	}
	return parse_rule_throttle(c, obj, a->decision, &a->rate_per_sec, &a->burst);
}

/* ---- rule lists ----------------------------------------------------------- */

/* Offsets of the elements of the top-level array `key`, in one pass. */
static void rule_positions(const char *s, size_t n, const char *key, size_t count,
			   size_t *offs)
{
	struct comp path = { .key = key };
	size_t i = locate(s, n, &path, 1), k;

	for (k = 0; k < count; k++)
		offs[k] = i;
	if (i >= n || s[i] != '[')
		return;
	i = skip_ws(s, n, i + 1);
	for (k = 0; k < count && i < n && s[i] != ']'; k++) {
		offs[k] = i;
		i = skip_ws(s, n, skip_value(s, n, i));
		if (i < n && s[i] == ',')
			i = skip_ws(s, n, i + 1);
	}
}

static int parse_rule_list(struct ctx *c, json_t *root, const char *key, bool runtime)
{
	struct kg_policy_doc *doc = c->doc;
	struct linecol_cursor cur = { 0, 1, 1 };
	json_t *arr, *v;
	size_t i, n, *offs;
	int r = 0;

	arr = json_object_get(root, key);
	if (!arr)
		return 0;
	push_key(c, key);
	if (expect_type(c, arr, JSON_ARRAY, "an array of rules")) {
		pop(c);
		return -1;
	}
	n = json_array_size(arr);
	if (n + doc->nrules + doc->nadmission > KG_POLICY_MAX_RULES) {
		r = perr(c, "too many rules (%zu > %d)", n + doc->nrules + doc->nadmission,
			 KG_POLICY_MAX_RULES);
		pop(c);
		return r;
	}
	offs = calloc(n ? n : 1, sizeof(*offs));
	if (runtime)
		doc->rules = calloc(n ? n : 1, sizeof(*doc->rules));
	else
		doc->admission = calloc(n ? n : 1, sizeof(*doc->admission));
	if (!offs || (runtime ? !doc->rules : !doc->admission)) {
		free(offs);
		pop(c);
		return oom(c);
	}
	rule_positions(c->src, c->len, key, n, offs);
	json_array_foreach(arr, i, v) {
		int line, col;

		cursor_advance(c->src, c->len, &cur, offs[i]);
		line = cur.line;
		col = cur.col;
		push_index(c, i);
		c->field_base = c->depth;
		if (runtime) {
			struct kg_rule *rule = &doc->rules[i];

			rule->num = (uint32_t)(i + 1);	/* the kernel's rule_id: kgate.h */
			rule->line = line;
			rule->column = col;
			doc->nrules++;
			r = parse_runtime_rule(c, v, rule);
		} else {
			struct kg_admission_rule *a = &doc->admission[i];

			a->line = line;
			a->column = col;
			doc->nadmission++;
			r = parse_admission_rule(c, v, a);
		}
		c->rule_id = NULL;
		c->field_base = 0;
		pop(c);
		if (r)
			break;
	}
	free(offs);
	pop(c);
	return r;
}

/* ---- cross-rule checks --------------------------------------------------- */

struct id_ref {
	const char *id;
	const char *list;	/* "runtime" / "admission" */
	size_t index;
	int line;
	size_t order;		/* position in the file */
};

static int cmp_id_ref(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int r = strcmp(x->id, y->id);

	if (r)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* report at rule `index` of `list`, field given as "a.b" */
static int rule_err_at(struct ctx *c, const char *list, size_t index, const char *id,
		       const char *field, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int rule_err_at(struct ctx *c, const char *list, size_t index, const char *id,
		       const char *field, const char *fmt, ...)
{
	char msg[512], buf[64], *save = NULL, *tok;
	va_list ap;
	int saved = c->depth;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->depth = 0;
	push_key(c, list);
	push_index(c, index);
	c->field_base = c->depth;
	kg_strlcpy(buf, field ? field : "", sizeof(buf));
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		push_key(c, tok);	/* buf outlives perr() */
	c->rule_id = id;
	perr(c, "%s", msg);
	c->rule_id = NULL;
	c->field_base = 0;
	c->depth = saved;
	return -1;
}

static int check_duplicate_ids(struct ctx *c)
{
	struct kg_policy_doc *doc = c->doc;
	size_t n = doc->nrules + doc->nadmission, i, k = 0;
	struct id_ref *refs, *dup = NULL, *first = NULL;
	bool admission_first;
	int r = 0;

	if (n < 2)
		return 0;
	refs = calloc(n, sizeof(*refs));
	if (!refs)
		return oom(c);
	/* file order: the list that appears first in the text comes first */
	admission_first = doc->nadmission && doc->nrules &&
			  (doc->admission[0].line < doc->rules[0].line ||
			   (doc->admission[0].line == doc->rules[0].line &&
			    doc->admission[0].column < doc->rules[0].column));
	for (i = 0; i < doc->nadmission; i++, k++)
		refs[k] = (struct id_ref){ doc->admission[i].id, "admission", i,
					   doc->admission[i].line,
					   admission_first ? i : doc->nrules + i };
	for (i = 0; i < doc->nrules; i++, k++)
		refs[k] = (struct id_ref){ doc->rules[i].id, "runtime", i, doc->rules[i].line,
					   admission_first ? doc->nadmission + i : i };
	qsort(refs, n, sizeof(*refs), cmp_id_ref);
	for (i = 1; i < n; i++) {
		if (strcmp(refs[i - 1].id, refs[i].id))
			continue;
		/* keep the duplicate that comes first in the file */
		if (!dup || refs[i].order < dup->order) {
			dup = &refs[i];
			first = &refs[i - 1];
			while (first > refs && !strcmp((first - 1)->id, first->id))
				first--;
		}
	}
	if (dup)
		r = rule_err_at(c, dup->list, dup->index, dup->id, "id",
				"duplicate rule id '%s' (first used at line %d)", dup->id,
				first->line);
	free(refs);
	return r;
}

static bool ports_overlap(const struct kg_rule *a, const struct kg_rule *b)
{
	size_t i, j;

	if (!a->nports || !b->nports)
		return true;
	for (i = 0; i < a->nports; i++)
		for (j = 0; j < b->nports; j++)
			if (a->ports[i].lo <= b->ports[j].hi && b->ports[j].lo <= a->ports[i].hi)
				return true;
	return false;
}

/* same selector class key (used to group rules before pairwise checks) */
static int cmp_selector(const struct kg_rule *a, const struct kg_rule *b)
{
	bool apath = a->path != NULL, bpath = b->path != NULL;
	int r;

	if (apath != bpath)
		return apath ? -1 : 1;
	if (apath) {
		r = strcmp(a->path, b->path);
		if (r)
			return r;
		return (int)a->prefix - (int)b->prefix;
	}
	if (a->kind != b->kind)
		return (int)a->kind - (int)b->kind;
	if (a->kind == KG_RULE_NET) {
		r = memcmp(a->addr, b->addr, 16);
		if (r)
			return r;
		return (int)a->prefixlen - (int)b->prefixlen;
	}
	if (a->kind == KG_RULE_UNIX && a->unix_abstract)
		return strcmp(a->unix_abstract, b->unix_abstract);
	if (a->kind == KG_RULE_HOST)
		return strcmp(a->host, b->host);
	return 0;
}

static int cmp_rule_ptr(const void *x, const void *y)
{
	const struct kg_rule *a = *(const struct kg_rule *const *)x;
	const struct kg_rule *b = *(const struct kg_rule *const *)y;
	int r = cmp_selector(a, b);

	return r ? r : (a->num < b->num ? -1 : a->num > b->num);
}

/* do two rules with the same selector key decide the same action differently? */
static bool contradicts(const struct kg_rule *a, const struct kg_rule *b)
{
	if (a->decision == b->decision)
		return false;
	if (a->path || (a->kind == KG_RULE_UNIX && a->unix_abstract))
		return (a->ops & b->ops) != 0;
	if (a->kind == KG_RULE_NET || a->kind == KG_RULE_HOST)
		return (a->ops & b->ops) && ports_overlap(a, b) &&
		       (!a->proto || !b->proto || a->proto == b->proto);
	return false;
}

struct sc_ref {
	const char *name;
	const struct kg_rule *rule;
};

static int cmp_sc_ref(const void *x, const void *y)
{
	const struct sc_ref *a = x, *b = y;
	int r = strcmp(a->name, b->name);

	return r ? r : (a->rule->num < b->rule->num ? -1 : a->rule->num > b->rule->num);
}

static const char *selector_field(const struct kg_rule *r)
{
	switch (r->kind) {
	case KG_RULE_FILE: return r->prefix ? "file.prefix" : "file.path";
	case KG_RULE_EXEC: return r->prefix ? "exec.prefix" : "exec.path";
	case KG_RULE_NET: return "net.cidr";
	case KG_RULE_HOST: return "net.host";
	case KG_RULE_UNIX: return r->unix_abstract ? "net.unix_abstract" : "net.unix";
	case KG_RULE_SYSCALL: return "syscall.names";
	case KG_RULE_SOCKET: return "socket";
	}
	return NULL;
}

/* among candidate pairs keep the one whose later rule comes first */
static void keep_pair(const struct kg_rule **la, const struct kg_rule **lb,
		      const struct kg_rule *a, const struct kg_rule *b)
{
	if (a->num > b->num) {
		const struct kg_rule *t = a;

		a = b;
		b = t;
	}
	if (!*lb || b->num < (*lb)->num || (b->num == (*lb)->num && a->num < (*la)->num)) {
		*la = a;
		*lb = b;
	}
}

static int check_contradictions(struct ctx *c)
{
	struct kg_policy_doc *doc = c->doc;
	const struct kg_rule **v, *ea = NULL, *eb = NULL;
	struct sc_ref *sc;
	size_t i, j, n = 0, nsc = 0;

	v = calloc(doc->nrules + 1, sizeof(*v));
	for (i = 0; i < doc->nrules; i++)
		nsc += doc->rules[i].nargs ? 0 : doc->rules[i].nsyscalls;
	sc = calloc(nsc + 1, sizeof(*sc));
	if (!v || !sc) {
		free(v);
		free(sc);
		return oom(c);
	}
	nsc = 0;
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (r->kind == KG_RULE_SYSCALL) {
			for (j = 0; !r->nargs && j < r->nsyscalls; j++)
				sc[nsc++] = (struct sc_ref){ r->syscalls[j], r };
		} else if (r->kind != KG_RULE_SOCKET) {
			v[n++] = r;
		}
	}
	qsort(v, n, sizeof(*v), cmp_rule_ptr);
	for (i = 0; i < n; i = j) {
		size_t a, b;

		for (j = i + 1; j < n && !cmp_selector(v[i], v[j]); j++)
			;
		for (a = i; a < j; a++)
			for (b = a + 1; b < j; b++)
				if (contradicts(v[a], v[b]))
					keep_pair(&ea, &eb, v[a], v[b]);
	}
	qsort(sc, nsc, sizeof(*sc), cmp_sc_ref);
	for (i = 0; i < nsc; i = j) {
		size_t a, b;

		for (j = i + 1; j < nsc && !strcmp(sc[i].name, sc[j].name); j++)
			;
		for (a = i; a < j; a++)
			for (b = a + 1; b < j; b++)
				if (sc[a].rule->decision != sc[b].rule->decision)
					keep_pair(&ea, &eb, sc[a].rule, sc[b].rule);
	}
	free(v);
	free(sc);
	if (!eb)
		return 0;
	return rule_err_at(c, "runtime", eb->num - 1, eb->id, selector_field(eb),
			   "contradicts rule '%s' (line %d): same target and overlapping "
			   "operations, but decision '%s' vs '%s'%s", ea->id, ea->line,
			   kg_decision_name(eb->decision), kg_decision_name(ea->decision),
			   (eb->path && (protects_identity(ea->decision) ||
					 protects_identity(eb->decision)))
			   ? " (deny and require_approval also cover rename, link, unlink)"
			   : "");
}

/* An address learnt for a name carries the entries of every host rule that
 * matches the name (dns/match.h); the names a rule's own pattern stands for
 * meet the most rules, so checking each pattern bounds every name. */
static int check_host_entries(struct ctx *c)
{
	struct kg_net_ent ent[KG_NET_ENTS];
	size_t i;

	for (i = 0; i < c->doc->nrules; i++) {
		const struct kg_rule *r = &c->doc->rules[i];

		if (r->kind != KG_RULE_HOST || kg_dns_host_entries(c->doc, r->host, ent, NULL) >= 0)
			continue;
		return rule_err_at(c, "runtime", i, r->id, "net.host",
				   "with the other host rules matching '%s' it needs more than "
				   "%d port/protocol entries", r->host, KG_NET_ENTS);
	}
	return 0;
}

/* ---- document ------------------------------------------------------------- */

static int parse_document(struct ctx *c, json_t *root)
{
	static const char *const keys[] = {
		"$schema", "version", "name", "description", "fail_mode", "default",
		"runtime_defaults", "require_full", "constraints", "approvals",
		"launchers", "pushers", "cooldown", "admission", "runtime", "system_access", NULL };
	struct kg_policy_doc *doc = c->doc;
	const char *s;
	json_t *v;
	uint64_t version;
	int r;

	if (!json_is_object(root))
		return perr(c, "a policy is a JSON object, got %s", json_type_name(root));
	if (check_keys(c, root, keys) || get_string(c, root, "$schema", &s, 4096) ||
	    require(c, root, "version", &v))
		return -1;
	push_key(c, "version");
	r = expect_type(c, v, JSON_INTEGER, "an integer");
	if (!r && json_integer_value(v) != KG_POLICY_VERSION)
		r = perr(c, "unsupported policy version %lld (this kgate reads version %d)",
			 (long long)json_integer_value(v), KG_POLICY_VERSION);
	pop(c);
	if (r)
		return r;
	version = (uint64_t)json_integer_value(v);
	doc->version = (int)version;

	if (require(c, root, "name", &v))
		return -1;
	push_key(c, "name");
	{
		char name[KG_ID_MAX + 1];

		r = value_id(c, v, name, "policy name");
		if (!r && !(doc->name = strdup(name)))
			r = oom(c);
	}
	pop(c);
	if (r || get_string(c, root, "description", &s, 4096))
		return -1;

	if (get_string(c, root, "fail_mode", &s, 16))
		return -1;
	if (s && !strcmp(s, "open")) {
		doc->fail_mode = KG_FAIL_OPEN;
	} else if (s && strcmp(s, "closed")) {
		push_key(c, "fail_mode");
		r = perr(c, "unknown fail_mode '%s' (expected closed or open)", s);
		pop(c);
		return r;
	}

	doc->default_decision = KG_DEC_DENY;
	v = json_object_get(root, "default");
	if (v) {
		push_key(c, "default");
		r = value_decision(c, v, DECS_ADMISSION_DEFAULT, "the admission default",
				   &doc->default_decision);
		pop(c);
		if (r)
			return r;
	}
	if (parse_runtime_defaults(c, root) ||
	    get_bool(c, root, "require_full", &doc->require_full))
		return -1;
	if (get_object(c, root, "constraints", &v))
		return -1;
	if (v) {
		push_key(c, "constraints");
		r = parse_constraints(c, v, &doc->constraints);
		pop(c);
		if (r)
			return r;
	}
	if (parse_approvals(c, root) ||
	    parse_principals_member(c, root, "launchers", &doc->launchers, false) ||
	    parse_principals_member(c, root, "pushers", &doc->pushers, true) ||
	    parse_cooldown(c, root) || parse_system_access(c, root))
		return -1;
	if (parse_rule_list(c, root, "admission", false) ||
	    parse_rule_list(c, root, "runtime", true))
		return -1;
	return check_duplicate_ids(c) || check_contradictions(c) || check_host_entries(c)
	       ? -1 : 0;
}

static int hash_canonical(struct ctx *c, json_t *root)
{
	struct kg_policy_doc *doc = c->doc;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	doc->canonical_json = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
	if (!doc->canonical_json)
		return oom(c);
	if (!EVP_Digest(doc->canonical_json, strlen(doc->canonical_json), md, &mdlen,
			EVP_sha256(), NULL) || mdlen * 2 != KG_HASH_HEX_LEN)
		return perr(c, "sha256 failed");
	for (i = 0; i < mdlen; i++)
		snprintf(doc->hash + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static void set_file(struct kg_policy_error *err, const char *name)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	kg_strlcpy(err->file, name ? name : "<policy>", sizeof(err->file));
}

struct kg_policy_doc *kg_policy_load_buffer(const char *buf, size_t len, const char *name,
					    const char *home, struct kg_policy_error *err)
{
	struct kg_policy_doc *doc;
	json_error_t jerr;
	struct ctx c = { .src = buf, .len = len, .home = home, .err = err };
	json_t *root;

	set_file(err, name);
	if (!buf) {
		if (err)
			kg_strlcpy(err->message, "no policy text", sizeof(err->message));
		return NULL;
	}
	if (len > KG_POLICY_MAX_BYTES) {
		if (err)
			snprintf(err->message, sizeof(err->message),
				 "policy is %zu bytes, more than the limit of %u", len,
				 KG_POLICY_MAX_BYTES);
		return NULL;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (err) {
			err->line = jerr.line;
			err->column = jerr.column;
			snprintf(err->message, sizeof(err->message), "invalid JSON: %s",
				 jerr.text);
		}
		return NULL;
	}
	doc = calloc(1, sizeof(*doc));
	if (!doc || !(doc->source = strdup(name ? name : "<policy>"))) {
		if (err)
			kg_strlcpy(err->message, "out of memory", sizeof(err->message));
		free(doc);
		json_decref(root);
		return NULL;
	}
	c.doc = doc;
	if (parse_document(&c, root) || hash_canonical(&c, root)) {
		kg_policy_free(doc);
		doc = NULL;
	}
	json_decref(root);
	return doc;
}

struct kg_policy_doc *kg_policy_load_file(const char *path, const char *home,
					  struct kg_policy_error *err)
{
	struct kg_policy_doc *doc;
	size_t len = 0;
	char *buf;

	set_file(err, path);
	buf = kg_read_regular_file(path, KG_POLICY_MAX_BYTES, &len);
	if (!buf) {
		if (err) {
			if (errno == EFBIG)
				snprintf(err->message, sizeof(err->message),
					 "policy file larger than the limit of %u bytes (64 MiB)",
					 KG_POLICY_MAX_BYTES);
			else if (errno == EINVAL)
				snprintf(err->message, sizeof(err->message),
					 "not a regular file (a FIFO, device or directory is "
					 "not read as a policy)");
			else
				snprintf(err->message, sizeof(err->message),
					 "cannot read policy: %s", strerror(errno));
		}
		return NULL;
	}
	doc = kg_policy_load_buffer(buf, len, path, home, err);
	free(buf);
	return doc;
}

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void kg_policy_free(struct kg_policy_doc *doc)
{
	size_t i;

	if (!doc)
		return;
	for (i = 0; i < doc->nrules; i++) {
		struct kg_rule *r = &doc->rules[i];

		free(r->reason);
		free(r->path);
		free(r->ports);
		free(r->unix_abstract);
		free(r->host);
		free_strv(r->syscalls, r->nsyscalls);
		free(r->args);
	}
	free(doc->rules);
	for (i = 0; i < doc->nadmission; i++) {
		struct kg_admission_rule *a = &doc->admission[i];

		free(a->reason);
		free(a->uids);
		free_strv(a->roles, a->nroles);
		free_strv(a->tenants, a->ntenants);
		free_strv(a->topics, a->ntopics);
		free_strv(a->risk_tags, a->nrisk_tags);
		for (size_t l = 0; l < a->nlabels; l++) {
			free(a->labels[l].key);
			free_strv(a->labels[l].globs, a->labels[l].nglobs);
		}
		free(a->labels);
	}
	free(doc->admission);
	free(doc->approvers.uids);
	free(doc->approvers.gids);
	free(doc->launchers.uids);
	free(doc->launchers.gids);
	free(doc->pushers.uids);
	free(doc->pushers.gids);
	free(doc->name);
	free(doc->source);
	free(doc->canonical_json);
	free(doc);
}

/* ---- reference matching (precedence) --------------------------------------
 * What the kernel side must implement, as plain code: tests pin it and the
 * degraded-mode enforcers can reuse it.
 */

static unsigned int path_depth(const char *p)
{
	unsigned int d = 0;

	for (; *p; p++)
		if (*p == '/' && p[1])
			d++;
	return d;
}

static bool path_covers(const struct kg_rule *r, const char *path)
{
	size_t n = strlen(r->path);

	if (!strcmp(r->path, path))
		return true;
	if (!r->prefix)
		return false;
	if (n == 1)	/* "/" */
		return path[0] == '/';
	return !strncmp(r->path, path, n) && path[n] == '/';
}

const struct kg_rule *kg_policy_match_path(const struct kg_policy_doc *doc,
					   const char *path, enum kg_op op)
{
	const struct kg_rule *best = NULL;
	unsigned int best_depth = 0;
	size_t i;

	for (i = 0; doc && path && i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];
		unsigned int d;

		if (!r->path || !(r->ops & KG_OP_BIT(op)) || !path_covers(r, path))
			continue;
		d = path_depth(r->path);
		/* deeper wins; at equal depth exact beats subtree; else first wins */
		if (!best || d > best_depth || (d == best_depth && best->prefix && !r->prefix)) {
			best = r;
			best_depth = d;
		}
	}
	return best;
}

static bool addr_in_prefix(const uint8_t *addr, const struct kg_rule *r)
{
	unsigned int full = r->prefixlen / 8, rest = r->prefixlen % 8;

	if (memcmp(addr, r->addr, full))
		return false;
	if (rest && ((addr[full] ^ r->addr[full]) & (0xff00 >> rest)))
		return false;
	return true;
}

const struct kg_rule *kg_policy_match_net(const struct kg_policy_doc *doc,
					  const uint8_t addr[16], uint16_t port,
					  uint8_t proto, uint32_t net_op)
{
	const struct kg_rule *best = NULL;
	unsigned int best_width = 0;
	size_t i, k;

	for (i = 0; doc && addr && i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];
		unsigned int width = 65536;
		bool port_ok = !r->nports;

		if (r->kind != KG_RULE_NET || !(r->ops & net_op) ||
		    (r->proto && r->proto != proto) || !addr_in_prefix(addr, r))
			continue;
		for (k = 0; k < r->nports; k++) {
			if (port >= r->ports[k].lo && port <= r->ports[k].hi) {
				unsigned int w = (unsigned int)(r->ports[k].hi - r->ports[k].lo) + 1;

				port_ok = true;
				if (w < width)
					width = w;
			}
		}
		if (!port_ok)
			continue;
		/* longest prefix, then narrowest port range, then first in the file */
		if (!best || r->prefixlen > best->prefixlen ||
		    (r->prefixlen == best->prefixlen && width < best_width)) {
			best = r;
			best_width = width;
		}
	}
	return best;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/parse.c - a kgate policy (JSON, version 1) into struct
 * kg_policy_doc: loading, the top-level members, the rule lists, the
 * cross-rule checks, the canonical hash; freeing a document.  The language
 * is documented in policies/README.md and policies/schema.json; this
 * folder is the authority on what is accepted.
 *
 * jansson does the parsing (duplicate keys rejected, invalid UTF-8
 * rejected, syntax errors with line/column); semantic errors are located
 * in the text by locate.c.
 */
#include "policy/policy.h"
#include "policy/checks.h"
#include "policy/context.h"
#include "policy/locate.h"
#include "policy/rules.h"
#include "policy/values.h"
#include "common.h"
#include "kernel/caps.h"
#include "kernel/outside.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_principals(struct kgp_ctx *c, json_t *obj, struct kg_principals *out)
{
	static const char *const keys[] = { "uids", "gids", NULL };

	if (kgp_check_keys(c, obj, keys) ||
	    kgp_parse_id_list(c, obj, "uids", &out->uids, &out->nuids, true) ||
	    kgp_parse_id_list(c, obj, "gids", &out->gids, &out->ngids, true))
		return -1;
	return 0;
}

static int set_principals_root(struct kgp_ctx *c, struct kg_principals *p)
{
	p->uids = calloc(1, sizeof(*p->uids));
	if (!p->uids)
		return kgp_oom(c);
	p->nuids = 1;	/* uid 0 */
	return 0;
}

/* optional top-level principals object; absent = root only when root_default */
static int parse_principals_member(struct kgp_ctx *c, json_t *obj, const char *key,
				   struct kg_principals *out, bool root_default)
{
	json_t *o;
	int r;

	if (kgp_get_object(c, obj, key, &o))
		return -1;
	if (!o)
		return root_default ? set_principals_root(c, out) : 0;
	kgp_push_key(c, key);
	r = parse_principals(c, o, out);
	kgp_pop(c);
	return r;
}

static int parse_approvals(struct kgp_ctx *c, json_t *root)
{
	static const char *const keys[] = { "timeout_sec", "queue_max", "approvers",
					    "allow_self_approval", NULL };
	struct kg_policy_doc *doc = c->doc;
	json_t *o;
	int r;

	doc->approval_timeout_sec = 300;
	doc->approval_queue_max = 64;
	if (kgp_get_object(c, root, "approvals", &o))
		return -1;
	if (!o)
		return set_principals_root(c, &doc->approvers);
	kgp_push_key(c, "approvals");
	r = kgp_check_keys(c, o, keys) ||
	    kgp_get_uint(c, o, "timeout_sec", 1, 7 * 86400, &doc->approval_timeout_sec) ||
	    kgp_get_uint(c, o, "queue_max", 1, KG_MAX_GRANTS, &doc->approval_queue_max) ||
	    kgp_get_bool(c, o, "allow_self_approval", &doc->allow_self_approval) ||
	    parse_principals_member(c, o, "approvers", &doc->approvers, true) ? -1 : 0;
	kgp_pop(c);
	return r;
}

static int parse_cooldown(struct kgp_ctx *c, json_t *root)
{
	static const char *const keys[] = { "threshold", "window_sec", "duration_sec", NULL };
	struct kg_policy_doc *doc = c->doc;
	uint64_t threshold = 0;
	json_t *o, *v;
	int r;

	if (kgp_get_object(c, root, "cooldown", &o))
		return -1;
	if (!o)
		return 0;
	kgp_push_key(c, "cooldown");
	r = kgp_check_keys(c, o, keys) || kgp_require(c, o, "threshold", &v) ||
	    kgp_require(c, o, "window_sec", &v) || kgp_require(c, o, "duration_sec", &v) ||
	    kgp_get_uint(c, o, "threshold", 1, UINT32_MAX, &threshold) ||
	    kgp_get_uint(c, o, "window_sec", 1, 86400, &doc->cooldown_window_sec) ||
	    kgp_get_uint(c, o, "duration_sec", 1, 86400, &doc->cooldown_sec) ? -1 : 0;
	kgp_pop(c);
	doc->cooldown_threshold = (uint32_t)threshold;
	return r;
}

/* system_access: capabilities a job keeps beyond kg_caps_kept (caps.h), and
 * members of the escapes by proxy it may use (outside.h) */
static int parse_system_access(struct kgp_ctx *c, json_t *root)
{
	json_t *arr, *v;
	size_t i;
	int r = 0;

	if (kgp_get_array(c, root, "system_access", &arr, 64))
		return -1;
	if (!arr)
		return 0;
	kgp_push_key(c, "system_access");
	json_array_foreach(arr, i, v) {
		const struct kg_cap_info *ci;
		int cap, mb;

		kgp_push_index(c, i);
		if (kgp_expect_type(c, v, JSON_STRING, "a string (a capability or a member name)")) {
			r = -1;
		} else if ((mb = kg_out_by_name(json_string_value(v))) >= 0) {
			if (c->doc->outside_grant & (1u << mb))
				r = kgp_perr(c, "'%s' is listed twice", json_string_value(v));
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
			r = kgp_has_control(json_string_value(v))
				? kgp_perr_control(c, "unknown capability", json_string_value(v))
				: kgp_perr(c, "unknown capability '%s' (system_access grants back one of "
					   "the capabilities a job loses: %s; or what only reaches "
					   "outside the job: %s)", json_string_value(v), list, mlist);
		} else if ((ci = kg_cap_info(cap)) && ci->kept) {
			r = kgp_perr(c, "'%s' is kept by every job (%s): nothing to grant",
				     json_string_value(v), ci->why);
		} else if (c->doc->system_access & (1ULL << cap)) {
			r = kgp_perr(c, "'%s' is listed twice", json_string_value(v));
		} else {
			c->doc->system_access |= 1ULL << cap;
		}
		kgp_pop(c);
		if (r)
			break;
	}
	kgp_pop(c);
	return r;
}

static int parse_runtime_defaults(struct kgp_ctx *c, json_t *root)
{
	static const char *const keys[] = { "file", "exec", "net", "unix", NULL };
	struct kg_policy_doc *doc = c->doc;
	json_t *o;
	int k, r = 0;

	doc->class_default[KG_CLASS_FILE] = KG_DEC_ALLOW;
	doc->class_default[KG_CLASS_EXEC] = KG_DEC_ALLOW;
	doc->class_default[KG_CLASS_NET] = KG_DEC_DENY;
	doc->class_default[KG_CLASS_UNIX] = KG_DEC_ALLOW;
	if (kgp_get_object(c, root, "runtime_defaults", &o))
		return -1;
	if (!o)
		return 0;
	kgp_push_key(c, "runtime_defaults");
	r = kgp_check_keys(c, o, keys);
	for (k = 0; !r && k < KG_CLASS_MAX; k++) {
		json_t *v = json_object_get(o, kg_class_name(k));

		if (!v)
			continue;
		kgp_push_key(c, kg_class_name(k));
		r = kgp_value_decision(c, v, DECS_RUNTIME_DEFAULT, "a runtime default",
				       &doc->class_default[k]);
		kgp_pop(c);
	}
	kgp_pop(c);
	return r;
}

static int parse_rule_list(struct kgp_ctx *c, json_t *root, const char *key, bool runtime)
{
	struct kg_policy_doc *doc = c->doc;
	struct kgp_linecol_cursor cur = { 0, 1, 1 };
	json_t *arr, *v;
	size_t i, n, *offs;
	int r = 0;

	arr = json_object_get(root, key);
	if (!arr)
		return 0;
	kgp_push_key(c, key);
	if (kgp_expect_type(c, arr, JSON_ARRAY, "an array of rules")) {
		kgp_pop(c);
		return -1;
	}
	n = json_array_size(arr);
	if (n + doc->nrules + doc->nadmission > KG_POLICY_MAX_RULES) {
		r = kgp_perr(c, "too many rules (%zu > %d)", n + doc->nrules + doc->nadmission,
			     KG_POLICY_MAX_RULES);
		kgp_pop(c);
		return r;
	}
	offs = calloc(n ? n : 1, sizeof(*offs));
	if (runtime)
		doc->rules = calloc(n ? n : 1, sizeof(*doc->rules));
	else
		doc->admission = calloc(n ? n : 1, sizeof(*doc->admission));
	if (!offs || (runtime ? !doc->rules : !doc->admission)) {
		free(offs);
		kgp_pop(c);
		return kgp_oom(c);
	}
	kgp_rule_positions(c->src, c->len, key, n, offs);
	json_array_foreach(arr, i, v) {
		int line, col;

		kgp_cursor_advance(c->src, c->len, &cur, offs[i]);
		line = cur.line;
		col = cur.col;
		kgp_push_index(c, i);
		c->field_base = c->depth;
		if (runtime) {
			struct kg_rule *rule = &doc->rules[i];

			rule->num = (uint32_t)(i + 1);	/* the kernel's rule_id: kgate.h */
			rule->line = line;
			rule->column = col;
			doc->nrules++;
			r = kgp_parse_runtime_rule(c, v, rule);
		} else {
			struct kg_admission_rule *a = &doc->admission[i];

			a->line = line;
			a->column = col;
			doc->nadmission++;
			r = kgp_parse_admission_rule(c, v, a);
		}
		c->rule_id = NULL;
		c->field_base = 0;
		kgp_pop(c);
		if (r)
			break;
	}
	free(offs);
	kgp_pop(c);
	return r;
}

/* ---- document ------------------------------------------------------------- */

static int parse_document(struct kgp_ctx *c, json_t *root)
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
		return kgp_perr(c, "a policy is a JSON object, got %s", kgp_json_type_name(root));
	if (kgp_check_keys(c, root, keys) || kgp_get_string(c, root, "$schema", &s, 4096) ||
	    kgp_require(c, root, "version", &v))
		return -1;
	kgp_push_key(c, "version");
	r = kgp_expect_type(c, v, JSON_INTEGER, "an integer");
	if (!r && json_integer_value(v) != KG_POLICY_VERSION)
		r = kgp_perr(c, "unsupported policy version %lld (this kgate reads version %d)",
			     (long long)json_integer_value(v), KG_POLICY_VERSION);
	kgp_pop(c);
	if (r)
		return r;
	version = (uint64_t)json_integer_value(v);
	doc->version = (int)version;

	if (kgp_require(c, root, "name", &v))
		return -1;
	kgp_push_key(c, "name");
	{
		char name[KG_ID_MAX + 1];

		r = kgp_value_id(c, v, name, "policy name");
		if (!r && !(doc->name = strdup(name)))
			r = kgp_oom(c);
	}
	kgp_pop(c);
	if (r || kgp_get_string(c, root, "description", &s, 4096))
		return -1;

	if (kgp_get_string(c, root, "fail_mode", &s, 16))
		return -1;
	if (s && !strcmp(s, "open")) {
		doc->fail_mode = KG_FAIL_OPEN;
	} else if (s && strcmp(s, "closed")) {
		kgp_push_key(c, "fail_mode");
		r = kgp_perr(c, "unknown fail_mode '%s' (expected closed or open)", s);
		kgp_pop(c);
		return r;
	}

	doc->default_decision = KG_DEC_DENY;
	v = json_object_get(root, "default");
	if (v) {
		kgp_push_key(c, "default");
		r = kgp_value_decision(c, v, DECS_ADMISSION_DEFAULT, "the admission default",
				       &doc->default_decision);
		kgp_pop(c);
		if (r)
			return r;
	}
	if (parse_runtime_defaults(c, root) ||
	    kgp_get_bool(c, root, "require_full", &doc->require_full))
		return -1;
	if (kgp_get_object(c, root, "constraints", &v))
		return -1;
	if (v) {
		kgp_push_key(c, "constraints");
		r = kgp_parse_constraints(c, v, &doc->constraints);
		kgp_pop(c);
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
	return kgp_check_duplicate_ids(c) || kgp_check_contradictions(c) || kgp_check_host_entries(c)
	       ? -1 : 0;
}

static int hash_canonical(struct kgp_ctx *c, json_t *root)
{
	struct kg_policy_doc *doc = c->doc;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	doc->canonical_json = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
	if (!doc->canonical_json)
		return kgp_oom(c);
	if (!EVP_Digest(doc->canonical_json, strlen(doc->canonical_json), md, &mdlen,
			EVP_sha256(), NULL) || mdlen * 2 != KG_HASH_HEX_LEN)
		return kgp_perr(c, "sha256 failed");
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
	struct kgp_ctx c = { .src = buf, .len = len, .home = home, .err = err };
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

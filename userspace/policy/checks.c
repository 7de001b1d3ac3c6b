// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/checks.c - checks across rules: unique ids, no contradictions,
 * host rules within the kernel's entries per address.
 */
#include "policy/checks.h"
#include "policy/rules.h"
#include "common.h"
#include "dns/match.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static int rule_err_at(struct kgp_ctx *c, const char *list, size_t index, const char *id,
		       const char *field, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int rule_err_at(struct kgp_ctx *c, const char *list, size_t index, const char *id,
		       const char *field, const char *fmt, ...)
{
	char msg[512], buf[64], *save = NULL, *tok;
	va_list ap;
	int saved = c->depth;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->depth = 0;
	kgp_push_key(c, list);
	kgp_push_index(c, index);
	c->field_base = c->depth;
	kg_strlcpy(buf, field ? field : "", sizeof(buf));
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		kgp_push_key(c, tok);	/* buf outlives kgp_perr() */
	c->rule_id = id;
	kgp_perr(c, "%s", msg);
	c->rule_id = NULL;
	c->field_base = 0;
	c->depth = saved;
	return -1;
}

int kgp_check_duplicate_ids(struct kgp_ctx *c)
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
		return kgp_oom(c);
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

int kgp_check_contradictions(struct kgp_ctx *c)
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
		return kgp_oom(c);
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
			   (eb->path && (kgp_protects_identity(ea->decision) ||
					 kgp_protects_identity(eb->decision)))
			   ? " (deny and require_approval also cover rename, link, unlink)"
			   : "");
}

/* An address learnt for a name carries the entries of every host rule that
 * matches the name (dns/match.h); the names a rule's own pattern stands for
 * meet the most rules, so checking each pattern bounds every name. */
int kgp_check_host_entries(struct kgp_ctx *c)
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

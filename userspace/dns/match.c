// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* dns/match.c - host rules for a name: see dns/match.h. */
#include "dns/match.h"
#include "dns/names.h"
#include "kernel/netent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct host_ent {
	unsigned int spec;
	struct kg_net_ent e;
};

static int host_ent_cmp(const void *a, const void *b)
{
	const struct host_ent *x = a, *y = b;
	unsigned int wx = x->e.port_hi - x->e.port_lo, wy = y->e.port_hi - y->e.port_lo;

	if (x->spec != y->spec)
		return x->spec > y->spec ? -1 : 1;	/* most specific pattern first */
	if (wx != wy)
		return wx < wy ? -1 : 1;		/* narrower port range first */
	if (!x->e.proto != !y->e.proto)
		return x->e.proto ? -1 : 1;		/* a specific protocol first */
	return x->e.rule_id < y->e.rule_id ? -1 : x->e.rule_id > y->e.rule_id;
}

int kg_dns_host_entries(const struct kg_policy_doc *doc, const char *name,
			struct kg_net_ent ent[KG_NET_ENTS], bool *allow_private)
{
	struct host_ent v[KG_NET_ENTS];
	unsigned int best_spec = 0;
	size_t i, p, n = 0;

	if (allow_private)
		*allow_private = false;
	for (i = 0; doc && i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];
		size_t np;

		if (r->kind != KG_RULE_HOST || !kg_host_match(r->host, name))
			continue;
		np = r->nports ? r->nports : 1;
		if (n + np > KG_NET_ENTS)
			return -E2BIG;
		for (p = 0; p < np; p++) {
			v[n].spec = kg_host_specificity(r->host);
			v[n].e = kg_net_ent_of(r, p);
			n++;
		}
		/* the most specific pattern's word on private answers; ties: file order */
		if (allow_private && v[n - 1].spec > best_spec) {
			best_spec = v[n - 1].spec;
			*allow_private = r->allow_private;
		}
	}
	qsort(v, n, sizeof(v[0]), host_ent_cmp);
	memset(ent, 0, sizeof(*ent) * KG_NET_ENTS);
	for (i = 0; i < n; i++)
		ent[i] = v[i].e;
	return (int)n;
}

bool kg_dns_policy_has_hosts(const struct kg_policy_doc *doc)
{
	size_t i;

	for (i = 0; doc && i < doc->nrules; i++)
		if (doc->rules[i].kind == KG_RULE_HOST)
			return true;
	return false;
}

bool kg_dns_entries_resolvable(const struct kg_net_ent *ent, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (ent[i].decision != KG_DEC_DENY)
			return true;
	return false;
}

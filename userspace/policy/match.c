// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/match.c - the reference matcher: which rule decides an operation
 * on a path or a connection (see match.h).
 */
#include "policy/match.h"

#include <string.h>

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

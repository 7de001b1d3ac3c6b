/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dns/names.h - host names as the policy language and the resolver see them.
 *
 * One normal form for both sides, so that what a rule says and what a job
 * asks compare byte for byte: ASCII only (IDNs in their A-label form,
 * "xn--..."), lower case, no trailing dot, letters/digits/hyphens, labels of
 * 1..63 bytes, 253 bytes at most.  A pattern is a name or "*." followed by a
 * name of at least two labels: the star stands for one or more labels, never
 * for none ("*.example.com" does not match "example.com").
 */
#ifndef KGATE_DNS_NAMES_H
#define KGATE_DNS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define KG_HOST_MAX	253	/* text form without the trailing dot */

/* Normalise a policy pattern into out (KG_HOST_MAX + 1 bytes).  0, or -1
 * with why filled ("label 2 ('a_b') has a character other than ..."). */
int kg_host_pattern_normalize(const char *in, char *out, char *why, size_t whylen);

/* Normalise a name a job asked for (no wildcard allowed); -1 when it is not
 * a host name at all (such a name matches no rule). */
int kg_host_name_normalize(const char *in, char *out);

/* Does the normalised name match the normalised pattern? */
bool kg_host_match(const char *pattern, const char *name);

/* How specific a pattern is: exact names beat every wildcard, a longer
 * wildcard suffix beats a shorter one.  Larger = more specific. */
unsigned int kg_host_specificity(const char *pattern);

#endif

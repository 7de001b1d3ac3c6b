/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dns/match.h - what the policy says about a host name.
 *
 * The entries an address learnt for a name carries into the kernel: those
 * of every host rule matching the name, the most specific rule first (an
 * exact name, then wildcards by decreasing suffix length, then file order),
 * and within a rule the narrowest port range and a specific protocol first.
 * The connect hook takes the first entry matching protocol, port and op,
 * exactly as it does for the copied-down entries of CIDR prefixes.
 */
#ifndef KGATE_DNS_MATCH_H
#define KGATE_DNS_MATCH_H

#include "policy/policy.h"

/* Fill ent[] for name (normalised); returns the number of entries (0 = no
 * host rule matches), or -E2BIG when they do not fit in KG_NET_ENTS.
 * *allow_private: the first matching rule allows private answers. */
int kg_dns_host_entries(const struct kg_policy_doc *doc, const char *name,
			struct kg_net_ent ent[KG_NET_ENTS], bool *allow_private);

/* Does the policy have any host rule (is the job's DNS kgate's business)? */
bool kg_dns_policy_has_hosts(const struct kg_policy_doc *doc);

/* Is a name resolvable at all: some entry is not a deny. */
bool kg_dns_entries_resolvable(const struct kg_net_ent *ent, int n);

#endif

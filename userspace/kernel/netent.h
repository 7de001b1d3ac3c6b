/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel/netent.h - a network rule as the connect, sendmsg and bind hooks
 * read it (struct kg_net_ent, bpf/kgate.h): one entry per port range of the
 * rule.  Shared by the copied-down entries of CIDR prefixes (image.c) and
 * the entries an address learns from a host name (dns/match.c), so both
 * say the same thing about the same rule.
 */
#ifndef KGATE_KERNEL_NETENT_H
#define KGATE_KERNEL_NETENT_H

#include "policy/policy.h"

/* The entry for port range `p` of net rule r (p = 0 for a rule without
 * ports: every port).  A rule that names no op covers connect and send. */
static inline struct kg_net_ent kg_net_ent_of(const struct kg_rule *r, unsigned int p)
{
	return (struct kg_net_ent){
		.rule_id = r->num,
		.port_lo = r->nports ? r->ports[p].lo : 0,
		.port_hi = r->nports ? r->ports[p].hi : 65535,
		.proto = r->proto,
		.decision = r->decision,
		.ops = r->ops ? r->ops : (KG_NET_OP_CONNECT | KG_NET_OP_SEND),
	};
}

#endif

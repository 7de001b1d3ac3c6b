/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dns/resolver.h - the resolver kgate runs for one job (egress by name).
 *
 * A thread of the job's controller (outside the job) serves DNS over UDP
 * and TCP on loopback (127.0.0.1 and ::1, one port each); the job's
 * cgroup programs send all of the job's port-53 traffic there (kgate.h,
 * kg_dns_redirect).  For each query it decides the name by the policy's host
 * rules (dns/match.h), asks the upstream with a fresh query (only the
 * question travels: nothing else the job put in its message leaves), checks
 * the answer (CNAME chain, private addresses), and before it answers writes
 * each A/AAAA address into kg_dns_addrs for this job only.  DNS messages
 * are read and built by ldns.
 *
 * Every decision becomes a struct kg_dns_record that the controller writes
 * to the audit trail from its own thread (kg_resolver_drain).
 */
#ifndef KGATE_DNS_RESOLVER_H
#define KGATE_DNS_RESOLVER_H

#include <stdbool.h>
#include <stdint.h>
#include "policy/policy.h"

#define KG_DNS_TTL_FLOOR_SEC	10
#define KG_DNS_TTL_CEIL_SEC	3600
#define KG_DNS_MAX_PER_JOB	16384	/* live learnt addresses of one job */
#define KG_DNS_REC_ADDRS	8	/* addresses listed in one record */

struct kg_resolver_cfg {
	uint64_t cgid;			/* the job's cgroup (kg_jobs key) */
	const struct kg_policy_doc *doc;	/* the caller keeps it alive until set_policy/stop */
	uint32_t policy_id;
	const char *upstream;		/* "ADDR", "ADDR:PORT", "[V6]:PORT"; NULL = resolv.conf */
	const char *listen4;		/* loopback IPv4 address to serve on (NULL = 127.0.0.1) */
	unsigned int ttl_floor_sec;	/* 0 = KG_DNS_TTL_FLOOR_SEC */
};

/* One resolution decision, for the audit trail. */
struct kg_dns_record {
	char name[256];			/* the name asked for (normalised when it is one) */
	char qtype[16];
	char proto[4];			/* "udp" / "tcp" */
	uint32_t rule_num;		/* the deciding host rule, 0 = none */
	uint8_t decision;		/* KG_DEC_ALLOW (answered) or KG_DEC_DENY (refused) */
	char rcode[16];			/* what the job got: NOERROR, NXDOMAIN, REFUSED... */
	char reason[160];
	uint32_t ttl;			/* smallest TTL of the answer's addresses */
	uint32_t expires_sec;		/* what kgate kept them for */
	unsigned int naddrs;		/* addresses learnt (may exceed the list) */
	char addrs[KG_DNS_REC_ADDRS][46];
	char cnames[4][256];		/* the CNAME chain after the name */
	unsigned int ncnames;
};

struct kg_resolver_stats {
	uint64_t queries, answered, refused, failed, malformed, learnt, records_lost;
	uint64_t dropped;	/* UDP queries the kernel dropped: the receive queue was full */
	uint64_t unsent;	/* UDP answers that could not be sent to the job */
};

struct kg_resolver;

/* Bind, write the job's redirect entry, start the thread.  NULL + message. */
struct kg_resolver *kg_resolver_start(const struct kg_resolver_cfg *cfg);
/* Stop the thread and remove the redirect entry; the records it queued
 * can still be drained (kg_resolver_next).  kg_resolver_stop does it too. */
void kg_resolver_halt(struct kg_resolver *r);
/* Stop the thread, remove the redirect entry and every address and name of
 * the job. */
void kg_resolver_stop(struct kg_resolver *r);

/* A pushed policy: live addresses are rewritten under the new generation
 * with the new rules (those of names it no longer allows are removed) before
 * this returns; the old doc is no longer used afterwards. */
void kg_resolver_set_policy(struct kg_resolver *r, const struct kg_policy_doc *doc,
			    uint32_t policy_id);

/* Non-zero: a query is waiting for the rules of this generation (a push
 * flipped the job); the controller should call kg_resolver_set_policy now.
 * kg_resolver_fd is readable then too. */
uint32_t kg_resolver_wanted_policy(struct kg_resolver *r);

/* Readable when records are waiting; drain them with kg_resolver_next. */
int kg_resolver_fd(const struct kg_resolver *r);
bool kg_resolver_next(struct kg_resolver *r, struct kg_dns_record *out);
void kg_resolver_stats(struct kg_resolver *r, struct kg_resolver_stats *out);

/* Where it serves (for tests and messages). */
void kg_resolver_addr(const struct kg_resolver *r, char *buf, size_t len);

/* Is this address one the resolver refuses to learn without allow_private
 * (loopback, RFC 1918, ULA, link-local, CGNAT, multicast, unspecified,
 * reserved)?  addr is 16 bytes, IPv4 as IPv4-mapped. */
bool kg_dns_addr_private(const uint8_t addr[16]);

#endif

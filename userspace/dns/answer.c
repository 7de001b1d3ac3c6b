// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/answer.c - one query (dns/internal.h): decided by the policy's host
 * rules, asked upstream with only its question, the answer checked (the
 * CNAME chain, private addresses) and its addresses learnt before the job
 * sees it; every decision becomes a record.
 */
#include "dns/internal.h"
#include "dns/match.h"
#include "dns/names.h"
#include "common.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN	8		/* CNAMEs followed */

static void addr_text(const uint8_t a[16], char *buf, size_t len)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(a, v4mapped, 12))
		inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a, buf, (socklen_t)len);
}

bool kg_dns_addr_private(const uint8_t a[16])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t zero[16];

	if (!memcmp(a, v4mapped, 12)) {
		const uint8_t *b = a + 12;

		return b[0] == 0 || b[0] == 10 || b[0] == 127 ||	/* this net, private, loopback */
		       (b[0] == 100 && (b[1] & 0xc0) == 64) ||	/* CGNAT 100.64/10 */
		       (b[0] == 169 && b[1] == 254) ||		/* link-local */
		       (b[0] == 172 && (b[1] & 0xf0) == 16) ||	/* 172.16/12 */
		       (b[0] == 192 && b[1] == 168) ||
		       (b[0] == 192 && b[1] == 0 && b[2] == 0) ||	/* IETF protocol assignments */
		       (b[0] == 198 && (b[1] & 0xfe) == 18) ||	/* benchmarking 198.18/15 */
		       b[0] >= 224;				/* multicast, reserved, broadcast */
	}
	if (!memcmp(a, zero, 15))
		return true;					/* :: and ::1 */
	return (a[0] & 0xfe) == 0xfc ||				/* ULA fc00::/7 */
	       (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||	/* link-local fe80::/10 */
	       (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) ||	/* site-local (deprecated) */
	       a[0] == 0xff ||					/* multicast */
	       !memcmp(a, zero, 10);				/* ::/80: IPv4-compatible etc. */
}

static void rdf_name(const ldns_rdf *rdf, char *buf, size_t len)
{
	char *s = ldns_rdf2str(rdf);

	kg_strlcpy(buf, s ? s : "", len);
	free(s);
}

/* A response to q with only the question and rcode (REFUSED, SERVFAIL...). */
static ldns_pkt *bare_response(const ldns_pkt *q, ldns_pkt_rcode rcode)
{
	ldns_pkt *p = ldns_pkt_new();
	size_t i;

	if (!p)
		return NULL;
	ldns_pkt_set_id(p, ldns_pkt_id(q));
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, ldns_pkt_rd(q));
	ldns_pkt_set_ra(p, true);
	ldns_pkt_set_opcode(p, ldns_pkt_get_opcode(q));
	ldns_pkt_set_rcode(p, (uint8_t)rcode);
	for (i = 0; i < ldns_rr_list_rr_count(ldns_pkt_question(q)); i++) {
		ldns_rr *rr = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), i));

		if (!rr || !ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, rr)) {
			ldns_rr_free(rr);
			ldns_pkt_free(p);
			return NULL;
		}
	}
	return p;
}

static void set_rcode_text(struct kg_dns_record *rec, ldns_pkt_rcode rc)
{
	char *s = ldns_pkt_rcode2str(rc);

	kg_strlcpy(rec->rcode, s ? s : "?", sizeof(rec->rcode));
	free(s);
}

static ldns_pkt *refuse(const ldns_pkt *q, struct kg_dns_record *rec, ldns_pkt_rcode rc,
			const char *fmt, const char *arg)
{
	rec->decision = KG_DEC_DENY;
	set_rcode_text(rec, rc);
	snprintf(rec->reason, sizeof(rec->reason), fmt, arg);
	return bare_response(q, rc);
}

static bool in_chain(char chain[][KG_HOST_MAX + 1], int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(chain[i], name))
			return true;
	return false;
}

/* Decide and answer one query; NULL = no answer at all (unparseable). */
static ldns_pkt *resolve(struct kg_resolver *r, const ldns_pkt *q, struct kg_dns_record *rec)
{
	char chain[MAX_CHAIN + 1][KG_HOST_MAX + 1], text[512];
	struct kg_net_ent ent[KG_NET_ENTS];
	uint8_t addrs[64][16];
	ldns_rr_list *answer;
	ldns_rr *qrr;
	ldns_pkt *up = NULL, *resp;
	ldns_status st;
	uint32_t min_ttl = UINT32_MAX, nid;
	uint64_t expires;
	bool allow_private = false, grew;
	int n, nchain = 1, naddrs = 0, i, k;
	size_t a;

	if (ldns_pkt_qr(q) || ldns_pkt_get_opcode(q) != LDNS_PACKET_QUERY ||
	    ldns_pkt_qdcount(q) != 1 || ldns_rr_list_rr_count(ldns_pkt_question(q)) != 1)
		return kg_strlcpy(rec->name, "?", sizeof(rec->name)),
		       refuse(q, rec, LDNS_RCODE_FORMERR, "%snot one standard query", "");
	qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	rdf_name(ldns_rr_owner(qrr), text, sizeof(text));
	kg_strlcpy(rec->name, text, sizeof(rec->name));
	{
		char *t = ldns_rr_type2str(ldns_rr_get_type(qrr));

		kg_strlcpy(rec->qtype, t ? t : "?", sizeof(rec->qtype));
		free(t);
	}
	if (kg_host_name_normalize(text, chain[0]))
		return refuse(q, rec, LDNS_RCODE_REFUSED, "%snot a host name no rule can match", "");
	kg_strlcpy(rec->name, chain[0], sizeof(rec->name));
	if (ldns_rr_get_class(qrr) != LDNS_RR_CLASS_IN)
		return refuse(q, rec, LDNS_RCODE_REFUSED, "%sclass other than IN", "");
	n = kg_dns_host_entries(r->doc, chain[0], ent, &allow_private);
	rec->rule_num = n > 0 ? ent[0].rule_id : 0;
	if (n <= 0)
		return refuse(q, rec, LDNS_RCODE_REFUSED, "%sno host rule matches the name", "");
	if (!kg_dns_entries_resolvable(ent, n))
		return refuse(q, rec, LDNS_RCODE_REFUSED, "%sthe name's host rules deny it", "");

	/* only the question goes upstream */
	st = ldns_resolver_send(&up, r->up, ldns_rr_owner(qrr), ldns_rr_get_type(qrr),
				LDNS_RR_CLASS_IN, LDNS_RD);
	if (st != LDNS_STATUS_OK || !up) {
		kgr_count(r, &r->st.failed);
		rec->decision = KG_DEC_ALLOW;
		set_rcode_text(rec, LDNS_RCODE_SERVFAIL);
		snprintf(rec->reason, sizeof(rec->reason), "upstream: %s",
			 ldns_get_errorstr_by_id(st));
		return bare_response(q, LDNS_RCODE_SERVFAIL);
	}
	answer = ldns_pkt_answer(up);
	/* the CNAME chain from the name asked (in whatever order it comes) */
	do {
		grew = false;
		for (a = 0; a < ldns_rr_list_rr_count(answer) && nchain <= MAX_CHAIN; a++) {
			ldns_rr *rr = ldns_rr_list_rr(answer, a);
			char owner[KG_HOST_MAX + 1], target[KG_HOST_MAX + 1];

			if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME || ldns_rr_rd_count(rr) < 1)
				continue;
			rdf_name(ldns_rr_owner(rr), text, sizeof(text));
			if (kg_host_name_normalize(text, owner) || !in_chain(chain, nchain, owner))
				continue;
			rdf_name(ldns_rr_rdf(rr, 0), text, sizeof(text));
			if (kg_host_name_normalize(text, target)) {
				ldns_pkt_free(up);
				return refuse(q, rec, LDNS_RCODE_REFUSED, "CNAME to '%.100s', not a host "
					      "name", text);
			}
			if (in_chain(chain, nchain, target))
				continue;
			kg_strlcpy(chain[nchain++], target, sizeof(chain[0]));
			grew = true;
		}
	} while (grew && nchain <= MAX_CHAIN);
	for (i = 1; i < nchain; i++) {
		struct kg_net_ent cent[KG_NET_ENTS];
		int cn = kg_dns_host_entries(r->doc, chain[i], cent, NULL);

		if (rec->ncnames < ARRAY_SIZE(rec->cnames))
			kg_strlcpy(rec->cnames[rec->ncnames++], chain[i], sizeof(rec->cnames[0]));
		if (cn > 0 && !kg_dns_entries_resolvable(cent, cn)) {
			ldns_pkt_free(up);
			rec->rule_num = cent[0].rule_id;
			return refuse(q, rec, LDNS_RCODE_REFUSED, "CNAME to '%.100s', a name the host "
				      "rules deny", chain[i]);
		}
	}
	/* the addresses of names on the chain; anything else in the answer is not learnt */
	for (a = 0; a < ldns_rr_list_rr_count(answer); a++) {
		ldns_rr *rr = ldns_rr_list_rr(answer, a);
		ldns_rr_type t = ldns_rr_get_type(rr);
		char owner[KG_HOST_MAX + 1];
		ldns_rdf *rd;

		if ((t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA) || ldns_rr_rd_count(rr) < 1)
			continue;
		rdf_name(ldns_rr_owner(rr), text, sizeof(text));
		if (kg_host_name_normalize(text, owner) || !in_chain(chain, nchain, owner))
			continue;
		rd = ldns_rr_rdf(rr, 0);
		if (naddrs == (int)ARRAY_SIZE(addrs))
			break;
		memset(addrs[naddrs], 0, 16);
		if (t == LDNS_RR_TYPE_A && ldns_rdf_size(rd) == 4) {
			addrs[naddrs][10] = addrs[naddrs][11] = 0xff;
			memcpy(addrs[naddrs] + 12, ldns_rdf_data(rd), 4);
		} else if (t == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rd) == 16) {
			memcpy(addrs[naddrs], ldns_rdf_data(rd), 16);
		} else {
			continue;
		}
		if (kg_dns_addr_private(addrs[naddrs]) && !allow_private) {
			char at[INET6_ADDRSTRLEN];

			addr_text(addrs[naddrs], at, sizeof(at));
			ldns_pkt_free(up);
			rec->naddrs = 1;
			kg_strlcpy(rec->addrs[0], at, sizeof(rec->addrs[0]));
			return refuse(q, rec, LDNS_RCODE_REFUSED, "the answer points at %s, a "
				      "loopback, private or link-local address (the rule has no "
				      "allow_private)", at);
		}
		if (ldns_rr_ttl(rr) < min_ttl)
			min_ttl = ldns_rr_ttl(rr);
		naddrs++;
	}
	/* learnt before the job sees the answer: its connect finds them */
	if (naddrs) {
		uint32_t floor = r->cfg.ttl_floor_sec ? r->cfg.ttl_floor_sec : KG_DNS_TTL_FLOOR_SEC;
		uint32_t keep = min_ttl < floor ? floor :
				min_ttl > KG_DNS_TTL_CEIL_SEC ? KG_DNS_TTL_CEIL_SEC : min_ttl;

		rec->ttl = min_ttl;
		rec->expires_sec = keep;
		expires = kgr_now_ns() + (uint64_t)keep * 1000000000ull;
		nid = kgr_name_id(r, chain[0]);
		for (k = 0; k < naddrs; k++) {
			int err = kgr_learn(r, addrs[k], ent, nid, expires, r->policy_id);

			if (err) {
				ldns_pkt_free(up);
				kgr_count(r, &r->st.failed);
				rec->decision = KG_DEC_ALLOW;
				set_rcode_text(rec, LDNS_RCODE_SERVFAIL);
				snprintf(rec->reason, sizeof(rec->reason), "could not record the "
					 "answer's addresses for the job: %s", strerror(-err));
				return bare_response(q, LDNS_RCODE_SERVFAIL);
			}
			if (k < KG_DNS_REC_ADDRS)
				addr_text(addrs[k], rec->addrs[k], sizeof(rec->addrs[k]));
		}
		rec->naddrs = (unsigned int)naddrs;
		pthread_mutex_lock(&r->qmu);
		r->st.learnt += (uint64_t)naddrs;
		pthread_mutex_unlock(&r->qmu);
	}
	rec->decision = KG_DEC_ALLOW;
	set_rcode_text(rec, ldns_pkt_get_rcode(up));
	resp = up;
	ldns_pkt_set_id(resp, ldns_pkt_id(q));
	ldns_pkt_set_rd(resp, ldns_pkt_rd(q));
	return resp;
}

/* Answer wire for a query wire; *out NULL = send nothing. */
void kgr_handle(struct kg_resolver *r, const uint8_t *wire, size_t len, bool tcp,
		   uint8_t **out, size_t *outlen)
{
	struct kg_dns_record rec = {};
	ldns_pkt *q = NULL, *resp = NULL;
	size_t max = tcp ? 65535 : 512;

	*out = NULL;
	*outlen = 0;
	kgr_count(r, &r->st.queries);
	kg_strlcpy(rec.proto, tcp ? "tcp" : "udp", sizeof(rec.proto));
	if (ldns_wire2pkt(&q, wire, len) != LDNS_STATUS_OK || !q) {
		kgr_count(r, &r->st.malformed);
		rec.decision = KG_DEC_DENY;
		kg_strlcpy(rec.name, "?", sizeof(rec.name));
		kg_strlcpy(rec.rcode, "none", sizeof(rec.rcode));
		snprintf(rec.reason, sizeof(rec.reason), "malformed DNS message (%zu bytes): "
			 "dropped", len);
		kgr_push_record(r, &rec);
		return;
	}
	if (!tcp && ldns_pkt_edns(q) && ldns_pkt_edns_udp_size(q) > max)
		max = ldns_pkt_edns_udp_size(q);
	if (kgr_follow_generation(r)) {
		resp = resolve(r, q, &rec);
	} else {
		kgr_count(r, &r->st.failed);
		resp = refuse(q, &rec, LDNS_RCODE_SERVFAIL, "%sthe job's policy was just changed "
			      "and the resolver has not been given the new rules yet", "");
	}
	kgr_count(r, rec.decision == KG_DEC_ALLOW ? &r->st.answered : &r->st.refused);
	if (resp && ldns_pkt2wire(out, resp, outlen) == LDNS_STATUS_OK && *outlen > max) {
		/* too big for the client's UDP: the question and TC, it retries on TCP */
		ldns_pkt *tc = bare_response(q, ldns_pkt_get_rcode(resp));

		free(*out);
		*out = NULL;
		*outlen = 0;
		if (tc) {
			ldns_pkt_set_tc(tc, true);
			if (ldns_pkt2wire(out, tc, outlen) != LDNS_STATUS_OK) {
				*out = NULL;
				*outlen = 0;
			}
			ldns_pkt_free(tc);
		}
	}
	kgr_push_record(r, &rec);
	ldns_pkt_free(resp);
	ldns_pkt_free(q);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/resolver.c - the per-job resolver: see dns/resolver.h.
 *
 * One thread, one poll loop: UDP and TCP on 127.0.0.1 and ::1 (the same
 * port for both protocols of a family, as kg_dns_redirect has one port per
 * family), and an eventfd to stop or change policy.  A TCP client is served
 * until it closes, idles for a second or sends garbage; the resolver only
 * serves one job, so a job that stalls it stalls its own name lookups.
 *
 * Every DNS message is parsed and built by ldns; only the two-byte length
 * that frames a message on TCP (RFC 1035 4.2.2) is written here.
 */
#include "dns/resolver.h"
#include "dns/match.h"
#include "dns/names.h"
#include "common.h"
#include "kernel/loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define REC_QUEUE	1024		/* records waiting for the controller */
#define MAX_NAMES	4096		/* names with an id (events carry them) */
#define LEARNT_SLOTS	(2 * KG_DNS_MAX_PER_JOB)
#define MAX_CHAIN	8		/* CNAMEs followed */

struct learnt {
	uint8_t addr[16];
	uint64_t expires_ns;
	uint32_t name_id;
	bool used;
};

struct kg_resolver {
	struct kg_resolver_cfg cfg;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;		/* doc, policy id, learnt: held while serving */
	pthread_mutex_t qmu;		/* queue, stats: never held for long */
	pthread_cond_t policy_cv;	/* (mu) the controller handed over a generation */
	pthread_cond_t room_cv;		/* (qmu) the controller took records */
	bool halting;			/* (qmu) no more waiting for room */
	uint32_t ovfl4, ovfl6;		/* the UDP sockets' drop counters, last seen */
	const struct kg_policy_doc *doc;
	uint32_t policy_id;
	uint32_t wanted_id;		/* (qmu) the job's generation, when not policy_id */
	bool stopping;
	int stop_fd;			/* eventfd: stop or policy change */
	int rec_fd;			/* eventfd: records waiting */
	int udp4, tcp4, udp6, tcp6;
	uint16_t port4, port6;		/* host order */
	uint32_t addr4;			/* network order */
	int addrs_fd, names_fd, redirect_fd, jobs_fd;
	ldns_resolver *up;
	struct kg_dns_record *queue;
	size_t qhead, qlen;
	struct kg_resolver_stats st;
	/* learnt addresses (open addressing by address; rebuilt on sweep) */
	struct learnt *learnt;
	size_t nlearnt;
	char *names[MAX_NAMES + 1];	/* id -> name; id 0 unused */
	uint32_t nnames;
	uint64_t next_sweep_ns;
};

static bool follow_generation(struct kg_resolver *r);

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

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

/* ---- records for the audit trail ------------------------------------------------ */

/* Called by the resolver thread at the end of a query, holding mu.  A full
 * queue is back-pressure, not loss: the thread lets go of mu (so a policy
 * hand-over cannot deadlock on it) and waits for the controller, so the
 * job's lookups slow down to what the audit trail takes.  Only once the
 * resolver is halting does a record that finds no room count as lost. */
static void push_record(struct kg_resolver *r, const struct kg_dns_record *rec)
{
	uint64_t one = 1;

	pthread_mutex_lock(&r->qmu);
	if (r->qlen == REC_QUEUE && !r->halting) {
		pthread_mutex_unlock(&r->qmu);
		pthread_mutex_unlock(&r->mu);
		pthread_mutex_lock(&r->qmu);
		while (r->qlen == REC_QUEUE && !r->halting) {
			if (write(r->rec_fd, &one, sizeof(one)) < 0) {
				/* saturates only after 2^64-2 writes */
			}
			pthread_cond_wait(&r->room_cv, &r->qmu);
		}
		pthread_mutex_unlock(&r->qmu);
		pthread_mutex_lock(&r->mu);
		pthread_mutex_lock(&r->qmu);
	}
	if (r->qlen == REC_QUEUE) {
		r->st.records_lost++;
	} else {
		r->queue[(r->qhead + r->qlen) % REC_QUEUE] = *rec;
		r->qlen++;
	}
	pthread_mutex_unlock(&r->qmu);
	if (write(r->rec_fd, &one, sizeof(one)) < 0) {
		/* the counter saturates only after 2^64-2 writes */
	}
}

bool kg_resolver_next(struct kg_resolver *r, struct kg_dns_record *out)
{
	uint64_t v;
	bool got = false;

	if (read(r->rec_fd, &v, sizeof(v)) < 0) {
		/* nothing signalled (EAGAIN): the queue may still hold records */
	}
	pthread_mutex_lock(&r->qmu);
	if (r->qlen) {
		*out = r->queue[r->qhead];
		r->qhead = (r->qhead + 1) % REC_QUEUE;
		r->qlen--;
		got = true;
		if (r->qlen == REC_QUEUE - 1)
			pthread_cond_signal(&r->room_cv);
	}
	pthread_mutex_unlock(&r->qmu);
	return got;
}

int kg_resolver_fd(const struct kg_resolver *r)
{
	return r->rec_fd;
}

void kg_resolver_stats(struct kg_resolver *r, struct kg_resolver_stats *out)
{
	pthread_mutex_lock(&r->qmu);
	*out = r->st;
	pthread_mutex_unlock(&r->qmu);
}

void kg_resolver_addr(const struct kg_resolver *r, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &r->addr4, a, sizeof(a));
	if (r->port6)
		snprintf(buf, len, "%s:%u and [::1]:%u", a, r->port4, r->port6);
	else
		snprintf(buf, len, "%s:%u", a, r->port4);
}

static void count(struct kg_resolver *r, uint64_t *field)
{
	pthread_mutex_lock(&r->qmu);
	(*field)++;
	pthread_mutex_unlock(&r->qmu);
}

/* ---- names and learnt addresses ---------------------------------------------- */

/* The id of a name (events of connections decided through it carry it). */
static uint32_t name_id(struct kg_resolver *r, const char *name)
{
	struct kg_dns_name_key key = { .cgid = r->cfg.cgid };
	struct kg_dns_name val = {};
	uint32_t i;

	for (i = r->nnames; i >= 1; i--)	/* recent names first */
		if (!strcmp(r->names[i], name))
			return i;
	if (r->nnames == MAX_NAMES)
		return 0;
	r->names[r->nnames + 1] = strdup(name);
	if (!r->names[r->nnames + 1])
		return 0;
	key.name_id = ++r->nnames;
	kg_strlcpy(val.name, name, sizeof(val.name));
	if (bpf_map_update_elem(r->names_fd, &key, &val, BPF_ANY))
		return 0;	/* the decision stands; its event just lacks the name */
	return key.name_id;
}

static size_t slot_of(const uint8_t addr[16])
{
	uint64_t h = KG_FNV_OFFSET;
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ addr[i]) * KG_FNV_PRIME;
	return (size_t)(h % LEARNT_SLOTS);
}

static struct learnt *learnt_find(struct kg_resolver *r, const uint8_t addr[16], bool add)
{
	size_t s = slot_of(addr), n;

	for (n = 0; n < LEARNT_SLOTS; n++, s = (s + 1) % LEARNT_SLOTS) {
		struct learnt *l = &r->learnt[s];

		if (!l->used) {
			if (!add || r->nlearnt >= KG_DNS_MAX_PER_JOB)
				return NULL;
			memcpy(l->addr, addr, 16);
			l->used = true;
			r->nlearnt++;
			return l;
		}
		if (!memcmp(l->addr, addr, 16))
			return l;
	}
	return NULL;
}

static void map_delete(struct kg_resolver *r, const uint8_t addr[16])
{
	struct kg_dns_key key = { .cgid = r->cfg.cgid };

	memcpy(key.addr, addr, 16);
	bpf_map_delete_elem(r->addrs_fd, &key);
}

/* Keep the entries that pass keep(); rebuild the open-addressing table. */
static void learnt_filter(struct kg_resolver *r, bool (*keep)(struct kg_resolver *, struct learnt *))
{
	struct learnt *old = r->learnt, *l;
	size_t i;

	r->learnt = calloc(LEARNT_SLOTS, sizeof(*r->learnt));
	if (!r->learnt) {	/* keep the old table: nothing is swept this time */
		r->learnt = old;
		return;
	}
	r->nlearnt = 0;
	for (i = 0; i < LEARNT_SLOTS; i++) {
		if (!old[i].used)
			continue;
		if (!keep(r, &old[i])) {
			map_delete(r, old[i].addr);
			continue;
		}
		l = learnt_find(r, old[i].addr, true);
		if (l)
			*l = old[i];
	}
	free(old);
}

static bool keep_live(struct kg_resolver *r, struct learnt *l)
{
	(void)r;
	return l->expires_ns > now_ns();
}

static int learn(struct kg_resolver *r, const uint8_t addr[16], const struct kg_net_ent *ent,
		 uint32_t nid, uint64_t expires_ns, uint32_t policy_id)
{
	struct kg_dns_key key = { .cgid = r->cfg.cgid };
	struct kg_dns_addr val = { .expires_ns = expires_ns, .policy_id = policy_id,
				   .name_id = nid };
	struct learnt *l = learnt_find(r, addr, true);

	if (!l && r->nlearnt >= KG_DNS_MAX_PER_JOB) {
		learnt_filter(r, keep_live);
		l = learnt_find(r, addr, true);
	}
	if (!l)
		return -ENOSPC;
	memcpy(key.addr, addr, 16);
	memcpy(val.ent, ent, sizeof(val.ent));
	if (bpf_map_update_elem(r->addrs_fd, &key, &val, BPF_ANY))
		return -errno;
	/* a later answer may shorten the life of an address: the last one wins */
	l->expires_ns = expires_ns;
	l->name_id = nid;
	return 0;
}

/* After a push: each live address gets the new rules of its name under the
 * new generation, or goes when the new policy no longer resolves the name. */
static bool keep_relearn(struct kg_resolver *r, struct learnt *l)
{
	struct kg_net_ent ent[KG_NET_ENTS];
	struct kg_dns_key key = { .cgid = r->cfg.cgid };
	struct kg_dns_addr val = {};
	int n;

	if (l->expires_ns <= now_ns() || !l->name_id || l->name_id > r->nnames)
		return false;
	n = kg_dns_host_entries(r->doc, r->names[l->name_id], ent, NULL);
	if (n <= 0 || !kg_dns_entries_resolvable(ent, n))
		return false;
	memcpy(key.addr, l->addr, 16);
	val.expires_ns = l->expires_ns;
	val.policy_id = r->policy_id;
	val.name_id = l->name_id;
	memcpy(val.ent, ent, sizeof(val.ent));
	return bpf_map_update_elem(r->addrs_fd, &key, &val, BPF_ANY) == 0;
}

/* ---- one query ------------------------------------------------------------------ */

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
		count(r, &r->st.failed);
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
		expires = now_ns() + (uint64_t)keep * 1000000000ull;
		nid = name_id(r, chain[0]);
		for (k = 0; k < naddrs; k++) {
			int err = learn(r, addrs[k], ent, nid, expires, r->policy_id);

			if (err) {
				ldns_pkt_free(up);
				count(r, &r->st.failed);
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
static void handle(struct kg_resolver *r, const uint8_t *wire, size_t len, bool tcp,
		   uint8_t **out, size_t *outlen)
{
	struct kg_dns_record rec = {};
	ldns_pkt *q = NULL, *resp = NULL;
	size_t max = tcp ? 65535 : 512;

	*out = NULL;
	*outlen = 0;
	count(r, &r->st.queries);
	kg_strlcpy(rec.proto, tcp ? "tcp" : "udp", sizeof(rec.proto));
	if (ldns_wire2pkt(&q, wire, len) != LDNS_STATUS_OK || !q) {
		count(r, &r->st.malformed);
		rec.decision = KG_DEC_DENY;
		kg_strlcpy(rec.name, "?", sizeof(rec.name));
		kg_strlcpy(rec.rcode, "none", sizeof(rec.rcode));
		snprintf(rec.reason, sizeof(rec.reason), "malformed DNS message (%zu bytes): "
			 "dropped", len);
		push_record(r, &rec);
		return;
	}
	if (!tcp && ldns_pkt_edns(q) && ldns_pkt_edns_udp_size(q) > max)
		max = ldns_pkt_edns_udp_size(q);
	if (follow_generation(r)) {
		resp = resolve(r, q, &rec);
	} else {
		count(r, &r->st.failed);
		resp = refuse(q, &rec, LDNS_RCODE_SERVFAIL, "%sthe job's policy was just changed "
			      "and the resolver has not been given the new rules yet", "");
	}
	count(r, rec.decision == KG_DEC_ALLOW ? &r->st.answered : &r->st.refused);
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
	push_record(r, &rec);
	ldns_pkt_free(resp);
	ldns_pkt_free(q);
}

/* ---- transport ------------------------------------------------------------------ */

/* One datagram.  Read with recvmsg (the bytes only: ldns parses them) for
 * the socket's drop counter (SO_RXQ_OVFL): queries the kernel dropped
 * because the receive queue was full are counted, never silently gone. */
static void serve_udp(struct kg_resolver *r, int fd, uint32_t *ovfl)
{
	static uint8_t wire[65536];	/* only the resolver thread reads here */
	struct sockaddr_storage from;
	char cbuf[CMSG_SPACE(sizeof(uint32_t))];
	struct iovec iov = { wire, sizeof(wire) };
	struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
			    .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	size_t outlen;
	uint8_t *out;
	ssize_t len = recvmsg(fd, &m, MSG_DONTWAIT);

	if (len < 0)
		return;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
			uint32_t now;

			memcpy(&now, CMSG_DATA(c), sizeof(now));
			if (now != *ovfl) {
				pthread_mutex_lock(&r->qmu);
				r->st.dropped += now - *ovfl;
				pthread_mutex_unlock(&r->qmu);
				*ovfl = now;
			}
		}
	handle(r, wire, (size_t)len, false, &out, &outlen);
	if (out && sendto(fd, out, outlen, MSG_DONTWAIT, (struct sockaddr *)&from, m.msg_namelen) < 0)
		count(r, &r->st.unsent);	/* the client's queue full, or it went away */
	free(out);
}

static void serve_tcp(struct kg_resolver *r, int lfd)
{
	struct timeval tv = { .tv_sec = 1 };
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (;;) {
		size_t len = 0, outlen;
		uint8_t *wire = ldns_tcp_read_wire_timeout(fd, &len, tv), *out;
		uint16_t be;
		struct iovec iov[2];

		if (!wire)
			break;
		handle(r, wire, len, true, &out, &outlen);
		LDNS_FREE(wire);
		if (!out)
			break;
		be = htons((uint16_t)outlen);
		iov[0] = (struct iovec){ &be, 2 };
		iov[1] = (struct iovec){ out, outlen };
		if (writev(fd, iov, 2) != (ssize_t)(outlen + 2)) {
			free(out);
			break;
		}
		free(out);
	}
	close(fd);
}

/* A push flips the job's generation in kg_jobs; the controller hands the
 * resolver the new rules on its next tick.  A query that arrives in between
 * must not be decided (nor its addresses learnt) under the old generation,
 * whose entries the kernel already ignores: ask the controller now and wait
 * for it (mu is released meanwhile), at most 2 s.  false = still behind. */
static bool follow_generation(struct kg_resolver *r)
{
	struct kg_job kj;
	struct timespec until;
	uint64_t one = 1;

	if (bpf_map_lookup_elem(r->jobs_fd, &r->cfg.cgid, &kj) || kj.policy_id == r->policy_id)
		return true;	/* no entry: the job is ending; the kernel refuses anyway */
	pthread_mutex_lock(&r->qmu);
	r->wanted_id = kj.policy_id;
	pthread_mutex_unlock(&r->qmu);
	if (write(r->rec_fd, &one, sizeof(one)) < 0) {
		/* saturates only after 2^64-2 writes */
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	while (r->policy_id != kj.policy_id && !r->stopping)
		if (pthread_cond_timedwait(&r->policy_cv, &r->mu, &until))
			break;
	return r->policy_id == kj.policy_id;
}

uint32_t kg_resolver_wanted_policy(struct kg_resolver *r)
{
	uint32_t id;

	pthread_mutex_lock(&r->qmu);
	id = r->wanted_id;
	pthread_mutex_unlock(&r->qmu);
	return id;
}

static void *resolver_main(void *arg)
{
	struct kg_resolver *r = arg;

	for (;;) {
		struct pollfd p[5] = {
			{ .fd = r->stop_fd, .events = POLLIN },
			{ .fd = r->udp4, .events = POLLIN },
			{ .fd = r->tcp4, .events = POLLIN },
			{ .fd = r->udp6, .events = POLLIN },
			{ .fd = r->tcp6, .events = POLLIN },
		};
		uint64_t v;

		if (poll(p, 5, 1000) < 0 && errno != EINTR)
			break;
		if ((p[0].revents & POLLIN) && read(r->stop_fd, &v, sizeof(v)) < 0) {
			/* level-triggered: read again next time */
		}
		/* the doc and policy id only change under the lock */
		pthread_mutex_lock(&r->mu);
		if (r->stopping) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		if (p[1].revents & POLLIN)
			serve_udp(r, r->udp4, &r->ovfl4);
		if (p[3].revents & POLLIN)
			serve_udp(r, r->udp6, &r->ovfl6);
		if (p[2].revents & POLLIN)
			serve_tcp(r, r->tcp4);
		if (p[4].revents & POLLIN)
			serve_tcp(r, r->tcp6);
		if (now_ns() >= r->next_sweep_ns) {
			learnt_filter(r, keep_live);
			r->next_sweep_ns = now_ns() + 1000000000ull;
		}
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ---- setup ---------------------------------------------------------------------- */

static int upstream_open(struct kg_resolver *r, const char *spec, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *h = spec;
	size_t hl;
	ldns_rdf *ns;
	unsigned long p = 53;
	char *end;

	if (!spec) {
		static const char fix[] = "give one with --dns-upstream ADDR (or $KGATE_DNS_UPSTREAM)";
		ldns_status st;

		if (access("/etc/resolv.conf", F_OK) && errno == ENOENT)
			return snprintf(err, errlen, "no /etc/resolv.conf, so no upstream resolver for "
					"the job's names: %s", fix), -1;
		st = ldns_resolver_new_frm_file(&r->up, NULL);
		if (st != LDNS_STATUS_OK || !r->up)
			return snprintf(err, errlen, "cannot read the upstream resolvers from "
					"/etc/resolv.conf (%s): %s", ldns_get_errorstr_by_id(st),
					fix), -1;
		if (!ldns_resolver_nameserver_count(r->up))
			return snprintf(err, errlen, "/etc/resolv.conf has no nameserver line, so no "
					"upstream resolver for the job's names: %s", fix), -1;
	} else {
		if (spec[0] == '[') {
			const char *close = strchr(spec, ']');

			if (!close)
				return snprintf(err, errlen, "upstream '%s': missing ']'", spec), -1;
			h = spec + 1;
			hl = (size_t)(close - h);
			if (close[1] == ':')
				port = close + 2;
			else if (close[1])
				return snprintf(err, errlen, "upstream '%s': junk after ']'", spec), -1;
		} else {
			const char *colon = strchr(spec, ':');

			if (colon && strchr(colon + 1, ':'))
				colon = NULL;	/* a bare IPv6 address */
			hl = colon ? (size_t)(colon - spec) : strlen(spec);
			port = colon ? colon + 1 : NULL;
		}
		if (hl >= sizeof(host))
			return snprintf(err, errlen, "upstream '%s': address too long", spec), -1;
		memcpy(host, h, hl);
		host[hl] = '\0';
		if (port) {
			errno = 0;
			p = strtoul(port, &end, 10);
			if (!*port || *end || errno || p < 1 || p > 65535)
				return snprintf(err, errlen, "upstream '%s': bad port", spec), -1;
		}
		ns = ldns_rdf_new_frm_str(strchr(host, ':') ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A,
					  host);
		if (!ns)
			return snprintf(err, errlen, "upstream '%s': not an IP address", spec), -1;
		r->up = ldns_resolver_new();
		if (!r->up || ldns_resolver_push_nameserver(r->up, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			return snprintf(err, errlen, "upstream '%s': out of memory", spec), -1;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(r->up, (uint16_t)p);
	}
	ldns_resolver_set_recursive(r->up, true);
	ldns_resolver_set_fallback(r->up, true);	/* TCP when the answer is truncated */
	ldns_resolver_set_retry(r->up, 1);
	ldns_resolver_set_timeout(r->up, (struct timeval){ .tv_sec = 2 });
	ldns_resolver_set_dnssec(r->up, false);
	return 0;
}

static int bind_pair(int family, const void *addr, int *udp, int *tcp, uint16_t *port)
{
	int attempt;

	for (attempt = 0; attempt < 32; attempt++) {
		struct sockaddr_storage ss = {};
		socklen_t sl;
		int one = 1, rcvbuf = 4 << 20;

		if (family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&ss;

			s->sin_family = AF_INET;
			memcpy(&s->sin_addr, addr, 4);
			sl = sizeof(*s);
		} else {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

			s->sin6_family = AF_INET6;
			memcpy(&s->sin6_addr, addr, 16);
			sl = sizeof(*s);
		}
		*udp = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		*tcp = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (*udp < 0 || *tcp < 0)
			goto fail;
		if (family == AF_INET6)
			setsockopt(*udp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)),
			setsockopt(*tcp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(*tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* room for a burst of the job's queries (root may exceed rmem_max),
		 * and the count of those that found none */
		if (setsockopt(*udp, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
			setsockopt(*udp, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
		setsockopt(*udp, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
		if (bind(*udp, (struct sockaddr *)&ss, sl) || getsockname(*udp, (struct sockaddr *)&ss, &sl))
			goto fail;
		*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (!bind(*tcp, (struct sockaddr *)&ss, sl) && !listen(*tcp, 64))
			return 0;
		/* that port is taken for TCP: another one */
		close_fd(udp);
		close_fd(tcp);
		continue;
fail:
		close_fd(udp);
		close_fd(tcp);
		return -errno;
	}
	return -EADDRINUSE;
}

struct kg_resolver *kg_resolver_start(const struct kg_resolver_cfg *cfg)
{
	struct kg_resolver *r = calloc(1, sizeof(*r));
	struct kg_dns_redirect red = {};
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	char err[256];
	int e;

	if (!r)
		return kg_err("dns: out of memory"), NULL;
	r->cfg = *cfg;
	r->doc = cfg->doc;
	r->policy_id = cfg->policy_id;
	r->stop_fd = r->rec_fd = r->udp4 = r->tcp4 = r->udp6 = r->tcp6 = -1;
	r->addrs_fd = r->names_fd = r->redirect_fd = r->jobs_fd = -1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->qmu, NULL);
	pthread_cond_init(&r->policy_cv, NULL);
	pthread_cond_init(&r->room_cv, NULL);
	r->queue = calloc(REC_QUEUE, sizeof(*r->queue));
	r->learnt = calloc(LEARNT_SLOTS, sizeof(*r->learnt));
	if (!r->queue || !r->learnt) {
		kg_err("dns: out of memory");
		goto fail;
	}
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->rec_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0 || r->rec_fd < 0) {
		kg_err("dns: eventfd: %s", strerror(errno));
		goto fail;
	}
	r->addrs_fd = kg_open_pinned_map("kg_dns_addrs");
	r->names_fd = kg_open_pinned_map("kg_dns_names");
	r->redirect_fd = kg_open_pinned_map("kg_dns_redirect");
	r->jobs_fd = kg_open_pinned_map("kg_jobs");
	if (r->addrs_fd < 0 || r->names_fd < 0 || r->redirect_fd < 0 || r->jobs_fd < 0) {
		kg_err("dns: cannot open kgate's DNS maps in %s (are the programs loaded?)",
		       kg_pin_dir());
		goto fail;
	}
	if (upstream_open(r, cfg->upstream, err, sizeof(err))) {
		kg_err("dns: %s", err);
		goto fail;
	}
	if (inet_pton(AF_INET, cfg->listen4 ? cfg->listen4 : "127.0.0.1", &r->addr4) != 1 ||
	    (ntohl(r->addr4) >> 24) != 127) {
		kg_err("dns: listen address '%s' is not an IPv4 loopback address", cfg->listen4);
		goto fail;
	}
	e = bind_pair(AF_INET, &r->addr4, &r->udp4, &r->tcp4, &r->port4);
	if (e) {
		kg_err("dns: cannot serve on loopback: %s", strerror(-e));
		goto fail;
	}
	if (bind_pair(AF_INET6, &lo6, &r->udp6, &r->tcp6, &r->port6))
		r->port6 = 0;	/* no ::1 here: the job's IPv6 DNS is refused */
	r->next_sweep_ns = now_ns() + 1000000000ull;
	if (pthread_create(&r->thread, NULL, resolver_main, r)) {
		kg_err("dns: cannot start the resolver thread");
		goto fail;
	}
	r->started = true;
	red.addr4 = r->addr4;
	red.port4 = htons(r->port4);
	red.port6 = htons(r->port6);
	memcpy(red.addr6, &lo6, 16);
	if (bpf_map_update_elem(r->redirect_fd, &cfg->cgid, &red, BPF_ANY)) {
		kg_err("dns: cannot register the job's resolver: %s", strerror(errno));
		goto fail;
	}
	return r;
fail:
	kg_resolver_stop(r);
	return NULL;
}

void kg_resolver_set_policy(struct kg_resolver *r, const struct kg_policy_doc *doc,
			    uint32_t policy_id)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->doc = doc;
	r->policy_id = policy_id;
	learnt_filter(r, keep_relearn);
	pthread_cond_broadcast(&r->policy_cv);
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_lock(&r->qmu);
	if (r->wanted_id == policy_id)
		r->wanted_id = 0;
	pthread_mutex_unlock(&r->qmu);
}

void kg_resolver_halt(struct kg_resolver *r)
{
	uint64_t one = 1;

	if (!r)
		return;
	if (r->redirect_fd >= 0)
		bpf_map_delete_elem(r->redirect_fd, &r->cfg.cgid);
	if (r->started) {
		pthread_mutex_lock(&r->qmu);
		r->halting = true;
		pthread_cond_broadcast(&r->room_cv);
		pthread_mutex_unlock(&r->qmu);
		pthread_mutex_lock(&r->mu);
		r->stopping = true;
		pthread_cond_broadcast(&r->policy_cv);
		pthread_mutex_unlock(&r->mu);
		if (write(r->stop_fd, &one, sizeof(one)) < 0) {
			/* an eventfd write fails only on overflow */
		}
		pthread_join(r->thread, NULL);
		r->started = false;
	}
}

void kg_resolver_stop(struct kg_resolver *r)
{
	uint32_t i;

	if (!r)
		return;
	kg_resolver_halt(r);
	for (i = 0; r->learnt && i < LEARNT_SLOTS; i++)
		if (r->learnt[i].used && r->addrs_fd >= 0)
			map_delete(r, r->learnt[i].addr);
	for (i = 1; i <= r->nnames; i++) {
		struct kg_dns_name_key key = { .cgid = r->cfg.cgid, .name_id = i };

		if (r->names_fd >= 0)
			bpf_map_delete_elem(r->names_fd, &key);
		free(r->names[i]);
	}
	if (r->up)
		ldns_resolver_deep_free(r->up);
	close_fd(&r->udp4);
	close_fd(&r->tcp4);
	close_fd(&r->udp6);
	close_fd(&r->tcp6);
	close_fd(&r->stop_fd);
	close_fd(&r->rec_fd);
	close_fd(&r->addrs_fd);
	close_fd(&r->names_fd);
	close_fd(&r->redirect_fd);
	close_fd(&r->jobs_fd);
	pthread_cond_destroy(&r->policy_cv);
	pthread_cond_destroy(&r->room_cv);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->qmu);
	free(r->queue);
	free(r->learnt);
	free(r);
}

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dns/internal.h - the state of one job's resolver (struct kg_resolver),
 * private to the files of the resolver (the API is dns/resolver.h):
 *   resolver.c  its life: start, a pushed policy handed over, halt, stop
 *   serve.c     its sockets: the loopback pair it serves on, the thread that
 *               serves them, the upstream it asks
 *   answer.c    one query decided and answered (the upstream's answer checked)
 *   learnt.c    names and learnt addresses, in kg_dns_names and kg_dns_addrs
 *   records.c   the decisions queued for the controller, and the counters
 *
 * Locks: mu is held by the thread while it serves (doc, policy id, learnt,
 * names); qmu guards the queue, the counters and wanted_id, never for long.
 */
#ifndef KGATE_DNS_INTERNAL_H
#define KGATE_DNS_INTERNAL_H

#include <ldns/ldns.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/resolver.h"

#define REC_QUEUE	1024		/* records waiting for the controller */
#define MAX_NAMES	4096		/* names with an id (events carry them) */
#define LEARNT_SLOTS	(2 * KG_DNS_MAX_PER_JOB)

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

/* ---- resolver.c ------------------------------------------------------------------ */

uint64_t kgr_now_ns(void);
/* Close *fd if open; -1 after. */
void kgr_close_fd(int *fd);
/* Called by the thread with mu held before it decides a query: true when
 * the resolver has the rules of the job's current generation (waits up to
 * 2 s for the controller to hand them over after a push). */
bool kgr_follow_generation(struct kg_resolver *r);

/* ---- serve.c --------------------------------------------------------------------- */

/* r->up for "ADDR", "ADDR:PORT", "[V6]:PORT", or /etc/resolv.conf's
 * nameservers when spec is NULL; -1 with err filled. */
int kgr_upstream_open(struct kg_resolver *r, const char *spec, char *err, size_t errlen);
/* A UDP and a TCP socket on the same free port of addr; 0 or -errno. */
int kgr_bind_pair(int family, const void *addr, int *udp, int *tcp, uint16_t *port);
/* The resolver's thread (arg: the struct kg_resolver). */
void *kgr_resolver_main(void *arg);

/* ---- answer.c -------------------------------------------------------------------- */

/* Answer wire for a query wire (mu held); *out NULL = send nothing. */
void kgr_handle(struct kg_resolver *r, const uint8_t *wire, size_t len, bool tcp,
		uint8_t **out, size_t *outlen);

/* ---- learnt.c -------------------------------------------------------------------- */

/* The id of a name (0 = none), entered in kg_dns_names. */
uint32_t kgr_name_id(struct kg_resolver *r, const char *name);
/* Write addr with ent into kg_dns_addrs for the job; 0 or -errno. */
int kgr_learn(struct kg_resolver *r, const uint8_t addr[16], const struct kg_net_ent *ent,
	      uint32_t nid, uint64_t expires_ns, uint32_t policy_id);
void kgr_map_delete(struct kg_resolver *r, const uint8_t addr[16]);
void kgr_learnt_filter(struct kg_resolver *r, bool (*keep)(struct kg_resolver *, struct learnt *));
/* keep(): the address has not expired */
bool kgr_keep_live(struct kg_resolver *r, struct learnt *l);
/* keep(): the address rewritten under the new generation's rules */
bool kgr_keep_relearn(struct kg_resolver *r, struct learnt *l);

/* ---- records.c ------------------------------------------------------------------- */

/* Queue a decision for the controller (mu held; may wait for room). */
void kgr_push_record(struct kg_resolver *r, const struct kg_dns_record *rec);
/* One more in a counter of r->st. */
void kgr_count(struct kg_resolver *r, uint64_t *field);

#endif

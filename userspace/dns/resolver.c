// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/resolver.c - the per-job resolver: see dns/resolver.h; its parts are
 * named in dns/internal.h.  This file: its life (start, a pushed policy
 * handed over, halt, stop).
 */
#include "dns/internal.h"
#include "common.h"
#include "kernel/loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

uint64_t kgr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kgr_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
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

/* A push flips the job's generation in kg_jobs; the controller hands the
 * resolver the new rules on its next tick.  A query that arrives in between
 * must not be decided (nor its addresses learnt) under the old generation,
 * whose entries the kernel already ignores: ask the controller now and wait
 * for it (mu is released meanwhile), at most 2 s.  false = still behind. */
bool kgr_follow_generation(struct kg_resolver *r)
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
	if (kgr_upstream_open(r, cfg->upstream, err, sizeof(err))) {
		kg_err("dns: %s", err);
		goto fail;
	}
	if (inet_pton(AF_INET, cfg->listen4 ? cfg->listen4 : "127.0.0.1", &r->addr4) != 1 ||
	    (ntohl(r->addr4) >> 24) != 127) {
		kg_err("dns: listen address '%s' is not an IPv4 loopback address", cfg->listen4);
		goto fail;
	}
	e = kgr_bind_pair(AF_INET, &r->addr4, &r->udp4, &r->tcp4, &r->port4);
	if (e) {
		kg_err("dns: cannot serve on loopback: %s", strerror(-e));
		goto fail;
	}
	if (kgr_bind_pair(AF_INET6, &lo6, &r->udp6, &r->tcp6, &r->port6))
		r->port6 = 0;	/* no ::1 here: the job's IPv6 DNS is refused */
	r->next_sweep_ns = kgr_now_ns() + 1000000000ull;
	if (pthread_create(&r->thread, NULL, kgr_resolver_main, r)) {
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
	kgr_learnt_filter(r, kgr_keep_relearn);
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
			kgr_map_delete(r, r->learnt[i].addr);
	for (i = 1; i <= r->nnames; i++) {
		struct kg_dns_name_key key = { .cgid = r->cfg.cgid, .name_id = i };

		if (r->names_fd >= 0)
			bpf_map_delete_elem(r->names_fd, &key);
		free(r->names[i]);
	}
	if (r->up)
		ldns_resolver_deep_free(r->up);
	kgr_close_fd(&r->udp4);
	kgr_close_fd(&r->tcp4);
	kgr_close_fd(&r->udp6);
	kgr_close_fd(&r->tcp6);
	kgr_close_fd(&r->stop_fd);
	kgr_close_fd(&r->rec_fd);
	kgr_close_fd(&r->addrs_fd);
	kgr_close_fd(&r->names_fd);
	kgr_close_fd(&r->redirect_fd);
	kgr_close_fd(&r->jobs_fd);
	pthread_cond_destroy(&r->policy_cv);
	pthread_cond_destroy(&r->room_cv);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->qmu);
	free(r->queue);
	free(r->learnt);
	free(r);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/records.c - what the resolver thread hands the controller
 * (dns/internal.h): a bounded queue of decisions, signalled on an eventfd,
 * that the controller drains into the audit trail from its own thread, and
 * the counters.
 */
#include "dns/internal.h"

#include <pthread.h>
#include <unistd.h>

/* Called by the resolver thread at the end of a query, holding mu.  A full
 * queue is back-pressure, not loss: the thread lets go of mu (so a policy
 * hand-over cannot deadlock on it) and waits for the controller, so the
 * job's lookups slow down to what the audit trail takes.  Only once the
 * resolver is halting does a record that finds no room count as lost. */
void kgr_push_record(struct kg_resolver *r, const struct kg_dns_record *rec)
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

void kgr_count(struct kg_resolver *r, uint64_t *field)
{
	pthread_mutex_lock(&r->qmu);
	(*field)++;
	pthread_mutex_unlock(&r->qmu);
}

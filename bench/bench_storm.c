// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_storm.c - event storm: many threads of a governed job perform
 * denied operations for several seconds while this process consumes the
 * ring buffer the way a controller does.
 *
 * Figures: attempts, decisions, events received and decisions counted lost
 * per second, the consumer's wake-ups (voluntary context switches of this
 * process); and the exact accounting check that every deny decision is
 * either in a received event (an event may stand for count identical
 * refusals) or counted lost:
 *
 *     Δ decisions[deny] == Σ count of received + Δ events_lost   (kg_counters)
 *     Δ events_sent     == received
 *
 * The denied operation is a UDP sendto to 127.0.0.2 (kg_sendmsg4 refuses
 * it); one socket per thread, so the only other decisions are the threads'
 * socket() calls (allowed, no event).  KGATE_BENCH_STORM_TARGETS=distinct
 * sends each datagram to another port (every refusal a new target); the
 * default, "same", repeats one target.  Each refusal is one event (count
 * 1) either way today; the sums use count so that they stay right if
 * identical refusals are ever reported as one event.
 */
#include <pthread.h>
#include <sys/resource.h>
#include "bench.h"
#include "loops.h"

#define MAX_THREADS 64

struct storm_shm {
	volatile int stop;
	int distinct;
	uint64_t attempts[MAX_THREADS], refused[MAX_THREADS];
};

struct storm_arg {
	struct bench *b;
	struct storm_shm *shm;
	int threads;
	double seconds;
};

struct thr {
	struct storm_shm *shm;
	int idx;
};

static void *storm_thread(void *p)
{
	struct thr *t = p;
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint64_t n = 0, refused = 0;

	inet_pton(AF_INET, "127.0.0.2", &dst.sin_addr);
	while (fd >= 0 && !t->shm->stop) {
		if (t->shm->distinct)
			dst.sin_port = htons((unsigned short)(1 + (t->idx * 7919 + n) % 60000));
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
			refused++;
		n++;
	}
	t->shm->attempts[t->idx] = n;
	t->shm->refused[t->idx] = refused;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int storm_worker(void *p)
{
	struct storm_arg *a = p;
	pthread_t tid[MAX_THREADS];
	struct thr t[MAX_THREADS];
	int i, started = 0;

	for (i = 0; i < a->threads; i++) {
		t[i].shm = a->shm;
		t[i].idx = i;
		if (pthread_create(&tid[i], NULL, storm_thread, &t[i]))
			break;
		started++;
	}
	usleep((useconds_t)(a->seconds * 1e6));
	a->shm->stop = 1;
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	return started ? 0 : 10;
}

static uint64_t sum(const __u64 *v, size_t n)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += v[i];
	return s;
}

static uint64_t sum_u(const uint64_t *v, size_t n)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += v[i];
	return s;
}

int main(void)
{
	struct kg_counters c0 = {}, c1 = {};
	struct storm_arg a = {};
	struct storm_shm *shm;
	struct bench b;
	uint64_t t0, attempts, refused, dec, deny, sent, lost, recv, recv_count;
	struct rusage ru0, ru1;
	const char *targets = getenv("KGATE_BENCH_STORM_TARGETS");
	long wakeups;
	double secs;
	json_t *root;
	char *policy;
	bool exact;
	int rc;

	a.threads = bench_quick() ? 4 : 16;
	a.seconds = bench_quick() ? 2 : 5;
	if (getenv("KGATE_BENCH_STORM_THREADS"))
		a.threads = atoi(getenv("KGATE_BENCH_STORM_THREADS"));
	if (a.threads < 1 || a.threads > MAX_THREADS)
		a.threads = 16;
	if (bench_setup(&b, "storm")) {
		bench_teardown(&b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	policy = bench_base_policy(&b, "");
	shm = bench_shm(sizeof(*shm));
	if (!policy || !shm || bench_policy(&b, policy, NULL, NULL) || !b.ev) {
		free(policy);
		bench_teardown(&b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	free(policy);
	a.b = &b;
	a.shm = shm;
	shm->distinct = targets && !strcmp(targets, "distinct");
	kg_maps_read_counters(b.l, &c0);
	b.ev_received = b.ev_received_deny = b.ev_received_count = 0;
	bench_log("storm: %d threads of denied sendto (%s targets) for %.0f s", a.threads,
		  shm->distinct ? "distinct" : "same", a.seconds);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = bench_now();
	rc = bench_wait(&b, bench_spawn(&b, ARM_GOV, storm_worker, &a));
	secs = (bench_now() - t0) / 1e9;
	getrusage(RUSAGE_SELF, &ru1);
	wakeups = ru1.ru_nvcsw - ru0.ru_nvcsw;
	while (kg_events_poll(b.ev, 50) > 0)	/* whatever is still in flight */
		;
	kg_maps_read_counters(b.l, &c1);
	attempts = sum_u(shm->attempts, MAX_THREADS);
	refused = sum_u(shm->refused, MAX_THREADS);
	dec = sum(c1.decisions, KG_DEC_MAX) - sum(c0.decisions, KG_DEC_MAX);
	deny = c1.decisions[KG_DEC_DENY] - c0.decisions[KG_DEC_DENY];
	sent = sum(c1.events_sent, KG_EV_MAX) - sum(c0.events_sent, KG_EV_MAX);
	lost = sum(c1.events_lost, KG_EV_MAX) - sum(c0.events_lost, KG_EV_MAX);
	recv = b.ev_received;
	recv_count = b.ev_received_count;
	exact = deny == recv_count + lost && sent == recv;

	bench_md("## Event storm (bench_storm, %s targets)\n\n"
		 "%d threads of a governed job sent denied UDP datagrams for %.1f s while this "
		 "process consumed the ring buffer (worker exit %d).\n\n"
		 "| figure | total | per second |\n| --- | ---: | ---: |\n"
		 "| attempts (threads' count) | %llu | %.0f |\n"
		 "| refused (threads' count) | %llu | %.0f |\n"
		 "| decisions (kg_counters, all outcomes) | %llu | %.0f |\n"
		 "| deny decisions | %llu | %.0f |\n"
		 "| events sent (kg_counters) | %llu | %.0f |\n"
		 "| events received (ring buffer) | %llu | %.0f |\n"
		 "| decisions those events stand for (sum of counts) | %llu | %.0f |\n"
		 "| decisions counted lost (kg_counters) | %llu | %.0f |\n"
		 "| consumer wake-ups (voluntary context switches) | %ld | %.0f |\n\n"
		 "Accounting: deny decisions %llu %s sum of counts %llu + lost %llu; events sent %llu "
		 "%s received %llu: **%s** (target: zero unaccounted decisions; %lld unaccounted).\n\n",
		 shm->distinct ? "distinct" : "same", a.threads, secs, rc,
		 (unsigned long long)attempts, attempts / secs,
		 (unsigned long long)refused, refused / secs,
		 (unsigned long long)dec, dec / secs,
		 (unsigned long long)deny, deny / secs,
		 (unsigned long long)sent, sent / secs,
		 (unsigned long long)recv, recv / secs,
		 (unsigned long long)recv_count, recv_count / secs,
		 (unsigned long long)lost, lost / secs,
		 wakeups, wakeups / secs,
		 (unsigned long long)deny, deny == recv_count + lost ? "==" : "!=",
		 (unsigned long long)recv_count, (unsigned long long)lost, (unsigned long long)sent,
		 sent == recv ? "==" : "!=", (unsigned long long)recv,
		 exact ? "exact" : "MISMATCH", (long long)deny - (long long)(recv_count + lost));
	root = json_pack("{s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:b,s:I}",
			 "targets", shm->distinct ? "distinct" : "same",
			 "threads", a.threads, "seconds", secs,
			 "attempts", (json_int_t)attempts, "refused", (json_int_t)refused,
			 "decisions", (json_int_t)dec, "deny_decisions", (json_int_t)deny,
			 "events_sent", (json_int_t)sent, "events_received", (json_int_t)recv,
			 "decisions_received", (json_int_t)recv_count,
			 "events_lost", (json_int_t)lost, "wakeups", (json_int_t)wakeups,
			 "received_per_sec", recv / secs, "lost_per_sec", lost / secs,
			 "wakeups_per_sec", wakeups / secs, "accounting_exact", exact,
			 "unaccounted", (json_int_t)((long long)deny - (long long)(recv_count + lost)));
	bench_emit("bench_storm", root);
	json_decref(root);
	munmap(shm, sizeof(*shm));
	bench_teardown(&b);
	return 0;
}

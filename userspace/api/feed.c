// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/feed.c - what happens, as it happens: GET /api/v1/events.
 *
 * One thread follows the audit trail, which every kgate process writes to
 * (whoever consumes the kernel's events, the `kgate run` that holds a
 * call, whoever decides), so it sees every new request, every decision and
 * every job's start and end, whichever process caused them.  It keeps the
 * newest KG_FEED_RING of them, numbered; each stream (Server-Sent Events)
 * sends those its principal may see, and a client that reconnects with
 * Last-Event-ID resumes where it stopped, or is told to reload ("resync")
 * when the ring has moved past it.  The same pass counts recorded
 * decisions by operation and outcome for /metrics.
 *
 * Rotation: the follower keeps the segment it reads open and finishes it
 * before it moves to the new active one, so no record is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/internal.h"
#include "common.h"
#include "job/registry.h"

#define KG_FEED_RING		512
#define FEED_TICK_MS		200
#define KEEPALIVE_SEC		15
#define BATCH			64
#define MAX_COUNTS		128

struct fev {
	uint64_t seq;			/* 0 = empty slot */
	char type[20];
	char trace[40];
	char *data;			/* the event's JSON */
	struct kg_approval *req;	/* request events: who may see it */
	bool job_known;
	uint32_t uids[3];		/* job events: as_uid, invoker_uid, uid */
};

struct count {
	char op[32], decision[32];
	uint64_t n;
};

static const char *const approval_outcomes[] = {
	"requested", "approved", "denied", "expired", "stale", "queue_full",
};

struct kg_feed {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC: new events, stop, shutdown */
	bool stop, shutdown;
	struct fev ring[KG_FEED_RING];
	uint64_t next_seq;		/* the next event's number (the first is 1) */
	/* the follower (its thread only) */
	int fd;
	dev_t dev;
	ino_t ino;
	bool at_end_once;		/* the first segment is read from its end */
	char *line;
	size_t linelen, linecap;
	bool skipping;			/* an overlong line: until its newline */
	struct kg_approvals *q;		/* to read a request's approvers */
	struct {
		char trace[40];
		uint32_t uids[3];
	} jobs[256];
	unsigned int next_job;
	/* for /metrics (under mu) */
	struct count counts[MAX_COUNTS];
	size_t ncounts;
	uint64_t counts_other;
	uint64_t approvals[ARRAY_SIZE(approval_outcomes)];
	uint64_t jobs_started, jobs_ended, records;
};

/* ---- the follower ------------------------------------------------------------------ */

static int active_segment(char *buf, size_t len)
{
	char **paths = NULL;
	int n = 0, err;

	err = kg_audit_list_segments(NULL, &paths, &n);
	if (!err && n == 0)
		err = -ENOENT;
	if (!err && kg_strlcpy(buf, paths[n - 1], len))
		err = -ENAMETOOLONG;
	kg_audit_free_list(paths, n);
	return err;
}

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void push(struct kg_feed *f, const char *type, const char *trace, json_t *data,
		 struct kg_approval *req, const uint32_t *uids)
{
	char *text = json_dumps(data, JSON_COMPACT);
	struct fev *e;

	if (!text) {
		free(req);
		return;
	}
	pthread_mutex_lock(&f->mu);
	e = &f->ring[f->next_seq % KG_FEED_RING];
	free(e->data);
	free(e->req);
	memset(e, 0, sizeof(*e));
	e->seq = f->next_seq++;
	kg_strlcpy(e->type, type, sizeof(e->type));
	kg_strlcpy(e->trace, trace ? trace : "", sizeof(e->trace));
	e->data = text;
	e->req = req;
	if (uids) {
		e->job_known = true;
		memcpy(e->uids, uids, sizeof(e->uids));
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

static void count_decision(struct kg_feed *f, const char *op, const char *decision)
{
	size_t i;

	pthread_mutex_lock(&f->mu);
	for (i = 0; i < f->ncounts; i++)
		if (!strcmp(f->counts[i].op, op) && !strcmp(f->counts[i].decision, decision))
			break;
	if (i == f->ncounts && f->ncounts < MAX_COUNTS &&
	    !kg_strlcpy(f->counts[i].op, op, sizeof(f->counts[i].op)) &&
	    !kg_strlcpy(f->counts[i].decision, decision, sizeof(f->counts[i].decision)))
		f->ncounts++;
	if (i < f->ncounts)
		f->counts[i].n++;
	else
		f->counts_other++;
	pthread_mutex_unlock(&f->mu);
}

static const uint32_t *job_uids(struct kg_feed *f, const char *trace)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(f->jobs); i++)
		if (f->jobs[i].trace[0] && !strcmp(f->jobs[i].trace, trace))
			return f->jobs[i].uids;
	return NULL;
}

static const uint32_t *remember_job(struct kg_feed *f, const char *trace)
{
	struct kg_job_record *r = malloc(sizeof(*r));
	unsigned int slot;

	if (!r || kg_registry_load(trace, r)) {
		free(r);
		return job_uids(f, trace);
	}
	slot = f->next_job++ % ARRAY_SIZE(f->jobs);
	kg_strlcpy(f->jobs[slot].trace, trace, sizeof(f->jobs[slot].trace));
	f->jobs[slot].uids[0] = r->as_uid;
	f->jobs[slot].uids[1] = r->invoker_uid;
	f->jobs[slot].uids[2] = r->uid;
	free(r);
	return f->jobs[slot].uids;
}

static void on_record(struct kg_feed *f, json_t *rec)
{
	const char *type = sget(rec, "type"), *trace = sget(rec, "trace");
	const char *decision = sget(rec, "decision"), *op = sget(rec, "op");
	json_t *extra = json_object_get(rec, "extra"), *data;
	size_t i;

	if (!type)
		return;
	pthread_mutex_lock(&f->mu);
	f->records++;
	pthread_mutex_unlock(&f->mu);
	if (!strcmp(type, "decision")) {
		count_decision(f, op ? op : "unknown", decision ? decision : "unknown");
	} else if (!strcmp(type, "approval") && decision) {
		const char *id = sget(extra, "request_id");
		struct kg_approval *req;
		bool requested = !strcmp(decision, "requested");

		pthread_mutex_lock(&f->mu);
		for (i = 0; i < ARRAY_SIZE(approval_outcomes); i++)
			if (!strcmp(decision, approval_outcomes[i]))
				f->approvals[i]++;
		pthread_mutex_unlock(&f->mu);
		if (!id || !strcmp(decision, "queue_full"))
			return;
		req = malloc(sizeof(*req));
		if (req && kg_approvals_get(f->q, id, req)) {
			free(req);	/* gone meanwhile: shown to those who see all */
			req = NULL;
		}
		data = json_pack("{s:s,s:s,s:s*,s:s*,s:s*,s:s*,s:s*,s:O*,s:O*}", "id", id,
				 "state", requested ? "pending" : decision, "trace", trace,
				 "op", op, "target", sget(rec, "target"), "rule", sget(rec, "rule"),
				 "time", sget(rec, "time"), "actor", json_object_get(rec, "actor"),
				 "note", json_object_get(extra, "note"));
		if (data)
			push(f, requested ? "request" : "decision", trace, data, req, NULL);
		else
			free(req);
		json_decref(data);
	} else if (!strcmp(type, "job_start") || !strcmp(type, "job_exit")) {
		bool start = !strcmp(type, "job_start");
		const uint32_t *uids = trace ? (start ? remember_job(f, trace) : job_uids(f, trace))
					     : NULL;

		pthread_mutex_lock(&f->mu);
		if (start)
			f->jobs_started++;
		else
			f->jobs_ended++;
		pthread_mutex_unlock(&f->mu);
		data = json_pack("{s:s*,s:s*,s:s*,s:s*}", "trace", trace, "time", sget(rec, "time"),
				 start ? "command" : "how", start ? sget(rec, "target") : decision,
				 "reason", sget(rec, "reason"));
		if (data)
			push(f, start ? "job_start" : "job_end", trace, data, NULL, uids);
		json_decref(data);
	} else if (!strcmp(type, "policy_change")) {
		data = json_pack("{s:s*,s:s*,s:O*}", "trace", trace, "time", sget(rec, "time"),
				 "policy", json_object_get(rec, "policy"));
		if (data)
			push(f, "policy_change", trace, data, NULL, trace ? job_uids(f, trace) : NULL);
		json_decref(data);
	}
}

static void on_line(struct kg_feed *f, const char *line, size_t len)
{
	json_t *rec = json_loadb(line, len, 0, NULL);

	if (rec)
		on_record(f, rec);
	json_decref(rec);
}

/* Read what the open segment has gained, record by record. */
static void drain(struct kg_feed *f)
{
	char buf[65536];
	ssize_t n;

	while (f->fd >= 0 && (n = read(f->fd, buf, sizeof(buf))) > 0) {
		const char *p = buf, *end = buf + n, *nl;

		while (p < end) {
			nl = memchr(p, '\n', end - p);
			if (f->skipping) {
				if (nl)
					f->skipping = false;
				p = nl ? nl + 1 : end;
				continue;
			}
			{
				size_t take = (nl ? nl : end) - p;

				if (f->linelen + take > KG_AUDIT_MAX_LINE) {
					f->linelen = 0;
					f->skipping = !nl;
					p = nl ? nl + 1 : end;
					continue;
				}
				if (f->linelen + take + 1 > f->linecap) {
					size_t cap = f->linecap ? f->linecap : 4096;
					char *nb;

					while (cap < f->linelen + take + 1)
						cap *= 2;
					nb = realloc(f->line, cap);
					if (!nb)
						return;
					f->line = nb;
					f->linecap = cap;
				}
				memcpy(f->line + f->linelen, p, take);
				f->linelen += take;
			}
			if (!nl)
				break;	/* the rest of the line comes later */
			on_line(f, f->line, f->linelen);
			f->linelen = 0;
			p = nl + 1;
		}
	}
}

static void follow(struct kg_feed *f)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (active_segment(path, sizeof(path)) || stat(path, &st))
		return;
	if (f->fd >= 0 && st.st_dev == f->dev && st.st_ino == f->ino) {
		drain(f);
		return;
	}
	/* a new active segment (or the first): finish the old one first */
	drain(f);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = fd;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->linelen = 0;
	f->skipping = false;
	if (!f->at_end_once) {
		f->at_end_once = true;
		lseek(fd, 0, SEEK_END);	/* what happened before the daemon started is history */
	}
	drain(f);
}

static void deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *feed_main(void *arg)
{
	struct kg_feed *f = arg;
	struct timespec ts;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		pthread_mutex_unlock(&f->mu);
		follow(f);
		pthread_mutex_lock(&f->mu);
		deadline_in(&ts, FEED_TICK_MS);
		if (!f->stop)
			pthread_cond_timedwait(&f->cond, &f->mu, &ts);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

struct kg_feed *kg_feed_start(void)
{
	struct kg_feed *f = calloc(1, sizeof(*f));
	pthread_condattr_t ca;

	if (!f)
		return NULL;
	f->fd = -1;
	f->next_seq = 1;
	f->q = kg_approvals_open(NULL);
	if (!f->q || pthread_mutex_init(&f->mu, NULL) || pthread_condattr_init(&ca)) {
		kg_approvals_close(f->q);
		free(f);
		return NULL;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* the first segment's end is where we start: read it now, so that
	 * what happens from here on is in the feed */
	follow(f);
	f->at_end_once = true;
	if (pthread_create(&f->thread, NULL, feed_main, f)) {
		kg_feed_stop(f);
		return NULL;
	}
	f->started = true;
	return f;
}

void kg_feed_shutdown(struct kg_feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->shutdown = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

void kg_feed_stop(struct kg_feed *f)
{
	size_t i;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = f->shutdown = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	if (f->started)
		pthread_join(f->thread, NULL);
	for (i = 0; i < KG_FEED_RING; i++) {
		free(f->ring[i].data);
		free(f->ring[i].req);
	}
	if (f->fd >= 0)
		close(f->fd);
	free(f->line);
	kg_approvals_close(f->q);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void kg_feed_metrics(struct kg_feed *f, char **buf, size_t *len, size_t *cap)
{
	size_t i;

	pthread_mutex_lock(&f->mu);
	kg_api_appendf(buf, len, cap,
		       "# HELP kgate_decisions_total Decisions recorded in the audit trail since the "
		       "daemon started, by operation and decision.\n"
		       "# TYPE kgate_decisions_total counter\n");
	for (i = 0; i < f->ncounts; i++)
		kg_api_appendf(buf, len, cap, "kgate_decisions_total{op=\"%s\",decision=\"%s\"} %llu\n",
			       f->counts[i].op, f->counts[i].decision,
			       (unsigned long long)f->counts[i].n);
	if (f->counts_other)
		kg_api_appendf(buf, len, cap,
			       "kgate_decisions_total{op=\"other\",decision=\"other\"} %llu\n",
			       (unsigned long long)f->counts_other);
	kg_api_appendf(buf, len, cap,
		       "# HELP kgate_approvals_total Approval records since the daemon started, by "
		       "outcome.\n# TYPE kgate_approvals_total counter\n");
	for (i = 0; i < ARRAY_SIZE(approval_outcomes); i++)
		kg_api_appendf(buf, len, cap, "kgate_approvals_total{outcome=\"%s\"} %llu\n",
			       approval_outcomes[i], (unsigned long long)f->approvals[i]);
	kg_api_appendf(buf, len, cap,
		       "# HELP kgate_jobs_started_total Jobs started since the daemon started.\n"
		       "# TYPE kgate_jobs_started_total counter\nkgate_jobs_started_total %llu\n"
		       "# HELP kgate_jobs_ended_total Jobs ended since the daemon started.\n"
		       "# TYPE kgate_jobs_ended_total counter\nkgate_jobs_ended_total %llu\n"
		       "# HELP kgate_audit_records_followed_total Audit records the daemon's feed "
		       "read.\n# TYPE kgate_audit_records_followed_total counter\n"
		       "kgate_audit_records_followed_total %llu\n",
		       (unsigned long long)f->jobs_started, (unsigned long long)f->jobs_ended,
		       (unsigned long long)f->records);
	pthread_mutex_unlock(&f->mu);
}

/* ---- streams ------------------------------------------------------------------------- */

struct stream {
	struct kg_api *api;
	struct kg_feed *f;
	struct kg_principal p;
	uint64_t next;			/* the next event it wants */
	bool hello, resync;
	char *out;
	size_t len, off, cap;
};

static bool job_visible(const struct fev *e, const struct kg_principal *p)
{
	size_t i;

	for (i = 0; e->job_known && i < 3; i++)
		if (e->uids[i] == p->who.uid)
			return true;
	return false;
}

/* May this stream's principal see e?  The view is made on first need. */
static bool visible(struct stream *s, const struct fev *e, struct kg_view *v, bool *have_view)
{
	if (s->p.sees_all)
		return true;
	if (s->p.anonymous)
		return false;
	if (!*have_view) {
		if (kg_view_init(v, s->api->q, &s->p))
			return false;
		*have_view = true;
	}
	if (!strcmp(e->type, "request") || !strcmp(e->type, "decision"))
		return e->req && kg_view_request(v, e->req);
	return job_visible(e, &s->p) || (e->trace[0] && kg_view_trace(v, e->trace));
}

/* Wait for events (at most the keepalive interval) and format the visible
 * ones into s->out.  -1: the server is stopping. */
static int fill(struct stream *s)
{
	struct kg_feed *f = s->f;
	struct fev batch[BATCH];
	struct timespec ts;
	size_t n = 0, i;
	bool have_view = false;
	struct kg_view v;

	s->len = s->off = 0;
	if (!s->hello) {
		s->hello = true;
		pthread_mutex_lock(&f->mu);
		kg_api_appendf(&s->out, &s->len, &s->cap,
			       "retry: 3000\nevent: hello\ndata: {\"seq\":%llu,\"sees_all\":%s}\n\n",
			       (unsigned long long)(f->next_seq - 1), s->p.sees_all ? "true" : "false");
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	deadline_in(&ts, KEEPALIVE_SEC * 1000);
	pthread_mutex_lock(&f->mu);
	for (;;) {
		uint64_t oldest;

		if (f->shutdown) {
			pthread_mutex_unlock(&f->mu);
			return -1;
		}
		oldest = f->next_seq > KG_FEED_RING ? f->next_seq - KG_FEED_RING : 1;
		if (s->next < oldest) {		/* the ring moved past it */
			s->resync = true;
			s->next = oldest;
		}
		for (n = 0; s->next < f->next_seq && n < BATCH; s->next++) {
			const struct fev *e = &f->ring[s->next % KG_FEED_RING];

			batch[n] = *e;
			batch[n].data = strdup(e->data ? e->data : "{}");
			batch[n].req = NULL;
			if (e->req && (batch[n].req = malloc(sizeof(*e->req))))
				*batch[n].req = *e->req;
			n++;
		}
		if (n || s->resync)
			break;
		if (pthread_cond_timedwait(&f->cond, &f->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&f->mu);
	if (s->resync) {
		s->resync = false;
		kg_api_appendf(&s->out, &s->len, &s->cap,
			       "event: resync\ndata: {\"reason\":\"events were missed: reload\"}\n\n");
	}
	for (i = 0; i < n; i++) {
		if (batch[i].data && visible(s, &batch[i], &v, &have_view))
			kg_api_appendf(&s->out, &s->len, &s->cap, "id: %llu\nevent: %s\ndata: %s\n\n",
				       (unsigned long long)batch[i].seq, batch[i].type, batch[i].data);
		free(batch[i].data);
		free(batch[i].req);
	}
	if (have_view)
		kg_view_free(&v);
	if (!s->len && !n)	/* quiet for a while: say so, so dead clients are noticed */
		kg_api_appendf(&s->out, &s->len, &s->cap, ": keepalive\n\n");
	return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	size_t n;

	(void)pos;
	while (s->off >= s->len) {
		if (fill(s) < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!s->out)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->out + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	atomic_fetch_sub(&s->api->streams, 1);
	free(s->out);
	free(s);
}

struct MHD_Response *kg_feed_stream(struct kg_api *api, const struct kg_principal *p,
				    const char *last_id)
{
	struct stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *resp;

	if (!s) {
		atomic_fetch_sub(&api->streams, 1);
		return NULL;
	}
	s->api = api;
	s->f = api->feed;
	s->p = *p;
	pthread_mutex_lock(&s->f->mu);
	s->next = s->f->next_seq;
	if (last_id) {
		char *end;
		unsigned long long v = strtoull(last_id, &end, 10);

		if (!*end && end != last_id && v < s->f->next_seq)
			s->next = v + 1;	/* older than the ring: resync */
	}
	pthread_mutex_unlock(&s->f->mu);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s,
						 stream_free);
	if (!resp) {
		stream_free(s);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
	kg_api_headers(resp, false);
	return resp;
}

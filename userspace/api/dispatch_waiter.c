// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/dispatch_waiter.c - one thread a submitted job (api/dispatch.h): it
 * copies the job's output to its log until the process has exited,
 * relaunches an attempt that ran and failed while retries are left, and
 * records in the table how the job ended (from the trail and the approval
 * queue, computed once).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/dispatch.h"
#include "cli/cmds.h"
#include "common.h"

struct find_rec {
	const char *type;
	bool found;
};

static int find_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct find_rec *f = ctx;

	(void)line;
	(void)len;
	if (!strcmp(json_string_value(json_object_get(rec, "type")) ?: "", f->type))
		f->found = true;
	return 0;
}

static bool trace_has(const char *trace, const char *type)
{
	struct kg_audit_filter flt = { .trace_id = trace, .type = type };
	struct find_rec f = { .type = type };
	struct kg_audit_qstats st = {};

	kg_audit_query(NULL, &flt, find_cb, &f, false, &st);
	return f.found;
}

/* How an ended job ended (computed once, by its waiter). */
static void ended_state(struct kg_approvals *q, struct djob *j, char *state, size_t len)
{
	struct kg_approval a;

	if (j->stop) {
		snprintf(state, len, "stopped");
		return;
	}
	if (trace_has(j->trace, "job_start")) {
		snprintf(state, len, "exited");
		return;
	}
	if (kgd_launch_request(q, j->trace, &a) && a.state != KG_APPR_APPROVED &&
	    a.state != KG_APPR_PENDING)
		snprintf(state, len, "%s", a.state == KG_APPR_DENIED ? "denied" :
			 a.state == KG_APPR_STALE ? "stale" : "expired");
	else
		snprintf(state, len, "%s", WIFEXITED(j->status) &&
			 WEXITSTATUS(j->status) == KG_EXIT_DENIED ? "denied" : "failed");
}

/* Copy the job's output to its log until its process has exited and the
 * pipe is drained (or closed); the wait status. */
static int pump_output(struct waiter *w, struct kg_dispatch *d)
{
	struct outlog o = { .fd = -1 };
	bool exited = false, eof = w->out < 0;
	int status = 0;
	char buf[16384];

	snprintf(o.trace, sizeof(o.trace), "%s", w->trace);
	while (!eof || !exited) {
		struct pollfd p = { .fd = w->out, .events = POLLIN };
		int pr = eof ? 0 : poll(&p, 1, exited ? 0 : 200);

		if (pr > 0) {
			ssize_t n = read(w->out, buf, sizeof(buf));

			if (n > 0) {
				uint64_t dropped = kgd_log_append(&o, buf, (size_t)n);
				struct djob *j;

				pthread_mutex_lock(&d->mu);
				if ((j = kgd_find_locked(d, w->trace))) {
					j->out_bytes += (uint64_t)n;
					j->out_dropped += dropped;
				}
				pthread_mutex_unlock(&d->mu);
				continue;
			}
			if (n == 0 || (errno != EINTR && errno != EAGAIN))
				eof = true;
		} else if (exited) {
			break;		/* drained: what is left belongs to nobody */
		}
		if (!exited) {
			pid_t r = waitpid(w->pid, &status, eof ? 0 : WNOHANG);

			if (r == w->pid || (r < 0 && errno == ECHILD))
				exited = true;
		}
	}
	if (o.fd >= 0)
		close(o.fd);
	return status;
}

static int count_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	(void)rec;
	(void)line;
	(void)len;
	(*(size_t *)ctx)++;
	return 0;
}

/* Records of `type` under the trace. */
static size_t trace_count(const char *trace, const char *type)
{
	struct kg_audit_filter flt = { .trace_id = trace, .type = type };
	struct kg_audit_qstats st = {};
	size_t n = 0;

	kg_audit_query(NULL, &flt, count_cb, &n, false, &st);
	return n;
}

/* The job's next attempt: a new `kgate __dispatch` with the same spec (and
 * trace), attempt + 1.  false when it could not be started. */
static bool relaunch(struct waiter *w, struct kg_dispatch *d, json_t *spec)
{
	int pfd[2], specfd;
	struct djob *j;
	bool stop = false;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return false;
	specfd = kgd_spec_memfd(spec);
	pid = specfd >= 0 ? kgd_spawn(d->self, specfd, pfd[1]) : -1;
	close(pfd[1]);
	if (specfd >= 0)
		close(specfd);
	if (pid <= 0) {
		close(pfd[0]);
		return false;
	}
	w->pid = pid;
	w->out = pfd[0];
	pthread_mutex_lock(&d->mu);
	if ((j = kgd_find_locked(d, w->trace))) {
		j->pid = pid;
		stop = j->stop || d->closing;
	}
	pthread_mutex_unlock(&d->mu);
	if (stop)
		kill(pid, SIGTERM);
	return true;
}

/* After an attempt ended: relaunch it when it ran (job_start of this
 * attempt is recorded), failed (non-zero exit or a signal), was not
 * stopped and has retries left (max_retries). */
static bool retry(struct waiter *w, struct kg_dispatch *d, int status)
{
	unsigned int attempt = 0;
	json_t *spec = NULL;
	struct djob *j;
	bool again = false;

	pthread_mutex_lock(&d->mu);
	j = kgd_find_locked(d, w->trace);
	if (j && !j->stop && !d->closing && j->spec && j->attempt <= j->max_retries) {
		attempt = j->attempt;
		spec = json_incref(j->spec);
	}
	pthread_mutex_unlock(&d->mu);
	if (spec && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status))) &&
	    trace_count(w->trace, "job_start") >= attempt) {
		json_object_set_new(spec, "attempt", json_integer(attempt + 1));
		pthread_mutex_lock(&d->mu);
		if ((j = kgd_find_locked(d, w->trace)))
			j->attempt = attempt + 1;
		pthread_mutex_unlock(&d->mu);
		again = relaunch(w, d, spec);
	}
	json_decref(spec);
	return again;
}

void *kgd_waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct kg_dispatch *d = w->api->dispatch;
	struct djob copy, *j;
	char state[24];
	int status;

	for (;;) {
		status = pump_output(w, d);
		if (w->out >= 0)
			close(w->out);
		w->out = -1;
		if (!retry(w, d, status))
			break;
	}
	pthread_mutex_lock(&d->mu);
	j = kgd_find_locked(d, w->trace);
	if (j) {
		j->status = status;
		copy = *j;
	}
	pthread_mutex_unlock(&d->mu);
	if (j) {
		pthread_mutex_lock(&w->api->q_mu);
		/* a launch request whose `kgate run` is gone (stopped while it
		 * waited) is expired now, not left in reviewers' queue */
		kg_approvals_expire_orphans(w->api->q);
		ended_state(w->api->q, &copy, state, sizeof(state));
		pthread_mutex_unlock(&w->api->q_mu);
		pthread_mutex_lock(&d->mu);
		j = kgd_find_locked(d, w->trace);
		if (j) {
			snprintf(j->state, sizeof(j->state), "%s", state);
			j->done = true;
		}
		d->active--;
		pthread_mutex_unlock(&d->mu);
	}
	free(w);
	return NULL;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/dispatch.c - POST /api/v1/jobs: the daemon launches a governed job
 * for the principal of a token (issue 17, first part).
 *
 * A submitted job is run by the same code as `kgate run` (kg_job_run: the
 * policy's launchers, the admission rules, a launch that waits for a
 * human, throttle, constraints, then the governed job), in a process of
 * its own: the daemon execs itself as `kgate __dispatch FD` with the job's
 * description in a memfd, so nothing of the daemon's threads is forked
 * into it.  The launcher is the token's principal (uid and groups), never
 * the root the daemon runs as; the command runs as that uid (a root
 * principal may name another user).  Its stdout and stderr come to the
 * daemon through a pipe and go to <state dir>/dispatch/<trace>.log, rotated
 * to <trace>.log.1 at OUTPUT_ROTATE bytes (so at most twice that is kept).
 * DELETE /api/v1/jobs/{id} stops a job (SIGTERM to its `kgate run`, which
 * ends it; its cgroup is killed if that has not worked in STOP_GRACE_MS),
 * audited as a job_stop record naming who stopped it.
 *
 * The daemon keeps each submitted job's trace, its launcher, its
 * idempotency key and, once its process ended, how it ended.
 *
 * This file keeps the table of submitted jobs (open, close, a job's state
 * as JSON, /metrics); api/dispatch.h names the other parts.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/dispatch.h"
#include "common.h"
#include "job/registry.h"

struct kg_dispatch *kg_dispatch_open(const struct kg_api_cfg *cfg)
{
	struct kg_dispatch *d = calloc(1, sizeof(*d));
	struct kg_policy_error perr = {};
	char msg[1024], dir[4200];
	ssize_t n;
	size_t i;

	if (!d)
		return NULL;
	pthread_mutex_init(&d->mu, NULL);
	n = readlink("/proc/self/exe", d->self, sizeof(d->self) - 1);
	if (n <= 0) {
		kg_err("daemon: cannot find its own binary for --dispatch-policy");
		goto fail;
	}
	d->self[n] = '\0';
	for (i = 0; i < cfg->ndispatch; i++) {
		d->docs[i] = kg_policy_load_file(cfg->dispatch[i], NULL, &perr);
		if (!d->docs[i]) {
			kg_policy_error_format(&perr, msg, sizeof(msg));
			kg_err("daemon: --dispatch-policy: %s", msg);
			goto fail;
		}
		if (!realpath(cfg->dispatch[i], d->paths[i])) {
			kg_err("daemon: --dispatch-policy %s: %s", cfg->dispatch[i], strerror(errno));
			d->ndocs = i + 1;
			goto fail;
		}
		d->ndocs = i + 1;
		if (!d->docs[i]->name || !d->docs[i]->name[0]) {
			kg_err("daemon: --dispatch-policy %s has no \"name\": jobs name their policy",
			       cfg->dispatch[i]);
			goto fail;
		}
	}
	if (kg_snprintf(dir, sizeof(dir), "%s/dispatch", kg_state_dir()) || kg_mkdir_p(dir, 0700)) {
		kg_err("daemon: cannot make %s/dispatch", kg_state_dir());
		goto fail;
	}
	return d;
fail:
	kg_dispatch_close(d);
	return NULL;
}

void kg_dispatch_close(struct kg_dispatch *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->ndocs; i++)
		kg_policy_free(d->docs[i]);
	for (i = 0; i < d->n; i++) {
		json_decref(d->v[i].submitted);
		json_decref(d->v[i].spec);
	}
	free(d->v);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

/* ---- state ------------------------------------------------------------------------ */

struct djob *kgd_find_locked(struct kg_dispatch *d, const char *trace)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].trace, trace))
			return &d->v[i];
	return NULL;
}

/* The launch approval of a trace, when there is one. */
bool kgd_launch_request(struct kg_approvals *q, const char *trace, struct kg_approval *out)
{
	struct kg_approval *v = NULL;
	size_t n = 0, i;
	bool found = false;

	if (kg_approvals_list(q, true, &v, &n))
		return false;
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].trace_id, trace) && v[i].key.op == KG_OP_ADMISSION) {
			*out = v[i];
			found = true;
		}
	free(v);
	return found;
}

/* The state of a job that has not ended: pending_approval, running, admitting. */
static const char *live_state(struct kg_api *api, const char *trace, char *reqid, size_t len)
{
	struct kg_job_record *jobs = NULL;
	struct kg_approval a;
	size_t n = 0, i;
	bool running = false, pending;

	reqid[0] = '\0';
	if (!kg_registry_list(&jobs, &n))
		for (i = 0; i < n; i++)
			running = running || !strcmp(jobs[i].trace, trace);
	free(jobs);
	if (running)
		return "running";
	pthread_mutex_lock(&api->q_mu);
	pending = kgd_launch_request(api->q, trace, &a);
	pthread_mutex_unlock(&api->q_mu);
	if (pending) {
		snprintf(reqid, len, "%s", a.id);
		if (a.state == KG_APPR_PENDING)
			return "pending_approval";
		if (a.state == KG_APPR_APPROVED)
			return "starting";
	}
	return "admitting";
}

/* The dispatch side of a job as JSON, or NULL when the daemon did not
 * launch it or the principal may not see it. */
json_t *kg_dispatch_job_json(struct kg_api *api, const struct kg_principal *p, const char *trace)
{
	struct kg_dispatch *d = api->dispatch;
	struct djob copy, *j;
	char reqid[32] = "";
	json_t *o;

	if (!d)
		return NULL;
	pthread_mutex_lock(&d->mu);
	j = kgd_find_locked(d, trace);
	if (j)
		copy = *j;
	if (j)
		json_incref(copy.submitted);
	pthread_mutex_unlock(&d->mu);
	if (!j)
		return NULL;
	if (!p->sees_all && (p->anonymous || p->who.uid != copy.uid)) {
		json_decref(copy.submitted);
		return NULL;
	}
	o = json_pack("{s:s,s:s,s:I,s:o,s:s?,s:I}", "trace", copy.trace,
		      "state", copy.done ? copy.state : copy.stop ? "stopping" :
		      live_state(api, trace, reqid, sizeof(reqid)),
		      "launcher_uid", (json_int_t)copy.uid, "submitted", copy.submitted,
		      "policy", copy.policy, "output_bytes", (json_int_t)copy.out_bytes);
	if (o && copy.max_retries) {
		json_object_set_new(o, "attempt", json_integer(copy.attempt));
		json_object_set_new(o, "max_retries", json_integer(copy.max_retries));
	}
	if (o && copy.stop) {
		char when[48];

		kg_audit_format_time(copy.stopped_ns, when, sizeof(when));
		json_object_set_new(o, "stopped_by", json_pack("{s:I,s:s,s:s}", "uid",
							       (json_int_t)copy.stopped_by, "via",
							       copy.stopped_via, "time", when));
	}
	if (o && reqid[0])
		json_object_set_new(o, "approval_id", json_string(reqid));
	if (o && copy.key[0])
		json_object_set_new(o, "idempotency_key", json_string(copy.key));
	if (o && copy.done && !strcmp(copy.state, "exited")) {
		if (WIFEXITED(copy.status))
			json_object_set_new(o, "exit_status", json_integer(WEXITSTATUS(copy.status)));
		else if (WIFSIGNALED(copy.status))
			json_object_set_new(o, "exit_status", json_integer(128 + WTERMSIG(copy.status)));
	}
	return o;
}

void kg_dispatch_metrics(struct kg_dispatch *d, char **buf, size_t *len, size_t *cap)
{
	unsigned int active;
	size_t i;

	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	active = d->active;
	pthread_mutex_unlock(&d->mu);
	kg_api_appendf(buf, len, cap,
		       "# HELP kgate_dispatch_submits_total Jobs submitted with POST /api/v1/jobs, "
		       "by the status answered (201 started, 202 waiting for approval, 200 a "
		       "duplicate, 403 refused, 503 too many jobs not ended).\n"
		       "# TYPE kgate_dispatch_submits_total counter\n");
	for (i = 0; i < NCOUNTED; i++)
		kg_api_appendf(buf, len, cap, "kgate_dispatch_submits_total{code=\"%u\"} %llu\n",
			       counted_status[i], (unsigned long long)atomic_load(&d->submits[i]));
	kg_api_appendf(buf, len, cap, "kgate_dispatch_submits_total{code=\"other\"} %llu\n"
		       "# HELP kgate_dispatch_jobs_active Submitted jobs not ended yet (at most "
		       "kgate_dispatch_jobs_active_max; beyond it a submit is answered 503).\n"
		       "# TYPE kgate_dispatch_jobs_active gauge\nkgate_dispatch_jobs_active %u\n"
		       "# TYPE kgate_dispatch_jobs_active_max gauge\nkgate_dispatch_jobs_active_max %d\n",
		       (unsigned long long)atomic_load(&d->submits[NCOUNTED]), active, MAX_ACTIVE);
}

bool kg_dispatch_close_wait(struct kg_dispatch *d)
{
	unsigned int active;
	size_t i;
	int ms;

	pthread_mutex_lock(&d->mu);
	d->closing = true;	/* a job ended by this is not relaunched (max_retries) */
	for (i = 0; i < d->n; i++)
		if (!d->v[i].done && d->v[i].pid > 0)
			kill(d->v[i].pid, SIGTERM);	/* kgate run ends its job cleanly */
	pthread_mutex_unlock(&d->mu);
	for (ms = 0; ms < 15000; ms += 50) {
		pthread_mutex_lock(&d->mu);
		active = d->active;
		pthread_mutex_unlock(&d->mu);
		if (!active)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

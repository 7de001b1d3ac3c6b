// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/dispatch_submit.c - POST /api/v1/jobs (api/dispatch.h): the body
 * checked field by field, the launcher refused or the job entered in the
 * table and its `kgate __dispatch` spawned with a waiter, and the answer
 * given once admission has decided.  Every answer is counted by status.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/dispatch.h"
#include "common.h"
#include "job/admit.h"
#include "policy/admission.h"
#include "record/recorder.h"

/* The environment a submitter may give its command: nothing that changes
 * how the dynamic loader or an interpreter loads code. */
static const char *const env_allowed[] = {
	"PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "USER", "LOGNAME", "KG_JOB_*",
	NULL,
};

/* ---- the request ------------------------------------------------------------------ */

static bool env_name_ok(const char *name)
{
	const char *const *a;

	for (a = env_allowed; *a; a++)
		if (!fnmatch(*a, name, 0))
			return true;
	return false;
}

static bool text_ok(json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) <= max &&
	       !memchr(json_string_value(v), '\0', json_string_length(v));
}

/* The body, checked: false after a 400 naming what is wrong. */
static bool check_body(struct kg_api_req *r, json_t *o, json_t **envout)
{
	static const char *const known[] = { "policy", "argv", "cwd", "env", "topic", "tenant_id",
					     "risk_tags", "labels", "as_user", "idempotency_key",
					     NULL };
	const char *key, *bad = NULL;
	json_t *v, *env = json_array();
	size_t i;

	*envout = NULL;
	json_object_foreach(o, key, v) {
		const char *const *k;

		for (k = known; *k && strcmp(*k, key); k++)
			;
		if (!*k) {
			json_decref(env);
			kg_api_error(r, MHD_HTTP_BAD_REQUEST, "unknown_field", NULL,
				     "unknown field '%s'", key);
			return false;
		}
	}
	if (!text_ok(json_object_get(o, "policy"), 127))
		bad = "policy must be the name of one of the daemon's dispatch policies";
	else if (!json_is_array(v = json_object_get(o, "argv")) || !json_array_size(v) ||
		 json_array_size(v) > MAX_ARGV)
		bad = "argv must be an array of 1 to 256 strings";
	if (!bad)
		json_array_foreach(json_object_get(o, "argv"), i, v)
			if (!json_is_string(v) || json_string_length(v) > 4096 ||
			    memchr(json_string_value(v), '\0', json_string_length(v)) ||
			    (i == 0 && !json_string_length(v)))
				bad = "argv must be an array of 1 to 256 strings";
	if (!bad && (v = json_object_get(o, "cwd")) &&
	    (!text_ok(v, PATH_MAX - 1) || json_string_value(v)[0] != '/'))
		bad = "cwd must be an absolute path";
	if (!bad && (v = json_object_get(o, "topic")) && !text_ok(v, 127))
		bad = "topic must be a string of 1 to 127 bytes";
	if (!bad && (v = json_object_get(o, "tenant_id")) && !text_ok(v, 127))
		bad = "tenant_id must be a string of 1 to 127 bytes";
	if (!bad && (v = json_object_get(o, "as_user")) && !text_ok(v, 64))
		bad = "as_user must be a user name";
	if (!bad && (v = json_object_get(o, "idempotency_key")) && !text_ok(v, MAX_KEY))
		bad = "idempotency_key must be a string of 1 to 128 bytes";
	if (!bad && (v = json_object_get(o, "risk_tags"))) {
		json_t *t;

		if (!json_is_array(v) || json_array_size(v) > MAX_TAGS)
			bad = "risk_tags must be an array of at most 16 strings";
		json_array_foreach(v, i, t)
			if (!bad && !text_ok(t, 64))
				bad = "risk_tags must be an array of at most 16 strings";
	}
	if (!bad && (v = json_object_get(o, "labels"))) {
		json_t *t;

		if (!json_is_object(v) || json_object_size(v) > MAX_LABELS)
			bad = "labels must be an object of at most 32 string values";
		json_object_foreach(v, key, t)
			if (!bad && (!text_ok(t, 256) || !strlen(key) || strlen(key) > 128))
				bad = "labels must be an object of at most 32 string values";
	}
	if (!bad && (v = json_object_get(o, "env"))) {
		json_t *t;

		if (!json_is_object(v) || json_object_size(v) > MAX_ENV)
			bad = "env must be an object of at most 64 string values";
		json_object_foreach(v, key, t) {
			if (bad)
				break;
			if (!json_is_string(t) || json_string_length(t) > 4096 ||
			    memchr(json_string_value(t), '\0', json_string_length(t)) ||
			    strchr(key, '=') || !key[0]) {
				bad = "env must be an object of at most 64 string values";
			} else if (!env_name_ok(key)) {
				json_decref(env);
				kg_api_error(r, MHD_HTTP_BAD_REQUEST, "env_not_allowed", NULL,
					     "env: '%s' is not allowed (allowed: PATH, HOME, LANG, "
					     "LANGUAGE, LC_*, TZ, TERM, USER, LOGNAME, KG_JOB_*)", key);
				return false;
			} else {
				char *kv = NULL;

				if (asprintf(&kv, "%s=%s", key, json_string_value(t)) < 0)
					bad = "out of memory";
				else
					json_array_append_new(env, json_string(kv));
				free(kv);
			}
		}
	}
	if (bad) {
		json_decref(env);
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_field", NULL, "%s", bad);
		return false;
	}
	if (!json_object_get(o, "env"))
		json_array_append_new(env, json_string("PATH=/usr/local/bin:/usr/bin:/bin"));
	*envout = env;
	return true;
}

static void refuse_launcher(struct kg_api *api, const struct kg_policy_doc *doc,
			    const char *trace, const char *cmd, uint32_t uid)
{
	json_t *extra = json_pack("{s:I,s:s}", "launcher_uid", (json_int_t)uid, "via",
				  "POST /api/v1/jobs");
	struct kg_rec rec;

	pthread_mutex_lock(&api->audit_mu);
	kg_rec_controller(&rec, "admission", doc);
	kg_rec_str(&rec, "trace", trace);
	kg_rec_str(&rec, "op", "admission");
	kg_rec_str(&rec, "target", cmd);
	kg_rec_str(&rec, "decision", "deny");
	kg_rec_str(&rec, "rule", "kgate:launchers");
	kg_rec_str(&rec, "reason", "the caller is not among the policy's launchers");
	kg_rec_extra(&rec, extra);
	if ((api->audit && kg_rec_append(api->audit, &rec)) || kg_audit_flush(api->audit))
		kg_warn("api: the refused launch of %s could not be recorded", trace);
	pthread_mutex_unlock(&api->audit_mu);
	json_decref(extra);
}

static void submit(struct kg_api_req *r);

/* POST /api/v1/jobs: every answer is counted by its status. */
void kg_dispatch_submit(struct kg_api_req *r)
{
	struct kg_dispatch *d = r->api->dispatch;
	size_t i;

	submit(r);
	for (i = 0; i < NCOUNTED && counted_status[i] != r->status; i++)
		;
	if (d)
		atomic_fetch_add(&d->submits[i], 1);
}

static void submit(struct kg_api_req *r)
{
	struct kg_api *api = r->api;
	struct kg_dispatch *d = api->dispatch;
	const struct kg_principal *p = &r->principal;
	const struct kg_policy_doc *doc = NULL;
	const char *pname, *key, *hkey;
	char trace[32], logpath[4300], *cmd = NULL;
	uint32_t gids[KG_TOKEN_MAX_GROUPS + 1];
	struct kg_actor actor = {};
	struct passwd pw, *pwr = NULL;
	char pwbuf[1024];
	json_t *o, *env = NULL, *spec = NULL, *argv, *v, *job;
	json_error_t jerr;
	uint64_t job_id = 0;
	int specfd = -1, logfd = -1, waited, pipefd[2] = { -1, -1 };
	size_t k, x;
	pid_t pid;
	uid_t as_uid;
	gid_t as_gid;
	const char *as_name;

	if (!d || !d->ndocs) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "dispatch_off", NULL,
			     "this daemon dispatches no jobs (kgate daemon --dispatch-policy FILE)");
		return;
	}
	if (p->anonymous) {
		kg_api_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL, "submitting needs a token");
		return;
	}
	o = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "malformed_json", NULL,
			     "the body must be a JSON object: %s", o ? "" : jerr.text);
		return;
	}
	if (!check_body(r, o, &env))
		goto out;
	pname = json_string_value(json_object_get(o, "policy"));
	for (k = 0; k < d->ndocs; k++)
		if (!strcmp(d->docs[k]->name, pname))
			doc = d->docs[k];
	if (!doc) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "unknown_policy", NULL,
			     "no dispatch policy named '%s'", pname);
		goto out;
	}
	/* the idempotency key: the body's, else the header's */
	key = json_string_value(json_object_get(o, "idempotency_key"));
	hkey = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
	if (!key && hkey) {
		if (!hkey[0] || strlen(hkey) > MAX_KEY) {
			kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_parameter", NULL,
				     "Idempotency-Key must have 1 to 128 characters");
			goto out;
		}
		key = hkey;
	}
	/* the launcher: the token's principal */
	actor.uid = p->who.uid;
	for (x = 0; x < p->who.ngids && x < ARRAY_SIZE(gids); x++)
		gids[x] = p->who.gids[x];
	actor.gids = gids;
	actor.ngids = x;
	getpwuid_r(p->who.uid, &pw, pwbuf, sizeof(pwbuf), &pwr);
	actor.user = pwr ? pwr->pw_name : NULL;
	as_uid = p->who.uid;
	as_gid = pwr ? pwr->pw_gid : p->who.uid;
	as_name = pwr ? pwr->pw_name : NULL;
	if ((v = json_object_get(o, "as_user"))) {
		struct passwd apw, *apr = NULL;
		char abuf[1024];

		getpwnam_r(json_string_value(v), &apw, abuf, sizeof(abuf), &apr);
		if (!apr) {
			kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_field", NULL, "as_user: no user '%s'",
				     json_string_value(v));
			goto out;
		}
		/* what runs is never more than the launcher could run itself */
		if (apr->pw_uid != p->who.uid && p->who.uid != 0) {
			kg_api_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
				     "as_user: only a root principal runs jobs as another user");
			goto out;
		}
		as_uid = apr->pw_uid;
		as_gid = apr->pw_gid;
		as_name = json_string_value(v);
	}
	argv = json_object_get(o, "argv");
	{
		char **a = calloc(json_array_size(argv) + 1, sizeof(*a));

		json_array_foreach(argv, x, v)
			if (a)
				a[x] = (char *)json_string_value(v);
		cmd = a ? kg_join_argv(a) : NULL;
		free(a);
	}
	if (getrandom(&job_id, sizeof(job_id), 0) != sizeof(job_id) || !job_id) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "no randomness");
		goto out;
	}
	kg_trace_id(job_id, trace, sizeof(trace));
	if (!kg_may_launch(&doc->launchers, &actor)) {
		/* refused before anything is spawned, and audited as kgate run would */
		refuse_launcher(api, doc, trace, cmd ? cmd : "", actor.uid);
		kg_api_error(r, MHD_HTTP_FORBIDDEN, "not_launcher", NULL,
			     "uid %u is not among the launchers of policy '%s'", actor.uid, pname);
		goto out;
	}
	pthread_mutex_lock(&d->mu);
	if (key)
		for (k = 0; k < d->n; k++)
			if (d->v[k].uid == actor.uid && !strcmp(d->v[k].key, key)) {
				char t[32];

				snprintf(t, sizeof(t), "%s", d->v[k].trace);
				pthread_mutex_unlock(&d->mu);
				job = kg_dispatch_job_json(api, p, t);
				kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o,s:b}", "job", job,
								      "duplicate", 1));
				goto out;
			}
	if (d->active >= MAX_ACTIVE) {
		pthread_mutex_unlock(&d->mu);
		kg_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue_full", NULL,
			     "%d submitted jobs have not ended yet: try again later", MAX_ACTIVE);
		goto out;
	}
	if (d->n == MAX_JOBS) {
		/* forget the oldest ended one */
		for (k = 0; k < d->n && !d->v[k].done; k++)
			;
		if (k == d->n) {
			pthread_mutex_unlock(&d->mu);
			kg_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue_full", NULL,
				     "too many jobs remembered");
			goto out;
		}
		json_decref(d->v[k].submitted);
		json_decref(d->v[k].spec);
		{
			char lp[4300];

			kgd_log_path(d->v[k].trace, false, lp, sizeof(lp));
			unlink(lp);
			kgd_log_path(d->v[k].trace, true, lp, sizeof(lp));
			unlink(lp);
		}
		memmove(&d->v[k], &d->v[k + 1], (d->n - k - 1) * sizeof(*d->v));
		d->n--;
	} else if (!(d->n & (d->n - 1)) || !d->v) {
		struct djob *nv = realloc(d->v, (d->n ? d->n * 2 : 16) * sizeof(*nv));

		if (!nv) {
			pthread_mutex_unlock(&d->mu);
			kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
			goto out;
		}
		d->v = nv;
	}
	d->active++;
	{
		struct djob *j = &d->v[d->n++];

		memset(j, 0, sizeof(*j));
		snprintf(j->trace, sizeof(j->trace), "%s", trace);
		snprintf(j->key, sizeof(j->key), "%s", key ? key : "");
		snprintf(j->policy, sizeof(j->policy), "%s", pname);
		j->uid = actor.uid;
		j->pid = -1;
		j->created_ns = kg_now_real_ns();
		j->submitted = json_pack("{s:O?,s:O?,s:O?,s:O?,s:O}", "topic",
					 json_object_get(o, "topic"), "tenant_id",
					 json_object_get(o, "tenant_id"), "risk_tags",
					 json_object_get(o, "risk_tags"), "labels",
					 json_object_get(o, "labels"), "argv", argv);
	}
	pthread_mutex_unlock(&d->mu);
	/* what the job's process needs */
	spec = json_pack("{s:s,s:O,s:O,s:s,s:O?,s:O?,s:O?,s:O?,s:I,s:I,s:s?,s:[],s:I,s:I,s:s?}",
			 "policy_path", "", "argv", argv,
			 "env", env, "cwd", json_string_value(json_object_get(o, "cwd")) ?: "/",
			 "topic", json_object_get(o, "topic"), "tenant", json_object_get(o, "tenant_id"),
			 "risk_tags", json_object_get(o, "risk_tags"), "labels",
			 json_object_get(o, "labels"), "job_id", (json_int_t)job_id, "uid",
			 (json_int_t)actor.uid, "user", actor.user, "gids", "as_uid",
			 (json_int_t)as_uid, "as_gid", (json_int_t)as_gid, "as_name", as_name);
	for (k = 0; spec && k < d->ndocs; k++)
		if (d->docs[k] == doc)
			json_object_set_new(spec, "policy_path", json_string(d->paths[k]));
	for (x = 0; spec && x < actor.ngids; x++)
		json_array_append_new(json_object_get(spec, "gids"), json_integer(actor.gids[x]));
	snprintf(logpath, sizeof(logpath), "%s/dispatch/%s.log", kg_state_dir(), trace);
	/* its attempts and how many may follow a failure: the admission's
	 * constraints, decided as its `kgate run` will decide them */
	{
		struct kg_label labels[KG_MAX_LABELS];
		const char *const *tags = NULL;
		const char *tagv[MAX_TAGS];
		struct kg_launch_req req = {
			.topic = json_string_value(json_object_get(o, "topic")),
			.tenant = json_string_value(json_object_get(o, "tenant_id")),
			.labels = labels,
		};
		struct kg_admission_result res;
		const char *lk;
		json_t *lv;
		struct djob *j;

		json_array_foreach(json_object_get(o, "risk_tags"), x, v)
			if (req.nrisk_tags < MAX_TAGS)
				tagv[req.nrisk_tags++] = json_string_value(v);
		tags = tagv;
		req.risk_tags = tags;
		json_object_foreach(json_object_get(o, "labels"), lk, lv)
			if (req.nlabels < KG_MAX_LABELS)
				labels[req.nlabels++] = (struct kg_label){ lk, json_string_value(lv) };
		if (spec)
			json_object_set_new(spec, "attempt", json_integer(1));
		pthread_mutex_lock(&d->mu);
		if ((j = kgd_find_locked(d, trace))) {
			j->attempt = 1;
			j->spec = json_incref(spec);
			if (!kg_admission_decide(doc, &actor, &req, &res))
				j->max_retries = (unsigned int)res.constraints.max_retries;
		}
		pthread_mutex_unlock(&d->mu);
	}
	/* a fresh file (never one planted there); the waiter appends to it */
	logfd = open(logpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd >= 0 && pipe2(pipefd, O_CLOEXEC))
		pipefd[0] = pipefd[1] = -1;
	specfd = spec ? kgd_spec_memfd(spec) : -1;
	pid = logfd >= 0 && pipefd[1] >= 0 && specfd >= 0 ? kgd_spawn(d->self, specfd, pipefd[1]) : -1;
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (pid > 0) {
		struct waiter *w = calloc(1, sizeof(*w));
		pthread_t t;

		if (w) {
			w->api = api;
			w->pid = pid;
			w->out = pipefd[0];
			snprintf(w->trace, sizeof(w->trace), "%s", trace);
		}
		if (!w || pthread_create(&t, NULL, kgd_waiter_main, w)) {
			/* nobody would reap it: wait here */
			free(w);
			close(pipefd[0]);
			waitpid(pid, NULL, 0);
			pid = -1;
		} else {
			pthread_detach(t);
		}
	} else if (pipefd[0] >= 0) {
		close(pipefd[0]);
	}
	pthread_mutex_lock(&d->mu);
	{
		struct djob *j = kgd_find_locked(d, trace);

		if (j && pid > 0) {
			j->pid = pid;
			if (j->stop)	/* stopped before it had a process */
				kill(pid, SIGTERM);
		} else if (j) {
			j->done = true;
			snprintf(j->state, sizeof(j->state), "failed");
			d->active--;
		}
	}
	pthread_mutex_unlock(&d->mu);
	if (pid <= 0) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "the job could not be started: %s", strerror(errno));
		goto out;
	}
	/* answer once admission decided: started, waiting for a human, refused */
	for (waited = 0; waited < 10000; waited += 50) {
		const char *st;

		job = kg_dispatch_job_json(api, p, trace);
		st = json_string_value(json_object_get(job, "state")) ?: "";
		if (strcmp(st, "admitting") && strcmp(st, "starting")) {
			unsigned int code = !strcmp(st, "pending_approval") ? MHD_HTTP_ACCEPTED :
					    !strcmp(st, "running") || !strcmp(st, "exited") ?
					    MHD_HTTP_CREATED : MHD_HTTP_FORBIDDEN;

			if (code == MHD_HTTP_FORBIDDEN)
				kg_api_error(r, code, "admission_refused", json_pack("{s:o}", "job", job),
					     "the launch was refused (%s); see the job's timeline", st);
			else
				kg_api_json(r, code, json_pack("{s:o}", "job", job));
			goto out;
		}
		json_decref(job);
		usleep(50 * 1000);
	}
	kg_api_json(r, MHD_HTTP_ACCEPTED, json_pack("{s:o}", "job",
						    kg_dispatch_job_json(api, p, trace)));
out:
	if (specfd >= 0)
		close(specfd);
	if (logfd >= 0)
		close(logfd);
	free(cmd);
	json_decref(spec);
	json_decref(env);
	json_decref(o);
}

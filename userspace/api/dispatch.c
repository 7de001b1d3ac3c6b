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
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy/admission.h"
#include "job/admit.h"
#include "api/internal.h"
#include "cli/cmds.h"
#include "common.h"
#include "job/job.h"
#include "policy/policy.h"
#include "record/recorder.h"
#include "job/registry.h"

#define MAX_ARGV	256
#define MAX_TAGS	16
#define MAX_LABELS	32
#define MAX_ENV		64
#define MAX_KEY		128
#define MAX_JOBS	1024	/* remembered (oldest ended ones are forgotten first) */
#define MAX_ACTIVE	32	/* submitted and not yet ended */
#define OUTPUT_MAX	(64u << 10)	/* what GET .../output returns: the newest bytes */
#define OUTPUT_ROTATE	(256u << 10)	/* <trace>.log becomes <trace>.log.1 at this size */
#define STOP_GRACE_MS	5000

/* The environment a submitter may give its command: nothing that changes
 * how the dynamic loader or an interpreter loads code. */
static const char *const env_allowed[] = {
	"PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "USER", "LOGNAME", "KG_JOB_*",
	NULL,
};

struct djob {
	char trace[32];
	char key[MAX_KEY + 1];
	uint32_t uid;			/* the launcher */
	pid_t pid;
	bool done;
	int status;			/* wait status */
	char state[24];			/* once done: exited, denied, expired, stale, failed */
	char policy[128];
	json_t *submitted;		/* what was asked (topic, tenant, risk tags, labels, argv) */
	uint64_t created_ns;
	uint64_t out_bytes, out_dropped; /* output written by the job; rotated away */
	json_t *spec;			/* what its process is given (relaunched with it) */
	unsigned int attempt, max_retries;	/* 1, 2, ...; from the admission's constraints */
	bool stop;			/* DELETE asked for it to stop */
	uint32_t stopped_by;
	char stopped_via[96];
	uint64_t stopped_ns;
};

/* submits answered, by status (kgate_dispatch_submits_total) */
static const unsigned int counted_status[] = { 200, 201, 202, 400, 401, 403, 404, 413, 500, 503 };
#define NCOUNTED (sizeof(counted_status) / sizeof(counted_status[0]))

struct kg_dispatch {
	_Atomic unsigned long long submits[NCOUNTED + 1];	/* [NCOUNTED]: any other */
	pthread_mutex_t mu;
	struct djob *v;
	size_t n;
	unsigned int active;
	bool closing;			/* the daemon stops: no more attempts */
	char self[PATH_MAX];		/* this kgate binary */
	struct kg_policy_doc *docs[KG_API_MAX_DISPATCH];
	char paths[KG_API_MAX_DISPATCH][PATH_MAX];
	size_t ndocs;
};

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

/* ---- the job's process ------------------------------------------------------------ */

/* `kgate __dispatch FD`: run the job the daemon described in FD.  Not a
 * command for people: it exists so that the daemon never forks its own
 * threads' state into a job. */
int cmd_dispatch_child(int argc, char **argv)
{
	char *argvv[MAX_ARGV + 1] = {}, *envv[MAX_ENV + 1] = {};
	const char *risk[MAX_TAGS] = {};
	uint32_t gids[KG_TOKEN_MAX_GROUPS + 1];
	struct kg_actor actor = {};
	struct kg_job_spec spec = { .live = stderr };
	json_error_t jerr;
	json_t *o, *v;
	size_t i;
	int fd;

	if (argc != 2 || getuid() != 0 || (fd = atoi(argv[1])) < 3)
		return kg_err("__dispatch is kgate's daemon's own"), KG_EXIT_USAGE;
	o = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!o)
		return kg_err("__dispatch: %s", jerr.text), KG_EXIT_FAIL;
	spec.policy_path = json_string_value(json_object_get(o, "policy_path"));
	json_array_foreach(json_object_get(o, "argv"), i, v)
		if (i < MAX_ARGV)
			argvv[i] = (char *)json_string_value(v);
	json_array_foreach(json_object_get(o, "env"), i, v)
		if (i < MAX_ENV)
			envv[i] = (char *)json_string_value(v);
	json_array_foreach(json_object_get(o, "risk_tags"), i, v)
		if (i < MAX_TAGS)
			risk[spec.nrisk_tags++] = json_string_value(v);
	spec.argv = argvv;
	spec.envp = envv;
	spec.risk_tags = risk;
	spec.topic = json_string_value(json_object_get(o, "topic"));
	spec.tenant = json_string_value(json_object_get(o, "tenant"));
	spec.labels = json_object_get(o, "labels");
	spec.job_id = (uint64_t)json_integer_value(json_object_get(o, "job_id"));
	spec.attempt = (unsigned int)json_integer_value(json_object_get(o, "attempt"));
	actor.uid = (uint32_t)json_integer_value(json_object_get(o, "uid"));
	actor.user = json_string_value(json_object_get(o, "user"));
	json_array_foreach(json_object_get(o, "gids"), i, v)
		if (i < ARRAY_SIZE(gids))
			gids[actor.ngids++] = (uint32_t)json_integer_value(v);
	actor.gids = gids;
	spec.launcher = &actor;
	spec.invoker_uid = actor.uid;
	spec.have_as = true;
	spec.as_uid = (uid_t)json_integer_value(json_object_get(o, "as_uid"));
	spec.as_gid = (gid_t)json_integer_value(json_object_get(o, "as_gid"));
	spec.as_name = json_string_value(json_object_get(o, "as_name"));
	spec.as_source = "the submitter's token (POST /api/v1/jobs)";
	if (!spec.policy_path || !argvv[0] || !spec.job_id ||
	    chdir(json_string_value(json_object_get(o, "cwd")) ?: "/")) {
		json_decref(o);
		return kg_err("__dispatch: an incomplete job, or its cwd is gone"), KG_EXIT_FAIL;
	}
	i = kg_job_run(&spec);
	json_decref(o);
	return (int)i;
}

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

/* ---- state ------------------------------------------------------------------------ */

static struct djob *find_locked(struct kg_dispatch *d, const char *trace)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].trace, trace))
			return &d->v[i];
	return NULL;
}

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

/* The launch approval of a trace, when there is one. */
static bool launch_request(struct kg_approvals *q, const char *trace, struct kg_approval *out)
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
	if (launch_request(q, j->trace, &a) && a.state != KG_APPR_APPROVED &&
	    a.state != KG_APPR_PENDING)
		snprintf(state, len, "%s", a.state == KG_APPR_DENIED ? "denied" :
			 a.state == KG_APPR_STALE ? "stale" : "expired");
	else
		snprintf(state, len, "%s", WIFEXITED(j->status) &&
			 WEXITSTATUS(j->status) == KG_EXIT_DENIED ? "denied" : "failed");
}

/* ---- the job's output: <trace>.log, rotated to <trace>.log.1 ------------------------ */

static void log_path(const char *trace, bool old, char *buf, size_t len)
{
	snprintf(buf, len, "%s/dispatch/%s.log%s", kg_state_dir(), trace, old ? ".1" : "");
}

struct outlog {
	int fd;
	uint64_t size;		/* of <trace>.log */
	char trace[32];
};

/* Append what the job wrote; at OUTPUT_ROTATE bytes <trace>.log becomes
 * <trace>.log.1 (the older .1 is dropped).  Returns the bytes dropped. */
static uint64_t log_append(struct outlog *o, const char *buf, size_t n)
{
	char cur[4300], old[4300];
	uint64_t dropped = 0;
	struct stat st;

	if (o->fd >= 0 && o->size + n > OUTPUT_ROTATE && o->size) {
		log_path(o->trace, false, cur, sizeof(cur));
		log_path(o->trace, true, old, sizeof(old));
		if (!stat(old, &st))
			dropped = (uint64_t)st.st_size;
		close(o->fd);
		o->fd = -1;
		if (rename(cur, old))
			unlink(cur);
		o->size = 0;
	}
	if (o->fd < 0) {
		log_path(o->trace, false, cur, sizeof(cur));
		o->fd = open(cur, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	while (o->fd >= 0 && n) {
		ssize_t w = write(o->fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		buf += w;
		n -= (size_t)w;
		o->size += (uint64_t)w;
	}
	return dropped;
}

struct waiter {
	struct kg_api *api;
	pid_t pid;
	int out;		/* the read end of the job's stdout/stderr */
	char trace[32];
};

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
				uint64_t dropped = log_append(&o, buf, (size_t)n);
				struct djob *j;

				pthread_mutex_lock(&d->mu);
				if ((j = find_locked(d, w->trace))) {
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

static int spec_memfd(json_t *spec);
static pid_t spawn(const char *self, int specfd, int outfd);

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
	specfd = spec_memfd(spec);
	pid = specfd >= 0 ? spawn(d->self, specfd, pfd[1]) : -1;
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
	if ((j = find_locked(d, w->trace))) {
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
	j = find_locked(d, w->trace);
	if (j && !j->stop && !d->closing && j->spec && j->attempt <= j->max_retries) {
		attempt = j->attempt;
		spec = json_incref(j->spec);
	}
	pthread_mutex_unlock(&d->mu);
	if (spec && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status))) &&
	    trace_count(w->trace, "job_start") >= attempt) {
		json_object_set_new(spec, "attempt", json_integer(attempt + 1));
		pthread_mutex_lock(&d->mu);
		if ((j = find_locked(d, w->trace)))
			j->attempt = attempt + 1;
		pthread_mutex_unlock(&d->mu);
		again = relaunch(w, d, spec);
	}
	json_decref(spec);
	return again;
}

static void *waiter_main(void *arg)
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
	j = find_locked(d, w->trace);
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
		j = find_locked(d, w->trace);
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
	pending = launch_request(api->q, trace, &a);
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
	j = find_locked(d, trace);
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

/* ---- POST /api/v1/jobs ------------------------------------------------------------ */

static int spec_memfd(json_t *spec)
{
	int fd = memfd_create("kgate-dispatch", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (json_dumpfd(spec, fd, JSON_COMPACT) || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* fork + exec `kgate __dispatch 3`: only async-signal-safe calls between
 * them (this process has threads). */
static pid_t spawn(const char *self, int specfd, int outfd)
{
	char *const argv[] = { "kgate", "__dispatch", "3", NULL };
	sigset_t none;
	pid_t pid;

	sigemptyset(&none);
	pid = fork();
	if (pid != 0)
		return pid;
	{
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

		sigaction(SIGPIPE, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGINT, &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0 ||
		    dup2(specfd, 3) < 0)
			_exit(KG_EXIT_FAIL);
		execv(self, argv);
		_exit(127);
	}
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

			log_path(d->v[k].trace, false, lp, sizeof(lp));
			unlink(lp);
			log_path(d->v[k].trace, true, lp, sizeof(lp));
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
		if ((j = find_locked(d, trace))) {
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
	specfd = spec ? spec_memfd(spec) : -1;
	pid = logfd >= 0 && pipefd[1] >= 0 && specfd >= 0 ? spawn(d->self, specfd, pipefd[1]) : -1;
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
		if (!w || pthread_create(&t, NULL, waiter_main, w)) {
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
		struct djob *j = find_locked(d, trace);

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

/* The newest `max` bytes of <trace>.log.1 + <trace>.log into buf; their
 * count; *older: bytes of the kept files before them. */
static size_t read_tail(const char *trace, char *buf, size_t max, uint64_t *older)
{
	size_t got = 0, want[2] = { 0, 0 };
	off_t size[2] = { 0, 0 };
	int fd[2], i;

	*older = 0;
	for (i = 0; i < 2; i++) {
		char path[4300];
		struct stat st;

		log_path(trace, i == 0, path, sizeof(path));	/* [0]: .log.1, [1]: .log */
		fd[i] = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd[i] >= 0 && !fstat(fd[i], &st) && S_ISREG(st.st_mode))
			size[i] = st.st_size;
	}
	want[1] = (size_t)(size[1] > (off_t)max ? (off_t)max : size[1]);
	want[0] = (size_t)(size[0] > (off_t)(max - want[1]) ? (off_t)(max - want[1]) : size[0]);
	*older = (uint64_t)(size[0] - (off_t)want[0]) + (uint64_t)(size[1] - (off_t)want[1]);
	for (i = 0; i < 2; i++) {
		ssize_t n = want[i] && fd[i] >= 0 ?
			    pread(fd[i], buf + got, want[i], size[i] - (off_t)want[i]) : 0;

		if (n > 0)
			got += (size_t)n;
		if (fd[i] >= 0)
			close(fd[i]);
	}
	return got;
}

/* GET /api/v1/jobs/{id}/output: the newest 64 KiB of its stdout and stderr
 * (the daemon keeps at most 2 x 256 KiB of it: older output is rotated
 * away and counted). */
void kg_dispatch_output(struct kg_api_req *r)
{
	json_t *job = kg_dispatch_job_json(r->api, &r->principal, r->id);
	struct kg_dispatch *d = r->api->dispatch;
	uint64_t older = 0, dropped = 0, total = 0;
	char path[4300], *buf;
	struct djob *j;
	size_t n, b;

	if (!job) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
			     "no job %s submitted through this daemon", r->id);
		return;
	}
	json_decref(job);
	log_path(r->id, false, path, sizeof(path));
	if (access(path, F_OK)) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no output for %s", r->id);
		return;
	}
	buf = malloc(OUTPUT_MAX + 1);
	if (!buf) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
		return;
	}
	pthread_mutex_lock(&d->mu);
	j = find_locked(d, r->id);
	if (j) {
		dropped = j->out_dropped;
		total = j->out_bytes;
	}
	pthread_mutex_unlock(&d->mu);
	/* a read racing a rotation may show less than 64 KiB, never garbage */
	n = read_tail(r->id, buf, OUTPUT_MAX, &older);
	/* JSON strings are UTF-8: other bytes are shown as '?' */
	for (b = 0; b < n; b++)
		if ((unsigned char)buf[b] >= 0x80 || (buf[b] < 0x20 && buf[b] != '\n' && buf[b] != '\t'))
			buf[b] = '?';
	buf[n] = '\0';
	kg_api_json(r, MHD_HTTP_OK, json_pack("{s:s,s:s%,s:b,s:I,s:I,s:I}", "trace", r->id,
					      "output", buf, n, "truncated", older + dropped > 0,
					      "bytes_total", (json_int_t)total, "bytes_rotated_away",
					      (json_int_t)dropped, "bytes_kept",
					      (json_int_t)(older + n)));
	free(buf);
}

/* ---- DELETE /api/v1/jobs/{id} ------------------------------------------------------- */

/* Kill the cgroup of a job that is still running after its `kgate run`
 * was asked to end it. */
static void kill_job_cgroup(const char *trace)
{
	struct kg_job_record rec;
	char path[4200];
	int fd;

	if (kg_registry_load(trace, &rec) || !rec.cgroup_path[0] ||
	    kg_snprintf(path, sizeof(path), "%s/cgroup.kill", rec.cgroup_path))
		return;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			kg_warn("api: could not kill the cgroup of %s: %s", trace, strerror(errno));
		close(fd);
	}
}

static void record_stop(struct kg_api *api, const struct djob *j, const struct kg_principal *p,
			const char *before)
{
	const struct kg_policy_doc *doc = NULL;
	struct passwd pw, *pwr = NULL;
	char pwbuf[1024], *cmd = NULL;
	json_t *argv = json_object_get(j->submitted, "argv"), *v, *extra;
	struct kg_rec rec;
	size_t i;

	for (i = 0; i < api->dispatch->ndocs; i++)
		if (!strcmp(api->dispatch->docs[i]->name, j->policy))
			doc = api->dispatch->docs[i];
	{
		char **a = calloc(json_array_size(argv) + 1, sizeof(*a));

		json_array_foreach(argv, i, v)
			if (a)
				a[i] = (char *)json_string_value(v);
		cmd = a ? kg_join_argv(a) : NULL;
		free(a);
	}
	getpwuid_r(p->who.uid, &pw, pwbuf, sizeof(pwbuf), &pwr);
	extra = json_pack("{s:s,s:s,s:I}", "state_before", before, "via", "DELETE /api/v1/jobs/{id}",
			  "launcher_uid", (json_int_t)j->uid);
	kg_rec_init(&rec, "job_stop");
	kg_rec_str(&rec, "trace", j->trace);
	kg_rec_int(&rec, "actor.uid", p->who.uid);
	kg_rec_str(&rec, "actor.name", pwr ? pwr->pw_name : NULL);
	kg_rec_str(&rec, "actor.role", p->who.via[0] ? p->who.via : NULL);
	kg_rec_str(&rec, "op", "stop");
	kg_rec_str(&rec, "target", cmd ? cmd : "");
	kg_rec_str(&rec, "decision", "stop");
	kg_rec_str(&rec, "reason", "stopped through the HTTP API");
	kg_rec_policy(&rec, doc);
	kg_rec_str(&rec, "mechanism", "controller");
	kg_rec_extra(&rec, extra);
	pthread_mutex_lock(&api->audit_mu);
	if (kg_rec_append(api->audit, &rec) || kg_audit_flush(api->audit))
		kg_warn("api: the stop of %s could not be recorded", j->trace);
	pthread_mutex_unlock(&api->audit_mu);
	json_decref(extra);
	free(cmd);
}

/* DELETE /api/v1/jobs/{id}: its launcher (or a root principal) stops a
 * submitted job, waiting or running. */
void kg_dispatch_stop(struct kg_api_req *r)
{
	struct kg_api *api = r->api;
	struct kg_dispatch *d = api->dispatch;
	const struct kg_principal *p = &r->principal;
	json_t *job = d ? kg_dispatch_job_json(api, p, r->id) : NULL;
	char before[24];
	struct djob copy, *j;
	bool first = false, done = false;
	pid_t pid = -1;
	int ms;

	if (!job) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
			     "no job %s submitted through this daemon", r->id);
		return;
	}
	snprintf(before, sizeof(before), "%s", json_string_value(json_object_get(job, "state")) ?: "");
	json_decref(job);
	if (p->anonymous) {
		kg_api_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL, "stopping needs a token");
		return;
	}
	pthread_mutex_lock(&d->mu);
	j = find_locked(d, r->id);
	if (j && p->who.uid != j->uid && p->who.uid != 0)
		j = NULL;
	if (j && !j->done && !j->stop) {
		first = true;
		j->stop = true;
		j->stopped_by = p->who.uid;
		snprintf(j->stopped_via, sizeof(j->stopped_via), "%s", p->who.via);
		j->stopped_ns = kg_now_real_ns();
		pid = j->pid;
		copy = *j;
		json_incref(copy.submitted);
	}
	done = j && j->done;
	pthread_mutex_unlock(&d->mu);
	if (!j) {
		kg_api_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
			     "only the job's launcher (or root) stops it");
		return;
	}
	if (done) {
		kg_api_error(r, MHD_HTTP_CONFLICT, "already_ended",
			     json_pack("{s:o}", "job", kg_dispatch_job_json(api, p, r->id)),
			     "job %s has ended already", r->id);
		return;
	}
	if (first) {
		record_stop(api, &copy, p, before);
		json_decref(copy.submitted);
		if (pid > 0)
			kill(pid, SIGTERM);	/* `kgate run` ends the job (or stops waiting) */
	}
	for (ms = 0; ms < 2 * STOP_GRACE_MS; ms += 50) {
		pthread_mutex_lock(&d->mu);
		j = find_locked(d, r->id);
		done = !j || j->done;
		pthread_mutex_unlock(&d->mu);
		if (done)
			break;
		if (ms == STOP_GRACE_MS)
			kill_job_cgroup(r->id);	/* the command ignored SIGTERM */
		usleep(50 * 1000);
	}
	job = kg_dispatch_job_json(api, p, r->id);
	kg_api_json(r, done ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED, json_pack("{s:o}", "job", job));
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

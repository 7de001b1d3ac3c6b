// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/routes.c - the routes of kgate's HTTP API (docs/api.md).
 *
 * Each handler answers with the same functions the control socket uses
 * (daemon/service.h): the same view of jobs and requests, the same decision
 * path.  Query parameters and bodies are checked strictly: a malformed
 * request is answered 4xx and changes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "api/internal.h"
#include "common.h"
#include "kgate.h"
#include "kernel/loader.h"
#include "policy/policy.h"
#include "record/recorder.h"

#define DEFAULT_LIMIT	200
#define MAX_LIMIT	1000
#define TIMELINE_LIMIT	500

/* ---- helpers --------------------------------------------------------------------------- */

/* An unsigned query parameter in [min, max] (def when absent); false after
 * answering 400. */
static bool param_uint(struct kg_api_req *r, const char *name, uint64_t min, uint64_t max,
		       uint64_t def, uint64_t *out)
{
	const char *s = kg_api_param(r, name);
	unsigned long long v;
	char *end;

	*out = def;
	if (!s)
		return true;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v < min || v > max) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_parameter", NULL,
			     "%s must be a number from %llu to %llu", name, (unsigned long long)min,
			     (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

/* A text parameter of at most max bytes; false after answering 400. */
static bool param_text(struct kg_api_req *r, const char *name, size_t max, const char **out)
{
	*out = kg_api_param(r, name);
	if (*out && (!**out || strlen(*out) > max)) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_parameter", NULL,
			     "%s must have 1 to %zu characters", name, max);
		return false;
	}
	return true;
}

/* The view of this request's principal; false after answering 500. */
static bool view_of(struct kg_api_req *r, struct kg_view *v)
{
	int err = kg_view_init(v, r->api->q, &r->principal);

	if (err) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "cannot read the jobs or the queue: %s", strerror(-err));
		return false;
	}
	return true;
}

static json_t *principal_json(const struct kg_api_req *r)
{
	const struct kg_principal *p = &r->principal;

	if (p->anonymous)
		return json_pack("{s:b,s:b}", "anonymous", 1, "sees_all", p->sees_all);
	return json_pack("{s:s,s:I,s:b}", "token", r->token_name, "uid", (json_int_t)p->who.uid,
			 "sees_all", p->sees_all);
}

/* ---- GET /healthz ---------------------------------------------------------------------- */

static void r_healthz(struct kg_api_req *r)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd = kg_open_pinned_map("kg_control");
	uint64_t now = kg_now_mono_ns(), age;
	bool ok;

	ok = fd >= 0 && bpf_map_lookup_elem(fd, &zero, &ctl) == 0 && ctl.heartbeat_ns;
	if (fd >= 0)
		close(fd);
	age = ok && now > ctl.heartbeat_ns ? (now - ctl.heartbeat_ns) / 1000000 : 0;
	/* the kernel stops trusting a controller after 10 s; 2 s late is ill */
	ok = ok && age < 2000;
	kg_api_json(r, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
		    json_pack("{s:s,s:I,s:i}", "status", ok ? "ok" : "heartbeat stale",
			      "heartbeat_age_ms", (json_int_t)age, "pid", (int)getpid()));
}

/* ---- jobs ------------------------------------------------------------------------------ */

static void r_jobs(struct kg_api_req *r)
{
	struct kg_view v;

	if (!view_of(r, &v))
		return;
	kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o,s:o}", "jobs", kg_svc_jobs(&v),
					      "principal", principal_json(r)));
	kg_view_free(&v);
}

static void r_job(struct kg_api_req *r)
{
	struct kg_audit_filter f = { .trace_id = r->id };
	const struct kg_job_record *rec;
	json_t *job = NULL, *timeline = NULL;
	bool truncated = false;
	uint64_t matched = 0;
	struct kg_view v;
	json_t *dj;
	int err;

	if (!view_of(r, &v))
		return;
	/* a job this principal submitted (POST /api/v1/jobs) is theirs to see,
	 * before it starts too: its records join the view */
	dj = kg_dispatch_job_json(r->api, &r->principal, r->id);
	if (dj && v.traces && !kg_view_trace(&v, r->id))
		kg_strlcpy(v.traces[v.ntraces++], r->id, sizeof(*v.traces));
	rec = kg_view_find_job(&v, r->id);
	if (rec && !kg_view_job(&v, rec) && !dj) {
		kg_api_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
			     "job %s is another user's", r->id);
		goto out;
	}
	if (!rec && !kg_view_trace(&v, r->id)) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no job %s", r->id);
		goto out;
	}
	err = kg_svc_audit(&v, &f, TIMELINE_LIMIT, &timeline, &truncated, &matched);
	if (err) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "cannot read the audit trail: %s", strerror(-err));
		goto out;
	}
	if (rec) {
		int jobs_fd = kg_open_pinned_map("kg_jobs");

		job = kg_svc_job_json(rec, jobs_fd);
		if (jobs_fd >= 0)
			close(jobs_fd);
	} else if (dj) {
		job = json_pack("{s:s,s:O}", "trace", r->id, "state", json_object_get(dj, "state"));
		if (json_object_get(dj, "exit_status"))
			json_object_set(job, "exit_status", json_object_get(dj, "exit_status"));
	} else if (matched) {
		job = json_pack("{s:s,s:s}", "trace", r->id, "state", "ended");
	} else {
		json_decref(timeline);
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no job %s", r->id);
		goto out;
	}
	if (dj)
		json_object_set(job, "dispatch", dj);
	kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o,s:o,s:b,s:I}", "job", job, "timeline", timeline,
					      "timeline_truncated", truncated, "records",
					      (json_int_t)matched));
out:
	json_decref(dj);
	kg_view_free(&v);
}

/* ---- approvals ------------------------------------------------------------------------ */

static void r_approvals(struct kg_api_req *r)
{
	const char *state = kg_api_param(r, "state");
	enum kg_svc_state st = KG_SVC_PENDING;
	json_t *arr = NULL;
	struct kg_view v;
	uint64_t limit;
	int err;

	if (state && !strcmp(state, "decided"))
		st = KG_SVC_DECIDED;
	else if (state && !strcmp(state, "all"))
		st = KG_SVC_ALL;
	else if (state && strcmp(state, "pending")) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_parameter", NULL,
			     "state must be pending, decided or all");
		return;
	}
	if (!param_uint(r, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT, &limit) || !view_of(r, &v))
		return;
	pthread_mutex_lock(&r->api->q_mu);	/* expiring overdue requests audits them */
	err = kg_svc_requests(r->api->q, &v, st, limit, &arr);
	pthread_mutex_unlock(&r->api->q_mu);
	if (err)
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "cannot read the queue: %s", strerror(-err));
	else
		kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o,s:o}", "requests", arr,
						      "principal", principal_json(r)));
	kg_view_free(&v);
}

static void r_approval(struct kg_api_req *r)
{
	struct kg_approval *a = calloc(1, sizeof(*a));
	struct kg_view v;

	if (!a) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
		return;
	}
	if (!view_of(r, &v)) {
		free(a);
		return;
	}
	/* one the principal may not see is not there, for them */
	if (kg_approvals_get(r->api->q, r->id, a) || !kg_view_request(&v, a))
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no request %s", r->id);
	else
		kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o}", "request", kg_svc_request_json(&v, a)));
	kg_view_free(&v);
	free(a);
}

/* The decision's body: {"once": true} or {"ttl_sec": N}, and "note". */
static bool decision_body(struct kg_api_req *r, bool approve, struct kg_grant_opts *g,
			  char *note, size_t notelen)
{
	json_error_t jerr;
	const char *key;
	json_t *o, *v;
	bool once = false;

	memset(g, 0, sizeof(*g));
	if (!r->body_len)
		return true;	/* no body: the defaults */
	o = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "malformed_json", NULL,
			     "the body is not JSON: %d:%d: %s", jerr.line, jerr.column, jerr.text);
		return false;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", NULL,
			     "the body must be a JSON object");
		return false;
	}
	json_object_foreach(o, key, v) {
		const char *bad = NULL;

		if (!strcmp(key, "note")) {
			if (!json_is_string(v) || json_string_length(v) > KG_API_NOTE_MAX ||
			    memchr(json_string_value(v), '\0', json_string_length(v)))
				bad = "note must be a string of at most 255 bytes";
			else
				kg_strlcpy(note, json_string_value(v), notelen);
		} else if (approve && !strcmp(key, "once")) {
			if (!json_is_boolean(v))
				bad = "once must be true or false";
			else
				once = json_is_true(v);
		} else if (approve && !strcmp(key, "ttl_sec")) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 7 * 86400)
				bad = "ttl_sec must be an integer from 1 to 604800";
			else
				g->ttl_sec = (uint64_t)json_integer_value(v);
		} else {
			kg_api_error(r, MHD_HTTP_BAD_REQUEST, "unknown_field", NULL,
				     "unknown field '%s' (%s)", key, approve ?
				     "an approval takes once or ttl_sec, and note" :
				     "a denial takes note");
			json_decref(o);
			return false;
		}
		if (bad) {
			kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_field", NULL, "%s", bad);
			json_decref(o);
			return false;
		}
	}
	json_decref(o);
	if (once && g->ttl_sec) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_field", NULL,
			     "once and ttl_sec exclude each other");
		return false;
	}
	g->once = once;
	g->note = note[0] ? note : NULL;
	return true;
}

static void decide(struct kg_api_req *r, bool approve)
{
	struct kg_approval *a = calloc(1, sizeof(*a));
	struct kg_grant_opts g;
	char note[KG_API_NOTE_MAX + 1] = "", why[256];
	struct kg_view v;
	json_t *req;
	int err;

	if (!a) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
		return;
	}
	if (!decision_body(r, approve, &g, note, sizeof(note))) {
		free(a);
		return;
	}
	pthread_mutex_lock(&r->api->q_mu);
	err = kg_svc_decide(r->api->q, &r->principal, r->id, approve, &g, a, why, sizeof(why));
	pthread_mutex_unlock(&r->api->q_mu);
	if (!view_of(r, &v)) {
		free(a);
		return;
	}
	req = a->id[0] && kg_view_request(&v, a) ? kg_svc_request_json(&v, a) : NULL;
	switch (err) {
	case 0:
		kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o}", "request", req));
		req = NULL;
		break;
	case -ENOENT:
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no request %s", r->id);
		break;
	case -EACCES:
		kg_api_error(r, MHD_HTTP_FORBIDDEN, "not_approver", NULL, "%s",
			     why[0] ? why : "not an approver of this request");
		break;
	case -EALREADY:
		kg_api_error(r, MHD_HTTP_CONFLICT, "already_decided", json_pack("{s:O*}", "request", req),
			     "request %s was already decided (%s)", r->id, kg_appr_state_name(a->state));
		break;
	case -ETIMEDOUT:
		kg_api_error(r, MHD_HTTP_CONFLICT, "expired", json_pack("{s:O*}", "request", req),
			     "request %s expired before a decision: it was denied", r->id);
		break;
	case -ESRCH:
		kg_api_error(r, MHD_HTTP_CONFLICT, "job_gone", json_pack("{s:O*}", "request", req),
			     "the job of request %s is gone", r->id);
		break;
	case -ESTALE:
		kg_api_error(r, MHD_HTTP_CONFLICT, "stale", json_pack("{s:O*}", "request", req),
			     "request %s is stale: %s; the agent's retry raises a new request under "
			     "the current policy", r->id, a->reason);
		break;
	default:
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "%s %s failed: %s",
			     approve ? "approving" : "denying", r->id, strerror(-err));
	}
	json_decref(req);
	kg_view_free(&v);
	free(a);
}

static void r_approve(struct kg_api_req *r)
{
	decide(r, true);
}

static void r_deny(struct kg_api_req *r)
{
	decide(r, false);
}

/* ---- GET /api/v1/policy --------------------------------------------------------------- */

static json_t *policy_json(uint32_t policy_id)
{
	struct kg_policy_doc *doc = kg_snapshot_load_doc(policy_id);
	json_t *o, *src, *uids, *gids;
	size_t i;

	if (!doc)
		return json_pack("{s:I,s:s}", "generation", (json_int_t)policy_id, "error",
				 "no snapshot of this generation");
	src = doc->canonical_json ? json_loads(doc->canonical_json, 0, NULL) : NULL;
	uids = json_array();
	gids = json_array();
	for (i = 0; i < doc->approvers.nuids; i++)
		json_array_append_new(uids, json_integer(doc->approvers.uids[i]));
	for (i = 0; i < doc->approvers.ngids; i++)
		json_array_append_new(gids, json_integer(doc->approvers.gids[i]));
	o = json_pack("{s:I,s:s,s:i,s:s,s:{s:o,s:o,s:b,s:I},s:o*}",
		      "generation", (json_int_t)policy_id, "name", doc->name ? doc->name : "",
		      "version", doc->version, "hash", doc->hash,
		      "approvals", "uids", uids, "gids", gids, "allow_self_approval",
		      doc->allow_self_approval, "timeout_sec", (json_int_t)doc->approval_timeout_sec,
		      "document", src);
	kg_policy_free(doc);
	return o;
}

static void r_policy(struct kg_api_req *r)
{
	const char *job = kg_api_param(r, "job");
	json_t *arr = json_array();
	struct kg_view v;
	size_t i, k;

	if (!view_of(r, &v)) {
		json_decref(arr);
		return;
	}
	if (job && !kg_view_find_job(&v, job)) {
		kg_view_free(&v);
		json_decref(arr);
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no running job %s", job);
		return;
	}
	/* each generation in force in a job the principal sees, once */
	for (i = 0; arr && i < v.njobs; i++) {
		const struct kg_job_record *rec = &v.jobs[i];
		json_t *p = NULL, *e;

		if (!kg_view_job(&v, rec) || (job && strcmp(job, rec->trace)))
			continue;
		json_array_foreach(arr, k, e)
			if (json_integer_value(json_object_get(e, "generation")) == rec->policy_id)
				p = e;
		if (!p) {
			p = policy_json(rec->policy_id);
			json_object_set_new(p, "jobs", json_array());
			json_array_append_new(arr, p);
		}
		json_array_append_new(json_object_get(p, "jobs"), json_string(rec->trace));
	}
	kg_view_free(&v);
	kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o}", "policies", arr));
}

/* ---- GET /api/v1/audit ---------------------------------------------------------------- */

static void r_audit(struct kg_api_req *r)
{
	struct kg_audit_filter f = {};
	const char *since, *until;
	bool truncated = false;
	uint64_t limit, matched = 0;
	json_t *records = NULL;
	struct kg_view v;
	int err;

	if (!param_text(r, "trace", 64, &f.trace_id) || !param_text(r, "decision", 64, &f.decision) ||
	    !param_text(r, "type", 64, &f.type) || !param_text(r, "rule", 80, &f.rule_id) ||
	    !param_text(r, "policy", 64, &f.policy_hash) || !param_text(r, "since", 64, &since) ||
	    !param_text(r, "until", 64, &until) ||
	    !param_uint(r, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT, &limit))
		return;
	if ((since && kg_audit_parse_time(since, &f.since_ns)) ||
	    (until && kg_audit_parse_time(until, &f.until_ns))) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_parameter", NULL,
			     "since and until are RFC 3339 times or unix seconds");
		return;
	}
	if (!view_of(r, &v))
		return;
	err = kg_svc_audit(&v, &f, limit, &records, &truncated, &matched);
	kg_view_free(&v);
	if (err) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "cannot read the audit trail: %s", strerror(-err));
		return;
	}
	kg_api_json(r, MHD_HTTP_OK, json_pack("{s:o,s:I,s:b}", "records", records, "matched",
					      (json_int_t)matched, "truncated", truncated));
}

/* ---- GET /api/v1/events --------------------------------------------------------------- */

static void r_events(struct kg_api_req *r)
{
	const char *last = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
	struct MHD_Response *resp;

	if (atomic_fetch_add(&r->api->streams, 1) >= KG_API_MAX_STREAMS) {
		atomic_fetch_sub(&r->api->streams, 1);
		kg_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too_many_streams", NULL,
			     "%d event streams are open already", KG_API_MAX_STREAMS);
		return;
	}
	resp = kg_feed_stream(r->api, &r->principal, last);	/* owns the stream count now */
	if (!resp) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "cannot open the stream");
		return;
	}
	/* a stream is quiet between events: its own, longer idle timeout */
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)60);
	kg_api_respond(r, MHD_HTTP_OK, resp);
}

/* ---- the page ----------------------------------------------------------------------------- */

static void r_page(struct kg_api_req *r)
{
	const void *data;
	const char *type;
	char buf[96];
	size_t len;

	if (r->id[0])
		snprintf(buf, sizeof(buf), "/static/%s", r->id);
	else
		snprintf(buf, sizeof(buf), "/");
	if (!kg_web_asset(buf, &data, &len, &type)) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
		return;
	}
	kg_api_static(r, data, len, type);
}

/* ---- the table -------------------------------------------------------------------------- */

static const char *const p_none[] = { NULL };
static const char *const p_approvals[] = { "state", "limit", NULL };
static const char *const p_policy[] = { "job", NULL };
static const char *const p_audit[] = { "trace", "decision", "type", "rule", "policy", "since",
				       "until", "limit", NULL };

const struct kg_api_route kg_api_routes[] = {
	{ "GET", "/", KG_API_OPEN, 0, p_none, r_page },
	{ "GET", "/static/{id}", KG_API_OPEN, 0, p_none, r_page },
	{ "GET", "/healthz", KG_API_OPEN, 0, p_none, r_healthz },
	{ "GET", "/metrics", KG_API_READ, 0, p_none, kg_api_metrics },
	{ "GET", "/api/v1/jobs", KG_API_READ, 0, p_none, r_jobs },
	{ "GET", "/api/v1/jobs/{id}", KG_API_READ, 0, p_none, r_job },
	{ "POST", "/api/v1/jobs", KG_API_DECIDE, 16384, p_none, kg_dispatch_submit },
	{ "GET", "/api/v1/jobs/{id}/output", KG_API_READ, 0, p_none, kg_dispatch_output },
	{ "DELETE", "/api/v1/jobs/{id}", KG_API_DECIDE, 0, p_none, kg_dispatch_stop },
	{ "GET", "/api/v1/approvals", KG_API_READ, 0, p_approvals, r_approvals },
	{ "GET", "/api/v1/approvals/{id}", KG_API_READ, 0, p_none, r_approval },
	{ "POST", "/api/v1/approvals/{id}/approve", KG_API_DECIDE, KG_API_MAX_BODY, p_none, r_approve },
	{ "POST", "/api/v1/approvals/{id}/deny", KG_API_DECIDE, KG_API_MAX_BODY, p_none, r_deny },
	{ "GET", "/api/v1/policy", KG_API_READ, 0, p_policy, r_policy },
	{ "GET", "/api/v1/audit", KG_API_READ, 0, p_audit, r_audit },
	{ "GET", "/api/v1/events", KG_API_READ, 0, p_none, r_events },
};

const size_t kg_api_nroutes = ARRAY_SIZE(kg_api_routes);

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* daemon/service.c - what kgate's daemon answers, whoever asks. */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "daemon/service.h"
#include "kgate.h"
#include "kernel/loader.h"
#include "policy/policy.h"
#include "record/recorder.h"

void kg_principal_from_creds(struct kg_principal *p, uid_t uid, gid_t gid, const gid_t *groups,
			     size_t ngroups)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	p->who.uid = uid;
	p->who.gids[p->who.ngids++] = gid;
	for (i = 0; i < ngroups && p->who.ngids < ARRAY_SIZE(p->who.gids); i++)
		p->who.gids[p->who.ngids++] = groups[i];
	p->sees_all = uid == 0;
}

/* ---- the view ---------------------------------------------------------------------- */

/* May the principal decide a, going by the request's own approver list? */
static bool may_decide(const struct kg_principal *p, const struct kg_approval *a)
{
	char why[256];

	return !p->anonymous && kg_approvals_authorize(a, &p->who, why, sizeof(why)) == 0;
}

static bool own_request(const struct kg_principal *p, const struct kg_approval *a)
{
	return !p->anonymous && a->requester_uid == p->who.uid;
}

static int by_start(const void *x, const void *y)
{
	const struct kg_job_record *a = x, *b = y;

	if (a->started_real_ns != b->started_real_ns)
		return a->started_real_ns < b->started_real_ns ? -1 : 1;
	return strcmp(a->trace, b->trace);
}

static bool has_trace(const struct kg_view *v, const char *trace)
{
	size_t i;

	for (i = 0; i < v->ntraces; i++)
		if (!strcmp(v->traces[i], trace))
			return true;
	return false;
}

int kg_view_init(struct kg_view *v, struct kg_approvals *q, const struct kg_principal *p)
{
	struct kg_approval *reqs = NULL;
	size_t n = 0, i;
	int err;

	memset(v, 0, sizeof(*v));
	v->p = p;
	err = kg_registry_list(&v->jobs, &v->njobs);
	if (err)
		return err;
	if (v->njobs > 1)
		qsort(v->jobs, v->njobs, sizeof(*v->jobs), by_start);
	if (p->sees_all || p->anonymous || !q)
		return 0;
	/* the jobs whose requests this principal may decide */
	err = kg_approvals_list(q, true, &reqs, &n);
	if (err) {
		kg_view_free(v);
		return err;
	}
	v->traces = calloc(n + 1, sizeof(*v->traces));
	if (!v->traces) {
		free(reqs);
		kg_view_free(v);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		if (reqs[i].trace_id[0] && may_decide(p, &reqs[i]) && !has_trace(v, reqs[i].trace_id))
			kg_strlcpy(v->traces[v->ntraces++], reqs[i].trace_id, sizeof(*v->traces));
	free(reqs);
	return 0;
}

void kg_view_free(struct kg_view *v)
{
	free(v->jobs);
	free(v->traces);
	v->jobs = NULL;
	v->traces = NULL;
	v->njobs = v->ntraces = 0;
}

bool kg_view_request(const struct kg_view *v, const struct kg_approval *a)
{
	return v->p->sees_all || own_request(v->p, a) || may_decide(v->p, a);
}

bool kg_view_job(const struct kg_view *v, const struct kg_job_record *r)
{
	const struct kg_principal *p = v->p;

	if (p->sees_all)
		return true;
	if (p->anonymous)
		return false;
	return p->who.uid == r->as_uid || p->who.uid == r->invoker_uid || p->who.uid == r->uid ||
	       has_trace(v, r->trace);
}

const struct kg_job_record *kg_view_find_job(const struct kg_view *v, const char *trace)
{
	size_t i;

	for (i = 0; i < v->njobs; i++)
		if (!strcmp(v->jobs[i].trace, trace))
			return &v->jobs[i];
	return NULL;
}

bool kg_view_trace(const struct kg_view *v, const char *trace)
{
	const struct kg_job_record *r;

	if (v->p->sees_all)
		return true;
	if (!trace)
		return false;	/* records of no job: the controller's own */
	r = kg_view_find_job(v, trace);
	return (r && kg_view_job(v, r)) || has_trace(v, trace);
}

/* ---- jobs ---------------------------------------------------------------------------- */

static const char *job_state(int jobs_fd, const struct kg_job_record *r)
{
	struct kg_job kj;

	if (jobs_fd >= 0 && bpf_map_lookup_elem(jobs_fd, &r->cgid, &kj) == 0)
		return kj.policy_id == r->policy_id ? "governed" : "governed (policy changing)";
	return kg_registry_stale(r) ? "ended" : "starting";
}

json_t *kg_svc_job_json(const struct kg_job_record *r, int jobs_fd)
{
	struct kg_job_tally t;
	uint64_t folded_refused, folded_audited;
	char started[48];
	json_t *j;

	kg_registry_tally(r->trace, &t);
	kg_fold_pending(r->cgid, &folded_refused, &folded_audited);
	kg_audit_format_time(r->started_real_ns, started, sizeof(started));
	j = json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:I},s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:I,s:s,"
			 "s:s,s:{s:I,s:I,s:I}}",
			 "trace", r->trace, "state", job_state(jobs_fd, r), "command", r->command,
			 "policy", "name", r->policy_name, "hash", r->policy_hash,
			 "generation", (json_int_t)r->policy_id,
			 "policy_name", r->policy_name, "policy_hash", r->policy_hash,
			 "mode", r->full ? "full" : "degraded", "pid", (int)r->pid,
			 "controller_pid", (int)r->controller_pid,
			 "as_uid", (json_int_t)r->as_uid, "invoker_uid", (json_int_t)r->invoker_uid,
			 "uid", (json_int_t)r->uid, "cgroup_id", (json_int_t)r->cgid,
			 "cgroup", r->cgroup_path, "started", started,
			 "recorded", "refused", (json_int_t)t.refused, "audited", (json_int_t)t.audited,
			 "escalations", (json_int_t)t.escalations);
	/* decided, folded by the kernel, not in any record yet (bpf/kgate.h) */
	if (j)
		json_object_set_new(j, "folded", json_pack("{s:I,s:I}", "refused",
							   (json_int_t)folded_refused, "audited",
							   (json_int_t)folded_audited));
	return j;
}

json_t *kg_svc_jobs(const struct kg_view *v)
{
	json_t *arr = json_array();
	int jobs_fd = kg_open_pinned_map("kg_jobs");
	size_t i;

	for (i = 0; arr && i < v->njobs; i++) {
		const struct kg_job_record *r = &v->jobs[i];

		if (kg_view_job(v, r))
			json_array_append_new(arr, kg_svc_job_json(r, jobs_fd));
		else
			json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "trace", r->trace,
							     "mode", r->full ? "full" : "degraded",
							     "hidden", 1));
	}
	if (jobs_fd >= 0)
		close(jobs_fd);
	return arr;
}

/* ---- requests ------------------------------------------------------------------------ */

/* The reason the policy gives for rule `id`, from the snapshot of the
 * generation the request was raised under. */
static json_t *rule_reason(uint32_t policy_id, const char *id)
{
	struct kg_policy_doc *doc = kg_snapshot_load_doc(policy_id);
	json_t *reason = NULL;
	size_t i;

	for (i = 0; doc && i < doc->nrules; i++)
		if (!strcmp(doc->rules[i].id, id)) {
			if (doc->rules[i].reason)
				reason = json_string(doc->rules[i].reason);
			break;
		}
	kg_policy_free(doc);
	return reason;
}

static json_t *user_name(uint32_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) || !res)
		return NULL;
	return json_string(res->pw_name);
}

json_t *kg_svc_request_json(const struct kg_view *v, const struct kg_approval *a)
{
	const struct kg_job_record *r = kg_view_find_job(v, a->trace_id);
	json_t *j = kg_approval_to_json(a), *reason, *name;
	uint64_t now = kg_now_real_ns();

	if (!j)
		return NULL;
	/* what the job is, when it still runs and the principal sees it */
	if (r && kg_view_job(v, r))
		json_object_set_new(j, "job", json_pack("{s:s,s:I,s:s,s:s}", "command", r->command,
							"as_uid", (json_int_t)r->as_uid, "mode",
							r->full ? "full" : "degraded", "state",
							kg_registry_stale(r) ? "ended" : "running"));
	if ((reason = rule_reason(a->policy_id, a->rule_id)))
		json_object_set_new(j, "rule_reason", reason);
	if ((name = user_name(a->requester_uid)))
		json_object_set_new(j, "requester_name", name);
	if (a->decided_by >= 0 && (name = user_name((uint32_t)a->decided_by)))
		json_object_set_new(j, "decided_by_name", name);
	json_object_set_new(j, "age_sec", json_integer(now > a->created_ns ?
						       (json_int_t)((now - a->created_ns) / 1000000000ull) : 0));
	if (a->state == KG_APPR_PENDING)
		json_object_set_new(j, "expires_in_sec", json_integer(a->expires_ns > now ?
			(json_int_t)((a->expires_ns - now) / 1000000000ull) : 0));
	json_object_set_new(j, "may_decide", json_boolean(a->state == KG_APPR_PENDING &&
							  may_decide(v->p, a)));
	return j;
}

int kg_svc_requests(struct kg_approvals *q, const struct kg_view *v, enum kg_svc_state st,
		    size_t limit, json_t **out)
{
	struct kg_approval *reqs = NULL;
	size_t n = 0, i, first = 0, shown = 0;
	json_t *arr;
	int err;

	/* a reviewer never sees an overdue request as pending */
	kg_approvals_expire(q, 0);
	err = kg_approvals_list(q, st != KG_SVC_PENDING, &reqs, &n);
	if (err)
		return err;
	/* the newest `limit` of them: count from the end */
	if (limit) {
		for (i = n; i-- > 0;) {
			bool want = st == KG_SVC_ALL ||
				    (st == KG_SVC_PENDING) == (reqs[i].state == KG_APPR_PENDING);

			if (want && kg_view_request(v, &reqs[i]) && ++shown == limit) {
				first = i;
				break;
			}
		}
	}
	arr = json_array();
	for (i = first; arr && i < n; i++) {
		bool want = st == KG_SVC_ALL ||
			    (st == KG_SVC_PENDING) == (reqs[i].state == KG_APPR_PENDING);

		if (want && kg_view_request(v, &reqs[i]))
			json_array_append_new(arr, kg_svc_request_json(v, &reqs[i]));
	}
	free(reqs);
	if (!arr)
		return -ENOMEM;
	*out = arr;
	return 0;
}

int kg_svc_decide(struct kg_approvals *q, const struct kg_principal *p, const char *id,
		  bool approve, const struct kg_grant_opts *g, struct kg_approval *out,
		  char *why, size_t whylen)
{
	int err;

	memset(out, 0, sizeof(*out));
	why[0] = '\0';
	if (p->anonymous) {
		snprintf(why, whylen, "deciding needs an identity (a token)");
		return -EACCES;
	}
	/* the reason of a refusal goes back to the caller (the decision
	 * itself checks again, under the queue lock) */
	if (kg_approvals_get(q, id, out) == 0 && out->state == KG_APPR_PENDING &&
	    kg_approvals_authorize(out, &p->who, why, whylen))
		return -EACCES;
	memset(out, 0, sizeof(*out));
	err = approve ? kg_approvals_approve(q, id, &p->who, g, out)
		      : kg_approvals_deny(q, id, &p->who, g ? g->note : NULL, out);
	if (err == -EACCES && !why[0])
		kg_approvals_authorize(out, &p->who, why, whylen);
	return err;
}

/* ---- the audit trail -------------------------------------------------------------------- */

struct audit_ctx {
	const struct kg_view *v;
	json_t **ring;		/* the newest `limit` records */
	size_t limit, n, next;
	uint64_t matched;
};

static int collect_record(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct audit_ctx *c = ctx;

	(void)line;
	(void)len;
	if (!kg_view_trace(c->v, json_string_value(json_object_get(rec, "trace"))))
		return 0;
	c->matched++;
	json_decref(c->ring[c->next]);
	c->ring[c->next] = json_incref(rec);
	c->next = (c->next + 1) % c->limit;
	if (c->n < c->limit)
		c->n++;
	return 0;
}

int kg_svc_audit(const struct kg_view *v, const struct kg_audit_filter *f, size_t limit,
		 json_t **out, bool *truncated, uint64_t *matched)
{
	struct audit_ctx c = { .v = v, .limit = limit ? limit : 1 };
	struct kg_audit_qstats st = {};
	json_t *arr;
	size_t i;
	int err;

	c.ring = calloc(c.limit, sizeof(*c.ring));
	if (!c.ring)
		return -ENOMEM;
	err = kg_audit_query(NULL, f, collect_record, &c, true, &st);
	if (err == -ENOENT)
		err = 0;	/* no trail yet: nothing recorded */
	arr = err ? NULL : json_array();
	/* oldest first: the ring starts at `next` once it has wrapped */
	for (i = 0; arr && i < c.n; i++)
		json_array_append(arr, c.ring[(c.n < c.limit ? i : c.next + i) % c.limit]);
	for (i = 0; i < c.limit; i++)
		json_decref(c.ring[i]);
	free(c.ring);
	if (err)
		return err;
	if (!arr)
		return -ENOMEM;
	*out = arr;
	*truncated = c.matched > c.n;
	*matched = c.matched;
	return 0;
}

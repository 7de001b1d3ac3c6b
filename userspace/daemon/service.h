/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * daemon/service.h - what kgate's daemon answers, whoever asks.
 *
 * The control socket (identity: SO_PEERCRED and SO_PEERGROUPS) and the HTTP
 * API (identity: the principal a bearer token maps to) call these same
 * functions, so both show the same jobs and requests to the same people
 * and every decision takes one path: kg_approvals_authorize(), then
 * kg_approvals_approve() or kg_approvals_deny().
 *
 * Who sees what:
 *   - a principal that sees all (uid 0, or an anonymous reader the
 *     operator allowed: docs/api.md) sees every job and request;
 *   - anyone else sees the jobs that run as them or that they started,
 *     the requests those jobs raised, the requests they may decide, and the
 *     jobs (and their audit records) of those requests: an approver needs
 *     the job's command and timeline to decide;
 *   - of the other jobs only that they exist (trace id and mode).
 * Deciding needs an identity: an anonymous principal decides nothing.
 */
#ifndef KGATE_DAEMON_SERVICE_H
#define KGATE_DAEMON_SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "approve/approvals.h"
#include "record/audit.h"
#include "job/registry.h"

struct kg_principal {
	struct kg_approver who;		/* uid, groups and (tokens) their name */
	bool anonymous;			/* no identity at all: reads only */
	bool sees_all;			/* uid 0, or anonymous reads the operator enabled */
};

/* A principal from kernel credentials (uid 0 sees all). */
void kg_principal_from_creds(struct kg_principal *p, uid_t uid, gid_t gid, const gid_t *groups,
			     size_t ngroups);

/* What one principal may see, computed once per request. */
struct kg_view {
	const struct kg_principal *p;
	struct kg_job_record *jobs;	/* the registry when the view was made */
	size_t njobs;
	char (*traces)[40];		/* jobs reached through requests (see above) */
	size_t ntraces;
};

/* Reads the registry and (unless p sees all) the queue.  0/-errno. */
int kg_view_init(struct kg_view *v, struct kg_approvals *q, const struct kg_principal *p);
void kg_view_free(struct kg_view *v);
bool kg_view_request(const struct kg_view *v, const struct kg_approval *a);
bool kg_view_job(const struct kg_view *v, const struct kg_job_record *r);
/* A trace's records (a running job's, or one reached through requests). */
bool kg_view_trace(const struct kg_view *v, const char *trace);
/* The registry record of a trace in the view, or NULL. */
const struct kg_job_record *kg_view_find_job(const struct kg_view *v, const char *trace);

/* ---- jobs ------------------------------------------------------------------------- */

/* A job as both interfaces show it: trace, state ("governed", "ended",
 * ...), command, policy {name, hash, generation} (and the flat
 * policy_name/policy_hash the CLI reads), mode, pids and uids, cgroup,
 * start time and the decisions recorded for it.  jobs_fd: the pinned
 * kg_jobs map, or -1. */
json_t *kg_svc_job_json(const struct kg_job_record *r, int jobs_fd);
/* Every job: the visible ones in full, the others as {trace, mode, hidden}. */
json_t *kg_svc_jobs(const struct kg_view *v);

/* ---- requests --------------------------------------------------------------------- */

enum kg_svc_state { KG_SVC_PENDING, KG_SVC_DECIDED, KG_SVC_ALL };

/* A request as both interfaces show it: kg_approval_to_json() plus what a
 * reviewer needs to decide: the job's command and user, the rule's reason,
 * age and time left, and whether this principal may decide it. */
json_t *kg_svc_request_json(const struct kg_view *v, const struct kg_approval *a);
/* The requests of that state that the view shows, oldest first (at most
 * limit, the newest ones, 0 = all); overdue requests are expired first.
 * 0/-errno. */
int kg_svc_requests(struct kg_approvals *q, const struct kg_view *v, enum kg_svc_state st,
		    size_t limit, json_t **out);

/* Approve (g) or deny (note) request id as the principal.  The return is
 * that of kg_approvals_approve/deny; -EACCES with the reason in why when
 * the principal may not decide (an anonymous one never may).  *out is the
 * request as it now stands when it exists. */
int kg_svc_decide(struct kg_approvals *q, const struct kg_principal *p, const char *id,
		  bool approve, const struct kg_grant_opts *g, struct kg_approval *out,
		  char *why, size_t whylen);

/* ---- the audit trail -------------------------------------------------------------- */

/* The records matching f that the view shows, oldest first; when more than
 * limit match, the newest limit of them and *truncated.  0/-errno. */
int kg_svc_audit(const struct kg_view *v, const struct kg_audit_filter *f, size_t limit,
		 json_t **out, bool *truncated, uint64_t *matched);

#endif

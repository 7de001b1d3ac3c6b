/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * approvals.h - the human-approval queue and the grants it installs.
 *
 * A require_approval rule refuses (or holds, see hold.h) an action until a
 * human approves exactly that action.  The queue lives in files so that it
 * survives a controller restart and every kgate process sees the same one:
 *
 *   <kg_state_dir()>/approvals/.lock           flock(LOCK_EX) around every mutation
 *   <kg_state_dir()>/approvals/pending/<id>.json   requests waiting for a human
 *   <kg_state_dir()>/approvals/done/<id>.json      decided requests (history)
 *
 * Each file is written whole to a temporary name and renamed into place.
 * A request is bound to the exact action (struct kg_grant_key: job cgroup id,
 * op, target bytes; its SHA-256 is the "action hash") and to the policy id
 * and hash it was raised under.  Approving it installs a grant in kg_grants
 * for that tuple only; the kernel re-checks the grant on every use (see
 * kg_consume_grant in bpf/common.bpf.h).
 *
 * Times of requests are CLOCK_REALTIME ns (they are shown to humans and
 * survive restarts); grant expiry is CLOCK_MONOTONIC ns (the kernel's clock).
 */
#ifndef KGATE_APPROVALS_H
#define KGATE_APPROVALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "record/audit.h"
#include "kgate.h"
#include "kernel/loader.h"
#include "policy/policy.h"

#define KG_APPR_ID_LEN		12	/* hex characters */
#define KG_APPR_MAX_PRINCIPALS	32	/* approver uids (and gids) kept per request */
#define KG_APPR_DEFAULT_TIMEOUT	300
#define KG_APPR_DEFAULT_QUEUE	64
#define KG_APPR_HARD_MAX	KG_MAX_GRANTS	/* pending requests, all jobs together */

enum kg_appr_state {
	KG_APPR_PENDING = 0,
	KG_APPR_APPROVED,
	KG_APPR_DENIED,
	KG_APPR_EXPIRED,	/* timed out, or its job is gone: resolves to deny */
	KG_APPR_STALE,		/* the job's policy changed before approval: re-escalate */
};

/* Distinct results (positive) of kg_approvals_request(). */
#define KG_APPR_CREATED	0
#define KG_APPR_MERGED	1

struct kg_approval {
	char id[KG_APPR_ID_LEN + 1];
	char action_hash[KG_HASH_HEX_LEN + 1];	/* sha256(struct kg_grant_key) */
	struct kg_grant_key key;		/* stored hex-encoded */
	char trace_id[40];
	char target[KG_PATH_MAX * 2];		/* readable, e.g. "10.0.0.1:443/tcp" */
	char rule_id[KG_ID_MAX + 16];
	uint32_t policy_id;
	char policy_hash[KG_HASH_HEX_LEN + 1];
	char policy_name[128];
	long policy_version;
	uint32_t requester_uid;			/* the job's uid, from the kernel */
	uint32_t requester_pid;
	uint64_t created_ns, expires_ns;	/* CLOCK_REALTIME */
	uint32_t count;				/* identical requests merged into this one */
	bool held;				/* a syscall is held for it (hold mode) */
	enum kg_appr_state state;
	long decided_by;			/* uid, -1 = nobody (expiry) */
	char decided_via[96];			/* how the approver was identified, when not
						 * by the kernel: "token:NAME" (HTTP API) */
	uint64_t decided_ns;
	char note[256];
	char reason[160];			/* why expired / stale */
	/* the grant installed on approval */
	bool once;
	uint64_t ttl_sec;
	uint64_t grant_expires_mono_ns;
	/* who may decide, taken from the policy when the request was made */
	uint32_t approver_uids[KG_APPR_MAX_PRINCIPALS];
	uint32_t napprover_uids;
	uint32_t approver_gids[KG_APPR_MAX_PRINCIPALS];
	uint32_t napprover_gids;
	bool allow_self_approval;
};

/* What the controller knows from the policy document.  Everything may be
 * zero: no approvers = uid 0 only, timeout 300 s, queue 64 per job. */
struct kg_approvals_cfg {
	const struct kg_principals *approvers;
	bool allow_self_approval;
	uint64_t timeout_sec;
	uint64_t queue_max;		/* pending requests per job */
	const char *policy_name;
	long policy_version;
	struct kg_audit *audit;		/* borrowed; NULL = opened on first need */
	struct kg_loader *loader;	/* borrowed; NULL = use the pinned maps */
};

/* Fill cfg from a policy document (audit/loader left as they are). */
void kg_approvals_cfg_from_doc(struct kg_approvals_cfg *cfg, const struct kg_policy_doc *doc);

struct kg_approvals;

/* cfg may be NULL (the CLI: approvers come from each request). NULL + errno. */
struct kg_approvals *kg_approvals_open(const struct kg_approvals_cfg *cfg);
void kg_approvals_close(struct kg_approvals *q);
/* A controller that installs a new policy updates what new requests get. */
void kg_approvals_set_cfg(struct kg_approvals *q, const struct kg_approvals_cfg *cfg);

/* hex sha256 over the 40 bytes of struct kg_grant_key (zeroed padding). */
void kg_approvals_action_hash(const struct kg_grant_key *key, char out[KG_HASH_HEX_LEN + 1]);

/* A new request.  Fields used: key, trace_id, target, rule_id, policy_id,
 * policy_hash, requester_uid, requester_pid, held; the rest comes from the
 * cfg (approvers, timeout).  Returns KG_APPR_CREATED, KG_APPR_MERGED (an
 * identical pending request exists: its counter went up), -ENOSPC (queue
 * full: nothing stored; the caller audits it with
 * kg_approvals_audit_queue_full) or another -errno.  *out (may be NULL)
 * receives the stored request.  Creation is audited ("requested"). */
int kg_approvals_request(struct kg_approvals *q, const struct kg_approval *in,
			 struct kg_approval *out);
int kg_approvals_audit_queue_full(struct kg_approvals *q, const struct kg_approval *in);

/* The recorder's entry point for a KG_EV_ESCALATION event: builds the
 * request from the event (grant key = job cgid, op, target), creates or
 * merges it, and audits a full queue.  0 = queued (created or merged),
 * -ENOSPC = queue full (audited), other -errno on failure.  Events of any
 * other kind are ignored (0). */
int kg_approvals_on_escalation(struct kg_approvals *q, const struct kg_event *e,
			       const char *trace_id, const char *policy_hash,
			       const char *rule_id, const char *target_text);

/* Look a request up by id (pending or decided).  0, -ENOENT. */
int kg_approvals_get(struct kg_approvals *q, const char *id, struct kg_approval *out);

/* Requests, oldest first; all = include decided ones.  Free with free(). */
int kg_approvals_list(struct kg_approvals *q, bool all, struct kg_approval **out, size_t *n);

/* The caller's identity: uid + groups as the kernel knows them (the CLI,
 * the control socket's SO_PEERCRED), or the principal a bearer token maps
 * to (the HTTP API), whose name then goes into `via` and from there into
 * the request (decided_via) and the audit record (actor.role). */
struct kg_approver {
	uint32_t uid;
	uint32_t gids[KG_APPR_MAX_PRINCIPALS * 4];
	size_t ngids;
	char via[96];		/* "" = the kernel's view of the caller */
};
/* getuid() + getgid() + getgroups() of this process. */
void kg_approver_self(struct kg_approver *who);

/* May `who` decide request a?  0, or -EACCES with the reason in why.
 * Approvers are the request's uids and gids (none listed = uid 0 only);
 * root is not implicitly an approver; the job's own uid may not decide its
 * own request unless allow_self_approval. */
int kg_approvals_authorize(const struct kg_approval *a, const struct kg_approver *who,
			   char *why, size_t len);

struct kg_grant_opts {
	uint64_t ttl_sec;	/* 0 = the request's timeout */
	bool once;		/* one use, consumed by the kernel */
	const char *note;
};

/* Approve: authorize, re-evaluate (the job must still run the policy id the
 * request was made under, else the request becomes stale), then install the
 * grant and record the decision.  Returns 0, -ENOENT (no such request),
 * -EACCES (not an approver: nothing changes), -EALREADY (already decided),
 * -ETIMEDOUT (expired: now marked so), -ESRCH (the job is gone: expired),
 * -ESTALE (policy changed: marked stale, the agent must retry), or another
 * -errno.  *out (may be NULL) receives the request as it now stands. */
int kg_approvals_approve(struct kg_approvals *q, const char *id, const struct kg_approver *who,
			 const struct kg_grant_opts *o, struct kg_approval *out);
int kg_approvals_deny(struct kg_approvals *q, const char *id, const struct kg_approver *who,
		      const char *note, struct kg_approval *out);

/* Mark pending requests whose expiry is past now_real_ns (0 = now) as
 * expired and audit each.  Returns how many, or -errno. */
int kg_approvals_expire(struct kg_approvals *q, uint64_t now_real_ns);
/* Controller start: expire pending requests whose job is no longer
 * registered in kg_jobs.  Returns how many, or -errno. */
int kg_approvals_expire_orphans(struct kg_approvals *q);

const char *kg_appr_state_name(enum kg_appr_state s);
/* The request as JSON (the on-disk and `--json` form); caller decrefs. */
json_t *kg_approval_to_json(const struct kg_approval *a);
/* And back (the action hash is recomputed, never taken from o). 0/-EINVAL. */
int kg_approval_from_json(json_t *o, struct kg_approval *a);

#endif

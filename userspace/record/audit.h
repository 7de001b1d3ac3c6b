/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * audit.h - the sealed, append-only audit trail (JSON Lines).
 *
 * Every record is chained to its predecessor with HMAC-SHA256 under a key
 * kept in <audit dir>/audit.key; docs/audit-format.md describes the format.
 * Several processes may append to one trail: sequence numbers and chain
 * hashes are assigned when a record is committed, under an exclusive lock,
 * so the chain stays linear.
 *
 * This header is the trail's public API; its parts live in record/:
 *   writer.c syncer.c recover.c  open, append, commit, rotation, recovery
 *   build.c    the record builder (named fields, below)
 *   body.c     a record's JSON members       chain.c    key, HMAC, sealed lines, head
 *   segments.c the trail's files, line reader
 *   text.h     escaping and times            verify.h   the chain checked
 *   query.h    queries, the newest match, segment listing
 *   prune.h    retention: the oldest segments removed behind a sealed anchor
 */
#ifndef KGATE_AUDIT_H
#define KGATE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum kg_audit_sync {
	KG_AUDIT_SYNC_GROUP = 0,	/* commit every N records or T ms; fdatasync in
					 * the background at most every T ms */
	KG_AUDIT_SYNC_RECORD,		/* commit + fdatasync every record */
	KG_AUDIT_SYNC_NONE,		/* commit every N records or T ms, never fsync */
};

/* Zero values mean "default": 64 records, 5 ms, 64 MiB, <dir>/audit.key.
 * rotate_bytes = UINT64_MAX disables rotation. */
struct kg_audit_opts {
	enum kg_audit_sync sync;
	unsigned flush_every_records;
	unsigned flush_interval_ms;
	uint64_t rotate_bytes;
	const char *key_path;
};

struct kg_audit_rec {
	const char *type;        /* "decision","admission","approval","policy_change","events_lost","controller","job_start","job_exit","recovery" */
	const char *trace_id;    /* job trace id, e.g. "job-1a2b3c" */
	uint64_t ts_real_ns, ts_mono_ns;   /* 0 = now */
	long actor_uid; const char *actor_name, *actor_role;  /* actor_uid < 0 = absent */
	long pid, tid; const char *comm, *exe;                 /* < 0 / NULL = absent */
	const char *op, *target, *decision, *rule_id, *reason;
	const char *policy_name, *policy_hash; long policy_version;
	const char *mechanism;
	json_t *extra;           /* optional object merged under "extra"; borrowed */
};

struct kg_audit;

/*
 * Writing a record: one builder, the fields named as the record spells them.
 *
 *	struct kg_rec r;
 *
 *	kg_rec_init(&r, "job_exit");
 *	kg_rec_str(&r, "trace", trace);
 *	kg_rec_int(&r, "actor.uid", getuid());
 *	kg_rec_str(&r, "reason", why);		// NULL: left out
 *	kg_rec_extra(&r, extra);
 *	err = kg_rec_append(audit, &r);
 *
 * Names (docs/audit-format.md; a member of actor, subject or policy after a
 * dot): strings trace, op, target, decision, rule, reason, mechanism,
 * actor.name, actor.role, subject.comm, subject.exe, policy.name,
 * policy.hash; integers actor.uid, subject.pid, subject.tid (never
 * negative), policy.version, time (ns since the epoch) and mono_ns (0 or
 * unset: now). A field never set is left out; so is a string set to NULL,
 * and the policy object when it has no name, no hash and no version above
 * 0 (a policy without a version says -1). Values are borrowed until the
 * record is appended; bytes that are not printable UTF-8 are escaped
 * reversibly (kg_audit_escape).
 *
 * A mistake in building (an unknown name, an integer given to a string
 * field or the reverse, a field set twice, a negative id) is said once,
 * naming the field and the record's type, and makes kg_rec_append refuse
 * the whole record with -EINVAL: nothing of it is written.
 *
 * struct kg_audit_rec above is what the builder fills; besides the trail's
 * own modules only the recorder's hot path and tests fill it directly.
 */
struct kg_rec {
	struct kg_audit_rec rec;
	uint32_t set;			/* one bit per field (build.c's table) */
	int err;			/* the first mistake: -EINVAL */
};

void kg_rec_init(struct kg_rec *r, const char *type);
/* 0, or -EINVAL (a mistake, see above: the record will be refused) */
int kg_rec_str(struct kg_rec *r, const char *field, const char *value);
int kg_rec_int(struct kg_rec *r, const char *field, long long value);
/* the type-specific "extra" object (borrowed; NULL: none) */
int kg_rec_extra(struct kg_rec *r, json_t *extra);
/* kg_audit_append of the record, or r's mistake (-EINVAL, nothing written) */
int kg_rec_append(struct kg_audit *a, const struct kg_rec *r);

/* Opens (creating if needed) the trail in dir (NULL = kg_audit_dir()).
 * Repairs a torn last line (see kg_audit_recovered()). NULL + errno. */
struct kg_audit *kg_audit_open(const char *dir, const struct kg_audit_opts *opts);
/* Queues one record; commits it at once (SYNC_RECORD) or when the group is
 * full or due. Strings are escaped (see kg_audit_escape). 0 / -errno. */
int kg_audit_append(struct kg_audit *a, const struct kg_audit_rec *r);
/* Queues one record and never commits (the caller commits a batch with
 * kg_audit_flush): 0 = queued, -errno = not queued (nothing of it stays).
 * A failed commit keeps every queued record queued, in order. */
int kg_audit_queue(struct kg_audit *a, const struct kg_audit_rec *r);
/* Commits every queued record (assigning seq and hash): when it returns 0
 * they are in the file (written with write(2)), so a kill -9 of the process
 * cannot lose them. On disk: at once with SYNC_RECORD, within about
 * flush_interval_ms with SYNC_GROUP (a background fdatasync), never forced
 * with SYNC_NONE. A failed background fdatasync is returned by the next
 * append/flush/sync. 0 / -errno. */
int kg_audit_flush(struct kg_audit *a);
/* kg_audit_flush, then fdatasync whatever the sync setting: the records
 * are on disk when it returns 0. 0 / -errno. */
int kg_audit_sync(struct kg_audit *a);
/* Flush, then wait (at most timeout_ms) until the background sync thread is
 * parked with nothing to do: a fork right after cannot catch it inside the
 * allocator (a child of a process with threads may only rely on what no
 * other thread held; the sanitizers' allocator is not fork-safe).
 * 0, or -ETIMEDOUT. */
int kg_audit_quiesce(struct kg_audit *a, int timeout_ms);
void kg_audit_close(struct kg_audit *a);   /* flushes */

/* Event loops: a call that commits queued records if they are due. */
int kg_audit_flush_if_due(struct kg_audit *a);
unsigned kg_audit_pending(const struct kg_audit *a);

/* Kernel loss report: "events_lost" record with counts. by_kind (optional,
 * borrowed) is an object of per-kind loss counts. */
struct kg_audit_loss {
	const char *trace_id;		/* NULL = controller-wide */
	const char *mechanism;		/* e.g. "bpf-lsm" */
	uint64_t decided, delivered, lost;
	json_t *by_kind;		/* lost split by event kind (adds up to lost) */
	json_t *by_job;			/* [{"trace_id","cgroup_id","lost"}], or NULL */
	uint64_t unattributed;		/* the part of lost no job was counted for */
};
int kg_audit_append_lost(struct kg_audit *a, const struct kg_audit_loss *l);

/* What kg_audit_open found and repaired, if anything. */
struct kg_audit_recovery {
	bool torn;			/* a torn last line was moved aside */
	uint64_t offset, length;	/* where it was in the segment */
	uint64_t recovery_seq;		/* the "recovery" record that names it */
	char moved_to[512];		/* path of the file holding the torn bytes */
};
/* true if the open repaired something; *out filled when out != NULL */
bool kg_audit_recovered(const struct kg_audit *a, struct kg_audit_recovery *out);

/* ---- reading: verification and queries (stream, never load the trail) ---- */

#define KG_AUDIT_MAX_LINE (1u << 20)	/* longer lines are rejected as bad input */

#include "record/query.h"
#include "record/text.h"
#include "record/verify.h"

#endif

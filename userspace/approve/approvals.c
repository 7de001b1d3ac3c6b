// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* approvals.c - the human-approval queue and the grants it installs. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <openssl/sha.h>

#include "approve/approvals.h"
#include "common.h"
#include "record/events.h"
#include "kernel/maps.h"

struct kg_approvals {
	char dir[4096];
	char pending[4200];
	char done[4200];
	/* from the policy (deep copies) */
	uint32_t uids[KG_APPR_MAX_PRINCIPALS], nuids;
	uint32_t gids[KG_APPR_MAX_PRINCIPALS], ngids;
	bool allow_self;
	uint64_t timeout_sec, queue_max;
	char policy_name[128];
	long policy_version;
	struct kg_audit *audit;
	bool own_audit;
	struct kg_loader *loader;
	int jobs_fd, grants_fd;		/* pinned maps, when no loader was given */
};

const char *kg_appr_state_name(enum kg_appr_state s)
{
	static const char *const names[] = {
		[KG_APPR_PENDING] = "pending", [KG_APPR_APPROVED] = "approved",
		[KG_APPR_DENIED] = "denied", [KG_APPR_EXPIRED] = "expired",
		[KG_APPR_STALE] = "stale",
	};

	return (unsigned int)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static int state_parse(const char *s, enum kg_appr_state *out)
{
	int i;

	for (i = KG_APPR_PENDING; s && i <= KG_APPR_STALE; i++)
		if (!strcmp(s, kg_appr_state_name(i))) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

/* ---- configuration ----------------------------------------------------------- */

void kg_approvals_cfg_from_doc(struct kg_approvals_cfg *cfg, const struct kg_policy_doc *doc)
{
	cfg->approvers = &doc->approvers;
	cfg->allow_self_approval = doc->allow_self_approval;
	cfg->timeout_sec = doc->approval_timeout_sec;
	cfg->queue_max = doc->approval_queue_max;
	cfg->policy_name = doc->name;
	cfg->policy_version = doc->version;
}

void kg_approvals_set_cfg(struct kg_approvals *q, const struct kg_approvals_cfg *cfg)
{
	size_t i;

	q->nuids = q->ngids = 0;
	q->allow_self = false;
	q->timeout_sec = KG_APPR_DEFAULT_TIMEOUT;
	q->queue_max = KG_APPR_DEFAULT_QUEUE;
	q->policy_name[0] = '\0';
	q->policy_version = -1;
	if (!cfg)
		goto default_approver;
	for (i = 0; cfg->approvers && i < cfg->approvers->nuids && q->nuids < KG_APPR_MAX_PRINCIPALS; i++)
		q->uids[q->nuids++] = cfg->approvers->uids[i];
	for (i = 0; cfg->approvers && i < cfg->approvers->ngids && q->ngids < KG_APPR_MAX_PRINCIPALS; i++)
		q->gids[q->ngids++] = cfg->approvers->gids[i];
	q->allow_self = cfg->allow_self_approval;
	if (cfg->timeout_sec)
		q->timeout_sec = cfg->timeout_sec;
	if (cfg->queue_max)
		q->queue_max = cfg->queue_max;
	if (cfg->policy_name)
		kg_strlcpy(q->policy_name, cfg->policy_name, sizeof(q->policy_name));
	q->policy_version = cfg->policy_name ? cfg->policy_version : -1;
	if (cfg->audit)
		q->audit = cfg->audit;
	if (cfg->loader)
		q->loader = cfg->loader;
default_approver:
	if (!q->nuids && !q->ngids)
		q->uids[q->nuids++] = 0;	/* nobody listed: root only (documented) */
}

struct kg_approvals *kg_approvals_open(const struct kg_approvals_cfg *cfg)
{
	struct kg_approvals *q = calloc(1, sizeof(*q));
	int err;

	if (!q)
		return NULL;
	q->jobs_fd = q->grants_fd = -1;
	kg_approvals_set_cfg(q, cfg);
	if (kg_snprintf(q->dir, sizeof(q->dir), "%s/approvals", kg_state_dir()) ||
	    kg_snprintf(q->pending, sizeof(q->pending), "%s/pending", q->dir) ||
	    kg_snprintf(q->done, sizeof(q->done), "%s/done", q->dir)) {
		free(q);
		errno = ENAMETOOLONG;
		return NULL;
	}
	err = kg_mkdir_p(q->pending, 0700);
	if (!err)
		err = kg_mkdir_p(q->done, 0700);
	if (err) {
		kg_err("approvals: cannot create %s: %s", q->dir, strerror(-err));
		free(q);
		errno = -err;
		return NULL;
	}
	return q;
}

void kg_approvals_close(struct kg_approvals *q)
{
	if (!q)
		return;
	if (q->own_audit)
		kg_audit_close(q->audit);
	if (q->jobs_fd >= 0)
		close(q->jobs_fd);
	if (q->grants_fd >= 0)
		close(q->grants_fd);
	free(q);
}

/* ---- kernel maps: through the loader when we have one, else the pins ------- */

static int job_lookup(struct kg_approvals *q, uint64_t cgid, struct kg_job *job)
{
	int err;

	if (q->loader)
		return kg_maps_get_job(q->loader, cgid, job);
	/* -ENOENT: no kgate BPF state at all, no job can be running */
	err = kg_open_pinned_map_once(&q->jobs_fd, "kg_jobs");
	if (err < 0)
		return err;
	return bpf_map_lookup_elem(q->jobs_fd, &cgid, job) ? -errno : 0;
}

static int grant_put(struct kg_approvals *q, const struct kg_grant_key *k, const struct kg_grant *g)
{
	int err;

	if (q->loader)
		return kg_maps_put_grant(q->loader, k, g);
	err = kg_open_pinned_map_once(&q->grants_fd, "kg_grants");
	if (err < 0)
		return err;
	kg_open_pinned_map_once(&q->jobs_fd, "kg_jobs");	/* optional: -1 if absent */
	return kg_grants_put_fd(q->grants_fd, q->jobs_fd, k, g);
}

/* ---- encoding ------------------------------------------------------------------ */

void kg_approvals_action_hash(const struct kg_grant_key *key, char out[KG_HASH_HEX_LEN + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)key, sizeof(*key), md);
	kg_hex_encode(md, sizeof(md), out);
}

static bool valid_id(const char *id)
{
	size_t i;

	if (!id || strlen(id) != KG_APPR_ID_LEN)
		return false;
	for (i = 0; i < KG_APPR_ID_LEN; i++)
		if (!isxdigit((unsigned char)id[i]))
			return false;
	return true;
}

static json_t *u32_array(const uint32_t *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

json_t *kg_approval_to_json(const struct kg_approval *a)
{
	char key_hex[sizeof(a->key) * 2 + 1], created[48], expires[48], decided[48];

	kg_hex_encode(&a->key, sizeof(a->key), key_hex);
	kg_audit_format_time(a->created_ns, created, sizeof(created));
	kg_audit_format_time(a->expires_ns, expires, sizeof(expires));
	kg_audit_format_time(a->decided_ns, decided, sizeof(decided));
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:I,"
			 "s:s,s:I,s:s,s:I,s:I,s:b,s:s,s:I,s:s?,s:s?,s:s,s:s,"
			 "s:{s:b,s:I,s:I},s:{s:o,s:o},s:b}",
			 "id", a->id, "state", kg_appr_state_name(a->state),
			 "action_hash", a->action_hash, "grant_key", key_hex,
			 "cgroup_id", (json_int_t)a->key.cgid, "op_num", (int)a->key.op,
			 "op", kg_op_name(a->key.op), "target", a->target,
			 "trace_id", a->trace_id,
			 "policy_id", (json_int_t)a->policy_id, "policy_hash", a->policy_hash,
			 "policy_name", a->policy_name, "policy_version", (json_int_t)a->policy_version,
			 "requester_uid", (json_int_t)a->requester_uid,
			 "requester_pid", (json_int_t)a->requester_pid,
			 "created", created, "created_ns", (json_int_t)a->created_ns,
			 "expires", expires, "expires_ns", (json_int_t)a->expires_ns,
			 "count", (json_int_t)a->count, "held", a->held,
			 "rule_id", a->rule_id,
			 "decided_by", (json_int_t)a->decided_by,
			 "decided_via", a->decided_via[0] ? a->decided_via : NULL,
			 "decided", a->decided_ns ? decided : NULL,
			 "note", a->note, "reason", a->reason,
			 "grant", "once", a->once, "ttl_sec", (json_int_t)a->ttl_sec,
			 "expires_mono_ns", (json_int_t)a->grant_expires_mono_ns,
			 "approvers", "uids", u32_array(a->approver_uids, a->napprover_uids),
			 "gids", u32_array(a->approver_gids, a->napprover_gids),
			 "allow_self_approval", a->allow_self_approval);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static uint64_t jint(json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

static void read_u32_array(json_t *arr, uint32_t *out, uint32_t *n)
{
	size_t i;
	json_t *v;

	*n = 0;
	json_array_foreach(arr, i, v) {
		if (*n < KG_APPR_MAX_PRINCIPALS && json_is_integer(v))
			out[(*n)++] = (uint32_t)json_integer_value(v);
	}
}

int kg_approval_from_json(json_t *o, struct kg_approval *a)
{
	json_t *g = json_object_get(o, "grant"), *ap = json_object_get(o, "approvers");

	memset(a, 0, sizeof(*a));
	if (!json_is_object(o) || kg_strlcpy(a->id, jstr(o, "id"), sizeof(a->id)) ||
	    !valid_id(a->id) || kg_hex_decode(jstr(o, "grant_key"), &a->key, sizeof(a->key)) ||
	    state_parse(jstr(o, "state"), &a->state))
		return -EINVAL;
	kg_strlcpy(a->action_hash, jstr(o, "action_hash"), sizeof(a->action_hash));
	kg_strlcpy(a->trace_id, jstr(o, "trace_id"), sizeof(a->trace_id));
	kg_strlcpy(a->target, jstr(o, "target"), sizeof(a->target));
	kg_strlcpy(a->rule_id, jstr(o, "rule_id"), sizeof(a->rule_id));
	kg_strlcpy(a->policy_hash, jstr(o, "policy_hash"), sizeof(a->policy_hash));
	kg_strlcpy(a->policy_name, jstr(o, "policy_name"), sizeof(a->policy_name));
	kg_strlcpy(a->note, jstr(o, "note"), sizeof(a->note));
	kg_strlcpy(a->decided_via, jstr(o, "decided_via"), sizeof(a->decided_via));
	kg_strlcpy(a->reason, jstr(o, "reason"), sizeof(a->reason));
	a->policy_id = (uint32_t)jint(o, "policy_id");
	a->policy_version = (long)json_integer_value(json_object_get(o, "policy_version"));
	a->requester_uid = (uint32_t)jint(o, "requester_uid");
	a->requester_pid = (uint32_t)jint(o, "requester_pid");
	a->created_ns = jint(o, "created_ns");
	a->expires_ns = jint(o, "expires_ns");
	a->count = (uint32_t)jint(o, "count");
	a->held = json_is_true(json_object_get(o, "held"));
	a->decided_by = (long)json_integer_value(json_object_get(o, "decided_by"));
	a->once = json_is_true(json_object_get(g, "once"));
	a->ttl_sec = jint(g, "ttl_sec");
	a->grant_expires_mono_ns = jint(g, "expires_mono_ns");
	read_u32_array(json_object_get(ap, "uids"), a->approver_uids, &a->napprover_uids);
	read_u32_array(json_object_get(ap, "gids"), a->approver_gids, &a->napprover_gids);
	a->allow_self_approval = json_is_true(json_object_get(o, "allow_self_approval"));
	/* the hash is recomputed, never trusted from the file */
	kg_approvals_action_hash(&a->key, a->action_hash);
	return 0;
}

/* ---- files ---------------------------------------------------------------------- */

static int lock_queue(struct kg_approvals *q)
{
	char path[4200];
	int fd;

	if (kg_snprintf(path, sizeof(path), "%s/.lock", q->dir))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX)) {
		if (errno != EINTR) {
			int err = -errno;

			close(fd);
			return err;
		}
	}
	return fd;
}

static void unlock_queue(int fd)
{
	if (fd >= 0)
		close(fd);	/* releases the flock */
}

static int req_path(const struct kg_approvals *q, bool pending, const char *id, char *buf, size_t len)
{
	return kg_snprintf(buf, len, "%s/%s.json", pending ? q->pending : q->done, id)
		? -ENAMETOOLONG : 0;
}

static int load_path(const char *path, struct kg_approval *a)
{
	json_t *o = json_load_file(path, 0, NULL);
	int err;

	if (!o)
		return access(path, F_OK) ? -ENOENT : -EINVAL;
	err = kg_approval_from_json(o, a);
	json_decref(o);
	return err;
}

/* Write a request where its state says (pending/ or done/), atomically; a
 * decided request leaves pending/.  Called with the queue locked. */
static int store(struct kg_approvals *q, const struct kg_approval *a)
{
	char path[4300], tmp[4300], old[4300];
	json_t *o = kg_approval_to_json(a);
	int err = 0;

	if (!o)
		return -ENOMEM;
	if (req_path(q, a->state == KG_APPR_PENDING, a->id, path, sizeof(path)) ||
	    kg_snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-%d", q->dir, a->id, (int)getpid())) {
		json_decref(o);
		return -ENAMETOOLONG;
	}
	if (json_dump_file(o, tmp, JSON_COMPACT) || rename(tmp, path)) {
		err = -(errno ? errno : EIO);
		unlink(tmp);
	}
	json_decref(o);
	if (!err && a->state != KG_APPR_PENDING && !req_path(q, true, a->id, old, sizeof(old)))
		unlink(old);
	return err;
}

typedef int (*scan_fn)(struct kg_approvals *q, struct kg_approval *a, void *ctx);

/* Call fn for every readable request in dir; unreadable files are skipped
 * with a warning (a half-written file never exists: writes are renames). */
static int scan(struct kg_approvals *q, const char *dir, scan_fn fn, void *ctx)
{
	struct kg_approval *a = malloc(sizeof(*a));
	struct dirent *de;
	char path[4500];
	int err = 0;
	DIR *d;

	if (!a)
		return -ENOMEM;
	d = opendir(dir);
	if (!d) {
		free(a);
		return errno == ENOENT ? 0 : -errno;
	}
	while (!err && (de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (n != KG_APPR_ID_LEN + 5 || strcmp(de->d_name + KG_APPR_ID_LEN, ".json"))
			continue;
		if (kg_snprintf(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		if (load_path(path, a)) {
			kg_debug("approvals: skipping unreadable %s", path);
			continue;
		}
		err = fn(q, a, ctx);
	}
	closedir(d);
	free(a);
	return err < 0 ? err : 0;
}

/* ---- audit ------------------------------------------------------------------------ */

static struct kg_audit *audit_of(struct kg_approvals *q)
{
	if (!q->audit) {
		q->audit = kg_audit_open(NULL, NULL);
		q->own_audit = q->audit != NULL;
		if (!q->audit)
			kg_warn("approvals: cannot open the audit trail in %s", kg_audit_dir());
	}
	return q->audit;
}

static int audit_approval(struct kg_approvals *q, const struct kg_approval *a, const char *decision,
			  long actor_uid, const char *reason)
{
	struct kg_audit *au = audit_of(q);
	struct passwd *pw = actor_uid >= 0 ? getpwuid((uid_t)actor_uid) : NULL;
	struct kg_rec r;
	json_t *extra;
	int err;

	if (!au)
		return -EIO;
	kg_rec_init(&r, "approval");
	kg_rec_str(&r, "trace", a->trace_id);
	if (actor_uid >= 0) {	/* none: the queue itself (expired, stale, full) */
		kg_rec_int(&r, "actor.uid", actor_uid);
		kg_rec_str(&r, "actor.name", pw ? pw->pw_name : NULL);
		/* a decision made with a token names it next to its principal */
		if (a->decided_via[0] && a->state != KG_APPR_PENDING)
			kg_rec_str(&r, "actor.role", a->decided_via);
	}
	kg_rec_str(&r, "op", kg_op_name(a->key.op));
	kg_rec_str(&r, "target", a->target);
	kg_rec_str(&r, "decision", decision);
	kg_rec_str(&r, "rule", a->rule_id);
	kg_rec_str(&r, "reason", reason);
	kg_rec_str(&r, "policy.name", a->policy_name[0] ? a->policy_name : NULL);
	kg_rec_int(&r, "policy.version", a->policy_version);
	kg_rec_str(&r, "policy.hash", a->policy_hash[0] ? a->policy_hash : NULL);
	kg_rec_str(&r, "mechanism", "controller");
	extra = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:b}", "request_id", a->id,
			  "action_hash", a->action_hash, "policy_id", (json_int_t)a->policy_id,
			  "cgroup_id", (json_int_t)a->key.cgid, "count", (json_int_t)a->count,
			  "requester_uid", (json_int_t)a->requester_uid, "held", a->held);
	if (extra && a->note[0])
		json_object_set_new(extra, "note", json_string(a->note));
	if (extra && a->state == KG_APPR_APPROVED) {
		json_object_set_new(extra, "once", json_boolean(a->once));
		json_object_set_new(extra, "ttl_sec", json_integer((json_int_t)a->ttl_sec));
	}
	kg_rec_extra(&r, extra);
	err = kg_rec_append(au, &r);
	json_decref(extra);
	/* A human decision is on disk before it acts: one fdatasync, which
	 * also covers every record appended before it (the request's own).
	 * The rest (requested, queue full, expired, stale) is written now, for
	 * readers of the trail, and made durable by the trail's group commit
	 * or by the decision that follows: the round trip waits on one
	 * synchronous write, not two. */
	if (!err)
		err = a->state == KG_APPR_APPROVED || a->state == KG_APPR_DENIED ?
			kg_audit_sync(au) : kg_audit_flush(au);
	return err;
}

int kg_approvals_audit_queue_full(struct kg_approvals *q, const struct kg_approval *in)
{
	char reason[160];

	snprintf(reason, sizeof(reason), "approval queue full (%llu pending for this job): "
		 "the action stays refused", (unsigned long long)q->queue_max);
	return audit_approval(q, in, "queue_full", in->requester_uid, reason);
}

/* Move a pending request to a final state and record it (queue locked). */
static int settle(struct kg_approvals *q, struct kg_approval *a, enum kg_appr_state st,
		  long by, const char *reason)
{
	int err;

	a->state = st;
	a->decided_by = by;
	if (by < 0)
		a->decided_via[0] = '\0';	/* nobody decided: it timed out */
	a->decided_ns = kg_now_real_ns();
	if (reason)
		kg_strlcpy(a->reason, reason, sizeof(a->reason));
	err = store(q, a);
	if (err)
		return kg_err("approvals: cannot record request %s: %s", a->id, strerror(-err)), err;
	audit_approval(q, a, kg_appr_state_name(st), by, reason);
	return 0;
}

/* ---- requests ---------------------------------------------------------------------- */

struct find_ctx {
	const char *action_hash;
	uint64_t cgid;
	uint64_t now;
	size_t same_job, total;
	struct kg_approval match;
	bool found;
};

static int find_or_count(struct kg_approvals *q, struct kg_approval *a, void *ctx)
{
	struct find_ctx *f = ctx;

	if (a->state != KG_APPR_PENDING)
		return 0;
	if (a->expires_ns && a->expires_ns <= f->now) {
		settle(q, a, KG_APPR_EXPIRED, -1, "no decision before the timeout: denied");
		return 0;
	}
	f->total++;
	if (a->key.cgid == f->cgid)
		f->same_job++;
	if (!f->found && !strcmp(a->action_hash, f->action_hash)) {
		f->match = *a;
		f->found = true;
	}
	return 0;
}

static void new_id(char *out)
{
	unsigned char b[KG_APPR_ID_LEN / 2];
	uint64_t t;

	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		t = kg_now_mono_ns() ^ ((uint64_t)getpid() << 40);
		memcpy(b, &t, sizeof(b));
	}
	kg_hex_encode(b, sizeof(b), out);
}

static bool id_taken(struct kg_approvals *q, const char *id)
{
	char path[4300];

	return (!req_path(q, true, id, path, sizeof(path)) && !access(path, F_OK)) ||
	       (!req_path(q, false, id, path, sizeof(path)) && !access(path, F_OK));
}

static void fill_new(struct kg_approvals *q, struct kg_approval *a, uint64_t now)
{
	a->state = KG_APPR_PENDING;
	a->count = 1;
	a->decided_by = -1;
	a->decided_ns = 0;
	a->decided_via[0] = '\0';
	a->note[0] = a->reason[0] = '\0';
	a->once = false;
	a->ttl_sec = 0;
	a->grant_expires_mono_ns = 0;
	a->created_ns = now;
	a->expires_ns = now + q->timeout_sec * 1000000000ull;
	memcpy(a->approver_uids, q->uids, sizeof(q->uids));
	a->napprover_uids = q->nuids;
	memcpy(a->approver_gids, q->gids, sizeof(q->gids));
	a->napprover_gids = q->ngids;
	a->allow_self_approval = q->allow_self;
	if (!a->policy_name[0]) {
		kg_strlcpy(a->policy_name, q->policy_name, sizeof(a->policy_name));
		a->policy_version = q->policy_version;
	}
	kg_approvals_action_hash(&a->key, a->action_hash);
}

int kg_approvals_request(struct kg_approvals *q, const struct kg_approval *in,
			 struct kg_approval *out)
{
	struct find_ctx *f = calloc(1, sizeof(*f));
	struct kg_approval *a = malloc(sizeof(*a));
	char hash[KG_HASH_HEX_LEN + 1];
	int lock, err, ret;

	if (!f || !a) {
		free(f);
		free(a);
		return -ENOMEM;
	}
	kg_approvals_action_hash(&in->key, hash);
	f->action_hash = hash;
	f->cgid = in->key.cgid;
	f->now = kg_now_real_ns();
	lock = lock_queue(q);
	if (lock < 0) {
		free(f);
		free(a);
		return lock;
	}
	err = scan(q, q->pending, find_or_count, f);
	if (err)
		goto out;
	if (f->found) {
		*a = f->match;
		a->count++;
		a->held = a->held || in->held;
		err = store(q, a);
		ret = KG_APPR_MERGED;
	} else if (f->same_job >= q->queue_max || f->total >= KG_APPR_HARD_MAX) {
		err = -ENOSPC;
	} else {
		*a = *in;
		fill_new(q, a, f->now);
		do
			new_id(a->id);
		while (id_taken(q, a->id));
		err = store(q, a);
		ret = KG_APPR_CREATED;
	}
out:
	unlock_queue(lock);
	if (!err && ret == KG_APPR_CREATED)
		audit_approval(q, a, "requested", a->requester_uid,
			       "require_approval: waiting for a human decision");
	if (!err && out)
		*out = *a;
	free(f);
	free(a);
	return err ? err : ret;
}

int kg_approvals_on_escalation(struct kg_approvals *q, const struct kg_event *e,
			       const char *trace_id, const char *policy_hash,
			       const char *rule_id, const char *target_text)
{
	struct kg_approval *in;
	int ret;

	if (!q || !e || e->kind != KG_EV_ESCALATION)
		return 0;
	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->key.cgid = e->job_cgid;
	in->key.op = e->op;
	in->key.target = e->target;
	kg_strlcpy(in->trace_id, trace_id ? trace_id : "", sizeof(in->trace_id));
	kg_strlcpy(in->policy_hash, policy_hash ? policy_hash : "", sizeof(in->policy_hash));
	kg_strlcpy(in->rule_id, rule_id ? rule_id : "", sizeof(in->rule_id));
	if (target_text)
		kg_strlcpy(in->target, target_text, sizeof(in->target));
	else
		kg_event_target(e, in->target, sizeof(in->target));
	in->policy_id = e->policy_id;
	in->requester_uid = e->uid;
	in->requester_pid = e->pid;
	ret = kg_approvals_request(q, in, NULL);
	if (ret == -ENOSPC) {
		fill_new(q, in, kg_now_real_ns());
		kg_approvals_audit_queue_full(q, in);
	}
	free(in);
	return ret < 0 ? ret : 0;
}

int kg_approvals_get(struct kg_approvals *q, const char *id, struct kg_approval *out)
{
	char path[4300];
	int err;

	if (!valid_id(id))
		return -ENOENT;
	if (req_path(q, true, id, path, sizeof(path)))
		return -ENAMETOOLONG;
	err = load_path(path, out);
	if (err != -ENOENT)
		return err;
	if (req_path(q, false, id, path, sizeof(path)))
		return -ENAMETOOLONG;
	return load_path(path, out);
}

struct list_ctx {
	struct kg_approval *v;
	size_t n, cap;
};

static int collect(struct kg_approvals *q, struct kg_approval *a, void *ctx)
{
	struct list_ctx *l = ctx;
	struct kg_approval *nv;
	size_t i;

	(void)q;
	for (i = 0; i < l->n; i++)	/* seen twice mid-move: keep the decided copy */
		if (!strcmp(l->v[i].id, a->id)) {
			if (a->state != KG_APPR_PENDING)
				l->v[i] = *a;
			return 0;
		}
	nv = kg_grow(l->v, &l->cap, l->n, sizeof(*nv), 16);
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n++] = *a;
	return 0;
}

static int by_created(const void *x, const void *y)
{
	const struct kg_approval *a = x, *b = y;

	if (a->created_ns != b->created_ns)
		return a->created_ns < b->created_ns ? -1 : 1;
	return strcmp(a->id, b->id);
}

int kg_approvals_list(struct kg_approvals *q, bool all, struct kg_approval **out, size_t *n)
{
	struct list_ctx l = {};
	int err;

	err = scan(q, q->pending, collect, &l);
	if (!err && all)
		err = scan(q, q->done, collect, &l);
	if (err) {
		free(l.v);
		return err;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), by_created);
	*out = l.v;
	*n = l.n;
	return 0;
}

/* ---- decisions ----------------------------------------------------------------------- */

void kg_approver_self(struct kg_approver *who)
{
	gid_t groups[KG_APPR_MAX_PRINCIPALS * 4 - 1];
	int n, i;

	memset(who, 0, sizeof(*who));
	who->uid = getuid();
	who->gids[who->ngids++] = getgid();
	n = getgroups(ARRAY_SIZE(groups), groups);
	for (i = 0; i < n; i++)
		who->gids[who->ngids++] = groups[i];
}

int kg_approvals_authorize(const struct kg_approval *a, const struct kg_approver *who,
			   char *why, size_t len)
{
	bool listed = false;
	size_t i, j;

	if (who->uid == a->requester_uid && !a->allow_self_approval) {
		snprintf(why, len, "uid %u started the job that asks: self-approval is not "
			 "allowed by the policy", who->uid);
		return -EACCES;
	}
	if (!a->napprover_uids && !a->napprover_gids)
		listed = who->uid == 0;	/* no approvers listed: root only */
	for (i = 0; !listed && i < a->napprover_uids; i++)
		listed = a->approver_uids[i] == who->uid;
	for (i = 0; !listed && i < a->napprover_gids; i++)
		for (j = 0; !listed && j < who->ngids; j++)
			listed = a->approver_gids[i] == who->gids[j];
	if (!listed) {
		snprintf(why, len, "uid %u is not an approver of policy %s", who->uid,
			 a->policy_name[0] ? a->policy_name : a->policy_hash);
		return -EACCES;
	}
	return 0;
}

/* Load a pending request for a decision (queue locked): -ENOENT, or
 * -EALREADY when it exists but was decided. */
static int load_pending(struct kg_approvals *q, const char *id, struct kg_approval *a)
{
	char path[4300];
	int err;

	if (!valid_id(id))
		return -ENOENT;
	if (req_path(q, true, id, path, sizeof(path)))
		return -ENAMETOOLONG;
	err = load_path(path, a);
	if (err == -ENOENT && kg_approvals_get(q, id, a) == 0)
		return -EALREADY;
	return err;
}

static int install_grant(struct kg_approvals *q, struct kg_approval *a, const struct kg_grant_opts *o)
{
	uint64_t ttl = o && o->ttl_sec ? o->ttl_sec
		       : (a->expires_ns > a->created_ns ? (a->expires_ns - a->created_ns) / 1000000000ull
							: KG_APPR_DEFAULT_TIMEOUT);
	struct kg_grant g = {
		.expires_ns = kg_now_mono_ns() + ttl * 1000000000ull,
		.uses_left = o && o->once ? 1 : KG_GRANT_UNLIMITED,
		.policy_id = a->policy_id,
	};
	int err = grant_put(q, &a->key, &g);

	if (err)
		return kg_err("approvals: cannot install the grant for %s: %s", a->id, strerror(-err)), err;
	a->once = o && o->once;
	a->ttl_sec = ttl;
	a->grant_expires_mono_ns = g.expires_ns;
	return 0;
}

/* Under the queue lock: load pending request `id` and check that `who`
 * may decide it.  On success *a (allocated) and *lock are the caller's. */
static int begin_decision(struct kg_approvals *q, const char *id, const struct kg_approver *who,
			  struct kg_approval **a_out, int *lock_out)
{
	struct kg_approval *a = calloc(1, sizeof(*a));
	char why[256];
	int lock, err;

	if (!a)
		return -ENOMEM;
	lock = lock_queue(q);
	if (lock < 0) {
		free(a);
		return lock;
	}
	err = load_pending(q, id, a);
	if (!err) {
		err = kg_approvals_authorize(a, who, why, sizeof(why));
		if (err)
			kg_err("approvals: %s", why);
		else	/* whatever this attempt settles names who made it */
			kg_strlcpy(a->decided_via, who->via, sizeof(a->decided_via));
	}
	*a_out = a;
	*lock_out = lock;
	return err;
}

int kg_approvals_approve(struct kg_approvals *q, const char *id, const struct kg_approver *who,
			 const struct kg_grant_opts *o, struct kg_approval *out)
{
	struct kg_approval *a = NULL;
	struct kg_job job;
	int lock = -1, err;

	err = begin_decision(q, id, who, &a, &lock);
	if (err == -ENOMEM || lock < 0)
		return err;
	if (err)
		goto out;
	if (o && o->note)
		kg_strlcpy(a->note, o->note, sizeof(a->note));
	if (a->expires_ns <= kg_now_real_ns()) {
		settle(q, a, KG_APPR_EXPIRED, -1, "no decision before the timeout: denied");
		err = -ETIMEDOUT;
		goto out;
	}
	if (a->key.op == KG_OP_ADMISSION) {
		/* a launch: `kgate run` is waiting on this record; no grant */
		err = settle(q, a, KG_APPR_APPROVED, who->uid, NULL);
		goto out;
	}
	/* re-evaluate against what the job runs now, not what it ran then */
	err = job_lookup(q, a->key.cgid, &job);
	if (err == -ENOENT) {
		settle(q, a, KG_APPR_EXPIRED, who->uid, "the job is gone");
		err = -ESRCH;
		goto out;
	}
	if (err)
		goto out;
	if (job.policy_id != a->policy_id) {
		char reason[160];

		snprintf(reason, sizeof(reason), "the job now runs policy id %u, not %u: "
			 "not granted; the agent must retry under the new policy",
			 job.policy_id, a->policy_id);
		settle(q, a, KG_APPR_STALE, who->uid, reason);
		err = -ESTALE;
		goto out;
	}
	err = install_grant(q, a, o);
	if (!err)
		err = settle(q, a, KG_APPR_APPROVED, who->uid, NULL);
out:
	unlock_queue(lock);
	if (out && (err == 0 || err == -ETIMEDOUT || err == -ESRCH || err == -ESTALE ||
		    err == -EALREADY || err == -EACCES))
		*out = *a;
	free(a);
	return err;
}

int kg_approvals_deny(struct kg_approvals *q, const char *id, const struct kg_approver *who,
		      const char *note, struct kg_approval *out)
{
	struct kg_approval *a = NULL;
	int lock = -1, err;

	err = begin_decision(q, id, who, &a, &lock);
	if (err == -ENOMEM || lock < 0)
		return err;
	if (!err) {
		if (note)
			kg_strlcpy(a->note, note, sizeof(a->note));
		err = settle(q, a, KG_APPR_DENIED, who->uid, "denied by an approver");
	}
	unlock_queue(lock);
	if (out && (err == 0 || err == -EALREADY || err == -EACCES))
		*out = *a;
	free(a);
	return err;
}

struct expire_ctx {
	uint64_t now;
	bool orphans;
	int n;
};

/* An admission request has no job yet: it is orphaned when the `kgate run`
 * waiting for it is gone. */
static bool orphaned(struct kg_approvals *q, const struct kg_approval *a)
{
	struct kg_job job;

	if (a->key.op == KG_OP_ADMISSION)
		return a->requester_pid && kill((pid_t)a->requester_pid, 0) && errno == ESRCH;
	return job_lookup(q, a->key.cgid, &job) == -ENOENT;
}

static int expire_one(struct kg_approvals *q, struct kg_approval *a, void *ctx)
{
	struct expire_ctx *x = ctx;

	if (a->state != KG_APPR_PENDING)
		return 0;
	if (!x->orphans && a->expires_ns <= x->now) {
		if (!settle(q, a, KG_APPR_EXPIRED, -1, "no decision before the timeout: denied"))
			x->n++;
	} else if (x->orphans && orphaned(q, a)) {
		if (!settle(q, a, KG_APPR_EXPIRED, -1, "the job is gone"))
			x->n++;
	}
	return 0;
}

static int expire_scan(struct kg_approvals *q, struct expire_ctx *x)
{
	int lock = lock_queue(q), err;

	if (lock < 0)
		return lock;
	err = scan(q, q->pending, expire_one, x);
	unlock_queue(lock);
	return err ? err : x->n;
}

int kg_approvals_expire(struct kg_approvals *q, uint64_t now_real_ns)
{
	struct expire_ctx x = { .now = now_real_ns ? now_real_ns : kg_now_real_ns() };

	return expire_scan(q, &x);
}

int kg_approvals_expire_orphans(struct kg_approvals *q)
{
	struct expire_ctx x = { .orphans = true };

	return expire_scan(q, &x);
}

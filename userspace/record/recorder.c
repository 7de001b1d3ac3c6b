// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* recorder.c - turn kernel events into audit records. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "approve/approvals.h"
#include "common.h"
#include "kernel/caps.h"
#include "kernel/outside.h"
#include "record/events.h"
#include "record/losses.h"
#include "kernel/maps.h"
#include "record/recorder.h"
#include "job/registry.h"

#define SNAP_CACHE 16

struct snapshot {
	uint32_t policy_id;
	json_t *root;		/* {"name","version","hash","rules":[[id,reason],...]} */
};

/* Per-job tallies of recorded decisions, kept in <state>/jobs/<trace>.tally
 * for `kgate status` (the kernel's own counters are system-wide). */
#define TALLY_SLOTS 64

struct tally {
	uint64_t job_id;
	uint64_t refused, audited, escalations;
	bool dirty, used;
};

struct kg_recorder {
	struct kg_audit *audit;
	struct tally tallies[TALLY_SLOTS];
	unsigned int next_tally;
	/* the last uid's name: a storm is one uid, and getpwuid reads files */
	uint32_t name_uid;
	char name[64];
	bool name_valid;
	struct kg_approvals *approvals;	/* escalations become requests */
	struct kg_loader *loader;
	uint32_t ring_id;
	char boot_id[40];		/* the ring is this boot's: ids repeat across boots */
	bool warned_queue;
	bool warned_commit;
	bool loss_queued;		/* a loss record waits for a commit: */
	struct kg_loss_delta queued_loss;	/* what it accounts for */
	struct snapshot cache[SNAP_CACHE];
	unsigned int next_slot;
};

static int snapshot_path(uint32_t policy_id, char *buf, size_t len)
{
	return kg_snprintf(buf, len, "%s/policies/%u.json", kg_state_dir(), policy_id);
}

/* Who may approve escalations under this policy: needed by whichever
 * process consumes the events, which may not have the policy document. */
static json_t *approvals_json(const struct kg_policy_doc *doc)
{
	json_t *uids = json_array(), *gids = json_array();
	size_t i;

	for (i = 0; i < doc->approvers.nuids; i++)
		json_array_append_new(uids, json_integer(doc->approvers.uids[i]));
	for (i = 0; i < doc->approvers.ngids; i++)
		json_array_append_new(gids, json_integer(doc->approvers.gids[i]));
	return json_pack("{s:o,s:o,s:b,s:I,s:I}", "uids", uids, "gids", gids, "allow_self",
			 doc->allow_self_approval, "timeout_sec", (json_int_t)doc->approval_timeout_sec,
			 "queue_max", (json_int_t)doc->approval_queue_max);
}

int kg_snapshot_save(uint32_t policy_id, const struct kg_policy_doc *doc)
{
	char dir[4096], path[4200], tmp[4300];
	json_t *root, *rules;
	size_t i;
	int err;

	if (kg_snprintf(dir, sizeof(dir), "%s/policies", kg_state_dir()) ||
	    snapshot_path(policy_id, path, sizeof(path)) ||
	    kg_snprintf(tmp, sizeof(tmp), "%s.tmp", path))
		return kg_err("recorder: the state directory's path is too long for a policy "
			      "snapshot: %s", kg_state_dir()), -ENAMETOOLONG;
	err = kg_mkdir_p(dir, 0700);
	if (err)
		return kg_err("recorder: cannot create %s: %s", dir, strerror(-err)), err;
	rules = json_array();
	root = json_pack("{s:I,s:s,s:i,s:s,s:o,s:o,s:s?}", "policy_id", (json_int_t)policy_id,
			 "name", doc->name ? doc->name : "", "version", doc->version,
			 "hash", doc->hash, "rules", rules, "approvals", approvals_json(doc),
			 "source", doc->canonical_json);
	if (!root)
		return kg_err("recorder: out of memory for the policy snapshot"), -ENOMEM;
	for (i = 0; i < doc->nrules; i++)
		json_array_append_new(rules, json_pack("[s,s?]", doc->rules[i].id,
						       doc->rules[i].reason));
	errno = 0;
	err = json_dump_file(root, tmp, JSON_COMPACT);
	json_decref(root);
	if (err || rename(tmp, path)) {
		err = errno ? -errno : -EIO;
		unlink(tmp);
		return kg_err("recorder: cannot write policy snapshot %s: %s", path,
			      strerror(-err)), err;
	}
	return 0;
}

struct kg_policy_doc *kg_snapshot_load_doc(uint32_t policy_id)
{
	struct kg_policy_error perr;
	struct kg_policy_doc *doc = NULL;
	const char *src, *hash;
	char path[4200], name[64];
	json_t *root;

	if (snapshot_path(policy_id, path, sizeof(path)))
		return NULL;
	root = json_load_file(path, 0, NULL);
	src = json_string_value(json_object_get(root, "source"));
	hash = json_string_value(json_object_get(root, "hash"));
	snprintf(name, sizeof(name), "<policy snapshot %u>", policy_id);
	/* '~' only matters to file rules, which a snapshot reader does not apply */
	if (src && hash)
		doc = kg_policy_load_buffer(src, strlen(src), name,
					    getenv("HOME") && getenv("HOME")[0] == '/' ? getenv("HOME") : "/",
					    &perr);
	if (doc && strcmp(doc->hash, hash)) {
		kg_policy_free(doc);	/* not what was installed */
		doc = NULL;
	}
	json_decref(root);
	return doc;
}

void kg_snapshot_remove(uint32_t policy_id)
{
	char path[4200];

	if (!snapshot_path(policy_id, path, sizeof(path)))
		unlink(path);
}

void kg_rec_controller(struct kg_rec *r, const char *type, const struct kg_policy_doc *doc)
{
	struct passwd *pw = getpwuid(getuid());

	kg_rec_init(r, type);
	kg_rec_int(r, "actor.uid", getuid());
	kg_rec_str(r, "actor.name", pw ? pw->pw_name : NULL);
	kg_rec_int(r, "subject.pid", getpid());
	kg_rec_str(r, "mechanism", "controller");
	kg_rec_policy(r, doc);
}

void kg_rec_policy(struct kg_rec *r, const struct kg_policy_doc *doc)
{
	if (!doc)
		return;
	kg_rec_str(r, "policy.name", doc->name);
	kg_rec_int(r, "policy.version", doc->version);
	kg_rec_str(r, "policy.hash", doc->hash);
}

void kg_trace_id(uint64_t job_id, char *buf, size_t len)
{
	snprintf(buf, len, "job-%016llx", (unsigned long long)job_id);
}

static struct kg_recorder *recorder_new(struct kg_audit *audit)
{
	struct kg_recorder *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->audit = audit;
	return r;
}

static void recorder_free(struct kg_recorder *r)
{
	int i;

	if (!r)
		return;
	kg_approvals_close(r->approvals);
	if (r->loss_queued)
		kg_losses_done(&r->queued_loss);
	for (i = 0; i < SNAP_CACHE; i++)
		json_decref(r->cache[i].root);
	free(r);
}

static json_t *snapshot_get(struct kg_recorder *r, uint32_t policy_id)
{
	char path[4200];
	struct snapshot *s;
	json_t *root;
	int i;

	for (i = 0; i < SNAP_CACHE; i++)
		if (r->cache[i].root && r->cache[i].policy_id == policy_id)
			return r->cache[i].root;
	if (snapshot_path(policy_id, path, sizeof(path)))
		return NULL;
	root = json_load_file(path, 0, NULL);
	if (!root)
		return NULL;
	s = &r->cache[r->next_slot++ % SNAP_CACHE];
	json_decref(s->root);
	s->root = root;
	s->policy_id = policy_id;
	return root;
}

static const char *snap_str(json_t *snap, const char *key)
{
	return snap ? json_string_value(json_object_get(snap, key)) : NULL;
}

/* Rule id and reason for a rule number; self-protection and class defaults
 * have names of their own. */
static void rule_of(json_t *snap, const struct kg_event *e, char *id, size_t idlen,
		    const char **reason)
{
	json_t *rule = NULL;

	*reason = NULL;
	if (e->op == KG_OP_KGATE_STATE) {
		snprintf(id, idlen, "kgate:self-protection");
		*reason = "governed processes may not reach kgate's pins, state, queue or audit trail";
		return;
	}
	if (e->op == KG_OP_SYSTEM) {
		snprintf(id, idlen, "kgate:self-protection");
		*reason = "governed processes may not get the kernel or anything outside their job "
			  "to act for them (capabilities, kernel settings, daemons' sockets, "
			  "files run or obeyed outside the job)";
		return;
	}
	if (e->op >= KG_OP_BPF && e->op <= KG_OP_CGROUP_ESCAPE && !e->rule_id) {
		snprintf(id, idlen, "kgate:self-protection");
		*reason = "governed processes may not tamper with kgate or leave their job";
		return;
	}
	if (e->decision == KG_DEC_COOLDOWN && !e->rule_id) {
		snprintf(id, idlen, "kgate:cooldown");
		*reason = "too many refusals: the job is in cooldown";
		return;
	}
	/* refusals no rule of the policy can lift (net.bpf.c): a listener on a
	 * non-loopback address without a bind rule, a source route (aux = the
	 * cmsg type: IP_RETOPTS 7, IPV6_RTHDR 57, IPV6_2292RTHDR 5; a sendmsg4/6
	 * event's aux is the socket type, 1-3) */
	if (e->op == KG_OP_NET_BIND && !e->rule_id && e->decision == KG_DEC_DENY) {
		snprintf(id, idlen, "kgate:inbound");
		*reason = "listening on a non-loopback address needs a net rule with ops [\"bind\"]";
		return;
	}
	if (e->op == KG_OP_NET_SEND && !e->rule_id && e->decision == KG_DEC_DENY &&
	    (e->aux == 5 || e->aux == 7 || e->aux == 57)) {
		snprintf(id, idlen, "kgate:source-route");
		*reason = "a source route sends the packet to its first hop, not to the address "
			  "the rules checked";
		return;
	}
	if (!e->rule_id) {
		snprintf(id, idlen, "default");
		*reason = "no rule matched: the class default decided";
		return;
	}
	if (snap)
		/* rule_id = index + 1 (kgate.h) */
		rule = json_array_get(json_object_get(snap, "rules"), e->rule_id - 1);
	if (!rule) {
		snprintf(id, idlen, "#%u", e->rule_id);
		return;
	}
	snprintf(id, idlen, "%s", json_string_value(json_array_get(rule, 0)));
	*reason = json_string_value(json_array_get(rule, 1));
}

static bool event_allowed(const struct kg_event *e)
{
	if (e->flags & (KG_EVF_GRANT_USED | KG_EVF_FAIL_OPEN))
		return true;
	return e->decision == KG_DEC_ALLOW || e->decision == KG_DEC_AUDIT;
}

/* The executable is not in the event: it is read from /proc/PID/exe when
 * the record is written, so it is approximate (the process may have exec'd
 * since the decision, or exited: then there is none).  The kernel took comm
 * at decision time: when the process's comm is no longer that one, it has
 * exec'd since and its exe would name the wrong program, so none is given.
 * (An exec of a program with the same comm is not detected.) */
static void exe_of(uint32_t pid, const char *comm, char *buf, size_t len)
{
	char link[64], now[KG_COMM_LEN + 2] = "";
	ssize_t n;
	FILE *f;

	buf[0] = '\0';
	snprintf(link, sizeof(link), "/proc/%u/comm", pid);
	f = fopen(link, "re");
	if (!f)
		return;
	if (!fgets(now, sizeof(now), f))
		now[0] = '\0';
	fclose(f);
	now[strcspn(now, "\n")] = '\0';
	if (strcmp(now, comm))
		return;
	snprintf(link, sizeof(link), "/proc/%u/exe", pid);
	n = readlink(link, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
}

/* An escalation becomes a pending approval, with the approvers of the
 * policy the kernel decided under (from its snapshot). */
static void escalate(struct kg_recorder *r, const struct kg_event *e, json_t *snap,
		     const char *trace, const char *rule_id, const char *target)
{
	json_t *ap = json_object_get(snap, "approvals");
	uint32_t uids[KG_APPR_MAX_PRINCIPALS], gids[KG_APPR_MAX_PRINCIPALS];
	struct kg_principals who = { .uids = uids, .gids = gids };
	struct kg_approvals_cfg cfg = { .audit = r->audit, .loader = r->loader };
	struct kg_approvals_cfg base = cfg;
	size_t i;
	int err;

	if (!r->approvals)
		return;
	for (i = 0; i < json_array_size(json_object_get(ap, "uids")) && i < KG_APPR_MAX_PRINCIPALS; i++)
		uids[who.nuids++] = (uint32_t)json_integer_value(json_array_get(json_object_get(ap, "uids"), i));
	for (i = 0; i < json_array_size(json_object_get(ap, "gids")) && i < KG_APPR_MAX_PRINCIPALS; i++)
		gids[who.ngids++] = (uint32_t)json_integer_value(json_array_get(json_object_get(ap, "gids"), i));
	cfg.approvers = &who;
	cfg.allow_self_approval = json_is_true(json_object_get(ap, "allow_self"));
	cfg.timeout_sec = (uint64_t)json_integer_value(json_object_get(ap, "timeout_sec"));
	cfg.queue_max = (uint64_t)json_integer_value(json_object_get(ap, "queue_max"));
	cfg.policy_name = snap_str(snap, "name");
	cfg.policy_version = (long)json_integer_value(json_object_get(snap, "version"));
	kg_approvals_set_cfg(r->approvals, &cfg);
	err = kg_approvals_on_escalation(r->approvals, e, trace, snap_str(snap, "hash"), rule_id,
					 target);
	kg_approvals_set_cfg(r->approvals, &base);	/* `who` is about to go */
	if (err && err != -ENOSPC)
		kg_warn("recorder: escalation of %s could not be queued: %s", trace, strerror(-err));
}

static int tally_path(uint64_t job_id, char *buf, size_t len)
{
	char trace[32];

	kg_trace_id(job_id, trace, sizeof(trace));
	return kg_snprintf(buf, len, "%s/jobs/%s.tally", kg_state_dir(), trace);
}

/* Continue from what an earlier consumer wrote. */
static void tally_load(struct tally *t)
{
	char path[4200], *text;

	if (tally_path(t->job_id, path, sizeof(path)))
		return;
	text = kg_read_file(path, 4096, NULL);
	if (text && sscanf(text, "refused %" SCNu64 " audited %" SCNu64 " escalations %" SCNu64,
			   &t->refused, &t->audited, &t->escalations) != 3)
		t->refused = t->audited = t->escalations = 0;
	free(text);
}

static void count_for_job(struct kg_recorder *r, const struct kg_event *e)
{
	struct tally *t = NULL;
	int i;

	for (i = 0; i < TALLY_SLOTS && !t; i++)
		if (r->tallies[i].used && r->tallies[i].job_id == e->job_id)
			t = &r->tallies[i];
	if (!t) {
		t = &r->tallies[r->next_tally++ % TALLY_SLOTS];
		memset(t, 0, sizeof(*t));
		t->used = true;
		t->job_id = e->job_id;
		tally_load(t);
	}
	if (!event_allowed(e))
		t->refused += e->count;
	else if (e->decision == KG_DEC_AUDIT)
		t->audited += e->count;
	if (e->kind == KG_EV_ESCALATION)
		t->escalations++;
	t->dirty = true;
}

static void tallies_save(struct kg_recorder *r)
{
	char path[4200], tmp[4300], text[160];
	int i, fd, n;

	for (i = 0; i < TALLY_SLOTS; i++) {
		struct tally *t = &r->tallies[i];

		if (!t->used || !t->dirty || tally_path(t->job_id, path, sizeof(path)) ||
		    kg_snprintf(tmp, sizeof(tmp), "%s.tmp", path))
			continue;
		n = snprintf(text, sizeof(text), "refused %" PRIu64 " audited %" PRIu64
			     " escalations %" PRIu64 "\n", t->refused, t->audited, t->escalations);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			continue;	/* the job's directory may be gone: it ended */
		if (write(fd, text, n) == n && rename(tmp, path) == 0)
			t->dirty = false;
		close(fd);
	}
}

static const char *user_name(struct kg_recorder *r, uint32_t uid)
{
	struct passwd *pw;

	if (!r->name_valid || r->name_uid != uid) {
		pw = getpwuid(uid);
		r->name_uid = uid;
		r->name_valid = true;
		kg_strlcpy(r->name, pw ? pw->pw_name : "", sizeof(r->name));
	}
	return r->name[0] ? r->name : NULL;
}

static int record_event(void *recorder, const struct kg_event *e, uint64_t ring_pos)
{
	struct kg_recorder *r = recorder;
	char trace[32], target[KG_PATH_MAX * 2], rule_id[KG_ID_MAX + 16], exe[512];
	char comm[KG_COMM_LEN + 1];
	const char *reason;
	json_t *snap, *extra;
	uint64_t now_mono = kg_now_mono_ns(), now_real = kg_now_real_ns();
	struct kg_audit_rec rec = {};
	int err;

	snap = snapshot_get(r, e->policy_id);
	kg_trace_id(e->job_id, trace, sizeof(trace));
	kg_event_target(e, target, sizeof(target));
	rule_of(snap, e, rule_id, sizeof(rule_id), &reason);
	memcpy(comm, e->comm, KG_COMM_LEN);
	comm[KG_COMM_LEN] = '\0';
	exe[0] = '\0';
	if (!(e->flags & (KG_EVF_RESIDUE | KG_EVF_FOLD_END)))
		exe_of(e->pid, comm, exe, sizeof(exe));
	extra = json_pack("{s:s,s:s,s:I,s:I,s:I}", "kind", kg_event_kind_name(e->kind),
			  "outcome", event_allowed(e) ? "allowed" : "refused", "count", (json_int_t)e->count,
			  "policy_id", (json_int_t)e->policy_id, "cgroup_id", (json_int_t)e->job_cgid);
	if (extra && (e->flags & KG_EVF_GRANT_USED))
		json_object_set_new(extra, "grant", json_true());
	if (extra && (e->flags & KG_EVF_FAIL_OPEN))
		json_object_set_new(extra, "fail_open", json_true());
	if (extra && e->op == KG_OP_KGATE_STATE)	/* what the task tried on kgate's state */
		json_object_set_new(extra, "tried", json_string(kg_op_name(e->aux)));
	if (extra && e->op == KG_OP_SYSTEM && e->aux >= KG_SYS_OUTSIDE_BASE) {
		unsigned int mb = (e->aux >> 8) & 0xff;

		json_object_set_new(extra, "tried", json_string(kg_op_name(e->aux & 0xff)));
		json_object_set_new(extra, "outside", mb < kg_out_members_len
				    ? json_string(kg_out_members[mb].name) : json_integer(mb));
	} else if (extra && e->op == KG_OP_SYSTEM && e->aux >= KG_SYS_CAP_BASE) {
		const struct kg_cap_info *ci = kg_cap_info((int)(e->aux - KG_SYS_CAP_BASE));

		json_object_set_new(extra, "tried", json_string("capability"));
		json_object_set_new(extra, "capability", ci ? json_string(ci->name)
				    : json_integer(e->aux - KG_SYS_CAP_BASE));
	} else if (extra && e->op == KG_OP_SYSTEM && e->aux == KG_SYS_SETTING) {
		json_object_set_new(extra, "tried", json_string("write a kernel setting"));
	} else if (extra && e->op == KG_OP_SYSTEM && e->aux == KG_SYS_ABSTRACT) {
		json_object_set_new(extra, "tried",
				    json_string("connect to an abstract socket root made outside "
						"the job"));
	} else if (extra && e->op == KG_OP_SYSTEM && e->aux == KG_SYS_PROCESS) {
		json_object_set_new(extra, "tried",
				    json_string("write a file of a process outside the job"));
	}
	if (extra && (e->flags & KG_EVF_WALK_INCOMPLETE))
		json_object_set_new(extra, "walk_incomplete", json_true());
	if (extra && (e->flags & (KG_EVF_RESIDUE | KG_EVF_FOLD_END)))
		json_object_set_new(extra, "at_job_end", json_true());
	if (extra && (e->flags & KG_EVF_BY_NAME))	/* the host name the address was learnt for */
		json_object_set_new(extra, "name", json_stringn(e->path, strnlen(e->path,
								       sizeof(e->path))));
	if (extra && ring_pos)	/* 0: not from the ring (see kg_record_throttle_residue) */
		json_object_set_new(extra, "ring", json_pack("{s:I,s:s,s:I}",
							     "id", (json_int_t)r->ring_id,
							     "boot", r->boot_id,
							     "pos", (json_int_t)ring_pos));

	rec.type = "decision";
	rec.trace_id = trace;
	rec.ts_mono_ns = e->ts_ns;
	rec.ts_real_ns = now_real - (now_mono > e->ts_ns ? now_mono - e->ts_ns : 0);
	rec.actor_uid = e->uid;
	rec.actor_name = user_name(r, e->uid);
	rec.pid = e->flags & (KG_EVF_RESIDUE | KG_EVF_FOLD_END) ? -1 : (long)e->pid;
	rec.tid = e->flags & (KG_EVF_RESIDUE | KG_EVF_FOLD_END) ? -1 : (long)e->tid;
	rec.comm = comm[0] ? comm : NULL;
	rec.exe = exe[0] ? exe : NULL;
	rec.op = kg_op_name(e->op);
	rec.target = target;
	rec.decision = kg_decision_name(e->decision);
	rec.rule_id = rule_id;
	rec.reason = reason;
	rec.policy_name = snap_str(snap, "name");
	rec.policy_hash = snap_str(snap, "hash");
	rec.policy_version = snap ? (long)json_integer_value(json_object_get(snap, "version")) : -1;
	rec.mechanism = kg_mechanism_name(e->mechanism);
	rec.extra = extra;
	/* queued only: the consumer commits the batch (commit_batch) and the
	 * ring moves on only then; a failed commit keeps it queued */
	err = !extra ? -ENOMEM : r->audit ? kg_audit_queue(r->audit, &rec) : 0;
	json_decref(extra);
	if (err) {
		/* not queued (out of memory): the ring stops before this event
		 * and delivers it again; nothing is dropped */
		if (!r->warned_queue)
			kg_warn("recorder: cannot queue an audit record (%s): will retry",
				strerror(-err));
		r->warned_queue = true;
		return err;
	}
	r->warned_queue = false;

	if (e->kind == KG_EV_ESCALATION)
		escalate(r, e, snap, trace, rule_id, target);
	count_for_job(r, e);
	return 0;
}

int kg_record_throttle_residue(struct kg_audit *a, struct kg_loader *l, uint64_t cgid,
			       uint64_t job_id)
{
	int fd = kg_loader_map_fd(l, "kg_throttle");
	struct kg_throttle_key cur, next;
	struct kg_throttle_state st;
	struct kg_recorder *r;
	bool first = true;
	int n = 0;

	if (fd < 0)
		return -ENOENT;
	r = recorder_new(a);
	if (!r)
		return -ENOMEM;
	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		struct kg_event e = {};

		first = false;
		cur = next;
		if (cur.cgid != cgid || bpf_map_lookup_elem(fd, &cur, &st) || !st.refused)
			continue;
		e.ts_ns = kg_now_mono_ns();
		e.job_cgid = cgid;
		e.job_id = job_id;
		e.uid = st.uid;
		e.policy_id = st.policy_id;
		e.rule_id = cur.rule_id;
		e.kind = KG_EV_THROTTLE;
		e.op = st.op;
		e.decision = KG_DEC_THROTTLE;
		e.mechanism = st.mechanism;
		e.count = st.refused > UINT32_MAX ? UINT32_MAX : (uint32_t)st.refused;
		e.flags = KG_EVF_RESIDUE;
		snprintf(e.path, sizeof(e.path), "(throttled actions after the last report)");
		if (record_event(r, &e, 0) == 0)
			n++;
	}
	recorder_free(r);
	if (n && a)
		kg_audit_flush(a);
	return n;
}

/* The event a job-end record of folded decisions describes: the key's last
 * event when kg_fold_last kept it (its target text, path included), else
 * one made from the key; count = what is still folded, time = the last of
 * them, no process (they may come from any process of the job). */
static void fold_residue_event(int last_fd, const struct kg_fold_key *k, uint64_t job_id,
			       const struct kg_fold *f, struct kg_event *e)
{
	uint64_t now = kg_now_mono_ns();

	if (last_fd < 0 || bpf_map_lookup_elem(last_fd, k, e)) {
		memset(e, 0, sizeof(*e));
		e->job_cgid = k->cgid;
		e->policy_id = k->policy_id;
		e->rule_id = k->rule_id;
		e->kind = KG_EV_DECISION;
		e->op = k->op;
		e->decision = k->decision;
		e->mechanism = k->mechanism;
		e->flags = k->flags;
		e->family = k->family;
		e->aux = k->aux;
		e->target = k->target;
	}
	/* the time of the last folded decision (the kernel's clock) */
	e->ts_ns = f->folded_ns && f->folded_ns <= now ? f->folded_ns : now;
	e->job_id = job_id;
	e->pid = e->tid = 0;
	memset(e->comm, 0, sizeof(e->comm));
	e->count = f->folded > UINT32_MAX ? UINT32_MAX : (uint32_t)f->folded;
	e->flags |= KG_EVF_FOLD_END;
}

int kg_record_fold_residue(struct kg_audit *a, struct kg_loader *l, uint64_t cgid,
			   uint64_t job_id)
{
	int fd = kg_loader_map_fd(l, "kg_fold"), last_fd = kg_loader_map_fd(l, "kg_fold_last");
	struct kg_fold_key cur, next, *keys = NULL;
	size_t nkeys = 0, cap = 0, i;
	struct kg_recorder *r;
	bool first = true;
	int n = 0, err = 0;

	if (fd < 0)
		return -ENOENT;
	/* the job's keys first: deleting while walking would restart the walk */
	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (cur.cgid != cgid)
			continue;
		if (nkeys == cap) {
			struct kg_fold_key *grown = realloc(keys, (cap ? cap * 2 : 64) * sizeof(*keys));

			if (!grown) {
				free(keys);
				return -ENOMEM;
			}
			keys = grown;
			cap = cap ? cap * 2 : 64;
		}
		keys[nkeys++] = cur;
	}
	if (!nkeys)
		return 0;
	r = recorder_new(a);
	if (!r) {
		free(keys);
		return -ENOMEM;
	}
	for (i = 0; i < nkeys; i++) {
		struct kg_fold f;
		struct kg_event e;

		if (bpf_map_lookup_elem(fd, &keys[i], &f))
			continue;
		if (f.folded) {
			fold_residue_event(last_fd, &keys[i], job_id, &f, &e);
			err = record_event(r, &e, 0);
			if (err)
				break;	/* kept: a later sweep records it */
			n++;
		}
		bpf_map_delete_elem(fd, &keys[i]);
		if (last_fd >= 0)
			bpf_map_delete_elem(last_fd, &keys[i]);
	}
	recorder_free(r);
	free(keys);
	if (n && a)
		kg_audit_flush(a);
	return err ? err : n;
}

void kg_fold_pending(uint64_t cgid, uint64_t *refused, uint64_t *audited)
{
	int fd = kg_open_pinned_map("kg_fold");
	struct kg_fold_key cur, next;
	struct kg_fold f;
	bool first = true;

	*refused = *audited = 0;
	if (fd < 0)
		return;
	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (cur.cgid != cgid || bpf_map_lookup_elem(fd, &cur, &f))
			continue;
		if (cur.decision == KG_DEC_AUDIT)
			*audited += f.folded;
		else
			*refused += f.folded;
	}
	close(fd);
}

int kg_record_job_residues(struct kg_audit *a, struct kg_loader *l, uint64_t cgid,
			   uint64_t job_id)
{
	int t = kg_record_throttle_residue(a, l, cgid, job_id);
	int f = kg_record_fold_residue(a, l, cgid, job_id);

	if (t < 0 && t != -ENOENT)
		return t;
	if (f < 0 && f != -ENOENT)
		return f;
	return (t > 0 ? t : 0) + (f > 0 ? f : 0);
}

/* A loss record queued earlier whose commit failed: written now?  0 when
 * nothing waits any more. */
static int settle_queued_loss(struct kg_recorder *r)
{
	int err;

	if (!r->loss_queued)
		return 0;
	err = r->audit ? kg_audit_flush(r->audit) : 0;
	if (err)
		return err;
	err = kg_losses_mark(r->loader, &r->queued_loss);
	kg_losses_done(&r->queued_loss);
	r->loss_queued = false;
	return err;
}

/* One events_lost record for what the ring could not take since the last
 * one (losses.h): total, by kind and by job of the same interval. */
static int report_losses(struct kg_recorder *r, struct kg_loader *l)
{
	struct kg_loss_delta d;
	struct kg_counters c;
	uint64_t sent = 0, decided = 0;
	int k, err;

	/* one loss record at a time: a queued one is never queued again */
	err = settle_queued_loss(r);
	if (err || r->loss_queued)
		return err;
	if (kg_maps_read_counters(l, &c))
		return -EIO;
	for (k = 0; k < KG_EV_MAX; k++)
		sent += c.events_sent[k];
	for (k = 0; k < KG_DEC_MAX; k++)
		decided += c.decisions[k];
	err = kg_losses_read(l, &d);
	if (!err && d.lost) {
		struct kg_audit_loss loss = {
			.mechanism = "ring-buffer", .decided = decided, .delivered = sent,
			.lost = d.lost, .by_kind = kg_losses_by_kind(&d), .by_job = kg_losses_by_job(&d),
			.unattributed = d.unattributed,
		};
		unsigned before = kg_audit_pending(r->audit);

		/* the record must be in the trail before the counts say so: a
		 * crash in between would otherwise drop the loss from both */
		err = r->audit ? kg_audit_append_lost(r->audit, &loss) : 0;
		json_decref(loss.by_kind);
		json_decref(loss.by_job);
		if (!err && r->audit)
			err = kg_audit_flush(r->audit);
		if (!err) {
			err = kg_losses_mark(l, &d);
		} else if (r->audit && kg_audit_pending(r->audit) > before) {
			r->queued_loss = d;	/* queued, not written: settle it later */
			r->loss_queued = true;
			return err;
		}
	}
	kg_losses_done(&d);
	if (!err)
		kg_losses_sweep(l);
	return err;
}

/* ---- the consumer ------------------------------------------------------ */

struct kg_consumer {
	int lock_fd;
	struct kg_loader *loader;
	struct kg_recorder *rec;
	struct kg_events *events;
};

static int commit_batch(void *recorder)
{
	struct kg_recorder *r = recorder;
	int err = r->audit ? kg_audit_flush(r->audit) : 0;

	/* said once per outage, not once per poll */
	if (err && !r->warned_commit)
		kg_warn("recorder: cannot write the audit trail (%s): events wait in the ring "
			"buffer; what does not fit is counted as lost and recorded when the "
			"trail can be written again", strerror(-err));
	else if (!err && r->warned_commit)
		kg_warn("recorder: the audit trail can be written again");
	r->warned_commit = err != 0;
	return err;
}

void kg_boot_id(char *buf, size_t len)
{
	char *text = kg_read_file("/proc/sys/kernel/random/boot_id", 128, NULL);

	snprintf(buf, len, "%s", text ? text : "");
	buf[strcspn(buf, "\n")] = '\0';
	free(text);
}

struct ring_match {
	uint32_t id;
	const char *boot;
};

/* The same ring: the same map id *and* the same boot (map ids start over
 * at every boot).  A record without a boot id cannot prove it and is not
 * trusted: at worst a batch is recorded twice, never skipped. */
static bool is_ring_record(json_t *rec, void *ctx)
{
	const struct ring_match *m = ctx;
	json_t *ring = json_object_get(json_object_get(rec, "extra"), "ring");
	const char *boot = json_string_value(json_object_get(ring, "boot"));

	return ring && json_integer_value(json_object_get(ring, "id")) == m->id &&
	       boot && m->boot[0] && !strcmp(boot, m->boot);
}

/* How far back a consumer looks for its predecessor's last record: the
 * active segment and the two closed ones before it.  A predecessor's last
 * committed batch is at most one ring buffer of records, far less than a
 * segment, so it is in the newest segments unless more than a segment of
 * other records followed it before anyone consumed again. */
#define RESUME_SEGMENTS 3

uint64_t kg_recorder_resume_position(uint32_t ring_id, const char *boot_id)
{
	struct ring_match m = { .id = ring_id, .boot = boot_id ? boot_id : "" };
	char needle[64];
	uint64_t pos = 0;
	json_t *rec = NULL;
	int err;

	/* jansson's compact form of the extra member, as record_event wrote it */
	snprintf(needle, sizeof(needle), "\"ring\":{\"id\":%u,", ring_id);
	err = kg_audit_find_last(NULL, needle, is_ring_record, &m, RESUME_SEGMENTS, &rec);
	if (err)
		kg_warn("recorder: cannot read the trail to resume the ring buffer: %s (events "
			"the previous consumer recorded may be recorded again)", strerror(-err));
	if (rec)
		pos = (uint64_t)json_integer_value(json_object_get(
			json_object_get(json_object_get(rec, "extra"), "ring"), "pos"));
	json_decref(rec);
	return pos;
}

struct kg_consumer *kg_consumer_try(struct kg_loader *l, struct kg_audit *a)
{
	struct kg_consumer *c;
	struct kg_event_sink sink = { .event = record_event, .commit = commit_batch };

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loader = l;
	c->lock_fd = kg_consumer_try_lock();
	if (c->lock_fd < 0) {
		free(c);
		errno = EWOULDBLOCK;
		return NULL;
	}
	c->rec = recorder_new(a);
	if (c->rec) {
		struct kg_approvals_cfg cfg = { .audit = a, .loader = l };

		c->rec->loader = l;
		c->rec->approvals = kg_approvals_open(&cfg);
		/* requests of jobs that ended while nobody consumed */
		if (c->rec->approvals)
			kg_approvals_expire_orphans(c->rec->approvals);
	}
	sink.ctx = c->rec;
	c->events = c->rec ? kg_events_open(l, &sink) : NULL;
	if (!c->events) {
		kg_consumer_close(c);
		return NULL;
	}
	c->rec->ring_id = kg_events_ring_id(c->events);
	kg_boot_id(c->rec->boot_id, sizeof(c->rec->boot_id));
	/* a previous consumer may have recorded events it could not yet
	 * acknowledge in the ring before it died: do not record them twice.
	 * Only records still waiting in the ring can be such: with none, the
	 * trail is not searched (a search reads up to three segments when
	 * the last ring record is far back: most of a warm start's time). */
	if (kg_events_pending(c->events))
		kg_events_skip_to(c->events, kg_recorder_resume_position(c->rec->ring_id,
									  c->rec->boot_id));
	return c;
}

int kg_consumer_timeout_ms(const struct kg_consumer *c, int timeout_ms)
{
	return c ? kg_events_timeout_ms(c->events, timeout_ms) : timeout_ms;
}

int kg_consumer_epoll_fd(const struct kg_consumer *c)
{
	return kg_events_epoll_fd(c->events);
}

int kg_consumer_poll(struct kg_consumer *c)
{
	int n = kg_events_poll(c->events, 0);

	if (c->rec->approvals)
		kg_approvals_expire(c->rec->approvals, 0);
	/* losses after the events before them: not while a batch waits */
	if (!kg_events_held(c->events))
		report_losses(c->rec, c->loader);
	tallies_save(c->rec);
	return n;
}

int kg_consumer_drain(struct kg_consumer *c)
{
	int n = kg_events_drain(c->events);

	if (!kg_events_held(c->events))
		report_losses(c->rec, c->loader);
	kg_audit_flush(c->rec->audit);
	tallies_save(c->rec);
	return n;
}

void kg_consumer_close(struct kg_consumer *c)
{
	if (!c)
		return;
	kg_events_close(c->events);
	recorder_free(c->rec);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free(c);
}

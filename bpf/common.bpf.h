/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * common.bpf.h - what every kgate hook does: find the job, decide, report.
 *
 *   struct kg_ctx c;
 *   if (kg_ctx_init(&c, KG_OP_READ, KG_MECH_BPF_LSM))
 *           return 0;                       // ungoverned: one cheap check
 *   ... look up the rule for the target, fill c.target ...
 *   kg_decide(&c, ent_decision, ent_rule_id);   // sets c.allow / c.emit
 *   if (c.emit) { e = kg_event_begin(&c); if (e) { ...; kg_event_submit(e); } }
 *   return c.allow ? 0 : -EPERM;
 *
 * The decision never depends on the ring buffer: kg_decide() settles it and
 * counts it; an event that cannot be reserved is counted as lost.  A
 * decision identical to one reported less than KG_FOLD_NS ago is folded
 * (kg_fold, see kgate.h): kg_event_begin() returns NULL and the count goes
 * with the key's next event or the job's end.
 */
#ifndef KGATE_COMMON_BPF_H
#define KGATE_COMMON_BPF_H

#include "maps.bpf.h"

#ifndef EPERM
#define EPERM 1
#endif
#ifndef EACCES
#define EACCES 13
#endif

struct kg_ctx {
	__u64 cgid;			/* the job's cgroup id */
	struct kg_job *job;
	struct kg_policy *pol;
	__u32 policy_id;
	__u8 op;
	__u8 mechanism;
	__u8 kind;			/* enum kg_event_kind of the event, if any */
	__u8 decision;			/* outcome actually enforced */
	__u32 rule_id;
	__u32 flags;			/* KG_EVF_* */
	__u32 count;
	__u32 allow;			/* 1 = proceed; a u32 so hooks can mask it */
	bool emit;
	__u8 family;			/* the event's family and aux: set them */
	__u32 aux;			/* before kg_event_begin (they are in kg_fold's key) */
	struct kg_target target;	/* grant key and event target */
};

static __always_inline struct kg_counters *kg_counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kg_counters, &zero);
}

/* The job of the current task: its own cgroup first (the common case for a
 * governed task), then its ancestors from the root down, so a job that
 * creates child cgroups stays governed.  Returns NULL for ungoverned tasks. */
static __always_inline struct kg_job *kg_current_job(__u64 *cgid_out)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct kg_job *job;
	int level;

	job = bpf_map_lookup_elem(&kg_jobs, &cgid);
	if (job) {
		*cgid_out = cgid;
		return job;
	}
	for (level = 1; level < KG_MAX_CGROUP_LEVELS; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id || id == cgid)
			break;
		job = bpf_map_lookup_elem(&kg_jobs, &id);
		if (job) {
			*cgid_out = id;
			return job;
		}
	}
	return NULL;
}

static long kg_root_slot_cb(__u32 slot, void *ctx)
{
	/* 1 = under that slot's cgroup; 0 = not; < 0 = empty slot */
	if (bpf_current_task_under_cgroup(&kg_jobs_root, slot) == 1) {
		*(bool *)ctx = true;
		return 1;	/* stop */
	}
	return 0;
}

/* Might the current task be governed?  Under kgate run's jobs root (slot
 * 0), or under a cgroup `kgate govern` put in a slot of its own; slot 0
 * unset means "unknown": walk kg_jobs. */
static __always_inline bool kg_maybe_governed(void)
{
	__u32 zero = 0, *used;
	bool under = false;
	long r = bpf_current_task_under_cgroup(&kg_jobs_root, 0);

	if (r != 0)
		return true;	/* 1 = under it; < 0 = root not set */
	used = bpf_map_lookup_elem(&kg_roots_used, &zero);
	if (!used || *used <= 1)
		return false;
	bpf_loop(*used < KG_MAX_ROOTS ? *used : KG_MAX_ROOTS, kg_root_slot_cb, &under, 0);
	return under;
}

/* Is cgroup cg the job's (cgroup id cgid) or a descendant of it? */
static __always_inline bool kg_cgroup_in_job(struct cgroup *cg, __u64 cgid)
{
	int i;

	for (i = 0; i < KG_MAX_CGROUP_LEVELS + 16; i++) {
		if (!cg)
			return false;
		if (BPF_CORE_READ(cg, kn, id) == cgid)
			return true;
		cg = BPF_CORE_READ(cg, self.parent, cgroup);
	}
	return false;
}

/* Is task in the job whose cgroup id is cgid (its cgroup or a descendant)? */
static __always_inline bool kg_task_in_job(struct task_struct *task, __u64 cgid)
{
	return kg_cgroup_in_job(BPF_CORE_READ(task, cgroups, dfl_cgrp), cgid);
}

/* 0 when the current task is governed (c is filled), -1 otherwise.  LSM
 * hooks (mechanism is a constant, so this folds away elsewhere) first ask
 * whether the task is under one of the jobs' root cgroups at all. */
static __always_inline int kg_ctx_init(struct kg_ctx *c, __u8 op, __u8 mechanism)
{
	if (mechanism == KG_MECH_BPF_LSM && !kg_maybe_governed())
		return -1;
	__builtin_memset(c, 0, sizeof(*c));
	c->job = kg_current_job(&c->cgid);
	if (!c->job)
		return -1;
	c->policy_id = c->job->policy_id;
	c->pol = bpf_map_lookup_elem(&kg_policies, &c->policy_id);
	c->op = op;
	c->mechanism = mechanism;
	c->count = 1;
	return 0;
}

static __always_inline __u8 kg_class_of(__u8 op)
{
	switch (op) {
	case KG_OP_EXEC:
		return KG_CLASS_EXEC;
	case KG_OP_NET_CONNECT:
	case KG_OP_NET_SEND:
	case KG_OP_SOCKET_CREATE:
	case KG_OP_NET_BIND:
		return KG_CLASS_NET;
	case KG_OP_UNIX_CONNECT:
		return KG_CLASS_UNIX;
	default:
		return KG_CLASS_FILE;
	}
}

/* The class default when no rule matched.  A job whose policy entry is
 * missing (mid-update or corrupted) is denied: fail closed. */
static __always_inline void kg_default_for(struct kg_ctx *c, __u8 *decision, __u32 *rule_id)
{
	__u8 cls = kg_class_of(c->op);

	if (!c->pol) {
		*decision = KG_DEC_DENY;
		*rule_id = 0;
		return;
	}
	if (cls >= KG_CLASS_MAX)
		cls = KG_CLASS_FILE;
	*decision = c->pol->default_decision[cls];
	*rule_id = c->pol->default_rule_id[cls];
	if (*decision == KG_DEC_NONE)
		*decision = KG_DEC_ALLOW;
}

/* Fail open only when the policy says so and the controller's heartbeat is
 * older than the policy's timeout. */
static __always_inline bool kg_controller_dead_fail_open(struct kg_ctx *c, __u64 now)
{
	struct kg_control *ctl;
	__u32 zero = 0;

	if (!c->pol || !(c->pol->flags & KG_POL_F_FAIL_OPEN))
		return false;
	ctl = bpf_map_lookup_elem(&kg_control, &zero);
	if (!ctl || !c->pol->heartbeat_timeout_ns)
		return false;
	return ctl->heartbeat_ns + c->pol->heartbeat_timeout_ns < now;
}

static __always_inline bool kg_in_cooldown(struct kg_ctx *c, __u64 now)
{
	struct kg_job_state *st = bpf_map_lookup_elem(&kg_job_state, &c->cgid);

	return st && st->cooldown_until_ns > now;
}

/* Count a refusal toward the job's circuit breaker; returns true when this
 * refusal opened the breaker (the caller then reports the start). */
static __always_inline bool kg_note_denial(struct kg_ctx *c, __u64 now)
{
	struct kg_job_state fresh = {}, *st;

	if (!c->pol || !c->pol->cooldown_threshold)
		return false;
	st = bpf_map_lookup_elem(&kg_job_state, &c->cgid);
	if (!st) {
		fresh.window_start_ns = now;
		bpf_map_update_elem(&kg_job_state, &c->cgid, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&kg_job_state, &c->cgid);
		if (!st)
			return false;
	}
	if (now - st->window_start_ns > c->pol->cooldown_window_ns) {
		st->window_start_ns = now;
		st->denials_in_window = 0;
	}
	if (__sync_fetch_and_add(&st->denials_in_window, 1) + 1 != c->pol->cooldown_threshold)
		return false;
	st->cooldown_started_ns = now;
	st->cooldown_until_ns = now + c->pol->cooldown_ns;
	st->denials_in_window = 0;
	return true;
}

/* A grant is the exact (job, op, target) tuple, valid for the policy id it
 * was approved under, until it expires or its uses are spent.  A grant that
 * is found expired, or whose last use this call takes, is deleted here, so
 * spent grants never fill the map (the controller sweeps the rest). */
static __always_inline bool kg_consume_grant(struct kg_ctx *c, __u64 now)
{
	struct kg_grant_key key = {};
	struct kg_grant *g;
	int i;

	key.cgid = c->cgid;
	key.op = c->op;
	key.target = c->target;
	g = bpf_map_lookup_elem(&kg_grants, &key);
	if (!g || g->policy_id != c->policy_id)
		return false;
	if (g->expires_ns && g->expires_ns < now) {
		bpf_map_delete_elem(&kg_grants, &key);
		return false;
	}
	for (i = 0; i < 4; i++) {
		__u32 left = g->uses_left;

		if (left == KG_GRANT_UNLIMITED)
			return true;
		if (left == 0)
			return false;
		if (__sync_val_compare_and_swap(&g->uses_left, left, left - 1) == left) {
			if (left == 1)
				bpf_map_delete_elem(&kg_grants, &key);
			return true;
		}
	}
	return false;	/* heavy contention on a counted grant: refuse */
}

/* Token bucket per (job, rule).  Updates race benignly between CPUs: at
 * worst a burst admits a few extra calls; the rate holds over time. */
static __always_inline bool kg_throttle_take(struct kg_ctx *c, __u32 rule_id, __u64 now)
{
	struct kg_rule_key pk = { .policy_id = c->policy_id, .rule_id = rule_id };
	struct kg_throttle_key tk = { .cgid = c->cgid, .rule_id = rule_id };
	struct kg_throttle_state fresh = {}, *b;
	struct kg_rule_params *p;
	__u64 cap, tokens;

	p = bpf_map_lookup_elem(&kg_rule_params, &pk);
	if (!p)
		return false;	/* throttle rule without parameters: refuse */
	cap = p->burst * 1000;
	b = bpf_map_lookup_elem(&kg_throttle, &tk);
	if (!b) {
		fresh.tokens_milli = cap;
		fresh.last_ns = now;
		bpf_map_update_elem(&kg_throttle, &tk, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&kg_throttle, &tk);
		if (!b)
			return false;
	}
	tokens = b->tokens_milli;
	if (now > b->last_ns) {
		__u64 us = (now - b->last_ns) / 1000, added;

		/* milli-tokens = us * rate / 1000; long idle periods in ms so the
		 * product cannot overflow (rate <= 1e9), beyond that: full */
		if (us < 1000000000ULL)
			added = us * p->rate_per_sec / 1000;
		else if (us / 1000 < 10000000000ULL)
			added = us / 1000 * p->rate_per_sec;
		else
			added = cap;
		/* advance the clock only by the time that became tokens: calls
		 * closer together than one milli-token would otherwise lose every
		 * refill, and each refill its remainder.  tokens < cap here bounds
		 * added (< 1e12) so added * 1e6 cannot overflow. */
		if (added) {
			tokens += added;
			if (tokens >= cap)
				b->last_ns = now;
			else
				b->last_ns += added * 1000000ULL / p->rate_per_sec;
		}
	}
	if (tokens > cap)
		tokens = cap;
	if (tokens >= 1000) {
		b->tokens_milli = tokens - 1000;
		return true;
	}
	b->tokens_milli = tokens;
	/* aggregate: report the refusals of the last second in one event; the
	 * ones after the last report are reported when the job ends */
	b->refused++;
	b->policy_id = c->policy_id;
	b->uid = (__u32)bpf_get_current_uid_gid();
	b->op = c->op;
	b->mechanism = c->mechanism;
	if (now - b->last_report_ns >= 1000000000ULL) {
		c->count = b->refused;
		b->refused = 0;
		b->last_report_ns = now;
		c->emit = true;
	}
	return false;
}

/* Settle the outcome of a governed action.  `decision`/`rule_id` are what
 * the matched rule says (KG_DEC_NONE = no rule: use the class default).
 * may_fail_open: false for refusals no policy can lift (kg_decide_refusal);
 * a constant at every call, so the branch folds away. */
static __always_inline void kg_decide_as(struct kg_ctx *c, __u8 decision, __u32 rule_id,
					 bool may_fail_open)
{
	struct kg_counters *cnt;
	__u64 now = bpf_ktime_get_ns();

	if (decision == KG_DEC_NONE)
		kg_default_for(c, &decision, &rule_id);
	c->rule_id = rule_id;
	c->kind = KG_EV_DECISION;
	c->emit = false;

	if (may_fail_open && kg_controller_dead_fail_open(c, now)) {
		c->allow = true;
		c->decision = KG_DEC_ALLOW;
		c->flags |= KG_EVF_FAIL_OPEN;
		c->emit = decision != KG_DEC_ALLOW;
		goto count;
	}
	if (kg_in_cooldown(c, now)) {
		c->allow = false;
		c->decision = KG_DEC_COOLDOWN;
		c->rule_id = c->pol ? c->pol->cooldown_rule_id : 0;
		c->emit = true;
		goto count;
	}

	switch (decision) {
	case KG_DEC_ALLOW:
	case KG_DEC_ALLOW_WITH_CONSTRAINTS:
	case KG_DEC_NO_OP:
		c->allow = true;
		c->decision = KG_DEC_ALLOW;
		break;
	case KG_DEC_AUDIT:
		c->allow = true;
		c->decision = KG_DEC_AUDIT;
		c->emit = true;
		break;
	case KG_DEC_REQUIRE_APPROVAL:
		c->decision = KG_DEC_REQUIRE_APPROVAL;
		c->emit = true;
		if (kg_consume_grant(c, now)) {
			c->allow = true;
			c->flags |= KG_EVF_GRANT_USED;
		} else {
			c->allow = false;
			c->kind = KG_EV_ESCALATION;
		}
		break;
	case KG_DEC_THROTTLE:
		c->decision = KG_DEC_THROTTLE;
		c->allow = kg_throttle_take(c, rule_id, now);
		if (!c->allow)
			c->kind = KG_EV_THROTTLE;
		break;
	default:	/* deny, and anything unknown */
		c->allow = false;
		c->decision = KG_DEC_DENY;
		c->emit = true;
		break;
	}
	if (!c->allow && kg_note_denial(c, now)) {
		c->kind = KG_EV_COOLDOWN_START;
		c->emit = true;
	}
count:
	cnt = kg_counters_get();
	if (cnt && c->decision < KG_DEC_MAX)
		__sync_fetch_and_add(&cnt->decisions[c->decision], 1);
}

static __always_inline void kg_decide(struct kg_ctx *c, __u8 decision, __u32 rule_id)
{
	kg_decide_as(c, decision, rule_id, true);
}

/* A refusal that no policy can turn into an allow, and that a fail-open
 * policy whose controller is gone keeps too: self-protection, escapes by
 * proxy, source routes, signals through file ownership.  Settled as a deny
 * rule is (a cooldown in force, or started by it, is counted and reported
 * as such), never allowed. */
static __always_inline void kg_decide_refusal(struct kg_ctx *c)
{
	kg_decide_as(c, KG_DEC_DENY, 0, false);
}

/* arr[kind] += n, with the bound checked on the very register that indexes:
 * without the barrier clang merged this check with an earlier one on another
 * copy of kind, and the 6.1 verifier refused every LSM program that counts a
 * loss ("invalid access to map value", so protect did not load and kgate fell
 * back to degraded mode on BPF-LSM kernels). */
static __always_inline void kg_add_by_kind(__u64 *arr, __u32 kind, __u64 n)
{
	barrier_var(kind);
	if (kind < KG_EV_MAX)
		__sync_fetch_and_add(&arr[kind], n);
}

/* n decisions of the job whose event the ring buffer could not take: counted
 * per kind (kg_counters) and per job (kg_job_lost). */
static __always_inline void kg_count_lost(__u64 cgid, __u64 job_id, __u8 kind, __u64 n)
{
	struct kg_counters *cnt = kg_counters_get();
	struct kg_job_lost fresh = { .job_id = job_id }, *jl;

	if (kind >= KG_EV_MAX)
		return;
	if (cnt)
		kg_add_by_kind(cnt->events_lost, kind, n);
	jl = bpf_map_lookup_elem(&kg_job_lost, &cgid);
	if (!jl) {
		bpf_map_update_elem(&kg_job_lost, &cgid, &fresh, BPF_NOEXIST);
		jl = bpf_map_lookup_elem(&kg_job_lost, &cgid);
	}
	if (jl)
		kg_add_by_kind(jl->lost, kind, n);
	else if (cnt)
		kg_add_by_kind(cnt->lost_unattributed, kind, n);
}

/* Events that fold (kgate.h, kg_fold): refusals and audits reported as
 * plain decisions.  Allows (fail-open), used grants (decision
 * require_approval), escalations, throttle reports and cooldown starts
 * never do. */
static __always_inline bool kg_foldable(__u8 kind, __u8 decision)
{
	return kind == KG_EV_DECISION &&
	       (decision == KG_DEC_DENY || decision == KG_DEC_COOLDOWN || decision == KG_DEC_AUDIT);
}

static __always_inline void kg_fold_key_of(struct kg_fold_key *k, __u64 cgid, __u32 policy_id,
					   __u32 rule_id, __u32 flags, __u32 aux, __u8 op,
					   __u8 decision, __u8 mechanism, __u8 family,
					   const struct kg_target *target)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->cgid = cgid;
	k->policy_id = policy_id;
	k->rule_id = rule_id;
	k->flags = flags & ~KG_FOLD_FLAGS_IGNORED;
	k->aux = aux;
	k->op = op;
	k->decision = decision;
	k->mechanism = mechanism;
	k->family = family;
	__builtin_memcpy(&k->target, target, sizeof(k->target));
}

/* The most a single event takes from `folded` (its count is a u32). */
#define KG_FOLD_TAKE_MAX	0x7fffffffULL

/* true: this decision's event is folded into its key's (nothing to emit).
 * false: emit it; c->count then includes what was folded since the key's
 * last event.  `folded` is taken with a compare-and-swap, so two CPUs
 * emitting at once never both carry the same folded decisions; under heavy
 * contention it stays for the next event or the job's end. */
static __always_inline bool kg_fold_take(struct kg_ctx *c)
{
	struct kg_fold fresh = {}, *f;
	struct kg_fold_key k;
	__u64 now, last, n, take;
	int i;

	if (!kg_foldable(c->kind, c->decision))
		return false;
	kg_fold_key_of(&k, c->cgid, c->policy_id, c->rule_id, c->flags, c->aux, c->op,
		       c->decision, c->mechanism, c->family, &c->target);
	now = bpf_ktime_get_ns();
	f = bpf_map_lookup_elem(&kg_fold, &k);
	if (!f) {
		/* the key's first event; a full map folds nothing new */
		fresh.last_ns = now;
		bpf_map_update_elem(&kg_fold, &k, &fresh, BPF_NOEXIST);
		return false;
	}
	last = f->last_ns;
	if (now < last || now - last < KG_FOLD_NS) {
		__sync_fetch_and_add(&f->folded, 1);
		f->folded_ns = now;
		return true;
	}
	f->last_ns = now;
	for (i = 0; i < 4; i++) {
		n = f->folded;
		if (!n)
			break;
		take = n < KG_FOLD_TAKE_MAX ? n : KG_FOLD_TAKE_MAX;
		if (__sync_val_compare_and_swap(&f->folded, n, n - take) == n) {
			c->count += (__u32)take;
			break;
		}
	}
	return false;
}

/* Keep the event a foldable key last emitted (kg_fold_last): the record of
 * what is still folded at the job's end names its target.  Copied through
 * the per-CPU scratch event: older verifiers (Debian's 6.1) take no ring
 * buffer memory as a map update's value. */
static __always_inline void kg_fold_remember(struct kg_event *e)
{
	struct kg_fold_key k;
	struct kg_event *s;
	__u32 zero = 0;

	if (!kg_foldable(e->kind, e->decision))
		return;
	s = bpf_map_lookup_elem(&kg_scratch, &zero);
	if (!s)
		return;
	kg_fold_key_of(&k, e->job_cgid, e->policy_id, e->rule_id, e->flags, e->aux, e->op,
		       e->decision, e->mechanism, e->family, &e->target);
	bpf_probe_read_kernel(s, sizeof(*s), e);
	bpf_map_update_elem(&kg_fold_last, &k, s, BPF_ANY);
}

/* Reserve and fill the common part of an event.  NULL when the decision is
 * folded into an earlier event of the same key (kg_fold_take), or when the
 * ring buffer is full: the loss is counted per kind and per job (every
 * decision the event stood for), the decision already stands. */
static __always_inline struct kg_event *kg_event_begin(struct kg_ctx *c)
{
	struct kg_counters *cnt = kg_counters_get();
	struct kg_event *e;
	__u64 pid_tgid;
	__u8 kind = c->kind < KG_EV_MAX ? c->kind : KG_EV_DECISION;

	if (kg_fold_take(c))
		return NULL;
	e = bpf_ringbuf_reserve(&kg_events, sizeof(*e), 0);
	if (!e) {
		kg_count_lost(c->cgid, c->job ? c->job->job_id : 0, kind, c->count);
		return NULL;
	}
	if (cnt)
		kg_add_by_kind(cnt->events_sent, kind, 1);
	pid_tgid = bpf_get_current_pid_tgid();
	e->ts_ns = bpf_ktime_get_ns();
	e->job_cgid = c->cgid;
	e->job_id = c->job ? c->job->job_id : 0;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->policy_id = c->policy_id;
	e->rule_id = c->rule_id;
	e->kind = kind;
	e->op = c->op;
	e->decision = c->decision;
	e->mechanism = c->mechanism;
	e->flags = c->flags;
	e->count = c->count;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->target = c->target;
	e->family = c->family;
	e->aux = c->aux;
	e->path[0] = '\0';
	return e;
}

/* Submit flags for an event of this kind: wake the consumer, or let it
 * take the event with the next batch (see KG_WAKE_NS in kgate.h).  The
 * last wake-up's time is shared by all CPUs; a race between two of them
 * costs at most one extra wake-up.  A fill-level wake-up is rate-limited
 * too (KG_WAKE_FULL_NS): while the consumer lags, the ring stays above the
 * level and a wake-up per event would cost an irq_work each. */
static __always_inline __u64 kg_rb_flags(__u8 kind)
{
	__u64 now, since, *last;
	__u32 zero = 0;

	last = bpf_map_lookup_elem(&kg_wake, &zero);
	if (!last)
		return 0;	/* the kernel's default: wake when the consumer caught up */
	now = bpf_ktime_get_ns();
	since = now - *last;
	if (kind == KG_EV_DECISION && since < KG_WAKE_NS &&
	    (since < KG_WAKE_FULL_NS ||
	     bpf_ringbuf_query(&kg_events, BPF_RB_AVAIL_DATA) <
		     bpf_ringbuf_query(&kg_events, BPF_RB_RING_SIZE) >> KG_WAKE_FILL_SHIFT))
		return BPF_RB_NO_WAKEUP;
	*last = now;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void kg_event_submit(struct kg_event *e)
{
	kg_fold_remember(e);
	bpf_ringbuf_submit(e, kg_rb_flags(e->kind));
}

/* Emit the event for a settled decision with no extra fields. */
static __always_inline void kg_report(struct kg_ctx *c)
{
	struct kg_event *e;

	if (!c->emit)
		return;
	e = kg_event_begin(c);
	if (e)
		kg_event_submit(e);
}

#endif

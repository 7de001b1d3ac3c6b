/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * hold.h - hold connect/sendto/sendmsg/sendmmsg until a human decides.
 *
 * With kg_seccomp_opts.hold_syscalls the job's filter sends those calls to
 * a listener fd (SECCOMP_RET_USER_NOTIF).  For each one the controller reads
 * the destination from the caller's memory and matches it against the
 * policy's net rules (most specific wins, exactly like the kernel side):
 *
 *   - rule (or net default) is require_approval and no valid grant exists:
 *     a request is created (or merged into an identical pending one) and
 *     the call stays blocked in the kernel, without blocking the controller;
 *   - anything else: SECCOMP_USER_NOTIF_FLAG_CONTINUE at once.
 *
 * kg_hold_tick() answers held calls when their request is decided:
 * approved -> CONTINUE (the approver installed the grant; the cgroup-BPF
 * program then decides on the address the kernel actually copied, so
 * swapping the address in memory after approval gains nothing), denied,
 * expired or stale -> EPERM.  The seccomp layer never allows anything the
 * BPF layer would refuse: CONTINUE only lets the kernel decide.
 *
 * Integration in a poll loop (job.c supervise()):
 *   h = kg_hold_new(jp.notify_fd, doc, q, cg.id, policy_id, trace, loader);
 *   pollfd { kg_hold_fd(h), POLLIN } -> kg_hold_handle(h) when readable;
 *   every tick: kg_hold_tick(h, 0);
 *   on policy push: kg_hold_set_policy(h, new_doc, new_policy_id);
 *   at the end: kg_hold_free(h) (refuses what is still held), close(fd).
 */
#ifndef KGATE_HOLD_H
#define KGATE_HOLD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "approve/approvals.h"
#include "kernel/loader.h"
#include "policy/policy.h"

struct kg_hold;

/* notify_fd stays owned by the caller.  doc must outlive h (or be replaced
 * with kg_hold_set_policy).  loader may be NULL: grants are then read from
 * the pinned kg_grants map.  NULL + errno on failure. */
struct kg_hold *kg_hold_new(int notify_fd, const struct kg_policy_doc *doc,
			    struct kg_approvals *q, uint64_t job_cgid, uint32_t policy_id,
			    const char *trace_id, struct kg_loader *loader);
/* Answer every held call with EPERM (pending approvals resolve to deny). */
void kg_hold_free(struct kg_hold *h);

void kg_hold_set_policy(struct kg_hold *h, const struct kg_policy_doc *doc, uint32_t policy_id);
/* Where to say "held ... approve with ..." (NULL = quiet). */
void kg_hold_set_live(struct kg_hold *h, FILE *live);

int kg_hold_fd(const struct kg_hold *h);

/* The fd is readable: receive one notification and either answer it or
 * hold it.  0 (also when the caller died meanwhile), or -errno when the
 * listener is unusable (then stop polling it). */
int kg_hold_handle(struct kg_hold *h);

/* Answer the held calls whose request was decided (or timed out: expired
 * and audited here).  now_real_ns 0 = now.  Returns calls answered. */
int kg_hold_tick(struct kg_hold *h, uint64_t now_real_ns);

/* Calls currently held. */
size_t kg_hold_count(const struct kg_hold *h);

/* Counters for tests and `kgate status`. */
struct kg_hold_stats {
	uint64_t received, continued, held, released, refused, dropped;
};
void kg_hold_stats(const struct kg_hold *h, struct kg_hold_stats *out);

#endif

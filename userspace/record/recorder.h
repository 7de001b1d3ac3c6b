/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * recorder.h - turn kernel events into audit records.
 *
 * Events carry numbers (policy id, rule number, job id); the recorder turns
 * them into what an auditor reads (policy name/hash, rule id and reason,
 * trace id) using policy snapshots saved under <state dir>/policies/ when a
 * policy is installed.  Any kgate process can therefore record any job's
 * events, including a controller restarted after a crash.
 */
#ifndef KGATE_RECORDER_H
#define KGATE_RECORDER_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/types.h>
#include "record/audit.h"
#include "kgate.h"
#include "kernel/loader.h"
#include "policy/policy.h"

/* Save what is needed to describe decisions made under policy_id.  0 or
 * -errno, said here.  Installs go through kernel/generation.h, which
 * saves it with the generation's maps. */
int kg_snapshot_save(uint32_t policy_id, const struct kg_policy_doc *doc);
void kg_snapshot_remove(uint32_t policy_id);
/* The policy document installed as policy_id, rebuilt from its snapshot
 * (which keeps the canonical JSON); NULL when there is none or its hash
 * does not match.  '~' expands to $HOME: fine for anything but file rules. */
struct kg_policy_doc *kg_snapshot_load_doc(uint32_t policy_id);

/* Starts a record of the controller's own (admission, job start/exit):
 * its real uid and user name as actor.uid and actor.name, its pid as
 * subject.pid, mechanism "controller", and doc's name, version and hash as
 * policy (none when doc is NULL).  The caller sets the rest by name
 * (audit.h) and appends it with kg_rec_append. */
void kg_rec_controller(struct kg_rec *r, const char *type, const struct kg_policy_doc *doc);
/* doc's name, version and hash as the record's policy (nothing when doc is
 * NULL) */
void kg_rec_policy(struct kg_rec *r, const struct kg_policy_doc *doc);

/* Throttle refusals the kernel counted after its last once-a-second report
 * (kg_throttle_state.refused) of the job whose cgroup is cgid: one throttle
 * record per rule, with the count.  Call when the job has ended, before its
 * state is removed (kg_maps_remove_job deletes its buckets).  Records
 * written, or -errno. */
int kg_record_throttle_residue(struct kg_audit *a, struct kg_loader *l, uint64_t cgid,
			       uint64_t job_id);

/* Decisions the kernel folded (kg_fold, bpf/kgate.h) after the last event
 * of their key, for the job whose cgroup is cgid: one decision record per
 * key with the count, "at_job_end", the target of the key's last event;
 * then the job's kg_fold and kg_fold_last entries are deleted (a key whose
 * record could not be queued is kept for a later sweep).  Call when no
 * task of the job can decide any more (its cgroup empty, or its kg_jobs
 * entry removed).  Records written, or -errno (-ENOENT: no kg_fold map). */
int kg_record_fold_residue(struct kg_audit *a, struct kg_loader *l, uint64_t cgid,
			   uint64_t job_id);
/* What the kernel has folded for the running job whose cgroup is cgid and
 * not yet put in any event (kg_fold's pinned map): refusals and audits,
 * recorded with their key's next event or at the job's end (0 and 0 when
 * the map is not pinned). */
void kg_fold_pending(uint64_t cgid, uint64_t *refused, uint64_t *audited);
/* Both of the above, for a job that ended: records written, or -errno. */
int kg_record_job_residues(struct kg_audit *a, struct kg_loader *l, uint64_t cgid,
			   uint64_t job_id);

/* "job-00000000deadbeef" */
void kg_trace_id(uint64_t job_id, char *buf, size_t len);

/*
 * The consumer: the one process (see registry.h) that reads the ring
 * buffer and records every event in the audit trail.  Each record carries
 * its ring position; records reach the trail before the ring's consumer
 * position moves past them, and a new consumer skips what the trail
 * already has, so a crash neither loses nor duplicates events.  Kernel-side
 * losses (ring buffer full) are audited as events_lost records.  A job's
 * live view follows the trail (follow.h): what a user sees is exactly what
 * was recorded.
 */
struct kg_consumer;

/* The ring position after the last event of ring `ring_id` of boot
 * `boot_id` that the trail holds (0 = none): where a new consumer resumes.
 * Map ids start over at every boot, so a record of another boot (or one
 * without a boot id) never counts.  Reads the trail with kg_audit_find_last,
 * so a rotation (a fresh active segment, a gzip'ed predecessor) does not
 * hide it. */
uint64_t kg_recorder_resume_position(uint32_t ring_id, const char *boot_id);
/* This boot's id (/proc/sys/kernel/random/boot_id), "" if unknown. */
void kg_boot_id(char *buf, size_t len);

/* NULL when another process is the consumer right now (errno EWOULDBLOCK)
 * or on error (reported). */
struct kg_consumer *kg_consumer_try(struct kg_loader *l, struct kg_audit *a);
int kg_consumer_epoll_fd(const struct kg_consumer *c);
/* The longest wait before the next kg_consumer_poll (kg_events_timeout_ms):
 * a storm's events come without a wake-up each.  c may be NULL. */
int kg_consumer_timeout_ms(const struct kg_consumer *c, int timeout_ms);
/* Record what is ready (no waiting) and audit new losses. */
int kg_consumer_poll(struct kg_consumer *c);
/* Record everything in the buffer. */
int kg_consumer_drain(struct kg_consumer *c);
void kg_consumer_close(struct kg_consumer *c);

#endif

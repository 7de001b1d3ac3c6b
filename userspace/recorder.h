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
#include "audit.h"
#include "kgate.h"
#include "loader.h"
#include "policy.h"

/* Save what is needed to describe decisions made under policy_id. */
int kg_snapshot_save(uint32_t policy_id, const struct kg_policy_doc *doc);
void kg_snapshot_remove(uint32_t policy_id);

/* "job-00000000deadbeef" */
void kg_trace_id(uint64_t job_id, char *buf, size_t len);

struct kg_recorder;

/* Events go to the audit trail only; a job's live view follows the trail
 * (follow.h), so what a user sees is exactly what was recorded. */
struct kg_recorder *kg_recorder_new(struct kg_audit *audit);
void kg_recorder_free(struct kg_recorder *r);
int kg_recorder_event(void *recorder, const struct kg_event *e);	/* kg_event_fn */

/* Audit kernel losses not yet reported: reads the counters, compares with
 * the amount already reported (kept in the state dir under a lock) and
 * appends an events_lost record for the difference. */
int kg_recorder_report_losses(struct kg_recorder *r, struct kg_loader *l);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * registry.h - the controller state kept in the state dir, shared by every
 * kgate process: running jobs (<state>/jobs/<trace>.json) and the single
 * ring-buffer consumer (<state>/consumer.lock).
 *
 * A BPF ring buffer has one consumer position: two processes consuming at
 * once would deliver records twice or skip them.  So exactly one kgate
 * process consumes at a time: whoever holds consumer.lock (the daemon, or
 * else the first `kgate run`); the others follow the audit trail instead.
 */
#ifndef KGATE_REGISTRY_H
#define KGATE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KG_REGISTRY_MAX_POLICIES 16

struct kg_job_record {
	char trace[32];
	uint64_t job_id;
	uint64_t cgid;
	char cgroup_path[4096];
	uint32_t policy_id;			/* current generation */
	uint32_t old_policy_ids[KG_REGISTRY_MAX_POLICIES]; /* snapshots to clean up */
	size_t nold;
	char policy_name[128];
	char policy_hash[65];
	char policy_path[4096];
	pid_t pid;				/* main process of the job */
	pid_t controller_pid;			/* the kgate run supervising it */
	uint32_t uid;				/* of the kgate run process */
	uint32_t as_uid;			/* the agent's processes run as */
	uint32_t invoker_uid;			/* who ran kgate (the sudo caller) */
	bool full;				/* BPF LSM mode */
	bool governed;				/* kgate govern: a cgroup kgate did not
						 * create, no controller, no main pid */
	uint32_t root_slot;			/* its kg_jobs_root slot (governed) */
	uint64_t started_real_ns;
	char command[512];
};

int kg_registry_save(const struct kg_job_record *r);
int kg_registry_load(const char *trace, struct kg_job_record *r);
void kg_registry_remove(const char *trace);
/* All jobs; caller frees *out. */
int kg_registry_list(struct kg_job_record **out, size_t *n);
/* A job whose controller and main process are both gone. */
bool kg_registry_stale(const struct kg_job_record *r);

/* Decisions recorded for a job so far (by whichever process consumed its
 * events); all zero when none were. */
struct kg_job_tally {
	uint64_t refused, audited, escalations;
};
int kg_registry_tally(const char *trace, struct kg_job_tally *t);

/* Try to become the consumer: an fd >= 0 that holds the lock (close it to
 * let go), or -1 when another process is the consumer. */
int kg_consumer_try_lock(void);
/* The same for any lock file <state dir>/name (reap.lock: one reaper at a
 * time): an fd holding it exclusively, or -1 when someone else does. */
int kg_state_trylock(const char *name);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * maps.h - compile a policy document into the BPF maps, atomically.
 *
 * A policy is written under a fresh policy id (a generation): every rule
 * first, then its kg_policies entry.  A job then switches to it with a
 * single update of its kg_jobs entry, and the old generation is deleted
 * afterwards.  A hook reads the job's policy id once and looks every rule
 * up under it, so it sees all of the old policy or all of the new one.
 */
#ifndef KGATE_MAPS_H
#define KGATE_MAPS_H

#include <stdint.h>
#include "loader.h"
#include "policy.h"

/* Why a rule could not be compiled for the kernel (reported per rule). */
struct kg_compile_note {
	uint32_t rule_num;
	char message[256];
};

struct kg_compile_report {
	size_t file_entries, name_entries, net_entries, unix_entries;
	struct kg_compile_note *notes;	/* rules compiled with a caveat */
	size_t nnotes;
};

/* Write doc into the maps under a new policy id.  Nothing is visible to a
 * job until kg_maps_add_job/kg_maps_switch_job; on error every entry written
 * so far is removed again. */
int kg_maps_install(struct kg_loader *l, const struct kg_policy_doc *doc,
		    uint32_t *policy_id_out, struct kg_compile_report *rep);
void kg_compile_report_free(struct kg_compile_report *rep);

int kg_maps_add_job(struct kg_loader *l, uint64_t cgid, uint64_t job_id,
		    uint32_t policy_id, uint32_t flags);
/* Flip a running job to another policy id; returns the old one. */
int kg_maps_switch_job(struct kg_loader *l, uint64_t cgid, uint32_t new_policy_id,
		       uint32_t *old_policy_id);
int kg_maps_get_job(struct kg_loader *l, uint64_t cgid, struct kg_job *out);
int kg_maps_remove_job(struct kg_loader *l, uint64_t cgid);
/* Delete every entry of a generation (after no job uses it). */
int kg_maps_remove_policy(struct kg_loader *l, uint32_t policy_id);
/* Is any job still running this policy id? */
int kg_maps_policy_in_use(struct kg_loader *l, uint32_t policy_id);

/* The cgroup all jobs live under: LSM hooks dismiss tasks outside it with
 * one O(1) check (see kg_jobs_root in bpf/maps.bpf.h). */
int kg_maps_set_jobs_root(struct kg_loader *l, const char *cgroup_dir);

/* Install or revoke a grant (approvals). */
int kg_maps_put_grant(struct kg_loader *l, const struct kg_grant_key *key,
		      const struct kg_grant *g);
int kg_maps_del_grant(struct kg_loader *l, const struct kg_grant_key *key);

/* Controller liveness for fail-open policies. */
int kg_maps_heartbeat(struct kg_loader *l);

/* The same from a thread of its own, every period_ms, so that nothing the
 * controller waits for (clients, the disk, a long push) can make a
 * fail-open policy stop being enforced.  NULL + errno. */
struct kg_heartbeat;
struct kg_heartbeat *kg_heartbeat_start(struct kg_loader *l, unsigned int period_ms);
void kg_heartbeat_stop(struct kg_heartbeat *h);

/* Sum the per-CPU counters. */
int kg_maps_read_counters(struct kg_loader *l, struct kg_counters *sum);
int kg_maps_read_counters_fd(int counters_fd, struct kg_counters *sum);

#endif

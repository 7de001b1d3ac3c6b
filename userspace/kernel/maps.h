/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * maps.h - the BPF maps as userspace writes them, atomically.
 *
 * A policy is written under a fresh policy id (a generation): every rule
 * first, then its kg_policies entry.  A job then switches to it with a
 * single update of its kg_jobs entry, and the old generation is deleted
 * afterwards.  A hook reads the job's policy id once and looks every rule
 * up under it, so it sees all of the old policy or all of the new one.
 * What is written is compiled first, without BPF (kernel/image.h); a
 * generation with its policy snapshot is installed by kernel/generation.h.
 */
#ifndef KGATE_MAPS_H
#define KGATE_MAPS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "kernel/image.h"
#include "kernel/loader.h"
#include "policy/policy.h"

/* The compile options the loaded programs call for (btrfs_blind: the file
 * hooks were loaded without btrfs's types). */
void kg_maps_image_opts(struct kg_loader *l, struct kg_image_opts *opts);
/* Write img into the maps under a new policy id, the kg_policies entry
 * last (with a fresh serial).  Nothing is visible to a job until
 * kg_maps_add_job/kg_maps_switch_job; on error every entry written so far
 * is removed again (after a grace period).  0 or -errno, said here. */
int kg_maps_write_image(struct kg_loader *l, const struct kg_image *img, uint32_t *policy_id_out);
/* kg_image_compile (with kg_maps_image_opts) then kg_maps_write_image;
 * rep (may be NULL) gets the counts and notes.  0 or -errno, said once. */
int kg_maps_install(struct kg_loader *l, const struct kg_policy_doc *doc,
		    uint32_t *policy_id_out, struct kg_compile_report *rep);

int kg_maps_add_job(struct kg_loader *l, uint64_t cgid, uint64_t job_id,
		    uint32_t policy_id, uint32_t flags);
/* Flip a running job to another policy id; returns the old one. */
int kg_maps_switch_job(struct kg_loader *l, uint64_t cgid, uint32_t new_policy_id,
		       uint32_t *old_policy_id);
int kg_maps_get_job(struct kg_loader *l, uint64_t cgid, struct kg_job *out);
int kg_maps_remove_job(struct kg_loader *l, uint64_t cgid);
/* Wait for an RCU grace period: every BPF program running now has
 * returned when this does (0, or -errno after a long sleep instead). */
int kg_maps_wait_readers(void);
/* The same grace period run by a thread of its own, so that a caller can
 * go on with other work while it passes (a job's exit: the wait is most of
 * it).  Start it once nothing can newly read what it protects; finish it
 * before deleting that.  A start that could not make its thread leaves the
 * wait to finish, which then waits in the caller. */
struct kg_readers_wait {
	pthread_t thread;
	bool started;
};
void kg_maps_wait_readers_start(struct kg_readers_wait *w);
void kg_maps_wait_readers_finish(struct kg_readers_wait *w);
/* Delete every entry of a generation (after no job uses it); first waits
 * for the hooks that may still be reading it (kg_maps_wait_readers). */
int kg_maps_remove_policy(struct kg_loader *l, uint32_t policy_id);
/* The same without the wait: only after a grace period that began once no
 * job ran the generation any more (kg_maps_wait_readers*). */
int kg_maps_delete_policy(struct kg_loader *l, uint32_t policy_id);
/* Is any job still running this policy id? */
int kg_maps_policy_in_use(struct kg_loader *l, uint32_t policy_id);

/* The cgroup all jobs live under: LSM hooks dismiss tasks outside it with
 * one O(1) check (see kg_jobs_root in bpf/maps.bpf.h). */
int kg_maps_set_jobs_root(struct kg_loader *l, const char *cgroup_dir);
/* A cgroup governed in place (`kgate govern`) gets a slot of its own
 * (1 .. KG_MAX_ROOTS - 1): cgroup_fd >= 0 sets it, < 0 empties it.  used =
 * the highest slot in use + 1 (the hooks check that many). 0 / -errno. */
int kg_maps_set_root_slot(struct kg_loader *l, uint32_t slot, int cgroup_fd);
int kg_maps_set_roots_used(struct kg_loader *l, uint32_t used);

/* Install a grant (approvals). */
int kg_maps_put_grant(struct kg_loader *l, const struct kg_grant_key *key,
		      const struct kg_grant *g);
/* Delete the grants nobody can use again: spent, expired, of a job that is
 * gone or runs another policy generation now; with only_cgid != 0, every
 * grant of that job (it ended).  The kernel deletes a one-shot grant when
 * it takes its last use; this catches the rest, so approvals never fill
 * kg_grants.  Number deleted, or -errno.  The _fd form works on the pinned
 * maps (jobs_fd < 0: job checks skipped). */
int kg_maps_sweep_grants(struct kg_loader *l, uint64_t only_cgid);
int kg_grants_sweep_fd(int grants_fd, int jobs_fd, uint64_t only_cgid);
/* kg_maps_put_grant on the pinned maps (sweeps when the map is full). */
int kg_grants_put_fd(int grants_fd, int jobs_fd, const struct kg_grant_key *key,
		     const struct kg_grant *g);

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

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * losses.h - what the ring buffer could not take, per job and per kind.
 *
 * The kernel counts each lost decision once, either for its job
 * (kg_job_lost) or, when that map is full, as unattributed
 * (kg_counters.lost_unattributed); both only ever grow.  What the trail
 * already accounts for is kept beside them: per job in kg_lost_seen, the
 * unattributed part in <state>/lost.unattributed.  A loss record is the
 * difference: its total, by kind and by job, all for the same interval, so
 * by_kind and by_job each add up to the record's lost count.
 */
#ifndef KGATE_LOSSES_H
#define KGATE_LOSSES_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <linux/types.h>
#include "kgate.h"
#include "kernel/loader.h"

struct kg_loss_job {
	uint64_t cgid;
	struct kg_job_lost now;		/* the kernel's count when read */
	uint64_t delta;			/* not yet in the trail, all kinds */
};

struct kg_loss_delta {
	uint64_t lost;			/* not yet in the trail */
	uint64_t by_kind[KG_EV_MAX];
	uint64_t unattributed;		/* part of lost no job was counted for */
	uint64_t unattr_now[KG_EV_MAX];	/* the kernel's unattributed count when read */
	struct kg_loss_job *jobs;	/* jobs with delta > 0 */
	size_t njobs;
	int lock_fd;			/* lost.unattributed, locked while held */
};

/* Read what is not yet in the trail (locks the state file; release with
 * kg_losses_done).  0 or -errno. */
int kg_losses_read(struct kg_loader *l, struct kg_loss_delta *d);
/* {"by_kind":{...},"by_job":[{"trace_id","cgroup_id","lost"}...]} parts. */
json_t *kg_losses_by_kind(const struct kg_loss_delta *d);
json_t *kg_losses_by_job(const struct kg_loss_delta *d);
/* The record accounting d is committed: remember it.  0 or -errno. */
int kg_losses_mark(struct kg_loader *l, struct kg_loss_delta *d);
/* Unlock and free (d may be kept after kg_losses_read failed). */
void kg_losses_done(struct kg_loss_delta *d);
/* Forget jobs that are gone (not in kg_jobs) and fully accounted. */
void kg_losses_sweep(struct kg_loader *l);

#endif

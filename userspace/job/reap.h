/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * reap.h - finish what a dead `kgate run` would have done for its job.
 *
 * A job whose controller died keeps being enforced by the pinned programs
 * (fail closed).  Once its cgroup is empty, whichever kgate process comes
 * next (the daemon on every tick, or any later `kgate run`) removes its
 * cgroup, its links, its kg_jobs entry and policy generations, records its
 * end in the audit trail and drops it from the registry, so `kgate status`
 * does not call it governed forever.  One reaper at a time (a lock in the
 * state dir).
 */
#ifndef KGATE_REAP_H
#define KGATE_REAP_H

#include <stdbool.h>
#include "record/audit.h"
#include "kernel/loader.h"
#include "job/registry.h"

/* Is the `kgate run` that registered r still alive?  A pid that exists but
 * started after the job did is a reused pid, not the controller. */
bool kg_reap_controller_alive(const struct kg_job_record *r);

/* Clean up every ended job whose controller is gone; `who` names the
 * reaper in the job_exit record ("the daemon", "a later kgate run").
 * Returns how many jobs were cleaned up (0 also when another process is
 * reaping right now). */
int kg_reap_orphans(struct kg_loader *l, struct kg_audit *a, const char *who);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * follow.h - print one job's decisions by following the audit trail.
 *
 * Used by a `kgate run` that is not the ring-buffer consumer (the daemon or
 * another run is): the consumer writes every event to the trail, and this
 * follower shows the lines of our trace as they are committed.
 */
#ifndef KGATE_FOLLOW_H
#define KGATE_FOLLOW_H

#include <jansson.h>
#include <stdio.h>

struct kg_follow;

/* Start at the current end of the trail in dir (NULL = kg_audit_dir()). */
struct kg_follow *kg_follow_open(const char *dir, const char *trace, FILE *out);
/* Print the new decision records of the trace; returns how many. */
int kg_follow_poll(struct kg_follow *f);
/* Records seen so far: refused and audit-only decisions. */
void kg_follow_counts(const struct kg_follow *f, unsigned long *refused, unsigned long *audited);
void kg_follow_close(struct kg_follow *f);


#endif

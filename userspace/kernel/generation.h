/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel/generation.h - a policy installed as a generation, both halves or
 * neither: its image (kernel/image.h) written into the maps under a fresh
 * policy id (kernel/maps.h), and its snapshot saved (record/recorder.h:
 * what the recorder, a job's resolver and hold, and the daemon name a
 * generation's rules by).  A failure after the maps were written removes
 * them again, so a caller never holds an id without its snapshot, nor
 * leaves a snapshot or entries behind.  `kgate run`, `kgate govern` and
 * `kgate policy push` install through here.
 *
 * The generation is not yet used by any job: kg_maps_add_job or
 * kg_maps_switch_job makes it live; kg_generation_discard undoes an
 * install that no job came to use (a switch that failed).  Generations
 * jobs used are released with the job (kernel/push.h).
 */
#ifndef KGATE_KERNEL_GENERATION_H
#define KGATE_KERNEL_GENERATION_H

#include <stdint.h>
#include "kernel/maps.h"
#include "policy/policy.h"

struct kg_loader;

/* Where an install failed: the caller may answer each differently (a push
 * says a policy the kernel cannot take apart from a disk that fails). */
enum kg_generation_step {
	KG_GEN_DONE = 0,
	KG_GEN_COMPILE,		/* the document cannot become map entries */
	KG_GEN_MAPS,		/* the maps did not take them (full, not loaded) */
	KG_GEN_SNAPSHOT,	/* the snapshot could not be written */
};

struct kg_generation {
	uint32_t policy_id;			/* 0 unless installed */
	enum kg_generation_step failed;		/* KG_GEN_DONE once installed */
	struct kg_compile_report report;	/* entries written, notes (maps.h) */
};

/* Install doc as a new generation into gen (zeroed first).  0, or -errno
 * with the reason said once where it was found, gen->failed naming the
 * step and nothing left behind.  kg_generation_free releases the report. */
int kg_generation_install(struct kg_loader *l, const struct kg_policy_doc *doc,
			  struct kg_generation *gen);
void kg_generation_free(struct kg_generation *gen);

/* Remove a generation no job ran: its snapshot, and its entries after a
 * grace period (kg_maps_remove_policy). */
void kg_generation_discard(struct kg_loader *l, uint32_t policy_id);

#endif

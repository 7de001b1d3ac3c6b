// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* generation.c - a policy installed as a generation: maps and snapshot,
 * both or neither (see generation.h). */
#include <string.h>

#include "kernel/generation.h"
#include "kernel/image.h"
#include "kernel/maps.h"
#include "record/recorder.h"

int kg_generation_install(struct kg_loader *l, const struct kg_policy_doc *doc,
			  struct kg_generation *gen)
{
	struct kg_image_opts opts;
	struct kg_image img;
	uint32_t id;
	int err;

	memset(gen, 0, sizeof(*gen));
	kg_maps_image_opts(l, &opts);
	err = kg_image_compile(doc, &opts, &img);
	if (err) {
		gen->failed = KG_GEN_COMPILE;
		return err;
	}
	err = kg_maps_write_image(l, &img, &id);
	if (!err)
		kg_image_take_report(&img, &gen->report);
	kg_image_free(&img);
	if (err) {
		gen->failed = KG_GEN_MAPS;
		return err;
	}
	err = kg_snapshot_save(id, doc);
	if (err) {
		/* no job has seen the id: the maps go as if never written */
		kg_generation_discard(l, id);
		kg_generation_free(gen);
		gen->failed = KG_GEN_SNAPSHOT;
		return err;
	}
	gen->policy_id = id;
	return 0;
}

void kg_generation_free(struct kg_generation *gen)
{
	kg_compile_report_free(&gen->report);
}

void kg_generation_discard(struct kg_loader *l, uint32_t policy_id)
{
	kg_maps_remove_policy(l, policy_id);
	kg_snapshot_remove(policy_id);
}

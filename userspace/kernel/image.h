/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel/image.h - a policy document compiled into what the kernel reads:
 * the entries of every policy map with their keys and values, the
 * kg_policies entry, and notes on what cannot be enforced as written.
 *
 * Compiling is a function of the document and of the files it names (file
 * rules are keyed by the identities of the objects as they are now): it
 * makes no BPF call and changes nothing, so it runs and is tested without
 * BPF (tests/test_image.c).  kg_maps_write_image (maps.h) writes an image
 * into the maps under a fresh policy id; the generation module
 * (generation.h) does that together with the policy's snapshot.
 *
 * Keys are as the maps take them except for the policy id, which is 0
 * until an install stamps the generation's own; the kg_policies entry's
 * serial likewise (a fresh one per install: it names the generation in
 * the file hooks' decision cache).  Rule numbers are index + 1 in the
 * document's runtime list (kg_rule.num; bpf/kgate.h says so).
 */
#ifndef KGATE_KERNEL_IMAGE_H
#define KGATE_KERNEL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "policy/policy.h"

/* Why a rule could not be compiled as written (it compiled with a caveat). */
struct kg_compile_note {
	uint32_t rule_num;
	char message[256];
};

/* kg_file_rules: the identity (device, inode) of an object -> its rules */
struct kg_image_file {
	struct kg_file_key key;
	struct kg_file_rule val;
};

/* kg_name_rules: a path that does not exist yet, keyed by its deepest
 * existing ancestor and the hash of the first missing component */
struct kg_image_name {
	struct kg_name_key key;
	struct kg_rule_ent val;
};

/* kg_net_rules: a prefix -> its entries, then those of every wider prefix */
struct kg_image_net {
	struct kg_net_key key;
	struct kg_net_rule val;
};

/* kg_unix_abstract: the hash of an abstract socket's name -> its rule */
struct kg_image_unix {
	struct kg_unix_key key;
	struct kg_rule_ent val;
};

/* kg_rule_params: a throttled rule -> its rate and burst */
struct kg_image_param {
	struct kg_rule_key key;
	struct kg_rule_params val;
};

/* Each map's entries in the order they are written (a key twice: the last
 * wins, as in the map).  The cap_* are the arrays' allocated sizes. */
struct kg_image {
	struct kg_image_file *file;
	size_t nfile, cap_file;
	struct kg_image_name *name;
	size_t nname, cap_name;
	struct kg_image_net *net;
	size_t nnet, cap_net;
	struct kg_image_unix *unix_abstract;
	size_t nunix, cap_unix;
	struct kg_image_param *param;
	size_t nparam, cap_param;
	struct kg_policy policy;	/* the kg_policies entry, written last */
	size_t name_rules;		/* rules compiled to name entries */
	struct kg_compile_note *notes;	/* rules compiled with a caveat */
	size_t nnotes;
};

struct kg_image_opts {
	/* The loaded file hooks cannot tell btrfs subvolumes apart (loaded
	 * without btrfs's type information): a file rule on btrfs is refused
	 * (-EOPNOTSUPP) rather than keyed by an identity they never see. */
	bool btrfs_blind;
};

/* Compile doc into img (zeroed first).  opts NULL = defaults.  0, or
 * -errno with the reason logged once and img empty: -E2BIG (more rules on
 * one file than KG_FILE_ENTS, or on one prefix, with those of the wider
 * prefixes, than KG_NET_ENTS), -EOPNOTSUPP (btrfs_blind and a file rule
 * on btrfs), -ENAMETOOLONG, -ENOMEM, or the errno of resolving a path. */
int kg_image_compile(const struct kg_policy_doc *doc, const struct kg_image_opts *opts,
		     struct kg_image *img);
void kg_image_free(struct kg_image *img);

/* What an install wrote, said to the user: entries per map, and the rules
 * compiled with a caveat. */
struct kg_compile_report {
	size_t file_entries, name_entries, net_entries, unix_entries;
	struct kg_compile_note *notes;
	size_t nnotes;
};
/* Counts from img; its notes move to rep (img keeps none). */
void kg_image_take_report(struct kg_image *img, struct kg_compile_report *rep);
void kg_compile_report_free(struct kg_compile_report *rep);

#endif

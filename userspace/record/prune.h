/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/prune.h - retention: removing the oldest closed segments of the
 * trail (`kgate audit prune`) and the sealed anchor that keeps what remains
 * verifiable (docs/audit-format.md, "Retention").
 *
 * The anchor, <dir>/audit.anchor, is one line
 *   {"first_seq":N,"prev":"<hex>","mac":"<hex>"}
 * with mac = HMAC-SHA256(key, "kgate-audit-anchor:" N ":" prev): the trail
 * starts at seq N, whose prev must be prev.  Only a prune writes it (under
 * the trail's lock); verify starts the chain there instead of at seq 1, so
 * segments removed by hand still break the chain, and an edited anchor
 * fails its MAC.
 */
#ifndef KGATE_RECORD_PRUNE_H
#define KGATE_RECORD_PRUNE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define ANCHOR_NAME	"audit.anchor"
#define ANCHOR_TAG	"kgate-audit-anchor:"

struct kg_sealer;
struct kg_head_info;

/* 0 = a valid anchor in *a (seq = first_seq, hash = prev), -ENOENT = none,
 * other -errno = present but corrupt or not sealed by this key */
int kg_trail_anchor_read(const char *dir, struct kg_sealer *s, struct kg_head_info *a);

struct kg_audit_prune_opts {
	bool by_days, by_bytes;
	uint64_t keep_days;		/* remove segments closed more than this ago */
	uint64_t keep_bytes;		/* remove the oldest until the trail fits */
	const char *position_file;	/* an exporter's position: keep what it has not shipped */
	time_t now;			/* 0 = time(NULL) */
};

struct kg_audit_prune_result {
	unsigned segments;		/* removed */
	uint64_t bytes;			/* removed */
	uint64_t first_seq;		/* the trail's first seq after the prune */
	uint64_t records;		/* records removed by this prune */
};

/* Removes the oldest compressed closed segments that the bounds allow
 * (never the active one, never one holding a record past the position
 * file's), after verifying the whole trail; writes the anchor first, then
 * a "controller" record with op "trail_pruned" saying what was removed.
 * 0 (res filled; res->segments 0 = nothing to remove), or -errno, said
 * once: -EBADMSG the trail does not verify, -EINVAL a bad position file,
 * others from the files.  Nothing is removed on error. */
int kg_audit_prune(const char *dir, const struct kg_audit_prune_opts *o,
		   struct kg_audit_prune_result *res);

/* "N", "NK", "NM", "NG", "NT" (also KiB...; powers of 1024) into bytes.
 * 0 / -EINVAL. */
int kg_audit_parse_size(const char *s, uint64_t *out);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/tail.h - follow the audit trail as records are committed.
 *
 * A position is the sequence number of the last record delivered, with
 * (optionally) a prefix of that record's hash: "1234" or "1234:9f2c...".
 * Records come in seq order, across rotation: the active segment is read
 * through an open descriptor, so the lines committed to it just before it
 * was renamed are still read; closed segments (plain or gzip) are read
 * when a resume position lies in them.  Only complete lines are delivered
 * (a line being written is read again later).  The reader never takes the
 * trail's lock: the writer (and enforcement behind it) never waits for a
 * follower.
 */
#ifndef KGATE_RECORD_TAIL_H
#define KGATE_RECORD_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kg_tail;

#define KG_TAIL_HASH_HEX 64

struct kg_tail_pos {
	bool at_end;			/* start after the newest committed record */
	uint64_t seq;			/* else: deliver records with seq > seq */
	char hash[KG_TAIL_HASH_HEX + 1];/* optional: record seq must have a hash
					 * starting with this (else -ESTALE) */
};

/* "end", "start" (= 0), "N" or "N:HEX" (4..64 lowercase hex). 0 / -EINVAL. */
int kg_tail_parse_pos(const char *s, struct kg_tail_pos *out);

/* dir NULL = kg_audit_dir(). NULL + errno. */
struct kg_tail *kg_tail_open(const char *dir, const struct kg_tail_pos *from);
void kg_tail_close(struct kg_tail *t);

/* Called for each record (line without its newline, seq parsed from it);
 * return 0 to take it (the position moves past it), non-zero to stop
 * before it (it is delivered again by the next poll). */
typedef int (*kg_tail_fn)(const char *line, size_t len, uint64_t seq, void *ctx);

/* Delivers what was committed since the last call. Returns the number of
 * records taken, or -errno: -ESTALE when the record at the resume position
 * has another hash (the position is not from this trail). */
int kg_tail_poll(struct kg_tail *t, kg_tail_fn fn, void *ctx);
/* Waits (at most timeout_ms) until the trail's directory changes.  The
 * first call only starts watching it and returns at once (poll again,
 * then wait): a tail that is only polled holds no inotify instance. */
void kg_tail_wait(struct kg_tail *t, int timeout_ms);

/* The position after the last record taken: "seq:hash" (hash may be
 * empty when nothing was taken and the start had none); buf >= 96. */
void kg_tail_position(const struct kg_tail *t, char *buf, size_t size);
uint64_t kg_tail_seq(const struct kg_tail *t);
/* Sequence numbers found missing between records taken (a trail with
 * holes: `kgate audit verify` says why); each hole is also warned about. */
uint64_t kg_tail_missing(const struct kg_tail *t);
/* Lines skipped because they are not records (too long, no seq). */
uint64_t kg_tail_bad(const struct kg_tail *t);

/* Helpers for sealed lines: the seq member (0 when absent) and the hash
 * (the last member, 64 hex; NULL when the line does not end with one). */
uint64_t kg_tail_line_seq(const char *line, size_t len);
const char *kg_tail_line_hash(const char *line, size_t len);

#endif

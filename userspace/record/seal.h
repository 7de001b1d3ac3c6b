/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/seal.h - the seal that travels with exported records.
 *
 * An exported batch is a list of sealed record lines plus an envelope:
 * first/last seq, the first record's prev and the last record's hash, the
 * number of records, whether they are contiguous (no filter), a digest of
 * their hashes, the trail's sealed head when the batch was made, and a
 * MAC over all of it under the trail's key (docs/audit-format.md,
 * "Sealed batches").  Verification needs the key: each record's own seal
 * is recomputed, the envelope's MAC, the head's MAC; given the trail's
 * directory, the batch is also checked against the trail itself.
 */
#ifndef KGATE_RECORD_SEAL_H
#define KGATE_RECORD_SEAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kg_seal;

/* key_path NULL = <dir>/audit.key; dir NULL = kg_audit_dir(). The key is
 * checked as the trail's writer and verifier check it (kg_trail_key_load):
 * NULL + errno when it cannot be read, is readable or writable by
 * group/other or owned by another user than root or us (EPERM), is not a
 * regular file of 32 bytes (EINVAL), or is a symbolic link (ELOOP). */
struct kg_seal *kg_seal_new(const char *dir, const char *key_path);
void kg_seal_free(struct kg_seal *s);
/* Starts a batch; contiguous = every record of a range (no filter). */
void kg_seal_begin(struct kg_seal *s, bool contiguous);
/* Adds one sealed line (no newline). 0 / -EINVAL (not a sealed record). */
int kg_seal_add(struct kg_seal *s, const char *line, size_t len);
/* The envelope of the records added since kg_seal_begin (reads the head
 * under the trail's lock). New reference; NULL + errno. */
json_t *kg_seal_envelope(struct kg_seal *s);

struct kg_seal_check {
	bool ok;
	uint64_t records;
	uint64_t bad_seq;	/* the record that failed, when one did */
	char reason[256];
};

/* Verifies lines[0..n) against env with the key of s; dir, when not NULL,
 * is the trail to check the batch against (the record at last_seq must
 * have last_hash; the trail's head must not be behind the batch's).
 * 0 = the check ran (see res->ok), -errno = it could not. */
int kg_seal_verify(struct kg_seal *s, json_t *env, char *const *lines, const size_t *lens,
		   size_t n, const char *dir, struct kg_seal_check *res);

/* The same, streamed (memory does not grow with the batch): begin with
 * the envelope (borrowed until end), then each record line in order, then
 * end.  A failure fills res (later lines are ignored) and is reported in
 * the order kg_seal_verify reports it.  Each: 0 / -errno (could not run). */
int kg_seal_verify_begin(struct kg_seal *s, json_t *env, struct kg_seal_check *res);
int kg_seal_verify_line(struct kg_seal *s, const char *line, size_t len,
			struct kg_seal_check *res);
int kg_seal_verify_end(struct kg_seal *s, const char *dir, struct kg_seal_check *res);

#endif

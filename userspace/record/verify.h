/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/verify.h - checking the trail's chain (`kgate audit verify`):
 * every record's seal, its seq and prev links, the sealed head, and a key
 * found without its trail.  Streams; never loads the trail.  Included by
 * audit.h.
 */
#ifndef KGATE_RECORD_VERIFY_H
#define KGATE_RECORD_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

struct kg_audit_verify_result {
	bool ok;
	uint64_t records, segments;
	uint64_t first_seq, last_seq;
	uint64_t head_seq;		/* 0 when no head was checked */
	uint64_t pruned;		/* records before the sealed anchor (a prune) */
	uint64_t bad_seq;		/* first bad sequence number when !ok */
	char bad_file[512];		/* file (and line, when known) where it broke */
	unsigned long bad_line;
	char reason[256];
};

/* Verifies the trail in dir (NULL = kg_audit_dir()); key_path NULL =
 * <dir>/audit.key. Returns 0 when the check ran (see res->ok), -errno when
 * it could not run (no key, unreadable dir). */
int kg_audit_verify_dir(const char *dir, const char *key_path,
			struct kg_audit_verify_result *res);
/* Verifies the given segment files, in the given order, as one chain
 * (no head check: a list of files is not necessarily the whole trail). */
int kg_audit_verify_files(char *const *files, int nfiles, const char *key_path,
			  struct kg_audit_verify_result *res);

#endif

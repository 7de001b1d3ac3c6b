/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/body.h - a record's JSON body, written straight into a buffer
 * (private to the trail's writer).
 *
 * Owns: the record types the trail accepts, the order and spelling of a
 * record's members (everything but seq, prev and hash, which the writer
 * adds when it seals), and the growing buffer they are written into.
 */
#ifndef KGATE_RECORD_BODY_H
#define KGATE_RECORD_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "record/audit.h"

/* a growing byte buffer; the first allocation failure sticks in err */
struct kg_jbuf {
	char *p;
	size_t len, cap;
	int err;
};

bool kg_jb_reserve(struct kg_jbuf *b, size_t more);
void kg_jb_free(struct kg_jbuf *b);
/* decimal digits of v into out (no NUL); returns their count */
size_t kg_fmt_u64(char *out, uint64_t v);

/* The formatted seconds of the last record ("YYYY-MM-DDTHH:MM:SS."): only
 * the nanoseconds change between records of the same second. */
struct kg_time_cache {
	uint64_t sec;
	bool valid;
	char prefix[20];
};

/* Appends the record's members ("type":…,…,"extra":{…}, no braces) to b.
 * 0, -EINVAL (unknown type, extra not an object), -E2BIG, -ENOMEM. */
int kg_audit_build_members(struct kg_jbuf *b, struct kg_time_cache *tc,
			   const struct kg_audit_rec *r);

#endif

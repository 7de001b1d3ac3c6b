/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy/locate.h - where a value is in the policy's text (private to
 * userspace/policy/).
 *
 * Owns: walking the source along a JSON path to the offset of a value, the
 * offsets of a top-level array's elements, and turning offsets into 1-based
 * lines and character columns.  jansson keeps no positions for values, so a
 * semantic error is located by walking the (already accepted) text along the
 * path of the offending value; the walker never interprets values, it only
 * skips over them.
 */
#ifndef KGATE_POLICY_LOCATE_H
#define KGATE_POLICY_LOCATE_H

#include <stddef.h>

struct kgp_comp {		/* one step of a JSON path */
	const char *key;	/* object member, or NULL for an array index */
	size_t index;
};

/* Offset of the value at `path`, or of the deepest part of it that exists. */
size_t kgp_locate(const char *s, size_t n, const struct kgp_comp *path, int depth);

/* 1-based line and character (not byte) column of an offset */
void kgp_offset_to_linecol(const char *s, size_t n, size_t off, int *line, int *col);

/* Incremental variant for increasing offsets (rule positions). */
struct kgp_linecol_cursor {
	size_t off;
	int line, col;
};

void kgp_cursor_advance(const char *s, size_t n, struct kgp_linecol_cursor *cur, size_t off);

/* Offsets of the elements of the top-level array `key`, in one pass. */
void kgp_rule_positions(const char *s, size_t n, const char *key, size_t count,
			size_t *offs);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/segments.h - the trail's files on disk (private to the trail's
 * modules).
 *
 * Owns: paths in the audit dir, the closed segments (audit-<firstseq>.jsonl,
 * .jsonl.gz once compressed) and their order, compressing a closed segment,
 * and the line reader every reader of the trail uses (plain or gzip, lines
 * of at most KG_AUDIT_MAX_LINE bytes).  kg_audit_list_segments (query.h)
 * is the public listing built on it.
 */
#ifndef KGATE_RECORD_SEGMENTS_H
#define KGATE_RECORD_SEGMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* <dir>/<name> into buf. 0 / -ENAMETOOLONG. */
int kg_trail_path(char *buf, size_t size, const char *dir, const char *name);
void kg_trail_fsync_dir(const char *dir);

/* line reader over plain or gzip files (gzread reads both) */
struct kg_line_reader {
	gzFile gz;
	const char *path;
	char *rbuf, *line;
	size_t rpos, rlen, len;
	bool eof, terminated;
	unsigned long lineno;
};

int kg_lr_open(struct kg_line_reader *lr, const char *path);
void kg_lr_close(struct kg_line_reader *lr);
/* 1 = a line in lr->line/len (NUL-terminated, newline stripped; see
 * lr->terminated), 0 = end, -E2BIG = an over-long line (skipped),
 * -EIO = read error (e.g. corrupt gzip). */
int kg_lr_next(struct kg_line_reader *lr);

/* a closed segment */
struct kg_seg {
	uint64_t first;
	bool gz;
	char *path;
};

void kg_trail_segs_free(struct kg_seg *s, int n);
/* closed segments of dir sorted by first seq; duplicates (a plain copy
 * left next to its finished .gz by an interrupted rotation) dropped */
int kg_trail_list_closed(const char *dir, struct kg_seg **out, int *n_out);
/* compresses plain into <plain>.gz (via a locked .tmp, fsync'ed), then
 * unlinks plain; 0 also when another compressor has it in hand */
int kg_trail_compress(const char *plain);

#endif

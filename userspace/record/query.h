/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/query.h - reading the trail: its segments in order, records
 * matching a filter (`kgate audit query|timeline`), and the newest record
 * a resuming consumer looks for.  Streams; never loads the trail.
 * Included by audit.h.
 */
#ifndef KGATE_RECORD_QUERY_H
#define KGATE_RECORD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct kg_audit_filter {
	const char *trace_id, *decision, *rule_id, *policy_hash, *type;
	const char *target;	/* the record's target, or the host name a connect was
				 * decided through (extra.name) */
	uint64_t since_ns, until_ns;	/* 0 = unbounded; inclusive */
};

struct kg_audit_qstats {
	uint64_t lines, matched, bad;
};

/* Called for each matching record with the parsed object (borrowed) and the
 * raw line; return non-zero to stop. */
typedef int (*kg_audit_visit_fn)(json_t *rec, const char *line, size_t len,
				 void *ctx);
/* Streams every segment of dir in order; bad lines are reported with
 * file:line via kg_warn (unless quiet) and counted. 0 / -errno. */
int kg_audit_query(const char *dir, const struct kg_audit_filter *f,
		   kg_audit_visit_fn fn, void *ctx, bool quiet,
		   struct kg_audit_qstats *st);
/* Same over explicit files. */
int kg_audit_query_files(char *const *files, int nfiles,
			 const struct kg_audit_filter *f, kg_audit_visit_fn fn,
			 void *ctx, bool quiet, struct kg_audit_qstats *st);

/* The newest record for which match() is true: the active segment is read
 * backwards from its end, then the closed segments (gzip or plain) from the
 * newest, each streamed in full, at most max_segments segments in all.
 * needle, when not NULL, is a substring every candidate line contains (a
 * cheap filter before parsing).  *out is a new reference, NULL when nothing
 * matched.  For consumers that resume where a predecessor stopped.
 * 0 / -errno. */
typedef bool (*kg_audit_match_fn)(json_t *rec, void *ctx);
int kg_audit_find_last(const char *dir, const char *needle, kg_audit_match_fn match, void *ctx,
		       unsigned int max_segments, json_t **out);

/* Segment listing helper: ordered paths (closed segments by first seq, then
 * the active one). Caller frees with kg_audit_free_list. 0 / -errno. */
int kg_audit_list_segments(const char *dir, char ***paths_out, int *n_out);
void kg_audit_free_list(char **paths, int n);

#endif

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/query.c - reading the trail: listing, filtered queries, the newest match (query.h). */
#include "record/audit.h"
#include "common.h"
#include "record/chain.h"
#include "record/segments.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int kg_audit_list_segments(const char *dir, char ***paths_out, int *n_out)
{
	struct kg_seg *s = NULL;
	char **paths;
	int n = 0, i, err;
	char active[PATH_MAX + 32];
	struct stat st;
	bool have_active;

	if (!dir)
		dir = kg_audit_dir();
	err = kg_trail_list_closed(dir, &s, &n);
	if (err)
		return err;
	if (kg_trail_path(active, sizeof(active), dir, ACTIVE_NAME)) {
		kg_trail_segs_free(s, n);
		return -ENAMETOOLONG;
	}
	have_active = !stat(active, &st);
	paths = calloc(n + 2, sizeof(*paths));
	if (!paths) {
		kg_trail_segs_free(s, n);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		paths[i] = s[i].path;
	free(s);
	if (have_active && !(paths[n] = strdup(active))) {
		kg_audit_free_list(paths, n);
		return -ENOMEM;
	}
	*paths_out = paths;
	*n_out = n + (have_active ? 1 : 0);
	return 0;
}

void kg_audit_free_list(char **paths, int n)
{
	int i;

	if (!paths)
		return;
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* ------------------------------------------------------------------ */
/* queries */

struct needle {
	char *s;
	size_t len;
};

struct query {
	const struct kg_audit_filter *f;
	char *trace, *decision, *rule, *type, *phash, *target;	/* escaped forms */
	struct needle nd[6];
	int nneedles;
	kg_audit_visit_fn fn;
	void *ctx;
	bool quiet;
	struct kg_audit_qstats *st;
};

/* `"key":"value` (closed with a quote unless prefix) as it appears in a line */
static int add_needle(struct query *q, const char *key, const char *esc, bool prefix)
{
	json_t *js = json_string(esc);
	char *enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
	struct needle *nd = &q->nd[q->nneedles];
	int n;

	json_decref(js);
	if (!enc)
		return -ENOMEM;
	if (prefix)
		enc[strlen(enc) - 1] = '\0';
	n = asprintf(&nd->s, "\"%s\":%s", key, enc);
	free(enc);
	if (n < 0)
		return -ENOMEM;
	nd->len = (size_t)n;
	q->nneedles++;
	return 0;
}

static int query_setup_one(struct query *q, const char *val, const char *key,
			   bool prefix, char **esc_out)
{
	if (!val)
		return 0;
	*esc_out = kg_audit_escape(val, strlen(val));
	if (!*esc_out)
		return -ENOMEM;
	return add_needle(q, key, *esc_out, prefix);
}

static void query_free(struct query *q)
{
	int i;

	for (i = 0; i < q->nneedles; i++)
		free(q->nd[i].s);
	free(q->trace);
	free(q->decision);
	free(q->rule);
	free(q->type);
	free(q->phash);
	free(q->target);
}

static int query_setup(struct query *q, const struct kg_audit_filter *f)
{
	static const struct kg_audit_filter none;
	int err;

	q->f = f ? f : &none;
	f = q->f;
	err = query_setup_one(q, f->trace_id, "trace", false, &q->trace);
	if (!err)
		err = query_setup_one(q, f->decision, "decision", false, &q->decision);
	if (!err)
		err = query_setup_one(q, f->rule_id, "rule", false, &q->rule);
	if (!err)
		err = query_setup_one(q, f->type, "type", false, &q->type);
	if (!err)
		err = query_setup_one(q, f->policy_hash, "hash", true, &q->phash);
	if (!err && f->target) {
		/* "target":"T" or "name":"T": the value, quoted, is in the line */
		json_t *js = NULL;
		char *enc = NULL;

		q->target = kg_audit_escape(f->target, strlen(f->target));
		js = q->target ? json_string(q->target) : NULL;
		enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
		if (!enc)
			return -ENOMEM;
		q->nd[q->nneedles].s = enc;
		q->nd[q->nneedles++].len = strlen(enc);
	}
	return err;
}

static bool time_in_range(const struct kg_audit_filter *f, uint64_t ns)
{
	return !(f->since_ns && ns < f->since_ns) && !(f->until_ns && ns > f->until_ns);
}

static bool str_member_is(json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));

	return !want || (v && !strcmp(v, want));
}

static bool record_matches(const struct query *q, json_t *o)
{
	const struct kg_audit_filter *f = q->f;

	if (!str_member_is(o, "trace", q->trace) || !str_member_is(o, "decision", q->decision) ||
	    !str_member_is(o, "rule", q->rule) || !str_member_is(o, "type", q->type))
		return false;
	if (q->target && !str_member_is(o, "target", q->target) &&
	    !str_member_is(json_object_get(o, "extra"), "name", q->target))
		return false;
	if (q->phash) {
		const char *h = json_string_value(json_object_get(json_object_get(o, "policy"), "hash"));

		if (!h || strncmp(h, q->phash, strlen(q->phash)))
			return false;
	}
	if (f->since_ns || f->until_ns) {
		const char *t = json_string_value(json_object_get(o, "time"));
		uint64_t ns;

		if (!t || kg_audit_parse_time(t, &ns) || !time_in_range(f, ns))
			return false;
	}
	return true;
}

static void qbad(struct query *q, const char *path, unsigned long line, const char *what)
{
	q->st->bad++;
	if (!q->quiet)
		kg_warn("audit: %s:%lu: %s", path, line, what);
}

static size_t span(const char *p, const char *end, const char *accept)
{
	const char *s = p;

	while (s < end && *s && strchr(accept, *s))
		s++;
	return (size_t)(s - p);
}

static bool skip_lit(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *p) < n || memcmp(*p, lit, n))
		return false;
	*p += n;
	return true;
}

/* The writer starts every record with
 *   {"seq":N,"prev":"<64 hex>","type":"<name>","time":"<RFC 3339>",
 * For a line with exactly that prefix the top-level time is known without
 * a full parse: these members can only be what they look like, since a
 * JSON string never holds an unescaped quote. 0 and *ns set, or -1 (the
 * caller then parses the line). Parsing every line just to compare times
 * is what made time-range queries slow. */
static int canonical_time(const char *line, size_t len, uint64_t *ns)
{
	const char *p = line, *end = line + len;
	char buf[48];
	size_t n;

	if (!skip_lit(&p, end, "{\"seq\":") || !(n = span(p, end, "0123456789")))
		return -1;
	p += n;
	if (!skip_lit(&p, end, ",\"prev\":\"") || span(p, end, "0123456789abcdef") != HASH_HEX)
		return -1;
	p += HASH_HEX;
	if (!skip_lit(&p, end, "\",\"type\":\"") ||
	    !(n = span(p, end, "abcdefghijklmnopqrstuvwxyz_")))
		return -1;
	p += n;
	if (!skip_lit(&p, end, "\",\"time\":\""))
		return -1;
	n = span(p, end, "0123456789-T:.Z");
	if (!n || n >= sizeof(buf) || p + n >= end || p[n] != '"')
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return kg_audit_parse_time(buf, ns) ? -1 : 0;
}

/* 1 = stop (visitor asked), 0 = go on, -errno = error */
static int query_line(struct query *q, struct kg_line_reader *lr)
{
	bool timed = q->f->since_ns || q->f->until_ns;
	json_error_t jerr;
	uint64_t ns;
	json_t *o;
	int i, stop = 0;

	q->st->lines++;
	/* cheap necessary condition first: every string filter must appear */
	for (i = 0; i < q->nneedles; i++)
		if (!memmem(lr->line, lr->len, q->nd[i].s, q->nd[i].len))
			return 0;
	if (timed && !canonical_time(lr->line, lr->len, &ns)) {
		if (!time_in_range(q->f, ns))
			return 0;
		if (!q->nneedles && !q->fn) {
			q->st->matched++;	/* counting only: nothing else to check */
			return 0;
		}
	}
	o = json_loadb(lr->line, lr->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o)) {
		char what[300];

		snprintf(what, sizeof(what), "bad record%s: %s", lr->terminated ? "" :
			 " (unterminated)", o ? "not a JSON object" : jerr.text);
		qbad(q, lr->path, lr->lineno, what);
		json_decref(o);
		return 0;
	}
	if (record_matches(q, o)) {
		q->st->matched++;
		if (q->fn)
			stop = q->fn(o, lr->line, lr->len, q->ctx);
	}
	json_decref(o);
	return stop ? 1 : 0;
}

static int query_file(struct query *q, const char *path)
{
	struct kg_line_reader lr;
	int r, stop = 0;

	r = kg_lr_open(&lr, path);
	if (r) {
		qbad(q, path, 0, "cannot open");
		return 0;
	}
	while (!stop && (r = kg_lr_next(&lr)) != 0) {
		if (r == -E2BIG) {
			q->st->lines++;
			qbad(q, path, lr.lineno, "line longer than 1 MiB, skipped");
		} else if (r < 0) {
			qbad(q, path, lr.lineno + 1, "read error (corrupt compressed data?)");
			break;
		} else {
			stop = query_line(q, &lr);
		}
	}
	kg_lr_close(&lr);
	return stop;
}

int kg_audit_query_files(char *const *files, int nfiles,
			 const struct kg_audit_filter *f, kg_audit_visit_fn fn,
			 void *ctx, bool quiet, struct kg_audit_qstats *st)
{
	struct kg_audit_qstats local;
	struct query q;
	int i, err;

	memset(&q, 0, sizeof(q));
	q.st = st ? st : &local;
	memset(q.st, 0, sizeof(*q.st));
	q.fn = fn;
	q.ctx = ctx;
	q.quiet = quiet;
	err = query_setup(&q, f);
	for (i = 0; !err && i < nfiles; i++)
		if (query_file(&q, files[i]))
			break;
	query_free(&q);
	return err;
}

int kg_audit_query(const char *dir, const struct kg_audit_filter *f,
		   kg_audit_visit_fn fn, void *ctx, bool quiet,
		   struct kg_audit_qstats *st)
{
	char **files = NULL;
	int n = 0, err;

	err = kg_audit_list_segments(dir, &files, &n);
	if (err)
		return err;
	err = kg_audit_query_files(files, n, f, fn, ctx, quiet, st);
	kg_audit_free_list(files, n);
	return err;
}

/* ------------------------------------------------------------------ */
/* the newest matching record (consumers resuming after a crash) */

struct last_match {
	const char *needle;
	kg_audit_match_fn match;
	void *ctx;
	json_t *found;
};

/* 1 = this line matched (lm->found set), 0 = not */
static int try_line(struct last_match *lm, const char *line, size_t len)
{
	json_t *rec;

	if (!len || (lm->needle && !memmem(line, len, lm->needle, strlen(lm->needle))))
		return 0;
	rec = json_loadb(line, len, 0, NULL);
	if (!rec)
		return 0;
	if (!lm->match(rec, lm->ctx)) {
		json_decref(rec);
		return 0;
	}
	json_decref(lm->found);
	lm->found = rec;
	return 1;
}

/* The active segment is plain and may be large: read it from its end in
 * chunks and stop at the first (newest) match. */
static int scan_plain_backwards(struct last_match *lm, const char *path)
{
	const size_t chunk = 256u << 10;
	char *work = NULL, *tail = NULL;
	size_t taillen = 0;
	uint64_t end;
	struct stat st;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto out;
	}
	for (end = (uint64_t)st.st_size; end > 0 && !lm->found;) {
		size_t want = end > chunk ? chunk : (size_t)end, n, i, stop;
		uint64_t lo = end - want;
		char *nw;

		nw = realloc(work, want + taillen);
		if (!nw) {
			err = -ENOMEM;
			break;
		}
		work = nw;
		if (pread(fd, work, want, (off_t)lo) != (ssize_t)want) {
			err = -EIO;
			break;
		}
		if (taillen)
			memcpy(work + want, tail, taillen);
		n = want + taillen;
		/* complete lines are those after the first newline (or all of
		 * them at the start of the file); newest first */
		stop = 0;
		if (lo) {
			char *nl = memchr(work, '\n', n);

			stop = nl ? (size_t)(nl - work) + 1 : n;
		}
		for (i = n; i > stop && !lm->found;) {
			size_t e = i, s;

			if (work[e - 1] == '\n')
				e--;
			for (s = e; s > stop && work[s - 1] != '\n'; s--)
				;
			try_line(lm, work + s, e - s);
			i = s;
		}
		/* what precedes `stop` continues in the previous chunk */
		free(tail);
		tail = NULL;
		taillen = 0;
		if (lo && stop && stop <= KG_AUDIT_MAX_LINE + 1) {
			tail = malloc(stop);
			if (!tail) {
				err = -ENOMEM;
				break;
			}
			memcpy(tail, work, stop);
			taillen = stop;
		}
		end = lo;
	}
out:
	free(work);
	free(tail);
	close(fd);
	return err;
}

/* A closed segment (gzip or plain) streams forward: the last match wins. */
static int scan_closed(struct last_match *lm, const char *path)
{
	struct kg_line_reader lr;
	int r, err;

	err = kg_lr_open(&lr, path);
	if (err)
		return err;
	while ((r = kg_lr_next(&lr)) != 0) {
		if (r == -EIO) {
			err = r;
			break;
		}
		if (r == 1)
			try_line(lm, lr.line, lr.len);
	}
	kg_lr_close(&lr);
	return err;
}

int kg_audit_find_last(const char *dir, const char *needle, kg_audit_match_fn match, void *ctx,
		       unsigned int max_segments, json_t **out)
{
	struct last_match lm = { .needle = needle, .match = match, .ctx = ctx };
	char **paths = NULL, active[PATH_MAX + 32];
	int n = 0, i, err;
	unsigned int seen = 0;

	*out = NULL;
	if (!dir)
		dir = kg_audit_dir();
	if (kg_trail_path(active, sizeof(active), dir, ACTIVE_NAME))
		return -ENAMETOOLONG;
	err = kg_audit_list_segments(dir, &paths, &n);
	if (err)
		return err;
	for (i = n - 1; i >= 0 && !lm.found && seen < max_segments && !err; i--, seen++)
		err = strcmp(paths[i], active) ? scan_closed(&lm, paths[i])
					       : scan_plain_backwards(&lm, paths[i]);
	kg_audit_free_list(paths, n);
	if (err) {
		json_decref(lm.found);
		return err;
	}
	*out = lm.found;
	return 0;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cli/cmd_audit_export.c - 'kgate audit export' (a sealed batch, OCSF
 * events, or OTLP to a collector) and 'kgate audit verify --batch'. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record/audit.h"
#include "cli/cmd_audit_ship.h"
#include "cli/ship_common.h"
#include "cli/cmds.h"
#include "common.h"
#include "record/ocsf.h"
#include "record/otlp.h"
#include "record/seal.h"
#include "record/tail.h"

/* ---- a batch of records held in memory ---- */

struct batch {
	char **lines;
	size_t *lens;
	json_t **recs;
	size_t n, cap, max;
	uint64_t first_ms;	/* when its first record was read */
};

static void batch_clear(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->lines[i]);
		json_decref(b->recs[i]);
	}
	b->n = 0;
}

static void batch_free(struct batch *b)
{
	batch_clear(b);
	free(b->lines);
	free(b->lens);
	free(b->recs);
}

static int batch_push(struct batch *b, const char *line, size_t len, json_t *rec)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		char **l = realloc(b->lines, cap * sizeof(*l));
		size_t *n;
		json_t **r;

		if (!l)
			return -ENOMEM;
		b->lines = l;
		n = realloc(b->lens, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->lens = n;
		r = realloc(b->recs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		b->recs = r;
		b->cap = cap;
	}
	b->lines[b->n] = strndup(line, len);
	if (!b->lines[b->n])
		return -ENOMEM;
	b->lens[b->n] = len;
	b->recs[b->n] = json_incref(rec);
	if (!b->n)
		b->first_ms = kg_now_mono_ns() / 1000000;
	b->n++;
	return 0;
}

struct collect {
	struct batch *b;
	struct kg_ship_filter f;
	uint64_t to;		/* 0 = no end */
	bool reached_to;
};

static int collect(const char *line, size_t len, uint64_t seq, void *ctx)
{
	struct collect *c = ctx;
	json_t *rec;

	if (c->to && seq > c->to) {
		c->reached_to = true;
		return 1;
	}
	if (c->b->max && c->b->n >= c->b->max)
		return 1;	/* full: read again next time */
	rec = json_loadb(line, len, 0, NULL);
	if (!rec)
		return 0;
	if (kg_ship_filter_match(&c->f, rec) && batch_push(c->b, line, len, rec)) {
		json_decref(rec);
		return 1;
	}
	json_decref(rec);
	return 0;
}

static const char *hostname(void)
{
	static char h[256];

	if (!h[0] && gethostname(h, sizeof(h) - 1))
		strcpy(h, "localhost");
	return h;
}

static int print_json(FILE *f, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (!s)
		return -ENOMEM;
	fprintf(f, "%s\n", s);
	free(s);
	return 0;
}

static void export_usage(FILE *f)
{
	fprintf(f,
		"usage: kgate audit export [--dir DIR] [--key FILE] [--format native|ocsf]\n"
		"                          [--from POSITION] [--to SEQ] [--trace ID] [--type T]\n"
		"                          [--decision D] [--rule R] [--seal FILE] [--output FILE]\n"
		"       kgate audit export --otlp URL [--format native|ocsf] [--from POSITION]\n"
		"                          [--position-file FILE] [--batch N] [--batch-ms MS]\n"
		"                          [--max-retries N] [--backoff-ms MIN,MAX] [--timeout-ms MS]\n"
		"                          [--header 'NAME: VALUE']... [--stats FILE] [--once]\n"
		"\n"
		"without --otlp: the records from POSITION (default: start) to SEQ (default:\n"
		"  the end), filtered, as a sealed batch: native = the sealed lines, then the\n"
		"  seal envelope as the last line; ocsf = one OCSF %s event per line, the\n"
		"  envelope in --seal FILE (kgate audit verify --batch checks either)\n"
		"--otlp URL: follow the trail and post batches (OTLP logs, HTTP/JSON) to the\n"
		"  collector, e.g. http://127.0.0.1:4318/v1/logs; each batch carries its seal;\n"
		"  a batch the collector refuses for now (no connection, 408, 429, 5xx) is\n"
		"  retried with backoff (100 ms doubling to 30 s), forever unless\n"
		"  --max-retries; one it never accepts (other 4xx), or past --max-retries, is\n"
		"  dropped, counted and recorded in the trail (events_lost, op otlp_export)\n"
		"  --stats FILE: counters as JSON, rewritten after every batch\n",
		KG_OCSF_VERSION);
}

struct export_args {
	const char *dir, *key, *from, *posfile, *seal_out, *output, *otlp, *stats;
	struct kg_ship_filter f;
	bool ocsf, once;
	uint64_t to;
	unsigned batch, batch_ms, timeout_ms, backoff_min, backoff_max;
	long max_retries;	/* < 0 = forever */
	const char *headers[17];
	int nheaders;
};

static int parse_u(const char *opt, const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end || !*s || *out > max || s[0] == '-')
		return kg_err("audit: %s: '%s' is not a number up to %lu", opt, s, max);
	return 0;
}

/* -1 = usage error, 1 = help printed, 0 = parsed */
static int parse_export(int argc, char **argv, struct export_args *a)
{
	enum { O_DIR = 256, O_KEY, O_FORMAT, O_FROM, O_TO, O_TRACE, O_TYPE, O_DECISION, O_RULE,
	       O_SEAL, O_OUTPUT, O_OTLP, O_POSFILE, O_BATCH, O_BATCH_MS, O_RETRIES, O_BACKOFF,
	       O_TIMEOUT, O_HEADER, O_STATS, O_ONCE };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "dir", required_argument, NULL, O_DIR },
		{ "key", required_argument, NULL, O_KEY },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "from", required_argument, NULL, O_FROM },
		{ "to", required_argument, NULL, O_TO },
		{ "trace", required_argument, NULL, O_TRACE },
		{ "type", required_argument, NULL, O_TYPE },
		{ "decision", required_argument, NULL, O_DECISION },
		{ "rule", required_argument, NULL, O_RULE },
		{ "seal", required_argument, NULL, O_SEAL },
		{ "output", required_argument, NULL, O_OUTPUT },
		{ "otlp", required_argument, NULL, O_OTLP },
		{ "position-file", required_argument, NULL, O_POSFILE },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "batch-ms", required_argument, NULL, O_BATCH_MS },
		{ "max-retries", required_argument, NULL, O_RETRIES },
		{ "backoff-ms", required_argument, NULL, O_BACKOFF },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "header", required_argument, NULL, O_HEADER },
		{ "stats", required_argument, NULL, O_STATS },
		{ "once", no_argument, NULL, O_ONCE },
		{ 0 },
	};
	unsigned long v;
	int c;

	memset(a, 0, sizeof(*a));
	a->batch = 512;
	a->batch_ms = 1000;
	a->timeout_ms = 10000;
	a->backoff_min = 100;
	a->backoff_max = 30000;
	a->max_retries = -1;
	optind = 0;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': export_usage(stdout); return 1;
		case O_DIR: a->dir = optarg; break;
		case O_KEY: a->key = optarg; break;
		case O_FORMAT:
			if (!strcmp(optarg, "ocsf"))
				a->ocsf = true;
			else if (strcmp(optarg, "native"))
				return kg_err("audit: --format: 'native' or 'ocsf', not '%s'", optarg);
			break;
		case O_FROM: a->from = optarg; break;
		case O_TO:
			if (parse_u("--to", optarg, (unsigned long)INT64_MAX, &v))
				return -1;
			a->to = v;
			break;
		case O_TRACE: a->f.trace = optarg; break;
		case O_TYPE: a->f.type = optarg; break;
		case O_DECISION: a->f.decision = optarg; break;
		case O_RULE: a->f.rule = optarg; break;
		case O_SEAL: a->seal_out = optarg; break;
		case 'o':
		case O_OUTPUT: a->output = optarg; break;
		case O_OTLP: a->otlp = optarg; break;
		case O_POSFILE: a->posfile = optarg; break;
		case O_BATCH:
			if (parse_u("--batch", optarg, 100000, &v) || !v)
				return v ? -1 : kg_err("audit: --batch: at least 1");
			a->batch = (unsigned)v;
			break;
		case O_BATCH_MS:
			if (parse_u("--batch-ms", optarg, 3600000, &v))
				return -1;
			a->batch_ms = (unsigned)v;
			break;
		case O_RETRIES:
			if (parse_u("--max-retries", optarg, 1000000, &v))
				return -1;
			a->max_retries = (long)v;
			break;
		case O_BACKOFF: {
			unsigned long lo, hi;
			char *comma = strchr(optarg, ',');

			if (!comma)
				return kg_err("audit: --backoff-ms: MIN,MAX");
			*comma = '\0';
			if (parse_u("--backoff-ms", optarg, 3600000, &lo) ||
			    parse_u("--backoff-ms", comma + 1, 3600000, &hi))
				return -1;
			if (!lo || hi < lo)
				return kg_err("audit: --backoff-ms: 0 < MIN <= MAX");
			a->backoff_min = (unsigned)lo;
			a->backoff_max = (unsigned)hi;
			break;
		}
		case O_TIMEOUT:
			if (parse_u("--timeout-ms", optarg, 3600000, &v) || !v)
				return v ? -1 : kg_err("audit: --timeout-ms: at least 1");
			a->timeout_ms = (unsigned)v;
			break;
		case O_HEADER:
			if (a->nheaders >= 16 || !strchr(optarg, ':') || strpbrk(optarg, "\r\n"))
				return kg_err("audit: --header: 'NAME: VALUE', at most 16");
			a->headers[a->nheaders++] = optarg;
			break;
		case O_STATS: a->stats = optarg; break;
		case O_ONCE: a->once = true; break;
		default: export_usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		export_usage(stderr);
		return -1;
	}
	if (a->otlp && (a->seal_out || a->output || a->to))
		return kg_err("audit: --otlp streams to the collector: no --seal, --output or --to");
	if (!a->otlp && (a->posfile || a->stats || a->once))
		return kg_err("audit: --position-file, --stats and --once go with --otlp");
	return 0;
}

/* ---- one-shot export: a sealed batch, streamed (memory stays flat) ---- */

struct stream {
	FILE *out;
	struct kg_seal *seal;
	struct kg_ship_filter f;
	uint64_t to;		/* 0 = no end */
	bool ocsf;
	size_t n;
};

static int stream_rec(const char *line, size_t len, uint64_t seq, void *ctx)
{
	struct stream *st = ctx;
	json_t *rec = NULL;

	if (st->to && seq > st->to)
		return 1;
	if (st->ocsf || kg_ship_filter_any(&st->f)) {
		rec = json_loadb(line, len, 0, NULL);
		if (!rec)
			return 0;
		if (!kg_ship_filter_match(&st->f, rec)) {
			json_decref(rec);
			return 0;
		}
	}
	if (st->ocsf) {
		json_t *ev = kg_ocsf_event(rec, line, len, hostname());

		print_json(st->out, ev);
		json_decref(ev);
	} else {
		fwrite(line, 1, len, st->out);
		fputc('\n', st->out);
	}
	json_decref(rec);
	if (ferror(st->out))
		return 1;	/* reported after the poll */
	kg_seal_add(st->seal, line, len);
	st->n++;
	return 0;
}

static int export_batch(struct export_args *a)
{
	struct stream st = { .out = stdout, .f = a->f, .to = a->to, .ocsf = a->ocsf };
	struct kg_tail_pos pos;
	struct kg_tail *t = NULL;
	FILE *sf;
	json_t *env = NULL;
	int n, rc = KG_EXIT_FAIL;

	if (kg_ship_start(a->from, NULL, "start", &pos))
		return KG_EXIT_USAGE;
	if (pos.at_end)
		return kg_err("audit: export --from end exports nothing"), KG_EXIT_USAGE;
	if (a->ocsf && !a->seal_out)
		kg_info("audit: OCSF events without --seal FILE: the batch cannot be verified");
	st.seal = kg_seal_new(a->dir, a->key);
	if (!st.seal)
		return KG_EXIT_FAIL;
	kg_seal_begin(st.seal, !kg_ship_filter_any(&a->f));
	if (a->output && !(st.out = fopen(a->output, "we"))) {
		kg_err("audit: cannot write %s: %s", a->output, strerror(errno));
		st.out = stdout;
		goto out;
	}
	t = kg_tail_open(a->dir, &pos);
	if (!t) {
		kg_err("audit: cannot read the trail: %s", strerror(errno));
		goto out;
	}
	n = kg_tail_poll(t, stream_rec, &st);
	if (n < 0) {
		if (n != -ESTALE)
			kg_err("audit: export: %s", strerror(-n));
		goto out;
	}
	if (ferror(st.out)) {
		kg_err("audit: export: write failed");
		goto out;
	}
	env = kg_seal_envelope(st.seal);
	if (!env) {
		kg_err("audit: export: cannot seal the batch: %s", strerror(errno));
		goto out;
	}
	if (a->seal_out) {
		sf = fopen(a->seal_out, "we");
		if (!sf) {
			kg_err("audit: cannot write %s: %s", a->seal_out, strerror(errno));
			goto out;
		}
		print_json(sf, env);
		if (fclose(sf)) {
			kg_err("audit: cannot write %s: %s", a->seal_out, strerror(errno));
			goto out;
		}
	} else if (!a->ocsf) {
		print_json(st.out, env);
	}
	if (fflush(st.out) || ferror(st.out)) {
		kg_err("audit: export: write failed: %s", strerror(errno));
		goto out;
	}
	{
		char p[128];

		kg_tail_position(t, p, sizeof(p));
		kg_info("audit: exported %zu records (seq %" JSON_INTEGER_FORMAT "..%"
			JSON_INTEGER_FORMAT ", %s); next: --from %s", st.n,
			json_integer_value(json_object_get(env, "first_seq")),
			json_integer_value(json_object_get(env, "last_seq")),
			json_is_true(json_object_get(env, "contiguous")) ? "contiguous" : "filtered",
			p);
	}
	rc = KG_EXIT_OK;
out:
	if (st.out != stdout && fclose(st.out) && rc == KG_EXIT_OK) {
		kg_err("audit: cannot write %s: %s", a->output, strerror(errno));
		rc = KG_EXIT_FAIL;
	}
	json_decref(env);
	kg_tail_close(t);
	kg_seal_free(st.seal);
	return rc;
}

/* ---- OTLP: follow the trail, post batches ---- */

struct otlp_stats {
	uint64_t delivered_records, delivered_batches, attempts, failed_attempts;
	uint64_t dropped_records, dropped_batches, pending_records;
	long last_status;
	char last_error[128], position[128];
};

static void write_stats(const char *path, const struct otlp_stats *s)
{
	json_t *o;
	char tmp[4096];
	FILE *f;

	if (!path || kg_snprintf(tmp, sizeof(tmp), "%s.tmp", path))
		return;
	o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:s}",
		      "delivered_records", (json_int_t)s->delivered_records,
		      "delivered_batches", (json_int_t)s->delivered_batches,
		      "attempts", (json_int_t)s->attempts,
		      "failed_attempts", (json_int_t)s->failed_attempts,
		      "dropped_records", (json_int_t)s->dropped_records,
		      "dropped_batches", (json_int_t)s->dropped_batches,
		      "pending_records", (json_int_t)s->pending_records,
		      "last_status", (json_int_t)s->last_status,
		      "last_error", s->last_error, "position", s->position);
	f = o ? fopen(tmp, "we") : NULL;
	if (f) {
		print_json(f, o);
		if (fclose(f) || rename(tmp, path))
			unlink(tmp);
	}
	json_decref(o);
}

/* A batch the collector will not take: counted, and recorded in the trail
 * (which the exporter then ships like any record). */
static void record_drop(const struct export_args *a, const struct batch *b,
			const struct otlp_stats *s, const char *why)
{
	struct kg_audit *au = kg_audit_open(a->dir, NULL);
	struct kg_rec r;
	json_t *extra;
	int err;

	kg_warn("audit: export: %zu records (seq %" PRIu64 "..%" PRIu64 ") dropped: the collector "
		"did not accept them (%s)", b->n, kg_tail_line_seq(b->lines[0], b->lens[0]),
		kg_tail_line_seq(b->lines[b->n - 1], b->lens[b->n - 1]), why);
	if (!au) {
		kg_warn("audit: export: the drop could not be recorded in the trail: %s",
			strerror(errno));
		return;
	}
	extra = json_pack("{s:{s:I,s:I,s:I},s:s,s:I,s:I,s:I,s:s}", "counts",
			  "decided", (json_int_t)b->n, "delivered", (json_int_t)0,
			  "lost", (json_int_t)b->n, "collector", a->otlp,
			  "first_seq", (json_int_t)kg_tail_line_seq(b->lines[0], b->lens[0]),
			  "last_seq", (json_int_t)kg_tail_line_seq(b->lines[b->n - 1],
								   b->lens[b->n - 1]),
			  "dropped_total", (json_int_t)s->dropped_records, "error", why);
	kg_rec_init(&r, "events_lost");
	kg_rec_str(&r, "op", "otlp_export");
	kg_rec_str(&r, "target", a->otlp);
	kg_rec_str(&r, "decision", "lost");
	kg_rec_str(&r, "reason", "the collector did not accept an exported batch");
	kg_rec_str(&r, "mechanism", "controller");
	kg_rec_extra(&r, extra);
	err = kg_rec_append(au, &r);
	if (!err)
		err = kg_audit_flush(au);
	if (err)
		kg_warn("audit: export: the drop could not be recorded in the trail: %s",
			strerror(-err));
	json_decref(extra);
	kg_audit_close(au);
}

/* A batch of nothing but this exporter's own loss records: recording its
 * drop would make another such record, and so on, as long as the collector
 * refuses; it is counted and warned about instead. */
static bool only_own_loss_records(const struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		const char *op = json_string_value(json_object_get(b->recs[i], "op"));

		if (!op || strcmp(op, "otlp_export"))
			return false;
	}
	return true;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (!kg_ship_stopping() && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* 0 = delivered, 1 = dropped, -1 = not delivered (stopping) */
static int deliver(const struct export_args *a, struct kg_otlp *o, struct kg_seal *seal,
		   struct batch *b, struct otlp_stats *s)
{
	unsigned backoff = a->backoff_min;
	long tries = 0;
	json_t *env, *req;
	char *body, err[128];
	int r;

	kg_seal_begin(seal, !kg_ship_filter_any(&a->f));
	for (size_t i = 0; i < b->n; i++)
		kg_seal_add(seal, b->lines[i], b->lens[i]);
	env = kg_seal_envelope(seal);
	req = kg_otlp_request(b->recs, b->lines, b->lens, b->n, a->ocsf, env, hostname());
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	json_decref(env);
	if (!body)
		return kg_err("audit: export: out of memory building a batch"), -1;
	for (;;) {
		s->attempts++;
		r = kg_otlp_post(o, body, strlen(body), &s->last_status, err, sizeof(err));
		snprintf(s->last_error, sizeof(s->last_error), "%s", r ? err : "");
		if (!r) {
			s->delivered_records += b->n;
			s->delivered_batches++;
			break;
		}
		s->failed_attempts++;
		if (r == 2 || (a->max_retries >= 0 && tries >= a->max_retries)) {
			s->dropped_records += b->n;
			s->dropped_batches++;
			if (!only_own_loss_records(b))
				record_drop(a, b, s, err);
			else
				kg_warn("audit: export: %zu loss records of this exporter dropped "
					"(%s); not recorded again (that would never end)", b->n, err);
			r = 1;
			break;
		}
		if (tries++ == 0 || kg_env.verbose)
			kg_warn("audit: export: %s: %s; retrying (backoff from %u ms)", a->otlp, err,
				backoff);
		s->pending_records = b->n;
		write_stats(a->stats, s);
		sleep_ms(backoff);
		backoff = backoff > a->backoff_max / 2 ? a->backoff_max : backoff * 2;
		if (kg_ship_stopping()) {
			r = -1;
			break;
		}
	}
	free(body);
	return r;
}

static int export_otlp(struct export_args *a)
{
	struct batch b = { .max = a->batch };
	struct collect c = { .b = &b, .f = a->f };
	struct otlp_stats s = { 0 };
	struct kg_tail_pos pos;
	struct kg_seal *seal;
	struct kg_otlp *o;
	struct kg_tail *t;
	int rc = KG_EXIT_OK;

	if (kg_ship_start(a->from, a->posfile, "start", &pos))
		return KG_EXIT_USAGE;
	o = kg_otlp_new(a->otlp, a->headers, a->timeout_ms);
	if (!o)
		return kg_err("audit: --otlp '%s': %s", a->otlp,
			      errno == EINVAL ? "an http:// or https:// URL" : strerror(errno)),
		       KG_EXIT_USAGE;
	seal = kg_seal_new(a->dir, a->key);
	t = seal ? kg_tail_open(a->dir, &pos) : NULL;
	if (!t) {
		if (seal)
			kg_err("audit: cannot read the trail: %s", strerror(errno));
		kg_seal_free(seal);
		kg_otlp_free(o);
		return KG_EXIT_FAIL;
	}
	kg_ship_install_signals();
	kg_tail_position(t, s.position, sizeof(s.position));
	write_stats(a->stats, &s);
	while (!kg_ship_stopping()) {
		uint64_t now;
		int n = kg_tail_poll(t, collect, &c);

		if (n < 0) {
			if (n != -ESTALE)
				kg_err("audit: export: %s", strerror(-n));
			rc = KG_EXIT_FAIL;
			break;
		}
		now = kg_now_mono_ns() / 1000000;
		s.pending_records = b.n;
		if (b.n && (b.n >= b.max || now - b.first_ms >= a->batch_ms || a->once)) {
			int r = deliver(a, o, seal, &b, &s);

			if (r < 0)
				break;	/* stopping: not delivered, not dropped */
			batch_clear(&b);
			s.pending_records = 0;
			/* the position moves past the batch only now */
			kg_tail_position(t, s.position, sizeof(s.position));
			if (a->posfile) {
				int err = kg_ship_save_position(a->posfile, s.position);

				if (err)
					kg_warn("audit: cannot write %s: %s", a->posfile,
						strerror(-err));
			}
			write_stats(a->stats, &s);
			continue;	/* more may be waiting */
		}
		write_stats(a->stats, &s);
		if (a->once && !b.n)
			break;
		kg_tail_wait(t, b.n ? (int)(a->batch_ms - (now - b.first_ms)) + 1 :
			     (int)(a->batch_ms < 500 ? a->batch_ms : 500) + 1);
	}
	s.pending_records = b.n;
	write_stats(a->stats, &s);
	fprintf(stderr, "kgate: audit export: %" PRIu64 " records delivered in %" PRIu64
		" batches (%" PRIu64 " attempts, %" PRIu64 " failed), %" PRIu64
		" dropped, %" PRIu64 " not delivered yet; resume with --from %s\n",
		s.delivered_records, s.delivered_batches, s.attempts, s.failed_attempts,
		s.dropped_records, s.pending_records, s.position);
	batch_free(&b);
	kg_tail_close(t);
	kg_seal_free(seal);
	kg_otlp_free(o);
	return rc;
}

int cmd_audit_export(int argc, char **argv)
{
	struct export_args a;
	int r = parse_export(argc, argv, &a);

	if (r)
		return r > 0 ? KG_EXIT_OK : KG_EXIT_USAGE;
	return a.otlp ? export_otlp(&a) : export_batch(&a);
}

/* ---- verify --batch ---- */

struct lines {
	char **v;
	size_t *len;
	size_t n, cap;
};

static int lines_add(struct lines *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		char **v = realloc(l->v, cap * sizeof(*v));
		size_t *n;

		if (!v)
			return -ENOMEM;
		l->v = v;
		n = realloc(l->len, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->len = n;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strndup(s, len)))
		return -ENOMEM;
	l->len[l->n++] = len;
	return 0;
}

static void lines_free(struct lines *l)
{
	while (l->n)
		free(l->v[--l->n]);
	free(l->v);
	free(l->len);
}

/* An OTLP request as kg_otlp_request writes it: the seal from the scope,
 * the sealed lines from the bodies (native) or kgate.record attributes. */
static int from_otlp(json_t *req, struct lines *l, json_t **env)
{
	json_t *scope = json_object_get(json_array_get(json_object_get(json_array_get(
		json_object_get(req, "resourceLogs"), 0), "scopeLogs"), 0), "scope");
	json_t *logs = json_object_get(json_array_get(json_object_get(json_array_get(
		json_object_get(req, "resourceLogs"), 0), "scopeLogs"), 0), "logRecords");
	json_t *kv, *lr;
	size_t i, j;

	json_array_foreach(json_object_get(scope, "attributes"), i, kv) {
		const char *k = json_string_value(json_object_get(kv, "key"));
		const char *v = json_string_value(json_object_get(json_object_get(kv, "value"),
								  "stringValue"));

		if (k && v && !strcmp(k, "kgate.seal"))
			*env = json_loads(v, 0, NULL);
	}
	json_array_foreach(logs, i, lr) {
		const char *line = NULL;

		json_array_foreach(json_object_get(lr, "attributes"), j, kv) {
			const char *k = json_string_value(json_object_get(kv, "key"));

			if (k && !strcmp(k, "kgate.record"))
				line = json_string_value(json_object_get(json_object_get(kv, "value"),
									 "stringValue"));
		}
		if (!line)
			line = json_string_value(json_object_get(json_object_get(lr, "body"),
								 "stringValue"));
		if (!line || lines_add(l, line, strlen(line)))
			return -EINVAL;
	}
	return *env ? 0 : -ENOENT;
}

static void batch_verify_usage(FILE *f)
{
	fprintf(f,
		"usage: kgate audit verify --batch FILE [--seal FILE] [--key FILE] [--dir DIR]\n"
		"                          [--against-trail] [--json]\n"
		"\n"
		"checks an exported batch: every record's seal, the envelope's MAC (no record\n"
		"removed, added or swapped), the trail's sealed head it names; with\n"
		"--against-trail, also that the trail in DIR holds the same records\n"
		"FILE: a native batch (its last line is the envelope), OCSF events (one per\n"
		"line, the envelope in --seal FILE) or an OTLP request body kgate posted\n"
		"exit 0 = intact, 6 = tampered, 1 = could not check\n");
}

/* ---- the batch file, streamed: memory does not grow with the batch ---- */

/* An OTLP request body kgate posted is one JSON document whose first
 * member is resourceLogs (kg_otlp_request); it is read whole (it is one
 * posted batch). Anything else is read a line at a time. */
static bool looks_like_otlp(FILE *f)
{
	char buf[64];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	const char *p;

	rewind(f);
	buf[n] = '\0';
	p = buf + strspn(buf, " \t\r\n");
	if (*p++ != '{')
		return false;
	p += strspn(p, " \t\r\n");
	return !strncmp(p, "\"resourceLogs\"", 14);
}

/* the next non-empty line (newline stripped): its length, 0 at the end */
static size_t next_line(FILE *f, char **buf, size_t *cap)
{
	ssize_t n;

	while ((n = getline(buf, cap, f)) > 0) {
		if ((*buf)[n - 1] == '\n')
			(*buf)[--n] = '\0';
		if (n)
			return (size_t)n;
	}
	return 0;
}

/* The object a line holds when it is the native trailer (a member
 * "kgate_batch"), else NULL. Only lines that can hold that key (spelt
 * plainly or with \u escapes) are parsed. */
static json_t *trailer(const char *line, size_t len)
{
	json_t *o;

	if (!memmem(line, len, "kgate_batch", 11) && !memmem(line, len, "\\u", 2))
		return NULL;
	o = json_loadb(line, len, 0, NULL);
	if (json_object_get(o, "kgate_batch"))
		return o;
	json_decref(o);
	return NULL;
}

/* first pass: the native trailer (the last one wins) */
static json_t *find_envelope(FILE *f)
{
	char *buf = NULL;
	size_t cap = 0, len;
	json_t *env = NULL, *o;

	while ((len = next_line(f, &buf, &cap)))
		if ((o = trailer(buf, len))) {
			json_decref(env);
			env = o;
		}
	free(buf);
	rewind(f);
	return env;
}

/* second pass: every record through the seal's check; an OCSF event
 * gives its raw_data. 0, or -EINVAL (said) for an event without it. */
static int verify_lines(FILE *f, const char *file, struct kg_seal *seal,
			struct kg_seal_check *res)
{
	char *buf = NULL;
	size_t cap = 0, len;
	int err = 0;

	while (!err && res->ok && (len = next_line(f, &buf, &cap))) {
		json_t *o = trailer(buf, len);

		if (o) {
			json_decref(o);
			continue;
		}
		if (memmem(buf, len, "class_uid", 9) || memmem(buf, len, "\\u", 2))
			o = json_loadb(buf, len, 0, NULL);
		if (json_object_get(o, "class_uid")) {
			const char *raw = json_string_value(json_object_get(o, "raw_data"));

			err = raw ? kg_seal_verify_line(seal, raw, strlen(raw), res) : -EINVAL;
			if (!raw)
				kg_err("audit: %s: an OCSF event without raw_data", file);
		} else {
			err = kg_seal_verify_line(seal, buf, len, res);
		}
		json_decref(o);
	}
	free(buf);
	return err;
}

static FILE *open_batch(const char *file)
{
	struct stat st;
	FILE *f = fopen(file, "re");

	if (f && (fstat(fileno(f), &st) || !S_ISREG(st.st_mode))) {
		fclose(f);
		errno = EINVAL;	/* read twice: a regular file */
		return NULL;
	}
	return f;
}

static int read_seal_file(const char *sealf, json_t **env)
{
	size_t sl;
	char *st = kg_read_regular_file(sealf, 1 << 20, &sl);

	json_decref(*env);
	*env = st ? json_loads(st, 0, NULL) : NULL;
	free(st);
	if (!*env)
		return kg_err("audit: cannot read the seal %s", sealf), -EINVAL;
	return 0;
}

static void print_batch_result(const struct kg_seal_check *res, json_t *env, bool against)
{
	if (kg_env.json) {
		json_t *o = json_pack("{s:b,s:I,s:I,s:s}", "ok", res->ok, "records",
				      (json_int_t)res->records, "bad_seq", (json_int_t)res->bad_seq,
				      "reason", res->reason);

		print_json(stdout, o);
		json_decref(o);
	} else if (res->ok) {
		printf("audit: batch ok: %" PRIu64 " records (seq %" JSON_INTEGER_FORMAT "..%"
		       JSON_INTEGER_FORMAT ", %s), sealed head at seq %" JSON_INTEGER_FORMAT "%s\n",
		       res->records, json_integer_value(json_object_get(env, "first_seq")),
		       json_integer_value(json_object_get(env, "last_seq")),
		       json_is_true(json_object_get(env, "contiguous")) ? "one unbroken chain" :
		       "filtered",
		       json_integer_value(json_object_get(json_object_get(env, "head"), "seq")),
		       against ? "; the trail holds the same records" : "");
	} else {
		fprintf(stderr, "kgate: audit: batch TAMPERED: %s\n", res->reason);
	}
}

/* an OTLP request: read whole, its lines checked at once */
static int verify_otlp_file(const char *file, struct lines *l, json_t **env)
{
	size_t len;
	char *txt = kg_read_regular_file(file, 1u << 30, &len);
	json_t *whole;
	int err;

	if (!txt)
		return kg_err("audit: cannot read %s: %s", file, strerror(errno)), -errno;
	whole = json_loadb(txt, len, 0, NULL);
	free(txt);
	err = from_otlp(whole, l, env);
	json_decref(whole);
	if (err)
		kg_err("audit: %s: an OTLP request without kgate's seal", file);
	return err;
}

int cmd_audit_verify_batch(int argc, char **argv)
{
	enum { O_BATCH = 256, O_SEAL, O_KEY, O_DIR, O_AGAINST, O_JSON };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "seal", required_argument, NULL, O_SEAL },
		{ "key", required_argument, NULL, O_KEY },
		{ "dir", required_argument, NULL, O_DIR },
		{ "against-trail", no_argument, NULL, O_AGAINST },
		{ "json", no_argument, NULL, O_JSON },
		{ 0 },
	};
	const char *file = NULL, *sealf = NULL, *key = NULL, *dir = NULL;
	struct lines l = { 0 };
	struct kg_seal_check res;
	struct kg_seal *seal = NULL;
	json_t *env = NULL;
	bool against = false, otlp;
	FILE *f;
	int c, err, rc = KG_EXIT_FAIL;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': batch_verify_usage(stdout); return KG_EXIT_OK;
		case O_BATCH: file = optarg; break;
		case O_SEAL: sealf = optarg; break;
		case O_KEY: key = optarg; break;
		case O_DIR: dir = optarg; break;
		case O_AGAINST: against = true; break;
		case O_JSON: kg_env.json = true; break;
		default: batch_verify_usage(stderr); return KG_EXIT_USAGE;
		}
	}
	if (!file || optind < argc) {
		batch_verify_usage(stderr);
		return KG_EXIT_USAGE;
	}
	f = open_batch(file);
	if (!f)
		return kg_err("audit: cannot read %s: %s", file, strerror(errno)), KG_EXIT_FAIL;
	otlp = looks_like_otlp(f);
	if (otlp) {
		if (verify_otlp_file(file, &l, &env))
			goto out;
	} else {
		env = find_envelope(f);
		if (sealf && read_seal_file(sealf, &env))
			goto out;
		if (!env) {
			kg_err("audit: %s carries no seal envelope (OCSF events: give --seal FILE)",
			       file);
			rc = KG_EXIT_TAMPERED;
			goto out;
		}
	}
	seal = kg_seal_new(dir, key);
	if (!seal)
		goto out;
	if (otlp) {
		err = kg_seal_verify(seal, env, l.v, l.len, l.n, against ?
				     (dir ? dir : kg_audit_dir()) : NULL, &res);
	} else {
		err = kg_seal_verify_begin(seal, env, &res);
		if (!err)
			err = verify_lines(f, file, seal, &res);
		if (err == -EINVAL)
			goto out;	/* an OCSF event without raw_data: said */
		if (!err)
			err = kg_seal_verify_end(seal, against ? (dir ? dir : kg_audit_dir()) : NULL,
						 &res);
	}
	if (err) {
		kg_err("audit: verify --batch could not run: %s", strerror(-err));
		goto out;
	}
	print_batch_result(&res, env, against);
	rc = res.ok ? KG_EXIT_OK : KG_EXIT_TAMPERED;
out:
	kg_seal_free(seal);
	json_decref(env);
	lines_free(&l);
	fclose(f);
	return rc;
}

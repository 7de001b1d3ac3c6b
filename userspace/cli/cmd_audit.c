// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_audit.c - 'kgate audit verify|query|timeline' */
#include "record/audit.h"
#include "record/prune.h"
#include "cli/cmd_audit_ship.h"
#include "cli/cmds.h"
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kgate audit verify [--dir DIR] [--key FILE] [--json] [FILES...|DIR]\n"
		"       kgate audit query [--dir DIR] [--trace ID] [--since T] [--until T]\n"
		"                         [--decision D] [--rule ID] [--policy HASH]\n"
		"                         [--type TYPE] [--target NAME] [--json] [FILES...]\n"
		"       kgate audit timeline [--dir DIR] [--json] TRACE\n"
		"       kgate audit follow [--dir DIR] [--json] [--from POSITION] ...\n"
		"       kgate audit export [--format native|ocsf] [--otlp URL] ...\n"
		"       kgate audit verify --batch FILE [--seal FILE] [--key FILE] [--dir DIR]\n"
		"       kgate audit prune [--dir DIR] [--keep-days N] [--keep-bytes SIZE]\n"
		"                         [--after-position FILE] [--json]\n"
		"\n"
		"verify    check the HMAC chain and the sealed head; names the first bad\n"
		"          sequence number and file (exit 6 when the trail was tampered with)\n"
		"query     print the records matching every given filter, oldest first\n"
		"          (T = RFC 3339 or unix seconds; HASH may be a prefix; NAME:\n"
		"          the record's target, or the host name a connection was\n"
		"          allowed through: both the resolution and the connect)\n"
		"timeline  a job's story, one line per record with time since launch\n"
		"follow    stream records as they are committed, across rotation\n"
		"export    records as a sealed batch, as OCSF events, or to an OpenTelemetry\n"
		"          collector (OTLP/HTTP JSON); verify --batch checks an exported batch\n"
		"          (each has its own --help)\n"
		"prune     remove the oldest closed segments: those closed more than N days\n"
		"          ago, and the oldest while the trail is larger than SIZE (K, M, G,\n"
		"          T: powers of 1024); never the active segment, never a record past\n"
		"          the exporter's position FILE; leaves a sealed anchor (audit.anchor)\n"
		"          so the rest still verifies, and a trail_pruned record\n"
		"\n"
		"the directory is $KGATE_AUDIT_DIR or /var/log/kgate unless --dir is given;\n"
		"docs/audit-format.md describes the records\n");
}

enum { OPT_DIR = 256, OPT_KEY, OPT_TRACE, OPT_SINCE, OPT_UNTIL, OPT_DECISION,
       OPT_RULE, OPT_POLICY, OPT_TYPE, OPT_JSON, OPT_TARGET };

static const struct option long_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "trace", required_argument, NULL, OPT_TRACE },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "decision", required_argument, NULL, OPT_DECISION },
	{ "rule", required_argument, NULL, OPT_RULE },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "type", required_argument, NULL, OPT_TYPE },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "json", no_argument, NULL, OPT_JSON },
	{ 0 },
};

struct args {
	const char *dir, *key;
	struct kg_audit_filter f;
	char **rest;
	int nrest;
};

static int parse_time_arg(const char *name, const char *s, uint64_t *out)
{
	if (kg_audit_parse_time(s, out))
		return kg_err("audit: %s: '%s' is neither RFC 3339 nor unix seconds", name, s);
	return 0;
}

/* -1 = bad usage, 1 = --help printed, 0 = parsed */
static int parse_args(int argc, char **argv, struct args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	optind = 0;	/* re-initialise getopt: argv is a subcommand's */
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 1;
		case OPT_DIR: a->dir = optarg; break;
		case OPT_KEY: a->key = optarg; break;
		case OPT_TRACE: a->f.trace_id = optarg; break;
		case OPT_DECISION: a->f.decision = optarg; break;
		case OPT_RULE: a->f.rule_id = optarg; break;
		case OPT_POLICY: a->f.policy_hash = optarg; break;
		case OPT_TYPE: a->f.type = optarg; break;
		case OPT_TARGET: a->f.target = optarg; break;
		case OPT_JSON: kg_env.json = true; break;
		case OPT_SINCE:
			if (parse_time_arg("--since", optarg, &a->f.since_ns))
				return -1;
			break;
		case OPT_UNTIL:
			if (parse_time_arg("--until", optarg, &a->f.until_ns))
				return -1;
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	a->rest = argv + optind;
	a->nrest = argc - optind;
	return 0;
}

/* ---- verify ---- */

static void print_verify(const struct kg_audit_verify_result *r)
{
	if (kg_env.json) {
		json_t *o = r->ok ?
			json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "ok", 1,
				  "records", (json_int_t)r->records, "segments", (json_int_t)r->segments,
				  "first_seq", (json_int_t)r->first_seq, "last_seq", (json_int_t)r->last_seq,
				  "head_seq", (json_int_t)r->head_seq, "pruned", (json_int_t)r->pruned) :
			json_pack("{s:b,s:I,s:s,s:I,s:s,s:I}", "ok", 0,
				  "bad_seq", (json_int_t)r->bad_seq, "file", r->bad_file,
				  "line", (json_int_t)r->bad_line, "reason", r->reason,
				  "records_ok", (json_int_t)r->records);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

		printf("%s\n", s ? s : "{\"error\":\"out of memory\"}");
		free(s);
		json_decref(o);
		return;
	}
	if (r->ok) {
		printf("audit: ok: %" PRIu64 " records", r->records);
		if (r->records)
			printf(" (seq %" PRIu64 "..%" PRIu64 ")", r->first_seq, r->last_seq);
		printf(" in %" PRIu64 " segment%s", r->segments, r->segments == 1 ? "" : "s");
		if (r->head_seq)
			printf("; sealed head at seq %" PRIu64, r->head_seq);
		if (r->pruned)
			printf("; %" PRIu64 " earlier records pruned (sealed anchor)", r->pruned);
		printf("\n");
		return;
	}
	fprintf(stderr, "kgate: audit: TAMPERED: first bad seq %" PRIu64 " in %s", r->bad_seq,
		r->bad_file);
	if (r->bad_line)
		fprintf(stderr, ":%lu", r->bad_line);
	fprintf(stderr, ": %s\n", r->reason);
}

static int do_verify(int argc, char **argv)
{
	struct kg_audit_verify_result res;
	struct args a;
	struct stat st;
	int err, i;

	for (i = 1; i < argc; i++)	/* an exported batch: cli/cmd_audit_export.c */
		if (!strcmp(argv[i], "--batch") || !strncmp(argv[i], "--batch=", 8))
			return cmd_audit_verify_batch(argc, argv);

	err = parse_args(argc, argv, &a);
	if (err)
		return err > 0 ? KG_EXIT_OK : KG_EXIT_USAGE;
	if (a.nrest == 1 && !stat(a.rest[0], &st) && S_ISDIR(st.st_mode))
		a.dir = a.rest[0], a.nrest = 0;
	if (a.nrest) {
		char keypath[4096];

		if (!a.key) {
			if (kg_snprintf(keypath, sizeof(keypath), "%s/audit.key",
					a.dir ? a.dir : kg_audit_dir()))
				return kg_err("audit: path too long"), KG_EXIT_USAGE;
			a.key = keypath;
		}
		err = kg_audit_verify_files(a.rest, a.nrest, a.key, &res);
	} else {
		err = kg_audit_verify_dir(a.dir, a.key, &res);
	}
	if (err)
		return kg_err("audit: verification could not run: %s", strerror(-err)), KG_EXIT_FAIL;
	print_verify(&res);
	return res.ok ? KG_EXIT_OK : KG_EXIT_TAMPERED;
}

/* ---- query ---- */

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* one human-readable summary of a record (without seq/time) */
static void describe(FILE *f, json_t *o)
{
	json_t *subj = json_object_get(o, "subject"), *actor = json_object_get(o, "actor");
	const char *s;

	if ((s = sget(o, "decision")))
		fprintf(f, " %s", s);
	if ((s = sget(o, "op")))
		fprintf(f, " %s", s);
	if ((s = sget(o, "target")))
		fprintf(f, " %s", s);
	/* identical decisions folded into this record, throttle refusals */
	if (json_integer_value(json_object_get(json_object_get(o, "extra"), "count")) > 1 ||
	    json_is_true(json_object_get(json_object_get(o, "extra"), "at_job_end")))
		fprintf(f, " count=%" JSON_INTEGER_FORMAT "%s",
			json_integer_value(json_object_get(json_object_get(o, "extra"), "count")),
			json_is_true(json_object_get(json_object_get(o, "extra"), "at_job_end"))
				? "(at job end)" : "");
	if ((s = sget(o, "rule")))
		fprintf(f, " rule=%s", s);
	if ((s = sget(o, "reason")))
		fprintf(f, " (%s)", s);
	if ((s = sget(o, "mechanism")))
		fprintf(f, " via %s", s);
	if (json_integer_value(json_object_get(subj, "pid")))
		fprintf(f, " pid=%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(subj, "pid")));
	if ((s = sget(subj, "comm")))
		fprintf(f, " comm=%s", s);
	if ((s = sget(actor, "name")))
		fprintf(f, " by=%s", s);
	if ((s = sget(actor, "role")))
		fprintf(f, "(%s)", s);
}

static int print_record(json_t *o, const char *line, size_t len, void *ctx)
{
	const char *s;

	(void)ctx;
	if (kg_env.json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		return 0;
	}
	printf("%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(o, "seq")));
	printf(" %s", (s = sget(o, "time")) ? s : "-");
	printf(" %s", (s = sget(o, "type")) ? s : "-");
	if ((s = sget(o, "trace")))
		printf(" %s", s);
	describe(stdout, o);
	printf("\n");
	return 0;
}

static int finish_query(int err, const struct kg_audit_qstats *st, const char *what)
{
	if (err)
		return kg_err("audit: %s failed: %s", what, strerror(-err)), KG_EXIT_FAIL;
	if (!kg_env.json || kg_env.verbose)
		kg_info("audit: %" PRIu64 " of %" PRIu64 " records matched%s", st->matched,
			st->lines, st->bad ? " (some lines are bad, see above)" : "");
	return st->bad ? KG_EXIT_FAIL : KG_EXIT_OK;
}

static int do_query(int argc, char **argv)
{
	struct kg_audit_qstats st;
	struct args a;
	int err;

	err = parse_args(argc, argv, &a);
	if (err)
		return err > 0 ? KG_EXIT_OK : KG_EXIT_USAGE;
	if (a.nrest)
		err = kg_audit_query_files(a.rest, a.nrest, &a.f, print_record, NULL, false, &st);
	else
		err = kg_audit_query(a.dir, &a.f, print_record, NULL, false, &st);
	return finish_query(err, &st, "query");
}

/* ---- timeline ---- */

struct timeline {
	uint64_t t0;
	bool have_t0;
};

static int print_step(json_t *o, const char *line, size_t len, void *ctx)
{
	struct timeline *tl = ctx;
	const char *t = sget(o, "time"), *type = sget(o, "type");
	uint64_t ns = 0;

	if (kg_env.json)
		return print_record(o, line, len, NULL);
	if (t && !kg_audit_parse_time(t, &ns) && !tl->have_t0) {
		tl->t0 = ns;
		tl->have_t0 = true;
	}
	if (ns >= tl->t0)
		printf("+%12.6fs", (double)(ns - tl->t0) / 1e9);
	else
		printf("-%12.6fs", (double)(tl->t0 - ns) / 1e9);
	printf("  #%-8" JSON_INTEGER_FORMAT " %-13s", json_integer_value(json_object_get(o, "seq")),
	       type ? type : "-");
	describe(stdout, o);
	printf("\n");
	return 0;
}

static int do_timeline(int argc, char **argv)
{
	struct kg_audit_qstats st;
	struct timeline tl = { 0 };
	struct args a;
	int err;

	err = parse_args(argc, argv, &a);
	if (err)
		return err > 0 ? KG_EXIT_OK : KG_EXIT_USAGE;
	if (a.nrest != 1) {
		usage(stderr);
		return KG_EXIT_USAGE;
	}
	a.f.trace_id = a.rest[0];
	err = kg_audit_query(a.dir, &a.f, print_step, &tl, false, &st);
	if (!err && !st.matched)
		return kg_err("audit: no records for trace '%s'", a.rest[0]), KG_EXIT_FAIL;
	return finish_query(err, &st, "timeline");
}

/* ---- prune ---- */

static int prune_usage(FILE *f, int code)
{
	fprintf(f, "usage: kgate audit prune [--dir DIR] [--keep-days N] [--keep-bytes SIZE]\n"
		"                         [--after-position FILE] [--json]\n"
		"at least one of --keep-days and --keep-bytes; docs/audit-format.md, Retention\n");
	return code;
}

/* 0 = parsed, -1 = --help printed, else KG_EXIT_USAGE */
static int parse_prune(int argc, char **argv, const char **dir, struct kg_audit_prune_opts *o)
{
	enum { O_DIR = 256, O_DAYS, O_BYTES, O_POS, O_JSON };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "dir", required_argument, NULL, O_DIR },
		{ "keep-days", required_argument, NULL, O_DAYS },
		{ "keep-bytes", required_argument, NULL, O_BYTES },
		{ "after-position", required_argument, NULL, O_POS },
		{ "json", no_argument, NULL, O_JSON },
		{ 0 },
	};
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': return prune_usage(stdout, -1);
		case O_DIR: *dir = optarg; break;
		case O_POS: o->position_file = optarg; break;
		case O_JSON: kg_env.json = true; break;
		case O_DAYS:
			errno = 0;
			o->keep_days = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-' || o->keep_days > 100000)
				return kg_err("audit: prune: --keep-days '%s' is not a number of days "
					      "(0 to 100000)", optarg), KG_EXIT_USAGE;
			o->by_days = true;
			break;
		case O_BYTES:
			if (kg_audit_parse_size(optarg, &o->keep_bytes))
				return kg_err("audit: prune: --keep-bytes '%s' is not a size (N, NK, "
					      "NM, NG, NT)", optarg), KG_EXIT_USAGE;
			o->by_bytes = true;
			break;
		default:
			return prune_usage(stderr, KG_EXIT_USAGE);
		}
	}
	if (optind < argc)
		return kg_err("audit: prune: unexpected argument '%s'", argv[optind]), KG_EXIT_USAGE;
	if (!o->by_days && !o->by_bytes)
		return kg_err("audit: prune: give --keep-days N and/or --keep-bytes SIZE"),
		       KG_EXIT_USAGE;
	return 0;
}

static int do_prune(int argc, char **argv)
{
	struct kg_audit_prune_result res;
	struct kg_audit_prune_opts o;
	const char *dir = NULL;
	int err;

	err = parse_prune(argc, argv, &dir, &o);
	if (err)
		return err < 0 ? KG_EXIT_OK : err;
	err = kg_audit_prune(dir, &o, &res);
	if (err)	/* said by kg_audit_prune */
		return err == -EBADMSG ? KG_EXIT_TAMPERED : KG_EXIT_FAIL;
	if (kg_env.json)
		printf("{\"segments\":%u,\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"first_seq\":%" PRIu64 "}\n", res.segments, res.records, res.bytes,
		       res.first_seq);
	else if (!res.segments)
		printf("audit: prune: nothing to remove\n");
	else
		printf("audit: pruned %u segment%s (%" PRIu64 " records, %" PRIu64 " bytes); "
		       "the trail starts at seq %" PRIu64 "\n", res.segments,
		       res.segments == 1 ? "" : "s", res.records, res.bytes, res.first_seq);
	return KG_EXIT_OK;
}

static const struct kg_cmd audit_cmds[] = {
	{ "verify",	do_verify,	"check the HMAC chain and the sealed head" },
	{ "query",	do_query,	"print the records matching every given filter" },
	{ "timeline",	do_timeline,	"a job's story, one line per record" },
	/* cli/cmd_audit_ship.c, cli/cmd_audit_export.c */
	{ "follow",	cmd_audit_follow, "stream records as they are committed" },
	{ "export",	cmd_audit_export, "records as a sealed batch, OCSF events or OTLP" },
	{ "prune",	do_prune,	"remove the oldest closed segments (retention)" },
};

int cmd_audit(int argc, char **argv)
{
	return kg_cmd_select("audit", audit_cmds, ARRAY_SIZE(audit_cmds), argc - 1, argv + 1, usage);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cli/cmd_audit_ship.c - 'kgate audit follow': the trail as a stream.
 * (export and verify --batch: cli/cmd_audit_export.c) */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record/audit.h"
#include "cli/cmd_audit_ship.h"
#include "cli/ship_common.h"
#include "cli/cmds.h"
#include "common.h"
#include "record/journal.h"
#include "record/tail.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

void kg_ship_install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	stop_requested = 0;
}

bool kg_ship_stopping(void)
{
	return stop_requested;
}

int kg_ship_start(const char *from, const char *posfile, const char *deflt,
		  struct kg_tail_pos *pos)
{
	char *txt = NULL;
	int err;

	if (!from && posfile) {
		size_t len;

		txt = kg_read_file(posfile, 256, &len);
		if (!txt && errno != ENOENT)
			return kg_err("audit: cannot read %s: %s", posfile, strerror(errno));
		if (txt) {
			while (len && (txt[len - 1] == '\n' || txt[len - 1] == ' '))
				txt[--len] = '\0';
			from = txt;
		}
	}
	err = kg_tail_parse_pos(from ? from : deflt, pos);
	if (err)
		kg_err("audit: position '%s' is not 'start', 'end', N or N:HASH%s%s",
		       from ? from : deflt, txt ? " (read from " : "", txt ? posfile : "");
	if (!err && txt)
		kg_info("audit: resuming after %s (from %s)", txt, posfile);
	free(txt);
	return err ? -1 : 0;
}

int kg_ship_save_position(const char *posfile, const char *pos)
{
	char tmp[4096];
	FILE *f;

	if (!posfile)
		return 0;
	if (kg_snprintf(tmp, sizeof(tmp), "%s.tmp", posfile))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", pos);
	if (fclose(f) || rename(tmp, posfile)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

bool kg_ship_filter_match(const struct kg_ship_filter *f, json_t *rec)
{
	const char *want[] = { f->trace, f->type, f->decision, f->rule };
	const char *key[] = { "trace", "type", "decision", "rule" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(want); i++) {
		const char *v;

		if (!want[i])
			continue;
		v = json_string_value(json_object_get(rec, key[i]));
		if (!v || strcmp(v, want[i]))
			return false;
	}
	return true;
}

bool kg_ship_filter_any(const struct kg_ship_filter *f)
{
	return f->trace || f->type || f->decision || f->rule;
}

/* ---- follow ---- */

struct follow {
	struct kg_ship_filter f;
	bool json;
	bool journal;		/* stdout is the journal: <N> priority prefixes */
	uint64_t printed;
};

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void print_human(json_t *o, bool journal)
{
	json_t *subj = json_object_get(o, "subject");
	const char *s;

	if (journal)
		printf("<%d>", kg_journal_record_priority(o));
	printf("%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(o, "seq")));
	printf(" %s", (s = sget(o, "time")) ? s : "-");
	printf(" %s", (s = sget(o, "type")) ? s : "-");
	if ((s = sget(o, "trace")))
		printf(" %s", s);
	if ((s = sget(o, "decision")))
		printf(" %s", s);
	if ((s = sget(json_object_get(o, "extra"), "outcome")))
		printf(" %s", s);
	if ((s = sget(o, "op")))
		printf(" %s", s);
	if ((s = sget(o, "target")))
		printf(" %s", s);
	if ((s = sget(o, "rule")))
		printf(" rule=%s", s);
	if ((s = sget(o, "reason")))
		printf(" (%s)", s);
	if ((s = sget(o, "mechanism")))
		printf(" via %s", s);
	if (json_integer_value(json_object_get(subj, "pid")))
		printf(" pid=%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(subj, "pid")));
	if ((s = sget(subj, "comm")))
		printf(" comm=%s", s);
	printf("\n");
}

static int emit(const char *line, size_t len, uint64_t seq, void *ctx)
{
	struct follow *fl = ctx;
	json_t *o = NULL;

	(void)seq;
	if (!fl->json || kg_ship_filter_any(&fl->f)) {
		o = json_loadb(line, len, 0, NULL);
		if (!o)
			return 0;	/* not a record: skipped (counted by verify) */
		if (!kg_ship_filter_match(&fl->f, o)) {
			json_decref(o);
			return 0;
		}
	}
	if (fl->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	} else {
		print_human(o, fl->journal);
	}
	json_decref(o);
	if (ferror(stdout))
		return 1;	/* not taken: the position stays before it */
	fl->printed++;
	return 0;
}

static void follow_usage(FILE *f)
{
	fprintf(f,
		"usage: kgate audit follow [--dir DIR] [--json] [--from POSITION]\n"
		"                          [--position-file FILE] [--once]\n"
		"                          [--trace ID] [--type T] [--decision D] [--rule R]\n"
		"\n"
		"prints records as they are committed, in seq order, across rotation\n"
		"(--json: the sealed lines as they are in the trail, one per line)\n"
		"POSITION  end (default): only new records; start: from seq 1;\n"
		"          N or N:HASH: after seq N (HASH, a prefix of that record's hash,\n"
		"          checks the position belongs to this trail)\n"
		"--position-file FILE  resume from FILE when it exists (and no --from);\n"
		"          the position is written there after every batch printed\n"
		"--once    print what is committed now, then exit\n"
		"on exit (SIGINT/SIGTERM, --once) the resume position is printed on stderr\n");
}

int cmd_audit_follow(int argc, char **argv)
{
	enum { O_DIR = 256, O_JSON, O_FROM, O_POSFILE, O_ONCE, O_TRACE, O_TYPE, O_DECISION, O_RULE };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "dir", required_argument, NULL, O_DIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "from", required_argument, NULL, O_FROM },
		{ "position-file", required_argument, NULL, O_POSFILE },
		{ "once", no_argument, NULL, O_ONCE },
		{ "trace", required_argument, NULL, O_TRACE },
		{ "type", required_argument, NULL, O_TYPE },
		{ "decision", required_argument, NULL, O_DECISION },
		{ "rule", required_argument, NULL, O_RULE },
		{ 0 },
	};
	const char *dir = NULL, *from = NULL, *posfile = NULL;
	struct follow fl = { 0 };
	struct kg_tail_pos pos;
	struct kg_tail *t;
	char position[128], saved[128] = "";
	bool once = false;
	int c, rc = KG_EXIT_OK;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': follow_usage(stdout); return KG_EXIT_OK;
		case O_DIR: dir = optarg; break;
		case O_JSON: fl.json = true; break;
		case O_FROM: from = optarg; break;
		case O_POSFILE: posfile = optarg; break;
		case O_ONCE: once = true; break;
		case O_TRACE: fl.f.trace = optarg; break;
		case O_TYPE: fl.f.type = optarg; break;
		case O_DECISION: fl.f.decision = optarg; break;
		case O_RULE: fl.f.rule = optarg; break;
		default: follow_usage(stderr); return KG_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		follow_usage(stderr);
		return KG_EXIT_USAGE;
	}
	if (kg_ship_start(from, posfile, "end", &pos))
		return KG_EXIT_USAGE;
	fl.journal = !fl.json && kg_journal_stream(STDOUT_FILENO);
	t = kg_tail_open(dir, &pos);
	if (!t)
		return kg_err("audit: cannot follow %s: %s", dir ? dir : kg_audit_dir(),
			      strerror(errno)), KG_EXIT_FAIL;
	kg_ship_install_signals();
	while (!kg_ship_stopping()) {
		int n = kg_tail_poll(t, emit, &fl);

		if (n < 0) {
			if (n != -ESTALE)
				kg_err("audit: follow: %s", strerror(-n));
			rc = KG_EXIT_FAIL;
			break;
		}
		fflush(stdout);
		if (ferror(stdout))
			break;	/* reader gone: the position says where to resume */
		kg_tail_position(t, position, sizeof(position));
		if (posfile && strcmp(position, saved)) {
			int err = kg_ship_save_position(posfile, position);

			if (err)
				kg_warn("audit: cannot write %s: %s", posfile, strerror(-err));
			else
				memcpy(saved, position, sizeof(saved));
		}
		if (once)
			break;
		kg_tail_wait(t, 500);
	}
	kg_tail_position(t, position, sizeof(position));
	if (kg_tail_missing(t))
		kg_warn("audit: %" PRIu64 " records missing from the trail were skipped",
			kg_tail_missing(t));
	fprintf(stderr, "kgate: audit follow: %" PRIu64 " records; resume with --from %s\n",
		fl.printed, position);
	kg_tail_close(t);
	return rc;
}

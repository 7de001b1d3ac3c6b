// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* follow.c - print one job's decisions by following the audit trail. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "record/audit.h"
#include "common.h"
#include "record/follow.h"
#include "record/journal.h"
#include "record/tail.h"

struct kg_follow {
	struct kg_tail *tail;	/* record/tail.c: follows rotation */
	char trace[64];
	FILE *out;
	unsigned long refused, audited;
	int printed;
};

struct kg_follow *kg_follow_open(const char *dir, const char *trace, FILE *out)
{
	struct kg_follow *f = calloc(1, sizeof(*f));
	struct kg_tail_pos end = { .at_end = true };

	if (!f)
		return NULL;
	kg_strlcpy(f->trace, trace, sizeof(f->trace));
	f->out = out;
	f->tail = kg_tail_open(dir, &end);
	if (!f->tail) {
		free(f);
		return NULL;
	}
	return f;
}

/* How many decisions a record stands for: extra.count (identical ones
 * folded into it, aggregated throttle refusals), 1 when it has none. */
static unsigned long record_count(json_t *rec)
{
	json_t *count = json_object_get(json_object_get(rec, "extra"), "count");

	return json_is_integer(count) && json_integer_value(count) > 0
		       ? (unsigned long)json_integer_value(count) : 1;
}

static void print_record(FILE *out, json_t *rec)
{
	json_t *subj = json_object_get(rec, "subject"), *extra = json_object_get(rec, "extra");
	const char *outcome = json_string_value(json_object_get(extra, "outcome"));
	unsigned long count = record_count(rec);
	char times[48] = "";

	/* under systemd (JOURNAL_STREAM): the record's syslog priority */
	if (kg_journal_stderr())
		fprintf(out, "<%d>", kg_journal_record_priority(rec));
	if (json_is_true(json_object_get(extra, "at_job_end")))
		snprintf(times, sizeof(times), " (%lu time%s, counted at job end)", count,
			 count == 1 ? "" : "s");
	else if (count > 1)
		snprintf(times, sizeof(times), " (%lu times)", count);
	fprintf(out, "kgate: %-16s %-7s %-13s %s%s  [rule %s, %s, pid %lld %s]\n",
		json_string_value(json_object_get(rec, "decision")) ?: "-",
		outcome && !strcmp(outcome, "refused") ? "REFUSED" : "allowed",
		json_string_value(json_object_get(rec, "op")) ?: "-",
		json_string_value(json_object_get(rec, "target")) ?: "-", times,
		json_string_value(json_object_get(rec, "rule")) ?: "-",
		json_string_value(json_object_get(rec, "mechanism")) ?: "-",
		(long long)json_integer_value(json_object_get(subj, "pid")),
		json_string_value(json_object_get(subj, "comm")) ?: "");
}

static int handle_line(const char *line, size_t len, uint64_t seq, void *ctx)
{
	struct kg_follow *f = ctx;
	json_t *rec;
	const char *trace, *type;

	(void)seq;
	/* a cheap filter before parsing: the trace id appears verbatim */
	if (!memmem(line, len, f->trace, strlen(f->trace)))
		return 0;
	rec = json_loadb(line, len, 0, NULL);
	if (!rec)
		return 0;
	trace = json_string_value(json_object_get(rec, "trace"));
	type = json_string_value(json_object_get(rec, "type"));
	if (trace && type && !strcmp(trace, f->trace) && !strcmp(type, "decision")) {
		const char *outcome = json_string_value(json_object_get(
			json_object_get(rec, "extra"), "outcome"));
		const char *decision = json_string_value(json_object_get(rec, "decision"));

		if (outcome && !strcmp(outcome, "refused"))
			f->refused += record_count(rec);
		else if (decision && !strcmp(decision, "audit"))
			f->audited += record_count(rec);
		if (f->out)
			print_record(f->out, rec);
		f->printed++;
	}
	json_decref(rec);
	return 0;
}

int kg_follow_poll(struct kg_follow *f)
{
	f->printed = 0;
	kg_tail_poll(f->tail, handle_line, f);
	if (f->out)
		fflush(f->out);
	return f->printed;
}

void kg_follow_counts(const struct kg_follow *f, unsigned long *refused, unsigned long *audited)
{
	*refused = f ? f->refused : 0;
	*audited = f ? f->audited : 0;
}

void kg_follow_close(struct kg_follow *f)
{
	if (!f)
		return;
	kg_tail_close(f->tail);
	free(f);
}

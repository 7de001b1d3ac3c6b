// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* follow.c - print one job's decisions by following the audit trail. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "common.h"
#include "follow.h"

struct kg_follow {
	char *dir;
	char trace[64];
	FILE *out;
	char path[4096];	/* the active segment */
	ino_t ino;
	long offset;
	unsigned long refused, audited;
};

static int active_segment(const char *dir, char *buf, size_t len)
{
	char **paths = NULL;
	int n = 0, err;

	err = kg_audit_list_segments(dir, &paths, &n);
	if (err || n == 0) {
		kg_audit_free_list(paths, n);
		return err ? err : -ENOENT;
	}
	err = kg_strlcpy(buf, paths[n - 1], len) ? -ENAMETOOLONG : 0;
	kg_audit_free_list(paths, n);
	return err;
}

static void reset_to_end(struct kg_follow *f)
{
	struct stat st;

	if (active_segment(f->dir, f->path, sizeof(f->path)) || stat(f->path, &st)) {
		f->path[0] = '\0';
		return;
	}
	f->ino = st.st_ino;
	f->offset = st.st_size;
}

struct kg_follow *kg_follow_open(const char *dir, const char *trace, FILE *out)
{
	struct kg_follow *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->dir = strdup(dir ? dir : kg_audit_dir());
	kg_strlcpy(f->trace, trace, sizeof(f->trace));
	f->out = out;
	if (!f->dir) {
		free(f);
		return NULL;
	}
	reset_to_end(f);
	return f;
}

static void print_record(FILE *out, json_t *rec)
{
	json_t *subj = json_object_get(rec, "subject"), *extra = json_object_get(rec, "extra");
	const char *outcome = json_string_value(json_object_get(extra, "outcome"));

	fprintf(out, "kgate: %-16s %-7s %-13s %s  [rule %s, %s, pid %lld %s]\n",
		json_string_value(json_object_get(rec, "decision")) ?: "-",
		outcome && !strcmp(outcome, "refused") ? "REFUSED" : "allowed",
		json_string_value(json_object_get(rec, "op")) ?: "-",
		json_string_value(json_object_get(rec, "target")) ?: "-",
		json_string_value(json_object_get(rec, "rule")) ?: "-",
		json_string_value(json_object_get(rec, "mechanism")) ?: "-",
		(long long)json_integer_value(json_object_get(subj, "pid")),
		json_string_value(json_object_get(subj, "comm")) ?: "");
}

static void handle_line(struct kg_follow *f, const char *line, int *printed)
{
	json_t *rec = json_loads(line, 0, NULL);
	const char *trace, *type;

	if (!rec)
		return;
	trace = json_string_value(json_object_get(rec, "trace"));
	type = json_string_value(json_object_get(rec, "type"));
	if (trace && type && !strcmp(trace, f->trace) && !strcmp(type, "decision")) {
		const char *outcome = json_string_value(json_object_get(
			json_object_get(rec, "extra"), "outcome"));
		const char *decision = json_string_value(json_object_get(rec, "decision"));

		if (outcome && !strcmp(outcome, "refused"))
			f->refused++;
		else if (decision && !strcmp(decision, "audit"))
			f->audited++;
		if (f->out)
			print_record(f->out, rec);
		(*printed)++;
	}
	json_decref(rec);
}

int kg_follow_poll(struct kg_follow *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct stat st;
	int printed = 0;
	FILE *in;

	if (!f->path[0] || stat(f->path, &st) || st.st_ino != f->ino || st.st_size < f->offset) {
		/* rotated (or created since): start over at the new segment */
		reset_to_end(f);
		if (f->path[0])
			f->offset = 0;
		return 0;
	}
	if (st.st_size == f->offset)
		return 0;
	in = fopen(f->path, "r");
	if (!in)
		return 0;
	fseek(in, f->offset, SEEK_SET);
	while ((n = getline(&line, &cap, in)) > 0) {
		if (line[n - 1] != '\n')
			break;	/* incomplete: read it again next time */
		f->offset += n;
		handle_line(f, line, &printed);
	}
	free(line);
	fclose(in);
	if (f->out)
		fflush(f->out);
	return printed;
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
	free(f->dir);
	free(f);
}

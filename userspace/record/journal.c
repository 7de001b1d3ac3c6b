// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/journal.c - output read by systemd's journal (see journal.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "record/journal.h"

bool kg_journal_stream(int fd)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(fd, &st))
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool kg_journal_stderr(void)
{
	static int cached = -1;

	if (cached < 0)
		cached = kg_journal_stream(2);
	return cached;
}

struct lines {
	FILE *under;
	int prio;
	char buf[4096];
	size_t len;
};

static void emit_line(struct lines *l)
{
	bool has = l->len >= 3 && l->buf[0] == '<' && l->buf[1] >= '0' && l->buf[1] <= '7' &&
		   l->buf[2] == '>';

	if (!has)
		fprintf(l->under, "<%d>", l->prio);
	fwrite(l->buf, 1, l->len, l->under);
	fputc('\n', l->under);
	fflush(l->under);
	l->len = 0;
}

static ssize_t lines_write(void *cookie, const char *data, size_t size)
{
	struct lines *l = cookie;
	size_t i;

	for (i = 0; i < size; i++) {
		if (data[i] == '\n') {
			emit_line(l);
			continue;
		}
		if (l->len == sizeof(l->buf))	/* an endless line: cut it */
			emit_line(l);
		l->buf[l->len++] = data[i];
	}
	return (ssize_t)size;
}

static int lines_close(void *cookie)
{
	struct lines *l = cookie;

	if (l->len)
		emit_line(l);
	free(l);
	return 0;
}

FILE *kg_journal_lines(FILE *under, int prio)
{
	cookie_io_functions_t io = { .write = lines_write, .close = lines_close };
	struct lines *l = calloc(1, sizeof(*l));
	FILE *f;

	if (!l)
		return NULL;
	l->under = under;
	l->prio = prio;
	f = fopencookie(l, "w", io);
	if (!f) {
		free(l);
		return NULL;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

static bool is(json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v && !strcmp(v, want);
}

int kg_journal_record_priority(json_t *rec)
{
	json_t *extra = json_object_get(rec, "extra");

	if (is(rec, "type", "recovery"))
		return 3;
	if (is(rec, "type", "events_lost") || is(extra, "outcome", "refused") ||
	    is(rec, "decision", "deny") || is(rec, "decision", "denied"))
		return 4;
	if (is(rec, "decision", "audit") || is(rec, "decision", "require_approval") ||
	    is(rec, "decision", "requested"))
		return 5;
	return 6;
}

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

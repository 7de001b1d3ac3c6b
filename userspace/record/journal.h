/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/journal.h - output read by systemd's journal.
 *
 * systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stdout/stderr
 * is connected to the journal (systemd.exec(5)); a line starting with
 * "<N>" then carries syslog priority N (sd-daemon(3), SyslogLevelPrefix=
 * is on by default).
 */
#ifndef KGATE_RECORD_JOURNAL_H
#define KGATE_RECORD_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>

#include <stdio.h>

/* fd is the stream JOURNAL_STREAM names (same device and inode). */
bool kg_journal_stream(int fd);
/* kg_journal_stream(2), checked once per process. */
bool kg_journal_stderr(void);
/* A stream that writes each line to under with "<prio>" in front (a line
 * that already starts with "<N>" keeps its own); for the lines kgate run
 * prints about a job (spec->live). NULL + errno. Close it with fclose. */
FILE *kg_journal_lines(FILE *under, int prio);
/* Syslog priority of an audit record: 3 (err) for a recovery, 4 (warning)
 * for a refusal or lost events, 5 (notice) for audit-only decisions and
 * approvals asked, 6 (info) otherwise. */
int kg_journal_record_priority(json_t *rec);

#endif

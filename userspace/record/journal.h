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

/* fd is the stream JOURNAL_STREAM names (same device and inode). */
bool kg_journal_stream(int fd);
/* Syslog priority of an audit record: 3 (err) for a recovery, 4 (warning)
 * for a refusal or lost events, 5 (notice) for audit-only decisions and
 * approvals asked, 6 (info) otherwise. */
int kg_journal_record_priority(json_t *rec);

#endif

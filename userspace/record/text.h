/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/text.h - the trail's text forms: hostile bytes escaped reversibly,
 * and its times (RFC 3339 with nanoseconds, UTC).  Included by audit.h.
 */
#ifndef KGATE_RECORD_TEXT_H
#define KGATE_RECORD_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Reversible escaping of hostile bytes: valid UTF-8 stays, '\' becomes
 * "\\", control bytes, DEL and bytes of invalid UTF-8 become "\xNN".
 * Returns a malloc'd string (NULL + errno). */
char *kg_audit_escape(const char *in, size_t len);
/* Inverse; returns malloc'd bytes, *len_out set (NULL + EINVAL if malformed). */
char *kg_audit_unescape(const char *in, size_t *len_out);
/* Length of a valid, printable UTF-8 sequence at s (2..4 bytes), else 0.
 * C1 controls (U+0080..U+009F) count as unprintable. */
size_t kg_audit_utf8_seq(const unsigned char *s, size_t n);

/* RFC 3339 with nanoseconds in UTC, e.g. 2024-05-01T12:00:00.000000001Z;
 * buf needs 40 bytes. */
void kg_audit_format_time(uint64_t real_ns, char *buf, size_t size);
/* RFC 3339 (any offset, optional fraction) or unix seconds ("1714564800",
 * "1714564800.5"). 0 / -EINVAL. */
int kg_audit_parse_time(const char *s, uint64_t *ns_out);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/ocsf.h - audit records as OCSF 1.1.0 events (docs/audit-format.md,
 * "OCSF export", maps every member).
 */
#ifndef KGATE_RECORD_OCSF_H
#define KGATE_RECORD_OCSF_H

#include <jansson.h>
#include <stddef.h>

#define KG_OCSF_VERSION "1.1.0"

/* One OCSF event for the parsed record rec (its sealed line is kept in
 * raw_data, so the event can be verified against the trail). host may be
 * NULL. New reference, NULL when out of memory. */
json_t *kg_ocsf_event(json_t *rec, const char *line, size_t len, const char *host);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/otlp.h - audit records to an OpenTelemetry collector: OTLP logs
 * over HTTP with JSON encoding (opentelemetry-proto, ExportLogsServiceRequest),
 * posted with libcurl.  Runs in the exporting process (`kgate audit export
 * --otlp`), never in the recorder: the trail is the buffer, a collector that
 * is down or slow delays the export, never a decision.
 */
#ifndef KGATE_RECORD_OTLP_H
#define KGATE_RECORD_OTLP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct kg_otlp;

/* url e.g. http://127.0.0.1:4318/v1/logs; headers: "Name: value" strings
 * (NULL-terminated list, may be NULL). NULL + errno. */
struct kg_otlp *kg_otlp_new(const char *url, const char *const *headers, unsigned timeout_ms);
void kg_otlp_free(struct kg_otlp *o);

/* One attempt. Returns 0 when the collector accepted the batch (2xx),
 * 1 when it may accept it later (no connection, timeout, 408, 429, 5xx),
 * 2 when it never will (another 4xx). *status = HTTP status (0 = none);
 * err gets a short description. */
int kg_otlp_post(struct kg_otlp *o, const char *body, size_t len, long *status,
		 char *err, size_t errsz);

/* The request for a batch of records: recs[i] parsed, lines[i] sealed
 * lines; ocsf = bodies are OCSF events (else the sealed line as is); seal
 * = the envelope (kgate.seal scope attribute). New reference. */
json_t *kg_otlp_request(json_t *const *recs, char *const *lines, const size_t *lens, size_t n,
			bool ocsf, json_t *seal, const char *host);

#endif

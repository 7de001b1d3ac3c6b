// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/otlp.c - OTLP/HTTP JSON logs export (see otlp.h). */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/audit.h"
#include "common.h"
#include "record/journal.h"
#include "record/ocsf.h"
#include "record/otlp.h"

struct kg_otlp {
	CURL *curl;
	struct curl_slist *headers;
	char *url;
};

static size_t discard(char *p, size_t sz, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return sz * n;
}

struct kg_otlp *kg_otlp_new(const char *url, const char *const *headers, unsigned timeout_ms)
{
	struct kg_otlp *o;
	static bool inited;

	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		errno = EINVAL;
		return NULL;
	}
	if (!inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
			errno = ENOMEM;
			return NULL;
		}
		inited = true;
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->url = strdup(url);
	o->curl = curl_easy_init();
	o->headers = curl_slist_append(NULL, "Content-Type: application/json");
	for (; headers && *headers && o->headers; headers++)
		o->headers = curl_slist_append(o->headers, *headers);
	if (!o->url || !o->curl || !o->headers) {
		kg_otlp_free(o);
		errno = ENOMEM;
		return NULL;
	}
	curl_easy_setopt(o->curl, CURLOPT_URL, o->url);
	curl_easy_setopt(o->curl, CURLOPT_HTTPHEADER, o->headers);
	curl_easy_setopt(o->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(o->curl, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 10000));
	curl_easy_setopt(o->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(o->curl, CURLOPT_WRITEFUNCTION, discard);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(o->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	return o;
}

void kg_otlp_free(struct kg_otlp *o)
{
	if (!o)
		return;
	if (o->curl)
		curl_easy_cleanup(o->curl);
	curl_slist_free_all(o->headers);
	free(o->url);
	free(o);
}

int kg_otlp_post(struct kg_otlp *o, const char *body, size_t len, long *status,
		 char *err, size_t errsz)
{
	CURLcode rc;

	*status = 0;
	curl_easy_setopt(o->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(o->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	rc = curl_easy_perform(o->curl);
	if (rc != CURLE_OK) {
		snprintf(err, errsz, "%s", curl_easy_strerror(rc));
		return 1;
	}
	curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, status);
	snprintf(err, errsz, "HTTP %ld", *status);
	if (*status >= 200 && *status < 300)
		return 0;
	if (*status == 408 || *status == 429 || *status >= 500)
		return 1;
	return 2;
}

static json_t *kv_str(const char *k, const char *v)
{
	return json_pack("{s:s,s:{s:s}}", "key", k, "value", "stringValue", v ? v : "");
}

/* OTLP JSON: 64-bit integers are decimal strings */
static json_t *kv_int(const char *k, json_int_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, v);
	return json_pack("{s:s,s:{s:s}}", "key", k, "value", "intValue", buf);
}

static void add_str(json_t *attrs, const char *k, json_t *rec, const char *member)
{
	const char *v = json_string_value(json_object_get(rec, member));

	if (v)
		json_array_append_new(attrs, kv_str(k, v));
}

/* syslog priority -> OpenTelemetry SeverityNumber and text */
static void severity(int prio, int *num, const char **text)
{
	switch (prio) {
	case 3: *num = 17; *text = "ERROR"; break;
	case 4: *num = 13; *text = "WARN"; break;
	case 5: *num = 10; *text = "INFO2"; break;
	default: *num = 9; *text = "INFO"; break;
	}
}

json_t *kg_otlp_request(json_t *const *recs, char *const *lines, const size_t *lens, size_t n,
			bool ocsf, json_t *seal, const char *host)
{
	json_t *logs = json_array(), *req, *scope_attrs = json_array(), *res_attrs = json_array();
	char now[32], *sealtxt = seal ? json_dumps(seal, JSON_COMPACT) : NULL;
	size_t i;

	snprintf(now, sizeof(now), "%" PRIu64, kg_now_real_ns());
	for (i = 0; logs && i < n; i++) {
		json_t *rec = recs[i], *attrs = json_array(), *lr, *body;
		const char *t = json_string_value(json_object_get(rec, "time"));
		char *line = strndup(lines[i], lens[i]), ts[32] = "0";
		uint64_t ns = 0;
		const char *stext;
		int snum;

		if (t && !kg_audit_parse_time(t, &ns))
			snprintf(ts, sizeof(ts), "%" PRIu64, ns);
		severity(kg_journal_record_priority(rec), &snum, &stext);
		json_array_append_new(attrs, kv_int("kgate.seq",
						    json_integer_value(json_object_get(rec, "seq"))));
		add_str(attrs, "kgate.type", rec, "type");
		add_str(attrs, "kgate.trace", rec, "trace");
		add_str(attrs, "kgate.decision", rec, "decision");
		add_str(attrs, "kgate.op", rec, "op");
		add_str(attrs, "kgate.rule", rec, "rule");
		if (ocsf) {
			json_t *ev = kg_ocsf_event(rec, lines[i], lens[i], host);
			char *evtxt;

			/* the sealed line travels once, as kgate.record */
			json_object_del(ev, "raw_data");
			evtxt = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
			body = json_pack("{s:s}", "stringValue", evtxt ? evtxt : "");
			json_array_append_new(attrs, kv_str("kgate.record", line));
			free(evtxt);
			json_decref(ev);
		} else {
			body = json_pack("{s:s}", "stringValue", line ? line : "");
		}
		lr = json_pack("{s:s,s:s,s:i,s:s,s:o,s:o}", "timeUnixNano", ts,
			       "observedTimeUnixNano", now, "severityNumber", snum,
			       "severityText", stext, "body", body, "attributes", attrs);
		json_array_append_new(logs, lr);
		free(line);
	}
	json_array_append_new(res_attrs, kv_str("service.name", "kgate"));
	if (host)
		json_array_append_new(res_attrs, kv_str("host.name", host));
	if (sealtxt)
		json_array_append_new(scope_attrs, kv_str("kgate.seal", sealtxt));
	json_array_append_new(scope_attrs, kv_str("kgate.format", ocsf ? "ocsf-" KG_OCSF_VERSION :
						  "kgate-jsonl"));
	free(sealtxt);
	req = json_pack("{s:[{s:{s:o},s:[{s:{s:s,s:s,s:o},s:o}]}]}", "resourceLogs",
			"resource", "attributes", res_attrs, "scopeLogs", "scope", "name",
			"kgate.audit", "version", "1", "attributes", scope_attrs,
			"logRecords", logs);
	return req;
}

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * api/internal.h - what the HTTP API's files share: the server, one request
 * being answered, the routing table, the event feed.
 */
#ifndef KGATE_API_INTERNAL_H
#define KGATE_API_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/http.h"
#include "api/tokens.h"
#include "approve/approvals.h"
#include "record/audit.h"
#include "daemon/service.h"

#define KG_API_MAX_BODY		4096	/* a decision is a few dozen bytes */
#define KG_API_NOTE_MAX		255	/* bytes, as struct kg_approval keeps */

struct kg_feed;

/* Failed authentications of one client address. */
struct kg_api_offender {
	unsigned char addr[16];		/* IPv4-mapped for IPv4 */
	uint64_t window_start_ns;	/* CLOCK_MONOTONIC */
	unsigned int failures;
	bool reported;			/* audited once per window */
};

#define KG_API_OFFENDERS 256

struct kg_api {
	struct kg_api_cfg cfg;
	struct MHD_Daemon *mhd;
	int lfd;
	/* the acceptor: takes a connection only while fewer than
	 * max_connections are open, so that the others wait in the listen
	 * backlog instead of being accepted and closed */
	pthread_t acceptor;
	bool acceptor_started;
	int wake[2];			/* a pipe: stop */
	pthread_mutex_t conn_mu;
	pthread_cond_t conn_cond;
	unsigned int open_conns;
	bool stopping;
	char url[160];
	char url_file[4200];		/* <state dir>/http.json */
	char *cert, *key;		/* PEM text, for libmicrohttpd */
	struct kg_token_store *tokens;
	/* the approval queue (pinned maps, an audit handle of its own); a
	 * kg_approvals and its audit handle serve one thread at a time */
	pthread_mutex_t q_mu;
	struct kg_approvals *q;
	pthread_mutex_t audit_mu;	/* the API's own records (start, stop, 429s) */
	struct kg_audit *audit;
	pthread_mutex_t lim_mu;
	struct kg_api_offender offenders[KG_API_OFFENDERS];
	struct kg_feed *feed;
	struct kg_dispatch *dispatch;	/* POST /api/v1/jobs; NULL = off */
	atomic_uint streams;
	atomic_uint_fast64_t by_status[6];	/* 1xx..5xx; [0] = other */
	atomic_uint_fast64_t auth_failures, rate_limited;
};

enum kg_api_access {
	KG_API_OPEN,		/* anyone: the page, /healthz */
	KG_API_READ,		/* a token, or anonymous reads when enabled */
	KG_API_DECIDE,		/* a token, always */
};

struct kg_api_req;
typedef void (*kg_api_handler)(struct kg_api_req *r);

/* One route.  Adding one (POST /api/v1/jobs, issue 17) is a line in
 * kg_api_routes[] and a handler: routing, authentication, the body limit
 * and the check of query parameters come with it. */
struct kg_api_route {
	const char *method;		/* "GET", "POST" (HEAD is answered as GET) */
	const char *path;		/* segments; "{id}" matches one of [A-Za-z0-9._-] */
	enum kg_api_access access;
	size_t max_body;		/* 0 = no body */
	const char *const *params;	/* the query parameters it takes (NULL-terminated) */
	kg_api_handler fn;
};

extern const struct kg_api_route kg_api_routes[];
extern const size_t kg_api_nroutes;

/* One request, from its headers to its response. */
struct kg_api_req {
	struct kg_api *api;
	struct MHD_Connection *conn;
	const struct kg_api_route *route;
	char id[64];			/* the {id} of the path */
	struct kg_principal principal;
	char token_name[KG_TOKEN_NAME_MAX + 1];	/* "" = anonymous */
	char *body;
	size_t body_len;
	bool body_too_large;
	/* the response, set by the handler through the helpers below */
	struct MHD_Response *resp;
	unsigned int status;
	bool done;			/* a response was queued */
};

/* ---- responses (server.c) ---------------------------------------------------------- */

/* JSON (consumed): status and body. */
void kg_api_json(struct kg_api_req *r, unsigned int status, json_t *body);
/* {"error": {"code": CODE, "message": ...}} (plus `extra`'s members, consumed). */
void kg_api_error(struct kg_api_req *r, unsigned int status, const char *code, json_t *extra,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Static bytes (never freed) with a content type. */
void kg_api_static(struct kg_api_req *r, const void *data, size_t len, const char *type);
/* A prepared response (consumed). */
void kg_api_respond(struct kg_api_req *r, unsigned int status, struct MHD_Response *resp);
/* The security headers every response carries. */
void kg_api_headers(struct MHD_Response *resp, bool page);

/* A query parameter, or NULL. */
const char *kg_api_param(struct kg_api_req *r, const char *name);

/* ---- the event feed (feed.c) -------------------------------------------------------- */

struct kg_feed *kg_feed_start(void);
void kg_feed_stop(struct kg_feed *f);
/* Wake every stream (the server is stopping). */
void kg_feed_shutdown(struct kg_feed *f);
/* A Server-Sent Events response for this principal, resuming after
 * last_id (NULL = from now). */
struct MHD_Response *kg_feed_stream(struct kg_api *api, const struct kg_principal *p,
				    const char *last_id);
/* Counters for /metrics, appended to buf (Prometheus text). */
void kg_feed_metrics(struct kg_feed *f, char **buf, size_t *len, size_t *cap);

/* ---- POST /api/v1/jobs (dispatch*.c, api/dispatch.h) -------------------------------- */

struct kg_dispatch *kg_dispatch_open(const struct kg_api_cfg *cfg);
/* Stop the jobs still running (SIGTERM to their kgate run) and wait a
 * while for them; false when some did not end (then nothing is freed). */
bool kg_dispatch_close_wait(struct kg_dispatch *d);
void kg_dispatch_close(struct kg_dispatch *d);
void kg_dispatch_submit(struct kg_api_req *r);
void kg_dispatch_output(struct kg_api_req *r);
void kg_dispatch_stop(struct kg_api_req *r);
/* kgate_dispatch_* of /metrics (nothing when d is NULL). */
void kg_dispatch_metrics(struct kg_dispatch *d, char **buf, size_t *len, size_t *cap);
/* The dispatch side of a job this principal submitted (or sees all of). */
json_t *kg_dispatch_job_json(struct kg_api *api, const struct kg_principal *p, const char *trace);

/* ---- /metrics (metrics.c) and the page (web.c) ---------------------------------------- */

void kg_api_metrics(struct kg_api_req *r);
/* The embedded file at path ("/", "/app.js", ...), or false. */
bool kg_web_asset(const char *path, const void **data, size_t *len, const char **type);

/* Text building for metrics: printf-append to a growing buffer. */
void kg_api_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * api/http.h - kgate's HTTP API and approvals page (`kgate daemon --http`).
 *
 * Served by libmicrohttpd in its own threads (one per connection, a
 * bounded number of them), next to the daemon's main loop: nothing here
 * runs in the loop that consumes kernel events, serves the control socket
 * or beats the heartbeat, and nothing here waits for it.  The requests are
 * answered by the same functions as the control socket's (daemon/service.h)
 * over the same approval queue, with an identity taken from a bearer token
 * (api/tokens.h).  docs/api.md describes every route.
 */
#ifndef KGATE_API_HTTP_H
#define KGATE_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define KG_API_DEFAULT_ADDR	"127.0.0.1:8081"
#define KG_API_MAX_CONNECTIONS	64	/* default; more wait in the listen backlog */
#define KG_API_TIMEOUT_SEC	10	/* a connection idle this long is closed */
#define KG_API_MAX_STREAMS	16	/* GET /api/v1/events at once */
#define KG_API_AUTH_FAILURES	10	/* failed authentications per address ... */
#define KG_API_AUTH_WINDOW_SEC	60	/* ... in this window, then 429 until it ends */
#define KG_API_MAX_DISPATCH	16	/* --dispatch-policy files */

struct kg_api_cfg {
	const char *listen;		/* "ADDR:PORT", "[ADDR]:PORT"; port 0 = any free one */
	const char *cert_path;		/* PEM; both or neither: HTTPS */
	const char *key_path;
	bool read_anonymous;		/* GET routes without a token (everything visible) */
	bool plaintext_ok;		/* plain HTTP on a non-loopback address */
	unsigned int max_connections;	/* 0 = KG_API_MAX_CONNECTIONS */
	/* POST /api/v1/jobs: the policies jobs may be submitted under (by name) */
	const char *dispatch[KG_API_MAX_DISPATCH];
	size_t ndispatch;
};

struct kg_api;

/* Validate the configuration, bind, and start serving.  NULL (reported)
 * when it cannot: the daemon does not start half-configured. */
struct kg_api *kg_api_start(const struct kg_api_cfg *cfg);
/* Stop accepting, end the event streams, wait for the connections. */
void kg_api_stop(struct kg_api *api);

/* `kgate __dispatch FD`: the process of a job submitted with POST
 * /api/v1/jobs (api/dispatch_child.c); the daemon execs it, nobody else. */
int cmd_dispatch_child(int argc, char **argv);

#endif

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/server.c - the HTTP server: libmicrohttpd (which parses HTTP and
 * does TLS with GnuTLS), routing, authentication, limits.
 *
 * libmicrohttpd runs one thread per connection.  Connections are accepted
 * here, by one thread that takes a new one only while fewer than
 * max_connections are open, and handed to libmicrohttpd
 * (MHD_add_connection): while all are busy, new clients wait in the listen
 * backlog rather than being accepted and closed (which is what
 * libmicrohttpd's own connection limit does in this mode).  Each
 * connection has an idle timeout and a memory limit for its headers;
 * bodies are capped per route.  A request that fails a check is answered
 * 4xx before anything reads the queue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/internal.h"
#include "common.h"

/* Every page resource is kgate's own: no inline script or style, nothing
 * from elsewhere, no framing. */
#define PAGE_CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
		 "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define API_CSP "default-src 'none'; frame-ancestors 'none'; sandbox"

/* ---- responses ------------------------------------------------------------------------ */

void kg_api_headers(struct MHD_Response *resp, bool page)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "Content-Security-Policy", page ? PAGE_CSP : API_CSP);
}

void kg_api_respond(struct kg_api_req *r, unsigned int status, struct MHD_Response *resp)
{
	if (r->done || !resp) {
		if (resp)
			MHD_destroy_response(resp);
		return;
	}
	r->status = status;
	if (MHD_queue_response(r->conn, status, resp) == MHD_YES) {
		r->done = true;
		atomic_fetch_add(&r->api->by_status[status >= 100 && status < 600 ? status / 100 : 0], 1);
	}
	MHD_destroy_response(resp);
}

/* A JSON response (consumes body); NULL only when out of memory. */
static struct MHD_Response *json_resp(json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;
	size_t n;

	json_decref(body);
	if (!s)
		return NULL;
	n = strlen(s);
	/* one line, like the control socket's replies */
	{
		char *nl = realloc(s, n + 2);

		if (!nl) {
			free(s);
			return NULL;
		}
		s = nl;
	}
	s[n] = '\n';
	s[n + 1] = '\0';
	resp = MHD_create_response_from_buffer(n + 1, s, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(s);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
	kg_api_headers(resp, false);
	return resp;
}

void kg_api_json(struct kg_api_req *r, unsigned int status, json_t *body)
{
	struct MHD_Response *resp = json_resp(body);

	if (!resp) {
		static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":"
					  "\"out of memory\"}}\n";

		resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
						       MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return;
		MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
		kg_api_headers(resp, false);
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	kg_api_respond(r, status, resp);
}

static json_t *error_body(const char *code, json_t *extra, const char *fmt, va_list ap)
{
	char msg[512];
	json_t *body;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	if (body && extra)
		json_object_update(body, extra);
	json_decref(extra);
	return body;
}

void kg_api_error(struct kg_api_req *r, unsigned int status, const char *code, json_t *extra,
		  const char *fmt, ...)
{
	va_list ap;
	json_t *body;

	va_start(ap, fmt);
	body = error_body(code, extra, fmt, ap);
	va_end(ap);
	kg_api_json(r, status, body);
}

/* An error that names a header too: Allow, WWW-Authenticate, Retry-After. */
static void error_with_header(struct kg_api_req *r, unsigned int status, const char *code,
			      const char *hname, const char *hvalue, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static void error_with_header(struct kg_api_req *r, unsigned int status, const char *code,
			      const char *hname, const char *hvalue, const char *fmt, ...)
{
	struct MHD_Response *resp;
	va_list ap;
	json_t *body;

	va_start(ap, fmt);
	body = error_body(code, NULL, fmt, ap);
	va_end(ap);
	resp = json_resp(body);
	if (!resp)
		return;
	MHD_add_response_header(resp, hname, hvalue);
	kg_api_respond(r, status, resp);
}

void kg_api_static(struct kg_api_req *r, const void *data, size_t len, const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data,
								    MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return;
	MHD_add_response_header(resp, "Content-Type", type);
	kg_api_headers(resp, true);
	kg_api_respond(r, MHD_HTTP_OK, resp);
}

const char *kg_api_param(struct kg_api_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void kg_api_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = *cap - *len;

		va_start(ap, fmt);
		n = *buf ? vsnprintf(*buf + *len, room, fmt, ap) : -1;
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			*len += n;
			return;
		}
		{
			size_t ncap = *cap ? *cap * 2 : 4096;
			char *nb;

			while (n >= 0 && ncap < *len + (size_t)n + 1)
				ncap *= 2;
			nb = realloc(*buf, ncap);
			if (!nb)
				return;	/* the text stays short: the caller sends what it has */
			*buf = nb;
			*cap = ncap;
		}
	}
}

/* ---- failed authentications, per client address ------------------------------------------ */

static void client_addr(struct MHD_Connection *conn, unsigned char out[16], char *text, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
								     MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	memset(out, 0, 16);
	snprintf(text, len, "unknown");
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		out[10] = out[11] = 0xff;
		memcpy(out + 12, &in->sin_addr, 4);
		inet_ntop(AF_INET, &in->sin_addr, text, len);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(out, &in6->sin6_addr, 16);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, len);
	}
}

static struct kg_api_offender *offender(struct kg_api *api, const unsigned char addr[16],
					 uint64_t now, bool create)
{
	struct kg_api_offender *o, *oldest = NULL;
	const uint64_t window = KG_API_AUTH_WINDOW_SEC * 1000000000ull;
	size_t i;

	for (i = 0; i < KG_API_OFFENDERS; i++) {
		o = &api->offenders[i];
		if (o->window_start_ns && !memcmp(o->addr, addr, 16)) {
			if (now - o->window_start_ns >= window) {	/* a new window */
				o->window_start_ns = now;
				o->failures = 0;
				o->reported = false;
			}
			return o;
		}
		if (!oldest || o->window_start_ns < oldest->window_start_ns)
			oldest = o;
	}
	if (!create)
		return NULL;
	/* the entry least recently started over (an empty one first) */
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->addr, addr, 16);
	oldest->window_start_ns = now;
	return oldest;
}

/* Seconds until this address may try again, 0 = it may now. */
static unsigned int limited(struct kg_api *api, const unsigned char addr[16])
{
	uint64_t now = kg_now_mono_ns(), end;
	struct kg_api_offender *o;
	unsigned int wait = 0;

	pthread_mutex_lock(&api->lim_mu);
	o = offender(api, addr, now, false);
	if (o && o->failures >= KG_API_AUTH_FAILURES) {
		end = o->window_start_ns + KG_API_AUTH_WINDOW_SEC * 1000000000ull;
		wait = end > now ? (unsigned int)((end - now) / 1000000000ull) + 1 : 1;
	}
	pthread_mutex_unlock(&api->lim_mu);
	return wait;
}

static void api_audit(struct kg_api *api, const char *op, const char *target, json_t *extra)
{
	struct kg_rec rec;

	kg_rec_init(&rec, "controller");
	kg_rec_int(&rec, "actor.uid", getuid());
	kg_rec_int(&rec, "subject.pid", getpid());
	kg_rec_str(&rec, "op", op);
	kg_rec_str(&rec, "target", target);
	kg_rec_str(&rec, "mechanism", "controller");
	kg_rec_extra(&rec, extra);
	pthread_mutex_lock(&api->audit_mu);
	if (api->audit && (kg_rec_append(api->audit, &rec) || kg_audit_flush(api->audit)))
		kg_warn("api: the audit record of %s could not be written", op);
	pthread_mutex_unlock(&api->audit_mu);
}

static void note_failure(struct kg_api *api, const unsigned char addr[16], const char *text)
{
	struct kg_api_offender *o;
	bool report = false;

	atomic_fetch_add(&api->auth_failures, 1);
	pthread_mutex_lock(&api->lim_mu);
	o = offender(api, addr, kg_now_mono_ns(), true);
	o->failures++;
	if (o->failures >= KG_API_AUTH_FAILURES && !o->reported)
		report = o->reported = true;
	pthread_mutex_unlock(&api->lim_mu);
	if (report) {
		json_t *extra = json_pack("{s:i,s:i}", "failures", KG_API_AUTH_FAILURES,
					  "window_sec", KG_API_AUTH_WINDOW_SEC);

		kg_warn("api: %d failed authentications from %s: refused (429) for the rest of "
			"%d s", KG_API_AUTH_FAILURES, text, KG_API_AUTH_WINDOW_SEC);
		api_audit(api, "http_auth_limited", text, extra);
		json_decref(extra);
	}
}

/* ---- routing ------------------------------------------------------------------------------ */

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Does url match the route's path?  The {id} segment goes to id. */
static bool path_match(const char *pattern, const char *url, char *id, size_t idlen)
{
	while (*pattern && *url) {
		if (!strncmp(pattern, "{id}", 4)) {
			size_t n = 0;

			while (url[n] && url[n] != '/') {
				if (!id_char(url[n]))
					return false;
				n++;
			}
			if (!n || n >= idlen)
				return false;
			memcpy(id, url, n);
			id[n] = '\0';
			url += n;
			pattern += 4;
			continue;
		}
		if (*pattern++ != *url++)
			return false;
	}
	return !*pattern && !*url;
}

/* The route for method and url; *path_known when another method has it. */
static const struct kg_api_route *route_for(const char *method, const char *url, char *id,
					    size_t idlen, char *allow, size_t allowlen)
{
	const struct kg_api_route *hit = NULL;
	size_t i;

	allow[0] = '\0';
	if (!strcmp(method, "HEAD"))
		method = "GET";
	for (i = 0; i < kg_api_nroutes; i++) {
		const struct kg_api_route *rt = &kg_api_routes[i];
		char tmp[64] = "";

		if (!path_match(rt->path, url, tmp, sizeof(tmp)))
			continue;
		if (!strcmp(rt->method, method)) {
			hit = rt;
			kg_strlcpy(id, tmp, idlen);
		}
		if (!strstr(allow, rt->method)) {
			size_t n = strlen(allow);

			snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "", rt->method);
			if (!strcmp(rt->method, "GET") && !strstr(allow, "HEAD")) {
				n = strlen(allow);
				snprintf(allow + n, allowlen - n, ", HEAD");
			}
		}
	}
	return hit;
}

struct param_check {
	const char *const *allowed;
	char bad[64];
	char dup[64];
	const char *seen[16];
	size_t nseen;
};

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct param_check *c = cls;
	const char *const *a;
	size_t i;

	(void)kind;
	(void)value;
	for (a = c->allowed; a && *a; a++)
		if (!strcmp(*a, key))
			break;
	if (!a || !*a) {
		kg_strlcpy(c->bad, key, sizeof(c->bad));
		return MHD_NO;
	}
	for (i = 0; i < c->nseen; i++)
		if (!strcmp(c->seen[i], key)) {
			kg_strlcpy(c->dup, key, sizeof(c->dup));
			return MHD_NO;
		}
	if (c->nseen < ARRAY_SIZE(c->seen))
		c->seen[c->nseen++] = *a;
	return MHD_YES;
}

/* ---- authentication ------------------------------------------------------------------------ */

static void principal_of_token(struct kg_principal *p, const struct kg_token *t)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	p->who.uid = t->uid;
	for (i = 0; i < t->ngids && p->who.ngids < ARRAY_SIZE(p->who.gids); i++)
		p->who.gids[p->who.ngids++] = t->gids[i];
	snprintf(p->who.via, sizeof(p->who.via), "token:%s", t->name);
	p->sees_all = t->uid == 0;
}

/* Who is asking: false when a response (401, 429, 5xx) was queued. */
static bool authenticate(struct kg_api_req *r)
{
	struct kg_api *api = r->api;
	const char *hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	struct kg_token t;
	unsigned int wait;
	int err;

	client_addr(r->conn, addr, text, sizeof(text));
	if (hdr && (wait = limited(api, addr))) {
		char secs[16];

		atomic_fetch_add(&api->rate_limited, 1);
		snprintf(secs, sizeof(secs), "%u", wait);
		error_with_header(r, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", "Retry-After", secs,
				  "too many failed authentications from this address: try again "
				  "in %u s", wait);
		return false;
	}
	if (!hdr) {
		if (r->route->access == KG_API_DECIDE || !api->cfg.read_anonymous) {
			error_with_header(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", "WWW-Authenticate",
					  "Bearer realm=\"kgate\"", "%s",
					  r->route->access == KG_API_DECIDE ?
				     "deciding needs a token: Authorization: Bearer <token>" :
				     "this needs a token: Authorization: Bearer <token>");
			return false;
		}
		memset(&r->principal, 0, sizeof(r->principal));
		r->principal.anonymous = true;
		r->principal.sees_all = true;	/* the operator opened reads to anyone */
		r->principal.who.uid = (uint32_t)-1;
		return true;
	}
	if (strncasecmp(hdr, "Bearer ", 7)) {
		note_failure(api, addr, text);
		error_with_header(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", "WWW-Authenticate",
				  "Bearer realm=\"kgate\"",
				  "the Authorization header must be \"Bearer <token>\"");
		return false;
	}
	hdr += 7;
	while (*hdr == ' ')
		hdr++;
	err = kg_token_store_check(api->tokens, hdr, &t);
	if (err == -EIO) {
		kg_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "token_store", NULL,
			     "the daemon cannot read or does not trust its token file");
		return false;
	}
	if (err) {
		note_failure(api, addr, text);
		error_with_header(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", "WWW-Authenticate",
				  "Bearer realm=\"kgate\", error=\"invalid_token\"",
				  "unknown or revoked token");
		return false;
	}
	principal_of_token(&r->principal, &t);
	kg_strlcpy(r->token_name, t.name, sizeof(r->token_name));
	return true;
}

/* Headers are in: route, parameters, authentication, what the body may be.
 * A failed check queues its response. */
static void begin(struct kg_api_req *r, const char *url, const char *method)
{
	const char *clen = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Transfer-Encoding");
	const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
	struct param_check pc = { 0 };
	char allow[64];
	bool has_body;
	unsigned long long n = 0;

	r->route = route_for(method, url, r->id, sizeof(r->id), allow, sizeof(allow));
	if (!r->route) {
		if (allow[0]) {
			error_with_header(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "Allow",
					  allow, "%s is not allowed here (allowed: %s)", method, allow);
			return;
		}
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such route: %s", url);
		return;
	}
	pc.allowed = r->route->params;
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_param, &pc);
	if (pc.bad[0]) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "unknown_parameter", NULL,
			     "unknown query parameter '%s'", pc.bad);
		return;
	}
	if (pc.dup[0]) {
		kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_parameter", NULL,
			     "query parameter '%s' given twice", pc.dup);
		return;
	}
	if (r->route->access != KG_API_OPEN && !authenticate(r))
		return;
	/* the body: its size and type before a byte of it is read */
	if (clen) {
		char *end;

		errno = 0;
		n = strtoull(clen, &end, 10);
		if (errno || *end || end == clen) {
			kg_api_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, "bad Content-Length");
			return;
		}
	}
	has_body = n > 0 || te;
	if (has_body && !r->route->max_body) {
		kg_api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
			     "%s %s takes no body", r->route->method, r->route->path);
		return;
	}
	if (n > r->route->max_body) {
		kg_api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
			     "the body may have at most %zu bytes", r->route->max_body);
		return;
	}
	if (has_body && (!ctype || strncasecmp(ctype, "application/json", 16) ||
			 (ctype[16] && ctype[16] != ';' && ctype[16] != ' '))) {
		kg_api_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
			     "the body must be application/json");
		return;
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct kg_api_req *r = *con_cls;

	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->api = cls;
		r->conn = conn;
		*con_cls = r;
		begin(r, url, method);
		return MHD_YES;
	}
	if (r->done) {
		/* answered early (an error): what still comes is not read */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->body_len + *upload_data_size > r->route->max_body) {
			/* a chunked body that outgrew the route's limit */
			*upload_data_size = 0;
			r->body_too_large = true;
			kg_api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
				     "the body may have at most %zu bytes", r->route->max_body);
			return r->done ? MHD_YES : MHD_NO;	/* else: close the connection */
		}
		{
			char *nb = realloc(r->body, r->body_len + *upload_data_size + 1);

			if (!nb)
				return MHD_NO;
			r->body = nb;
			memcpy(r->body + r->body_len, upload_data, *upload_data_size);
			r->body_len += *upload_data_size;
			r->body[r->body_len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	r->route->fn(r);
	if (!r->done)
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			     "the request could not be answered");
	return r->done ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct kg_api_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)why;
	if (r) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	kg_debug("api: libmicrohttpd: %s", msg);
}

/* ---- accepting ------------------------------------------------------------------------------ */

/* A connection ends (libmicrohttpd's clean-up, in its main thread). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct kg_api *api = cls;

	(void)conn;
	(void)socket_ctx;
	if (code != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	pthread_mutex_lock(&api->conn_mu);
	if (api->open_conns)
		api->open_conns--;
	pthread_cond_broadcast(&api->conn_cond);
	pthread_mutex_unlock(&api->conn_mu);
}

/* Connections are counted from accept() to their clean-up, so that
 * libmicrohttpd, which counts a shorter stretch of the same span, never
 * reaches its own limit: version 0.9.75 leaves a mutex locked when it
 * refuses a connection added from outside at that limit, which hangs it. */
static void *acceptor_main(void *arg)
{
	struct kg_api *api = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = api->lfd, .events = POLLIN },
				       { .fd = api->wake[0], .events = POLLIN } };
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		/* a free slot first: until then the kernel queues new clients */
		pthread_mutex_lock(&api->conn_mu);
		while (!api->stopping && api->open_conns >= api->cfg.max_connections)
			pthread_cond_wait(&api->conn_cond, &api->conn_mu);
		pthread_mutex_unlock(&api->conn_mu);
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;	/* stopping */
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(api->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				poll(NULL, 0, 100);	/* out of descriptors: let some close */
			continue;
		}
		pthread_mutex_lock(&api->conn_mu);
		api->open_conns++;
		pthread_mutex_unlock(&api->conn_mu);
		/* libmicrohttpd closes it when it cannot take it */
		if (MHD_add_connection(api->mhd, fd, (struct sockaddr *)&ss, sl) != MHD_YES) {
			kg_debug("api: a connection could not be served: %s", strerror(errno));
			on_connection(api, NULL, NULL, MHD_CONNECTION_NOTIFY_CLOSED);
		}
	}
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------------------- */

static bool loopback(const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (!memcmp(a->s6_addr, v4mapped, 12) &&
						   a->s6_addr[12] == 127);
	}
	return false;
}

/* "ADDR:PORT" or "[V6ADDR]:PORT" -> a bound, listening socket.  Plain
 * HTTP off loopback is refused before anything is bound, unless allowed. */
static int listen_on(const char *spec, bool plaintext, bool plaintext_ok, char *host_out,
		     size_t hostlen, int *port_out)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *colon;
	int fd, one = 1, err;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
			return kg_err("daemon: --http %s: expected [ADDRESS]:PORT", spec), -EINVAL;
		memcpy(host, spec + 1, close - spec - 1);
		host[close - spec - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host) ||
		    memchr(spec, ':', colon - spec))
			return kg_err("daemon: --http %s: expected ADDRESS:PORT "
				      "(an IPv6 address in brackets)", spec), -EINVAL;
		memcpy(host, spec, colon - spec);
		host[colon - spec] = '\0';
	}
	if (kg_strlcpy(port, colon + 1, sizeof(port)) || !port[0] ||
	    strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
		return kg_err("daemon: --http %s: the port must be 0..65535", spec), -EINVAL;
	err = getaddrinfo(host, port, &hints, &res);
	if (err || !res)
		return kg_err("daemon: --http %s: %s", spec, gai_strerror(err)), -EINVAL;
	if (plaintext && !plaintext_ok && !loopback(res->ai_addr)) {
		freeaddrinfo(res);
		return kg_err("daemon: --http %s is not a loopback address: tokens and decisions "
			      "would cross the network in clear; give --http-cert and --http-key "
			      "(or --http-plaintext if something else encrypts the traffic)", spec),
		       -EPERM;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		err = -errno;
		kg_err("daemon: --http %s: cannot listen: %s", spec, strerror(-err));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return err;
	}
	freeaddrinfo(res);
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host_out, hostlen);
		*port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host_out, hostlen);
		*port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return fd;
}

static char *read_pem(const char *what, const char *path)
{
	char *s = kg_read_regular_file(path, 1 << 20, NULL);

	if (!s)
		kg_err("daemon: %s %s: %s", what, path, strerror(errno));
	return s;
}

/* Where the daemon says it listens: <state dir>/http.json. */
static void write_url_file(struct kg_api *api)
{
	json_t *o = json_pack("{s:s,s:i,s:b}", "url", api->url, "pid", (int)getpid(), "tls",
			      api->cert != NULL);
	char tmp[4300];

	if (!o || kg_snprintf(api->url_file, sizeof(api->url_file), "%s/http.json", kg_state_dir()) ||
	    kg_snprintf(tmp, sizeof(tmp), "%s.tmp", api->url_file) ||
	    json_dump_file(o, tmp, JSON_COMPACT) || chmod(tmp, 0644) || rename(tmp, api->url_file)) {
		kg_warn("api: cannot write %s", api->url_file);
		api->url_file[0] = '\0';
	}
	json_decref(o);
}

static void api_free(struct kg_api *api)
{
	if (!api)
		return;
	if (api->lfd >= 0)
		close(api->lfd);
	if (api->wake[0] >= 0)
		close(api->wake[0]);
	if (api->wake[1] >= 0)
		close(api->wake[1]);
	pthread_mutex_destroy(&api->conn_mu);
	pthread_cond_destroy(&api->conn_cond);
	kg_feed_stop(api->feed);
	kg_dispatch_close(api->dispatch);
	kg_token_store_close(api->tokens);
	kg_approvals_close(api->q);
	kg_audit_close(api->audit);
	pthread_mutex_destroy(&api->q_mu);
	pthread_mutex_destroy(&api->audit_mu);
	pthread_mutex_destroy(&api->lim_mu);
	if (api->key)
		memset(api->key, 0, strlen(api->key));
	free(api->key);
	free(api->cert);
	free(api);
}

struct kg_api *kg_api_start(const struct kg_api_cfg *cfg)
{
	struct kg_api *api = calloc(1, sizeof(*api));
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
	char host[INET6_ADDRSTRLEN];
	sigset_t block, old;
	json_t *extra;
	int port = 0;

	if (!api)
		return NULL;
	api->cfg = *cfg;
	api->lfd = api->wake[0] = api->wake[1] = -1;
	pthread_mutex_init(&api->conn_mu, NULL);
	pthread_cond_init(&api->conn_cond, NULL);
	pthread_mutex_init(&api->q_mu, NULL);
	pthread_mutex_init(&api->audit_mu, NULL);
	pthread_mutex_init(&api->lim_mu, NULL);
	if (!api->cfg.max_connections)
		api->cfg.max_connections = KG_API_MAX_CONNECTIONS;
	if (!cfg->cert_path != !cfg->key_path) {
		kg_err("daemon: HTTPS needs both --http-cert and --http-key");
		goto fail;
	}
	if (cfg->cert_path) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			kg_err("daemon: this libmicrohttpd has no TLS support");
			goto fail;
		}
		api->cert = read_pem("--http-cert", cfg->cert_path);
		api->key = read_pem("--http-key", cfg->key_path);
		if (!api->cert || !api->key)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	api->lfd = listen_on(cfg->listen ? cfg->listen : KG_API_DEFAULT_ADDR, !api->cert,
			     cfg->plaintext_ok, host, sizeof(host), &port);
	if (api->lfd < 0 || fcntl(api->lfd, F_SETFL, O_NONBLOCK) || pipe2(api->wake, O_CLOEXEC))
		goto fail;
	snprintf(api->url, sizeof(api->url), "%s://%s%s%s:%d/", api->cert ? "https" : "http",
		 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	api->tokens = kg_token_store_open();
	api->q = kg_approvals_open(NULL);
	api->audit = kg_audit_open(NULL, NULL);
	if (!api->tokens || !api->q || !api->audit) {
		kg_err("daemon: the HTTP API cannot open the queue, the tokens or the trail");
		goto fail;
	}
	if (cfg->ndispatch && !(api->dispatch = kg_dispatch_open(cfg)))
		goto fail;
	/* the API's threads leave the daemon's signals to its main loop */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	api->feed = kg_feed_start();
	if (api->feed) {
		struct MHD_OptionItem tls[] = {
			{ MHD_OPTION_HTTPS_MEM_CERT, 0, api->cert },
			{ MHD_OPTION_HTTPS_MEM_KEY, 0, api->key },
			{ MHD_OPTION_HTTPS_PRIORITIES, 0,
			  (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" },
			{ MHD_OPTION_END, 0, NULL },
		};

		api->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api,
			/* the acceptor keeps well below this (see acceptor_main) */
			MHD_OPTION_CONNECTION_LIMIT, api->cfg.max_connections + 64,
			MHD_OPTION_NOTIFY_CONNECTION, on_connection, api,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)KG_API_TIMEOUT_SEC,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
			MHD_OPTION_EXTERNAL_LOGGER, on_log, api,
			MHD_OPTION_STRICT_FOR_CLIENT, 1,
			MHD_OPTION_ARRAY, api->cert ? tls : tls + 3,
			MHD_OPTION_END);
	}
	if (api->mhd && !pthread_create(&api->acceptor, NULL, acceptor_main, api))
		api->acceptor_started = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!api->mhd || !api->acceptor_started) {
		kg_err("daemon: the HTTP server did not start on %s%s", api->url,
		       api->cert ? " (is the certificate or key malformed?)" : "");
		if (api->mhd)
			MHD_stop_daemon(api->mhd);
		goto fail;
	}
	write_url_file(api);
	extra = json_pack("{s:b,s:b,s:i}", "tls", api->cert != NULL, "read_anonymous",
			  cfg->read_anonymous, "max_connections", (int)api->cfg.max_connections);
	api_audit(api, "http_start", api->url, extra);
	json_decref(extra);
	kg_info("daemon: HTTP API and approvals page on %s%s", api->url,
		cfg->read_anonymous ? " (reads open to anyone who reaches it)" : "");
	return api;
fail:
	api_free(api);
	return NULL;
}

void kg_api_stop(struct kg_api *api)
{
	if (!api)
		return;
	/* no new connections; the streams end; then the threads are joined */
	pthread_mutex_lock(&api->conn_mu);
	api->stopping = true;
	pthread_cond_broadcast(&api->conn_cond);
	pthread_mutex_unlock(&api->conn_mu);
	if (write(api->wake[1], "x", 1) != 1)
		kg_warn("api: cannot wake the acceptor");
	pthread_join(api->acceptor, NULL);
	kg_feed_shutdown(api->feed);
	MHD_stop_daemon(api->mhd);
	api->mhd = NULL;
	if (api->dispatch && !kg_dispatch_close_wait(api->dispatch)) {
		/* their waiters still use the API's queue and trail handles */
		kg_warn("api: jobs it launched did not end in 15 s; leaving them be");
		return;
	}
	if (api->url_file[0])
		unlink(api->url_file);
	api_audit(api, "http_stop", api->url, NULL);
	api_free(api);
}


/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * api_fixture.h - a real `kgate daemon --http` on loopback for the HTTP API
 * tests (test_api.c, test_web.c), driven with libcurl, and governed jobs
 * whose connects are held for approval (`kgate run` + net_probe).
 *
 *   af_setup();                          // mkdtemp; KGATE_* dirs inside it
 *   af_daemon_start(&d, "--http-read-anonymous", NULL);   // 127.0.0.1:0
 *   tok = af_token("reviewer", "4242", NULL);              // kgate token create
 *   af_http(&d, "GET", "/api/v1/jobs", tok, NULL, &res);  // status + body
 *   af_job_held(&j, policy, port);       // a job whose connect waits
 *   af_daemon_stop(&d); af_teardown();
 *
 * Servers bind 127.0.0.1 (port 0: the daemon picks one and says which in
 * <state dir>/http.json) and are stopped by the test.
 */
#ifndef KGATE_API_FIXTURE_H
#define KGATE_API_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <strings.h>
#include <time.h>

#include "testlib.h"
#include "testenv.h"
#include "record/audit.h"
#include "common.h"
#include "daemon/control.h"
#include "kernel/loader.h"

static char af_tmp[256], af_pin[256];

static void af_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static const char *af_kgate(void)
{
	const char *b = getenv("KGATE_BIN");

	return b ? b : "build-san/kgate";
}

static const char *af_helper(const char *name)
{
	static char buf[512];
	const char *dir = getenv("KGATE_TEST_HELPERS");
	char rel[512];

	snprintf(rel, sizeof(rel), "%s/%s", dir ? dir : "build-san/tests/helpers", name);
	/* the job runs it: an absolute path */
	if (!realpath(rel, buf))
		snprintf(buf, sizeof(buf), "%s", rel);
	return buf;
}

static void af_setup(void)
{
	if (getuid() != 0)
		SKIP("needs root");
	if (kt_state_tree("api", true, af_tmp, sizeof(af_tmp), af_pin, sizeof(af_pin)))
		SKIP("cannot make the test's directories");
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void af_teardown(void)
{
	char cmd[600];

	kg_loader_unpin_all();
	rmdir(af_pin);
	/* only the directory this fixture made */
	if (af_tmp[0] && !strncmp(af_tmp, "/tmp/kgate-test-api.", 20) && !getenv("KGATE_TEST_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", af_tmp);
		if (system(cmd))
			printf("  fixture: could not remove %s\n", af_tmp);
	}
}

static void af_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", af_tmp, name);
}

static void af_write(const char *name, const char *text, char *path, size_t len)
{
	int fd;

	af_path(path, len, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		SKIP("cannot write %s", path);
	close(fd);
}

static char *af_slurp(const char *name)
{
	char path[512];

	af_path(path, sizeof(path), name);
	return kg_read_file(path, 1 << 24, NULL);
}

/* Run argv with stdout+stderr to <tmp>/out (NULL = discard); no wait. */
static pid_t af_spawn(char *const argv[], const char *out)
{
	char path[512];
	pid_t pid;

	if (out)
		af_path(path, sizeof(path), out);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(out ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(126);
	}
	return pid;
}

static int af_wait(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Wait at most ms for pid; -2 when it still runs. */
static int af_wait_ms(pid_t pid, int ms)
{
	int st, i;

	for (i = 0; i < ms / 20; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0 && errno != EINTR)
			return -1;	/* not our child (any more) */
		af_sleep_ms(20);
	}
	return -2;
}

/* ---- the daemon -------------------------------------------------------------------- */

struct af_daemon {
	pid_t pid;
	char url[160];		/* "http://127.0.0.1:PORT" (no trailing slash) */
	int port;
	char cafile[512];	/* HTTPS: the test's certificate */
};

/* kgate daemon --http 127.0.0.1:0 EXTRA... ; 0 when it serves. */
static int af_daemon_start_argv(struct af_daemon *d, char *const *extra)
{
	char *argv[32] = { (char *)af_kgate(), "daemon", "--http", "127.0.0.1:0" };
	char path[512];
	int n = 4, i;

	memset(d, 0, sizeof(*d));
	for (i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	af_path(path, sizeof(path), "state/http.json");
	unlink(path);
	d->pid = af_spawn(argv, "daemon.out");
	for (i = 0; i < 400; i++) {
		json_t *o = json_load_file(path, 0, NULL);
		const char *url = json_string_value(json_object_get(o, "url"));

		if (url && kg_control_daemon_running()) {
			snprintf(d->url, sizeof(d->url), "%s", url);
			if (d->url[0] && d->url[strlen(d->url) - 1] == '/')
				d->url[strlen(d->url) - 1] = '\0';
			d->port = atoi(strrchr(d->url, ':') + 1);
			json_decref(o);
			return 0;
		}
		json_decref(o);
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			return -1;
		}
		af_sleep_ms(50);
	}
	return -1;
}

#define af_daemon_start(d, ...) ({						\
		char *___x[] = { __VA_ARGS__ };					\
		af_daemon_start_argv(d, ___x); })

/* SIGTERM and wait: its exit status. */
static int af_daemon_stop(struct af_daemon *d)
{
	int rc;

	if (!d->pid)
		return -1;
	kill(d->pid, SIGTERM);
	rc = af_wait_ms(d->pid, 20000);
	if (rc == -2) {
		kill(d->pid, SIGKILL);
		rc = af_wait(d->pid);
	}
	d->pid = 0;
	return rc;
}

/* ---- tokens ------------------------------------------------------------------------- */

/* kgate token create --name NAME --uid UID [--groups G]; the token (static
 * per slot) or NULL. */
static const char *af_token(const char *name, const char *uid, const char *groups)
{
	static char tokens[8][80];
	static int next;
	char *argv[12] = { (char *)af_kgate(), "token", "create", "--json", "--name", (char *)name,
			   "--uid", (char *)uid, NULL };
	char *out, *slot = tokens[next++ % 8];
	json_t *o;

	if (groups) {
		argv[8] = "--groups";
		argv[9] = (char *)groups;
		argv[10] = NULL;
	}
	if (af_wait(af_spawn(argv, "token.out")))
		return NULL;
	out = af_slurp("token.out");
	/* its stdout's JSON line first; what follows is stderr */
	o = out ? json_loads(strchr(out, '{') ?: out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	snprintf(slot, 80, "%s", json_string_value(json_object_get(o, "token")) ?: "");
	json_decref(o);
	free(out);
	return slot[0] ? slot : NULL;
}

/* ---- HTTP ----------------------------------------------------------------------------- */

struct af_res {
	long status;		/* 0: no answer (connection refused, closed, timed out) */
	char *body;
	size_t len;
	json_t *json;		/* the body parsed, when it is JSON */
	char headers[4096];
	CURLcode err;
};

static size_t af_collect(char *p, size_t size, size_t n, void *ctx)
{
	struct af_res *r = ctx;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static size_t af_header(char *p, size_t size, size_t n, void *ctx)
{
	struct af_res *r = ctx;
	size_t have = strlen(r->headers);

	if (have + size * n + 1 < sizeof(r->headers)) {
		memcpy(r->headers + have, p, size * n);
		r->headers[have + size * n] = '\0';
	}
	return size * n;
}

static void af_res_free(struct af_res *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

struct af_req {
	const char *method, *path, *token, *body, *ctype;
	const char *iface;		/* source address ("127.0.0.2") */
	struct curl_slist *hdrs;	/* more headers (caller frees) */
	long timeout_ms;
};

static CURL *af_easy(const struct af_daemon *d, const struct af_req *q, struct af_res *r,
		     struct curl_slist **hdrs_out, char *url, size_t urllen)
{
	struct curl_slist *h = NULL, *x;
	char auth[200];
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	snprintf(url, urllen, "%s%s", d->url, q->path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	if (!strcmp(q->method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, af_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, af_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms ? q->timeout_ms : 20000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (d->cafile[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, d->cafile);
	if (q->iface)
		curl_easy_setopt(c, CURLOPT_INTERFACE, q->iface);
	if (q->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", q->token);
		h = curl_slist_append(h, auth);
	}
	if (q->body) {
		char ct[128];

		snprintf(ct, sizeof(ct), "Content-Type: %s", q->ctype ? q->ctype : "application/json");
		h = curl_slist_append(h, ct);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(q->body));
	}
	for (x = q->hdrs; x; x = x->next)
		h = curl_slist_append(h, x->data);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	*hdrs_out = h;
	return c;
}

static int af_request(const struct af_daemon *d, const struct af_req *q, struct af_res *r)
{
	struct curl_slist *h = NULL;
	char url[1024];
	CURL *c;

	memset(r, 0, sizeof(*r));
	c = af_easy(d, q, r, &h, url, sizeof(url));
	if (!c)
		return -1;
	r->err = curl_easy_perform(c);
	/* a stream cut by our timeout still had its status */
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body)
		r->json = json_loads(r->body, 0, NULL);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return r->err == CURLE_OK ? 0 : -1;
}

/* The value of a response header (case-insensitive name), or "". */
static const char *af_res_header(const struct af_res *r, const char *name, char *buf, size_t len)
{
	const char *p = r->headers;
	size_t n = strlen(name);

	buf[0] = '\0';
	while (p && *p) {
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1, *end;

			while (*v == ' ')
				v++;
			end = strpbrk(v, "\r\n");
			snprintf(buf, len, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
			return buf;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return buf;
}

/* method path [token] [JSON body]: the status (0 = no answer). */
static long af_http(const struct af_daemon *d, const char *method, const char *path,
		    const char *token, const char *body, struct af_res *r)
{
	struct af_req q = { .method = method, .path = path, .token = token, .body = body };

	af_request(d, &q, r);
	return r->status;
}

static const char *af_error_code(const struct af_res *r)
{
	return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

/* ---- a governed job whose connect is held --------------------------------------------- */

/* A policy that holds connects to 127.0.0.2:port for approval by the
 * given approvers JSON ({"uids":[...]}), timeout 120 s. */
static void af_hold_policy(char *json, size_t len, const char *name, int port,
			   const char *approvers)
{
	snprintf(json, len,
		 "{\"version\":1,\"name\":\"%s\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"allow\"},"
		 "\"approvals\":{\"timeout_sec\":120,\"approvers\":%s},"
		 "\"runtime\":[{\"id\":\"prod-db\",\"reason\":\"the production database\","
		 "\"net\":{\"cidr\":\"127.0.0.2/32\",\"ports\":[%d]},"
		 "\"decision\":\"require_approval\"},"
		 "{\"id\":\"no-exfil\",\"net\":{\"cidr\":\"127.0.0.3/32\"},\"decision\":\"deny\"}]}",
		 name, approvers, port);
}

/* A listener on 127.0.0.2 (the held connect's destination). */
static int af_listen(int *port)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t sl = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof(in)) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&in, &sl)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(in.sin_port);
	return fd;
}

struct af_job {
	pid_t run;		/* kgate run */
	char out[64];		/* its output file */
	char result[512];	/* the probe's exit status, written when it ends */
};

/* `kgate run --policy P -- sh -c 'net_probe connect 127.0.0.2 PORT; echo $? > RESULT'` */
static void af_job_start(struct af_job *j, const char *policy_path, int port, const char *name)
{
	static char script[1024];
	char portstr[16];

	snprintf(j->out, sizeof(j->out), "%s.out", name);
	af_path(j->result, sizeof(j->result), name);
	strncat(j->result, ".result", sizeof(j->result) - strlen(j->result) - 1);
	unlink(j->result);
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(script, sizeof(script), "\"%s\" connect 127.0.0.2 %d; echo $? > \"%s\"",
		 af_helper("net_probe"), port, j->result);
	{
		char *argv[] = { (char *)af_kgate(), "run", "--policy", (char *)policy_path, "--",
				 "/bin/sh", "-c", script, NULL };

		j->run = af_spawn(argv, j->out);
	}
}

/* The probe's exit status: 0 connected, 1 EPERM (kgate), -1 not yet. */
static int af_job_result(const struct af_job *j)
{
	char *s = kg_read_file(j->result, 64, NULL);
	int v = s && *s ? atoi(s) : -1;

	free(s);
	return v;
}

/* The id of the pending request of trace-less kind: the newest pending one
 * the root view shows whose target is 127.0.0.2:port, waiting up to ms. */
static int af_pending_id(const struct af_daemon *d, const char *root_token, int port, char *id,
			 size_t len, int ms)
{
	char target[64];
	int i;

	snprintf(target, sizeof(target), "127.0.0.2:%d/tcp", port);
	id[0] = '\0';
	for (i = 0; i < ms / 100 && !id[0]; i++) {
		struct af_res r;
		json_t *req;
		size_t k;

		af_http(d, "GET", "/api/v1/approvals?state=pending", root_token, NULL, &r);
		json_array_foreach(json_object_get(r.json, "requests"), k, req)
			if (!strcmp(json_string_value(json_object_get(req, "target")) ?: "", target))
				snprintf(id, len, "%s", json_string_value(json_object_get(req, "id")));
		af_res_free(&r);
		if (!id[0])
			af_sleep_ms(100);
	}
	return id[0] ? 0 : -1;
}

/* Wait until the probe has a result (up to ms). */
static int af_job_wait_result(const struct af_job *j, int ms)
{
	int i, v = -1;

	for (i = 0; i < ms / 50 && (v = af_job_result(j)) < 0; i++)
		af_sleep_ms(50);
	return v;
}

static void af_job_stop(struct af_job *j)
{
	if (j->run > 0) {
		if (af_wait_ms(j->run, 15000) == -2) {
			kill(-j->run, SIGKILL);
			af_wait(j->run);
		}
		j->run = 0;
	}
}

/* Audit records of a type (and decision), as a JSON array (caller decrefs). */
static int af_audit_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	(void)line;
	(void)len;
	json_array_append(ctx, rec);
	return 0;
}

static json_t *af_audit(const char *type, const char *decision)
{
	struct kg_audit_filter f = { .type = type, .decision = decision };
	json_t *arr = json_array();

	kg_audit_query(NULL, &f, af_audit_cb, arr, true, NULL);
	return arr;
}

#endif

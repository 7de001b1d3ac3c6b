// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_api.c - kgate's HTTP API, driven over HTTP (libcurl) against a real
 * `kgate daemon --http` on loopback, with governed jobs whose connects are
 * held for approval (`kgate run`, cgroup-BPF and the seccomp hold: this
 * host's degraded mode is enough).
 *
 * What must hold: every route answers as docs/api.md says (its examples are
 * run here); only an approver's token decides, and the audit trail names
 * it; no token, a non-approver's token, a revoked token, a malformed or
 * oversized request change nothing; a stale request is refused; failed
 * authentications are rate-limited; 1000 concurrent requests are all
 * answered while the daemon goes on enforcing; TLS works with a certificate
 * the test makes.
 */
#include <pthread.h>
#include <sys/resource.h>

#include <bpf/bpf.h>
#include <openssl/evp.h>

#include "api_fixture.h"
#include "kgate.h"

#define REVIEWER_UID	"4242"
#define APPROVERS	"{\"uids\":[4242],\"gids\":[4343]}"

/* A daemon, a listener on 127.0.0.2 and up to two jobs whose connects to
 * it are held, with their request ids; tokens for an approver, a stranger
 * and root (which the policy does not list as an approver). */
struct scene {
	struct af_daemon d;
	int lfd, port;
	char policy[512];
	const char *reviewer, *nobody, *root;
	struct af_job jobs[2];
	int njobs;
	char id[2][32], trace[2][48];
};

static bool scene_start(struct scene *s, int njobs, char *const *daemon_extra)
{
	char json[2048];
	int i, k;

	memset(s, 0, sizeof(*s));
	af_setup();
	s->lfd = af_listen(&s->port);
	if (s->lfd < 0)
		SKIP("cannot listen on 127.0.0.2");
	af_hold_policy(json, sizeof(json), "hold", s->port, APPROVERS);
	af_write("hold.json", json, s->policy, sizeof(s->policy));
	s->reviewer = af_token("reviewer", REVIEWER_UID, "");
	s->nobody = af_token("nobody", "65534", "");
	s->root = af_token("root", "0", "0");
	if (!ASSERT_TRUE(s->reviewer && s->nobody && s->root, "kgate token create"))
		return false;
	if (!ASSERT_OK(af_daemon_start_argv(&s->d, daemon_extra), "the daemon serves HTTP")) {
		char *out = af_slurp("daemon.out");

		printf("%s", out ? out : "");
		free(out);
		return false;
	}
	for (i = 0; i < njobs; i++) {
		char name[16], id[32];

		snprintf(name, sizeof(name), "job%d", i);
		af_job_start(&s->jobs[i], s->policy, s->port, name);
		s->njobs++;
		/* one at a time: the new pending request is this job's */
		for (k = 0; k < 150; k++) {
			struct af_res r;
			json_t *req;
			size_t x;

			id[0] = '\0';
			af_http(&s->d, "GET", "/api/v1/approvals", s->root, NULL, &r);
			json_array_foreach(json_object_get(r.json, "requests"), x, req) {
				const char *rid = json_string_value(json_object_get(req, "id"));

				if (rid && (i == 0 || strcmp(rid, s->id[0]))) {
					snprintf(s->id[i], sizeof(s->id[i]), "%s", rid);
					snprintf(s->trace[i], sizeof(s->trace[i]), "%s",
						 json_string_value(json_object_get(req, "trace_id")) ?: "");
					snprintf(id, sizeof(id), "%s", rid);
				}
			}
			af_res_free(&r);
			if (id[0])
				break;
			af_sleep_ms(100);
		}
		if (!ASSERT_TRUE(s->id[i][0], "the job's connect is held for approval")) {
			char *out = af_slurp(s->jobs[i].out);

			printf("%s", out ? out : "");
			free(out);
			return false;
		}
	}
	return true;
}

static void scene_stop(struct scene *s)
{
	int i;

	for (i = 0; i < s->njobs; i++) {
		/* a connect still held: kgate run answers it EPERM as it stops */
		if (s->jobs[i].run > 0 && af_wait_ms(s->jobs[i].run, 100) == -2)
			kill(s->jobs[i].run, SIGTERM);
		else
			s->jobs[i].run = 0;	/* reaped */
		af_job_stop(&s->jobs[i]);
	}
	ASSERT_EQ(af_daemon_stop(&s->d), 0, "the daemon stops cleanly");
	if (s->lfd >= 0)
		close(s->lfd);
	af_teardown();
}

static const char *req_state(struct scene *s, const char *id)
{
	static char state[32];
	struct af_res r;
	char path[128];

	snprintf(path, sizeof(path), "/api/v1/approvals/%s", id);
	af_http(&s->d, "GET", path, s->root, NULL, &r);
	snprintf(state, sizeof(state), "%s",
		 json_string_value(json_object_get(json_object_get(r.json, "request"), "state")) ?: "?");
	af_res_free(&r);
	return state;
}

/* ---- docs/api.md: every example runs ------------------------------------------------ */

struct example {
	char method[16], path[1024];
	struct curl_slist *hdrs;
	char ctype[128];
	char *body;
	bool stream;
	long want_status;
	char want_ctype[128];
	char *want_body;
	int line;
};

static char *subst(const char *in, struct scene *s)
{
	const struct { const char *var, *val; } vars[] = {
		{ "$TOKEN", s->reviewer }, { "$NOBODY", s->nobody }, { "$ID2", s->id[1] },
		{ "$ID", s->id[0] }, { "$TRACE", s->trace[0] },
	};
	size_t cap = strlen(in) * 2 + 256, len = 0, i;
	char *out = malloc(cap);

	while (out && *in) {
		for (i = 0; i < ARRAY_SIZE(vars); i++)
			if (!strncmp(in, vars[i].var, strlen(vars[i].var)))
				break;
		if (i < ARRAY_SIZE(vars)) {
			size_t n = strlen(vars[i].val);

			if (len + n + 1 >= cap)
				break;
			memcpy(out + len, vars[i].val, n);
			len += n;
			in += strlen(vars[i].var);
		} else {
			if (len + 2 >= cap)
				break;
			out[len++] = *in++;
		}
	}
	if (out)
		out[len] = '\0';
	return out;
}

/* The ```http blocks of docs/api.md, request then response. */
static int parse_examples(const char *text, struct scene *s, struct example *ex, int max)
{
	const char *p = text;
	int n = 0, line = 1;
	struct example *cur = NULL;

	while ((p = strstr(p, "```http\n"))) {
		const char *start = p + 8, *end = strstr(start, "\n```");
		char *block, *b, *sep, *first;
		const char *q;

		for (q = text, line = 1; q < start; q++)
			line += *q == '\n';
		if (!end)
			break;
		block = strndup(start, end - start + 1);
		p = end + 4;
		sep = strstr(block, "\n\n");
		if (sep)
			*sep = '\0';
		first = strtok_r(block, "\n", &b);
		if (first && !strncmp(first, "HTTP/1.1 ", 9) && cur) {
			char *h;

			cur->want_status = strtol(first + 9, NULL, 10);
			while ((h = strtok_r(NULL, "\n", &b)))
				if (!strncasecmp(h, "Content-Type: ", 14))
					snprintf(cur->want_ctype, sizeof(cur->want_ctype), "%s", h + 14);
			cur->want_body = sep ? strdup(sep + 2) : NULL;
			cur = NULL;
		} else if (first && n < max && strchr(first, ' ')) {
			char *h, *sp = strchr(first, ' '), *path;

			cur = &ex[n++];
			memset(cur, 0, sizeof(*cur));
			cur->line = line;
			snprintf(cur->method, sizeof(cur->method), "%.*s", (int)(sp - first), first);
			path = subst(sp + 1, s);
			if (path && strstr(path, " HTTP/1.1"))
				*strstr(path, " HTTP/1.1") = '\0';
			snprintf(cur->path, sizeof(cur->path), "%s", path ? path : "");
			free(path);
			while ((h = strtok_r(NULL, "\n", &b))) {
				char *v = subst(h, s);

				if (!v)
					continue;
				if (!strncasecmp(v, "Content-Type: ", 14))
					snprintf(cur->ctype, sizeof(cur->ctype), "%s", v + 14);
				else
					cur->hdrs = curl_slist_append(cur->hdrs, v);
				if (!strcasecmp(v, "Accept: text/event-stream"))
					cur->stream = true;
				free(v);
			}
			if (sep && sep[2])
				cur->body = subst(sep + 2, s);
			if (cur->body && cur->body[strlen(cur->body) - 1] == '\n')
				cur->body[strlen(cur->body) - 1] = '\0';
		}
		free(block);
	}
	return n;
}

static void check_example(struct scene *s, struct example *e)
{
	struct af_req q = { .method = e->method, .path = e->path, .hdrs = e->hdrs, .body = e->body,
			    .ctype = e->ctype[0] ? e->ctype : NULL,
			    .timeout_ms = e->stream ? 2500 : 0 };
	char what[1200], ctype[128];
	struct af_res r;
	json_t *want;

	af_request(&s->d, &q, &r);
	snprintf(what, sizeof(what), "docs/api.md:%d: %s %s", e->line, e->method, e->path);
	if (!ASSERT_EQ(r.status, e->want_status, what))
		printf("    body: %.400s\n", r.body ? r.body : "(none)");
	if (e->want_ctype[0]) {
		size_t n = strcspn(e->want_ctype, ";");

		af_res_header(&r, "Content-Type", ctype, sizeof(ctype));
		ASSERT_TRUE(!strncmp(ctype, e->want_ctype, n), what);
	}
	want = e->want_body ? json_loads(e->want_body, 0, NULL) : NULL;
	if (json_is_object(want)) {
		const char *key;
		json_t *v;

		json_object_foreach(want, key, v) {
			char w[2000];

			snprintf(w, sizeof(w), "%s: has \"%s\" (got %.300s)", what, key,
				 r.body ? r.body : "nothing");
			ASSERT_TRUE(json_object_get(r.json, key) != NULL, w);
		}
		if (json_object_get(want, "error"))
			ASSERT_STREQ(af_error_code(&r),
				     json_string_value(json_object_get(json_object_get(want, "error"),
								       "code")), what);
	} else if (e->want_body && e->want_body[0]) {
		char first[256];

		snprintf(first, sizeof(first), "%.*s", (int)strcspn(e->want_body, "\n"), e->want_body);
		ASSERT_HAS_SUBSTR(r.body, first, what);
	}
	json_decref(want);
	af_res_free(&r);
}

TEST(docs_examples_run)
{
	struct example ex[64];
	struct scene s;
	char path[512], *doc;
	int n, i;

	if (!scene_start(&s, 2, (char *[]){ NULL })) {
		scene_stop(&s);
		return;
	}
	snprintf(path, sizeof(path), "%s/docs/api.md", getenv("KGATE_SRC") ?: ".");
	doc = kg_read_file(path, 1 << 20, NULL);
	if (!ASSERT_TRUE(doc != NULL, "docs/api.md")) {
		scene_stop(&s);
		return;
	}
	n = parse_examples(doc, &s, ex, ARRAY_SIZE(ex));
	printf("  %d examples in docs/api.md\n", n);
	ASSERT_GE(n, 15, "every route has an example");
	for (i = 0; i < n; i++) {
		check_example(&s, &ex[i]);
		curl_slist_free_all(ex[i].hdrs);
		free(ex[i].body);
		free(ex[i].want_body);
	}
	/* the documented decisions happened */
	ASSERT_EQ(af_job_wait_result(&s.jobs[0], 5000), 0, "the approved connect went through");
	ASSERT_EQ(af_job_wait_result(&s.jobs[1], 5000), 1, "the denied one failed (EPERM)");
	free(doc);
	scene_stop(&s);
}

/* ---- who decides --------------------------------------------------------------------- */

TEST(only_an_approvers_token_releases_a_held_connect_and_the_audit_names_it)
{
	struct af_res r;
	struct scene s;
	char path[128];
	json_t *recs, *rec = NULL, *v;
	size_t i;

	if (!scene_start(&s, 1, (char *[]){ "--http-read-anonymous", NULL })) {
		scene_stop(&s);
		return;
	}
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", s.id[0]);
	/* no token: reads are open (the operator said so), decisions are not */
	ASSERT_EQ(af_http(&s.d, "GET", "/api/v1/approvals", NULL, NULL, &r), 200, "anonymous read");
	ASSERT_TRUE(json_is_true(json_object_get(json_object_get(r.json, "principal"), "anonymous")),
		    "as an anonymous principal");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "POST", path, NULL, "{\"once\":true}", &r), 401, "no token: 401");
	ASSERT_STREQ(af_error_code(&r), "unauthorized", "code");
	af_res_free(&r);
	/* a token of someone who is not an approver */
	ASSERT_EQ(af_http(&s.d, "POST", path, s.nobody, "{\"once\":true}", &r), 403, "stranger: 403");
	ASSERT_STREQ(af_error_code(&r), "not_approver", "code");
	af_res_free(&r);
	/* root is not an approver when the policy lists approvers */
	ASSERT_EQ(af_http(&s.d, "POST", path, s.root, "{\"once\":true}", &r), 403, "root: 403");
	af_res_free(&r);
	/* a token that looks right but is not one */
	ASSERT_EQ(af_http(&s.d, "POST", path, "kgt_0000000000000000000000000000000000000000000000"
			  "000000000000000000", "{\"once\":true}", &r), 401, "forged token: 401");
	af_res_free(&r);
	af_sleep_ms(600);
	ASSERT_STREQ(req_state(&s, s.id[0]), "pending", "nothing was decided");
	ASSERT_EQ(af_job_result(&s.jobs[0]), -1, "the connect is still held");
	recs = af_audit("approval", NULL);
	json_array_foreach(recs, i, v)
		ASSERT_STREQ(json_string_value(json_object_get(v, "decision")), "requested",
			     "no decision in the audit trail");
	json_decref(recs);

	/* the approver */
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer, "{\"once\":true,\"note\":\"OPS-1\"}", &r),
		  200, "the approver's token: 200");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(r.json, "request"), "state")),
		     "approved", "approved");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(r.json, "request"),
						       "decided_via")), "token:reviewer", "decided_via");
	af_res_free(&r);
	ASSERT_EQ(af_job_wait_result(&s.jobs[0], 5000), 0, "the held connect completes");
	recs = af_audit("approval", "approved");
	ASSERT_EQ(json_array_size(recs), 1, "one approval record");
	rec = json_array_get(recs, 0);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(rec, "actor"), "uid")), 4242,
		  "actor uid: the token's principal");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(rec, "actor"), "role")),
		     "token:reviewer", "actor role: the token's name");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(rec, "extra"), "note")),
		     "OPS-1", "the note");
	json_decref(recs);
	/* a token revoked is refused at once (the daemon rereads the file) */
	{
		char *argv[] = { (char *)af_kgate(), "token", "revoke", "reviewer", NULL };

		ASSERT_EQ(af_wait(af_spawn(argv, NULL)), 0, "kgate token revoke");
	}
	ASSERT_EQ(af_http(&s.d, "GET", "/api/v1/jobs", s.reviewer, NULL, &r), 401, "revoked: 401");
	af_res_free(&r);
	scene_stop(&s);
}

/* An approver through a group: the token names gid 4343, which the policy
 * lists; the same token without the group is refused. */
TEST(group_approver_decides_and_the_held_connect_is_denied)
{
	const char *grp, *nogrp;
	struct af_res r;
	struct scene s;
	char path[128];

	if (!scene_start(&s, 1, (char *[]){ NULL })) {
		scene_stop(&s);
		return;
	}
	grp = af_token("in-group", "5000", "4343");
	nogrp = af_token("no-group", "5000", "5000");
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/deny", s.id[0]);
	ASSERT_EQ(af_http(&s.d, "POST", path, nogrp, "{}", &r), 403, "uid 5000 alone: 403");
	af_res_free(&r);
	ASSERT_EQ(af_http(&s.d, "POST", path, grp, "{\"note\":\"no\"}", &r), 200,
		  "uid 5000 in group 4343: decides");
	af_res_free(&r);
	ASSERT_EQ(af_job_wait_result(&s.jobs[0], 5000), 1, "the held connect fails with EPERM");
	scene_stop(&s);
}

/* ---- a stale request ------------------------------------------------------------------- */

TEST(stale_request_refused_after_a_policy_push)
{
	char json[2048], p2[512], path[128];
	json_t *recs;
	struct af_res r;
	struct scene s;

	if (!scene_start(&s, 1, (char *[]){ NULL })) {
		scene_stop(&s);
		return;
	}
	/* the same rules and one more: a new generation for the job */
	af_hold_policy(json, sizeof(json), "hold-v2", s.port, APPROVERS);
	af_write("hold2.json", json, p2, sizeof(p2));
	{
		char *argv[] = { (char *)af_kgate(), "policy", "push", p2, NULL };

		ASSERT_EQ(af_wait(af_spawn(argv, "push.out")), 0, "kgate policy push");
	}
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", s.id[0]);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer, "{\"once\":true}", &r), 409,
		  "approving a request of the old generation: 409");
	ASSERT_STREQ(af_error_code(&r), "stale", "code stale");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(r.json, "request"), "state")),
		     "stale", "the request is stale now");
	af_res_free(&r);
	ASSERT_EQ(af_job_wait_result(&s.jobs[0], 5000), 1, "the held connect got EPERM, not a grant");
	recs = af_audit("approval", "stale");
	ASSERT_EQ(json_array_size(recs), 1, "the stale decision is audited");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_array_get(recs, 0),
								       "actor"), "role")),
		     "token:reviewer", "under the reviewer's token");
	json_decref(recs);
	recs = af_audit("approval", "approved");
	ASSERT_EQ(json_array_size(recs), 0, "nothing was approved");
	json_decref(recs);
	scene_stop(&s);
}

/* ---- malformed and oversized requests ---------------------------------------------------- */

struct bad {
	const char *method, *path, *body, *ctype;
	long status;
	const char *code;	/* NULL: any 4xx body */
};

TEST(malformed_and_oversized_requests_get_4xx_and_change_nothing)
{
	char approve[128], deny[128], big_note[400], bodybuf[600];
	static char huge[1 << 20];
	struct af_res r;
	struct scene s;
	json_t *recs;
	size_t i;

	if (!scene_start(&s, 1, (char *[]){ NULL })) {
		scene_stop(&s);
		return;
	}
	snprintf(approve, sizeof(approve), "/api/v1/approvals/%s/approve", s.id[0]);
	snprintf(deny, sizeof(deny), "/api/v1/approvals/%s/deny", s.id[0]);
	memset(big_note, 'x', 300);
	big_note[300] = '\0';
	snprintf(bodybuf, sizeof(bodybuf), "{\"note\":\"%s\"}", big_note);
	{
		const struct bad cases[] = {
			{ "POST", approve, "{\"once\":tru", NULL, 400, "malformed_json" },
			{ "POST", approve, "[true]", NULL, 400, "bad_request" },
			{ "POST", approve, "\"approve\"", NULL, 400, "malformed_json" },
			{ "POST", approve, "{\"once\":\"yes\"}", NULL, 400, "bad_field" },
			{ "POST", approve, "{\"ttl_sec\":0}", NULL, 400, "bad_field" },
			{ "POST", approve, "{\"ttl_sec\":604801}", NULL, 400, "bad_field" },
			{ "POST", approve, "{\"ttl_sec\":1.5}", NULL, 400, "bad_field" },
			{ "POST", approve, "{\"once\":true,\"ttl_sec\":5}", NULL, 400, "bad_field" },
			{ "POST", approve, "{\"once\":true,\"once\":true}", NULL, 400, "malformed_json" },
			{ "POST", approve, "{\"approved\":true}", NULL, 400, "unknown_field" },
			{ "POST", deny, "{\"once\":true}", NULL, 400, "unknown_field" },
			{ "POST", approve, bodybuf, NULL, 400, "bad_field" },
			{ "POST", approve, "{\"note\":\"a\\u0000b\"}", NULL, 400, "malformed_json" },
			{ "POST", approve, "{\"once\":true}", "text/plain", 415, "unsupported_media_type" },
			{ "POST", approve, "once=true", "application/x-www-form-urlencoded", 415,
			  "unsupported_media_type" },
			{ "GET", approve, NULL, NULL, 405, "method_not_allowed" },
			{ "PUT", "/api/v1/jobs", NULL, NULL, 405, "method_not_allowed" },
			{ "DELETE", approve, NULL, NULL, 405, "method_not_allowed" },
			{ "POST", "/api/v1/approvals/../../../etc/passwd/approve", "{}", NULL, 404, NULL },
			{ "POST", "/api/v1/approvals/nothere/approve", "{\"once\":true}", NULL, 404,
			  "not_found" },
			{ "GET", "/api/v1/approvals?state=everything", NULL, NULL, 400, "bad_parameter" },
			{ "GET", "/api/v1/approvals?limit=0", NULL, NULL, 400, "bad_parameter" },
			{ "GET", "/api/v1/approvals?limit=-1", NULL, NULL, 400, "bad_parameter" },
			{ "GET", "/api/v1/approvals?limit=99999999999999999999", NULL, NULL, 400,
			  "bad_parameter" },
			{ "GET", "/api/v1/approvals?state=pending&state=all", NULL, NULL, 400,
			  "bad_parameter" },
			{ "GET", "/api/v1/approvals?sort=id", NULL, NULL, 400, "unknown_parameter" },
			{ "GET", "/api/v1/audit?since=yesterday", NULL, NULL, 400, "bad_parameter" },
			{ "GET", "/api/v1/audit?trace=", NULL, NULL, 400, "bad_parameter" },
			{ "GET", "/api/v1/jobs", "{}", NULL, 413, "payload_too_large" },
			{ "GET", "/api/v2/jobs", NULL, NULL, 404, "not_found" },
		};

		for (i = 0; i < ARRAY_SIZE(cases); i++) {
			struct af_req q = { .method = cases[i].method, .path = cases[i].path,
					    .token = s.reviewer, .body = cases[i].body,
					    .ctype = cases[i].ctype };
			char what[300];

			af_request(&s.d, &q, &r);
			snprintf(what, sizeof(what), "%s %s %.60s", cases[i].method, cases[i].path,
				 cases[i].body ? cases[i].body : "");
			if (!ASSERT_EQ(r.status, cases[i].status, what))
				printf("    got: %.300s\n", r.body ? r.body : "(nothing)");
			if (cases[i].code)
				ASSERT_STREQ(af_error_code(&r), cases[i].code, what);
			af_res_free(&r);
		}
	}
	/* a body larger than the route takes: refused by its Content-Length
	 * before it is read, and chunked, once it outgrows the limit */
	memset(huge, ' ', sizeof(huge) - 1);
	huge[0] = '{';
	huge[sizeof(huge) - 2] = '}';
	ASSERT_EQ(af_http(&s.d, "POST", approve, s.reviewer, huge, &r), 413, "1 MiB body: 413");
	ASSERT_STREQ(af_error_code(&r), "payload_too_large", "code");
	af_res_free(&r);
	{
		struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
		struct af_req q = { .method = "POST", .path = approve, .token = s.reviewer,
				    .body = huge, .hdrs = h };

		af_request(&s.d, &q, &r);
		ASSERT_TRUE(r.status == 413 || r.status == 0, "chunked 1 MiB: 413 or cut off");
		ASSERT_TRUE(r.status != 200, "never accepted");
		af_res_free(&r);
		curl_slist_free_all(h);
	}
	{
		/* 100 KiB of headers */
		static char hdr[100 << 10];
		struct curl_slist *h;
		struct af_req q = { .method = "GET", .path = "/api/v1/jobs", .token = s.reviewer };

		snprintf(hdr, sizeof(hdr), "X-Junk: ");
		memset(hdr + 8, 'j', sizeof(hdr) - 9);
		h = curl_slist_append(NULL, hdr);
		q.hdrs = h;
		af_request(&s.d, &q, &r);
		ASSERT_TRUE(r.status >= 400 && r.status < 500, "oversized headers: 4xx");
		af_res_free(&r);
		curl_slist_free_all(h);
	}
	/* a raw request that is not HTTP */
	{
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(s.d.port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char buf[256] = "";
		ssize_t n;

		inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
		if (ASSERT_OK(connect(fd, (struct sockaddr *)&in, sizeof(in)), "connect")) {
			const char junk[] = "\x16\x03\x01 not http at all\r\n\r\n";

			ASSERT_TRUE(write(fd, junk, sizeof(junk) - 1) > 0, "junk sent");
			n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = '\0';
			ASSERT_TRUE(n <= 0 || !strncmp(buf, "HTTP/1.1 4", 10), "junk: 4xx or closed");
		}
		close(fd);
	}
	af_sleep_ms(300);
	ASSERT_STREQ(req_state(&s, s.id[0]), "pending", "after all that, still pending");
	ASSERT_EQ(af_job_result(&s.jobs[0]), -1, "and the connect still held");
	recs = af_audit("approval", "approved");
	ASSERT_EQ(json_array_size(recs), 0, "nothing approved");
	json_decref(recs);
	recs = af_audit("approval", "denied");
	ASSERT_EQ(json_array_size(recs), 0, "nothing denied");
	json_decref(recs);
	/* the well-formed request still works */
	ASSERT_EQ(af_http(&s.d, "POST", approve, s.reviewer, "{\"ttl_sec\":60}", &r), 200, "approve");
	af_res_free(&r);
	ASSERT_EQ(af_job_wait_result(&s.jobs[0], 5000), 0, "the connect completes");
	scene_stop(&s);
}

/* ---- failed authentications ---------------------------------------------------------- */

TEST(failed_authentications_are_rate_limited_per_address)
{
	struct af_daemon d;
	const char *tok;
	struct af_res r;
	char retry[32];
	json_t *recs, *v;
	size_t i;
	int unauthorized = 0;
	bool audited = false;

	af_setup();
	tok = af_token("ops", "0", "0");
	if (!ASSERT_OK(af_daemon_start(&d, NULL), "daemon")) {
		af_teardown();
		return;
	}
	for (i = 0; i < 10; i++) {
		unauthorized += af_http(&d, "GET", "/api/v1/jobs", "kgt_guess", NULL, &r) == 401;
		af_res_free(&r);
	}
	ASSERT_EQ(unauthorized, 10, "ten wrong tokens: 401 each");
	ASSERT_EQ(af_http(&d, "GET", "/api/v1/jobs", "kgt_guess", NULL, &r), 429, "the 11th: 429");
	ASSERT_STREQ(af_error_code(&r), "rate_limited", "code");
	af_res_header(&r, "Retry-After", retry, sizeof(retry));
	ASSERT_TRUE(atoi(retry) > 0 && atoi(retry) <= 61, "Retry-After names the rest of the window");
	af_res_free(&r);
	ASSERT_EQ(af_http(&d, "GET", "/api/v1/jobs", tok, NULL, &r), 429,
		  "even a valid token from that address waits");
	af_res_free(&r);
	{
		/* another address is not affected */
		struct af_req q = { .method = "GET", .path = "/api/v1/jobs", .token = tok,
				    .iface = "127.0.0.2" };

		af_request(&d, &q, &r);
		ASSERT_EQ(r.status, 200, "from 127.0.0.2: 200");
		af_res_free(&r);
	}
	ASSERT_EQ(af_http(&d, "GET", "/healthz", NULL, NULL, &r), 200, "health needs no token");
	af_res_free(&r);
	ASSERT_EQ(af_daemon_stop(&d), 0, "daemon stops");
	recs = af_audit("controller", NULL);
	json_array_foreach(recs, i, v)
		audited |= !strcmp(json_string_value(json_object_get(v, "op")) ?: "", "http_auth_limited");
	ASSERT_TRUE(audited, "the rate limit is audited");
	json_decref(recs);
	af_teardown();
}

/* ---- 1000 concurrent requests ----------------------------------------------------------- */

struct watch {
	volatile bool stop;
	int pings, pings_ok;
	uint64_t worst_heartbeat_ms;
};

static void *watch_daemon(void *arg)
{
	struct watch *w = arg;

	while (!w->stop) {
		json_t *req = json_pack("{s:s}", "op", "ping"), *rep;
		struct kg_control ctl = {};
		uint32_t zero = 0;
		int fd;

		/* answered, however busy the machine (2 cores, every suite at once) */
		rep = kg_control_call(req, 10000);
		w->pings++;
		w->pings_ok += rep && json_is_true(json_object_get(rep, "ok"));
		json_decref(rep);
		json_decref(req);
		fd = kg_open_pinned_map("kg_control");
		if (fd >= 0 && !bpf_map_lookup_elem(fd, &zero, &ctl)) {
			uint64_t now = kg_now_mono_ns();
			uint64_t age = now > ctl.heartbeat_ns ? (now - ctl.heartbeat_ns) / 1000000 : 0;

			if (age > w->worst_heartbeat_ms)
				w->worst_heartbeat_ms = age;
		}
		if (fd >= 0)
			close(fd);
		af_sleep_ms(200);
	}
	return NULL;
}

#define STORM 1000

TEST(thousand_concurrent_requests_lose_nothing_while_the_daemon_enforces)
{
	static struct af_res res[STORM];
	static struct curl_slist *hdrs[STORM];
	static char urls[STORM][256];
	const char *paths[] = { "/api/v1/jobs", "/api/v1/approvals", "/healthz", "/metrics",
				"/api/v1/approvals/000000000000", "/api/v1/policy" };
	const long want[] = { 200, 200, 200, 200, 404, 200 };
	char json[2048], policy[512], script[4096], stop[512], log[512], *out;
	struct rlimit rl;
	struct af_daemon d;
	struct watch w = {};
	struct af_job job = {};
	pthread_t th;
	CURLM *m;
	const char *tok;
	int lfd, port, running = 0, i, ok = 0, wrong = 0;
	uint64_t t0;

	af_setup();
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < STORM + 200) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < STORM + 200)
		SKIP("RLIMIT_NOFILE %llu is too low for %d connections",
		     (unsigned long long)rl.rlim_cur, STORM);
	lfd = af_listen(&port);
	if (lfd < 0)
		SKIP("cannot listen on 127.0.0.2");
	af_hold_policy(json, sizeof(json), "storm", port, APPROVERS);
	af_write("storm.json", json, policy, sizeof(policy));
	tok = af_token("ops", "0", "0");
	if (!ASSERT_OK(af_daemon_start(&d, NULL), "daemon")) {
		af_teardown();
		return;
	}
	/* the job: denied connects (rule no-exfil, 127.0.0.3) until told to stop */
	af_path(stop, sizeof(stop), "work/stop");
	af_path(log, sizeof(log), "work/storm.log");
	{
		int l3 = -1;
		struct sockaddr_in in = { .sin_family = AF_INET };
		socklen_t sl = sizeof(in);

		/* something listens there: an allowed connect would succeed */
		l3 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		inet_pton(AF_INET, "127.0.0.3", &in.sin_addr);
		if (l3 < 0 || bind(l3, (struct sockaddr *)&in, sizeof(in)) || listen(l3, 512) ||
		    getsockname(l3, (struct sockaddr *)&in, &sl))
			SKIP("cannot listen on 127.0.0.3");
		snprintf(script, sizeof(script),
			 "n=0; i=0; while [ ! -e %s ] && [ $i -lt 3000 ]; do i=$((i+1)); "
			 "\"%s\" connect 127.0.0.3 %d >/dev/null; r=$?; "
			 "[ $r -eq 0 ] && echo ALLOWED >> %s; [ $r -eq 1 ] && n=$((n+1)); "
			 "done; echo refused $n >> %s", stop, af_helper("net_probe"), ntohs(in.sin_port),
			 log, log);
		{
			char *argv[] = { (char *)af_kgate(), "run", "-q", "--policy", policy, "--",
					 "/bin/sh", "-c", script, NULL };

			job.run = af_spawn(argv, "storm-run.out");
		}
		af_sleep_ms(1500);
		pthread_create(&th, NULL, watch_daemon, &w);
		/* the storm: every request on its own connection, all at once */
		m = curl_multi_init();
		curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
		curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)STORM);
		for (i = 0; i < STORM; i++) {
			struct af_req q = { .method = "GET", .path = paths[i % ARRAY_SIZE(paths)],
					    .token = tok, .timeout_ms = 120000 };
			CURL *c = af_easy(&d, &q, &res[i], &hdrs[i], urls[i], sizeof(urls[i]));

			curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
			curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
			curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)(intptr_t)i);
			curl_multi_add_handle(m, c);
		}
		t0 = kg_now_mono_ns();
		do {
			CURLMsg *msg;
			int left;

			curl_multi_perform(m, &running);
			curl_multi_poll(m, NULL, 0, 200, NULL);
			while ((msg = curl_multi_info_read(m, &left))) {
				char *priv;
				long st = 0;

				if (msg->msg != CURLMSG_DONE)
					continue;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
				i = (int)(intptr_t)priv;
				res[i].status = msg->data.result == CURLE_OK ? st : 0;
				res[i].err = msg->data.result;
				curl_multi_remove_handle(m, msg->easy_handle);
				curl_easy_cleanup(msg->easy_handle);
				curl_slist_free_all(hdrs[i]);
			}
		} while (running);
		curl_multi_cleanup(m);
		printf("  %d requests in %.1f s\n", STORM, (double)(kg_now_mono_ns() - t0) / 1e9);
		w.stop = true;
		pthread_join(th, NULL);
		close(open(stop, O_WRONLY | O_CREAT, 0644));
		ASSERT_EQ(af_wait_ms(job.run, 60000), 0, "the job ends normally");
		close(l3);
	}
	for (i = 0; i < STORM; i++) {
		long expect = want[i % ARRAY_SIZE(paths)];

		if (res[i].status == expect)
			ok++;
		else if (wrong++ < 5)
			printf("  request %d %s: status %ld (curl %d)\n", i, paths[i % ARRAY_SIZE(paths)],
			       res[i].status, res[i].err);
		free(res[i].body);
	}
	ASSERT_EQ(ok, STORM, "every request answered as expected");
	printf("  control socket pings answered: %d of %d; oldest heartbeat seen: %llu ms\n",
	       w.pings_ok, w.pings, (unsigned long long)w.worst_heartbeat_ms);
	ASSERT_EQ(w.pings_ok, w.pings, "the control socket answered every ping during the storm");
	ASSERT_TRUE(w.pings > 0, "it was asked");
	/* the kernel stops trusting a controller after 10 s without one */
	ASSERT_TRUE(w.worst_heartbeat_ms < 5000, "the heartbeat never went stale");
	out = af_slurp("work/storm.log");
	printf("  job: %s", out ? out : "(no log)\n");
	ASSERT_TRUE(out && strstr(out, "refused ") && atoi(strstr(out, "refused ") + 8) > 0,
		    "the job's denied connects were refused during the storm");
	ASSERT_TRUE(out && !strstr(out, "ALLOWED"), "not one of them went through");
	free(out);
	{
		struct af_res r;

		ASSERT_EQ(af_http(&d, "GET", "/healthz", NULL, NULL, &r), 200, "healthy after");
		af_res_free(&r);
	}
	ASSERT_EQ(af_daemon_stop(&d), 0, "daemon stops");
	close(lfd);
	af_teardown();
}

/* ---- HTTPS --------------------------------------------------------------------------- */

TEST(https_with_a_certificate_the_test_makes)
{
	char cert[512], key[512], cmd[2048], certopt[600], keyopt[600];
	struct af_daemon d;
	const char *tok;
	struct af_res r;

	af_setup();
	af_path(cert, sizeof(cert), "cert.pem");
	af_path(key, sizeof(key), "key.pem");
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout '%s' -out '%s' -days 1 -subj /CN=localhost "
		 "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1", key, cert);
	if (system(cmd))
		SKIP("openssl cannot make a test certificate");
	tok = af_token("ops", "0", "0");
	snprintf(certopt, sizeof(certopt), "--http-cert=%s", cert);
	snprintf(keyopt, sizeof(keyopt), "--http-key=%s", key);
	if (!ASSERT_OK(af_daemon_start(&d, certopt, keyopt, NULL), "daemon with TLS")) {
		char *out = af_slurp("daemon.out");

		printf("%s", out ? out : "");
		free(out);
		af_teardown();
		return;
	}
	ASSERT_TRUE(!strncmp(d.url, "https://", 8), "it says https");
	snprintf(d.cafile, sizeof(d.cafile), "%s", cert);
	ASSERT_EQ(af_http(&d, "GET", "/healthz", NULL, NULL, &r), 200, "HTTPS, certificate verified");
	af_res_free(&r);
	ASSERT_EQ(af_http(&d, "GET", "/api/v1/jobs", tok, NULL, &r), 200, "a token over HTTPS");
	af_res_free(&r);
	{
		/* without trusting the test's certificate: refused by the client */
		struct af_daemon plain = d;

		plain.cafile[0] = '\0';
		af_http(&plain, "GET", "/healthz", NULL, NULL, &r);
		ASSERT_TRUE(r.status == 0 && r.err != CURLE_OK, "unverified: no answer");
		af_res_free(&r);
		/* and plain HTTP on the TLS port gets no API answer */
		snprintf(plain.url, sizeof(plain.url), "http://127.0.0.1:%d", d.port);
		af_http(&plain, "GET", "/healthz", NULL, NULL, &r);
		ASSERT_TRUE(r.status != 200, "plain HTTP to the HTTPS port: no 200");
		af_res_free(&r);
	}
	ASSERT_EQ(af_daemon_stop(&d), 0, "daemon stops");
	/* plain HTTP off loopback is refused before anything is bound */
	{
		char *argv[] = { (char *)af_kgate(), "daemon", "--http", "192.0.2.1:0", NULL };
		char *out;

		ASSERT_EQ(af_wait(af_spawn(argv, "refused.out")), 1, "non-loopback plain HTTP: refused");
		out = af_slurp("refused.out");
		ASSERT_HAS_SUBSTR(out, "not a loopback address", "says why");
		free(out);
	}
	af_teardown();
}

/* ---- the event stream ----------------------------------------------------------------- */

struct sse {
	const struct af_daemon *d;
	const char *token;
	pthread_mutex_t mu;
	char buf[65536];
	size_t len;
	volatile bool stop;
	long status;
};

static size_t sse_data(char *p, size_t size, size_t n, void *ctx)
{
	struct sse *s = ctx;

	pthread_mutex_lock(&s->mu);
	if (s->len + size * n < sizeof(s->buf) - 1) {
		memcpy(s->buf + s->len, p, size * n);
		s->len += size * n;
		s->buf[s->len] = '\0';
	}
	pthread_mutex_unlock(&s->mu);
	return size * n;
}

static int sse_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a; (void)b; (void)c; (void)d;
	return ((struct sse *)ctx)->stop;
}

static void *sse_main(void *arg)
{
	struct sse *s = arg;
	char url[256], auth[160];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "%s/api/v1/events", s->d->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->token);
	h = curl_slist_append(h, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static bool sse_has(struct sse *s, const char *needle, int ms)
{
	int i;
	bool found = false;

	for (i = 0; i <= ms / 50 && !found; i++) {
		pthread_mutex_lock(&s->mu);
		found = strstr(s->buf, needle) != NULL;
		pthread_mutex_unlock(&s->mu);
		if (!found)
			af_sleep_ms(50);
	}
	return found;
}

TEST(event_stream_shows_each_principal_what_it_may_see)
{
	struct sse rev = {}, nob = {};
	pthread_t t1, t2;
	struct scene s;
	struct af_res r;
	char needle[96], path[128];

	/* a scene without jobs yet: the streams must see the request appear */
	if (!scene_start(&s, 0, (char *[]){ NULL })) {
		scene_stop(&s);
		return;
	}
	rev.d = nob.d = &s.d;
	rev.token = s.reviewer;
	nob.token = s.nobody;
	pthread_mutex_init(&rev.mu, NULL);
	pthread_mutex_init(&nob.mu, NULL);
	pthread_create(&t1, NULL, sse_main, &rev);
	pthread_create(&t2, NULL, sse_main, &nob);
	ASSERT_TRUE(sse_has(&rev, "event: hello", 5000), "the reviewer's stream says hello");
	ASSERT_TRUE(sse_has(&nob, "event: hello", 5000), "so does the stranger's");
	af_job_start(&s.jobs[0], s.policy, s.port, "job0");
	s.njobs = 1;
	ASSERT_OK(af_pending_id(&s.d, s.root, s.port, s.id[0], sizeof(s.id[0]), 15000), "held");
	snprintf(needle, sizeof(needle), "\"id\":\"%s\",\"state\":\"pending\"", s.id[0]);
	ASSERT_TRUE(sse_has(&rev, needle, 5000), "the approver sees the new request live");
	snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", s.id[0]);
	ASSERT_EQ(af_http(&s.d, "POST", path, s.reviewer, "{\"once\":true}", &r), 200, "approved");
	af_res_free(&r);
	snprintf(needle, sizeof(needle), "\"id\":\"%s\",\"state\":\"approved\"", s.id[0]);
	ASSERT_TRUE(sse_has(&rev, needle, 5000), "and the decision");
	ASSERT_TRUE(sse_has(&rev, "event: job_end", 8000), "and the job's end");
	af_sleep_ms(500);
	pthread_mutex_lock(&nob.mu);
	ASSERT_TRUE(!strstr(nob.buf, s.id[0]), "the stranger's stream never names the request");
	ASSERT_TRUE(!strstr(nob.buf, "event: request"), "nor any request");
	pthread_mutex_unlock(&nob.mu);
	rev.stop = nob.stop = true;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	ASSERT_EQ(rev.status, 200, "a 200 stream");
	ASSERT_EQ(af_job_wait_result(&s.jobs[0], 5000), 0, "the connect went through");
	scene_stop(&s);
}

/* ---- tokens ---------------------------------------------------------------------------- */

TEST(tokens_are_kept_hashed_and_an_untrusted_file_is_refused)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65], path[512], *file;
	struct af_daemon d;
	struct stat st;
	const char *tok;
	struct af_res r;
	int i;

	af_setup();
	tok = af_token("ops", "0", "0");
	if (!ASSERT_TRUE(tok && strlen(tok) == 68 && !strncmp(tok, "kgt_", 4), "a kgt_ token"))
		goto out;
	ASSERT_TRUE(af_token("ops", "0", NULL) == NULL, "a name is unique");
	af_path(path, sizeof(path), "data/api-tokens.json");
	ASSERT_OK(stat(path, &st), "the token file");
	ASSERT_EQ(st.st_mode & 0777, 0600, "mode 0600");
	file = kg_read_file(path, 1 << 20, NULL);
	ASSERT_TRUE(file && !strstr(file, tok + 4), "the token itself is not stored");
	EVP_Digest(tok, strlen(tok), md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	ASSERT_HAS_SUBSTR(file, hex, "its SHA-256 is");
	free(file);
	{
		char *argv[] = { (char *)af_kgate(), "token", "list", "--json", NULL };

		ASSERT_EQ(af_wait(af_spawn(argv, "list.out")), 0, "kgate token list");
		file = af_slurp("list.out");
		ASSERT_HAS_SUBSTR(file, "\"name\": \"ops\"", "lists it");
		ASSERT_TRUE(file && !strstr(file, hex) && !strstr(file, tok + 4), "without secrets");
		free(file);
	}
	{
		char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				 (char *)af_kgate(), "token", "list", NULL };

		ASSERT_EQ(af_wait(af_spawn(argv, NULL)), 1, "not root: refused");
	}
	if (!ASSERT_OK(af_daemon_start(&d, NULL), "daemon"))
		goto out;
	ASSERT_EQ(af_http(&d, "GET", "/api/v1/jobs", tok, NULL, &r), 200, "the token works");
	af_res_free(&r);
	/* a token file others may write is not trusted: no token is accepted */
	chmod(path, 0666);
	ASSERT_EQ(af_http(&d, "GET", "/api/v1/jobs", tok, NULL, &r), 503, "untrusted file: 503");
	ASSERT_STREQ(af_error_code(&r), "token_store", "code");
	af_res_free(&r);
	chmod(path, 0600);
	ASSERT_EQ(af_http(&d, "GET", "/api/v1/jobs", tok, NULL, &r), 200, "trusted again");
	af_res_free(&r);
	ASSERT_EQ(af_daemon_stop(&d), 0, "daemon stops");
	{
		json_t *recs = af_audit("controller", NULL), *v;
		size_t k;
		bool created = false;

		json_array_foreach(recs, k, v)
			created |= !strcmp(json_string_value(json_object_get(v, "op")) ?: "",
					   "token_create");
		ASSERT_TRUE(created, "issuing a token is audited");
		json_decref(recs);
	}
out:
	af_teardown();
}

/* ---- the page ----------------------------------------------------------------------------- */

TEST(page_is_self_contained_under_a_strict_csp)
{
	const char *assets[] = { "/", "/static/app.js", "/static/app.css", "/static/icon.svg" };
	struct af_daemon d;
	struct af_res r;
	char csp[512];
	size_t i;

	af_setup();
	if (!ASSERT_OK(af_daemon_start(&d, NULL), "daemon")) {
		af_teardown();
		return;
	}
	for (i = 0; i < ARRAY_SIZE(assets); i++) {
		ASSERT_EQ(af_http(&d, "GET", assets[i], NULL, NULL, &r), 200, assets[i]);
		af_res_header(&r, "Content-Security-Policy", csp, sizeof(csp));
		ASSERT_HAS_SUBSTR(csp, "default-src 'none'", "CSP: nothing by default");
		ASSERT_HAS_SUBSTR(csp, "script-src 'self'", "CSP: scripts from kgate only");
		ASSERT_TRUE(!strstr(csp, "unsafe-inline") && !strstr(csp, "unsafe-eval"),
			    "CSP: no inline script or eval");
		ASSERT_HAS_SUBSTR(csp, "frame-ancestors 'none'", "CSP: not framed");
		/* nothing loaded from elsewhere */
		ASSERT_TRUE(r.body && !strstr(r.body, "src=\"http") && !strstr(r.body, "href=\"http") &&
			    !strstr(r.body, "url(http") && !strstr(r.body, "@import") &&
			    !strstr(r.body, "fetch('http"), "no external resource");
		if (i == 0) {
			ASSERT_TRUE(!strstr(r.body, "<script>") && !strstr(r.body, " style=\"") &&
				    !strstr(r.body, "onclick="), "no inline script or style");
			ASSERT_HAS_SUBSTR(r.body, "name=\"viewport\"", "sized for phones");
		}
		af_res_free(&r);
	}
	ASSERT_EQ(af_http(&d, "GET", "/static/../../etc/passwd", NULL, NULL, &r), 404, "no escape");
	af_res_free(&r);
	ASSERT_EQ(af_daemon_stop(&d), 0, "daemon stops");
	af_teardown();
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_web.c - the approvals page in a real browser: headless Chromium
 * (Debian's chromium) driven through chromedriver's WebDriver protocol
 * (libcurl + jansson).  A reviewer pastes a token, a governed job's
 * connect is held, the request appears on the page without a reload (the
 * page's event stream), the reviewer writes a note and clicks "Approve
 * once", the job's connect completes, and the page shows the decision.
 * Screenshots (pending on a laptop and on a phone, decided) are kept in
 * <build dir>/tests/artifacts/.
 *
 * No browser here: SKIP with the reason; under CI (CI=true) that is a
 * failure, since CI installs it (scripts/install-deps.sh).
 */
#include <limits.h>
#include <libgen.h>

#include <openssl/evp.h>

#include "api_fixture.h"

#define CHROMIUM	"/usr/bin/chromium"
#define CHROMEDRIVER	"/usr/bin/chromedriver"
#define ELEMENT_KEY	"element-6066-11e4-a52e-4f735466cecf"

static bool in_ci(void)
{
	const char *ci = getenv("CI");

	return ci && (!strcmp(ci, "true") || !strcmp(ci, "1"));
}

/* Cannot run: skipped here, failed in CI (which must run it). */
#define NO_BROWSER(...) do {						\
		if (in_ci()) {						\
			printf("  in CI the browser test must run: ");	\
			printf(__VA_ARGS__);				\
			printf("\n");					\
			kt_failed_here++;				\
			return;						\
		}							\
		SKIP(__VA_ARGS__);					\
	} while (0)

/* ---- WebDriver ---------------------------------------------------------------------- */

struct wd {
	struct af_daemon drv;	/* chromedriver's address, as an af_daemon for af_request */
	pid_t pid;
	char session[128];
};

/* One WebDriver command: its "value" (new reference) or NULL. */
static json_t *wd_cmd(struct wd *w, const char *method, const char *path, json_t *body)
{
	char full[512], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct af_req q = { .method = method, .path = full, .body = text,
			    .ctype = "application/json", .timeout_ms = 90000 };
	struct af_res r;
	json_t *v = NULL;

	json_decref(body);
	if (w->session[0] && strncmp(path, "/session", 8))
		snprintf(full, sizeof(full), "/session/%s%s", w->session, path);
	else
		snprintf(full, sizeof(full), "%s", path);
	if (!strcmp(method, "POST") && !text)
		q.body = "{}";
	af_request(&w->drv, &q, &r);
	if (r.status == 200)
		v = json_incref(json_object_get(r.json, "value"));
	else if (r.body)
		printf("  webdriver %s %s: %ld %.300s\n", method, path, r.status, r.body);
	af_res_free(&r);
	free(text);
	return v;
}

static json_t *wd_script(struct wd *w, const char *script)
{
	return wd_cmd(w, "POST", "/execute/sync", json_pack("{s:s,s:[]}", "script", script, "args"));
}

static long wd_script_int(struct wd *w, const char *script)
{
	json_t *v = wd_script(w, script);
	long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;

	json_decref(v);
	return n;
}

/* Wait until the script returns true. */
static bool wd_until(struct wd *w, const char *script, int ms)
{
	int i;

	for (i = 0; i < ms / 100; i++) {
		json_t *v = wd_script(w, script);
		bool ok = json_is_true(v);

		json_decref(v);
		if (ok)
			return true;
		af_sleep_ms(100);
	}
	return false;
}

/* The element matching a CSS selector, or "" (id into buf). */
static const char *wd_find(struct wd *w, const char *css, char *buf, size_t len)
{
	json_t *v = wd_cmd(w, "POST", "/element",
			   json_pack("{s:s,s:s}", "using", "css selector", "value", css));

	snprintf(buf, len, "%s", json_string_value(json_object_get(v, ELEMENT_KEY)) ?: "");
	json_decref(v);
	return buf;
}

/* Find the element and act on it (path suffix, body).  The page re-renders
 * its lists from the event stream, so an element found may be replaced
 * before the action reaches it ("stale element reference"): then find it
 * again and retry, for up to 10 s.  True only once the action succeeded
 * (a failed action is never reported as done). */
static bool wd_act(struct wd *w, const char *css, const char *what, const char *text)
{
	char id[128], path[256];
	int i;

	for (i = 0; i < 100; i++) {
		json_t *v;

		if (i)
			af_sleep_ms(100);
		if (!wd_find(w, css, id, sizeof(id))[0])
			continue;
		snprintf(path, sizeof(path), "/element/%s/%s", id, what);
		v = wd_cmd(w, "POST", path, text ? json_pack("{s:s}", "text", text) : NULL);
		if (v) {	/* 200: the value (JSON null) */
			json_decref(v);
			return true;
		}
	}
	return false;
}

static bool wd_click(struct wd *w, const char *css)
{
	return wd_act(w, css, "click", NULL);
}

static bool wd_type(struct wd *w, const char *css, const char *text)
{
	return wd_act(w, css, "value", text);
}

static const char *artifacts_dir(void)
{
	static char dir[PATH_MAX];
	char bin[PATH_MAX];

	snprintf(bin, sizeof(bin), "%s", af_kgate());
	snprintf(dir, sizeof(dir), "%s/tests/artifacts", dirname(bin));
	kg_mkdir_p(dir, 0755);
	return dir;
}

/* Save a screenshot as <build>/tests/artifacts/NAME.png; its size. */
static long wd_screenshot(struct wd *w, const char *name)
{
	json_t *v = wd_cmd(w, "GET", "/screenshot", NULL);
	const char *b64 = json_string_value(v);
	unsigned char *png;
	char path[PATH_MAX + 64];
	long n = -1;
	size_t len;
	FILE *f;

	if (!b64) {
		json_decref(v);
		return -1;
	}
	len = strlen(b64);
	png = malloc(len);
	if (png) {
		n = EVP_DecodeBlock(png, (const unsigned char *)b64, (int)len);
		/* EVP_DecodeBlock counts the padding as zero bytes */
		if (n > 0 && len >= 2)
			n -= (b64[len - 1] == '=') + (b64[len - 2] == '=');
	}
	snprintf(path, sizeof(path), "%s/%s.png", artifacts_dir(), name);
	if (n > 8 && !memcmp(png, "\x89PNG", 4) && (f = fopen(path, "wb"))) {
		if (fwrite(png, 1, n, f) != (size_t)n)
			n = -1;
		fclose(f);
		printf("  screenshot: %s (%ld bytes)\n", path, n);
	} else {
		n = -1;
	}
	free(png);
	json_decref(v);
	return n;
}

static int free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t sl = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&in, sizeof(in)) &&
	    !getsockname(fd, (struct sockaddr *)&in, &sl))
		port = ntohs(in.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* chromedriver on loopback and a headless Chromium session; false with the
 * reason in why. */
static bool wd_start(struct wd *w, char *why, size_t whylen)
{
	char portopt[64], profile[512], profopt[600], logpath[300];
	json_t *caps, *v;
	int port = free_port(), i;

	memset(w, 0, sizeof(*w));
	if (access(CHROMIUM, X_OK) || access(CHROMEDRIVER, X_OK)) {
		snprintf(why, whylen, "%s or %s is not installed (Debian: chromium, chromium-driver)",
			 CHROMIUM, CHROMEDRIVER);
		return false;
	}
	snprintf(portopt, sizeof(portopt), "--port=%d", port);
	af_path(logpath, sizeof(logpath), "chromedriver.log");
	{
		char logopt[700];
		char *argv[] = { CHROMEDRIVER, portopt, "--allowed-ips=127.0.0.1", logopt, NULL };

		snprintf(logopt, sizeof(logopt), "--log-path=%s", logpath);
		w->pid = af_spawn(argv, "chromedriver.out");
	}
	snprintf(w->drv.url, sizeof(w->drv.url), "http://127.0.0.1:%d", port);
	for (i = 0; i < 100; i++) {
		struct af_res r;

		af_http(&w->drv, "GET", "/status", NULL, NULL, &r);
		if (json_is_true(json_object_get(json_object_get(r.json, "value"), "ready"))) {
			af_res_free(&r);
			break;
		}
		af_res_free(&r);
		af_sleep_ms(100);
	}
	if (i == 100) {
		snprintf(why, whylen, "chromedriver did not answer on %s", w->drv.url);
		return false;
	}
	af_path(profile, sizeof(profile), "chromium-profile");
	snprintf(profopt, sizeof(profopt), "--user-data-dir=%s", profile);
	caps = json_pack("{s:{s:{s:s,s:{s:s,s:[s,s,s,s,s,s,s,s,s,s]}}}}",
			 "capabilities", "alwaysMatch", "browserName", "chrome",
			 "goog:chromeOptions", "binary", CHROMIUM, "args",
			 "--headless=new", "--no-sandbox", "--disable-gpu",
			 "--disable-background-networking", "--disable-component-update",
			 "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900",
			 "--no-proxy-server", profopt);
	v = wd_cmd(w, "POST", "/session", caps);
	snprintf(w->session, sizeof(w->session), "%s",
		 json_string_value(json_object_get(v, "sessionId")) ?: "");
	json_decref(v);
	if (!w->session[0]) {
		snprintf(why, whylen, "chromium did not start a session (see %s)", logpath);
		return false;
	}
	return true;
}

static void wd_stop(struct wd *w)
{
	if (w->session[0]) {
		char path[200];
		json_t *v;

		snprintf(path, sizeof(path), "/session/%s", w->session);
		v = wd_cmd(w, "DELETE", path, NULL);
		json_decref(v);
		w->session[0] = '\0';
	}
	if (w->pid > 0) {
		kill(w->pid, SIGTERM);
		if (af_wait_ms(w->pid, 5000) == -2) {
			kill(-w->pid, SIGKILL);
			af_wait(w->pid);
		}
		w->pid = 0;
	}
}

/* ---- the test ----------------------------------------------------------------------------- */

TEST(reviewer_approves_a_held_connect_from_the_page)
{
	char json[2048], policy[512], why[512], sel[256], id[32] = "", script[512];
	struct af_daemon d;
	struct af_job job = {};
	const char *tok;
	struct wd w;
	json_t *recs;
	int lfd, port;

	af_setup();
	lfd = af_listen(&port);
	if (lfd < 0)
		SKIP("cannot listen on 127.0.0.2");
	af_hold_policy(json, sizeof(json), "hold", port, "{\"uids\":[4242]}");
	af_write("hold.json", json, policy, sizeof(policy));
	tok = af_token("reviewer", "4242", "");
	if (!ASSERT_TRUE(tok != NULL, "a token") || !ASSERT_OK(af_daemon_start(&d, NULL), "daemon")) {
		af_teardown();
		return;
	}
	if (!wd_start(&w, why, sizeof(why))) {
		char *log = af_slurp("chromedriver.log");

		if (log)
			printf("  chromedriver.log (end): %s\n", strlen(log) > 1500 ?
			       log + strlen(log) - 1500 : log);
		free(log);
		wd_stop(&w);
		af_daemon_stop(&d);
		close(lfd);
		af_teardown();
		NO_BROWSER("no browser: %s", why);
	}
	{
		char url[200];
		json_t *v;

		snprintf(url, sizeof(url), "%s/", d.url);
		v = wd_cmd(&w, "POST", "/url", json_pack("{s:s}", "url", url));
		json_decref(v);
	}
	/* no token yet: the page asks for one */
	ASSERT_TRUE(wd_until(&w, "return !document.getElementById('token-panel').hidden;", 10000),
		    "the page asks for a token");
	ASSERT_TRUE(wd_type(&w, "#token-input", tok), "the reviewer pastes the token");
	ASSERT_TRUE(wd_click(&w, "#token-save"), "and saves it");
	ASSERT_TRUE(wd_until(&w, "return document.body.dataset.live === '1';", 15000),
		    "the page is live (its event stream is open)");
	ASSERT_EQ(wd_script_int(&w, "return document.querySelectorAll('#pending-list .card').length;"),
		  0, "nothing pending yet");
	/* a marker that a reload would lose */
	json_decref(wd_script(&w, "window.kgMarker = 4242; return 1;"));

	af_job_start(&job, policy, port, "job0");
	ASSERT_OK(af_pending_id(&d, tok, port, id, sizeof(id), 20000), "the job's connect is held");
	snprintf(script, sizeof(script),
		 "return !!document.querySelector('#pending-list .card[data-id=\"%s\"] .approve-once');",
		 id);
	ASSERT_TRUE(wd_until(&w, script, 10000), "the request appears on the page");
	ASSERT_EQ(wd_script_int(&w, "return window.kgMarker || 0;"), 4242,
		  "live: the page was not reloaded");
	{
		json_t *v = wd_script(&w, "return document.body.dataset.lastEvent || '';");

		printf("  last event the page saw: %s\n", json_string_value(v) ?: "?");
		json_decref(v);
	}
	{
		/* what a reviewer needs to decide is on the card */
		json_t *v = wd_script(&w, "return document.querySelector('#pending-list .card').innerText;");
		const char *text = json_string_value(v);

		ASSERT_HAS_SUBSTR(text, "127.0.0.2", "the target");
		ASSERT_HAS_SUBSTR(text, "prod-db", "the rule");
		ASSERT_HAS_SUBSTR(text, "the production database", "its reason");
		ASSERT_HAS_SUBSTR(text, "net_probe", "the command line");
		ASSERT_HAS_SUBSTR(text, "hold", "the policy");
		ASSERT_HAS_SUBSTR(text, "root", "the user");
		ASSERT_HAS_SUBSTR(text, "expires in", "the time left");
		json_decref(v);
	}
	ASSERT_TRUE(wd_screenshot(&w, "approvals-pending") > 0, "screenshot: pending");
	{
		json_t *v = wd_cmd(&w, "POST", "/window/rect", json_pack("{s:i,s:i}", "width", 390,
								       "height", 844));
		long width;

		json_decref(v);
		af_sleep_ms(300);
		width = wd_script_int(&w, "return Math.round(document.querySelector('#pending-list "
				      ".approve-once').getBoundingClientRect().width);");
		ASSERT_TRUE(width > 250, "on a phone the buttons are full width");
		ASSERT_EQ(wd_script_int(&w, "return document.documentElement.scrollWidth > "
				       "window.innerWidth ? 1 : 0;"), 0, "and nothing scrolls sideways");
		ASSERT_TRUE(wd_screenshot(&w, "approvals-pending-phone") > 0, "screenshot: phone");
		v = wd_cmd(&w, "POST", "/window/rect", json_pack("{s:i,s:i}", "width", 1280,
								 "height", 900));
		json_decref(v);
	}
	ASSERT_EQ(af_job_result(&job), -1, "still held before the click");
	snprintf(sel, sizeof(sel), "#pending-list .card[data-id=\"%s\"] .note", id);
	ASSERT_TRUE(wd_type(&w, sel, "checked with the on-call"), "a note");
	snprintf(sel, sizeof(sel), "#pending-list .card[data-id=\"%s\"] .approve-once", id);
	ASSERT_TRUE(wd_click(&w, sel), "click: Approve once");
	ASSERT_EQ(af_job_wait_result(&job, 10000), 0, "the governed job's connect completes");
	snprintf(script, sizeof(script),
		 "return !document.querySelector('#pending-list .card[data-id=\"%s\"]');", id);
	ASSERT_TRUE(wd_until(&w, script, 10000), "the request leaves the pending list");
	ASSERT_TRUE(wd_click(&w, "#tab-btn-decided"), "the Decided tab");
	snprintf(script, sizeof(script),
		 "var c = document.querySelector('#decided-list .card[data-id=\"%s\"]');"
		 "return !!c && c.dataset.state === 'approved' && "
		 "c.innerText.indexOf('checked with the on-call') >= 0 && "
		 "c.innerText.indexOf('token reviewer') >= 0;", id);
	ASSERT_TRUE(wd_until(&w, script, 10000), "shows it approved, with the note and the token");
	ASSERT_TRUE(wd_screenshot(&w, "approvals-decided") > 0, "screenshot: decided");
	/* the job's timeline, one click away */
	snprintf(sel, sizeof(sel), "#decided-list .card[data-id=\"%s\"] .job-link", id);
	ASSERT_TRUE(wd_click(&w, sel), "click: the job");
	ASSERT_TRUE(wd_until(&w, "var t = document.querySelector('#job-detail .timeline');"
			     "return !!t && t.innerText.indexOf('approved') >= 0 && "
			     "t.innerText.indexOf('(token:reviewer)') >= 0;", 10000),
		    "its timeline shows the approval and who made it");
	ASSERT_TRUE(wd_screenshot(&w, "approvals-job-timeline") > 0, "screenshot: timeline");
	recs = af_audit("approval", "approved");
	ASSERT_EQ(json_array_size(recs), 1, "one approval in the audit trail");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_array_get(recs, 0),
								       "actor"), "role")),
		     "token:reviewer", "under the reviewer's token");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_array_get(recs, 0),
								       "extra"), "note")),
		     "checked with the on-call", "with the note typed on the page");
	json_decref(recs);
	wd_stop(&w);
	af_job_stop(&job);
	ASSERT_EQ(af_daemon_stop(&d), 0, "the daemon stops");
	close(lfd);
	af_teardown();
}

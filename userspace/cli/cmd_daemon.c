// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cmd_daemon.c - 'kgate daemon': the long-running controller.
 *
 * It owns the BPF objects (loaded and pinned), consumes the ring buffer
 * (when no `kgate run` is consuming), writes the audit trail, serves the
 * control socket, and adopts jobs whose `kgate run` died: their pinned
 * programs keep enforcing (fail closed) and the daemon cleans up once they
 * end.  Who may push policies through it is itself policy (--policy FILE:
 * its "pushers"; root only by default), checked against SO_PEERCRED.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "approve/approvals.h"
#include "record/audit.h"
#include "job/cgroup.h"
#include "cli/cmds.h"
#include "common.h"
#include "daemon/control.h"
#include "daemon/service.h"
#include "api/http.h"
#include "record/events.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "kernel/push.h"
#include "job/reap.h"
#include "record/ringsize.h"
#include "record/recorder.h"
#include "job/registry.h"
#include "kernel/selfprotect.h"

#define TICK_MS 250

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

#define MAX_POLLFDS (KG_CONTROL_MAX_CLIENTS + 2)

struct daemon {
	struct kg_loader *loader;
	struct kg_audit *audit;
	struct kg_consumer *consumer;
	struct kg_control_server *srv;
	struct kg_heartbeat *heartbeat;
	struct kg_approvals *approvals;	/* decisions of approvers who are not root */
	struct kg_policy_doc *conf;	/* pushers etc.; NULL = root only */
	struct kg_api_cfg http;		/* listen == NULL: no HTTP API */
	struct kg_api *api;
	uint32_t ring_bytes;		/* --ring-size (0: default or the pinned ring's) */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate daemon [--policy FILE] [--http [ADDR:PORT] [HTTP OPTIONS]]\n\n"
		   "Run the long-lived controller: keep kgate's BPF programs loaded and pinned,\n"
		   "record kernel events in the audit trail, serve the control socket\n"
		   "(%s), and clean up after jobs whose `kgate run` died.\n\n"
		   "  --policy FILE         whose \"pushers\" may push policies through the daemon\n"
		   "                        (default: root only)\n"
		   "  --http [ADDR:PORT]    serve the HTTP API and the approvals page (default\n"
		   "                        %s; [::1]:PORT for IPv6; port 0 = any free one,\n"
		   "                        see %s/http.json); docs/api.md\n"
		   "  --http-cert FILE      HTTPS with this PEM certificate (chain) ...\n"
		   "  --http-key FILE       ... and its PEM private key\n"
		   "  --http-read-anonymous answer GET requests without a token (everything they\n"
		   "                        show is then visible to whoever reaches the port);\n"
		   "                        decisions always need a token (`kgate token`)\n"
		   "  --http-plaintext      allow plain HTTP on an address that is not loopback\n"
		   "  --http-max-connections N   at once (default %d; more wait their turn)\n"
		   "  --dispatch-policy FILE  jobs may be submitted (POST /api/v1/jobs) under\n"
		   "                        this policy, by its name (repeatable)\n"
		   "  --ring-size SIZE      the event ring buffer's size when kgate first loads:\n"
		   "                        a power of two from 64K to 256M (default 4M); a\n"
		   "                        ring already loaded with another size is refused\n\n"
		   "Stop it with SIGTERM; the pinned programs keep enforcing.\n", kg_socket_path(),
		KG_API_DEFAULT_ADDR, kg_state_dir(), KG_API_MAX_CONNECTIONS);
}

static void audit_controller(struct daemon *d, const char *op, json_t *extra)
{
	struct kg_rec r;

	kg_rec_init(&r, "controller");
	kg_rec_int(&r, "actor.uid", getuid());
	kg_rec_int(&r, "subject.pid", getpid());
	kg_rec_str(&r, "op", op);
	kg_rec_str(&r, "target", "kgate daemon");
	kg_rec_str(&r, "mechanism", "controller");
	kg_rec_extra(&r, extra);
	if (kg_rec_append(d->audit, &r) || kg_audit_flush(d->audit))
		kg_warn("daemon: the %s record could not be written", op);
}

static bool in_groups(const struct kg_peer *peer, uint32_t gid)
{
	size_t i;

	if (peer->gid == gid)
		return true;
	for (i = 0; i < peer->ngroups; i++)
		if (peer->groups[i] == gid)
			return true;
	return false;
}

static bool principal_allowed(const struct kg_principals *p, const struct kg_peer *peer)
{
	size_t i;

	for (i = 0; i < p->nuids; i++)
		if (p->uids[i] == peer->uid)
			return true;
	for (i = 0; i < p->ngids; i++)
		if (in_groups(peer, p->gids[i]))
			return true;
	return false;
}

static bool may_push(const struct daemon *d, const struct kg_peer *peer)
{
	if (!d->conf || (!d->conf->pushers.nuids && !d->conf->pushers.ngids))
		return peer->uid == 0;
	return principal_allowed(&d->conf->pushers, peer);
}

/* Pushers may send a policy; everyone else a small request. */
static size_t request_limit(void *ctx, const struct kg_peer *peer)
{
	return may_push(ctx, peer) ? KG_CONTROL_MAX_REQUEST : KG_CONTROL_SMALL_REQUEST;
}

static void principal_of(const struct kg_peer *peer, struct kg_principal *p)
{
	kg_principal_from_creds(p, peer->uid, peer->gid, peer->groups, peer->ngroups);
}

static json_t *error_reply(const char *msg, int exit_code)
{
	return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "exit", exit_code);
}

static json_t *handle_push(struct daemon *d, const struct kg_peer *peer, json_t *req)
{
	const char *text = json_string_value(json_object_get(req, "policy"));
	const char *name = json_string_value(json_object_get(req, "name"));
	const char *job = json_string_value(json_object_get(req, "job"));
	struct kg_policy_error perr = {};
	struct kg_push_result res;
	struct kg_policy_doc *doc;
	struct passwd *pw;
	char msg[1024], *out = NULL;
	size_t outlen = 0;
	FILE *mem;
	json_t *reply;
	int rc;

	if (!may_push(d, peer))
		return error_reply("push: permission denied: not a pusher in the daemon's policy",
				   KG_EXIT_DENIED);
	if (!text)
		return error_reply("push: request has no policy text", KG_EXIT_USAGE);
	pw = getpwuid(peer->uid);	/* '~' is the caller's home */
	doc = kg_policy_load_buffer(text, strlen(text), name ? name : "<pushed>",
				    pw ? pw->pw_dir : NULL, &perr);
	if (!doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		return error_reply(msg, KG_EXIT_POLICY);
	}
	mem = open_memstream(&out, &outlen);
	rc = kg_push_policy(d->loader, d->audit, doc, job, peer->uid, mem, &res);
	if (mem)
		fclose(mem);
	reply = rc ? error_reply(out && *out ? out : "push failed; nothing changed", rc)
		   : json_pack("{s:b,s:s,s:i}", "ok", 1, "output", out ? out : "",
			       "jobs_updated", (int)res.jobs_updated);
	free(out);
	kg_policy_free(doc);
	return reply;
}

/* ---- status and approvals: the same functions as the HTTP API's -------------------- */

static json_t *handle_status(struct daemon *d, const struct kg_peer *peer, json_t *req)
{
	struct kg_principal p;
	struct kg_view v;
	json_t *jobs;

	(void)req;
	principal_of(peer, &p);
	if (kg_view_init(&v, d->approvals, &p))
		return error_reply("status: cannot read the registry", KG_EXIT_FAIL);
	jobs = kg_svc_jobs(&v);
	kg_view_free(&v);
	return json_pack("{s:b,s:o}", "ok", 1, "jobs", jobs);
}

/* the requests this peer may decide, and those of its own jobs */
static json_t *handle_approvals_list(struct daemon *d, const struct kg_peer *peer, json_t *req)
{
	bool all = json_is_true(json_object_get(req, "all"));
	struct kg_principal p;
	struct kg_view v;
	json_t *arr = NULL;
	int err;

	principal_of(peer, &p);
	err = kg_view_init(&v, d->approvals, &p);
	if (!err)
		err = kg_svc_requests(d->approvals, &v, all ? KG_SVC_ALL : KG_SVC_PENDING, 0, &arr);
	kg_view_free(&v);
	if (err)
		return error_reply("approvals: cannot read the queue", KG_EXIT_FAIL);
	return json_pack("{s:b,s:o}", "ok", 1, "requests", arr);
}

static json_t *decision_reply(int err, const struct kg_approval *a, const char *why)
{
	json_t *j = json_pack("{s:b,s:i,s:s}", "ok", err == 0, "errno", -err, "error",
			      err ? (why && *why ? why : strerror(-err)) : "");

	if (j && a->id[0])
		json_object_set_new(j, "request", kg_approval_to_json(a));
	return j;
}

static json_t *handle_decision(struct daemon *d, const struct kg_peer *peer, json_t *req,
			       bool approve)
{
	const char *id = json_string_value(json_object_get(req, "id"));
	const char *note = json_string_value(json_object_get(req, "note"));
	json_int_t ttl = json_integer_value(json_object_get(req, "ttl"));
	struct kg_grant_opts g = { .once = json_is_true(json_object_get(req, "once")),
				   .note = note };
	struct kg_approval a;
	struct kg_principal p;
	char why[256];
	int err;

	if (!id)
		return error_reply("approvals: request has no id", KG_EXIT_USAGE);
	if (ttl < 0 || ttl > 7 * 86400)
		return error_reply("approvals: ttl needs 1..604800 seconds", KG_EXIT_USAGE);
	g.ttl_sec = (uint64_t)ttl;
	principal_of(peer, &p);
	err = kg_svc_decide(d->approvals, &p, id, approve, &g, &a, why, sizeof(why));
	return decision_reply(err, &a, why);
}

static json_t *handle_approve(struct daemon *d, const struct kg_peer *peer, json_t *req)
{
	return handle_decision(d, peer, req, true);
}

static json_t *handle_deny(struct daemon *d, const struct kg_peer *peer, json_t *req)
{
	return handle_decision(d, peer, req, false);
}

static json_t *handle_ping(struct daemon *d, const struct kg_peer *peer, json_t *req)
{
	(void)d;
	(void)peer;
	(void)req;
	return json_pack("{s:b,s:i}", "ok", 1, "pid", (int)getpid());
}

/* ---- requests -------------------------------------------------------------------- */

/* What a refused op is recorded as: at most KG_OP_SHOWN bytes of it, cut on
 * a UTF-8 boundary, "..." after a cut.  A governed client chooses the op:
 * each refusal must not write a record as large as its request. */
#define KG_OP_SHOWN 64

static const char *op_shown(const char *op, char *buf, size_t len)
{
	size_t n = strlen(op);

	if (n <= KG_OP_SHOWN || len < KG_OP_SHOWN + 4)
		return op;
	n = KG_OP_SHOWN;
	while (n > 0 && ((unsigned char)op[n] & 0xc0) == 0x80)
		n--;		/* not inside a multi-byte character */
	memcpy(buf, op, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

/* A peer inside a governed job, or one whose cgroup could not be
 * established, drives nothing: refused, and audited as self-protection. */
static bool refuse_governed(struct daemon *d, const struct kg_peer *peer, const char *op)
{
	char shown[KG_OP_SHOWN + 4];

	struct kg_job_record *jobs = NULL;
	const char *trace = NULL;
	struct passwd *pw;
	uint64_t cgid = 0;
	struct kg_rec r;
	json_t *extra;
	size_t n = 0, i;

	if (peer->cgroup_known && !kg_selfprotect_cgroup_governed(d->loader, peer->cgroup, &cgid))
		return false;
	if (cgid && !kg_registry_list(&jobs, &n))
		for (i = 0; i < n && !trace; i++)
			if (jobs[i].cgid == cgid)
				trace = jobs[i].trace;
	op = op_shown(op, shown, sizeof(shown));
	extra = json_pack("{s:s,s:s,s:s,s:s}", "kind", "decision", "outcome", "refused",
			  "tried", op, "cgroup", peer->cgroup_known ? peer->cgroup : "unknown");
	pw = getpwuid(peer->uid);
	kg_rec_init(&r, "decision");
	kg_rec_str(&r, "trace", trace);
	kg_rec_int(&r, "actor.uid", peer->uid);
	kg_rec_str(&r, "actor.name", pw ? pw->pw_name : NULL);
	if (peer->pid >= 0)
		kg_rec_int(&r, "subject.pid", peer->pid);
	kg_rec_str(&r, "op", kg_op_name(KG_OP_KGATE_STATE));
	kg_rec_str(&r, "target", kg_socket_path());
	kg_rec_str(&r, "decision", "deny");
	kg_rec_str(&r, "rule", "kgate:self-protection");
	kg_rec_str(&r, "reason", peer->cgroup_known
		   ? "a governed process may not drive kgate's daemon"
		   : "the caller's cgroup could not be established");
	kg_rec_str(&r, "mechanism", "controller");
	kg_rec_extra(&r, extra);
	if (kg_rec_append(d->audit, &r) || kg_audit_flush(d->audit))
		kg_warn("daemon: the refusal of %s could not be audited", op);
	json_decref(extra);
	free(jobs);
	return true;
}

/* The requests of the control socket (one JSON object per line, its "op"
 * naming the entry), in the spirit of the CLI's tables (cli/select.c). */
struct daemon_op {
	const char *name;
	json_t *(*fn)(struct daemon *d, const struct kg_peer *peer, json_t *req);
	bool from_jobs;		/* answered to a peer inside a governed job too */
	const char *help;
};

static const struct daemon_op daemon_ops[] = {
	{ "ping",		handle_ping,		true,	"is the daemon alive (its pid)" },
	{ "status",		handle_status,		false,	"the jobs, as this peer may see them" },
	{ "push",		handle_push,		false,	"replace the policy of running jobs" },
	{ "approvals_list",	handle_approvals_list,	false,	"requests this peer may decide or raised" },
	{ "approve",		handle_approve,		false,	"grant a pending request" },
	{ "deny",		handle_deny,		false,	"refuse a pending request" },
};

static const struct daemon_op *daemon_op_find(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(daemon_ops); i++)
		if (!strcmp(daemon_ops[i].name, name))
			return &daemon_ops[i];
	return NULL;
}

/* "unknown op 'X' (one of ping, status, ...)" */
static json_t *unknown_op_reply(const char *op)
{
	char msg[512];
	size_t i, off;

	off = (size_t)snprintf(msg, sizeof(msg), "unknown op '%.64s' (one of ", op);
	for (i = 0; i < ARRAY_SIZE(daemon_ops) && off < sizeof(msg); i++)
		off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s", i ? ", " : "",
					daemon_ops[i].name);
	if (off < sizeof(msg))
		snprintf(msg + off, sizeof(msg) - off, ")");
	return error_reply(msg, KG_EXIT_USAGE);
}

static json_t *handle_request(void *ctx, const struct kg_peer *peer, json_t *req)
{
	struct daemon *d = ctx;
	const char *op = json_string_value(json_object_get(req, "op"));
	const struct daemon_op *entry;

	if (!req || !op)
		return error_reply("malformed request: one JSON object with an \"op\" per line",
				   KG_EXIT_USAGE);
	entry = daemon_op_find(op);
	if (entry && entry->from_jobs)
		return entry->fn(d, peer, req);
	/* every other request from inside a job, known or not, is refused
	 * and audited before anything else is looked at */
	if (refuse_governed(d, peer, op))
		return error_reply(peer->cgroup_known ?
				   "refused: the caller runs inside a governed job" :
				   "refused: the caller's cgroup could not be established",
				   KG_EXIT_DENIED);
	return entry ? entry->fn(d, peer, req) : unknown_op_reply(op);
}

/* A `kgate run` may be the consumer when the daemon starts: take over as
 * soon as it lets go. */
static void try_consume(struct daemon *d)
{
	if (!d->consumer)
		d->consumer = kg_consumer_try(d->loader, d->audit);
}

static int run_daemon(struct daemon *d)
{
	struct kg_loader_opts lo = { .want_lsm = true, .ring_bytes = d->ring_bytes };
	struct sigaction sa = { .sa_handler = on_stop };
	struct kg_approvals_cfg acfg = {};
	struct kg_sp_dirs sp;
	uint64_t next_tick = 0;
	json_t *extra;

	if (kg_control_daemon_running())
		return kg_err("daemon: another daemon answers on %s", kg_socket_path()), KG_EXIT_FAIL;
	d->loader = kg_loader_open(&lo);
	if (!d->loader)
		return KG_EXIT_FAIL;
	d->audit = kg_audit_open(NULL, NULL);
	if (!d->audit)
		return KG_EXIT_FAIL;
	if (kg_selfprotect_dirs(&sp) ||
	    (kg_loader_lsm_active(d->loader) && kg_selfprotect_register(d->loader, &sp)))
		return KG_EXIT_FAIL;
	/* before any client can connect: fail-open jobs stay enforced
	 * whatever the clients do */
	d->heartbeat = kg_heartbeat_start(d->loader, TICK_MS);
	if (!d->heartbeat)
		return kg_err("daemon: heartbeat thread: %s", strerror(errno)), KG_EXIT_FAIL;
	acfg.audit = d->audit;
	acfg.loader = d->loader;
	d->approvals = kg_approvals_open(&acfg);
	if (!d->approvals)
		return KG_EXIT_FAIL;
	d->srv = kg_control_server_open(handle_request, request_limit, d);
	if (!d->srv)
		return kg_err("daemon: cannot listen on %s: %s", kg_socket_path(),
			      strerror(errno)), KG_EXIT_FAIL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* in threads of its own: whatever its clients do, this loop, the
	 * consumer and the heartbeat go on */
	if (d->http.listen && !(d->api = kg_api_start(&d->http)))
		return KG_EXIT_FAIL;
	try_consume(d);
	extra = json_pack("{s:i,s:s,s:s,s:b}", "pid", (int)getpid(), "mode",
			  kg_loader_lsm_active(d->loader) ? "full" : "degraded", "pins", kg_pin_dir(),
			  "consumer", d->consumer != NULL);
	audit_controller(d, "start", extra);
	json_decref(extra);
	kg_info("daemon: ready on %s (%s mode)", kg_socket_path(),
		kg_loader_lsm_active(d->loader) ? "full" : "degraded");
	while (!stop_signal) {
		struct pollfd pfd[MAX_POLLFDS];
		uint64_t now = kg_now_mono_ns();
		int timeout = TICK_MS, t;
		size_t n;

		pfd[0] = (struct pollfd){ .fd = d->consumer ? kg_consumer_epoll_fd(d->consumer) : -1,
					  .events = POLLIN };
		n = 1 + kg_control_server_pollfds(d->srv, pfd + 1, MAX_POLLFDS - 1);
		t = kg_control_server_timeout_ms(d->srv);
		if (t >= 0 && t < timeout)
			timeout = t;
		if (next_tick > now && (next_tick - now) / 1000000 < (uint64_t)timeout)
			timeout = (int)((next_tick - now) / 1000000) + 1;
		poll(pfd, n, kg_consumer_timeout_ms(d->consumer, timeout));
		kg_control_server_service(d->srv, pfd + 1, n - 1);
		if (d->consumer)
			kg_consumer_poll(d->consumer);
		now = kg_now_mono_ns();
		if (now >= next_tick) {	/* housekeeping at its own pace, not per client */
			try_consume(d);
			kg_reap_orphans(d->loader, d->audit, "the daemon");
			next_tick = now + TICK_MS * 1000000ull;
		}
		kg_audit_flush_if_due(d->audit);
	}
	kg_api_stop(d->api);	/* its last decisions are in before the drain */
	d->api = NULL;
	if (d->consumer)
		kg_consumer_drain(d->consumer);
	extra = json_pack("{s:i}", "signal", (int)stop_signal);
	audit_controller(d, "stop", extra);
	json_decref(extra);
	return KG_EXIT_OK;
}

int cmd_daemon(int argc, char **argv)
{
	enum { OPT_HTTP = 256, OPT_CERT, OPT_KEY, OPT_ANON, OPT_PLAIN, OPT_MAXCONN, OPT_DISPATCH,
	       OPT_RING };
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "http", optional_argument, NULL, OPT_HTTP },
		{ "http-cert", required_argument, NULL, OPT_CERT },
		{ "http-key", required_argument, NULL, OPT_KEY },
		{ "http-read-anonymous", no_argument, NULL, OPT_ANON },
		{ "http-plaintext", no_argument, NULL, OPT_PLAIN },
		{ "http-max-connections", required_argument, NULL, OPT_MAXCONN },
		{ "dispatch-policy", required_argument, NULL, OPT_DISPATCH },
		{ "ring-size", required_argument, NULL, OPT_RING },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool http_opts = false;
	char *end;
	struct daemon d = { 0 };
	struct kg_policy_error perr = {};
	char msg[1024];
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			d.conf = kg_policy_load_file(optarg, NULL, &perr);
			if (!d.conf) {
				kg_policy_error_format(&perr, msg, sizeof(msg));
				return kg_err("%s", msg), KG_EXIT_POLICY;
			}
			break;
		case OPT_HTTP:
			/* "--http ADDR:PORT" as well as "--http=ADDR:PORT" */
			if (!optarg && optind < argc && argv[optind][0] != '-')
				optarg = argv[optind++];
			d.http.listen = optarg ? optarg : KG_API_DEFAULT_ADDR;
			break;
		case OPT_CERT: d.http.cert_path = optarg; http_opts = true; break;
		case OPT_KEY: d.http.key_path = optarg; http_opts = true; break;
		case OPT_ANON: d.http.read_anonymous = true; http_opts = true; break;
		case OPT_PLAIN: d.http.plaintext_ok = true; http_opts = true; break;
		case OPT_MAXCONN:
			errno = 0;
			d.http.max_connections = (unsigned int)strtoul(optarg, &end, 10);
			if (errno || *end || d.http.max_connections < 4 || d.http.max_connections > 1024) {
				kg_err("daemon: --http-max-connections needs 4..1024");
				return KG_EXIT_USAGE;
			}
			http_opts = true;
			break;
		case OPT_DISPATCH:
			if (d.http.ndispatch == KG_API_MAX_DISPATCH) {
				kg_err("daemon: at most %d --dispatch-policy files", KG_API_MAX_DISPATCH);
				return KG_EXIT_USAGE;
			}
			d.http.dispatch[d.http.ndispatch++] = optarg;
			http_opts = true;
			break;
		case OPT_RING:
			if (kg_ring_size_parse(optarg, &d.ring_bytes))
				return KG_EXIT_USAGE;
			break;
		case 'h': usage(stdout); return KG_EXIT_OK;
		default: usage(stderr); return KG_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		kg_err("daemon: unexpected argument '%s'", argv[optind]);
		return KG_EXIT_USAGE;
	}
	if (http_opts && !d.http.listen) {
		kg_err("daemon: the --http-* options need --http");
		return KG_EXIT_USAGE;
	}
	rc = run_daemon(&d);
	kg_api_stop(d.api);			/* when the loop never ran */
	kg_control_server_close(d.srv);		/* unlinks the socket */
	kg_heartbeat_stop(d.heartbeat);
	kg_approvals_close(d.approvals);
	kg_consumer_close(d.consumer);
	kg_audit_close(d.audit);
	kg_loader_close(d.loader);
	kg_policy_free(d.conf);
	return rc;
}

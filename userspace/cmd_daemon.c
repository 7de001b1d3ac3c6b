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

#include "audit.h"
#include "cgroup.h"
#include "cmds.h"
#include "common.h"
#include "control.h"
#include "events.h"
#include "loader.h"
#include "maps.h"
#include "policy.h"
#include "push.h"
#include "reap.h"
#include "recorder.h"
#include "registry.h"

#define TICK_MS 250

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

struct daemon {
	struct kg_loader *loader;
	struct kg_audit *audit;
	struct kg_consumer *consumer;
	int lfd;
	struct kg_policy_doc *conf;	/* pushers etc.; NULL = root only */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate daemon [--policy FILE]\n\n"
		   "Run the long-lived controller: keep kgate's BPF programs loaded and pinned,\n"
		   "record kernel events in the audit trail, serve the control socket\n"
		   "(%s), and clean up after jobs whose `kgate run` died.\n\n"
		   "  --policy FILE   whose \"pushers\" may push policies through the daemon\n"
		   "                  (default: root only)\n\n"
		   "Stop it with SIGTERM; the pinned programs keep enforcing.\n", kg_socket_path());
}

static void audit_controller(struct daemon *d, const char *op, json_t *extra)
{
	struct kg_audit_rec r = {
		.type = "controller", .actor_uid = getuid(), .pid = getpid(), .tid = -1,
		.op = op, .target = "kgate daemon", .mechanism = "controller", .extra = extra,
	};

	kg_audit_append(d->audit, &r);
	kg_audit_flush(d->audit);
}

static bool principal_allowed(const struct kg_principals *p, const struct kg_peer *peer)
{
	size_t i;

	for (i = 0; i < p->nuids; i++)
		if (p->uids[i] == peer->uid)
			return true;
	for (i = 0; i < p->ngids; i++)
		if (p->gids[i] == peer->gid)
			return true;
	return false;
}

static bool may_push(const struct daemon *d, const struct kg_peer *peer)
{
	if (!d->conf || (!d->conf->pushers.nuids && !d->conf->pushers.ngids))
		return peer->uid == 0;
	return principal_allowed(&d->conf->pushers, peer);
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

static json_t *handle_status(void)
{
	struct kg_job_record *jobs = NULL;
	json_t *arr = json_array();
	size_t n = 0, i;

	kg_registry_list(&jobs, &n);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I}", "trace", jobs[i].trace,
						     "command", jobs[i].command, "policy_hash",
						     jobs[i].policy_hash, "cgroup_id",
						     (json_int_t)jobs[i].cgid));
	free(jobs);
	return json_pack("{s:b,s:o}", "ok", 1, "jobs", arr);
}

static void serve_one(struct daemon *d)
{
	struct kg_peer peer;
	json_t *req = NULL, *reply;
	const char *op;
	int cfd;

	cfd = kg_control_accept(d->lfd, &peer, &req);
	if (cfd < 0)
		return;
	op = json_string_value(json_object_get(req, "op"));
	if (!req || !op)
		reply = error_reply("malformed request: one JSON object with an \"op\" per line",
				    KG_EXIT_USAGE);
	else if (!strcmp(op, "ping"))
		reply = json_pack("{s:b,s:i}", "ok", 1, "pid", (int)getpid());
	else if (!strcmp(op, "status"))
		reply = handle_status();
	else if (!strcmp(op, "push"))
		reply = handle_push(d, &peer, req);
	else
		reply = error_reply("unknown op", KG_EXIT_USAGE);
	json_decref(req);
	kg_control_reply(cfd, reply);
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
	struct kg_loader_opts lo = { .want_lsm = true };
	struct sigaction sa = { .sa_handler = on_stop };
	json_t *extra;

	if (kg_control_daemon_running())
		return kg_err("daemon: another daemon answers on %s", kg_socket_path()), KG_EXIT_FAIL;
	d->loader = kg_loader_open(&lo);
	if (!d->loader)
		return KG_EXIT_FAIL;
	d->audit = kg_audit_open(NULL, NULL);
	if (!d->audit)
		return KG_EXIT_FAIL;
	d->lfd = kg_control_listen();
	if (d->lfd < 0)
		return kg_err("daemon: cannot listen on %s: %s", kg_socket_path(),
			      strerror(-d->lfd)), KG_EXIT_FAIL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	try_consume(d);
	extra = json_pack("{s:i,s:s,s:s,s:b}", "pid", (int)getpid(), "mode",
			  kg_loader_lsm_active(d->loader) ? "full" : "degraded", "pins", kg_pin_dir(),
			  "consumer", d->consumer != NULL);
	audit_controller(d, "start", extra);
	json_decref(extra);
	kg_info("daemon: ready on %s (%s mode)", kg_socket_path(),
		kg_loader_lsm_active(d->loader) ? "full" : "degraded");
	while (!stop_signal) {
		struct pollfd pfd[2] = {
			{ .fd = d->lfd, .events = POLLIN },
			{ .fd = d->consumer ? kg_consumer_epoll_fd(d->consumer) : -1, .events = POLLIN },
		};

		poll(pfd, 2, TICK_MS);
		if (pfd[0].revents & POLLIN)
			serve_one(d);
		if (d->consumer)
			kg_consumer_poll(d->consumer);
		kg_maps_heartbeat(d->loader);
		try_consume(d);
		kg_reap_orphans(d->loader, d->audit, "the daemon");
		kg_audit_flush_if_due(d->audit);
	}
	if (d->consumer)
		kg_consumer_drain(d->consumer);
	extra = json_pack("{s:i}", "signal", (int)stop_signal);
	audit_controller(d, "stop", extra);
	json_decref(extra);
	unlink(kg_socket_path());
	return KG_EXIT_OK;
}

int cmd_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct daemon d = { .lfd = -1 };
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
		case 'h': usage(stdout); return KG_EXIT_OK;
		default: usage(stderr); return KG_EXIT_USAGE;
		}
	}
	rc = run_daemon(&d);
	if (d.lfd >= 0)
		close(d.lfd);
	kg_consumer_close(d.consumer);
	kg_audit_close(d.audit);
	kg_loader_close(d.loader);
	kg_policy_free(d.conf);
	return rc;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cmd_approvals.c - 'kgate approvals list|approve|deny'.
 *
 * As root, works on the shared queue in <state dir>/approvals directly, the
 * caller's identity being this process's real uid and groups (the kernel's
 * view, not a claim).  Anyone else asks kgate's daemon, which owns the
 * queue and the kernel's grants and passes SO_PEERCRED's uid and
 * SO_PEERGROUPS's groups to the same kg_approvals_* functions.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "approve/approvals.h"
#include "cli/cmds.h"
#include "common.h"
#include "daemon/control.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate approvals SUBCOMMAND [OPTIONS]\n\n"
		   "subcommands:\n"
		   "  list [--all] [--json]                     pending requests (--all: decided too)\n"
		   "  approve ID [--note TEXT] [--ttl SEC | --once]\n"
		   "                                            install a grant for exactly that action\n"
		   "  deny ID [--note TEXT]                     refuse it\n\n"
		   "A request is bound to one action (job, operation, target) and to the policy\n"
		   "it was raised under.  Approving re-checks that the job still runs that\n"
		   "policy (else the request becomes 'stale' and the agent must retry), then\n"
		   "installs a kernel grant: --once for a single use, --ttl SEC for a time\n"
		   "(default: the policy's approval timeout).  Who may decide: the policy's\n"
		   "approvers (uid 0 only when it lists none); the job's own user only with\n"
		   "allow_self_approval.  Overdue requests are expired (denied) when listed.\n"
		   "Users other than root go through kgate's daemon (`kgate daemon`), which\n"
		   "shows them the requests they may decide or their jobs raised.\n\n"
		   "exit status: 0 done, 4 not allowed / stale / expired / already decided,\n"
		   "2 usage or no such request, 1 other failure\n");
}

struct opts {
	bool all, json, once;
	const char *note;
	uint64_t ttl;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "note", required_argument, NULL, 'n' },
		{ "ttl", required_argument, NULL, 't' },
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int ch;

	memset(o, 0, sizeof(*o));
	o->json = kg_env.json;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': o->all = true; break;
		case 'j': o->json = true; kg_env.json = true; break;
		case 'n': o->note = optarg; break;
		case 'o': o->once = true; break;
		case 't':
			errno = 0;
			o->ttl = strtoull(optarg, &end, 10);
			if (errno || *end || !o->ttl || o->ttl > 7 * 86400ull)
				return kg_err("approvals: --ttl needs 1..604800 seconds"), -1;
			break;
		case 'h': return -2;
		default:
			return kg_err("approvals: unknown option '%s'", argv[optind - 1]), -1;
		}
	}
	if (o->once && o->ttl)
		return kg_err("approvals: --ttl and --once exclude each other"), -1;
	return optind;
}

/* "42s", "3m07s", "2h05m", "3d04h" */
static void format_age(uint64_t sec, char *buf, size_t len)
{
	if (sec < 60)
		snprintf(buf, len, "%llus", (unsigned long long)sec);
	else if (sec < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)sec / 60,
			 (unsigned long long)sec % 60);
	else if (sec < 86400)
		snprintf(buf, len, "%lluh%02llum", (unsigned long long)sec / 3600,
			 (unsigned long long)sec % 3600 / 60);
	else
		snprintf(buf, len, "%llud%02lluh", (unsigned long long)sec / 86400,
			 (unsigned long long)sec % 86400 / 3600);
}

/* how long a request has waited: until now while pending, until its
 * decision once decided */
static uint64_t age_sec(const struct kg_approval *a, uint64_t now)
{
	uint64_t end = a->state == KG_APPR_PENDING || !a->decided_ns ? now : a->decided_ns;

	return end > a->created_ns ? (end - a->created_ns) / 1000000000ull : 0;
}

static void print_row(const struct kg_approval *a, uint64_t now)
{
	char created[48], age[32];

	kg_audit_format_time(a->created_ns, created, sizeof(created));
	created[19] = '\0';	/* to the second */
	format_age(age_sec(a, now), age, sizeof(age));
	printf("%-12s  %-8s  %-19s  %6s  %-11s  %-30s  %-16s  %5u  %s\n", a->id,
	       kg_appr_state_name(a->state), created, age, kg_op_name(a->key.op), a->target,
	       a->rule_id, a->requester_uid, a->trace_id);
}

/* Text: a row per request (AGE: how long it waited) and, when any is
 * pending, how long the oldest has waited.  --json: the requests, each
 * with its age_sec. */
static void print_list(const struct kg_approval *v, size_t n, const struct opts *o)
{
	uint64_t now = kg_now_real_ns(), oldest = 0;
	const struct kg_approval *old = NULL;
	size_t i, pending = 0;
	json_t *arr;
	char *s;

	for (i = 0; i < n; i++) {
		if (v[i].state != KG_APPR_PENDING)
			continue;
		pending++;
		if (!old || age_sec(&v[i], now) > oldest) {
			old = &v[i];
			oldest = age_sec(&v[i], now);
		}
	}
	if (o->json) {
		arr = json_array();
		for (i = 0; arr && i < n; i++) {
			json_t *j = kg_approval_to_json(&v[i]);

			if (j)
				json_object_set_new(j, "age_sec", json_integer((json_int_t)age_sec(&v[i], now)));
			json_array_append_new(arr, j);
		}
		s = arr ? json_dumps(arr, JSON_INDENT(2)) : NULL;
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(arr);
	} else if (!n) {
		printf("no %srequests\n", o->all ? "" : "pending ");
	} else {
		char age[32];

		printf("%-12s  %-8s  %-19s  %6s  %-11s  %-30s  %-16s  %5s  %s\n", "ID", "STATE",
		       "CREATED (UTC)", "AGE", "OP", "TARGET", "RULE", "UID", "TRACE");
		for (i = 0; i < n; i++)
			print_row(&v[i], now);
		if (old) {
			format_age(oldest, age, sizeof(age));
			if (oldest < 60)
				printf("%zu pending; the oldest, %s, has waited %s\n", pending,
				       old->id, age);
			else
				printf("%zu pending; the oldest, %s, has waited %s (%llu s)\n",
				       pending, old->id, age, (unsigned long long)oldest);
		}
	}
}

static int do_list(struct kg_approvals *q, const struct opts *o)
{
	struct kg_approval *v = NULL;
	size_t n;
	int err;

	kg_approvals_expire(q, 0);	/* a reviewer never sees an overdue request as pending */
	err = kg_approvals_list(q, o->all, &v, &n);
	if (err)
		return kg_err("approvals: cannot read the queue: %s", strerror(-err)), KG_EXIT_FAIL;
	print_list(v, n, o);
	free(v);
	return KG_EXIT_OK;
}

static int exit_for(int err)
{
	switch (err) {
	case 0: return KG_EXIT_OK;
	case -ENOENT: return KG_EXIT_USAGE;
	case -EACCES: case -EALREADY: case -ETIMEDOUT: case -ESRCH: case -ESTALE:
		return KG_EXIT_DENIED;
	default: return KG_EXIT_FAIL;
	}
}

static void report(const char *verb, const char *id, int err, const struct kg_approval *a,
		   const struct opts *o)
{
	json_t *j;
	char *s;

	if (o->json && (err == 0 || err == -ESTALE || err == -ETIMEDOUT || err == -ESRCH ||
			err == -EALREADY)) {
		j = kg_approval_to_json(a);
		if (j && err)
			json_object_set_new(j, "error", json_string(strerror(-err)));
		s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
		return;
	}
	switch (err) {
	case 0:
		if (!strcmp(verb, "approve") && a->key.op == KG_OP_ADMISSION)
			printf("approved %s: launch of %s\n", id, a->target);
		else if (!strcmp(verb, "approve"))
			printf("approved %s: %s %s, grant %s\n", id, kg_op_name(a->key.op), a->target,
			       a->once ? "for one use" : "until its ttl");
		else
			printf("denied %s: %s %s\n", id, kg_op_name(a->key.op), a->target);
		break;
	case -ENOENT:
		kg_err("approvals: no request %s", id);
		break;
	case -EALREADY:
		kg_err("approvals: request %s was already decided (%s)", id, kg_appr_state_name(a->state));
		break;
	case -ETIMEDOUT:
		kg_err("approvals: request %s expired before a decision: it was denied", id);
		break;
	case -ESRCH:
		kg_err("approvals: the job of request %s is gone: request expired", id);
		break;
	case -ESTALE:
		kg_err("approvals: request %s is stale: %s; ask the agent to retry, which "
		       "raises a new request under the current policy", id, a->reason);
		break;
	case -EACCES:
		break;	/* the reason was printed by the authorization */
	default:
		kg_err("approvals: %s %s failed: %s", verb, id, strerror(-err));
	}
}

static int do_decide(struct kg_approvals *q, const char *verb, const char *id, const struct opts *o)
{
	struct kg_grant_opts g = { .ttl_sec = o->ttl, .once = o->once, .note = o->note };
	struct kg_approval a = {};
	struct kg_approver who;
	int err;

	kg_approver_self(&who);
	if (!strcmp(verb, "approve"))
		err = kg_approvals_approve(q, id, &who, &g, &a);
	else
		err = kg_approvals_deny(q, id, &who, o->note, &a);
	report(verb, id, err, &a, o);
	return exit_for(err);
}

/* ---- through the daemon (approvers who are not root) ----------------------------- */

/* The queue and the kernel's grants are root's: anyone else asks the
 * daemon, which takes the caller's identity from the kernel. */
static json_t *ask_daemon(json_t *req)
{
	json_t *reply = req ? kg_control_call(req, 30000) : NULL;
	int err = errno;

	json_decref(req);
	if (!reply && (err == ENOENT || err == ECONNREFUSED))
		kg_err("approvals: as uid %u, decisions go through kgate's daemon (the queue and "
		       "the kernel's grants are root's), and none answers on %s: ask root to run "
		       "`kgate daemon`", (unsigned int)getuid(), kg_socket_path());
	else if (!reply)
		kg_err("approvals: kgate's daemon did not answer: %s", strerror(err));
	return reply;
}

static int daemon_list(const struct opts *o)
{
	json_t *reply = ask_daemon(json_pack("{s:s,s:b}", "op", "approvals_list", "all", o->all));
	json_t *reqs, *r;
	struct kg_approval *v;
	size_t n = 0, i;
	int rc;

	if (!reply)
		return KG_EXIT_FAIL;
	reqs = json_object_get(reply, "requests");
	if (!json_is_true(json_object_get(reply, "ok")) || !json_is_array(reqs)) {
		kg_err("%s", json_string_value(json_object_get(reply, "error")) ?: "approvals: refused");
		rc = (int)json_integer_value(json_object_get(reply, "exit")) ?: KG_EXIT_FAIL;
		json_decref(reply);
		return rc;
	}
	v = calloc(json_array_size(reqs) + 1, sizeof(*v));
	json_array_foreach(reqs, i, r)
		if (v && kg_approval_from_json(r, &v[n]) == 0)
			n++;
	json_decref(reply);
	if (!v)
		return KG_EXIT_FAIL;
	print_list(v, n, o);
	free(v);
	return KG_EXIT_OK;
}

static int daemon_decide(const char *verb, const char *id, const struct opts *o)
{
	json_t *req = json_pack("{s:s,s:s,s:s?,s:b}", "op", verb, "id", id, "note", o->note,
				"once", o->once);
	struct kg_approval a = {};
	json_t *reply;
	int err;

	if (req && o->ttl)
		json_object_set_new(req, "ttl", json_integer((json_int_t)o->ttl));
	reply = ask_daemon(req);
	if (!reply)
		return KG_EXIT_FAIL;
	if (!json_object_get(reply, "errno")) {	/* refused before deciding */
		kg_err("%s", json_string_value(json_object_get(reply, "error")) ?: "approvals: refused");
		err = (int)json_integer_value(json_object_get(reply, "exit")) ?: KG_EXIT_FAIL;
		json_decref(reply);
		return err;
	}
	err = -(int)json_integer_value(json_object_get(reply, "errno"));
	if (json_object_get(reply, "request"))
		kg_approval_from_json(json_object_get(reply, "request"), &a);
	if (err == -EACCES)
		kg_err("approvals: %s", json_string_value(json_object_get(reply, "error")) ?: "refused");
	report(verb, id, err, &a, o);
	json_decref(reply);
	return exit_for(err);
}

/* argv[0] is the subcommand: list, approve or deny */
static int approvals_sub(int argc, char **argv)
{
	const char *sub = argv[0];
	struct kg_approvals *q;
	struct opts o;
	int first, rc;

	first = parse(argc, argv, &o);
	if (first == -2) {
		usage(stdout);
		return KG_EXIT_OK;
	}
	if (first < 0)
		return KG_EXIT_USAGE;
	if (!strcmp(sub, "list") ? first != argc : first != argc - 1) {
		kg_err("approvals: %s", strcmp(sub, "list") ? "expected exactly one request ID"
							   : "list takes no arguments");
		return KG_EXIT_USAGE;
	}
	if (strcmp(sub, "approve") && (o.once || o.ttl)) {
		kg_err("approvals: --ttl and --once only apply to approve");
		return KG_EXIT_USAGE;
	}
	if (getuid() != 0)
		return !strcmp(sub, "list") ? daemon_list(&o) : daemon_decide(sub, argv[first], &o);
	q = kg_approvals_open(NULL);
	if (!q)
		return kg_err("approvals: cannot open the queue in %s: %s", kg_state_dir(),
			      strerror(errno)), KG_EXIT_FAIL;
	if (!strcmp(sub, "list"))
		rc = do_list(q, &o);
	else
		rc = do_decide(q, sub, argv[first], &o);
	kg_approvals_close(q);
	return rc;
}

/* the three share their options and their way to the queue (approvals_sub) */
static const struct kg_cmd approvals_cmds[] = {
	{ "list",	approvals_sub,	"pending requests (--all: decided too)" },
	{ "approve",	approvals_sub,	"install a grant for exactly that action" },
	{ "deny",	approvals_sub,	"refuse a request" },
};

int cmd_approvals(int argc, char **argv)
{
	return kg_cmd_select("approvals", approvals_cmds, ARRAY_SIZE(approvals_cmds), argc - 1,
			     argv + 1, usage);
}

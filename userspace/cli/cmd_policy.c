// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cmd_policy.c - 'kgate policy check|show|push'.
 *
 * check and show never touch the kernel: they only parse and validate, so
 * they are safe in CI and on machines without kgate's BPF objects.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "common.h"
#include "kernel/caps.h"
#include "kernel/outside.h"
#include "record/audit.h"
#include "daemon/control.h"
#include "kernel/loader.h"
#include "policy/policy.h"
#include "kernel/push.h"

static void usage_policy(FILE *f)
{
	fprintf(f, "usage: kgate policy SUBCOMMAND [OPTIONS] [ARGS]\n\n"
		   "subcommands:\n"
		   "  check FILE...   validate policies without touching the kernel\n"
		   "  show FILE       print the compiled rules of a policy\n"
		   "  push FILE       replace the policy of running jobs (needs the daemon)\n\n"
		   "'kgate policy SUBCOMMAND --help' describes each one\n");
}

static void usage_check(FILE *f)
{
	fprintf(f, "usage: kgate policy check [--json] [--home DIR] FILE...\n\n"
		   "Validate each policy file.  Prints 'FILE: ok (NAME, N rules, sha256 HASH)'\n"
		   "or the first error as FILE:LINE:COLUMN: rule 'ID': field 'F': MESSAGE.\n\n"
		   "  --json       one JSON array with a result object per file\n"
		   "  --home DIR   expand '~' in paths with DIR (default $HOME)\n\n"
		   "exit status: 0 all valid, 3 a policy is invalid, 2 usage error\n");
}

static void usage_show(FILE *f)
{
	fprintf(f, "usage: kgate policy show [--json] [--home DIR] FILE\n\n"
		   "Print the compiled rules: number (what the kernel reports), id, kind,\n"
		   "decision and target, then the admission rules in evaluation order.\n\n"
		   "  --json       a JSON array of rule objects\n"
		   "  --home DIR   expand '~' in paths with DIR (default $HOME)\n\n"
		   "exit status: 0 ok, 3 the policy is invalid, 2 usage error\n");
}

static void usage_push(FILE *f)
{
	fprintf(f, "usage: kgate policy push [--job TRACE] [--home DIR] FILE\n\n"
		   "Validate and compile FILE, then switch running jobs to it without\n"
		   "restarting them: each job flips from the old rules to the new ones in\n"
		   "one kernel map update, and the change (old and new policy snapshot) is\n"
		   "recorded in the audit trail. On any error the running policy stays.\n"
		   "Syscall rules (seccomp), and file rules in degraded mode (Landlock), are\n"
		   "fixed when a job starts: they apply from its next launch (the push says so).\n\n"
		   "  --job TRACE  only this job (default: every running job)\n"
		   "  --home DIR   expand '~' in paths with DIR (default $HOME)\n\n"
		   "exit status: 0 pushed, 3 the policy is invalid, 2 usage (or no such job),\n"
		   "1 other failure\n");
}

struct opts {
	bool json;
	const char *home;
};

/* common options; returns the index of the first operand, or -1 (usage) / -2 (help) */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	o->json = kg_env.json;
	o->home = NULL;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			o->json = true;
			break;
		case 'H':
			o->home = optarg;
			break;
		case 'h':
			return -2;
		default:
			kg_err("policy: unknown option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	return optind;
}

static json_t *error_json(const struct kg_policy_error *err)
{
	char text[1024];

	kg_policy_error_format(err, text, sizeof(text));
	return json_pack("{s:s, s:i, s:i, s:s?, s:s?, s:s, s:s}", "file", err->file,
			 "line", err->line, "column", err->column,
			 "rule", err->rule_id[0] ? err->rule_id : NULL,
			 "field", err->field[0] ? err->field : NULL,
			 "message", err->message, "text", text);
}

static int print_json(json_t *v)
{
	char *s = v ? json_dumps(v, JSON_INDENT(2)) : NULL;

	if (!s) {
		json_decref(v);
		return kg_err("policy: out of memory");
	}
	printf("%s\n", s);
	free(s);
	json_decref(v);
	return 0;
}

static int policy_check(int argc, char **argv)
{
	json_t *results = NULL;
	struct opts o;
	int first, i, rc = KG_EXIT_OK;

	first = parse_opts(argc, argv, &o);
	if (first == -2) {
		usage_check(stdout);
		return KG_EXIT_OK;
	}
	if (first < 0 || first >= argc) {
		usage_check(stderr);
		return KG_EXIT_USAGE;
	}
	if (o.json && !(results = json_array()))
		return kg_err("policy: out of memory"), KG_EXIT_FAIL;
	for (i = first; i < argc; i++) {
		struct kg_policy_error err;
		struct kg_policy_doc *doc = kg_policy_load_file(argv[i], o.home, &err);
		json_t *res;

		if (!doc)
			rc = KG_EXIT_POLICY;
		if (o.json) {
			res = doc ? json_pack("{s:s, s:b, s:s, s:I, s:I, s:s}", "file", argv[i],
					      "ok", 1, "name", doc->name,
					      "runtime_rules", (json_int_t)doc->nrules,
					      "admission_rules", (json_int_t)doc->nadmission,
					      "sha256", doc->hash)
				  : json_pack("{s:s, s:b, s:o}", "file", argv[i], "ok", 0,
					      "error", error_json(&err));
			if (!res || json_array_append_new(results, res)) {
				kg_policy_free(doc);
				json_decref(results);
				return kg_err("policy: out of memory"), KG_EXIT_FAIL;
			}
		} else if (doc) {
			printf("%s: ok (%s, %zu rules, sha256 %s)\n", argv[i], doc->name,
			       doc->nrules + doc->nadmission, doc->hash);
		} else {
			char text[1024];

			kg_policy_error_format(&err, text, sizeof(text));
			fprintf(stderr, "%s\n", text);
		}
		kg_policy_free(doc);
	}
	if (o.json && print_json(results))
		return KG_EXIT_FAIL;
	return rc;
}

static void ops_text(uint32_t ops, bool net, char *buf, size_t len)
{
	static const char *const net_names[] = { "connect", "send", "bind" };
	size_t used = 0;
	int k;

	buf[0] = '\0';
	for (k = 0; k < (net ? 3 : KG_OP_MAX); k++) {
		const char *name = net ? net_names[k] : kg_op_name(k);

		if (!(ops & (1u << k)))
			continue;
		snprintf(buf + used, len - used, "%s%s", used ? "," : "", name);
		used = strlen(buf);
	}
}

static void cidr_text(const struct kg_rule *r, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (r->family == AF_INET) {
		inet_ntop(AF_INET, r->addr + 12, a, sizeof(a));
		snprintf(buf, len, "%s/%u", a, r->prefixlen - 96);
	} else {
		inet_ntop(AF_INET6, r->addr, a, sizeof(a));
		snprintf(buf, len, "%s/%u", a, r->prefixlen);
	}
}

static void ports_text(const struct kg_rule *r, char *buf, size_t len)
{
	size_t i, used = 0;

	snprintf(buf, len, "any");
	for (i = 0; i < r->nports && used < len; i++) {
		if (r->ports[i].lo == r->ports[i].hi)
			snprintf(buf + used, len - used, "%s%u", i ? "," : "", r->ports[i].lo);
		else
			snprintf(buf + used, len - used, "%s%u-%u", i ? "," : "",
				 r->ports[i].lo, r->ports[i].hi);
		used = strlen(buf);
	}
}

static void families_text(uint64_t fam, char *buf, size_t len)
{
	static const struct { int af; const char *name; } names[] = {
		{ AF_UNIX, "unix" }, { AF_INET, "inet" }, { AF_INET6, "inet6" },
		{ AF_NETLINK, "netlink" }, { AF_PACKET, "packet" }, { AF_VSOCK, "vsock" },
	};
	size_t i, used = 0;
	int af;

	buf[0] = '\0';
	for (af = 0; af < 64; af++) {
		const char *name = NULL;
		char num[16];

		if (!(fam & (1ull << af)))
			continue;
		for (i = 0; i < ARRAY_SIZE(names); i++)
			if (names[i].af == af)
				name = names[i].name;
		if (!name) {
			snprintf(num, sizeof(num), "af%d", af);
			name = num;
		}
		snprintf(buf + used, len - used, "%s%s", used ? "," : "", name);
		used = strlen(buf);
	}
}

/* one-line human description of what a rule applies to */
static void target_text(const struct kg_rule *r, char *buf, size_t len)
{
	char a[128], b[128], ops[160];
	size_t i, used;

	switch (r->kind) {
	case KG_RULE_FILE:
	case KG_RULE_EXEC:
		ops_text(r->ops, false, ops, sizeof(ops));
		snprintf(buf, len, "%s%s ops %s", r->path,
			 r->prefix ? (strcmp(r->path, "/") ? "/**" : "**") : "", ops);
		return;
	case KG_RULE_UNIX:
		if (r->unix_abstract)
			snprintf(buf, len, "unix @%s", r->unix_abstract);
		else
			snprintf(buf, len, "unix %s", r->path);
		return;
	case KG_RULE_NET:
		cidr_text(r, a, sizeof(a));
		ports_text(r, b, sizeof(b));
		ops_text(r->ops, true, ops, sizeof(ops));
		snprintf(buf, len, "%s ports %s proto %s ops %s", a, b,
			 r->proto == 6 ? "tcp" : r->proto == 17 ? "udp" : "any", ops);
		return;
	case KG_RULE_HOST:
		ports_text(r, b, sizeof(b));
		ops_text(r->ops, true, ops, sizeof(ops));
		snprintf(buf, len, "host %s%s ports %s proto %s ops %s", r->host,
			 r->allow_private ? " (private answers allowed)" : "", b,
			 r->proto == 6 ? "tcp" : r->proto == 17 ? "udp" : "any", ops);
		return;
	case KG_RULE_SOCKET:
		families_text(r->families, a, sizeof(a));
		snprintf(buf, len, "families %s raw %s", a, r->allow_raw ? "yes" : "no");
		return;
	case KG_RULE_SYSCALL:
		buf[0] = '\0';
		for (i = 0, used = 0; i < r->nsyscalls && used < len; i++) {
			snprintf(buf + used, len - used, "%s%s", i ? "," : "", r->syscalls[i]);
			used = strlen(buf);
		}
		for (i = 0; i < r->nargs && used < len; i++) {
			snprintf(buf + used, len - used, " arg%u op%d 0x%llx/0x%llx",
				 r->args[i].index, r->args[i].op,
				 (unsigned long long)r->args[i].value,
				 (unsigned long long)r->args[i].mask);
			used = strlen(buf);
		}
		return;
	}
	snprintf(buf, len, "?");
}

static void admission_target_text(const struct kg_admission_rule *a, char *buf, size_t len)
{
	size_t used = 0, i;

	buf[0] = '\0';
#define LIST(label, arr, n) do {						\
		for (i = 0; i < (n) && used < len; i++) {			\
			snprintf(buf + used, len - used, "%s%s%s", !i ? (used ? " " : "") : "", \
				 !i ? label "=" : ",", (arr)[i]);		\
			used = strlen(buf);					\
		}								\
	} while (0)
	for (i = 0; i < a->nuids && used < len; i++) {
		snprintf(buf + used, len - used, "%s%u", !i ? "uids=" : ",", a->uids[i]);
		used = strlen(buf);
	}
	LIST("roles", a->roles, a->nroles);
	LIST("tenants", a->tenants, a->ntenants);
	LIST("topics", a->topics, a->ntopics);
	LIST("risk_tags", a->risk_tags, a->nrisk_tags);
	for (i = 0; i < a->nlabels && used < len; i++) {
		size_t g;

		snprintf(buf + used, len - used, "%slabel:%s=", used ? " " : "", a->labels[i].key);
		used = strlen(buf);
		for (g = 0; g < a->labels[i].nglobs && used < len; g++) {
			snprintf(buf + used, len - used, "%s%s", g ? "|" : "", a->labels[i].globs[g]);
			used = strlen(buf);
		}
	}
#undef LIST
	if (!buf[0])
		snprintf(buf, len, "any launch");
}

static json_t *rule_json(const struct kg_rule *r)
{
	char target[1024];

	target_text(r, target, sizeof(target));
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:i}", "num", (json_int_t)r->num,
			 "id", r->id, "kind", kg_rule_kind_name(r->kind),
			 "decision", kg_decision_name(r->decision), "target", target,
			 "reason", r->reason, "line", r->line);
}

static json_t *admission_json(const struct kg_admission_rule *a)
{
	char target[1024];

	admission_target_text(a, target, sizeof(target));
	return json_pack("{s:n, s:s, s:s, s:s, s:s, s:s?, s:i}", "num", "id", a->id,
			 "kind", "admission", "decision", kg_decision_name(a->decision),
			 "target", target, "reason", a->reason, "line", a->line);
}

static int show_json(const struct kg_policy_doc *doc)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < doc->nrules; i++)
		if (json_array_append_new(arr, rule_json(&doc->rules[i])))
			goto oom;
	for (i = 0; arr && i < doc->nadmission; i++)
		if (json_array_append_new(arr, admission_json(&doc->admission[i])))
			goto oom;
	if (arr) {
		/* last: what a job of this policy keeps and loses (kernel/caps.h) */
		json_t *sa = kg_caps_json(doc->system_access, -1);

		if (!sa || json_object_set_new(sa, "kind", json_string("system_access")) ||
		    json_object_set_new(sa, "outside", kg_outside_json(doc->outside_grant, -1)) ||
		    json_array_append_new(arr, sa))
			goto oom;
	}
	if (!arr)
		goto oom;
	return print_json(arr);
oom:
	json_decref(arr);
	return kg_err("policy: out of memory");
}

/* system_access: the capabilities a job keeps, loses, and gets back */
static void show_system_access(const struct kg_policy_doc *doc)
{
	size_t i;

	printf("\nsystem access: every job loses the capabilities that reach outside it; "
	       "writes to kernel settings (/proc/sys, /sys...) and block devices are refused "
	       "whatever is granted\n");
	printf("  granted by this policy (system_access):%s\n", doc->system_access ? "" : " none");
	for (i = 0; i < kg_caps_len; i++)
		if (!kg_caps[i].kept && (doc->system_access & (1ULL << kg_caps[i].num)))
			printf("    %-20s %s\n", kg_caps[i].name, kg_caps[i].why);
	printf("  dropped:");
	for (i = 0; i < kg_caps_len; i++)
		if (!kg_caps[i].kept && !(doc->system_access & (1ULL << kg_caps[i].num)))
			printf(" %s", kg_caps[i].name);
	printf("\n  kept:");
	for (i = 0; i < kg_caps_len; i++)
		if (kg_caps[i].kept)
			printf(" %s", kg_caps[i].name);
	printf("\n  outside the job (daemons' sockets, files run or obeyed as root), "
	       "granted:%s\n", doc->outside_grant ? "" : " none");
	for (i = 0; i < kg_out_members_len; i++)
		if (doc->outside_grant & (1u << i))
			printf("    %-20s %s\n", kg_out_members[i].name, kg_out_members[i].what);
	printf("  outside the job, refused:");
	for (i = 0; i < kg_out_members_len; i++)
		if (!(doc->outside_grant & (1u << i)))
			printf(" %s", kg_out_members[i].name);
	printf("\n");
}

static void show_text(const struct kg_policy_doc *doc)
{
	char target[1024];
	size_t i;
	int k;

	printf("policy %s (sha256 %s), fail mode %s\n", doc->name, doc->hash,
	       doc->fail_mode == KG_FAIL_OPEN ? "open" : "closed");
	printf("runtime defaults:");
	for (k = 0; k < KG_CLASS_MAX; k++)
		printf(" %s=%s", kg_class_name(k), kg_decision_name(doc->class_default[k]));
	printf("\n\n%-5s %-24s %-8s %-22s %s\n", "NUM", "ID", "KIND", "DECISION", "TARGET");
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		target_text(r, target, sizeof(target));
		printf("%-5u %-24s %-8s %-22s %s\n", r->num, r->id, kg_rule_kind_name(r->kind),
		       kg_decision_name(r->decision), target);
	}
	printf("\nadmission (first match wins, then default %s):\n",
	       kg_decision_name(doc->default_decision));
	for (i = 0; i < doc->nadmission; i++) {
		const struct kg_admission_rule *a = &doc->admission[i];

		admission_target_text(a, target, sizeof(target));
		printf("%-5s %-24s %-8s %-22s %s\n", "-", a->id, "admit",
		       kg_decision_name(a->decision), target);
	}
	show_system_access(doc);
}

static int policy_show(int argc, char **argv)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc;
	struct opts o;
	int first, rc = KG_EXIT_OK;

	first = parse_opts(argc, argv, &o);
	if (first == -2) {
		usage_show(stdout);
		return KG_EXIT_OK;
	}
	if (first < 0 || first != argc - 1) {
		usage_show(stderr);
		return KG_EXIT_USAGE;
	}
	doc = kg_policy_load_file(argv[first], o.home, &err);
	if (!doc) {
		char text[1024];

		kg_policy_error_format(&err, text, sizeof(text));
		if (o.json)
			print_json(json_pack("{s:o}", "error", error_json(&err)));
		else
			fprintf(stderr, "%s\n", text);
		return KG_EXIT_POLICY;
	}
	if (o.json) {
		if (show_json(doc))
			rc = KG_EXIT_FAIL;
	} else {
		show_text(doc);
	}
	kg_policy_free(doc);
	return rc;
}

/* The daemon validates again with the caller's identity from SO_PEERCRED;
 * we send the text, never a path it would open with its own rights. */
static int push_via_daemon(const char *path, const char *trace)
{
	size_t len = 0;
	char *text = kg_read_regular_file(path, KG_POLICY_MAX_BYTES, &len);
	json_t *req, *reply;
	int rc;

	if (!text)
		return kg_err("policy push: cannot read %s: %s", path, strerror(errno)), KG_EXIT_FAIL;
	req = json_pack("{s:s,s:s,s:s,s:s?}", "op", "push", "policy", text, "name", path,
			"job", trace);
	free(text);
	reply = req ? kg_control_call(req, 60000) : NULL;
	json_decref(req);
	if (!reply)
		return kg_err("policy push: the daemon did not answer: %s", strerror(errno)),
		       KG_EXIT_FAIL;
	if (json_is_true(json_object_get(reply, "ok"))) {
		printf("%s", json_string_value(json_object_get(reply, "output")) ?: "");
		rc = KG_EXIT_OK;
	} else {
		kg_err("%s", json_string_value(json_object_get(reply, "error")) ?: "push failed");
		rc = (int)json_integer_value(json_object_get(reply, "exit")) ?: KG_EXIT_FAIL;
	}
	json_decref(reply);
	return rc;
}

static int policy_push(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "job", required_argument, NULL, 'j' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct kg_loader_opts lo = { .want_lsm = true };
	struct kg_policy_error perr = {};
	struct kg_push_result res;
	const char *trace = NULL, *home = NULL;
	struct kg_policy_doc *doc;
	struct kg_loader *l = NULL;
	struct kg_audit *a = NULL;
	char msg[1024];
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j': trace = optarg; break;
		case 'H': home = optarg; break;
		case 'h': usage_push(stdout); return KG_EXIT_OK;
		default: usage_push(stderr); return KG_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage_push(stderr);
		return KG_EXIT_USAGE;
	}
	doc = kg_policy_load_file(argv[optind], home, &perr);
	if (!doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		kg_err("%s", msg);
		return KG_EXIT_POLICY;
	}
	if (kg_control_daemon_running()) {
		rc = push_via_daemon(argv[optind], trace);
		kg_policy_free(doc);
		return rc;
	}
	rc = KG_EXIT_FAIL;
	l = kg_loader_open(&lo);
	a = l ? kg_audit_open(NULL, NULL) : NULL;
	if (l && a)
		rc = kg_push_policy(l, a, doc, trace, getuid(), stdout, &res);
	if (!rc)
		printf("policy %s (sha256 %.12s) pushed to %u job(s)%s\n", doc->name, doc->hash,
		       res.jobs_updated, res.jobs_skipped ? " (some registered jobs had ended)" : "");
	kg_audit_close(a);
	kg_loader_close(l);
	kg_policy_free(doc);
	return rc;
}

static const struct kg_cmd policy_cmds[] = {
	{ "check",	policy_check,	"validate policies without touching the kernel" },
	{ "show",	policy_show,	"print the compiled rules of a policy" },
	{ "push",	policy_push,	"replace the policy of running jobs" },
};

int cmd_policy(int argc, char **argv)
{
	return kg_cmd_select("policy", policy_cmds, ARRAY_SIZE(policy_cmds), argc - 1, argv + 1,
			     usage_policy);
}

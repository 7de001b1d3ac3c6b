// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_policy.c - policy parsing, validation messages, precedence, hashing, CLI. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "common.h"
#include "policy/policy.h"
#include "kernel/outside.h"

#define HOME "/home/t"

static struct kg_policy_doc *load(const char *json, struct kg_policy_error *err)
{
	return kg_policy_load_buffer(json, strlen(json), "t.json", HOME, err);
}

static char *error_text(const struct kg_policy_error *err)
{
	static char buf[1024];

	kg_policy_error_format(err, buf, sizeof(buf));
	return buf;
}

/* ---- shipped policies ---------------------------------------------------- */

TEST(shipped_policies_validate)
{
	const char *src = getenv("KGATE_SRC");
	char pattern[PATH_MAX];
	glob_t g;
	size_t i;

	if (!src)
		SKIP("KGATE_SRC not set (run through tests/run.sh)");
	snprintf(pattern, sizeof(pattern), "%s/policies/*.json", src);
	if (glob(pattern, 0, NULL, &g)) {
		ASSERT_TRUE(false, "glob policies/*.json");
		return;
	}
	ASSERT_GE(g.gl_pathc, 5, "shipped policies incl. schema");
	for (i = 0; i < g.gl_pathc; i++) {
		struct kg_policy_error err;
		struct kg_policy_doc *doc;

		if (strstr(g.gl_pathv[i], "schema.json"))
			continue;
		doc = kg_policy_load_file(g.gl_pathv[i], HOME, &err);
		if (!ASSERT_TRUE(doc != NULL, g.gl_pathv[i]))
			printf("  %s\n", error_text(&err));
		if (doc)
			ASSERT_GE(doc->nrules, 1, g.gl_pathv[i]);
		kg_policy_free(doc);
	}
	globfree(&g);
}

/* ---- a full policy compiles to the expected values ------------------------ */

static const char *full_policy =
	"{\"version\":1, \"name\":\"full\", \"description\":\"d\", \"fail_mode\":\"open\",\n"
	" \"default\":\"require_approval\",\n"
	" \"runtime_defaults\":{\"file\":\"audit\",\"net\":\"allow\"},\n"
	" \"require_full\":true,\n"
	" \"constraints\":{\"max_runtime_sec\":60,\"max_procs\":10,\"memory_max\":\"512M\"},\n"
	" \"approvals\":{\"timeout_sec\":30,\"queue_max\":8,\"approvers\":{\"uids\":[0,1000],\"gids\":[]},\"allow_self_approval\":true},\n"
	" \"launchers\":{\"gids\":[100]},\n"
	" \"cooldown\":{\"threshold\":5,\"window_sec\":10,\"duration_sec\":30},\n"
	" \"admission\":[{\"id\":\"adm\",\"match\":{\"uids\":[7],\"topics\":[\"job.*\"]},\"decision\":\"allow\"}],\n"
	" \"runtime\":[\n"
	"  {\"id\":\"ssh\",\"file\":{\"prefix\":\"~/.ssh/\",\"ops\":[\"read\"]},\"decision\":\"deny\",\"reason\":\"keys\"},\n"
	"  {\"id\":\"pw\",\"file\":{\"path\":\"/etc/passwd\",\"ops\":[\"truncate\",\"mkdir\",\"rmdir\"]},\"decision\":\"audit\"},\n"
	"  {\"id\":\"nc\",\"exec\":{\"path\":\"/usr/bin/nc\"},\"decision\":\"require_approval\"},\n"
	"  {\"id\":\"egress\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[443,\"8000-8080\"],\"proto\":\"tcp\",\"ops\":[\"connect\"]},\"decision\":\"allow\"},\n"
	"  {\"id\":\"v6\",\"net\":{\"cidr\":\"2001:db8::/32\",\"proto\":\"udp\"},\"decision\":\"deny\"},\n"
	"  {\"id\":\"docker\",\"net\":{\"unix\":\"/run/docker.sock\"},\"decision\":\"deny\"},\n"
	"  {\"id\":\"abs\",\"net\":{\"unix_abstract\":\"x11\"},\"decision\":\"audit\"},\n"
	"  {\"id\":\"socks\",\"socket\":{\"families\":[\"inet\",\"unix\"],\"allow_raw\":true},\"decision\":\"deny\"},\n"
	"  {\"id\":\"userns\",\"syscall\":{\"names\":[\"unshare\"],\"args\":[{\"index\":0,\"op\":\"masked_eq\",\"mask\":268435456,\"value\":268435456}],\"errno\":\"EACCES\"},\"decision\":\"deny\"},\n"
	"  {\"id\":\"sync\",\"syscall\":{\"names\":[\"sync\"]},\"decision\":\"no_op\"},\n"
	"  {\"id\":\"slow\",\"net\":{\"cidr\":\"0.0.0.0/0\"},\"decision\":\"throttle\",\"throttle\":{\"rate_per_sec\":5,\"burst\":10}}\n"
	" ]}\n";

TEST(full_policy_compiles)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(full_policy, &err);
	const struct kg_rule *r;
	uint8_t mapped10[16] = { [10] = 0xff, [11] = 0xff, [12] = 10 };
	uint32_t ident = KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_LINK) | KG_OP_BIT(KG_OP_UNLINK);

	if (!ASSERT_TRUE(doc != NULL, "load")) {
		printf("  %s\n", error_text(&err));
		return;
	}
	ASSERT_STREQ(doc->name, "full", "name");
	ASSERT_EQ(doc->fail_mode, KG_FAIL_OPEN, "fail_mode");
	ASSERT_EQ(doc->default_decision, KG_DEC_REQUIRE_APPROVAL, "default");
	ASSERT_EQ(doc->class_default[KG_CLASS_FILE], KG_DEC_AUDIT, "file default");
	ASSERT_EQ(doc->class_default[KG_CLASS_EXEC], KG_DEC_ALLOW, "exec default (missing)");
	ASSERT_EQ(doc->class_default[KG_CLASS_NET], KG_DEC_ALLOW, "net default");
	ASSERT_EQ(doc->class_default[KG_CLASS_UNIX], KG_DEC_ALLOW, "unix default (missing)");
	ASSERT_TRUE(doc->require_full, "require_full");
	ASSERT_EQ(doc->constraints.memory_max, 512ull << 20, "memory_max");
	ASSERT_EQ(doc->constraints.max_procs, 10, "max_procs");
	ASSERT_EQ(doc->approval_timeout_sec, 30, "timeout");
	ASSERT_EQ(doc->approvers.nuids, 2, "approvers");
	ASSERT_EQ(doc->approvers.ngids, 0, "approver gids empty ok");
	ASSERT_TRUE(doc->allow_self_approval, "self approval");
	ASSERT_EQ(doc->launchers.ngids, 1, "launchers");
	ASSERT_EQ(doc->pushers.nuids, 1, "pushers default root");
	ASSERT_EQ(doc->pushers.uids[0], 0, "pushers default root");
	ASSERT_EQ(doc->cooldown_threshold, 5, "cooldown");
	ASSERT_EQ(doc->nadmission, 1, "admission");
	ASSERT_EQ(doc->nrules, 11, "rules");
	ASSERT_EQ(strlen(doc->hash), KG_HASH_HEX_LEN, "hash");

	r = kg_policy_rule_by_num(doc, 1);
	ASSERT_STREQ(r->id, "ssh", "rule 1");
	ASSERT_STREQ(r->path, HOME "/.ssh", "~ expanded, trailing / dropped");
	ASSERT_TRUE(r->prefix, "prefix");
	ASSERT_EQ(r->ops, KG_OP_BIT(KG_OP_READ) | ident, "deny implies rename/link/unlink");
	ASSERT_EQ(r->line, 11, "rule line");
	ASSERT_EQ(r->column, 3, "rule column");
	ASSERT_STREQ(r->reason, "keys", "reason");

	r = kg_policy_rule_by_num(doc, 2);
	ASSERT_EQ(r->ops, KG_OP_BIT(KG_OP_WRITE) | KG_OP_BIT(KG_OP_CREATE) | KG_OP_BIT(KG_OP_UNLINK),
		  "truncate/mkdir/rmdir aliases, audit adds nothing");
	ASSERT_FALSE(r->prefix, "exact");

	r = kg_policy_rule_by_num(doc, 3);
	ASSERT_EQ(r->kind, KG_RULE_EXEC, "exec kind");
	ASSERT_EQ(r->ops, KG_OP_BIT(KG_OP_EXEC) | ident, "exec + identity");

	r = kg_policy_rule_by_num(doc, 4);
	ASSERT_EQ(r->kind, KG_RULE_NET, "net kind");
	ASSERT_EQ(r->family, AF_INET, "family");
	ASSERT_EQ(r->prefixlen, 8 + 96, "mapped prefixlen");
	ASSERT_OK(memcmp(r->addr, mapped10, 16), "IPv4-mapped address");
	ASSERT_EQ(r->nports, 2, "ports");
	ASSERT_EQ(r->ports[1].lo, 8000, "range lo");
	ASSERT_EQ(r->ports[1].hi, 8080, "range hi");
	ASSERT_EQ(r->proto, 6, "tcp");
	ASSERT_EQ(r->ops, KG_NET_OP_CONNECT, "net ops");

	r = kg_policy_rule_by_num(doc, 5);
	ASSERT_EQ(r->family, AF_INET6, "v6");
	ASSERT_EQ(r->prefixlen, 32, "v6 prefixlen");
	ASSERT_EQ(r->proto, 17, "udp");
	ASSERT_EQ(r->ops, KG_NET_OP_CONNECT | KG_NET_OP_SEND, "default net ops");

	r = kg_policy_rule_by_num(doc, 6);
	ASSERT_EQ(r->kind, KG_RULE_UNIX, "unix kind");
	ASSERT_STREQ(r->path, "/run/docker.sock", "unix path");
	r = kg_policy_rule_by_num(doc, 7);
	ASSERT_STREQ(r->unix_abstract, "x11", "abstract");
	ASSERT_TRUE(r->path == NULL, "abstract has no path");

	r = kg_policy_rule_by_num(doc, 8);
	ASSERT_EQ(r->families, (1ull << AF_INET) | (1ull << AF_UNIX), "families");
	ASSERT_TRUE(r->allow_raw, "allow_raw");

	r = kg_policy_rule_by_num(doc, 9);
	ASSERT_EQ(r->nsyscalls, 1, "syscalls");
	ASSERT_EQ(r->nargs, 1, "args");
	ASSERT_EQ(r->args[0].op, SCMP_CMP_MASKED_EQ, "masked_eq");
	ASSERT_EQ(r->args[0].mask, 0x10000000, "mask");
	ASSERT_EQ(r->errno_value, EACCES, "errno");
	ASSERT_EQ(kg_policy_rule_by_num(doc, 10)->decision, KG_DEC_NO_OP, "no_op");
	r = kg_policy_rule_by_num(doc, 11);
	ASSERT_EQ(r->rate_per_sec, 5, "rate");
	ASSERT_EQ(r->burst, 10, "burst");
	ASSERT_EQ(r->prefixlen, 96, "0.0.0.0/0 covers only IPv4-mapped space");
	ASSERT_TRUE(kg_policy_rule_by_num(doc, 0) == NULL, "num 0");
	ASSERT_TRUE(kg_policy_rule_by_num(doc, 12) == NULL, "num past end");
	kg_policy_free(doc);
}

TEST(minimal_policy_defaults)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load("{\"version\":1,\"name\":\"m\"}", &err);

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	ASSERT_EQ(doc->fail_mode, KG_FAIL_CLOSED, "closed by default");
	ASSERT_EQ(doc->default_decision, KG_DEC_DENY, "admission default deny");
	ASSERT_EQ(doc->class_default[KG_CLASS_NET], KG_DEC_DENY, "net deny");
	ASSERT_EQ(doc->class_default[KG_CLASS_FILE], KG_DEC_ALLOW, "file allow");
	ASSERT_EQ(doc->approval_timeout_sec, 300, "timeout default");
	ASSERT_EQ(doc->approvers.nuids, 1, "approvers default root");
	ASSERT_EQ(doc->cooldown_threshold, 0, "cooldown off");
	ASSERT_EQ(doc->nrules, 0, "no rules");
	kg_policy_free(doc);
}

/* ---- bad inputs ---------------------------------------------------------- */

struct bad_case {
	const char *name;
	const char *json;
	int line, col;		/* 0 = not checked */
	const char *rule;	/* NULL = not checked, "" = must be empty */
	const char *field;	/* NULL = not checked, "" = must be empty */
	const char *msg;	/* substring of the message */
};

/* one rule per line starting at line 3, column 1 */
#define R(x) "{\"version\":1,\"name\":\"t\",\n\"runtime\":[\n" x "\n]}"
#define A(x) "{\"version\":1,\"name\":\"t\",\n\"admission\":[\n" x "\n]}"
#define T(x) "{\"version\":1,\"name\":\"t\",\n" x "}"
#define FILE_RULE(sel) "{\"id\":\"r\",\"decision\":\"deny\",\"file\":" sel "}"
#define NET_RULE(sel) "{\"id\":\"r\",\"decision\":\"allow\",\"net\":" sel "}"
#define A10 "aaaaaaaaaa"
#define SC_RULE(sel, dec) "{\"id\":\"r\",\"decision\":\"" dec "\",\"syscall\":" sel "}"

static const struct bad_case bad_cases[] = {
	{ "syntax", "{\"version\":1,\n\"name\":\"t\",,}", 2, 12, "", "", "invalid JSON" },
	{ "duplicate key", "{\"version\":1,\n\"version\":1}", 2, 0, "", "", "duplicate object key" },
	{ "not an object", "[1]", 0, 0, "", "", "a policy is a JSON object" },
	{ "empty input", "", 0, 0, "", "", "invalid JSON" },
	{ "trailing garbage", "{\"version\":1,\"name\":\"t\"} x", 1, 0, "", "", "invalid JSON" },
	{ "version 2", "{\"version\":2,\"name\":\"t\"}", 1, 12, "", "version",
	  "unsupported policy version 2" },
	{ "version missing", "{\"name\":\"t\"}", 1, 1, "", "version",
	  "missing required field 'version'" },
	{ "version string", "{\"version\":\"1\",\"name\":\"t\"}", 1, 12, "", "version",
	  "expected an integer, got a string" },
	{ "unknown top-level field", T("\"colour\":1"), 2, 10, "", "colour",
	  "unknown field 'colour'" },
	{ "name with space", "{\"version\":1,\"name\":\"a b\"}", 1, 21, "", "name",
	  "invalid character" },
	{ "name missing", "{\"version\":1}", 1, 1, "", "name", "missing required field 'name'" },
	{ "description type", T("\"description\":5"), 2, 15, "", "description",
	  "expected a string" },
	{ "fail_mode", T("\"fail_mode\":\"maybe\""), 2, 13, "", "fail_mode",
	  "unknown fail_mode 'maybe'" },
	{ "default no_op", T("\"default\":\"no_op\""), 2, 11, "", "default",
	  "not valid for the admission default" },
	{ "runtime_defaults unknown class", T("\"runtime_defaults\":{\"socket\":\"deny\"}"), 2, 0,
	  "", "runtime_defaults.socket", "unknown field 'socket'" },
	{ "runtime_defaults approval", T("\"runtime_defaults\":{\"net\":\"require_approval\"}"),
	  2, 27, "", "runtime_defaults.net", "not valid for a runtime default" },
	{ "runtime not array", T("\"runtime\":{}"), 2, 11, "", "runtime", "expected an array" },
	{ "rule not object", R("5"), 3, 1, "", "runtime[0]", "expected a rule object" },
	{ "missing id", R("{\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"), 3, 1, "",
	  "runtime[0].id", "missing required field 'id'" },
	{ "bad id chars", R("{\"id\":\"a/b\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"), 3, 7,
	  "", "runtime[0].id", "invalid character" },
	{ "id starts with dash", R("{\"id\":\"-a\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"),
	  3, 7, "", "runtime[0].id", "must start with a letter or digit" },
	{ "id too long",
	  R("{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	    "\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"), 3, 7, "", "runtime[0].id",
	  "1-64 characters" },
	{ "id control char", R("{\"id\":\"a\\u0007\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"),
	  3, 7, "", "runtime[0].id", "invalid character" },
	{ "missing decision", R("{\"id\":\"r\",\"exec\":{\"path\":\"/x\"}}"), 3, 1, "r", "decision",
	  "missing required field 'decision'" },
	{ "unknown decision", R("{\"id\":\"r\",\"decision\":\"maybe\",\"exec\":{\"path\":\"/x\"}}"),
	  3, 22, "r", "decision", "unknown decision 'maybe'" },
	{ "unknown rule field", R("{\"id\":\"r\",\"colour\":1,\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"),
	  3, 20, "r", "colour", "unknown field 'colour'" },
	{ "no selector", R("{\"id\":\"r\",\"decision\":\"deny\"}"), 3, 1, "r", "",
	  "a rule needs one of file, exec, net, socket, syscall" },
	{ "two selectors",
	  R("{\"id\":\"r\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"},\"net\":{\"cidr\":\"10.0.0.0/8\"}}"),
	  3, 0, "r", "net", "exactly one of" },
	{ "file unknown field", R(FILE_RULE("{\"glob\":\"*\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.glob", "unknown field 'glob'" },
	{ "path and prefix", R(FILE_RULE("{\"path\":\"/a\",\"prefix\":\"/b\",\"ops\":[\"read\"]}")),
	  3, 0, "r", "file.prefix", "either 'path' or 'prefix'" },
	{ "empty ops", R(FILE_RULE("{\"path\":\"/a\",\"ops\":[]}")), 3, 0, "r", "file.ops",
	  "empty list" },
	{ "missing ops", R(FILE_RULE("{\"path\":\"/a\"}")), 3, 0, "r", "file.ops",
	  "missing required field 'ops'" },
	{ "unknown op", R(FILE_RULE("{\"path\":\"/a\",\"ops\":[\"read\",\"chmod\"]}")), 3, 0, "r",
	  "file.ops[1]", "unknown op 'chmod'" },
	{ "relative path", R("{\"id\":\"r\",\"file\":{\"path\":\"etc/passwd\",\"ops\":[\"read\"]},\"decision\":\"deny\"}"),
	  3, 26, "r", "file.path", "must be absolute" },
	{ "double slash", R(FILE_RULE("{\"path\":\"/etc//passwd\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.path", "contains '//'" },
	{ "dotdot", R(FILE_RULE("{\"prefix\":\"/srv/../etc/\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.prefix", "'..' component" },
	{ "dot", R(FILE_RULE("{\"path\":\"/etc/./passwd\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.path", "'.' component" },
	{ "trailing dotdot", R(FILE_RULE("{\"path\":\"/etc/..\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.path", "'..' component" },
	{ "control char in path", R(FILE_RULE("{\"path\":\"/etc/pass\\nwd\",\"ops\":[\"read\"]}")),
	  3, 0, "r", "file.path", "control character" },
	{ "tilde user", R(FILE_RULE("{\"prefix\":\"~root/.ssh\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.prefix", "'~' is only allowed as a leading '~/'" },
	{ "tilde dotdot", R(FILE_RULE("{\"prefix\":\"~/../root\",\"ops\":[\"read\"]}")), 3, 0, "r",
	  "file.prefix", "'..' component" },
	{ "trailing whitespace", R(FILE_RULE("{\"path\":\"/etc/passwd \",\"ops\":[\"read\"]}")), 3, 0,
	  "r", "file.path", "whitespace" },
	{ "exec ops not allowed", R("{\"id\":\"r\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\",\"ops\":[\"read\"]}}"),
	  3, 0, "r", "exec.ops", "unknown field 'ops'" },
	{ "cidr /33", R(NET_RULE("{\"cidr\":\"10.0.0.0/33\"}")), 3, 0, "r", "net.cidr",
	  "prefix length /33 too long" },
	{ "cidr 300.1.1.1", R(NET_RULE("{\"cidr\":\"300.1.1.1/8\"}")), 3, 0, "r", "net.cidr",
	  "invalid IPv4 address '300.1.1.1'" },
	{ "cidr host bits", R(NET_RULE("{\"cidr\":\"10.0.0.1/8\"}")), 3, 0, "r", "net.cidr",
	  "host bits set" },
	{ "cidr v6 host bits", R(NET_RULE("{\"cidr\":\"2001:db8::1/32\"}")), 3, 0, "r", "net.cidr",
	  "host bits set" },
	{ "cidr garbage prefix", R(NET_RULE("{\"cidr\":\"10.0.0.0/8x\"}")), 3, 0, "r", "net.cidr",
	  "invalid prefix length" },
	{ "cidr missing", R(NET_RULE("{\"ports\":[80]}")), 3, 0, "r", "net.cidr",
	  "missing required field 'cidr'" },
	{ "port 70000", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ports\":[443,70000]}")), 3, 0, "r",
	  "net.ports[1]", "port 70000 out of range" },
	{ "port 0", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ports\":[0]}")), 3, 0, "r",
	  "net.ports[0]", "out of range" },
	{ "port real", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ports\":[44.5]}")), 3, 0, "r",
	  "net.ports[0]", "expected a port number" },
	{ "reversed range", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ports\":[\"9000-8000\"]}")), 3, 0,
	  "r", "net.ports[0]", "reversed port range '9000-8000'" },
	{ "bad range", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ports\":[\"80-\"]}")), 3, 0, "r",
	  "net.ports[0]", "invalid port range '80-'" },
	{ "proto icmp", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"proto\":\"icmp\"}")), 3, 0, "r",
	  "net.proto", "unknown proto 'icmp'" },
	{ "net op listen", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ops\":[\"listen\"]}")), 3, 0, "r",
	  "net.ops[0]", "unknown op 'listen'" },
	{ "unix with cidr", R(NET_RULE("{\"unix\":\"/run/x.sock\",\"cidr\":\"10.0.0.0/8\"}")), 3, 0,
	  "r", "net.cidr", "'unix' cannot be combined with 'cidr'" },
	{ "unix relative", R(NET_RULE("{\"unix\":\"run/x.sock\"}")), 3, 0, "r", "net.unix",
	  "must be absolute" },
	{ "socket family", R("{\"id\":\"r\",\"decision\":\"deny\",\"socket\":{\"families\":[\"inet\",\"pigeon\"]}}"),
	  3, 0, "r", "socket.families[1]", "unknown family 'pigeon'" },
	{ "socket allow", R("{\"id\":\"r\",\"decision\":\"allow\",\"socket\":{\"families\":[\"inet\"]}}"),
	  3, 0, "r", "decision", "not valid for socket rules" },
	{ "two socket rules", R("{\"id\":\"s1\",\"decision\":\"deny\",\"socket\":{\"families\":[\"inet\"]}},\n"
				"{\"id\":\"s2\",\"decision\":\"deny\",\"socket\":{\"families\":[\"unix\"]}}"),
	  4, 0, "s2", "socket", "only one socket rule per policy (already given by rule 's1')" },
	{ "unknown syscall", R(SC_RULE("{\"names\":[\"ptrace\",\"not_a_syscall\"]}", "deny")), 3, 0,
	  "r", "syscall.names[1]", "unknown syscall 'not_a_syscall'" },
	{ "unknown errno", R(SC_RULE("{\"names\":[\"ptrace\"],\"errno\":\"EWHATEVER\"}", "deny")), 3, 0,
	  "r", "syscall.errno", "unknown errno 'EWHATEVER'" },
	{ "errno without deny", R(SC_RULE("{\"names\":[\"ptrace\"],\"errno\":\"EPERM\"}", "audit")), 3, 0,
	  "r", "syscall.errno", "only valid with decision 'deny'" },
	{ "arg index 6", R(SC_RULE("{\"names\":[\"ptrace\"],\"args\":[{\"index\":6,\"op\":\"eq\",\"value\":1}]}", "deny")),
	  3, 0, "r", "syscall.args[0].index", "6 out of range (0-5)" },
	{ "masked_eq without mask", R(SC_RULE("{\"names\":[\"ptrace\"],\"args\":[{\"index\":0,\"op\":\"masked_eq\",\"value\":1}]}", "deny")),
	  3, 0, "r", "syscall.args[0].mask", "missing required field 'mask'" },
	{ "mask with eq", R(SC_RULE("{\"names\":[\"ptrace\"],\"args\":[{\"index\":0,\"op\":\"eq\",\"value\":1,\"mask\":1}]}", "deny")),
	  3, 0, "r", "syscall.args[0].mask", "only valid with op 'masked_eq'" },
	{ "no_op on file", R("{\"id\":\"r\",\"decision\":\"no_op\",\"file\":{\"path\":\"/x\",\"ops\":[\"read\"]}}"),
	  3, 22, "r", "decision", "decision 'no_op' is not valid for file rules" },
	{ "awc on net", R("{\"id\":\"r\",\"decision\":\"allow_with_constraints\",\"net\":{\"cidr\":\"10.0.0.0/8\"}}"),
	  3, 0, "r", "decision", "not valid for net rules" },
	{ "approval on syscall", R(SC_RULE("{\"names\":[\"ptrace\"]}", "require_approval")), 3, 0, "r",
	  "decision", "not valid for syscall rules" },
	{ "cooldown decision", R(SC_RULE("{\"names\":[\"ptrace\"]}", "cooldown")), 3, 0, "r",
	  "decision", "cannot be used in a rule" },
	{ "throttle without object", R("{\"id\":\"r\",\"decision\":\"throttle\",\"net\":{\"cidr\":\"10.0.0.0/8\"}}"),
	  3, 0, "r", "throttle", "needs a 'throttle' object" },
	{ "throttle with allow", R("{\"id\":\"r\",\"decision\":\"allow\",\"net\":{\"cidr\":\"10.0.0.0/8\"},\"throttle\":{\"rate_per_sec\":1,\"burst\":1}}"),
	  3, 0, "r", "throttle", "only valid with decision 'throttle'" },
	{ "throttle rate 0", R("{\"id\":\"r\",\"decision\":\"throttle\",\"net\":{\"cidr\":\"10.0.0.0/8\"},\"throttle\":{\"rate_per_sec\":0,\"burst\":1}}"),
	  3, 0, "r", "throttle.rate_per_sec", "0 out of range" },
	{ "duplicate id", R("{\"id\":\"r\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}},\n"
			    "{\"id\":\"r\",\"decision\":\"deny\",\"exec\":{\"path\":\"/y\"}}"),
	  4, 7, "r", "id", "duplicate rule id 'r' (first used at line 3)" },
	{ "duplicate id across lists",
	  "{\"version\":1,\"name\":\"t\",\n\"admission\":[{\"id\":\"x\",\"decision\":\"allow\"}],\n"
	  "\"runtime\":[{\"id\":\"x\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}]}",
	  3, 18, "x", "id", "duplicate rule id 'x' (first used at line 2)" },
	{ "contradiction file",
	  R("{\"id\":\"a\",\"decision\":\"deny\",\"file\":{\"prefix\":\"~/.ssh/\",\"ops\":[\"read\"]}},\n"
	    "{\"id\":\"b\",\"decision\":\"allow\",\"file\":{\"prefix\":\"~/.ssh\",\"ops\":[\"read\",\"write\"]}}"),
	  4, 0, "b", "file.prefix", "contradicts rule 'a' (line 3)" },
	{ "contradiction via implicit protection",
	  R("{\"id\":\"a\",\"decision\":\"deny\",\"file\":{\"path\":\"/etc/x\",\"ops\":[\"read\"]}},\n"
	    "{\"id\":\"b\",\"decision\":\"allow\",\"file\":{\"path\":\"/etc/x\",\"ops\":[\"rename\"]}}"),
	  4, 0, "b", "file.path", "also cover rename, link, unlink" },
	{ "contradiction net",
	  R("{\"id\":\"a\",\"decision\":\"allow\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[\"400-500\"],\"proto\":\"tcp\"}},\n"
	    "{\"id\":\"b\",\"decision\":\"deny\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[443]}}"),
	  4, 0, "b", "net.cidr", "contradicts rule 'a'" },
	{ "contradiction syscall",
	  R(SC_RULE("{\"names\":[\"ptrace\"]}", "deny") ",\n"
	    "{\"id\":\"b\",\"decision\":\"allow\",\"syscall\":{\"names\":[\"mount\",\"ptrace\"]}}"),
	  4, 0, "b", "syscall.names", "contradicts rule 'r'" },
	{ "contradiction exec vs file exec",
	  R("{\"id\":\"a\",\"decision\":\"deny\",\"exec\":{\"path\":\"/usr/bin/nc\"}},\n"
	    "{\"id\":\"b\",\"decision\":\"allow\",\"file\":{\"path\":\"/usr/bin/nc\",\"ops\":[\"exec\"]}}"),
	  4, 0, "b", "file.path", "contradicts rule 'a'" },
	{ "constraints negative", T("\"constraints\":{\"max_procs\":-1}"), 2, 28, "",
	  "constraints.max_procs", "-1 out of range" },
	{ "constraints zero", T("\"constraints\":{\"max_runtime_sec\":0}"), 2, 0, "",
	  "constraints.max_runtime_sec", "0 out of range" },
	{ "memory suffix", T("\"constraints\":{\"memory_max\":\"12X\"}"), 2, 0, "",
	  "constraints.memory_max", "invalid size '12X'" },
	{ "memory zero", T("\"constraints\":{\"memory_max\":\"0M\"}"), 2, 0, "",
	  "constraints.memory_max", "greater than zero" },
	{ "memory overflow", T("\"constraints\":{\"memory_max\":\"99999999999999T\"}"), 2, 0, "",
	  "constraints.memory_max", "too large" },
	{ "max_retries too many", T("\"constraints\":{\"max_retries\":101}"), 2, 30, "",
	  "constraints.max_retries", "101 out of range (0-100)" },
	{ "constraints empty", T("\"constraints\":{}"), 2, 15, "", "constraints",
	  "empty constraints" },
	{ "admission match unknown", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"gids\":[1]}}"),
	  3, 0, "a", "match.gids", "unknown field 'gids'" },
	{ "awc without constraints", A("{\"id\":\"a\",\"decision\":\"allow_with_constraints\"}"),
	  3, 0, "a", "constraints", "needs a 'constraints' object" },
	{ "constraints with allow", A("{\"id\":\"a\",\"decision\":\"allow\",\"constraints\":{\"max_procs\":1}}"),
	  3, 0, "a", "constraints", "only valid with decision 'allow_with_constraints'" },
	{ "admission empty topics", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"topics\":[]}}"),
	  3, 0, "a", "match.topics", "empty list" },
	{ "admission role type", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"roles\":[1]}}"),
	  3, 0, "a", "match.roles[0]", "expected a string" },
	{ "labels not an object", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":[\"x\"]}}"),
	  3, 48, "a", "match.labels", "expected an object, got an array" },
	{ "labels empty", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{}}}"),
	  3, 48, "a", "match.labels", "empty labels" },
	{ "label value number",
	  A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"mcp.action\":\"write\",\"n\":3}}}"),
	  3, 74, "a", "match.labels.n", "expected a string or an array of strings, got an integer" },
	{ "label value empty", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"k\":\"\"}}}"),
	  3, 53, "a", "match.labels.k", "1-255 bytes" },
	{ "label globs empty", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"k\":[]}}}"),
	  3, 53, "a", "match.labels.k", "empty list" },
	{ "label glob type", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"k\":[\"a\",true]}}}"),
	  3, 58, "a", "match.labels.k[1]", "expected a string, got a boolean" },
	{ "label control char", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"k\":\"a\\u001b\"}}}"),
	  3, 53, "a", "match.labels.k", "control character (U+001B)" },
	{ "label name empty", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"\":\"x\"}}}"),
	  3, 48, "a", "match.labels", "label name must be 1-128 bytes" },
	{ "label name control", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"labels\":{\"a\\u0085\":\"x\"}}}"),
	  3, 48, "a", "match.labels", "label name contains a control character (U+0085)" },
	{ "labels second rule", A("{\"id\":\"a\",\"decision\":\"allow\"},\n"
				  "{\"id\":\"b\",\"decision\":\"deny\",\"match\":{\"labels\":{\"k\":5}}}"),
	  4, 52, "b", "match.labels.k", "expected a string or an array" },
	{ "admission no_op", A("{\"id\":\"a\",\"decision\":\"no_op\"}"), 3, 0, "a", "decision",
	  "not valid for admission rules" },
	{ "approvals queue 0", T("\"approvals\":{\"queue_max\":0}"), 2, 0, "",
	  "approvals.queue_max", "0 out of range" },
	{ "approvals unknown", T("\"approvals\":{\"timeout\":5}"), 2, 0, "", "approvals.timeout",
	  "unknown field 'timeout'" },
	{ "cooldown incomplete", T("\"cooldown\":{\"threshold\":3}"), 2, 12, "",
	  "cooldown.window_sec", "missing required field 'window_sec'" },
	{ "uid negative", T("\"launchers\":{\"uids\":[-1]}"), 2, 22, "", "launchers.uids[0]",
	  "out of range" },
	{ "require_full type", T("\"require_full\":\"yes\""), 2, 16, "", "require_full",
	  "expected true or false" },
	{ "reason control char", R("{\"id\":\"r\",\"reason\":\"a\\u001b[31m\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"),
	  3, 0, "r", "reason", "control character" },
	{ "C1 control in path", R(FILE_RULE("{\"path\":\"/etc/pass\\u0085wd\",\"ops\":[\"read\"]}")),
	  3, 0, "r", "file.path", "control character (U+0085)" },
	{ "C1 control in unix path", R(NET_RULE("{\"unix\":\"/run/x\\u009b.sock\"}")), 3, 0, "r",
	  "net.unix", "control character (U+009B)" },
	{ "C1 control in abstract name", R(NET_RULE("{\"unix_abstract\":\"x\\u0085\"}")), 3, 0, "r",
	  "net.unix_abstract", "control character (U+0085)" },
	{ "C1 control in reason", R("{\"id\":\"r\",\"reason\":\"a\\u009b31m\",\"decision\":\"deny\",\"exec\":{\"path\":\"/x\"}}"),
	  3, 0, "r", "reason", "control character (U+009B)" },
	{ "C1 control in topic", A("{\"id\":\"a\",\"decision\":\"allow\",\"match\":{\"topics\":[\"job.\\u0085x\"]}}"),
	  3, 0, "a", "match.topics[0]", "control character (U+0085)" },
	{ "C1 control in description", T("\"description\":\"x\\u0085\""), 2, 0, "", "description",
	  "control character (U+0085)" },
	{ "$schema not a string", T("\"$schema\":5"), 2, 11, "", "$schema", "expected a string" },
	{ "abstract too long", R(NET_RULE("{\"unix_abstract\":\"" A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 "\"}")),
	  3, 0, "r", "net.unix_abstract", "1-107 bytes" },
	{ "ports too many", R(NET_RULE("{\"cidr\":\"10.0.0.0/8\",\"ports\":[1,2,3,4,5,6,7,8,9]}")), 3, 0,
	  "r", "net.ports", "too many entries" },
	{ "system_access unknown", T("\"system_access\":[\"sys_ptrace\",\"sys_everything\"]"), 2, 31,
	  "", "system_access[1]", "unknown capability 'sys_everything' (system_access grants back" },
	{ "system_access kept", T("\"system_access\":[\"chown\"]"), 2, 18, "", "system_access[0]",
	  "'chown' is kept by every job" },
	{ "system_access twice", T("\"system_access\":[\"mknod\",\"CAP_MKNOD\"]"), 2, 26, "",
	  "system_access[1]", "'CAP_MKNOD' is listed twice" },
	{ "system_access type", T("\"system_access\":\"mknod\""), 2, 17, "", "system_access",
	  "expected an array" },
	{ "system_access entry type", T("\"system_access\":[27]"), 2, 18, "", "system_access[0]",
	  "expected a string (a capability or a member name)" },
	{ "system_access empty", T("\"system_access\":[]"), 2, 17, "", "system_access",
	  "empty list" },
};

TEST(bad_inputs_are_rejected_precisely)
{
	size_t i;

	ASSERT_GE(ARRAY_SIZE(bad_cases), 35, "table size");
	for (i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *b = &bad_cases[i];
		struct kg_policy_error err;
		struct kg_policy_doc *doc = load(b->json, &err);
		char what[128];

		snprintf(what, sizeof(what), "case '%s'", b->name);
		if (!ASSERT_TRUE(doc == NULL, what)) {
			kg_policy_free(doc);
			continue;
		}
		ASSERT_STREQ(err.file, "t.json", what);
		ASSERT_HAS_SUBSTR(err.message, b->msg, what);
		if (b->line)
			ASSERT_EQ(err.line, b->line, what);
		if (b->col)
			ASSERT_EQ(err.column, b->col, what);
		if (b->rule)
			ASSERT_STREQ(err.rule_id, b->rule, what);
		if (b->field)
			ASSERT_STREQ(err.field, b->field, what);
		if (getenv("KGATE_TEST_VERBOSE"))
			printf("  %-36s %s\n", b->name, error_text(&err));
	}
}

TEST(system_access_names_capabilities)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(T("\"system_access\":[\"sys_ptrace\",\"CAP_NET_ADMIN\"]"),
					 &err);

	if (!ASSERT_TRUE(doc != NULL, "loads"))
		return;
	ASSERT_EQ(doc->system_access, (1ULL << 19) | (1ULL << 12), "sys_ptrace and net_admin");
	kg_policy_free(doc);
	doc = load(T("\"require_full\":false"), &err);
	if (ASSERT_TRUE(doc != NULL, "loads")) {
		ASSERT_EQ(doc->system_access, 0, "nothing granted by default");
		ASSERT_EQ(doc->outside_grant, 0, "no member of the escapes by proxy either");
	}
	kg_policy_free(doc);
	/* members of the escapes by proxy (kernel/outside.h), by name */
	doc = load(T("\"system_access\":[\"containers\",\"sys_ptrace\",\"Scheduled\"]"), &err);
	if (ASSERT_TRUE(doc != NULL, "loads")) {
		ASSERT_EQ(doc->system_access, 1ULL << 19, "sys_ptrace");
		ASSERT_EQ(doc->outside_grant, (1u << kg_out_by_name("containers")) |
			  (1u << kg_out_by_name("scheduled")), "containers and scheduled");
	}
	kg_policy_free(doc);
	doc = load(T("\"system_access\":[\"login\",\"login\"]"), &err);
	ASSERT_TRUE(doc == NULL, "a member listed twice is refused");
	ASSERT_HAS_SUBSTR(error_text(&err), "'login' is listed twice", "and said");
	kg_policy_free(doc);
	doc = load(T("\"system_access\":[\"dockers\"]"), &err);
	ASSERT_TRUE(doc == NULL, "an unknown name is refused");
	ASSERT_HAS_SUBSTR(error_text(&err), "containers, snapd", "naming the members");
	kg_policy_free(doc);
}

TEST(error_messages_never_echo_control_characters)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc;
	size_t i;

	/* the message quotes the unknown decision: its C1 and C0 bytes must
	 * come out escaped, not as bytes a terminal would act on */
	doc = load(R("{\"id\":\"r\",\"decision\":\"\\u009b31m\\u001b[2J\",\"exec\":{\"path\":\"/x\"}}"),
		   &err);
	ASSERT_TRUE(doc == NULL, "rejected");
	kg_policy_free(doc);
	ASSERT_HAS_SUBSTR(err.message, "unknown decision", "message");
	for (i = 0; err.message[i]; i++) {
		unsigned char ch = (unsigned char)err.message[i];

		if (!ASSERT_FALSE(ch < 0x20 || ch == 0x7f ||
				  (ch == 0xc2 && (unsigned char)err.message[i + 1] >= 0x80 &&
				   (unsigned char)err.message[i + 1] <= 0x9f), "raw control character"))
			break;
	}
	ASSERT_HAS_SUBSTR(err.message, "\\u009b31m\\x1b[2J", "escaped forms");
}

TEST(error_format_names_everything)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(R(NET_RULE("{\"cidr\":\"10.0.0.0/33\"}")), &err);

	ASSERT_TRUE(doc == NULL, "rejected");
	ASSERT_STREQ(error_text(&err),
		     "t.json:3:44: rule 'r': field 'net.cidr': prefix length /33 too long for "
		     "IPv4 in CIDR '10.0.0.0/33' (max 32)", "format");
	doc = load("{", &err);
	ASSERT_TRUE(doc == NULL, "rejected");
	ASSERT_HAS_SUBSTR(error_text(&err), "t.json:1:", "syntax error has a position");
}

TEST(home_is_required_for_tilde)
{
	const char *json = R(FILE_RULE("{\"prefix\":\"~/.ssh/\",\"ops\":[\"read\"]}"));
	struct kg_policy_error err;
	struct kg_policy_doc *doc;

	unsetenv("HOME");
	doc = kg_policy_load_buffer(json, strlen(json), "t.json", NULL, &err);
	ASSERT_TRUE(doc == NULL, "no home");
	ASSERT_HAS_SUBSTR(err.message, "no absolute home directory", "message");
	setenv("HOME", "/home/env/", 1);
	doc = kg_policy_load_buffer(json, strlen(json), "t.json", NULL, &err);
	if (ASSERT_TRUE(doc != NULL, "HOME used"))
		ASSERT_STREQ(doc->rules[0].path, "/home/env/.ssh", "expanded from $HOME");
	kg_policy_free(doc);
}

TEST(limits)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc;
	char tmpl[] = "/tmp/kgate-test-policy.XXXXXX", file[PATH_MAX];
	size_t n = KG_POLICY_MAX_RULES + 1, i, len;
	char *buf, *p, *longpath;
	int fd;

	/* too many rules: counted before any rule is parsed */
	buf = malloc(n * 2 + 64);
	p = buf + sprintf(buf, "{\"version\":1,\"name\":\"t\",\"runtime\":[");
	for (i = 0; i < n; i++) {
		*p++ = '0';
		*p++ = i + 1 < n ? ',' : ']';
	}
	strcpy(p, "}");
	doc = kg_policy_load_buffer(buf, strlen(buf), "t.json", HOME, &err);
	ASSERT_TRUE(doc == NULL, "too many rules");
	ASSERT_HAS_SUBSTR(err.message, "too many rules", "message");
	ASSERT_STREQ(err.field, "runtime", "field");
	free(buf);

	/* path longer than PATH_MAX */
	longpath = malloc(PATH_MAX + 16);
	longpath[0] = '/';
	memset(longpath + 1, 'a', PATH_MAX + 1);
	for (i = 200; i < PATH_MAX; i += 200)
		longpath[i] = '/';
	longpath[PATH_MAX + 2] = '\0';
	len = strlen(longpath) + 256;
	buf = malloc(len);
	snprintf(buf, len, R(FILE_RULE("{\"path\":\"%s\",\"ops\":[\"read\"]}")), longpath);
	doc = load(buf, &err);
	ASSERT_TRUE(doc == NULL, "long path");
	ASSERT_HAS_SUBSTR(err.message, "longer than PATH_MAX", "message");
	free(buf);
	free(longpath);

	/* a file over KG_POLICY_MAX_BYTES (sparse, in our own temp dir) */
	if (!ASSERT_TRUE(mkdtemp(tmpl) != NULL, "mkdtemp"))
		return;
	snprintf(file, sizeof(file), "%s/big.json", tmpl);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ASSERT_TRUE(fd >= 0, "create");
	ASSERT_OK(ftruncate(fd, (off_t)KG_POLICY_MAX_BYTES + 1), "ftruncate");
	close(fd);
	doc = kg_policy_load_file(file, HOME, &err);
	ASSERT_TRUE(doc == NULL, "big file");
	ASSERT_HAS_SUBSTR(err.message, "larger than the limit", "message");
	ASSERT_STREQ(err.file, file, "file named");
	unlink(file);

	/* a valid policy of exactly KG_POLICY_MAX_BYTES is within the limit */
	{
		static const char head[] = "{\"version\":1,\"name\":\"exact\"}";
		const size_t chunk = 1 << 20;
		char *pad = malloc(chunk);
		size_t left = KG_POLICY_MAX_BYTES - (sizeof(head) - 1);

		fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ASSERT_TRUE(fd >= 0 && pad, "create exact-size file");
		memset(pad, ' ', chunk);
		ASSERT_EQ(write(fd, head, sizeof(head) - 1), (ssize_t)sizeof(head) - 1, "head");
		while (left) {
			size_t n = left < chunk ? left : chunk;

			if (!ASSERT_EQ(write(fd, pad, n), (ssize_t)n, "padding"))
				break;
			left -= n;
		}
		close(fd);
		free(pad);
		doc = kg_policy_load_file(file, HOME, &err);
		if (!ASSERT_TRUE(doc != NULL, "a policy of exactly 64 MiB loads"))
			printf("  %s\n", error_text(&err));
		kg_policy_free(doc);
		unlink(file);
	}
	rmdir(tmpl);
}

/* A FIFO with no writer: open(2) alone would wait forever for one. */
TEST(policy_path_that_is_not_a_regular_file_is_refused_at_once)
{
	char tmpl[] = "/tmp/kgate-test-fifo.XXXXXX", fifo[PATH_MAX];
	struct kg_policy_error err;
	struct kg_policy_doc *doc;

	if (!ASSERT_TRUE(mkdtemp(tmpl) != NULL, "mkdtemp"))
		return;
	snprintf(fifo, sizeof(fifo), "%s/policy.json", tmpl);
	ASSERT_OK(mkfifo(fifo, 0600), "mkfifo");
	alarm(10);	/* a hang fails the test (SIGALRM) instead of the suite */
	doc = kg_policy_load_file(fifo, HOME, &err);
	alarm(0);
	ASSERT_TRUE(doc == NULL, "FIFO refused");
	ASSERT_HAS_SUBSTR(err.message, "not a regular file", "message");
	ASSERT_STREQ(err.file, fifo, "file named");
	doc = kg_policy_load_file(tmpl, HOME, &err);
	ASSERT_TRUE(doc == NULL, "directory refused");
	ASSERT_HAS_SUBSTR(err.message, "not a regular file", "directory message");
	kg_policy_free(doc);
	unlink(fifo);
	rmdir(tmpl);
}

TEST(valid_edge_cases_accepted)
{
	static const char *const ok[] = {
		R(NET_RULE("{\"cidr\":\"10.0.0.1\"}")),			/* bare address = /32 */
		R(NET_RULE("{\"cidr\":\"::ffff:10.0.0.0/104\"}")),	/* explicit mapped */
		R(NET_RULE("{\"cidr\":\"0.0.0.0/0\",\"ports\":[\"1-65535\",\"443\"]}")),
		R(FILE_RULE("{\"prefix\":\"/\",\"ops\":[\"exec\"]}")),
		R(FILE_RULE("{\"path\":\"/tmp/~lock\",\"ops\":[\"read\"]}")),	/* ~ inside is literal */
		R("{\"id\":\"a\",\"decision\":\"allow\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[443]}},\n"
		  "{\"id\":\"b\",\"decision\":\"deny\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[80]}}"),
		R("{\"id\":\"a\",\"decision\":\"allow\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"proto\":\"tcp\"}},\n"
		  "{\"id\":\"b\",\"decision\":\"deny\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"proto\":\"udp\"}}"),
		R("{\"id\":\"a\",\"decision\":\"allow\",\"file\":{\"path\":\"/x\",\"ops\":[\"read\"]}},\n"
		  "{\"id\":\"b\",\"decision\":\"deny\",\"file\":{\"prefix\":\"/x\",\"ops\":[\"read\"]}}"),
		R("{\"id\":\"a\",\"decision\":\"deny\",\"file\":{\"path\":\"/x\",\"ops\":[\"read\"]}},\n"
		  "{\"id\":\"b\",\"decision\":\"deny\",\"file\":{\"path\":\"/x\",\"ops\":[\"write\"]}}"),
		R(SC_RULE("{\"names\":[\"unshare\"],\"args\":[{\"index\":0,\"op\":\"eq\",\"value\":0}]}", "allow")
		  ",\n{\"id\":\"b\",\"decision\":\"deny\",\"syscall\":{\"names\":[\"unshare\"],"
		  "\"args\":[{\"index\":0,\"op\":\"ne\",\"value\":0}]}}"),
		T("\"$schema\":\"./schema.json\",\"constraints\":{\"memory_max\":1048576}"),
		"{\"version\":1,\"name\":\"t\",\"runtime\":[],\"admission\":[]}",
		T("\"constraints\":{\"max_retries\":3}"),
		A("{\"id\":\"a\",\"decision\":\"require_approval\",\"match\":{\"risk_tags\":[\"prod\"],"
		  "\"labels\":{\"mcp.action\":\"write\",\"mcp.tool\":[\"fs.*\",\"git.push\"]}}}"),
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		struct kg_policy_error err;
		struct kg_policy_doc *doc = load(ok[i], &err);
		char what[32];

		snprintf(what, sizeof(what), "ok case %zu", i);
		if (!ASSERT_TRUE(doc != NULL, what))
			printf("  %s\n", error_text(&err));
		kg_policy_free(doc);
	}
}

/* ---- precedence ---------------------------------------------------------- */

TEST(file_precedence_most_specific_wins)
{
	const char *json = R(
		"{\"id\":\"home\",\"decision\":\"allow\",\"file\":{\"prefix\":\"~/\",\"ops\":[\"read\"]}},\n"
		"{\"id\":\"ssh\",\"decision\":\"deny\",\"file\":{\"prefix\":\"~/.ssh/\",\"ops\":[\"read\"]}},\n"
		"{\"id\":\"known\",\"decision\":\"audit\",\"file\":{\"path\":\"~/.ssh/known_hosts\",\"ops\":[\"read\"]}},\n"
		"{\"id\":\"first\",\"decision\":\"deny\",\"file\":{\"prefix\":\"/srv\",\"ops\":[\"write\"]}},\n"
		"{\"id\":\"second\",\"decision\":\"deny\",\"file\":{\"prefix\":\"/srv\",\"ops\":[\"write\",\"read\"]}},\n"
		"{\"id\":\"dir-exact\",\"decision\":\"audit\",\"file\":{\"path\":\"/srv\",\"ops\":[\"read\"]}}");
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(json, &err);
	const struct kg_rule *r;

	if (!ASSERT_TRUE(doc != NULL, "load")) {
		printf("  %s\n", error_text(&err));
		return;
	}
	r = kg_policy_match_path(doc, HOME "/notes.txt", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "home", "shallow prefix");
	r = kg_policy_match_path(doc, HOME "/.ssh/id_rsa", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "ssh", "deeper prefix wins over ~/");
	r = kg_policy_match_path(doc, HOME "/.ssh", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "ssh", "prefix covers the directory itself");
	r = kg_policy_match_path(doc, HOME "/.sshx", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "home", "prefix is per component, not per byte");
	r = kg_policy_match_path(doc, HOME "/.ssh/known_hosts", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "known", "exact deeper file wins");
	r = kg_policy_match_path(doc, HOME "/.ssh/known_hosts", KG_OP_RENAME);
	ASSERT_STREQ(r ? r->id : NULL, "ssh", "deny protects identity: rename hits ssh");
	r = kg_policy_match_path(doc, "/srv/a", KG_OP_WRITE);
	ASSERT_STREQ(r ? r->id : NULL, "first", "equal selector: first in file wins");
	r = kg_policy_match_path(doc, "/srv/a", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "second", "ops decide which rules apply");
	r = kg_policy_match_path(doc, "/srv", KG_OP_READ);
	ASSERT_STREQ(r ? r->id : NULL, "dir-exact", "exact beats prefix at equal depth");
	r = kg_policy_match_path(doc, "/etc/passwd", KG_OP_READ);
	ASSERT_TRUE(r == NULL, "no rule: class default");
	kg_policy_free(doc);
}

static void v4(uint8_t out[16], const char *s)
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	inet_pton(AF_INET, s, out + 12);
}

TEST(net_precedence_longest_prefix_then_narrowest_port)
{
	const char *json = R(
		"{\"id\":\"all\",\"decision\":\"deny\",\"net\":{\"cidr\":\"0.0.0.0/0\"}},\n"
		"{\"id\":\"ten\",\"decision\":\"allow\",\"net\":{\"cidr\":\"10.0.0.0/8\"}},\n"
		"{\"id\":\"prod-any\",\"decision\":\"require_approval\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[\"400-500\"],\"proto\":\"tcp\"}},\n"
		"{\"id\":\"prod\",\"decision\":\"require_approval\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[443],\"proto\":\"tcp\"}},\n"
		"{\"id\":\"prod-wide\",\"decision\":\"audit\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[\"1-1024\"],\"proto\":\"udp\"}},\n"
		"{\"id\":\"v6\",\"decision\":\"allow\",\"net\":{\"cidr\":\"2001:db8::/32\",\"ops\":[\"send\"]}}");
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(json, &err);
	const struct kg_rule *r;
	uint8_t a[16];

	if (!ASSERT_TRUE(doc != NULL, "load")) {
		printf("  %s\n", error_text(&err));
		return;
	}
	v4(a, "192.0.2.1");
	r = kg_policy_match_net(doc, a, 80, 6, KG_NET_OP_CONNECT);
	ASSERT_STREQ(r ? r->id : NULL, "all", "/0 catches everything IPv4");
	v4(a, "10.1.2.3");
	r = kg_policy_match_net(doc, a, 80, 6, KG_NET_OP_CONNECT);
	ASSERT_STREQ(r ? r->id : NULL, "ten", "/8 beats /0");
	v4(a, "10.20.1.1");
	r = kg_policy_match_net(doc, a, 443, 6, KG_NET_OP_CONNECT);
	ASSERT_STREQ(r ? r->id : NULL, "prod", "narrowest port range wins over an earlier wider one");
	r = kg_policy_match_net(doc, a, 450, 6, KG_NET_OP_CONNECT);
	ASSERT_STREQ(r ? r->id : NULL, "prod-any", "range rule");
	r = kg_policy_match_net(doc, a, 53, 17, KG_NET_OP_SEND);
	ASSERT_STREQ(r ? r->id : NULL, "prod-wide", "udp range");
	r = kg_policy_match_net(doc, a, 8080, 6, KG_NET_OP_CONNECT);
	ASSERT_STREQ(r ? r->id : NULL, "ten", "port miss falls back to wider prefix");
	memset(a, 0, 16);
	inet_pton(AF_INET6, "2001:db8::5", a);
	r = kg_policy_match_net(doc, a, 443, 6, KG_NET_OP_CONNECT);
	ASSERT_TRUE(r == NULL, "op mismatch: no rule (IPv4 /0 does not cover IPv6)");
	r = kg_policy_match_net(doc, a, 443, 17, KG_NET_OP_SEND);
	ASSERT_STREQ(r ? r->id : NULL, "v6", "v6 send");
	kg_policy_free(doc);
}

/* ---- canonical form and hash ---------------------------------------------- */

TEST(hash_stable_across_formatting)
{
	const char *a = "{\"version\":1,\"name\":\"h\",\"runtime\":[{\"id\":\"x\",\"decision\":\"deny\","
			"\"exec\":{\"path\":\"/usr/bin/nc\"}}],\"default\":\"allow\"}";
	const char *b = "{\n  \"default\" : \"allow\",\n  \"runtime\": [ { \"exec\": { \"path\": "
			"\"/usr/bin/nc\" },\n \"decision\": \"deny\", \"id\": \"x\" } ],\n"
			"  \"name\": \"h\", \"version\": 1\n}\n";
	const char *c = "{\"version\":1,\"name\":\"h\",\"runtime\":[{\"id\":\"x\",\"decision\":\"deny\","
			"\"exec\":{\"path\":\"/usr/bin/ncat\"}}],\"default\":\"allow\"}";
	struct kg_policy_error err;
	struct kg_policy_doc *da = load(a, &err), *db = load(b, &err), *dc = load(c, &err);

	if (!ASSERT_TRUE(da && db && dc, "load"))
		goto out;
	ASSERT_STREQ(da->hash, db->hash, "same policy, different key order and whitespace");
	ASSERT_STREQ(da->canonical_json, db->canonical_json, "same canonical form");
	ASSERT_NEQ(strcmp(da->hash, dc->hash), 0, "a changed rule changes the hash");
	ASSERT_TRUE(strchr(da->canonical_json, '\n') == NULL, "compact");
	ASSERT_TRUE(strstr(da->canonical_json, "{\"default\":\"allow\",\"name\"") != NULL,
		    "keys sorted");
out:
	kg_policy_free(da);
	kg_policy_free(db);
	kg_policy_free(dc);
}

TEST(names)
{
	enum kg_decision d;
	int k;

	for (k = KG_DEC_ALLOW; k < KG_DEC_MAX; k++) {
		ASSERT_OK(kg_decision_parse(kg_decision_name(k), &d), kg_decision_name(k));
		ASSERT_EQ(d, k, "round trip");
	}
	ASSERT_EQ(kg_decision_parse("none", &d), -1, "none is not parsable");
	ASSERT_EQ(kg_decision_parse("DENY", &d), -1, "case sensitive");
	ASSERT_STREQ(kg_decision_name(KG_DEC_REQUIRE_APPROVAL), "require_approval", "name");
	ASSERT_STREQ(kg_op_name(KG_OP_NET_CONNECT), "net_connect", "op");
	ASSERT_STREQ(kg_op_name(KG_OP_MAX), "unknown", "op out of range");
	ASSERT_STREQ(kg_class_name(KG_CLASS_UNIX), "unix", "class");
	ASSERT_STREQ(kg_class_name(KG_CLASS_MAX), "unknown", "class out of range");
}

/* ---- CLI ------------------------------------------------------------------- */

/* run $KGATE_BIN with args; returns exit code, output in out */
static int run_kgate(char *out, size_t outlen, const char *const *args)
{
	const char *bin = getenv("KGATE_BIN");
	char *argv[16];
	int pipefd[2], status, n = 0;
	size_t used = 0;
	ssize_t r;
	pid_t pid;

	argv[n++] = (char *)bin;
	while (*args && n < 15)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		execv(bin, argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (used + 1 < outlen && (r = read(pipefd[0], out + used, outlen - used - 1)) > 0)
		used += (size_t)r;
	out[used] = '\0';
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST(cli_policy_check_exit_codes)
{
	char tmpl[] = "/tmp/kgate-test-cli.XXXXXX", good[PATH_MAX], bad[PATH_MAX];
	static char out[65536];
	const char *src = getenv("KGATE_SRC");
	json_t *j;
	FILE *f;

	if (!getenv("KGATE_BIN") || access(getenv("KGATE_BIN"), X_OK))
		SKIP("KGATE_BIN not set or not executable (run through tests/run.sh)");
	if (!ASSERT_TRUE(mkdtemp(tmpl) != NULL, "mkdtemp"))
		return;
	snprintf(good, sizeof(good), "%s/good.json", tmpl);
	snprintf(bad, sizeof(bad), "%s/bad.json", tmpl);
	f = fopen(good, "w");
	fputs("{\"version\":1,\"name\":\"good\",\"runtime\":[{\"id\":\"x\",\"decision\":\"deny\","
	      "\"exec\":{\"path\":\"/usr/bin/nc\"}}]}", f);
	fclose(f);
	f = fopen(bad, "w");
	fputs("{\"version\":1,\"name\":\"bad\",\n\"runtime\":[\n{\"id\":\"x\",\"decision\":\"deny\","
	      "\"net\":{\"cidr\":\"10.0.0.1/8\"}}]}", f);
	fclose(f);

	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", good, NULL }),
		  0, "good policy");
	ASSERT_HAS_SUBSTR(out, ": ok (good, 1 rules, sha256 ", "ok line");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", bad, NULL }),
		  3, "bad policy");
	ASSERT_HAS_SUBSTR(out, "bad.json:3:", "position");
	ASSERT_HAS_SUBSTR(out, "rule 'x': field 'net.cidr': host bits set", "message");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", good, bad, NULL }),
		  3, "one bad of two");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", NULL }),
		  2, "no file: usage");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", "--bogus", good, NULL }),
		  2, "bad option: usage");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", "--help", NULL }),
		  0, "help");
	ASSERT_HAS_SUBSTR(out, "usage: kgate policy check", "help text");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "show", "--help", NULL }),
		  0, "show help");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "push", "--help", NULL }),
		  0, "push help");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "--help", NULL }),
		  0, "policy help");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "frobnicate", NULL }),
		  2, "unknown subcommand");

	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", "--json", good, bad, NULL }),
		  3, "json exit code");
	j = json_loads(out, 0, NULL);
	if (ASSERT_TRUE(json_is_array(j), "json array")) {
		ASSERT_EQ(json_array_size(j), 2, "two results");
		ASSERT_TRUE(json_is_true(json_object_get(json_array_get(j, 0), "ok")), "first ok");
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_array_get(j, 1),
				"error"), "field")), "net.cidr", "error field");
		ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_array_get(j, 1),
				"error"), "line")), 3, "error line");
	}
	json_decref(j);

	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "show", good, NULL }),
		  0, "show");
	ASSERT_HAS_SUBSTR(out, "/usr/bin/nc", "target shown");
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "show", "--json", good, NULL }),
		  0, "show json");
	j = json_loads(out, 0, NULL);
	if (ASSERT_TRUE(json_is_array(j), "show json array")) {
		ASSERT_STREQ(json_string_value(json_object_get(json_array_get(j, 0), "kind")),
			     "exec", "kind");
		ASSERT_EQ(json_integer_value(json_object_get(json_array_get(j, 0), "num")), 1, "num");
	}
	json_decref(j);
	ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "show", bad, NULL }),
		  3, "show bad");

	if (src) {
		char demo[PATH_MAX];

		snprintf(demo, sizeof(demo), "%s/policies/demo.json", src);
		ASSERT_EQ(run_kgate(out, sizeof(out), (const char *[]){ "policy", "check", "--home", "/home/x", demo, NULL }),
			  0, "demo policy via CLI");
	}
	unlink(good);
	unlink(bad);
	rmdir(tmpl);
}

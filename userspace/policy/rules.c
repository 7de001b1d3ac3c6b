// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/rules.c - one runtime rule (file, exec, net, socket, syscall) or
 * one admission rule, with the decisions each kind accepts.
 */
#include "policy/rules.h"
#include "policy/values.h"
#include "common.h"
#include "dns/names.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const struct kgp_name_bits file_ops[] = {
	{ "read", KG_OP_BIT(KG_OP_READ) },
	{ "write", KG_OP_BIT(KG_OP_WRITE) },
	{ "create", KG_OP_BIT(KG_OP_CREATE) },
	{ "unlink", KG_OP_BIT(KG_OP_UNLINK) },
	{ "rename", KG_OP_BIT(KG_OP_RENAME) },
	{ "link", KG_OP_BIT(KG_OP_LINK) },
	{ "exec", KG_OP_BIT(KG_OP_EXEC) },
	{ "mkdir", KG_OP_BIT(KG_OP_CREATE) },
	{ "rmdir", KG_OP_BIT(KG_OP_UNLINK) },
	{ "truncate", KG_OP_BIT(KG_OP_WRITE) },
	{ NULL, 0 },
};

static const struct kgp_name_bits net_ops[] = {
	{ "connect", KG_NET_OP_CONNECT },
	{ "send", KG_NET_OP_SEND },
	{ "bind", KG_NET_OP_BIND },
	{ NULL, 0 },
};

#define FAM(af) (1ull << (af))
static const struct kgp_name_bits socket_families[] = {
	{ "unix", FAM(AF_UNIX) },
	{ "inet", FAM(AF_INET) },
	{ "inet6", FAM(AF_INET6) },
	{ "netlink", FAM(AF_NETLINK) },
	{ "packet", FAM(AF_PACKET) },
	{ "vsock", FAM(AF_VSOCK) },
	{ "bluetooth", FAM(AF_BLUETOOTH) },
	{ "can", FAM(AF_CAN) },
	{ "alg", FAM(AF_ALG) },
	{ "key", FAM(AF_KEY) },
	{ "tipc", FAM(AF_TIPC) },
	{ "rds", FAM(AF_RDS) },
	{ "llc", FAM(AF_LLC) },
	{ "xdp", FAM(AF_XDP) },
	{ "appletalk", FAM(AF_APPLETALK) },
	{ "x25", FAM(AF_X25) },
	{ "ax25", FAM(AF_AX25) },
	{ "qipcrtr", FAM(AF_QIPCRTR) },
	{ "smc", FAM(AF_SMC) },
	{ "mctp", FAM(AF_MCTP) },
	{ NULL, 0 },
};

/* ---- runtime rules ------------------------------------------------------ */

/* deny/require_approval on an object also refuses moving or unlinking it, so
 * a rule bound to an inode cannot be escaped by renaming or hard-linking it
 * elsewhere (see "Implicit protections" in policies/README.md). */
#define KG_IDENTITY_OPS (KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_LINK) | \
			 KG_OP_BIT(KG_OP_UNLINK))

bool kgp_protects_identity(enum kg_decision d)
{
	return d == KG_DEC_DENY || d == KG_DEC_REQUIRE_APPROVAL;
}

/* path or prefix (exactly one) */
static int parse_path_selector(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	json_t *path = json_object_get(obj, "path"), *prefix = json_object_get(obj, "prefix");
	int r;

	if (path && prefix) {
		kgp_push_key(c, "prefix");
		r = kgp_perr(c, "give either 'path' or 'prefix', not both");
		kgp_pop(c);
		return r;
	}
	if (!path && !prefix)
		return kgp_perr(c, "missing required field 'path' or 'prefix'");
	kgp_push_key(c, path ? "path" : "prefix");
	r = kgp_value_path(c, path ? path : prefix, &rule->path);
	kgp_pop(c);
	rule->prefix = !path;
	return r;
}

static int parse_file(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "path", "prefix", "ops", NULL };

	if (kgp_check_keys(c, obj, keys) || parse_path_selector(c, obj, rule) ||
	    kgp_parse_ops(c, obj, "ops", file_ops, true, &rule->ops))
		return -1;
	return 0;
}

static int parse_exec(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "path", "prefix", NULL };

	if (kgp_check_keys(c, obj, keys) || parse_path_selector(c, obj, rule))
		return -1;
	rule->ops = KG_OP_BIT(KG_OP_EXEC);
	return 0;
}

static int parse_net_unix(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const inet_keys[] = { "cidr", "host", "allow_private", "ports",
						 "proto", "ops", NULL };
	json_t *unix_path = json_object_get(obj, "unix");
	json_t *abstract = json_object_get(obj, "unix_abstract");
	const char *const *k;
	const char *name;
	int r;

	for (k = inet_keys; *k; k++) {
		if (json_object_get(obj, *k) || (unix_path && abstract)) {
			kgp_push_key(c, unix_path && abstract ? "unix_abstract" : *k);
			r = kgp_perr(c, "'%s' cannot be combined with '%s'",
				     unix_path ? "unix" : "unix_abstract",
				     unix_path && abstract ? "unix_abstract" : *k);
			kgp_pop(c);
			return r;
		}
	}
	rule->kind = KG_RULE_UNIX;
	rule->ops = KG_OP_BIT(KG_OP_UNIX_CONNECT);
	if (unix_path) {
		kgp_push_key(c, "unix");
		r = kgp_value_path(c, unix_path, &rule->path);
		kgp_pop(c);
		return r;
	}
	kgp_push_key(c, "unix_abstract");
	if (kgp_expect_type(c, abstract, JSON_STRING, "a string"))
		r = -1;
	else if ((name = json_string_value(abstract))[0] == '\0' ||
		 json_string_length(abstract) >= KG_UNIX_NAME_MAX)
		r = kgp_perr(c, "abstract socket name must be 1-%d bytes", KG_UNIX_NAME_MAX - 1);
	else if (strlen(name) != json_string_length(abstract))
		r = kgp_perr(c, "abstract socket name contains a NUL character");
	else if (kgp_has_control(name))
		r = kgp_perr_control(c, "abstract socket name contains", name);
	else if (!(rule->unix_abstract = strdup(name)))
		r = kgp_oom(c);
	else
		r = 0;
	kgp_pop(c);
	return r;
}

/* ports, proto and ops of an inet rule (cidr or host) */
static int parse_net_ports_proto_ops(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	json_t *v, *ports;
	const char *proto;
	size_t i;
	int r = 0;

	if (kgp_get_array(c, obj, "ports", &ports, KG_NET_ENTS))
		return -1;
	if (ports) {
		rule->ports = calloc(json_array_size(ports), sizeof(*rule->ports));
		if (!rule->ports)
			return kgp_oom(c);
		kgp_push_key(c, "ports");
		json_array_foreach(ports, i, v) {
			kgp_push_index(c, i);
			r = kgp_value_port(c, v, &rule->ports[i].lo, &rule->ports[i].hi);
			kgp_pop(c);
			if (r)
				break;
			rule->nports++;
		}
		kgp_pop(c);
		if (r)
			return r;
	}
	if (kgp_get_string(c, obj, "proto", &proto, 16))
		return -1;
	if (!proto || !strcmp(proto, "any")) {
		rule->proto = 0;
	} else if (!strcmp(proto, "tcp")) {
		rule->proto = 6;
	} else if (!strcmp(proto, "udp")) {
		rule->proto = 17;
	} else {
		kgp_push_key(c, "proto");
		r = kgp_perr(c, "unknown proto '%s' (expected one of tcp, udp, any)", proto);
		kgp_pop(c);
		return r;
	}
	rule->ops = KG_NET_OP_CONNECT | KG_NET_OP_SEND;
	return kgp_parse_ops(c, obj, "ops", net_ops, false, &rule->ops);
}

/* "host": a name or "*.name" (dns/names.h); "allow_private": whether the
 * resolver may learn loopback, private or link-local answers for it */
static int parse_net_host(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	char norm[KG_HOST_MAX + 1], why[256];
	json_t *v = json_object_get(obj, "host"), *priv;
	int r;

	if (json_object_get(obj, "cidr")) {
		kgp_push_key(c, "cidr");
		r = kgp_perr(c, "'host' cannot be combined with 'cidr' (one selector per rule)");
		kgp_pop(c);
		return r;
	}
	rule->kind = KG_RULE_HOST;
	kgp_push_key(c, "host");
	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		r = -1;
	else if (strlen(json_string_value(v)) != json_string_length(v))
		r = kgp_perr(c, "host name contains a NUL character");
	else if (kgp_has_control(json_string_value(v)))
		r = kgp_perr_control(c, "host name contains", json_string_value(v));
	else if (kg_host_pattern_normalize(json_string_value(v), norm, why, sizeof(why)))
		r = kgp_perr(c, "host name '%s' %s", json_string_value(v), why);
	else if (!(rule->host = strdup(norm)))
		r = kgp_oom(c);
	else
		r = 0;
	kgp_pop(c);
	if (r)
		return r;
	priv = json_object_get(obj, "allow_private");
	if (priv) {
		kgp_push_key(c, "allow_private");
		r = kgp_expect_type(c, priv, JSON_TRUE, "true or false");
		kgp_pop(c);
		if (r)
			return -1;
		rule->allow_private = json_is_true(priv);
	}
	return parse_net_ports_proto_ops(c, obj, rule);
}

static int parse_net(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "cidr", "host", "allow_private", "ports", "proto",
					    "ops", "unix", "unix_abstract", NULL };
	json_t *v;
	int r;

	if (kgp_check_keys(c, obj, keys))
		return -1;
	if (json_object_get(obj, "unix") || json_object_get(obj, "unix_abstract"))
		return parse_net_unix(c, obj, rule);
	if (json_object_get(obj, "host"))
		return parse_net_host(c, obj, rule);
	if (json_object_get(obj, "allow_private")) {
		kgp_push_key(c, "allow_private");
		r = kgp_perr(c, "'allow_private' is only valid with 'host'");
		kgp_pop(c);
		return r;
	}
	if (kgp_require(c, obj, "cidr", &v))
		return -1;
	kgp_push_key(c, "cidr");
	r = kgp_value_cidr(c, v, rule);
	kgp_pop(c);
	if (r)
		return r;
	return parse_net_ports_proto_ops(c, obj, rule);
}

static int parse_socket(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "families", "allow_raw", "allow_icmp", NULL };
	json_t *arr;
	int r;

	if (c->socket_rule)
		return kgp_perr(c, "only one socket rule per policy (already given by rule '%s')",
				c->socket_rule->id);
	if (kgp_check_keys(c, obj, keys) || kgp_require(c, obj, "families", &arr) ||
	    kgp_get_array(c, obj, "families", &arr, 64) ||
	    kgp_get_bool(c, obj, "allow_raw", &rule->allow_raw) ||
	    kgp_get_bool(c, obj, "allow_icmp", &rule->allow_icmp))
		return -1;
	rule->allow_icmp_set = json_object_get(obj, "allow_icmp") != NULL;
	kgp_push_key(c, "families");
	r = kgp_value_name_bits(c, arr, socket_families, "family", &rule->families);
	kgp_pop(c);
	c->socket_rule = rule;
	return r;
}

static const struct { const char *name; int value; } errno_names[] = {
	{ "EPERM", EPERM }, { "EACCES", EACCES }, { "ENOSYS", ENOSYS },
	{ "EINVAL", EINVAL }, { "ENOENT", ENOENT }, { "EOPNOTSUPP", EOPNOTSUPP },
	{ "ENOTSUP", ENOTSUP }, { "EAGAIN", EAGAIN }, { "EBUSY", EBUSY },
	{ "EROFS", EROFS }, { "ENOMEM", ENOMEM }, { "EEXIST", EEXIST },
	{ "EAFNOSUPPORT", EAFNOSUPPORT }, { "EPROTONOSUPPORT", EPROTONOSUPPORT },
};

static int value_errno(struct kgp_ctx *c, json_t *v, int *out)
{
	size_t i;

	if (json_is_integer(v)) {
		uint64_t e;

		if (kgp_value_uint(c, v, 1, 4095, &e))
			return -1;
		*out = (int)e;
		return 0;
	}
	if (kgp_expect_type(c, v, JSON_STRING, "an errno name or number"))
		return -1;
	for (i = 0; i < ARRAY_SIZE(errno_names); i++) {
		if (!strcmp(errno_names[i].name, json_string_value(v))) {
			*out = errno_names[i].value;
			return 0;
		}
	}
	return kgp_perr(c, "unknown errno '%s' (expected a name like EPERM, EACCES, ENOSYS, "
			   "or a number 1-4095)", json_string_value(v));
}

static int parse_syscall_arg(struct kgp_ctx *c, json_t *obj, struct kg_syscall_arg *arg)
{
	static const char *const keys[] = { "index", "op", "value", "mask", NULL };
	static const struct { const char *name; int op; } cmp[] = {
		{ "eq", SCMP_CMP_EQ }, { "ne", SCMP_CMP_NE }, { "lt", SCMP_CMP_LT },
		{ "le", SCMP_CMP_LE }, { "gt", SCMP_CMP_GT }, { "ge", SCMP_CMP_GE },
		{ "masked_eq", SCMP_CMP_MASKED_EQ },
	};
	uint64_t index = 0;
	const char *op;
	json_t *v;
	size_t i;
	int r;

	if (kgp_expect_type(c, obj, JSON_OBJECT, "an object") || kgp_check_keys(c, obj, keys) ||
	    kgp_require(c, obj, "index", &v) || kgp_require(c, obj, "op", &v) ||
	    kgp_require(c, obj, "value", &v) || kgp_get_uint(c, obj, "index", 0, 5, &index) ||
	    kgp_get_string(c, obj, "op", &op, 16) ||
	    kgp_get_uint(c, obj, "value", 0, INT64_MAX, &arg->value))
		return -1;
	arg->index = (unsigned int)index;
	arg->op = -1;
	for (i = 0; i < ARRAY_SIZE(cmp); i++)
		if (!strcmp(cmp[i].name, op))
			arg->op = cmp[i].op;
	kgp_push_key(c, "op");
	r = arg->op < 0 ? kgp_perr(c, "unknown comparison '%s' (expected one of eq, ne, lt, "
				      "le, gt, ge, masked_eq)", op) : 0;
	kgp_pop(c);
	if (r)
		return r;
	if (arg->op == SCMP_CMP_MASKED_EQ) {
		if (kgp_require(c, obj, "mask", &v) ||
		    kgp_get_uint(c, obj, "mask", 1, INT64_MAX, &arg->mask))
			return -1;
	} else if (json_object_get(obj, "mask")) {
		kgp_push_key(c, "mask");
		r = kgp_perr(c, "'mask' is only valid with op 'masked_eq'");
		kgp_pop(c);
		return r;
	}
	return 0;
}

static int parse_syscall(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "names", "args", "errno", NULL };
	json_t *names, *args, *v;
	size_t i;
	int r = 0;

	if (kgp_check_keys(c, obj, keys) || kgp_require(c, obj, "names", &names) ||
	    kgp_get_array(c, obj, "names", &names, 512) || kgp_get_array(c, obj, "args", &args, 6))
		return -1;
	rule->syscalls = calloc(json_array_size(names), sizeof(*rule->syscalls));
	if (!rule->syscalls)
		return kgp_oom(c);
	kgp_push_key(c, "names");
	json_array_foreach(names, i, v) {
		kgp_push_index(c, i);
		if (kgp_expect_type(c, v, JSON_STRING, "a string"))
			r = -1;
		else if (seccomp_syscall_resolve_name(json_string_value(v)) == __NR_SCMP_ERROR)
			r = kgp_perr(c, "unknown syscall '%s'", json_string_value(v));
		else if (!(rule->syscalls[i] = strdup(json_string_value(v))))
			r = kgp_oom(c);
		else
			rule->nsyscalls++;
		kgp_pop(c);
		if (r)
			break;
	}
	kgp_pop(c);
	if (r)
		return r;
	if (args) {
		rule->args = calloc(json_array_size(args), sizeof(*rule->args));
		if (!rule->args)
			return kgp_oom(c);
		kgp_push_key(c, "args");
		json_array_foreach(args, i, v) {
			kgp_push_index(c, i);
			r = parse_syscall_arg(c, v, &rule->args[i]);
			kgp_pop(c);
			if (r)
				break;
			rule->nargs++;
		}
		kgp_pop(c);
		if (r)
			return r;
	}
	rule->errno_value = EPERM;
	v = json_object_get(obj, "errno");
	if (v) {
		kgp_push_key(c, "errno");
		if (rule->decision != KG_DEC_DENY)
			r = kgp_perr(c, "'errno' is only valid with decision 'deny'");
		else
			r = value_errno(c, v, &rule->errno_value);
		kgp_pop(c);
	}
	return r;
}

static const struct {
	const char *key;
	enum kg_rule_kind kind;
	uint32_t decisions;
	int (*parse)(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule);
} selectors[] = {
	{ "file", KG_RULE_FILE, DECS_OBJECT, parse_file },
	{ "exec", KG_RULE_EXEC, DECS_OBJECT, parse_exec },
	{ "net", KG_RULE_NET, DECS_OBJECT, parse_net },
	{ "socket", KG_RULE_SOCKET, DECS_SOCKET, parse_socket },
	{ "syscall", KG_RULE_SYSCALL, DECS_SYSCALL, parse_syscall },
};

static int parse_rule_common(struct kgp_ctx *c, json_t *obj, char *id, char **reason)
{
	const char *s;
	json_t *v;
	int r;

	if (kgp_require(c, obj, "id", &v))
		return -1;
	kgp_push_key(c, "id");
	r = kgp_value_id(c, v, id, "rule id");
	kgp_pop(c);
	if (r)
		return r;
	c->rule_id = id;
	if (kgp_get_string(c, obj, "reason", &s, 1024))
		return -1;
	if (s && !(*reason = strdup(s)))
		return kgp_oom(c);
	return 0;
}

/* throttle object present iff decision is throttle */
static int parse_rule_throttle(struct kgp_ctx *c, json_t *obj, enum kg_decision d,
			       uint64_t *rate, uint64_t *burst)
{
	json_t *t;
	int r;

	if (kgp_get_object(c, obj, "throttle", &t))
		return -1;
	if (d == KG_DEC_THROTTLE && !t) {
		kgp_push_key(c, "throttle");
		r = kgp_perr(c, "decision 'throttle' needs a 'throttle' object "
				"{\"rate_per_sec\": N, \"burst\": N}");
		kgp_pop(c);
		return r;
	}
	if (!t)
		return 0;
	kgp_push_key(c, "throttle");
	r = d != KG_DEC_THROTTLE
		? kgp_perr(c, "'throttle' is only valid with decision 'throttle'")
		: kgp_parse_throttle(c, t, rate, burst);
	kgp_pop(c);
	return r;
}

int kgp_parse_runtime_rule(struct kgp_ctx *c, json_t *obj, struct kg_rule *rule)
{
	static const char *const keys[] = { "id", "decision", "reason", "throttle", "file",
					    "exec", "net", "socket", "syscall", NULL };
	size_t k, found = ARRAY_SIZE(selectors);
	json_t *sel = NULL, *v;
	char what[32];
	int r;

	if (kgp_expect_type(c, obj, JSON_OBJECT, "a rule object") ||
	    parse_rule_common(c, obj, rule->id, &rule->reason) ||
	    kgp_check_keys(c, obj, keys))
		return -1;
	for (k = 0; k < ARRAY_SIZE(selectors); k++) {
		json_t *s = json_object_get(obj, selectors[k].key);

		if (!s)
			continue;
		if (sel) {
			kgp_push_key(c, selectors[k].key);
			r = kgp_perr(c, "a rule has exactly one of file, exec, net, socket, "
					"syscall (found '%s' and '%s')",
				     selectors[found].key, selectors[k].key);
			kgp_pop(c);
			return r;
		}
		sel = s;
		found = k;
	}
	if (!sel)
		return kgp_perr(c, "a rule needs one of file, exec, net, socket, syscall");
	rule->kind = selectors[found].kind;
	if (kgp_require(c, obj, "decision", &v))
		return -1;
	snprintf(what, sizeof(what), "%s rules", selectors[found].key);
	kgp_push_key(c, "decision");
	r = kgp_value_decision(c, v, selectors[found].decisions, what, &rule->decision);
	kgp_pop(c);
	if (r)
		return r;
	kgp_push_key(c, selectors[found].key);
	r = kgp_expect_type(c, sel, JSON_OBJECT, "an object") ||
	    selectors[found].parse(c, sel, rule) ? -1 : 0;
	kgp_pop(c);
	if (r)
		return r;
	if (parse_rule_throttle(c, obj, rule->decision, &rule->rate_per_sec, &rule->burst))
		return -1;
	if (rule->path && kgp_protects_identity(rule->decision))
		rule->ops |= KG_IDENTITY_OPS;
	return 0;
}

/* ---- admission rules ----------------------------------------------------- */

#define MAX_MATCH_LABELS	32

/* one label glob (current path: the value) */
static int value_label_glob(struct kgp_ctx *c, json_t *v, struct kg_label_match *m)
{
	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	if (json_string_length(v) == 0 || json_string_length(v) > 255)
		return kgp_perr(c, "must be 1-255 bytes long");
	if (kgp_has_control(json_string_value(v)))
		return kgp_perr_control(c, "contains", json_string_value(v));
	if (!(m->globs[m->nglobs] = strdup(json_string_value(v))))
		return kgp_oom(c);
	m->nglobs++;
	return 0;
}

/* One label's globs: a string, or a non-empty array of strings (current
 * path: labels). */
static int parse_label_globs(struct kgp_ctx *c, json_t *labels, const char *key,
			     struct kg_label_match *m)
{
	json_t *v = json_object_get(labels, key), *arr, *g;
	size_t i;
	int r = 0;

	if (!json_is_array(v)) {
		kgp_push_key(c, key);
		if (!json_is_string(v))
			r = kgp_perr(c, "expected a string or an array of strings, got %s",
				     kgp_json_type_name(v));
		else if (!(m->globs = calloc(1, sizeof(*m->globs))))
			r = kgp_oom(c);
		else
			r = value_label_glob(c, v, m);
		kgp_pop(c);
		return r;
	}
	if (kgp_get_array(c, labels, key, &arr, 256))
		return -1;
	if (!(m->globs = calloc(json_array_size(arr), sizeof(*m->globs))))
		return kgp_oom(c);
	kgp_push_key(c, key);
	json_array_foreach(arr, i, g) {
		kgp_push_index(c, i);
		r = value_label_glob(c, g, m);
		kgp_pop(c);
		if (r)
			break;
	}
	kgp_pop(c);
	return r;
}

/* match.labels: {"KEY": "GLOB" | ["GLOB", ...], ...}; every KEY must be
 * among the request's labels with a value matching one of its globs. */
static int parse_match_labels(struct kgp_ctx *c, json_t *obj, struct kg_admission_rule *a)
{
	const char *key;
	json_t *labels, *v;
	int r = 0;

	if (kgp_get_object(c, obj, "labels", &labels))
		return -1;
	if (!labels)
		return 0;
	kgp_push_key(c, "labels");
	if (json_object_size(labels) == 0)
		r = kgp_perr(c, "empty labels (omit 'labels' instead)");
	else if (json_object_size(labels) > MAX_MATCH_LABELS)
		r = kgp_perr(c, "too many labels (%zu > %d)", json_object_size(labels),
			     MAX_MATCH_LABELS);
	else if (!(a->labels = calloc(json_object_size(labels), sizeof(*a->labels))))
		r = kgp_oom(c);
	json_object_foreach(labels, key, v) {
		struct kg_label_match *m;

		if (r)
			break;
		/* errors about a name point at the labels object: the name
		 * itself would put control characters into the field */
		if (strlen(key) == 0 || strlen(key) > 128) {
			r = kgp_perr(c, "a label name must be 1-128 bytes long");
			break;
		}
		if (kgp_has_control(key)) {
			r = kgp_perr_control(c, "the label name contains", key);
			break;
		}
		m = &a->labels[a->nlabels];
		if (!(m->key = strdup(key))) {
			r = kgp_oom(c);
			break;
		}
		a->nlabels++;
		r = parse_label_globs(c, labels, key, m);
	}
	kgp_pop(c);
	return r;
}

static int parse_match(struct kgp_ctx *c, json_t *obj, struct kg_admission_rule *a)
{
	static const char *const keys[] = { "uids", "roles", "tenants", "topics",
					    "risk_tags", "labels", NULL };

	if (kgp_check_keys(c, obj, keys) ||
	    kgp_parse_id_list(c, obj, "uids", &a->uids, &a->nuids, false) ||
	    kgp_parse_str_list(c, obj, "roles", &a->roles, &a->nroles) ||
	    kgp_parse_str_list(c, obj, "tenants", &a->tenants, &a->ntenants) ||
	    kgp_parse_str_list(c, obj, "topics", &a->topics, &a->ntopics) ||
	    kgp_parse_str_list(c, obj, "risk_tags", &a->risk_tags, &a->nrisk_tags) ||
	    parse_match_labels(c, obj, a))
		return -1;
	return 0;
}

int kgp_parse_admission_rule(struct kgp_ctx *c, json_t *obj, struct kg_admission_rule *a)
{
	static const char *const keys[] = { "id", "match", "decision", "reason",
					    "constraints", "throttle", NULL };
	json_t *m, *v, *cons;
	int r;

	if (kgp_expect_type(c, obj, JSON_OBJECT, "a rule object") ||
	    parse_rule_common(c, obj, a->id, &a->reason) ||
	    kgp_check_keys(c, obj, keys) || kgp_require(c, obj, "decision", &v))
		return -1;
	kgp_push_key(c, "decision");
	r = kgp_value_decision(c, v, DECS_ADMISSION, "admission rules", &a->decision);
	kgp_pop(c);
	if (r || kgp_get_object(c, obj, "match", &m))
		return -1;
	if (m) {
		kgp_push_key(c, "match");
		r = parse_match(c, m, a);
		kgp_pop(c);
		if (r)
			return r;
	}
	if (kgp_get_object(c, obj, "constraints", &cons))
		return -1;
	if (!cons && a->decision == KG_DEC_ALLOW_WITH_CONSTRAINTS) {
		kgp_push_key(c, "constraints");
		r = kgp_perr(c, "decision 'allow_with_constraints' needs a 'constraints' object");
		kgp_pop(c);
		return r;
	}
	if (cons) {
		kgp_push_key(c, "constraints");
		r = a->decision != KG_DEC_ALLOW_WITH_CONSTRAINTS
			? kgp_perr(c, "'constraints' is only valid with decision "
				      "'allow_with_constraints'")
			: kgp_parse_constraints(c, cons, &a->constraints);
		kgp_pop(c);
		if (r)
			return r;
	}
	return parse_rule_throttle(c, obj, a->decision, &a->rate_per_sec, &a->burst);
}

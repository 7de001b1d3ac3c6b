// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/names.c - names of decisions, operations, classes and rule kinds;
 * a rule from the number the kernel reports.
 */
#include "policy/names.h"

#include <string.h>

static const char *const decision_names[KG_DEC_MAX] = {
	[KG_DEC_NONE] = "none",
	[KG_DEC_ALLOW] = "allow",
	[KG_DEC_AUDIT] = "audit",
	[KG_DEC_DENY] = "deny",
	[KG_DEC_REQUIRE_APPROVAL] = "require_approval",
	[KG_DEC_THROTTLE] = "throttle",
	[KG_DEC_COOLDOWN] = "cooldown",
	[KG_DEC_ALLOW_WITH_CONSTRAINTS] = "allow_with_constraints",
	[KG_DEC_NO_OP] = "no_op",
};

const char *kg_decision_name(enum kg_decision d)
{
	if ((unsigned int)d < KG_DEC_MAX && decision_names[d])
		return decision_names[d];
	return "unknown";
}

int kg_decision_parse(const char *s, enum kg_decision *out)
{
	int d;

	if (!s)
		return -1;
	for (d = KG_DEC_ALLOW; d < KG_DEC_MAX; d++) {
		if (!strcmp(s, decision_names[d])) {
			*out = d;
			return 0;
		}
	}
	return -1;
}

static const char *const op_names[KG_OP_MAX] = {
	[KG_OP_READ] = "read",
	[KG_OP_WRITE] = "write",
	[KG_OP_CREATE] = "create",
	[KG_OP_UNLINK] = "unlink",
	[KG_OP_RENAME] = "rename",
	[KG_OP_LINK] = "link",
	[KG_OP_EXEC] = "exec",
	[KG_OP_UNIX_CONNECT] = "unix_connect",
	[KG_OP_NET_CONNECT] = "net_connect",
	[KG_OP_NET_SEND] = "net_send",
	[KG_OP_SOCKET_CREATE] = "socket_create",
	[KG_OP_BPF] = "bpf",
	[KG_OP_PTRACE] = "ptrace",
	[KG_OP_SIGNAL] = "signal",
	[KG_OP_MOUNT] = "mount",
	[KG_OP_USERNS] = "userns",
	[KG_OP_MODULE] = "module",
	[KG_OP_CGROUP_ESCAPE] = "cgroup_escape",
	[KG_OP_SYSCALL] = "syscall",
	[KG_OP_ADMISSION] = "admission",
	[KG_OP_KGATE_STATE] = "kgate_state",
	[KG_OP_NET_BIND] = "net_bind",
	[KG_OP_SYSTEM] = "system",
};

const char *kg_op_name(enum kg_op op)
{
	if ((unsigned int)op < KG_OP_MAX && op_names[op])
		return op_names[op];
	return "unknown";
}

const char *kg_class_name(enum kg_class c)
{
	static const char *const names[KG_CLASS_MAX] = {
		[KG_CLASS_FILE] = "file",
		[KG_CLASS_EXEC] = "exec",
		[KG_CLASS_NET] = "net",
		[KG_CLASS_UNIX] = "unix",
	};

	if ((unsigned int)c < KG_CLASS_MAX)
		return names[c];
	return "unknown";
}

const char *kg_rule_kind_name(enum kg_rule_kind k)
{
	switch (k) {
	case KG_RULE_FILE: return "file";
	case KG_RULE_EXEC: return "exec";
	case KG_RULE_NET: return "net";
	case KG_RULE_HOST: return "net";
	case KG_RULE_UNIX: return "unix";
	case KG_RULE_SOCKET: return "socket";
	case KG_RULE_SYSCALL: return "syscall";
	}
	return "unknown";
}

const struct kg_rule *kg_policy_rule_by_num(const struct kg_policy_doc *doc, uint32_t num)
{
	if (!doc || num == 0 || num > doc->nrules)
		return NULL;
	return &doc->rules[num - 1];
}

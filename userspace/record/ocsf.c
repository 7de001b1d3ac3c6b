// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/ocsf.c - audit records as OCSF 1.1.0 events (see ocsf.h).
 *
 * Class and activity ids are those of the OCSF 1.1.0 schema
 * (schema.ocsf.io/1.1.0); type_uid = class_uid * 100 + activity_id. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/audit.h"
#include "record/ocsf.h"

enum {
	CAT_UNCATEGORIZED = 0, CAT_SYSTEM = 1, CAT_IAM = 3, CAT_NETWORK = 4,
};

enum {
	CLASS_BASE = 0,
	CLASS_FILE = 1001,		/* File System Activity */
	CLASS_KERNEL_EXT = 1002,	/* Kernel Extension Activity */
	CLASS_PROCESS = 1007,		/* Process Activity */
	CLASS_AUTHZ = 3003,		/* Authorize Session */
	CLASS_NETWORK = 4001,		/* Network Activity */
	CLASS_DNS = 4003,		/* DNS Activity */
};

#define OTHER 99

struct cls {
	int class_uid, category_uid;
	const char *class_name, *category_name;
};

static const struct cls classes[] = {
	{ CLASS_BASE, CAT_UNCATEGORIZED, "Base Event", "Uncategorized" },
	{ CLASS_FILE, CAT_SYSTEM, "File System Activity", "System Activity" },
	{ CLASS_KERNEL_EXT, CAT_SYSTEM, "Kernel Extension Activity", "System Activity" },
	{ CLASS_PROCESS, CAT_SYSTEM, "Process Activity", "System Activity" },
	{ CLASS_AUTHZ, CAT_IAM, "Authorize Session", "Identity & Access Management" },
	{ CLASS_NETWORK, CAT_NETWORK, "Network Activity", "Network Activity" },
	{ CLASS_DNS, CAT_NETWORK, "DNS Activity", "Network Activity" },
};

/* kgate op -> class and activity */
struct opmap {
	const char *op;
	int class_uid, activity_id;
	const char *activity_name;
};

static const struct opmap ops[] = {
	/* files (BPF LSM, Landlock, the mount namespace) */
	{ "read", CLASS_FILE, 2, "Read" },
	{ "write", CLASS_FILE, 3, "Update" },
	{ "create", CLASS_FILE, 1, "Create" },
	{ "unlink", CLASS_FILE, 4, "Delete" },
	{ "rename", CLASS_FILE, 5, "Rename" },
	{ "link", CLASS_FILE, OTHER, "Link" },
	{ "file_open", CLASS_FILE, 14, "Open" },
	{ "mount", CLASS_FILE, 12, "Mount" },
	{ "kgate_state", CLASS_FILE, OTHER, "Other" },
	/* processes */
	{ "exec", CLASS_PROCESS, 1, "Launch" },
	{ "ptrace", CLASS_PROCESS, 3, "Open" },
	{ "signal", CLASS_PROCESS, OTHER, "Signal" },
	{ "syscall", CLASS_PROCESS, OTHER, "Syscall" },
	{ "bpf", CLASS_PROCESS, OTHER, "BPF" },
	{ "userns", CLASS_PROCESS, OTHER, "User Namespace" },
	{ "cgroup_escape", CLASS_PROCESS, OTHER, "Cgroup Escape" },
	{ "system", CLASS_PROCESS, OTHER, "System" },
	{ "admission", CLASS_PROCESS, 1, "Launch" },
	{ "module", CLASS_KERNEL_EXT, 1, "Load" },
	/* network */
	{ "net_connect", CLASS_NETWORK, 1, "Open" },
	{ "unix_connect", CLASS_NETWORK, 1, "Open" },
	{ "net_send", CLASS_NETWORK, 6, "Traffic" },
	{ "net_bind", CLASS_NETWORK, OTHER, "Bind" },
	{ "socket_create", CLASS_NETWORK, OTHER, "Socket Create" },
	{ "dns_resolve", CLASS_DNS, 1, "Query" },
};

static const struct cls *class_of(int uid)
{
	size_t i;

	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (classes[i].class_uid == uid)
			return &classes[i];
	return &classes[0];
}

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

static void set_int(json_t *o, const char *k, json_int_t v)
{
	json_object_set_new(o, k, json_integer(v));
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s && s[1] ? s + 1 : path;
}

/* "host:port/proto", "[v6]:port/proto" -> endpoint + protocol */
static json_t *endpoint(const char *target, const char **proto_out)
{
	json_t *ep = json_object();
	char buf[512], *slash, *colon, *host = buf;

	*proto_out = NULL;
	if (!ep || !target)
		return ep;
	if (target[0] == '/' || target[0] == '@') {	/* a unix socket */
		set_str(ep, "name", target);
		return ep;
	}
	snprintf(buf, sizeof(buf), "%s", target);
	slash = strrchr(buf, '/');
	if (slash) {
		*slash = '\0';
		*proto_out = target + (slash - buf) + 1;
	}
	colon = strrchr(buf, ':');
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		host = buf + 1;
		if (close) {
			*close = '\0';
			colon = close[1] == ':' ? close + 1 : NULL;
		}
	} else if (colon && strchr(buf, ':') != colon) {
		colon = NULL;	/* a bare IPv6 address */
	}
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);

		*colon = '\0';
		if (!*end && port >= 0 && port <= 65535)
			set_int(ep, "port", port);
	}
	set_str(ep, "ip", host);
	return ep;
}

static json_t *process_of(json_t *subj)
{
	json_t *p = json_object();
	json_t *pid = json_object_get(subj, "pid"), *tid = json_object_get(subj, "tid");
	const char *exe = sget(subj, "exe");

	if (!p)
		return NULL;
	if (pid)
		set_int(p, "pid", json_integer_value(pid));
	if (tid)
		set_int(p, "tid", json_integer_value(tid));
	set_str(p, "name", sget(subj, "comm"));
	if (exe)
		json_object_set_new(p, "file", json_pack("{s:s,s:s?,s:i}", "path", exe,
							 "name", base_name(exe), "type_id", 1));
	return p;
}

static json_t *user_of(json_t *actor)
{
	json_t *u = json_object(), *uid = json_object_get(actor, "uid");
	char buf[32];

	if (!u)
		return NULL;
	if (uid) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(uid));
		set_str(u, "uid", buf);
	}
	set_str(u, "name", sget(actor, "name"));
	return u;
}

/* what the control did: action_id (1 Allowed, 2 Denied), disposition_id
 * (1 Allowed, 2 Blocked, 8 Approved, 14 Delayed, 17 Logged, 25 Rejected),
 * status_id (1 Success, 2 Failure, 0 Unknown), severity_id */
struct outcome {
	int action_id, disposition_id, status_id, severity_id;
	const char *action, *disposition, *status, *severity;
};

static void outcome_of(json_t *rec, const char *type, struct outcome *o)
{
	const char *d = sget(rec, "decision"), *res = sget(json_object_get(rec, "extra"), "outcome");
	bool refused = eq(res, "refused") || eq(d, "deny");

	*o = (struct outcome){ 1, 1, 1, 1, "Allowed", "Allowed", "Success", "Informational" };
	if (eq(type, "approval")) {
		if (eq(d, "approved"))
			*o = (struct outcome){ 1, 8, 1, 1, "Allowed", "Approved", "Success", "Informational" };
		else if (eq(d, "denied"))
			*o = (struct outcome){ 2, 25, 2, 2, "Denied", "Rejected", "Failure", "Low" };
		else if (eq(d, "expired"))
			*o = (struct outcome){ 2, 2, 2, 2, "Denied", "Blocked", "Failure", "Low" };
		else
			*o = (struct outcome){ 2, 14, 0, 1, "Denied", "Delayed", "Unknown", "Informational" };
		return;
	}
	if (eq(type, "events_lost") || eq(type, "recovery")) {
		*o = (struct outcome){ 0, 0, 2, 4, "Unknown", "Unknown", "Failure", "High" };
		return;
	}
	if (eq(d, "require_approval") && !refused) {
		*o = (struct outcome){ 2, 14, 0, 2, "Denied", "Delayed", "Unknown", "Low" };
		return;
	}
	if (refused) {
		*o = (struct outcome){ 2, 2, 2, 3, "Denied", "Blocked", "Failure", "Medium" };
		return;
	}
	if (eq(d, "audit"))
		*o = (struct outcome){ 1, 17, 1, 1, "Allowed", "Logged", "Success", "Informational" };
}

json_t *kg_ocsf_event(json_t *rec, const char *line, size_t len, const char *host)
{
	const char *type = sget(rec, "type"), *op = sget(rec, "op"), *target = sget(rec, "target");
	const char *time_s = sget(rec, "time"), *trace = sget(rec, "trace");
	const char *act_name = "Other", *proto = NULL;
	json_t *ev = json_object(), *subj = json_object_get(rec, "subject");
	json_t *actor = json_object_get(rec, "actor"), *k, *meta, *u;
	int class_uid = CLASS_BASE, activity_id = OTHER;
	const struct cls *c;
	struct outcome o;
	uint64_t ns = 0;
	char type_name[128], *raw;
	size_t i;

	if (!ev)
		return NULL;
	if (eq(type, "decision") || eq(type, "admission")) {
		for (i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++) {
			if (!strcmp(ops[i].op, op)) {
				class_uid = ops[i].class_uid;
				activity_id = ops[i].activity_id;
				act_name = ops[i].activity_name;
				break;
			}
		}
		if (eq(type, "admission") || eq(op, "govern")) {
			class_uid = CLASS_PROCESS;
			activity_id = 1;
			act_name = "Launch";
		}
	} else if (eq(type, "job_start")) {
		class_uid = CLASS_PROCESS, activity_id = 1, act_name = "Launch";
	} else if (eq(type, "job_exit") || eq(type, "job_stop")) {
		class_uid = CLASS_PROCESS, activity_id = 2, act_name = "Terminate";
	} else if (eq(type, "approval")) {
		class_uid = CLASS_AUTHZ;
		if (eq(sget(rec, "decision"), "approved"))
			activity_id = 1, act_name = "Assign Privileges";
		else
			act_name = eq(sget(rec, "decision"), "requested") ? "Request" :
				   eq(sget(rec, "decision"), "denied") ? "Deny" : "Expire";
	} else {
		/* policy_change, controller, events_lost, recovery */
		act_name = type ? type : "Other";
	}
	c = class_of(class_uid);
	outcome_of(rec, type, &o);
	if (class_uid == CLASS_BASE)
		snprintf(type_name, sizeof(type_name), "Base Event: %s", act_name);
	else
		snprintf(type_name, sizeof(type_name), "%s: %s", c->class_name, act_name);

	set_int(ev, "class_uid", c->class_uid);
	set_str(ev, "class_name", c->class_name);
	set_int(ev, "category_uid", c->category_uid);
	set_str(ev, "category_name", c->category_name);
	set_int(ev, "activity_id", activity_id);
	set_str(ev, "activity_name", act_name);
	set_int(ev, "type_uid", (json_int_t)c->class_uid * 100 + activity_id);
	set_str(ev, "type_name", type_name);
	if (time_s && !kg_audit_parse_time(time_s, &ns))
		set_int(ev, "time", (json_int_t)(ns / 1000000));
	set_int(ev, "severity_id", o.severity_id);
	set_str(ev, "severity", o.severity);
	set_int(ev, "status_id", o.status_id);
	set_str(ev, "status", o.status);
	if (o.action_id) {
		set_int(ev, "action_id", o.action_id);
		set_str(ev, "action", o.action);
		set_int(ev, "disposition_id", o.disposition_id);
		set_str(ev, "disposition", o.disposition);
	}
	set_str(ev, "message", sget(rec, "reason"));

	meta = json_pack("{s:s,s:{s:s,s:s},s:s}", "version", KG_OCSF_VERSION, "product",
			 "name", "kgate", "vendor_name", "kgate", "log_name", "kgate-audit");
	if (meta) {
		json_t *seq = json_object_get(rec, "seq");

		set_str(meta, "uid", sget(rec, "hash"));
		if (seq)
			set_int(meta, "sequence", json_integer_value(seq));
		set_str(meta, "correlation_uid", trace);
		set_str(meta, "original_time", time_s);
		json_object_set_new(meta, "profiles", json_pack("[ss]", "host", "security_control"));
		json_object_set_new(ev, "metadata", meta);
	}
	if (host)
		json_object_set_new(ev, "device", json_pack("{s:s,s:i}", "hostname", host,
							    "type_id", 0));

	/* who and which process */
	k = json_object();
	if (k) {
		if (subj)
			json_object_set_new(k, "process", process_of(subj));
		if (actor && (u = user_of(actor)))
			json_object_set_new(k, "user", u);
		if (json_object_size(k))
			json_object_set_new(ev, "actor", k);
		else
			json_decref(k);
	}

	/* the object of the activity */
	switch (class_uid) {
	case CLASS_FILE:
		json_object_set_new(ev, "file", json_pack("{s:s?,s:s?,s:i}", "path", target,
							  "name", base_name(target), "type_id", 0));
		break;
	case CLASS_KERNEL_EXT:
		json_object_set_new(ev, "driver", json_pack("{s:{s:s?,s:s?,s:i}}", "file",
							    "path", target, "name",
							    base_name(target), "type_id", 0));
		break;
	case CLASS_PROCESS: {
		json_t *p = json_object();

		if (eq(op, "exec") && target) {
			json_object_set_new(p, "file", json_pack("{s:s,s:s?,s:i}", "path", target,
								 "name", base_name(target),
								 "type_id", 1));
			set_str(p, "name", base_name(target));
		} else if (eq(type, "job_start") || eq(type, "job_exit") || eq(type, "job_stop") ||
			   eq(type, "admission") || eq(op, "govern")) {
			set_str(p, "cmd_line", target);
			if (subj && json_object_get(subj, "pid"))
				set_int(p, "pid", json_integer_value(json_object_get(subj, "pid")));
			set_str(p, "name", sget(subj, "comm"));
		} else {
			set_str(p, "name", target);
		}
		json_object_set_new(ev, "process", p);
		break;
	}
	case CLASS_NETWORK: {
		json_t *ep = endpoint(target, &proto);

		json_object_set_new(ev, eq(op, "net_bind") ? "src_endpoint" : "dst_endpoint", ep);
		if (proto || eq(op, "unix_connect"))
			json_object_set_new(ev, "connection_info",
					    json_pack("{s:s,s:i,s:s}", "protocol_name",
						      proto ? proto : "unix", "direction_id",
						      eq(op, "net_bind") ? 1 : 2, "direction",
						      eq(op, "net_bind") ? "Inbound" : "Outbound"));
		break;
	}
	case CLASS_DNS: {
		json_t *extra = json_object_get(rec, "extra"), *ans = json_object_get(extra, "answers");
		json_t *q = json_pack("{s:s?}", "hostname", target);
		const char *rcode = sget(extra, "rcode");
		size_t j;
		json_t *a;

		set_str(q, "type", sget(extra, "qtype"));
		json_object_set_new(ev, "query", q);
		if (rcode)
			set_str(ev, "rcode", rcode);
		if (json_is_array(ans)) {
			json_t *arr = json_array();

			json_array_foreach(ans, j, a)
				if (json_is_string(a))
					json_array_append_new(arr, json_pack("{s:O}", "rdata", a));
			json_object_set_new(ev, "answers", arr);
		}
		break;
	}
	case CLASS_AUTHZ: {
		char priv[1024];

		/* the user whose job asked; the reviewer is the actor */
		u = actor ? user_of(actor) : json_object();
		json_object_set_new(ev, "user", u ? u : json_object());
		snprintf(priv, sizeof(priv), "%s %s", op ? op : "?", target ? target : "");
		json_object_set_new(ev, "privileges", json_pack("[s]", priv));
		break;
	}
	default:
		break;
	}

	/* what OCSF has no member for, as in the record */
	k = json_object();
	if (k) {
		json_t *pol = json_object_get(rec, "policy");

		set_str(k, "type", type);
		set_str(k, "op", op);
		set_str(k, "target", target);
		set_str(k, "decision", sget(rec, "decision"));
		set_str(k, "rule", sget(rec, "rule"));
		set_str(k, "mechanism", sget(rec, "mechanism"));
		set_str(k, "trace", trace);
		if (pol)
			json_object_set(k, "policy", pol);
		if (actor)
			set_str(k, "role", sget(actor, "role"));
		if (json_object_get(rec, "extra"))
			json_object_set(k, "extra", json_object_get(rec, "extra"));
		json_object_set_new(ev, "unmapped", json_pack("{s:o}", "kgate", k));
	}
	raw = strndup(line, len);
	if (raw) {
		json_object_set_new(ev, "raw_data", json_string(raw));
		free(raw);
	}
	return ev;
}

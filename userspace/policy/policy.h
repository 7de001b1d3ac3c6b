/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * policy.h - kgate policy: parse + validate JSON into struct kg_policy_doc.
 * The public API of userspace/policy/ (each .h there says what it owns):
 *   parse.c    loading a document: top-level members, rule lists, hash, free
 *   rules.c    one runtime or admission rule
 *   values.c   small values and objects (ids, paths, CIDRs, ports, limits)
 *   checks.c   checks across rules (ids, contradictions, host entries)
 *   context.c  the reader: path, errors located at it, typed getters
 *   locate.c   where a value is in the text (line, column)
 *   names.c    names of decisions, ops, classes, kinds; rule by number
 *   match.c    the reference matcher (precedence)
 *
 * The document is the single in-memory form every enforcer reads:
 *   - kernel/image.c compiles its file/exec/net/unix rules for the BPF maps,
 *   - seccomp.c builds the syscall filter from its syscall rules,
 *   - landlock.c expresses its file rules in degraded mode,
 *   - admission.c decides launches from its admission rules.
 * Numeric rule ids (rules[i].num == i + 1) are what the kernel reports;
 * kg_policy_rule_by_num() maps them back to the string id for the audit.
 */
#ifndef KGATE_POLICY_H
#define KGATE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "kgate.h"

#define KG_POLICY_VERSION	1
#define KG_POLICY_MAX_RULES	200000
#define KG_POLICY_MAX_BYTES	(64u << 20)
#define KG_ID_MAX		64	/* rule id length */
#define KG_HASH_HEX_LEN		64	/* sha256 hex */

enum kg_fail_mode { KG_FAIL_CLOSED = 0, KG_FAIL_OPEN = 1 };

enum kg_rule_kind {
	KG_RULE_FILE = 1,	/* file: path or prefix, ops */
	KG_RULE_EXEC,		/* exec: path or prefix (file rule with op exec) */
	KG_RULE_NET,		/* net: cidr, ports, proto, ops */
	KG_RULE_UNIX,		/* net.unix: socket path or abstract name */
	KG_RULE_SOCKET,		/* socket: allowed families */
	KG_RULE_SYSCALL,	/* syscall: names (+ arg conditions) */
	KG_RULE_HOST,		/* net: host name or *.suffix, ports, proto, ops */
};

struct kg_syscall_arg {		/* one seccomp argument comparison */
	unsigned int index;	/* 0..5 */
	int op;			/* enum scmp_compare */
	uint64_t value;
	uint64_t mask;		/* for SCMP_CMP_MASKED_EQ */
};

struct kg_constraints {
	bool present;
	uint64_t max_runtime_sec;	/* 0 = none */
	uint64_t max_procs;		/* pids.max, 0 = none */
	uint64_t memory_max;		/* bytes, 0 = none */
	uint64_t max_retries;		/* a failed dispatched job is relaunched at most
					 * this many times (POST /api/v1/jobs), 0 = none */
};

struct kg_rule {
	uint32_t num;			/* 1-based, what the kernel reports */
	char id[KG_ID_MAX + 1];
	enum kg_rule_kind kind;
	enum kg_decision decision;
	char *reason;			/* may be NULL */
	int line, column;		/* position in the source, for errors */

	/* file / exec / unix path */
	char *path;			/* absolute, canonical, ~ expanded */
	bool prefix;			/* subtree rule */
	uint32_t ops;			/* KG_OP_BIT mask (file) / KG_NET_OP_* (net) */

	/* net */
	int family;			/* AF_INET, AF_INET6 */
	uint8_t addr[16];		/* IPv4 as IPv4-mapped IPv6 */
	unsigned int prefixlen;		/* 0..128, in IPv6 space */
	struct { uint16_t lo, hi; } *ports;	/* NULL/0 = any port */
	size_t nports;
	uint8_t proto;			/* 0 any, 6 tcp, 17 udp */
	char *unix_abstract;		/* abstract name without the leading NUL */
	char *host;			/* net.host, normalised (dns/names.h) */
	bool allow_private;		/* host: learn loopback/private answers */

	/* socket */
	uint64_t families;		/* bit = AF_* allowed */
	bool allow_raw;
	bool allow_icmp, allow_icmp_set;	/* ICMP datagram ("ping") sockets */

	/* syscall */
	char **syscalls;
	size_t nsyscalls;
	struct kg_syscall_arg *args;
	size_t nargs;
	int errno_value;		/* for deny: EPERM unless given */

	/* throttle */
	uint64_t rate_per_sec, burst;
};

/* match.labels: the request's label `key` must be present and its value
 * match one of the fnmatch(3) globs (a glob without * ? [ is an exact value) */
struct kg_label_match {
	char *key;
	char **globs; size_t nglobs;
};

struct kg_admission_rule {
	char id[KG_ID_MAX + 1];
	enum kg_decision decision;
	char *reason;
	uint32_t *uids; size_t nuids;	/* empty = any */
	char **roles; size_t nroles;
	char **tenants; size_t ntenants;
	char **topics; size_t ntopics;	/* fnmatch globs */
	char **risk_tags; size_t nrisk_tags; /* all must be present */
	struct kg_label_match *labels; size_t nlabels; /* all must match */
	struct kg_constraints constraints;
	uint64_t rate_per_sec, burst;	/* throttle */
	int line, column;
};

struct kg_principals {		/* who may do something (SO_PEERCRED) */
	uint32_t *uids; size_t nuids;
	uint32_t *gids; size_t ngids;
};

struct kg_policy_doc {
	int version;
	char *name;
	char *source;			/* file name, for messages */
	enum kg_fail_mode fail_mode;
	enum kg_decision default_decision;	/* admission default */
	enum kg_decision class_default[KG_CLASS_MAX]; /* runtime defaults */
	bool require_full;		/* refuse to launch if any rule is unenforceable */
	/* capabilities granted back beyond what every job keeps (a bit per
	 * CAP_*, kernel/caps.h); 0 = none */
	uint64_t system_access;
	/* members of kernel/outside.h granted back by name in system_access (a
	 * bit per member); 0 = none */
	uint32_t outside_grant;

	struct kg_admission_rule *admission; size_t nadmission;
	struct kg_rule *rules; size_t nrules;
	struct kg_constraints constraints;	/* applied to every launch */

	/* approvals, cooldown */
	uint64_t approval_timeout_sec;
	uint64_t approval_queue_max;
	bool allow_self_approval;
	struct kg_principals approvers, launchers, pushers;
	uint32_t cooldown_threshold;
	uint64_t cooldown_window_sec, cooldown_sec;

	char hash[KG_HASH_HEX_LEN + 1];	/* sha256 of the canonical JSON */
	char *canonical_json;		/* what the hash covers; stored as snapshot */
};

/* Errors name file, line, column, rule id and field. */
struct kg_policy_error {
	char file[256];
	int line, column;
	char rule_id[KG_ID_MAX + 1];
	char field[64];
	char message[512];
};

/* Parse and validate; on error returns NULL and fills *err. `home` expands
 * "~" (NULL = $HOME). Nothing outside the returned document is changed. */
struct kg_policy_doc *kg_policy_load_file(const char *path, const char *home,
					  struct kg_policy_error *err);
struct kg_policy_doc *kg_policy_load_buffer(const char *buf, size_t len,
					    const char *name, const char *home,
					    struct kg_policy_error *err);
void kg_policy_free(struct kg_policy_doc *doc);

/* "file:line:col: rule 'id': field 'f': message" */
void kg_policy_error_format(const struct kg_policy_error *err, char *buf, size_t len);

/* names of decisions, ops, classes and rule kinds; a rule by number */
#include "policy/names.h"
/* the reference matcher: which rule decides a path or a connection */
#include "policy/match.h"

#endif

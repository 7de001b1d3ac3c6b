/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kaudit.h - Landlock and seccomp refusals read back from the kernel audit log.
 *
 * In degraded mode Landlock refuses file accesses (and, as self-protection,
 * signals and abstract unix sockets outside the job) without telling kgate.
 * Landlock ABI 7 logs each refusal through the kernel audit subsystem when
 * the domain asks for it (LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON, set by
 * kg_landlock_apply when kg_kaudit_open succeeded):
 *   AUDIT_LANDLOCK_ACCESS  "domain=ID blockers=fs.read_file path=... "
 *   AUDIT_LANDLOCK_DOMAIN  "domain=ID status=allocated ... pid=P ..." (the
 *                          process that created the domain: the job's first
 *                          process), later "status=deallocated denials=N".
 * kgate run listens on the audit netlink socket's read-only multicast group
 * (AUDIT_NLGRP_READLOG, CAP_AUDIT_READ: never in the way of auditd), keeps
 * the refusals of its job's domain and records each in the trail under the
 * job's trace id; at the end, the domain's own count of denials says how
 * many the log dropped (audit backlog full), recorded as a loss.
 *
 * The kernel logs nothing while audit is off (no auditd, no audit=1): then
 * kg_kaudit_open turns it on (AUDIT_SET enabled=1, CAP_AUDIT_CONTROL) and
 * says so; it stays on.  Without auditd the kernel also prints those
 * records to its log, rate-limited.  Where audit is locked off, or the
 * socket is refused, refusals are only counted by nothing: said at start.
 */
#ifndef KGATE_KAUDIT_H
#define KGATE_KAUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kg_kaudit;

struct kg_kaudit_denial {
	bool seccomp;		/* an AUDIT_SECCOMP record, else Landlock's */
	char blockers[160];	/* "fs.read_file", "scope.signal", ... (Landlock's names) */
	char target[4096];	/* path, or "pid N" for a signal */
	char domain[24];	/* Landlock domain id (hex) */
	/* seccomp: who, which call, what the filter answered */
	long pid;		/* -1 unknown */
	char comm[64], exe[512];
	int syscall;
	uint32_t arch, code;	/* AUDIT_ARCH_*, SECCOMP_RET_* | data */
};

/* Subscribe; turn audit on if it is off.  NULL (and `why` says) when the
 * kernel log cannot be read here.  `said` (may be NULL) gets what was done
 * to the machine ("" if nothing). */
struct kg_kaudit *kg_kaudit_open(char *why, size_t whylen, char *said, size_t saidlen);
void kg_kaudit_close(struct kg_kaudit *k);
int kg_kaudit_fd(const struct kg_kaudit *k);

/* The domain created by process `pid` is the job's (its first process, which
 * calls landlock_restrict_self before exec). */
void kg_kaudit_watch(struct kg_kaudit *k, pid_t pid);

/* Seccomp: the kernel's records name the audit session (ses=), which the
 * job's first process opened for the job (kg_kaudit_new_session); every
 * process of the job inherits it, even after its pid is gone.  0 = none. */
void kg_kaudit_watch_session(struct kg_kaudit *k, unsigned int ses);

/* In the launched child before privileges are dropped (syscalls only):
 * write its login uid again (or `uid` if unset), which gives it a new audit
 * session id.  Needs CAP_AUDIT_CONTROL.  0 or -errno. */
int kg_kaudit_new_session(unsigned int uid);

/* /proc/PID/sessionid (0 if unreadable or unset). */
unsigned int kg_kaudit_session_of(pid_t pid);

typedef void (*kg_kaudit_cb)(void *ctx, const struct kg_kaudit_denial *d);

/* Read what the kernel sent; call cb for each refusal of the job's domain.
 * Returns refusals reported, or -errno. */
int kg_kaudit_poll(struct kg_kaudit *k, kg_kaudit_cb cb, void *ctx);

/* Landlock refusals reported so far, and the kernel's own count for the domain once
 * it was deallocated (-1 until then). */
void kg_kaudit_counts(const struct kg_kaudit *k, uint64_t *reported, int64_t *kernel_denials);

/* Wait up to timeout_ms for the domain's deallocation record (the job has
 * ended), reporting what arrives meanwhile. */
int kg_kaudit_finish(struct kg_kaudit *k, int timeout_ms, kg_kaudit_cb cb, void *ctx);

/* Landlock's blocker name -> kgate op name ("read", "write", "create",
 * "unlink", "rename", "exec", "signal", "unix_connect", ...). */
const char *kg_kaudit_op(const char *blockers);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * seccomp.h - the job's seccomp filter: the policy's syscall rules plus a
 * self-protection baseline that no policy can switch off.
 *
 * Loaded by the launched child just before exec (after no_new_privs).
 * Non-native architectures (i386 int $0x80, x32) kill the process.
 */
/* -Iuserspace makes <seccomp.h> name this file, so libseccomp's header is
 * pulled in from the next include directory. Outside the guard on purpose:
 * when this file is reached through the including file's own directory,
 * the nested pass (through -Iuserspace) is the one that gets past us. */
#include_next <seccomp.h>

#ifndef KGATE_SECCOMP_H
#define KGATE_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include "policy/policy.h"

struct sock_filter;

struct kg_seccomp_opts {
	/* No BPF LSM: refuse ptrace and process_vm_* outright (in full mode
	 * the LSM scopes them to the job instead). */
	bool degraded;
	/* connect/sendto/sendmsg/sendmmsg return SECCOMP_RET_USER_NOTIF: a
	 * controller holds them on the listener fd until it answers. */
	bool hold_syscalls;
	/* Refusals are logged to the kernel audit log (SECCOMP_FILTER_FLAG_LOG)
	 * for kaudit.h; the ENOSYS answers and held calls go to a second filter
	 * that logs nothing. */
	bool log_refusals;
};

/* Build and load the filter in the calling thread (and its future children).
 * Sets no_new_privs. With opts->hold_syscalls, *notify_fd_out receives the
 * listener fd (else -1). 0 or -errno; on error nothing is loaded. */
int kg_seccomp_load(const struct kg_policy_doc *doc, const struct kg_seccomp_opts *opts,
		    int *notify_fd_out);

/* The filters compiled ahead of a fork: the child installs them with
 * system calls only (kg_seccomp_install), no allocation. */
struct kg_seccomp_filter {
	struct sock_filter *insns;
	unsigned short len;
	unsigned int flags;		/* SECCOMP_FILTER_FLAG_* */
};

struct kg_seccomp_prog {
	struct kg_seccomp_filter filters[2];	/* logged, then quiet */
	int n;
	int notify_filter;		/* index of the listener's filter, or -1 */
};

/* kg_seccomp_load in two halves: compile in the controller (0 or -errno,
 * an error logged), install in the child (sets no_new_privs; 0 or -errno,
 * nothing logged: async-signal-safe). */
int kg_seccomp_compile(const struct kg_policy_doc *doc, const struct kg_seccomp_opts *opts,
		       struct kg_seccomp_prog *out);
int kg_seccomp_install(const struct kg_seccomp_prog *p, int *notify_fd_out);
void kg_seccomp_prog_free(struct kg_seccomp_prog *p);

/* Which mechanism enforces `rule` in this configuration, with a one-line
 * reason: KG_MECH_SECCOMP for syscall rules seccomp can express,
 * KG_MECH_NONE otherwise (and for non-syscall rules, which are not its job). */
enum kg_mechanism kg_seccomp_rule_mechanism(const struct kg_rule *rule,
					    char *reason, size_t len);

/* The baseline: syscall names refused whatever the policy says. */
extern const char *const kg_seccomp_baseline[];
extern const size_t kg_seccomp_baseline_len;

#endif

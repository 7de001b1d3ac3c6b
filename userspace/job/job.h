/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * job.h - one governed job, from admission to clean-up.
 *
 *   admission -> enforcement plan -> policy into maps -> job cgroup ->
 *   child born in the cgroup (waiting) -> cgroup programs attached, job
 *   registered -> child released (Landlock + seccomp, exec) -> events
 *   recorded while it runs -> exit status -> clean-up.
 */
#ifndef KGATE_JOB_H
#define KGATE_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

enum kg_require { KG_REQUIRE_ANY = 0, KG_REQUIRE_FULL };

struct kg_actor;

struct kg_job_spec {
	const char *policy_path;
	char *const *argv;
	char *const *envp;	/* the command's environment; NULL = kgate's own */
	uint64_t job_id;	/* 0 = a random one (the trace id is derived from it) */
	/* who launches, when not this process's kernel credentials: the
	 * daemon's dispatch (POST /api/v1/jobs) names the token's principal.
	 * Only in-process callers set it; no command-line option does. */
	const struct kg_actor *launcher;
	struct json_t *labels;	/* the submitter's labels (recorded with the admission) */
	unsigned int attempt;	/* > 1: the daemon relaunches a failed dispatched job
				 * (max_retries) under the same trace */
	const char *topic, *tenant;
	const char *const *risk_tags;
	size_t nrisk_tags;
	bool have_as;		/* drop to as_uid/as_gid before exec */
	uid_t as_uid;
	gid_t as_gid;
	const char *as_name;
	const char *as_source;	/* why: "--as", "SUDO_UID", "PKEXEC_UID", "DOAS_USER" */
	/* '~' in the policy and the job's $HOME: this directory (--home), else
	 * the home of the user the job runs as (--as, sudo...), else $HOME */
	const char *home;
	uid_t invoker_uid;	/* who ran kgate (the sudo/pkexec/doas caller, else getuid()) */
	enum kg_require require;
	FILE *live;		/* decisions as they happen (NULL = quiet) */
	bool no_lsm;		/* force degraded mode (tests, comparisons) */
	uint32_t ring_bytes;	/* --ring-size (0: the default, or the pinned ring's) */
	const char *dns_upstream;	/* the job resolver's upstream (NULL: $KGATE_DNS_UPSTREAM,
					 * then /etc/resolv.conf) */
};

/* Runs the job; returns the exit code `kgate run` should exit with: the
 * command's own, 128+signal, 127 when it could not start, or a KG_EXIT_*
 * code when kgate refused or failed before starting it. */
int kg_job_run(const struct kg_job_spec *spec);

/* The policy used when none is given: $KGATE_POLICY, /etc/kgate/policy.json,
 * or policies/default.json next to the kgate binary's source tree. */
const char *kg_default_policy_path(char *buf, size_t len);

#endif

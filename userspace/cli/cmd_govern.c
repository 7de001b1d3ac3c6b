// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_govern.c - 'kgate govern' and 'kgate release': a cgroup kgate did
 * not create, put under a policy in place (job/govern.h). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "common.h"
#include "job/govern.h"

static void usage_govern(FILE *f)
{
	fprintf(f,
		"usage: kgate govern --cgroup PATH [--policy FILE] [--force] [--json]\n\n"
		"Put an existing cgroup (a systemd service, a container, a pod) and every\n"
		"process in it, those already running included, under a policy: the BPF LSM\n"
		"and cgroup-BPF programs decide for them from now on, and their decisions\n"
		"go to the audit trail under a new trace id.  What needs the process's own\n"
		"cooperation is not applied and is said per rule (syscall rules and the\n"
		"syscall baseline need seccomp; no_new_privs; Landlock and the mount\n"
		"namespace of degraded mode; launch limits and admission).\n\n"
		"  --cgroup PATH  a directory on cgroup2, or a path below its mount\n"
		"                 (e.g. /system.slice/agent.service)\n"
		"  --policy FILE  the policy (default: $KGATE_POLICY, /etc/kgate/policy.json,\n"
		"                 or the shipped default)\n"
		"  --force        govern even a cgroup kgate cannot protect (degraded mode,\n"
		"                 delegated to a user, fail-open without a daemon); recorded\n"
		"                 in the job_start record\n"
		"  --degraded     do not use BPF LSM even if available (tests)\n"
		"  --json         print the outcome as JSON\n\n"
		"Never governed: the root cgroup, a cgroup kgate itself runs in, kgate run's\n"
		"jobs, a cgroup already governed (or holding or inside a governed one).\n"
		"`kgate release TRACE` ends it; a governed cgroup that is removed is\n"
		"released by the daemon (or the next kgate run).\n\n"
		"exit status: 0 governed, 4 refused, 3 invalid policy, 5 full enforcement\n"
		"required but unavailable, 2 usage, 1 other failure\n");
}

static void usage_release(FILE *f)
{
	fprintf(f,
		"usage: kgate release TRACE | --cgroup PATH\n\n"
		"End a job `kgate govern` started: its cgroup leaves governance (programs\n"
		"detached, policy generation dropped) and a job_exit record says so.  The\n"
		"cgroup and its processes are left as they are.\n\n"
		"exit status: 0 released, 2 no such governed job, 1 other failure\n");
}

int cmd_govern(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "degraded", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct kg_govern_spec s = { .out = stderr };
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': s.cgroup = optarg; break;
		case 'p': s.policy_path = optarg; break;
		case 'f': s.force = true; break;
		case 'd': s.no_lsm = true; break;
		case 'j': kg_env.json = true; break;
		case 'h': usage_govern(stdout); return KG_EXIT_OK;
		default: usage_govern(stderr); return KG_EXIT_USAGE;
		}
	}
	if (!s.cgroup || optind != argc) {
		usage_govern(stderr);
		return KG_EXIT_USAGE;
	}
	if (geteuid() != 0)
		return kg_err("govern: needs root (BPF programs, cgroups)"), KG_EXIT_FAIL;
	if (kg_env.json)
		s.result = json_object();
	rc = kg_govern(&s);
	if (s.result && rc == KG_EXIT_OK) {
		char *text = json_dumps(s.result, JSON_COMPACT);

		printf("%s\n", text ? text : "{}");
		free(text);
	}
	json_decref(s.result);
	return rc;
}

int cmd_release(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct kg_release_spec s = { .out = stderr };
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': s.cgroup = optarg; break;
		case 'h': usage_release(stdout); return KG_EXIT_OK;
		default: usage_release(stderr); return KG_EXIT_USAGE;
		}
	}
	if (optind < argc)
		s.trace = argv[optind++];
	if (optind != argc || !!s.trace == !!s.cgroup) {
		usage_release(stderr);
		return KG_EXIT_USAGE;
	}
	if (geteuid() != 0)
		return kg_err("release: needs root (BPF programs)"), KG_EXIT_FAIL;
	return kg_release(&s);
}

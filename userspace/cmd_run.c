// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_run.c - 'kgate run': launch a command as a governed job. */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"
#include "job.h"

#define MAX_RISK_TAGS 32

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kgate run [OPTIONS] -- COMMAND [ARGS]...\n\n"
		"Decide admission, then run COMMAND in a fresh governed cgroup: every file,\n"
		"exec, connection and dangerous syscall is decided by the kernel from the\n"
		"policy, and recorded in the audit trail under the job's trace id.\n\n"
		"options:\n"
		"  --policy FILE     policy to enforce (default: $KGATE_POLICY,\n"
		"                    /etc/kgate/policy.json, or the shipped default)\n"
		"  --topic T         admission topic, e.g. job.agent.exec.build\n"
		"  --risk TAG        admission risk tag (repeatable)\n"
		"  --tenant T        admission tenant\n"
		"  --as USER         run COMMAND as USER (privileges dropped before exec)\n"
		"  --require full    refuse to start unless every rule is enforced (BPF LSM)\n"
		"  --degraded        do not use BPF LSM even if available\n"
		"  -q, --quiet       do not print decisions as they happen\n"
		"  -h, --help        this help\n\n"
		"exit status: COMMAND's own; 128+N if killed by signal N; 127 if it could not\n"
		"start; 2 usage, 3 invalid policy, 4 admission denied, 5 full enforcement\n"
		"unavailable, 1 other kgate failure\n");
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "topic", required_argument, NULL, 't' },
		{ "risk", required_argument, NULL, 'r' },
		{ "tenant", required_argument, NULL, 'T' },
		{ "as", required_argument, NULL, 'a' },
		{ "require", required_argument, NULL, 'R' },
		{ "degraded", no_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *risk[MAX_RISK_TAGS];
	struct kg_job_spec spec = { .live = stderr };
	struct passwd *pw;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': spec.policy_path = optarg; break;
		case 't': spec.topic = optarg; break;
		case 'T': spec.tenant = optarg; break;
		case 'r':
			if (spec.nrisk_tags == MAX_RISK_TAGS)
				return kg_err("run: more than %d --risk tags", MAX_RISK_TAGS), KG_EXIT_USAGE;
			risk[spec.nrisk_tags++] = optarg;
			break;
		case 'a':
			pw = getpwnam(optarg);
			if (!pw)
				return kg_err("run: --as: no such user '%s'", optarg), KG_EXIT_USAGE;
			spec.have_as = true;
			spec.as_uid = pw->pw_uid;
			spec.as_gid = pw->pw_gid;
			spec.as_name = optarg;
			break;
		case 'R':
			if (!strcmp(optarg, "full"))
				spec.require = KG_REQUIRE_FULL;
			else if (!strcmp(optarg, "any"))
				spec.require = KG_REQUIRE_ANY;
			else
				return kg_err("run: --require takes 'full' or 'any', not '%s'", optarg),
				       KG_EXIT_USAGE;
			break;
		case 'd': spec.no_lsm = true; break;
		case 'q': spec.live = NULL; break;
		case 'h': usage(stdout); return KG_EXIT_OK;
		default: usage(stderr); return KG_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		kg_err("run: no command given");
		usage(stderr);
		return KG_EXIT_USAGE;
	}
	spec.argv = argv + optind;
	spec.risk_tags = risk;
	return kg_job_run(&spec);
}

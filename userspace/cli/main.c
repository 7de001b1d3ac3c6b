// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* main.c - kgate's global options and its table of commands (cli/select.c). */
#include <stdio.h>
#include <string.h>

#include "api/http.h"
#include "cli/cmds.h"
#include "common.h"

static const struct kg_cmd commands[] = {
	{ "run",	cmd_run,	"launch a command as a governed job" },
	{ "govern",	cmd_govern,	"put an existing cgroup under a policy" },
	{ "release",	cmd_release,	"end a job kgate govern started" },
	{ "daemon",	cmd_daemon,	"run the long-lived controller" },
	{ "policy",	cmd_policy,	"check, push and show policies" },
	{ "approvals",	cmd_approvals,	"list, approve and deny escalations" },
	{ "audit",	cmd_audit,	"verify and query the audit trail" },
	{ "doctor",	cmd_doctor,	"probe the kernel and print the enforcement matrix" },
	{ "status",	cmd_status,	"list governed jobs and counters" },
	{ "token",	cmd_token,	"issue, list and revoke HTTP API tokens" },
	/* the process of a job the daemon dispatches (api/dispatch_child.c) */
	{ "__dispatch",	cmd_dispatch_child,	NULL },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: kgate [-v] [--json] COMMAND [ARGS]...\n\n"
		   "kernel-enforced runtime governance for AI agents\n\ncommands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (commands[i].summary)
			fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'kgate COMMAND --help' describes each command\n");
}

int main(int argc, char **argv)
{
	int a = 1;

	for (; a < argc && argv[a][0] == '-'; a++) {
		if (!strcmp(argv[a], "-v") || !strcmp(argv[a], "--verbose"))
			kg_env.verbose = true;
		else if (!strcmp(argv[a], "--json"))
			kg_env.json = true;
		else if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
			usage(stdout);
			return KG_EXIT_OK;
		} else {
			kg_err("unknown option '%s'", argv[a]);
			usage(stderr);
			return KG_EXIT_USAGE;
		}
	}
	return kg_cmd_select(NULL, commands, ARRAY_SIZE(commands), argc - a, argv + a, usage);
}

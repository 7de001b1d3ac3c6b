// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cli/select.c - the one dispatcher of kgate's commands and subcommands
 * (in the spirit of bpftool's cmd_select): a table of {name, fn}, looked up
 * by exact name.  Used by main.c for the top-level command and by every
 * command family with subcommands (policy, audit, approvals, token).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cmds.h"
#include "common.h"

bool kg_cmd_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help") || !strcmp(arg, "help");
}

/* "a, b, c": the entries that are listed (hidden ones have no summary) */
static void names_of(const struct kg_cmd *cmds, size_t n, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < n && off < len; i++)
		if (cmds[i].summary)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
						cmds[i].name);
}

int kg_cmd_select(const char *family, const struct kg_cmd *cmds, size_t n, int argc,
		  char **argv, void (*usage)(FILE *f))
{
	char names[512];
	size_t i;

	if (argc < 1) {
		usage(stderr);
		return KG_EXIT_USAGE;
	}
	if (kg_cmd_is_help(argv[0])) {
		usage(stdout);
		return KG_EXIT_OK;
	}
	for (i = 0; i < n; i++)
		if (!strcmp(argv[0], cmds[i].name))
			return cmds[i].fn(argc, argv);
	names_of(cmds, n, names, sizeof(names));
	if (family)
		kg_err("%s: unknown subcommand '%s' (one of %s)", family, argv[0], names);
	else
		kg_err("unknown command '%s' (one of %s)", argv[0], names);
	usage(stderr);
	return KG_EXIT_USAGE;
}

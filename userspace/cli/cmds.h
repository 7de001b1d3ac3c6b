/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cmds.h - one entry point per command family (cmd_<verb>.c). Each takes
 * argv with argv[0] = the command name and returns the process exit code. */
#ifndef KGATE_CMDS_H
#define KGATE_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* exit codes that mean something */
#define KG_EXIT_OK		0
#define KG_EXIT_FAIL		1	/* operation failed */
#define KG_EXIT_USAGE		2	/* bad command line */
#define KG_EXIT_POLICY		3	/* policy invalid */
#define KG_EXIT_DENIED		4	/* admission denied / approval refused */
#define KG_EXIT_DEGRADED	5	/* full enforcement required but unavailable */
#define KG_EXIT_TAMPERED	6	/* audit verification failed */

/* A table of commands or subcommands (cli/select.c).  fn gets argv with
 * argv[0] = its own name and returns the exit code; summary is its one line
 * of help: the top-level usage is generated from it, and an unknown name's
 * error lists the entries that have one (NULL: a hidden entry).  The usage
 * texts of subcommands are written by hand, as they carry the options. */
struct kg_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

/* Run the entry of cmds named argv[0].  No argv[0]: usage to stderr, exit
 * 2.  -h, --help or help: usage to stdout, exit 0.  An unknown name: "FAMILY:
 * unknown subcommand 'X' (one of A, B)" (or "unknown command 'X' (one of
 * ...)" when family is NULL), usage to stderr, exit 2. */
int kg_cmd_select(const char *family, const struct kg_cmd *cmds, size_t n, int argc,
		  char **argv, void (*usage)(FILE *f));
bool kg_cmd_is_help(const char *arg);

int cmd_run(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_govern(int argc, char **argv);
int cmd_release(int argc, char **argv);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cmds.h - one entry point per command family (cmd_<verb>.c). Each takes
 * argv with argv[0] = the command name and returns the process exit code. */
#ifndef KGATE_CMDS_H
#define KGATE_CMDS_H

/* exit codes that mean something */
#define KG_EXIT_OK		0
#define KG_EXIT_FAIL		1	/* operation failed */
#define KG_EXIT_USAGE		2	/* bad command line */
#define KG_EXIT_POLICY		3	/* policy invalid */
#define KG_EXIT_DENIED		4	/* admission denied / approval refused */
#define KG_EXIT_DEGRADED	5	/* full enforcement required but unavailable */
#define KG_EXIT_TAMPERED	6	/* audit verification failed */

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

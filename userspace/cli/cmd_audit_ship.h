/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cli/cmd_audit_ship.h - shipping the trail: 'kgate audit follow|export'
 * and 'kgate audit verify --batch'. argv[0] is the subcommand. */
#ifndef KGATE_CLI_CMD_AUDIT_SHIP_H
#define KGATE_CLI_CMD_AUDIT_SHIP_H

int cmd_audit_follow(int argc, char **argv);
int cmd_audit_export(int argc, char **argv);
int cmd_audit_verify_batch(int argc, char **argv);

#endif

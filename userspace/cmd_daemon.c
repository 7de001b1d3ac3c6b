// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_daemon.c - 'kgate daemon' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_daemon(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("daemon: not implemented yet"), KG_EXIT_FAIL;
}

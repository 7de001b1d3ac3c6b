// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_status.c - 'kgate status' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_status(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("status: not implemented yet"), KG_EXIT_FAIL;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_run.c - 'kgate run' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("run: not implemented yet"), KG_EXIT_FAIL;
}

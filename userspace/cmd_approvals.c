// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_approvals.c - 'kgate approvals' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_approvals(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("approvals: not implemented yet"), KG_EXIT_FAIL;
}

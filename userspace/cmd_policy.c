// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_policy.c - 'kgate policy' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_policy(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("policy: not implemented yet"), KG_EXIT_FAIL;
}

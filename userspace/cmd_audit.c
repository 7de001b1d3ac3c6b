// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_audit.c - 'kgate audit' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_audit(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("audit: not implemented yet"), KG_EXIT_FAIL;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_doctor.c - 'kgate doctor' (not implemented yet) */
#include "cmds.h"
#include "common.h"

int cmd_doctor(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kg_err("doctor: not implemented yet"), KG_EXIT_FAIL;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cli/cmd_audit_export.c - 'kgate audit export' and 'verify --batch'. */
#include "cli/cmd_audit_ship.h"
#include "cmds.h"
#include "common.h"

int cmd_audit_export(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	kg_err("audit: export: not built yet");
	return KG_EXIT_FAIL;
}

int cmd_audit_verify_batch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	kg_err("audit: verify --batch: not built yet");
	return KG_EXIT_FAIL;
}

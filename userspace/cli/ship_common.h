/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cli/ship_common.h - what 'kgate audit follow' and 'export' share. */
#ifndef KGATE_CLI_SHIP_COMMON_H
#define KGATE_CLI_SHIP_COMMON_H

#include <jansson.h>
#include <stdbool.h>

#include "record/tail.h"

struct kg_ship_filter {
	const char *trace, *type, *decision, *rule;
};

/* SIGINT/SIGTERM ask the loop to stop (no SA_RESTART); SIGPIPE ignored. */
void kg_ship_install_signals(void);
bool kg_ship_stopping(void);
/* The start position: from, else the content of posfile when it exists,
 * else deflt. 0, or -1 after an error message. */
int kg_ship_start(const char *from, const char *posfile, const char *deflt,
		  struct kg_tail_pos *pos);
/* Writes pos to posfile (temporary file + rename); posfile NULL = nothing. */
int kg_ship_save_position(const char *posfile, const char *pos);
bool kg_ship_filter_match(const struct kg_ship_filter *f, json_t *rec);
bool kg_ship_filter_any(const struct kg_ship_filter *f);

#endif

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_doctor.c - 'kgate doctor [--json]': probe the kernel, print what
 * enforces each rule type.  Exit 0 = full enforcement available,
 * KG_EXIT_DEGRADED = only degraded enforcement, KG_EXIT_FAIL = not even that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"
#include "doctor.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate doctor [--json]\n\n"
		   "probe BPF LSM, cgroup-BPF, Landlock, seccomp and fanotify by using them,\n"
		   "then print which mechanism enforces each rule type and how to fix gaps\n\n"
		   "exit status: 0 full enforcement, %d degraded, %d not even degraded\n",
		KG_EXIT_DEGRADED, KG_EXIT_FAIL);
}

int cmd_doctor(int argc, char **argv)
{
	struct kg_doctor_report *r;
	int i, code;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			kg_env.json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return KG_EXIT_OK;
		} else {
			kg_err("doctor: unknown argument '%s'", argv[i]);
			usage(stderr);
			return KG_EXIT_USAGE;
		}
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return kg_err("doctor: out of memory"), KG_EXIT_FAIL;
	if (kg_doctor_probe(r)) {
		free(r);
		return KG_EXIT_FAIL;
	}
	code = kg_doctor_exit_code(r);
	if (kg_env.json) {
		if (kg_doctor_print_json(r))
			code = KG_EXIT_FAIL;
	} else {
		kg_doctor_print(r);
	}
	free(r);
	return code;
}

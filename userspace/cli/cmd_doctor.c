// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_doctor.c - 'kgate doctor [--json] [--policy FILE]': probe the kernel,
 * print what enforces each rule type, and with --policy what enforces each
 * rule of that policy here and what it leaves out.  Exit 0 = full enforcement available,
 * KG_EXIT_DEGRADED = only degraded enforcement, KG_EXIT_FAIL = not even that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cmds.h"
#include "common.h"
#include "kernel/doctor.h"
#include "record/events.h"
#include "kernel/landlock.h"
#include "kernel/seccomp.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate doctor [--json] [--policy FILE]\n\n"
		   "probe BPF LSM, cgroup-BPF, Landlock, seccomp and fanotify by using them,\n"
		   "then print which mechanism enforces each rule type and how to fix gaps;\n"
		   "with --policy, what enforces each rule of FILE on this machine and what\n"
		   "it leaves out\n\n"
		   "exit status: 0 full enforcement, %d degraded, %d not even degraded\n",
		KG_EXIT_DEGRADED, KG_EXIT_FAIL);
}

/* Per rule of `doc`: the mechanism here, how, and what it leaves out. */
static json_t *policy_rules(const struct kg_doctor_report *r, const struct kg_policy_doc *doc)
{
	struct kg_landlock_plan *ll = NULL;
	json_t *rules = json_array(), *notes = json_array(), *o;
	char why[256];
	size_t i;

	if (!r->full && kg_landlock_plan(doc, &ll))
		ll = NULL;
	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *rule = &doc->rules[i];
		const struct kg_ll_report *rep;
		const char *mech = "cgroup-bpf", *how = "", *holes = "";

		switch (rule->kind) {
		case KG_RULE_FILE:
		case KG_RULE_EXEC:
			if (r->full) {
				mech = "bpf-lsm";
			} else if ((rep = kg_landlock_report(ll, rule->num))) {
				mech = kg_mechanism_name(rep->mechanism);
				how = rep->reason;
				holes = rep->holes;
			} else {
				mech = "none";
				how = "not enforced: needs BPF LSM or Landlock";
			}
			break;
		case KG_RULE_UNIX:
			mech = r->full ? "bpf-lsm" : "none";
			how = r->full ? "" : "not enforced: AF_UNIX peer rules need BPF LSM";
			break;
		case KG_RULE_SYSCALL:
			mech = kg_seccomp_rule_mechanism(rule, why, sizeof(why)) == KG_MECH_SECCOMP
			       ? "seccomp" : "none";
			how = why;
			break;
		default:
			break;
		}
		o = json_pack("{s:s,s:s,s:s}", "rule", rule->id, "mechanism", mech, "how", how);
		if (o && holes[0])
			json_object_set_new(o, "holes", json_string(holes));
		json_array_append_new(rules, o);
	}
	for (i = 0; ll && i < ll->nnotes; i++)
		json_array_append_new(notes, json_string(ll->notes[i]));
	kg_landlock_plan_free(ll);
	return json_pack("{s:s,s:o,s:o}", "policy", doc->source ? doc->source : "", "rules", rules,
			 "notes", notes);
}

static void print_policy_rules(const json_t *pr)
{
	const json_t *v;
	size_t i;

	printf("\npolicy %s, rule by rule on this machine:\n",
	       json_string_value(json_object_get(pr, "policy")));
	json_array_foreach(json_object_get(pr, "rules"), i, v) {
		const char *how = json_string_value(json_object_get(v, "how"));
		const char *holes = json_string_value(json_object_get(v, "holes"));

		printf("  %-24s %-10s %s\n", json_string_value(json_object_get(v, "rule")),
		       json_string_value(json_object_get(v, "mechanism")), how ? how : "");
		if (holes)
			printf("  %-24s %-10s %s\n", "", "leaves out", holes);
	}
	json_array_foreach(json_object_get(pr, "notes"), i, v)
		printf("  note: %s\n", json_string_value(v));
}

int cmd_doctor(int argc, char **argv)
{
	struct kg_doctor_report *r;
	struct kg_policy_doc *doc = NULL;
	json_t *pr = NULL;
	int i, code;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			kg_env.json = true;
		} else if (!strcmp(argv[i], "--policy") && i + 1 < argc && !doc) {
			struct kg_policy_error err;
			char msg[768];

			doc = kg_policy_load_file(argv[++i], NULL, &err);
			if (!doc) {
				kg_policy_error_format(&err, msg, sizeof(msg));
				kg_err("doctor: %s", msg);
				return KG_EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return KG_EXIT_OK;
		} else {
			kg_err("doctor: unknown argument '%s'", argv[i]);
			usage(stderr);
			kg_policy_free(doc);
			return KG_EXIT_USAGE;
		}
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		kg_policy_free(doc);
		return kg_err("doctor: out of memory"), KG_EXIT_FAIL;
	}
	if (kg_doctor_probe(r)) {
		free(r);
		kg_policy_free(doc);
		return KG_EXIT_FAIL;
	}
	code = kg_doctor_exit_code(r);
	if (doc)
		pr = policy_rules(r, doc);
	if (kg_env.json && pr) {
		/* one document: the machine, then the policy rule by rule */
		printf("{\"policy_rules\":");
		if (json_dumpf(pr, stdout, JSON_COMPACT))
			code = KG_EXIT_FAIL;
		printf(",\"doctor\":");
		fflush(stdout);
		if (kg_doctor_print_json(r))
			code = KG_EXIT_FAIL;
		printf("}\n");
	} else if (kg_env.json) {
		if (kg_doctor_print_json(r))
			code = KG_EXIT_FAIL;
	} else {
		kg_doctor_print(r);
		if (pr)
			print_policy_rules(pr);
	}
	json_decref(pr);
	kg_policy_free(doc);
	free(r);
	return code;
}

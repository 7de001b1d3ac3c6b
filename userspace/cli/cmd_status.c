// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_status.c - 'kgate status': governed jobs, their policy, the counters. */
#include <getopt.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmds.h"
#include "common.h"
#include "daemon/control.h"
#include "record/events.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "job/registry.h"
#include "record/recorder.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate status [--json]\n\n"
		   "List governed jobs (trace id, command, policy snapshot, mode, whether the\n"
		   "kernel still governs them) and kgate's kernel counters: decisions by\n"
		   "outcome, events delivered, and events lost because the ring buffer was\n"
		   "full (every loss is also an audit record).\n\n"
		   "Root sees everything.  Other users ask kgate's daemon, which shows them\n"
		   "their own jobs (run as them, or started by them) and only the trace id\n"
		   "and mode of the others.\n");
}

static const char *job_state(int jobs_fd, const struct kg_job_record *r)
{
	struct kg_job kj;

	if (jobs_fd >= 0 && bpf_map_lookup_elem(jobs_fd, &r->cgid, &kj) == 0)
		return kj.policy_id == r->policy_id ? "governed" : "governed (policy changing)";
	return kg_registry_stale(r) ? "ended" : "starting";
}

static json_t *counters_json(const struct kg_counters *c)
{
	json_t *dec = json_object(), *sent = json_object(), *lost = json_object();
	int k;

	for (k = 1; k < KG_DEC_MAX; k++)
		json_object_set_new(dec, kg_decision_name(k), json_integer((json_int_t)c->decisions[k]));
	for (k = 0; k < KG_EV_MAX; k++) {
		json_object_set_new(sent, kg_event_kind_name(k), json_integer((json_int_t)c->events_sent[k]));
		json_object_set_new(lost, kg_event_kind_name(k), json_integer((json_int_t)c->events_lost[k]));
	}
	return json_pack("{s:o,s:o,s:o,s:I}", "decisions", dec, "events_sent", sent,
			 "events_lost", lost, "walk_incomplete", (json_int_t)c->walk_incomplete);
}

/* ", and N refused, M audited folded (recorded later)" when there are any */
static const char *folded_note(uint64_t refused, uint64_t audited)
{
	static char buf[96];

	if (!refused && !audited)
		return "";
	snprintf(buf, sizeof(buf), "; %llu refused and %llu audited folded, recorded later",
		 (unsigned long long)refused, (unsigned long long)audited);
	return buf;
}

static void print_text(int jobs_fd, struct kg_job_record *jobs, size_t n,
		       const struct kg_counters *c, bool have_counters)
{
	uint64_t lost = 0, sent = 0;
	size_t i;
	int k;

	printf("%zu job(s)\n", n);
	for (i = 0; i < n; i++) {
		const struct kg_job_record *r = &jobs[i];
		uint64_t fr, fa;
		struct kg_job_tally t;

		kg_registry_tally(r->trace, &t);
		kg_fold_pending(r->cgid, &fr, &fa);
		printf("  %s  %-8s  %s\n    policy %s sha256 %.12s (generation %u), %s mode, pid %d, cgroup %llu\n"
		       "    %llu refused, %llu audited, %llu escalations recorded%s\n    %s\n",
		       r->trace, job_state(jobs_fd, r), r->command, r->policy_name, r->policy_hash,
		       r->policy_id, r->full ? "full" : "degraded", (int)r->pid,
		       (unsigned long long)r->cgid, (unsigned long long)t.refused,
		       (unsigned long long)t.audited, (unsigned long long)t.escalations,
		       folded_note(fr, fa), r->cgroup_path);
	}
	if (!have_counters) {
		printf("counters: unavailable (no pinned kgate maps under %s)\n", kg_pin_dir());
		return;
	}
	printf("decisions:");
	for (k = 1; k < KG_DEC_MAX; k++)
		if (c->decisions[k])
			printf(" %s=%llu", kg_decision_name(k), (unsigned long long)c->decisions[k]);
	for (k = 0; k < KG_EV_MAX; k++) {
		lost += c->events_lost[k];
		sent += c->events_sent[k];
	}
	printf("\nevents: %llu delivered, %llu lost (ring buffer full)\n",
	       (unsigned long long)sent, (unsigned long long)lost);
}

/* Users other than root: the registry is root's; kgate's daemon shows each
 * one the jobs they run or started in full and only the existence of the
 * others (see may_see_job in cmd_daemon.c). */
static int status_via_daemon(bool json)
{
	json_t *req = json_pack("{s:s}", "op", "status"), *reply, *jobs, *j;
	size_t i;
	char *s;
	int rc = KG_EXIT_OK;

	reply = req ? kg_control_call(req, 10000) : NULL;
	json_decref(req);
	if (!reply)
		return kg_err("status: as uid %u, jobs are listed by kgate's daemon, and none answers "
			      "on %s", (unsigned int)getuid(), kg_socket_path()), KG_EXIT_FAIL;
	jobs = json_object_get(reply, "jobs");
	if (!json_is_true(json_object_get(reply, "ok")) || !json_is_array(jobs)) {
		kg_err("%s", json_string_value(json_object_get(reply, "error")) ?: "status: refused");
		rc = (int)json_integer_value(json_object_get(reply, "exit")) ?: KG_EXIT_FAIL;
	} else if (json) {
		json_t *out = json_pack("{s:O}", "jobs", jobs);

		s = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(out);
	} else {
		printf("%zu job(s)\n", json_array_size(jobs));
		json_array_foreach(jobs, i, j) {
			if (json_is_true(json_object_get(j, "hidden")))
				printf("  %s  %s mode (another user's job)\n",
				       json_string_value(json_object_get(j, "trace")),
				       json_string_value(json_object_get(j, "mode")));
			else
				printf("  %s  %s\n    policy %s sha256 %.12s, %s mode, pid %d\n",
				       json_string_value(json_object_get(j, "trace")),
				       json_string_value(json_object_get(j, "command")),
				       json_string_value(json_object_get(j, "policy_name")),
				       json_string_value(json_object_get(j, "policy_hash")),
				       json_string_value(json_object_get(j, "mode")),
				       (int)json_integer_value(json_object_get(j, "pid")));
		}
	}
	json_decref(reply);
	return rc;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct kg_job_record *jobs = NULL;
	struct kg_counters c = {};
	int jobs_fd, counters_fd;
	bool json = kg_env.json, have_counters;
	size_t n = 0, i;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return KG_EXIT_OK;
		default: usage(stderr); return KG_EXIT_USAGE;
		}
	}
	if (getuid() != 0)
		return status_via_daemon(json);
	if (kg_registry_list(&jobs, &n))
		return kg_err("status: cannot read %s/jobs", kg_state_dir()), KG_EXIT_FAIL;
	/* read the pinned maps: loading kgate's programs is not a status query */
	jobs_fd = kg_open_pinned_map("kg_jobs");
	counters_fd = kg_open_pinned_map("kg_counters");
	have_counters = counters_fd >= 0 && kg_maps_read_counters_fd(counters_fd, &c) == 0;
	if (json) {
		json_t *arr = json_array(), *out;
		char *s;

		for (i = 0; i < n; i++) {
			uint64_t fr, fa;
			struct kg_job_tally t;
			json_t *job;

			kg_registry_tally(jobs[i].trace, &t);
			kg_fold_pending(jobs[i].cgid, &fr, &fa);
			job = json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:I},s:s,s:i,s:I,s:s,s:{s:I,s:I,s:I}}",
				"trace", jobs[i].trace, "state", job_state(jobs_fd, &jobs[i]),
				"command", jobs[i].command, "policy", "name", jobs[i].policy_name,
				"hash", jobs[i].policy_hash, "generation", (json_int_t)jobs[i].policy_id,
				"mode", jobs[i].full ? "full" : "degraded", "pid", (int)jobs[i].pid,
				"cgroup_id", (json_int_t)jobs[i].cgid, "cgroup", jobs[i].cgroup_path,
				"recorded", "refused", (json_int_t)t.refused, "audited",
				(json_int_t)t.audited, "escalations", (json_int_t)t.escalations);

			/* decided, folded by the kernel, in no record yet (bpf/kgate.h) */
			if (job)
				json_object_set_new(job, "folded", json_pack("{s:I,s:I}", "refused",
									     (json_int_t)fr, "audited",
									     (json_int_t)fa));
			json_array_append_new(arr, job);
		}
		out = json_pack("{s:o,s:o*}", "jobs", arr, "counters",
				have_counters ? counters_json(&c) : NULL);
		s = json_dumps(out, JSON_INDENT(2));
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(out);
	} else {
		print_text(jobs_fd, jobs, n, &c, have_counters);
	}
	if (jobs_fd >= 0)
		close(jobs_fd);
	if (counters_fd >= 0)
		close(counters_fd);
	free(jobs);
	return KG_EXIT_OK;
}

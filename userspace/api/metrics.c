// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/metrics.c - GET /metrics: Prometheus text format (version 0.0.4).
 *
 * From the kernel (the pinned counters: every decision, event and loss
 * since kgate's BPF objects were loaded), the queue (pending requests and
 * how long the oldest has waited), the registry (jobs), the feed (recorded
 * decisions by operation, approvals by outcome, since the daemon started)
 * and the API itself.  Aggregates only: a token that may read sees them.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "api/internal.h"
#include "common.h"
#include "record/events.h"
#include "kgate.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "job/registry.h"

#define P(...) kg_api_appendf(&buf, &len, &cap, __VA_ARGS__)

void kg_api_metrics(struct kg_api_req *r)
{
	struct kg_api *api = r->api;
	struct kg_job_record *jobs = NULL;
	struct kg_approval *reqs = NULL;
	struct kg_counters c = {};
	struct kg_control ctl = {};
	struct MHD_Response *resp;
	char *buf = NULL;
	size_t len = 0, cap = 0, n = 0, njobs = 0, i, full = 0;
	uint64_t now = kg_now_real_ns(), oldest = 0, pending = 0;
	uint32_t zero = 0;
	int fd, k;
	bool have_counters;

	fd = kg_open_pinned_map("kg_counters");
	have_counters = fd >= 0 && kg_maps_read_counters_fd(fd, &c) == 0;
	if (fd >= 0)
		close(fd);
	if (have_counters) {
		P("# HELP kgate_kernel_decisions_total Governed decisions the kernel made, by "
		  "decision (all jobs, since kgate's BPF objects were loaded).\n"
		  "# TYPE kgate_kernel_decisions_total counter\n");
		for (k = 1; k < KG_DEC_MAX; k++)
			P("kgate_kernel_decisions_total{decision=\"%s\"} %llu\n", kg_decision_name(k),
			  (unsigned long long)c.decisions[k]);
		P("# HELP kgate_events_sent_total Events the kernel delivered to the ring buffer, by "
		  "kind.\n# TYPE kgate_events_sent_total counter\n");
		for (k = 0; k < KG_EV_MAX; k++)
			P("kgate_events_sent_total{kind=\"%s\"} %llu\n", kg_event_kind_name(k),
			  (unsigned long long)c.events_sent[k]);
		P("# HELP kgate_events_lost_total Events lost because the ring buffer was full, by "
		  "kind (each loss is also audited).\n# TYPE kgate_events_lost_total counter\n");
		for (k = 0; k < KG_EV_MAX; k++)
			P("kgate_events_lost_total{kind=\"%s\"} %llu\n", kg_event_kind_name(k),
			  (unsigned long long)c.events_lost[k]);
	}
	fd = kg_open_pinned_map("kg_control");
	if (fd >= 0 && bpf_map_lookup_elem(fd, &zero, &ctl) == 0 && ctl.heartbeat_ns) {
		uint64_t mono = kg_now_mono_ns();

		P("# HELP kgate_heartbeat_age_seconds Time since the controller's last heartbeat.\n"
		  "# TYPE kgate_heartbeat_age_seconds gauge\nkgate_heartbeat_age_seconds %.3f\n",
		  mono > ctl.heartbeat_ns ? (double)(mono - ctl.heartbeat_ns) / 1e9 : 0.0);
	}
	if (fd >= 0)
		close(fd);
	/* the queue: read only (no lock, no expiry: a scrape changes nothing) */
	if (kg_approvals_list(api->q, false, &reqs, &n) == 0) {
		for (i = 0; i < n; i++) {
			if (reqs[i].state != KG_APPR_PENDING || reqs[i].expires_ns <= now)
				continue;
			pending++;
			if (now > reqs[i].created_ns && now - reqs[i].created_ns > oldest)
				oldest = now - reqs[i].created_ns;
		}
		free(reqs);
		P("# HELP kgate_approvals_pending Requests waiting for a human decision.\n"
		  "# TYPE kgate_approvals_pending gauge\nkgate_approvals_pending %llu\n"
		  "# HELP kgate_approvals_pending_oldest_age_seconds How long the oldest pending "
		  "request has waited (0 when none waits).\n"
		  "# TYPE kgate_approvals_pending_oldest_age_seconds gauge\n"
		  "kgate_approvals_pending_oldest_age_seconds %.3f\n",
		  (unsigned long long)pending, (double)oldest / 1e9);
	}
	if (kg_registry_list(&jobs, &njobs) == 0) {
		for (i = 0; i < njobs; i++)
			full += jobs[i].full;
		free(jobs);
		P("# HELP kgate_jobs Governed jobs in the registry, by enforcement mode.\n"
		  "# TYPE kgate_jobs gauge\nkgate_jobs{mode=\"full\"} %zu\n"
		  "kgate_jobs{mode=\"degraded\"} %zu\n", full, njobs - full);
	}
	kg_feed_metrics(api->feed, &buf, &len, &cap);
	kg_dispatch_metrics(api->dispatch, &buf, &len, &cap);
	P("# HELP kgate_api_responses_total HTTP API responses, by status class.\n"
	  "# TYPE kgate_api_responses_total counter\n");
	for (k = 1; k <= 5; k++)
		P("kgate_api_responses_total{class=\"%dxx\"} %llu\n", k,
		  (unsigned long long)atomic_load(&api->by_status[k]));
	P("# HELP kgate_api_auth_failures_total Requests with an unknown, revoked or malformed "
	  "token.\n# TYPE kgate_api_auth_failures_total counter\nkgate_api_auth_failures_total %llu\n"
	  "# HELP kgate_api_rate_limited_total Requests refused (429) after too many failed "
	  "authentications from their address.\n# TYPE kgate_api_rate_limited_total counter\n"
	  "kgate_api_rate_limited_total %llu\n"
	  "# HELP kgate_api_event_streams Open event streams.\n"
	  "# TYPE kgate_api_event_streams gauge\nkgate_api_event_streams %u\n",
	  (unsigned long long)atomic_load(&api->auth_failures),
	  (unsigned long long)atomic_load(&api->rate_limited), atomic_load(&api->streams));
	if (!buf) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
		return;
	}
	resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(buf);
		return;
	}
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	kg_api_headers(resp, false);
	kg_api_respond(r, MHD_HTTP_OK, resp);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * job/job_dns.c - the job's resolver, seen from its controller
 * (job/job_int.h; dns/resolver.h is the resolver): started before the
 * command runs when the policy has host rules, its decisions written into
 * the trail from the controller's thread, a pushed generation handed to it.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dns/match.h"
#include "job/job_int.h"
#include "kernel/maps.h"

/* Host rules: the job's DNS goes to a resolver of its own, started before
 * the command runs anything (without it, nothing could resolve). */
int kgj_start_resolver(struct job *j)
{
	struct kg_resolver_cfg cfg = {
		.cgid = j->cg.id, .doc = j->doc, .policy_id = j->policy_id,
		.upstream = j->spec->dns_upstream ? j->spec->dns_upstream
						  : getenv("KGATE_DNS_UPSTREAM"),
	};
	const char *floor = getenv("KGATE_DNS_TTL_FLOOR_SEC");
	char where[96];

	if (!kg_dns_policy_has_hosts(j->doc))
		return 0;
	/* shorter than the default floor: for tests of expiry, never below 1 s */
	if (floor && atoi(floor) >= 1 && atoi(floor) < KG_DNS_TTL_FLOOR_SEC)
		cfg.ttl_floor_sec = (unsigned int)atoi(floor);
	if (cfg.upstream && !*cfg.upstream)
		cfg.upstream = NULL;
	j->dns = kg_resolver_start(&cfg);
	if (!j->dns)
		return kg_err("run: the policy has host rules but the job's resolver could not "
			      "start (see above)");
	j->dns_policy_id = j->policy_id;
	kg_resolver_addr(j->dns, where, sizeof(where));
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: the job's DNS (TCP and UDP port 53, any address) "
			"goes to kgate's resolver on %s, upstream %s\n", where,
			cfg.upstream ? cfg.upstream : "from /etc/resolv.conf");
	return 0;
}

static json_t *dns_extra(const struct kg_dns_record *d)
{
	json_t *extra = json_pack("{s:s,s:s,s:s,s:s}", "outcome",
				  d->decision == KG_DEC_ALLOW ? "allowed" : "refused",
				  "qtype", d->qtype, "proto", d->proto, "rcode", d->rcode);
	json_t *a;
	unsigned int i;

	if (!extra)
		return NULL;
	if (d->naddrs) {
		a = json_array();
		for (i = 0; i < d->naddrs && i < KG_DNS_REC_ADDRS; i++)
			json_array_append_new(a, json_string(d->addrs[i]));
		json_object_set_new(extra, "answers", a);
		if (d->naddrs > KG_DNS_REC_ADDRS)
			json_object_set_new(extra, "answers_total", json_integer(d->naddrs));
		if (d->decision == KG_DEC_ALLOW) {
			json_object_set_new(extra, "ttl", json_integer(d->ttl));
			json_object_set_new(extra, "kept_sec", json_integer(d->expires_sec));
		}
	}
	if (d->ncnames) {
		a = json_array();
		for (i = 0; i < d->ncnames; i++)
			json_array_append_new(a, json_string(d->cnames[i]));
		json_object_set_new(extra, "cnames", a);
	}
	return extra;
}

/* Resolution decisions into the audit trail, from the controller's thread
 * (the trail has one writer here); records the resolver could not queue are
 * counted and said. */
void kgj_drain_dns(struct job *j)
{
	const struct kg_policy_doc *doc = j->dns_doc ? j->dns_doc : j->doc;
	struct kg_resolver_stats st;
	struct kg_dns_record d;
	struct kg_rec rec;

	if (!j->dns)
		return;
	while (kg_resolver_next(j->dns, &d)) {
		const struct kg_rule *r = d.rule_num ? kg_policy_rule_by_num(doc, d.rule_num) : NULL;
		json_t *extra = dns_extra(&d);

		kgj_job_rec(j, &rec, "decision");
		kg_rec_str(&rec, "op", "dns_resolve");
		kg_rec_str(&rec, "target", d.name);
		kg_rec_str(&rec, "decision", kg_decision_name(d.decision));
		kg_rec_str(&rec, "rule", r ? r->id : NULL);
		kg_rec_str(&rec, "reason", d.reason[0] ? d.reason : NULL);
		kg_rec_extra(&rec, extra);
		kgj_job_record(j, &rec);
		json_decref(extra);
		/* a dead upstream fails every allowed name: said once, and again
		 * after it answered in between */
		if (d.decision == KG_DEC_ALLOW && !strcmp(d.rcode, "SERVFAIL") &&
		    !strncmp(d.reason, "upstream", 8) && !j->dns_upstream_said) {
			const char *up = j->spec->dns_upstream ? j->spec->dns_upstream
							       : getenv("KGATE_DNS_UPSTREAM");

			kg_warn("dns: the upstream resolver (%s) did not answer (%s): the job's "
				"allowed names get SERVFAIL until it does (--dns-upstream ADDR "
				"chooses another)", up && *up ? up : "from /etc/resolv.conf", d.reason);
			j->dns_upstream_said = true;
		} else if (d.decision == KG_DEC_ALLOW && strcmp(d.rcode, "SERVFAIL")) {
			j->dns_upstream_said = false;
		}
	}
	kg_resolver_stats(j->dns, &st);
	if (st.records_lost > j->dns_lost_said) {
		json_t *extra = json_pack("{s:I}", "records_lost",
					  (json_int_t)(st.records_lost - j->dns_lost_said));

		kgj_job_rec(j, &rec, "events_lost");
		kg_rec_str(&rec, "op", "dns_resolve");
		kg_rec_str(&rec, "reason", "resolution records the controller could not keep up with");
		kg_rec_extra(&rec, extra);
		kgj_job_record(j, &rec);
		json_decref(extra);
		j->dns_lost_said = st.records_lost;
	}
	if (st.dropped + st.unsent > j->dns_dropped_said) {
		json_t *extra = json_pack("{s:I,s:I}", "queries_dropped", (json_int_t)st.dropped,
					  "answers_unsent", (json_int_t)st.unsent);

		kgj_job_rec(j, &rec, "events_lost");
		kg_rec_str(&rec, "op", "dns_resolve");
		kg_rec_str(&rec, "reason", "the job's DNS queries the kernel dropped before kgate's "
			   "resolver read them (its receive queue was full), or answers it could "
			   "not send back (totals so far)");
		kg_rec_extra(&rec, extra);
		kgj_job_record(j, &rec);
		json_decref(extra);
		j->dns_dropped_said = st.dropped + st.unsent;
	}
}

/* A push flipped the job's generation: the resolver decides under it, and
 * rewrites what the job learnt with the new rules. */
void kgj_follow_pushed_dns(struct job *j)
{
	struct kg_policy_doc *doc, *old = j->dns_doc;
	struct kg_job kj;

	if (!j->dns || kg_maps_get_job(j->loader, j->cg.id, &kj) || kj.policy_id == j->dns_policy_id)
		return;
	doc = kj.policy_id == j->policy_id ? NULL : kg_snapshot_load_doc(kj.policy_id);
	if (kj.policy_id != j->policy_id && !doc) {
		kg_warn("run: policy generation %u of job %s has no readable snapshot: the "
			"resolver refuses every name", kj.policy_id, j->trace);
		kg_resolver_set_policy(j->dns, NULL, kj.policy_id);
	} else {
		kg_resolver_set_policy(j->dns, doc ? doc : j->doc, kj.policy_id);
	}
	j->dns_doc = doc;
	kg_policy_free(old);
	j->dns_policy_id = kj.policy_id;
}

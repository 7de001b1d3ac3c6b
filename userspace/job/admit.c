// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * admit.c - the admission step of `kgate run`: may this caller launch at
 * all (the policy's launchers), what do the admission rules decide, and
 * what that decision asks for before the launch: a human's approval
 * (queued, waited for visibly) or a token of the launch rate.  Every
 * outcome is audited under the job's trace id.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "policy/admission.h"
#include "job/admit.h"
#include "approve/approvals.h"
#include "cli/cmds.h"
#include "common.h"
#include "record/recorder.h"

static struct kg_approvals *approvals_of(struct kg_admit *a)
{
	struct kg_approvals_cfg cfg;

	if (!a->approvals) {
		kg_approvals_cfg_from_doc(&cfg, a->doc);
		cfg.audit = a->audit;
		a->approvals = kg_approvals_open(&cfg);
	}
	return a->approvals;
}

/* The launch itself as an action: its identity is a digest of which job
 * (its trace: two launches are two requests, never merged into one that
 * one approval would start both of) and what would run (command, topic,
 * tenant, risk tags, labels) under which policy. */
static void launch_key(const struct kg_admit *j, struct kg_grant_key *key)
{
	const struct kg_job_spec *s = j->spec;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t i;

	memset(key, 0, sizeof(*key));
	key->op = KG_OP_ADMISSION;
	if (!ctx)
		return;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, j->trace, strlen(j->trace) + 1);
	for (i = 0; s->argv[i]; i++)
		EVP_DigestUpdate(ctx, s->argv[i], strlen(s->argv[i]) + 1);
	EVP_DigestUpdate(ctx, "\x1e", 1);
	EVP_DigestUpdate(ctx, s->topic ? s->topic : "", s->topic ? strlen(s->topic) + 1 : 1);
	EVP_DigestUpdate(ctx, s->tenant ? s->tenant : "", s->tenant ? strlen(s->tenant) + 1 : 1);
	for (i = 0; i < s->nrisk_tags; i++)
		EVP_DigestUpdate(ctx, s->risk_tags[i], strlen(s->risk_tags[i]) + 1);
	if (s->labels && json_object_size(s->labels)) {
		/* the labels too (in key order), so an approval of a launch
		 * labelled {"mcp.action":"read"} is not one of a "write" */
		char *l = json_dumps(s->labels, JSON_COMPACT | JSON_SORT_KEYS);

		EVP_DigestUpdate(ctx, "\x1f", 1);
		if (l)
			EVP_DigestUpdate(ctx, l, strlen(l) + 1);
		free(l);
	}
	EVP_DigestUpdate(ctx, j->doc->hash, strlen(j->doc->hash));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	memcpy(key->target.raw, md, sizeof(key->target.raw));
}

/* require_approval at admission: queue the launch and wait, visibly, until
 * a human approves or denies it or it expires. */
static int wait_for_launch_approval(struct kg_admit *j, const struct kg_admission_result *res)
{
	struct kg_approvals *q = approvals_of(j);
	struct kg_approval *in, *out;
	char *cmd = kg_join_argv(j->spec->argv);
	int rc = KG_EXIT_DENIED, err;

	in = calloc(1, sizeof(*in));
	out = calloc(1, sizeof(*out));
	if (!q || !in || !out || !cmd) {
		kg_err("run: cannot queue the launch for approval");
		goto out;
	}
	launch_key(j, &in->key);
	kg_strlcpy(in->trace_id, j->trace, sizeof(in->trace_id));
	kg_strlcpy(in->target, cmd, sizeof(in->target));
	kg_strlcpy(in->rule_id, res->rule_id, sizeof(in->rule_id));
	kg_strlcpy(in->policy_hash, j->doc->hash, sizeof(in->policy_hash));
	/* the launcher asks: the dispatcher's principal, else this caller */
	in->requester_uid = j->spec->launcher ? j->spec->launcher->uid : getuid();
	in->requester_pid = getpid();
	err = kg_approvals_request(q, in, out);
	if (err < 0) {
		kg_err("run: cannot queue the launch for approval: %s", err == -ENOSPC ?
		       "the approval queue is full" : strerror(-err));
		goto out;
	}
	fprintf(stderr, "kgate: this launch requires approval (rule %s%s%s)\n"
		"kgate: waiting for a decision on request %s; an approver runs:\n"
		"kgate:   kgate approvals approve %s   (or: kgate approvals deny %s)\n",
		res->rule_id, res->reason && *res->reason ? ": " : "", res->reason ? res->reason : "",
		out->id, out->id, out->id);
	while (!*j->interrupted) {
		kg_approvals_expire(q, 0);
		if (kg_approvals_get(q, out->id, in) == 0 && in->state != KG_APPR_PENDING)
			break;
		usleep(200 * 1000);
	}
	if (*j->interrupted) {
		kg_err("run: interrupted while waiting for approval");
	} else if (in->state == KG_APPR_APPROVED) {
		fprintf(stderr, "kgate: launch approved by uid %ld%s%s\n", in->decided_by,
			in->note[0] ? ": " : "", in->note);
		rc = 0;
	} else {
		kg_err("run: launch %s (request %s)%s%s", in->state == KG_APPR_DENIED ? "denied" :
		       "not approved in time", out->id, in->note[0] ? ": " : "", in->note);
	}
out:
	free(cmd);
	free(in);
	free(out);
	return rc;
}

/* A retry of a dispatched job (attempt > 1, max_retries): the launch of
 * this very job (same trace, same action digest, same policy) was approved
 * already; the approval covers its retries, which the policy allowed. */
static bool approved_before(struct kg_admit *j, char *id, size_t idlen)
{
	struct kg_approvals *q = approvals_of(j);
	struct kg_approval *v = NULL;
	struct kg_grant_key key;
	char hash[KG_HASH_HEX_LEN + 1];
	size_t n = 0, i;
	bool found = false;

	if (!q || j->spec->attempt < 2)
		return false;
	launch_key(j, &key);
	kg_approvals_action_hash(&key, hash);
	if (kg_approvals_list(q, true, &v, &n))
		return false;
	for (i = 0; i < n && !found; i++)
		if (v[i].state == KG_APPR_APPROVED && !strcmp(v[i].trace_id, j->trace) &&
		    !strcmp(v[i].action_hash, hash) && !strcmp(v[i].policy_hash, j->doc->hash)) {
			found = true;
			snprintf(id, idlen, "%s", v[i].id);
		}
	free(v);
	return found;
}

/* Admission throttle: a token bucket per (policy, rule) shared by every
 * `kgate run` through a locked file in the state dir.  true = a token was
 * taken; false = over the rate (or the bucket could not be read: refuse). */
static bool take_launch_token(const struct kg_admit *j, const struct kg_admission_result *res)
{
	char dir[4096], path[4300], buf[96];
	double tokens, rate = (double)res->rate_per_sec, burst = (double)res->burst;
	uint64_t now = kg_now_mono_ns(), last;
	bool ok = false;
	ssize_t n;
	int fd;

	if (kg_snprintf(dir, sizeof(dir), "%s/throttle", kg_state_dir()) || kg_mkdir_p(dir, 0700) ||
	    kg_snprintf(path, sizeof(path), "%s/%.16s-%s", dir, j->doc->hash, res->rule_id))
		return false;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	if (n <= 0 || sscanf(buf, "%lf %" SCNu64, &tokens, &last) != 2 || last > now) {
		tokens = burst;
		last = now;
	}
	tokens += (double)(now - last) / 1e9 * rate;
	if (tokens > burst)
		tokens = burst;
	if (tokens >= 1.0) {
		tokens -= 1.0;
		ok = true;
	}
	n = snprintf(buf, sizeof(buf), "%.6f %" PRIu64 "\n", tokens, now);
	if (ftruncate(fd, 0) || pwrite(fd, buf, n, 0) != n)
		ok = false;
	close(fd);
	return ok;
}

/* Empty launchers = anyone (admission rules still decide). */
bool kg_may_launch(const struct kg_principals *p, const struct kg_actor *a)
{
	size_t i, k;

	if (!p->nuids && !p->ngids)
		return true;
	for (i = 0; i < p->nuids; i++)
		if (p->uids[i] == a->uid)
			return true;
	for (i = 0; i < p->ngids; i++)
		for (k = 0; k < a->ngids; k++)
			if (p->gids[i] == a->gids[k])
				return true;
	return false;
}

int kg_admit(struct kg_admit *j, struct kg_admission_result *res)
{
	const struct kg_job_spec *s = j->spec;
	struct kg_launch_req req = {
		.topic = s->topic, .tenant = s->tenant, .risk_tags = s->risk_tags,
		.nrisk_tags = s->nrisk_tags,
	};
	gid_t groups[256];
	uint32_t gids[257];
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = getgrgid(getgid());
	struct kg_actor actor = { .uid = getuid(), .user = pw ? pw->pw_name : NULL,
				  .role = gr ? gr->gr_name : NULL };
	struct kg_label labels[KG_MAX_LABELS];
	const char *lkey;
	char *cmdline;
	json_t *extra, *lval;
	struct kg_rec rec;
	int n, i;

	json_object_foreach(s->labels, lkey, lval)
		if (req.nlabels < ARRAY_SIZE(labels) && json_is_string(lval))
			labels[req.nlabels++] = (struct kg_label){ lkey, json_string_value(lval) };
	req.labels = labels;

	n = getgroups(ARRAY_SIZE(groups), groups);
	gids[0] = getgid();
	for (i = 0; i < n; i++)
		gids[i + 1] = groups[i];
	actor.gids = gids;
	actor.ngids = n > 0 ? n + 1 : 1;
	const struct kg_actor *who = s->launcher ? s->launcher : &actor;

	if (kg_admission_decide(j->doc, who, &req, res))
		return kg_err("run: admission failed");
	if (!kg_may_launch(&j->doc->launchers, who)) {
		/* who may launch at all is policy too, before any admission rule */
		res->decision = KG_DEC_DENY;
		res->rule = NULL;
		res->rule_id = "kgate:launchers";
		res->reason = "the caller is not among the policy's launchers";
	}
	cmdline = kg_join_argv(s->argv);
	extra = json_pack("{s:s?,s:s?,s:s?,s:O?}", "topic", s->topic, "tenant", s->tenant,
			  "role", who->role, "labels", s->labels);
	if (extra && s->attempt > 1)
		json_object_set_new(extra, "attempt", json_integer(s->attempt));
	kg_rec_controller(&rec, "admission", j->doc);
	kg_rec_str(&rec, "trace", j->trace);
	kg_rec_str(&rec, "op", "admission");
	kg_rec_str(&rec, "target", cmdline);
	kg_rec_str(&rec, "decision", kg_decision_name(res->decision));
	kg_rec_str(&rec, "rule", res->rule_id);
	kg_rec_str(&rec, "reason", res->reason);
	kg_rec_extra(&rec, extra);
	if (j->audit && kg_rec_append(j->audit, &rec))
		kg_warn("audit append failed for an admission record");
	json_decref(extra);
	free(cmdline);
	if (s->live)
		fprintf(s->live, "kgate: admission %s (rule %s%s%s)\n",
			kg_decision_name(res->decision), res->rule_id,
			res->reason && *res->reason ? ": " : "", res->reason ? res->reason : "");
	switch (res->decision) {
	case KG_DEC_ALLOW:
	case KG_DEC_AUDIT:
	case KG_DEC_ALLOW_WITH_CONSTRAINTS:
		return 0;
	case KG_DEC_THROTTLE:
		if (take_launch_token(j, res))
			return 0;
		kg_rec_controller(&rec, "admission", j->doc);
		kg_rec_str(&rec, "trace", j->trace);
		kg_rec_str(&rec, "op", "admission");
		kg_rec_str(&rec, "target", j->spec->argv[0]);
		kg_rec_str(&rec, "decision", "throttle");
		kg_rec_str(&rec, "rule", res->rule_id);
		kg_rec_str(&rec, "reason", "over the launch rate: refused");
		if (j->audit && kg_rec_append(j->audit, &rec))
			kg_warn("audit append failed for an admission record");
		kg_err("run: launch refused by rule %s: more than %llu launches per second "
		       "(burst %llu)", res->rule_id, (unsigned long long)res->rate_per_sec,
		       (unsigned long long)res->burst);
		return KG_EXIT_DENIED;
	case KG_DEC_REQUIRE_APPROVAL: {
		char id[KG_APPR_ID_LEN + 1];

		if (approved_before(j, id, sizeof(id))) {
			if (s->live)
				fprintf(s->live, "kgate: attempt %u of this job: its launch was "
					"approved (request %s)\n", s->attempt, id);
			return 0;
		}
		return wait_for_launch_approval(j, res);
	}
	default:
		kg_err("run: launch denied by rule %s", res->rule_id);
		return KG_EXIT_DENIED;
	}
}


// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_approvals.c - the approval queue and the grants it installs.
 *
 * The first half works on the queue alone (files in a mkdtemp state dir):
 * merging, bounds, persistence, expiry, who may decide.  The second half
 * runs a real governed job on this host (cgroup-BPF connect programs,
 * kg_grants consumed by the kernel): one-shot and TTL grants, stale policy
 * re-evaluation, and that a grant never reaches another job, target or op.
 */
#include <bpf/bpf.h>

#include "appr_fixture.h"
#include "cli/cmds.h"

static char qtmp[256];

/* Queue only: state and audit in a fresh directory, no BPF pins at all
 * (so every job lookup says "gone"). */
static struct kg_approvals *queue_setup(const struct kg_approvals_cfg *cfg)
{
	char path[512];
	struct kg_approvals *q;

	snprintf(qtmp, sizeof(qtmp), "/tmp/kgate-test-q.XXXXXX");
	if (!mkdtemp(qtmp))
		SKIP("mkdtemp failed");
	snprintf(path, sizeof(path), "%s/state", qtmp);
	setenv("KGATE_STATE_DIR", path, 1);
	snprintf(path, sizeof(path), "%s/audit", qtmp);
	setenv("KGATE_AUDIT_DIR", path, 1);
	snprintf(path, sizeof(path), "%s/nopins", qtmp);
	setenv("KGATE_BPFFS", path, 1);
	q = kg_approvals_open(cfg);
	if (!q)
		SKIP("cannot open the queue");
	return q;
}

static void queue_teardown(struct kg_approvals *q)
{
	char cmd[400];

	kg_approvals_close(q);
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", qtmp);
	if (system(cmd))
		printf("  could not remove %s\n", qtmp);
}

static struct kg_approval req_for(uint64_t cgid, uint32_t op, const char *ip4, uint16_t port,
				  uint32_t requester)
{
	struct kg_approval a;

	memset(&a, 0, sizeof(a));
	a.key.cgid = cgid;
	a.key.op = op;
	a.key.target.net.addr[10] = a.key.target.net.addr[11] = 0xff;
	inet_pton(AF_INET, ip4, &a.key.target.net.addr[12]);
	a.key.target.net.port = port;
	a.key.target.net.proto = 6;
	snprintf(a.target, sizeof(a.target), "%s:%u/tcp", ip4, port);
	snprintf(a.trace_id, sizeof(a.trace_id), "job-%016llx", (unsigned long long)cgid);
	snprintf(a.rule_id, sizeof(a.rule_id), "prod-push");
	snprintf(a.policy_hash, sizeof(a.policy_hash), "%064d", 7);
	a.policy_id = 42;
	a.requester_uid = requester;
	return a;
}

static size_t count_pending(struct kg_approvals *q)
{
	struct kg_approval *v;
	size_t n;

	if (kg_approvals_list(q, false, &v, &n))
		return (size_t)-1;
	free(v);
	return n;
}

TEST(identical_requests_are_merged_not_duplicated)
{
	struct kg_approvals *q = queue_setup(NULL);
	struct kg_approval in = req_for(100, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000), a, b, c;

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "first request created");
	ASSERT_EQ(kg_approvals_request(q, &in, &b), KG_APPR_MERGED, "same action merged");
	ASSERT_STREQ(a.id, b.id, "merged into the same request");
	ASSERT_EQ(b.count, 2, "counter incremented");
	ASSERT_EQ(count_pending(q), 1, "one pending request");
	/* a different target, op or job is a different action */
	in.key.target.net.port = 444;
	ASSERT_EQ(kg_approvals_request(q, &in, &c), KG_APPR_CREATED, "other port: new request");
	in = req_for(101, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000);
	ASSERT_EQ(kg_approvals_request(q, &in, &c), KG_APPR_CREATED, "other job: new request");
	in = req_for(100, KG_OP_NET_SEND, "10.20.0.5", 443, 1000);
	ASSERT_EQ(kg_approvals_request(q, &in, &c), KG_APPR_CREATED, "other op: new request");
	ASSERT_EQ(count_pending(q), 4, "four pending requests");
	/* the action hash is sha256 of the exact grant key */
	kg_approvals_action_hash(&a.key, b.action_hash);
	ASSERT_STREQ(a.action_hash, b.action_hash, "action hash is the key's sha256");
	ASSERT_EQ(strlen(a.action_hash), 64, "hex sha256");
	ASSERT_EQ(fx_audit_count("requested"), 4, "each creation audited once");
	queue_teardown(q);
}

TEST(full_queue_refuses_new_escalations_and_audits_it)
{
	struct kg_approvals_cfg cfg = { .queue_max = 3 };
	struct kg_approvals *q = queue_setup(&cfg);
	struct kg_approval in, a;
	struct kg_event e = {};
	int i;

	for (i = 0; i < 3; i++) {
		in = req_for(7, KG_OP_NET_CONNECT, "10.0.0.1", 1000 + i, 1000);
		ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "fills the queue");
	}
	in = req_for(7, KG_OP_NET_CONNECT, "10.0.0.1", 2000, 1000);
	ASSERT_EQ(kg_approvals_request(q, &in, &a), -ENOSPC, "full queue refuses, distinct error");
	ASSERT_EQ(count_pending(q), 3, "nothing stored");
	/* merging into an existing request still works when full */
	in = req_for(7, KG_OP_NET_CONNECT, "10.0.0.1", 1000, 1000);
	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_MERGED, "merge needs no room");
	/* the bound is per job: another job is not starved by this one */
	in = req_for(8, KG_OP_NET_CONNECT, "10.0.0.1", 2000, 1000);
	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "other job has room");
	/* the recorder's entry point audits the refusal */
	e.kind = KG_EV_ESCALATION;
	e.job_cgid = 7;
	e.op = KG_OP_NET_CONNECT;
	e.uid = 1000;
	e.target.net.port = 3000;
	ASSERT_EQ(kg_approvals_on_escalation(q, &e, "job-7", "h", "prod", "x:3000/tcp"), -ENOSPC,
		  "escalation refused");
	ASSERT_EQ(fx_audit_count("queue_full"), 1, "queue full audited");
	e.kind = KG_EV_DECISION;
	ASSERT_EQ(kg_approvals_on_escalation(q, &e, "job-7", "h", "prod", "x"), 0,
		  "non-escalation events ignored");
	queue_teardown(q);
}

TEST(requests_survive_a_controller_restart)
{
	struct kg_approvals *q = queue_setup(NULL);
	struct kg_approval in = req_for(100, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000), a, b;
	struct kg_approvals *q2;

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	kg_approvals_close(q);
	q2 = kg_approvals_open(NULL);	/* "restart": a new process would see the same */
	ASSERT_TRUE(q2 != NULL, "re-open");
	ASSERT_OK(kg_approvals_get(q2, a.id, &b), "request found after re-open");
	ASSERT_EQ(b.state, KG_APPR_PENDING, "still pending");
	ASSERT_TRUE(!memcmp(&a.key, &b.key, sizeof(a.key)), "grant key intact");
	ASSERT_STREQ(a.target, b.target, "target intact");
	ASSERT_EQ(b.requester_uid, 1000, "requester intact");
	ASSERT_EQ(b.napprover_uids, 1, "approvers stored in the request");
	ASSERT_EQ(b.approver_uids[0], 0, "default approver is root");
	ASSERT_EQ(kg_approvals_request(q2, &in, &b), KG_APPR_MERGED, "merge after re-open");
	queue_teardown(q2);
}

TEST(overdue_requests_expire_as_denials)
{
	struct kg_approvals_cfg cfg = { .timeout_sec = 1 };
	struct kg_approvals *q = queue_setup(&cfg);
	struct kg_approval in = req_for(100, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000), a, b;
	struct kg_approver who = fx_root();

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	ASSERT_EQ(kg_approvals_expire(q, a.created_ns + 500000000ull), 0, "not yet due");
	ASSERT_EQ(kg_approvals_expire(q, a.created_ns + 1000000001ull), 1, "due: expired");
	ASSERT_OK(kg_approvals_get(q, a.id, &b), "still readable");
	ASSERT_EQ(b.state, KG_APPR_EXPIRED, "marked expired");
	ASSERT_EQ(count_pending(q), 0, "no longer pending");
	ASSERT_EQ(fx_audit_count("expired"), 1, "expiry audited");
	ASSERT_EQ(kg_approvals_approve(q, a.id, &who, NULL, &b), -EALREADY,
		  "an expired request cannot be approved");
	/* a new identical escalation starts a fresh request */
	ASSERT_EQ(kg_approvals_request(q, &in, &b), KG_APPR_CREATED, "fresh request");
	queue_teardown(q);
}

TEST(requests_of_vanished_jobs_expire_on_controller_start)
{
	struct kg_approvals *q = queue_setup(NULL);
	struct kg_approval in = req_for(123456, KG_OP_NET_CONNECT, "10.0.0.1", 1, 1000), a, b;

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	ASSERT_EQ(kg_approvals_expire_orphans(q), 1, "job gone: expired");
	ASSERT_OK(kg_approvals_get(q, a.id, &b), "readable");
	ASSERT_EQ(b.state, KG_APPR_EXPIRED, "expired");
	ASSERT_HAS_SUBSTR(b.reason, "gone", "reason says why");
	queue_teardown(q);
}

TEST(self_approval_refused_unless_the_policy_allows_it)
{
	uint32_t uids[] = { 1000, 2000 };
	struct kg_principals p = { .uids = uids, .nuids = 2 };
	struct kg_approvals_cfg cfg = { .approvers = &p };
	struct kg_approvals *q = queue_setup(&cfg);
	struct kg_approval in = req_for(100, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000), a, b;
	struct kg_approver self = { .uid = 1000, .ngids = 1, .gids = { 1000 } };
	struct kg_approver other = { .uid = 2000, .ngids = 1, .gids = { 2000 } };
	char why[256];

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	ASSERT_EQ(kg_approvals_authorize(&a, &self, why, sizeof(why)), -EACCES,
		  "the job's own user is refused");
	ASSERT_HAS_SUBSTR(why, "self-approval", "reason");
	ASSERT_EQ(kg_approvals_approve(q, a.id, &self, NULL, &b), -EACCES, "approve refused");
	ASSERT_EQ(kg_approvals_deny(q, a.id, &self, NULL, &b), -EACCES, "deny refused too");
	ASSERT_OK(kg_approvals_get(q, a.id, &b), "readable");
	ASSERT_EQ(b.state, KG_APPR_PENDING, "refusal changed nothing");
	ASSERT_OK(kg_approvals_authorize(&a, &other, why, sizeof(why)), "another approver may");
	/* with allow_self_approval the same user may */
	cfg.allow_self_approval = true;
	kg_approvals_set_cfg(q, &cfg);
	in.key.target.net.port = 8443;
	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	ASSERT_OK(kg_approvals_authorize(&a, &self, why, sizeof(why)), "self allowed by policy");
	queue_teardown(q);
}

TEST(non_approvers_are_refused_and_root_is_not_implicit)
{
	uint32_t uids[] = { 1500 }, gids[] = { 4242 };
	struct kg_principals p = { .uids = uids, .nuids = 1, .gids = gids, .ngids = 1 };
	struct kg_approvals_cfg cfg = { .approvers = &p };
	struct kg_approvals *q = queue_setup(&cfg);
	struct kg_approval in = req_for(100, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000), a, b;
	struct kg_approver root = fx_root();
	struct kg_approver stranger = { .uid = 3000, .ngids = 2, .gids = { 3000, 100 } };
	struct kg_approver by_group = { .uid = 3001, .ngids = 2, .gids = { 3001, 4242 } };
	struct kg_approver by_uid = { .uid = 1500, .ngids = 1, .gids = { 1500 } };
	char why[256];

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	ASSERT_EQ(kg_approvals_authorize(&a, &stranger, why, sizeof(why)), -EACCES, "stranger");
	ASSERT_HAS_SUBSTR(why, "not an approver", "reason");
	ASSERT_EQ(kg_approvals_authorize(&a, &root, why, sizeof(why)), -EACCES,
		  "root is not an approver unless listed");
	ASSERT_OK(kg_approvals_authorize(&a, &by_group, why, sizeof(why)), "listed gid");
	ASSERT_OK(kg_approvals_authorize(&a, &by_uid, why, sizeof(why)), "listed uid");
	ASSERT_EQ(kg_approvals_deny(q, a.id, &stranger, "no", &b), -EACCES, "stranger cannot deny");
	ASSERT_OK(kg_approvals_deny(q, a.id, &by_group, "not today", &b), "approver denies");
	ASSERT_EQ(b.state, KG_APPR_DENIED, "denied");
	ASSERT_EQ(b.decided_by, 3001, "decided_by is the caller's uid");
	ASSERT_STREQ(b.note, "not today", "note kept");
	ASSERT_EQ(fx_audit_count("denied"), 1, "denial audited");
	ASSERT_EQ(kg_approvals_approve(q, a.id, &by_uid, NULL, &b), -EALREADY,
		  "a denied request cannot be approved afterwards");
	queue_teardown(q);
}

TEST(cli_lists_and_refuses_unknown_ids)
{
	struct kg_approvals *q = queue_setup(NULL);
	struct kg_approval in = req_for(100, KG_OP_NET_CONNECT, "10.20.0.5", 443, 1000), a;
	const char *bin = getenv("KGATE_BIN") ? getenv("KGATE_BIN") : "build-san/kgate";
	char cmd[1024], out[8192];
	FILE *p;
	size_t n;
	int st;

	ASSERT_EQ(kg_approvals_request(q, &in, &a), KG_APPR_CREATED, "created");
	snprintf(cmd, sizeof(cmd), "%s approvals list --json 2>&1", bin);
	p = popen(cmd, "r");
	ASSERT_TRUE(p != NULL, "popen");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ASSERT_EQ(WEXITSTATUS(st), 0, "list exit 0");
	ASSERT_HAS_SUBSTR(out, a.id, "request listed");
	ASSERT_HAS_SUBSTR(out, "\"state\": \"pending\"", "state shown");
	ASSERT_HAS_SUBSTR(out, "10.20.0.5:443/tcp", "target shown");
	ASSERT_HAS_SUBSTR(out, "\"age_sec\": ", "each request's age");
	snprintf(cmd, sizeof(cmd), "%s approvals list 2>&1", bin);
	p = popen(cmd, "r");
	ASSERT_TRUE(p != NULL, "popen");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	pclose(p);
	ASSERT_HAS_SUBSTR(out, "AGE", "an AGE column");
	{
		char want[96];

		snprintf(want, sizeof(want), "1 pending; the oldest, %s, has waited ", a.id);
		ASSERT_HAS_SUBSTR(out, want, "the oldest request's age");
	}
	snprintf(cmd, sizeof(cmd), "%s approvals approve 000000000000 >/dev/null 2>&1", bin);
	ASSERT_EQ(WEXITSTATUS(system(cmd)), KG_EXIT_USAGE, "unknown id: usage exit");
	snprintf(cmd, sizeof(cmd), "%s approvals approve %s --once --ttl 5 >/dev/null 2>&1", bin, a.id);
	ASSERT_EQ(WEXITSTATUS(system(cmd)), KG_EXIT_USAGE, "--once with --ttl refused");
	queue_teardown(q);
}

/* ---- with the kernel ------------------------------------------------------------------ */

#define APPR_POLICY(port, port2, extra)						\
	"{\"version\":1,\"name\":\"appr-test\",\"default\":\"allow\","		\
	"\"runtime_defaults\":{\"net\":\"allow\"}," extra			\
	"\"approvals\":{\"timeout_sec\":60,\"allow_self_approval\":true,"	\
	"\"approvers\":{\"uids\":[0]}},"					\
	"\"runtime\":["								\
	"{\"id\":\"prod-push\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[" port "," port2 "]},"	\
	"\"decision\":\"require_approval\",\"reason\":\"needs review\"},"	\
	"{\"id\":\"other\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}" \
	"]}"

static void kernel_setup(struct fx *f, int *lfd, int *port, int *port2, int *lfd2)
{
	char json[2048];

	*lfd = fx_listen("127.0.0.1", port);
	*lfd2 = fx_listen("127.0.0.1", port2);
	if (*lfd < 0 || *lfd2 < 0)
		SKIP("cannot listen on 127.0.0.1");
	snprintf(json, sizeof(json), APPR_POLICY("%d", "%d", ""), *port, *port2);
	fx_setup(f, json);
}

/* Escalate (refused connect), then approve the request it raised. */
static int escalate_and_approve(struct fx *f, struct fx_job *j, int port,
				const struct kg_grant_opts *g, struct kg_approval *a)
{
	struct kg_approver root = fx_root();

	if (fx_do(f, j, FX_TCP, "127.0.0.1", port) != EPERM)
		return -1;
	if (fx_pending(f, j, a))
		return -2;
	return kg_approvals_approve(f->q, a->id, &root, g, a);
}

TEST(one_shot_grant_is_consumed_by_the_kernel_exactly_once)
{
	struct kg_grant_opts once = { .once = true, .note = "ok once" };
	struct kg_approval a;
	struct fx_job *j;
	struct fx f;
	int lfd, lfd2, port, port2;

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	j = fx_job(&f);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "first connect refused");
	ASSERT_EQ(fx_count_events(&f, KG_EV_ESCALATION, j->cg.id), 1, "escalation event");
	ASSERT_EQ(f.escalations_queued, 1, "request queued from the event");
	ASSERT_OK(fx_pending(&f, j, &a), "pending request");
	ASSERT_EQ(a.policy_id, f.policy_id, "bound to the policy id");
	ASSERT_STREQ(a.policy_hash, f.doc->hash, "bound to the policy hash");
	ASSERT_STREQ(a.rule_id, "prod-push", "rule id");
	ASSERT_STREQ(a.trace_id, j->trace, "trace id");
	ASSERT_OK(kg_approvals_approve(f.q, a.id, &(struct kg_approver){ .uid = 0 }, &once, &a),
		  "approve --once");
	ASSERT_EQ(a.state, KG_APPR_APPROVED, "approved");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "second connect succeeds");
	ASSERT_EQ(fx_accept_all(lfd), 1, "the listener got it");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "third connect refused again");
	ASSERT_EQ(fx_count_events(&f, KG_EV_ESCALATION, j->cg.id), 2, "escalates again");
	ASSERT_EQ(fx_audit_count("approved"), 1, "approval audited");
	fx_teardown(&f);
}

static uint64_t appr_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A grant with a ttl allows its action until the ttl has passed, then not.
 * The ttl (5 s) leaves room for a loaded machine between the approval and
 * the first uses; the expiry is then awaited by polling, and a refusal
 * before the ttl could have passed (it runs from inside the CLI call, so
 * from no earlier than t0) is a failure as much as no refusal at all. */
#define TTL_SEC 5
TEST(ttl_grant_works_until_it_expires)
{
	struct kg_approval a;
	struct fx_job *j;
	struct fx f;
	int lfd, lfd2, port, port2, rc = 0;
	uint64_t t0, t1, now;

	const char *bin = getenv("KGATE_BIN") ? getenv("KGATE_BIN") : "build-san/kgate";
	char cmd[1024];

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	j = fx_job(&f);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "refused, escalated");
	ASSERT_OK(fx_pending(&f, j, &a), "pending");
	/* through the CLI: the pinned maps, the caller's real uid */
	snprintf(cmd, sizeof(cmd), "%s approvals approve %s --ttl %d --note cli", bin, a.id, TTL_SEC);
	t0 = appr_mono_ms();
	ASSERT_EQ(WEXITSTATUS(system(cmd)), 0, "kgate approvals approve --ttl 5");
	t1 = appr_mono_ms();
	ASSERT_OK(kg_approvals_get(f.q, a.id, &a), "readable");
	ASSERT_EQ(a.state, KG_APPR_APPROVED, "approved by the CLI");
	ASSERT_STREQ(a.note, "cli", "note");
	ASSERT_EQ(a.ttl_sec, TTL_SEC, "the ttl recorded");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "allowed within the ttl");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "and again (not one-shot)");
	/* then: allowed until the ttl has passed, refused from then on */
	for (;;) {
		now = appr_mono_ms();
		rc = fx_do(&f, j, FX_TCP, "127.0.0.1", port);
		if (rc != 0 || now > t1 + (TTL_SEC + 30) * 1000)
			break;
		usleep(200 * 1000);
	}
	ASSERT_EQ(rc, EPERM, "refused after the ttl (polled up to 30 s past it)");
	if (rc == EPERM)
		ASSERT_TRUE(appr_mono_ms() >= t0 + TTL_SEC * 1000,
			    "not refused before the ttl could have passed");
	fx_teardown(&f);
}
#undef TTL_SEC

TEST(grant_does_not_reach_another_job_target_or_op)
{
	struct kg_approval a;
	struct fx_job *j, *k;
	struct fx f;
	int lfd, lfd2, port, port2;

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	j = fx_job(&f);
	k = fx_job(&f);
	ASSERT_OK(escalate_and_approve(&f, j, port, NULL, &a), "job A: escalate + approve");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "job A: granted target works");
	ASSERT_EQ(fx_do(&f, k, FX_TCP, "127.0.0.1", port), EPERM, "job B: same target refused");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port2), EPERM, "job A: other port refused");
	ASSERT_EQ(fx_do(&f, j, FX_UDP_SEND, "127.0.0.1", port), EPERM,
		  "job A: same address, other op (udp send) refused");
	ASSERT_EQ(fx_do(&f, j, FX_UDP_CONNECT, "127.0.0.1", port), EPERM,
		  "job A: same op, other protocol (udp) refused");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "::ffff:127.0.0.1", port), 0,
		  "job A: the same address spelled v4-mapped is the same action");
	fx_teardown(&f);
}

TEST(policy_change_before_approval_makes_the_request_stale)
{
	struct kg_policy_error perr;
	struct kg_policy_doc *doc2;
	struct kg_approver root = fx_root();
	struct kg_grant_key key;
	struct kg_approval a, b;
	struct kg_grant g;
	struct fx_job *j;
	struct fx f;
	uint32_t id2, old;
	char json[2048];
	int lfd, lfd2, port, port2;

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	j = fx_job(&f);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "refused, escalated");
	ASSERT_OK(fx_pending(&f, j, &a), "pending");
	/* push a new policy to the running job (as `kgate policy push` does) */
	snprintf(json, sizeof(json), APPR_POLICY("%d", "%d", "\"cooldown\":{\"threshold\":100,"
			  "\"window_sec\":1,\"duration_sec\":1},"), port, port2);
	doc2 = kg_policy_load_buffer(json, strlen(json), "v2", NULL, &perr);
	ASSERT_TRUE(doc2 != NULL, "second policy");
	ASSERT_OK(kg_maps_install(f.l, doc2, &id2, NULL), "install");
	ASSERT_OK(kg_maps_switch_job(f.l, j->cg.id, id2, &old), "switch the job");
	ASSERT_EQ(kg_approvals_approve(f.q, a.id, &root, NULL, &b), -ESTALE, "not granted blindly");
	ASSERT_EQ(b.state, KG_APPR_STALE, "marked stale");
	key = a.key;
	ASSERT_NEQ(bpf_map_lookup_elem(kg_loader_map_fd(f.l, "kg_grants"), &key, &g), 0,
		   "no grant installed");
	ASSERT_EQ(fx_audit_count("stale"), 1, "stale audited");
	/* the agent retries: a new request under the new policy, which works */
	f.policy_id = id2;
	ASSERT_OK(escalate_and_approve(&f, j, port, NULL, &b), "re-escalate + approve");
	ASSERT_EQ(b.policy_id, id2, "new request under the new policy");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "granted now");
	/* and a grant made under one policy does not survive a switch back */
	ASSERT_OK(kg_maps_switch_job(f.l, j->cg.id, old, NULL), "switch back");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "grant bound to its policy id");
	kg_policy_free(doc2);
	fx_teardown(&f);
}

TEST(approving_the_request_of_a_finished_job_expires_it)
{
	struct kg_approver root = fx_root();
	struct kg_approval a, b;
	struct fx_job *j;
	struct fx f;
	int lfd, lfd2, port, port2;

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	j = fx_job(&f);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "refused, escalated");
	ASSERT_OK(fx_pending(&f, j, &a), "pending");
	ASSERT_OK(kg_maps_remove_job(f.l, j->cg.id), "job ends");
	ASSERT_EQ(kg_approvals_approve(f.q, a.id, &root, NULL, &b), -ESRCH, "job gone");
	ASSERT_EQ(b.state, KG_APPR_EXPIRED, "expired");
	fx_teardown(&f);
}

static int grants_count(struct fx *f)
{
	struct kg_grant_key cur, next;
	bool first = true;
	int n = 0;

	while (bpf_map_get_next_key(kg_loader_map_fd(f->l, "kg_grants"), first ? NULL : &cur,
				    &next) == 0) {
		first = false;
		cur = next;
		n++;
	}
	return n;
}

TEST(spent_and_ended_grants_leave_the_map)
{
	struct kg_grant_opts once = { .once = true };
	struct kg_approval a;
	struct kg_grant g;
	struct fx_job *j;
	struct fx f;
	int lfd, lfd2, port, port2, gfd;

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	gfd = kg_loader_map_fd(f.l, "kg_grants");
	j = fx_job(&f);
	ASSERT_OK(escalate_and_approve(&f, j, port, &once, &a), "escalate + approve --once");
	ASSERT_OK(bpf_map_lookup_elem(gfd, &a.key, &g), "the grant is in the map");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "its one use");
	ASSERT_NEQ(bpf_map_lookup_elem(gfd, &a.key, &g), 0,
		   "the kernel deleted the spent one-shot grant");
	ASSERT_OK(escalate_and_approve(&f, j, port2, NULL, &a), "a ttl grant on the other port");
	ASSERT_EQ(grants_count(&f), 1, "one grant left");
	ASSERT_OK(kg_maps_remove_job(f.l, j->cg.id), "the job ends");
	ASSERT_EQ(grants_count(&f), 0, "its grants went with it");
	fx_teardown(&f);
}

/* 16,384 dead grants (jobs gone, expired) in the map: a new approval still
 * installs (the full map is swept of what nobody can use) and works. */
TEST(a_full_grant_map_is_swept_for_new_approvals)
{
	struct kg_grant g = { .expires_ns = kg_now_mono_ns() + 3600ull * 1000000000ull,
			      .uses_left = KG_GRANT_UNLIMITED };
	struct kg_grant_key k = { .op = KG_OP_NET_CONNECT };
	struct kg_approval a;
	struct fx_job *j;
	struct fx f;
	int lfd, lfd2, port, port2, gfd, i, put = 0;

	kernel_setup(&f, &lfd, &port, &port2, &lfd2);
	gfd = kg_loader_map_fd(f.l, "kg_grants");
	j = fx_job(&f);
	g.policy_id = f.policy_id;
	for (i = 0; i < KG_MAX_GRANTS; i++) {
		k.cgid = 1000000 + i;	/* no such job */
		if (i % 2) {
			k.cgid = j->cg.id;	/* this job, long expired */
			g.expires_ns = 1;
		}
		k.target.net.port = (uint16_t)i;
		k.target.net.addr[0] = (uint8_t)(i >> 16);
		if (bpf_map_update_elem(gfd, &k, &g, BPF_NOEXIST) == 0)
			put++;
	}
	ASSERT_EQ(put, KG_MAX_GRANTS, "the map is full of dead grants");
	ASSERT_OK(escalate_and_approve(&f, j, port, NULL, &a), "a new approval installs");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "and its grant works");
	ASSERT_EQ(grants_count(&f), 1, "only the live grant is left");
	fx_teardown(&f);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_hold.c - hold mode: connect/sendmsg held on a seccomp listener until
 * a human decides, with the cgroup-BPF programs still deciding for real.
 *
 * The agent is a process in a governed job cgroup that loads the job's
 * seccomp filter with hold_syscalls (kg_seccomp_load), exactly as a job
 * launched by `kgate run` would; the test is its controller.
 */
#include <bpf/bpf.h>

#include "appr_fixture.h"

#define HOLD_POLICY(port, port2, timeout)					\
	"{\"version\":1,\"name\":\"hold-test\",\"default\":\"allow\","		\
	"\"runtime_defaults\":{\"net\":\"allow\"},"				\
	"\"approvals\":{\"timeout_sec\":" timeout ",\"allow_self_approval\":true}," \
	"\"runtime\":["								\
	"{\"id\":\"prod-push\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[" port "," port2 "]},"	\
	"\"decision\":\"require_approval\"},"					\
	"{\"id\":\"other\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}" \
	"]}"

struct env {
	struct fx f;
	struct fx_job *j;
	int lfd, lfd2, port, port2;
};

static void hold_setup(struct env *e, int timeout_sec)
{
	char json[2048];

	e->lfd = fx_listen("127.0.0.1", &e->port);
	e->lfd2 = fx_listen("127.0.0.1", &e->port2);
	if (e->lfd < 0 || e->lfd2 < 0)
		SKIP("cannot listen on 127.0.0.1");
	snprintf(json, sizeof(json), HOLD_POLICY("%d", "%d", "%d"), timeout_sec, e->port, e->port2);
	fx_setup(&e->f, json);
	e->j = fx_job(&e->f);
	if (fx_hold_on(&e->f, e->j))
		SKIP("cannot load the hold filter / take its listener");
}

/* Start an action and serve the listener until it is held (true) or the
 * agent answered (false, *result set). */
static bool becomes_held(struct env *e, int kind, const char *addr, int port, int *result)
{
	struct kg_hold_stats st;
	int i;

	fx_send(e->j, kind, addr, port);
	for (i = 0; i < 50; i++) {
		if (fx_wait_tick(&e->f, e->j, 20, true, result) == 0) {
			kg_hold_stats(e->j->hold, &st);
			printf("  answered %d without being held (received %llu continued %llu)\n",
			       *result, (unsigned long long)st.received, (unsigned long long)st.continued);
			return false;
		}
		if (kg_hold_count(e->j->hold) == 1)
			return true;
	}
	kg_hold_stats(e->j->hold, &st);
	printf("  not held after 1 s (received %llu continued %llu held %llu refused %llu)\n",
	       (unsigned long long)st.received, (unsigned long long)st.continued,
	       (unsigned long long)st.held, (unsigned long long)st.refused);
	return false;
}

static int approve_pending(struct env *e, bool once)
{
	struct kg_grant_opts g = { .once = once };
	struct kg_approver root = fx_root();
	struct kg_approval a;

	if (fx_pending(&e->f, e->j, &a))
		return -ENOENT;
	return kg_approvals_approve(e->f.q, a.id, &root, &g, &a);
}

TEST(held_connect_proceeds_once_approved)
{
	struct kg_hold_stats st;
	struct kg_approval a;
	struct env e;
	int r = -1;

	hold_setup(&e, 60);
	ASSERT_TRUE(becomes_held(&e, FX_TCP, "127.0.0.1", e.port, &r), "connect is held");
	ASSERT_OK(fx_pending(&e.f, e.j, &a), "a pending request exists");
	ASSERT_TRUE(a.held, "marked as held");
	ASSERT_STREQ(a.rule_id, "prod-push", "rule");
	ASSERT_EQ(a.key.op, KG_OP_NET_CONNECT, "op");
	ASSERT_EQ(a.key.target.net.proto, 6, "tcp");
	ASSERT_EQ(fx_wait_tick(&e.f, e.j, 300, true, &r), -ETIMEDOUT, "still waiting");
	ASSERT_EQ(fx_count_events(&e.f, KG_EV_ESCALATION, 0), 0,
		  "held before the kernel saw it: no escalation");
	ASSERT_OK(approve_pending(&e, true), "approve --once");
	ASSERT_OK(fx_wait(&e.f, e.j, &r), "answered");
	ASSERT_EQ(r, 0, "the held connect succeeded");
	ASSERT_EQ(fx_accept_all(e.lfd), 1, "and reached the listener");
	kg_hold_stats(e.j->hold, &st);
	ASSERT_EQ(st.released, 1, "released by the approval");
	ASSERT_EQ(kg_hold_count(e.j->hold), 0, "nothing held any more");
	/* the one-shot grant is spent: the next identical connect is held again */
	ASSERT_TRUE(becomes_held(&e, FX_TCP, "127.0.0.1", e.port, &r), "held again");
	fx_teardown(&e.f);
}

TEST(held_connect_gets_eperm_when_denied)
{
	struct kg_approver root = fx_root();
	struct kg_approval a;
	struct env e;
	int r = -1;

	hold_setup(&e, 60);
	ASSERT_TRUE(becomes_held(&e, FX_TCP, "127.0.0.1", e.port, &r), "held");
	ASSERT_OK(fx_pending(&e.f, e.j, &a), "pending");
	ASSERT_OK(kg_approvals_deny(e.f.q, a.id, &root, "no", &a), "deny");
	ASSERT_OK(fx_wait(&e.f, e.j, &r), "answered");
	ASSERT_EQ(r, EPERM, "denied connect fails with EPERM");
	ASSERT_EQ(fx_accept_all(e.lfd), 0, "nothing reached the listener");
	fx_teardown(&e.f);
}

TEST(held_connect_times_out_to_eperm_and_expires_the_request)
{
	struct kg_approval a, b;
	struct env e;
	int r = -1;

	hold_setup(&e, 1);
	ASSERT_TRUE(becomes_held(&e, FX_TCP, "127.0.0.1", e.port, &r), "held");
	ASSERT_OK(fx_pending(&e.f, e.j, &a), "pending");
	ASSERT_OK(fx_wait_tick(&e.f, e.j, 4000, true, &r), "answered by the timeout");
	ASSERT_EQ(r, EPERM, "timeout resolves to deny");
	ASSERT_OK(kg_approvals_get(e.f.q, a.id, &b), "request readable");
	ASSERT_EQ(b.state, KG_APPR_EXPIRED, "request marked expired");
	ASSERT_EQ(fx_audit_count("expired"), 1, "expiry audited");
	ASSERT_EQ(fx_accept_all(e.lfd), 0, "nothing reached the listener");
	fx_teardown(&e.f);
}

TEST(actions_outside_approval_rules_are_not_held)
{
	struct kg_hold_stats st;
	int other, lfd3;
	struct env e;

	hold_setup(&e, 60);
	lfd3 = fx_listen("127.0.0.1", &other);
	ASSERT_TRUE(lfd3 >= 0, "third listener");
	ASSERT_EQ(fx_do(&e.f, e.j, FX_TCP, "127.0.0.1", other), 0, "allowed port: not held, works");
	ASSERT_EQ(fx_accept_all(lfd3), 1, "reached its listener");
	ASSERT_EQ(fx_do(&e.f, e.j, FX_TCP, "127.0.0.2", e.port), EPERM,
		  "denied address: not held, the kernel refuses it");
	ASSERT_EQ(fx_do(&e.f, e.j, FX_UDP_SEND, "127.0.0.3", 9), 0, "udp elsewhere: not held");
	kg_hold_stats(e.j->hold, &st);
	ASSERT_EQ(st.held, 0, "nothing was held");
	ASSERT_GE(st.continued, 3, "every call was continued to the kernel");
	close(lfd3);
	fx_teardown(&e.f);
}

TEST(held_udp_sendmsg_reads_msg_name_and_is_released)
{
	struct kg_approval a;
	struct env e;
	int r = -1;

	hold_setup(&e, 60);
	ASSERT_TRUE(becomes_held(&e, FX_SENDMSG, "127.0.0.1", e.port, &r), "sendmsg held");
	ASSERT_OK(fx_pending(&e.f, e.j, &a), "pending");
	ASSERT_EQ(a.key.op, KG_OP_NET_SEND, "op is send");
	ASSERT_EQ(a.key.target.net.proto, 17, "udp");
	ASSERT_EQ(a.key.target.net.port, e.port, "port read from msg_name");
	ASSERT_OK(approve_pending(&e, false), "approve");
	ASSERT_OK(fx_wait(&e.f, e.j, &r), "answered");
	ASSERT_EQ(r, 0, "sendmsg went through the kernel with the grant");
	ASSERT_TRUE(becomes_held(&e, FX_UDP_SEND, "127.0.0.1", e.port2, &r) ||
		    r == EPERM, "another port is another action");
	fx_teardown(&e.f);
}

TEST(swapping_the_address_after_approval_gains_nothing)
{
	struct fx_cmd swap = { .kind = FX_SWAP_NOW };
	struct kg_grant_key key;
	struct kg_approval a;
	struct kg_grant g;
	struct env e;
	int r = -1, ack = -1;

	hold_setup(&e, 60);
	/* an agent thread connects to the address a human will approve... */
	ASSERT_TRUE(becomes_held(&e, FX_SWAP_CONNECT, "127.0.0.1", e.port, &r), "held");
	ASSERT_OK(fx_pending(&e.f, e.j, &a), "request for the innocent address");
	ASSERT_EQ(a.key.target.net.port, e.port, "request names the first port");
	/* ...and another thread rewrites the sockaddr while the call waits */
	snprintf(swap.addr2, sizeof(swap.addr2), "127.0.0.1");
	swap.port2 = e.port2;
	ASSERT_EQ(write(e.j->cmd_w, &swap, sizeof(swap)), (ssize_t)sizeof(swap), "swap");
	ASSERT_OK(fx_wait_tick(&e.f, e.j, 2000, false, &ack), "swap done");
	ASSERT_OK(approve_pending(&e, true), "human approves what was shown");
	ASSERT_OK(fx_wait(&e.f, e.j, &r), "answered");
	ASSERT_EQ(r, EPERM, "the kernel re-check refuses the swapped address");
	ASSERT_EQ(fx_accept_all(e.lfd2), 0, "nothing reached the swapped-in listener");
	ASSERT_EQ(fx_accept_all(e.lfd), 0, "nor the approved one");
	ASSERT_GE(fx_count_events(&e.f, KG_EV_ESCALATION, e.j->cg.id), 1,
		  "the kernel escalated the real (swapped) target");
	key = a.key;
	ASSERT_OK(bpf_map_lookup_elem(kg_loader_map_fd(e.f.l, "kg_grants"), &key, &g), "grant exists");
	ASSERT_EQ(g.uses_left, 1, "the grant for the approved address is unused");
	fx_teardown(&e.f);
}

TEST(freeing_the_hold_refuses_what_is_still_held)
{
	struct env e;
	int r = -1;

	hold_setup(&e, 60);
	ASSERT_TRUE(becomes_held(&e, FX_TCP, "127.0.0.1", e.port, &r), "held");
	kg_hold_free(e.j->hold);	/* controller going away: pending resolves to deny */
	e.j->hold = NULL;
	ASSERT_OK(fx_wait(&e.f, e.j, &r), "answered");
	ASSERT_EQ(r, EPERM, "EPERM");
	fx_teardown(&e.f);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_events.c - events.c, the ring-buffer reader, with real kernel
 * events from a governed job on this host (cgroup-BPF connect refusals to
 * 127.0.0.2): each event reaches the sink once, in ring order, with what
 * the kernel decided; a failed commit holds the batch (nothing new, nothing
 * twice) until it succeeds; a record the sink does not take comes again; a
 * new reader skips what a predecessor's sink already has (skip_to).  And
 * the target text of every kind of event, from synthetic events.
 */
#include <bpf/bpf.h>

#include "appr_fixture.h"

#define EVENTS_POLICY							\
	"{\"version\":1,\"name\":\"events-test\",\"default\":\"allow\","	\
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":["		\
	"{\"id\":\"no-127-2\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}"

#define MAXEV 64

struct sink {
	struct kg_event ev[MAXEV];
	uint64_t pos[MAXEV];
	int n, commits, refuse_next;
	bool fail_commit;
};

static int on_event(void *ctx, const struct kg_event *e, uint64_t pos)
{
	struct sink *s = ctx;

	if (s->refuse_next) {
		s->refuse_next--;
		return -ENOMEM;
	}
	if (s->n < MAXEV) {
		s->ev[s->n] = *e;
		s->pos[s->n] = pos;
	}
	s->n++;
	return 0;
}

static int on_commit(void *ctx)
{
	struct sink *s = ctx;

	s->commits++;
	return s->fail_commit ? -EIO : 0;
}

/* a refused connect by the job's agent (no polling of any reader) */
static int refused_connect(struct fx_job *j, int port)
{
	int r;

	fx_send(j, FX_TCP, "127.0.0.2", port);
	if (read(j->res_r, &r, sizeof(r)) != sizeof(r))
		return -1;
	return r;
}

static struct kg_events *reader(struct fx *f, struct sink *s, struct kg_event_sink *ks)
{
	*ks = (struct kg_event_sink){ .event = on_event, .commit = on_commit, .ctx = s };
	return kg_events_open(f->l, ks);
}

/* poll until the sink has want events (or 3 s) */
static void poll_until(struct kg_events *ev, struct sink *s, int want)
{
	int i;

	for (i = 0; i < 300 && s->n < want; i++)
		kg_events_poll(ev, 10);
}

static void setup(struct fx *f)
{
	fx_setup(f, EVENTS_POLICY);
	kg_events_close(f->ev);	/* the readers below are the only ones */
	f->ev = NULL;
}

static bool increasing(const struct sink *s)
{
	int i;

	for (i = 1; i < s->n && i < MAXEV; i++)
		if (s->pos[i] <= s->pos[i - 1])
			return false;
	return true;
}

TEST(each_event_once_in_ring_order_as_decided)
{
	struct kg_event_sink ks;
	struct sink s = {};
	struct kg_events *ev;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct fx_job *j;
	struct fx f;
	char t[128];
	int i;

	setup(&f);
	ev = reader(&f, &s, &ks);
	j = fx_job(&f);
	if (!ASSERT_TRUE(ev && j, "reader and job"))
		return;
	for (i = 0; i < 3; i++)
		ASSERT_EQ(refused_connect(j, 1001 + i), EPERM, "refused by the kernel");
	poll_until(ev, &s, 3);
	ASSERT_EQ(s.n, 3, "three events");
	ASSERT_TRUE(increasing(&s), "positions increase");
	ASSERT_GE(s.commits, 1, "committed");
	ASSERT_FALSE(kg_events_held(ev), "nothing held");
	for (i = 0; i < s.n && i < 3; i++) {
		const struct kg_event *e = &s.ev[i];
		char want[64];

		ASSERT_EQ(e->kind, KG_EV_DECISION, "a decision");
		ASSERT_EQ(e->op, KG_OP_NET_CONNECT, "connect");
		ASSERT_EQ(e->decision, KG_DEC_DENY, "denied");
		ASSERT_EQ(e->rule_id, 1u, "rule 1 (runtime[0])");
		ASSERT_EQ(e->policy_id, f.policy_id, "under the job's generation");
		ASSERT_TRUE(e->job_id == j->job_id && e->job_cgid == j->cg.id, "the job");
		ASSERT_EQ((pid_t)e->pid, j->pid, "the agent");
		kg_event_target(e, t, sizeof(t));
		snprintf(want, sizeof(want), "127.0.0.2:%d/tcp", 1001 + i);
		ASSERT_STREQ(t, want, "target, in the order they happened");
	}
	ASSERT_EQ(kg_events_poll(ev, 50), 0, "nothing again");
	ASSERT_EQ(kg_events_drain(ev), 0, "drain: nothing");
	ASSERT_EQ(s.n, 3, "still three");
	if (ASSERT_OK(bpf_obj_get_info_by_fd(kg_loader_map_fd(f.l, "kg_events"), &info, &len),
		      "ring info"))
		ASSERT_EQ(kg_events_ring_id(ev), info.id, "ring id = the map's id");
	kg_events_close(ev);
	fx_teardown(&f);
}

TEST(a_failed_commit_holds_the_batch)
{
	struct kg_event_sink ks;
	struct sink s = { .fail_commit = true };
	struct kg_events *ev;
	struct fx_job *j;
	struct fx f;
	int i, commits;

	setup(&f);
	ev = reader(&f, &s, &ks);
	j = fx_job(&f);
	if (!ASSERT_TRUE(ev && j, "reader and job"))
		return;
	refused_connect(j, 2001);
	refused_connect(j, 2002);
	poll_until(ev, &s, 2);
	ASSERT_EQ(s.n, 2, "the batch delivered");
	ASSERT_TRUE(kg_events_held(ev), "its commit failed: held");
	refused_connect(j, 2003);
	refused_connect(j, 2004);
	commits = s.commits;
	for (i = 0; i < 5; i++)
		kg_events_poll(ev, 10);
	ASSERT_EQ(s.n, 2, "nothing new while the commit fails");
	ASSERT_GE(s.commits, commits + 1, "the commit is retried");
	ASSERT_TRUE(kg_events_held(ev), "still held");
	s.fail_commit = false;
	poll_until(ev, &s, 4);
	for (i = 0; i < 5; i++)
		kg_events_poll(ev, 10);
	ASSERT_EQ(s.n, 4, "the rest once the commit succeeds, none twice");
	ASSERT_TRUE(increasing(&s), "in order");
	ASSERT_FALSE(kg_events_held(ev), "released");
	kg_events_close(ev);
	fx_teardown(&f);
}

TEST(a_record_not_taken_comes_again)
{
	struct kg_event_sink ks;
	struct sink s = {};
	struct kg_events *ev;
	struct fx_job *j;
	struct fx f;
	int i;

	setup(&f);
	ev = reader(&f, &s, &ks);
	j = fx_job(&f);
	if (!ASSERT_TRUE(ev && j, "reader and job"))
		return;
	for (i = 0; i < 3; i++)
		refused_connect(j, 3001 + i);
	s.refuse_next = 1;	/* the first is not taken (out of memory) */
	poll_until(ev, &s, 3);
	for (i = 0; i < 3; i++)
		kg_events_poll(ev, 10);
	ASSERT_EQ(s.n, 3, "all three, once each");
	ASSERT_TRUE(increasing(&s), "in order: the refused one first");
	if (s.n >= 1) {
		char t[64];

		kg_event_target(&s.ev[0], t, sizeof(t));
		ASSERT_STREQ(t, "127.0.0.2:3001/tcp", "the one not taken, delivered again first");
	}
	kg_events_close(ev);
	fx_teardown(&f);
}

TEST(a_new_reader_skips_what_the_trail_has)
{
	struct kg_event_sink ka, kb;
	struct sink a = { .fail_commit = true }, b = {};
	struct kg_events *ea, *eb;
	struct fx_job *j;
	struct fx f;
	char t[64];
	int i;

	setup(&f);
	ea = reader(&f, &a, &ka);
	j = fx_job(&f);
	if (!ASSERT_TRUE(ea && j, "reader and job"))
		return;
	refused_connect(j, 4001);
	refused_connect(j, 4002);
	poll_until(ea, &a, 2);
	ASSERT_EQ(a.n, 2, "the first reader got them");
	/* it dies before the ring advanced: a successor sees them again... */
	kg_events_close(ea);
	eb = reader(&f, &b, &kb);
	poll_until(eb, &b, 2);
	ASSERT_EQ(b.n, 2, "not advanced: delivered again");
	ASSERT_TRUE(b.n == 2 && b.pos[0] == a.pos[0] && b.pos[1] == a.pos[1], "at the same positions");
	kg_events_close(eb);
	/* ...unless told where the trail ends */
	memset(&b, 0, sizeof(b));
	eb = reader(&f, &b, &kb);
	kg_events_skip_to(eb, a.pos[1]);
	refused_connect(j, 4003);
	poll_until(eb, &b, 1);
	for (i = 0; i < 3; i++)
		kg_events_poll(eb, 10);
	ASSERT_EQ(b.n, 1, "only the new one");
	kg_event_target(&b.ev[0], t, sizeof(t));
	ASSERT_STREQ(t, "127.0.0.2:4003/tcp", "the one after the skip position");
	ASSERT_TRUE(b.pos[0] > a.pos[1], "past it");
	kg_events_close(eb);
	fx_teardown(&f);
}

TEST(target_text_of_every_kind)
{
	struct kg_event e;
	char t[KG_PATH_MAX + 128];

	memset(&e, 0, sizeof(e));
	e.op = KG_OP_NET_SEND;
	inet_pton(AF_INET6, "2001:db8::1", e.target.net.addr);
	e.target.net.port = 53;
	e.target.net.proto = 17;
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "[2001:db8::1]:53/udp", "IPv6 in brackets");
	e.op = KG_OP_NET_BIND;
	memset(e.target.net.addr, 0, 16);
	e.target.net.addr[10] = e.target.net.addr[11] = 0xff;
	inet_pton(AF_INET, "192.0.2.7", e.target.net.addr + 12);
	e.target.net.port = 8080;
	e.target.net.proto = 6;
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "192.0.2.7:8080/tcp", "IPv4-mapped shown as IPv4");

	memset(&e, 0, sizeof(e));
	e.op = KG_OP_SOCKET_CREATE;
	e.family = 17;
	e.aux = 3;
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "socket family=17 type=3 protocol=0", "socket");

	memset(&e, 0, sizeof(e));
	e.op = KG_OP_READ;
	snprintf(e.path, sizeof(e.path), "id_rsa/.ssh/u/home/");
	e.flags = KG_EVF_PATH_REVERSED;
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "/home/u/.ssh/id_rsa", "a reversed walk put back in order");
	e.flags |= KG_EVF_PATH_TRUNCATED;
	e.target.file.dev = 2049;
	e.target.file.ino = 77;
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "/home/u/.ssh/id_rsa (truncated; dev 2049 ino 77)", "truncated: identity");
	e.flags = 0;
	snprintf(e.path, sizeof(e.path), "/etc/shadow");
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "/etc/shadow", "a plain path");
	e.path[0] = '\0';
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "dev 2049 ino 77", "no path: the identity");

	memset(&e, 0, sizeof(e));
	e.op = KG_OP_SIGNAL;
	e.target.file.ino = 4242;
	e.aux = 9;
	kg_event_target(&e, t, sizeof(t));
	ASSERT_STREQ(t, "pid 4242 (arg 9)", "signal");
	ASSERT_STREQ(kg_event_kind_name(KG_EV_ESCALATION), "escalation", "kind name");
}

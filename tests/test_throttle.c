// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_throttle.c - throttle (token bucket per job and rule) and cooldown
 * (circuit breaker per job), measured with real connects from a governed
 * job on this host: the cgroup-BPF connect program decides, bpf/common.bpf.h
 * keeps the buckets and the breaker.
 */
#include "appr_fixture.h"

#define THROTTLE_POLICY(port, rate, burst)					\
	"{\"version\":1,\"name\":\"throttle-test\",\"default\":\"allow\","	\
	"\"runtime_defaults\":{\"net\":\"allow\"},"				\
	"\"runtime\":["								\
	"{\"id\":\"api-rate\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[" port "]},"	\
	"\"decision\":\"throttle\",\"throttle\":{\"rate_per_sec\":" rate ",\"burst\":" burst "}}" \
	"]}"

#define COOLDOWN_POLICY(threshold, window, duration)				\
	"{\"version\":1,\"name\":\"cooldown-test\",\"default\":\"allow\","	\
	"\"runtime_defaults\":{\"net\":\"allow\"},"				\
	"\"cooldown\":{\"threshold\":" threshold ",\"window_sec\":" window	\
	",\"duration_sec\":" duration "},"					\
	"\"runtime\":["								\
	"{\"id\":\"no-127-2\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}" \
	"]}"

static int last_throttle_count(const struct fx *f)
{
	int i;

	for (i = f->nevs - 1; i >= 0; i--)
		if (f->evs[i].kind == KG_EV_THROTTLE)
			return (int)f->evs[i].count;
	return -1;
}

TEST(throttle_allows_the_burst_then_the_rate)
{
	struct fx_job *j;
	struct fx f;
	char json[1024];
	int lfd, port, i, ok = 0;

	lfd = fx_listen("127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(json, sizeof(json), THROTTLE_POLICY("%d", "2", "5"), port);
	fx_setup(&f, json);
	j = fx_job(&f);
	for (i = 0; i < 5; i++)
		ok += fx_do(&f, j, FX_TCP, "127.0.0.1", port) == 0;
	ASSERT_EQ(ok, 5, "the burst of 5 is allowed");
	ASSERT_EQ(fx_accept_all(lfd), 5, "all 5 reached the listener");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "the 6th is refused");
	ASSERT_EQ(fx_count_events(&f, KG_EV_THROTTLE, j->cg.id), 1, "one throttle event");
	ASSERT_EQ(last_throttle_count(&f), 1, "counting one refusal");
	for (i = 0; i < 4; i++)
		ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "still refused");
	ASSERT_EQ(fx_count_events(&f, KG_EV_THROTTLE, j->cg.id), 1,
		  "refusals within the second are aggregated, not one event each");
	usleep(1050 * 1000);	/* 2 tokens at 2/s */
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "a second later: allowed");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "twice (rate 2/s)");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM, "the third is refused again");
	ASSERT_EQ(fx_count_events(&f, KG_EV_THROTTLE, j->cg.id), 2, "next aggregated event");
	ASSERT_EQ(last_throttle_count(&f), 5, "it carries the 4 earlier refusals and this one");
	/* the bucket is per job: another job has its own full burst */
	j = fx_job(&f);
	ok = 0;
	for (i = 0; i < 5; i++)
		ok += fx_do(&f, j, FX_TCP, "127.0.0.1", port) == 0;
	ASSERT_EQ(ok, 5, "another job has its own bucket");
	close(lfd);
	fx_teardown(&f);
}

/* A caller hammering a throttled target must still get the rate over time:
 * refills must not be lost to calls closer together than one token's worth
 * of time (1 s / rate). */
TEST(throttle_rate_holds_under_a_tight_loop)
{
	struct fx_job *j;
	struct fx f;
	char json[1024];
	int lfd, port, n = -1;

	lfd = fx_listen("127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(json, sizeof(json), THROTTLE_POLICY("%d", "4", "1"), port);
	fx_setup(&f, json);
	j = fx_job(&f);
	fx_send2(j, FX_TCP_BURST, "127.0.0.1", port, 1500);
	ASSERT_OK(fx_wait(&f, j, &n), "burst loop answered");
	printf("  %d connects allowed in 1.5 s at 4/s, burst 1\n", n);
	/* 1 (burst) + 1.5 s * 4/s = 7; allow for scheduling noise */
	ASSERT_GE(n, 5, "the rate is honoured while hammered");
	ASSERT_TRUE(n <= 8, "and not exceeded");
	close(lfd);
	fx_teardown(&f);
}

TEST(cooldown_refuses_everything_after_repeated_denials)
{
	struct fx_job *j;
	struct fx f;
	char json[1024];
	int lfd, port, i, last = -1;

	lfd = fx_listen("127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(json, sizeof(json), COOLDOWN_POLICY("%d", "%d", "%d"), 3, 10, 1);
	fx_setup(&f, json);
	j = fx_job(&f);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "allowed before any denial");
	for (i = 0; i < 2; i++)
		ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.2", port), EPERM, "denied");
	ASSERT_EQ(fx_count_events(&f, KG_EV_COOLDOWN_START, j->cg.id), 0, "not yet");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "still allowed after 2 denials");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.2", port), EPERM, "third denial");
	ASSERT_EQ(fx_count_events(&f, KG_EV_COOLDOWN_START, j->cg.id), 1, "cooldown start reported");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), EPERM,
		  "an otherwise allowed connect is refused in cooldown");
	ASSERT_EQ(fx_do(&f, j, FX_UDP_SEND, "127.0.0.3", 9), EPERM, "so is every governed action");
	for (i = 0; i < f.nevs; i++)
		if (f.evs[i].job_cgid == j->cg.id)
			last = f.evs[i].decision;
	ASSERT_EQ(last, KG_DEC_COOLDOWN, "recorded with decision cooldown");
	/* another job is not affected */
	ASSERT_EQ(fx_do(&f, fx_job(&f), FX_TCP, "127.0.0.1", port), 0, "other job unaffected");
	usleep(1100 * 1000);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "allowed again after the duration");
	close(lfd);
	fx_teardown(&f);
}

TEST(cooldown_counts_denials_within_the_window_only)
{
	struct fx_job *j;
	struct fx f;
	char json[1024];
	int lfd, port;

	lfd = fx_listen("127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(json, sizeof(json), COOLDOWN_POLICY("%d", "%d", "%d"), 3, 1, 5);
	fx_setup(&f, json);
	j = fx_job(&f);
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.2", port), EPERM, "denial 1");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.2", port), EPERM, "denial 2");
	usleep(1200 * 1000);	/* the window closes */
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.2", port), EPERM, "denial 3, new window");
	ASSERT_EQ(fx_count_events(&f, KG_EV_COOLDOWN_START, j->cg.id), 0, "no cooldown");
	ASSERT_EQ(fx_do(&f, j, FX_TCP, "127.0.0.1", port), 0, "still allowed");
	close(lfd);
	fx_teardown(&f);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_consumer.c - the ring-buffer consumer (userspace/record/recorder.c,
 * events.c) when things go wrong, with real kernel events from a governed
 * job on this host (cgroup-BPF connect refusals):
 *
 *   - the audit disk fills up: enforcement goes on, the consumer's memory
 *     stays at one batch (nothing is delivered twice), what the ring cannot
 *     hold meanwhile is counted by the kernel and recorded once when space
 *     returns, and every refusal ends up in the trail or in that count;
 *   - a ring whose map id repeats after a reboot: a record of the previous
 *     boot does not make the new consumer skip events.
 */
#include <bpf/bpf.h>
#include <sys/mount.h>

#include "appr_fixture.h"

#define RECORDER_POLICY							\
	"{\"version\":1,\"name\":\"recorder-test\",\"default\":\"allow\","	\
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":["		\
	"{\"id\":\"no-127-2\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}"

/* The agent's answer to one command, without polling the fixture's own
 * event reader (the consumer under test must get the events). */
static int agent_do(struct fx_job *j, int kind, const char *addr, int port, int port2)
{
	int r;

	fx_send2(j, kind, addr, port, port2);
	if (read(j->res_r, &r, sizeof(r)) != sizeof(r))
		return -1;
	return r;
}

static void setup(struct fx *f)
{
	fx_setup(f, RECORDER_POLICY);
	kg_events_close(f->ev);	/* the consumer below reads the ring */
	f->ev = NULL;
}

struct trail_counts {
	long decisions, lost_records, lost;
};

static int count_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct trail_counts *t = ctx;
	const char *type = json_string_value(json_object_get(rec, "type"));

	(void)line;
	(void)len;
	if (type && !strcmp(type, "decision"))	/* the decisions it stands for */
		t->decisions += json_integer_value(json_object_get(json_object_get(rec, "extra"),
								   "count")) ?: 1;
	if (type && !strcmp(type, "events_lost")) {
		t->lost_records++;
		t->lost += (long)json_integer_value(json_object_get(
			json_object_get(json_object_get(rec, "extra"), "counts"), "lost"));
	}
	return 0;
}

static struct trail_counts trail_counts(void)
{
	struct trail_counts t = { 0 };

	kg_audit_query(NULL, NULL, count_cb, &t, true, NULL);
	return t;
}

/* Write into path until the file system is full; 0 when it is. */
static int fill_up(const char *path)
{
	static char block[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	memset(block, 'x', sizeof(block));
	do
		n = write(fd, block, sizeof(block));
	while (n > 0);
	/* the last bytes that still fit */
	while (write(fd, block, 1) == 1)
		;
	n = errno;
	close(fd);
	return n == ENOSPC ? 0 : -(int)n;
}

TEST(disk_full_keeps_memory_bounded_and_records_every_refusal_once)
{
	char audit_dir[512], filler[600];
	struct kg_counters c;
	struct trail_counts t;
	struct kg_consumer *cons;
	struct kg_audit *audit;
	unsigned held;
	struct fx_job *j;
	struct fx f;
	long lost = 0;
	int i, k;

	setup(&f);
	snprintf(audit_dir, sizeof(audit_dir), "%s", kg_audit_dir());
	if (kg_mkdir_p(audit_dir, 0700) ||
	    mount("tmpfs", audit_dir, "tmpfs", 0, "size=24m,mode=0700")) {
		fx_teardown(&f);
		SKIP("cannot mount a small tmpfs for the audit trail: %s", strerror(errno));
	}
	audit = kg_audit_open(NULL, NULL);
	ASSERT_TRUE(audit != NULL, "audit trail on the small file system");
	cons = audit ? kg_consumer_try(f.l, audit) : NULL;
	ASSERT_TRUE(cons != NULL, "the consumer");
	j = fx_job(&f);
	if (!cons || !j)
		goto out;
	snprintf(filler, sizeof(filler), "%s/filler", audit_dir);
	ASSERT_OK(fill_up(filler), "the audit file system is full");

	/* 20 targets: identical refusals would be folded into one event */
	for (i = 0; i < 20; i++)
		ASSERT_EQ(agent_do(j, FX_TCP, "127.0.0.2", 80 + i, 0), EPERM,
			  "refused while the disk is full: enforcement goes on");
	kg_consumer_poll(cons);
	held = kg_audit_pending(audit);
	ASSERT_EQ(held, 20, "one batch delivered and held, its commit failed");
	for (i = 0; i < 5; i++)
		kg_consumer_poll(cons);
	if (!ASSERT_EQ(kg_audit_pending(audit), held, "polling again delivers nothing twice"))
		goto out;	/* re-delivery: the flood below would grow without bound */

	/* more refusals than the ring holds while nothing can be written,
	 * each to a port of its own (none folded) */
	agent_do(j, FX_TCP_SPRAY, "127.0.0.2", 1000, 20000);
	for (i = 0; i < 5; i++)
		kg_consumer_poll(cons);
	ASSERT_EQ(kg_audit_pending(audit), held, "memory stays at the held batch");
	ASSERT_OK(kg_maps_read_counters(f.l, &c), "kernel counters");
	for (k = 0; k < KG_EV_MAX; k++)
		lost += (long)c.events_lost[k];
	printf("  refusals %llu, lost in the kernel so far %ld\n",
	       (unsigned long long)c.decisions[KG_DEC_DENY], lost);
	ASSERT_GE(lost, 1, "the ring overflowed: the kernel counted what it could not hold");
	t = trail_counts();
	ASSERT_EQ(t.decisions, 0, "nothing reached the trail");

	/* space returns */
	ASSERT_OK(unlink(filler), "free the space");
	for (i = 0; i < 50 && kg_consumer_drain(cons) > 0; i++)
		;
	kg_consumer_poll(cons);
	kg_consumer_poll(cons);	/* a second poll must not report the loss again */
	ASSERT_EQ(kg_audit_pending(audit), 0, "everything written");
	ASSERT_OK(kg_maps_read_counters(f.l, &c), "kernel counters");
	t = trail_counts();
	printf("  trail: %ld decisions, %ld loss records counting %ld; kernel: %llu refusals\n",
	       t.decisions, t.lost_records, t.lost, (unsigned long long)c.decisions[KG_DEC_DENY]);
	ASSERT_EQ(t.lost_records, 1, "the loss recorded once");
	ASSERT_EQ(t.lost, lost, "with the kernel's count");
	ASSERT_EQ(t.decisions + t.lost, (long)c.decisions[KG_DEC_DENY],
		  "every refusal is in the trail or in the loss count, none twice");
out:
	kg_consumer_close(cons);
	kg_audit_close(audit);
	umount2(audit_dir, MNT_DETACH);
	fx_teardown(&f);
}

static uint32_t ring_id(struct kg_loader *l)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(kg_loader_map_fd(l, "kg_events"), &info, &len))
		return 0;
	return info.id;
}

static void boot_id(char *buf, size_t len)
{
	char *text = kg_read_file("/proc/sys/kernel/random/boot_id", 128, NULL);

	snprintf(buf, len, "%s", text ? text : "");
	buf[strcspn(buf, "\n")] = '\0';
	free(text);
}

/* A trail whose last event record says it came from ring `id` at `pos`
 * (of boot `boot`), then a consumer start: how many of the job's three
 * refusals does it record? */
static long recorded_after_trail_says(const char *boot, uint64_t pos)
{
	struct kg_audit_rec rec = { .type = "decision", .trace_id = "job-earlier", .actor_uid = 0,
				    .pid = 1, .tid = 1, .op = "net_connect", .target = "x",
				    .decision = "deny", .rule_id = "r", .mechanism = "cgroup-bpf" };
	struct kg_consumer *cons;
	struct kg_audit *audit;
	struct fx_job *j;
	struct fx f;
	json_t *extra;
	long n;
	int i;

	setup(&f);
	j = fx_job(&f);
	for (i = 0; i < 3; i++)	/* three targets: three events, none folded */
		if (agent_do(j, FX_TCP, "127.0.0.2", 80 + i, 0) != EPERM)
			printf("  the agent was not refused\n");
	audit = kg_audit_open(NULL, NULL);
	extra = json_pack("{s:{s:I,s:s,s:I}}", "ring", "id", (json_int_t)ring_id(f.l), "boot", boot,
			  "pos", (json_int_t)pos);
	rec.extra = extra;
	if (!audit || kg_audit_append(audit, &rec) || kg_audit_flush(audit))
		printf("  cannot write the earlier record\n");
	json_decref(extra);
	cons = audit ? kg_consumer_try(f.l, audit) : NULL;
	if (cons)
		kg_consumer_drain(cons);
	kg_consumer_close(cons);
	kg_audit_close(audit);
	n = trail_counts().decisions - 1;
	fx_teardown(&f);
	return n;
}

/* 368 = one record (8-byte header + struct kg_event) */
TEST(a_ring_id_from_an_earlier_boot_skips_nothing)
{
	char boot[64];

	boot_id(boot, sizeof(boot));
	ASSERT_EQ(recorded_after_trail_says("00000000-0000-4000-8000-000000000000",
					    8 + sizeof(struct kg_event)), 3,
		  "same map id, other boot: all three new events recorded");
	ASSERT_EQ(recorded_after_trail_says(boot, 8 + sizeof(struct kg_event)), 2,
		  "same ring of this boot: the first was recorded already and is skipped");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_recorder.c - the ring-buffer consumer's bookkeeping that needs no
 * kernel: where a new consumer resumes after its predecessor died between
 * committing a batch to the trail and advancing the ring.
 */
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <sys/stat.h>

#include "testlib.h"
#include "record/audit.h"
#include "common.h"
#include "record/recorder.h"

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void make_trail_dir(void)
{
	strcpy(dir, "/tmp/kgate-recorder-test-XXXXXX");
	if (!mkdtemp(dir))
		SKIP("mkdtemp failed");
	setenv("KGATE_AUDIT_DIR", dir, 1);
}

static void remove_trail_dir(void)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define BOOT "0b793afb-36b2-4309-8a78-3421fd19dc42"

/* A decision record as record_event writes it: extra.ring = {id, boot, pos}. */
static int append_event_boot(struct kg_audit *a, uint32_t ring_id, const char *boot, uint64_t pos)
{
	json_t *extra = json_pack("{s:s,s:s,s:I,s:{s:I,s:s,s:I}}", "kind", "decision", "outcome",
				  "refused", "count", (json_int_t)1, "ring", "id", (json_int_t)ring_id,
				  "boot", boot, "pos", (json_int_t)pos);
	struct kg_audit_rec r = {
		.type = "decision", .trace_id = "job-00000000000000aa", .actor_uid = 0, .pid = 1,
		.tid = 1, .op = "connect", .target = "127.0.0.2:9/tcp", .decision = "deny",
		.rule_id = "r", .mechanism = "cgroup-bpf", .policy_version = 1, .extra = extra,
	};
	int err = kg_audit_append(a, &r);

	json_decref(extra);
	return err;
}

static int append_event(struct kg_audit *a, uint32_t ring_id, uint64_t pos)
{
	return append_event_boot(a, ring_id, BOOT, pos);
}

static int append_controller(struct kg_audit *a)
{
	struct kg_audit_rec r = {
		.type = "job_start", .trace_id = "job-00000000000000bb", .actor_uid = 0, .pid = 1,
		.tid = -1, .op = "launch", .target = "sh", .decision = "allow",
		.mechanism = "controller", .policy_version = 1,
	};

	return kg_audit_append(a, &r);
}

static int nsegments(void)
{
	char **paths = NULL;
	int n = 0;

	if (kg_audit_list_segments(dir, &paths, &n))
		return -1;
	kg_audit_free_list(paths, n);
	return n;
}

/* The batch was committed, then a rotation made a fresh active segment
 * that holds only other records: the position is in the gzip'ed segment. */
TEST(resume_position_found_behind_a_rotation)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD, .rotate_bytes = 8 << 10 };
	char active[128];
	struct kg_audit *a;
	uint64_t pos = 0;
	int i;

	make_trail_dir();
	snprintf(active, sizeof(active), "%s/audit.jsonl", dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a != NULL, "open");
	for (i = 0; i < 200; i++) {
		pos += 368;
		ASSERT_OK(append_event(a, 7, pos), "event");
		if (access(active, F_OK))
			break;		/* that commit rotated */
	}
	ASSERT_OK(append_event(a, 9, 999999), "another ring's event");
	for (i = 0; i < 3; i++)
		ASSERT_OK(append_controller(a), "other records after the batch");
	kg_audit_close(a);	/* waits for the compression */
	ASSERT_EQ(nsegments(), 2, "a closed segment and a fresh active one");
	ASSERT_EQ(kg_recorder_resume_position(7, BOOT), pos, "resumes after the last recorded event");
	ASSERT_EQ(kg_recorder_resume_position(9, BOOT), 999999, "per ring");
	ASSERT_EQ(kg_recorder_resume_position(5, BOOT), 0, "a ring with nothing recorded");
	remove_trail_dir();
}

/* Rotation right after the batch: no active segment exists yet, the newest
 * segment is gzip. */
TEST(resume_position_found_when_only_gzip_segments_exist)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD, .rotate_bytes = 8 << 10 };
	char active[128];
	struct kg_audit *a;
	uint64_t pos = 0;
	int i;

	make_trail_dir();
	snprintf(active, sizeof(active), "%s/audit.jsonl", dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a != NULL, "open");
	for (i = 0; i < 200; i++) {
		pos += 368;
		ASSERT_OK(append_event(a, 7, pos), "event");
		if (access(active, F_OK))
			break;		/* that commit rotated */
	}
	kg_audit_close(a);
	ASSERT_TRUE(access(active, F_OK) != 0, "no active segment after the rotation");
	ASSERT_EQ(kg_recorder_resume_position(7, BOOT), pos, "found in the gzip segment");
	remove_trail_dir();
}

/* More than a megabyte of other records after the batch in the active
 * segment: the search is not limited to its last bytes. */
TEST(resume_position_found_far_back_in_the_active_segment)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	struct kg_audit *a;
	int i;

	make_trail_dir();
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a != NULL, "open");
	ASSERT_OK(append_event(a, 7, 4242), "event");
	for (i = 0; i < 6000; i++)
		if (append_controller(a))
			break;
	kg_audit_close(a);
	ASSERT_EQ(nsegments(), 1, "one segment");
	ASSERT_EQ(kg_recorder_resume_position(7, BOOT), 4242, "found");
	remove_trail_dir();
}

/* Map ids start over at every boot: a record of ring 7 from another boot
 * (or one that does not say its boot) must not make this boot's consumer of
 * ring 7 skip anything. */
TEST(resume_position_is_per_boot)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	struct kg_audit *a;

	make_trail_dir();
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a != NULL, "open");
	ASSERT_OK(append_event(a, 7, 368), "this boot's record");
	ASSERT_OK(append_event_boot(a, 7, "00000000-0000-4000-8000-000000000000", 99999),
		  "a later record of ring 7 from another boot");
	kg_audit_close(a);
	ASSERT_EQ(kg_recorder_resume_position(7, BOOT), 368, "this boot's position");
	ASSERT_EQ(kg_recorder_resume_position(7, "11111111-0000-4000-8000-000000000000"), 0,
		  "a third boot resumes nowhere");
	ASSERT_EQ(kg_recorder_resume_position(7, ""), 0, "an unknown boot trusts nothing");
	remove_trail_dir();
}

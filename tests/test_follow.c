// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_follow.c - `kgate audit follow`: a live trail written and rotated
 * (gzip segments) while it is followed; resume positions; bad positions. */
#include <dirent.h>

#include "testlib.h"
#include "ship_fixture.h"
#include "record/tail.h"

/* Checks that path holds records first..last, each once, in order. */
static void expect_seqs(const char *path, uint64_t first, uint64_t last)
{
	char *s = sf_read(path), *line, *save = NULL;
	uint64_t want = first, bad = 0;

	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		uint64_t seq = kg_tail_line_seq(line, strlen(line));

		if (seq != want && !bad++)
			printf("  line for seq %llu has seq %llu\n", (unsigned long long)want,
			       (unsigned long long)seq);
		want++;
	}
	free(s);
	ASSERT_EQ(bad, 0, "every record once, in order");
	ASSERT_EQ(want - 1, last, "up to the last record");
}

/* "resume with --from N:HASH" from a follower's stderr */
static void position_of(const char *errpath, char *pos, size_t size)
{
	char *s = sf_read(errpath), *p = strstr(s, "resume with --from ");

	pos[0] = '\0';
	if (p) {
		p += strlen("resume with --from ");
		snprintf(pos, size, "%.*s", (int)strcspn(p, "\n"), p);
	}
	free(s);
}

TEST(follow_live_trail_across_rotation_and_gzip)
{
	char out[512], err[512], pos[160];
	char *argv[] = { (char *)sf_kgate(), "audit", "follow", "--json", "--from", "start",
			 "--dir", sf_trail, NULL };
	struct kg_audit *a;
	unsigned long i, n = 3000;
	uint64_t t0;
	pid_t pid;
	int rc;

	sf_setup();
	sf_path(out, sizeof(out), "follow.out");
	sf_path(err, sizeof(err), "follow.err");
	a = sf_open(64 << 10);	/* 64 KiB segments: a rotation every ~200 records */
	ASSERT_OK(sf_append(a, 0), "first record");
	ASSERT_OK(kg_audit_flush(a), "flush");
	pid = sf_spawn(argv, out, err);
	for (i = 1; i < n; i++) {
		ASSERT_OK(sf_append(a, i), "append");
		if (i % 50 == 0) {
			kg_audit_flush(a);
			usleep(2000);	/* the follower reads while we write */
		}
	}
	ASSERT_OK(kg_audit_flush(a), "flush");
	kg_audit_close(a);	/* waits for the last compression */
	printf("  %d closed segments, %d gzip\n", sf_count_closed(), sf_count_gz());
	ASSERT_GE(sf_count_gz(), 10, "the trail rotated (gzip segments) while followed");
	t0 = sf_now_ms();
	while (sf_count_lines(out) < (int)n && sf_now_ms() - t0 < 60000)
		usleep(20000);
	kill(pid, SIGTERM);
	rc = sf_wait(pid);
	{
		char *e = sf_read(err);

		printf("%s", e);
		free(e);
	}
	ASSERT_EQ(rc, 0, "follow exits 0 on SIGTERM");
	expect_seqs(out, 1, n);
	position_of(err, pos, sizeof(pos));
	printf("  position: %s\n", pos);
	ASSERT_TRUE(!strncmp(pos, "3000:", 5) && strlen(pos) == 5 + 64,
		    "the resume position is the last seq and its hash");
	{
		/* the stream is the trail's own sealed lines: it verifies as a chain */
		char key[512];
		char *vargv[] = { (char *)sf_kgate(), "audit", "verify", "--key", key, out, NULL };
		char vout[512], verr[512];

		snprintf(key, sizeof(key), "%s/audit.key", sf_trail);
		sf_path(vout, sizeof(vout), "verify.out");
		sf_path(verr, sizeof(verr), "verify.err");
		ASSERT_EQ(sf_run(vargv, vout, verr), 0, "the followed stream verifies");
	}
	sf_teardown();
}

TEST(follow_resumes_from_a_position_inside_gzip_segments)
{
	char out[512], err[512], pos[160];
	char *argv[] = { (char *)sf_kgate(), "audit", "follow", "--json", "--once", "--from", pos,
			 "--dir", sf_trail, NULL };
	struct kg_audit *a;
	unsigned long i;

	sf_setup();
	sf_path(out, sizeof(out), "o");
	sf_path(err, sizeof(err), "e");
	a = sf_open(32 << 10);
	for (i = 0; i < 300; i++)
		sf_append(a, i);
	kg_audit_flush(a);
	/* the position after 300, taken by a follower */
	snprintf(pos, sizeof(pos), "start");
	ASSERT_EQ(sf_run(argv, out, err), 0, "follow --once from the start");
	expect_seqs(out, 1, 300);
	position_of(err, pos, sizeof(pos));
	ASSERT_TRUE(!strncmp(pos, "300:", 4), "position after 300");
	/* the follower is away; 900 more records, several rotations: seq 300
	 * now sits in a compressed segment */
	for (i = 300; i < 1200; i++)
		sf_append(a, i);
	kg_audit_close(a);
	ASSERT_GE(sf_count_gz(), 5, "rotated meanwhile");
	ASSERT_EQ(sf_run(argv, out, err), 0, "follow --once --from the position");
	expect_seqs(out, 301, 1200);
	/* a position without the hash works too */
	snprintf(pos, sizeof(pos), "1000");
	ASSERT_EQ(sf_run(argv, out, err), 0, "follow --once --from 1000");
	expect_seqs(out, 1001, 1200);
	sf_teardown();
}

TEST(follow_position_of_another_trail_refused)
{
	char out[512], err[512], pos[160];
	char *argv[] = { (char *)sf_kgate(), "audit", "follow", "--json", "--once", "--from", pos,
			 "--dir", sf_trail, NULL };
	struct kg_audit *a;
	char *e;
	unsigned long i;

	sf_setup();
	sf_path(out, sizeof(out), "o");
	sf_path(err, sizeof(err), "e");
	a = sf_open(0);
	for (i = 0; i < 20; i++)
		sf_append(a, i);
	kg_audit_close(a);
	snprintf(pos, sizeof(pos), "10:00000000deadbeef");
	ASSERT_EQ(sf_run(argv, out, err), 1, "a position whose hash does not match: exit 1");
	e = sf_read(err);
	ASSERT_HAS_SUBSTR(e, "not from this trail", "says why");
	free(e);
	ASSERT_EQ(sf_count_lines(out), 0, "and prints no record");
	snprintf(pos, sizeof(pos), "12:zz");
	ASSERT_EQ(sf_run(argv, out, err), 2, "a malformed position: usage error");
	snprintf(pos, sizeof(pos), "end");
	ASSERT_EQ(sf_run(argv, out, err), 0, "--from end --once: nothing new");
	ASSERT_EQ(sf_count_lines(out), 0, "prints nothing");
	e = sf_read(err);
	ASSERT_HAS_SUBSTR(e, "resume with --from 20:", "but gives the position of the end");
	free(e);
	sf_teardown();
}

TEST(follow_position_file_and_filters)
{
	char out[512], err[512], pf[512];
	char *argv[] = { (char *)sf_kgate(), "audit", "follow", "--once", "--position-file", pf,
			 "--dir", sf_trail, "--type", "decision", NULL };
	struct kg_audit *a;
	struct kg_audit_rec other = { .type = "controller", .op = "start", .actor_uid = -1,
				      .pid = -1, .tid = -1 };
	char *s;
	unsigned long i;

	sf_setup();
	sf_path(out, sizeof(out), "o");
	sf_path(err, sizeof(err), "e");
	sf_path(pf, sizeof(pf), "position");
	a = sf_open(0);
	for (i = 0; i < 5; i++)
		sf_append(a, i);
	kg_audit_append(a, &other);
	kg_audit_flush(a);
	/* no position file yet: starts at the end */
	ASSERT_EQ(sf_run(argv, out, err), 0, "first run");
	ASSERT_EQ(sf_count_lines(out), 0, "nothing before the end");
	s = sf_read(pf);
	ASSERT_TRUE(!strncmp(s, "6:", 2), "position file written at the end (seq 6)");
	free(s);
	for (i = 5; i < 8; i++)
		sf_append(a, i);
	kg_audit_append(a, &other);
	kg_audit_close(a);
	ASSERT_EQ(sf_run(argv, out, err), 0, "second run resumes from the file");
	s = sf_read(out);
	ASSERT_EQ(sf_count_lines(out), 3, "the three new decisions (the controller record filtered out)");
	ASSERT_HAS_SUBSTR(s, "7 ", "seq 7");
	ASSERT_HAS_SUBSTR(s, "secret-7", "human-readable line names the target");
	ASSERT_TRUE(!strchr(s, '\033'), "no terminal control codes");
	free(s);
	s = sf_read(pf);
	ASSERT_TRUE(!strncmp(s, "10:", 3), "position file moved to seq 10");
	free(s);
	sf_teardown();
}

TEST(tail_positions_parse)
{
	struct kg_tail_pos p;

	ASSERT_OK(kg_tail_parse_pos("end", &p), "end");
	ASSERT_TRUE(p.at_end, "at end");
	ASSERT_OK(kg_tail_parse_pos("start", &p), "start");
	ASSERT_EQ(p.seq, 0, "start = 0");
	ASSERT_OK(kg_tail_parse_pos("42:abcd", &p), "N:HASH");
	ASSERT_EQ(p.seq, 42, "seq");
	ASSERT_STREQ(p.hash, "abcd", "hash prefix");
	ASSERT_EQ(kg_tail_parse_pos("42:ABCD", &p), -EINVAL, "uppercase refused");
	ASSERT_EQ(kg_tail_parse_pos("42:ab", &p), -EINVAL, "too short a prefix");
	ASSERT_EQ(kg_tail_parse_pos("-1", &p), -EINVAL, "negative");
	ASSERT_EQ(kg_tail_parse_pos("1x", &p), -EINVAL, "trailing junk");
	ASSERT_EQ(kg_tail_parse_pos("", &p), -EINVAL, "empty");
}

TEST(follow_end_after_a_long_last_record_and_on_an_empty_dir)
{
	char out[512], err[512], pos[160], *big, *e;
	char *argv[] = { (char *)sf_kgate(), "audit", "follow", "--json", "--once", "--from", "end",
			 "--dir", sf_trail, NULL };
	struct kg_audit *a;
	struct kg_audit_rec r = { .type = "decision", .op = "read", .decision = "deny",
				  .actor_uid = -1, .pid = -1, .tid = -1 };

	sf_setup();
	sf_path(out, sizeof(out), "o");
	sf_path(err, sizeof(err), "e");
	/* nothing written yet: the end is seq 0 */
	ASSERT_EQ(sf_run(argv, out, err), 0, "follow --from end on an empty trail");
	e = sf_read(err);
	ASSERT_HAS_SUBSTR(e, "resume with --from 0", "position 0");
	free(e);
	a = sf_open(0);
	sf_append(a, 1);
	big = malloc(200 << 10);
	memset(big, 'x', (200 << 10) - 1);
	big[(200 << 10) - 1] = '\0';
	r.target = big;	/* a 200 KiB line: longer than the first look back */
	ASSERT_OK(kg_audit_append(a, &r), "a long record");
	kg_audit_close(a);
	free(big);
	ASSERT_EQ(sf_run(argv, out, err), 0, "follow --from end after it");
	position_of(err, pos, sizeof(pos));
	ASSERT_TRUE(!strncmp(pos, "2:", 2) && strlen(pos) == 2 + 64, "the end is the long record");
	ASSERT_EQ(sf_count_lines(out), 0, "nothing printed");
	sf_teardown();
}

/* inotify instances this process holds */
static int inotify_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[64];
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (!strcmp(target, "anon_inode:inotify"))
			n++;
	}
	closedir(d);
	return n;
}

static int count_record(const char *line, size_t len, uint64_t seq, void *ctx)
{
	(void)line;
	(void)len;
	(void)seq;
	(*(int *)ctx)++;
	return 0;
}

/* kgate run's live view only polls its tail: it must hold no inotify
 * instance, whose release at exit waits for a grace period.  A tail that
 * waits watches the directory from its first wait on. */
TEST(tail_watches_the_directory_only_once_it_waits)
{
	struct kg_tail_pos end = { .at_end = true };
	struct kg_audit *a;
	struct kg_tail *t;
	int before, got = 0;

	sf_setup();
	a = sf_open(0);
	ASSERT_OK(sf_append(a, 1), "a record");
	ASSERT_OK(kg_audit_flush(a), "flush");
	before = inotify_fds();
	ASSERT_GE(before, 0, "/proc/self/fd readable");
	t = kg_tail_open(sf_trail, &end);
	ASSERT_TRUE(t != NULL, "tail opened");
	ASSERT_OK(sf_append(a, 2), "a record");
	ASSERT_OK(kg_audit_flush(a), "flush");
	ASSERT_EQ(kg_tail_poll(t, count_record, &got), 1, "the new record polled");
	ASSERT_EQ(inotify_fds(), before, "a polled tail holds no inotify instance");
	kg_tail_wait(t, 60000);	/* makes the watch, returns at once */
	ASSERT_EQ(inotify_fds(), before + 1, "a waiting tail watches the directory");
	ASSERT_OK(sf_append(a, 3), "a record");
	ASSERT_OK(kg_audit_flush(a), "flush");
	kg_tail_wait(t, 60000);	/* woken by the commit */
	ASSERT_EQ(kg_tail_poll(t, count_record, &got), 1, "the record after the watch");
	ASSERT_EQ(got, 2, "two records in all");
	kg_tail_close(t);
	ASSERT_EQ(inotify_fds(), before, "closed with the tail");
	kg_audit_close(a);
	sf_teardown();
}

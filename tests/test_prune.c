// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_prune.c - retention (`kgate audit prune`, record/prune.c): the oldest
 * closed segments go behind a sealed anchor, the rest still verifies, and a
 * segment removed any other way still fails verification. */
#include "testlib.h"
#include "record/audit.h"
#include "record/prune.h"
#include "common.h"

#define KT_BUILD_DIR "build-san"
#include "testenv.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

/* ---------- helpers ---------- */

static void make_dir(char *buf)
{
	strcpy(buf, "/tmp/kgate-prune-test-XXXXXX");
	if (!mkdtemp(buf)) {
		printf("  mkdtemp failed\n");
		_exit(1);
	}
}

static int gen(const char *dir, uint64_t n)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE, .rotate_bytes = 16 << 10 };
	struct kg_audit *a = kg_audit_open(dir, &o);
	uint64_t i;
	int err = 0;

	if (!a)
		return -errno;
	for (i = 0; i < n && !err; i++) {
		struct kg_rec r;

		kg_rec_init(&r, "decision");
		kg_rec_str(&r, "trace", "job-prune");
		kg_rec_str(&r, "op", "file_open");
		kg_rec_str(&r, "target", "/home/alice/.aws/credentials");
		kg_rec_str(&r, "decision", i % 2 ? "allow" : "deny");
		kg_rec_str(&r, "reason", "a line long enough to fill segments quickly: padding");
		err = kg_rec_append(a, &r);
	}
	kg_audit_close(a);
	return err;
}

struct trail {
	char dir[64];
	char **segs;		/* closed segments, then the active one */
	int n;
};

static void trail_list(struct trail *t)
{
	kg_audit_free_list(t->segs, t->n);
	t->segs = NULL;
	t->n = 0;
	if (kg_audit_list_segments(t->dir, &t->segs, &t->n))
		t->n = 0;
}

/* 1000 records in 16 KiB segments: several closed .gz and an active one */
static void trail_make(struct trail *t)
{
	memset(t, 0, sizeof(*t));
	make_dir(t->dir);
	ASSERT_OK(gen(t->dir, 1000), "1000 records");
	trail_list(t);
	ASSERT_GE(t->n, 6, "several segments");
	ASSERT_HAS_SUBSTR(t->segs[0], ".jsonl.gz", "closed segments compressed");
}

static void trail_free(struct trail *t)
{
	kg_audit_free_list(t->segs, t->n);
	kt_rm_tree(t->dir);
}

static uint64_t seg_first(const char *path)
{
	const char *b = strrchr(path, '/');

	return strtoull(b + 7, NULL, 10);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

static bool exists(const char *path)
{
	return !access(path, F_OK);
}

static struct kg_audit_verify_result vres;

static int verify(const char *dir)
{
	int err = kg_audit_verify_dir(dir, NULL, &vres);

	if (err)
		return err;
	if (!vres.ok)
		printf("  verify: bad seq %llu at %s:%lu: %s\n", (unsigned long long)vres.bad_seq,
		       vres.bad_file, vres.bad_line, vres.reason);
	return vres.ok ? 0 : 1;
}

static struct kg_audit_prune_result pres;

static int prune_bytes(const char *dir, uint64_t keep, const char *posfile)
{
	struct kg_audit_prune_opts o = { .by_bytes = true, .keep_bytes = keep,
					 .position_file = posfile };

	return kg_audit_prune(dir, &o, &pres);
}

/* kgate with args; its output in out; the exit code */
static int kgate(const char *dir, char *out, size_t outsz, char *const *args)
{
	char *argv[16], outpath[128];
	int status, fd, i = 0, j;
	ssize_t n;
	pid_t pid;

	argv[i++] = (char *)kt_kgate_bin();
	argv[i++] = "audit";
	argv[i++] = "prune";
	argv[i++] = "--dir";
	argv[i++] = (char *)dir;
	for (j = 0; args[j] && i < 15; j++)
		argv[i++] = args[j];
	argv[i] = NULL;
	snprintf(outpath, sizeof(outpath), "%s.out", dir);
	pid = fork();
	if (pid == 0) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	waitpid(pid, &status, 0);
	fd = open(outpath, O_RDONLY);
	n = fd >= 0 ? read(fd, out, outsz - 1) : 0;
	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	unlink(outpath);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* the trail's last record (the prune's statement) */
static int last_cb(json_t *o, const char *line, size_t len, void *ctx)
{
	(void)o;
	snprintf(ctx, 4096, "%.*s", (int)len, line);
	return 0;
}

static void last_record(const char *dir, char *buf)
{
	struct kg_audit_filter f = { 0 };
	struct kg_audit_qstats st;

	buf[0] = '\0';
	kg_audit_query(dir, &f, last_cb, buf, true, &st);
}

/* ---------- retention by size ---------- */

TEST(prune_by_bytes_keeps_the_trail_verifiable)
{
	char anchor[128], last[4096];
	struct trail t;
	uint64_t total = 0;
	int i;

	trail_make(&t);
	for (i = 0; i < t.n; i++)
		total += file_size(t.segs[i]);
	ASSERT_OK(prune_bytes(t.dir, total / 2, NULL), "prune to half the size");
	ASSERT_GE(pres.segments, 2, "several segments removed");
	ASSERT_EQ(pres.first_seq, seg_first(t.segs[pres.segments]),
		  "the trail now starts at the first kept segment");
	ASSERT_EQ(pres.records, pres.first_seq - 1, "every record before it removed");
	ASSERT_FALSE(exists(t.segs[0]), "the oldest segment is gone");
	ASSERT_FALSE(exists(t.segs[pres.segments - 1]), "the newest removed is gone");
	ASSERT_TRUE(exists(t.segs[pres.segments]), "the first kept is there");
	ASSERT_TRUE(exists(t.segs[t.n - 1]), "the active segment is there");
	snprintf(anchor, sizeof(anchor), "%s/audit.anchor", t.dir);
	ASSERT_TRUE(exists(anchor), "the sealed anchor is written");

	ASSERT_OK(verify(t.dir), "the pruned trail verifies");
	ASSERT_EQ(vres.pruned, pres.first_seq - 1, "verify says how many records were pruned");
	ASSERT_EQ(vres.first_seq, pres.first_seq, "and where the trail starts");
	ASSERT_EQ(vres.last_seq, 1001, "every kept record, and the prune's own record");
	ASSERT_EQ(vres.records, 1001 - vres.pruned, "all of them checked");

	last_record(t.dir, last);
	ASSERT_HAS_SUBSTR(last, "\"op\":\"trail_pruned\"", "the prune is recorded in the trail");
	ASSERT_HAS_SUBSTR(last, "\"type\":\"controller\"", "as a controller record");
	snprintf(anchor, sizeof(anchor), "\"first_seq\":%llu", (unsigned long long)pres.first_seq);
	ASSERT_HAS_SUBSTR(last, anchor, "naming the first kept seq");

	/* a second prune to the same bound has nothing left to do */
	total = 0;
	trail_list(&t);
	for (i = 0; i < t.n; i++)
		total += file_size(t.segs[i]);
	ASSERT_OK(prune_bytes(t.dir, total, NULL), "prune again within the bound");
	ASSERT_EQ(pres.segments, 0, "nothing removed");
	trail_free(&t);
}

TEST(the_active_segment_is_never_removed)
{
	struct trail t;

	trail_make(&t);
	ASSERT_OK(prune_bytes(t.dir, 0, NULL), "prune to nothing");
	ASSERT_EQ(pres.segments, (unsigned)t.n - 1, "every closed segment removed");
	ASSERT_TRUE(exists(t.segs[t.n - 1]), "the active segment is kept");
	ASSERT_OK(verify(t.dir), "the active segment alone verifies");
	ASSERT_EQ(vres.segments, 1, "one segment left");
	ASSERT_EQ(vres.pruned, pres.first_seq - 1, "the rest pruned");
	trail_free(&t);
}

/* ---------- retention by age ---------- */

static void age(const char *path, int days)
{
	struct timeval tv[2];

	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= (time_t)days * 86400;
	tv[1] = tv[0];
	ASSERT_OK(utimes(path, tv), "age a segment");
}

TEST(prune_by_age_removes_only_old_segments)
{
	struct kg_audit_prune_opts o = { .by_days = true, .keep_days = 7 };
	struct trail t;

	trail_make(&t);
	age(t.segs[0], 30);
	age(t.segs[1], 10);
	age(t.segs[2], 3);	/* younger than the bound */
	age(t.segs[3], 20);	/* old, but after a young one: the trail stays one chain */
	ASSERT_OK(kg_audit_prune(t.dir, &o, &pres), "prune by age");
	ASSERT_EQ(pres.segments, 2, "the two oldest removed");
	ASSERT_FALSE(exists(t.segs[1]), "10 days old: removed");
	ASSERT_TRUE(exists(t.segs[2]), "3 days old: kept");
	ASSERT_TRUE(exists(t.segs[3]), "kept: behind a kept segment");
	ASSERT_OK(verify(t.dir), "verifies");
	ASSERT_EQ(vres.pruned, seg_first(t.segs[2]) - 1, "pruned up to the first kept");
	trail_free(&t);
}

/* ---------- the exporter's position ---------- */

TEST(unshipped_records_are_never_removed)
{
	char pos[128], text[64];
	struct trail t;
	uint64_t shipped;

	trail_make(&t);
	shipped = seg_first(t.segs[3]) + 2;	/* inside segment 3 */
	snprintf(pos, sizeof(pos), "%s.position", t.dir);
	snprintf(text, sizeof(text), "%llu\n", (unsigned long long)shipped);
	ASSERT_OK(kt_write_file(pos, text, 0600), "position file");
	ASSERT_OK(prune_bytes(t.dir, 0, pos), "prune to nothing, after the position");
	ASSERT_EQ(pres.segments, 3, "only the segments wholly shipped");
	ASSERT_TRUE(exists(t.segs[3]), "the segment holding unshipped records is kept");
	ASSERT_EQ(pres.first_seq, seg_first(t.segs[3]), "the trail starts there");
	ASSERT_OK(verify(t.dir), "verifies");

	/* the record just before a segment's end shipped, not its last: kept */
	shipped = seg_first(t.segs[4]) - 2;
	snprintf(text, sizeof(text), "%llu", (unsigned long long)shipped);
	ASSERT_OK(kt_write_file(pos, text, 0600), "position file");
	ASSERT_OK(prune_bytes(t.dir, 0, pos), "prune again");
	ASSERT_EQ(pres.segments, 0, "a segment with one unshipped record stays");
	ASSERT_TRUE(exists(t.segs[3]), "still there");
	unlink(pos);
	trail_free(&t);
}

/* ---------- evidence removed without a prune ---------- */

TEST(a_segment_deleted_by_hand_still_fails)
{
	struct trail t;

	trail_make(&t);
	ASSERT_OK(unlink(t.segs[0]), "delete the oldest segment by hand, no prune");
	ASSERT_EQ(verify(t.dir), 1, "fails verify");
	ASSERT_EQ(vres.bad_seq, 1, "at seq 1");
	ASSERT_EQ(vres.pruned, 0, "nothing counted as pruned");
	trail_free(&t);
}

TEST(deleting_past_the_anchor_fails)
{
	struct kg_audit_prune_opts o = { .by_days = true, .keep_days = 7 };
	char anchor[128];
	struct trail t;

	trail_make(&t);
	age(t.segs[0], 30);
	age(t.segs[1], 30);
	ASSERT_OK(kg_audit_prune(t.dir, &o, &pres), "prune the two oldest");
	ASSERT_EQ(pres.segments, 2, "two removed");
	ASSERT_OK(verify(t.dir), "verifies");
	ASSERT_OK(unlink(t.segs[2]), "then delete the first kept segment by hand");
	ASSERT_EQ(verify(t.dir), 1, "fails verify");
	ASSERT_EQ(vres.bad_seq, seg_first(t.segs[2]), "at the anchor's seq: records missing");
	ASSERT_HAS_SUBSTR(vres.reason, "missing", "says records are missing");
	trail_free(&t);

	/* the anchor removed after a prune: the trail no longer starts at 1 */
	trail_make(&t);
	age(t.segs[0], 30);
	ASSERT_OK(kg_audit_prune(t.dir, &o, &pres), "prune the oldest");
	snprintf(anchor, sizeof(anchor), "%s/audit.anchor", t.dir);
	ASSERT_OK(unlink(anchor), "remove the anchor");
	ASSERT_EQ(verify(t.dir), 1, "fails verify");
	ASSERT_EQ(vres.bad_seq, 1, "at seq 1");
	trail_free(&t);
}

/* rewrites the anchor's first_seq, keeping its mac */
static void edit_anchor(const char *dir, uint64_t first)
{
	char path[128], *txt, *p, out[512];
	size_t len;

	snprintf(path, sizeof(path), "%s/audit.anchor", dir);
	txt = kg_read_file(path, 4096, &len);
	ASSERT_TRUE(txt != NULL, "read the anchor");
	p = strstr(txt, ",\"prev\"");
	ASSERT_TRUE(p != NULL, "anchor format");
	snprintf(out, sizeof(out), "{\"first_seq\":%llu%s", (unsigned long long)first, p);
	free(txt);
	ASSERT_OK(kt_write_file(path, out, 0600), "write the edited anchor");
}

TEST(an_edited_anchor_fails)
{
	struct kg_audit_prune_opts o = { .by_days = true, .keep_days = 7 };
	struct trail t;

	trail_make(&t);
	age(t.segs[0], 30);
	ASSERT_OK(kg_audit_prune(t.dir, &o, &pres), "prune the oldest");
	ASSERT_EQ(pres.segments, 1, "one removed");
	/* an attacker deletes the next segment too and moves the anchor past it */
	ASSERT_OK(unlink(t.segs[1]), "delete the next segment by hand");
	edit_anchor(t.dir, seg_first(t.segs[2]));
	ASSERT_EQ(verify(t.dir), 1, "fails verify");
	ASSERT_HAS_SUBSTR(vres.reason, "audit.anchor is corrupt or its seal does not match",
			  "the anchor's seal fails");
	ASSERT_EQ(vres.bad_seq, 1, "nothing before it can be trusted");
	ASSERT_HAS_SUBSTR(vres.bad_file, t.dir, "and its file");
	/* and the prune refuses such a trail */
	ASSERT_EQ(prune_bytes(t.dir, 0, NULL), -EBADMSG, "prune refuses a trail that fails");
	ASSERT_TRUE(exists(t.segs[2]), "and removes nothing");
	trail_free(&t);
}

TEST(a_prune_cut_short_leaves_a_trail_that_verifies)
{
	struct kg_audit_prune_opts o = { .by_days = true, .keep_days = 7 };
	char saved[256];
	struct trail t;

	trail_make(&t);
	snprintf(saved, sizeof(saved), "%s.saved", t.dir);
	ASSERT_OK(kt_copy_file(t.segs[0], saved, 0600), "keep a copy of the oldest");
	age(t.segs[0], 30);
	ASSERT_OK(kg_audit_prune(t.dir, &o, &pres), "prune the oldest");
	ASSERT_EQ(pres.segments, 1, "removed");
	/* as if the prune died after its anchor, before the unlink */
	ASSERT_OK(kt_copy_file(saved, t.segs[0], 0600), "the segment is back");
	unlink(saved);
	ASSERT_OK(verify(t.dir), "verifies: segments before the anchor are skipped");
	ASSERT_EQ(vres.first_seq, seg_first(t.segs[1]), "from the anchor");
	ASSERT_OK(prune_bytes(t.dir, 1ull << 40, NULL), "a prune within every bound");
	ASSERT_EQ(pres.segments, 1, "still removes the leftover");
	ASSERT_FALSE(exists(t.segs[0]), "gone");
	ASSERT_OK(verify(t.dir), "verifies");
	trail_free(&t);
}

/* ---------- the command ---------- */

/* what the dir holds, to see that nothing changed */
static void snapshot(const char *dir, char *buf, size_t size)
{
	char **segs = NULL;
	int n = 0, i;
	size_t used = 0;

	buf[0] = '\0';
	if (kg_audit_list_segments(dir, &segs, &n))
		return;
	for (i = 0; i < n && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s:%llu ", segs[i],
					 (unsigned long long)file_size(segs[i]));
	kg_audit_free_list(segs, n);
}

TEST(bad_arguments_are_refused_and_change_nothing)
{
	char before[8192], after[8192], out[4096], pos[128], anchor[128];
	struct trail t;

	trail_make(&t);
	snapshot(t.dir, before, sizeof(before));
	snprintf(pos, sizeof(pos), "%s.position", t.dir);
	snprintf(anchor, sizeof(anchor), "%s/audit.anchor", t.dir);

	ASSERT_EQ(kgate(t.dir, out, sizeof(out), (char *[]){ NULL }), 2, "no bound: usage");
	ASSERT_HAS_SUBSTR(out, "--keep-days", "says what is missing");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out), (char *[]){ "--keep-days", "ten", NULL }), 2,
		  "days not a number");
	ASSERT_HAS_SUBSTR(out, "'ten'", "names the value");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out), (char *[]){ "--keep-days", "-1", NULL }), 2,
		  "negative days");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out), (char *[]){ "--keep-bytes", "12X", NULL }), 2,
		  "size with a bad unit");
	ASSERT_HAS_SUBSTR(out, "'12X'", "names the value");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out), (char *[]){ "--keep-bytes", "0", "extra", NULL }),
		  2, "a stray argument");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out),
			(char *[]){ "--keep-bytes", "0", "--after-position", pos, NULL }), 1,
		  "a position file that does not exist");
	ASSERT_HAS_SUBSTR(out, pos, "names the file");
	ASSERT_OK(kt_write_file(pos, "end\n", 0600), "a position file saying 'end'");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out),
			(char *[]){ "--keep-bytes", "0", "--after-position", pos, NULL }), 1,
		  "'end' is not a position");
	ASSERT_HAS_SUBSTR(out, "not a position", "says why");
	ASSERT_OK(kt_write_file(pos, "12:zz\n", 0600), "a garbled position file");
	ASSERT_EQ(kgate(t.dir, out, sizeof(out),
			(char *[]){ "--keep-bytes", "0", "--after-position", pos, NULL }), 1,
		  "garbled position");
	unlink(pos);
	snapshot(t.dir, after, sizeof(after));
	ASSERT_STREQ(after, before, "no segment removed or changed");
	ASSERT_FALSE(exists(anchor), "no anchor written");

	/* and the command itself works */
	ASSERT_EQ(kgate(t.dir, out, sizeof(out), (char *[]){ "--keep-bytes", "1K", NULL }), 0,
		  "prune through the command");
	ASSERT_HAS_SUBSTR(out, "pruned", "says what it removed");
	ASSERT_OK(verify(t.dir), "verifies");
	ASSERT_GE(vres.pruned, 1, "records pruned");
	trail_free(&t);
}

TEST(size_arguments)
{
	uint64_t v;

	ASSERT_OK(kg_audit_parse_size("512", &v), "plain bytes");
	ASSERT_EQ(v, 512, "512");
	ASSERT_OK(kg_audit_parse_size("16M", &v), "M");
	ASSERT_EQ(v, 16ull << 20, "16 MiB");
	ASSERT_OK(kg_audit_parse_size("2GiB", &v), "GiB");
	ASSERT_EQ(v, 2ull << 30, "2 GiB");
	ASSERT_EQ(kg_audit_parse_size("", &v), -EINVAL, "empty");
	ASSERT_EQ(kg_audit_parse_size("M", &v), -EINVAL, "no number");
	ASSERT_EQ(kg_audit_parse_size("3Q", &v), -EINVAL, "unknown unit");
	ASSERT_EQ(kg_audit_parse_size("3Mx", &v), -EINVAL, "trailing bytes");
	ASSERT_EQ(kg_audit_parse_size("99999999999T", &v), -EINVAL, "overflow");
}

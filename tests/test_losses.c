// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_losses.c - refusals and losses the trail can explain (issue 10 §5),
 * with 30 concurrent `kgate run` jobs of 1,000 denied connects each, on
 * this host through the cgroup-BPF connect program (degraded mode).
 *
 *   - distinct targets and nobody consuming during the storm: the ring
 *     overflows; every loss record splits its count by job and by kind
 *     (both add up to it), and per job, the job's deny records plus its
 *     losses are exactly its 1,000 refusals; in all, kernel denials ==
 *     sum of the deny records' counts + the losses.
 *   - identical targets (issue 10 §5: "a repeated identical denial should
 *     become one record with a count before anything is dropped"): the
 *     kernel folds them (kg_fold), so the same 30 x 1,000 storm with
 *     nobody consuming loses nothing, every job has its deny records and
 *     their counts are its 1,000; one job of 5,000 identical refusals is a
 *     few records counting exactly 5,000, its summary says 5000 refused
 *     and the timeline shows the counts; two targets interleaved stay two
 *     keys (no record merges them), each counting its own half.
 *   - the ring's size (--ring-size): a bad size is refused by `kgate run`
 *     and `kgate daemon` with an error naming it, and nothing is loaded or
 *     written; a 64K ring made by `kgate run --ring-size 64K` holds what
 *     64K holds, loses the rest, and the trail accounts for every loss per
 *     job; another size asked of the loaded ring is refused, the ring stays.
 */
#include <bpf/bpf.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>

#include "testlib.h"
#include "testenv.h"
#include "record/audit.h"
#include "cli/cmds.h"
#include "common.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "record/recorder.h"
#include "job/registry.h"
#include "record/ringsize.h"

#define NJOBS 30
#define EACH 1000

static char tmpdir[256], pindir[256];

static void setup(void)
{
	if (getuid() != 0)
		SKIP("needs root");
	if (kt_state_tree("losses", false, tmpdir, sizeof(tmpdir), pindir, sizeof(pindir)))
		SKIP("cannot make the test's directories");
}

static void teardown(void)
{
	char cmd[300];

	kg_loader_unpin_all();
	rmdir(pindir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		printf("  could not remove %s\n", tmpdir);
}

static const char *kgate_bin(void)
{
	const char *b = getenv("KGATE_BIN");

	return b ? b : "build-san/kgate";
}

static const char *helper(const char *name)
{
	static char buf[4][512];
	static int i;
	char *b = buf[i++ % 4];

	snprintf(b, 512, "%s/%s", getenv("KGATE_TEST_HELPERS") ?: "build-san/tests/helpers", name);
	return b;
}

static pid_t spawn(char *const argv[], const char *outname)
{
	char out[512];
	pid_t pid;

	snprintf(out, sizeof(out), "%s/%s", tmpdir, outname);
	pid = fork();
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(126);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

#define POLICY \
	"{\"version\":1,\"name\":\"losses\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"block\"," \
	"\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}"

/* What the trail says, per job and in all. */
struct job_acct {
	char trace[32];
	long records, refusals, lost;
};

struct acct {
	struct job_acct job[NJOBS + 8];
	int njobs;
	long refusals, deny_records, lost, lost_records, unattributed;
	long bad_kind_sums, bad_job_sums;
};

static struct job_acct *job_of(struct acct *a, const char *trace)
{
	int i;

	if (!trace)
		return NULL;
	for (i = 0; i < a->njobs; i++)
		if (!strcmp(a->job[i].trace, trace))
			return &a->job[i];
	if (a->njobs == NJOBS + 8)
		return NULL;
	snprintf(a->job[a->njobs].trace, sizeof(a->job[0].trace), "%s", trace);
	return &a->job[a->njobs++];
}

static int acct_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct acct *a = ctx;
	const char *type = json_string_value(json_object_get(rec, "type"));
	const char *trace = json_string_value(json_object_get(rec, "trace"));
	json_t *extra = json_object_get(rec, "extra"), *v;
	struct job_acct *j;
	size_t i;

	(void)line;
	(void)len;
	if (type && !strcmp(type, "job_start"))
		job_of(a, trace);
	if (type && !strcmp(type, "decision") &&
	    !strcmp(json_string_value(json_object_get(rec, "decision")) ?: "", "deny")) {
		long n = (long)json_integer_value(json_object_get(extra, "count"));

		a->deny_records++;
		a->refusals += n;
		j = job_of(a, trace);
		if (j) {
			j->records++;
			j->refusals += n;
		}
	}
	if (type && !strcmp(type, "events_lost") &&
	    !strcmp(json_string_value(json_object_get(rec, "mechanism")) ?: "", "ring-buffer")) {
		long lost = (long)json_integer_value(json_object_get(json_object_get(extra, "counts"),
								      "lost"));
		long kinds = 0, jobs = 0;
		const char *k;

		a->lost_records++;
		a->lost += lost;
		json_object_foreach(json_object_get(extra, "by_kind"), k, v)
			kinds += (long)json_integer_value(v);
		json_array_foreach(json_object_get(extra, "by_job"), i, v) {
			long n = (long)json_integer_value(json_object_get(v, "lost"));

			jobs += n;
			j = job_of(a, json_string_value(json_object_get(v, "trace_id")));
			if (j)
				j->lost += n;
		}
		a->unattributed += (long)json_integer_value(json_object_get(extra, "unattributed"));
		jobs += (long)json_integer_value(json_object_get(extra, "unattributed"));
		if (kinds != lost)
			a->bad_kind_sums++;
		if (jobs != lost)
			a->bad_job_sums++;
	}
	return 0;
}

/* 30 jobs of EACH connects to 127.0.0.2 (mode "same" or "distinct"); with
 * hold_consumer, nobody consumes the ring until they have all ended.  Then
 * a consumer in this process drains the ring and records the losses. */
static void storm(const char *mode, bool hold_consumer, struct acct *a, struct kg_counters *c)
{
	char policy[512], outname[32], *out;
	struct kg_loader_opts lo = { 0 };
	struct kg_consumer *cons = NULL;
	struct kg_audit *audit;
	struct kg_loader *l;
	pid_t run[NJOBS];
	int lock = -1, i, fd, ok = 0;
	char n[16];

	snprintf(policy, sizeof(policy), "%s/p.json", tmpdir);
	fd = open(policy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT_TRUE(fd >= 0 && write(fd, POLICY, strlen(POLICY)) == (ssize_t)strlen(POLICY),
		    "policy written");
	close(fd);
	/* loaded and pinned once before the jobs start: 30 first loads at
	 * once would each pin their own maps */
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "the programs are loaded and pinned");
	if (hold_consumer) {
		lock = kg_consumer_try_lock();
		ASSERT_TRUE(lock >= 0, "the consumer lock: nobody consumes during the storm");
	}
	snprintf(n, sizeof(n), "%d", EACH);
	for (i = 0; i < NJOBS; i++) {
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy, "--",
				 (char *)helper("deny_storm"), "127.0.0.2", "9", n, (char *)mode, NULL };

		snprintf(outname, sizeof(outname), "run%d.out", i);
		run[i] = spawn(argv, outname);
	}
	for (i = 0; i < NJOBS; i++) {
		snprintf(outname, sizeof(outname), "run%d.out", i);
		if (wait_exit(run[i]) == 0) {
			char path[512];

			snprintf(path, sizeof(path), "%s/%s", tmpdir, outname);
			out = kg_read_file(path, 1 << 20, NULL);
			if (out && strstr(out, "refused 1000 other 0 ok 0"))
				ok++;
			else
				printf("  job %d: %s\n", i, out ? out : "(no output)");
			free(out);
		}
	}
	ASSERT_EQ(ok, NJOBS, "every job ran and saw its 1000 connects refused");
	if (lock >= 0)
		close(lock);
	sleep_ms(1000);	/* aggregated counts reach the ring within an interval */
	audit = kg_audit_open(NULL, NULL);
	ASSERT_TRUE(audit != NULL, "the trail");
	if (l && audit)
		cons = kg_consumer_try(l, audit);
	ASSERT_TRUE(cons != NULL, "a consumer");
	if (cons) {
		for (i = 0; i < 100 && kg_consumer_drain(cons) > 0; i++)
			;
		kg_consumer_poll(cons);
		kg_consumer_close(cons);
	}
	memset(c, 0, sizeof(*c));
	if (l)
		ASSERT_OK(kg_maps_read_counters(l, c), "the kernel's counters");
	kg_audit_close(audit);
	kg_loader_close(l);
	memset(a, 0, sizeof(*a));
	ASSERT_OK(kg_audit_query(NULL, NULL, acct_cb, a, true, NULL), "read the trail");
	printf("  %s: kernel denials %llu; trail: %ld deny records counting %ld, %ld loss records "
	       "counting %ld (%ld unattributed); %d jobs\n", mode,
	       (unsigned long long)c->decisions[KG_DEC_DENY], a->deny_records, a->refusals,
	       a->lost_records, a->lost, a->unattributed, a->njobs);
}

static void check_exact(struct acct *a, struct kg_counters *c)
{
	int i, off = 0;

	ASSERT_EQ(a->njobs, NJOBS, "every job started and is in the trail");
	ASSERT_EQ((long)c->decisions[KG_DEC_DENY], (long)NJOBS * EACH, "the kernel refused them all");
	ASSERT_EQ(a->refusals + a->lost, (long)c->decisions[KG_DEC_DENY],
		  "kernel denials == sum of the deny records' counts + the losses, exactly");
	ASSERT_EQ(a->bad_kind_sums, 0, "every loss record's by_kind adds up to its count");
	ASSERT_EQ(a->bad_job_sums, 0, "every loss record's by_job (+ unattributed) adds up");
	for (i = 0; i < a->njobs; i++)
		if (a->job[i].refusals + a->job[i].lost != EACH) {
			printf("  %s: %ld records counting %ld, lost %ld\n", a->job[i].trace,
			       a->job[i].records, a->job[i].refusals, a->job[i].lost);
			off++;
		}
	ASSERT_EQ(off, 0, "per job: its records' counts + its losses == its 1000 refusals");
}

static int write_policy(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, POLICY, strlen(POLICY)) == (ssize_t)strlen(POLICY) ? 0 : -1;
	close(fd);
	return ok;
}

/* `kgate ARGS...` with its output in out (NUL-terminated): the exit code. */
static int kgate_out(char *const *args, char *out, size_t len)
{
	char *argv[16] = { (char *)kgate_bin() }, *text;
	char path[512];
	int i, rc;

	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	rc = wait_exit(spawn(argv, "kgate.out"));
	snprintf(path, sizeof(path), "%s/kgate.out", tmpdir);
	text = kg_read_file(path, 1 << 20, NULL);
	snprintf(out, len, "%s", text ? text : "");
	free(text);
	return rc;
}

TEST(identical_refusals_fold_and_nothing_is_lost)
{
	struct kg_counters c;
	struct acct a;
	int i, without = 0, most = 0;

	setup();
	storm("same", true, &a, &c);
	check_exact(&a, &c);
	ASSERT_EQ(a.lost, 0, "nothing lost: identical refusals were folded before the ring");
	ASSERT_EQ((long)c.events_lost[KG_EV_DECISION], 0, "the kernel counted no loss either");
	for (i = 0; i < a.njobs; i++) {
		if (a.job[i].records == 0)
			without++;
		if (a.job[i].records > most)
			most = (int)a.job[i].records;
	}
	printf("  %ld deny records for %ld refusals; at most %d records in a job\n", a.deny_records,
	       a.refusals, most);
	ASSERT_EQ(without, 0, "every job has deny records");
	ASSERT_TRUE(most <= 30, "a job's 1,000 identical refusals are a few records (one a second)");
	teardown();
}

/* Deny records of one job, by target: how many records, what they count. */
struct by_target {
	const char *trace;	/* NULL: every job */
	char target[4][64];
	long records[4], counts[4];
	int n, others, at_end;
};

static int target_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct by_target *b = ctx;
	const char *type = json_string_value(json_object_get(rec, "type"));
	const char *trace = json_string_value(json_object_get(rec, "trace"));
	const char *target = json_string_value(json_object_get(rec, "target")) ?: "";
	json_t *extra = json_object_get(rec, "extra");
	int i;

	(void)line;
	(void)len;
	if (!type || strcmp(type, "decision") || (b->trace && strcmp(trace ?: "", b->trace)) ||
	    strcmp(json_string_value(json_object_get(rec, "decision")) ?: "", "deny"))
		return 0;
	if (json_is_true(json_object_get(extra, "at_job_end")))
		b->at_end++;
	for (i = 0; i < b->n && strcmp(b->target[i], target); i++)
		;
	if (i == b->n) {
		if (b->n == 4) {
			b->others++;
			return 0;
		}
		snprintf(b->target[b->n++], sizeof(b->target[0]), "%s", target);
	}
	b->records[i]++;
	b->counts[i] += (long)json_integer_value(json_object_get(extra, "count"));
	return 0;
}

/* `kgate run --policy P -- deny_storm 127.0.0.2 9 N MODE` with its live
 * view: its output (to free), NULL when it did not run. */
static char *run_storm(const char *policy, const char *n, const char *mode)
{
	char *argv[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy, "--",
			 (char *)helper("deny_storm"), "127.0.0.2", "9", (char *)n, (char *)mode, NULL };
	char path[512];

	if (wait_exit(spawn(argv, "storm.out")) != 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/storm.out", tmpdir);
	return kg_read_file(path, 1 << 20, NULL);
}

/* The trace id `kgate run` names in its summary line. */
static void trace_of(const char *out, char *trace, size_t len)
{
	const char *p = out ? strstr(out, "kgate: job job-") : NULL;

	snprintf(trace, len, "%.20s", p ? p + strlen("kgate: job ") : "");
}

static long total_lost(void)
{
	struct acct *a = calloc(1, sizeof(*a));
	long lost = -1;

	if (a && !kg_audit_query(NULL, NULL, acct_cb, a, true, NULL))
		lost = a->lost;
	free(a);
	return lost;
}

TEST(five_thousand_identical_refusals_are_a_few_records_counting_5000)
{
	struct kg_loader_opts lo = { 0 };
	struct kg_counters c = {};
	struct by_target b = {};
	char policy[512], trace[32], *out, *tl;
	struct kg_loader *l;

	setup();
	snprintf(policy, sizeof(policy), "%s/p.json", tmpdir);
	ASSERT_OK(write_policy(policy), "policy written");
	out = run_storm(policy, "5000", "same");
	ASSERT_TRUE(out != NULL, "the job ran");
	ASSERT_HAS_SUBSTR(out, "refused 5000 other 0 ok 0", "every connect was refused");
	ASSERT_HAS_SUBSTR(out, "5000 actions refused", "the summary counts every refusal");
	ASSERT_HAS_SUBSTR(out, " times", "the live view shows a record's count");
	trace_of(out, trace, sizeof(trace));
	b.trace = trace;
	ASSERT_OK(kg_audit_query(NULL, NULL, target_cb, &b, true, NULL), "read the trail");
	printf("  %s: %ld deny records counting %ld (%d at job end)\n", trace, b.records[0],
	       b.counts[0], b.at_end);
	ASSERT_EQ(b.n, 1, "one target");
	ASSERT_EQ(b.counts[0], 5000, "the records' counts add up to exactly 5000");
	ASSERT_TRUE(b.records[0] >= 2 && b.records[0] <= 30,
		    "a few records (one a second and the rest at the job's end), not 5000");
	ASSERT_EQ(total_lost(), 0, "no loss recorded");
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "the maps");
	if (l) {
		ASSERT_OK(kg_maps_read_counters(l, &c), "the kernel's counters");
		kg_loader_close(l);
	}
	ASSERT_EQ((long)c.decisions[KG_DEC_DENY], 5000, "the kernel refused 5000");
	ASSERT_EQ((long)c.events_lost[KG_EV_DECISION], 0, "and lost no event");
	{
		char *args[] = { "audit", "timeline", trace, NULL };

		free(out);
		out = calloc(1, 1 << 16);
		ASSERT_TRUE(out != NULL, "memory");
		if (out) {
			ASSERT_EQ(kgate_out(args, out, 1 << 16), 0, "kgate audit timeline");
			tl = strstr(out, "count=");
			ASSERT_TRUE(tl != NULL, "the timeline shows the counts");
			ASSERT_HAS_SUBSTR(out, "(at job end)", "and which were counted at the job's end");
		}
	}
	free(out);
	teardown();
}

TEST(distinct_targets_are_never_folded_together)
{
	struct by_target b = {};
	char policy[512], trace[32], *out;
	int i, nine = -1, ten = -1;

	setup();
	snprintf(policy, sizeof(policy), "%s/p.json", tmpdir);
	ASSERT_OK(write_policy(policy), "policy written");
	/* ports 9 and 10 in turn: 2,000 refusals each, interleaved */
	out = run_storm(policy, "4000", "2");
	ASSERT_TRUE(out != NULL, "the job ran");
	ASSERT_HAS_SUBSTR(out, "refused 4000 other 0 ok 0", "every connect was refused");
	ASSERT_HAS_SUBSTR(out, "4000 actions refused", "the summary counts every refusal");
	trace_of(out, trace, sizeof(trace));
	free(out);
	b.trace = trace;
	ASSERT_OK(kg_audit_query(NULL, NULL, target_cb, &b, true, NULL), "read the trail");
	for (i = 0; i < b.n; i++) {
		printf("  %s: %ld records counting %ld\n", b.target[i], b.records[i], b.counts[i]);
		if (!strcmp(b.target[i], "127.0.0.2:9/tcp"))
			nine = i;
		if (!strcmp(b.target[i], "127.0.0.2:10/tcp"))
			ten = i;
	}
	ASSERT_EQ(b.n, 2, "two targets, and no record of any other");
	ASSERT_TRUE(nine >= 0 && ten >= 0, "port 9 and port 10 each have records of their own");
	if (nine >= 0 && ten >= 0) {
		ASSERT_EQ(b.counts[nine], 2000, "port 9's records count its 2000");
		ASSERT_EQ(b.counts[ten], 2000, "port 10's records count its 2000");
		ASSERT_TRUE(b.records[nine] <= 30 && b.records[ten] <= 30, "each folded");
	}
	ASSERT_EQ(total_lost(), 0, "no loss recorded");
	teardown();
}

TEST(ring_overflow_losses_are_broken_down_per_job)
{
	struct kg_counters c;
	struct acct a;

	setup();
	storm("distinct", true, &a, &c);
	ASSERT_GE(a.lost, 1, "the ring overflowed (nobody consumed during the storm)");
	ASSERT_GE(a.lost_records, 1, "and the losses were recorded");
	ASSERT_EQ(a.unattributed, 0, "every loss attributed to its job");
	check_exact(&a, &c);
	teardown();
}

/* The pinned ring's size and id, 0 when there is none. */
static uint32_t pinned_ring(uint32_t *id)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/kg_events", pindir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.max_entries = 0;
	close(fd);
	if (id)
		*id = info.id;
	return info.max_entries;
}

TEST(ring_size_parsing)
{
	static const struct { const char *text; uint32_t bytes; } ok[] = {
		{ "64K", 65536 }, { "64k", 65536 }, { "65536", 65536 }, { "4M", 4u << 20 },
		{ "4MiB", 4u << 20 }, { "16mb", 16u << 20 }, { "256M", 256u << 20 },
	};
	static const char *const bad[] = {
		"", "0", "3000", "100K", "32K", "512M", "1G", "4X", "-4M", " 4M", "4M4", "4MiBs",
		"99999999999999999999K", "0x10000",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		uint32_t b = 0;

		ASSERT_OK(kg_ring_size_parse(ok[i].text, &b), ok[i].text);
		ASSERT_EQ(b, ok[i].bytes, ok[i].text);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		uint32_t b = 7;

		ASSERT_EQ(kg_ring_size_parse(bad[i], &b), -EINVAL, bad[i]);
		ASSERT_EQ(b, 7, "a refused size changes nothing");
	}
}

TEST(a_bad_ring_size_is_refused_and_changes_nothing)
{
	static const char *const bad[] = { "3000", "0", "100K", "32K", "512M", "4X", "-4M" };
	char policy[512], out[4096], want[64], audit[600];
	size_t i;

	setup();
	snprintf(policy, sizeof(policy), "%s/p.json", tmpdir);
	ASSERT_OK(write_policy(policy), "policy written");
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		char *run[] = { "run", "-q", "--ring-size", (char *)bad[i], "--policy", policy,
				"--", "/bin/true", NULL };
		char *daemon[] = { "daemon", "--ring-size", (char *)bad[i], NULL };

		snprintf(want, sizeof(want), "'%s'", bad[i]);
		ASSERT_EQ(kgate_out(run, out, sizeof(out)), KG_EXIT_USAGE, "kgate run refuses it");
		ASSERT_HAS_SUBSTR(out, want, "and the error names the bad value");
		ASSERT_HAS_SUBSTR(out, "power of two", "and says what a size is");
		ASSERT_EQ(kgate_out(daemon, out, sizeof(out)), KG_EXIT_USAGE, "kgate daemon too");
		ASSERT_HAS_SUBSTR(out, want, "naming it");
	}
	ASSERT_EQ(pinned_ring(NULL), 0, "no ring buffer was made");
	ASSERT_TRUE(access(pindir, F_OK) != 0, "nothing was pinned at all");
	snprintf(audit, sizeof(audit), "%s/audit", tmpdir);
	ASSERT_TRUE(access(audit, F_OK) != 0, "nothing was written to a trail");
	teardown();
}

#define SMALL_JOBS 3

TEST(a_too_small_ring_loses_and_accounts_for_every_loss)
{
	char policy[512], out[4096], n[16], outname[32], path[600];
	struct kg_loader_opts lo = { 0 };
	struct kg_consumer *cons = NULL;
	struct kg_counters c = {};
	struct kg_audit *audit;
	struct kg_loader *l;
	pid_t run[SMALL_JOBS];
	uint32_t id = 0, id2 = 0;
	long cap;
	struct acct *a = calloc(1, sizeof(*a));
	int lock, i, ok = 0, full = 0, empty = 0;

	setup();
	ASSERT_TRUE(a != NULL, "memory");
	snprintf(policy, sizeof(policy), "%s/p.json", tmpdir);
	ASSERT_OK(write_policy(policy), "policy written");
	{
		char *args[] = { "run", "-q", "--ring-size", "64K", "--policy", policy, "--",
				 "/bin/true", NULL };

		ASSERT_EQ(kgate_out(args, out, sizeof(out)), 0, "kgate run --ring-size 64K");
	}
	ASSERT_EQ(pinned_ring(&id), 65536, "it made a 64K ring");
	/* nobody consumes while the jobs run: the ring holds what 64K holds */
	lock = kg_consumer_try_lock();
	ASSERT_TRUE(lock >= 0, "the consumer lock: nobody consumes during the storm");
	snprintf(n, sizeof(n), "%d", EACH);
	for (i = 0; i < SMALL_JOBS; i++) {
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy, "--",
				 (char *)helper("deny_storm"), "127.0.0.2", "9", n, "distinct", NULL };

		snprintf(outname, sizeof(outname), "small%d.out", i);
		run[i] = spawn(argv, outname);
	}
	for (i = 0; i < SMALL_JOBS; i++) {
		char *text;

		snprintf(outname, sizeof(outname), "small%d.out", i);
		snprintf(path, sizeof(path), "%s/%s", tmpdir, outname);
		if (wait_exit(run[i]) == 0 && (text = kg_read_file(path, 1 << 20, NULL))) {
			ok += strstr(text, "refused 1000 other 0 ok 0") != NULL;
			free(text);
		}
	}
	ASSERT_EQ(ok, SMALL_JOBS, "every job ran (taking the 64K ring as it is) and was refused");
	if (lock >= 0)
		close(lock);
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "a loader asking for no size takes the pinned ring");
	audit = kg_audit_open(NULL, NULL);
	ASSERT_TRUE(audit != NULL, "the trail");
	if (l && audit)
		cons = kg_consumer_try(l, audit);
	ASSERT_TRUE(cons != NULL, "a consumer");
	if (cons) {
		for (i = 0; i < 100 && kg_consumer_drain(cons) > 0; i++)
			;
		kg_consumer_poll(cons);
		kg_consumer_close(cons);
	}
	if (l)
		ASSERT_OK(kg_maps_read_counters(l, &c), "the kernel's counters");
	kg_audit_close(audit);
	kg_loader_close(l);
	ASSERT_OK(kg_audit_query(NULL, NULL, acct_cb, a, true, NULL), "read the trail");
	cap = 65536 / (long)(sizeof(struct kg_event) + 8);
	printf("  64K ring (%ld events): kernel denials %llu; trail: %ld deny records, %ld lost "
	       "in %ld loss records (%ld unattributed); %d jobs\n", cap,
	       (unsigned long long)c.decisions[KG_DEC_DENY], a->deny_records, a->lost,
	       a->lost_records, a->unattributed, a->njobs);
	ASSERT_EQ((long)c.decisions[KG_DEC_DENY], (long)SMALL_JOBS * EACH, "the kernel refused all");
	ASSERT_TRUE(a->deny_records <= cap, "the ring held no more than 64K holds");
	ASSERT_GE(a->lost, (long)SMALL_JOBS * EACH - cap, "the rest was lost, and counted");
	ASSERT_EQ(a->refusals + a->lost, (long)c.decisions[KG_DEC_DENY],
		  "kernel denials == the deny records' counts + the losses, exactly");
	ASSERT_EQ(a->bad_kind_sums, 0, "every loss record's by_kind adds up to its count");
	ASSERT_EQ(a->bad_job_sums, 0, "every loss record's by_job (+ unattributed) adds up");
	ASSERT_EQ(a->njobs, SMALL_JOBS + 1, "every job in the trail (and the first, /bin/true)");
	for (i = 0; i < a->njobs; i++) {
		long sum = a->job[i].refusals + a->job[i].lost;

		if (sum == EACH)
			full++;
		else if (sum == 0)
			empty++;
		else
			printf("  %s: %ld records counting %ld, lost %ld\n", a->job[i].trace,
			       a->job[i].records, a->job[i].refusals, a->job[i].lost);
	}
	ASSERT_EQ(full, SMALL_JOBS, "per storm job: its records' counts + its losses == its 1000");
	ASSERT_EQ(empty, 1, "and the first job (/bin/true) refused nothing");
	{
		char *other[] = { "run", "-q", "--ring-size", "8M", "--policy", policy, "--",
				  "/bin/true", NULL };
		char *same[] = { "run", "-q", "--ring-size", "64K", "--policy", policy, "--",
				 "/bin/true", NULL };

		ASSERT_NEQ(kgate_out(other, out, sizeof(out)), 0,
			   "another size asked of the loaded ring is refused");
		ASSERT_HAS_SUBSTR(out, "--ring-size 8M", "naming the size asked for");
		ASSERT_HAS_SUBSTR(out, "has 64K", "and the ring's");
		ASSERT_EQ(pinned_ring(&id2), 65536, "the ring stays 64K");
		ASSERT_EQ(id2, id, "the same ring (not made again)");
		ASSERT_EQ(kgate_out(same, out, sizeof(out)), 0, "its own size is accepted");
	}
	free(a);
	teardown();
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_record_build.c - the record builder (audit.h, record/build.c): fields
 * come out under their names, in the documented order, escaped; a built
 * record is committed, sealed and verifies; a mistake refuses the record. */
#include "testlib.h"
#include "record/audit.h"
#include "common.h"
#include "policy/policy.h"
#include "record/body.h"
#include "record/recorder.h"

#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <sys/stat.h>

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* removes a directory this test created with mkdtemp */
static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_dir(char *buf)
{
	strcpy(buf, "/tmp/kgate-record-build-XXXXXX");
	if (!mkdtemp(buf)) {
		printf("  mkdtemp failed\n");
		_exit(1);
	}
	return buf;
}

/* the members the writer makes of r (what comes between "prev" and "hash") */
static char *members_of(const struct kg_audit_rec *r)
{
	struct kg_time_cache tc = {};
	struct kg_jbuf b = {};
	char *s;

	if (kg_audit_build_members(&b, &tc, r) || !kg_jb_reserve(&b, 1)) {
		kg_jb_free(&b);
		return NULL;
	}
	b.p[b.len] = '\0';
	s = strdup(b.p);
	kg_jb_free(&b);
	return s;
}

/* the trail's active segment, whole (NULL when there is none) */
static char *trail_text(const char *dir, size_t *len)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	return kg_read_file(path, 64u << 20, len);
}

/* bytes in the active segment (0 when there is none) */
static size_t trail_size(const char *dir)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	return stat(path, &st) ? 0 : (size_t)st.st_size;
}

/* the members of the trail's only line, as members_of() spells them */
static char *only_line_members(const char *dir)
{
	size_t len;
	char *text = trail_text(dir, &len), *p, *out = NULL;

	/* {"seq":1,"prev":"<64>",<members>,"hash":"<64>"}\n */
	if (text && len > 100 && strchr(text, '\n') == text + len - 1 &&
	    (p = strstr(text, "\"prev\":\""))) {
		p += 8 + 64 + 2;
		text[len - 76] = '\0';
		out = strdup(p);
	}
	free(text);
	return out;
}

static struct kg_audit_verify_result vres;

static int verify(const char *dir)
{
	int err = kg_audit_verify_dir(dir, NULL, &vres);

	if (!err && !vres.ok)
		printf("  verify: bad seq %llu at %s:%lu: %s\n", (unsigned long long)vres.bad_seq,
		       vres.bad_file, vres.bad_line, vres.reason);
	return err ? err : vres.ok ? 0 : 1;
}

/* the docs/audit-format.md example, its fields set in a scrambled order */
static void build_example(struct kg_rec *r, json_t *extra)
{
	kg_rec_init(r, "decision");
	kg_rec_str(r, "mechanism", "bpf-lsm");
	kg_rec_str(r, "policy.hash", "9f2c");
	kg_rec_str(r, "reason", "path matches protected secret");
	kg_rec_extra(r, extra);
	kg_rec_int(r, "subject.tid", 4243);
	kg_rec_str(r, "rule", "no-cloud-creds");
	kg_rec_str(r, "decision", "deny");
	kg_rec_str(r, "target", "/home/alice/.aws/credentials");
	kg_rec_str(r, "op", "file_open");
	kg_rec_str(r, "subject.exe", "/usr/bin/python3.11");
	kg_rec_str(r, "subject.comm", "python3");
	kg_rec_int(r, "subject.pid", 4242);
	kg_rec_str(r, "actor.role", "operator");
	kg_rec_str(r, "actor.name", "alice");
	kg_rec_int(r, "actor.uid", 1000);
	kg_rec_str(r, "trace", "job-1a2b3c");
	kg_rec_int(r, "policy.version", 7);
	kg_rec_str(r, "policy.name", "default");
	kg_rec_int(r, "mono_ns", 754457651412);
	kg_rec_int(r, "time", 1714564800000000123);
}

static const char example_members[] =
	"\"type\":\"decision\",\"time\":\"2024-05-01T12:00:00.000000123Z\","
	"\"mono_ns\":754457651412,\"trace\":\"job-1a2b3c\","
	"\"actor\":{\"uid\":1000,\"name\":\"alice\",\"role\":\"operator\"},"
	"\"subject\":{\"pid\":4242,\"tid\":4243,\"comm\":\"python3\",\"exe\":\"/usr/bin/python3.11\"},"
	"\"op\":\"file_open\",\"target\":\"/home/alice/.aws/credentials\",\"decision\":\"deny\","
	"\"rule\":\"no-cloud-creds\",\"reason\":\"path matches protected secret\","
	"\"policy\":{\"name\":\"default\",\"version\":7,\"hash\":\"9f2c\"},\"mechanism\":\"bpf-lsm\","
	"\"extra\":{\"kind\":\"file\"}";

TEST(every_field_comes_out_under_its_name_in_the_documented_order)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	json_t *extra = json_pack("{s:s}", "kind", "file");
	struct kg_audit *a;
	struct kg_rec r;
	char dir[64], *got;

	make_dir(dir);
	build_example(&r, extra);
	ASSERT_OK(r.err, "every field taken");
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	ASSERT_OK(kg_rec_append(a, &r), "appended");
	/* SYNC_RECORD: committed and in the file before the trail is closed */
	got = only_line_members(dir);
	ASSERT_STREQ(got, example_members, "the documented record, byte for byte");
	free(got);
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "sealed: the trail verifies");
	ASSERT_EQ(vres.records, 1, "one record");
	json_decref(extra);
	rm_tree(dir);
}

/* What the callers filled by hand before the builder, and the builder's
 * version of it: the same bytes (absent members, uid 0, a policy without
 * a version, an empty string, the controller's usual record). */
TEST(built_records_are_byte_identical_to_hand_filled_ones)
{
	json_t *extra = json_pack("{s:s,s:I}", "cgroup", "/sys/fs/cgroup/x", "cgroup_id",
				  (json_int_t)77);
	struct kg_audit_rec hand[4];
	struct kg_rec built[4];
	int i;

	/* reap.c's job_exit: a policy without a version says -1 */
	hand[0] = (struct kg_audit_rec){ .type = "job_exit", .trace_id = "job-1", .actor_uid = 0,
		.pid = -1, .tid = -1, .op = "exit", .target = "sleep 1",
		.reason = "ended while its controller was gone", .mechanism = "controller",
		.policy_name = "p", .policy_hash = "abc", .policy_version = -1, .extra = extra };
	kg_rec_init(&built[0], "job_exit");
	kg_rec_str(&built[0], "trace", "job-1");
	kg_rec_int(&built[0], "actor.uid", 0);
	kg_rec_str(&built[0], "op", "exit");
	kg_rec_str(&built[0], "target", "sleep 1");
	kg_rec_str(&built[0], "reason", "ended while its controller was gone");
	kg_rec_str(&built[0], "mechanism", "controller");
	kg_rec_str(&built[0], "policy.name", "p");
	kg_rec_str(&built[0], "policy.hash", "abc");
	kg_rec_extra(&built[0], extra);

	/* the daemon's controller record: no trace, no policy, no name */
	hand[1] = (struct kg_audit_rec){ .type = "controller", .actor_uid = 1000, .pid = 1234,
		.tid = -1, .op = "start", .target = "kgate daemon", .mechanism = "controller" };
	kg_rec_init(&built[1], "controller");
	kg_rec_int(&built[1], "actor.uid", 1000);
	kg_rec_int(&built[1], "subject.pid", 1234);
	kg_rec_str(&built[1], "op", "start");
	kg_rec_str(&built[1], "target", "kgate daemon");
	kg_rec_str(&built[1], "mechanism", "controller");

	/* a NULL string is left out like an unset one; pid 0 and "" are kept */
	hand[2] = (struct kg_audit_rec){ .type = "admission", .actor_uid = -1, .actor_role = "",
		.pid = 0, .tid = 0, .rule_id = NULL, .policy_version = 3 };
	kg_rec_init(&built[2], "admission");
	kg_rec_str(&built[2], "actor.role", "");
	kg_rec_int(&built[2], "subject.pid", 0);
	kg_rec_int(&built[2], "subject.tid", 0);
	kg_rec_str(&built[2], "rule", NULL);
	kg_rec_int(&built[2], "policy.version", 3);

	/* only a type: nothing else appears */
	hand[3] = (struct kg_audit_rec){ .type = "recovery", .actor_uid = -1, .pid = -1, .tid = -1,
		.policy_version = -1 };
	kg_rec_init(&built[3], "recovery");

	for (i = 0; i < 4; i++) {
		char *want, *got;

		hand[i].ts_real_ns = built[i].rec.ts_real_ns = 1714564800000000001ull + (uint64_t)i;
		hand[i].ts_mono_ns = built[i].rec.ts_mono_ns = 99 + (uint64_t)i;
		ASSERT_OK(built[i].err, "built without a mistake");
		want = members_of(&hand[i]);
		got = members_of(&built[i].rec);
		ASSERT_TRUE(want && got, "both serialised");
		if (want && got && strcmp(want, got))
			printf("  record %d\n  got:  %s\n  want: %s\n", i, got, want);
		ASSERT_STREQ(got, want, "same bytes");
		free(want);
		free(got);
	}
	json_decref(extra);
}

/* the member's string value in the line, unescaped back to bytes */
static char *member_bytes(json_t *line, const char *obj, const char *key, size_t *len)
{
	json_t *o = obj ? json_object_get(line, obj) : line;
	const char *s = json_string_value(json_object_get(o, key));

	return s ? kg_audit_unescape(s, len) : NULL;
}

TEST(hostile_bytes_are_escaped_and_come_back_unchanged)
{
	static const char hostile[] = "\"q\"\\a\\x41\xff\xfe\n\r\t\x01\x1b[31m\x7f\xc3\x28"
				      "\xe2\x82\xac\xc2\x85\xed\xa0\x80\xf0\x9f\x98\x80\xe2\x80\xa8z";
	static const struct { const char *obj, *key, *field; } where[] = {
		{ NULL, "trace", "trace" }, { "actor", "name", "actor.name" },
		{ "subject", "comm", "subject.comm" }, { "subject", "exe", "subject.exe" },
		{ NULL, "op", "op" }, { NULL, "reason", "reason" },
		{ "policy", "name", "policy.name" },
	};
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	size_t long_len = 200000, i, len, tlen;
	char *longv = malloc(long_len + 1), *text, *back, dir[64];
	struct kg_audit *a;
	json_t *line;
	struct kg_rec r;

	ASSERT_TRUE(longv, "malloc");
	/* a long value of every byte but NUL, over and over */
	for (i = 0; i < long_len; i++)
		longv[i] = (char)(1 + i % 255);
	longv[long_len] = '\0';
	kg_rec_init(&r, "decision");
	for (i = 0; i < ARRAY_SIZE(where); i++)
		kg_rec_str(&r, where[i].field, hostile);
	kg_rec_str(&r, "target", longv);
	ASSERT_OK(r.err, "built");
	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	ASSERT_OK(kg_rec_append(a, &r), "appended");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies");

	text = trail_text(dir, &tlen);
	ASSERT_TRUE(text, "trail read");
	for (i = 0; text && i + 1 < tlen; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			break;
	ASSERT_EQ(i + 1, tlen, "no control byte in the line before its newline");
	line = text ? json_loads(text, 0, NULL) : NULL;
	ASSERT_TRUE(line, "the line is valid JSON (so valid UTF-8)");
	for (i = 0; line && i < ARRAY_SIZE(where); i++) {
		back = member_bytes(line, where[i].obj, where[i].key, &len);
		ASSERT_TRUE(back && len == sizeof(hostile) - 1 && !memcmp(back, hostile, len),
			    where[i].field);
		free(back);
	}
	back = line ? member_bytes(line, NULL, "target", &len) : NULL;
	ASSERT_TRUE(back && len == long_len && !memcmp(back, longv, len),
		    "the long value, every byte back");
	free(back);
	json_decref(line);
	free(text);
	free(longv);
	rm_tree(dir);
}

TEST(a_record_over_the_line_limit_is_refused_and_nothing_is_written)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	size_t n = KG_AUDIT_MAX_LINE;
	char *big = malloc(n + 1), *got, dir[64];
	struct kg_audit *a;
	struct kg_rec r;

	ASSERT_TRUE(big, "malloc");
	memset(big, 'a', n);
	big[n] = '\0';
	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	kg_rec_init(&r, "controller");
	kg_rec_str(&r, "target", big);
	ASSERT_EQ(kg_rec_append(a, &r), -E2BIG, "a 1 MiB value is too big for a line");
	kg_rec_init(&r, "controller");
	kg_rec_str(&r, "op", "start");
	ASSERT_OK(kg_rec_append(a, &r), "the next record");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_EQ(vres.records, 1, "only the record that fits");
	got = only_line_members(dir);
	ASSERT_HAS_SUBSTR(got, "\"op\":\"start\"", "and it is the second one");
	free(got);
	free(big);
	rm_tree(dir);
}

TEST(tampering_with_a_built_field_breaks_the_seal)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	char dir[64], path[128], *text, *at;
	json_t *extra = json_pack("{s:s}", "kind", "file");
	struct kg_audit *a;
	struct kg_rec r;
	size_t len;
	int fd;

	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	build_example(&r, extra);
	ASSERT_OK(kg_rec_append(a, &r), "appended");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies as written");
	text = trail_text(dir, &len);
	at = text ? strstr(text, "\"deny\"") : NULL;
	ASSERT_TRUE(at, "the decision is in the line");
	if (at) {
		memcpy(at + 1, "DENY", 4);	/* same length: only the seal can tell */
		snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
		fd = open(path, O_WRONLY | O_TRUNC);
		ASSERT_TRUE(fd >= 0 && write(fd, text, len) == (ssize_t)len, "rewritten");
		close(fd);
	}
	ASSERT_EQ(verify(dir), 1, "the edited record fails verification");
	ASSERT_EQ(vres.bad_seq, 1, "at its seq");
	free(text);
	json_decref(extra);
	rm_tree(dir);
}

/* One mistake: the setter says -EINVAL, the message names the field and the
 * record's type, and kg_rec_append refuses the record. */
struct mistake {
	const char *what, *field;
	int (*make)(struct kg_rec *r);
};

static int unknown_name(struct kg_rec *r) { return kg_rec_str(r, "actr.uid", "x"); }
static int no_name(struct kg_rec *r) { return kg_rec_str(r, NULL, "x"); }
static int json_spelling(struct kg_rec *r) { return kg_rec_str(r, "rule_id", "r1"); }
static int not_top_level(struct kg_rec *r) { return kg_rec_str(r, "name", "alice"); }
static int whole_object(struct kg_rec *r) { return kg_rec_int(r, "actor", 0); }
static int string_to_int(struct kg_rec *r) { return kg_rec_str(r, "subject.pid", "42"); }
static int int_to_string(struct kg_rec *r) { return kg_rec_int(r, "target", 42); }
static int set_twice(struct kg_rec *r)
{
	kg_rec_str(r, "op", "exit");
	return kg_rec_str(r, "op", "stop");
}
static int null_then_set(struct kg_rec *r)
{
	kg_rec_str(r, "reason", NULL);
	return kg_rec_str(r, "reason", "why");
}
static int negative_uid(struct kg_rec *r) { return kg_rec_int(r, "actor.uid", -1); }
static int huge_uid(struct kg_rec *r) { return kg_rec_int(r, "actor.uid", 1ll << 32); }
static int negative_pid(struct kg_rec *r) { return kg_rec_int(r, "subject.pid", -5); }
static int negative_time(struct kg_rec *r) { return kg_rec_int(r, "time", -1); }
static int extra_not_object(struct kg_rec *r)
{
	json_t *arr = json_array();
	int err = kg_rec_extra(r, arr);

	json_decref(arr);
	return err;
}
static int extra_twice(struct kg_rec *r)
{
	kg_rec_extra(r, NULL);
	return kg_rec_extra(r, NULL);
}

TEST(a_mistake_refuses_the_whole_record_naming_the_field)
{
	static const struct mistake mistakes[] = {
		{ "an unknown name", "'actr.uid'", unknown_name },
		{ "no name", "'(null)'", no_name },
		{ "the struct's spelling, not the record's", "'rule_id'", json_spelling },
		{ "a nested member without its object", "'name'", not_top_level },
		{ "a whole object", "'actor'", whole_object },
		{ "a string for an integer", "'subject.pid'", string_to_int },
		{ "an integer for a string", "'target'", int_to_string },
		{ "a field set twice", "'op'", set_twice },
		{ "a field set to NULL, then set", "'reason'", null_then_set },
		{ "a negative uid", "'actor.uid'", negative_uid },
		{ "a uid over 32 bits", "'actor.uid'", huge_uid },
		{ "a negative pid", "'subject.pid'", negative_pid },
		{ "a negative time", "'time'", negative_time },
		{ "extra not an object", "'extra'", extra_not_object },
		{ "extra set twice", "'extra'", extra_twice },
	};
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	char dir[64], errpath[128], *said, *got;
	struct kg_audit *a;
	struct kg_rec r;
	int errfd, saved;
	size_t i;

	make_dir(dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	for (i = 0; i < ARRAY_SIZE(mistakes); i++) {
		const struct mistake *m = &mistakes[i];

		/* what the builder says goes to a file of the test's */
		fflush(stderr);
		saved = dup(2);
		errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(errfd, 2);
		close(errfd);
		kg_rec_init(&r, "job_exit");
		kg_rec_str(&r, "trace", "job-7");
		ASSERT_EQ(m->make(&r), -EINVAL, m->what);
		kg_rec_str(&r, "target", "sleep 1");	/* a later good field does not undo it */
		ASSERT_EQ(kg_rec_append(a, &r), -EINVAL, m->what);
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		said = kg_read_file(errpath, 4096, NULL);
		ASSERT_HAS_SUBSTR(said, m->field, m->what);
		ASSERT_HAS_SUBSTR(said, "job_exit record", m->what);
		free(said);
	}
	ASSERT_EQ(trail_size(dir), 0, "nothing of the refused records was written");
	kg_rec_init(&r, "job_exit");
	kg_rec_str(&r, "trace", "job-7");
	ASSERT_OK(kg_rec_append(a, &r), "a record without a mistake");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_EQ(vres.records, 1, "only it");
	ASSERT_EQ(vres.first_seq, 1, "with the first seq: the refused ones took none");
	got = only_line_members(dir);
	ASSERT_HAS_SUBSTR(got, "\"trace\":\"job-7\"", "its member");
	free(got);
	rm_tree(dir);
}

TEST(an_unknown_record_type_is_refused)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	struct kg_audit *a;
	struct kg_rec r;
	char dir[64];

	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	kg_rec_init(&r, "jobexit");
	kg_rec_str(&r, "trace", "job-7");
	ASSERT_EQ(kg_rec_append(a, &r), -EINVAL, "a misspelt type");
	kg_rec_init(&r, NULL);
	ASSERT_EQ(kg_rec_append(a, &r), -EINVAL, "no type");
	kg_audit_close(a);
	ASSERT_EQ(trail_size(dir), 0, "nothing written");
	rm_tree(dir);
}

/* kg_rec_controller (recorder.h): the fields every record of the
 * controller's own carries, as the positional kg_record_controller filled
 * them: the caller's real uid and name, its pid, the policy, "controller". */
TEST(a_controller_record_names_the_caller_and_its_policy)
{
	static const char policy[] = "{\"version\":1,\"name\":\"ctl\",\"default\":\"allow\"}";
	struct kg_policy_error perr;
	struct kg_policy_doc *doc = kg_policy_load_buffer(policy, sizeof(policy) - 1, "ctl.json",
							  "/h", &perr);
	struct passwd *pw = getpwuid(getuid());
	struct kg_audit_rec hand = {
		.type = "admission", .trace_id = "job-9", .actor_uid = getuid(),
		.actor_name = pw ? pw->pw_name : NULL, .pid = getpid(), .tid = -1,
		.op = "admission", .target = "sleep 1", .decision = "deny",
		.rule_id = "kgate:launchers", .reason = "no", .mechanism = "controller",
		.ts_real_ns = 1714564800000000001ull, .ts_mono_ns = 5,
	};
	struct kg_rec r;
	char *want, *got;
	int pass;

	if (!doc) {
		char msg[600];

		kg_policy_error_format(&perr, msg, sizeof(msg));
		ASSERT_TRUE(doc, msg);
		return;
	}
	for (pass = 0; pass < 2; pass++) {
		/* with a policy, then without one (no policy member at all) */
		hand.policy_name = pass ? NULL : doc->name;
		hand.policy_hash = pass ? NULL : doc->hash;
		hand.policy_version = pass ? -1 : doc->version;
		kg_rec_controller(&r, "admission", pass ? NULL : doc);
		kg_rec_str(&r, "trace", "job-9");
		kg_rec_str(&r, "op", "admission");
		kg_rec_str(&r, "target", "sleep 1");
		kg_rec_str(&r, "decision", "deny");
		kg_rec_str(&r, "rule", "kgate:launchers");
		kg_rec_str(&r, "reason", "no");
		kg_rec_int(&r, "time", (long long)hand.ts_real_ns);
		kg_rec_int(&r, "mono_ns", (long long)hand.ts_mono_ns);
		ASSERT_OK(r.err, "built");
		want = members_of(&hand);
		got = members_of(&r.rec);
		if (want && got && strcmp(want, got))
			printf("  got:  %s\n  want: %s\n", got, want);
		ASSERT_STREQ(got, want, pass ? "without a policy" : "with its policy");
		ASSERT_HAS_SUBSTR(got, pass ? "\"mechanism\"" : "\"policy\":{\"name\":\"ctl\",\"version\":1,",
				  "the policy as the document says");
		free(want);
		free(got);
	}
	kg_policy_free(doc);
}

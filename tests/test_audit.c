// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_audit.c - the sealed audit trail: round trip, every kind of tampering,
 * crash recovery, concurrent writers, rotation, queries, bad input. */
#include "testlib.h"
#include "record/audit.h"
#include "cli/cmds.h"
#include "common.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* Under ASan, freed memory sits in a 256 MiB quarantine by default, which
 * would make any "memory stays bounded" measurement meaningless; a small
 * quarantine keeps use-after-free detection and lets RSS mean something.
 * (Without ASan this function is simply unused.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=4";
}

/* ---------- helpers ---------- */

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
	strcpy(buf, "/tmp/kgate-audit-test-XXXXXX");
	if (!mkdtemp(buf)) {
		printf("  mkdtemp failed\n");
		_exit(1);
	}
	return buf;
}

static void fill_rec(struct kg_audit_rec *r, uint64_t i, char *trace, size_t tsz)
{
	static const char *const decisions[] = { "deny", "allow", "allow", "audit" };
	static char rule[16];

	snprintf(trace, tsz, "job-%03u", (unsigned)(i % 100));
	snprintf(rule, sizeof(rule), "r%u", (unsigned)(i % 10));
	memset(r, 0, sizeof(*r));
	r->type = "decision";
	r->trace_id = trace;
	r->actor_uid = 1000;
	r->actor_name = "alice";
	r->actor_role = "operator";
	r->pid = 4000 + (long)(i % 7);
	r->tid = r->pid;
	r->comm = "python3";
	r->exe = "/usr/bin/python3";
	r->op = "file_open";
	r->target = "/home/alice/.aws/credentials";
	r->decision = decisions[i % 4];
	r->rule_id = rule;
	r->reason = "matched";
	r->policy_name = "default";
	r->policy_hash = i < 500 ? "aaaa1111" : "bbbb2222";
	r->policy_version = i < 500 ? 1 : 2;
	r->mechanism = "bpf-lsm";
}

/* appends n records (seq 1..n on a fresh trail) */
static int gen(const char *dir, uint64_t n, const struct kg_audit_opts *o)
{
	struct kg_audit *a = kg_audit_open(dir, o);
	struct kg_audit_rec r;
	char trace[32];
	uint64_t i;
	int err = 0;

	if (!a)
		return -errno;
	for (i = 0; i < n && !err; i++) {
		fill_rec(&r, i, trace, sizeof(trace));
		err = kg_audit_append(a, &r);
	}
	kg_audit_close(a);
	return err;
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

/* whole small file as an array of lines (newlines kept) */
struct lines {
	char **l;
	int n;
};

static void read_lines(const char *path, struct lines *ls)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	ls->l = NULL;
	ls->n = 0;
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		ls->l = realloc(ls->l, (ls->n + 1) * sizeof(char *));
		ls->l[ls->n++] = strdup(line);
	}
	free(line);
	fclose(f);
}

static void write_lines(const char *path, const struct lines *ls)
{
	FILE *f = fopen(path, "w");
	int i;

	for (i = 0; f && i < ls->n; i++)
		if (ls->l[i])
			fputs(ls->l[i], f);
	if (f)
		fclose(f);
}

static void free_lines(struct lines *ls)
{
	int i;

	for (i = 0; i < ls->n; i++)
		free(ls->l[i]);
	free(ls->l);
}

static void active_path(const char *dir, char *buf, size_t n)
{
	snprintf(buf, n, "%s/audit.jsonl", dir);
}

/* builds a 100-record trail and applies fn to its lines */
static void tampered_trail(char *dir, void (*fn)(struct lines *))
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	char path[512];
	struct lines ls;

	make_dir(dir);
	ASSERT_OK(gen(dir, 100, &o), "generate");
	ASSERT_OK(verify(dir), "untouched trail verifies");
	active_path(dir, path, sizeof(path));
	read_lines(path, &ls);
	ASSERT_EQ(ls.n, 100, "100 lines");
	fn(&ls);
	write_lines(path, &ls);
	free_lines(&ls);
}

static void expect_bad_seq(const char *dir, uint64_t seq)
{
	ASSERT_EQ(verify(dir), 1, "verify detects it");
	ASSERT_EQ(vres.bad_seq, seq, "first bad seq");
	ASSERT_HAS_SUBSTR(vres.bad_file, dir, "names the file");
}

/* ---------- round trip ---------- */

static int count_cb(json_t *o, const char *line, size_t len, void *ctx)
{
	(void)o;
	(void)line;
	(void)len;
	(*(uint64_t *)ctx)++;
	return 0;
}

TEST(roundtrip_append_verify_query)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_GROUP };
	struct kg_audit_filter f = { 0 };
	struct kg_audit_qstats st;
	uint64_t n = 0;
	char dir[64], key[128];
	struct stat sb;

	make_dir(dir);
	setenv("KGATE_AUDIT_DIR", dir, 1);
	ASSERT_OK(gen(NULL, 100, &o), "append 100 via KGATE_AUDIT_DIR");
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	ASSERT_OK(stat(key, &sb), "key created");
	ASSERT_EQ(sb.st_mode & 07777, 0400, "key mode 0400");
	ASSERT_EQ(sb.st_size, 32, "key has 32 bytes");
	ASSERT_OK(verify(NULL), "verifies");
	ASSERT_EQ(vres.records, 100, "records");
	ASSERT_EQ(vres.last_seq, 100, "last seq");
	ASSERT_EQ(vres.head_seq, 100, "head seq");
	ASSERT_OK(kg_audit_query(NULL, &f, count_cb, &n, false, &st), "query all");
	ASSERT_EQ(n, 100, "all records");
	ASSERT_EQ(st.bad, 0, "no bad lines");
	/* a second writer continues the same chain */
	ASSERT_OK(gen(dir, 10, &o), "append 10 more");
	ASSERT_OK(verify(dir), "still verifies");
	ASSERT_EQ(vres.last_seq, 110, "chain continued");
	rm_tree(dir);
}

static int first_rec_cb(json_t *o, const char *line, size_t len, void *ctx)
{
	(void)line;
	(void)len;
	*(json_t **)ctx = json_incref(o);
	return 1;
}

TEST(hostile_target_bytes_escaped_reversibly)
{
	static const char hostile[] = "/tmp/a\xff\xfe\n\"\\\x01\x7f\xc3\x28" "\xe2\x82\xac" "\xc2\x85" "z";
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_RECORD };
	struct kg_audit_rec r = { .type = "decision", .actor_uid = -1, .pid = -1, .tid = -1,
				  .op = "file_open", .target = hostile, .decision = "deny",
				  .comm = "evil\n\x1b[31m" };
	struct kg_audit_filter f = { 0 };
	struct kg_audit *a;
	json_t *rec = NULL;
	const char *t;
	char dir[64], *raw;
	size_t len;

	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	ASSERT_OK(kg_audit_append(a, &r), "append");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_OK(kg_audit_query(dir, &f, first_rec_cb, &rec, false, NULL), "query");
	ASSERT_TRUE(rec, "record read back");
	t = json_string_value(json_object_get(rec, "target"));
	ASSERT_TRUE(t && !strchr(t, '\n') && !strchr(t, '\x1b'), "no raw control bytes");
	ASSERT_HAS_SUBSTR(t, "\\xff\\xfe\\x0a", "invalid UTF-8 and newline as \\xNN");
	ASSERT_HAS_SUBSTR(t, "\xe2\x82\xac", "valid UTF-8 kept");
	raw = t ? kg_audit_unescape(t, &len) : NULL;
	ASSERT_TRUE(raw && len == strlen(hostile) && !memcmp(raw, hostile, len), "reversible");
	ASSERT_HAS_SUBSTR(json_string_value(json_object_get(json_object_get(rec, "subject"), "comm")),
			  "\\x1b", "comm escaped too");
	free(raw);
	json_decref(rec);
	rm_tree(dir);
}

/* ---------- the exact line format ---------- */

/* sets key to the kg_audit_escape'd s, as the documented format says */
static void ref_str(json_t *o, const char *key, const char *s)
{
	char *esc;

	if (!s)
		return;
	esc = kg_audit_escape(s, strlen(s));
	json_object_set_new(o, key, json_string(esc));
	free(esc);
}

static void ref_sub(json_t *o, const char *key, json_t *sub)
{
	if (json_object_size(sub))
		json_object_set_new(o, key, sub);
	else
		json_decref(sub);
}

/* The record body as jansson serialises it (compact, members in the
 * documented order): the writer's own serialiser must produce exactly
 * these bytes, so the documented format and every reader stay valid. */
static char *reference_body(const struct kg_audit_rec *r)
{
	json_t *o = json_object(), *sub;
	char tbuf[48], *s;

	kg_audit_format_time(r->ts_real_ns, tbuf, sizeof(tbuf));
	ref_str(o, "type", r->type);
	ref_str(o, "time", tbuf);
	json_object_set_new(o, "mono_ns", json_integer((json_int_t)r->ts_mono_ns));
	ref_str(o, "trace", r->trace_id);
	sub = json_object();
	if (r->actor_uid >= 0)
		json_object_set_new(sub, "uid", json_integer(r->actor_uid));
	ref_str(sub, "name", r->actor_name);
	ref_str(sub, "role", r->actor_role);
	ref_sub(o, "actor", sub);
	sub = json_object();
	if (r->pid >= 0)
		json_object_set_new(sub, "pid", json_integer(r->pid));
	if (r->tid >= 0)
		json_object_set_new(sub, "tid", json_integer(r->tid));
	ref_str(sub, "comm", r->comm);
	ref_str(sub, "exe", r->exe);
	ref_sub(o, "subject", sub);
	ref_str(o, "op", r->op);
	ref_str(o, "target", r->target);
	ref_str(o, "decision", r->decision);
	ref_str(o, "rule", r->rule_id);
	ref_str(o, "reason", r->reason);
	sub = json_object();
	ref_str(sub, "name", r->policy_name);
	if (r->policy_name || r->policy_hash || r->policy_version > 0)
		json_object_set_new(sub, "version", json_integer(r->policy_version));
	ref_str(sub, "hash", r->policy_hash);
	ref_sub(o, "policy", sub);
	ref_str(o, "mechanism", r->mechanism);
	if (r->extra)
		json_object_set(o, "extra", r->extra);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

TEST(line_format_matches_reference_serialisation)
{
	static const char hostile[] = "/tmp/\"q\"\\a\xff\xfe\n\t\x01\x7f\xc3\x28\xe2\x82\xac\xc2\x85"
				      "\xf0\x9f\x98\x80\xed\xa0\x80/\\x41\xe2\x80\xa8z";
	json_t *extra = json_pack("{s:s,s:i,s:{s:[i,s,b,n]},s:f}", "note", "say \"hi\"\n\x01\xe2\x82\xac",
				  "n", -42, "nested", "a", 1, "two\\", 1, "x", 0.5);
	struct kg_audit_rec recs[4];
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	struct kg_audit *a;
	char dir[64], path[512], trace[32];
	struct lines ls;
	int i;

	ASSERT_TRUE(extra, "extra built");
	fill_rec(&recs[0], 3, trace, sizeof(trace));
	recs[0].extra = extra;
	recs[1] = (struct kg_audit_rec){ .type = "approval", .actor_uid = 0, .actor_name = hostile,
		.pid = 0, .tid = -1, .comm = "evil\n\x1b[31m", .exe = hostile, .op = hostile,
		.target = hostile, .decision = "requested", .rule_id = "r\"1", .reason = hostile,
		.policy_hash = "abc", .mechanism = "controller" };
	recs[2] = (struct kg_audit_rec){ .type = "controller", .actor_uid = -1, .pid = -1, .tid = 7,
		.policy_version = 3 };
	recs[3] = (struct kg_audit_rec){ .type = "job_exit", .actor_uid = -1, .actor_role = "",
		.pid = 2147483647L, .tid = -1, .target = "", .extra = extra };
	for (i = 0; i < 4; i++) {
		recs[i].ts_real_ns = 1714564800000000001ull + (uint64_t)i * 999999999ull;
		recs[i].ts_mono_ns = 18446744073709551ull + (uint64_t)i;
	}
	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	for (i = 0; i < 4; i++)
		ASSERT_OK(kg_audit_append(a, &recs[i]), "append");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies");
	active_path(dir, path, sizeof(path));
	read_lines(path, &ls);
	ASSERT_EQ(ls.n, 4, "4 lines");
	for (i = 0; i < ls.n && i < 4; i++) {
		char *want = reference_body(&recs[i]), *line = ls.l[i], *members;
		size_t len = strlen(line);

		/* {"seq":N,"prev":"<64>",<members>,"hash":"<64>"}\n */
		members = strstr(line, "\"prev\":\"");
		ASSERT_TRUE(want && members && len > 80, "line and reference");
		members += 8 + 64 + 2;
		line[len - 76] = '\0';	/* cut ,"hash":"<64>"}\n */
		ASSERT_TRUE(want[0] == '{', "reference is an object");
		want[strlen(want) - 1] = '\0';
		if (strcmp(members, want + 1))
			printf("  got:  %s\n  want: %s\n", members, want + 1);
		ASSERT_STREQ(members, want + 1, "same bytes as the reference serialisation");
		free(want);
	}
	free_lines(&ls);
	json_decref(extra);
	rm_tree(dir);
}

TEST(escape_every_byte_roundtrips)
{
	char in[512], *esc, *back;
	size_t i, len;
	json_t *js;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (char)((i * 37 + (i >> 3)) & 0xff);
	esc = kg_audit_escape(in, sizeof(in));
	ASSERT_TRUE(esc, "escape");
	js = esc ? json_string(esc) : NULL;
	ASSERT_TRUE(js, "escaped form is valid UTF-8 for JSON");
	back = esc ? kg_audit_unescape(esc, &len) : NULL;
	ASSERT_TRUE(back && len == sizeof(in) && !memcmp(back, in, len), "unescape restores bytes");
	ASSERT_TRUE(!kg_audit_unescape("bad\\q", &len), "malformed escape refused");
	json_decref(js);
	free(esc);
	free(back);
}

TEST(time_formats)
{
	char buf[48];
	uint64_t ns;

	kg_audit_format_time(1714564800123456789ull, buf, sizeof(buf));
	ASSERT_STREQ(buf, "2024-05-01T12:00:00.123456789Z", "format");
	ASSERT_OK(kg_audit_parse_time(buf, &ns), "parse own format");
	ASSERT_EQ(ns, 1714564800123456789ull, "exact");
	ASSERT_OK(kg_audit_parse_time("2024-05-01T14:00:00+02:00", &ns), "offset");
	ASSERT_EQ(ns, 1714564800000000000ull, "offset applied");
	ASSERT_OK(kg_audit_parse_time("1714564800", &ns), "unix seconds");
	ASSERT_EQ(ns, 1714564800000000000ull, "unix");
	ASSERT_OK(kg_audit_parse_time("1714564800.5", &ns), "fractional unix seconds");
	ASSERT_EQ(ns, 1714564800500000000ull, "fraction");
	ASSERT_EQ(kg_audit_parse_time("yesterday", &ns), -EINVAL, "garbage refused");
	ASSERT_EQ(kg_audit_parse_time("2024-13-01T00:00:00Z", &ns), -EINVAL, "month 13 refused");
}

TEST(unknown_record_type_refused)
{
	struct kg_audit_rec r = { .type = "whatever", .actor_uid = -1, .pid = -1, .tid = -1 };
	struct kg_audit *a;
	char dir[64];

	make_dir(dir);
	a = kg_audit_open(dir, NULL);
	ASSERT_TRUE(a, "open");
	ASSERT_EQ(kg_audit_append(a, &r), -EINVAL, "unknown type");
	r.type = "job_start";
	ASSERT_OK(kg_audit_append(a, &r), "known type");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_EQ(vres.records, 1, "only the valid record");
	rm_tree(dir);
}

/* ---------- tampering ---------- */

/* the record's own seal: the fixed-length hash member that ends the line */
static char *seal_of(char *line)
{
	size_t n = strlen(line);

	return n > 68 ? line + n - 67 : line;	/* 64 hex + "}\n */
}

static void edit_field(struct lines *ls)
{
	char *p = strstr(ls->l[36], "\"decision\":\"deny\"");

	if (p)
		memcpy(p + 12, "DENY", 4);	/* still valid JSON */
}

TEST(tamper_edit_field)
{
	char dir[64];

	tampered_trail(dir, edit_field);
	expect_bad_seq(dir, 37);
	ASSERT_EQ(vres.bad_line, 37, "line");
	ASSERT_HAS_SUBSTR(vres.reason, "seal", "reason");
	rm_tree(dir);
}

static void edit_hash(struct lines *ls)
{
	char *p = seal_of(ls->l[36]);

	p[0] = p[0] == 'a' ? 'b' : 'a';
}

TEST(tamper_edit_hash)
{
	char dir[64];

	tampered_trail(dir, edit_hash);
	expect_bad_seq(dir, 37);
	rm_tree(dir);
}

/* A forger without the key: a record with the right seq and prev, sealed
 * with a key of their choosing. */
static void insert_forged(struct lines *ls)
{
	unsigned char fake_key[32] = "not the real key, just a guess!";
	unsigned char mac[32];
	unsigned int maclen;
	char prevhex[65], machex[65], body[512], *h;
	int i;

	h = seal_of(ls->l[49]);
	snprintf(prevhex, sizeof(prevhex), "%.64s", h);
	snprintf(body, sizeof(body), "{\"seq\":51,\"prev\":\"%s\",\"type\":\"decision\","
		 "\"decision\":\"allow\",\"op\":\"file_open\",\"target\":\"/etc/shadow\"}", prevhex);
	HMAC(EVP_sha256(), fake_key, 32, (unsigned char *)body, strlen(body), mac, &maclen);
	for (i = 0; i < 32; i++)
		sprintf(machex + 2 * i, "%02x", mac[i]);
	body[strlen(body) - 1] = '\0';
	ls->l = realloc(ls->l, (ls->n + 1) * sizeof(char *));
	memmove(ls->l + 51, ls->l + 50, (ls->n - 50) * sizeof(char *));
	ls->n++;
	if (asprintf(&ls->l[50], "%s,\"hash\":\"%s\"}\n", body, machex) < 0)
		ls->l[50] = NULL;
}

TEST(tamper_insert_forged)
{
	char dir[64];

	tampered_trail(dir, insert_forged);
	expect_bad_seq(dir, 51);
	ASSERT_EQ(vres.bad_line, 51, "line of the forged record");
	rm_tree(dir);
}

static void delete_middle(struct lines *ls)
{
	free(ls->l[49]);
	ls->l[49] = NULL;
}

TEST(tamper_delete_middle)
{
	char dir[64];

	tampered_trail(dir, delete_middle);
	expect_bad_seq(dir, 50);
	ASSERT_HAS_SUBSTR(vres.reason, "missing", "reason");
	rm_tree(dir);
}

static void reorder(struct lines *ls)
{
	char *t = ls->l[39];

	ls->l[39] = ls->l[40];
	ls->l[40] = t;
}

TEST(tamper_reorder)
{
	char dir[64];

	tampered_trail(dir, reorder);
	expect_bad_seq(dir, 40);
	rm_tree(dir);
}

static void truncate_tail(struct lines *ls)
{
	int i;

	for (i = 97; i < 100; i++) {
		free(ls->l[i]);
		ls->l[i] = NULL;
	}
}

TEST(tamper_truncate_tail_lines)
{
	char dir[64];

	tampered_trail(dir, truncate_tail);
	expect_bad_seq(dir, 98);
	ASSERT_HAS_SUBSTR(vres.reason, "head", "caught by the sealed head");
	rm_tree(dir);
}

TEST(tamper_truncate_mid_line)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	char dir[64], path[512];
	struct stat st;

	make_dir(dir);
	ASSERT_OK(gen(dir, 100, &o), "generate");
	active_path(dir, path, sizeof(path));
	ASSERT_OK(stat(path, &st), "stat");
	ASSERT_OK(truncate(path, st.st_size - 40), "cut 40 bytes");
	expect_bad_seq(dir, 100);
	ASSERT_HAS_SUBSTR(vres.reason, "torn", "reason");
	rm_tree(dir);
}

TEST(tamper_removed_head_detected)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	char dir[64], path[512];

	make_dir(dir);
	ASSERT_OK(gen(dir, 10, &o), "generate");
	snprintf(path, sizeof(path), "%s/audit.head", dir);
	ASSERT_OK(unlink(path), "remove head");
	ASSERT_EQ(verify(dir), 1, "missing head is a failure");
	rm_tree(dir);
}

/* The whole one-segment trail and its head removed, the key kept: the key
 * is only ever created with a trail's first record, so this is a removed
 * trail, not an empty one; a later writer must not make it look fresh. */
TEST(tamper_delete_whole_trail_key_kept)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	char dir[64], path[512];
	struct kg_audit *a;

	make_dir(dir);
	ASSERT_OK(gen(dir, 10, &o), "generate");
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	ASSERT_OK(unlink(path), "remove the only segment");
	snprintf(path, sizeof(path), "%s/audit.head", dir);
	ASSERT_OK(unlink(path), "remove the head");
	ASSERT_EQ(verify(dir), 1, "a key without its trail is a failure");
	ASSERT_HAS_SUBSTR(vres.reason, "no records", "says what is missing");

	/* the next writer starts over at seq 1 and says why; verify still fails */
	ASSERT_OK(gen(dir, 5, &o), "a later writer");
	ASSERT_EQ(verify(dir), 1, "the removal stays visible");
	ASSERT_EQ(vres.bad_seq, 1, "at the record that says so");
	ASSERT_HAS_SUBSTR(vres.reason, "removed", "reason");
	rm_tree(dir);

	/* opening a fresh dir creates no key: only the first record does */
	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a != NULL, "open");
	kg_audit_close(a);
	snprintf(path, sizeof(path), "%s/audit.key", dir);
	ASSERT_TRUE(access(path, F_OK) != 0, "no key without a record");
	ASSERT_OK(gen(dir, 1, &o), "first record");
	ASSERT_OK(access(path, F_OK), "key made with it");
	ASSERT_EQ(verify(dir), 0, "a fresh trail verifies");
	ASSERT_EQ(vres.records, 1, "one record");
	rm_tree(dir);
}

/* a trail of several closed .gz segments and an active one */
static int rotated_trail(char *dir, uint64_t n, char ***segs, int *nsegs)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE, .rotate_bytes = 16 << 10 };

	make_dir(dir);
	if (gen(dir, n, &o))
		return -1;
	return kg_audit_list_segments(dir, segs, nsegs);
}

static uint64_t seg_first(const char *path)
{
	const char *b = strrchr(path, '/');

	return strtoull(b + 7, NULL, 10);
}

TEST(tamper_delete_rotated_segment)
{
	char dir[64], **segs = NULL;
	int n = 0;

	ASSERT_OK(rotated_trail(dir, 1000, &segs, &n), "rotated trail");
	ASSERT_GE(n, 4, "several segments");
	ASSERT_OK(verify(dir), "verifies across segments");
	ASSERT_EQ(vres.records, 1000, "all records");
	ASSERT_HAS_SUBSTR(segs[1], ".jsonl.gz", "closed segments compressed");
	ASSERT_OK(unlink(segs[1]), "delete a middle segment");
	expect_bad_seq(dir, seg_first(segs[1]));
	kg_audit_free_list(segs, n);
	rm_tree(dir);
}

TEST(tamper_delete_first_segment)
{
	char dir[64], **segs = NULL;
	int n = 0;

	ASSERT_OK(rotated_trail(dir, 1000, &segs, &n), "rotated trail");
	ASSERT_OK(unlink(segs[0]), "delete the first segment");
	expect_bad_seq(dir, 1);
	kg_audit_free_list(segs, n);
	rm_tree(dir);
}

TEST(tamper_swap_segments)
{
	char dir[64], tmp[600], **segs = NULL;
	int n = 0;

	ASSERT_OK(rotated_trail(dir, 1000, &segs, &n), "rotated trail");
	ASSERT_GE(n, 4, "several segments");
	snprintf(tmp, sizeof(tmp), "%s.swap", segs[1]);
	ASSERT_OK(rename(segs[1], tmp), "swap 1");
	ASSERT_OK(rename(segs[2], segs[1]), "swap 2");
	ASSERT_OK(rename(tmp, segs[2]), "swap 3");
	expect_bad_seq(dir, seg_first(segs[1]));
	kg_audit_free_list(segs, n);
	rm_tree(dir);
}

static int write_key(const char *path, mode_t mode, unsigned char fill)
{
	unsigned char k[32];
	int fd;

	memset(k, fill, sizeof(k));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	if (write(fd, k, sizeof(k)) != (ssize_t)sizeof(k)) {
		close(fd);
		return -1;
	}
	fchmod(fd, mode);
	return close(fd);
}

TEST(tamper_wrong_key)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	char dir[64], other[64], key[128];

	make_dir(dir);
	make_dir(other);
	ASSERT_OK(gen(dir, 20, &o), "generate");
	snprintf(key, sizeof(key), "%s/other.key", other);
	ASSERT_OK(write_key(key, 0400, 0x42), "another key");
	ASSERT_OK(kg_audit_verify_dir(dir, key, &vres), "verify ran");
	ASSERT_FALSE(vres.ok, "wrong key fails");
	ASSERT_EQ(vres.bad_seq, 1, "first record already fails");
	rm_tree(dir);
	rm_tree(other);
}

TEST(key_readable_by_others_refused)
{
	char dir[64], key[128];
	struct kg_audit *a;

	make_dir(dir);
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	ASSERT_OK(write_key(key, 0644, 0x17), "key with mode 0644");
	errno = 0;
	a = kg_audit_open(dir, NULL);
	ASSERT_TRUE(!a, "open refused");
	ASSERT_EQ(errno, EPERM, "EPERM");
	ASSERT_EQ(kg_audit_verify_dir(dir, NULL, &vres), -EPERM, "verify refuses it too");
	ASSERT_OK(chmod(key, 0400), "chmod 0400");
	a = kg_audit_open(dir, NULL);
	ASSERT_TRUE(a, "0400 accepted");
	kg_audit_close(a);
	rm_tree(dir);
}

/* ---------- crash, concurrency, rotation ---------- */

static void append_forever(const char *dir)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_GROUP, .flush_every_records = 8 };
	struct kg_audit *a = kg_audit_open(dir, &o);
	struct kg_audit_rec r;
	char trace[32];
	uint64_t i;

	if (!a)
		_exit(3);
	for (i = 0;; i++) {
		fill_rec(&r, i, trace, sizeof(trace));
		if (kg_audit_append(a, &r))
			_exit(4);
	}
}

/* complete lines in a file, and whether its last byte ends one */
static uint64_t count_lines(const char *path, bool *ends_in_newline)
{
	FILE *f = fopen(path, "r");
	uint64_t n = 0;
	int c, last = '\n';

	while (f && (c = getc(f)) != EOF) {
		n += c == '\n';
		last = c;
	}
	if (f)
		fclose(f);
	*ends_in_newline = last == '\n';
	return n;
}

TEST(crash_kill9_then_torn_line_recovered)
{
	struct kg_audit_filter f = { .type = "recovery" };
	struct kg_audit_recovery rc;
	struct kg_audit_qstats st;
	struct kg_audit *a;
	char dir[64], path[512];
	struct stat sb;
	uint64_t complete;
	bool whole;
	pid_t pid;
	int i;

	make_dir(dir);
	active_path(dir, path, sizeof(path));
	pid = fork();
	if (pid == 0)
		append_forever(dir);
	for (i = 0; i < 2000; i++) {
		if (!stat(path, &sb) && sb.st_size > 64 << 10)
			break;
		usleep(5000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ASSERT_GE(sb.st_size, 64 << 10, "child wrote records before it died");
	complete = count_lines(path, &whole);
	if (whole) {
		/* the kill fell between two write(2)s: whole lines, a valid trail */
		ASSERT_OK(verify(dir), "verifies after kill -9");
		ASSERT_EQ(vres.last_seq, complete, "every written record is there");
		/* what a crash mid-write leaves: the last line torn */
		ASSERT_OK(stat(path, &sb), "stat");
		ASSERT_OK(truncate(path, sb.st_size - 33), "tear the last line");
		complete--;
	}
	/* else the kill interrupted a write(2) of several pages (SIGKILL is
	 * checked between pages): the same torn tail a crash leaves */
	ASSERT_EQ(verify(dir), 1, "torn line is reported before recovery");
	ASSERT_EQ(vres.bad_seq, complete + 1, "after the last complete line");
	ASSERT_HAS_SUBSTR(vres.reason, "torn", "reason");
	a = kg_audit_open(dir, NULL);
	ASSERT_TRUE(a, "reopen");
	ASSERT_TRUE(kg_audit_recovered(a, &rc), "recovery reported to the caller");
	ASSERT_TRUE(rc.torn, "torn");
	ASSERT_EQ(rc.recovery_seq, complete + 1, "recovery record takes the torn record's seq");
	ASSERT_OK(stat(rc.moved_to, &sb), "torn bytes moved aside, not deleted");
	ASSERT_EQ((uint64_t)sb.st_size, rc.length, "all torn bytes kept");
	ASSERT_GE(rc.length, 1, "some bytes");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "verifies after recovery");
	ASSERT_EQ(vres.records, complete + 1, "every complete line kept, plus the recovery record");
	ASSERT_OK(kg_audit_query(dir, &f, NULL, NULL, false, &st), "query recovery records");
	ASSERT_EQ(st.matched, 1, "one recovery record");
	ASSERT_OK(gen(dir, 5, NULL), "appending continues");
	ASSERT_OK(verify(dir), "chain continues");
	rm_tree(dir);
}

TEST(two_processes_append_one_chain)
{
	enum { PROCS = 3, EACH = 3000 };
	char dir[64];
	pid_t pids[PROCS];
	int i, status, ok = 0;

	make_dir(dir);
	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct kg_audit_opts o = {
				.sync = i == 0 ? KG_AUDIT_SYNC_RECORD : KG_AUDIT_SYNC_NONE,
				.flush_every_records = 1 + 7 * i, .rotate_bytes = 256 << 10,
			};

			_exit(gen(dir, i == 0 ? 300 : EACH, &o) ? 1 : 0);
		}
	}
	for (i = 0; i < PROCS; i++)
		if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		    !WEXITSTATUS(status))
			ok++;
	ASSERT_EQ(ok, PROCS, "all writers succeeded");
	ASSERT_OK(verify(dir), "one valid chain");
	ASSERT_EQ(vres.records, 300 + (PROCS - 1) * EACH, "no record lost or duplicated");
	rm_tree(dir);
}

/* ---------- group commit: fdatasync off the appender's path ---------- */

#ifndef __NR_cachestat
#define __NR_cachestat 451	/* Linux 6.5; the same number on every arch */
#endif

struct kt_cachestat_range {
	uint64_t off, len;
};

struct kt_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* pages of the active segment not yet on disk (dirty or under writeback);
 * -errno when the kernel cannot tell */
static long unsynced_pages(const char *dir)
{
	struct kt_cachestat_range range = { 0, 0 };	/* the whole file */
	struct kt_cachestat cs;
	char path[512];
	long r;
	int fd;

	active_path(dir, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = syscall(__NR_cachestat, fd, &range, &cs, 0);
	r = r ? -errno : (long)(cs.nr_dirty + cs.nr_writeback);
	close(fd);
	return r;
}

/* appends n records through a, committing them (write(2)) */
static int append_n(struct kg_audit *a, uint64_t from, uint64_t n)
{
	struct kg_audit_rec r;
	char trace[32];
	uint64_t i;
	int err = 0;

	for (i = from; i < from + n && !err; i++) {
		fill_rec(&r, i, trace, sizeof(trace));
		err = kg_audit_append(a, &r);
	}
	return err ? err : kg_audit_flush(a);
}

/* Group mode: the appender only write(2)s; a background thread fdatasyncs
 * within the interval, with no further call into the writer. The same
 * sequence with sync=none leaves the pages dirty: the check can fail. */
TEST(group_commit_synced_in_background_within_interval)
{
	struct kg_audit_opts grp = { .sync = KG_AUDIT_SYNC_GROUP, .flush_interval_ms = 20 };
	struct kg_audit_opts none = { .sync = KG_AUDIT_SYNC_NONE, .flush_interval_ms = 20 };
	char gdir[64], ndir[64];
	struct kg_audit *g, *n;
	long left;
	int i;

	make_dir(gdir);
	make_dir(ndir);
	g = kg_audit_open(gdir, &grp);
	n = kg_audit_open(ndir, &none);
	ASSERT_TRUE(g && n, "open");
	/* the first group is synced at once; the second waits for the interval */
	ASSERT_OK(append_n(g, 0, 100), "group: first group written");
	ASSERT_OK(append_n(n, 0, 100), "none: first group written");
	ASSERT_OK(append_n(g, 100, 100), "group: second group written");
	ASSERT_OK(append_n(n, 100, 100), "none: second group written");
	left = unsynced_pages(ndir);
	if (left == -ENOSYS)
		SKIP("no cachestat(2) on this kernel: cannot see dirty pages");
	ASSERT_GE(left, 0, "cachestat");
	for (i = 0; i < 300 && (left = unsynced_pages(gdir)) > 0; i++)
		usleep(10 * 1000);
	ASSERT_EQ(left, 0, "group: every written page reached the disk with no call into the writer");
	printf("  group: synced %d ms after the last write (interval 20 ms)\n", i * 10);
	if (unsynced_pages(ndir) > 0)
		printf("  none: %ld pages still dirty (the control)\n", unsynced_pages(ndir));
	else	/* heavy writeback elsewhere can clean them; not an error */
		printf("  none: the kernel already wrote the pages back; no control this time\n");
	/* an explicit kg_audit_sync makes them durable in any mode */
	ASSERT_OK(kg_audit_sync(n), "sync");
	ASSERT_EQ(unsynced_pages(ndir), 0, "none: durable after kg_audit_sync");
	kg_audit_close(g);
	kg_audit_close(n);
	ASSERT_OK(verify(gdir), "group trail verifies");
	ASSERT_EQ(vres.records, 200, "group records");
	ASSERT_OK(verify(ndir), "none trail verifies");
	rm_tree(gdir);
	rm_tree(ndir);
}

/* kg_audit_quiesce (before every job's fork) returns once the sync thread
 * has parked with everything written synced: woken by the thread, so with
 * a second group waiting out the interval it returns 0 well before its
 * bound (a missed wake-up would be -ETIMEDOUT). */
TEST(quiesce_returns_when_the_sync_thread_parks)
{
	struct kg_audit_opts grp = { .sync = KG_AUDIT_SYNC_GROUP, .flush_interval_ms = 200 };
	char dir[64];
	struct kg_audit *g;
	long left;

	make_dir(dir);
	g = kg_audit_open(dir, &grp);
	ASSERT_TRUE(g != NULL, "open");
	ASSERT_OK(kg_audit_quiesce(g, 30000), "no thread yet: nothing to wait for");
	ASSERT_OK(append_n(g, 0, 100), "first group (synced at once)");
	ASSERT_OK(append_n(g, 100, 100), "second group (waits for the interval)");
	ASSERT_OK(kg_audit_quiesce(g, 30000), "the thread parked");
	left = unsynced_pages(dir);
	if (left != -ENOSYS)
		ASSERT_EQ(left, 0, "parked after syncing every written page");
	ASSERT_OK(append_n(g, 200, 10), "a third group");
	ASSERT_OK(kg_audit_quiesce(g, 30000), "parked again");
	kg_audit_close(g);
	ASSERT_OK(verify(dir), "trail verifies");
	ASSERT_EQ(vres.records, 210, "records");
	rm_tree(dir);
}

/* What the ring-buffer consumer relies on: once kg_audit_flush returns, the
 * records are in the file (write(2)), so a kill -9 right after loses none. */
TEST(group_flush_then_kill9_loses_nothing_flushed)
{
	struct kg_audit_opts grp = { .sync = KG_AUDIT_SYNC_GROUP, .flush_every_records = 1000,
				     .flush_interval_ms = 60000 };
	int pfd[2], status;
	uint64_t flushed = 0;
	char dir[64];
	pid_t pid;

	make_dir(dir);
	ASSERT_OK(pipe(pfd), "pipe");
	pid = fork();
	if (pid == 0) {
		struct kg_audit *a = kg_audit_open(dir, &grp);
		uint64_t done = 0;

		close(pfd[0]);
		if (!a)
			_exit(3);
		for (;;) {	/* groups of 37, never full, never due: flush commits */
			if (append_n(a, done, 37))
				_exit(4);
			done += 37;
			if (write(pfd[1], &done, sizeof(done)) != sizeof(done))
				_exit(5);
		}
	}
	close(pfd[1]);
	while (flushed < 3000 && read(pfd[0], &flushed, sizeof(flushed)) == sizeof(flushed))
		;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(pfd[0]);
	ASSERT_TRUE(WIFSIGNALED(status), "writer killed, not failed");
	ASSERT_GE(flushed, 3000, "writer flushed groups");
	/* a kill in mid-write(2) may leave a torn last line: repair it first */
	kg_audit_close(kg_audit_open(dir, NULL));
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_GE(vres.records, flushed, "every flushed record survived the kill");
	rm_tree(dir);
}

/* A process that forks with an open group-mode handle: the child has no
 * sync thread, so it syncs inline; neither side hangs or breaks the chain. */
TEST(group_handle_used_across_fork)
{
	struct kg_audit_opts grp = { .sync = KG_AUDIT_SYNC_GROUP, .flush_every_records = 16 };
	struct kg_audit *a;
	char dir[64];
	int status;
	pid_t pid;

	make_dir(dir);
	a = kg_audit_open(dir, &grp);
	ASSERT_TRUE(a, "open");
	ASSERT_OK(append_n(a, 0, 100), "parent appends (thread running)");
	pid = fork();
	if (pid == 0) {
		alarm(20);
		_exit(append_n(a, 100, 100) ? 1 : (kg_audit_close(a), 0));
	}
	ASSERT_TRUE(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    !WEXITSTATUS(status), "child appended and closed");
	ASSERT_OK(append_n(a, 200, 100), "parent goes on");
	kg_audit_close(a);
	ASSERT_OK(verify(dir), "one chain");
	ASSERT_EQ(vres.records, 300, "all records");
	rm_tree(dir);
}

TEST(rotation_gzip_roundtrip)
{
	struct kg_audit_filter f = { .decision = "deny" };
	struct kg_audit_qstats st;
	char dir[64], plain[600], cmd[1300], **segs = NULL;
	int n = 0, gz = 0, i;

	ASSERT_OK(rotated_trail(dir, 2000, &segs, &n), "rotated trail");
	for (i = 0; i < n; i++)
		gz += strstr(segs[i], ".gz") != NULL;
	ASSERT_GE(gz, 3, "closed segments are gzip");
	ASSERT_TRUE(!strstr(segs[0], "audit.jsonl") || n == 1, "closed segments first");
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_EQ(vres.records, 2000, "records");
	ASSERT_OK(kg_audit_query(dir, &f, NULL, NULL, false, &st), "query");
	ASSERT_EQ(st.matched, 500, "deny across segments");
	/* a closed segment left plain (interrupted compression) still counts */
	snprintf(plain, sizeof(plain), "%.*s", (int)(strlen(segs[1]) - 3), segs[1]);
	snprintf(cmd, sizeof(cmd), "gzip -dc '%s' > '%s' && rm '%s'", segs[1], plain, segs[1]);
	ASSERT_OK(system(cmd), "decompress one segment");
	ASSERT_OK(verify(dir), "verifies with a plain closed segment");
	ASSERT_OK(kg_audit_query(dir, &f, NULL, NULL, false, &st), "query");
	ASSERT_EQ(st.matched, 500, "same answer");
	/* the next writer finishes the compression */
	ASSERT_OK(gen(dir, 1, NULL), "append");
	ASSERT_TRUE(access(segs[1], F_OK) == 0, "segment compressed again");
	ASSERT_OK(verify(dir), "verifies");
	kg_audit_free_list(segs, n);
	rm_tree(dir);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Rotation renames under the lock and returns; the gzip (~0.7 s of CPU
 * per 64 MiB) happens in the background, so writers are not stalled. */
TEST(rotation_compresses_in_background)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_GROUP, .rotate_bytes = 8 << 20,
				   .flush_every_records = 512 };
	struct kg_audit *a;
	char dir[64];
	uint64_t i = 0;

	make_dir(dir);
	a = kg_audit_open(dir, &o);
	ASSERT_TRUE(a, "open");
	while (!exists(dir, "audit-1.jsonl") && !exists(dir, "audit-1.jsonl.gz") && i < 100000) {
		ASSERT_OK(append_n(a, i, 512), "append");
		i += 512;
	}
	ASSERT_TRUE(exists(dir, "audit-1.jsonl"),
		    "the commit that rotated returned before the segment was compressed");
	ASSERT_OK(append_n(a, i, 512), "appending goes on meanwhile");
	kg_audit_close(a);
	ASSERT_TRUE(exists(dir, "audit-1.jsonl.gz") && !exists(dir, "audit-1.jsonl") &&
		    !exists(dir, "audit-1.jsonl.gz.tmp"), "compressed by close, nothing left over");
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_EQ(vres.records, i + 512, "all records");
	rm_tree(dir);
}

/* Several processes finishing the same interrupted rotation at once (each
 * open does): one compresses, none clobbers another's temporary. */
TEST(concurrent_finishers_compress_a_segment_once)
{
	enum { PROCS = 4 };
	char dir[64], cmd[512];
	struct kg_audit *a;
	pid_t pids[PROCS];
	int i, ok = 0, status;

	ASSERT_TRUE(make_dir(dir), "dir");
	a = kg_audit_open(dir, &(struct kg_audit_opts){ .sync = KG_AUDIT_SYNC_NONE,
							 .rotate_bytes = 4 << 20 });
	ASSERT_TRUE(a, "open");
	ASSERT_OK(append_n(a, 0, 9000), "records for one closed segment");
	kg_audit_close(a);
	/* what a crash during compression leaves: the plain closed segment */
	snprintf(cmd, sizeof(cmd), "cd '%s' && gzip -dc audit-1.jsonl.gz > audit-1.jsonl && "
		 "rm audit-1.jsonl.gz", dir);
	ASSERT_OK(system(cmd), "uncompress the closed segment");
	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct kg_audit *b = kg_audit_open(dir, NULL);

			_exit(b ? (kg_audit_close(b), 0) : 1);
		}
	}
	for (i = 0; i < PROCS; i++)
		ok += waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		      !WEXITSTATUS(status);
	ASSERT_EQ(ok, PROCS, "every opener succeeded");
	/* one that found another compressing left the plain copy to it */
	kg_audit_close(kg_audit_open(dir, NULL));
	ASSERT_TRUE(exists(dir, "audit-1.jsonl.gz") && !exists(dir, "audit-1.jsonl") &&
		    !exists(dir, "audit-1.jsonl.gz.tmp"), "compressed once, nothing left over");
	ASSERT_OK(verify(dir), "verifies");
	ASSERT_EQ(vres.records, 9000, "all records");
	rm_tree(dir);
}

TEST(events_lost_record)
{
	struct kg_audit_loss l = { .trace_id = "job-x", .mechanism = "bpf-lsm",
				   .decided = 1000, .delivered = 990, .lost = 10 };
	struct kg_audit_filter f = { .type = "events_lost" };
	struct kg_audit *a;
	json_t *rec = NULL;
	char dir[64];

	make_dir(dir);
	a = kg_audit_open(dir, NULL);
	ASSERT_TRUE(a, "open");
	ASSERT_OK(kg_audit_append_lost(a, &l), "append loss");
	kg_audit_close(a);
	ASSERT_OK(kg_audit_query(dir, &f, first_rec_cb, &rec, false, NULL), "query");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(rec, "extra"),
				     "counts"), "lost")), 10, "lost count");
	json_decref(rec);
	rm_tree(dir);
}

/* ---------- queries ---------- */

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static uint64_t qcount(const char *dir, const struct kg_audit_filter *f)
{
	struct kg_audit_qstats st = { 0 };

	if (kg_audit_query(dir, f, NULL, NULL, false, &st))
		return UINT64_MAX;
	return st.matched;
}

TEST(query_million_records_bounded_memory)
{
	enum { N = 1000000 };
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE, .flush_every_records = 4096, .flush_interval_ms = 60000,
				   .rotate_bytes = UINT64_MAX };
	const uint64_t base = 1714564800000000000ull;	/* 2024-05-01T12:00:00Z */
	struct kg_audit_filter f;
	struct kg_audit_rec r;
	struct kg_audit *a;
	char dir[64], trace[32];
	uint64_t i, t0 = kg_now_mono_ns();
	int w, ok = 0, status;
	pid_t pids[2];
	long rss0;

	make_dir(dir);
	/* two writers share the trail (and the two cores): half the wall time,
	 * and a million records through the multi-writer lock on the way */
	for (w = 0; w < 2; w++) {
		pids[w] = fork();
		if (pids[w])
			continue;
		a = kg_audit_open(dir, &o);
		if (!a)
			_exit(1);
		for (i = (uint64_t)w * (N / 2); i < (uint64_t)(w + 1) * (N / 2); i++) {
			fill_rec(&r, i, trace, sizeof(trace));
			r.ts_real_ns = base + i * 1000000ull;	/* one per ms */
			/* slim records: generating 1M under ASan is allocation-bound */
			r.actor_uid = r.pid = r.tid = -1;
			r.actor_name = r.actor_role = r.exe = r.comm = r.reason = r.target = NULL;
			r.policy_name = r.mechanism = NULL;
			if (kg_audit_append(a, &r))
				_exit(1);
		}
		kg_audit_close(a);
		_exit(0);
	}
	for (w = 0; w < 2; w++)
		ok += waitpid(pids[w], &status, 0) == pids[w] && WIFEXITED(status) &&
		      !WEXITSTATUS(status);
	ASSERT_EQ(ok, 2, "both writers done");
	printf("  generated %d records in %.1f s\n", N, (kg_now_mono_ns() - t0) / 1e9);
	t0 = kg_now_mono_ns();
	rss0 = maxrss_kb();

	memset(&f, 0, sizeof(f));
	f.trace_id = "job-042";
	ASSERT_EQ(qcount(dir, &f), N / 100, "--trace");
	memset(&f, 0, sizeof(f));
	f.decision = "deny";
	ASSERT_EQ(qcount(dir, &f), N / 4, "--decision");
	memset(&f, 0, sizeof(f));
	f.rule_id = "r7";
	f.decision = "allow";
	ASSERT_EQ(qcount(dir, &f), N / 10 / 2, "--rule + --decision");
	memset(&f, 0, sizeof(f));
	f.since_ns = base + 900000 * 1000000ull;
	ASSERT_EQ(qcount(dir, &f), N - 900000, "--since");
	memset(&f, 0, sizeof(f));
	f.until_ns = base + 99999 * 1000000ull;
	f.policy_hash = "aaaa";
	ASSERT_EQ(qcount(dir, &f), 500, "--until + --policy prefix");
	ASSERT_TRUE(maxrss_kb() - rss0 < 32 * 1024, "queries do not load the trail");
	printf("  5 queries in %.1f s, maxrss growth %ld KiB\n", (kg_now_mono_ns() - t0) / 1e9,
	       maxrss_kb() - rss0);
	rm_tree(dir);
}

TEST(bad_input_reported_not_crashing)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	struct kg_audit_filter f = { 0 };
	struct kg_audit_qstats st;
	char dir[64], bad[600], *files[1];
	char *huge;
	FILE *fp;

	make_dir(dir);
	ASSERT_OK(gen(dir, 10, &o), "generate");
	snprintf(bad, sizeof(bad), "%s/audit.jsonl", dir);
	fp = fopen(bad, "a");
	ASSERT_TRUE(fp, "open for append");
	if (!fp)
		return;
	fputs("this is not json\n", fp);
	huge = malloc(2 << 20);
	memset(huge, 'A', 2 << 20);
	fputc('"', fp);
	fwrite(huge, 1, 2 << 20, fp);
	fputs("\"\n", fp);
	fputs("{\"seq\":13,\"target\":\"\xff\xfe\"}\n", fp);
	fputs("[1,2,3]\n", fp);
	fclose(fp);
	free(huge);
	files[0] = bad;
	ASSERT_OK(kg_audit_query_files(files, 1, &f, NULL, NULL, false, &st), "query ran");
	ASSERT_EQ(st.matched, 10, "good records still found");
	ASSERT_EQ(st.bad, 4, "garbage, huge line, invalid UTF-8, non-object");
	ASSERT_EQ(verify(dir), 1, "verify fails");
	ASSERT_EQ(vres.bad_seq, 11, "at the first garbage line");
	ASSERT_EQ(vres.bad_line, 11, "line number");
	rm_tree(dir);
}

/* ---------- the command line ---------- */

static int run_kgate(const char *args, char *out, size_t outsz)
{
	const char *bin = getenv("KGATE_BIN");
	char cmd[1024];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", bin, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, outsz - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(cli_verify_query_timeline)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE };
	char dir[64], args[256], out[65536], path[512];
	struct lines ls;

	if (!getenv("KGATE_BIN"))
		SKIP("KGATE_BIN not set (run through tests/run.sh)");
	make_dir(dir);
	ASSERT_OK(gen(dir, 200, &o), "generate");
	snprintf(args, sizeof(args), "audit verify --dir %s", dir);
	ASSERT_EQ(run_kgate(args, out, sizeof(out)), KG_EXIT_OK, "verify ok");
	ASSERT_HAS_SUBSTR(out, "200 records", "summary");
	snprintf(args, sizeof(args), "--json audit query --dir %s --trace job-007 --decision audit", dir);
	ASSERT_EQ(run_kgate(args, out, sizeof(out)), KG_EXIT_OK, "query ok");
	ASSERT_HAS_SUBSTR(out, "\"trace\":\"job-007\"", "json record");
	snprintf(args, sizeof(args), "audit timeline --dir %s job-004", dir);
	ASSERT_EQ(run_kgate(args, out, sizeof(out)), KG_EXIT_OK, "timeline ok");
	ASSERT_HAS_SUBSTR(out, "+    0.000000s", "relative time");
	ASSERT_HAS_SUBSTR(out, "deny file_open", "decision line");
	snprintf(args, sizeof(args), "audit query --dir %s --since yesterday", dir);
	ASSERT_EQ(run_kgate(args, out, sizeof(out)), KG_EXIT_USAGE, "bad time is a usage error");
	ASSERT_EQ(run_kgate("audit --help", out, sizeof(out)), KG_EXIT_OK, "--help");
	active_path(dir, path, sizeof(path));
	read_lines(path, &ls);
	edit_field(&ls);
	write_lines(path, &ls);
	free_lines(&ls);
	snprintf(args, sizeof(args), "audit verify %s", dir);
	ASSERT_EQ(run_kgate(args, out, sizeof(out)), KG_EXIT_TAMPERED, "tampered: exit 6");
	ASSERT_HAS_SUBSTR(out, "first bad seq 37", "names the seq");
	ASSERT_HAS_SUBSTR(out, "audit.jsonl:37", "names file:line");
	rm_tree(dir);
}

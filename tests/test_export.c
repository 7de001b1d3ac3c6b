// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_export.c - `kgate audit export`: every record type mapped to its
 * OCSF class and activity; sealed batches verified with
 * `kgate audit verify --batch`, and each kind of tampering detected. */
#include "testlib.h"
#include "ship_fixture.h"
#include "record/ocsf.h"
#include "record/seal.h"

#include <jansson.h>

struct want {
	const char *type, *op, *target, *decision;
	bool refused;
	int class_uid, activity_id, action_id, disposition_id, severity_id;
};

/* one row per record written, in seq order */
static const struct want table[] = {
	{ "decision", "read", "/home/alice/.aws/credentials", "deny", true, 1001, 2, 2, 2, 3 },
	{ "decision", "file_open", "/etc/hosts", "allow", false, 1001, 14, 1, 1, 1 },
	{ "decision", "write", "/tmp/out", "audit", false, 1001, 3, 1, 17, 1 },
	{ "decision", "create", "/tmp/new", "allow", false, 1001, 1, 1, 1, 1 },
	{ "decision", "unlink", "/tmp/old", "deny", true, 1001, 4, 2, 2, 3 },
	{ "decision", "rename", "/tmp/a", "allow", false, 1001, 5, 1, 1, 1 },
	{ "decision", "mount", "/mnt", "deny", true, 1001, 12, 2, 2, 3 },
	{ "decision", "exec", "/usr/bin/curl", "deny", true, 1007, 1, 2, 2, 3 },
	{ "decision", "ptrace", "pid 1", "deny", true, 1007, 3, 2, 2, 3 },
	{ "decision", "signal", "pid 1", "deny", true, 1007, 99, 2, 2, 3 },
	{ "decision", "module", "dummy", "deny", true, 1002, 1, 2, 2, 3 },
	{ "decision", "net_connect", "127.0.0.2:9/tcp", "deny", true, 4001, 1, 2, 2, 3 },
	{ "decision", "net_connect", "[::1]:443/tcp", "allow", false, 4001, 1, 1, 1, 1 },
	{ "decision", "net_send", "10.0.0.1:53/udp", "require_approval", false, 4001, 6, 2, 14, 2 },
	{ "decision", "unix_connect", "/run/docker.sock", "deny", true, 4001, 1, 2, 2, 3 },
	{ "decision", "dns_resolve", "example.com", "allow", false, 4003, 1, 1, 1, 1 },
	{ "approval", "net_connect", "1.2.3.4:443/tcp", "requested", false, 3003, 99, 2, 14, 1 },
	{ "approval", "net_connect", "1.2.3.4:443/tcp", "approved", false, 3003, 1, 1, 8, 1 },
	{ "approval", "net_connect", "1.2.3.4:443/tcp", "denied", false, 3003, 99, 2, 25, 2 },
	{ "approval", "net_connect", "1.2.3.4:443/tcp", "expired", false, 3003, 99, 2, 2, 2 },
	{ "admission", "admission", "rm -rf /", "deny", false, 1007, 1, 2, 2, 3 },
	{ "job_start", "launch", "python3 agent.py", "allow", false, 1007, 1, 1, 1, 1 },
	{ "job_exit", "exit", "python3 agent.py", "exit", false, 1007, 2, 1, 1, 1 },
	{ "job_stop", "stop", "python3 agent.py", "stop", false, 1007, 2, 1, 1, 1 },
	{ "policy_change", "policy_push", "default", "allow", false, 0, 99, 1, 1, 1 },
	{ "controller", "start", "kgate", NULL, false, 0, 99, 1, 1, 1 },
	{ "events_lost", "events_lost", NULL, NULL, false, 0, 99, 0, 0, 4 },
};

static void write_table(void)
{
	struct kg_audit *a = sf_open(0);
	size_t i;

	for (i = 0; i < ARRAY_SIZE(table); i++) {
		const struct want *w = &table[i];
		json_t *extra = json_pack("{s:s}", "outcome", w->refused ? "refused" : "allowed");
		struct kg_audit_rec r = {
			.type = w->type, .trace_id = i % 2 ? "job-odd" : "job-even",
			.actor_uid = 1000, .actor_name = "alice", .actor_role = "operator",
			.pid = 4242, .tid = 4243, .comm = "python3", .exe = "/usr/bin/python3.11",
			.op = w->op, .target = w->target, .decision = w->decision,
			.rule_id = "r1", .reason = "because", .policy_name = "default",
			.policy_hash = "9f2c00aa", .policy_version = 7, .mechanism = "bpf-lsm",
			.extra = !strcmp(w->type, "decision") ? extra : NULL,
		};

		if (!strcmp(w->op, "dns_resolve")) {
			json_object_set_new(extra, "qtype", json_string("A"));
			json_object_set_new(extra, "rcode", json_string("NOERROR"));
			json_object_set_new(extra, "answers", json_pack("[s]", "93.184.215.14"));
		}
		ASSERT_OK(kg_audit_append(a, &r), w->type);
		json_decref(extra);
	}
	kg_audit_close(a);
}

static json_t *geti(json_t *o, const char *path)
{
	char buf[128], *save = NULL, *k;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	return o;
}

#define GETI(o, p) json_integer_value(geti(o, p))
#define GETS(o, p) json_string_value(geti(o, p))

TEST(ocsf_maps_every_record_type)
{
	char out[512], err[512], seal[512];
	char *argv[] = { (char *)sf_kgate(), "audit", "export", "--format", "ocsf", "--seal", seal,
			 "--output", out, "--dir", sf_trail, NULL };
	char *s, *line, *save = NULL;
	size_t i = 0;

	sf_setup();
	sf_path(out, sizeof(out), "ocsf.jsonl");
	sf_path(err, sizeof(err), "err");
	sf_path(seal, sizeof(seal), "seal.json");
	write_table();
	ASSERT_EQ(sf_run(argv, err, err), 0, "export --format ocsf");
	s = sf_read(out);
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		json_t *ev = json_loads(line, 0, NULL);
		const struct want *w = &table[i];
		char what[160];

		if (i >= ARRAY_SIZE(table))
			break;
		snprintf(what, sizeof(what), "%s %s %s", w->type, w->op, w->decision ?: "");
		ASSERT_TRUE(ev != NULL, "an event per line");
		if (GETI(ev, "class_uid") != w->class_uid ||
		    GETI(ev, "activity_id") != w->activity_id ||
		    GETI(ev, "type_uid") != (json_int_t)w->class_uid * 100 + w->activity_id ||
		    GETI(ev, "action_id") != w->action_id ||
		    GETI(ev, "disposition_id") != w->disposition_id ||
		    GETI(ev, "severity_id") != w->severity_id)
			printf("  %s: class %lld activity %lld type %lld action %lld disposition %lld "
			       "severity %lld\n", what, GETI(ev, "class_uid"),
			       GETI(ev, "activity_id"), GETI(ev, "type_uid"), GETI(ev, "action_id"),
			       GETI(ev, "disposition_id"), GETI(ev, "severity_id"));
		ASSERT_EQ(GETI(ev, "class_uid"), w->class_uid, what);
		ASSERT_EQ(GETI(ev, "activity_id"), w->activity_id, what);
		ASSERT_EQ(GETI(ev, "type_uid"), (json_int_t)w->class_uid * 100 + w->activity_id, what);
		ASSERT_EQ(GETI(ev, "category_uid"), w->class_uid / 1000, "category = class / 1000");
		ASSERT_EQ(GETI(ev, "action_id"), w->action_id, what);
		ASSERT_EQ(GETI(ev, "disposition_id"), w->disposition_id, what);
		ASSERT_EQ(GETI(ev, "severity_id"), w->severity_id, what);
		ASSERT_STREQ(GETS(ev, "metadata.version"), KG_OCSF_VERSION, "schema version");
		ASSERT_EQ(GETI(ev, "metadata.sequence"), (json_int_t)i + 1, "sequence = seq");
		ASSERT_TRUE(GETI(ev, "time") > 1600000000000LL, "time in ms since the epoch");
		ASSERT_TRUE(GETS(ev, "raw_data") && strstr(GETS(ev, "raw_data"), "\"hash\":"),
			    "raw_data is the sealed line");
		ASSERT_STREQ(GETS(ev, "unmapped.kgate.rule"), "r1", "rule kept");
		if (w->class_uid == 1001)
			ASSERT_STREQ(GETS(ev, "file.path"), w->target, "file.path");
		if (w->class_uid == 1001 || !strcmp(w->type, "decision"))
			ASSERT_EQ(GETI(ev, "actor.process.pid"), 4242, "actor.process.pid");
		if (!strcmp(w->op, "exec"))
			ASSERT_STREQ(GETS(ev, "process.file.path"), "/usr/bin/curl", "exec target");
		if (i == 11) {
			ASSERT_STREQ(GETS(ev, "dst_endpoint.ip"), "127.0.0.2", "ipv4");
			ASSERT_EQ(GETI(ev, "dst_endpoint.port"), 9, "port");
			ASSERT_STREQ(GETS(ev, "connection_info.protocol_name"), "tcp", "protocol");
		}
		if (i == 12) {
			ASSERT_STREQ(GETS(ev, "dst_endpoint.ip"), "::1", "ipv6");
			ASSERT_EQ(GETI(ev, "dst_endpoint.port"), 443, "port");
		}
		if (!strcmp(w->op, "unix_connect"))
			ASSERT_STREQ(GETS(ev, "dst_endpoint.name"), "/run/docker.sock", "unix path");
		if (!strcmp(w->op, "dns_resolve")) {
			ASSERT_STREQ(GETS(ev, "query.hostname"), "example.com", "query");
			ASSERT_STREQ(GETS(ev, "rcode"), "NOERROR", "rcode");
		}
		if (w->class_uid == 3003)
			ASSERT_STREQ(GETS(ev, "user.name"), "alice", "user of an authorization");
		json_decref(ev);
	}
	free(s);
	ASSERT_EQ(i, ARRAY_SIZE(table), "one event per record");
	{
		char *vargv[] = { (char *)sf_kgate(), "audit", "verify", "--batch", out, "--seal", seal,
				  "--dir", sf_trail, "--against-trail", NULL };

		ASSERT_EQ(sf_run(vargv, err, err), 0, "the OCSF batch verifies with its seal");
	}
	sf_teardown();
}

/* ---- sealed batches ---- */

static int verify_batch(const char *file, bool against)
{
	char err[512];
	char *argv[] = { (char *)sf_kgate(), "audit", "verify", "--batch", (char *)file, "--dir",
			 sf_trail, against ? "--against-trail" : NULL, NULL };
	char *e;
	int rc;

	sf_path(err, sizeof(err), "verify.err");
	rc = sf_run(argv, err, err);
	e = sf_read(err);
	printf("    %s", e);
	free(e);
	return rc;
}

/* rewrite file with line k (0-based) passed through fn (NULL = removed) */
static void edit_line(const char *src, const char *dst, int k, void (*fn)(char *line, FILE *out))
{
	char *s = sf_read(src), *line, *save = NULL;
	FILE *f = fopen(dst, "w");
	int i = 0;

	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		if (i != k)
			fprintf(f, "%s\n", line);
		else if (fn)
			fn(line, f);
	}
	fclose(f);
	free(s);
}

static void change_target(char *line, FILE *out)
{
	char *p = strstr(line, "secret-");

	if (p)
		p[7] = p[7] == '9' ? '8' : '9';
	fprintf(out, "%s\n", line);
}

static void change_count(char *line, FILE *out)
{
	json_t *o = json_loads(line, 0, NULL);
	char *s;

	json_object_set_new(o, "records", json_integer(json_integer_value(
		json_object_get(o, "records")) - 1));
	s = json_dumps(o, JSON_COMPACT);
	fprintf(out, "%s\n", s);
	free(s);
	json_decref(o);
}

static void duplicate(char *line, FILE *out)
{
	fprintf(out, "%s\n%s\n", line, line);
}

TEST(sealed_batch_verifies_and_tampering_is_detected)
{
	char out[512], err[512], bad[512], from[32];
	char *argv[] = { (char *)sf_kgate(), "audit", "export", "--from", from, "--to", "40",
			 "--output", out, "--dir", sf_trail, NULL };
	struct kg_audit *a;
	unsigned long i;

	sf_setup();
	sf_path(out, sizeof(out), "batch.jsonl");
	sf_path(err, sizeof(err), "err");
	sf_path(bad, sizeof(bad), "bad.jsonl");
	a = sf_open(0);
	for (i = 0; i < 50; i++)
		sf_append(a, i);
	kg_audit_close(a);
	snprintf(from, sizeof(from), "10");
	ASSERT_EQ(sf_run(argv, err, err), 0, "export seq 11..40");
	ASSERT_EQ(sf_count_lines(out), 31, "30 records and the envelope");
	ASSERT_EQ(verify_batch(out, true), 0, "the batch verifies, against the trail too");

	edit_line(out, bad, 5, change_target);
	ASSERT_EQ(verify_batch(bad, false), 6, "an edited record: tampered");
	edit_line(out, bad, 5, NULL);
	ASSERT_EQ(verify_batch(bad, false), 6, "a removed record: tampered");
	edit_line(out, bad, 5, duplicate);
	ASSERT_EQ(verify_batch(bad, false), 6, "a duplicated record: tampered");
	edit_line(out, bad, 30, change_count);
	ASSERT_EQ(verify_batch(bad, false), 6, "an edited envelope: tampered");
	edit_line(out, bad, 30, NULL);
	ASSERT_EQ(verify_batch(bad, false), 6, "no envelope: refused");
	edit_line(out, bad, 29, NULL);
	ASSERT_EQ(verify_batch(bad, false), 6, "the last record cut off: tampered");

	/* a filtered batch: each record authentic, the set sealed */
	{
		char *fargv[] = { (char *)sf_kgate(), "audit", "export", "--rule", "no-secrets",
				  "--decision", "deny", "--output", out, "--dir", sf_trail, NULL };

		ASSERT_EQ(sf_run(fargv, err, err), 0, "filtered export");
		ASSERT_EQ(verify_batch(out, true), 0, "a filtered batch verifies");
		edit_line(out, bad, 3, NULL);
		ASSERT_EQ(verify_batch(bad, false), 6, "a record removed from a filtered batch");
		{
			/* ...and the count in the envelope lowered to match: the MAC */
			char tmp[512];
			char *e;

			sf_path(tmp, sizeof(tmp), "tmp.jsonl");
			edit_line(out, tmp, 3, NULL);
			edit_line(tmp, bad, sf_count_lines(tmp) - 1, change_count);
			ASSERT_EQ(verify_batch(bad, false), 6, "record removed, count edited");
			sf_path(tmp, sizeof(tmp), "verify.err");
			e = sf_read(tmp);
			ASSERT_HAS_SUBSTR(e, "MAC", "caught by the envelope's MAC");
			free(e);
		}
	}
	/* the trail moved on: a batch of today still verifies against it */
	a = sf_open(0);
	for (i = 50; i < 60; i++)
		sf_append(a, i);
	kg_audit_close(a);
	ASSERT_EQ(verify_batch(out, true), 0, "still verifies after more records");
	sf_teardown();
}

TEST(export_bad_input_is_refused)
{
	char err[512];
	char *argv1[] = { (char *)sf_kgate(), "audit", "export", "--format", "xml", NULL };
	char *argv2[] = { (char *)sf_kgate(), "audit", "export", "--otlp", "ftp://x/", "--dir",
			  sf_trail, NULL };
	char *argv3[] = { (char *)sf_kgate(), "audit", "export", "--batch", "0", "--otlp",
			  "http://127.0.0.1:9/", NULL };
	char *argv4[] = { (char *)sf_kgate(), "audit", "verify", "--batch", "/nonexistent", NULL };
	struct kg_audit *a;

	sf_setup();
	sf_path(err, sizeof(err), "err");
	a = sf_open(0);
	sf_append(a, 1);
	kg_audit_close(a);
	ASSERT_EQ(sf_run(argv1, err, err), 2, "unknown format");
	ASSERT_EQ(sf_run(argv2, err, err), 2, "a URL that is not http(s)");
	ASSERT_EQ(sf_run(argv3, err, err), 2, "--batch 0");
	ASSERT_EQ(sf_run(argv4, err, err), 1, "a batch that cannot be read");
	sf_teardown();
}

/* a key file of size bytes and mode at path (0 / -1) */
static int write_key(const char *path, size_t size, mode_t mode)
{
	unsigned char k[64];
	int fd, ok;

	memset(k, 0x5a, sizeof(k));
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	ok = write(fd, k, size) == (ssize_t)size && !fchmod(fd, mode);
	close(fd);
	return ok ? 0 : -1;
}

/* kg_seal_new(key) fails with errno e (0: succeeds) */
static bool seal_key_gives(const char *key, int e)
{
	struct kg_seal *s;

	errno = 0;
	s = kg_seal_new(sf_trail, key);
	kg_seal_free(s);
	return e ? !s && errno == e : s != NULL;
}

/* The key of exported batches (`kgate audit export`, `verify --batch`) is
 * checked as the trail's writer and verifier check theirs: another size,
 * mode, owner or kind of file is refused, saying what is wrong with it. */
TEST(seal_refuses_a_key_of_wrong_size_mode_owner_or_kind)
{
	char key[512], link[512], out[512], err[512], *said;
	char *argv[] = { (char *)sf_kgate(), "audit", "export", "--key", key, "--dir", sf_trail,
			 "--output", out, NULL };
	struct kg_audit *a;

	sf_setup();
	sf_path(key, sizeof(key), "key");
	sf_path(link, sizeof(link), "key-link");
	sf_path(out, sizeof(out), "batch.jsonl");
	sf_path(err, sizeof(err), "err");
	a = sf_open(0);
	sf_append(a, 1);
	kg_audit_close(a);

	ASSERT_OK(write_key(key, 32, 0400), "key");
	ASSERT_TRUE(seal_key_gives(key, 0), "32 bytes, 0400: taken");
	ASSERT_OK(write_key(key, 32, 0600), "key");
	ASSERT_TRUE(seal_key_gives(key, 0), "0600: taken");
	ASSERT_OK(write_key(key, 32, 0440), "key");
	ASSERT_TRUE(seal_key_gives(key, EPERM), "readable by the group: refused");
	ASSERT_OK(write_key(key, 32, 0402), "key");
	ASSERT_TRUE(seal_key_gives(key, EPERM), "writable by others: refused");
	ASSERT_OK(write_key(key, 31, 0400), "key");
	ASSERT_TRUE(seal_key_gives(key, EINVAL), "31 bytes: refused");
	ASSERT_OK(write_key(key, 33, 0400), "key");
	ASSERT_TRUE(seal_key_gives(key, EINVAL), "33 bytes: refused, not cut to 32");
	ASSERT_OK(write_key(key, 32, 0400), "key");
	ASSERT_OK(symlink(key, link), "symlink");
	ASSERT_TRUE(seal_key_gives(link, ELOOP), "a symbolic link: refused");
	ASSERT_TRUE(seal_key_gives(sf_trail, EINVAL), "a directory: refused");
	ASSERT_TRUE(seal_key_gives("/nonexistent/audit.key", ENOENT), "no key: refused");

	ASSERT_OK(write_key(key, 32, 0400), "key");
	if (geteuid() != 0)
		SKIP("the owner check needs root to give the key away (the rest passed)");
	ASSERT_OK(chown(key, 12345, 0), "chown");
	ASSERT_TRUE(seal_key_gives(key, EPERM), "owned by another user: refused");
	/* and the command says so, naming the key */
	ASSERT_NEQ(sf_run(argv, err, err), 0, "export with that key fails");
	said = sf_read(err);
	ASSERT_HAS_SUBSTR(said, "owned by uid 12345", "says why");
	ASSERT_HAS_SUBSTR(said, key, "names the key");
	free(said);
	ASSERT_TRUE(access(out, F_OK) != 0 || sf_count_lines(out) == 0, "no batch written");
	sf_teardown();
}

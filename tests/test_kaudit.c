// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_kaudit.c - degraded mode: Landlock's refusals reach the trail under
 * the job's trace id, with their rule (issue 10, item 5), read back from
 * the kernel audit log (kaudit.h).  As root in the job:
 *
 *   T/a/secret/k       read denied (an allow rule inside keeps it Landlock's)
 *   T/a/secret/pub/p   readable (the allow inside)
 *   T/bin/denied-echo  exec denied
 *   kill -0 1          outside the job: refused by the domain's scoping
 *
 * and a flood whose accounting must be exact: recorded + lost == refused.
 * SKIP where Landlock cannot log (ABI < 7) or the audit log is unreadable
 * (kgate run says so at start), and with BPF LSM (full mode records its
 * own refusals: vmtests).
 */
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"

static char T[300], pol[512];

static inline void unused(void) { (void)helper; }

static int sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void build(void)
{
	char cmd[2048], json[2048];

	setup();
	snprintf(T, sizeof(T), "%s/t", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p '%s/a/secret/pub' '%s/bin'; echo KAUDIT-SECRET > '%s/a/secret/k';"
		 "echo pub > '%s/a/secret/pub/p'; cp /bin/echo '%s/bin/denied-echo'", T, T, T, T, T);
	if (sh(cmd))
		SKIP("cannot build the test tree");
	snprintf(json, sizeof(json),
		 "{ \"version\": 1, \"name\": \"kaudit\", \"default\": \"allow\",\n"
		 "  \"admission\": [ { \"id\": \"a\", \"match\": { \"topics\": [\"*\"] },"
		 " \"decision\": \"allow\", \"reason\": \"r\" } ],\n"
		 "  \"runtime\": [\n"
		 "    { \"id\": \"no-secret\", \"file\": { \"prefix\": \"%s/a/secret/\", \"ops\": [\"read\"] },"
		 " \"decision\": \"deny\", \"reason\": \"secrets stay\" },\n"
		 "    { \"id\": \"pub\", \"file\": { \"prefix\": \"%s/a/secret/pub/\", \"ops\": [\"read\"] },"
		 " \"decision\": \"allow\", \"reason\": \"public part\" },\n"
		 "    { \"id\": \"no-echo\", \"exec\": { \"path\": \"%s/bin/denied-echo\" },"
		 " \"decision\": \"deny\", \"reason\": \"not this one\" } ] }\n", T, T, T);
	write_policy(json, pol, sizeof(pol));
}

static void destroy(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	sh(cmd);
	teardown();
}

static void need_logging(const char *out)
{
	if (!out || !strstr(out, "degraded mode")) {
		destroy();
		SKIP("not degraded mode (BPF LSM records its own refusals)");
	}
	if (!strstr(out, "Landlock refusals are recorded one by one")) {
		destroy();
		SKIP("Landlock refusals cannot be logged here (see kgate run's start lines)");
	}
}

/* decision records of the trail: count those of mechanism `mech` whose
 * rule is `rule` (NULL: any) */
static int count_records(const char *trail, const char *mech, const char *rule)
{
	char m[64], r[96];
	const char *p;
	int n = 0;

	snprintf(m, sizeof(m), "\"mechanism\":\"%s\"", mech);
	snprintf(r, sizeof(r), "\"rule\":\"%s\"", rule ? rule : "");
	for (p = trail; p && (p = strstr(p, "\"type\":\"decision\"")); p++) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *line = strndup(p, len);

		if (line && strstr(line, m) && (!rule || strstr(line, r)))
			n++;
		free(line);
	}
	return n;
}

/* the whole trail as JSON lines (run_capture keeps 64 KiB only) */
static char *query(void)
{
	char path[512];
	pid_t pid;
	char *s;
	int fd;

	snprintf(path, sizeof(path), "%s/query.json", tmpdir);
	pid = fork();
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execl(kgate_bin(), kgate_bin(), "audit", "query", "--json", (char *)NULL);
		_exit(126);
	}
	waitpid(pid, NULL, 0);
	s = kg_read_file(path, 64 << 20, NULL);
	return s ? s : strdup("");
}

TEST(landlock_refusals_reach_the_trail_with_their_rule_as_root)
{
	char script[2048], *out, *trail;

	build();
	snprintf(script, sizeof(script),
		 "cat '%s/a/secret/k' >/dev/null 2>&1 && echo 'read-secret: WORKED'\n"
		 "'%s/bin/denied-echo' x >/dev/null 2>&1 && echo 'denied-exec: WORKED'\n"
		 "kill -0 1 2>/dev/null && echo 'signal-outside: WORKED'\n"
		 "grep -q pub '%s/a/secret/pub/p' && echo 'allowed-read: WORKED'\n"
		 "/bin/echo allowed-exec: WORKED\n", T, T, T);
	KGATE_RUN(pol, &out, "/bin/sh", "-c", script);
	need_logging(out);
	ASSERT_TRUE(!strstr(out, "read-secret: WORKED") && !strstr(out, "denied-exec: WORKED") &&
		    !strstr(out, "signal-outside: WORKED"), "the three attacks were refused");
	ASSERT_HAS_SUBSTR(out, "allowed-read: WORKED", "the allowed read works");
	ASSERT_HAS_SUBSTR(out, "allowed-exec: WORKED", "an allowed program runs");
	ASSERT_HAS_SUBSTR(out, "3 actions refused", "the job's summary counts the three");
	trail = query();
	ASSERT_EQ(count_records(trail, "landlock", "no-secret"), 1, "the read, under its rule");
	ASSERT_EQ(count_records(trail, "landlock", "no-echo"), 1, "the exec, under its rule");
	ASSERT_EQ(count_records(trail, "landlock", "self-protection"), 1, "the signal");
	ASSERT_EQ(count_records(trail, "landlock", NULL), 3, "and nothing else (not the allowed)");
	ASSERT_HAS_SUBSTR(trail, "\"blockers\":\"fs.read_file\"", "Landlock's own words are kept");
	ASSERT_HAS_SUBSTR(trail, "\"target\":\"pid 1\"", "the signal's target");
	free(trail);
	destroy();
}

/* Every refusal the kernel counted is either recorded or counted as lost. */
TEST(landlock_refusal_accounting_is_exact)
{
	char script[1024], *out, *trail, *p;
	long lost = 0;
	int recorded;

	build();
	snprintf(script, sizeof(script),
		 "i=0; while [ $i -lt 400 ]; do cat '%s/a/secret/k' 2>/dev/null; i=$((i+1)); done;"
		 "grep -q pub '%s/a/secret/pub/p' && echo flood-done", T, T);
	KGATE_RUN(pol, &out, "/bin/sh", "-c", script);
	need_logging(out);
	ASSERT_HAS_SUBSTR(out, "flood-done", "the flood ran, and the allowed read still works");
	trail = query();
	recorded = count_records(trail, "landlock", "no-secret");
	p = strstr(trail, "\"source\":\"landlock\"");
	if (p && (p = strstr(p - 200 > trail ? p - 200 : trail, "\"lost\":")))
		lost = atol(p + 7);
	printf("  recorded %d, lost %ld\n", recorded, lost);
	ASSERT_EQ(recorded + lost, 400, "recorded + lost == the 400 refusals");
	ASSERT_EQ(count_records(trail, "landlock", NULL), recorded, "nothing else recorded");
	free(trail);
	destroy();
}

/* Seccomp's refusals (the baseline's and the policy's syscall rules) and
 * its audit decisions reach the trail; the ENOSYS answers libc falls back
 * from (clone3 at every thread) do not. */
TEST(seccomp_refusals_reach_the_trail_with_their_rule_as_root)
{
	char json[1024], script[1024], *out, *trail;

	build();
	snprintf(json, sizeof(json),
		 "{ \"version\": 1, \"name\": \"sc\", \"default\": \"allow\",\n"
		 "  \"admission\": [ { \"id\": \"a\", \"match\": { \"topics\": [\"*\"] },"
		 " \"decision\": \"allow\", \"reason\": \"r\" } ],\n"
		 "  \"runtime\": [\n"
		 "    { \"id\": \"no-sync\", \"syscall\": { \"names\": [\"sync\"] },"
		 " \"decision\": \"deny\", \"reason\": \"no flushing\" },\n"
		 "    { \"id\": \"watch-uname\", \"syscall\": { \"names\": [\"uname\"] },"
		 " \"decision\": \"audit\", \"reason\": \"watched\" } ] }\n");
	write_policy(json, pol, sizeof(pol));
	if (access("/bin/mount", X_OK) || access("/bin/sync", X_OK) || access("/bin/uname", X_OK) ||
	    access("/usr/bin/python3", X_OK))
		SKIP("needs mount, sync, uname and python3");
	snprintf(script, sizeof(script),
		 "mount -t tmpfs kg '%s/a' 2>/dev/null && echo 'mount: WORKED'\n"
		 "sync; uname >/dev/null\n"
		 "python3 -c 'import threading; t=threading.Thread(target=lambda: None); t.start();"
		 " t.join(); print(\"thread: WORKED\")'\n"
		 "cat /proc/self/status >/dev/null && echo 'allowed: WORKED'\n", T);
	KGATE_RUN(pol, &out, "/bin/sh", "-c", script);
	if (!out || !strstr(out, "seccomp refusals are recorded one by one")) {
		destroy();
		SKIP("seccomp refusals cannot be recorded here (see kgate run's start lines)");
	}
	ASSERT_TRUE(!strstr(out, "mount: WORKED"), "mount is refused (baseline)");
	ASSERT_HAS_SUBSTR(out, "thread: WORKED", "threads work (clone3 falls back quietly)");
	ASSERT_HAS_SUBSTR(out, "allowed: WORKED", "allowed calls work");
	trail = query();
	ASSERT_TRUE(count_records(trail, "seccomp", "kgate:seccomp-baseline") >= 1,
		    "the mount, under the baseline");
	ASSERT_HAS_SUBSTR(trail, "\"target\":\"mount\"", "... named");
	ASSERT_EQ(count_records(trail, "seccomp", "no-sync"), 1, "the sync, under its rule");
	ASSERT_TRUE(count_records(trail, "seccomp", "watch-uname") >= 1, "the audited uname");
	ASSERT_TRUE(!strstr(trail, "\"target\":\"clone3\"") &&
		    !strstr(trail, "\"target\":\"io_uring_setup\""), "no record of quiet ENOSYS");
	free(trail);
	destroy();
}

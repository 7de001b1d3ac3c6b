// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_holes.c - degraded mode's holes (issue 10, item 4), as root in the
 * job: each one is refused, or said rule by rule at `kgate run` start, in
 * the job_start record and by `kgate doctor --policy`.
 *
 *   T/home/secret/key      read denied (exact path on the directory)
 *   T/home/ok/file         readable
 *   T/home/ok/keylink      a hard link of the key made before the run
 *   T/view                 a bind mount of T/home/secret made before the run
 *   T/homeview             a bind mount of T/home (an ancestor of the secret)
 *   T/bin/denied-echo      a copy of /bin/echo, exec denied
 *
 * On a machine with BPF LSM (full mode) the attacks are refused too, by
 * inode rules; the degraded-mode statements are then not asserted.
 */
#include <sys/mount.h>
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"

static char T[300], pol[512];

static int sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void build(const char *file_default)
{
	char cmd[4096], json[4096];

	setup();
	snprintf(T, sizeof(T), "%s/t", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p '%s/home/secret' '%s/home/ok' '%s/view' '%s/homeview' '%s/bin';"
		 "echo HOLE-SECRET-5c1e > '%s/home/secret/key'; echo fine > '%s/home/ok/file';"
		 "ln '%s/home/secret/key' '%s/home/ok/keylink'; cp /bin/echo '%s/bin/denied-echo'",
		 T, T, T, T, T, T, T, T, T, T);
	if (sh(cmd))
		SKIP("cannot build the test tree");
	snprintf(cmd, sizeof(cmd), "%s/home/secret", T);
	snprintf(json, sizeof(json), "%s/view", T);
	if (mount(cmd, json, NULL, MS_BIND, NULL))
		SKIP("bind mount: %s", strerror(errno));
	snprintf(cmd, sizeof(cmd), "%s/home", T);
	snprintf(json, sizeof(json), "%s/homeview", T);
	if (mount(cmd, json, NULL, MS_BIND, NULL))
		SKIP("bind mount: %s", strerror(errno));
	snprintf(json, sizeof(json),
		 "{ \"version\": 1, \"name\": \"holes\", \"default\": \"allow\",\n"
		 "  \"runtime_defaults\": { \"file\": \"%s\", \"exec\": \"allow\", \"net\": \"allow\","
		 " \"unix\": \"allow\" },\n"
		 "  \"admission\": [ { \"id\": \"a\", \"match\": { \"topics\": [\"*\"] },"
		 " \"decision\": \"allow\", \"reason\": \"r\" } ],\n"
		 "  \"runtime\": [\n"
		 "    { \"id\": \"no-secret\", \"file\": { \"path\": \"%s/home/secret\", \"ops\": [\"read\"] },"
		 " \"decision\": \"deny\", \"reason\": \"r\" },\n"
		 "    { \"id\": \"no-echo\", \"exec\": { \"path\": \"%s/bin/denied-echo\" },"
		 " \"decision\": \"deny\", \"reason\": \"r\" } ] }\n", file_default, T, T);
	write_policy(json, pol, sizeof(pol));
}

static void destroy(void)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/view", T);
	umount2(p, MNT_DETACH);
	snprintf(p, sizeof(p), "%s/homeview", T);
	umount2(p, MNT_DETACH);
	snprintf(p, sizeof(p), "rm -rf '%s'", tmpdir);
	sh(p);
	teardown();
}

static int run_script(const char *script, char **out)
{
	return KGATE_RUN(pol, out, "/bin/sh", "-c", (char *)script);
}

static bool degraded(const char *out)
{
	return out && strstr(out, "degraded mode");
}

/* the marker line "NAME: refused" / "NAME: WORKED" of a step */
#define STEP(name, cmd) "if " cmd " >/dev/null 2>&1; then echo '" name ": WORKED'; " \
			"else echo '" name ": refused'; fi\n"

TEST(bind_mounts_of_a_denied_directory_are_covered_as_root)
{
	char script[4096], *out;

	build("allow");
	snprintf(script, sizeof(script),
		 STEP("direct", "cat '%s/home/secret/key'")
		 STEP("bind-of-dir", "cat '%s/view/key'")
		 STEP("bind-of-ancestor", "cat '%s/homeview/secret/key'")
		 STEP("allowed", "grep -q fine '%s/home/ok/file'")
		 STEP("allowed-through-bind", "grep -q fine '%s/homeview/ok/file'")
		 STEP("umount-view", "umount -l '%s/view'")
		 "cat '%s/view/key' '%s/homeview/secret/key' 2>/dev/null; echo done\n",
		 T, T, T, T, T, T, T, T);
	ASSERT_EQ(run_script(script, &out), 0, "the job ran");
	ASSERT_HAS_SUBSTR(out, "done", "the script ran to its end");
	ASSERT_HAS_SUBSTR(out, "direct: refused", "the secret is refused by its own path");
	ASSERT_HAS_SUBSTR(out, "bind-of-dir: refused", "... and through a bind mount of it");
	ASSERT_HAS_SUBSTR(out, "bind-of-ancestor: refused", "... and through a bind mount of HOME");
	ASSERT_HAS_SUBSTR(out, "umount-view: refused", "the covering cannot be unmounted");
	ASSERT_HAS_SUBSTR(out, "allowed: WORKED", "an allowed file stays readable");
	ASSERT_HAS_SUBSTR(out, "allowed-through-bind: WORKED", "... also through the other mount");
	ASSERT_TRUE(out && !strstr(out, "HOLE-SECRET-5c1e"), "the secret never appears");
	if (degraded(out)) {
		ASSERT_HAS_SUBSTR(out, "/view (another mount of it)", "kgate run says it covers the bind");
		ASSERT_HAS_SUBSTR(out, "/homeview/secret (another mount of it)",
				  "... and the view through the bind of HOME");
	}
	destroy();
}

/*
 * An overlay whose lower layer is the directory it is mounted on
 * (lowerdir=D on D): from the mount namespace the layer is the overlay
 * again.  kgate followed it without end and died of a stack overflow at
 * `kgate run`; now the rule still holds and the job runs.
 */
TEST(an_overlay_layered_on_itself_neither_crashes_kgate_nor_opens_the_file)
{
	char cmd[2048], json[2048], d[400], opts[1400], *out = NULL;
	int rc;

	setup();
	snprintf(d, sizeof(d), "%s/ov", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p '%s/a' '%s/up' '%s/work'; echo OVERLAY-SECRET-77 > '%s/a/secret'",
		 d, d, d, d);
	if (sh(cmd))
		SKIP("cannot build the test tree");
	snprintf(opts, sizeof(opts), "lowerdir=%s/a,upperdir=%s/up,workdir=%s/work", d, d, d);
	snprintf(cmd, sizeof(cmd), "%s/a", d);
	if (mount("kgate-test-ov", cmd, "overlay", 0, opts)) {
		teardown();
		SKIP("overlay mount: %s", strerror(errno));
	}
	snprintf(json, sizeof(json),
		 "{ \"version\": 1, \"name\": \"ov\", \"default\": \"allow\",\n"
		 "  \"runtime_defaults\": { \"file\": \"allow\", \"exec\": \"allow\","
		 " \"net\": \"allow\", \"unix\": \"allow\" },\n"
		 "  \"runtime\": [ { \"id\": \"no-secret\", \"file\": { \"path\": \"%s/a/secret\","
		 " \"ops\": [\"read\"] }, \"decision\": \"deny\", \"reason\": \"r\" } ] }\n", d);
	write_policy(json, pol, sizeof(pol));
	snprintf(cmd, sizeof(cmd), "cat '%s/a/secret'; echo ran-to-the-end", d);
	rc = KGATE_RUN(pol, &out, "/bin/sh", "-c", cmd);
	/* the overlay goes before any assertion can return */
	snprintf(cmd, sizeof(cmd), "%s/a", d);
	umount2(cmd, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	sh(cmd);
	teardown();
	ASSERT_EQ(rc, 0, "kgate run completes (no crash)");
	ASSERT_HAS_SUBSTR(out, "ran-to-the-end", "the job ran");
	ASSERT_TRUE(out && !strstr(out, "OVERLAY-SECRET-77"), "the secret is refused through the overlay");
}

TEST(a_denied_program_copied_into_memory_does_not_run_as_root)
{
	char script[4096], *out;

	build("allow");
	snprintf(script, sizeof(script),
		 STEP("direct", "'%s/bin/denied-echo' x")
		 STEP("memfd-proc", "%s memfd '%s/bin/denied-echo' MEMFD-RAN")
		 STEP("fexecve", "%s fexecve '%s/bin/denied-echo' FEXECVE-RAN")
		 STEP("sealed-memfd", "%s sealed")
		 STEP("allowed-exec", "/bin/echo x")
		 "'%s/bin/denied-echo' STILL-RAN; echo done\n",
		 T, helper("kg_memexec"), T, helper("kg_memexec"), T, helper("kg_memexec"), T);
	ASSERT_EQ(run_script(script, &out), 0, "the job ran");
	ASSERT_HAS_SUBSTR(out, "done", "the script ran to its end");
	ASSERT_HAS_SUBSTR(out, "direct: refused", "the denied program is refused by its path");
	ASSERT_HAS_SUBSTR(out, "memfd-proc: refused", "a memfd copy run through /proc is refused");
	ASSERT_HAS_SUBSTR(out, "fexecve: refused", "a memfd copy run by fexecve is refused");
	ASSERT_TRUE(out && !strstr(out, "MEMFD-RAN") && !strstr(out, "FEXECVE-RAN") &&
		    !strstr(out, "STILL-RAN"), "the copy never ran");
	ASSERT_HAS_SUBSTR(out, "sealed-memfd: WORKED", "a non-executable memfd still works");
	ASSERT_HAS_SUBSTR(out, "allowed-exec: WORKED", "allowed programs still run");
	if (degraded(out))
		ASSERT_HAS_SUBSTR(out, "exec from memory: seccomp refuses memfd_create",
				  "kgate run says how exec from memory is refused");
	destroy();
}

/* The policy without exec rules: memfds stay as they are. */
TEST(without_exec_rules_memfds_are_left_alone)
{
	char json[1024], script[1024], *out;

	setup();
	snprintf(json, sizeof(json),
		 "{ \"version\": 1, \"name\": \"noexec\", \"default\": \"allow\",\n"
		 "  \"admission\": [ { \"id\": \"a\", \"match\": { \"topics\": [\"*\"] },"
		 " \"decision\": \"allow\", \"reason\": \"r\" } ], \"runtime\": [] }\n");
	write_policy(json, pol, sizeof(pol));
	snprintf(script, sizeof(script), "%s memfd /bin/echo MEMFD-RAN", helper("kg_memexec"));
	ASSERT_EQ(run_script(script, &out), 0, "the job ran");
	ASSERT_HAS_SUBSTR(out, "MEMFD-RAN", "with no exec rule, a memfd program runs");
	teardown();
}

/* What is not enforced is said: at run start, in job_start, by doctor. */
TEST(holes_left_open_are_stated_per_rule)
{
	char script[512], *out;
	char *q[] = { (char *)kgate_bin(), "audit", "query", "--json", NULL };
	char *d[] = { (char *)kgate_bin(), "doctor", "--policy", pol, NULL };

	build("audit");
	snprintf(script, sizeof(script), "cat '%s/home/ok/keylink'; echo done", T);
	ASSERT_EQ(run_script(script, &out), 0, "the job ran");
	if (!degraded(out)) {
		destroy();
		SKIP("BPF LSM active: these are degraded-mode statements");
	}
	/* the hard link made before the run is a hole: it must be said */
	ASSERT_HAS_SUBSTR(out, "rule 'no-secret': ", "kgate run speaks of the rule");
	ASSERT_HAS_SUBSTR(out, "1 file(s) beneath it have other names", "... of its hard link");
	ASSERT_HAS_SUBSTR(out, "an exact path on a directory: applied to everything beneath",
			  "... of its exact path applied to a subtree");
	ASSERT_HAS_SUBSTR(out, "runtime_defaults file: audit is NOT done here",
			  "... and of the audit default that records nothing");
	ASSERT_HAS_SUBSTR(out, "\"ld.so FILE\" and mmap(PROT_EXEC) of a denied file are NOT covered",
			  "... and of ld.so running a denied program");
	run_capture(q, &out);
	ASSERT_HAS_SUBSTR(out, "\\\"ld.so FILE\\\" and mmap(PROT_EXEC) of a denied file are NOT",
			  "job_start says it too");
	ASSERT_HAS_SUBSTR(out, "\"holes\":", "job_start has the rule's holes");
	ASSERT_HAS_SUBSTR(out, "other names (hard links", "... with the hard link");
	ASSERT_HAS_SUBSTR(out, "runtime_defaults file: audit is NOT done", "... and the notes");
	run_capture(d, &out);
	ASSERT_HAS_SUBSTR(out, "leaves out", "doctor --policy says what each rule leaves out");
	ASSERT_HAS_SUBSTR(out, "other names (hard links", "... the hard link");
	ASSERT_HAS_SUBSTR(out, "/view (another mount of it)", "... the bind it covers");
	ASSERT_HAS_SUBSTR(out, "runtime_defaults file: audit is NOT done", "... and the notes");
	ASSERT_HAS_SUBSTR(out, "\"ld.so FILE\" and mmap(PROT_EXEC) of a denied file are NOT covered",
			  "... ld.so included");
	destroy();
}

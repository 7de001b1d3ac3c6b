// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_outside.c - a root job must not get anything outside its job to act
 * for it (issue 16, docs/design.md "Escapes by proxy"), in both VM
 * configurations.
 *
 * core_pattern: a root job writes "|HELPER" into kernel.core_pattern and
 * crashes a child; HELPER (a script outside the job) would copy a file the
 * job's policy denies and leave a marker.  First the same attack runs
 * outside any job, so the harness is shown to work (the helper runs and
 * copies the file); then under `kgate run`: the write is refused, the
 * setting is unchanged, the helper never runs, the file is never read.
 * Full mode records the refusal (op system, kgate:self-protection,
 * bpf-lsm); nobpf finds /proc/sys read-only in the job's mount namespace.
 *
 * capabilities: the same root job's mknod (block and char), sethostname,
 * a read of a block device, and opens for writing of the other settings
 * that name a program the kernel runs (modprobe, uevent_helper, sysrq) are
 * refused; full mode records each capability refusal (extra.capability),
 * nobpf shows the bounding set.  A module autoload by socket family (which
 * the kernel asks for without any capability check: without kgate, the
 * marker modprobe runs) is refused and recorded in full mode; in nobpf the
 * seccomp baseline answers EAFNOSUPPORT before the kernel asks.
 *
 * And the allowed path: a root job builds a small C project with the
 * host's cc and make (the userland) and runs its tests, under the shipped
 * coding-agent policy.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "testlib.h"
#include "vt_bb.h"
#include "vt_userland.h"

#define SECRET_MARK "SECRET-9c1e"

static char saved_pattern[256];

static void save_core_pattern(void)
{
	char *s = kg_read_file("/proc/sys/kernel/core_pattern", 4096, NULL);

	snprintf(saved_pattern, sizeof(saved_pattern), "%s", s ? s : "core\n");
	free(s);
}

static void restore_core_pattern(void)
{
	if (bb_write("/proc/sys/kernel/core_pattern", saved_pattern, 0644))
		printf("  could not restore core_pattern: %s\n", strerror(errno));
}

/* The helper the kernel would run as root: copies the secret, leaves a mark */
static void write_helper(const char *secret)
{
	char text[1024];

	snprintf(text, sizeof(text), "#!/bin/sh\ncat '%s' > '%s' 2>&1\necho ran > '%s'\n",
		 secret, bb_path("leak"), bb_path("helper-ran"));
	if (bb_write(bb_path("helper.sh"), text, 0755))
		SKIP("cannot write the helper");
}

/* The attack, as a busybox sh script: set core_pattern, crash a child. */
static void attack_script(char *out, size_t len)
{
	snprintf(out, len,
		 "echo '|%s' > /proc/sys/kernel/core_pattern; echo core_pattern=$?\n"
		 "ulimit -c unlimited 2>/dev/null\n"
		 "sh -c 'kill -SEGV $$'; echo crashed=$?\n"
		 "sleep 2\n", bb_path("helper.sh"));
}

static bool exists(const char *p)
{
	return access(p, F_OK) == 0;
}

static bool wait_exists(const char *p, long ms)
{
	long long end = bb_now_ms() + ms;

	while (!exists(p) && bb_now_ms() < end)
		bb_sleep_ms(50);
	return exists(p);
}

TEST(a_root_job_cannot_make_the_kernel_run_a_crash_helper)
{
	char policy[512], script[1024], *now, *leak;
	const char *trace;
	json_t *recs;
	int rc;

	bb_setup(false);
	if (!exists("/proc/sys/kernel/core_pattern"))
		SKIP("no kernel.core_pattern here");
	save_core_pattern();
	if (mkdir(bb_home("secret"), 0700) ||
	    bb_write(bb_home("secret/key"), SECRET_MARK "\n", 0600))
		SKIP("cannot write the secret");
	write_helper(bb_home("secret/key"));
	attack_script(script, sizeof(script));

	/* outside any job: the harness works, the helper runs as root */
	{
		char *argv[] = { "/bin/sh", "-c", script, NULL };

		bb_run("control.out", argv);
	}
	ASSERT_TRUE(wait_exists(bb_path("helper-ran"), 5000),
		    "control: ungoverned, the kernel ran the helper");
	leak = bb_slurp("leak");
	ASSERT_HAS_SUBSTR(leak, SECRET_MARK, "control: and it read the file");
	free(leak);
	restore_core_pattern();
	unlink(bb_path("helper-ran"));
	unlink(bb_path("leak"));

	/* the same under kgate run, as root, the secret denied by the policy */
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-outside\",\"default\":\"allow\","
		  "\"runtime\":[{\"id\":\"no-secret\",\"file\":{\"prefix\":\"~/secret/\","
		  "\"ops\":[\"read\"]},\"decision\":\"deny\"}]}", policy, sizeof(policy));
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--home", bb.home, "--",
		      "/bin/sh", "-c", script);
	ASSERT_EQ(rc, 0, "the job ran to its end");
	ASSERT_TRUE(bb_result("run.out", "core_pattern", NULL) > 0, "the write was refused");
	now = kg_read_file("/proc/sys/kernel/core_pattern", 4096, NULL);
	ASSERT_TRUE(now && !strcmp(now, saved_pattern), "core_pattern is unchanged");
	free(now);
	ASSERT_FALSE(wait_exists(bb_path("helper-ran"), 3000), "the helper never ran");
	ASSERT_FALSE(exists(bb_path("leak")), "the denied file was never read");
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	if (bb_full()) {
		ASSERT_GE(bb_count_target(recs, "decision", "system", "deny", "kgate:self-protection",
					  "bpf-lsm", "core_pattern"), 1,
			  "the refusal is audited (op system, self-protection)");
	} else {
		char *text = bb_slurp("run.out");

		ASSERT_HAS_SUBSTR(text, "Read-only file system", "nobpf: read-only in the job");
		free(text);
	}
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	restore_core_pattern();
	bb_teardown();
}

/* A block device this process can open for reading ("" if none). */
static const char *block_device(void)
{
	static char path[300];
	struct dirent *de;
	DIR *d = opendir("/dev");

	path[0] = '\0';
	while (d && (de = readdir(d))) {
		struct stat st;
		int fd;

		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		if (stat(path, &st) || !S_ISBLK(st.st_mode))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			break;
		}
	}
	if (!de)
		path[0] = '\0';
	if (d)
		closedir(d);
	return path;
}

static long capbnd(const char *out)
{
	char *text = bb_slurp(out), *p = strstr(text, "CapBnd:");
	long v = p ? (long)strtoull(p + 7, NULL, 16) : -1;

	free(text);
	return v;
}

TEST(a_root_job_loses_what_reaches_outside)
{
	char policy[512], script[4096], modprobe_helper[600];
	const char *a = bb_helper("kg_attack"), *blk = block_device(), *trace;
	static const char *const settings[] = { "/proc/sys/kernel/modprobe",
		"/sys/kernel/uevent_helper", "/proc/sysrq-trigger", "/proc/sys/kernel/hotplug" };
	char *saved_modprobe = NULL;
	size_t off = 0, i;
	int nsettings = 0;
	json_t *recs;

	bb_setup(false);
	/* module autoload: kernel.modprobe points at a marker script while the
	 * job asks for a socket family no module provides yet (AF_DECnet, 12) */
	saved_modprobe = kg_read_file("/proc/sys/kernel/modprobe", 4096, NULL);
	snprintf(modprobe_helper, sizeof(modprobe_helper), "#!/bin/sh\necho \"$@\" >> '%s'\n",
		 bb_path("modprobe-ran"));
	if (saved_modprobe && (bb_write(bb_path("modprobe.sh"), modprobe_helper, 0755) ||
			       bb_write("/proc/sys/kernel/modprobe", bb_path("modprobe.sh"), 0644)))
		printf("  cannot point kernel.modprobe at a marker: autoload not observed\n");
	off += (size_t)snprintf(script + off, sizeof(script) - off,
				"%s capbnd; %s mknod_blk %s; %s mknod_chr %s; %s sethostname; ",
				a, a, bb_path("sda"), a, bb_path("null"), a);
	if (*blk)
		off += (size_t)snprintf(script + off, sizeof(script) - off, "%s read %s; ", a, blk);
	for (i = 0; i < ARRAY_SIZE(settings); i++)
		if (exists(settings[i])) {
			off += (size_t)snprintf(script + off, sizeof(script) - off,
						"%s openw %s; ", a, settings[i]);
			nsettings++;
		}
	snprintf(script + off, sizeof(script) - off, "%s socket 12 2 0; echo done", a);
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-outside\",\"default\":\"allow\","
		  "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[]}", policy, sizeof(policy));
	ASSERT_EQ(BB_KGATE("run.out", "run", "--policy", policy, "--home", bb.home, "--",
			   "/bin/sh", "-c", script), 0, "the job ran to its end");
	if (saved_modprobe)
		bb_write("/proc/sys/kernel/modprobe", saved_modprobe, 0644);
	ASSERT_TRUE(bb_refused(bb_result("run.out", "mknod_blk", "errno")), "mknod b refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "mknod_chr", "errno")), "mknod c refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "sethostname", "errno")), "sethostname refused");
	ASSERT_FALSE(exists(bb_path("sda")), "no device node was made");
	if (*blk)
		ASSERT_TRUE(bb_refused(bb_result("run.out", "read", "errno")),
			    "reading a block device refused (cgroup-bpf)");
	else
		printf("  no readable block device in the guest: not tried\n");
	{
		char *text = bb_slurp("run.out"), *p = text;
		int refused = 0;

		while ((p = strstr(p, "openw ret=-1 errno="))) {
			long e = strtol(p + 19, NULL, 10);

			refused += e == EPERM || e == EROFS || e == EACCES;
			p += 19;
		}
		ASSERT_EQ(refused, nsettings, "every helper setting here refused for writing");
		free(text);
	}
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	if (bb_full()) {
		ASSERT_GE(bb_count(recs, "decision", "system", "deny", "kgate:self-protection",
				   "bpf-lsm"), 3 + nsettings, "each refusal audited (op system)");
		ASSERT_GE(bb_count(recs, "decision", "module", "deny", "kgate:self-protection",
				   "bpf-lsm"), 1, "the module autoload refused and audited");
		ASSERT_FALSE(exists(bb_path("modprobe-ran")), "modprobe never ran for the job");
	} else {
		ASSERT_EQ(capbnd("run.out"), 0x30006dffL, "nobpf: the bounding set is the kept set");
		/* the kernel asks no capability to autoload a socket family's
		 * module: the seccomp baseline's family list keeps it from asking */
		ASSERT_EQ(bb_result("run.out", "socket", "errno"), EAFNOSUPPORT,
			  "nobpf: an unusual socket family answered EAFNOSUPPORT");
		ASSERT_FALSE(exists(bb_path("modprobe-ran")), "nobpf: modprobe never ran for the job");
		ASSERT_TRUE(!saved_modprobe || access(bb_path("modprobe.sh"), X_OK) == 0,
			    "the marker modprobe was in place");
	}
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	free(saved_modprobe);
	bb_teardown();
}

/* The /proc/PID files that ask no ptrace-mode access change how the kernel
 * treats another process: a root job setting oom_score_adj of a process
 * outside it to 1000 makes the OOM killer take that process first (kgate's
 * controller, say: a fail-open policy then opens).  Full mode refuses the
 * write and records it; the job's own processes' files stay writable.
 * Degraded mode states it (docs/design.md): nothing there refuses it. */
static int read_oom_adj(pid_t pid)
{
	char path[64], *text;
	int v;

	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	text = kg_read_file(path, 64, NULL);
	v = text ? atoi(text) : -9999;
	free(text);
	return v;
}

TEST(a_root_job_cannot_change_how_the_kernel_treats_a_process_outside_it)
{
	char policy[512], script[1024];
	pid_t victim;
	json_t *recs;
	int before;

	bb_setup(false);
	victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	ASSERT_TRUE(victim > 0, "a process outside any job");
	before = read_oom_adj(victim);
	snprintf(script, sizeof(script),
		 "echo 1000 > /proc/%d/oom_score_adj; echo outside_oom=$?; "
		 "echo 0 > /proc/%d/coredump_filter; echo outside_filter=$?; "
		 "echo 500 > /proc/self/oom_score_adj; echo own_oom=$?; "
		 "echo own_value=$(cat /proc/self/oom_score_adj)",
		 (int)victim, (int)victim);
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-procpid\",\"default\":\"allow\","
		  "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[]}", policy, sizeof(policy));
	ASSERT_EQ(BB_KGATE("run.out", "run", "--as", "root", "--policy", policy, "--home", bb.home,
			   "--", "/bin/sh", "-c", script), 0, "the job ran to its end");
	{
		char *text = bb_slurp("run.out");

		ASSERT_HAS_SUBSTR(text, "own_oom=0", "the job's own oom_score_adj is writable");
		ASSERT_HAS_SUBSTR(text, "own_value=500", "and took the value");
		if (bb_full()) {
			ASSERT_TRUE(!strstr(text, "outside_oom=0"), "the outside write failed");
			ASSERT_TRUE(!strstr(text, "outside_filter=0"), "so did coredump_filter");
		}
		free(text);
	}
	recs = bb_audit(bb_trace("run.out"));
	if (bb_full()) {
		char target[64];

		ASSERT_EQ(read_oom_adj(victim), before, "the victim's oom_score_adj is unchanged");
		snprintf(target, sizeof(target), "/proc/%d/", (int)victim);
		ASSERT_GE(bb_count_target(recs, "decision", "system", "deny", "kgate:self-protection",
					  "bpf-lsm", target), 2, "both refusals audited (op system)");
	} else {
		printf("  nobpf: /proc/PID of processes outside the job is not refused (stated in "
		       "docs/design.md); victim's oom_score_adj now %d\n", read_oom_adj(victim));
	}
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);
	bb_teardown();
}

/* A small C project built and tested as root under the coding-agent policy */
static const char project[] =
	"set -e; mkdir -p proj/src proj/tests; cd proj\n"
	"printf '#include \"sum.h\"\\nlong sum(const int *v, int n)\\n"
	"{ long s = 0; while (n-- > 0) s += v[n]; return s; }\\n' > src/sum.c\n"
	"printf 'long sum(const int *v, int n);\\n' > src/sum.h\n"
	"printf '#include <stdio.h>\\n#include \"../src/sum.h\"\\nint main(void) { int v[] = "
	"{1, 2, 3, 4}; if (sum(v, 4) != 10) return 1; puts(\"tests: 1 passed\"); return 0; }\\n'"
	" > tests/t.c\n"
	"printf 'CFLAGS ?= -O2 -Wall -Werror\\nall: libsum.a\\nlibsum.a: src/sum.o\\n"
	"\\t$(AR) rcs $@ $^\\ntests/t: tests/t.c libsum.a\\n\\t$(CC) $(CFLAGS) -o $@ $^\\n"
	"check: tests/t\\n\\t./tests/t\\ninstall: libsum.a\\n\\tinstall -D -m 644 -o root "
	"libsum.a $(DESTDIR)/usr/lib/libsum.a\\n' > Makefile\n"
	"make -j2\nmake check\nmake install DESTDIR=\"$PWD/stage\"\n"
	"test -f stage/usr/lib/libsum.a\necho PROJECT-OK\n";

TEST(a_root_job_builds_and_tests_a_c_project)
{
	char home[64] = "", policy[512], *text;
	const char *src = getenv("KGATE_SRC");
	int rc;

	vt_ul_require();
	bb_setup(false);
	if (!ASSERT_OK(vt_ul_make_home(home), "a home under /home"))
		goto out;
	snprintf(policy, sizeof(policy), "%s/policies/coding-agent.json", src ? src : ".");
	{
		char *argv[] = { (char *)bb_kgate(), "run", "--policy", policy, "--home", home,
				 "--topic", "job.agent.build", "--", "/bin/sh", "-c",
				 (char *)project, NULL };

		rc = vt_ul_run(bb_path("build.out"), argv);
	}
	text = bb_slurp("build.out");
	bb_show("kgate run -- make, make check, make install", text);
	ASSERT_EQ(rc, 0, "the build ran to its end");
	ASSERT_HAS_SUBSTR(text, bb_full() ? "full mode" : "degraded mode", "in the expected mode");
	ASSERT_HAS_SUBSTR(text, "tests: 1 passed", "the project's tests passed");
	ASSERT_HAS_SUBSTR(text, "PROJECT-OK", "make install staged the library");
	free(text);
out:
	if (home[0])
		vt_ul_rm_tree(home);
	bb_teardown();
}

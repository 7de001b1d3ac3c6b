// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_launch.c - governed launch on this host (degraded mode: no BPF LSM).
 * The command is tests/helpers/kg_attack (KGATE_TEST_HELPERS), run inside a
 * job cgroup created for the test and destroyed afterwards.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>

#include "job/cgroup.h"
#include "common.h"
#include "job/launch.h"
#include "testlib.h"

static char helper_path[4096];

static const char *helper(void)
{
	const char *dir = getenv("KGATE_TEST_HELPERS");

	if (!dir)
		SKIP("KGATE_TEST_HELPERS not set (run through tests/run.sh)");
	snprintf(helper_path, sizeof(helper_path), "%s/kg_attack", dir);
	if (access(helper_path, X_OK))
		SKIP("helper %s missing", helper_path);
	return helper_path;
}

static void make_job(struct kg_cgroup *cg)
{
	char name[64];
	int ret;

	if (geteuid() != 0)
		SKIP("needs root to create cgroups");
	if (!kg_cgroup2_mount())
		SKIP("no cgroup2 mount");
	snprintf(name, sizeof(name), "t-launch-%d", (int)getpid());
	ret = kg_cgroup_create_job("kgate-test", name, cg);
	if (ret < 0)
		SKIP("cannot create a job cgroup: %s", strerror(-ret));
}

static void drop_job(struct kg_cgroup *cg)
{
	char parent[4200];

	ASSERT_OK(kg_cgroup_destroy(cg), "destroy job cgroup");
	snprintf(parent, sizeof(parent), "%s/kgate-test", kg_cgroup2_mount());
	rmdir(parent);	/* fails while other tests use it: fine */
}

/* Launch argv in cg with stdout captured into out; returns go()'s result. */
static int run_job(struct kg_launch_opts *o, struct kg_exit_info *ei, uint64_t max_rt,
		   char *out, size_t outlen)
{
	struct kg_job_proc jp;
	int p[2], saved, ret, go;
	size_t used = 0;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	saved = dup(1);
	dup2(p[1], 1);	/* the child's fd 1 (dup2 clears CLOEXEC) */
	ret = kg_launch_start(o, &jp);
	dup2(saved, 1);
	close(saved);
	close(p[1]);
	if (ret < 0) {
		close(p[0]);
		return ret;
	}
	go = kg_launch_go(&jp);
	/* wait first: a forked tree may keep the pipe open until it is killed;
	 * outputs are far below the pipe's capacity */
	ret = kg_launch_wait(&jp, max_rt ? max_rt : 60, ei);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	while (used + 1 < outlen && (n = read(p[0], out + used, outlen - used - 1)) > 0)
		used += (size_t)n;
	out[used] = '\0';
	close(p[0]);
	kg_launch_release(&jp);
	if (jp.notify_fd >= 0)
		close(jp.notify_fd);
	return ret < 0 ? ret : go;
}

static void base_opts(struct kg_launch_opts *o, const struct kg_cgroup *cg, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->argv = argv;
	o->cg = cg;
	o->degraded = true;
}

TEST(child_is_in_job_cgroup_before_exec)
{
	char *argv[] = { (char *)helper(), "cgroup", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[4096], want[4200];

	make_job(&cg);
	base_opts(&o, &cg, argv);
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch");
	snprintf(want, sizeof(want), "%s\n", cg.path + strlen(kg_cgroup2_mount()));
	ASSERT_STREQ(out, want, "the helper's /proc/self/cgroup names the job cgroup");
	ASSERT_EQ(ei.exit_code, 0, "exit code");
	drop_job(&cg);
}

struct fork_note {
	const struct kg_cgroup *cg;
	int calls;
	bool populated;		/* the job's cgroup had a process in it then */
};

static void note_before_fork(void *ctx)
{
	struct fork_note *n = ctx;

	n->calls++;
	n->populated = kg_cgroup_populated(n->cg);
}

TEST(before_fork_runs_once_before_the_child_exists)
{
	char *argv[] = { (char *)helper(), "exit", "0", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	struct fork_note note = {};
	char out[256];

	make_job(&cg);
	base_opts(&o, &cg, argv);
	note.cg = &cg;
	o.before_fork = note_before_fork;
	o.before_fork_ctx = &note;
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch");
	ASSERT_EQ(note.calls, 1, "called once");
	ASSERT_FALSE(note.populated, "before the child was born into the job's cgroup");
	ASSERT_EQ(ei.exit_code, 0, "and the command ran");
	drop_job(&cg);
}

TEST(exec_failure_reports_errno_and_127)
{
	char *argv[] = { "/nonexistent/kgate-no-such-binary", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256];

	make_job(&cg);
	base_opts(&o, &cg, argv);
	ASSERT_EQ(run_job(&o, &ei, 0, out, sizeof(out)), -ENOENT, "go reports ENOENT");
	ASSERT_TRUE(ei.launch_failed, "launch failure recorded");
	ASSERT_EQ(ei.stage, KG_STAGE_EXEC, "failed at exec");
	ASSERT_EQ(ei.launch_errno, ENOENT, "errno passed back");
	ASSERT_EQ(ei.exit_code, 127, "exit 127 like a shell");
	drop_job(&cg);
}

TEST(exit_code_and_signal_pass_through)
{
	char *argv1[] = { (char *)helper(), "exit", "42", NULL };
	char *argv2[] = { (char *)helper(), "sigself", "9", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256];

	make_job(&cg);
	base_opts(&o, &cg, argv1);
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch exit 42");
	ASSERT_EQ(ei.exit_code, 42, "exit code as is");
	base_opts(&o, &cg, argv2);
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch sigself");
	ASSERT_EQ(ei.signal, SIGKILL, "killed by signal 9");
	ASSERT_EQ(ei.exit_code, 128 + SIGKILL, "128+N");
	drop_job(&cg);
}

TEST(inherited_descriptors_are_closed)
{
	char *argv[] = { (char *)helper(), "fds", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256];
	int leak;

	make_job(&cg);
	leak = open("/proc/self/status", O_RDONLY);	/* no CLOEXEC on purpose */
	ASSERT_GE(leak, 0, "open a leaky fd");
	base_opts(&o, &cg, argv);
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch");
	ASSERT_STREQ(out, "fds 3\n", "only stdin, stdout, stderr reach the command");
	close(leak);
	drop_job(&cg);
}

TEST(max_runtime_kills_the_whole_tree)
{
	char *argv[] = { (char *)helper(), "forktree", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256], procs[4200], *left;
	uint64_t t0 = kg_now_mono_ns();
	int i;

	make_job(&cg);
	base_opts(&o, &cg, argv);
	ASSERT_OK(run_job(&o, &ei, 1, out, sizeof(out)), "launch");
	ASSERT_TRUE(ei.timed_out, "max runtime reported");
	ASSERT_EQ(ei.signal, SIGKILL, "main process killed");
	ASSERT_TRUE(kg_now_mono_ns() - t0 < 5000000000ull, "killed within 5s");
	for (i = 0; i < 200 && kg_cgroup_populated(&cg); i++)
		usleep(10000);
	ASSERT_FALSE(kg_cgroup_populated(&cg), "no grandchild survives");
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg.path);
	left = kg_read_file(procs, 65536, NULL);
	ASSERT_STREQ(left, "", "cgroup.procs empty");
	free(left);
	drop_job(&cg);
}

TEST(as_user_drops_privileges)
{
	char *argv[] = { (char *)helper(), "ids", NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256], dir[4096];

	make_job(&cg);
	/* the helper must be reachable by nobody: skip if its tree is private */
	snprintf(dir, sizeof(dir), "%s", helper());
	base_opts(&o, &cg, argv);
	o.have_as = true;
	o.as_uid = 65534;
	o.as_gid = 65534;
	if (run_job(&o, &ei, 0, out, sizeof(out)) == -EACCES)
		SKIP("helper not executable by uid 65534 here");
	ASSERT_STREQ(out, "uid 65534 gid 65534\n", "runs as nobody");
	drop_job(&cg);
}

/* End to end: the exec'd command gets the degraded-mode filter. */
TEST(seccomp_applies_to_the_command)
{
	static const struct { const char *what; int err; } cases[] = {
		{ "ptrace", EPERM }, { "mount", EPERM }, { "bpf", EPERM },
		{ "unshare_user", EPERM }, { "clone3", ENOSYS }, { "init_module", EPERM },
		{ "getpid", 0 },
	};
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256];
	size_t i;

	make_job(&cg);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[] = { (char *)helper(), (char *)cases[i].what, NULL };

		base_opts(&o, &cg, argv);
		ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), cases[i].what);
		if (!ASSERT_EQ(ei.exit_code, cases[i].err, cases[i].what))
			printf("  output: %s", out);
	}
	drop_job(&cg);
}

static void non_native_syscall_kills_the_command(const char *attack)
{
	char *argv[] = { (char *)helper(), (char *)attack, NULL };
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256];

	make_job(&cg);
	base_opts(&o, &cg, argv);
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), attack);
	ASSERT_EQ(ei.signal, SIGSYS, attack);
	ASSERT_STREQ(out, "", "nothing printed after the attempt");
	drop_job(&cg);
}

TEST(x32_syscalls_kill_the_command)
{
	non_native_syscall_kills_the_command("x32");
}

TEST(int80_syscalls_kill_the_command)
{
	if (!kt_int80_available())
		SKIP("this machine kills every int $0x80 call before seccomp sees it");
	non_native_syscall_kills_the_command("int80");
}

TEST(landlock_scoping_stops_signals_to_the_controller)
{
	char self[32];
	char *argv1[] = { (char *)helper(), "kill", self, NULL };
	char *argv2[] = { (char *)helper(), "killchild", NULL };
	struct kg_landlock_plan *plan;
	struct kg_launch_opts o;
	struct kg_exit_info ei;
	struct kg_cgroup cg;
	char out[256];

	make_job(&cg);
	if (kg_landlock_abi() < 6)
		SKIP("Landlock scoping needs ABI 6");
	ASSERT_OK(kg_landlock_plan(NULL, &plan), "plan");
	snprintf(self, sizeof(self), "%d", (int)getpid());
	base_opts(&o, &cg, argv1);
	o.landlock = plan;
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch kill");
	ASSERT_EQ(ei.exit_code, EPERM, "signal to the controller refused");
	base_opts(&o, &cg, argv2);
	o.landlock = plan;
	ASSERT_OK(run_job(&o, &ei, 0, out, sizeof(out)), "launch killchild");
	ASSERT_EQ(ei.exit_code, 0, "its own child can be signalled");
	kg_landlock_plan_free(plan);
	drop_job(&cg);
}

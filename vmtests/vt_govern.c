// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_govern.c - `kgate govern` and `kgate release`: a cgroup kgate did not
 * create, with a process that was running before govern (black box).
 *
 * The test makes a cgroup of its own under the cgroup2 mount and starts a
 * "resident" in it: a child of the test that moves itself in, opens an
 * ancestor's cgroup.procs for writing and the root cgroup's directory (as a
 * process planning to leave might), and then does what it is told over a
 * pipe, answering with the errno.  Then kgate governs the cgroup, the
 * resident tries denied and allowed things and ways out, kgate releases
 * it, and the resident tries again.  Full mode for enforcement; the
 * degraded refusal runs in the nobpf boot.
 */
#include <arpa/inet.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "testlib.h"
#include "vt_bb.h"
#include "job/cgroup.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct resident {
	pid_t pid;
	int cmd, res;		/* pipes: commands to it, answers from it */
	char cg[512];		/* its cgroup directory */
};

static void resident_loop(struct resident *r, int cmd, int res)
{
	const char *mnt = kg_cgroup2_mount();
	char path[600], line[700], arg1[600], arg2[32];
	int root_procs, root_dir;
	FILE *in = fdopen(cmd, "r");

	snprintf(path, sizeof(path), "%s/cgroup.procs", r->cg);
	if (bb_write(path, "0", 0644))
		_exit(3);
	/* held from before govern: ways out for later */
	snprintf(path, sizeof(path), "%s/cgroup.procs", mnt);
	root_procs = open(path, O_WRONLY | O_CLOEXEC);
	root_dir = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (write(res, "ready\n", 6) != 6)
		_exit(4);
	while (in && fgets(line, sizeof(line), in)) {
		int err = 0, fd;
		char buf[8];

		arg1[0] = arg2[0] = '\0';
		sscanf(line, "%*s %599s %31s", arg1, arg2);
		if (!strncmp(line, "read ", 5)) {
			fd = open(arg1, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || read(fd, buf, 1) < 0)
				err = errno;
			if (fd >= 0)
				close(fd);
		} else if (!strncmp(line, "connect ", 8)) {
			struct sockaddr_in sa = { .sin_family = AF_INET,
						  .sin_port = htons(atoi(arg2)) };

			inet_pton(AF_INET, arg1, &sa.sin_addr);
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
				err = errno;
			if (fd >= 0)
				close(fd);
		} else if (!strncmp(line, "escape-held", 11)) {
			/* the descriptor opened before govern */
			if (root_procs < 0 || write(root_procs, "0", 1) < 0)
				err = root_procs < 0 ? EBADF : errno;
		} else if (!strncmp(line, "escape-open", 11)) {
			snprintf(path, sizeof(path), "%s/cgroup.procs", mnt);
			fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, "0", 1) < 0)
				err = errno;
			if (fd >= 0)
				close(fd);
		} else if (!strncmp(line, "clone-into", 10)) {
			struct clone_args ca = {
				.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD,
				.cgroup = (__u64)root_dir,
			};
			long pid = syscall(SYS_clone3, &ca, sizeof(ca));

			if (pid == 0)
				_exit(0);
			if (pid < 0)
				err = errno;
			else
				waitpid((pid_t)pid, NULL, 0);
		} else if (!strncmp(line, "where", 5)) {
			/* 0 while this process is still in its cgroup */
			char mine[600];

			err = kg_cgroup_of_pid(0, mine, sizeof(mine)) ? EIO :
			      strcmp(r->cg + strlen(mnt), mine) ? EXDEV : 0;
		} else {
			break;
		}
		snprintf(line, sizeof(line), "%d\n", err);
		if (write(res, line, strlen(line)) < 0)
			break;
	}
	_exit(0);
}

static int resident_start(struct resident *r, const char *name)
{
	int cmd[2], res[2];
	char buf[16];

	snprintf(r->cg, sizeof(r->cg), "%s/%s-%d", kg_cgroup2_mount(), name, (int)getpid());
	if (mkdir(r->cg, 0755) && errno != EEXIST)
		return -1;
	if (pipe(cmd) || pipe(res))
		return -1;
	fflush(stdout);
	r->pid = fork();
	if (r->pid == 0) {
		close(cmd[1]);
		close(res[0]);
		resident_loop(r, cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	r->cmd = cmd[1];
	r->res = res[0];
	return read(r->res, buf, 6) == 6 && !strncmp(buf, "ready\n", 6) ? 0 : -1;
}

/* The resident's errno for one command (-1 if it did not answer). */
static int ask(struct resident *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ask(struct resident *r, const char *fmt, ...)
{
	char line[700], ans[32] = {};
	va_list ap;
	ssize_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (write(r->cmd, line, strlen(line)) < 0)
		return -1;
	n = read(r->res, ans, sizeof(ans) - 1);
	return n > 0 ? atoi(ans) : -1;
}

static void resident_stop(struct resident *r)
{
	if (r->pid > 0) {
		close(r->cmd);
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		close(r->res);
		r->pid = 0;
	}
	rmdir(r->cg);
}

/* "kgate: governing X as job job-..." */
static const char *govern_trace(const char *out)
{
	static char trace[64];
	char *text = bb_slurp(out), *p = strstr(text, " as job job-");

	trace[0] = '\0';
	if (p)
		sscanf(p + strlen(" as job "), "%63[a-z0-9-]", trace);
	free(text);
	return trace;
}

static json_t *find_rec(json_t *recs, const char *type, const char *op)
{
	size_t i;
	json_t *r;

	json_array_foreach(recs, i, r)
		if (bb_field_is(r, "type", type) && bb_field_is(r, "op", op))
			return r;
	return NULL;
}

static bool rule_listed(json_t *arr, const char *rule)
{
	size_t i;
	json_t *u;

	json_array_foreach(arr, i, u)
		if (bb_field_is(u, "rule", rule))
			return true;
	return false;
}

#define GOV_POLICY \
	"{\"version\":1,\"name\":\"vt-govern\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"file\":\"allow\",\"exec\":\"allow\",\"net\":\"allow\"}," \
	"\"runtime\":[" \
	"{\"id\":\"no-secret\",\"file\":{\"prefix\":\"~/secret/\",\"ops\":[\"read\",\"write\"]}," \
	"\"decision\":\"deny\",\"reason\":\"secrets stay put\"}," \
	"{\"id\":\"no-net2\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}," \
	"{\"id\":\"no-ptrace\",\"syscall\":{\"names\":[\"ptrace\"]},\"decision\":\"deny\"}]}"

static void make_files(void)
{
	mkdir(bb_home("secret"), 0755);
	mkdir(bb_home("work"), 0755);
	bb_write(bb_home("secret/key"), "k", 0644);
	bb_write(bb_home("work/notes"), "n", 0644);
}

/* A running process, governed in place: its denied actions are refused,
 * allowed ones work, what cannot be enforced is said per rule, release
 * restores.  A kgate run job ran first, so kgate run's jobs root (slot 0
 * of kg_jobs_root) is set and the LSM hooks' fast path is in play: the
 * governed cgroup lies outside it. */
TEST(governed_cgroup_refuses_denied_actions_of_a_running_process_release_restores)
{
	struct resident r = {};
	char policy[512], trace[64];
	json_t *recs, *start, *extra;
	pid_t d;
	int rc;

	bb_setup(true);
	make_files();
	bb_policy("p.json", GOV_POLICY, policy, sizeof(policy));
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", "/bin/true");
	ASSERT_EQ(rc, 0, "a kgate run job first (sets the jobs root)");
	{
		char *argv[] = { (char *)bb_kgate(), "daemon", NULL };

		d = bb_spawn("daemon.out", argv);
	}
	ASSERT_TRUE(wait_for_output("daemon.out", "ready", 60000), "the daemon started");
	ASSERT_OK(resident_start(&r, "vt-govern"), "a process runs in the test's cgroup");
	ASSERT_EQ(ask(&r, "read %s", bb_home("secret/key")), 0, "before govern: the key is readable");

	rc = BB_KGATE("govern.out", "govern", "--cgroup", r.cg, "--policy", policy);
	ASSERT_EQ(rc, 0, "kgate govern");
	snprintf(trace, sizeof(trace), "%s", govern_trace("govern.out"));
	ASSERT_TRUE(trace[0], "govern printed the trace id");
	{
		char *out = bb_slurp("govern.out");

		ASSERT_HAS_SUBSTR(out, "rule 'no-ptrace' is NOT enforced", "the syscall rule is named");
		free(out);
	}
	ASSERT_TRUE(bb_refused(ask(&r, "read %s", bb_home("secret/key"))),
		    "after govern: the running process cannot read the key");
	ASSERT_EQ(ask(&r, "read %s", bb_home("work/notes")), 0, "an allowed read works");
	ASSERT_TRUE(bb_refused(ask(&r, "connect 127.0.0.2 9")), "a denied connect is refused");
	ASSERT_EQ(ask(&r, "connect 127.0.0.1 9"), ECONNREFUSED, "an allowed connect gets through");

	rc = BB_KGATE("release.out", "release", trace);
	ASSERT_EQ(rc, 0, "kgate release");
	ASSERT_EQ(ask(&r, "read %s", bb_home("secret/key")), 0, "after release: readable again");
	ASSERT_EQ(ask(&r, "connect 127.0.0.2 9"), ECONNREFUSED, "after release: connect allowed");

	bb_sleep_ms(1500);	/* the daemon records the ring's events */
	recs = bb_audit(trace);
	start = find_rec(recs, "job_start", "govern");
	ASSERT_TRUE(start != NULL, "a job_start record (op govern)");
	extra = json_object_get(start, "extra");
	ASSERT_TRUE(json_is_true(json_object_get(json_object_get(extra, "governed"), "in_place")),
		    "job_start says the cgroup is governed in place");
	ASSERT_TRUE(rule_listed(json_object_get(extra, "unenforced_rules"), "no-ptrace"),
		    "job_start names the syscall rule as not enforced");
	ASSERT_FALSE(rule_listed(json_object_get(extra, "unenforced_rules"), "no-secret"),
		     "the file rule is enforced (bpf-lsm)");
	ASSERT_GE(bb_count(recs, "decision", NULL, "deny", "no-secret", "bpf-lsm"), 1,
		  "the refused read is in the trail under the job's trace");
	ASSERT_GE(bb_count(recs, "decision", NULL, "deny", "no-net2", "cgroup-bpf"), 1,
		  "the refused connect is in the trail");
	ASSERT_TRUE(find_rec(recs, "job_exit", "release") != NULL, "a job_exit record (release)");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	resident_stop(&r);
	kill(d, SIGTERM);
	bb_wait(d);
	bb_teardown();
}

/* Ways out of a governed cgroup for a process that was there first: a
 * cgroup.procs descriptor it opened before govern, a fresh open, and
 * clone3(CLONE_INTO_CGROUP) with a directory fd it held.  Each refused;
 * the process stays in its cgroup. */
TEST(a_governed_process_cannot_leave_its_cgroup)
{
	struct resident r = {};
	char policy[512];
	int rc, err;

	bb_setup(true);
	make_files();
	bb_policy("p.json", GOV_POLICY, policy, sizeof(policy));
	ASSERT_OK(resident_start(&r, "vt-govern-esc"), "a process runs in the test's cgroup");
	rc = BB_KGATE("govern.out", "govern", "--cgroup", r.cg, "--policy", policy);
	ASSERT_EQ(rc, 0, "kgate govern");
	err = ask(&r, "escape-held");
	ASSERT_TRUE(bb_refused(err), "write to the root's cgroup.procs, opened before govern");
	err = ask(&r, "escape-open");
	ASSERT_TRUE(bb_refused(err), "open + write of the root's cgroup.procs");
	err = ask(&r, "clone-into");
	ASSERT_TRUE(bb_refused(err), "clone3(CLONE_INTO_CGROUP) into the root cgroup");
	ASSERT_EQ(ask(&r, "where"), 0, "the process is still in its cgroup");
	ASSERT_TRUE(bb_refused(ask(&r, "read %s", bb_home("secret/key"))), "and still governed");
	rc = BB_KGATE("release.out", "release", "--cgroup", r.cg);
	ASSERT_EQ(rc, 0, "kgate release --cgroup");
	/* released: the way out is open again (the hooks were what refused) */
	ASSERT_EQ(ask(&r, "escape-held"), 0, "after release the held descriptor works");
	resident_stop(&r);
	bb_teardown();
}

/* What kgate cannot protect is refused (and the refusal recorded); a
 * delegated ancestor only with --force, which job_start names. */
TEST(govern_refuses_cgroups_it_cannot_protect)
{
	char policy[512], parent[400], inner[512], procs[600];
	char *out;
	json_t *recs, *start, *forced;
	int rc;

	bb_setup(true);
	bb_policy("p.json", GOV_POLICY, policy, sizeof(policy));
	rc = BB_KGATE("root.out", "govern", "--cgroup", "/", "--policy", policy, "--force");
	ASSERT_EQ(rc, 4, "the root cgroup: refused, even with --force");
	out = bb_slurp("root.out");
	ASSERT_HAS_SUBSTR(out, "root cgroup", "says why");
	free(out);

	snprintf(parent, sizeof(parent), "%s/vt-deleg-%d", kg_cgroup2_mount(), (int)getpid());
	snprintf(inner, sizeof(inner), "%s/inner", parent);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", parent);
	ASSERT_OK(mkdir(parent, 0755), "mkdir parent");
	ASSERT_OK(mkdir(inner, 0755), "mkdir inner");
	ASSERT_OK(chown(procs, 1000, 1000), "delegate the parent to uid 1000");
	rc = BB_KGATE("deleg.out", "govern", "--cgroup", inner, "--policy", policy);
	ASSERT_EQ(rc, 4, "a cgroup whose parent is delegated: refused");
	out = bb_slurp("deleg.out");
	ASSERT_HAS_SUBSTR(out, "uid 1000", "names the owner");
	free(out);
	rc = BB_KGATE("force.out", "govern", "--cgroup", inner, "--policy", policy, "--force");
	ASSERT_EQ(rc, 0, "--force governs it");
	rc = BB_KGATE("again.out", "govern", "--cgroup", inner, "--policy", policy, "--force");
	ASSERT_EQ(rc, 4, "a cgroup already governed: refused, even with --force");
	rc = BB_KGATE("parent.out", "govern", "--cgroup", parent, "--policy", policy, "--force");
	ASSERT_EQ(rc, 4, "a cgroup holding a governed one: refused");

	recs = bb_audit_query(NULL, NULL);
	start = find_rec(recs, "job_start", "govern");
	forced = json_object_get(json_object_get(json_object_get(start, "extra"), "governed"),
				 "forced");
	ASSERT_EQ(json_array_size(forced), 1, "job_start names what was forced");
	ASSERT_GE(bb_count(recs, "admission", "govern", "deny", NULL, "controller"), 3,
		  "refusals are recorded");
	json_decref(recs);
	rc = BB_KGATE("release.out", "release", "--cgroup", inner);
	ASSERT_EQ(rc, 0, "release");
	rmdir(inner);
	rmdir(parent);
	bb_teardown();
}

/* A governed cgroup its owner removed is released by the next controller
 * (a kgate run here), with a job_exit record; kgate never removes it. */
TEST(a_removed_governed_cgroup_is_released_by_the_next_controller)
{
	char policy[512], cg[512], trace[64];
	json_t *recs;
	int rc;

	bb_setup(true);
	bb_policy("p.json", GOV_POLICY, policy, sizeof(policy));
	snprintf(cg, sizeof(cg), "%s/vt-gone-%d", kg_cgroup2_mount(), (int)getpid());
	ASSERT_OK(mkdir(cg, 0755), "mkdir");
	rc = BB_KGATE("govern.out", "govern", "--cgroup", cg, "--policy", policy);
	ASSERT_EQ(rc, 0, "govern an empty cgroup");
	snprintf(trace, sizeof(trace), "%s", govern_trace("govern.out"));
	rc = BB_KGATE("run1.out", "run", "--policy", policy, "--", "/bin/true");
	ASSERT_EQ(rc, 0, "a kgate run while it exists");
	ASSERT_TRUE(access(cg, F_OK) == 0, "kgate did not remove a cgroup it did not make");
	ASSERT_OK(rmdir(cg), "its owner removes it");
	rc = BB_KGATE("run2.out", "run", "--policy", policy, "--", "/bin/true");
	ASSERT_EQ(rc, 0, "the next kgate run");
	recs = bb_audit(trace);
	ASSERT_EQ(bb_count(recs, "job_exit", "exit", NULL, NULL, "controller"), 1,
		  "job_exit: its cgroup was removed");
	json_decref(recs);
	rc = BB_KGATE("release.out", "release", trace);
	ASSERT_EQ(rc, 2, "nothing left to release");
	bb_teardown();
}

/* Degraded mode: nothing in the kernel enforces files for a process kgate
 * did not start, and it can leave the cgroup: refused unless forced; what
 * cgroup-BPF enforces still is. */
TEST(degraded_govern_is_refused_unless_forced)
{
	struct resident r = {};
	char policy[512];
	json_t *recs, *start;
	int rc;

	bb_setup(false);
	if (bb_full())
		SKIP("runs in the nobpf boot (degraded mode)");
	bb_policy("p.json", GOV_POLICY, policy, sizeof(policy));
	ASSERT_OK(resident_start(&r, "vt-govern-deg"), "a process runs in the test's cgroup");
	rc = BB_KGATE("govern.out", "govern", "--cgroup", r.cg, "--policy", policy);
	ASSERT_EQ(rc, 4, "refused in degraded mode");
	ASSERT_EQ(ask(&r, "connect 127.0.0.2 9"), ECONNREFUSED, "nothing governed it");
	rc = BB_KGATE("force.out", "govern", "--cgroup", r.cg, "--policy", policy, "--force");
	ASSERT_EQ(rc, 0, "--force governs it");
	ASSERT_TRUE(bb_refused(ask(&r, "connect 127.0.0.2 9")), "cgroup-BPF refuses the connect");
	recs = bb_audit_query(NULL, "job_start");
	start = find_rec(recs, "job_start", "govern");
	ASSERT_TRUE(bb_field_is(json_object_get(start, "extra"), "mode", "degraded"), "mode");
	ASSERT_TRUE(rule_listed(json_object_get(json_object_get(start, "extra"),
						"unenforced_rules"), "no-secret"),
		    "the file rule is named as not enforced");
	json_decref(recs);
	rc = BB_KGATE("release.out", "release", "--cgroup", r.cg);
	ASSERT_EQ(rc, 0, "release");
	resident_stop(&r);
	bb_teardown();
}

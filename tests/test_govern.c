// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_govern.c - `kgate govern` / `kgate release` on the host, which is a
 * degraded machine (no BPF LSM): the checks on a fake cgroup tree, the plan
 * of what a governed cgroup does not get, and the real command: refused
 * without --force; forced, cgroup-BPF refuses a running process's denied
 * connect; release restores.  Full mode is tested in the VM (vt_govern).
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"
#include "job/cgroup.h"
#include "job/govern.h"

/* kgrun.h's helper() is not needed here */
static const char *unused_helper(void) __attribute__((unused));
static const char *unused_helper(void) { return helper(""); }

static char fake[256];

static void fake_tree(void)
{
	char p[512];

	snprintf(fake, sizeof(fake), "/tmp/kgate-test-gov.XXXXXX");
	if (!mkdtemp(fake))
		SKIP("mkdtemp");
	snprintf(p, sizeof(p), "%s/a", fake);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/a/b", fake);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/cgroup.procs", fake);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	snprintf(p, sizeof(p), "%s/a/cgroup.procs", fake);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	snprintf(p, sizeof(p), "%s/a/b/cgroup.procs", fake);
	close(open(p, O_CREAT | O_WRONLY, 0644));
}

static void fake_rm(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", fake);
	if (system(cmd))
		printf("  could not remove %s\n", fake);
}

TEST(depth_counts_levels_below_the_root)
{
	ASSERT_EQ(kg_govern_depth(""), 0, "root");
	ASSERT_EQ(kg_govern_depth("/"), 0, "root with a slash");
	ASSERT_EQ(kg_govern_depth("/a"), 1, "one");
	ASSERT_EQ(kg_govern_depth("/a/b/c"), 3, "three");
	ASSERT_EQ(kg_govern_depth("/a//b/"), 2, "extra slashes");
}

TEST(an_ancestor_writable_by_a_user_is_delegation)
{
	char why[1024], p[512];

	if (getuid() != 0)
		SKIP("needs root (chown)");
	fake_tree();
	ASSERT_FALSE(kg_govern_delegated(fake, "/a/b", why, sizeof(why)), "root-owned 0644 tree");
	/* the cgroup's own cgroup.procs does not let anyone move it out */
	snprintf(p, sizeof(p), "%s/a/b/cgroup.procs", fake);
	ASSERT_OK(chown(p, 1000, 1000), "chown own");
	ASSERT_FALSE(kg_govern_delegated(fake, "/a/b", why, sizeof(why)),
		     "the cgroup itself owned by a user");
	/* its parent's does */
	snprintf(p, sizeof(p), "%s/a/cgroup.procs", fake);
	ASSERT_OK(chown(p, 1000, 1000), "chown parent");
	ASSERT_TRUE(kg_govern_delegated(fake, "/a/b", why, sizeof(why)), "parent delegated");
	ASSERT_HAS_SUBSTR(why, "uid 1000", "names the owner");
	ASSERT_HAS_SUBSTR(why, "/a/cgroup.procs", "names the file");
	ASSERT_OK(chown(p, 0, 0), "back to root");
	/* group- or world-writable at the root of the mount */
	snprintf(p, sizeof(p), "%s/cgroup.procs", fake);
	ASSERT_OK(chmod(p, 0666), "chmod root");
	ASSERT_TRUE(kg_govern_delegated(fake, "/a/b", why, sizeof(why)), "root world-writable");
	ASSERT_HAS_SUBSTR(why, "everyone", "says who");
	fake_rm();
}

static bool listed(json_t *arr, const char *key, const char *value)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		const char *v = json_string_value(json_object_get(o, key));

		if (v && !strcmp(v, value))
			return true;
	}
	return false;
}

TEST(the_plan_names_what_a_running_process_cannot_be_given)
{
	static const char pol[] =
		"{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":["
		"{\"id\":\"f\",\"file\":{\"path\":\"/etc/shadow\",\"ops\":[\"read\"]},\"decision\":\"deny\"},"
		"{\"id\":\"n\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[443]},\"decision\":\"require_approval\"},"
		"{\"id\":\"s\",\"syscall\":{\"names\":[\"ptrace\"]},\"decision\":\"deny\"}]}";
	struct kg_policy_error err;
	struct kg_policy_doc *doc = kg_policy_load_buffer(pol, strlen(pol), "t", "/root", &err);
	json_t *un = json_array(), *na = json_array();

	ASSERT_TRUE(doc != NULL, "policy parses");
	kg_govern_plan(doc, true, un, na);
	ASSERT_TRUE(listed(un, "rule", "s"), "full: the syscall rule is not enforced");
	ASSERT_FALSE(listed(un, "rule", "f"), "full: the file rule is");
	ASSERT_TRUE(listed(na, "what", "held calls"), "approval is not held");
	ASSERT_TRUE(listed(na, "what", "syscall baseline"), "no baseline");
	ASSERT_TRUE(listed(na, "what", "no_new_privs"), "no no_new_privs");
	json_array_clear(un);
	json_array_clear(na);
	kg_govern_plan(doc, false, un, na);
	ASSERT_TRUE(listed(un, "rule", "f"), "degraded: the file rule is not enforced");
	ASSERT_TRUE(listed(na, "what", "landlock"), "degraded: no Landlock");
	json_decref(un);
	json_decref(na);
	kg_policy_free(doc);
}

#define NET_POLICY \
	"{\"version\":1,\"name\":\"gov\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[" \
	"{\"id\":\"no-port\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[%d]},\"decision\":\"deny\"}]}"

/* A child placed in a cgroup of the test's making, trying to connect
 * whenever it reads a byte; it answers with the errno. */
struct probe {
	pid_t pid;
	int cmd, res;
};

static int probe_start(struct probe *p, const char *cg, int port)
{
	int cmd[2], res[2];
	char procs[600];

	if (pipe(cmd) || pipe(res))
		return -1;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	p->pid = fork();
	if (p->pid == 0) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
		int fd = open(procs, O_WRONLY);
		char c;

		/* its copies of the parent's ends: else the read below never
		 * sees end of file and probe_stop() waits forever */
		close(cmd[1]);
		close(res[0]);
		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(3);
		close(fd);
		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		while (read(cmd[0], &c, 1) == 1) {
			int s = socket(AF_INET, SOCK_STREAM, 0), e = 0;

			if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
				e = errno;
			close(s);
			if (write(res[1], &e, sizeof(e)) != sizeof(e))
				_exit(4);
		}
		_exit(0);
	}
	close(cmd[0]);
	close(res[1]);
	p->cmd = cmd[1];
	p->res = res[0];
	return 0;
}

static int probe_connect(struct probe *p)
{
	int e = -1;

	if (write(p->cmd, "c", 1) != 1 || read(p->res, &e, sizeof(e)) != sizeof(e))
		return -1;
	return e;
}

static void probe_stop(struct probe *p)
{
	close(p->cmd);
	waitpid(p->pid, NULL, 0);
	close(p->res);
}

TEST(degraded_govern_needs_force_then_cgroup_bpf_refuses_and_release_restores)
{
	char policy[512], json[1024], cg[512], trace[64] = "";
	char *argv_gov[] = { (char *)kgate_bin(), "govern", "--cgroup", cg, "--policy", policy, NULL };
	char *argv_force[] = { (char *)kgate_bin(), "govern", "--cgroup", cg, "--policy", policy,
			       "--force", NULL };
	char *argv_rel[] = { (char *)kgate_bin(), "release", trace, NULL };
	struct probe p = { .pid = -1, .cmd = -1, .res = -1 };
	int lfd, port, rc;
	char *out, *t;

	setup();
	if (!kg_cgroup2_mount())
		SKIP("no cgroup2");
	lfd = listen_tcp(AF_INET, "127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(json, sizeof(json), NET_POLICY, port);
	write_policy(json, policy, sizeof(policy));
	snprintf(cg, sizeof(cg), "%s/kgate-test-gov-%d", kg_cgroup2_mount(), (int)getpid());
	ASSERT_OK(mkdir(cg, 0755), "the test's cgroup");
	ASSERT_OK(probe_start(&p, cg, port), "a process in it");
	ASSERT_EQ(probe_connect(&p), 0, "before govern: it connects");

	rc = run_capture(argv_gov, &out);
	ASSERT_EQ(rc, 4, "degraded: refused without --force");
	ASSERT_HAS_SUBSTR(out, "degraded mode", "says why");
	ASSERT_EQ(probe_connect(&p), 0, "still ungoverned");

	rc = run_capture(argv_force, &out);
	ASSERT_EQ(rc, 0, "--force governs it");
	ASSERT_HAS_SUBSTR(out, "FORCED", "says it was forced");
	t = strstr(out, " as job ");
	if (t)
		sscanf(t + 8, "%63[a-z0-9-]", trace);
	ASSERT_TRUE(trace[0], "trace printed");
	ASSERT_EQ(probe_connect(&p), EPERM, "cgroup-BPF refuses the running process's connect");

	rc = run_capture(argv_rel, &out);
	ASSERT_EQ(rc, 0, "release");
	ASSERT_EQ(probe_connect(&p), 0, "after release it connects again");
	rc = run_capture(argv_rel, &out);
	ASSERT_EQ(rc, 2, "released twice: no such job");
	probe_stop(&p);
	close(lfd);
	rmdir(cg);
	teardown();
}

TEST(govern_refuses_the_root_and_bad_paths)
{
	char policy[512];
	char *argv_root[] = { (char *)kgate_bin(), "govern", "--cgroup", "/", "--policy", policy,
			      "--force", NULL };
	char *argv_none[] = { (char *)kgate_bin(), "govern", "--cgroup", "/no/such/cgroup-x",
			      "--policy", policy, NULL };
	char *argv_tmp[] = { (char *)kgate_bin(), "govern", "--cgroup", "/tmp", "--policy", policy,
			     NULL };
	char *out;

	setup();
	write_policy("{\"version\":1,\"name\":\"p\",\"default\":\"allow\",\"runtime\":[]}", policy,
		     sizeof(policy));
	ASSERT_EQ(run_capture(argv_root, &out), 4, "the root cgroup, even forced");
	ASSERT_HAS_SUBSTR(out, "root cgroup", "says why");
	ASSERT_EQ(run_capture(argv_none, &out), 1, "no such cgroup");
	ASSERT_HAS_SUBSTR(out, "no such cgroup", "says so");
	ASSERT_EQ(run_capture(argv_tmp, &out), 1, "a directory that is not a cgroup");
	teardown();
}

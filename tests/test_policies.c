// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_policies.c - each shipped policy, enforced on this host (degraded
 * mode: Landlock, cgroup-BPF, seccomp), with the decisions its README
 * promises.  The agent is a shell script run by `kgate run` with HOME set to
 * a home directory the test populated (keys, credentials, workspace, repo).
 */
#include <time.h>

#include "testlib.h"
#include "kgrun.h"

static char home[512];

static const char *audit_query_text(const char *arg)
{
	char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", (char *)arg, NULL };
	char *out;

	run_capture(argv, &out);
	return out;
}

static void make_file(const char *rel, const char *text)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", home, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		SKIP("cannot create %s", path);
	close(fd);
}

static void make_dir(const char *rel)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", home, rel);
	mkdir(path, 0700);
}

/* A home with something to protect in it. */
static void setup_home(void)
{
	setup();
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	mkdir(home, 0755);
	make_dir(".ssh");
	make_file(".ssh/id_ed25519", "PRIVATE KEY\n");
	make_dir(".aws");
	make_file(".aws/credentials", "aws_secret_access_key=x\n");
	make_dir("workspace");
	make_file("workspace/notes.txt", "notes\n");
	make_dir("src");
	make_file("src/main.c", "int main(void) { return 0; }\n");
	make_file(".bashrc", "# login\n");
	make_dir(".config");
	make_dir(".config/autostart");
	setenv("HOME", home, 1);
}

static const char *policy_path(const char *name)
{
	static char path[1024];
	const char *src = getenv("KGATE_SRC");

	snprintf(path, sizeof(path), "%s/policies/%s.json", src ? src : ".", name);
	return path;
}

/* One probe per line: "NAME ok" or "NAME refused". */
#define PROBE(name, cmd) "if " cmd " >/dev/null 2>&1; then echo '" name " ok'; else echo '" name " refused'; fi; "

/* The login-file probes of a shipped policy: the user's login files readable,
 * neither changed nor added to (they run at the next login, outside any job). */
#define STARTUP_PROBES \
	PROBE("read-bashrc", "cat ~/.bashrc") \
	PROBE("write-bashrc", "sh -c 'echo evil >> ~/.bashrc'") \
	PROBE("create-autostart", "sh -c 'echo x > ~/.config/autostart/evil.desktop'")

static void check_login_files(const char *out)
{
	char *rc, path[600];

	ASSERT_HAS_SUBSTR(out, "read-bashrc ok", "~/.bashrc readable");
	ASSERT_HAS_SUBSTR(out, "write-bashrc refused", "~/.bashrc not writable (runs at login)");
	ASSERT_HAS_SUBSTR(out, "create-autostart refused", "no new autostart entry");
	snprintf(path, sizeof(path), "%s/.bashrc", home);
	rc = kg_read_file(path, 4096, NULL);
	ASSERT_TRUE(rc && !strstr(rc, "evil"), "~/.bashrc unchanged");
	free(rc);
	snprintf(path, sizeof(path), "%s/.config/autostart/evil.desktop", home);
	ASSERT_TRUE(access(path, F_OK) != 0, "no autostart file made");
}

static int run_policy(const char *policy, const char *topic, const char *script, char **out)
{
	char *argv[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy, "--topic",
			 (char *)topic, "--", "/bin/sh", "-c", (char *)script, NULL };

	return run_capture(argv, out);
}

TEST(coding_agent_policy)
{
	char script[4096], *out;
	int port, lfd;

	setup_home();
	lfd = listen_tcp(AF_INET, "127.0.0.1", &port);
	snprintf(script, sizeof(script),
		 PROBE("read-workspace", "cat ~/workspace/notes.txt")
		 PROBE("write-workspace", "sh -c 'echo x >> ~/workspace/notes.txt'")
		 PROBE("read-repo", "cat ~/src/main.c")
		 PROBE("write-repo", "sh -c 'echo x >> ~/src/main.c'")
		 PROBE("read-ssh-key", "cat ~/.ssh/id_ed25519")
		 PROBE("read-aws", "cat ~/.aws/credentials")
		 PROBE("read-shadow", "cat /etc/shadow")
		 STARTUP_PROBES
		 PROBE("loopback", "%s connect 127.0.0.1 %d")
		 PROBE("egress", "%s connect 198.51.100.7 80")
		 PROBE("packet-socket", "%s socket 17 3 0")
		 "true", helper("net_probe"), port, helper("net_probe"), helper("net_probe"));
	ASSERT_EQ(run_policy(policy_path("coding-agent"), "job.agent.run", script, &out), 0, "job ran");
	ASSERT_HAS_SUBSTR(out, "read-workspace ok", "workspace readable");
	ASSERT_HAS_SUBSTR(out, "write-workspace ok", "workspace writable");
	ASSERT_HAS_SUBSTR(out, "read-repo ok", "repository readable");
	ASSERT_HAS_SUBSTR(out, "write-repo refused", "repository read-only");
	ASSERT_HAS_SUBSTR(out, "read-ssh-key refused", "~/.ssh refused");
	ASSERT_HAS_SUBSTR(out, "read-aws refused", "~/.aws refused");
	ASSERT_HAS_SUBSTR(out, "read-shadow refused", "/etc/shadow refused");
	check_login_files(out);
	ASSERT_HAS_SUBSTR(out, "loopback ok", "loopback allowed");
	ASSERT_HAS_SUBSTR(out, "egress refused", "egress outside the listed networks refused");
	ASSERT_HAS_SUBSTR(out, "packet-socket refused", "raw/packet sockets refused");
	close(lfd);
	teardown();
}

TEST(coding_agent_admission)
{
	char *out;
	char *argv[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy_path("coding-agent"),
			 "--topic", "job.agent.exec.build", "--risk", "destructive", "--", "/bin/true", NULL };
	char *argv2[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy_path("coding-agent"),
			  "--topic", "job.other", "--", "/bin/true", NULL };

	setup_home();
	ASSERT_EQ(run_capture(argv, &out), 4, "destructive launch denied");
	ASSERT_HAS_SUBSTR(out, "deny-destructive", "by its rule");
	ASSERT_EQ(run_capture(argv2, &out), 4, "topic outside job.agent.* falls to default deny");
	teardown();
}

TEST(default_policy)
{
	char script[4096], *out;
	int port, lfd;

	setup_home();
	lfd = listen_tcp(AF_INET, "127.0.0.1", &port);
	snprintf(script, sizeof(script),
		 PROBE("read-workspace", "cat ~/workspace/notes.txt")
		 PROBE("read-ssh-key", "cat ~/.ssh/id_ed25519")
		 PROBE("read-aws", "cat ~/.aws/credentials")
		 PROBE("read-shadow", "cat /etc/shadow")
		 STARTUP_PROBES
		 PROBE("network", "%s connect 127.0.0.1 %d")
		 PROBE("raw-socket", "%s socket 2 3 1")
		 "true", helper("net_probe"), port, helper("net_probe"));
	ASSERT_EQ(run_policy(policy_path("default"), "job.any", script, &out), 0, "job ran");
	ASSERT_HAS_SUBSTR(out, "read-workspace ok", "ordinary files readable");
	ASSERT_HAS_SUBSTR(out, "read-ssh-key refused", "~/.ssh refused");
	ASSERT_HAS_SUBSTR(out, "read-aws refused", "~/.aws refused");
	ASSERT_HAS_SUBSTR(out, "read-shadow refused", "/etc/shadow refused");
	check_login_files(out);
	ASSERT_HAS_SUBSTR(out, "network refused", "no network by default");
	ASSERT_HAS_SUBSTR(out, "raw-socket refused", "no raw sockets");
	close(lfd);
	teardown();
}

TEST(mcp_server_policy)
{
	char script[4096], copy[600], *out;
	int port, lfd;

	setup_home();
	lfd = listen_tcp(AF_INET, "127.0.0.1", &port);
	snprintf(copy, sizeof(copy), "%s/mytool", home);
	{
		char *cp[] = { "/bin/cp", "/bin/true", copy, NULL };

		ASSERT_EQ(run_capture(cp, &out), 0, "copy a binary outside the allowed exec paths");
	}
	snprintf(script, sizeof(script),
		 PROBE("system-binary", "/usr/bin/true")
		 PROBE("copied-binary", "%s")
		 PROBE("network", "%s connect 127.0.0.1 %d")
		 "true", copy, helper("net_probe"), port);
	/* the tool-call topic is throttled at admission; a service launch is allowed */
	ASSERT_EQ(run_policy(policy_path("mcp-server"), "job.mcp.tool.search", script, &out), 0,
		  "a tool call runs");
	ASSERT_HAS_SUBSTR(out, "system-binary ok", "binaries under /usr/bin run");
	ASSERT_HAS_SUBSTR(out, "copied-binary refused", "exec default deny: a copy elsewhere is refused");
	ASSERT_HAS_SUBSTR(out, "network refused", "no network but the upstream API");
	close(lfd);
	teardown();
}

/* The mechanism behind mcp-server's "tool-calls" rule, at a rate a test can
 * outrun: burst 3, one launch per second. */
TEST(admission_throttle_refuses_launches_beyond_the_rate)
{
	char policy[512], *out;
	char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy,
			 "--topic", "job.mcp.tool.search", "--", "/usr/bin/true", NULL };
	struct timespec a, b;
	int i, refused = 0, ran = 0;
	double secs;

	setup_home();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"deny\",\"admission\":["
		     "{\"id\":\"tool-calls\",\"match\":{\"topics\":[\"job.mcp.tool.*\"]},"
		     "\"decision\":\"throttle\",\"throttle\":{\"rate_per_sec\":1,\"burst\":3}}],"
		     "\"runtime\":[]}", policy, sizeof(policy));
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < 10; i++) {
		int rc = run_capture(argv, &out);

		if (rc == 4 && strstr(out, "launch refused by rule tool-calls"))
			refused++;
		else if (rc == 0)
			ran++;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("  %d ran, %d refused in %.1f s\n", ran, refused, secs);
	ASSERT_GE(ran, 3, "the burst runs");
	ASSERT_TRUE(ran <= 3 + (int)secs + 1, "no more than burst + rate x time");
	ASSERT_EQ(ran + refused, 10, "every launch either ran or was refused by the rule");
	ASSERT_HAS_SUBSTR(audit_query_text("--decision=throttle"), "tool-calls", "refusals audited");
	teardown();
}

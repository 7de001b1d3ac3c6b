// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_run.c - `kgate run` end to end on this host.
 *
 * The host has no usable BPF LSM, so these tests exercise what runs here for
 * real: admission, the cgroup-BPF network programs (connect4/6, sendmsg4/6,
 * sock_create), Landlock and seccomp in degraded mode, exit status
 * pass-through, max runtime, and the audit records of each decision.
 * Each test uses its own pin dir, state dir and audit dir (mkdtemp).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <bpf/bpf.h>
#include <jansson.h>

#include "testlib.h"
#include "kgrun.h"
#include "kernel/landlock.h"
#include "kernel/push.h"
#include "job/registry.h"

static const char *audit_query(const char *extra_arg)
{
	char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", (char *)extra_arg, NULL };
	char *out;

	run_capture(argv, &out);
	return out;
}

#define NET_POLICY(port) \
	"{\"version\":1,\"name\":\"net-test\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"deny\"}," \
	"\"runtime\":[" \
	"{\"id\":\"api\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[" port "],\"proto\":\"tcp\"},\"decision\":\"allow\"}," \
	"{\"id\":\"dns\",\"net\":{\"cidr\":\"127.0.0.53/32\",\"ports\":[53],\"proto\":\"udp\"},\"decision\":\"allow\"}," \
	"{\"id\":\"lo6\",\"net\":{\"cidr\":\"::1/128\"},\"decision\":\"allow\"}," \
	"{\"id\":\"no-loopback\",\"net\":{\"cidr\":\"127.0.0.0/8\"},\"decision\":\"deny\",\"reason\":\"test\"}," \
	"{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"inet6\",\"unix\"],\"allow_raw\":false},\"decision\":\"deny\"}" \
	"]}"

TEST(net_allowed_connect_works_and_denied_is_refused)
{
	char policy[512], json[2048], portstr[16], *out;
	int port, lfd;

	setup();
	lfd = listen_tcp(AF_INET, "127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(json, sizeof(json), NET_POLICY("%d"), port);
	write_policy(json, policy, sizeof(policy));

	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "127.0.0.1", portstr),
		  0, "allowed connect to 127.0.0.1:port");
	/* same address, another port: falls back to the /8 deny */
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "127.0.0.1", "1"),
		  EPERM, "other port on 127.0.0.1 refused");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "127.0.0.2", portstr),
		  EPERM, "127.0.0.2 refused");
	ASSERT_HAS_SUBSTR(out, "no-loopback", "live decision names the rule");
	/* no rule at all: the net class default (deny) */
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "192.0.2.1", "80"),
		  EPERM, "default deny");
	close(lfd);
	teardown();
}

TEST(net_ipv4_mapped_ipv6_is_treated_as_ipv4)
{
	char policy[512], json[2048], portstr[16], *out;
	int port, lfd;

	setup();
	lfd = listen_tcp(AF_INET6, "::", &port);
	ASSERT_TRUE(lfd >= 0, "dual-stack listener");
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(json, sizeof(json), NET_POLICY("%d"), port);
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "::ffff:127.0.0.2", portstr),
		  EPERM, "::ffff:127.0.0.2 meets the 127.0.0.0/8 deny");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "::ffff:127.0.0.1", portstr),
		  0, "::ffff:127.0.0.1 meets the 127.0.0.1 allow");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "::1", portstr),
		  0, "::1 allowed by its own rule");
	close(lfd);
	teardown();
}

TEST(net_udp_without_connect_and_tcp_fast_open_are_checked)
{
	char policy[512], json[2048], *out;

	setup();
	snprintf(json, sizeof(json), NET_POLICY("%d"), 9);
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "udp-sendto", "127.0.0.2", "53"),
		  EPERM, "UDP sendto without connect refused (sendmsg4)");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "udp-sendto", "::ffff:127.0.0.2", "53"),
		  EPERM, "UDP sendto to a v4-mapped address refused (sendmsg6)");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "udp-sendto", "127.0.0.53", "53"),
		  0, "UDP to the allowed resolver works");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "udp-connect", "127.0.0.2", "53"),
		  EPERM, "connected UDP refused at connect");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "tfo", "127.0.0.2", "80"),
		  EPERM, "TCP Fast Open refused");
	teardown();
}

TEST(net_socket_families_outside_the_allow_list_are_refused)
{
	char policy[512], json[2048], *out;

	setup();
	snprintf(json, sizeof(json), NET_POLICY("%d"), 9);
	write_policy(json, policy, sizeof(policy));
	/* AF_INET SOCK_RAW ICMP, AF_PACKET, AF_NETLINK */
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "socket", "2", "3", "1"),
		  EPERM, "raw socket refused");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "socket", "17", "3", "0"),
		  EPERM, "packet socket refused");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "socket", "16", "3", "0"),
		  EPERM, "netlink socket refused");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "socket", "2", "1", "0"),
		  0, "TCP socket still works");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "socket", "1", "1", "0"),
		  0, "unix socket still works");
	teardown();
}

TEST(net_denials_are_audited_with_rule_and_policy)
{
	char policy[512], json[2048], *out;
	const char *q;

	setup();
	snprintf(json, sizeof(json), NET_POLICY("%d"), 9);
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("net_probe"), "connect", "127.0.0.2", "80"),
		  EPERM, "refused");
	q = audit_query("--decision=deny");
	ASSERT_HAS_SUBSTR(q, "\"rule\":\"no-loopback\"", "audit names the rule");
	ASSERT_HAS_SUBSTR(q, "127.0.0.2:80/tcp", "audit names the target");
	ASSERT_HAS_SUBSTR(q, "cgroup-bpf", "audit names the mechanism");
	ASSERT_HAS_SUBSTR(q, "\"name\":\"net-test\"", "audit names the policy");
	teardown();
}

TEST(ungoverned_processes_are_unaffected_while_a_job_runs)
{
	char policy[512], json[2048];
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(1) };
	int fd, rc;
	pid_t pid;

	setup();
	snprintf(json, sizeof(json), NET_POLICY("%d"), 9);
	write_policy(json, policy, sizeof(policy));
	pid = fork();
	if (pid == 0) {
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy, "--",
				 "/bin/sleep", "3", NULL };
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	for (rc = 0; rc < 150; rc++) {	/* until the job is up and its programs attached */
		struct kg_job_record *jobs = NULL;
		size_t n = 0;

		kg_registry_list(&jobs, &n);
		free(jobs);
		if (n)
			break;
		usleep(100 * 1000);
	}
	ASSERT_TRUE(rc < 150, "the job started");
	inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	rc = connect(fd, (struct sockaddr *)&in, sizeof(in));
	ASSERT_ERRNO(rc, ECONNREFUSED, "outside the job the kernel answers, kgate does not");
	close(fd);
	waitpid(pid, &rc, 0);
	ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "job ran to completion");
	teardown();
}

TEST(exit_status_and_signals_pass_through)
{
	char policy[512], *out;

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		     policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/sh", "-c", "exit 7"), 7, "exit code");
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/sh", "-c", "kill -TERM $$"), 128 + SIGTERM,
		  "signal as 128+N");
	ASSERT_EQ(KGATE_RUN(policy, &out, "/nonexistent/cmd"), 127, "cannot start: 127");
	teardown();
}

/* Generations in kg_policies (a finished job's linger until a sweep). */
static int loaded_generations(void)
{
	char path[512];
	uint32_t cur, next;
	int fd, n = 0;
	bool first = true;

	snprintf(path, sizeof(path), "%s/kg_policies", pindir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		n++;
	}
	close(fd);
	return n;
}

TEST(finished_jobs_generations_are_retired_then_swept)
{
	char policy[512], *out;
	int i, n, most = 0, swept = 0;

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		     policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/true"), 0, "first job");
	ASSERT_EQ(loaded_generations(), 1, "its generation is retired, not yet deleted");
	for (i = 0; i < KG_RETIRED_SWEEP + 2; i++) {
		ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/true"), 0, "a short job");
		n = loaded_generations();
		most = n > most ? n : most;
		swept += n == 0;
	}
	ASSERT_TRUE(most > 1 && most < KG_RETIRED_SWEEP, "at most KG_RETIRED_SWEEP - 1 linger");
	ASSERT_EQ(swept, 1, "the exit that found enough retired deleted them all");
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/sleep", "1"), 0, "a job that runs on");
	ASSERT_EQ(loaded_generations(), 1, "swept the others in the background: its own is left");
	teardown();
}

TEST(max_runtime_kills_the_whole_job)
{
	char policy[512], *out;
	struct timespec a, b;
	int rc;

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"constraints\":{\"max_runtime_sec\":1},\"runtime\":[]}", policy, sizeof(policy));
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = KGATE_RUN(policy, &out, "/bin/sh", "-c", "sleep 30 & sleep 30 & wait");
	clock_gettime(CLOCK_MONOTONIC, &b);
	ASSERT_EQ(rc, 128 + SIGKILL, "killed at max runtime");
	ASSERT_TRUE(b.tv_sec - a.tv_sec < 20, "well before the 30 s sleeps");
	ASSERT_HAS_SUBSTR(out, "max runtime", "says why");
	teardown();
}

TEST(invalid_policy_is_rejected_and_nothing_runs)
{
	char policy[512], marker[512], *out;
	struct stat st;

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"runtime\":[{\"id\":\"x\",\"net\":"
		     "{\"cidr\":\"10.0.0.0/33\"},\"decision\":\"deny\"}]}", policy, sizeof(policy));
	snprintf(marker, sizeof(marker), "%s/ran", tmpdir);
	ASSERT_EQ(KGATE_RUN(policy, &out, "/usr/bin/touch", marker), 3, "exit 3: invalid policy");
	ASSERT_HAS_SUBSTR(out, "policy.json:1:", "names file and line");
	ASSERT_HAS_SUBSTR(out, "'x'", "names the rule");
	ASSERT_TRUE(stat(marker, &st) != 0, "the command never ran");
	teardown();
}

TEST(admission_deny_refuses_the_launch)
{
	char policy[512], marker[512], *out;
	struct stat st;
	char *argv[16];

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"admission\":["
		     "{\"id\":\"no-destructive\",\"match\":{\"risk_tags\":[\"destructive\"]},"
		     "\"decision\":\"deny\",\"reason\":\"never\"}],\"runtime\":[]}", policy, sizeof(policy));
	snprintf(marker, sizeof(marker), "%s/ran", tmpdir);
	argv[0] = (char *)kgate_bin(); argv[1] = "run"; argv[2] = "--policy"; argv[3] = policy;
	argv[4] = "--risk"; argv[5] = "destructive"; argv[6] = "--"; argv[7] = "/usr/bin/touch";
	argv[8] = marker; argv[9] = NULL;
	ASSERT_EQ(run_capture(argv, &out), 4, "exit 4: admission denied");
	ASSERT_HAS_SUBSTR(out, "no-destructive", "names the rule");
	ASSERT_TRUE(stat(marker, &st) != 0, "the command never ran");
	ASSERT_HAS_SUBSTR(audit_query("--type=admission"), "\"decision\":\"deny\"", "audited");
	teardown();
}

TEST(admission_labels_decide_like_risk_tags)
{
	char policy[512], marker[512], *out;
	struct stat st;

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"admission\":["
		     "{\"id\":\"no-writes\",\"match\":{\"labels\":{\"mcp.action\":[\"write*\",\"delete\"]}},"
		     "\"decision\":\"deny\",\"reason\":\"read-only\"}],\"runtime\":[]}",
		     policy, sizeof(policy));
	snprintf(marker, sizeof(marker), "%s/ran", tmpdir);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--label",
				 "mcp.action=writeback", "--label", "mcp.tool=fs", "--",
				 "/usr/bin/touch", marker, NULL };

		ASSERT_EQ(run_capture(argv, &out), 4, "a label the rule globs: exit 4");
		ASSERT_HAS_SUBSTR(out, "no-writes", "names the rule");
		ASSERT_TRUE(stat(marker, &st) != 0, "the command never ran");
	}
	ASSERT_HAS_SUBSTR(audit_query("--type=admission"), "\"mcp.action\":\"writeback\"",
			  "the admission record has the labels");
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--label",
				 "mcp.action=read", "--", "/usr/bin/touch", marker, NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "another value: allowed");
		ASSERT_TRUE(stat(marker, &st) == 0, "the command ran");
	}
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--label",
				 "mcp.action", "--", "/bin/true", NULL };

		ASSERT_EQ(run_capture(argv, &out), 2, "--label without '=': usage error");
		ASSERT_HAS_SUBSTR(out, "KEY=VALUE", "says the form");
	}
	teardown();
}

TEST(require_full_refuses_on_a_kernel_without_bpf_lsm)
{
	char policy[512], *out;
	char *argv[] = { (char *)kgate_bin(), "run", "--require", "full", "--policy", policy,
			 "--", "/bin/true", NULL };

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		     policy, sizeof(policy));
	if (access("/sys/kernel/security/lsm", R_OK) == 0) {
		char *lsm = kg_read_file("/sys/kernel/security/lsm", 4096, NULL);
		bool has_bpf = lsm && strstr(lsm, "bpf");

		free(lsm);
		(void)has_bpf;
	}
	/* this host refuses LSM programs (see test_doctor); degraded = exit 5 */
	ASSERT_EQ(run_capture(argv, &out), 5, "exit 5: full enforcement unavailable");
	ASSERT_HAS_SUBSTR(out, "full enforcement required", "says why");
	teardown();
}

TEST(degraded_landlock_refuses_a_denied_file_and_allows_the_rest)
{
	char policy[512], json[2048], secret[512], ok[512], *out;
	int fd;

	setup();
	snprintf(secret, sizeof(secret), "%s/secret", tmpdir);
	mkdir(secret, 0700);
	snprintf(secret, sizeof(secret), "%s/secret/key", tmpdir);
	fd = open(secret, O_WRONLY | O_CREAT, 0600);
	if (fd < 0 || write(fd, "SECRET-CONTENT\n", 15) != 15)
		SKIP("cannot write the secret");
	close(fd);
	snprintf(ok, sizeof(ok), "%s/open.txt", tmpdir);
	fd = open(ok, O_WRONLY | O_CREAT, 0600);
	close(fd);
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":["
		 "{\"id\":\"no-secret\",\"file\":{\"prefix\":\"%s/secret/\",\"ops\":[\"read\",\"write\"]},"
		 "\"decision\":\"deny\"}]}", tmpdir);
	write_policy(json, policy, sizeof(policy));
	ASSERT_NEQ(KGATE_RUN(policy, &out, "/bin/cat", secret), 0, "denied file refused");
	/* hidden by the job's mount namespace: a root job finds nothing there */
	ASSERT_TRUE(strstr(out, "No such file") || strstr(out, "ermission denied"), "refused");
	ASSERT_TRUE(!strstr(out, "SECRET-CONTENT"), "nothing of it read");
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/cat", ok), 0, "sibling file readable");
	teardown();
}

TEST(degraded_job_cannot_leave_its_cgroup)
{
	char policy[512], script[1024], *out;
	char *cg2 = NULL;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024];

	setup();
	while (f && fgets(line, sizeof(line), f)) {
		char mnt[512], fstype[64];

		/* id parent maj:min root mount opts ... - fstype */
		if (sscanf(line, "%*s %*s %*s %*s %511s %*[^-]- %63s", mnt, fstype) == 2 &&
		    !strcmp(fstype, "cgroup2")) {
			cg2 = strdup(mnt);
			break;
		}
	}
	if (f)
		fclose(f);
	if (!cg2)
		SKIP("no cgroup2 mount");
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		     policy, sizeof(policy));
	/* try the root cgroup, then kgate's parent cgroup; then say where we are */
	snprintf(script, sizeof(script),
		 "echo $$ > %s/cgroup.procs; echo $$ > %s/kgate/cgroup.procs; cat /proc/self/cgroup",
		 cg2, cg2);
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/sh", "-c", script), 0, "job ran");
	ASSERT_HAS_SUBSTR(out, "Read-only file system", "cgroup.procs writes refused");
	ASSERT_HAS_SUBSTR(out, "0::/kgate/job-", "still in its job cgroup");
	free(cg2);
	teardown();
}

TEST(degraded_exec_deny_covers_other_hardlinks_of_the_binary)
{
	char policy[512], json[2048], bin[512], link2[512], *out;

	setup();
	snprintf(bin, sizeof(bin), "%s/tool", tmpdir);
	snprintf(link2, sizeof(link2), "%s/tool-alias", tmpdir);
	{
		char *argv[] = { "/bin/cp", "/bin/true", bin, NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "copy a binary");
	}
	ASSERT_OK(link(bin, link2), "hardlink it before the policy exists");
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":["
		 "{\"id\":\"no-tool\",\"exec\":{\"path\":\"%s\"},\"decision\":\"deny\"}]}", bin);
	write_policy(json, policy, sizeof(policy));
	ASSERT_NEQ(KGATE_RUN(policy, &out, bin), 0, "denied binary refused");
	ASSERT_NEQ(KGATE_RUN(policy, &out, link2), 0, "its other name refused too");
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/true"), 0, "other binaries run");
	teardown();
}

TEST(degraded_job_cannot_signal_its_controller)
{
	char policy[512], *out;

	setup();
	if (kg_landlock_abi() < 6)
		SKIP("Landlock signal scoping needs ABI 6 (this kernel: %d)", kg_landlock_abi());
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		     policy, sizeof(policy));
	/* $PPID is kgate run (the controller); SIGSTOP would freeze enforcement
	 * bookkeeping, SIGKILL would end it */
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/sh", "-c", "kill -STOP $PPID; echo rc=$?"), 0,
		  "job ran");
	ASSERT_HAS_SUBSTR(out, "rc=1", "kill refused");
	ASSERT_HAS_SUBSTR(out, "exited with 0", "the controller carried on and reported the exit");
	teardown();
}

/* Run `kgate approvals <verb> <id of the newest pending request>`. */
static int decide_newest(const char *verb, const char *extra)
{
	char *argv[] = { (char *)kgate_bin(), "approvals", "list", "--json", NULL };
	char id[32] = "", *out, *p;
	int i;

	for (i = 0; i < 150 && !id[0]; i++) {
		usleep(100 * 1000);
		run_capture(argv, &out);
		p = strstr(out, "\"id\"");
		if (p && sscanf(p, "\"id\": \"%31[0-9a-f]\"", id) != 1 &&
		    sscanf(p, "\"id\":\"%31[0-9a-f]\"", id) != 1)
			id[0] = '\0';
	}
	if (!id[0])
		return -1;
	{
		char *dargv[] = { (char *)kgate_bin(), "approvals", (char *)verb, id, (char *)extra, NULL };

		return run_capture(dargv, &out);
	}
}

#define APPROVAL_POLICY \
	"{\"version\":1,\"name\":\"appr\",\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"}," \
	"\"approvals\":{\"timeout_sec\":%d,\"approvers\":{\"uids\":[0]},\"allow_self_approval\":true}," \
	"\"admission\":[{\"id\":\"prod\",\"match\":{\"topics\":[\"job.prod.*\"]},\"decision\":\"require_approval\"}]," \
	"\"runtime\":[{\"id\":\"prod-push\",\"net\":{\"cidr\":\"127.0.0.9/32\",\"ports\":[%d]}," \
	"\"decision\":\"require_approval\"}]}"

static pid_t run_bg(const char *policy, const char *topic, const char *script)
{
	char outpath[512];
	pid_t pid;

	snprintf(outpath, sizeof(outpath), "%s/bg.txt", tmpdir);
	pid = fork();
	if (pid == 0) {
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy, "--topic",
				 (char *)topic, "--", "/bin/bash", "-c", (char *)script, NULL };
		int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	return pid;
}

static int wait_bg(pid_t pid, char **out)
{
	char path[512];
	int st;

	waitpid(pid, &st, 0);
	snprintf(path, sizeof(path), "%s/bg.txt", tmpdir);
	*out = kg_read_file(path, 1 << 20, NULL);
	printf("%s", *out ? *out : "");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(launch_requiring_approval_waits_then_runs_or_is_denied)
{
	char policy[512], json[2048], *out;
	pid_t pid;

	setup();
	snprintf(json, sizeof(json), APPROVAL_POLICY, 30, 9);
	write_policy(json, policy, sizeof(policy));
	pid = run_bg(policy, "job.prod.deploy", "echo LAUNCHED");
	ASSERT_EQ(decide_newest("approve", "--once"), 0, "approve the launch");
	ASSERT_EQ(wait_bg(pid, &out), 0, "job ran after approval");
	ASSERT_HAS_SUBSTR(out, "waiting for a decision", "the wait was visible");
	ASSERT_HAS_SUBSTR(out, "LAUNCHED", "the command ran");
	free(out);
	pid = run_bg(policy, "job.prod.deploy", "echo LAUNCHED");
	ASSERT_EQ(decide_newest("deny", NULL), 0, "deny the launch");
	ASSERT_EQ(wait_bg(pid, &out), 4, "exit 4: denied");
	ASSERT_TRUE(out && !strstr(out, "LAUNCHED"), "the command never ran");
	free(out);
	teardown();
}

TEST(held_connect_is_released_by_approval_and_rechecked_by_the_kernel)
{
	char policy[512], json[2048], script[512], *out;
	int port, lfd;
	pid_t pid;

	setup();
	lfd = listen_tcp(AF_INET, "127.0.0.9", &port);
	ASSERT_TRUE(lfd >= 0, "listener on 127.0.0.9");
	snprintf(json, sizeof(json), APPROVAL_POLICY, 30, port);
	write_policy(json, policy, sizeof(policy));
	/* first connect is held until approved (once); the second needs a new approval
	 * and is denied */
	snprintf(script, sizeof(script),
		 "(exec 3<>/dev/tcp/127.0.0.9/%d) && echo FIRST-OK; "
		 "(exec 3<>/dev/tcp/127.0.0.9/%d) && echo SECOND-OK || echo SECOND-REFUSED", port, port);
	pid = run_bg(policy, "job.dev", script);
	ASSERT_EQ(decide_newest("approve", "--once"), 0, "approve the held connect");
	usleep(500 * 1000);
	ASSERT_EQ(decide_newest("deny", NULL), 0, "deny the second");
	ASSERT_EQ(wait_bg(pid, &out), 0, "job ends");
	ASSERT_HAS_SUBSTR(out, "FIRST-OK", "approved connect reached the listener");
	ASSERT_HAS_SUBSTR(out, "SECOND-REFUSED", "one-shot grant used up; denial refused it");
	ASSERT_HAS_SUBSTR(out, "HELD net_connect", "the hold was visible");
	free(out);
	close(lfd);
	teardown();
}

TEST(only_launchers_may_launch)
{
	char policy[512], *out;

	setup();
	/* root is not a launcher here: only uid 4242 and gid 4242 are */
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"launchers\":{\"uids\":[4242],\"gids\":[4242]},\"runtime\":[]}",
		     policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/true"), 4, "exit 4: not a launcher");
	ASSERT_HAS_SUBSTR(out, "kgate:launchers", "names why");
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"launchers\":{\"uids\":[0]},\"runtime\":[]}", policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/true"), 0, "a listed launcher may launch");
	teardown();
}

TEST(io_uring_is_refused_so_syscall_rules_cannot_be_sidestepped)
{
	char policy[512], *out;

	setup();
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		     policy, sizeof(policy));
	/* outside a job the same probe succeeds (the kernel has io_uring) */
	{
		char *argv[] = { (char *)helper("kg_attack"), "io_uring", NULL };

		if (run_capture(argv, &out) != 0)
			SKIP("io_uring unavailable on this kernel (%s)", out);
	}
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "io_uring"), ENOSYS,
		  "io_uring_setup refused with ENOSYS inside a job");
	teardown();
}

TEST(status_lists_the_running_job_with_its_policy_and_counts)
{
	char policy[512], json[2048], *out;
	char *argv[] = { (char *)kgate_bin(), "status", "--json", NULL };
	pid_t pid;
	int i, found = 0;

	setup();
	snprintf(json, sizeof(json), NET_POLICY("%d"), 9);
	write_policy(json, policy, sizeof(policy));
	pid = fork();
	if (pid == 0) {
		char *rargv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy, "--", "/bin/sh",
				  "-c", "for i in 1 2 3; do " "$NP connect 127.0.0.2 80; done; sleep 4", NULL };
		int devnull = open("/dev/null", O_WRONLY);

		setenv("NP", helper("net_probe"), 1);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execv(rargv[0], rargv);
		_exit(126);
	}
	/* the three are identical: the first recorded, the others folded by
	 * the kernel until the job ends (bpf/kgate.h, kg_fold); status counts
	 * both, apart */
	for (i = 0; i < 40 && !found; i++) {
		json_t *st, *job;

		usleep(250 * 1000);
		run_capture(argv, &out);
		st = json_loads(out, 0, NULL);
		job = json_array_get(json_object_get(st, "jobs"), 0);
		found = json_integer_value(json_object_get(json_object_get(job, "recorded"),
							   "refused")) == 1 &&
			json_integer_value(json_object_get(json_object_get(job, "folded"),
							   "refused")) == 2;
		json_decref(st);
	}
	ASSERT_TRUE(found, "status shows the job's 3 refusals: 1 recorded, 2 folded");
	ASSERT_HAS_SUBSTR(out, "\"name\": \"net-test\"", "and its policy snapshot");
	ASSERT_HAS_SUBSTR(out, "\"state\": \"governed\"", "and that the kernel governs it");
	waitpid(pid, &i, 0);
	run_capture(argv, &out);
	ASSERT_HAS_SUBSTR(out, "\"jobs\": []", "the job is gone from the list when it ends");
	teardown();
}

/* Sum of extra.count over throttle decision records in a JSON-lines query. */
static long throttle_count_sum(const char *q)
{
	const char *p = q;
	long sum = 0;

	while ((p = strstr(p, "\"decision\":\"throttle\""))) {
		const char *eol = strchr(p, '\n'), *c = strstr(p, "\"count\":");

		/* records are one line each; count belongs to this one */
		if (c && (!eol || c < eol))
			sum += strtol(c + 8, NULL, 10);
		p += 10;
	}
	return sum;
}

/* Refusals after the kernel's last once-a-second throttle report are
 * recorded when the job ends: the trail's counts add up to every refusal. */
TEST(throttle_refusals_after_the_last_report_are_recorded)
{
	char policy[512], json[1024], portstr[16], *out;
	const char *q;
	int port, lfd, refused = 0, allowed = 0;
	uint64_t t0, elapsed_s;
	char *p;

	setup();
	lfd = listen_tcp(AF_INET, "127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener");
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"throttle-end\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":["
		 "{\"id\":\"slow\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[%d]},"
		 "\"decision\":\"throttle\",\"throttle\":{\"rate_per_sec\":1,\"burst\":1}}]}", port);
	write_policy(json, policy, sizeof(policy));
	setenv("NP", helper("net_probe"), 1);
	setenv("NP_PORT", portstr, 1);
	/* ten connects, quickly: the burst of one, then refusals; the kernel
	 * reports the first refusal at once and aggregates the rest.  On a
	 * loaded host the ten take longer and the bucket refills (1/s), so
	 * what is asserted is the throttle's bound: at most burst + rate x
	 * the time the job ran were allowed, and at least one was refused */
	t0 = kg_now_mono_ns();
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/sh", "-c",
			    "for i in 1 2 3 4 5 6 7 8 9 10; do $NP connect 127.0.0.1 $NP_PORT; done; "
			    "exit 0"), 0, "the job ran");
	elapsed_s = (kg_now_mono_ns() - t0 + 999999999ull) / 1000000000ull;
	for (p = out; (p = strstr(p, "errno 1 ")); p++)
		refused++;
	for (p = out; (p = strstr(p, "\nok\n")); p++)
		allowed++;
	if (!strncmp(out, "ok\n", 3))
		allowed++;
	ASSERT_EQ(allowed + refused, 10, "every connect reported ok or EPERM");
	ASSERT_GE(refused, 1, "the throttle refused");
	ASSERT_TRUE(allowed <= 1 + (long)elapsed_s,
		    "no more allowed than the burst of one plus one a second of the run");
	printf("  %d allowed, %d refused in at most %llu s\n", allowed, refused,
	       (unsigned long long)elapsed_s);
	q = audit_query("--type=decision");
	ASSERT_EQ(throttle_count_sum(q), refused, "the trail counts every refusal, the last ones too");
	close(lfd);
	teardown();
}

/* Degraded mode: Landlock's grants are bound to the directories that
 * existed when the job started and it refuses a rename that would move the
 * protected subtree's parent, so "mv .git .g0; cp -r .g0 .git" gives no
 * writable .git/hooks here either (full mode: vt_file guards). */
TEST(degraded_renaming_an_ancestor_of_a_protected_subtree_gains_nothing)
{
	char policy[512], json[2048], dir[512], *out;
	int fd;

	setup();
	snprintf(dir, sizeof(dir), "%s/w/.git/hooks", tmpdir);
	ASSERT_OK(kg_mkdir_p(dir, 0755), "w/.git/hooks");
	snprintf(dir, sizeof(dir), "%s/w/.git/hooks/pre-commit", tmpdir);
	fd = open(dir, O_WRONLY | O_CREAT, 0755);
	close(fd);
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":["
		 "{\"id\":\"hooks\",\"file\":{\"prefix\":\"%s/w/.git/hooks/\",\"ops\":[\"write\",\"create\"]},"
		 "\"decision\":\"deny\"}]}", tmpdir);
	write_policy(json, policy, sizeof(policy));
	snprintf(dir, sizeof(dir), "%s/w", tmpdir);
	setenv("W", dir, 1);
	KGATE_RUN(policy, &out, "/bin/sh", "-c",
		  "cd \"$W\"; mv .git .g0; echo mv=$?; cp -r .g0 .git 2>/dev/null; "
		  "echo x >> .git/hooks/pre-commit; echo hook=$?; echo x > .git/hooks/new; echo new=$?");
	ASSERT_HAS_SUBSTR(out, "mv=1", "mv .git .g0 refused");
	ASSERT_HAS_SUBSTR(out, "hook=2", "the hook stays unwritable");
	ASSERT_HAS_SUBSTR(out, "new=2", "nothing can be created in hooks/");
	snprintf(dir, sizeof(dir), "%s/w/.git/hooks/pre-commit", tmpdir);
	ASSERT_OK(access(dir, F_OK), "the hooks are where the policy says");
	teardown();
}

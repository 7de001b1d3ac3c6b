// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_dns.c - egress by name on the host (degraded mode: cgroup-BPF and the
 * job's resolver need no BPF LSM).
 *
 * A real DNS server is the upstream: dnsmasq, started by each test on a
 * loopback address of its own (127.X.0.54, port 53) with a hosts file of
 * test names that resolve to loopback addresses (127.X.1.*), where the test
 * listens.  Never the machine's resolver, never the internet.  The same
 * dnsmasq is "another resolver" the job tries to ask directly.
 *
 * Every attack is attempted inside a governed job and must be refused; the
 * allowed path must work.  net_probe exits with the errno it got, so a
 * refusal by kgate (EPERM, 1) is told apart from nothing listening
 * (ECONNREFUSED, 111).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "kgrun.h"

static int net_x;			/* the second byte of this run's 127.X.*.* */
static char dns_addr[32];		/* 127.X.0.54 */
static char addr_api[32], addr_denied[32], addr_other[32];
static pid_t dnsmasq_pid = -1;
static int lfd_api = -1, lfd_denied = -1, port_api, port_denied;

static bool have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static void stop_dnsmasq(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
	}
	dnsmasq_pid = -1;
	if (lfd_api >= 0)
		close(lfd_api);
	if (lfd_denied >= 0)
		close(lfd_denied);
	lfd_api = lfd_denied = -1;
}

/* dnsmasq answers (TTL 1 s):
 *   api.allowed.test, API.allowed.test  -> 127.X.1.10 (a TCP listener)
 *   denied.test                         -> 127.X.1.11 (a TCP listener)
 *   other.allowed.test                  -> 127.X.1.12
 *   alias.allowed.test                  CNAME denied.test */
static void start_dnsmasq(void)
{
	char hosts[512], line[600], log[600], listen[64], cname[128];
	FILE *f;
	int i;

	if (!have("dnsmasq") || !have("drill"))
		SKIP("dnsmasq or drill missing (scripts/install-deps.sh installs dnsmasq-base, "
		     "ldnsutils)");
	net_x = 100 + getpid() % 100;
	snprintf(dns_addr, sizeof(dns_addr), "127.%d.0.54", net_x);
	snprintf(addr_api, sizeof(addr_api), "127.%d.1.10", net_x);
	snprintf(addr_denied, sizeof(addr_denied), "127.%d.1.11", net_x);
	snprintf(addr_other, sizeof(addr_other), "127.%d.1.12", net_x);
	snprintf(hosts, sizeof(hosts), "%s/hosts", tmpdir);
	f = fopen(hosts, "w");
	if (!f)
		SKIP("cannot write the hosts file");
	fprintf(f, "%s api.allowed.test\n%s denied.test\n%s other.allowed.test\n",
		addr_api, addr_denied, addr_other);
	fclose(f);
	lfd_api = listen_tcp(AF_INET, addr_api, &port_api);
	lfd_denied = listen_tcp(AF_INET, addr_denied, &port_denied);
	if (lfd_api < 0 || lfd_denied < 0)
		SKIP("cannot listen on 127.%d.1.*", net_x);
	snprintf(log, sizeof(log), "--log-facility=%s/dnsmasq.log", tmpdir);
	snprintf(listen, sizeof(listen), "--listen-address=%s", dns_addr);
	snprintf(line, sizeof(line), "--addn-hosts=%s", hosts);
	snprintf(cname, sizeof(cname), "--cname=alias.allowed.test,denied.test");
	dnsmasq_pid = fork();
	if (dnsmasq_pid == 0) {
		char *argv[] = { "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
				 "--no-resolv", "--no-hosts", line, listen, "--bind-interfaces",
				 "--port=53", cname, "--local-ttl=1", "--pid-file=", "--user=root",
				 "--log-queries", log, NULL };

		execvp("dnsmasq", argv);
		_exit(127);
	}
	/* ready when it answers */
	for (i = 0; i < 100; i++) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "drill @%s api.allowed.test 2>/dev/null | "
			 "grep -q '%s'", dns_addr, addr_api);
		if (system(cmd) == 0)
			return;
		usleep(50 * 1000);
	}
	stop_dnsmasq();
	SKIP("dnsmasq did not come up on %s:53", dns_addr);
}

static void dns_setup(void)
{
	setup();
	start_dnsmasq();
	setenv("KGATE_DNS_UPSTREAM", dns_addr, 1);
}

static void dns_teardown(void)
{
	stop_dnsmasq();
	unsetenv("KGATE_DNS_UPSTREAM");
	unsetenv("KGATE_DNS_TTL_FLOOR_SEC");
	teardown();
}

/* a policy: the net default denies; host rules as given */
static void host_policy(const char *rules, char *path, size_t len)
{
	char json[4096];

	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"dns\",\"default\":\"allow\",\n"
		 " \"runtime_defaults\":{\"net\":\"deny\"},\n"
		 " \"runtime\":[\n%s\n]}", rules);
	write_policy(json, path, len);
}

static int run_sh(const char *policy, const char *script, char **out)
{
	return KGATE_RUN(policy, out, "/bin/sh", "-c", (char *)script);
}

/* Does the job's audit trail hold a record with this text? */
static bool audit_has(const char *text)
{
	char path[512], *buf;
	bool found;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/audit/audit.jsonl", tmpdir);
	f = fopen(path, "r");
	if (!f)
		return false;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	found = buf && fread(buf, 1, (size_t)n, f) == (size_t)n && strstr(buf, text);
	free(buf);
	fclose(f);
	return found;
}

/* "NAME=RC" lines the scripts print */
static int rc_of(const char *out, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "%s=", name);
	for (p = out; (p = strstr(p, key)); p++)
		if (p == out || p[-1] == '\n')
			return atoi(p + strlen(key));
	return -1;
}

TEST(allowed_name_works_and_the_bypasses_are_refused)
{
	char policy[512], script[8192], rules[1024], *out;
	const char *probe = helper("net_probe");

	dns_setup();
	snprintf(rules, sizeof(rules),
		 "{\"id\":\"allowed\",\"decision\":\"allow\",\"net\":{\"host\":\"*.allowed.test\","
		 "\"allow_private\":true,\"ports\":[%d],\"proto\":\"tcp\"}},\n"
		 "{\"id\":\"no-denied\",\"decision\":\"deny\",\"net\":{\"host\":\"denied.test\"}}",
		 port_api);
	host_policy(rules, policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 /* an allowed name's address, not resolved yet */
		 "%1$s connect %2$s %3$d >/dev/null; echo before=$?\n"
		 /* another resolver, asked directly over UDP and TCP, for a denied name */
		 "drill @%5$s denied.test | grep -q 'rcode: REFUSED'; echo direct_udp=$?\n"
		 "drill -t @%5$s denied.test | grep -q 'rcode: REFUSED'; echo direct_tcp=$?\n"
		 "drill @%5$s denied.test | grep -q '%6$s'; echo direct_answer=$?\n"
		 /* a name no rule mentions */
		 "drill @%5$s nobody.test | grep -q 'rcode: REFUSED'; echo unknown=$?\n"
		 /* a CNAME from an allowed name to a denied one */
		 "drill @%5$s alias.allowed.test | grep -q 'rcode: REFUSED'; echo cname=$?\n"
		 "%1$s connect %6$s %7$d >/dev/null; echo denied_addr=$?\n"
		 /* a malformed message to port 53: dropped, the resolver survives */
		 "%1$s udp-sendto 192.0.2.1 53 >/dev/null; echo malformed_sent=$?\n"
		 /* the allowed name, upper case with a trailing dot, through libc */
		 "getent hosts API.ALLOWED.TEST. | grep -q '%2$s'; echo resolved=$?\n"
		 "%1$s connect %2$s %3$d >/dev/null; echo after=$?\n"
		 "%1$s connect %2$s %4$d >/dev/null; echo other_port=$?\n"
		 "%1$s connect ::ffff:%2$s %3$d >/dev/null; echo mapped=$?\n"
		 /* DNS over TCP to kgate's resolver works too */
		 "drill -t @%5$s other.allowed.test | grep -q '%8$s'; echo tcp_resolved=$?\n"
		 "exit 0\n",
		 probe, addr_api, port_api, port_api + 1, dns_addr, addr_denied, port_denied,
		 addr_other);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rc_of(out, "before"), EPERM, "an allowed name's address is refused before "
		  "the job resolved it");
	ASSERT_EQ(rc_of(out, "direct_udp"), 0, "another resolver over UDP: kgate's REFUSED");
	ASSERT_EQ(rc_of(out, "direct_tcp"), 0, "another resolver over TCP: kgate's REFUSED");
	ASSERT_EQ(rc_of(out, "direct_answer"), 1, "the other resolver's answer never arrives");
	ASSERT_EQ(rc_of(out, "unknown"), 0, "a name no rule allows is refused");
	ASSERT_EQ(rc_of(out, "cname"), 0, "a CNAME to a denied name is refused");
	ASSERT_EQ(rc_of(out, "denied_addr"), EPERM, "the denied name's address stays refused");
	ASSERT_EQ(rc_of(out, "malformed_sent"), 0, "a malformed datagram can be sent");
	ASSERT_EQ(rc_of(out, "resolved"), 0, "the allowed name resolves (case, trailing dot)");
	ASSERT_EQ(rc_of(out, "after"), 0, "its address connects once resolved");
	ASSERT_EQ(rc_of(out, "other_port"), EPERM, "a port the rule does not list is refused");
	ASSERT_EQ(rc_of(out, "mapped"), 0, "IPv4-mapped IPv6: the same address");
	ASSERT_EQ(rc_of(out, "tcp_resolved"), 0, "DNS over TCP to the resolver");
	ASSERT_TRUE(audit_has("malformed DNS message"), "the malformed message is recorded");
	ASSERT_TRUE(audit_has("CNAME to 'denied.test'"), "the CNAME refusal says why");
	ASSERT_TRUE(audit_has("\"op\":\"dns_resolve\",\"target\":\"api.allowed.test\""),
		    "the resolution is recorded under the name");
	dns_teardown();
}

TEST(a_private_answer_is_refused_without_allow_private)
{
	char policy[512], script[2048], *out;

	dns_setup();
	host_policy("{\"id\":\"allowed\",\"decision\":\"allow\",\"net\":{\"host\":\"*.allowed.test\"}}",
		    policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "drill @%2$s api.allowed.test | grep -q 'rcode: REFUSED'; echo refused=$?\n"
		 "%1$s connect %3$s %4$d >/dev/null; echo connect=$?\n"
		 "exit 0\n", helper("net_probe"), dns_addr, addr_api, port_api);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rc_of(out, "refused"), 0, "an answer pointing at loopback is refused");
	ASSERT_EQ(rc_of(out, "connect"), EPERM, "and its address is not learnt");
	ASSERT_TRUE(audit_has("allow_private"), "the refusal says why");
	dns_teardown();
}

TEST(learnt_addresses_expire_with_the_ttl)
{
	char policy[512], script[2048], *out;

	dns_setup();
	setenv("KGATE_DNS_TTL_FLOOR_SEC", "1", 1);	/* dnsmasq's TTL is 1 s */
	host_policy("{\"id\":\"allowed\",\"decision\":\"allow\",\"net\":{\"host\":\"*.allowed.test\","
		    "\"allow_private\":true}}", policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "drill @%2$s api.allowed.test >/dev/null\n"
		 "%1$s connect %3$s %4$d >/dev/null; echo fresh=$?\n"
		 "sleep 2.5\n"	/* past the 1 s the resolver kept it for */
		 "%1$s connect %3$s %4$d >/dev/null; echo expired=$?\n"
		 "exit 0\n", helper("net_probe"), dns_addr, addr_api, port_api);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rc_of(out, "fresh"), 0, "live right after resolution");
	ASSERT_EQ(rc_of(out, "expired"), EPERM, "refused once the TTL passed");
	dns_teardown();
}

TEST(an_address_learnt_by_one_job_opens_nothing_for_another)
{
	char policy[512], script[2048], flag[512], *out;
	pid_t first;
	int i, status;

	dns_setup();
	host_policy("{\"id\":\"allowed\",\"decision\":\"allow\",\"net\":{\"host\":\"*.allowed.test\","
		    "\"allow_private\":true}}", policy, sizeof(policy));
	snprintf(flag, sizeof(flag), "%s/learnt", tmpdir);
	snprintf(script, sizeof(script),
		 "drill @%s api.allowed.test >/dev/null && touch %s && sleep 5", dns_addr, flag);
	first = fork();
	if (first == 0) {
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy, "--",
				 "/bin/sh", "-c", script, NULL };
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 400 && access(flag, F_OK); i++)
		usleep(25 * 1000);
	ASSERT_OK(access(flag, F_OK), "the first job learnt the address");
	snprintf(script, sizeof(script), "%s connect %s %d >/dev/null; echo other_job=$?; exit 0",
		 helper("net_probe"), addr_api, port_api);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "second job ran");
	ASSERT_EQ(rc_of(out, "other_job"), EPERM, "refused in a job that did not resolve it");
	kill(first, SIGTERM);
	waitpid(first, &status, 0);
	dns_teardown();
}

TEST(a_policy_without_host_rules_leaves_dns_alone)
{
	char policy[512], script[1024], *out;
	char json[1024];

	dns_setup();
	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"cidr\",\"default\":\"allow\",\n"
		 " \"runtime_defaults\":{\"net\":\"deny\"},\n"
		 " \"runtime\":[{\"id\":\"lo\",\"decision\":\"allow\",\"net\":{\"cidr\":\"127.0.0.0/8\"}}]}");
	write_policy(json, policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "drill @%s denied.test | grep -q '%s'; echo answered=$?; exit 0", dns_addr,
		 addr_denied);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rc_of(out, "answered"), 0, "the CIDR rule decides; no resolver in the way");
	ASSERT_TRUE(strstr(out, "kgate's resolver") == NULL, "no resolver started");
	dns_teardown();
}

TEST(a_connect_decided_by_name_names_it_and_a_cidr_deny_wins)
{
	char policy[512], script[2048], rules[1024], *out;

	dns_setup();
	snprintf(rules, sizeof(rules),
		 "{\"id\":\"watched\",\"decision\":\"audit\",\"net\":{\"host\":\"*.allowed.test\","
		 "\"allow_private\":true}},\n"
		 "{\"id\":\"no-other\",\"decision\":\"deny\",\"net\":{\"cidr\":\"%s\"}},\n"
		 "{\"id\":\"lo\",\"decision\":\"allow\",\"net\":{\"cidr\":\"127.%d.1.0/24\"}}",
		 addr_other, net_x);
	host_policy(rules, policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "drill @%2$s api.allowed.test >/dev/null; drill @%2$s other.allowed.test >/dev/null\n"
		 "%1$s connect %3$s %4$d >/dev/null; echo audited=$?\n"
		 "%1$s connect %5$s %4$d >/dev/null; echo cidr_deny=$?\n"
		 "exit 0\n", helper("net_probe"), dns_addr, addr_api, port_api, addr_other);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rc_of(out, "audited"), 0, "audit: the connect proceeds");
	ASSERT_EQ(rc_of(out, "cidr_deny"), EPERM, "a CIDR deny beats a name that allows");
	ASSERT_TRUE(audit_has("\"rule\":\"watched\""), "the name's rule decided, not the /24 allow");
	ASSERT_TRUE(audit_has("\"name\":\"api.allowed.test\""), "the connect record names the host");
	ASSERT_TRUE(audit_has("\"rule\":\"no-other\""), "the deny is recorded with its CIDR rule");
	dns_teardown();
}

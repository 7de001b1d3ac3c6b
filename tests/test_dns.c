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
#include "record/audit.h"

static int net_x;			/* the second byte of this run's 127.X.*.* */
static char dns_addr[32];		/* 127.X.0.54 */
static char addr_api[32], addr_denied[32], addr_other[32];
static pid_t dnsmasq_pid = -1;
static int lfd_api = -1, lfd_denied = -1, port_api, port_denied;
static char long_name[256];		/* 253 characters: 255 bytes on the wire */
static char addr_long[32];
static char addr_shared[32];		/* cdn.allowed.test and doh.resolver.test */
static pid_t doh_pid = -1;		/* a second dnsmasq there, on port 443 */
static int load_names;			/* hN.load.test, N < load_names, in the hosts file */

static bool have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static void stop_dnsmasq(void)
{
	if (doh_pid > 0) {
		kill(doh_pid, SIGTERM);
		waitpid(doh_pid, NULL, 0);
	}
	doh_pid = -1;
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
	snprintf(addr_long, sizeof(addr_long), "127.%d.1.13", net_x);
	snprintf(addr_shared, sizeof(addr_shared), "127.%d.1.20", net_x);
	/* three labels of 63, one of 48, "allowed.test": 253 characters */
	memset(long_name, 'a', 253);
	long_name[63] = long_name[127] = long_name[191] = long_name[240] = '.';
	memcpy(long_name + 241, "allowed.test", 13);
	snprintf(hosts, sizeof(hosts), "%s/hosts", tmpdir);
	f = fopen(hosts, "w");
	if (!f)
		SKIP("cannot write the hosts file");
	fprintf(f, "%s api.allowed.test\n%s denied.test\n%s other.allowed.test\n%s %s\n",
		addr_api, addr_denied, addr_other, addr_long, long_name);
	/* one address, two names: a CDN edge that also serves a DoH resolver */
	fprintf(f, "%s cdn.allowed.test\n%s doh.resolver.test\n", addr_shared, addr_shared);
	/* the shipped coding-agent policy's names, at documentation addresses
	 * (public: no allow_private needed), and one it does not name */
	fprintf(f, "203.0.113.10 registry.npmjs.org\n203.0.113.11 api.anthropic.com\n"
		"203.0.113.12 objects.githubusercontent.com\n203.0.113.13 paste.example\n");
	for (i = 0; i < load_names; i++)
		fprintf(f, "127.%d.%d.%d h%d.load.test\n", net_x, 16 + i / 250, 1 + i % 250, i);
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

struct audit_want {
	const char *op, *target, *name;	/* name: extra.name */
	long n;
};

static int audit_visit(json_t *rec, const char *line, size_t len, void *ctx)
{
	struct audit_want *w = ctx;
	const char *op = json_string_value(json_object_get(rec, "op"));
	const char *target = json_string_value(json_object_get(rec, "target"));
	const char *name = json_string_value(json_object_get(json_object_get(rec, "extra"), "name"));

	(void)line;
	(void)len;
	if ((!w->op || (op && !strcmp(op, w->op))) &&
	    (!w->target || (target && !strcmp(target, w->target))) &&
	    (!w->name || (name && !strcmp(name, w->name))))
		w->n++;
	return 0;
}

/* Records of the trail with this op and target (NULL = any) and these
 * decision, rule (NULL = any). */
static long audit_count(const char *op, const char *target, const char *decision,
			const char *rule)
{
	struct kg_audit_filter f = { .decision = decision, .rule_id = rule };
	struct audit_want w = { .op = op, .target = target };
	struct kg_audit_qstats st = {};

	if (kg_audit_query(NULL, &f, audit_visit, &w, true, &st))
		return -1;
	return w.n;
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
	ASSERT_GE(audit_count("dns_resolve", "denied.test", "deny", "no-denied"), 3,
		  "each query for the denied name is recorded, refused by its rule");
	ASSERT_GE(audit_count("dns_resolve", "nobody.test", "deny", NULL), 1,
		  "the unknown name's refusal is recorded");
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
	{
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", "--target",
				 "api.allowed.test", NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "kgate audit query --target NAME");
		ASSERT_HAS_SUBSTR(out, "\"op\":\"dns_resolve\",\"target\":\"api.allowed.test\"",
				  "finds the resolution");
		ASSERT_HAS_SUBSTR(out, "\"op\":\"net_connect\"", "and the connect made through it");
		ASSERT_TRUE(strstr(out, "other.allowed.test") == NULL, "and nothing of another name");
	}
	dns_teardown();
}

/* "rcode=N" of a dns_probe line the script printed as NAME: rcode=... */
static int rcode_of(const char *out, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "%s: rcode=", name);
	p = strstr(out, key);
	return p ? atoi(p + strlen(key)) : -1;
}

static bool noanswer(const char *out, const char *name)
{
	char key[64];

	snprintf(key, sizeof(key), "%s: noanswer", name);
	return strstr(out, key) != NULL;
}

/* Names at and past the limits, odd spellings, and messages no resolver
 * library would send: each refused or dropped, and the resolver still
 * answers afterwards, over UDP and TCP. */
TEST(long_odd_and_malformed_queries_are_refused_and_the_resolver_survives)
{
	char policy[512], script[8192], rules[1024], too_long[300], label64[128], *out;
	const char *dp;

	dns_setup();
	dp = helper("dns_probe");
	snprintf(rules, sizeof(rules),
		 "{\"id\":\"allowed\",\"decision\":\"allow\",\"net\":{\"host\":\"*.allowed.test\","
		 "\"allow_private\":true}},\n"
		 "{\"id\":\"no-denied\",\"decision\":\"deny\",\"net\":{\"host\":\"denied.test\"}}");
	host_policy(rules, policy, sizeof(policy));
	/* 254 characters: 256 bytes on the wire, one more than DNS allows */
	snprintf(too_long, sizeof(too_long), "b%s", long_name);
	memset(label64, 'c', 64);
	snprintf(label64 + 64, sizeof(label64) - 64, ".allowed.test");
	snprintf(script, sizeof(script),
		 "p() { n=$1; shift; echo \"$n: $(%1$s \"$@\")\"; }\n"
		 /* the longest name DNS allows, under an allowed wildcard: answered */
		 "p long query udp %2$s %3$s\n"
		 "p long_tcp query tcp %2$s %3$s\n"
		 /* upper case and a trailing dot on the wire's text form */
		 "p upper query udp %2$s API.ALLOWED.TEST.\n"
		 "p denied_mixed query udp %2$s DeNiEd.TeSt\n"
		 "p denied_tcp query tcp %2$s DENIED.TEST.\n"
		 /* one byte too long, a label of 64: not DNS, dropped */
		 "p too_long query udp %2$s %4$s\n"
		 "p label64 query udp %2$s %5$s\n"
		 /* garbage, a header alone, a compression pointer to itself, a
		  * response sent as a query, two questions, class CH */
		 "p garbage raw udp %2$s deadbeef\n"
		 "p header raw udp %2$s 4b4701000001000000000000\n"
		 "p ptr_loop raw udp %2$s 4b4701000001000000000000c00c00010001\n"
		 "p garbage_tcp raw tcp %2$s 00ff00ff00ff00ff00ff00ff00ff00ff\n"
		 "p response raw udp %2$s 4b4781800001000000000000036170690761"
		 "6c6c6f77656404746573740000010001\n"
		 "p two_q raw udp %2$s 4b4701000002000000000000036170690761"
		 "6c6c6f77656404746573740000010001036170690761"
		 "6c6c6f77656404746573740000010001\n"
		 "p chaos raw udp %2$s 4b4701000001000000000000036170690761"
		 "6c6c6f77656404746573740000010003\n"
		 /* and the resolver still answers */
		 "p after query udp %2$s api.allowed.test\n"
		 "p after_tcp query tcp %2$s api.allowed.test\n"
		 "exit 0\n", dp, dns_addr, long_name, too_long, label64);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rcode_of(out, "long"), 0, "a 255-byte name is answered");
	ASSERT_HAS_SUBSTR(out, "long: rcode=0 answers=1", "with its address");
	ASSERT_EQ(rcode_of(out, "long_tcp"), 0, "over TCP too");
	ASSERT_HAS_SUBSTR(out, "upper: rcode=0 answers=1", "upper case, trailing dot: answered");
	ASSERT_EQ(rcode_of(out, "denied_mixed"), 5, "a denied name in mixed case: REFUSED");
	ASSERT_EQ(rcode_of(out, "denied_tcp"), 5, "upper case with a dot over TCP: REFUSED");
	ASSERT_TRUE(noanswer(out, "too_long"), "a 256-byte name: dropped");
	ASSERT_TRUE(noanswer(out, "label64"), "a label of 64 bytes: dropped");
	ASSERT_TRUE(noanswer(out, "garbage"), "garbage: dropped");
	ASSERT_TRUE(noanswer(out, "header"), "a header without its question: dropped");
	ASSERT_TRUE(noanswer(out, "ptr_loop"), "a compression loop: dropped");
	ASSERT_TRUE(noanswer(out, "garbage_tcp"), "garbage over TCP: dropped");
	ASSERT_EQ(rcode_of(out, "response"), 1, "a response as a query: FORMERR");
	ASSERT_EQ(rcode_of(out, "two_q"), 1, "two questions: FORMERR");
	ASSERT_EQ(rcode_of(out, "chaos"), 5, "class CH: REFUSED");
	ASSERT_HAS_SUBSTR(out, "after: rcode=0 answers=1", "the resolver survived: UDP");
	ASSERT_HAS_SUBSTR(out, "after_tcp: rcode=0 answers=1", "and TCP");
	ASSERT_GE(audit_count("dns_resolve", long_name, "allow", "allowed"), 2,
		  "the long name is recorded whole");
	ASSERT_GE(audit_count("dns_resolve", "denied.test", "deny", "no-denied"), 2,
		  "the odd spellings are recorded under the denied name and its rule");
	ASSERT_GE(audit_count("dns_resolve", "?", "deny", NULL), 6,
		  "each dropped message is recorded");
	dns_teardown();
}

/* A push that removes a name: its learnt addresses stop opening anything at
 * once (no resolution in between), a connection opened before stays open,
 * and a name the new policy keeps still works. */
TEST(a_push_that_removes_a_name_refuses_its_addresses_at_once)
{
	char p1[512], p2[600], script[4096], rules[1024], json[4096], flag[512], go[512], outp[512];
	char *out;
	pid_t job;
	int i, status, lfd_other, port_other;

	dns_setup();
	lfd_other = listen_tcp(AF_INET, addr_other, &port_other);
	ASSERT_TRUE(lfd_other >= 0, "a listener on other.allowed.test's address");
	snprintf(rules, sizeof(rules),
		 "{\"id\":\"api\",\"decision\":\"allow\",\"net\":{\"host\":\"api.allowed.test\","
		 "\"allow_private\":true}},\n"
		 "{\"id\":\"other\",\"decision\":\"allow\",\"net\":{\"host\":\"other.allowed.test\","
		 "\"allow_private\":true}}");
	host_policy(rules, p1, sizeof(p1));
	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"dns-pushed\",\"default\":\"allow\",\n"
		 " \"runtime_defaults\":{\"net\":\"deny\"},\n"
		 " \"runtime\":[{\"id\":\"other\",\"decision\":\"allow\",\"net\":{\"host\":"
		 "\"other.allowed.test\",\"allow_private\":true}}]}");
	snprintf(p2, sizeof(p2), "%s/pushed.json", tmpdir);
	{
		FILE *f = fopen(p2, "w");

		ASSERT_TRUE(f && fputs(json, f) >= 0 && fclose(f) == 0, "second policy written");
	}
	snprintf(flag, sizeof(flag), "%s/resolved", tmpdir);
	snprintf(go, sizeof(go), "%s/pushed", tmpdir);
	snprintf(outp, sizeof(outp), "%s/job.out", tmpdir);
	snprintf(script, sizeof(script),
		 "drill @%2$s api.allowed.test >/dev/null; drill @%2$s other.allowed.test >/dev/null\n"
		 "%1$s connect %3$s %4$d >/dev/null; echo before=$?\n"
		 /* a connection that stays open across the push */
		 "exec 3<>/dev/tcp/%3$s/%4$d; echo opened=$?\n"
		 "touch %5$s\n"
		 "while [ ! -e %6$s ]; do sleep 0.05; done\n"
		 "%1$s connect %3$s %4$d >/dev/null; echo removed=$?\n"
		 "echo hello >&3; echo kept_open=$?\n"
		 "drill @%2$s api.allowed.test | grep -q 'rcode: REFUSED'; echo re_resolve=$?\n"
		 "drill @%2$s other.allowed.test >/dev/null\n"
		 "%1$s connect %7$s %8$d >/dev/null; echo still=$?\n"
		 "exit 0\n",
		 helper("net_probe"), dns_addr, addr_api, port_api, flag, go, addr_other, port_other);
	job = fork();
	if (job == 0) {
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", p1, "--",
				 "/bin/bash", "-c", script, NULL };
		int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 600 && access(flag, F_OK); i++)
		usleep(25 * 1000);
	ASSERT_OK(access(flag, F_OK), "the job resolved both names");
	{
		char *argv[] = { (char *)kgate_bin(), "policy", "push", p2, NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "kgate policy push");
	}
	close(open(go, O_WRONLY | O_CREAT, 0600));
	waitpid(job, &status, 0);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "job ran");
	out = kg_read_file(outp, 1 << 20, NULL);
	ASSERT_TRUE(out != NULL, "job output");
	if (!out)
		out = strdup("");
	printf("%s", out);
	ASSERT_EQ(rc_of(out, "before"), 0, "the name's address connects before the push");
	ASSERT_EQ(rc_of(out, "opened"), 0, "a connection opened before the push");
	ASSERT_EQ(rc_of(out, "removed"), EPERM, "after the push, refused at once");
	ASSERT_EQ(rc_of(out, "kept_open"), 0, "the open connection is not torn down");
	ASSERT_EQ(rc_of(out, "re_resolve"), 0, "the removed name no longer resolves");
	ASSERT_EQ(rc_of(out, "still"), 0, "a name the new policy keeps still connects");
	ASSERT_GE(audit_count("dns_resolve", "api.allowed.test", "deny", NULL), 1,
		  "the removed name's resolution after the push is refused");
	free(out);
	close(lfd_other);
	dns_teardown();
}

/* No /etc/resolv.conf (or one without a nameserver line) and no
 * --dns-upstream: a policy with host rules is refused at start, naming the
 * fix.  An upstream that does not answer: the job runs, every allowed name
 * gets SERVFAIL, each recorded with the reason. */
TEST(no_upstream_is_refused_at_start_and_a_dead_one_is_said)
{
	char policy[512], script[4096], dead[64], *out;
	const char *variants[] = { "missing", "empty" };
	size_t v;

	dns_setup();
	if (!have("unshare"))
		SKIP("unshare missing (util-linux)");
	unsetenv("KGATE_DNS_UPSTREAM");
	host_policy("{\"id\":\"allowed\",\"decision\":\"allow\",\"net\":{\"host\":\"*.allowed.test\","
		    "\"allow_private\":true}}", policy, sizeof(policy));
	for (v = 0; v < ARRAY_SIZE(variants); v++) {
		/* a private mount namespace whose /etc lacks resolv.conf (a tmpfs
		 * of links to the real /etc) or has an empty one */
		snprintf(script, sizeof(script),
			 "set -e; mkdir -p %1$s/realetc; mount --bind /etc %1$s/realetc\n"
			 "mount -t tmpfs kgate-test /etc\n"
			 "for f in %1$s/realetc/* %1$s/realetc/.[!.]*; do\n"
			 "  [ -e \"$f\" ] || [ -L \"$f\" ] || continue\n"
			 "  n=${f##*/}; [ \"$n\" = resolv.conf ] || ln -s \"$f\" /etc/\"$n\"; done\n"
			 "%2$s\n"
			 "set +e; %3$s run --policy %4$s -- /bin/true; echo \"kgate_rc=$?\"\n",
			 tmpdir, !strcmp(variants[v], "empty") ? ": > /etc/resolv.conf" : ":",
			 kgate_bin(), policy);
		{
			char *argv[] = { "/usr/bin/unshare", "-m", "--propagation", "private",
					 "/bin/sh", "-c", script, NULL };

			ASSERT_EQ(run_capture(argv, &out), 0, variants[v]);
		}
		ASSERT_EQ(rc_of(out, "kgate_rc"), 1, "kgate run refuses to start");
		ASSERT_HAS_SUBSTR(out, "--dns-upstream", "the message names the fix");
		ASSERT_HAS_SUBSTR(out, !strcmp(variants[v], "empty") ? "no nameserver" :
				  "no /etc/resolv.conf", "and says what is missing");
	}
	/* an upstream where nothing answers */
	snprintf(dead, sizeof(dead), "127.%d.0.99", net_x);
	setenv("KGATE_DNS_UPSTREAM", dead, 1);
	snprintf(script, sizeof(script),
		 "DNS_PROBE_WAIT_MS=10000 %s query udp %s api.allowed.test; echo probe=$?; exit 0\n",
		 helper("dns_probe"), dns_addr);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "the job runs");
	ASSERT_HAS_SUBSTR(out, "rcode=2 answers=0", "the job's query gets SERVFAIL");
	ASSERT_HAS_SUBSTR(out, "SERVFAIL", "said on the terminal");
	ASSERT_GE(audit_count("dns_resolve", "api.allowed.test", NULL, "allowed"), 1,
		  "recorded");
	ASSERT_TRUE(audit_has("upstream"), "with the upstream's failure as the reason");
	dns_teardown();
}

/* 10,000 resolutions a second for 10 seconds (the client's pace; a slower
 * resolver slows it, the rate reached is printed, never asserted): every
 * query is answered, every decision is in the audit trail and nothing is
 * said lost, and the controller's memory stays bounded while 4096 names
 * and their addresses are learnt over and over. */
TEST(ten_thousand_resolutions_a_second_lose_nothing_and_memory_stays_bounded)
{
	char policy[512], script[4096], rules[1024], flag[512], half[512], outp[512], status_path[64];
	char asan[512], *out;
	const char *old_asan = getenv("ASAN_OPTIONS");
	long rss_base = -1, rss_first = -1, rss_second = -1, total, warm = 41000, main_n = 100000;
	pid_t job;
	int status;

	load_names = 4096;
	dns_setup();
	/* the sanitizer's quarantine holds freed memory (256 MB by default):
	 * small, so that what stays is what kgate keeps */
	snprintf(asan, sizeof(asan), "%s%squarantine_size_mb=4", old_asan ? old_asan : "",
		 old_asan ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
	snprintf(rules, sizeof(rules),
		 "{\"id\":\"load\",\"decision\":\"allow\",\"net\":{\"host\":\"*.load.test\","
		 "\"allow_private\":true}},\n"
		 "{\"id\":\"no-denied\",\"decision\":\"deny\",\"net\":{\"host\":\"denied.test\"}}");
	host_policy(rules, policy, sizeof(policy));
	snprintf(flag, sizeof(flag), "%s/warm", tmpdir);
	snprintf(half, sizeof(half), "%s/half", tmpdir);
	snprintf(outp, sizeof(outp), "%s/job.out", tmpdir);
	/* nine allowed names (4096 in turn) for one denied */
#define LOAD_NAMES "h%%u.load.test h%%u.load.test h%%u.load.test h%%u.load.test h%%u.load.test " \
		   "h%%u.load.test h%%u.load.test h%%u.load.test h%%u.load.test denied.test"
	snprintf(script, sizeof(script),
		 "%1$s flood %2$s %3$ld 10000 4096 " LOAD_NAMES "; echo warm=$?\n"
		 "touch %4$s\n"
		 "%1$s flood %2$s %5$ld 10000 4096 " LOAD_NAMES "; echo flood=$?\n"
		 "touch %6$s\n"
		 "%1$s flood %2$s %5$ld 10000 4096 " LOAD_NAMES "; echo flood2=$?\n"
		 "exit 0\n", helper("dns_probe"), dns_addr, warm, flag, main_n / 2, half);
	job = fork();
	if (job == 0) {
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", policy, "--",
				 "/bin/sh", "-c", script, NULL };
		int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	snprintf(status_path, sizeof(status_path), "/proc/%d/status", job);
	/* the controller's resident memory once the warm-up asked every name
	 * (41,000 > 10 x 4096) and learnt every address, its peak during the
	 * next 50,000 and during the 50,000 after: what grows with the number of
	 * resolutions grows in the second half as much as in the first, while
	 * the allocators' own warm-up (the sanitizer's size classes) does not */
	while (waitpid(job, &status, WNOHANG) == 0) {
		char *st = kg_read_file(status_path, 1 << 16, NULL);
		const char *p = st ? strstr(st, "VmRSS:") : NULL;
		long kb = p ? atol(p + 6) : -1;

		if (rss_base < 0 && !access(flag, F_OK))
			rss_base = kb;
		else if (rss_base >= 0 && access(half, F_OK) && kb > rss_first)
			rss_first = kb;
		else if (rss_base >= 0 && !access(half, F_OK) && kb > rss_second)
			rss_second = kb;
		free(st);
		usleep(100 * 1000);
	}
	if (old_asan)
		setenv("ASAN_OPTIONS", old_asan, 1);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "job ran");
	out = kg_read_file(outp, 1 << 20, NULL);
	if (!out)
		out = strdup("");
	printf("%s", out);
	printf("  controller RSS: %ld kB after the warm-up, at most %ld kB in the next 50,000, "
	       "at most %ld kB in the 50,000 after\n", rss_base, rss_first, rss_second);
	ASSERT_EQ(rc_of(out, "warm"), 0, "warm-up: nothing lost");
	ASSERT_EQ(rc_of(out, "flood"), 0, "flood: nothing lost");
	ASSERT_EQ(rc_of(out, "flood2"), 0, "flood, second half: nothing lost");
	{
		char want[128];

		snprintf(want, sizeof(want), "sent=%ld answered=%ld noerror=%ld refused=%ld other=0 "
			 "lost=0", main_n / 2, main_n / 2, main_n / 20 * 9, main_n / 20);
		ASSERT_HAS_SUBSTR(out, want, "every query answered: the allowed ones, the denied ones "
				  "refused");
	}
	total = warm + main_n;
	ASSERT_EQ(audit_count("dns_resolve", NULL, NULL, NULL), total,
		  "every resolution is in the audit trail");
	{
		struct kg_audit_filter f = { .type = "events_lost" };
		struct kg_audit_qstats st = {};

		ASSERT_OK(kg_audit_query(NULL, &f, NULL, NULL, true, &st), "query");
		ASSERT_EQ(st.matched, 0, "nothing said lost");
	}
	ASSERT_TRUE(rss_base > 0 && rss_first > 0 && rss_second > 0, "memory sampled");
	/* 8 MB over 50,000 resolutions: anything kept per resolution larger
	 * than 160 bytes (a record, a message, a name) fails this */
	ASSERT_TRUE(rss_second - rss_first < 8 * 1024, "the controller grew by less than 8 MB over "
		    "the last 50,000 resolutions");
	free(out);
	load_names = 0;
	dns_teardown();
}

/* policies/coding-agent.json allows its registries and APIs by name: they
 * resolve (through dnsmasq as the upstream), a name it does not list and a
 * resolver asked directly are refused, and a public address it learnt for
 * nothing stays closed. */
TEST(the_coding_agent_policy_allows_its_registries_by_name)
{
	char script[2048], policy[512], *out;
	const char *src = getenv("KGATE_SRC");

	char dp[512];

	dns_setup();
	snprintf(dp, sizeof(dp), "%s", helper("dns_probe"));	/* helper()'s buffer is shared */
	snprintf(policy, sizeof(policy), "%s/policies/coding-agent.json", src ? src : ".");
	snprintf(script, sizeof(script),
		 "p() { n=$1; shift; echo \"$n: $(%1$s \"$@\")\"; }\n"
		 "p npm query udp %2$s registry.npmjs.org\n"
		 "p anthropic query tcp %2$s API.Anthropic.com.\n"
		 "p raw query udp %2$s objects.githubusercontent.com\n"
		 "p paste query udp %2$s paste.example\n"
		 "p direct query udp 192.0.2.53 paste.example\n"
		 "%3$s connect 203.0.113.13 443 >/dev/null; echo paste_addr=$?\n"
		 "exit 0\n", dp, dns_addr, helper("net_probe"));
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--topic",
				 "job.agent.run", "--", "/bin/sh", "-c", script, NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "job ran");
	}
	ASSERT_HAS_SUBSTR(out, "npm: rcode=0 answers=1", "registry.npmjs.org resolves");
	ASSERT_HAS_SUBSTR(out, "anthropic: rcode=0 answers=1", "api.anthropic.com (odd case, TCP)");
	ASSERT_HAS_SUBSTR(out, "raw: rcode=0 answers=1", "*.githubusercontent.com");
	ASSERT_EQ(rcode_of(out, "paste"), 5, "a name the policy does not list: REFUSED");
	ASSERT_EQ(rcode_of(out, "direct"), 5, "asked of another resolver: still kgate's REFUSED");
	ASSERT_EQ(rc_of(out, "paste_addr"), EPERM, "its address is not open");
	ASSERT_GE(audit_count("dns_resolve", "registry.npmjs.org", "allow", "npm"), 1,
		  "recorded under the policy's rule");
	dns_teardown();
}

/* DoH/DoT and shared CDN addresses (docs/design.md, "What this stops"): a
 * rule allows cdn.allowed.test on 443/tcp, and the CDN's address also
 * serves a resolver on 443 (here a second dnsmasq speaking DNS over TCP on
 * port 443 of that address: to the kernel and to kgate a DoH exchange is
 * the same, a TCP connection to an allowed address and port whose bytes
 * nobody reads).  What the policy lets through: the job reaches that
 * resolver and learns any name's address through it, unseen by kgate's
 * resolver and unrecorded.  What it does not: any address learnt that way
 * stays closed, the resolver's own name is REFUSED, DoT (853/tcp) and
 * QUIC/DNS over 443/udp to the shared address are refused (not in the rule). */
TEST(a_cdn_address_shared_with_a_doh_resolver_lets_names_through_not_addresses)
{
	char policy[512], script[4096], rules[1024], listen[64], hosts[600], a_hosts[700];
	char *out;
	int i;

	dns_setup();
	snprintf(hosts, sizeof(hosts), "%s/hosts", tmpdir);
	snprintf(a_hosts, sizeof(a_hosts), "--addn-hosts=%s", hosts);
	snprintf(listen, sizeof(listen), "--listen-address=%s", addr_shared);
	doh_pid = fork();
	if (doh_pid == 0) {
		char *argv[] = { "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
				 "--no-resolv", "--no-hosts", a_hosts, listen, "--bind-interfaces",
				 "--port=443", "--pid-file=", "--user=root", NULL };

		execvp("dnsmasq", argv);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "drill -t -p 443 @%s denied.test 2>/dev/null | grep -q '%s'",
			 addr_shared, addr_denied);
		if (system(cmd) == 0)
			break;
		usleep(50 * 1000);
	}
	if (!ASSERT_TRUE(i < 100, "the resolver on the shared address answers on 443/tcp"))
		goto out;
	snprintf(rules, sizeof(rules),
		 "{\"id\":\"cdn\",\"decision\":\"allow\",\"net\":{\"host\":\"cdn.allowed.test\","
		 "\"allow_private\":true,\"ports\":[443],\"proto\":\"tcp\"}},\n"
		 "{\"id\":\"no-denied\",\"decision\":\"deny\",\"net\":{\"host\":\"denied.test\"}}");
	host_policy(rules, policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 /* before the CDN's name is resolved, nothing reaches the address */
		 "drill -t -p 443 @%2$s denied.test | grep -q '%3$s'; echo doh_before=$?\n"
		 "drill @%4$s cdn.allowed.test | grep -q '%2$s'; echo cdn=$?\n"
		 /* the resolver's own name is not allowed... */
		 "drill @%4$s doh.resolver.test | grep -q 'rcode: REFUSED'; echo doh_name=$?\n"
		 /* ...but it shares the CDN's address: DNS over 443/tcp to it works,
		  * and answers a name kgate's resolver refuses */
		 "drill -t -p 443 @%2$s denied.test | grep -q '%3$s'; echo doh_denied=$?\n"
		 "drill -t -p 443 @%2$s api.allowed.test | grep -q '%5$s'; echo doh_allowed=$?\n"
		 /* what it answered opens nothing */
		 "%1$s connect %3$s %6$d >/dev/null; echo denied_addr=$?\n"
		 "%1$s connect %5$s %7$d >/dev/null; echo api_addr=$?\n"
		 /* DoT (853/tcp) and 443/udp (QUIC, DNS over UDP) to the same address */
		 "%1$s connect %2$s 853 >/dev/null; echo dot=$?\n"
		 "%1$s udp-sendto %2$s 443 >/dev/null; echo udp443=$?\n"
		 "exit 0\n",
		 helper("net_probe"), addr_shared, addr_denied, dns_addr, addr_api, port_denied,
		 port_api);
	ASSERT_EQ(run_sh(policy, script, &out), 0, "job ran");
	ASSERT_EQ(rc_of(out, "doh_before"), 1, "the shared address is closed before the CDN's "
		  "name is resolved");
	ASSERT_EQ(rc_of(out, "cdn"), 0, "the CDN's name resolves (its address is learnt)");
	ASSERT_EQ(rc_of(out, "doh_name"), 0, "the DoH resolver's own name is REFUSED");
	ASSERT_EQ(rc_of(out, "doh_denied"), 0, "LET THROUGH: the resolver on the shared address "
		  "answers a name the policy denies (the limitation, stated in docs/design.md)");
	ASSERT_EQ(rc_of(out, "doh_allowed"), 0, "and any other name");
	ASSERT_EQ(rc_of(out, "denied_addr"), EPERM, "an address learnt through it stays closed");
	ASSERT_EQ(rc_of(out, "api_addr"), EPERM, "and so does any other name's address learnt "
		  "through it");
	ASSERT_EQ(rc_of(out, "dot"), EPERM, "DoT (853/tcp) to the shared address: not in the rule");
	ASSERT_EQ(rc_of(out, "udp443"), EPERM, "443/udp (QUIC) to it: not in the rule");
	ASSERT_EQ(audit_count("dns_resolve", "denied.test", NULL, NULL), 0,
		  "the names asked of that resolver never reach kgate's: no record");
	ASSERT_GE(audit_count("dns_resolve", "doh.resolver.test", "deny", NULL), 1,
		  "the resolver's own name: refused and recorded");
out:
	dns_teardown();
}

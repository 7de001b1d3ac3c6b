// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_dns.c - egress by name in the VM guest, in both boots: full mode (BPF
 * LSM) and nobpf (degraded).  The connect and send decisions are cgroup-BPF
 * in both modes; this is where "both modes" is shown on a kernel with BPF
 * LSM, not only claimed (tests/test_dns.c does the degraded host).
 *
 * The upstream is a real DNS server: the host's dnsmasq, run through the
 * guest's userland (kg-userland) on a loopback address of its own
 * (127.X.0.54, port 53) with a hosts file of test names, and stopped by
 * the test.  `kgate run --dns-upstream` runs the job in the userland too
 * (drill, getent and the host's sh are there), and the test judges by exit
 * codes the job prints and by the audit trail.  net_probe exits with the
 * errno it got, so kgate's EPERM (1) is told apart from nothing listening.
 *
 * Attempted inside the job, and refused: a connect to an allowed name's
 * address before the job resolved it (IPv4 and IPv4-mapped IPv6), a UDP
 * datagram to an address never resolved, a name the policy denies (REFUSED,
 * recorded with its rule) asked of the upstream directly and of an address
 * no resolver has, over UDP and TCP, and the denied name's address.  Then
 * the allowed path: the name resolves (drill, and libc through whatever
 * resolv.conf names), its address connects (IPv4 and mapped), a UDP name's
 * address takes sendto (sendmsg4/6) and connect+send, and a connect decided
 * through an audited name is recorded with the name, found by
 * `kgate audit query --target`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "testlib.h"
#include "vt_bb.h"
#include "vt_userland.h"

static pid_t dnsmasq_pid = -1;
static char dns_addr[32], a_api[32], a_denied[32], a_udp[32], a_watched[32], a_never[32];

static void stop_dnsmasq(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		bb_wait(dnsmasq_pid);
	}
	dnsmasq_pid = -1;
}

/* dnsmasq in the userland, foreground (kg-userland execs it: the pid is
 * dnsmasq's); ready when it answers.  false + SKIP reason when the userland
 * has no dnsmasq or drill. */
static bool start_dnsmasq(void)
{
	char hosts[600], a_hosts[700], a_listen[64], a_log[700], probe[256];
	int x = 100 + getpid() % 100, i;
	FILE *f;

	snprintf(dns_addr, sizeof(dns_addr), "127.%d.0.54", x);
	snprintf(a_api, sizeof(a_api), "127.%d.1.10", x);
	snprintf(a_denied, sizeof(a_denied), "127.%d.1.11", x);
	snprintf(a_udp, sizeof(a_udp), "127.%d.1.12", x);
	snprintf(a_watched, sizeof(a_watched), "127.%d.1.13", x);
	snprintf(a_never, sizeof(a_never), "127.%d.1.14", x);	/* no name points here */
	snprintf(hosts, sizeof(hosts), "%s", bb_path("hosts"));
	f = fopen(hosts, "w");
	if (!f)
		return false;
	fprintf(f, "%s api.allowed.test\n%s denied.test\n%s udp.allowed.test\n"
		"%s watched.allowed.test\n", a_api, a_denied, a_udp, a_watched);
	fclose(f);
	snprintf(a_hosts, sizeof(a_hosts), "--addn-hosts=%s", hosts);
	snprintf(a_listen, sizeof(a_listen), "--listen-address=%s", dns_addr);
	snprintf(a_log, sizeof(a_log), "--log-facility=%s", bb_path("dnsmasq.log"));
	{
		char *argv[] = { (char *)VT_UL_WRAPPER, "dnsmasq", "--keep-in-foreground",
				 "--conf-file=/dev/null", "--no-resolv", "--no-hosts", a_hosts,
				 a_listen, "--bind-interfaces", "--port=53", "--local-ttl=600",
				 "--pid-file=", "--user=root", "--log-queries", a_log, NULL };

		dnsmasq_pid = bb_spawn("dnsmasq.out", argv);
	}
	if (dnsmasq_pid < 0)
		return false;
	snprintf(probe, sizeof(probe), "drill @%s api.allowed.test | grep -q '%s'", dns_addr, a_api);
	for (i = 0; i < 60; i++) {
		if (vt_ul_sh(bb_path("ready.out"), probe) == 0)
			return true;
		if (waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid) {
			dnsmasq_pid = -1;
			break;
		}
		bb_sleep_ms(250);
	}
	stop_dnsmasq();
	return false;
}

static int listen_on(int type, int *port)
{
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof(any);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&any, sizeof(any)) ||
	    (type == SOCK_STREAM && listen(fd, 64)) ||
	    getsockname(fd, (struct sockaddr *)&any, &len)) {
		close(fd);
		return -1;
	}
	*port = ntohs(any.sin_port);
	return fd;
}

/* Decision records with this op, decision, rule (NULL = any) whose target
 * is target (a name: exactly; an address: "ADDR:PORT" or "[ADDR]:PORT")
 * and, when name is given, whose extra.name is name. */
static int count_exact(json_t *recs, const char *op, const char *decision, const char *rule,
		       const char *target, const char *name)
{
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(recs, i, r) {
		const char *t = json_string_value(json_object_get(r, "target"));
		const char *nm = json_string_value(json_object_get(json_object_get(r, "extra"),
								   "name"));

		if (bb_field_is(r, "type", "decision") && bb_field_is(r, "op", op) &&
		    bb_field_is(r, "decision", decision) && bb_field_is(r, "rule", rule) &&
		    t && (!strcmp(t, target) || (strstr(t, target) && strchr(t, ':'))) &&
		    (!name || (nm && !strcmp(nm, name))))
			n++;
	}
	return n;
}

TEST(egress_by_name_allowed_refused_and_the_bypasses)
{
	char policy_path[600], json[2048], script[6144], dir_cwd[600], *text;
	const char *probe = bb_helper("net_probe"), *trace;
	int tfd = -1, ufd = -1, tport = 0, uport = 0, rc, got = 0;
	json_t *recs;
	char buf[256];

	vt_ul_require();
	bb_setup(false);
	if (vt_ul_sh(bb_path("which.out"), "command -v dnsmasq && command -v drill && "
		     "command -v getent") != 0) {
		bb_teardown();
		SKIP("the userland has no dnsmasq, drill or getent (scripts/install-deps.sh "
		     "installs dnsmasq-base and ldnsutils on the host)");
	}
	snprintf(dir_cwd, sizeof(dir_cwd), "%s", bb_path(""));
	if (!ASSERT_OK(chdir(dir_cwd), "cd into the test directory (shared with the userland)"))
		goto out;
	if (!ASSERT_TRUE(start_dnsmasq(), "dnsmasq answers on its loopback address")) {
		text = kg_read_file(bb_path("dnsmasq.out"), 1 << 16, NULL);
		bb_show("dnsmasq", text ? text : "(no output)");
		free(text);
		goto out;
	}
	tfd = listen_on(SOCK_STREAM, &tport);
	ufd = listen_on(SOCK_DGRAM, &uport);
	if (!ASSERT_TRUE(tfd >= 0 && ufd >= 0, "listeners on the wildcard address"))
		goto out;

	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"vt-dns\",\"default\":\"allow\",\n"
		 " \"runtime_defaults\":{\"net\":\"deny\"},\n"
		 " \"runtime\":[\n"
		 "  {\"id\":\"api-name\",\"decision\":\"allow\",\"net\":{\"host\":\"api.allowed.test\","
		 "\"allow_private\":true,\"ports\":[%d],\"proto\":\"tcp\"}},\n"
		 "  {\"id\":\"udp-name\",\"decision\":\"allow\",\"net\":{\"host\":\"udp.allowed.test\","
		 "\"allow_private\":true,\"ports\":[%d],\"proto\":\"udp\"}},\n"
		 "  {\"id\":\"watched-name\",\"decision\":\"audit\",\"net\":{\"host\":"
		 "\"watched.allowed.test\",\"allow_private\":true}},\n"
		 "  {\"id\":\"no-denied\",\"decision\":\"deny\",\"net\":{\"host\":\"denied.test\"}}\n"
		 " ]}\n", tport, uport);
	bb_policy("dns.json", json, policy_path, sizeof(policy_path));
	snprintf(script, sizeof(script),
		 /* before any resolution: the allowed names' addresses are closed */
		 "%1$s connect %2$s %3$d >/dev/null; echo before=$?\n"
		 "%1$s connect ::ffff:%2$s %3$d >/dev/null; echo mapped_before=$?\n"
		 "%1$s udp-sendto %4$s %5$d >/dev/null; echo udp_before=$?\n"
		 /* an address no name points at */
		 "%1$s connect %6$s %3$d >/dev/null; echo never=$?\n"
		 /* the denied name, asked of the upstream directly (UDP, TCP) and of an
		  * address where no resolver runs: kgate's resolver answers them all */
		 "drill @%7$s denied.test | grep -q 'rcode: REFUSED'; echo denied_udp=$?\n"
		 "drill -t @%7$s denied.test | grep -q 'rcode: REFUSED'; echo denied_tcp=$?\n"
		 "drill @%7$s denied.test | grep -q '%8$s'; echo denied_answer=$?\n"
		 "drill @198.51.100.53 denied.test | grep -q 'rcode: REFUSED'; echo elsewhere_udp=$?\n"
		 "drill -t @198.51.100.53 denied.test | grep -q 'rcode: REFUSED'; echo elsewhere_tcp=$?\n"
		 "%1$s connect %8$s %3$d >/dev/null; echo denied_addr=$?\n"
		 /* a name no rule mentions */
		 "drill @%7$s nobody.test | grep -q 'rcode: REFUSED'; echo unknown=$?\n"
		 /* the allowed path: libc (the userland's resolv.conf, any address) */
		 "getent hosts api.allowed.test | grep -q '%2$s'; echo libc=$?\n"
		 "%1$s connect %2$s %3$d >/dev/null; echo after=$?\n"
		 "%1$s connect ::ffff:%2$s %3$d >/dev/null; echo mapped_after=$?\n"
		 "%1$s connect %2$s %9$d >/dev/null; echo other_port=$?\n"
		 /* UDP by name: sendto (sendmsg4/6) and connect + send */
		 "drill -t @%7$s udp.allowed.test | grep -q '%4$s'; echo udp_resolved=$?\n"
		 "%1$s udp-sendto %4$s %5$d >/dev/null; echo udp_after=$?\n"
		 "%1$s udp-sendto ::ffff:%4$s %5$d >/dev/null; echo udp_mapped=$?\n"
		 "%1$s udp-connect %4$s %5$d >/dev/null; echo udp_connect=$?\n"
		 "%1$s udp-sendto %6$s %5$d >/dev/null; echo udp_never=$?\n"
		 "%1$s connect %4$s %3$d >/dev/null; echo udp_name_tcp=$?\n"
		 /* an audited name: the connect proceeds and is recorded with the name */
		 "drill @%7$s watched.allowed.test | grep -q '%10$s'; echo watched_resolved=$?\n"
		 "%1$s connect %10$s %3$d >/dev/null; echo watched=$?\n"
		 "exit 0\n",
		 probe, a_api, tport, a_udp, uport, a_never, dns_addr, a_denied,
		 tport == 65535 ? tport - 1 : tport + 1, a_watched);
	{
		char *argv[] = { (char *)bb_kgate(), "run", "--policy", policy_path,
				 "--dns-upstream", dns_addr, "--", "/bin/sh", "-c", script, NULL };

		rc = vt_ul_run(bb_path("run.out"), argv);
	}
	text = bb_slurp("run.out");
	bb_show("kgate run --dns-upstream ... -- sh -c <the attempts>", text);
	ASSERT_EQ(rc, 0, "the job ran to its end");
	if (bb_full())
		ASSERT_HAS_SUBSTR(text, "(full mode", "full mode: BPF LSM active");
	else
		ASSERT_HAS_SUBSTR(text, "(degraded mode", "nobpf boot: degraded mode");
	ASSERT_HAS_SUBSTR(text, "goes to kgate's resolver", "the job's resolver started");
	free(text);

	ASSERT_EQ(bb_result("run.out", "before", NULL), EPERM,
		  "an allowed name's address is refused before the job resolved it");
	ASSERT_EQ(bb_result("run.out", "mapped_before", NULL), EPERM,
		  "the same as IPv4-mapped IPv6 (connect6)");
	ASSERT_EQ(bb_result("run.out", "udp_before", NULL), EPERM,
		  "a UDP datagram to a name's address before resolving it (sendmsg4)");
	ASSERT_EQ(bb_result("run.out", "never", NULL), EPERM,
		  "an address no resolution gave is refused");
	ASSERT_EQ(bb_result("run.out", "denied_udp", NULL), 0,
		  "the upstream asked directly over UDP: kgate's REFUSED");
	ASSERT_EQ(bb_result("run.out", "denied_tcp", NULL), 0,
		  "the upstream asked directly over TCP: kgate's REFUSED");
	ASSERT_EQ(bb_result("run.out", "denied_answer", NULL), 1,
		  "the upstream's answer for the denied name never reaches the job");
	ASSERT_EQ(bb_result("run.out", "elsewhere_udp", NULL), 0,
		  "another resolver's address (UDP): kgate's resolver answers, REFUSED");
	ASSERT_EQ(bb_result("run.out", "elsewhere_tcp", NULL), 0,
		  "another resolver's address (TCP): the same");
	ASSERT_EQ(bb_result("run.out", "denied_addr", NULL), EPERM,
		  "the denied name's address stays refused");
	ASSERT_EQ(bb_result("run.out", "unknown", NULL), 0, "a name no rule allows is REFUSED");
	ASSERT_EQ(bb_result("run.out", "libc", NULL), 0,
		  "the allowed name resolves through libc (resolv.conf's nameserver, redirected)");
	ASSERT_EQ(bb_result("run.out", "after", NULL), 0, "its address connects once resolved");
	ASSERT_EQ(bb_result("run.out", "mapped_after", NULL), 0,
		  "and as IPv4-mapped IPv6: the same address");
	ASSERT_EQ(bb_result("run.out", "other_port", NULL), EPERM,
		  "a port the name's rule does not list is refused");
	ASSERT_EQ(bb_result("run.out", "udp_resolved", NULL), 0, "the UDP name resolves (DNS over TCP)");
	ASSERT_EQ(bb_result("run.out", "udp_after", NULL), 0, "sendto its address (sendmsg4)");
	ASSERT_EQ(bb_result("run.out", "udp_mapped", NULL), 0,
		  "sendto it as IPv4-mapped IPv6 (sendmsg6)");
	ASSERT_EQ(bb_result("run.out", "udp_connect", NULL), 0, "connect + send to it");
	ASSERT_EQ(bb_result("run.out", "udp_never", NULL), EPERM,
		  "a datagram to an address never resolved is refused");
	ASSERT_EQ(bb_result("run.out", "udp_name_tcp", NULL), EPERM,
		  "the UDP rule's address over TCP is refused (proto)");
	ASSERT_EQ(bb_result("run.out", "watched_resolved", NULL), 0, "the audited name resolves");
	ASSERT_EQ(bb_result("run.out", "watched", NULL), 0, "audit: its connect proceeds");
	/* the datagrams that were allowed arrived; the refused ones did not */
	while (recv(ufd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		got++;
	ASSERT_EQ(got, 3, "exactly the three allowed datagrams reached the listener");

	trace = bb_trace("run.out");
	if (!ASSERT_TRUE(trace[0], "kgate run printed the job's trace id"))
		goto out;
	recs = bb_audit(trace);
	ASSERT_GE(count_exact(recs, "dns_resolve", "deny", "no-denied", "denied.test", NULL), 5,
		  "each query for the denied name is recorded, refused by its rule");
	ASSERT_GE(count_exact(recs, "dns_resolve", "deny", NULL, "nobody.test", NULL), 1,
		  "the unknown name's refusal is recorded");
	ASSERT_GE(count_exact(recs, "dns_resolve", "allow", "api-name", "api.allowed.test", NULL), 1,
		  "the allowed name's resolution is recorded with its rule");
	ASSERT_GE(bb_count_target(recs, "decision", "net_connect", "deny", NULL, NULL, a_api), 2,
		  "the connects before resolving are recorded as denied (IPv4 and mapped)");
	ASSERT_GE(bb_count_target(recs, "decision", "net_connect", "deny", NULL, NULL, a_never), 1,
		  "the connect to the address never resolved is recorded");
	ASSERT_GE(bb_count_target(recs, "decision", "net_send", "deny", NULL, NULL, a_never), 1,
		  "the datagram to the address never resolved is recorded");
	ASSERT_GE(count_exact(recs, "net_connect", "audit", "watched-name", a_watched,
			      "watched.allowed.test"), 1,
		  "the connect decided through the audited name carries the name");
	json_decref(recs);
	{
		int qrc = BB_KGATE("target.out", "audit", "query", "--json", "--target",
				   "watched.allowed.test");

		text = bb_slurp("target.out");
		ASSERT_EQ(qrc, 0, "kgate audit query --target NAME");
		ASSERT_HAS_SUBSTR(text, "\"op\":\"dns_resolve\"", "finds the resolution");
		ASSERT_HAS_SUBSTR(text, "\"op\":\"net_connect\"", "and the connect made through it");
		ASSERT_TRUE(strstr(text, "api.allowed.test") == NULL, "and nothing of another name");
		free(text);
	}
out:
	stop_dnsmasq();
	if (tfd >= 0)
		close(tfd);
	if (ufd >= 0)
		close(ufd);
	if (chdir("/tmp")) {
		/* the test directory goes next; / would do as well */
	}
	bb_teardown();
}

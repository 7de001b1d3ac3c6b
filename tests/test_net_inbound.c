// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_net_inbound.c - network paths around the connect/sendmsg hooks
 * (`kgate run` on this host: cgroup-BPF and seccomp, degraded mode).
 *
 *   - ICMP datagram ("ping") sockets: their sendto reaches no cgroup hook,
 *     so under a policy that restricts the network they are refused when
 *     created (and raw inet sockets when no socket rule decides them);
 *   - inbound: binding a non-loopback address (the wildcard included) needs
 *     a net rule with op "bind"; loopback binds and datagram port 0 pass;
 *   - source routes: IP_OPTIONS and IPv6 routing headers by setsockopt.
 * Each attack is first shown to work outside kgate.
 */
#include "testlib.h"
#include "kgrun.h"

#define NO_NET "{\"version\":1,\"name\":\"no-net\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"deny\"},\"runtime\":[]}"
#define OPEN_NET "{\"version\":1,\"name\":\"open\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[]}"

static int probe(const char *policy, char **out, const char *what, const char *addr,
		 const char *port)
{
	if (!policy) {	/* outside kgate: the control */
		char *argv[] = { (char *)helper("net_probe"), (char *)what, (char *)addr,
				 (char *)port, NULL };

		return run_capture(argv, out);
	}
	return KGATE_RUN(policy, out, (char *)helper("net_probe"), (char *)what, (char *)addr,
			 (char *)port);
}

static char port_s[16], port2_s[16];

static void pick_ports(void)
{
	snprintf(port_s, sizeof(port_s), "%d", 42000 + getpid() % 5000);
	snprintf(port2_s, sizeof(port2_s), "%d", 47001 + getpid() % 5000);
}

TEST(icmp_datagram_sockets_are_refused_where_the_network_is_restricted)
{
	char policy[512], json[1024], *out;

	setup();
	if (probe(NULL, &out, "ping", "127.0.0.1", "0"))
		SKIP("ping sockets unavailable here (net.ipv4.ping_group_range)");
	ASSERT_EQ(probe(NULL, &out, "ping", "::1", "0"), 0, "control: ICMPv6 ping works outside");
	write_policy(NO_NET, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "ping", "127.0.0.1", "0"), EPERM,
		  "no-network policy: an ICMP socket is refused");
	ASSERT_FALSE(strstr(out, "socket ok"), "refused at creation");
	ASSERT_EQ(probe(policy, &out, "ping", "::1", "0"), EPERM, "and an ICMPv6 one");
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--",
				 (char *)helper("net_probe"), "socket", "2", "3", "1", NULL };

		ASSERT_EQ(run_capture(argv, &out), EPERM, "a raw ICMP socket too (no socket rule)");
	}
	/* an open network: ping works */
	write_policy(OPEN_NET, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "ping", "127.0.0.1", "0"), 0, "open network: ping works");
	/* a socket rule says so explicitly */
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"deny\"},\"runtime\":["
		 "{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"inet6\",\"unix\"],"
		 "\"allow_icmp\":true},\"decision\":\"deny\"}]}");
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "ping", "127.0.0.1", "0"), 0, "allow_icmp: ping works");
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"allow\"},"
		 "\"runtime\":[{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"inet6\"],"
		 "\"allow_icmp\":false},\"decision\":\"deny\"}]}");
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "ping", "127.0.0.1", "0"), EPERM,
		  "allow_icmp false: refused even with an open network");
	teardown();
}

TEST(inbound_bind_needs_a_rule_except_on_loopback)
{
	char policy[512], json[1024], *out;

	setup();
	pick_ports();
	ASSERT_EQ(probe(NULL, &out, "bind-tcp", "0.0.0.0", port_s), 0, "control: works outside");
	write_policy(OPEN_NET, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "0.0.0.0", port_s), EPERM,
		  "listening on every address refused without a bind rule");
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "::", port_s), EPERM, "IPv6 wildcard too");
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "0.0.0.0", "0"), EPERM,
		  "a stream socket on a port the kernel picks too");
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "127.0.0.1", port_s), 0, "loopback is free");
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "::1", port_s), 0, "::1 too");
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "::ffff:127.0.0.1", port_s), 0, "mapped loopback");
	ASSERT_EQ(probe(policy, &out, "bind-udp", "0.0.0.0", "0"), 0,
		  "a datagram client's ephemeral port passes");
	ASSERT_EQ(probe(policy, &out, "bind-udp", "0.0.0.0", port_s), EPERM, "a UDP server refused");
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"serve\",\"net\":{\"cidr\":\"0.0.0.0/0\",\"ports\":[%s],"
		 "\"proto\":\"tcp\",\"ops\":[\"bind\"]},\"decision\":\"allow\"}]}", port_s);
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "0.0.0.0", port_s), 0, "the bind rule allows it");
	ASSERT_EQ(probe(policy, &out, "bind-tcp", "0.0.0.0", port2_s), EPERM, "another port not");
	{
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", NULL };

		run_capture(argv, &out);
		ASSERT_HAS_SUBSTR(out, "\"op\":\"net_bind\"", "refusals are recorded as net_bind");
	}
	teardown();
}

TEST(source_routes_are_refused)
{
	char policy[512], *out;

	setup();
	pick_ports();
	ASSERT_EQ(probe(NULL, &out, "ipopts", "127.0.0.2", port_s), 0,
		  "control: a source route can be set outside");
	write_policy(OPEN_NET, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "ipopts", "127.0.0.2", port_s), EPERM, "IP_OPTIONS refused");
	ASSERT_EQ(probe(policy, &out, "rthdr", "::1", port_s), EPERM, "IPV6_RTHDR refused");
	ASSERT_EQ(probe(policy, &out, "tos", "127.0.0.2", port_s), 0, "ordinary options work");
	teardown();
}

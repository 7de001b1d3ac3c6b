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
 *   - listen() on a never-bound TCP socket (the kernel binds the wildcard
 *     itself, past bind4/6): connections from a non-loopback address get no
 *     answer, loopback clients connect (cgroup_skb ingress, degraded mode);
 *   - source routes: IP_OPTIONS and IPv6 routing headers by setsockopt, and
 *     per message (IP_RETOPTS ancillary data: cgroup_skb egress, degraded);
 *   - packet sockets (AF_PACKET, and socket(AF_INET, SOCK_PACKET)): a root
 *     job keeps CAP_NET_RAW and could send any datagram past every hook.
 * Each attack is first shown to work outside kgate.
 */
#include <ifaddrs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

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

/* A network namespace for this test's process with lo up and every group
 * allowed ping sockets. */
static bool ping_in_own_netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, ok;

	if (unshare(CLONE_NEWNET))
		return false;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ok = fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	ok = ok && !ioctl(fd, SIOCSIFFLAGS, &ifr);
	if (fd >= 0)
		close(fd);
	fd = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY);
	ok = ok && fd >= 0 && write(fd, "0 2147483647", 12) == 12;
	if (fd >= 0)
		close(fd);
	usleep(200 * 1000);	/* ::1 is ready once lo's IPv6 address leaves tentative */
	return ok;
}

TEST(icmp_datagram_sockets_are_refused_where_the_network_is_restricted)
{
	char policy[512], json[1024], *out;

	setup();
	/* Where net.ipv4.ping_group_range leaves root out (the kernel's default
	 * "1 0"), the test runs in a network namespace of its own (this test's
	 * process only) whose range includes root: the machine's is unchanged. */
	if (probe(NULL, &out, "ping", "127.0.0.1", "0") && !ping_in_own_netns())
		SKIP("ping sockets unavailable here (net.ipv4.ping_group_range) and no "
		     "network namespace of our own");
	ASSERT_EQ(probe(NULL, &out, "ping", "127.0.0.1", "0"), 0, "control: ICMP ping works outside");
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

/* The datagram net_probe builds by hand leaves through the packet socket
 * (sendto succeeds); on lo the receiving side drops it as a martian (a
 * loopback address with no route attached), so arrival is not checked here:
 * refusing the socket is the claim. */
TEST(packet_sockets_follow_the_network_restriction)
{
	char policy[512], json[1024], *out;
	char *sock_packet[] = { (char *)kgate_bin(), "run", "--policy", policy, "--",
				(char *)helper("net_probe"), "socket", "2", "10", "768", NULL };

	setup();
	pick_ports();
	ASSERT_EQ(probe(NULL, &out, "packet-udp", "127.0.0.1", port_s), 0,
		  "control: a hand-built datagram is sent through AF_PACKET outside kgate");
	write_policy(NO_NET, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "udp-sendto", "127.0.0.1", port_s), EPERM,
		  "no-network policy: the destination is refused to a UDP socket");
	ASSERT_EQ(probe(policy, &out, "packet-udp", "127.0.0.1", port_s), EPERM,
		  "... and to a packet socket");
	ASSERT_EQ(run_capture(sock_packet, &out), EPERM,
		  "socket(AF_INET, SOCK_PACKET) too (the old spelling of a packet socket)");
	/* an open network: nothing to protect, packet sockets work */
	write_policy(OPEN_NET, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "packet-udp", "127.0.0.1", port_s), 0,
		  "open network: a packet socket works");
	/* a socket rule listing packet without allow_raw: refused in both spellings */
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":["
		 "{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"inet6\",\"unix\","
		 "\"packet\"]},\"decision\":\"deny\"}]}");
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "packet-udp", "127.0.0.1", port_s), EPERM,
		  "socket rule without allow_raw: AF_PACKET refused");
	ASSERT_EQ(run_capture(sock_packet, &out), EPERM, "... and AF_INET SOCK_PACKET");
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"deny\"},\"runtime\":["
		 "{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"inet6\",\"unix\","
		 "\"packet\"],\"allow_raw\":true},\"decision\":\"deny\"}]}");
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "packet-udp", "127.0.0.1", port_s), 0,
		  "a socket rule that allows packet sockets explicitly is followed");
	ASSERT_EQ(run_capture(sock_packet, &out), 0, "... in both spellings");
	teardown();
}

/* A local IPv4 address that is not loopback (an up interface's), or false. */
static bool local_address(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa))
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
		    !(i->ifa_flags & IFF_UP))
			continue;
		found = inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf,
				  (socklen_t)len) != NULL;
	}
	freeifaddrs(ifa);
	return found;
}

/* TCP connect to addr:port within ms: 0, or the errno (ETIMEDOUT: no answer). */
static int connect_within(const char *addr, int port, int ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct pollfd p;
	int fd, err = 0;
	socklen_t l = sizeof(err);

	inet_pton(AF_INET, addr, &a.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
		err = errno;
		close(fd);
		return err;
	}
	p.fd = fd;
	p.events = POLLOUT;
	if (poll(&p, 1, ms) != 1)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l))
		err = errno;
	close(fd);
	return err;
}

/* Start argv with stdout and stderr into path; its pid. */
static pid_t spawn_to(char *const argv[], const char *path)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* The "port N" line the server printed, waiting up to 20 s; 0 if none. */
static int port_of(const char *path, pid_t pid)
{
	char buf[16384];
	int i, st;

	for (i = 0; i < 400; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		const char *p;

		if (f)
			fclose(f);
		buf[n] = 0;
		p = strstr(buf, "\nport ");
		if (!p && !strncmp(buf, "port ", 5))
			p = buf - 1;
		if (p && strchr(p + 6, '\n'))	/* the whole line, not a part */
			return atoi(p + 6);
		if (waitpid(pid, &st, WNOHANG) == pid)
			return 0;
		usleep(50 * 1000);
	}
	return 0;
}

static int wait_exit(pid_t pid)
{
	int st = 0;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void file_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
}

/* One server: listen() without bind inside kgate (policy) or outside
 * (NULL); a connect from the machine's own non-loopback address, then one
 * from 127.0.0.1.  Returns the errno of the first connect; *second that of
 * the second; out = what the server printed. */
static int serve_unbound(const char *policy, const char *fam, const char *local, int *second,
			 char *out, size_t outlen)
{
	char path[512];
	char *inside[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy, "--",
			   (char *)helper("net_probe"), "serve-unbound", (char *)fam, "8000", NULL };
	char *outside[] = { (char *)helper("net_probe"), "serve-unbound", (char *)fam, "8000", NULL };
	pid_t pid;
	int port, first;

	snprintf(path, sizeof(path), "%s/serve.out", tmpdir);
	unlink(path);	/* not the last server's port */
	pid = spawn_to(policy ? inside : outside, path);
	port = port_of(path, pid);
	if (!port) {
		kill(pid, SIGKILL);
		wait_exit(pid);
		file_text(path, out, outlen);
		return -1;
	}
	first = connect_within(local, port, 1500);
	*second = first ? connect_within("127.0.0.1", port, 1500) : -1;
	wait_exit(pid);
	file_text(path, out, outlen);
	return first;
}

TEST(a_listener_the_kernel_bound_itself_serves_loopback_only)
{
	char policy[512], json[1024], local[64], out[16384], *q;
	int second;

	setup();
	if (!local_address(local, sizeof(local)))
		SKIP("no non-loopback IPv4 address on this machine");
	/* the control (a wildcard listener for at most 8 s: the attack itself) */
	ASSERT_EQ(serve_unbound(NULL, "4", local, &second, out, sizeof(out)), 0,
		  "control: outside kgate a connect from the machine's address is answered");
	ASSERT_HAS_SUBSTR(out, "accepted", "control: ... and accepted");
	write_policy(OPEN_NET, policy, sizeof(policy));
	ASSERT_EQ(serve_unbound(policy, "4", local, &second, out, sizeof(out)), ETIMEDOUT,
		  "no bind rule: a connect to the job's unbound listener gets no answer");
	ASSERT_EQ(second, 0, "a loopback client still connects");
	ASSERT_HAS_SUBSTR(out, "accepted 127.0.0.1", "... and is the one accepted");
	ASSERT_EQ(serve_unbound(policy, "6", local, &second, out, sizeof(out)), ETIMEDOUT,
		  "the same on a dual-stack AF_INET6 listener (IPv4 packets)");
	ASSERT_EQ(second, 0, "its loopback client connects");
	{
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", NULL };

		run_capture(argv, &q);
		ASSERT_HAS_SUBSTR(q, "\"op\":\"net_bind\",\"target\":\"0.0.0.0:0/tcp\",\"decision\":"
				  "\"deny\",\"rule\":\"kgate:inbound\"",
				  "the dropped connection is recorded as a refused net_bind");
	}
	/* a bind rule for every port of the wildcard address lets it serve */
	snprintf(json, sizeof(json), "{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		 "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"serve\",\"net\":"
		 "{\"cidr\":\"0.0.0.0/0\",\"proto\":\"tcp\",\"ops\":[\"bind\"]},\"decision\":\"allow\"}]}");
	write_policy(json, policy, sizeof(policy));
	ASSERT_EQ(serve_unbound(policy, "4", local, &second, out, sizeof(out)), 0,
		  "with a bind rule the connect is answered");
	ASSERT_HAS_SUBSTR(out, "accepted", "... and accepted");
	teardown();
}

/* The first hop of a per-message source route is not the address sendmsg4
 * checked: under a policy that refuses 127.0.0.2, a datagram "to" 127.0.0.1
 * routed via 127.0.0.2 would leave for 127.0.0.2. */
TEST(source_routes_per_message_are_refused)
{
	char policy[512], *out, *q;

	setup();
	pick_ports();
	ASSERT_EQ(probe(NULL, &out, "retopts", "127.0.0.2", port_s), 0,
		  "control: a per-message source route is sent outside kgate");
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"not-2\","
		     "\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}",
		     policy, sizeof(policy));
	ASSERT_EQ(probe(policy, &out, "udp-sendto", "127.0.0.2", port_s), EPERM,
		  "127.0.0.2 is refused to a plain sendto");
	ASSERT_EQ(probe(policy, &out, "retopts", "127.0.0.2", port_s), EPERM,
		  "... and as a source route's first hop");
	ASSERT_EQ(probe(policy, &out, "retopts-none", "127.0.0.2", port_s), 0,
		  "the same sendmsg without the route works");
	{
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", NULL };

		run_capture(argv, &q);
		ASSERT_HAS_SUBSTR(q, "\"op\":\"net_send\",\"target\":\"127.0.0.2:0/ip\","
				  "\"decision\":\"deny\",\"rule\":\"kgate:source-route\"",
				  "the refusal is recorded with its first hop");
	}
	teardown();
}

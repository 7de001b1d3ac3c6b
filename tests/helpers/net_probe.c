// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * net_probe - one network action, for tests run inside a governed job.
 *
 *   net_probe connect ADDR PORT        TCP connect (IPv4, IPv6, ::ffff:a.b.c.d)
 *   net_probe udp-sendto ADDR PORT     UDP sendto without connect()
 *   net_probe udp-connect ADDR PORT    UDP connect() then send()
 *   net_probe tfo ADDR PORT            TCP Fast Open: sendto(MSG_FASTOPEN)
 *   net_probe socket FAMILY TYPE [PROTO]   socket(2) only (numbers)
 *   net_probe ping ADDR PORT           ICMP datagram socket, sendto an echo request
 *   net_probe bind-tcp ADDR PORT       bind + listen (inbound)
 *   net_probe bind-udp ADDR PORT       bind a datagram socket
 *   net_probe listen-unbound ADDR PORT listen() without bind (the kernel picks
 *                                      the wildcard address; ADDR's family)
 *   net_probe ipopts ADDR PORT         IP_OPTIONS loose source route via ADDR,
 *                                      then UDP sendto 127.0.0.1:PORT
 *   net_probe rthdr ADDR PORT          IPV6_RTHDR routing header via ADDR
 *   net_probe tos ADDR PORT            IP_TOS (an ordinary option), then sendto
 *
 * Prints "ok" or "errno N (text)" and exits 0 or with the errno, so a test
 * can tell kgate's EPERM from ECONNREFUSED (nothing listening).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

static int fail(void)
{
	int e = errno;

	printf("errno %d (%s)\n", e, strerror(e));
	return e ? e : 1;
}

static int make_addr(const char *host, const char *port, struct sockaddr_storage *ss,
		     socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(atoi(port));
		*len = sizeof(*in4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(atoi(port));
		*len = sizeof(*in6);
		return AF_INET6;
	}
	fprintf(stderr, "net_probe: bad address %s\n", host);
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, family;

	if (argc < 4) {
		fprintf(stderr, "usage: net_probe connect|udp-sendto|udp-connect|tfo ADDR PORT\n"
				"       net_probe socket FAMILY TYPE [PROTO]\n");
		return 2;
	}
	if (!strcmp(argv[1], "socket")) {
		fd = socket(atoi(argv[2]), atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 0);
		if (fd < 0)
			return fail();
		printf("ok\n");
		return 0;
	}
	family = make_addr(argv[2], argv[3], &ss, &len);
	if (!strcmp(argv[1], "connect")) {
		fd = socket(family, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len))
			return fail();
	} else if (!strcmp(argv[1], "udp-sendto")) {
		fd = socket(family, SOCK_DGRAM, 0);
		if (fd < 0 || sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len) < 0)
			return fail();
	} else if (!strcmp(argv[1], "udp-connect")) {
		fd = socket(family, SOCK_DGRAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) || send(fd, "x", 1, 0) < 0)
			return fail();
	} else if (!strcmp(argv[1], "tfo")) {
		fd = socket(family, SOCK_STREAM, 0);
		if (fd < 0 || sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0)
			return fail();
	} else if (!strcmp(argv[1], "ping")) {
		/* type 8 (echo) for ICMP, 128 for ICMPv6; the kernel fills id and sum */
		unsigned char echo[16] = { family == AF_INET ? 8 : 128, 0 };

		fd = socket(family, SOCK_DGRAM, family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
		if (fd < 0)
			return fail();
		printf("socket ok\n");
		if (sendto(fd, echo, sizeof(echo), 0, (struct sockaddr *)&ss, len) < 0)
			return fail();
	} else if (!strcmp(argv[1], "bind-tcp") || !strcmp(argv[1], "bind-udp")) {
		int one = 1, tcp = !strcmp(argv[1], "bind-tcp");

		fd = socket(family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) || (tcp && listen(fd, 1)))
			return fail();
	} else if (!strcmp(argv[1], "listen-unbound")) {
		fd = socket(family, SOCK_STREAM, 0);
		if (fd < 0 || listen(fd, 1))
			return fail();
	} else if (!strcmp(argv[1], "ipopts") || !strcmp(argv[1], "tos")) {
		/* loose source route: type 131, length 7, pointer 4, one hop */
		unsigned char opt[8] = { 131, 7, 4, 0, 0, 0, 0, 1 /* end of list */ };
		struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int tos = 0x10;

		memcpy(&opt[3], &((struct sockaddr_in *)&ss)->sin_addr, 4);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0)
			return fail();
		if (!strcmp(argv[1], "ipopts") ? setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opt, 8)
					       : setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)))
			return fail();
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
			return fail();
	} else if (!strcmp(argv[1], "rthdr")) {
		/* type 0 routing header with one address */
		unsigned char rt[24] = { 0, 2, 0, 1 };

		memcpy(&rt[8], &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		fd = socket(AF_INET6, SOCK_DGRAM, 0);
		if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, rt, sizeof(rt)))
			return fail();
	} else {
		fprintf(stderr, "net_probe: unknown action %s\n", argv[1]);
		return 2;
	}
	printf("ok\n");
	return 0;
}

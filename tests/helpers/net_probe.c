// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * net_probe - one network action, for tests run inside a governed job.
 *
 *   net_probe connect ADDR PORT        TCP connect (IPv4, IPv6, ::ffff:a.b.c.d)
 *   net_probe connect-ms ADDR PORT MS  TCP connect that gives up after MS ms
 *                                      (exit 110: no answer)
 *   net_probe udp-sendto ADDR PORT     UDP sendto without connect()
 *   net_probe udp-connect ADDR PORT    UDP connect() then send()
 *   net_probe tfo ADDR PORT            TCP Fast Open: sendto(MSG_FASTOPEN)
 *   net_probe socket FAMILY TYPE [PROTO]   socket(2) only (numbers)
 *   net_probe ping ADDR PORT           ICMP datagram socket, sendto an echo request
 *   net_probe bind-tcp ADDR PORT       bind + listen (inbound)
 *   net_probe bind-udp ADDR PORT       bind a datagram socket
 *   net_probe listen-unbound ADDR PORT listen() without bind (the kernel picks
 *                                      the wildcard address; ADDR's family)
 *   net_probe serve-unbound 4|6 MS     listen() without bind on an AF_INET or
 *                                      AF_INET6 socket, print "port N", accept
 *                                      one connection within MS ms: "accepted
 *                                      PEER" (exit 0) or "timeout" (exit 110)
 *   net_probe retopts ADDR PORT        sendmsg to 127.0.0.1:PORT with a loose source
 *                                      route via ADDR as IP_RETOPTS ancillary data
 *   net_probe retopts-none ADDR PORT   the same sendmsg without it
 *   net_probe ipopts ADDR PORT         IP_OPTIONS loose source route via ADDR,
 *                                      then UDP sendto 127.0.0.1:PORT
 *   net_probe rthdr ADDR PORT          IPV6_RTHDR routing header via ADDR
 *   net_probe tos ADDR PORT            IP_TOS (an ordinary option), then sendto
 *   net_probe packet-udp ADDR PORT     a UDP datagram "kgpkt" from 127.0.0.1 to
 *                                      ADDR (IPv4) built by hand and sent on lo
 *                                      through an AF_PACKET socket (the receiving
 *                                      side drops a loopback address as a martian)
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
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
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
	if (!strcmp(argv[1], "serve-unbound")) {
		struct pollfd pfd;
		char peer[INET6_ADDRSTRLEN] = "?";
		int c;

		family = argv[2][0] == '6' ? AF_INET6 : AF_INET;
		len = sizeof(ss);
		fd = socket(family, SOCK_STREAM, 0);
		if (fd < 0 || listen(fd, 4) || getsockname(fd, (struct sockaddr *)&ss, &len))
			return fail();
		printf("port %d\n", ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						    : ((struct sockaddr_in6 *)&ss)->sin6_port));
		fflush(stdout);
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, atoi(argv[3])) != 1) {
			printf("timeout\n");
			return 110;
		}
		len = sizeof(ss);
		c = accept(fd, (struct sockaddr *)&ss, &len);
		if (c < 0)
			return fail();
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
		printf("accepted %s\n", peer);
		return 0;
	}
	family = make_addr(argv[2], argv[3], &ss, &len);
	if (!strcmp(argv[1], "connect")) {
		fd = socket(family, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len))
			return fail();
	} else if (!strcmp(argv[1], "connect-ms")) {
		struct pollfd pfd;
		int err = 0;
		socklen_t el = sizeof(err);

		fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS))
			return fail();
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, argc > 4 ? atoi(argv[4]) : 3000) != 1) {
			printf("timeout\n");
			return 110;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			errno = err ? err : errno;
			return fail();
		}
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
	} else if (!strcmp(argv[1], "retopts") || !strcmp(argv[1], "retopts-none")) {
		union {
			char buf[CMSG_SPACE(8)];
			struct cmsghdr align;
		} u;
		unsigned char opt[8] = { 131, 7, 4, 0, 0, 0, 0, 1 };
		struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct iovec iov = { .iov_base = "x", .iov_len = 1 };
		struct msghdr m = { .msg_name = &dst, .msg_namelen = sizeof(dst), .msg_iov = &iov,
				    .msg_iovlen = 1 };
		struct cmsghdr *c;

		memcpy(&opt[3], &((struct sockaddr_in *)&ss)->sin_addr, 4);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0)
			return fail();
		if (!strcmp(argv[1], "retopts")) {
			memset(&u, 0, sizeof(u));
			m.msg_control = u.buf;
			m.msg_controllen = sizeof(u.buf);
			c = CMSG_FIRSTHDR(&m);
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_RETOPTS;
			c->cmsg_len = CMSG_LEN(8);
			memcpy(CMSG_DATA(c), opt, 8);
		}
		if (sendmsg(fd, &m, 0) < 0)
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
	} else if (!strcmp(argv[1], "packet-udp")) {
		/* IPv4 header (20) + UDP header (8) + payload; UDP sum 0 = none */
		unsigned char pkt[33] = { 0x45, 0, 0, sizeof(pkt), 0, 0, 0x40, 0, 64, 17 };
		struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
					  .sll_halen = 6 };
		unsigned int sum = 0, i;
		uint32_t src = htonl(INADDR_LOOPBACK);
		uint16_t v;

		if (family != AF_INET) {
			fprintf(stderr, "net_probe: packet-udp takes an IPv4 address\n");
			return 2;
		}
		memcpy(&pkt[12], &src, 4);
		memcpy(&pkt[16], &((struct sockaddr_in *)&ss)->sin_addr, 4);
		for (i = 0; i < 20; i += 2)
			sum += pkt[i] << 8 | pkt[i + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		v = htons((uint16_t)~sum);
		memcpy(&pkt[10], &v, 2);
		v = htons(40000);
		memcpy(&pkt[20], &v, 2);
		v = ((struct sockaddr_in *)&ss)->sin_port;
		memcpy(&pkt[22], &v, 2);
		v = htons(sizeof(pkt) - 20);
		memcpy(&pkt[24], &v, 2);
		memcpy(&pkt[28], "kgpkt", 5);
		ll.sll_ifindex = (int)if_nametoindex("lo");
		fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
		if (fd < 0)
			return fail();
		if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ll, sizeof(ll)) < 0)
			return fail();
	} else {
		fprintf(stderr, "net_probe: unknown action %s\n", argv[1]);
		return 2;
	}
	printf("ok\n");
	return 0;
}

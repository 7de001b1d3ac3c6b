// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * net_probe - one network action, for tests run inside a governed job.
 *
 *   net_probe connect ADDR PORT        TCP connect (IPv4, IPv6, ::ffff:a.b.c.d)
 *   net_probe udp-sendto ADDR PORT     UDP sendto without connect()
 *   net_probe udp-connect ADDR PORT    UDP connect() then send()
 *   net_probe tfo ADDR PORT            TCP Fast Open: sendto(MSG_FASTOPEN)
 *   net_probe socket FAMILY TYPE [PROTO]   socket(2) only (numbers)
 *
 * Prints "ok" or "errno N (text)" and exits 0 or with the errno, so a test
 * can tell kgate's EPERM from ECONNREFUSED (nothing listening).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
	} else {
		fprintf(stderr, "net_probe: unknown action %s\n", argv[1]);
		return 2;
	}
	printf("ok\n");
	return 0;
}

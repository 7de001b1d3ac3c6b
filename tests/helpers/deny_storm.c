// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * deny_storm - many TCP connects from inside a governed job, for the loss
 * and aggregation tests (tests/test_losses.c).
 *
 *   deny_storm ADDR PORT N [same|distinct|K]
 *
 * N connects to ADDR:PORT ("same": every one identical), to ADDR:PORT,
 * PORT+1, ... ("distinct": N different targets), or to PORT .. PORT+K-1 in
 * turn (K a number: K targets, each N/K times, interleaved).  Prints
 * "refused R other O ok K" (R = EPERM/EACCES) and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long n, i, refused = 0, other = 0, ok = 0;
	int port, distinct, cycle = 0;

	if (argc < 4 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: deny_storm ADDR PORT N [same|distinct]\n");
		return 2;
	}
	port = atoi(argv[2]);
	n = atol(argv[3]);
	distinct = argc > 4 && !strcmp(argv[4], "distinct");
	if (argc > 4 && atoi(argv[4]) > 0)
		cycle = atoi(argv[4]);
	for (i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			other++;
			continue;
		}
		sa.sin_port = htons((unsigned short)(distinct ? port + i % 60000
						     : cycle ? port + i % cycle : port));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			ok++;
		else if (errno == EPERM || errno == EACCES)
			refused++;
		else
			other++;
		close(fd);
	}
	printf("refused %ld other %ld ok %ld\n", refused, other, ok);
	return 0;
}

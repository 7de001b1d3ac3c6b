// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns_probe - DNS queries a test sends from inside a governed job, including
 * ones no DNS library would build (the point is to send what an attacker
 * would).  IPv4 servers, port 53.
 *
 *   dns_probe query udp|tcp SERVER NAME [QTYPE]
 *       one query for NAME (labels taken as they are between the dots: a
 *       label of 64 bytes or a name of 256 is sent as such); QTYPE a number
 *       (default 1, A).  Prints "rcode=N answers=N" and exits 0 on an
 *       answer, 3 when none came in time.
 *   dns_probe raw udp|tcp SERVER HEX
 *       the bytes HEX as one message (TCP: with its length prefix); the same
 *       output.
 *   dns_probe flood SERVER COUNT RATE MOD NAME...
 *       COUNT queries over UDP, at most RATE a second and at most 256
 *       unanswered at a time; query i asks NAME[i % n], where a "%u" in it
 *       is (i / n) % MOD.  A query unanswered for 60 s is lost (a slow
 *       answer is not a lost one: the longest wait is printed).  Prints
 *       "sent=N answered=N noerror=N refused=N other=N lost=N elapsed_ms=N
 *       rate=N max_wait_ms=N" and exits 0 when nothing was lost, 1 otherwise.
 *
 * $DNS_PROBE_WAIT_MS: how long query and raw wait for an answer (2000).
 *
 * Only the header of an answer is read (id, rcode, answer count): this is a
 * test's traffic generator, not a resolver.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WINDOW		256
#define LOST_AFTER_NS	60000000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* header (RD set) + question; labels copied as they are */
static size_t build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, unsigned qtype)
{
	size_t n = 12;
	const char *p = name;

	memset(buf, 0, 12);
	buf[0] = id >> 8;
	buf[1] = id & 0xff;
	buf[2] = 0x01;		/* RD */
	buf[5] = 1;		/* QDCOUNT */
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (n + 1 + l + 5 > cap)
			return 0;
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, p, l);
		n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	buf[n++] = 0;
	buf[n++] = qtype >> 8;
	buf[n++] = qtype & 0xff;
	buf[n++] = 0;
	buf[n++] = 1;		/* IN */
	return n;
}

static int server_addr(const char *s, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(53);
	if (inet_pton(AF_INET, s, &sa->sin_addr) != 1) {
		fprintf(stderr, "dns_probe: bad server %s\n", s);
		exit(2);
	}
	return 0;
}

static int print_answer(const uint8_t *a, size_t n)
{
	if (n < 12) {
		printf("short answer (%zu bytes)\n", n);
		return 4;
	}
	printf("rcode=%u answers=%u\n", a[3] & 0x0f, (unsigned)(a[6] << 8 | a[7]));
	return 0;
}

static int wait_ms(void)
{
	const char *w = getenv("DNS_PROBE_WAIT_MS");

	return w && atoi(w) > 0 ? atoi(w) : 2000;
}

static int read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, wait_ms()) <= 0)
			return -1;
		r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* send msg, print the answer's header; 0 answered, 3 none */
static int exchange(const char *proto, const char *server, const uint8_t *msg, size_t len)
{
	struct sockaddr_in sa;
	uint8_t ans[65536];
	int tcp = !strcmp(proto, "tcp"), fd;

	server_addr(server, &sa);
	fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		printf("errno %d (%s)\n", errno, strerror(errno));
		return errno ? errno : 1;
	}
	if (tcp) {
		uint8_t pre[2] = { len >> 8, len & 0xff };
		uint16_t alen;

		if (write(fd, pre, 2) != 2 || write(fd, msg, len) != (ssize_t)len)
			return printf("write failed\n"), 1;
		if (read_full(fd, pre, 2))
			return printf("noanswer\n"), 3;
		alen = (uint16_t)(pre[0] << 8 | pre[1]);
		if (read_full(fd, ans, alen))
			return printf("noanswer\n"), 3;
		return print_answer(ans, alen);
	} else {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (send(fd, msg, len, 0) != (ssize_t)len)
			return printf("send failed: %s\n", strerror(errno)), 1;
		if (poll(&p, 1, wait_ms()) <= 0)
			return printf("noanswer\n"), 3;
		n = recv(fd, ans, sizeof(ans), 0);
		if (n < 0)
			return printf("noanswer\n"), 3;
		return print_answer(ans, (size_t)n);
	}
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int flood(const char *server, long count, long rate, unsigned mod, char **names, int nnames)
{
	static uint64_t sent_at[65536];		/* 0 = not outstanding */
	struct sockaddr_in sa;
	uint64_t t0 = now_ns(), last_sweep = t0;
	long sent = 0, answered = 0, noerror = 0, refused = 0, other = 0, lost = 0;
	unsigned outstanding = 0;
	uint64_t max_wait = 0;
	uint16_t next_id = 1;
	int fd;

	server_addr(server, &sa);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		printf("errno %d (%s)\n", errno, strerror(errno));
		return 1;
	}
	/* room for a window of answers while this process is not scheduled:
	 * an answer dropped here would be this client's loss, not kgate's */
	{
		int big = 4 << 20;

		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)))
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	while (sent < count || outstanding) {
		uint64_t now = now_ns();
		long due = (long)((now - t0) / 1000000ull * (uint64_t)rate / 1000ull) + 1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint8_t buf[1024];
		ssize_t n;

		while (sent < count && sent < due && outstanding < WINDOW) {
			char name[600];
			const char *pat = names[sent % nnames];
			const char *pc = strstr(pat, "%u");
			size_t len;

			if (pc)
				snprintf(name, sizeof(name), "%.*s%u%s", (int)(pc - pat), pat,
					 (unsigned)((sent / nnames) % mod), pc + 2);
			else
				snprintf(name, sizeof(name), "%s", pat);
			while (sent_at[next_id] || !next_id)
				next_id++;
			len = build_query(buf, sizeof(buf), next_id, name, 1);
			if (!len || send(fd, buf, len, 0) != (ssize_t)len) {
				if (errno == EAGAIN || errno == ENOBUFS)
					break;
				printf("send: %s\n", strerror(errno));
				return 1;
			}
			sent_at[next_id++] = now;
			outstanding++;
			sent++;
		}
		if (poll(&p, 1, 1) < 0 && errno != EINTR)
			return 1;
		while ((n = recv(fd, buf, sizeof(buf), 0)) >= 12) {
			uint16_t id = (uint16_t)(buf[0] << 8 | buf[1]);

			if (!sent_at[id])
				continue;	/* late, already counted lost */
			if (now_ns() - sent_at[id] > max_wait)
				max_wait = now_ns() - sent_at[id];
			sent_at[id] = 0;
			outstanding--;
			answered++;
			switch (buf[3] & 0x0f) {
			case 0: noerror++; break;
			case 5: refused++; break;
			default: other++;
			}
		}
		now = now_ns();
		if (now - last_sweep > 500000000ull) {
			unsigned i;

			last_sweep = now;
			for (i = 1; i < 65536; i++)
				if (sent_at[i] && now - sent_at[i] > LOST_AFTER_NS) {
					sent_at[i] = 0;
					outstanding--;
					lost++;
				}
		}
	}
	{
		uint64_t ms = (now_ns() - t0) / 1000000ull;

		printf("sent=%ld answered=%ld noerror=%ld refused=%ld other=%ld lost=%ld "
		       "elapsed_ms=%llu rate=%llu max_wait_ms=%llu\n", sent, answered, noerror, refused,
		       other, lost, (unsigned long long)ms,
		       (unsigned long long)(ms ? sent * 1000ull / ms : 0),
		       (unsigned long long)(max_wait / 1000000ull));
	}
	return lost ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint8_t msg[4096];
	size_t len;

	if (argc >= 5 && !strcmp(argv[1], "query")) {
		len = build_query(msg, sizeof(msg), 0x4b47, argv[4],
				  argc > 5 ? (unsigned)atoi(argv[5]) : 1);
		if (!len)
			return fprintf(stderr, "dns_probe: name too long even for this\n"), 2;
		return exchange(argv[2], argv[3], msg, len);
	}
	if (argc == 5 && !strcmp(argv[1], "raw")) {
		const char *h = argv[4];

		for (len = 0; h[0] && h[1] && len < sizeof(msg); h += 2)
			msg[len++] = (uint8_t)(hexval(h[0]) << 4 | hexval(h[1]));
		return exchange(argv[2], argv[3], msg, len);
	}
	if (argc >= 7 && !strcmp(argv[1], "flood"))
		return flood(argv[2], atol(argv[3]), atol(argv[4]), (unsigned)atoi(argv[5]),
			     argv + 6, argc - 6);
	fprintf(stderr, "usage: dns_probe query udp|tcp SERVER NAME [QTYPE]\n"
			"       dns_probe raw udp|tcp SERVER HEX\n"
			"       dns_probe flood SERVER COUNT RATE MOD NAME...\n");
	return 2;
}

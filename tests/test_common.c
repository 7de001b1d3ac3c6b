// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "testlib.h"
#include "common.h"

#include <sys/time.h>

TEST(hash_is_fnv1a)
{
	/* FNV-1a 64 of "a" is af63dc4c8601ec8c */
	ASSERT_EQ(kg_hash_bytes("a", 1), 0xaf63dc4c8601ec8cULL, "fnv1a(a)");
	ASSERT_EQ(kg_hash_bytes("", 0), 0xcbf29ce484222325ULL, "fnv1a(empty)");
}

TEST(strlcpy_reports_truncation)
{
	char b[4];

	ASSERT_EQ(kg_strlcpy(b, "abc", sizeof(b)), 0, "fits");
	ASSERT_EQ(kg_strlcpy(b, "abcd", sizeof(b)), -1, "truncated");
	ASSERT_STREQ(b, "abc", "truncated content");
}

TEST(hex_round_trip_and_strict_decode)
{
	const unsigned char in[3] = { 0x00, 0xab, 0xff };
	unsigned char out[3];
	char hex[7];

	kg_hex_encode(in, sizeof(in), hex);
	ASSERT_STREQ(hex, "00abff", "encoded lowercase");
	ASSERT_OK(kg_hex_decode(hex, out, sizeof(out)), "decodes");
	ASSERT_TRUE(!memcmp(in, out, sizeof(in)), "round trip");
	ASSERT_EQ(kg_hex_decode("00ABff", out, 3), -EINVAL, "uppercase refused");
	ASSERT_EQ(kg_hex_decode("00abf", out, 3), -EINVAL, "short refused");
	ASSERT_EQ(kg_hex_decode("00abff00", out, 3), -EINVAL, "long refused");
	ASSERT_EQ(kg_hex_decode("00agff", out, 3), -EINVAL, "non-hex refused");
	ASSERT_EQ(kg_hex_decode(NULL, out, 3), -EINVAL, "NULL refused");
}

TEST(grow_doubles_only_when_full)
{
	size_t cap = 0, n;
	int *v = NULL, *nv;

	for (n = 0; n < 20; n++) {
		nv = kg_grow(v, &cap, n, sizeof(*v), 4);
		ASSERT_TRUE(nv != NULL, "grown");
		v = nv;
		v[n] = (int)n;
		ASSERT_EQ(cap, n < 4 ? 4u : n < 8 ? 8u : n < 16 ? 16u : 32u, "capacity");
	}
	for (n = 0; n < 20; n++)
		ASSERT_EQ(v[n], (int)n, "contents kept");
	cap = SIZE_MAX / 2 + 1;
	ASSERT_TRUE(kg_grow(v, &cap, cap, sizeof(*v), 4) == NULL, "overflow refused");
	ASSERT_EQ(cap, SIZE_MAX / 2 + 1, "capacity untouched on failure");
	free(v);
}

TEST(mountinfo_unescape_undoes_octal_only)
{
	char a[] = "/mnt/with\\040space\\011tab\\012nl\\134back";
	char b[] = "/short\\04";
	char c[] = "/not\\777octal\\x";
	char d[] = "\\040";

	kg_mountinfo_unescape(a);
	ASSERT_STREQ(a, "/mnt/with space\ttab\nnl\\back", "space, tab, newline, backslash");
	kg_mountinfo_unescape(b);
	ASSERT_STREQ(b, "/short\\04", "a short escape stays");
	kg_mountinfo_unescape(c);
	ASSERT_STREQ(c, "/not\\777octal\\x", "out of range or no digits: as it is");
	kg_mountinfo_unescape(d);
	ASSERT_STREQ(d, " ", "at the start");
}

/* signals that interrupt read(2)/write(2) (no SA_RESTART) */
static volatile sig_atomic_t interruptions;

static void count_interruption(int sig)
{
	(void)sig;
	interruptions++;
}

static void interrupt_every(long usec)
{
	struct sigaction sa = { .sa_handler = count_interruption };	/* no SA_RESTART */
	struct itimerval it = { { 0, usec }, { 0, usec } };

	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)(i * 7 + (i >> 9));
}

/* 4 MiB through a pipe, both ends interrupted by a signal every 200 us.
 * The first half: a fast writer (one call) and a slow reader, so the
 * writer's write(2)s are partial or EINTR; the second half: a slow writer
 * and a reader asking for all of it at once, so its read(2)s come back
 * short or EINTR.  Every byte arrives, in order; the end of the file is
 * -EIO. */
TEST(read_full_and_write_full_move_every_byte_through_short_counts_and_signals)
{
	const size_t n = 4u << 20, half = n / 2, piece = 64u << 10, chunk = 10000;
	unsigned char *buf = malloc(n);
	int p[2], status = -1;
	size_t i, off;
	pid_t pid;

	ASSERT_TRUE(buf && !pipe(p), "buffer and pipe");
	pid = fork();
	if (pid == 0) {
		unsigned char one;

		close(p[1]);
		interrupt_every(200);
		for (off = 0; off < half; off += piece) {
			if (kg_read_full(p[0], buf + off, piece))
				_exit(2);
			usleep(2000);
		}
		if (kg_read_full(p[0], buf + half, n - half))
			_exit(2);
		for (i = 0; i < n; i++)
			if (buf[i] != pattern_byte(i))
				_exit(3);
		_exit(kg_read_full(p[0], &one, 1) == -EIO ? 0 : 4);
	}
	close(p[0]);
	for (i = 0; i < n; i++)
		buf[i] = pattern_byte(i);
	interrupt_every(200);
	ASSERT_OK(kg_write_full(p[1], buf, half), "the first half in one call");
	for (off = half; off < n; off += chunk) {
		ASSERT_OK(kg_write_full(p[1], buf + off, off + chunk > n ? n - off : chunk),
			  "a chunk of the second half");
		usleep(300);
	}
	close(p[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ASSERT_TRUE(WIFEXITED(status), "reader exited");
	ASSERT_EQ(WEXITSTATUS(status), 0, "reader: 0 all read and in order, 2 read failed, "
		  "3 a byte differs, 4 end of file not -EIO");
	printf("  %d interruptions of the writer\n", (int)interruptions);
	free(buf);
}

TEST(read_full_and_write_full_report_errors)
{
	unsigned char b[4] = "abc";
	int p[2];

	ASSERT_EQ(kg_read_full(-1, b, 1), -EBADF, "read from a bad fd");
	ASSERT_EQ(kg_write_full(-1, b, 1), -EBADF, "write to a bad fd");
	ASSERT_OK(pipe(p), "pipe");
	ASSERT_EQ(kg_write_full(p[0], b, 1), -EBADF, "write to the read end");
	ASSERT_OK(kg_write_full(p[1], b, 3), "3 bytes");
	close(p[1]);
	ASSERT_EQ(kg_read_full(p[0], b, 4), -EIO, "the file ends before 4 bytes");
	close(p[0]);
	ASSERT_OK(pipe(p), "pipe");
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(kg_write_full(p[1], b, 3), -EPIPE, "no reader");
	close(p[1]);
	ASSERT_OK(kg_read_full(-1, b, 0), "nothing to read: nothing done");
	ASSERT_OK(kg_write_full(-1, b, 0), "nothing to write: nothing done");
}

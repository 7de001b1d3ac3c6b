// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/tail.c - follow the audit trail across rotation (see tail.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "record/audit.h"
#include "common.h"
#include "record/tail.h"

#define ACTIVE "audit.jsonl"
#define CHUNK (256u << 10)

struct kg_tail {
	char *dir;
	char active[4096];
	uint64_t seq;			/* last record taken (0 = none) */
	char hash[KG_TAIL_HASH_HEX + 1];/* its hash, "" when unknown */
	char want_hash[KG_TAIL_HASH_HEX + 1]; /* resume check pending */
	bool expect_next;		/* seq is known: a jump is a hole */
	int fd;				/* the active segment being followed */
	ino_t ino;
	uint64_t off;			/* first byte not yet taken */
	char *buf;			/* active-segment reader */
	size_t cap;
	char *gzline;			/* closed-segment reader */
	int ino_fd;			/* inotify, -1 = none (yet) */
	bool no_watch;			/* inotify failed: waits sleep */
	uint64_t missing, bad;
};

int kg_tail_parse_pos(const char *s, struct kg_tail_pos *out)
{
	const char *colon;
	char *end;
	size_t n, i;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "end")) {
		out->at_end = true;
		return 0;
	}
	if (!strcmp(s, "start"))
		return 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	out->seq = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (!*end)
		return 0;
	if (*end != ':')
		return -EINVAL;
	colon = end + 1;
	n = strlen(colon);
	if (n < 4 || n > KG_TAIL_HASH_HEX || !out->seq)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)colon[i]) || isupper((unsigned char)colon[i]))
			return -EINVAL;
	memcpy(out->hash, colon, n + 1);
	return 0;
}

uint64_t kg_tail_line_seq(const char *line, size_t len)
{
	static const char pre[] = "{\"seq\":";
	uint64_t v = 0;
	size_t i = sizeof(pre) - 1;

	if (len <= i || memcmp(line, pre, i) || !isdigit((unsigned char)line[i]))
		return 0;
	for (; i < len && isdigit((unsigned char)line[i]); i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	return v;
}

const char *kg_tail_line_hash(const char *line, size_t len)
{
	static const char mem[] = ",\"hash\":\"";
	size_t ml = sizeof(mem) - 1, i;
	const char *h;

	if (len < ml + KG_TAIL_HASH_HEX + 2 || line[len - 1] != '}' || line[len - 2] != '"')
		return NULL;
	h = line + len - 2 - KG_TAIL_HASH_HEX;
	if (memcmp(h - ml, mem, ml))
		return NULL;
	for (i = 0; i < KG_TAIL_HASH_HEX; i++)
		if (!isxdigit((unsigned char)h[i]))
			return NULL;
	return h;
}

static void set_hash(char *dst, const char *line, size_t len)
{
	const char *h = kg_tail_line_hash(line, len);

	if (h) {
		memcpy(dst, h, KG_TAIL_HASH_HEX);
		dst[KG_TAIL_HASH_HEX] = '\0';
	} else {
		dst[0] = '\0';
	}
}

/* One record line: the resume check, holes, then the caller.
 * 1 = taken, 0 = skipped (already delivered), -1 = caller stopped,
 * -ESTALE = resume check failed. */
static int take(struct kg_tail *t, const char *line, size_t len, kg_tail_fn fn, void *ctx)
{
	uint64_t seq = kg_tail_line_seq(line, len);

	if (!seq) {
		t->bad++;
		return 0;
	}
	if (t->want_hash[0]) {
		const char *h = kg_tail_line_hash(line, len);

		if (seq < t->seq)
			return 0;
		if (seq > t->seq || !h || strncmp(h, t->want_hash, strlen(t->want_hash))) {
			kg_err("audit: the record at the resume position (seq %" PRIu64 ") is %s: "
			       "the position is not from this trail", t->seq,
			       seq > t->seq ? "missing" : "another one");
			return -ESTALE;
		}
		t->want_hash[0] = '\0';
		set_hash(t->hash, line, len);
		t->expect_next = true;
		return 0;
	}
	if (seq <= t->seq)
		return 0;
	if (fn && fn(line, len, seq, ctx))
		return -1;
	if (t->expect_next && seq != t->seq + 1) {
		t->missing += seq - t->seq - 1;
		kg_warn("audit: records %" PRIu64 "..%" PRIu64 " are missing from the trail "
			"(kgate audit verify says why)", t->seq + 1, seq - 1);
	}
	t->seq = seq;
	t->expect_next = true;
	set_hash(t->hash, line, len);
	return 1;
}

/* ---- the active segment, through an open descriptor ---- */

static void close_active(struct kg_tail *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->off = 0;
}

static int open_active(struct kg_tail *t)
{
	struct stat st;

	close_active(t);
	t->fd = open(t->active, O_RDONLY | O_CLOEXEC);
	if (t->fd < 0)
		return -errno;
	if (fstat(t->fd, &st)) {
		close_active(t);
		return -errno;
	}
	t->ino = st.st_ino;
	return 0;
}

/* Reads the complete lines of the active segment from t->off on. */
static int read_active(struct kg_tail *t, kg_tail_fn fn, void *ctx, int *taken)
{
	size_t have = 0;

	for (;;) {
		ssize_t n;
		size_t start = 0, i;

		if (have == t->cap) {
			/* a line longer than the buffer: not a record */
			if (t->cap >= KG_AUDIT_MAX_LINE + CHUNK) {
				char *nl = NULL;

				t->bad++;
				/* skip to the next newline */
				while (!nl) {
					n = pread(t->fd, t->buf, t->cap, (off_t)t->off);
					if (n <= 0)
						return 0;
					nl = memchr(t->buf, '\n', (size_t)n);
					t->off += nl ? (uint64_t)(nl - t->buf + 1) : (uint64_t)n;
				}
				have = 0;
				continue;
			}
			char *nb = realloc(t->buf, t->cap ? t->cap * 2 : CHUNK);

			if (!nb)
				return -ENOMEM;
			t->buf = nb;
			t->cap = t->cap ? t->cap * 2 : CHUNK;
		}
		n = pread(t->fd, t->buf + have, t->cap - have, (off_t)(t->off + have));
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		if (n == 0)
			return 0;
		have += (size_t)n;
		for (i = 0; i < have; i++) {
			int r;

			if (t->buf[i] != '\n')
				continue;
			r = take(t, t->buf + start, i - start, fn, ctx);
			if (r < 0)
				return r == -1 ? 1 : r;	/* 1: stopped by the caller */
			*taken += r;
			t->off += i + 1 - start;
			start = i + 1;
		}
		memmove(t->buf, t->buf + start, have - start);
		have -= start;
	}
}

/* ---- closed segments ---- */

/* first seq of the active segment (0 = empty or absent) */
static uint64_t active_first(struct kg_tail *t)
{
	char buf[64];
	int fd = open(t->active, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	return n > 0 ? kg_tail_line_seq(buf, (size_t)n) : 0;
}

static bool closed_name(const char *path, uint64_t *first)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	if (strncmp(b, "audit-", 6) || !isdigit((unsigned char)b[6]))
		return false;
	*first = strtoull(b + 6, NULL, 10);
	return true;
}

static int read_closed(struct kg_tail *t, const char *path, kg_tail_fn fn, void *ctx, int *taken)
{
	gzFile g = gzopen(path, "rb");
	int err = 0;

	if (!g)
		return errno ? -errno : -ENOMEM;
	if (!t->gzline && !(t->gzline = malloc(KG_AUDIT_MAX_LINE + 2))) {
		gzclose(g);
		return -ENOMEM;
	}
	while (gzgets(g, t->gzline, KG_AUDIT_MAX_LINE + 2)) {
		size_t len = strlen(t->gzline);
		int r;

		if (!len || t->gzline[len - 1] != '\n') {
			/* too long (or the file's last line has no newline) */
			t->bad++;
			while (len && t->gzline[len - 1] != '\n' &&
			       gzgets(g, t->gzline, KG_AUDIT_MAX_LINE + 2))
				len = strlen(t->gzline);
			continue;
		}
		r = take(t, t->gzline, len - 1, fn, ctx);
		if (r < 0) {
			err = r == -1 ? 1 : r;
			break;
		}
		*taken += r;
	}
	gzclose(g);
	return err;
}

/* The next record is not in the open active segment (none open yet, or it
 * was rotated): read the closed segments that may hold it, then open the
 * active one. 1 = stopped by the caller, 0 = active open (or absent). */
static int catch_up(struct kg_tail *t, kg_tail_fn fn, void *ctx, int *taken)
{
	uint64_t want = t->want_hash[0] ? t->seq : t->seq + 1, first, afirst;
	char **paths = NULL;
	int n = 0, i, start = -1, err, tries = 0;

relist:
	start = -1;
	err = kg_audit_list_segments(t->dir, &paths, &n);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	afirst = active_first(t);
	/* the newest closed segment starting at or before want, unless the
	 * active one does */
	if (!afirst || afirst > want) {
		for (i = 0; i < n; i++) {
			if (!closed_name(paths[i], &first))
				continue;
			if (first <= want)
				start = i;
		}
		if (start < 0) {
			/* want is before every segment (a trail whose start was
			 * removed): begin at the oldest */
			for (i = 0; i < n && start < 0; i++)
				if (closed_name(paths[i], &first))
					start = i;
		}
	}
	for (i = start; start >= 0 && i < n; i++) {
		if (!closed_name(paths[i], &first))
			continue;
		err = read_closed(t, paths[i], fn, ctx, taken);
		if (err)
			break;
	}
	kg_audit_free_list(paths, n);
	paths = NULL;
	n = 0;
	if (err == -ENOENT && tries++ < 8) {
		/* a plain closed segment was compressed (and removed) between
		 * the listing and the open: list again, read its .gz */
		want = t->want_hash[0] ? t->seq : t->seq + 1;
		goto relist;
	}
	if (err)
		return err;
	err = open_active(t);
	return err == -ENOENT ? 0 : err;
}

int kg_tail_poll(struct kg_tail *t, kg_tail_fn fn, void *ctx)
{
	int taken = 0, err, rounds;
	struct stat st;

	for (rounds = 0; rounds < 64; rounds++) {
		if (t->fd < 0) {
			err = catch_up(t, fn, ctx, &taken);
			if (err)
				return err < 0 ? err : taken;
			if (t->fd < 0)
				return taken;	/* no active segment yet */
		}
		err = read_active(t, fn, ctx, &taken);
		if (err)
			return err < 0 ? err : taken;
		if (!stat(t->active, &st) && st.st_ino == t->ino) {
			if ((uint64_t)st.st_size < t->off) {
				/* cut shorter than what we took: another trail */
				close_active(t);
				continue;
			}
			return taken;
		}
		/* rotated (or removed): what was committed to it before the
		 * rename is complete now; read it, then move on */
		err = read_active(t, fn, ctx, &taken);
		if (err)
			return err < 0 ? err : taken;
		close_active(t);
	}
	return taken;
}

/* The directory's watch, made by the first wait: a follower that only
 * polls (kgate run's live view) never has one, because releasing an
 * inotify instance waits for an SRCU grace period (7-19 ms measured at
 * the exit of every job with a live view).  0 = made now, so changes
 * before it went unseen: the caller polls again before waiting. */
static int watch_dir(struct kg_tail *t)
{
	t->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (t->ino_fd < 0)
		return -errno;
	if (inotify_add_watch(t->ino_fd, t->dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO |
			      IN_MOVED_FROM | IN_CLOSE_WRITE) < 0) {
		int err = -errno;

		close(t->ino_fd);
		t->ino_fd = -1;
		return err;
	}
	return 0;
}

void kg_tail_wait(struct kg_tail *t, int timeout_ms)
{
	struct pollfd p = { .fd = t->ino_fd, .events = POLLIN };
	char evbuf[4096];

	if (t->ino_fd < 0 && !t->no_watch) {
		if (!watch_dir(t))
			return;
		t->no_watch = true;	/* no inotify here: sleep instead */
	}
	if (t->ino_fd < 0) {
		usleep((useconds_t)timeout_ms * 1000);
		return;
	}
	p.fd = t->ino_fd;
	if (poll(&p, 1, timeout_ms) > 0)
		while (read(t->ino_fd, evbuf, sizeof(evbuf)) > 0)
			;
}

/* Where "end" is: the newest record in the active segment (read backwards
 * from its end), else in the closed segments. */
static bool match_any(json_t *rec, void *ctx)
{
	(void)rec;
	(void)ctx;
	return true;
}

static int start_at_end(struct kg_tail *t)
{
	struct stat st;
	json_t *rec = NULL;
	const char *h;
	int err;

	err = open_active(t);
	if (!err && !fstat(t->fd, &st) && st.st_size > 0) {
		/* the last complete line: 64 KiB from the end hold it unless it
		 * is a long one (then up to the longest line a record may be) */
		size_t want = 64u << 10;

		for (;;) {
			size_t back = (uint64_t)st.st_size < want ? (size_t)st.st_size : want;
			char *b = malloc(back);
			size_t end = back, s0 = 0;
			bool found = false;
			ssize_t n;

			if (!b)
				return -ENOMEM;
			n = pread(t->fd, b, back, st.st_size - (off_t)back);
			if (n == (ssize_t)back) {
				while (end && b[end - 1] != '\n')	/* an unfinished line */
					end--;
				if (end) {
					s0 = end - 1;
					while (s0 && b[s0 - 1] != '\n')
						s0--;
					/* a line start, or the segment's start */
					found = s0 > 0 || back == (size_t)st.st_size;
				}
			}
			if (found) {
				t->seq = kg_tail_line_seq(b + s0, end - 1 - s0);
				set_hash(t->hash, b + s0, end - 1 - s0);
				t->off = (uint64_t)st.st_size - back + end;
				t->expect_next = t->seq != 0;
			}
			free(b);
			if (found || n != (ssize_t)back || back == (size_t)st.st_size ||
			    want >= KG_AUDIT_MAX_LINE + 2)
				break;
			want = KG_AUDIT_MAX_LINE + 2;
		}
		if (t->seq)
			return 0;
	}
	close_active(t);
	err = kg_audit_find_last(t->dir, NULL, match_any, NULL, 2, &rec);
	if (err && err != -ENOENT)
		return err;
	if (rec) {
		t->seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
		h = json_string_value(json_object_get(rec, "hash"));
		if (h && strlen(h) == KG_TAIL_HASH_HEX)
			memcpy(t->hash, h, KG_TAIL_HASH_HEX + 1);
		t->expect_next = t->seq != 0;
		json_decref(rec);
	}
	return 0;
}

struct kg_tail *kg_tail_open(const char *dir, const struct kg_tail_pos *from)
{
	struct kg_tail *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return NULL;
	t->fd = -1;
	t->ino_fd = -1;
	t->dir = strdup(dir ? dir : kg_audit_dir());
	if (!t->dir || kg_snprintf(t->active, sizeof(t->active), "%s/" ACTIVE, t->dir)) {
		err = t->dir ? ENAMETOOLONG : ENOMEM;
		kg_tail_close(t);
		errno = err;
		return NULL;
	}
	if (from && from->at_end) {
		err = start_at_end(t);
		if (err) {
			kg_tail_close(t);
			errno = -err;
			return NULL;
		}
	} else if (from) {
		t->seq = from->seq;
		memcpy(t->want_hash, from->hash, sizeof(t->want_hash));
		/* a position without a hash: trust it (holes after it count) */
		t->expect_next = !from->hash[0];
	} else {
		t->expect_next = true;	/* from the start: seq 1 comes first */
	}
	return t;
}

void kg_tail_close(struct kg_tail *t)
{
	if (!t)
		return;
	close_active(t);
	if (t->ino_fd >= 0)
		close(t->ino_fd);
	free(t->buf);
	free(t->gzline);
	free(t->dir);
	free(t);
}

void kg_tail_position(const struct kg_tail *t, char *buf, size_t size)
{
	if (t->hash[0])
		snprintf(buf, size, "%" PRIu64 ":%s", t->seq, t->hash);
	else
		snprintf(buf, size, "%" PRIu64, t->seq);
}

uint64_t kg_tail_seq(const struct kg_tail *t)
{
	return t->seq;
}

uint64_t kg_tail_missing(const struct kg_tail *t)
{
	return t->missing;
}

uint64_t kg_tail_bad(const struct kg_tail *t)
{
	return t->bad;
}

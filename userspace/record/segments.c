// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/segments.c - the trail's files: closed segments, compression, the line reader (segments.h). */
#include "record/audit.h"
#include "common.h"
#include "record/segments.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define READ_BUF		(256u << 10)

int kg_trail_path(char *buf, size_t size, const char *dir, const char *name)
{
	return kg_snprintf(buf, size, "%s/%s", dir, name) ? -ENAMETOOLONG : 0;
}

void kg_trail_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* ------------------------------------------------------------------ */
/* line reader over plain or gzip files (gzread reads both) */

int kg_lr_open(struct kg_line_reader *lr, const char *path)
{
	memset(lr, 0, sizeof(*lr));
	lr->path = path;
	lr->gz = gzopen(path, "rb");
	if (!lr->gz)
		return errno ? -errno : -ENOMEM;
	gzbuffer(lr->gz, 128 << 10);
	lr->rbuf = malloc(READ_BUF);
	lr->line = malloc(KG_AUDIT_MAX_LINE + 1);
	if (!lr->rbuf || !lr->line) {
		gzclose(lr->gz);
		free(lr->rbuf);
		free(lr->line);
		return -ENOMEM;
	}
	return 0;
}

void kg_lr_close(struct kg_line_reader *lr)
{
	if (lr->gz)
		gzclose(lr->gz);
	free(lr->rbuf);
	free(lr->line);
	lr->gz = NULL;
	lr->rbuf = lr->line = NULL;
}

/* 1 = a line in lr->line/len (NUL-terminated, newline stripped; see
 * lr->terminated), 0 = end, -E2BIG = an over-long line (skipped),
 * -EIO = read error (e.g. corrupt gzip). */
int kg_lr_next(struct kg_line_reader *lr)
{
	bool too_long = false;
	size_t n = 0;

	for (;;) {
		char *nl;
		size_t take;

		if (lr->rpos == lr->rlen) {
			int r;

			if (lr->eof)
				break;
			r = gzread(lr->gz, lr->rbuf, READ_BUF);
			if (r < 0)
				return -EIO;
			if (r == 0) {
				int zerr;

				gzerror(lr->gz, &zerr);
				if (zerr != Z_OK && zerr != Z_BUF_ERROR)
					return -EIO;
				lr->eof = true;
				break;
			}
			lr->rpos = 0;
			lr->rlen = (size_t)r;
		}
		nl = memchr(lr->rbuf + lr->rpos, '\n', lr->rlen - lr->rpos);
		take = nl ? (size_t)(nl - (lr->rbuf + lr->rpos)) : lr->rlen - lr->rpos;
		if (!too_long && n + take > KG_AUDIT_MAX_LINE)
			too_long = true;
		if (!too_long) {
			memcpy(lr->line + n, lr->rbuf + lr->rpos, take);
			n += take;
		}
		lr->rpos += take;
		if (nl) {
			lr->rpos++;
			lr->terminated = true;
			goto done;
		}
	}
	if (!n && !too_long)
		return 0;
	lr->terminated = false;
done:
	lr->lineno++;
	lr->line[too_long ? 0 : n] = '\0';
	lr->len = too_long ? 0 : n;
	return too_long ? -E2BIG : 1;
}

/* ------------------------------------------------------------------ */
/* segments */

/* "audit-<digits>.jsonl" or "audit-<digits>.jsonl.gz" */
static bool seg_name(const char *name, uint64_t *first, bool *gz)
{
	const char *p = name + 6;
	char *end;

	if (strncmp(name, "audit-", 6) || !isdigit((unsigned char)*p))
		return false;
	errno = 0;
	*first = strtoull(p, &end, 10);
	if (errno)
		return false;
	if (!strcmp(end, ".jsonl"))
		*gz = false;
	else if (!strcmp(end, ".jsonl.gz"))
		*gz = true;
	else
		return false;
	return true;
}

static int seg_cmp(const void *x, const void *y)
{
	const struct kg_seg *a = x, *b = y;

	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	return (int)b->gz - (int)a->gz;	/* .gz first: it is the finished copy */
}

void kg_trail_segs_free(struct kg_seg *s, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(s[i].path);
	free(s);
}

/* closed segments of dir sorted by first seq; duplicates (a plain copy
 * left next to its finished .gz by an interrupted rotation) dropped */
int kg_trail_list_closed(const char *dir, struct kg_seg **out, int *n_out)
{
	struct kg_seg *s = NULL, *ns;
	int n = 0, cap = 0, i, j, err = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		uint64_t first;
		bool gz;

		if (!seg_name(de->d_name, &first, &gz))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			ns = realloc(s, cap * sizeof(*s));
			if (!ns) {
				err = -ENOMEM;
				break;
			}
			s = ns;
		}
		s[n].first = first;
		s[n].gz = gz;
		if (asprintf(&s[n].path, "%s/%s", dir, de->d_name) < 0) {
			err = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (err) {
		kg_trail_segs_free(s, n);
		return err;
	}
	if (n)
		qsort(s, n, sizeof(*s), seg_cmp);
	for (i = 0, j = 0; i < n; i++) {
		if (j && s[j - 1].first == s[i].first) {
			free(s[i].path);
			continue;
		}
		s[j++] = s[i];
	}
	*out = s;
	*n_out = j;
	return 0;
}

/* Opens <plain>.gz.tmp and locks it: the right to compress plain. Several
 * may try at once (a writer's background compression, another process
 * finishing rotations at open); the lock makes it one at a time, and the
 * lock only counts while the name still points at the locked file (a
 * finished compressor renames its temporary away). -EALREADY: someone else
 * holds it or has finished. */
static int lock_compress_tmp(const char *tmp)
{
	struct stat held, named;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = errno == EWOULDBLOCK ? -EALREADY : -errno;

		close(fd);
		return err;
	}
	if (fstat(fd, &held) || stat(tmp, &named) || held.st_ino != named.st_ino ||
	    held.st_dev != named.st_dev) {
		close(fd);
		return -EALREADY;
	}
	return fd;
}

/* compresses plain into <plain>.gz (via a locked .tmp, fsync'ed), then
 * unlinks plain; 0 also when another compressor has it in hand */
int kg_trail_compress(const char *plain)
{
	char tmp[PATH_MAX + 48], dst[PATH_MAX + 48];
	char *buf = NULL;
	int in = -1, out = -1, err = 0;
	bool renamed = false;
	gzFile gz = NULL;
	ssize_t n;

	if (kg_snprintf(dst, sizeof(dst), "%s.gz", plain) ||
	    kg_snprintf(tmp, sizeof(tmp), "%s.gz.tmp", plain))
		return -ENAMETOOLONG;
	out = lock_compress_tmp(tmp);
	if (out == -EALREADY)
		return 0;
	if (out < 0)
		return out;
	in = open(plain, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		/* finished by someone else after our open; the tmp is ours */
		err = errno == ENOENT ? 0 : -errno;
		unlink(tmp);
		close(out);
		return err;
	}
	buf = malloc(READ_BUF);
	if (!buf || ftruncate(out, 0)) {
		err = !buf ? -ENOMEM : -errno;
		goto out;
	}
	gz = gzdopen(dup(out), "wb6");
	if (!gz) {
		err = -ENOMEM;
		goto out;
	}
	while ((n = read(in, buf, READ_BUF)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || gzwrite(gz, buf, (unsigned)n) != (int)n) {
			err = n < 0 ? -errno : -EIO;
			goto out;
		}
	}
	err = gzclose(gz) == Z_OK ? 0 : -EIO;
	gz = NULL;
	if (!err && fsync(out))
		err = -errno;
	if (!err && rename(tmp, dst))
		err = -errno;
	if (!err) {
		renamed = true;
		if (unlink(plain) && errno != ENOENT)
			err = -errno;
	}
out:
	if (gz)
		gzclose(gz);
	if (err && !renamed)
		unlink(tmp);	/* still ours: we hold its lock */
	close(in);
	close(out);		/* releases the lock */
	free(buf);
	return err;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/recover.c - where the chain continues after a crash or another writer (writer.h). */
#include "record/audit.h"
#include "common.h"
#include "record/segments.h"
#include "record/writer.h"

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

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* ------------------------------------------------------------------ */
/* tail handling: where does the chain continue? */

/* reads the record ending at end (exclusive, the '\n' of the last line
 * is at end-1) into a malloc'd buffer; returns its length or -errno */
static ssize_t read_line_before(int fd, uint64_t end, char **out)
{
	uint64_t start = end - 1, lo;
	size_t chunk = 64 << 10;
	char *buf = malloc(chunk);
	ssize_t len;

	if (!buf)
		return -ENOMEM;
	/* scan backwards for the newline before the last line */
	while (start > 0) {
		size_t want = start > chunk ? chunk : (size_t)start;
		ssize_t n;
		char *nl;

		lo = start - want;
		n = pread(fd, buf, want, (off_t)lo);
		if (n != (ssize_t)want) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		nl = memrchr(buf, '\n', want);
		if (nl) {
			start = lo + (uint64_t)(nl - buf) + 1;
			break;
		}
		start = lo;
		if (end - start > KG_AUDIT_MAX_LINE + 1) {
			free(buf);
			return -E2BIG;
		}
	}
	free(buf);
	len = (ssize_t)(end - 1 - start);
	buf = malloc((size_t)len + 1);
	if (!buf)
		return -ENOMEM;
	if (pread(fd, buf, (size_t)len, (off_t)start) != len) {
		free(buf);
		return -EIO;
	}
	buf[len] = '\0';
	*out = buf;
	return len;
}

/* The "recovery" record naming the torn bytes goes in front of everything
 * queued. When the sealed head was ahead of the last good record, the
 * records in between were lost in the crash: the record says which. */
static int queue_recovery_record(struct kg_audit *a, const struct kg_head_info *h)
{
	struct kg_audit_recovery *rc = &a->recovery;
	const char *name = strrchr(rc->moved_to, '/') ? strrchr(rc->moved_to, '/') + 1 : rc->moved_to;
	bool lost = h && h->seq > a->last_seq;
	char reason[320];
	json_t *extra;
	int err;

	snprintf(reason, sizeof(reason), "torn last line (%" PRIu64 " bytes at offset %" PRIu64
		 " of " ACTIVE_NAME ") moved aside; chain continues from seq %" PRIu64 "%s",
		 rc->length, rc->offset, a->last_seq,
		 lost ? "; records after it were lost in the crash" : "");
	extra = json_pack("{s:s,s:I,s:I,s:s}", "segment", ACTIVE_NAME,
			  "offset", (json_int_t)rc->offset, "torn_bytes", (json_int_t)rc->length,
			  "moved_to", name);
	if (extra && lost)
		json_object_set_new(extra, "lost_seqs", json_pack("[I,I]",
				    (json_int_t)a->last_seq + 1, (json_int_t)h->seq));
	if (!extra)
		return -ENOMEM;
	{
		struct kg_audit_rec r = {
			.type = "recovery", .actor_uid = -1, .pid = getpid(), .tid = -1,
			.op = "torn_tail", .target = name, .reason = reason,
			.mechanism = "controller", .extra = extra,
		};

		err = kg_trail_queue(a, &r, true);
	}
	json_decref(extra);
	return err;
}

/* The torn bytes after the last newline (a crash mid-write) are copied to
 * audit.torn-<offset>-<time> and fsync'ed, then cut off the segment; never
 * silently deleted. Called under the lock. Sets *cut when it did so. */
static int cut_torn_tail(struct kg_audit *a, uint64_t size, bool *cut)
{
	uint64_t off = 0, pos = size;
	char *buf = NULL, name[96], moved[PATH_MAX + 128];
	size_t chunk = 64 << 10;
	int out = -1, err = 0;
	char last;

	*cut = false;
	if (!size)
		return 0;
	if (pread(a->fd, &last, 1, (off_t)(size - 1)) != 1)
		return -EIO;
	if (last == '\n')
		return 0;
	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	while (pos > 0) {
		size_t want = pos > chunk ? chunk : (size_t)pos;
		char *nl;

		if (pread(a->fd, buf, want, (off_t)(pos - want)) != (ssize_t)want) {
			err = -EIO;
			goto out;
		}
		nl = memrchr(buf, '\n', want);
		if (nl) {
			off = pos - want + (uint64_t)(nl - buf) + 1;
			break;
		}
		pos -= want;
	}
	snprintf(name, sizeof(name), "audit.torn-%" PRIu64 "-%" PRIu64, off, kg_now_real_ns());
	if (kg_trail_path(moved, sizeof(moved), a->dir, name)) {
		err = -ENAMETOOLONG;
		goto out;
	}
	out = open(moved, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		err = -errno;
		goto out;
	}
	for (pos = off; pos < size && !err;) {
		size_t want = size - pos > chunk ? chunk : (size_t)(size - pos);

		if (pread(a->fd, buf, want, (off_t)pos) != (ssize_t)want)
			err = -EIO;
		else
			err = kg_write_full(out, buf, want);
		pos += want;
	}
	if (!err && fsync(out))
		err = -errno;
	/* only cut once the bytes are safely elsewhere */
	if (!err && ftruncate(a->fd, (off_t)off))
		err = -errno;
	if (!err && fsync(a->fd))
		err = -errno;
	if (err)
		goto out;
	kg_trail_fsync_dir(a->dir);
	kg_warn("audit: torn last line in %s (%" PRIu64 " bytes at offset %" PRIu64
		") moved to %s", a->active, size - off, off, moved);
	a->recovery.torn = true;
	a->recovery.offset = off;
	a->recovery.length = size - off;
	a->recovery.recovery_seq = 0;	/* set when committed */
	kg_strlcpy(a->recovery.moved_to, moved, sizeof(a->recovery.moved_to));
	*cut = true;
out:
	if (out >= 0)
		close(out);
	free(buf);
	return err;
}

/* last record of the newest closed segment, streamed (rarely needed: only
 * when the active segment is empty and the head is missing) */
static int tail_from_closed(struct kg_audit *a)
{
	struct kg_sealed_line sl;
	struct kg_line_reader lr;
	struct kg_seg *s = NULL;
	const char *why;
	int n = 0, err, r;
	bool found = false;

	err = kg_trail_list_closed(a->dir, &s, &n);
	if (err || !n) {
		kg_trail_segs_free(s, n);
		return err;
	}
	err = kg_lr_open(&lr, s[n - 1].path);
	if (!err) {
		while ((r = kg_lr_next(&lr)) != 0) {
			if (r == 1 && !kg_trail_parse_line(lr.line, lr.len, &sl, &why)) {
				a->last_seq = sl.seq;
				memcpy(a->last_hash, sl.hash, HASH_LEN);
				found = true;
			} else if (r == -EIO) {
				break;
			}
		}
		kg_lr_close(&lr);
	}
	kg_trail_segs_free(s, n);
	if (!err && !found)
		kg_warn("audit: cannot find the last record of the closed segments");
	return err;
}

/* Re-reads last seq + hash from the active segment (or head/closed ones). */
static int load_tail(struct kg_audit *a, uint64_t size)
{
	struct kg_head_info h;
	struct kg_sealed_line sl;
	const char *why;
	char *line = NULL;
	ssize_t len;
	int err;

	a->last_seq = 0;
	memset(a->last_hash, 0, HASH_LEN);
	if (!size) {
		err = kg_trail_head_read(a->head, &a->sealer, &h);
		if (!err) {
			a->last_seq = h.seq;
			memcpy(a->last_hash, h.hash, HASH_LEN);
			return 0;
		}
		return tail_from_closed(a);
	}
	len = read_line_before(a->fd, size, &line);
	if (len < 0)
		return kg_err("audit: cannot read the last record of %s: %s", a->active,
			      strerror((int)-len)), (int)len;
	err = kg_trail_parse_line(line, (size_t)len, &sl, &why);
	if (!err) {
		unsigned char mac[HASH_LEN];

		a->last_seq = sl.seq;
		memcpy(a->last_hash, sl.hash, HASH_LEN);
		if (kg_trail_line_seal(&a->sealer, sl.prev, line, (size_t)len, mac) ||
		    CRYPTO_memcmp(mac, sl.hash, HASH_LEN))
			kg_warn("audit: last record (seq %" PRIu64 ") of %s fails its seal; "
				"run 'kgate audit verify'", sl.seq, a->active);
	} else {
		kg_err("audit: last line of %s is not a record (%s); refusing to extend "
		       "the chain", a->active, why);
	}
	free(line);
	return err;
}

/* Under the lock: make sure we append to the current active segment and
 * know the chain's tail, re-reading it if someone else wrote since. */
int kg_trail_sync_tail(struct kg_audit *a)
{
	struct stat st;
	bool cut;
	int err, fd;

	if (stat(a->active, &st) || st.st_dev != a->dev || st.st_ino != a->ino || a->fd < 0) {
		fd = open(a->active, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return kg_err("audit: cannot open %s: %s", a->active, strerror(errno)), -errno;
		kg_trail_set_active_fd(a, fd);
		if (fstat(a->fd, &st))
			return -errno;
		a->dev = st.st_dev;
		a->ino = st.st_ino;
		a->known_size = UINT64_MAX;
	}
	if ((uint64_t)st.st_size == a->known_size)
		return 0;
	err = cut_torn_tail(a, (uint64_t)st.st_size, &cut);
	if (err)
		return kg_err("audit: cannot repair the torn tail of %s: %s", a->active,
			      strerror(-err)), err;
	if (fstat(a->fd, &st))
		return -errno;
	err = load_tail(a, (uint64_t)st.st_size);
	if (err)
		return err;
	if (cut) {
		struct kg_head_info h;
		bool have_head = !kg_trail_head_read(a->head, &a->sealer, &h);

		err = queue_recovery_record(a, have_head ? &h : NULL);
		if (err)
			return err;
	}
	a->known_size = (uint64_t)st.st_size;
	return 0;
}

/* The dir's key exists but there is no record and no head: the trail
 * written under it was removed.  Said at the first seq of what follows. */
int kg_trail_queue_missing(struct kg_audit *a)
{
	struct kg_audit_rec r = {
		.type = "recovery", .actor_uid = -1, .pid = getpid(), .tid = -1,
		.op = "trail_missing", .target = KEY_NAME, .mechanism = "controller",
		.reason = "the audit key existed but its trail had no records and no head: the "
			  "records written under this key were removed",
	};
	struct kg_head_info h;

	if (!a->own_key || a->last_seq || !kg_trail_head_read(a->head, &a->sealer, &h))
		return 0;
	kg_warn("audit: %s has its key but no records: the trail was removed (`kgate audit "
		"verify` reports it)", a->dir);
	return kg_trail_queue(a, &r, true);
}

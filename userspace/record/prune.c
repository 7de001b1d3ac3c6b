// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/prune.c - retention: the oldest closed segments removed behind a
 * sealed anchor (prune.h). */
#include "record/prune.h"
#include "record/audit.h"
#include "record/chain.h"
#include "record/segments.h"
#include "record/tail.h"
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define SECONDS_PER_DAY	86400ull

/* ------------------------------------------------------------------ */
/* the anchor */

static int anchor_mac(struct kg_sealer *s, uint64_t first, const char *prev_hex,
		      unsigned char out[HASH_LEN])
{
	char buf[128];
	struct kg_chunk c;

	snprintf(buf, sizeof(buf), ANCHOR_TAG "%" PRIu64 ":%s", first, prev_hex);
	c.p = buf;
	c.len = strlen(buf);
	return kg_sealer_mac(s, &c, 1, out);
}

int kg_trail_anchor_read(const char *dir, struct kg_sealer *s, struct kg_head_info *a)
{
	unsigned char mac[HASH_LEN], want[HASH_LEN];
	char path[PATH_MAX + 32];
	const char *prev, *machex;
	json_int_t first;
	json_t *o;
	char *txt;
	size_t len;
	int err = -EBADMSG;

	if (kg_trail_path(path, sizeof(path), dir, ANCHOR_NAME))
		return -ENAMETOOLONG;
	txt = kg_read_file(path, 4096, &len);
	if (!txt)
		return -errno;
	o = json_loads(txt, 0, NULL);
	free(txt);
	if (o && !json_unpack(o, "{s:I,s:s,s:s}", "first_seq", &first, "prev", &prev,
			      "mac", &machex) &&
	    first > 1 && strlen(prev) == HASH_HEX && strlen(machex) == HASH_HEX &&
	    !kg_hex_decode(prev, a->hash, HASH_LEN) && !kg_hex_decode(machex, want, HASH_LEN) &&
	    !anchor_mac(s, (uint64_t)first, prev, mac) && !CRYPTO_memcmp(mac, want, HASH_LEN)) {
		a->seq = (uint64_t)first;
		err = 0;
	}
	json_decref(o);
	return err;
}

/* temporary file, fsync, rename, fsync of the dir: the anchor is on disk
 * before any segment it stands for is removed */
static int anchor_write(const char *dir, struct kg_sealer *s, uint64_t first,
			const unsigned char prev[HASH_LEN])
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32], prev_hex[HASH_HEX + 1];
	char mac_hex[HASH_HEX + 1], line[256];
	unsigned char mac[HASH_LEN];
	int fd, err, n;

	if (kg_trail_path(path, sizeof(path), dir, ANCHOR_NAME) ||
	    kg_trail_path(tmp, sizeof(tmp), dir, ANCHOR_NAME ".tmp"))
		return -ENAMETOOLONG;
	kg_hex_encode(prev, HASH_LEN, prev_hex);
	err = anchor_mac(s, first, prev_hex, mac);
	if (err)
		return err;
	kg_hex_encode(mac, HASH_LEN, mac_hex);
	n = snprintf(line, sizeof(line), "{\"first_seq\":%" PRIu64 ",\"prev\":\"%s\",\"mac\":\"%s\"}\n",
		     first, prev_hex, mac_hex);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	err = kg_write_full(fd, line, (size_t)n);
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	kg_trail_fsync_dir(dir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* what may go */

/* the first record of a segment; -ENODATA when it has none */
static int first_record(const char *path, struct kg_sealed_line *sl)
{
	struct kg_line_reader lr;
	const char *why;
	int r;

	r = kg_lr_open(&lr, path);
	if (r)
		return r;
	r = kg_lr_next(&lr);
	if (r == 1)
		r = lr.terminated ? kg_trail_parse_line(lr.line, lr.len, sl, &why) : -ENODATA;
	else
		r = r ? r : -ENODATA;
	kg_lr_close(&lr);
	return r < 0 ? r : (r ? -EBADMSG : 0);
}

/* the seq of the last record the exporter shipped (its position file) */
static int shipped_seq(const char *posfile, uint64_t *seq)
{
	struct kg_tail_pos pos;
	size_t len;
	char *txt;
	int err;

	txt = kg_read_file(posfile, 256, &len);
	if (!txt) {
		err = -errno;
		return kg_err("audit: prune: cannot read the position file %s: %s", posfile,
			      strerror(-err)), err;
	}
	while (len && (txt[len - 1] == '\n' || txt[len - 1] == ' '))
		txt[--len] = '\0';
	err = kg_tail_parse_pos(txt, &pos);
	if (err || pos.at_end)
		kg_err("audit: prune: %s holds '%s', not a position N or N:HASH", posfile, txt);
	free(txt);
	if (err || pos.at_end)
		return -EINVAL;
	*seq = pos.seq;
	return 0;
}

struct plan {
	struct kg_seg *segs;
	int n;
	uint64_t *bytes;		/* each closed segment's size */
	time_t *closed_at;		/* each closed segment's mtime */
	uint64_t active_first;		/* 0: the active segment has no record */
	uint64_t total;			/* every segment, the active one included */
	uint64_t anchor_first;		/* 0: no anchor */
	uint64_t shipped;		/* UINT64_MAX: no position file */
};

static void plan_free(struct plan *p)
{
	kg_trail_segs_free(p->segs, p->n);
	free(p->bytes);
	free(p->closed_at);
}

static int plan_load(const char *dir, struct plan *p)
{
	char active[PATH_MAX + 32];
	struct kg_sealed_line sl;
	struct stat st;
	int i, err;

	err = kg_trail_list_closed(dir, &p->segs, &p->n);
	if (err)
		return err;
	p->bytes = calloc(p->n + 1, sizeof(*p->bytes));
	p->closed_at = calloc(p->n + 1, sizeof(*p->closed_at));
	if (!p->bytes || !p->closed_at)
		return -ENOMEM;
	for (i = 0; i < p->n; i++) {
		if (stat(p->segs[i].path, &st))
			return -errno;
		p->bytes[i] = (uint64_t)st.st_size;
		p->closed_at[i] = st.st_mtime;
		p->total += p->bytes[i];
	}
	if (kg_trail_path(active, sizeof(active), dir, ACTIVE_NAME))
		return -ENAMETOOLONG;
	if (!stat(active, &st))
		p->total += (uint64_t)st.st_size;
	err = first_record(active, &sl);
	if (!err)
		p->active_first = sl.seq;
	return err == -ENOENT || err == -ENODATA ? 0 : err;
}

/* the seq after segment i's last record; 0 when unknown */
static uint64_t seg_end(const struct plan *p, int i)
{
	return i + 1 < p->n ? p->segs[i + 1].first : p->active_first;
}

/* segment i, the oldest left, may go: compressed (a plain one may still
 * be compressing, which would bring it back), followed by a known record,
 * shipped, and either left over from an earlier prune or past a bound */
static bool may_go(const struct plan *p, int i, uint64_t left, const struct kg_audit_prune_opts *o,
		   time_t now)
{
	uint64_t end = seg_end(p, i);

	if (!p->segs[i].gz || !end)
		return false;
	if (p->shipped != UINT64_MAX && end - 1 > p->shipped)
		return false;
	if (p->anchor_first && end <= p->anchor_first)
		return true;
	if (o->by_days && p->closed_at[i] + (time_t)(o->keep_days * SECONDS_PER_DAY) < now)
		return true;
	return o->by_bytes && left > o->keep_bytes;
}

/* how many of the oldest segments go (a prefix: the trail stays one chain) */
static int plan_count(const struct plan *p, const struct kg_audit_prune_opts *o, time_t now)
{
	uint64_t left = p->total;
	int k = 0;

	while (k < p->n && may_go(p, k, left, o, now))
		left -= p->bytes[k++];
	return k;
}

/* ------------------------------------------------------------------ */
/* the prune */

static int lock_open(const char *dir)
{
	char path[PATH_MAX + 32];
	int fd, err;

	if (kg_trail_path(path, sizeof(path), dir, LOCK_NAME))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX)) {
		if (errno != EINTR) {
			err = -errno;
			close(fd);
			return err;
		}
	}
	return fd;
}

/* a finished .gz may have its plain copy left next to it (an interrupted
 * rotation); both go */
static void remove_segment(const struct kg_seg *s)
{
	size_t len = strlen(s->path);

	unlink(s->path);
	if (s->gz && len > 3) {
		char plain[PATH_MAX + 32];

		if (!kg_snprintf(plain, sizeof(plain), "%.*s", (int)(len - 3), s->path))
			unlink(plain);
	}
}

/* under the lock: the anchor at the first kept record, then the removals */
static int prune_locked(const char *dir, struct kg_sealer *s, const struct kg_audit_prune_opts *o,
			struct plan *p, struct kg_audit_prune_result *res)
{
	struct kg_head_info anchor;
	struct kg_sealed_line sl;
	char active[PATH_MAX + 32];
	int k, i, err;

	err = kg_trail_anchor_read(dir, s, &anchor);
	if (err && err != -ENOENT)
		return kg_err("audit: prune: %s/%s is not valid: %s", dir, ANCHOR_NAME,
			      strerror(-err)), err;
	p->anchor_first = err ? 0 : anchor.seq;
	err = plan_load(dir, p);
	if (err)
		return kg_err("audit: prune: cannot read the segments of %s: %s", dir,
			      strerror(-err)), err;
	k = plan_count(p, o, o->now ? o->now : time(NULL));
	if (!k)
		return 0;
	if (kg_trail_path(active, sizeof(active), dir, ACTIVE_NAME))
		return -ENAMETOOLONG;
	err = first_record(k < p->n ? p->segs[k].path : active, &sl);
	if (!err && sl.seq != seg_end(p, k - 1))
		err = -EBADMSG;
	if (err)
		return kg_err("audit: prune: the first record to keep (seq %" PRIu64 ") cannot be "
			      "read: %s", seg_end(p, k - 1), strerror(-err)), err;
	err = anchor_write(dir, s, sl.seq, sl.prev);
	if (err)
		return kg_err("audit: prune: cannot write %s/%s: %s", dir, ANCHOR_NAME,
			      strerror(-err)), err;
	for (i = 0; i < k; i++) {
		remove_segment(&p->segs[i]);
		res->bytes += p->bytes[i];
	}
	kg_trail_fsync_dir(dir);
	res->segments = (unsigned)k;
	res->records = sl.seq - p->segs[0].first;
	res->first_seq = sl.seq;
	return 0;
}

/* the trail says what was removed, sealed like every record */
static int record_prune(const char *dir, const struct kg_audit_prune_result *res)
{
	struct kg_audit_opts ao = { .sync = KG_AUDIT_SYNC_RECORD };
	struct kg_audit *a = kg_audit_open(dir, &ao);
	json_t *extra;
	struct kg_rec r;
	int err;

	if (!a)
		return -errno;
	extra = json_pack("{s:I,s:I,s:I,s:I,s:s}", "first_seq", (json_int_t)res->first_seq,
			  "segments", (json_int_t)res->segments, "records", (json_int_t)res->records,
			  "bytes", (json_int_t)res->bytes, "anchor", ANCHOR_NAME);
	kg_rec_init(&r, "controller");
	kg_rec_str(&r, "op", "trail_pruned");
	kg_rec_int(&r, "actor.uid", getuid());
	kg_rec_str(&r, "decision", "allow");
	kg_rec_str(&r, "mechanism", "controller");
	kg_rec_str(&r, "reason", "retention: the oldest closed segments were removed");
	kg_rec_extra(&r, extra);
	err = extra ? kg_rec_append(a, &r) : -ENOMEM;
	kg_audit_close(a);
	json_decref(extra);
	return err;
}

static int prune_verified(const char *dir)
{
	struct kg_audit_verify_result vr;
	int err = kg_audit_verify_dir(dir, NULL, &vr);

	if (err)
		return kg_err("audit: prune: cannot verify %s: %s", dir, strerror(-err)), err;
	if (!vr.ok)
		return kg_err("audit: prune: the trail does not verify (seq %" PRIu64 " in %s: %s); "
			      "nothing removed", vr.bad_seq, vr.bad_file, vr.reason), -EBADMSG;
	return 0;
}

int kg_audit_prune(const char *dir, const struct kg_audit_prune_opts *o,
		   struct kg_audit_prune_result *res)
{
	char keypath[PATH_MAX + 32];
	unsigned char key[KEY_LEN];
	struct plan p = { .shipped = UINT64_MAX };
	struct kg_sealer s;
	int err, fd;

	memset(res, 0, sizeof(*res));
	if (!dir)
		dir = kg_audit_dir();
	if (o->position_file && shipped_seq(o->position_file, &p.shipped))
		return -EINVAL;
	err = prune_verified(dir);
	if (err)
		return err;
	if (kg_trail_path(keypath, sizeof(keypath), dir, KEY_NAME))
		return -ENAMETOOLONG;
	err = kg_trail_key_load(keypath, false, key);
	if (!err) {
		err = kg_sealer_init(&s, key);
		OPENSSL_cleanse(key, sizeof(key));
	}
	if (err)
		return kg_err("audit: prune: cannot load %s: %s", keypath, strerror(-err)), err;
	fd = lock_open(dir);
	if (fd < 0) {
		kg_sealer_free(&s);
		return kg_err("audit: prune: cannot lock %s: %s", dir, strerror(-fd)), fd;
	}
	err = prune_locked(dir, &s, o, &p, res);
	close(fd);
	plan_free(&p);
	kg_sealer_free(&s);
	if (!err && res->segments && (err = record_prune(dir, res)))
		kg_err("audit: prune: segments removed but the trail_pruned record could not be "
		       "written: %s", strerror(-err));
	return err;
}

int kg_audit_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (!*end) {
		*out = v;
		return 0;
	}
	u = strchr(units, *end);
	if (!u || !*u || (end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B")))
		return -EINVAL;
	shift = 10 * (int)(u - units + 1);
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/writer.c - an open trail: queue, commit, head, rotation, open and close (writer.h). */
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

#define DEF_FLUSH_RECORDS	64
#define DEF_FLUSH_MS		5
#define DEF_ROTATE_BYTES	(64ull << 20)

static int lock_trail(struct kg_audit *a)
{
	while (flock(a->lockfd, LOCK_EX)) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static void unlock_trail(struct kg_audit *a)
{
	flock(a->lockfd, LOCK_UN);
}

/* Builds r's members into the queue (in front of it for the recovery
 * record, which must take the first seq). */
int kg_trail_queue(struct kg_audit *a, const struct kg_audit_rec *r, bool front)
{
	size_t off = a->bodies.len;
	int err;

	if (a->npending == a->cap) {
		unsigned ncap = a->cap ? a->cap * 2 : 64;
		struct kg_pend *np = realloc(a->pending, ncap * sizeof(*np));

		if (!np)
			return -ENOMEM;
		a->pending = np;
		a->cap = ncap;
	}
	err = kg_audit_build_members(&a->bodies, &a->tcache, r);
	if (err) {
		a->bodies.len = off;	/* nothing of it stays queued */
		a->bodies.err = 0;
		return err;
	}
	if (!a->npending)
		a->first_pending_mono = kg_now_mono_ns();
	if (front) {
		memmove(a->pending + 1, a->pending, a->npending * sizeof(*a->pending));
		a->pending[0] = (struct kg_pend){ off, a->bodies.len - off };
	} else {
		a->pending[a->npending] = (struct kg_pend){ off, a->bodies.len - off };
	}
	a->npending++;
	return 0;
}

/* The head is rewritten in place with one fixed-size pwrite (well below a
 * sector) instead of write-temp-and-rename: creating an inode per group
 * commit cost more than everything else together. Readers take the lock
 * (shared) so they never see a half-written head. */
#define HEAD_SIZE 256

static int head_write(struct kg_audit *a)
{
	char hex[HASH_HEX + 1], machex[HASH_HEX + 1], line[HEAD_SIZE];
	unsigned char mac[HASH_LEN];
	int n, err;

	kg_hex_encode(a->last_hash, HASH_LEN, hex);
	err = kg_trail_head_mac(&a->sealer, a->last_seq, hex, mac);
	if (err)
		return err;
	kg_hex_encode(mac, HASH_LEN, machex);
	n = snprintf(line, sizeof(line), "{\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"mac\":\"%s\"}",
		     a->last_seq, hex, machex);
	if (n < 0 || n >= HEAD_SIZE)
		return -EOVERFLOW;
	memset(line + n, ' ', HEAD_SIZE - 1 - n);
	line[HEAD_SIZE - 1] = '\n';
	if (pwrite(a->headfd, line, HEAD_SIZE, 0) != HEAD_SIZE)
		return -EIO;
	/* per-record sync pays for a durable head too; group/none do not */
	if (a->o.sync == KG_AUDIT_SYNC_RECORD && fdatasync(a->headfd))
		return -errno;
	return 0;
}

/* Finishes rotations a crash interrupted: compress plain closed segments
 * (or drop a plain copy whose .gz is complete). Called under the lock. */
static void finish_rotations(struct kg_audit *a)
{
	struct kg_seg *s = NULL;
	int n = 0, i, err;

	if (kg_trail_list_closed(a->dir, &s, &n))
		return;
	for (i = 0; i < n; i++) {
		char gzpath[PATH_MAX + 48];
		struct stat st;

		if (s[i].gz)
			continue;
		snprintf(gzpath, sizeof(gzpath), "%s.gz", s[i].path);
		if (!stat(gzpath, &st))
			err = unlink(s[i].path) ? -errno : 0;
		else
			err = kg_trail_compress(s[i].path);
		if (err)
			kg_warn("audit: cannot finish compressing %s: %s", s[i].path, strerror(-err));
	}
	kg_trail_segs_free(s, n);
}

/* {"seq":N,"prev":"<hex>",  into out (enough room reserved by the caller) */
static size_t line_prefix(char *out, uint64_t seq, const unsigned char *prev)
{
	size_t n = 0;

	memcpy(out, "{\"seq\":", 7);
	n = 7;
	n += kg_fmt_u64(out + n, seq);
	memcpy(out + n, ",\"prev\":\"", 9);
	n += 9;
	kg_hex_encode(prev, HASH_LEN, out + n);
	n += HASH_HEX;
	memcpy(out + n, "\",", 2);
	return n + 2;
}

/* Seals the queued records into lines in a->out (replacing its contents);
 * hash_out gets the last record's hash. */
static int seal_pending(struct kg_audit *a, unsigned char *hash_out)
{
	unsigned char prev[HASH_LEN], mac[HASH_LEN];
	uint64_t seq = a->last_seq;
	struct kg_jbuf *o = &a->out;
	unsigned i;

	o->len = 0;
	o->err = 0;
	memcpy(prev, a->last_hash, HASH_LEN);
	for (i = 0; i < a->npending; i++) {
		const struct kg_pend *pd = &a->pending[i];
		size_t start = o->len;
		struct kg_chunk c[3];
		int err;

		if (!kg_jb_reserve(o, 100 + pd->len + SUFFIX_LEN + 2))
			return o->err;
		o->len += line_prefix(o->p + o->len, ++seq, prev);
		memcpy(o->p + o->len, a->bodies.p + pd->off, pd->len);
		o->len += pd->len;
		/* sealed: prev_raw || the line so far || "}" */
		c[0] = (struct kg_chunk){ prev, HASH_LEN };
		c[1] = (struct kg_chunk){ o->p + start, o->len - start };
		c[2] = (struct kg_chunk){ "}", 1 };
		err = kg_sealer_mac(&a->sealer, c, 3, mac);
		if (err)
			return err;
		memcpy(prev, mac, HASH_LEN);
		memcpy(o->p + o->len, SEAL_KEY, SEAL_KEY_LEN);
		o->len += SEAL_KEY_LEN;
		kg_hex_encode(prev, HASH_LEN, o->p + o->len);
		o->len += HASH_HEX;
		memcpy(o->p + o->len, "\"}\n", 3);
		o->len += 3;
	}
	memcpy(hash_out, prev, HASH_LEN);
	return 0;
}

static int read_first_seq(int fd, uint64_t *first)
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	unsigned long long v;

	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "{\"seq\":%llu,", &v) != 1)
		return -EBADMSG;
	*first = v;
	return 0;
}

/* Compression of a closed segment (~0.7 s of CPU per 64 MiB) runs in a
 * thread of its own: done under the trail lock it stalled every writer,
 * the event consumer included. It needs no lock (see kg_trail_compress);
 * readers take the plain copy until the .gz is complete. One at a time: a
 * rotation waits for the previous compression, which bounds the backlog. */
struct kg_compressor {
	struct kg_audit *a;
	pthread_t thread;
	pid_t owner;
	char *path;
};

static void *compressor_main(void *arg)
{
	struct kg_compressor *z = arg;
	int err = kg_trail_compress(z->path);

	if (err)
		kg_warn("audit: cannot compress %s (kept plain): %s", z->path, strerror(-err));
	else
		kg_trail_fsync_dir(z->a->dir);
	return NULL;
}

static void compressor_wait(struct kg_audit *a)
{
	struct kg_compressor *z = a->zip;

	if (!z)
		return;
	if (z->owner == getpid())	/* else the parent's: forked, not ours to join */
		pthread_join(z->thread, NULL);
	free(z->path);
	free(z);
	a->zip = NULL;
}

static void compress_later(struct kg_audit *a, const char *closed)
{
	struct kg_compressor *z;
	int err;

	compressor_wait(a);
	z = a->zip ? NULL : calloc(1, sizeof(*z));
	if (z) {
		z->a = a;
		z->owner = getpid();
		z->path = strdup(closed);
		err = z->path ? pthread_create(&z->thread, NULL, compressor_main, z) : ENOMEM;
		if (!err) {
			a->zip = z;
			return;
		}
		free(z->path);
		free(z);
	}
	/* no thread (or a forked child): compress here */
	err = kg_trail_compress(closed);
	if (err)
		kg_warn("audit: cannot compress %s (kept plain): %s", closed, strerror(-err));
	else
		kg_trail_fsync_dir(a->dir);
}

/* Closes the active segment as audit-<first>.jsonl; compression follows in
 * the background. Called under the lock, after the head is up to date. */
static int rotate(struct kg_audit *a)
{
	char closed[PATH_MAX + 64], name[64];
	uint64_t first;
	int err;

	err = read_first_seq(a->fd, &first);
	if (err)
		return kg_err("audit: cannot rotate %s: unreadable first record", a->active), err;
	snprintf(name, sizeof(name), "audit-%" PRIu64 ".jsonl", first);
	if (kg_trail_path(closed, sizeof(closed), a->dir, name))
		return -ENAMETOOLONG;
	if (a->o.sync != KG_AUDIT_SYNC_NONE && fsync(a->fd))
		return -errno;
	if (rename(a->active, closed))
		return kg_err("audit: cannot rotate %s: %s", a->active, strerror(errno)), -errno;
	kg_trail_set_active_fd(a, -1);	/* kg_trail_sync_tail opens a fresh active segment */
	kg_trail_fsync_dir(a->dir);
	compress_later(a, closed);
	return 0;
}

static void drop_pending(struct kg_audit *a)
{
	a->npending = 0;
	a->bodies.len = 0;
	if (a->bodies.cap > (4u << 20)) {	/* one huge record: give it back */
		kg_jb_free(&a->bodies);
		kg_jb_free(&a->out);
	}
}

/* Durability of one written group, per the sync setting. */
static int sync_written(struct kg_audit *a)
{
	switch (a->o.sync) {
	case KG_AUDIT_SYNC_NONE:
		return 0;
	case KG_AUDIT_SYNC_GROUP:
		if (kg_syncer_here(a))
			return kg_syncer_note_write(a);
		/* forked with the handle: no thread here, sync inline */
		return fdatasync(a->fd) ? -errno : 0;
	default:
		return fdatasync(a->fd) ? -errno : 0;
	}
}

/* The dir's own key is created with the trail's first record, under the
 * lock, not when a handle is opened: so a key in the dir means records were
 * written under it, and a key with no trail left is a trail that was
 * removed (kg_trail_queue_missing, and `verify` fails).  Loads the key once
 * it exists; creates it when `create`. */
static int ensure_key(struct kg_audit *a, bool create)
{
	unsigned char key[KEY_LEN];
	int err;

	if (a->have_key)
		return 0;
	if (!create && access(a->keypath, F_OK) && errno == ENOENT)
		return 0;	/* no trail yet */
	err = kg_trail_key_load(a->keypath, create, key);
	if (!err)
		err = kg_sealer_init(&a->sealer, key);
	OPENSSL_cleanse(key, sizeof(key));
	if (!err)
		a->have_key = true;
	return err;
}

/* Under the lock: write the queued records as one append. */
static int commit_locked(struct kg_audit *a)
{
	unsigned char last[HASH_LEN];
	bool had_recovery;
	uint64_t before;
	int err, serr;

	err = ensure_key(a, a->npending > 0);
	if (err || !a->have_key)
		return err;	/* without a key nothing was written or queued */
	err = kg_trail_sync_tail(a);
	if (err)
		return err;
	/* a recovery record kg_trail_sync_tail queued is first in line */
	had_recovery = a->recovery.torn && !a->recovery.recovery_seq;
	if (!a->npending)
		return 0;
	before = a->last_seq;
	err = seal_pending(a, last);
	if (err)
		return err;
	err = kg_write_full(a->fd, a->out.p, a->out.len);
	if (!err && a->o.sync == KG_AUDIT_SYNC_RECORD && fdatasync(a->fd))
		err = -errno;
	if (err) {
		/* leave no partial line behind; the records stay queued */
		if (ftruncate(a->fd, (off_t)a->known_size))
			kg_warn("audit: cannot undo a partial write to %s", a->active);
		/* a full disk fails every retry the same way: say it once */
		if (err != a->write_err)
			kg_err("audit: cannot write %s: %s (records stay queued)", a->active,
			       strerror(-err));
		a->write_err = err;
		return err;
	}
	a->write_err = 0;
	a->last_seq = before + a->npending;
	memcpy(a->last_hash, last, HASH_LEN);
	a->known_size += (uint64_t)a->out.len;
	if (had_recovery)
		a->recovery.recovery_seq = before + 1;
	drop_pending(a);
	/* written: from here on the records are the chain's, whatever follows */
	if (a->o.sync != KG_AUDIT_SYNC_RECORD)
		err = sync_written(a);
	serr = head_write(a);
	if (serr)
		kg_warn("audit: cannot update %s: %s", a->head, strerror(-serr));
	if (a->known_size >= a->o.rotate_bytes)
		rotate(a);
	return err;
}

static int commit(struct kg_audit *a)
{
	int err = lock_trail(a);

	if (err)
		return err;
	err = commit_locked(a);
	unlock_trail(a);
	return err ? err : kg_syncer_take_error(a);
}

static void free_writer(struct kg_audit *a)
{
	compressor_wait(a);
	drop_pending(a);
	free(a->pending);
	kg_jb_free(&a->bodies);
	kg_jb_free(&a->out);
	if (a->fd >= 0)
		close(a->fd);
	if (a->lockfd >= 0)
		close(a->lockfd);
	if (a->headfd >= 0)
		close(a->headfd);
	kg_sealer_free(&a->sealer);
	/* a forked child must not touch what its parent's thread may hold */
	if (kg_syncer_here(a))
		kg_syncer_destroy(&a->sync);
	free(a);
}

/* Anything of a trail in a->dir: records in the active or a closed
 * segment, or a head. */
static bool trail_has_content(struct kg_audit *a)
{
	struct kg_seg *segs = NULL;
	struct stat st;
	int n = 0;

	if ((!stat(a->active, &st) && st.st_size) || (!stat(a->head, &st) && st.st_size))
		return true;
	if (kg_trail_list_closed(a->dir, &segs, &n))
		return true;	/* cannot tell: do as if */
	kg_trail_segs_free(segs, n);
	return n > 0;
}

struct kg_audit *kg_audit_open(const char *dir, const struct kg_audit_opts *opts)
{
	char lockpath[PATH_MAX + 32];
	struct kg_audit *a;
	int err;

	if (!dir)
		dir = kg_audit_dir();
	a = calloc(1, sizeof(*a));
	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	a->fd = a->lockfd = a->headfd = -1;
	err = kg_syncer_init(&a->sync);
	if (err) {
		free(a);
		errno = -err;
		return NULL;
	}
	if (opts)
		a->o = *opts;
	if (!a->o.flush_every_records)
		a->o.flush_every_records = DEF_FLUSH_RECORDS;
	if (!a->o.flush_interval_ms)
		a->o.flush_interval_ms = DEF_FLUSH_MS;
	if (!a->o.rotate_bytes)
		a->o.rotate_bytes = DEF_ROTATE_BYTES;
	a->o.key_path = NULL;	/* not kept: the caller owns the string */
	err = kg_strlcpy(a->dir, dir, sizeof(a->dir)) ? -ENAMETOOLONG : 0;
	if (!err)
		err = kg_trail_path(a->active, sizeof(a->active), dir, ACTIVE_NAME);
	if (!err)
		err = kg_trail_path(a->head, sizeof(a->head), dir, HEAD_NAME);
	if (!err)
		err = kg_trail_path(lockpath, sizeof(lockpath), dir, LOCK_NAME);
	if (!err)
		err = opts && opts->key_path ?
			(kg_strlcpy(a->keypath, opts->key_path, sizeof(a->keypath)) ? -ENAMETOOLONG : 0) :
			kg_trail_path(a->keypath, sizeof(a->keypath), dir, KEY_NAME);
	a->own_key = !opts || !opts->key_path;
	if (err) {
		kg_err("audit: path too long: %s", dir);
		goto fail;
	}
	err = kg_mkdir_p(dir, 0700);
	if (err) {
		kg_err("audit: cannot create %s: %s", dir, strerror(-err));
		goto fail;
	}
	a->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (a->lockfd < 0) {
		err = -errno;
		kg_err("audit: cannot open %s: %s", lockpath, strerror(errno));
		goto fail;
	}
	err = lock_trail(a);
	if (err)
		goto fail;
	/* a trail without its key, or a key given from elsewhere: as before,
	 * load or create it now; an empty dir gets its key with its first
	 * record (ensure_key) */
	err = ensure_key(a, !a->own_key || trail_has_content(a));
	if (!err) {
		a->headfd = open(a->head, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (a->headfd < 0) {
			err = -errno;
			kg_err("audit: cannot open %s: %s", a->head, strerror(errno));
		}
	}
	a->known_size = UINT64_MAX;
	if (!err)
		finish_rotations(a);
	if (!err && a->have_key) {
		err = kg_trail_sync_tail(a);
		if (!err)
			err = kg_trail_queue_missing(a);
		if (!err)	/* repairs a torn tail and seals the recovery record */
			err = commit_locked(a);
	}
	unlock_trail(a);
	if (err)
		goto fail;
	return a;
fail:
	kg_syncer_stop(a);
	free_writer(a);
	errno = -err;
	return NULL;
}

static bool due(const struct kg_audit *a)
{
	if (!a->npending)
		return false;
	if (a->o.sync == KG_AUDIT_SYNC_RECORD || a->npending >= a->o.flush_every_records)
		return true;
	return kg_now_mono_ns() - a->first_pending_mono >=
	       (uint64_t)a->o.flush_interval_ms * 1000000ull;
}

int kg_audit_append(struct kg_audit *a, const struct kg_audit_rec *r)
{
	int err;

	if (!a || !r)
		return -EINVAL;
	err = kg_trail_queue(a, r, false);
	if (err)
		return err;
	return due(a) ? commit(a) : 0;
}

int kg_audit_queue(struct kg_audit *a, const struct kg_audit_rec *r)
{
	if (!a || !r)
		return -EINVAL;
	return kg_trail_queue(a, r, false);
}

int kg_audit_flush(struct kg_audit *a)
{
	if (!a)
		return -EINVAL;
	return a->npending ? commit(a) : kg_syncer_take_error(a);
}

int kg_audit_sync(struct kg_audit *a)
{
	int err, serr = 0;

	if (!a)
		return -EINVAL;
	err = kg_audit_flush(a);
	if (err)
		return err;
	if (a->fd >= 0 && fdatasync(a->fd))
		serr = -errno;
	if (!serr && a->sync.started && kg_syncer_here(a)) {
		pthread_mutex_lock(&a->sync.mu);
		a->sync.done = a->sync.written;
		pthread_mutex_unlock(&a->sync.mu);
	}
	return serr;
}

int kg_audit_quiesce(struct kg_audit *a, int timeout_ms)
{
	if (!a)
		return 0;
	kg_audit_flush(a);
	return kg_syncer_wait_idle(a, timeout_ms);
}

int kg_audit_flush_if_due(struct kg_audit *a)
{
	return a && due(a) ? commit(a) : 0;
}

unsigned kg_audit_pending(const struct kg_audit *a)
{
	return a ? a->npending : 0;
}

bool kg_audit_recovered(const struct kg_audit *a, struct kg_audit_recovery *out)
{
	if (!a || !a->recovery.torn)
		return false;
	if (out)
		*out = a->recovery;
	return true;
}

void kg_audit_close(struct kg_audit *a)
{
	int err;

	if (!a)
		return;
	err = kg_audit_flush(a);
	if (err)
		kg_warn("audit: %u records lost at close: %s", a->npending, strerror(-err));
	/* the thread's last fdatasync makes every written record durable */
	err = kg_syncer_stop(a);
	if (!err && a->o.sync == KG_AUDIT_SYNC_GROUP && !kg_syncer_here(a) &&
	    a->fd >= 0 && fdatasync(a->fd))
		err = -errno;
	if (err)
		kg_warn("audit: the last records of %s may not be on disk: %s", a->active,
			strerror(-err));
	free_writer(a);
}

int kg_audit_append_lost(struct kg_audit *a, const struct kg_audit_loss *l)
{
	struct kg_audit_rec r = { .type = "events_lost", .actor_uid = -1, .pid = -1, .tid = -1 };
	char reason[160];
	json_t *extra;
	int err;

	if (!a || !l)
		return -EINVAL;
	extra = json_pack("{s:{s:I,s:I,s:I}}", "counts", "decided", (json_int_t)l->decided,
			  "delivered", (json_int_t)l->delivered, "lost", (json_int_t)l->lost);
	if (!extra)
		return -ENOMEM;
	if ((l->by_kind && json_object_set(extra, "by_kind", l->by_kind)) ||
	    (l->by_job && json_object_set(extra, "by_job", l->by_job)) ||
	    (l->by_job && json_object_set_new(extra, "unattributed",
					       json_integer((json_int_t)l->unattributed)))) {
		json_decref(extra);
		return -ENOMEM;
	}
	snprintf(reason, sizeof(reason), "%" PRIu64 " kernel events decided but not delivered",
		 l->lost);
	r.trace_id = l->trace_id;
	r.mechanism = l->mechanism;
	r.op = "events_lost";
	r.reason = reason;
	r.extra = extra;
	err = kg_audit_append(a, &r);
	json_decref(extra);
	return err;
}

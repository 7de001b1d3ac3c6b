// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/verify.c - the chain checked: seals, links, head, a removed trail (verify.h). */
#include "record/audit.h"
#include "common.h"
#include "record/chain.h"
#include "record/prune.h"
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

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* A recovery record an opener writes when the dir's key exists but its
 * trail is gone (see kg_trail_queue_missing); `verify` fails on it. */
#define RECOVERY_TYPE		"\"type\":\"recovery\""
#define TRAIL_MISSING_OP	"\"op\":\"trail_missing\""

/* ------------------------------------------------------------------ */
/* verification */

struct verifier {
	struct kg_sealer s;
	struct kg_audit_verify_result *res;
	bool anchored, from_start;
	uint64_t expect;
	unsigned char prev[HASH_LEN];
	bool have_head;
	struct kg_head_info head;
	struct kg_head_info anchor;	/* seq 0: none (the trail starts at seq 1) */
};

static void vfail(struct verifier *v, const char *file, unsigned long line,
		  uint64_t seq, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void vfail(struct verifier *v, const char *file, unsigned long line,
		  uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	v->res->ok = false;
	v->res->bad_seq = seq;
	v->res->bad_line = line;
	kg_strlcpy(v->res->bad_file, file, sizeof(v->res->bad_file));
	va_start(ap, fmt);
	vsnprintf(v->res->reason, sizeof(v->res->reason), fmt, ap);
	va_end(ap);
}

/* checks one line against the running chain; false (and res filled) if bad */
static bool verify_line(struct verifier *v, struct kg_line_reader *lr)
{
	static const unsigned char zero[HASH_LEN];
	unsigned char mac[HASH_LEN];
	struct kg_sealed_line sl;
	const char *why;

	if (!lr->terminated) {
		vfail(v, lr->path, lr->lineno, v->expect, "torn (unterminated) last line");
		return false;
	}
	if (kg_trail_parse_line(lr->line, lr->len, &sl, &why)) {
		vfail(v, lr->path, lr->lineno, v->expect, "%s", why);
		return false;
	}
	if (!v->anchored && !v->from_start && sl.seq != 1) {
		/* a list of files may start mid-trail: trust its first link */
		v->expect = sl.seq;
		memcpy(v->prev, sl.prev, HASH_LEN);
	}
	v->anchored = true;
	if (sl.seq != v->expect) {
		vfail(v, lr->path, lr->lineno, v->expect, "expected seq %" PRIu64 ", found %" PRIu64
		      " (%s)", v->expect, sl.seq, sl.seq > v->expect ? "records missing or reordered" :
		      "records reordered or duplicated");
		return false;
	}
	if (CRYPTO_memcmp(sl.prev, v->prev, HASH_LEN)) {
		vfail(v, lr->path, lr->lineno, v->expect, "prev does not match the hash of %s",
		      sl.seq == v->anchor.seq ? "the record before the prune (" ANCHOR_NAME ")" :
		      memcmp(v->prev, zero, HASH_LEN) ? "the preceding record" : "the genesis");
		return false;
	}
	if (kg_trail_line_seal(&v->s, sl.prev, lr->line, lr->len, mac) ||
	    CRYPTO_memcmp(mac, sl.hash, HASH_LEN)) {
		vfail(v, lr->path, lr->lineno, v->expect,
		      "seal mismatch (record edited or forged, or wrong key)");
		return false;
	}
	if (v->have_head && sl.seq == v->head.seq && CRYPTO_memcmp(sl.hash, v->head.hash, HASH_LEN)) {
		vfail(v, lr->path, lr->lineno, sl.seq, "hash differs from the sealed head");
		return false;
	}
	/* sealed, so authentic: an opener found the key without its trail */
	if (memmem(lr->line, lr->len, RECOVERY_TYPE, sizeof(RECOVERY_TYPE) - 1) &&
	    memmem(lr->line, lr->len, TRAIL_MISSING_OP, sizeof(TRAIL_MISSING_OP) - 1)) {
		vfail(v, lr->path, lr->lineno, sl.seq, "the trail written before seq %" PRIu64
		      " was removed (its key was found without records)", sl.seq);
		return false;
	}
	memcpy(v->prev, sl.hash, HASH_LEN);
	if (!v->res->records)
		v->res->first_seq = sl.seq;
	v->res->last_seq = sl.seq;
	v->res->records++;
	v->expect++;
	return true;
}

/* false when the chain broke (res filled) */
static bool verify_segment(struct verifier *v, const char *path)
{
	struct kg_line_reader lr;
	bool ok = true;
	int r;

	r = kg_lr_open(&lr, path);
	if (r) {
		vfail(v, path, 0, v->expect, "cannot read: %s", strerror(-r));
		return false;
	}
	v->res->segments++;
	while (ok && (r = kg_lr_next(&lr)) != 0) {
		if (r == -E2BIG)
			vfail(v, path, lr.lineno, v->expect, "line longer than %u bytes",
			      KG_AUDIT_MAX_LINE);
		else if (r < 0)
			vfail(v, path, lr.lineno + 1, v->expect, "read error (corrupt compressed data?)");
		else
			ok = verify_line(v, &lr);
		if (r < 0)
			ok = false;
	}
	kg_lr_close(&lr);
	return ok;
}

static int verifier_init(struct verifier *v, const char *key_path,
			 struct kg_audit_verify_result *res)
{
	unsigned char key[KEY_LEN];
	int err;

	memset(v, 0, sizeof(*v));
	memset(res, 0, sizeof(*res));
	res->ok = true;
	v->res = res;
	v->expect = 1;
	err = kg_trail_key_load(key_path, false, key);
	if (err)
		return err;
	err = kg_sealer_init(&v->s, key);
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

static bool verify_chain(struct verifier *v, char *const *files, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!verify_segment(v, files[i]))
			return false;
	return true;
}

int kg_audit_verify_files(char *const *files, int nfiles, const char *key_path,
			  struct kg_audit_verify_result *res)
{
	struct verifier v;
	char keypath[PATH_MAX + 32];
	int err;

	if (!key_path) {
		if (kg_trail_path(keypath, sizeof(keypath), kg_audit_dir(), KEY_NAME))
			return -ENAMETOOLONG;
		key_path = keypath;
	}
	err = verifier_init(&v, key_path, res);
	if (err)
		return err;
	verify_chain(&v, files, nfiles);
	kg_sealer_free(&v.s);
	return 0;
}

/* reads the head under a shared lock so a writer's pwrite is never seen half done */
static int head_read_locked(const char *dir, const char *headpath, struct kg_sealer *s,
			    struct kg_head_info *h)
{
	char lockpath[PATH_MAX + 32];
	int fd = -1, err;

	if (!kg_trail_path(lockpath, sizeof(lockpath), dir, LOCK_NAME))
		fd = open(lockpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		while (flock(fd, LOCK_SH) && errno == EINTR)
			;
	err = kg_trail_head_read(headpath, s, h);
	if (fd >= 0)
		close(fd);
	return err;
}

/* after the walk: the head must not be ahead of the trail */
static void verify_head(struct verifier *v, const char *head_path, int head_err,
			char *const *files, int n)
{
	const char *last = n ? files[n - 1] : head_path;

	if (head_err == -ENOENT) {
		if (v->res->records)
			vfail(v, head_path, 0, v->res->last_seq + 1,
			      "%s is missing, so truncation cannot be ruled out", HEAD_NAME);
		return;
	}
	if (head_err) {
		vfail(v, head_path, 0, v->res->last_seq + 1,
		      "%s is corrupt or its seal does not match the key", HEAD_NAME);
		return;
	}
	v->res->head_seq = v->head.seq;
	if (v->head.seq > v->res->last_seq)
		vfail(v, last, 0, v->res->last_seq + 1,
		      "trail ends at seq %" PRIu64 " but the sealed head says %" PRIu64
		      " (records removed from the end)", v->res->last_seq, v->head.seq);
}

/* seq of a closed segment's first record from its name; 0 for the active one */
static uint64_t file_first_seq(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return strncmp(b, "audit-", 6) ? 0 : strtoull(b + 6, NULL, 10);
}

/* A sealed anchor (a prune) starts the chain at its seq, from its prev;
 * false when it is there but not valid (res filled). Segments wholly
 * before it (a prune cut short before its removals) are skipped. */
static bool verify_anchor(struct verifier *v, const char *dir, char ***files, int *n)
{
	int err = kg_trail_anchor_read(dir, &v->s, &v->anchor);
	uint64_t next;

	if (err == -ENOENT) {
		v->anchor.seq = 0;
		return true;
	}
	if (err) {
		char path[PATH_MAX + 32];

		v->anchor.seq = 0;
		kg_trail_path(path, sizeof(path), dir, ANCHOR_NAME);
		vfail(v, path, 0, 1, "%s is corrupt or its seal does not match the key "
		      "(edited or forged)", ANCHOR_NAME);
		return false;
	}
	v->expect = v->anchor.seq;
	memcpy(v->prev, v->anchor.hash, HASH_LEN);
	v->res->pruned = v->anchor.seq - 1;
	while (*n > 1 && (next = file_first_seq((*files)[1])) && next <= v->anchor.seq) {
		(*files)++;
		(*n)--;
	}
	return true;
}

int kg_audit_verify_dir(const char *dir, const char *key_path,
			struct kg_audit_verify_result *res)
{
	char keypath[PATH_MAX + 32], headpath[PATH_MAX + 32];
	struct verifier v;
	char **files = NULL, **walk;
	int n = 0, nwalk, err, head_err;

	if (!dir)
		dir = kg_audit_dir();
	if (kg_trail_path(headpath, sizeof(headpath), dir, HEAD_NAME) ||
	    kg_trail_path(keypath, sizeof(keypath), dir, KEY_NAME))
		return -ENAMETOOLONG;
	err = verifier_init(&v, key_path ? key_path : keypath, res);
	if (err)
		return err;
	err = kg_audit_list_segments(dir, &files, &n);
	if (err) {
		kg_sealer_free(&v.s);
		return kg_err("audit: cannot list %s: %s", dir, strerror(-err)), err;
	}
	v.from_start = true;
	head_err = head_read_locked(dir, headpath, &v.s, &v.head);
	v.have_head = !head_err;
	walk = files;
	nwalk = n;
	if (verify_anchor(&v, dir, &walk, &nwalk) && verify_chain(&v, walk, nwalk))
		verify_head(&v, headpath, head_err, walk, nwalk);
	/* the dir's key is made with its first record: the key without a
	 * record is a trail that was removed */
	if (v.res->ok && !v.res->records && (!key_path || !strcmp(key_path, keypath)))
		vfail(&v, n ? files[n - 1] : dir, 0, 1, "%s exists but the trail has no records: "
		      "it was removed (a key is created with the first record)", KEY_NAME);
	kg_audit_free_list(files, n);
	kg_sealer_free(&v.s);
	return 0;
}

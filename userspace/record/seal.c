// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/seal.c - the seal that travels with exported records (seal.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "record/chain.h"
#include "record/seal.h"
#include "record/tail.h"

#define BATCH_TAG "kgate-audit-batch:1:"

struct kg_seal {
	char *dir;
	struct kg_sealer sealer;	/* HMAC-SHA256 under the trail's key */
	/* the batch being built */
	bool contiguous, broken;
	uint64_t first_seq, last_seq, n;
	unsigned char first_prev[HASH_LEN], last_hash[HASH_LEN];
	EVP_MD_CTX *digest;
	/* a batch being verified (kg_seal_verify_begin): its envelope
	 * (borrowed), the head's seq, and whether the record at the head's
	 * seq carried another hash (said after the envelope's checks) */
	json_t *venv;
	uint64_t vhead_seq;
	bool vhead_differs;
};

struct kg_seal *kg_seal_new(const char *dir, const char *key_path)
{
	struct kg_seal *s = calloc(1, sizeof(*s));
	unsigned char key[KEY_LEN];
	char kp[4096];
	int err = ENOMEM;

	if (!s)
		return NULL;
	s->dir = strdup(dir ? dir : kg_audit_dir());
	s->digest = EVP_MD_CTX_new();
	if (!s->dir || !s->digest)
		goto fail;
	if (!key_path) {
		if (kg_snprintf(kp, sizeof(kp), "%s/audit.key", s->dir)) {
			err = ENAMETOOLONG;
			goto fail;
		}
		key_path = kp;
	}
	/* the trail's own checks: a regular file of 32 bytes, owned by root
	 * or us, not readable or writable by group/other (it says why) */
	err = -kg_trail_key_load(key_path, false, key);
	if (!err)
		err = -kg_sealer_init(&s->sealer, key);
	OPENSSL_cleanse(key, sizeof(key));
	if (err)
		goto fail;
	return s;
fail:
	kg_seal_free(s);
	errno = err;
	return NULL;
}

void kg_seal_free(struct kg_seal *s)
{
	if (!s)
		return;
	kg_sealer_free(&s->sealer);
	EVP_MD_CTX_free(s->digest);
	free(s->dir);
	free(s);
}

/* HMAC-SHA256(key, a || b || c) with the trail's sealer */
static void hmac(struct kg_seal *s, const void *a, size_t alen, const void *b, size_t blen,
		 const void *c, size_t clen, unsigned char *out)
{
	const struct kg_chunk chunks[] = { { a, alen }, { b, blen }, { c, clen } };

	if (kg_sealer_mac(&s->sealer, chunks, 3, out))
		memset(out, 0, HASH_LEN);	/* a failure never matches a real MAC */
}

/* the members of a sealed line that the seal needs */
struct sealed {
	uint64_t seq;
	unsigned char prev[HASH_LEN], hash[HASH_LEN];
};

static int parse_line(const char *line, size_t len, struct sealed *sl)
{
	const char *h = kg_tail_line_hash(line, len), *p;
	static const char pm[] = ",\"prev\":\"";
	char hex[HASH_HEX + 1];

	sl->seq = kg_tail_line_seq(line, len);
	if (!sl->seq || !h || len < SUFFIX_LEN + 2)
		return -EINVAL;
	memcpy(hex, h, HASH_HEX);
	hex[HASH_HEX] = '\0';
	if (kg_hex_decode(hex, sl->hash, HASH_LEN))
		return -EINVAL;
	p = memmem(line, len, pm, sizeof(pm) - 1);
	if (!p || (size_t)(p - line) + sizeof(pm) - 1 + HASH_HEX > len)
		return -EINVAL;
	memcpy(hex, p + sizeof(pm) - 1, HASH_HEX);
	return kg_hex_decode(hex, sl->prev, HASH_LEN) ? -EINVAL : 0;
}

/* a record's own seal: HMAC(key, prev || line without the hash member + "}") */
static bool seal_ok(struct kg_seal *s, const char *line, size_t len, const struct sealed *sl)
{
	unsigned char want[HASH_LEN];

	hmac(s, sl->prev, HASH_LEN, line, len - SUFFIX_LEN, "}", 1, want);
	return !CRYPTO_memcmp(want, sl->hash, HASH_LEN);
}

void kg_seal_begin(struct kg_seal *s, bool contiguous)
{
	s->contiguous = contiguous;
	s->broken = false;
	s->first_seq = s->last_seq = s->n = 0;
	memset(s->first_prev, 0, HASH_LEN);
	memset(s->last_hash, 0, HASH_LEN);
	EVP_DigestInit_ex(s->digest, EVP_sha256(), NULL);
}

int kg_seal_add(struct kg_seal *s, const char *line, size_t len)
{
	struct sealed sl;

	if (parse_line(line, len, &sl))
		return -EINVAL;
	if (!s->n) {
		s->first_seq = sl.seq;
		memcpy(s->first_prev, sl.prev, HASH_LEN);
	} else if (sl.seq != s->last_seq + 1 || memcmp(sl.prev, s->last_hash, HASH_LEN)) {
		s->broken = true;	/* a hole: not contiguous whatever was asked */
	}
	s->last_seq = sl.seq;
	memcpy(s->last_hash, sl.hash, HASH_LEN);
	EVP_DigestUpdate(s->digest, sl.hash, HASH_LEN);
	s->n++;
	return 0;
}

/* the head, read as the trail's readers do: under a shared lock */
static json_t *read_head(const char *dir)
{
	char path[4096];
	int lock = -1;
	size_t len;
	char *txt;
	json_t *o;

	if (!kg_snprintf(path, sizeof(path), "%s/audit.lock", dir)) {
		lock = open(path, O_RDONLY | O_CLOEXEC);
		if (lock >= 0)
			flock(lock, LOCK_SH);
	}
	if (kg_snprintf(path, sizeof(path), "%s/audit.head", dir))
		txt = NULL;
	else
		txt = kg_read_file(path, 4096, &len);
	if (lock >= 0)
		close(lock);
	o = txt ? json_loads(txt, 0, NULL) : NULL;
	free(txt);
	if (o && (!json_is_integer(json_object_get(o, "seq")) ||
		  !json_is_string(json_object_get(o, "hash")) ||
		  !json_is_string(json_object_get(o, "mac")))) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

static void batch_mac(struct kg_seal *s, json_t *env, char *out_hex)
{
	json_t *head = json_object_get(env, "head");
	unsigned char mac[HASH_LEN];
	char *txt = NULL;
	int n;

	n = asprintf(&txt, BATCH_TAG "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT
		     ":%" JSON_INTEGER_FORMAT ":%d:%s:%s:%s:%" JSON_INTEGER_FORMAT ":%s",
		     json_integer_value(json_object_get(env, "first_seq")),
		     json_integer_value(json_object_get(env, "last_seq")),
		     json_integer_value(json_object_get(env, "records")),
		     json_is_true(json_object_get(env, "contiguous")),
		     json_string_value(json_object_get(env, "first_prev")) ?: "",
		     json_string_value(json_object_get(env, "last_hash")) ?: "",
		     json_string_value(json_object_get(env, "digest")) ?: "",
		     json_integer_value(json_object_get(head, "seq")),
		     json_string_value(json_object_get(head, "hash")) ?: "");
	if (n < 0) {
		out_hex[0] = '\0';
		return;
	}
	hmac(s, txt, (size_t)n, NULL, 0, NULL, 0, mac);
	free(txt);
	kg_hex_encode(mac, HASH_LEN, out_hex);
}

json_t *kg_seal_envelope(struct kg_seal *s)
{
	char prev[HASH_HEX + 1], last[HASH_HEX + 1], dig[HASH_HEX + 1], mac[HASH_HEX + 1];
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	json_t *env, *head;
	EVP_MD_CTX *copy = EVP_MD_CTX_new();

	/* the digest so far (the batch may still grow: finish a copy) */
	if (!copy || !EVP_MD_CTX_copy_ex(copy, s->digest) || !EVP_DigestFinal_ex(copy, d, &dl)) {
		EVP_MD_CTX_free(copy);
		errno = ENOMEM;
		return NULL;
	}
	EVP_MD_CTX_free(copy);
	kg_hex_encode(s->first_prev, HASH_LEN, prev);
	kg_hex_encode(s->last_hash, HASH_LEN, last);
	kg_hex_encode(d, HASH_LEN, dig);
	head = read_head(s->dir);
	env = json_pack("{s:i,s:I,s:I,s:I,s:b,s:s,s:s,s:s,s:o}", "kgate_batch", 1,
			"first_seq", (json_int_t)s->first_seq, "last_seq", (json_int_t)s->last_seq,
			"records", (json_int_t)s->n, "contiguous", s->contiguous && !s->broken,
			"first_prev", prev, "last_hash", last, "digest", dig,
			"head", head ? head : json_pack("{s:i,s:s,s:s}", "seq", 0, "hash", "",
							"mac", ""));
	if (!env) {
		errno = ENOMEM;
		return NULL;
	}
	batch_mac(s, env, mac);
	json_object_set_new(env, "mac", json_string(mac));
	return env;
}

static int fail(struct kg_seal_check *r, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct kg_seal_check *r, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	r->ok = false;
	r->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return 0;
}

static int stop_at_once(const char *line, size_t len, uint64_t seq, void *ctx)
{
	(void)line;
	(void)len;
	(void)seq;
	(void)ctx;
	return 1;
}

static bool head_ok(struct kg_seal *s, json_t *head)
{
	const char *hash = json_string_value(json_object_get(head, "hash"));
	const char *machex = json_string_value(json_object_get(head, "mac"));
	unsigned char mac[HASH_LEN], want[HASH_LEN];
	char buf[128];
	int n;

	if (!hash || !machex || strlen(hash) != HASH_HEX || kg_hex_decode(machex, want, HASH_LEN))
		return false;
	n = snprintf(buf, sizeof(buf), HEAD_TAG "%" JSON_INTEGER_FORMAT ":%s",
		     json_integer_value(json_object_get(head, "seq")), hash);
	hmac(s, buf, (size_t)n, NULL, 0, NULL, 0, mac);
	return !CRYPTO_memcmp(mac, want, HASH_LEN);
}

int kg_seal_verify_begin(struct kg_seal *s, json_t *env, struct kg_seal_check *res)
{
	bool contiguous = json_is_true(json_object_get(env, "contiguous"));

	memset(res, 0, sizeof(*res));
	res->ok = true;
	s->venv = env;
	s->vhead_seq = (uint64_t)json_integer_value(json_object_get(json_object_get(env, "head"),
								      "seq"));
	s->vhead_differs = false;
	if (json_integer_value(json_object_get(env, "kgate_batch")) != 1 ||
	    !json_string_value(json_object_get(env, "mac")))
		return fail(res, 0, "not a kgate batch envelope");
	kg_seal_begin(s, contiguous);
	return 0;
}

/* 1. every record's own seal, as it comes */
int kg_seal_verify_line(struct kg_seal *s, const char *line, size_t len,
			struct kg_seal_check *res)
{
	const char *head_hash = json_string_value(json_object_get(json_object_get(s->venv, "head"),
								  "hash"));
	struct sealed sl;

	if (!res->ok)
		return 0;
	if (parse_line(line, len, &sl))
		return fail(res, 0, "line %" PRIu64 " of the batch is not a sealed record",
			    res->records + 1);
	if (!seal_ok(s, line, len, &sl))
		return fail(res, sl.seq, "record seq %" PRIu64 ": seal mismatch (edited)", sl.seq);
	kg_seal_add(s, line, len);
	res->records++;
	if (json_is_true(json_object_get(s->venv, "contiguous")) && sl.seq == s->vhead_seq &&
	    strncmp(kg_tail_line_hash(line, len), head_hash ? head_hash : "", HASH_HEX))
		s->vhead_differs = true;
	return 0;
}

static int verify_envelope(struct kg_seal *s, struct kg_seal_check *res)
{
	json_t *env = s->venv, *head = json_object_get(env, "head"), *mine;
	const char *mac = json_string_value(json_object_get(env, "mac"));
	uint64_t first = (uint64_t)json_integer_value(json_object_get(env, "first_seq"));
	uint64_t last = (uint64_t)json_integer_value(json_object_get(env, "last_seq"));
	uint64_t n = res->records;
	char want[HASH_HEX + 96];

	if (s->contiguous && s->broken)
		return fail(res, s->last_seq, "the records are not one unbroken chain (a record "
			    "removed, inserted or moved)");
	/* 2. the envelope: what the exporter saw, under the key */
	if ((json_int_t)n != json_integer_value(json_object_get(env, "records")))
		return fail(res, 0, "the batch holds %" PRIu64 " records, its seal says %"
			    JSON_INTEGER_FORMAT, n, json_integer_value(json_object_get(env, "records")));
	mine = kg_seal_envelope(s);
	if (!mine)
		return -errno;
	json_object_set(mine, "head", head ? head : json_null());
	batch_mac(s, env, want);
	if (CRYPTO_memcmp(want, mac, strlen(mac) == HASH_HEX ? HASH_HEX : 0) || strlen(mac) != HASH_HEX) {
		json_decref(mine);
		return fail(res, 0, "the envelope's MAC does not match (the envelope was edited)");
	}
	if (n && (s->first_seq != first || s->last_seq != last ||
		  strcmp(json_string_value(json_object_get(mine, "digest")),
			 json_string_value(json_object_get(env, "digest")) ?: "") ||
		  strcmp(json_string_value(json_object_get(mine, "last_hash")),
			 json_string_value(json_object_get(env, "last_hash")) ?: ""))) {
		json_decref(mine);
		return fail(res, 0, "the records are not the ones sealed (seq %" PRIu64 "..%" PRIu64
			    " sealed, found %" PRIu64 "..%" PRIu64 ", or one was swapped)",
			    first, last, s->first_seq, s->last_seq);
	}
	json_decref(mine);
	/* 3. the trail's head when the batch was made */
	if (!head_ok(s, head))
		return fail(res, 0, "the head in the seal is not the trail's (bad MAC)");
	if (n && s->vhead_seq < last)
		return fail(res, last, "the sealed head (seq %" PRIu64 ") is behind the batch",
			    s->vhead_seq);
	if (s->vhead_differs)
		return fail(res, s->vhead_seq, "the record at the head's seq is not the head's");
	return 0;
}

/* 4. against the trail itself */
static int verify_against_trail(struct kg_seal *s, const char *dir, struct kg_seal_check *res)
{
	uint64_t last = (uint64_t)json_integer_value(json_object_get(s->venv, "last_seq"));
	const char *last_hash = json_string_value(json_object_get(s->venv, "last_hash"));
	struct kg_tail_pos pos = { .seq = last };
	char want[HASH_HEX + 96];
	struct kg_tail *t;
	json_t *now;
	int r;

	kg_strlcpy(pos.hash, last_hash ? last_hash : "", sizeof(pos.hash));
	t = kg_tail_open(dir, &pos);
	if (!t)
		return -errno;
	r = kg_tail_poll(t, stop_at_once, NULL);
	kg_tail_position(t, want, sizeof(want));
	kg_tail_close(t);
	if (r == -ESTALE || !strchr(want, ':'))
		return fail(res, last, "the trail in %s has another record at seq %" PRIu64
			    " (or none)", dir, last);
	now = read_head(dir);
	if (!now || !head_ok(s, now) ||
	    (uint64_t)json_integer_value(json_object_get(now, "seq")) < s->vhead_seq) {
		json_decref(now);
		return fail(res, s->vhead_seq, "the trail's head in %s is missing, not sealed by "
			    "this key, or behind the batch's (rolled back?)", dir);
	}
	json_decref(now);
	return 0;
}

int kg_seal_verify_end(struct kg_seal *s, const char *dir, struct kg_seal_check *res)
{
	int err;

	if (!res->ok)
		return 0;
	err = verify_envelope(s, res);
	if (!err && res->ok && dir && res->records)
		err = verify_against_trail(s, dir, res);
	return err;
}

int kg_seal_verify(struct kg_seal *s, json_t *env, char *const *lines, const size_t *lens,
		   size_t n, const char *dir, struct kg_seal_check *res)
{
	size_t i;
	int err = kg_seal_verify_begin(s, env, res);

	for (i = 0; !err && i < n && res->ok; i++)
		err = kg_seal_verify_line(s, lines[i], lens[i], res);
	return err ? err : kg_seal_verify_end(s, dir, res);
}

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

int kg_seal_verify(struct kg_seal *s, json_t *env, char *const *lines, const size_t *lens,
		   size_t n, const char *dir, struct kg_seal_check *res)
{
	json_t *head = json_object_get(env, "head"), *mine;
	const char *mac = json_string_value(json_object_get(env, "mac"));
	uint64_t first = (uint64_t)json_integer_value(json_object_get(env, "first_seq"));
	uint64_t last = (uint64_t)json_integer_value(json_object_get(env, "last_seq"));
	uint64_t hseq = (uint64_t)json_integer_value(json_object_get(head, "seq"));
	bool contiguous = json_is_true(json_object_get(env, "contiguous"));
	char want[HASH_HEX + 96];
	size_t i;

	memset(res, 0, sizeof(*res));
	res->ok = true;
	if (json_integer_value(json_object_get(env, "kgate_batch")) != 1 || !mac)
		return fail(res, 0, "not a kgate batch envelope");
	/* 1. every record's own seal */
	kg_seal_begin(s, contiguous);
	for (i = 0; i < n; i++) {
		struct sealed sl;

		if (parse_line(lines[i], lens[i], &sl))
			return fail(res, 0, "line %zu of the batch is not a sealed record", i + 1);
		if (!seal_ok(s, lines[i], lens[i], &sl))
			return fail(res, sl.seq, "record seq %" PRIu64 ": seal mismatch (edited)",
				    sl.seq);
		kg_seal_add(s, lines[i], lens[i]);
		res->records++;
	}
	if (contiguous && s->broken)
		return fail(res, s->last_seq, "the records are not one unbroken chain (a record "
			    "removed, inserted or moved)");
	/* 2. the envelope: what the exporter saw, under the key */
	if ((json_int_t)n != json_integer_value(json_object_get(env, "records")))
		return fail(res, 0, "the batch holds %zu records, its seal says %" JSON_INTEGER_FORMAT,
			    n, json_integer_value(json_object_get(env, "records")));
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
	if (n && hseq < last)
		return fail(res, last, "the sealed head (seq %" PRIu64 ") is behind the batch", hseq);
	for (i = 0; i < n && contiguous; i++) {
		const char *h = kg_tail_line_hash(lines[i], lens[i]);

		if (kg_tail_line_seq(lines[i], lens[i]) == hseq &&
		    strncmp(h, json_string_value(json_object_get(head, "hash")), HASH_HEX))
			return fail(res, hseq, "the record at the head's seq is not the head's");
	}
	/* 4. against the trail itself */
	if (dir && n) {
		struct kg_tail_pos pos = { .seq = last };
		json_t *now = read_head(dir);
		struct kg_tail *t;
		int r;

		memcpy(pos.hash, json_string_value(json_object_get(env, "last_hash")), HASH_HEX + 1);
		t = kg_tail_open(dir, &pos);
		if (!t) {
			json_decref(now);
			return -errno;
		}
		r = kg_tail_poll(t, stop_at_once, NULL);
		kg_tail_position(t, want, sizeof(want));
		kg_tail_close(t);
		if (r == -ESTALE || !strchr(want, ':')) {
			json_decref(now);
			return fail(res, last, "the trail in %s has another record at seq %" PRIu64
				    " (or none)", dir, last);
		}
		if (!now || !head_ok(s, now) ||
		    (uint64_t)json_integer_value(json_object_get(now, "seq")) < hseq) {
			json_decref(now);
			return fail(res, hseq, "the trail's head in %s is missing, not sealed by this "
				    "key, or behind the batch's (rolled back?)", dir);
		}
		json_decref(now);
	}
	return 0;
}

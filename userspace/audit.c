// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * audit.c - the sealed, append-only audit trail.
 *
 * Layout of an audit directory (docs/audit-format.md has the details):
 *   audit.key                 32 random bytes, mode 0400
 *   audit.lock                flock()ed by whoever commits records
 *   audit.jsonl               the active segment
 *   audit-<firstseq>.jsonl.gz closed segments (gzip), in seq order
 *   audit.head                last seq + last hash, sealed; catches truncation
 *   audit.torn-*              torn tails moved aside by recovery
 *
 * A record line is  {"seq":N,"prev":"<hex>",...,"hash":"<hex>"}  where
 * hash = HMAC-SHA256(key, prev_raw || the line without its ',"hash":"..."'
 * member). Because the hash is always the last member and has a fixed
 * length, the sealed bytes are recovered textually: no re-serialisation,
 * so a verifier does not depend on any JSON library's output order.
 *
 * Records are queued by kg_audit_append() and committed (seq, prev, hash
 * assigned, written, fsync'ed per the sync setting) under the lock, after
 * re-reading the tail if another process appended since: that is what keeps
 * one linear chain with several writers.
 */
#include "audit.h"
#include "common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define KEY_LEN		32
#define HASH_LEN	32
#define HASH_HEX	(2 * HASH_LEN)
#define ACTIVE_NAME	"audit.jsonl"
#define HEAD_NAME	"audit.head"
#define LOCK_NAME	"audit.lock"
#define KEY_NAME	"audit.key"
#define SEAL_KEY	",\"hash\":\""
#define SEAL_KEY_LEN	(sizeof(SEAL_KEY) - 1)
#define SUFFIX_LEN	(SEAL_KEY_LEN + HASH_HEX + 2)	/* ,"hash":"<hex>"} */
#define HEAD_TAG	"kgate-audit-head:"

#define DEF_FLUSH_RECORDS	64
#define DEF_FLUSH_MS		5
#define DEF_ROTATE_BYTES	(64ull << 20)
#define READ_BUF		(256u << 10)

static const char *const record_types[] = {
	"decision", "admission", "approval", "policy_change", "events_lost",
	"controller", "job_start", "job_exit", "recovery", "job_stop",
};

/* A recovery record an opener writes when the dir's key exists but its
 * trail is gone (see queue_trail_missing); `verify` fails on it. */
#define RECOVERY_TYPE		"\"type\":\"recovery\""
#define TRAIL_MISSING_OP	"\"op\":\"trail_missing\""

/* ------------------------------------------------------------------ */
/* sealing: HMAC-SHA256 through OpenSSL's EVP_MAC (one context reused) */

struct sealer {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
};

static int sealer_init(struct sealer *s, const unsigned char *key)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	s->ctx = s->mac ? EVP_MAC_CTX_new(s->mac) : NULL;
	if (!s->ctx || !EVP_MAC_init(s->ctx, key, KEY_LEN, params)) {
		EVP_MAC_CTX_free(s->ctx);
		EVP_MAC_free(s->mac);
		s->ctx = NULL;
		s->mac = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void sealer_free(struct sealer *s)
{
	EVP_MAC_CTX_free(s->ctx);
	EVP_MAC_free(s->mac);
	s->ctx = NULL;
	s->mac = NULL;
}

struct chunk {
	const void *p;
	size_t len;
};

/* HMAC over the concatenation of chunks; the key set at init is reused */
static int seal_chunks(struct sealer *s, const struct chunk *c, int n,
		       unsigned char out[HASH_LEN])
{
	size_t outl = 0;
	int i;

	if (!EVP_MAC_init(s->ctx, NULL, 0, NULL))
		return -EIO;
	for (i = 0; i < n; i++)
		if (c[i].len && !EVP_MAC_update(s->ctx, c[i].p, c[i].len))
			return -EIO;
	if (!EVP_MAC_final(s->ctx, out, &outl, HASH_LEN) || outl != HASH_LEN)
		return -EIO;
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ------------------------------------------------------------------ */
/* key file */

static int key_check_fd(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		kg_err("audit: key %s is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		kg_err("audit: key %s is readable or writable by group/other (mode %04o); "
		       "it must be 0400 or 0600", path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		kg_err("audit: key %s is owned by uid %u, not root", path, (unsigned)st.st_uid);
		return -EPERM;
	}
	if (st.st_size != KEY_LEN) {
		kg_err("audit: key %s has %lld bytes, expected %d", path,
		       (long long)st.st_size, KEY_LEN);
		return -EINVAL;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

/* Writes the key to a private temporary file and link()s it into place, so
 * a concurrent opener never sees a half-written key: exactly one creator
 * wins, the others get -EEXIST and read the winner's key. */
static int key_create(const char *path)
{
	unsigned char key[KEY_LEN];
	char tmp[PATH_MAX + 48];
	int fd, err;

	if (kg_snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	if (RAND_bytes(key, sizeof(key)) != 1) {
		err = -EIO;
		kg_err("audit: no randomness for a new key");
	} else {
		err = write_full(fd, key, sizeof(key));
		if (!err && fsync(fd))
			err = -errno;
	}
	OPENSSL_cleanse(key, sizeof(key));
	close(fd);
	if (!err && link(tmp, path))
		err = -errno;
	unlink(tmp);
	if (!err)
		kg_info("audit: created a new key %s", path);
	return err;
}

/* Loads the key; creates it (mode 0400) when create is set and it is absent. */
static int key_load(const char *path, bool create, unsigned char *key)
{
	int fd, err;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		err = key_create(path);
		if (err && err != -EEXIST)
			return kg_err("audit: cannot create key %s: %s", path, strerror(-err)), err;
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		err = -errno;
		kg_err("audit: cannot open key %s: %s", path, strerror(errno));
		return err;
	}
	err = key_check_fd(fd, path);
	if (!err)
		err = read_full(fd, key, KEY_LEN);
	close(fd);
	return err;
}

/* ------------------------------------------------------------------ */
/* escaping hostile bytes */

/* Length of a valid, printable UTF-8 sequence at s (2..4 bytes), else 0.
 * C1 controls (U+0080..U+009F) count as unprintable. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need, k;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf)
		need = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3, cp = c & 0x07;
	else
		return 0;
	if (n < need + 1)
		return 0;
	for (k = 1; k <= need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if (need == 1 && cp < 0xa0)
		return 0;
	if (need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		return 0;
	if (need == 3 && (cp < 0x10000 || cp > 0x10ffff))
		return 0;
	return need + 1;
}

char *kg_audit_escape(const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	char *out, *o;
	size_t i = 0;

	out = malloc(4 * len + 1);
	if (!out)
		return NULL;
	o = out;
	while (i < len) {
		unsigned c = s[i];
		size_t n;

		if (c == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			*o++ = (char)c;
			i++;
		} else if (c >= 0x80 && (n = utf8_seq(s + i, len - i))) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else {
			o += sprintf(o, "\\x%02x", c);
			i++;
		}
	}
	*o = '\0';
	return out;
}

char *kg_audit_unescape(const char *in, size_t *len_out)
{
	size_t n = strlen(in), i, o = 0;
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (in[i] != '\\') {
			out[o++] = in[i];
			continue;
		}
		if (in[i + 1] == '\\') {
			out[o++] = '\\';
			i++;
		} else if (in[i + 1] == 'x' && hexval((unsigned char)in[i + 2]) >= 0 &&
			   hexval((unsigned char)in[i + 3]) >= 0) {
			out[o++] = (char)(hexval((unsigned char)in[i + 2]) << 4 |
					  hexval((unsigned char)in[i + 3]));
			i += 3;
		} else {
			free(out);
			errno = EINVAL;
			return NULL;
		}
	}
	out[o] = '\0';
	if (len_out)
		*len_out = o;
	return out;
}

/* ------------------------------------------------------------------ */
/* time */

void kg_audit_format_time(uint64_t real_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(real_ns / 1000000000ull);
	struct tm tm;

	if (!gmtime_r(&secs, &tm)) {
		snprintf(buf, size, "invalid");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (uint64_t)(real_ns % 1000000000ull));
}

/* digits after a '.', scaled to nanoseconds (extra digits ignored) */
static const char *parse_fraction(const char *p, uint64_t *ns)
{
	uint64_t v = 0, scale = 100000000ull;

	if (!isdigit((unsigned char)*p))
		return NULL;
	for (; isdigit((unsigned char)*p); p++) {
		v += (uint64_t)(*p - '0') * scale;
		scale /= 10;
	}
	*ns = v;
	return p;
}

static int parse_unix_seconds(const char *s, uint64_t *ns_out)
{
	uint64_t secs = 0, frac = 0;
	const char *p = s;

	for (; isdigit((unsigned char)*p); p++) {
		if (secs > (UINT64_MAX / 1000000000ull) / 10)
			return -EINVAL;
		secs = secs * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	if (*p == '.' && !(p = parse_fraction(p + 1, &frac)))
		return -EINVAL;
	if (*p)
		return -EINVAL;
	*ns_out = secs * 1000000000ull + frac;
	return 0;
}

static int two_digits(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

int kg_audit_parse_time(const char *s, uint64_t *ns_out)
{
	int year, mon, day, hh, mm, ss, oh, om, n = 0;
	uint64_t frac = 0;
	long long offset = 0, secs;
	const char *p;
	struct tm tm;

	if (!s || !*s)
		return -EINVAL;
	if (!strchr(s, '-') || strlen(s) < 20)
		return parse_unix_seconds(s, ns_out);
	if (sscanf(s, "%4d-%2d-%2d%n", &year, &mon, &day, &n) != 3 || n != 10)
		return -EINVAL;
	p = s + 10;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	hh = two_digits(p + 1);
	mm = p[3] == ':' ? two_digits(p + 4) : -1;
	ss = p[6] == ':' ? two_digits(p + 7) : -1;
	if (hh < 0 || mm < 0 || ss < 0 || hh > 23 || mm > 59 || ss > 60 ||
	    mon < 1 || mon > 12 || day < 1 || day > 31 || year < 1970)
		return -EINVAL;
	p += 9;
	if (*p == '.' && !(p = parse_fraction(p + 1, &frac)))
		return -EINVAL;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		oh = two_digits(p + 1);
		om = p[3] == ':' ? two_digits(p + 4) : -1;
		if (oh < 0 || om < 0 || oh > 23 || om > 59)
			return -EINVAL;
		offset = (oh * 3600LL + om * 60LL) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	secs = (long long)timegm(&tm) - offset;
	if (secs < 0)
		return -EINVAL;
	*ns_out = (uint64_t)secs * 1000000000ull + frac;
	return 0;
}

/* ------------------------------------------------------------------ */
/* building a record body (everything but seq, prev and hash)
 *
 * The members are written straight into a reusable buffer, in the
 * documented order and spelled exactly as jansson's compact output would
 * spell them (tests/test_audit.c compares the two byte for byte). Building
 * a json_t tree and dumping it per record cost ~9 us, most of the writer's
 * time. Only the caller's 'extra' object, which arrives as a json_t, is
 * still dumped by jansson. */

static bool known_type(const char *t)
{
	size_t i;

	for (i = 0; t && i < ARRAY_SIZE(record_types); i++)
		if (!strcmp(t, record_types[i]))
			return true;
	return false;
}

/* a growing byte buffer; the first allocation failure sticks in err */
struct jbuf {
	char *p;
	size_t len, cap;
	int err;
};

static bool jb_reserve(struct jbuf *b, size_t more)
{
	size_t ncap;
	char *np;

	if (b->err)
		return false;
	if (b->len + more <= b->cap)
		return true;
	for (ncap = b->cap ? b->cap : 4096; ncap < b->len + more; ncap *= 2)
		;
	np = realloc(b->p, ncap);
	if (!np) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = np;
	b->cap = ncap;
	return true;
}

static void jb_raw(struct jbuf *b, const void *s, size_t n)
{
	if (jb_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

#define jb_lit(b, s) jb_raw(b, s, sizeof(s) - 1)

static void jb_free(struct jbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* decimal digits of v into out (no NUL); returns their count */
static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* as jansson prints a json_integer ("%lld") */
static void jb_int(struct jbuf *b, long long v)
{
	char tmp[24];
	size_t n = 0;

	if (v < 0)
		tmp[n++] = '-';
	n += fmt_u64(tmp + n, v < 0 ? -(uint64_t)v : (uint64_t)v);
	jb_raw(b, tmp, n);
}

/* A JSON string holding kg_audit_escape(s). One pass does both the
 * reversible escaping of hostile bytes and JSON's escaping of its result;
 * the escaped text has no control bytes, so JSON only needs '"' and '\'
 * escaped (as jansson writes them). At most 5 output bytes per input byte. */
static void jb_str(struct jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, n;
	char *o;

	if (!jb_reserve(b, 5 * len + 2))
		return;
	o = b->p + b->len;
	*o++ = '"';
	while (i < len) {
		unsigned c = u[i];

		if (c == '"') {
			*o++ = '\\';
			*o++ = '"';
			i++;
		} else if (c == '\\') {		/* escaped "\\", then JSON: 4 bytes */
			memcpy(o, "\\\\\\\\", 4);
			o += 4;
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			*o++ = (char)c;
			i++;
		} else if (c >= 0x80 && (n = utf8_seq(u + i, len - i))) {
			memcpy(o, u + i, n);
			o += n;
			i += n;
		} else {			/* "\xNN", its '\' escaped for JSON */
			memcpy(o, "\\\\x", 3);
			o[3] = hex[c >> 4];
			o[4] = hex[c & 15];
			o += 5;
			i++;
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

/* "key": with the comma that separates it from an earlier member */
static void jb_key(struct jbuf *b, bool *first, const char *key)
{
	size_t n = strlen(key);

	if (!jb_reserve(b, n + 4))
		return;
	if (!*first)
		b->p[b->len++] = ',';
	*first = false;
	b->p[b->len++] = '"';
	memcpy(b->p + b->len, key, n);
	b->len += n;
	b->p[b->len++] = '"';
	b->p[b->len++] = ':';
}

static void jb_member_str(struct jbuf *b, bool *first, const char *key, const char *s)
{
	if (!s)
		return;
	jb_key(b, first, key);
	jb_str(b, s);
}

static void jb_member_int(struct jbuf *b, bool *first, const char *key, long long v)
{
	jb_key(b, first, key);
	jb_int(b, v);
}

/* The formatted seconds of the last record ("YYYY-MM-DDTHH:MM:SS."): only
 * the nanoseconds change between records of the same second. */
struct time_cache {
	uint64_t sec;
	bool valid;
	char prefix[20];
};

static void jb_time(struct jbuf *b, bool *first, struct time_cache *tc, uint64_t real_ns)
{
	uint64_t sec = real_ns / 1000000000ull, frac = real_ns % 1000000000ull;
	char buf[48];
	int i;

	jb_key(b, first, "time");
	if (!tc->valid || tc->sec != sec) {
		kg_audit_format_time(sec * 1000000000ull, buf, sizeof(buf));
		tc->valid = strlen(buf) == 30;	/* a four-digit year: the usual form */
		if (!tc->valid) {
			kg_audit_format_time(real_ns, buf, sizeof(buf));
			jb_str(b, buf);
			return;
		}
		tc->sec = sec;
		memcpy(tc->prefix, buf, sizeof(tc->prefix));
	}
	if (!jb_reserve(b, 32))
		return;
	b->p[b->len++] = '"';
	memcpy(b->p + b->len, tc->prefix, sizeof(tc->prefix));
	b->len += sizeof(tc->prefix);
	for (i = 8; i >= 0; i--, frac /= 10)
		b->p[b->len + i] = (char)('0' + frac % 10);
	b->len += 9;
	memcpy(b->p + b->len, "Z\"", 2);
	b->len += 2;
}

/* the caller's extra object, as json_dumps(extra, JSON_COMPACT) spells it */
static void jb_extra(struct jbuf *b, bool *first, const json_t *extra)
{
	size_t n;

	jb_key(b, first, "extra");
	if (!jb_reserve(b, 256))
		return;
	n = json_dumpb(extra, b->p + b->len, b->cap - b->len, JSON_COMPACT);
	if (n > b->cap - b->len) {
		if (!jb_reserve(b, n))
			return;
		n = json_dumpb(extra, b->p + b->len, b->cap - b->len, JSON_COMPACT);
	}
	if (!n || n > b->cap - b->len) {
		b->err = -ENOMEM;
		return;
	}
	b->len += n;
}

static void build_actor(struct jbuf *b, bool *first, const struct kg_audit_rec *r)
{
	bool f = true;

	if (r->actor_uid < 0 && !r->actor_name && !r->actor_role)
		return;
	jb_key(b, first, "actor");
	jb_lit(b, "{");
	if (r->actor_uid >= 0)
		jb_member_int(b, &f, "uid", r->actor_uid);
	jb_member_str(b, &f, "name", r->actor_name);
	jb_member_str(b, &f, "role", r->actor_role);
	jb_lit(b, "}");
}

static void build_subject(struct jbuf *b, bool *first, const struct kg_audit_rec *r)
{
	bool f = true;

	if (r->pid < 0 && r->tid < 0 && !r->comm && !r->exe)
		return;
	jb_key(b, first, "subject");
	jb_lit(b, "{");
	if (r->pid >= 0)
		jb_member_int(b, &f, "pid", r->pid);
	if (r->tid >= 0)
		jb_member_int(b, &f, "tid", r->tid);
	jb_member_str(b, &f, "comm", r->comm);
	jb_member_str(b, &f, "exe", r->exe);
	jb_lit(b, "}");
}

static void build_policy(struct jbuf *b, bool *first, const struct kg_audit_rec *r)
{
	bool f = true;

	/* version is there whenever the object is: name, hash or a version */
	if (!r->policy_name && !r->policy_hash && r->policy_version <= 0)
		return;
	jb_key(b, first, "policy");
	jb_lit(b, "{");
	jb_member_str(b, &f, "name", r->policy_name);
	jb_member_int(b, &f, "version", r->policy_version);
	jb_member_str(b, &f, "hash", r->policy_hash);
	jb_lit(b, "}");
}

/* Appends the record's members ("type":…,…,"extra":{…}, no braces) to b. */
static int build_members(struct jbuf *b, struct time_cache *tc, const struct kg_audit_rec *r)
{
	uint64_t real = r->ts_real_ns ? r->ts_real_ns : kg_now_real_ns();
	uint64_t mono = r->ts_mono_ns ? r->ts_mono_ns : kg_now_mono_ns();
	size_t start = b->len;
	bool first = true;

	if (!known_type(r->type))
		return kg_err("audit: unknown record type '%s'", r->type ? r->type : "(null)"), -EINVAL;
	if (r->extra && !json_is_object(r->extra))
		return kg_err("audit: 'extra' must be a JSON object"), -EINVAL;
	jb_member_str(b, &first, "type", r->type);
	jb_time(b, &first, tc, real);
	jb_member_int(b, &first, "mono_ns", (long long)mono);
	jb_member_str(b, &first, "trace", r->trace_id);
	build_actor(b, &first, r);
	build_subject(b, &first, r);
	jb_member_str(b, &first, "op", r->op);
	jb_member_str(b, &first, "target", r->target);
	jb_member_str(b, &first, "decision", r->decision);
	jb_member_str(b, &first, "rule", r->rule_id);
	jb_member_str(b, &first, "reason", r->reason);
	build_policy(b, &first, r);
	jb_member_str(b, &first, "mechanism", r->mechanism);
	if (r->extra)
		jb_extra(b, &first, r->extra);
	if (b->err)
		return b->err;
	if (b->len - start + 200 > KG_AUDIT_MAX_LINE)
		return kg_err("audit: record larger than %u bytes", KG_AUDIT_MAX_LINE), -E2BIG;
	return 0;
}

/* ------------------------------------------------------------------ */
/* the writer */

/* Group mode's background fdatasync (see syncer_main). mu guards every
 * field and a->fd, which the thread reads to sync it. */
struct syncer {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stop, idle;
	pid_t owner;			/* the thread exists in this process only */
	uint64_t written;		/* commits written with write(2) */
	uint64_t covered;		/* commits an fdatasync has started on */
	uint64_t done;			/* commits an fdatasync has finished on */
	uint64_t last_start_ns;		/* CLOCK_MONOTONIC */
	int err;			/* first failed fdatasync, not yet reported */
};

/* a queued record's members, kept in kg_audit.bodies */
struct pend {
	size_t off, len;
};

struct kg_audit {
	char dir[PATH_MAX];
	char active[PATH_MAX + 32], head[PATH_MAX + 32];
	struct kg_audit_opts o;
	int fd, lockfd, headfd;
	dev_t dev;
	ino_t ino;
	uint64_t known_size;		/* UINT64_MAX: re-read the tail */
	uint64_t last_seq;
	unsigned char last_hash[HASH_LEN];
	struct jbuf bodies;		/* members of the queued records, back to back */
	struct pend *pending;
	unsigned npending, cap;
	uint64_t first_pending_mono;
	struct time_cache tcache;
	struct sealer sealer;
	struct kg_audit_recovery recovery;
	struct jbuf out;		/* the sealed lines of one commit */
	struct syncer sync;
	struct compressor *zip;		/* a closed segment being compressed */
	char keypath[PATH_MAX + 32];
	bool have_key;			/* sealer ready (the key is loaded) */
	bool own_key;			/* the key is <dir>/audit.key */
	int write_err;			/* the last commit's write error (said once) */
};

static int path_in(char *buf, size_t size, const char *dir, const char *name)
{
	return kg_snprintf(buf, size, "%s/%s", dir, name) ? -ENAMETOOLONG : 0;
}

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

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Builds r's members into the queue (in front of it for the recovery
 * record, which must take the first seq). */
static int queue_record(struct kg_audit *a, const struct kg_audit_rec *r, bool front)
{
	size_t off = a->bodies.len;
	int err;

	if (a->npending == a->cap) {
		unsigned ncap = a->cap ? a->cap * 2 : 64;
		struct pend *np = realloc(a->pending, ncap * sizeof(*np));

		if (!np)
			return -ENOMEM;
		a->pending = np;
		a->cap = ncap;
	}
	err = build_members(&a->bodies, &a->tcache, r);
	if (err) {
		a->bodies.len = off;	/* nothing of it stays queued */
		a->bodies.err = 0;
		return err;
	}
	if (!a->npending)
		a->first_pending_mono = kg_now_mono_ns();
	if (front) {
		memmove(a->pending + 1, a->pending, a->npending * sizeof(*a->pending));
		a->pending[0] = (struct pend){ off, a->bodies.len - off };
	} else {
		a->pending[a->npending] = (struct pend){ off, a->bodies.len - off };
	}
	a->npending++;
	return 0;
}

/* --- head file: the last committed seq and hash, sealed --- */

static int head_mac(struct sealer *s, uint64_t seq, const char *hash_hex,
		    unsigned char out[HASH_LEN])
{
	char buf[128];
	struct chunk c;

	snprintf(buf, sizeof(buf), HEAD_TAG "%" PRIu64 ":%s", seq, hash_hex);
	c.p = buf;
	c.len = strlen(buf);
	return seal_chunks(s, &c, 1, out);
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
	err = head_mac(&a->sealer, a->last_seq, hex, mac);
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

struct head_info {
	uint64_t seq;
	unsigned char hash[HASH_LEN];
};

/* 0 = valid head, -ENOENT = none, other -errno = present but not valid */
static int head_read(const char *path, struct sealer *s, struct head_info *h)
{
	unsigned char mac[HASH_LEN], want[HASH_LEN];
	const char *hash, *machex;
	json_int_t seq;
	json_t *o;
	char *txt;
	size_t len;
	int err = -EBADMSG;

	txt = kg_read_file(path, 4096, &len);
	if (!txt)
		return -errno;
	if (!len) {		/* opened by a writer that has not committed yet */
		free(txt);
		return -ENOENT;
	}
	o = json_loads(txt, 0, NULL);
	free(txt);
	if (o && !json_unpack(o, "{s:I,s:s,s:s}", "seq", &seq, "hash", &hash, "mac", &machex) &&
	    seq >= 0 && strlen(hash) == HASH_HEX && strlen(machex) == HASH_HEX &&
	    !kg_hex_decode(hash, h->hash, HASH_LEN) && !kg_hex_decode(machex, want, HASH_LEN) &&
	    !head_mac(s, (uint64_t)seq, hash, mac) && !CRYPTO_memcmp(mac, want, HASH_LEN)) {
		h->seq = (uint64_t)seq;
		err = 0;
	}
	json_decref(o);
	return err;
}

/* ------------------------------------------------------------------ */
/* parsing one sealed line */

struct sealed_line {
	uint64_t seq;
	unsigned char prev[HASH_LEN];
	unsigned char hash[HASH_LEN];
};

/* Structure + JSON check of a line (no newline). Fills *sl; *why on error. */
static int parse_sealed(const char *line, size_t len, struct sealed_line *sl,
			const char **why)
{
	const char *prev, *hash;
	json_int_t seq;
	json_error_t jerr;
	json_t *o;
	int err = -EBADMSG;

	if (len < SUFFIX_LEN + 2 || line[0] != '{' ||
	    memcmp(line + len - SUFFIX_LEN, SEAL_KEY, SEAL_KEY_LEN) ||
	    memcmp(line + len - 2, "\"}", 2)) {
		*why = "not a sealed record (no trailing hash member)";
		return -EBADMSG;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		*why = "invalid JSON";
		return -EBADMSG;
	}
	*why = "missing or malformed seq/prev/hash";
	if (!json_unpack(o, "{s:I,s:s,s:s}", "seq", &seq, "prev", &prev, "hash", &hash) &&
	    seq > 0 && strlen(prev) == HASH_HEX && strlen(hash) == HASH_HEX &&
	    !memcmp(hash, line + len - 2 - HASH_HEX, HASH_HEX) &&
	    !kg_hex_decode(prev, sl->prev, HASH_LEN) && !kg_hex_decode(hash, sl->hash, HASH_LEN)) {
		sl->seq = (uint64_t)seq;
		err = 0;
	}
	json_decref(o);
	return err;
}

/* recomputes the seal of a line whose chain predecessor hash is prev */
static int compute_line_seal(struct sealer *s, const unsigned char *prev,
			     const char *line, size_t len, unsigned char out[HASH_LEN])
{
	struct chunk c[3] = {
		{ prev, HASH_LEN },
		{ line, len - SUFFIX_LEN },
		{ "}", 1 },
	};

	return seal_chunks(s, c, 3, out);
}

/* ------------------------------------------------------------------ */
/* line reader over plain or gzip files (gzread reads both) */

struct line_reader {
	gzFile gz;
	const char *path;
	char *rbuf, *line;
	size_t rpos, rlen, len;
	bool eof, terminated;
	unsigned long lineno;
};

static int lr_open(struct line_reader *lr, const char *path)
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

static void lr_close(struct line_reader *lr)
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
static int lr_next(struct line_reader *lr)
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

struct seg {
	uint64_t first;
	bool gz;
	char *path;
};

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
	const struct seg *a = x, *b = y;

	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	return (int)b->gz - (int)a->gz;	/* .gz first: it is the finished copy */
}

static void segs_free(struct seg *s, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(s[i].path);
	free(s);
}

/* closed segments of dir sorted by first seq; duplicates (a plain copy
 * left next to its finished .gz by an interrupted rotation) dropped */
static int list_closed(const char *dir, struct seg **out, int *n_out)
{
	struct seg *s = NULL, *ns;
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
		segs_free(s, n);
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

int kg_audit_list_segments(const char *dir, char ***paths_out, int *n_out)
{
	struct seg *s = NULL;
	char **paths;
	int n = 0, i, err;
	char active[PATH_MAX + 32];
	struct stat st;
	bool have_active;

	if (!dir)
		dir = kg_audit_dir();
	err = list_closed(dir, &s, &n);
	if (err)
		return err;
	if (path_in(active, sizeof(active), dir, ACTIVE_NAME)) {
		segs_free(s, n);
		return -ENAMETOOLONG;
	}
	have_active = !stat(active, &st);
	paths = calloc(n + 2, sizeof(*paths));
	if (!paths) {
		segs_free(s, n);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		paths[i] = s[i].path;
	free(s);
	if (have_active && !(paths[n] = strdup(active))) {
		kg_audit_free_list(paths, n);
		return -ENOMEM;
	}
	*paths_out = paths;
	*n_out = n + (have_active ? 1 : 0);
	return 0;
}

void kg_audit_free_list(char **paths, int n)
{
	int i;

	if (!paths)
		return;
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
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
static int compress_segment(const char *plain)
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

/* Finishes rotations a crash interrupted: compress plain closed segments
 * (or drop a plain copy whose .gz is complete). Called under the lock. */
static void finish_rotations(struct kg_audit *a)
{
	struct seg *s = NULL;
	int n = 0, i, err;

	if (list_closed(a->dir, &s, &n))
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
			err = compress_segment(s[i].path);
		if (err)
			kg_warn("audit: cannot finish compressing %s: %s", s[i].path, strerror(-err));
	}
	segs_free(s, n);
}

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
static int queue_recovery_record(struct kg_audit *a, const struct head_info *h)
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

		err = queue_record(a, &r, true);
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
	if (path_in(moved, sizeof(moved), a->dir, name)) {
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
			err = write_full(out, buf, want);
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
	fsync_dir(a->dir);
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
	struct sealed_line sl;
	struct line_reader lr;
	struct seg *s = NULL;
	const char *why;
	int n = 0, err, r;
	bool found = false;

	err = list_closed(a->dir, &s, &n);
	if (err || !n) {
		segs_free(s, n);
		return err;
	}
	err = lr_open(&lr, s[n - 1].path);
	if (!err) {
		while ((r = lr_next(&lr)) != 0) {
			if (r == 1 && !parse_sealed(lr.line, lr.len, &sl, &why)) {
				a->last_seq = sl.seq;
				memcpy(a->last_hash, sl.hash, HASH_LEN);
				found = true;
			} else if (r == -EIO) {
				break;
			}
		}
		lr_close(&lr);
	}
	segs_free(s, n);
	if (!err && !found)
		kg_warn("audit: cannot find the last record of the closed segments");
	return err;
}

/* Re-reads last seq + hash from the active segment (or head/closed ones). */
static int load_tail(struct kg_audit *a, uint64_t size)
{
	struct head_info h;
	struct sealed_line sl;
	const char *why;
	char *line = NULL;
	ssize_t len;
	int err;

	a->last_seq = 0;
	memset(a->last_hash, 0, HASH_LEN);
	if (!size) {
		err = head_read(a->head, &a->sealer, &h);
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
	err = parse_sealed(line, (size_t)len, &sl, &why);
	if (!err) {
		unsigned char mac[HASH_LEN];

		a->last_seq = sl.seq;
		memcpy(a->last_hash, sl.hash, HASH_LEN);
		if (compute_line_seal(&a->sealer, sl.prev, line, (size_t)len, mac) ||
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

/* ------------------------------------------------------------------ */
/* group mode: fdatasync off the appender's path
 *
 * In KG_AUDIT_SYNC_GROUP, a commit writes its records with write(2) and
 * returns; a background thread fdatasyncs the segment at most once per
 * flush_interval_ms, starting as soon as that much time has passed since its
 * previous fdatasync began (at once after an idle spell). So a record is on
 * disk at most about one interval plus one fdatasync after its write(2);
 * a kill -9 loses nothing written. The thread is started by the first write
 * and stopped (after a last fdatasync) by kg_audit_close. A process that
 * forked with the handle has no such thread and syncs inline instead. */

static bool syncer_here(const struct kg_audit *a)
{
	return !a->sync.started || a->sync.owner == getpid();
}

static void syncer_wait_until(struct syncer *s, uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000ull),
		.tv_nsec = (long)(deadline_ns % 1000000000ull),
	};

	pthread_cond_timedwait(&s->wake, &s->mu, &ts);
}

static void *syncer_main(void *arg)
{
	struct kg_audit *a = arg;
	struct syncer *s = &a->sync;
	uint64_t interval = (uint64_t)a->o.flush_interval_ms * 1000000ull;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		uint64_t gen, now;
		int fd, err = 0;

		while (!s->stop && s->written == s->covered) {
			s->idle = true;
			pthread_cond_wait(&s->wake, &s->mu);
			s->idle = false;
		}
		if (s->written == s->covered)
			break;			/* stopping, and everything is synced */
		now = kg_now_mono_ns();
		if (!s->stop && s->last_start_ns && now - s->last_start_ns < interval) {
			syncer_wait_until(s, s->last_start_ns + interval);
			continue;
		}
		gen = s->written;
		s->covered = gen;
		s->last_start_ns = now;
		/* a dup: the appender may close a->fd (rotation) meanwhile */
		fd = a->fd >= 0 ? fcntl(a->fd, F_DUPFD_CLOEXEC, 0) : -1;
		if (a->fd >= 0 && fd < 0)
			err = -errno;
		pthread_mutex_unlock(&s->mu);
		if (fd >= 0) {
			if (fdatasync(fd))
				err = -errno;
			close(fd);
		}
		if (err)
			kg_err("audit: background fdatasync of %s failed: %s", a->active,
			       strerror(-err));
		pthread_mutex_lock(&s->mu);
		if (err && !s->err)
			s->err = err;
		if (!err && gen > s->done)
			s->done = gen;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int syncer_init(struct syncer *s)
{
	pthread_condattr_t ca;
	int err;

	err = pthread_condattr_init(&ca);
	if (err)
		return -err;
	err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		return -err;
	err = pthread_mutex_init(&s->mu, NULL);
	if (err) {
		pthread_cond_destroy(&s->wake);
		return -err;
	}
	return 0;
}

/* After a group's write(2): hand the fdatasync to the thread. */
static int syncer_note_write(struct kg_audit *a)
{
	struct syncer *s = &a->sync;
	int err;

	pthread_mutex_lock(&s->mu);
	s->written++;
	if (!s->started) {
		err = pthread_create(&s->thread, NULL, syncer_main, a);
		if (err) {	/* no thread: this group is synced here */
			pthread_mutex_unlock(&s->mu);
			kg_warn("audit: cannot start the sync thread (%s); syncing inline",
				strerror(err));
			return fdatasync(a->fd) ? -errno : 0;
		}
		s->started = true;
		s->owner = getpid();
	} else if (s->idle) {
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* A failed background fdatasync, reported once (0 when none). */
static int syncer_take_error(struct kg_audit *a)
{
	struct syncer *s = &a->sync;
	int err;

	if (!s->started || !syncer_here(a))
		return 0;
	pthread_mutex_lock(&s->mu);
	err = s->err;
	s->err = 0;
	pthread_mutex_unlock(&s->mu);
	return err;
}

/* Stops the thread after its last fdatasync; its error, if any. */
static int syncer_stop(struct kg_audit *a)
{
	struct syncer *s = &a->sync;

	if (!s->started || !syncer_here(a))
		return 0;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
	return s->err;
}

/* Replaces a->fd (NULL-safe for the thread, which reads it under mu).
 * Records written to the old segment but not yet fdatasynced are synced
 * here first, so switching segments never weakens group durability. */
static void set_active_fd(struct kg_audit *a, int fd)
{
	struct syncer *s = &a->sync;
	bool locked = s->started && syncer_here(a);
	int old = a->fd;

	if (locked)
		pthread_mutex_lock(&s->mu);
	if (old >= 0 && a->o.sync == KG_AUDIT_SYNC_GROUP &&
	    (!locked || s->done != s->written) && fdatasync(old))
		kg_warn("audit: fdatasync of %s failed: %s", a->active, strerror(errno));
	a->fd = fd;
	if (locked) {
		s->covered = s->done = s->written;
		pthread_mutex_unlock(&s->mu);
	}
	if (old >= 0)
		close(old);
}

/* Under the lock: make sure we append to the current active segment and
 * know the chain's tail, re-reading it if someone else wrote since. */
static int sync_tail(struct kg_audit *a)
{
	struct stat st;
	bool cut;
	int err, fd;

	if (stat(a->active, &st) || st.st_dev != a->dev || st.st_ino != a->ino || a->fd < 0) {
		fd = open(a->active, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return kg_err("audit: cannot open %s: %s", a->active, strerror(errno)), -errno;
		set_active_fd(a, fd);
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
		struct head_info h;
		bool have_head = !head_read(a->head, &a->sealer, &h);

		err = queue_recovery_record(a, have_head ? &h : NULL);
		if (err)
			return err;
	}
	a->known_size = (uint64_t)st.st_size;
	return 0;
}

/* {"seq":N,"prev":"<hex>",  into out (enough room reserved by the caller) */
static size_t line_prefix(char *out, uint64_t seq, const unsigned char *prev)
{
	size_t n = 0;

	memcpy(out, "{\"seq\":", 7);
	n = 7;
	n += fmt_u64(out + n, seq);
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
	struct jbuf *o = &a->out;
	unsigned i;

	o->len = 0;
	o->err = 0;
	memcpy(prev, a->last_hash, HASH_LEN);
	for (i = 0; i < a->npending; i++) {
		const struct pend *pd = &a->pending[i];
		size_t start = o->len;
		struct chunk c[3];
		int err;

		if (!jb_reserve(o, 100 + pd->len + SUFFIX_LEN + 2))
			return o->err;
		o->len += line_prefix(o->p + o->len, ++seq, prev);
		memcpy(o->p + o->len, a->bodies.p + pd->off, pd->len);
		o->len += pd->len;
		/* sealed: prev_raw || the line so far || "}" */
		c[0] = (struct chunk){ prev, HASH_LEN };
		c[1] = (struct chunk){ o->p + start, o->len - start };
		c[2] = (struct chunk){ "}", 1 };
		err = seal_chunks(&a->sealer, c, 3, mac);
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
 * the event consumer included. It needs no lock (see compress_segment);
 * readers take the plain copy until the .gz is complete. One at a time: a
 * rotation waits for the previous compression, which bounds the backlog. */
struct compressor {
	struct kg_audit *a;
	pthread_t thread;
	pid_t owner;
	char *path;
};

static void *compressor_main(void *arg)
{
	struct compressor *z = arg;
	int err = compress_segment(z->path);

	if (err)
		kg_warn("audit: cannot compress %s (kept plain): %s", z->path, strerror(-err));
	else
		fsync_dir(z->a->dir);
	return NULL;
}

static void compressor_wait(struct kg_audit *a)
{
	struct compressor *z = a->zip;

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
	struct compressor *z;
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
	err = compress_segment(closed);
	if (err)
		kg_warn("audit: cannot compress %s (kept plain): %s", closed, strerror(-err));
	else
		fsync_dir(a->dir);
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
	if (path_in(closed, sizeof(closed), a->dir, name))
		return -ENAMETOOLONG;
	if (a->o.sync != KG_AUDIT_SYNC_NONE && fsync(a->fd))
		return -errno;
	if (rename(a->active, closed))
		return kg_err("audit: cannot rotate %s: %s", a->active, strerror(errno)), -errno;
	set_active_fd(a, -1);	/* sync_tail opens a fresh active segment */
	fsync_dir(a->dir);
	compress_later(a, closed);
	return 0;
}

static void drop_pending(struct kg_audit *a)
{
	a->npending = 0;
	a->bodies.len = 0;
	if (a->bodies.cap > (4u << 20)) {	/* one huge record: give it back */
		jb_free(&a->bodies);
		jb_free(&a->out);
	}
}

/* Durability of one written group, per the sync setting. */
static int sync_written(struct kg_audit *a)
{
	switch (a->o.sync) {
	case KG_AUDIT_SYNC_NONE:
		return 0;
	case KG_AUDIT_SYNC_GROUP:
		if (syncer_here(a))
			return syncer_note_write(a);
		/* forked with the handle: no thread here, sync inline */
		return fdatasync(a->fd) ? -errno : 0;
	default:
		return fdatasync(a->fd) ? -errno : 0;
	}
}

/* The dir's own key is created with the trail's first record, under the
 * lock, not when a handle is opened: so a key in the dir means records were
 * written under it, and a key with no trail left is a trail that was
 * removed (queue_trail_missing, and `verify` fails).  Loads the key once
 * it exists; creates it when `create`. */
static int ensure_key(struct kg_audit *a, bool create)
{
	unsigned char key[KEY_LEN];
	int err;

	if (a->have_key)
		return 0;
	if (!create && access(a->keypath, F_OK) && errno == ENOENT)
		return 0;	/* no trail yet */
	err = key_load(a->keypath, create, key);
	if (!err)
		err = sealer_init(&a->sealer, key);
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
	err = sync_tail(a);
	if (err)
		return err;
	/* a recovery record sync_tail queued is first in line */
	had_recovery = a->recovery.torn && !a->recovery.recovery_seq;
	if (!a->npending)
		return 0;
	before = a->last_seq;
	err = seal_pending(a, last);
	if (err)
		return err;
	err = write_full(a->fd, a->out.p, a->out.len);
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
	return err ? err : syncer_take_error(a);
}

static void free_writer(struct kg_audit *a)
{
	compressor_wait(a);
	drop_pending(a);
	free(a->pending);
	jb_free(&a->bodies);
	jb_free(&a->out);
	if (a->fd >= 0)
		close(a->fd);
	if (a->lockfd >= 0)
		close(a->lockfd);
	if (a->headfd >= 0)
		close(a->headfd);
	sealer_free(&a->sealer);
	/* a forked child must not touch what its parent's thread may hold */
	if (syncer_here(a)) {
		pthread_mutex_destroy(&a->sync.mu);
		pthread_cond_destroy(&a->sync.wake);
	}
	free(a);
}

/* Anything of a trail in a->dir: records in the active or a closed
 * segment, or a head. */
static bool trail_has_content(struct kg_audit *a)
{
	struct seg *segs = NULL;
	struct stat st;
	int n = 0;

	if ((!stat(a->active, &st) && st.st_size) || (!stat(a->head, &st) && st.st_size))
		return true;
	if (list_closed(a->dir, &segs, &n))
		return true;	/* cannot tell: do as if */
	segs_free(segs, n);
	return n > 0;
}

/* The dir's key exists but there is no record and no head: the trail
 * written under it was removed.  Said at the first seq of what follows. */
static int queue_trail_missing(struct kg_audit *a)
{
	struct kg_audit_rec r = {
		.type = "recovery", .actor_uid = -1, .pid = getpid(), .tid = -1,
		.op = "trail_missing", .target = KEY_NAME, .mechanism = "controller",
		.reason = "the audit key existed but its trail had no records and no head: the "
			  "records written under this key were removed",
	};
	struct head_info h;

	if (!a->own_key || a->last_seq || !head_read(a->head, &a->sealer, &h))
		return 0;
	kg_warn("audit: %s has its key but no records: the trail was removed (`kgate audit "
		"verify` reports it)", a->dir);
	return queue_record(a, &r, true);
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
	err = syncer_init(&a->sync);
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
		err = path_in(a->active, sizeof(a->active), dir, ACTIVE_NAME);
	if (!err)
		err = path_in(a->head, sizeof(a->head), dir, HEAD_NAME);
	if (!err)
		err = path_in(lockpath, sizeof(lockpath), dir, LOCK_NAME);
	if (!err)
		err = opts && opts->key_path ?
			(kg_strlcpy(a->keypath, opts->key_path, sizeof(a->keypath)) ? -ENAMETOOLONG : 0) :
			path_in(a->keypath, sizeof(a->keypath), dir, KEY_NAME);
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
		err = sync_tail(a);
		if (!err)
			err = queue_trail_missing(a);
		if (!err)	/* repairs a torn tail and seals the recovery record */
			err = commit_locked(a);
	}
	unlock_trail(a);
	if (err)
		goto fail;
	return a;
fail:
	syncer_stop(a);
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
	err = queue_record(a, r, false);
	if (err)
		return err;
	return due(a) ? commit(a) : 0;
}

int kg_audit_queue(struct kg_audit *a, const struct kg_audit_rec *r)
{
	if (!a || !r)
		return -EINVAL;
	return queue_record(a, r, false);
}

int kg_audit_flush(struct kg_audit *a)
{
	if (!a)
		return -EINVAL;
	return a->npending ? commit(a) : syncer_take_error(a);
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
	if (!serr && a->sync.started && syncer_here(a)) {
		pthread_mutex_lock(&a->sync.mu);
		a->sync.done = a->sync.written;
		pthread_mutex_unlock(&a->sync.mu);
	}
	return serr;
}

int kg_audit_quiesce(struct kg_audit *a, int timeout_ms)
{
	int ms;

	if (!a)
		return 0;
	kg_audit_flush(a);
	if (!a->sync.started || !syncer_here(a))
		return 0;
	/* 1 ms steps: this runs before every job's first fork, usually just
	 * after the syncer started, which is idle again well within 5 ms */
	for (ms = 0; ms < timeout_ms; ms++) {
		bool idle;

		pthread_mutex_lock(&a->sync.mu);
		idle = a->sync.idle && a->sync.written == a->sync.covered;
		pthread_mutex_unlock(&a->sync.mu);
		if (idle)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
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
	err = syncer_stop(a);
	if (!err && a->o.sync == KG_AUDIT_SYNC_GROUP && !syncer_here(a) &&
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

/* ------------------------------------------------------------------ */
/* verification */

struct verifier {
	struct sealer s;
	struct kg_audit_verify_result *res;
	bool anchored, from_start;
	uint64_t expect;
	unsigned char prev[HASH_LEN];
	bool have_head;
	struct head_info head;
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
static bool verify_line(struct verifier *v, struct line_reader *lr)
{
	static const unsigned char zero[HASH_LEN];
	unsigned char mac[HASH_LEN];
	struct sealed_line sl;
	const char *why;

	if (!lr->terminated) {
		vfail(v, lr->path, lr->lineno, v->expect, "torn (unterminated) last line");
		return false;
	}
	if (parse_sealed(lr->line, lr->len, &sl, &why)) {
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
		      memcmp(v->prev, zero, HASH_LEN) ? "the preceding record" : "the genesis");
		return false;
	}
	if (compute_line_seal(&v->s, sl.prev, lr->line, lr->len, mac) ||
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
	struct line_reader lr;
	bool ok = true;
	int r;

	r = lr_open(&lr, path);
	if (r) {
		vfail(v, path, 0, v->expect, "cannot read: %s", strerror(-r));
		return false;
	}
	v->res->segments++;
	while (ok && (r = lr_next(&lr)) != 0) {
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
	lr_close(&lr);
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
	err = key_load(key_path, false, key);
	if (err)
		return err;
	err = sealer_init(&v->s, key);
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
		if (path_in(keypath, sizeof(keypath), kg_audit_dir(), KEY_NAME))
			return -ENAMETOOLONG;
		key_path = keypath;
	}
	err = verifier_init(&v, key_path, res);
	if (err)
		return err;
	verify_chain(&v, files, nfiles);
	sealer_free(&v.s);
	return 0;
}

/* reads the head under a shared lock so a writer's pwrite is never seen half done */
static int head_read_locked(const char *dir, const char *headpath, struct sealer *s,
			    struct head_info *h)
{
	char lockpath[PATH_MAX + 32];
	int fd = -1, err;

	if (!path_in(lockpath, sizeof(lockpath), dir, LOCK_NAME))
		fd = open(lockpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		while (flock(fd, LOCK_SH) && errno == EINTR)
			;
	err = head_read(headpath, s, h);
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

int kg_audit_verify_dir(const char *dir, const char *key_path,
			struct kg_audit_verify_result *res)
{
	char keypath[PATH_MAX + 32], headpath[PATH_MAX + 32];
	struct verifier v;
	char **files = NULL;
	int n = 0, err, head_err;

	if (!dir)
		dir = kg_audit_dir();
	if (path_in(headpath, sizeof(headpath), dir, HEAD_NAME) ||
	    path_in(keypath, sizeof(keypath), dir, KEY_NAME))
		return -ENAMETOOLONG;
	err = verifier_init(&v, key_path ? key_path : keypath, res);
	if (err)
		return err;
	err = kg_audit_list_segments(dir, &files, &n);
	if (err) {
		sealer_free(&v.s);
		return kg_err("audit: cannot list %s: %s", dir, strerror(-err)), err;
	}
	v.from_start = true;
	head_err = head_read_locked(dir, headpath, &v.s, &v.head);
	v.have_head = !head_err;
	if (verify_chain(&v, files, n))
		verify_head(&v, headpath, head_err, files, n);
	/* the dir's key is made with its first record: the key without a
	 * record is a trail that was removed */
	if (v.res->ok && !v.res->records && (!key_path || !strcmp(key_path, keypath)))
		vfail(&v, n ? files[n - 1] : dir, 0, 1, "%s exists but the trail has no records: "
		      "it was removed (a key is created with the first record)", KEY_NAME);
	kg_audit_free_list(files, n);
	sealer_free(&v.s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* queries */

struct needle {
	char *s;
	size_t len;
};

struct query {
	const struct kg_audit_filter *f;
	char *trace, *decision, *rule, *type, *phash, *target;	/* escaped forms */
	struct needle nd[6];
	int nneedles;
	kg_audit_visit_fn fn;
	void *ctx;
	bool quiet;
	struct kg_audit_qstats *st;
};

/* `"key":"value` (closed with a quote unless prefix) as it appears in a line */
static int add_needle(struct query *q, const char *key, const char *esc, bool prefix)
{
	json_t *js = json_string(esc);
	char *enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
	struct needle *nd = &q->nd[q->nneedles];
	int n;

	json_decref(js);
	if (!enc)
		return -ENOMEM;
	if (prefix)
		enc[strlen(enc) - 1] = '\0';
	n = asprintf(&nd->s, "\"%s\":%s", key, enc);
	free(enc);
	if (n < 0)
		return -ENOMEM;
	nd->len = (size_t)n;
	q->nneedles++;
	return 0;
}

static int query_setup_one(struct query *q, const char *val, const char *key,
			   bool prefix, char **esc_out)
{
	if (!val)
		return 0;
	*esc_out = kg_audit_escape(val, strlen(val));
	if (!*esc_out)
		return -ENOMEM;
	return add_needle(q, key, *esc_out, prefix);
}

static void query_free(struct query *q)
{
	int i;

	for (i = 0; i < q->nneedles; i++)
		free(q->nd[i].s);
	free(q->trace);
	free(q->decision);
	free(q->rule);
	free(q->type);
	free(q->phash);
	free(q->target);
}

static int query_setup(struct query *q, const struct kg_audit_filter *f)
{
	static const struct kg_audit_filter none;
	int err;

	q->f = f ? f : &none;
	f = q->f;
	err = query_setup_one(q, f->trace_id, "trace", false, &q->trace);
	if (!err)
		err = query_setup_one(q, f->decision, "decision", false, &q->decision);
	if (!err)
		err = query_setup_one(q, f->rule_id, "rule", false, &q->rule);
	if (!err)
		err = query_setup_one(q, f->type, "type", false, &q->type);
	if (!err)
		err = query_setup_one(q, f->policy_hash, "hash", true, &q->phash);
	if (!err && f->target) {
		/* "target":"T" or "name":"T": the value, quoted, is in the line */
		json_t *js = NULL;
		char *enc = NULL;

		q->target = kg_audit_escape(f->target, strlen(f->target));
		js = q->target ? json_string(q->target) : NULL;
		enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
		if (!enc)
			return -ENOMEM;
		q->nd[q->nneedles].s = enc;
		q->nd[q->nneedles++].len = strlen(enc);
	}
	return err;
}

static bool time_in_range(const struct kg_audit_filter *f, uint64_t ns)
{
	return !(f->since_ns && ns < f->since_ns) && !(f->until_ns && ns > f->until_ns);
}

static bool str_member_is(json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));

	return !want || (v && !strcmp(v, want));
}

static bool record_matches(const struct query *q, json_t *o)
{
	const struct kg_audit_filter *f = q->f;

	if (!str_member_is(o, "trace", q->trace) || !str_member_is(o, "decision", q->decision) ||
	    !str_member_is(o, "rule", q->rule) || !str_member_is(o, "type", q->type))
		return false;
	if (q->target && !str_member_is(o, "target", q->target) &&
	    !str_member_is(json_object_get(o, "extra"), "name", q->target))
		return false;
	if (q->phash) {
		const char *h = json_string_value(json_object_get(json_object_get(o, "policy"), "hash"));

		if (!h || strncmp(h, q->phash, strlen(q->phash)))
			return false;
	}
	if (f->since_ns || f->until_ns) {
		const char *t = json_string_value(json_object_get(o, "time"));
		uint64_t ns;

		if (!t || kg_audit_parse_time(t, &ns) || !time_in_range(f, ns))
			return false;
	}
	return true;
}

static void qbad(struct query *q, const char *path, unsigned long line, const char *what)
{
	q->st->bad++;
	if (!q->quiet)
		kg_warn("audit: %s:%lu: %s", path, line, what);
}

static size_t span(const char *p, const char *end, const char *accept)
{
	const char *s = p;

	while (s < end && *s && strchr(accept, *s))
		s++;
	return (size_t)(s - p);
}

static bool skip_lit(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *p) < n || memcmp(*p, lit, n))
		return false;
	*p += n;
	return true;
}

/* The writer starts every record with
 *   {"seq":N,"prev":"<64 hex>","type":"<name>","time":"<RFC 3339>",
 * For a line with exactly that prefix the top-level time is known without
 * a full parse: these members can only be what they look like, since a
 * JSON string never holds an unescaped quote. 0 and *ns set, or -1 (the
 * caller then parses the line). Parsing every line just to compare times
 * is what made time-range queries slow. */
static int canonical_time(const char *line, size_t len, uint64_t *ns)
{
	const char *p = line, *end = line + len;
	char buf[48];
	size_t n;

	if (!skip_lit(&p, end, "{\"seq\":") || !(n = span(p, end, "0123456789")))
		return -1;
	p += n;
	if (!skip_lit(&p, end, ",\"prev\":\"") || span(p, end, "0123456789abcdef") != HASH_HEX)
		return -1;
	p += HASH_HEX;
	if (!skip_lit(&p, end, "\",\"type\":\"") ||
	    !(n = span(p, end, "abcdefghijklmnopqrstuvwxyz_")))
		return -1;
	p += n;
	if (!skip_lit(&p, end, "\",\"time\":\""))
		return -1;
	n = span(p, end, "0123456789-T:.Z");
	if (!n || n >= sizeof(buf) || p + n >= end || p[n] != '"')
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return kg_audit_parse_time(buf, ns) ? -1 : 0;
}

/* 1 = stop (visitor asked), 0 = go on, -errno = error */
static int query_line(struct query *q, struct line_reader *lr)
{
	bool timed = q->f->since_ns || q->f->until_ns;
	json_error_t jerr;
	uint64_t ns;
	json_t *o;
	int i, stop = 0;

	q->st->lines++;
	/* cheap necessary condition first: every string filter must appear */
	for (i = 0; i < q->nneedles; i++)
		if (!memmem(lr->line, lr->len, q->nd[i].s, q->nd[i].len))
			return 0;
	if (timed && !canonical_time(lr->line, lr->len, &ns)) {
		if (!time_in_range(q->f, ns))
			return 0;
		if (!q->nneedles && !q->fn) {
			q->st->matched++;	/* counting only: nothing else to check */
			return 0;
		}
	}
	o = json_loadb(lr->line, lr->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o)) {
		char what[300];

		snprintf(what, sizeof(what), "bad record%s: %s", lr->terminated ? "" :
			 " (unterminated)", o ? "not a JSON object" : jerr.text);
		qbad(q, lr->path, lr->lineno, what);
		json_decref(o);
		return 0;
	}
	if (record_matches(q, o)) {
		q->st->matched++;
		if (q->fn)
			stop = q->fn(o, lr->line, lr->len, q->ctx);
	}
	json_decref(o);
	return stop ? 1 : 0;
}

static int query_file(struct query *q, const char *path)
{
	struct line_reader lr;
	int r, stop = 0;

	r = lr_open(&lr, path);
	if (r) {
		qbad(q, path, 0, "cannot open");
		return 0;
	}
	while (!stop && (r = lr_next(&lr)) != 0) {
		if (r == -E2BIG) {
			q->st->lines++;
			qbad(q, path, lr.lineno, "line longer than 1 MiB, skipped");
		} else if (r < 0) {
			qbad(q, path, lr.lineno + 1, "read error (corrupt compressed data?)");
			break;
		} else {
			stop = query_line(q, &lr);
		}
	}
	lr_close(&lr);
	return stop;
}

int kg_audit_query_files(char *const *files, int nfiles,
			 const struct kg_audit_filter *f, kg_audit_visit_fn fn,
			 void *ctx, bool quiet, struct kg_audit_qstats *st)
{
	struct kg_audit_qstats local;
	struct query q;
	int i, err;

	memset(&q, 0, sizeof(q));
	q.st = st ? st : &local;
	memset(q.st, 0, sizeof(*q.st));
	q.fn = fn;
	q.ctx = ctx;
	q.quiet = quiet;
	err = query_setup(&q, f);
	for (i = 0; !err && i < nfiles; i++)
		if (query_file(&q, files[i]))
			break;
	query_free(&q);
	return err;
}

int kg_audit_query(const char *dir, const struct kg_audit_filter *f,
		   kg_audit_visit_fn fn, void *ctx, bool quiet,
		   struct kg_audit_qstats *st)
{
	char **files = NULL;
	int n = 0, err;

	err = kg_audit_list_segments(dir, &files, &n);
	if (err)
		return err;
	err = kg_audit_query_files(files, n, f, fn, ctx, quiet, st);
	kg_audit_free_list(files, n);
	return err;
}

/* ------------------------------------------------------------------ */
/* the newest matching record (consumers resuming after a crash) */

struct last_match {
	const char *needle;
	kg_audit_match_fn match;
	void *ctx;
	json_t *found;
};

/* 1 = this line matched (lm->found set), 0 = not */
static int try_line(struct last_match *lm, const char *line, size_t len)
{
	json_t *rec;

	if (!len || (lm->needle && !memmem(line, len, lm->needle, strlen(lm->needle))))
		return 0;
	rec = json_loadb(line, len, 0, NULL);
	if (!rec)
		return 0;
	if (!lm->match(rec, lm->ctx)) {
		json_decref(rec);
		return 0;
	}
	json_decref(lm->found);
	lm->found = rec;
	return 1;
}

/* The active segment is plain and may be large: read it from its end in
 * chunks and stop at the first (newest) match. */
static int scan_plain_backwards(struct last_match *lm, const char *path)
{
	const size_t chunk = 256u << 10;
	char *work = NULL, *tail = NULL;
	size_t taillen = 0;
	uint64_t end;
	struct stat st;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto out;
	}
	for (end = (uint64_t)st.st_size; end > 0 && !lm->found;) {
		size_t want = end > chunk ? chunk : (size_t)end, n, i, stop;
		uint64_t lo = end - want;
		char *nw;

		nw = realloc(work, want + taillen);
		if (!nw) {
			err = -ENOMEM;
			break;
		}
		work = nw;
		if (pread(fd, work, want, (off_t)lo) != (ssize_t)want) {
			err = -EIO;
			break;
		}
		if (taillen)
			memcpy(work + want, tail, taillen);
		n = want + taillen;
		/* complete lines are those after the first newline (or all of
		 * them at the start of the file); newest first */
		stop = 0;
		if (lo) {
			char *nl = memchr(work, '\n', n);

			stop = nl ? (size_t)(nl - work) + 1 : n;
		}
		for (i = n; i > stop && !lm->found;) {
			size_t e = i, s;

			if (work[e - 1] == '\n')
				e--;
			for (s = e; s > stop && work[s - 1] != '\n'; s--)
				;
			try_line(lm, work + s, e - s);
			i = s;
		}
		/* what precedes `stop` continues in the previous chunk */
		free(tail);
		tail = NULL;
		taillen = 0;
		if (lo && stop && stop <= KG_AUDIT_MAX_LINE + 1) {
			tail = malloc(stop);
			if (!tail) {
				err = -ENOMEM;
				break;
			}
			memcpy(tail, work, stop);
			taillen = stop;
		}
		end = lo;
	}
out:
	free(work);
	free(tail);
	close(fd);
	return err;
}

/* A closed segment (gzip or plain) streams forward: the last match wins. */
static int scan_closed(struct last_match *lm, const char *path)
{
	struct line_reader lr;
	int r, err;

	err = lr_open(&lr, path);
	if (err)
		return err;
	while ((r = lr_next(&lr)) != 0) {
		if (r == -EIO) {
			err = r;
			break;
		}
		if (r == 1)
			try_line(lm, lr.line, lr.len);
	}
	lr_close(&lr);
	return err;
}

int kg_audit_find_last(const char *dir, const char *needle, kg_audit_match_fn match, void *ctx,
		       unsigned int max_segments, json_t **out)
{
	struct last_match lm = { .needle = needle, .match = match, .ctx = ctx };
	char **paths = NULL, active[PATH_MAX + 32];
	int n = 0, i, err;
	unsigned int seen = 0;

	*out = NULL;
	if (!dir)
		dir = kg_audit_dir();
	if (path_in(active, sizeof(active), dir, ACTIVE_NAME))
		return -ENAMETOOLONG;
	err = kg_audit_list_segments(dir, &paths, &n);
	if (err)
		return err;
	for (i = n - 1; i >= 0 && !lm.found && seen < max_segments && !err; i--, seen++)
		err = strcmp(paths[i], active) ? scan_closed(&lm, paths[i])
					       : scan_plain_backwards(&lm, paths[i]);
	kg_audit_free_list(paths, n);
	if (err) {
		json_decref(lm.found);
		return err;
	}
	*out = lm.found;
	return 0;
}

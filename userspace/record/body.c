// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/body.c - a record's JSON members, written straight into a buffer (body.h). */
#include "record/audit.h"
#include "common.h"
#include "record/body.h"

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

static const char *const record_types[] = {
	"decision", "admission", "approval", "policy_change", "events_lost",
	"controller", "job_start", "job_exit", "recovery", "job_stop",
};

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

bool kg_jb_reserve(struct kg_jbuf *b, size_t more)
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

static void jb_raw(struct kg_jbuf *b, const void *s, size_t n)
{
	if (kg_jb_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

#define jb_lit(b, s) jb_raw(b, s, sizeof(s) - 1)

void kg_jb_free(struct kg_jbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* decimal digits of v into out (no NUL); returns their count */
size_t kg_fmt_u64(char *out, uint64_t v)
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
static void jb_int(struct kg_jbuf *b, long long v)
{
	char tmp[24];
	size_t n = 0;

	if (v < 0)
		tmp[n++] = '-';
	n += kg_fmt_u64(tmp + n, v < 0 ? -(uint64_t)v : (uint64_t)v);
	jb_raw(b, tmp, n);
}

/* A JSON string holding kg_audit_escape(s). One pass does both the
 * reversible escaping of hostile bytes and JSON's escaping of its result;
 * the escaped text has no control bytes, so JSON only needs '"' and '\'
 * escaped (as jansson writes them). At most 5 output bytes per input byte. */
static void jb_str(struct kg_jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, n;
	char *o;

	if (!kg_jb_reserve(b, 5 * len + 2))
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
		} else if (c >= 0x80 && (n = kg_audit_utf8_seq(u + i, len - i))) {
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
static void jb_key(struct kg_jbuf *b, bool *first, const char *key)
{
	size_t n = strlen(key);

	if (!kg_jb_reserve(b, n + 4))
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

static void jb_member_str(struct kg_jbuf *b, bool *first, const char *key, const char *s)
{
	if (!s)
		return;
	jb_key(b, first, key);
	jb_str(b, s);
}

static void jb_member_int(struct kg_jbuf *b, bool *first, const char *key, long long v)
{
	jb_key(b, first, key);
	jb_int(b, v);
}

static void jb_time(struct kg_jbuf *b, bool *first, struct kg_time_cache *tc, uint64_t real_ns)
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
	if (!kg_jb_reserve(b, 32))
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
static void jb_extra(struct kg_jbuf *b, bool *first, const json_t *extra)
{
	size_t n;

	jb_key(b, first, "extra");
	if (!kg_jb_reserve(b, 256))
		return;
	n = json_dumpb(extra, b->p + b->len, b->cap - b->len, JSON_COMPACT);
	if (n > b->cap - b->len) {
		if (!kg_jb_reserve(b, n))
			return;
		n = json_dumpb(extra, b->p + b->len, b->cap - b->len, JSON_COMPACT);
	}
	if (!n || n > b->cap - b->len) {
		b->err = -ENOMEM;
		return;
	}
	b->len += n;
}

static void build_actor(struct kg_jbuf *b, bool *first, const struct kg_audit_rec *r)
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

static void build_subject(struct kg_jbuf *b, bool *first, const struct kg_audit_rec *r)
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

static void build_policy(struct kg_jbuf *b, bool *first, const struct kg_audit_rec *r)
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
int kg_audit_build_members(struct kg_jbuf *b, struct kg_time_cache *tc, const struct kg_audit_rec *r)
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
